"""udfs.tick_engine against the batch reference (tests/reference.py), without Flink: the engine is
fed a tick's site records in one batch, or one record at a time read ahead of the watermark as the
job's dispatch operator feeds it; in shuffled order, with duplicates and with a restore midway."""

from __future__ import annotations

import json
import pickle
import random
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests import scenario
from tests.reference import reference_run
from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.dispatch import DispatchConfig
from udfs.records import parse_input
from udfs.site_tracker import ACCEPTED, tick_at_or_after
from udfs.tick_engine import TickEngine

REPO = Path(__file__).resolve().parents[2]
TICK = 300_000


@pytest.fixture(scope="module")
def sites_file(tmp_path_factory) -> str:
    data = yaml.safe_load((REPO / "conf" / "sites.yaml").read_text())
    for site in data["sites"]:
        site["capacity_slots"] = 40  # jobs compete for slots
    path = tmp_path_factory.mktemp("sites") / "sites.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def events() -> dict[str, list[dict]]:
    return {topics.PRICES: scenario.offers(stop_site="trn", stop_after_h=16), topics.WEATHER: scenario.weather(),
            topics.JOBS: scenario.jobs()}


def engine_for(sites_file: str) -> TickEngine:
    return TickEngine(load_catalogue(sites_file), TICK, DispatchConfig(tick_len_ms=TICK, time_limit_s=2.0))


def run_engine(sites_file: str, seed: int | None = None, restore_at: int | None = None,
               extra_batch_rows: list[tuple] = ()) -> tuple[dict[str, list[dict]], TickEngine, list]:
    """Feed the scenario tick by tick; with a seed, shuffle each batch and add duplicates; with
    ``restore_at``, rebuild the engine from its state (as the Flink operator does) at that tick."""
    rng = random.Random(seed)
    catalogue = load_catalogue(sites_file)
    batches: dict[int, list[tuple]] = defaultdict(list)
    jobs: dict[int, list] = defaultdict(list)
    offset = 0
    for topic, recs in events().items():
        for rec in recs:
            raw = json.dumps(rec)
            tick = tick_at_or_after(scenario.event_ms(topic, rec), TICK)
            offset += 1
            if topic == topics.JOBS:
                jobs[tick].append((parse_input(topic, raw, catalogue), (0, offset, raw)))
                continue
            row = (topic, rec["site_id"], raw, "0", str(offset))
            batches[tick].append(row)
            if seed is not None and rng.random() < 0.2:
                batches[tick].append(row)  # a re-delivered copy
    for row in extra_batch_rows:
        batches[min(batches)].append(row)
    engine = engine_for(sites_file)
    snapshot, log, dead = None, [], []
    out: dict[str, list[dict]] = {topics.SITE_COSTS: [], topics.DISPATCH: [], topics.PIPELINE_METRICS: []}
    last = max(batches) + 48 * TICK
    tick = min(batches)
    while tick <= last:
        if restore_at is not None and tick == restore_at:
            saved = [pickle.loads(pickle.dumps(s)) for s in (engine.core_state(), engine.dispatcher.to_state())]
            inbox = pickle.loads(pickle.dumps(dict(engine.inbox)))
            engine = engine_for(sites_file)
            engine.restore(*saved, snapshot, log, inbox)
        rows = batches.get(tick, [])
        if seed is not None:
            rng.shuffle(rows)
        if rows:
            dead += engine.add_site_records(rows)
            log.append((rows, None, None))
        for parsed, meta in jobs.get(tick, []):
            engine.add_job_event(parsed, meta, watermark_ms=tick - TICK)
        if restore_at is not None and tick == restore_at - 20 * TICK:  # a snapshot, then a log from here
            snapshot = pickle.loads(pickle.dumps(engine.trackers))
            log = [(engine.waiting_rows(dropped=lambda tag: True), None, None)]
        for result in engine.advance(tick):
            out[topics.SITE_COSTS] += result.output.site_costs
            out[topics.DISPATCH] += result.output.decisions
            out[topics.PIPELINE_METRICS].append(result.output.metrics)
        tick += TICK
    return out, engine, dead


def canonical(recs: list[dict], drop: tuple[str, ...] = ()) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in recs)


def test_engine_reproduces_the_reference(sites_file):
    expected = reference_run(events(), sites_file=sites_file)
    out, _, dead = run_engine(sites_file)
    assert not dead
    assert canonical(out[topics.SITE_COSTS]) == canonical(expected[topics.SITE_COSTS])
    assert canonical(out[topics.DISPATCH], ("solve_ms", "solver")) == \
        canonical(expected[topics.DISPATCH], ("solve_ms", "solver"))
    assert len(out[topics.PIPELINE_METRICS]) == len(expected[topics.PIPELINE_METRICS])


