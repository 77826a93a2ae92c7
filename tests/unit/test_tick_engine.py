"""udfs.tick_engine against the batch reference (tests/reference.py), without Flink: the engine is
fed, one call per tick, the site ticks the JVM's SiteTicker would send (built here from the
reference's own site histories) and the job events, as TickAssembler hands them over: each tick's
records in shuffled order, with a restore from state midway. SiteTicker and TickAssembler
themselves are tested under Flink's operator test harness (tests/unit/test_jvm_operators.py)."""

from __future__ import annotations

import json
import pickle
import random
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from bench.offer_rules import Offer, OfferBook
from tests import scenario
from tests.reference import reference_inputs, reference_run
from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.dispatcher import SiteInputs, site_cost_rows
from udfs.optimizer import DispatchConfig
from udfs.records import assembled_tick
from udfs.tick_engine import STATE_VERSION, TickEngine
from udfs.timeutil import tick_at_or_after

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


def site_tick(inp: SiteInputs, **counters) -> dict:
    """The row SiteTicker sends for these inputs. It sends each offer once, when it changes; here
    every tick sends all known offers again, which the engine must take as the same book."""
    return {"site_id": inp.site_id, "tick": inp.tick_ms, "tick_inputs": True, "price_per_mwh": inp.price_per_mwh,
            "offer_valid_to": inp.offer_valid_to_ms, "currency": inp.currency, "temp_c": inp.temp_c,
            "rel_humidity": inp.rel_humidity, "online": inp.online, "capacity_slots": inp.capacity_slots,
            "offers": [[start, end, price, inp.tick_ms] for start, end, price in inp.known_offers()],
            "late_events": 0, "duplicates": 0, "dead_letters": 0, **counters}


def book_of(*offers: tuple[int, float], known_at: int | None = None) -> OfferBook:
    """A book of hourly offers (valid_from, price), published at ``known_at`` if given."""
    return OfferBook(3_600_000, [Offer(start, price, start + 3_600_000, published_ms=known_at)
                                 for start, price in offers])


def job_record(parsed, offset: int = 0) -> tuple:
    """A job event as JobRecords (Java) hands it on: its envelope as JSON text."""
    return (topics.JOBS, parsed.key, json.dumps({"job": parsed.record, "raw": parsed.raw}), 0, offset)


def run_engine(sites_file: str, seed: int | None = None, restore_at: int | None = None) -> dict[str, list[dict]]:
    """One engine call per tick with that tick's records (in shuffled order with a seed), each
    allowed to run up to the tick before the next one, as TickAssembler sends them; with
    ``restore_at`` the engine is rebuilt there from its pickled state (the offer books as the
    operator keeps them: each tick's changes applied to a map)."""
    rng = random.Random(seed)
    inputs_by_tick, job_events = reference_inputs(events(), TICK, sites_file)
    sites_at: dict[int, list[dict]] = defaultdict(list)
    jobs_at: dict[int, list[tuple]] = defaultdict(list)
    for tick, sites in inputs_by_tick.items():
        sites_at[tick] += [site_tick(inp) for inp in sites.values()]
    for n, parsed in enumerate(job_events):
        jobs_at[tick_at_or_after(parsed.event_ms, TICK)].append(job_record(parsed, n))
    engine = engine_for(sites_file)
    books: dict[tuple[str, int], tuple] = {}  # the offer-book map state, as the operator writes it
    out: dict[str, list[dict]] = {topics.SITE_COSTS: [], topics.DISPATCH: [], topics.PIPELINE_METRICS: []}
    ticks = sorted({*sites_at, *jobs_at})
    for i, tick in enumerate(ticks):
        if seed is not None:
            rng.shuffle(sites_at[tick])
            rng.shuffle(jobs_at[tick])
        up_to = ticks[i + 1] - TICK if i + 1 < len(ticks) else tick + 48 * TICK
        for result in engine.run(tick, up_to, sites_at[tick], jobs_at[tick]):
            out[topics.SITE_COSTS] += site_cost_rows(result.output.site_costs)
            out[topics.DISPATCH] += result.output.decisions
            out[topics.PIPELINE_METRICS].append(result.output.metrics)
        for entry, offer in engine.take_book_changes().items():
            if offer is None:
                books.pop(entry, None)
            else:
                books[entry] = offer
        if restore_at is not None and tick >= restore_at:
            restore_at = None
            state = pickle.loads(pickle.dumps((engine.core_state(), engine.dispatcher.to_state(),
                                               list(books.items()))))
            engine = engine_for(sites_file)
            engine.restore(*state)
    return out


def canonical(recs: list[dict], drop: tuple[str, ...] = ()) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in recs)


