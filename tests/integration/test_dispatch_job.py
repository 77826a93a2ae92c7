"""The dispatch job on the real broker and real Flink (embedded), against a batch reference run
of the same semantics computed straight from udfs/ (tests/reference.py)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from deploy.local.common import REPO
from tests import scenario
from tests.conftest import create_topics
from tests.kafka_helpers import consume_all, values
from tests.reference import reference_run
from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.sharding import assign_shards, job_shard
from udfs.timeutil import parse_ts_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STOP_SITE, STOP_AFTER_H = "trn", 16  # trn's offers stop: it must go unavailable at 16:00


def scenario_events() -> dict[str, list[dict]]:
    return {
        topics.PRICES: scenario.offers(stop_site=STOP_SITE, stop_after_h=STOP_AFTER_H),
        topics.WEATHER: scenario.weather(),
        topics.JOBS: scenario.jobs(),
    }


def key_of(topic: str, rec: dict) -> bytes:
    return str(rec["job_id"] if topic == topics.JOBS else rec["site_id"]).encode()


def deliver(bootstrap: str, prefix: str, events: dict[str, list[dict]], chaos_seed: int | None = None,
            extra: list[tuple[str, bytes | None, bytes]] = ()) -> dict[str, int]:
    """Produce the events in event-time order, or, with a seed, with duplicates and bounded
    reordering and jitter (every delay < 4 min, inside the job's 5-minute watermark bound)."""
    from kafka import KafkaProducer

    items = []
    rng = random.Random(chaos_seed)
    for topic, recs in events.items():
        for rec in recs:
            t = scenario.event_ms(topic, rec)
            delay = rng.uniform(0, 240_000) if chaos_seed is not None else 0
            items.append((t + delay, topic, rec, t))
            if chaos_seed is not None and rng.random() < 0.15:  # a duplicate, delivered a bit later
                items.append((t + rng.uniform(0, 240_000), topic, rec, t))
    items.sort(key=lambda i: (i[0], i[1]))
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    sent: dict[str, int] = defaultdict(int)
    for _, topic, rec, t in items:
        producer.send(prefix + topic, key=key_of(topic, rec), value=json.dumps(rec).encode(), timestamp_ms=int(t))
        sent[topic] += 1
    for topic, key, value in extra:
        producer.send(prefix + topic, key=key, value=value)
        sent["extra"] += 1
    producer.flush()
    producer.close()
    return dict(sent)


def run_job(bootstrap: str, prefix: str, sites_file: str, tmp_path: Path, extra: tuple[str, ...] = ()) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flink_jobs.dispatch_job", "--bootstrap", bootstrap, "--topic-prefix", prefix,
         "--bounded", "--checkpoint-interval-s", "2", "--state-dir", str(tmp_path / "ckpt"),
         "--sites-file", sites_file, "--restart-attempts", "0", *extra],  # any failure fails: no silent restarts
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def read_outputs(bootstrap: str, prefix: str) -> dict[str, list[dict]]:
    return {t: values(consume_all(bootstrap, prefix + t, timeout_s=20, idle_s=3)) for t in topics.OUTPUT_TOPICS}


def comparable_decision(d: dict) -> str:
    keep = {k: v for k, v in d.items() if k not in ("solve_ms", "solver")}
    return json.dumps(keep, sort_keys=True)


def canonical(recs: list[dict], fn=lambda r: json.dumps(r, sort_keys=True)) -> list[str]:
    return sorted(fn(r) for r in recs)


@pytest.fixture(scope="module")
def clean_run(kafka_bootstrap, small_sites, tmp_path_factory):
    prefix = f"clean{uuid.uuid4().hex[:6]}-"
    create_topics(kafka_bootstrap, [prefix + t for t in topics.ALL_TOPICS])
    deliver(kafka_bootstrap, prefix, scenario_events())
    run_job(kafka_bootstrap, prefix, small_sites, tmp_path_factory.mktemp("clean"))
    return read_outputs(kafka_bootstrap, prefix)


@pytest.fixture(scope="module")
def expected(small_sites):
    return reference_run(scenario_events(), sites_file=small_sites)


