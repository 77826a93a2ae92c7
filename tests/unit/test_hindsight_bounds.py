"""Hindsight bounds (highspy): brute-force optimality on small instances, bound ordering, plan checks."""

from __future__ import annotations

import itertools
import random

import pytest

from bench.hindsight import (
    hindsight_blocked,
    hindsight_bounds,
    hindsight_optimum,
    plan_cost,
    plan_violations,
)
from udfs.objective import DEFAULT_TICK_MS, HOUR_MS, Job, SiteState

T = 1_530_439_200_000
TICK = DEFAULT_TICK_MS


def random_instance(seed: int, n_jobs: int = 4, n_ticks: int = 5, sites=("a", "b")):
    rng = random.Random(seed)
    timeline = {
        T + i * TICK: [SiteState(s, round(rng.uniform(-0.01, 0.05), 4), rng.choice([1, 2, 3])) for s in sites]
        for i in range(n_ticks)
    }
    jobs = []
    for n in range(n_jobs):
        slots = rng.choice([1, 2])
        ticks = rng.choice([1, 2, 3])
        sub = T + rng.randrange(n_ticks) * TICK
        deadline = None if rng.random() < 0.4 else sub + rng.randrange(3) * TICK
        allow = None if rng.random() < 0.7 else (rng.choice(sites),)
        jobs.append(Job(f"j{n}", slots * ticks * TICK / HOUR_MS, slots, 5, deadline, allow, sub))
    return jobs, timeline


def brute_force(jobs, timeline) -> tuple[int, float]:
    """(most jobs placeable, least cost among plans placing that many): every plan enumerated."""
    ticks = sorted(timeline)
    options = []
    for job in jobs:
        opts = [None]
        for t in ticks:
            if t < job.submitted_ms or (job.deadline_ms is not None and t > job.deadline_ms):
                continue
            for st in timeline[t]:
                if job.allows(st.site_id) and job.slots <= st.available_slots:
                    opts.append((st.site_id, t))
        options.append(opts)
    best = (0, 0.0)
    for combo in itertools.product(*options):
        plan = {j.job_id: c for j, c in zip(jobs, combo, strict=True) if c is not None}
        if plan_violations(jobs, timeline, plan):
            continue
        key = (-len(plan), plan_cost(jobs, timeline, plan))
        if key < (-best[0], best[1]) or (best == (0, 0.0) and plan):
            best = (len(plan), key[1])
    return best


@pytest.mark.parametrize("seed", range(12))
def test_full_model_and_bounds_match_brute_force(seed: int) -> None:
    jobs, tl = random_instance(seed)
    n_best, c_best = brute_force(jobs, tl)
    exact = hindsight_optimum(jobs, tl)
    if n_best == 0:
        return
    assert exact.status == "optimal"
    assert len(exact.placements) == n_best
    assert exact.total_cost == pytest.approx(c_best, abs=1e-9)
    assert not plan_violations(jobs, tl, exact.placements)
    b = hindsight_bounds(jobs, tl, mip_time_limit_s=10)
    if len(b.placements) == len(jobs) == n_best:  # the bounds speak of plans placing every job
        assert b.lower_bound <= c_best + 1e-9 <= b.upper_bound + 2e-9
        assert not plan_violations(jobs, tl, b.placements)
        assert plan_cost(jobs, tl, b.placements) == pytest.approx(b.upper_bound)


def test_lower_bound_is_below_any_feasible_plan_and_tight_when_capacity_binds() -> None:
    # three 1-slot jobs, a 1-slot site, one cheap tick: only one job gets it
    tl = {T: [SiteState("x", 0.001, 1)], T + TICK: [SiteState("x", 0.05, 1)], T + 2 * TICK: [SiteState("x", 0.03, 1)]}
    jobs = [Job(f"j{i}", TICK / HOUR_MS, 1, 5, None, None, T) for i in range(3)]
    b = hindsight_bounds(jobs, tl)
    h = TICK / HOUR_MS
    assert b.converged and b.status == "optimal"
    assert b.lower_bound == pytest.approx(h * (0.001 + 0.05 + 0.03))
    assert b.upper_bound == pytest.approx(b.lower_bound)
    # an online-style plan (all at the earliest ticks in submission order) is never below it
    online = {"j0": ("x", T), "j1": ("x", T + TICK), "j2": ("x", T + 2 * TICK)}
    assert not plan_violations(jobs, tl, online)
    assert b.lower_bound <= plan_cost(jobs, tl, online) + 1e-12