def test_shuffled_batches_with_duplicates_give_the_same_output_and_count_them(sites_file):
    clean, _, _ = run_engine(sites_file)
    noisy, _, _ = run_engine(sites_file, seed=5)
    assert canonical(noisy[topics.SITE_COSTS]) == canonical(clean[topics.SITE_COSTS])
    assert canonical(noisy[topics.DISPATCH], ("solve_ms",)) == canonical(clean[topics.DISPATCH], ("solve_ms",))
    copies = sum(m.get("duplicates", 0) for m in noisy[topics.PIPELINE_METRICS])
    assert sum(m.get("duplicates", 0) for m in clean[topics.PIPELINE_METRICS]) == 0
    assert copies == expected_copies(seed=5)


def expected_copies(seed: int) -> int:
    """How many re-delivered copies run_engine(seed=...) adds (the same draws, counted)."""
    rng = random.Random(seed)
    return sum(1 for topic, recs in events().items() if topic != topics.JOBS for _ in recs if rng.random() < 0.2)


def test_restore_from_snapshot_and_log_continues_identically(sites_file):
    clean, _, _ = run_engine(sites_file)
    restore_at = tick_at_or_after(scenario.DAY_START + 10 * scenario.HOUR, TICK)
    restored, _, _ = run_engine(sites_file, restore_at=restore_at)
    assert canonical(restored[topics.SITE_COSTS]) == canonical(clean[topics.SITE_COSTS])
    assert canonical(restored[topics.DISPATCH], ("solve_ms",)) == canonical(clean[topics.DISPATCH], ("solve_ms",))


def test_bad_records_in_a_batch_are_dead_lettered_with_where_they_were(sites_file):
    bad = [(topics.PRICES, "ams", '{"site_id": "ams", "price_per_mwh": "x", "valid_from": "2018-07-01T00:00:00Z"}',
            "3", "77"),
           (topics.WEATHER, "zzz", "not json", "1", "5")]
    clean, _, _ = run_engine(sites_file)
    out, _, dead = run_engine(sites_file, extra_batch_rows=bad)
    assert [(d.topic, d.partition, d.offset, d.key) for d in dead] == \
        [(topics.PRICES, "3", "77", "ams"), (topics.WEATHER, "1", "5", "zzz")]
    assert dead[0].error == "price_per_mwh: not a number"
    assert canonical(out[topics.SITE_COSTS]) == canonical(clean[topics.SITE_COSTS])
    assert sum(m.get("dead_letters", 0) for m in out[topics.PIPELINE_METRICS]) == 2


def test_a_late_offer_still_in_force_applies_at_the_next_tick_and_a_stale_one_is_counted_late(sites_file):
    engine = engine_for(sites_file)
    t0 = scenario.DAY_START
    offer = {"site_id": "ams", "price_per_mwh": 50.0, "valid_from": "2018-07-01T00:00:00Z",
             "valid_to": "2018-07-01T01:00:00Z"}
    engine.add_site_records([(topics.PRICES, "ams", json.dumps(offer), "0", "1")])
    assert [r.tick_ms - t0 for r in engine.advance(t0 + 5 * 60_000)] == [0, 5 * 60_000]
    late_useful = dict(offer, price_per_mwh=60.0, valid_from="2018-07-01T00:05:00Z")
    stale = dict(offer, price_per_mwh=70.0, valid_from="2018-06-30T22:00:00Z", valid_to="2018-06-30T23:00:00Z")
    rows = [(topics.PRICES, "ams", json.dumps(r), "0", str(i)) for i, r in enumerate((late_useful, stale), 2)]
    assert engine.add_site_records(rows, watermark_ms=t0 + 10 * 60_000) == []
    results = engine.advance(t0 + 10 * 60_000)
    prices = [(r.tick_ms - t0, [c["price_per_mwh"] for c in r.output.site_costs]) for r in results]
    assert prices == [(10 * 60_000, [60.0])]  # its own tick (00:05) had run before it came
    assert results[0].output.metrics["late_events"] == 1


