"""Region shards of the dispatch: which shard decides which sites and which jobs.

With one shard a single dispatcher solves every tick over all sites. With N shards the sites are
split by region into N groups of similar size, each decided by its own dispatcher (its own
Flink key, so its own subtask): the per-tick problems are smaller and run in parallel.

A job is decided by exactly one shard: the shard holding most of its allow-list (ties: lowest
shard), or, for a job without one (or naming no known site), a stable hash of its job_id. It can
only use the sites of that shard. When every allow-list lies inside one shard the shards'
problems are independent blocks of the single-dispatcher problem, so the results agree with it.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from udfs.catalogue import Catalogue


def assign_shards(catalogue: Catalogue, shards: int) -> dict[str, int]:
    """site_id -> shard. Whole regions go to the least-loaded shard, largest regions first, so a
    region never straddles two shards and the split does not depend on the order of the file."""
    if shards < 1:
        raise ValueError(f"dispatch shards: {shards} is below 1")
    regions: dict[str, list[str]] = defaultdict(list)
    for site in catalogue:
        regions[site.region].append(site.site_id)
    if shards > len(regions):
        raise ValueError(f"dispatch shards: {shards} shards but the catalogue has only {len(regions)} regions "
                         f"({', '.join(sorted(regions))}); a region is never split")
    load = [0] * shards
    out: dict[str, int] = {}
    for region in sorted(regions, key=lambda r: (-len(regions[r]), r)):
        shard = min(range(shards), key=lambda i: (load[i], i))
        load[shard] += len(regions[region])
        out.update({site_id: shard for site_id in regions[region]})
    return out


def hash_shard(job_id: str, shards: int) -> int:
    return zlib.crc32(job_id.encode()) % shards  # stable across processes (unlike hash())


def job_shard(record: Mapping[str, Any], site_shard: Mapping[str, int], shards: int) -> int:
    """The shard that decides a submitted job (see the module doc)."""
    known = Counter(site_shard[s] for s in record.get("sites") or () if s in site_shard)
    if known:
        return min(known, key=lambda shard: (-known[shard], shard))
    return hash_shard(record["job_id"], shards)


def shard_catalogue(catalogue: Catalogue, site_shard: Mapping[str, int], shard: int) -> Catalogue:
    """The sites one shard decides, as a catalogue of their own."""
    return Catalogue(sites=tuple(s for s in catalogue if site_shard[s.site_id] == shard),
                     home_region=catalogue.home_region)


class JobRoute:
    """Per job_id: the shard chosen at submit time, so a cancel (which names no site) and any
    resubmission reach the same dispatcher. A cancel seen before its submit waits here until the
    submit arrives, or until event time passes it (then the hash shard refuses it as a cancel for
    a job never submitted, as the single dispatcher would)."""

    def __init__(self, shard: int | None = None, waiting: list | None = None):
        self.shard = shard
        self.waiting: list = list(waiting or [])

    def on_submit(self, record: Mapping[str, Any], site_shard: Mapping[str, int], shards: int) -> list:
        """Returns the elements now routable (the submit's shard is fixed at its first submit)."""
        if self.shard is None:
            self.shard = job_shard(record, site_shard, shards)
        released, self.waiting = self.waiting, []
        return released

    def on_cancel(self, element: Any) -> bool:
        """True if the cancel can go now (to ``self.shard``); else it waits."""
        if self.shard is not None:
            return True
        self.waiting.append(element)
        return False

    def on_event_time_passed(self, job_id: str, shards: int) -> tuple[int, list]:
        released, self.waiting = self.waiting, []
        return (self.shard if self.shard is not None else hash_shard(job_id, shards)), released
