"""udfs/sharding.py: region shards, job routing and the cancel-before-submit wait."""

from __future__ import annotations

import pytest

from udfs.catalogue import load_catalogue
from udfs.sharding import JobRoute, assign_shards, hash_shard, job_shard, shard_catalogue


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()  # conf/sites.yaml: five sites in five regions


def test_every_site_in_exactly_one_shard_and_regions_whole(catalogue):
    shards = assign_shards(catalogue, 2)
    assert set(shards) == set(catalogue.site_ids)
    assert set(shards.values()) == {0, 1}
    by_region: dict[str, set[int]] = {}
    for site in catalogue:
        by_region.setdefault(site.region, set()).add(shards[site.site_id])
    assert all(len(s) == 1 for s in by_region.values())
    sizes = [list(shards.values()).count(i) for i in range(2)]
    assert abs(sizes[0] - sizes[1]) <= 1


def test_one_shard_holds_everything_and_too_many_shards_is_a_clear_error(catalogue):
    assert set(assign_shards(catalogue, 1).values()) == {0}
    with pytest.raises(ValueError, match="only 5 regions"):
        assign_shards(catalogue, 6)
    with pytest.raises(ValueError, match="below 1"):
        assign_shards(catalogue, 0)


def test_job_goes_to_the_shard_holding_most_of_its_allow_list(catalogue):
    shards = assign_shards(catalogue, 2)
    zero = sorted(s for s, i in shards.items() if i == 0)
    one = sorted(s for s, i in shards.items() if i == 1)
    assert job_shard({"job_id": "a", "sites": [one[0]]}, shards, 2) == 1
    assert job_shard({"job_id": "a", "sites": [one[0], zero[0], zero[1]]}, shards, 2) == 0
    assert job_shard({"job_id": "a", "sites": [one[0], zero[0]]}, shards, 2) == 0  # tie: lowest shard
    # no allow-list, or only unknown sites: a stable hash of the job id
    assert job_shard({"job_id": "j-7"}, shards, 2) == hash_shard("j-7", 2) == job_shard(
        {"job_id": "j-7", "sites": ["nowhere"]}, shards, 2)
    spread = {hash_shard(f"j-{i}", 2) for i in range(50)}
    assert spread == {0, 1}


def test_shard_catalogue_has_only_its_sites(catalogue):
    shards = assign_shards(catalogue, 2)
    part = shard_catalogue(catalogue, shards, 1)
    assert set(part.site_ids) == {s for s, i in shards.items() if i == 1}
    assert part.home_region == catalogue.home_region


def test_cancel_waits_for_its_submit_and_follows_it():
    shards = {"ams": 0, "sto": 1}
    route = JobRoute()
    cancel = ("event", "jobs", "j-1", 2000, {"action": "cancel", "job_id": "j-1"})
    assert route.on_cancel(cancel) is False  # shard unknown yet: it waits
    released = route.on_submit({"job_id": "j-1", "sites": ["sto"]}, shards, 2)
    assert released == [cancel] and route.shard == 1 and route.waiting == []
    # a resubmission with another allow-list keeps the first shard (its dispatcher refuses it)
    route.on_submit({"job_id": "j-1", "sites": ["ams"]}, shards, 2)
    assert route.shard == 1
    assert route.on_cancel(cancel) is True


def test_cancel_never_submitted_goes_to_the_hash_shard_when_event_time_passes():
    route = JobRoute()
    cancel = ("event", "jobs", "ghost", 2000, {"action": "cancel", "job_id": "ghost"})
    route.on_cancel(cancel)
    shard, released = route.on_event_time_passed("ghost", 3)
    assert shard == hash_shard("ghost", 3) and released == [cancel] and route.waiting == []