def test_hindsight_never_above_a_greedy_online_plan_on_a_small_replay() -> None:
    """A small closed loop like bench_money's: each tick, pending jobs to the cheapest site with
    room. Its plan is feasible in the hindsight model, so the lower bound is at most its cost."""
    rng = random.Random(3)
    n_ticks = 24
    tl = {T + i * TICK: [SiteState(s, round(rng.uniform(0.0, 0.05), 4), 4) for s in ("a", "b", "c")]
          for i in range(n_ticks)}
    jobs = [Job(f"j{n:02d}", rng.choice([1, 2, 3]) * TICK / HOUR_MS * 2, 2, 5,
                None if n % 3 == 0 else T + (n // 2 + 6) * TICK, None, T + (n // 2) * TICK) for n in range(30)]
    running: list[tuple[str, int, int]] = []
    plan: dict[str, tuple[str, int]] = {}
    pending: list[Job] = []
    for t in sorted(tl):
        pending += [j for j in jobs if j.submitted_ms == t]
        running = [r for r in running if r[2] > t]
        for job in sorted(pending, key=lambda j: j.job_id):
            free = {s.site_id: s.available_slots - sum(r[1] for r in running if r[0] == s.site_id) for s in tl[t]}
            ok = [s for s in tl[t] if free[s.site_id] >= job.slots]
            if ok and (job.deadline_ms is None or t <= job.deadline_ms):
                site = min(ok, key=lambda s: s.cost_per_compute_hour)
                plan[job.job_id] = (site.site_id, t)
                running.append((site.site_id, job.slots, t + job.duration_ms))
                pending.remove(job)
    placed = [j for j in jobs if j.job_id in plan]
    assert not plan_violations(placed, tl, plan)
    b = hindsight_bounds(placed, tl)
    online = plan_cost(placed, tl, plan)
    assert b.status in ("optimal", "bounds") and len(b.placements) == len(placed)
    assert b.lower_bound <= b.upper_bound + 1e-9 <= online + 1e-9
    blk = hindsight_blocked(placed, tl, block_ms=8 * TICK, extend_ms=6 * TICK)
    assert not plan_violations(placed, tl, blk.placements)
    assert blk.lower_bound <= b.lower_bound + 1e-9  # a Lagrangian bound never beats the LP optimum
    assert blk.upper_bound >= b.lower_bound - 1e-9
    if len(blk.placements) == len(placed):
        assert plan_cost(placed, tl, blk.placements) == pytest.approx(blk.upper_bound)


def test_plan_violations_reports_overuse_and_bad_starts() -> None:
    tl = {T + i * TICK: [SiteState("x", 0.01, 2)] for i in range(3)}
    jobs = [Job("a", 2 * 2 * TICK / HOUR_MS, 2, 5, None, None, T), Job("b", TICK / HOUR_MS, 1, 5, T, None, T)]
    # b starts after its deadline
    assert plan_violations(jobs, tl, {"a": ("x", T), "b": ("x", T + TICK)}) == [(T + TICK, "x", -1, 0)]
    over = plan_violations(jobs, tl, {"a": ("x", T), "b": ("x", T)})
    assert over == [(T, "x", 3, 2)]


def test_bounds_empty_and_seed_plan() -> None:
    tl = {T: [SiteState("x", 0.01, 1)]}
    r = hindsight_bounds([Job("big", 1.0, 4, 5, None, None, T)], tl)
    assert r.status == "empty" and r.unplaced == ["big"]
    jobs = [Job("a", TICK / HOUR_MS, 1, 5, None, None, T)]
    r = hindsight_bounds(jobs, tl, seed_plans=[{"a": ("x", T)}])
    assert r.status == "optimal" and r.placements == {"a": ("x", T)} and "seed" in r.heuristics