@pytest.fixture(scope="module")
def expected(sites_file):
    return reference_run(events(), sites_file=sites_file)


@pytest.mark.parametrize("seed", [None, 5])
def test_engine_reproduces_the_reference(sites_file, expected, seed):
    out = run_engine(sites_file, seed)
    assert canonical(out[topics.SITE_COSTS]) == canonical(expected[topics.SITE_COSTS])
    assert canonical(out[topics.DISPATCH], ("solve_ms", "solver")) == \
        canonical(expected[topics.DISPATCH], ("solve_ms", "solver"))
    assert len(out[topics.PIPELINE_METRICS]) == len(expected[topics.PIPELINE_METRICS])


def test_a_restore_from_state_continues_identically(sites_file, expected):
    restore_at = tick_at_or_after(scenario.DAY_START + 10 * scenario.HOUR, TICK)
    out = run_engine(sites_file, seed=3, restore_at=restore_at)
    assert canonical(out[topics.SITE_COSTS]) == canonical(expected[topics.SITE_COSTS])
    assert canonical(out[topics.DISPATCH], ("solve_ms", "solver")) == \
        canonical(expected[topics.DISPATCH], ("solve_ms", "solver"))


def test_counters_ride_to_the_next_tick_and_a_counters_row_makes_no_tick(sites_file):
    engine = engine_for(sites_file)
    t0 = scenario.DAY_START
    inp = SiteInputs("ams", t0, 50.0, t0 + 3_600_000, "EUR", 20.0, 50.0, True, None, book_of((t0, 50.0)))
    counters = {"site_id": "ams", "tick": t0 - TICK, "tick_inputs": False, "late_events": 2, "duplicates": 1,
                "dead_letters": 4}
    assert engine.run(t0 - TICK, t0 - TICK, [counters], []) == []  # counters alone run no tick
    (result,) = engine.run(t0, t0 + TICK, [site_tick(inp, duplicates=1)], [])
    metrics = result.output.metrics
    assert (metrics["late_events"], metrics["duplicates"], metrics["dead_letters"]) == (2, 2, 4)
    (cost,) = site_cost_rows(result.output.site_costs)
    assert cost["price_per_mwh"] == 50.0 and cost["available"] is True
    # a site tick for a tick that already ran (the job records' watermark ran ahead while the site
    # topics were idle): its offers reach the book, the tick is counted late, nothing fails
    later = SiteInputs("ams", t0, 50.0, t0 + 3_600_000, "EUR", 20.0, 50.0, True, None,
                       book_of((t0 + 3_600_000, 60.0), known_at=t0))
    assert engine.run(t0 + 2 * TICK, t0 + 2 * TICK, [site_tick(later)], []) == []
    assert engine.counts == {"late_site_ticks": 1}
    assert [start for start, *_ in engine.books["ams"].to_state()] == [t0, t0 + 3_600_000]


def test_a_late_job_event_is_decided_at_the_tick_it_joined_and_counted(sites_file):
    engine = engine_for(sites_file)
    t0 = scenario.DAY_START
    inp = SiteInputs("ams", t0 + TICK, 50.0, t0 + 3_600_000, "EUR", 20.0, 50.0, True, None, book_of((t0, 50.0)))
    job = {"job_id": "late", "action": "submit", "submitted_at_ms": t0 - TICK, "compute_hours": 1.0, "slots": 1,
           "priority": 0, "deadline_ms": None, "sites": ["ams"]}
    # TickAssembler put it in the next tick: its own (t0 - 5 min) was behind the watermark
    late = (topics.JOBS, "late", json.dumps({"job": job, "raw": "{}"}), 0, 7)
    (result,) = engine.run(t0 + TICK, t0 + TICK, [site_tick(inp)], [late])
    assert result.output.metrics["late_jobs"] == 1
    (decision,) = result.output.decisions
    assert decision["job_id"] == "late" and decision["status"] == "dispatched" and decision["site_id"] == "ams"
    # a dead-lettered job record's stand-in counts in the next tick's dead letters
    inp2 = SiteInputs("ams", t0 + 2 * TICK, 50.0, t0 + 3_600_000, "EUR", 20.0, 50.0, True, None,
                      book_of((t0, 50.0)))
    (result,) = engine.run(t0 + 2 * TICK, t0 + 2 * TICK, [site_tick(inp2)], [(topics.DEAD_JOB, "x", None, 0, 8)])
    assert result.output.metrics["dead_letters"] == 1


