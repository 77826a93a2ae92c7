"""The page's saving is the benchmark's (issue 27): the dispatcher's like-for-like figures (its
plan and its shadow greedy, each charged by udfs.ledger at the offers that held) equal
bench.bench_money's closed loops of the plan ("milp") and greedy on the same real sample span,
jobs and capacities."""

from __future__ import annotations

import pytest
import yaml

from bench.bench_money import REPO, load_month, run_policy
from bench.site_history import read_job_record
from sources.jobs import generate_jobs
from udfs.catalogue import load_catalogue
from udfs.dispatcher import Dispatcher, job_from_record
from udfs.objective import HOUR_MS
from udfs.optimizer import DispatchConfig
from udfs.timeutil import parse_ts_ms

pytestmark = pytest.mark.slow

START = parse_ts_ms("2018-07-02T00:00:00Z")
TICK = 300_000


def scenario(tmp_path):
    """Two days of the real sample at every site with capacities x0.3 (so greedy has to wait at
    times); jobs submitted in the first 12 h that run at most 6 h, so every job placed has finished
    by the end and both sides count the same jobs."""
    data = yaml.safe_load((REPO / "conf" / "sites.yaml").read_text())
    for site in data["sites"]:
        site["capacity_slots"] = int(site["capacity_slots"] * 0.3)
    (tmp_path / "sites.yaml").write_text(yaml.safe_dump(data))
    catalogue = load_catalogue(tmp_path / "sites.yaml")
    recs = [r for r in generate_jobs(5, 400, START, 30.0, catalogue.site_ids, cancel_fraction=0.0)
            if r["action"] == "submit" and r["compute_hours"] / r["slots"] <= 6.0
            and r["submitted_at"] < "2018-07-02T12:00:00Z"]
    events = [read_job_record(r) for r in recs]
    month = load_month(catalogue, START, START + 2 * 24 * HOUR_MS, TICK, sorted(catalogue.site_ids))
    return catalogue, events, month


def test_dispatcher_figures_equal_the_benchmarks_closed_loops(tmp_path):
    catalogue, events, month = scenario(tmp_path)
    cfg = DispatchConfig(tick_len_ms=TICK)
    dispatcher = Dispatcher(catalogue, cfg)
    i, metrics = 0, None
    for t in month.ticks_in_month:
        due = []
        while i < len(events) and events[i].event_ms <= t:
            due.append(events[i])
            i += 1
        metrics = dispatcher.run_tick(t, due, month.inputs[t]).metrics
    jobs = [job_from_record(e.record) for e in events]
    home = sorted(catalogue.site_ids)
    plan = run_policy("milp", jobs, month, cfg, 1.0, home)
    greedy = run_policy("greedy", jobs, month, cfg, 1.0, home)
    assert metrics["running_jobs"] == metrics["shadow_running_jobs"] == 0  # every placed job has finished
    assert greedy.placed == metrics["shadow_completed_jobs"] > 100
    assert greedy.missed == metrics["shadow_missed_deadline"]
    assert metrics["shadow_completed_compute_hours"] == pytest.approx(greedy.compute_hours, rel=1e-6)
    assert metrics["shadow_completed_realised_cost"] == pytest.approx(greedy.cost, rel=1e-6)
    assert plan.placed == metrics["completed_jobs"]
    assert metrics["completed_compute_hours"] == pytest.approx(plan.compute_hours, rel=1e-6)
    assert metrics["completed_realised_cost"] == pytest.approx(plan.cost, rel=1e-6)
    # and so the saving per compute-hour the page shows is the benchmark's "EUR/ch vs greedy"
    page = 1 - (metrics["completed_realised_cost"] / metrics["completed_compute_hours"]) / (
        metrics["shadow_completed_realised_cost"] / metrics["shadow_completed_compute_hours"])
    bench = 1 - (plan.cost / plan.compute_hours) / (greedy.cost / greedy.compute_hours)
    assert page == pytest.approx(bench, abs=1e-6)