def test_site_costs_match_reference_exactly(clean_run, expected):
    assert len(clean_run[topics.SITE_COSTS]) == len(expected[topics.SITE_COSTS]) > 700
    assert canonical(clean_run[topics.SITE_COSTS]) == canonical(expected[topics.SITE_COSTS])


def test_site_costs_values_follow_the_domain_formulas(clean_run, small_sites):
    from udfs.catalogue import load_catalogue
    from udfs.cooling import pue

    cat = load_catalogue(small_sites)
    checked = 0
    for rec in clean_run[topics.SITE_COSTS]:
        if rec["available"]:
            site = cat[rec["site_id"]]
            p = pue(rec["temp_c"], rec["rel_humidity"], site.cooling)
            assert math.isclose(rec["pue"], round(p, 6), abs_tol=1e-9)
            want = rec["price_per_mwh"] / 1000 * site.it_kw_per_slot * p + site.fixed_cost_per_slot_hour
            assert math.isclose(rec["cost_per_compute_hour"], want, abs_tol=1e-9)
            checked += 1
    assert checked > 500


def test_dispatch_matches_reference_exactly(clean_run, expected):
    got = clean_run[topics.DISPATCH]
    assert {d["status"] for d in got} >= {"dispatched", "cancelled", "rejected"}
    assert canonical(got, comparable_decision) == canonical(expected[topics.DISPATCH], comparable_decision)
    # at most one decision per job; a job without one is still pending (no deadline, never worth it yet)
    job_ids = [d["job_id"] for d in got]
    assert len(job_ids) == len(set(job_ids))
    last = max(clean_run[topics.PIPELINE_METRICS], key=lambda m: m["tick"])
    assert len(job_ids) + last["pending_jobs"] == len({j["job_id"] for j in scenario.jobs()})
    with_deadline = {j["job_id"] for j in scenario.jobs() if j.get("deadline")}
    assert with_deadline <= set(job_ids)


def test_reference_has_ticks_that_end_on_the_work_limit(expected):
    """The equality above covers solves stopped by the deterministic node budget (udfs.optimizer),
    and none stopped by the wall clock: the same decisions on any machine under any load."""
    metrics = expected[topics.PIPELINE_METRICS]
    assert any(m["solver_status"] == "work-limit" for m in metrics)
    assert not any(m["solver_wall_clock_limit"] for m in metrics)


def test_site_whose_offers_stop_goes_unavailable_and_gets_nothing(clean_run):
    stop_ms = parse_ts_ms(scenario.format_ts(scenario.DAY_START + STOP_AFTER_H * scenario.HOUR))
    trn = [r for r in clean_run[topics.SITE_COSTS] if r["site_id"] == STOP_SITE]
    before = [r for r in trn if parse_ts_ms(r["tick"]) < stop_ms and parse_ts_ms(r["tick"]) >= stop_ms - 3_600_000]
    after = [r for r in trn if parse_ts_ms(r["tick"]) >= stop_ms]
    assert before and all(r["available"] for r in before)
    assert after and all(not r["available"] and r["available_slots"] == 0 and r["price_per_mwh"] is None
                         for r in after)
    assert parse_ts_ms(after[0]["tick"]) == stop_ms  # unavailable at exactly the right tick
    late = [d for d in clean_run[topics.DISPATCH]
            if d.get("site_id") == STOP_SITE and parse_ts_ms(d["tick"]) >= stop_ms]
    assert late == []


def test_capacity_never_oversubscribed_and_cancelled_never_dispatched(clean_run, small_sites):
    from udfs.catalogue import load_catalogue

    cat = load_catalogue(small_sites)
    dispatched = [d for d in clean_run[topics.DISPATCH] if d["status"] == "dispatched"]
    free = {(r["site_id"], r["tick"]): r["available_slots"] for r in clean_run[topics.SITE_COSTS]}
    new_at: dict = defaultdict(int)
    for d in dispatched:
        new_at[(d["site_id"], d["tick"])] += d["slots"]
    for key, slots in new_at.items():
        assert slots <= free[key], key
    ticks = sorted({r["tick"] for r in clean_run[topics.SITE_COSTS]})
    for tick in ticks:
        t = parse_ts_ms(tick)
        for site in cat:
            running = sum(d["slots"] for d in dispatched if d["site_id"] == site.site_id
                          and parse_ts_ms(d["start_at"]) <= t < parse_ts_ms(d["end_at"]))
            assert running <= site.capacity_slots
    contested = [k for k, v in new_at.items() if v > 0 and free[k] - v < 10]
    assert contested, "the scenario should make sites fill up"
    cancelled = {d["job_id"] for d in clean_run[topics.DISPATCH] if d["status"] == "cancelled"}
    assert cancelled and not cancelled & {d["job_id"] for d in dispatched}