def run_engine_per_record(sites_file: str, read_ahead_ticks: int, restore_at: int | None = None,
                          seed: int = 3) -> tuple[dict[str, list[dict]], list]:
    """Feed the engine as flink_jobs.operators.TickOperator does: one record at a time, read
    ``read_ahead_ticks`` ahead of the watermark (a backlog), each classified against it; accepted
    site records logged by tag, the applied ones dropped from the log at a tracker snapshot every
    7 ticks; with ``restore_at``, a new engine from that state. Returns the output and the timer
    ticks the engine asked for (take_new_due_ticks)."""
    rng = random.Random(seed)
    catalogue = load_catalogue(sites_file)
    arrivals = []
    for topic, recs in events().items():
        for i, rec in enumerate(recs):
            arrivals.append((scenario.event_ms(topic, rec), rng.random(), topic, json.dumps(rec), i))
    arrivals.sort()
    engine = engine_for(sites_file)
    log: dict[int, tuple] = {}
    snapshot, seq, timers = None, 0, []
    out: dict[str, list[dict]] = {topics.SITE_COSTS: [], topics.DISPATCH: [], topics.PIPELINE_METRICS: []}
    watermark = min(a[0] for a in arrivals) - TICK
    pos, ticks_run = 0, 0
    while pos < len(arrivals) or engine.next_due() is not None:
        horizon = watermark + read_ahead_ticks * TICK
        while pos < len(arrivals) and arrivals[pos][0] <= horizon:
            event_ms, _, topic, raw, i = arrivals[pos]
            pos += 1
            if topic == topics.JOBS:
                engine.add_job_event(parse_input(topic, raw, catalogue), (0, i, raw), watermark)
                timers += engine.take_new_due_ticks()
                continue
            row = (topic, json.loads(raw)["site_id"], raw, 0, i)
            if engine.add_site_record(row, watermark, tag=seq) == ACCEPTED:
                log[seq] = (row, watermark)
                seq += 1
            timers += engine.take_new_due_ticks()
        watermark += TICK
        if pos >= len(arrivals):
            watermark += 48 * TICK
        for result in engine.advance(watermark):
            out[topics.SITE_COSTS] += result.output.site_costs
            out[topics.DISPATCH] += result.output.decisions
            out[topics.PIPELINE_METRICS].append(result.output.metrics)
            ticks_run += 1
            if ticks_run % 7 == 0:
                snapshot = pickle.loads(pickle.dumps(engine.trackers))
                for tag in engine.take_applied_tags():
                    del log[tag]
        if restore_at is not None and watermark >= restore_at:
            restore_at = None
            saved = [pickle.loads(pickle.dumps(s)) for s in (engine.core_state(), engine.dispatcher.to_state())]
            inbox = pickle.loads(pickle.dumps(dict(engine.inbox)))
            engine = engine_for(sites_file)
            engine.restore(*saved, snapshot, [([row], wm, tag) for tag, (row, wm) in sorted(log.items())], inbox)
        if pos >= len(arrivals) and not engine.next_due():
            break
    return out, timers


@pytest.mark.parametrize("read_ahead_ticks", [1, 30])
def test_records_one_by_one_read_ahead_and_restored_from_the_log_give_the_reference(sites_file, read_ahead_ticks):
    clean, _, _ = run_engine(sites_file)
    restore_at = tick_at_or_after(scenario.DAY_START + 10 * scenario.HOUR, TICK)
    out, timers = run_engine_per_record(sites_file, read_ahead_ticks, restore_at=restore_at)
    assert canonical(out[topics.SITE_COSTS]) == canonical(clean[topics.SITE_COSTS])
    assert canonical(out[topics.DISPATCH], ("solve_ms",)) == canonical(clean[topics.DISPATCH], ("solve_ms",))
    # every tick a record or job event made due was asked for as a timer (the operator's only
    # wake-ups besides next_due() after a run)
    first_ticks = {tick_at_or_after(scenario.event_ms(t, r), TICK) for t, recs in events().items() for r in recs}
    assert first_ticks <= set(timers)


def test_a_day_ahead_offer_published_the_day_before_moves_no_watermark_and_is_used_by_the_plan():
    from udfs.timeutil import format_ts, parse_ts_ms

    day1, hour = parse_ts_ms("2018-07-01T00:00:00Z"), 3_600_000
    published = day1 + 10 * hour + 45 * 60_000  # the day-ahead auction's results, D-1 12:45 CEST
    prices = [{"site_id": "ams", "price_per_mwh": 50.0, "valid_from": format_ts(day1 + h * hour),
               "valid_to": format_ts(day1 + (h + 1) * hour)} for h in range(24)]
    # tomorrow: 50 EUR/MWh except a cheap 03:00-05:00, all known since today 10:45
    prices += [{"site_id": "ams", "price_per_mwh": 5.0 if h in (3, 4) else 50.0, "published_at": format_ts(published),
                "valid_from": format_ts(day1 + (24 + h) * hour), "valid_to": format_ts(day1 + (25 + h) * hour)}
               for h in range(24)]
    weather = [{"site_id": "ams", "observed_at": format_ts(day1 + h * hour), "temp_c": 15.0}  # no humidity: default
               for h in range(48)]
    job = {"action": "submit", "job_id": "night", "submitted_at": format_ts(day1 + 20 * hour), "compute_hours": 2.0,
           "slots": 1, "priority": 9, "sites": ["ams"]}
    catalogue = load_catalogue()
    parsed = parse_input(topics.PRICES, json.dumps(prices[30]), catalogue)
    assert parsed.event_ms == published  # event time is the publication: a day-ahead offer moves no watermark
    out = reference_run({topics.PRICES: prices, topics.WEATHER: weather, topics.JOBS: [job]})
    (decision,) = [d for d in out[topics.DISPATCH] if d["job_id"] == "night"]
    assert decision["status"] == "dispatched" and decision["start_at"] == format_ts(day1 + 27 * hour)
    assert decision["expected_cost_forecast"] == 0.0  # every hour of the run was known
    assert decision["expected_cost"] < decision["greedy_cost"] / 5  # 5 instead of 50 EUR/MWh