def test_a_deadline_tick_runs_between_the_assembled_ticks_up_to_where_it_may(sites_file):
    engine = engine_for(sites_file)
    t0 = scenario.DAY_START
    inp = SiteInputs("ams", t0, 50.0, t0 + 3_600_000, "EUR", 20.0, 50.0, False, None, book_of((t0, 50.0)))
    job = {"job_id": "soon", "action": "submit", "submitted_at_ms": t0, "compute_hours": 1.0, "slots": 1,
           "priority": 0, "deadline_ms": t0 + 3 * TICK, "sites": ["ams"]}
    # the site is offline: the job waits, and its last chance (t0 + 15 min) is a tick of the
    # dispatcher's own, run once the assembler lets it run that far and not before
    record = (topics.JOBS, "soon", json.dumps({"job": job, "raw": "{}"}), 0, 1)
    assert [r.tick_ms for r in engine.run(t0, t0 + TICK, [site_tick(inp)], [record])] == [t0]
    assert engine.run(t0 + 2 * TICK, t0 + 2 * TICK, [], []) == []
    (result,) = engine.run(t0 + 3 * TICK, t0 + 10 * TICK, [], [])
    assert result.tick_ms == t0 + 3 * TICK
    assert [d["status"] for d in result.output.decisions] == ["missed-deadline"]


def test_the_offer_book_keeps_what_the_site_ticks_sent_a_day_back(sites_file):
    engine = engine_for(sites_file)
    hour, t0 = 3_600_000, scenario.DAY_START
    for h in range(30):  # one new hourly offer per hour, each sent once
        t = t0 + h * hour
        inp = SiteInputs("ams", t, 40.0 + h, t + hour, "EUR", 20.0, 50.0, True, None, book_of((t, 40.0 + h)))
        engine.run(t, t, [site_tick(inp)], [])
    book = engine.books["ams"]
    last = t0 + 29 * hour
    # kept: the newest offer starting at or before last - 25 h, and everything after it
    assert [start for start, *_ in book.to_state()] == [t0 + h * hour for h in range(4, 30)]
    assert book.known(last, last - 25 * hour)[-1] == (last, last + hour, 69.0)


def test_state_of_another_version_fails_with_one_line(sites_file):
    engine = engine_for(sites_file)
    with pytest.raises(ValueError, match=f"version 2, this job reads version {STATE_VERSION}") as err:
        engine.restore({"last_tick": 0, "chain": {}, "counts": {}}, None)
    assert "\n" not in str(err.value)


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
    # (the job takes the publication as the offer's event time, so it moves no watermark: SiteTickerTest)
    out = reference_run({topics.PRICES: prices, topics.WEATHER: weather, topics.JOBS: [job]})
    (decision,) = [d for d in out[topics.DISPATCH] if d["job_id"] == "night"]
    assert decision["status"] == "dispatched" and decision["start_at"] == format_ts(day1 + 27 * hour)
    assert decision["expected_cost_forecast"] == 0.0  # every hour of the run was known
    assert decision["expected_cost"] < decision["greedy_cost"] / 5  # 5 instead of 50 EUR/MWh


def test_an_assembled_tick_row_reads_as_site_ticks_and_job_records():
    # TickAssembler's row (flink_jobs.elements.TICK_TYPE): tick, up_to, 13 site columns, 5 offer
    # columns (the first site has two offers, the second one), 5 job columns
    t0 = scenario.DAY_START
    sites = [["ams", "trn"], [t0, t0], [True, False], [50.0, None], [t0 + 3_600_000, None], ["EUR", ""],
             [20.0, None], [60.0, None], [True, True], [None, 12], [0, 1], [2, 0], [0, 3]]
    offers = [[0, 0, 1], [t0, t0 + 3_600_000, t0], [None, None, t0 + 900_000], [50.0, 55.0, 70.0],
              [None, t0 - 3_600_000, None]]
    jobs = [["jobs"], ["j1"], ['{"job": {}, "raw": ""}'], [0], [9]]
    tick, up_to, site_ticks, job_records = assembled_tick([t0, t0 + TICK, *sites, *offers, *jobs])
    assert (tick, up_to) == (t0, t0 + TICK)
    assert [s["site_id"] for s in site_ticks] == ["ams", "trn"]
    assert site_ticks[0]["offers"] == [(t0, None, 50.0, None), (t0 + 3_600_000, None, 55.0, t0 - 3_600_000)]
    assert site_ticks[1]["offers"] == [(t0, t0 + 900_000, 70.0, None)]
    assert (site_ticks[1]["capacity_slots"], site_ticks[1]["late_events"], site_ticks[1]["dead_letters"]) == (12, 1, 3)
    assert site_ticks[0]["price_per_mwh"] == 50.0 and site_ticks[1]["tick_inputs"] is False
    assert job_records == [("jobs", "j1", '{"job": {}, "raw": ""}', 0, 9)]