def test_metrics_per_tick_carry_baselines(clean_run):
    metrics = clean_run[topics.PIPELINE_METRICS]
    assert metrics and all({"objective", "objective_greedy", "objective_naive", "pending_jobs"} <= m.keys()
                           for m in metrics)
    assert all(m["objective"] <= m["objective_greedy"] + 1e-6 for m in metrics)


def test_chaos_replay_gives_identical_output(kafka_bootstrap, small_sites, tmp_path, clean_run):
    prefix = f"chaos{uuid.uuid4().hex[:6]}-"
    create_topics(kafka_bootstrap, [prefix + t for t in topics.ALL_TOPICS])
    sent = deliver(kafka_bootstrap, prefix, scenario_events(), chaos_seed=5)
    assert sum(sent.values()) > sum(len(v) for v in scenario_events().values())  # duplicates were sent
    run_job(kafka_bootstrap, prefix, small_sites, tmp_path)
    got = read_outputs(kafka_bootstrap, prefix)
    assert canonical(got[topics.SITE_COSTS]) == canonical(clean_run[topics.SITE_COSTS])
    assert canonical(got[topics.DISPATCH], comparable_decision) == canonical(clean_run[topics.DISPATCH],
                                                                             comparable_decision)
    dups = sum(m.get("duplicates", 0) for m in got[topics.PIPELINE_METRICS])
    assert dups == sum(sent.values()) - sum(len(v) for v in scenario_events().values())


BAD_RECORDS = [
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": 40', "not valid JSON"),
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": "cheap", "valid_from": "2018-07-01T05:00:00Z"}',
     "price_per_mwh: not a number"),
    # negative prices are valid market data; a unit error far below any market floor is not
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": -1e9, "valid_from": "2018-07-01T05:00:00Z"}',
     "price_per_mwh: -1e+09 is below -100000"),
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": NaN, "valid_from": "2018-07-01T05:00:00Z"}',
     "price_per_mwh: not a finite number"),
    (topics.PRICES, b"xyz", b'{"site_id": "xyz", "price_per_mwh": 40, "valid_from": "2018-07-01T05:00:00Z"}',
     "site_id: unknown site"),
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": 40}', "valid_from: missing"),
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": 40, "valid_from": "yesterday"}',
     "valid_from: not an ISO-8601 timestamp"),
    (topics.WEATHER, b"sto", b'{"site_id": "sto", "observed_at": "2018-07-01T05:00:00Z", "temp_c": 500,'
                             b' "rel_humidity": 50}', "temp_c: 500 is above 70"),
    (topics.WEATHER, b"sto", b'[1, 2, 3]', "expected a JSON object"),
    (topics.JOBS, b"j-bad", b'{"action": "submit", "job_id": "j-bad", "submitted_at": "2018-07-01T05:00:00Z",'
                            b' "compute_hours": 1, "slots": 1, "priority": 12}', "priority: 12 is outside 0..9"),
    (topics.JOBS, b"j-bad2", b'{"action": "launch", "job_id": "j-bad2", "submitted_at": "2018-07-01T05:00:00Z"}',
     "action:"),
    (topics.WEATHER, b"ams", b'{"site_id": "ams", "pad": "' + b"x" * 70_000 + b'"}', "payload: 70"),
]


