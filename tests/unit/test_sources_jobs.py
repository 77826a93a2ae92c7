"""The synthetic job generator: deterministic, contract-shaped, the documented mix."""

from __future__ import annotations

from sources.jobs import generate_jobs
from udfs.timeutil import parse_ts_ms

START = parse_ts_ms("2018-07-01T00:00:00Z")
SITES = ["ams", "trn", "sto", "chi", "tus"]


def test_deterministic_and_seed_sensitive():
    a = generate_jobs(7, 300, START, 20, SITES)
    assert a == generate_jobs(7, 300, START, 20, SITES)
    assert a != generate_jobs(8, 300, START, 20, SITES)


def test_contract_shapes_and_ranges():
    jobs = generate_jobs(1, 2000, START, 30, SITES)
    submits = [j for j in jobs if j["action"] == "submit"]
    cancels = [j for j in jobs if j["action"] == "cancel"]
    assert len(submits) == 2000 and len({j["job_id"] for j in submits}) == 2000
    times = [parse_ts_ms(j["submitted_at"]) for j in jobs]
    assert times == sorted(times) and times[0] >= START
    for j in submits:
        assert 0.25 <= j["compute_hours"] <= 200 and j["slots"] in (1, 2, 4, 8, 16) and 0 <= j["priority"] <= 9
        if "deadline" in j:
            assert parse_ts_ms(j["deadline"]) > parse_ts_ms(j["submitted_at"])
        if "sites" in j:
            assert 1 <= len(j["sites"]) < len(SITES) and set(j["sites"]) <= set(SITES)
            assert j["sites"] == sorted(j["sites"])
    submitted = {j["job_id"]: parse_ts_ms(j["submitted_at"]) for j in submits}
    for c in cancels:
        assert set(c) == {"action", "job_id", "submitted_at"}
        assert parse_ts_ms(c["submitted_at"]) > submitted[c["job_id"]]
    # the documented fractions, loosely
    assert 0.6 < sum("deadline" in j for j in submits) / 2000 < 0.8
    assert 0.15 < sum("sites" in j for j in submits) / 2000 < 0.25
    assert 0.03 < len(cancels) / 2000 < 0.07
    assert len({j["priority"] for j in submits}) == 10


def test_poisson_rate_per_data_hour():
    jobs = generate_jobs(3, 5000, START, 50, SITES, cancel_fraction=0)
    span_h = (parse_ts_ms(jobs[-1]["submitted_at"]) - START) / 3_600_000
    assert 45 < 5000 / span_h < 55


def test_fractions_do_not_reshuffle_other_fields():
    a = generate_jobs(5, 100, START, 20, SITES, cancel_fraction=0.0, allow_fraction=0.0)
    b = generate_jobs(5, 100, START, 20, SITES, cancel_fraction=0.5, allow_fraction=1.0)
    strip = [{k: v for k, v in j.items() if k != "sites"} for j in b if j["action"] == "submit"]
    assert strip == a