def test_bad_input_goes_to_dead_letter_and_good_input_is_processed(kafka_bootstrap, small_sites, tmp_path,
                                                                   clean_run):
    prefix = f"bad{uuid.uuid4().hex[:6]}-"
    create_topics(kafka_bootstrap, [prefix + t for t in topics.ALL_TOPICS])
    deliver(kafka_bootstrap, prefix, scenario_events(), extra=[(t, k, v) for t, k, v, _ in BAD_RECORDS])
    run_job(kafka_bootstrap, prefix, small_sites, tmp_path)  # --restart-attempts 0: a crash fails this
    got = read_outputs(kafka_bootstrap, prefix)
    dead = got[topics.DEAD_LETTER]
    assert len(dead) == len(BAD_RECORDS)
    by_raw = {d["raw"][:200]: d for d in dead}
    for topic, key, value, reason in BAD_RECORDS:
        d = by_raw[value.decode()[:200]]
        assert d["topic"] == topic and d["key"] == key.decode()
        assert reason in d["error"], (reason, d["error"])
        assert isinstance(d["partition"], int) and isinstance(d["offset"], int)
        assert len(d["raw"]) <= 4096
    # every good record was still used: outputs equal the clean run's
    assert canonical(got[topics.SITE_COSTS]) == canonical(clean_run[topics.SITE_COSTS])
    assert canonical(got[topics.DISPATCH], comparable_decision) == canonical(clean_run[topics.DISPATCH],
                                                                             comparable_decision)


def shard_confined(events: dict[str, list[dict]], sites_file: str, shards: int) -> dict[str, list[dict]]:
    """The scenario with every submit's allow-list cut to the sites of the shard that decides it
    (udfs.sharding.job_shard): then the shards' problems are independent blocks of the global one."""
    site_shard = assign_shards(load_catalogue(sites_file), shards)
    jobs = []
    for rec in events[topics.JOBS]:
        if rec["action"] == "submit":
            shard = job_shard(rec, site_shard, shards)
            rec = dict(rec, sites=[s for s in rec.get("sites") or sorted(site_shard) if site_shard.get(s) == shard])
        jobs.append(rec)
    return {**events, topics.JOBS: jobs}


def test_two_region_shards_agree_with_the_single_dispatcher(kafka_bootstrap, small_sites, tmp_path):
    """--dispatch-shards 2: two dispatch subtasks, one per shard, give the same site-costs and
    decisions as one global dispatcher (the batch reference) when allow-lists stay in a shard."""
    events = shard_confined(scenario_events(), small_sites, 2)
    expected = reference_run(events, sites_file=small_sites)
    prefix = f"shard{uuid.uuid4().hex[:6]}-"
    create_topics(kafka_bootstrap, [prefix + t for t in topics.ALL_TOPICS])
    deliver(kafka_bootstrap, prefix, events)
    run_job(kafka_bootstrap, prefix, small_sites, tmp_path, extra=("--dispatch-shards", "2"))
    got = read_outputs(kafka_bootstrap, prefix)
    assert len(got[topics.DISPATCH]) > 20
    assert canonical(got[topics.SITE_COSTS]) == canonical(expected[topics.SITE_COSTS])
    assert canonical(got[topics.DISPATCH], comparable_decision) == canonical(expected[topics.DISPATCH],
                                                                             comparable_decision)
    # one pipeline-metrics record per shard and tick, each shard on its own subtask
    placement = {(m["shard"], m["subtask"]) for m in got[topics.PIPELINE_METRICS]}
    assert placement == {(0, 0), (1, 1)}
    decided_by = {d["job_id"]: d.get("site_id") for d in got[topics.DISPATCH] if d["status"] == "dispatched"}
    assert len({assign_shards(load_catalogue(small_sites), 2)[s] for s in decided_by.values()}) == 2


def test_ctrl_c_stops_the_foreground_job_within_seconds(tmp_path):
    """`make job-local` in a terminal: Ctrl-C (SIGINT to the process group) ends it, and the JVM with it,
    even when started from a shell that ignored SIGINT for its background jobs."""
    proc = subprocess.Popen([sys.executable, "-m", "flink_jobs.dispatch_job", "--bootstrap", "127.0.0.1:9",
                             "--state-dir", str(tmp_path / "ckpt")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        for line in proc.stdout:  # the job is built and running once it says so
            if line.startswith("dispatch job:"):
                break
        time.sleep(5)
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        rc = proc.wait(timeout=30)
        assert time.monotonic() - t0 < 5
        assert rc == 130
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
            os.killpg(proc.pid, signal.SIGKILL)
