"""Deadline safety over many ticks (issue 26): in a closed loop over small random streams with
urgent jobs pinned to one site and tight capacity, two runs of the plan (udfs.optimizer with the
urgent reserve and start cap of udfs.headroom) give the same decisions; and the plan missing no more deadlines
than greedy holds summed over many seeded streams but NOT on every stream (a known counterexample
is kept as a test; docs/BENCHMARKS.md "Contention with pinned urgent work").
The loop is the pipeline's tick semantics in miniature: jobs join at submission,
a job whose latest start passes unstarted is missed, a started job holds its slots to its end."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from udfs import baselines
from udfs.headroom import UrgentDemand, start_cap
from udfs.objective import HOUR_MS, CostCurve, Job, SitePlan, is_urgent, plan_problem, usage_violations
from udfs.optimizer import DispatchConfig, solve_problem
from udfs.planner import Planner

T0 = 1_530_403_200_000  # 2018-07-01T00:00Z
TICK = 10 * 60_000
N_TICKS = 36  # six hours
CFG = DispatchConfig(tick_len_ms=TICK, horizon_ms=8 * HOUR_MS)


PERIOD = 2 * HOUR_MS  # the urgent demand repeats: what the reserve learns from is what comes again


def random_stream(rng: random.Random):
    """Sites with small capacities and hourly prices; urgent jobs pinned to one site (latest start
    10-30 min after submission, priority 0-2) in a pattern that repeats every ``PERIOD`` (the
    stationarity the reserve's learning assumes: it can only keep room for demand it has seen);
    movable jobs (any site, latest start 2-5 h after submission, priority 6-9) at random."""
    sites = [(f"s{i}", rng.randint(4, 10), tuple(rng.choice([0.03125, 0.0625, 0.09375]) for _ in range(16)))
             for i in range(rng.randint(2, 3))]
    wave = [(rng.randrange(PERIOD // TICK), rng.choice(sites)[0], rng.randint(1, 3), rng.choice([0.25, 0.5, 1.0]),
             rng.randint(0, 2), rng.randint(10, 30)) for _ in range(rng.randint(1, 4))]
    jobs = []
    for rep in range(N_TICKS * TICK // PERIOD):
        for n, (tick, site, slots, hours, prio, window_min) in enumerate(wave):
            sub = T0 + rep * PERIOD + tick * TICK
            jobs.append(Job(f"u{rep}-{n}", hours * slots, slots, prio, sub + window_min * 60_000, (site,), sub))
    for n in range(rng.randint(2, 20)):
        sub = T0 + rng.randrange(N_TICKS - 6) * TICK + rng.randrange(TICK) // 1000 * 1000
        hours, slots = rng.choice([0.25, 0.5, 1.0, 2.0, 3.0]), rng.randint(1, 4)
        jobs.append(Job(f"m{n:03d}", hours * slots, slots, rng.randint(6, 9), sub + rng.randint(2, 5) * HOUR_MS,
                        None, sub))
    return sites, jobs


def closed_loop(sites, jobs: list[Job], policy: str) -> tuple[list[tuple], int]:
    """Every tick's starts [(tick, job, site)] and the number of missed deadlines."""
    pending: dict[str, Job] = {}
    running: list[tuple[str, int, int, bool]] = []  # (site, slots, end, movable)
    urgent = UrgentDemand()
    starts, missed = [], 0
    planner = Planner(CFG)  # the dispatcher's decisions: re-planning on change (udfs.planner)
    todo = sorted(jobs, key=lambda j: (j.submitted_ms, j.job_id))
    for k in range(N_TICKS):
        t = T0 + k * TICK
        while todo and todo[0].submitted_ms <= t:
            job = todo.pop(0)
            pending[job.job_id] = job
            urgent.observe(job)
        urgent.advance(t)
        for jid in [j for j, job in pending.items() if job.deadline_ms < t]:
            del pending[jid]
            missed += 1
        running = [r for r in running if r[2] > t]
        if not pending:
            continue
        plans = []
        for sid, cap, rates in sites:
            edges = tuple(T0 + h * HOUR_MS for h in range(len(rates) + 1))
            i = (t - T0) // HOUR_MS
            curve = CostCurve((t, *edges[i + 1:]), rates[i:], (1.0,) * (len(rates) - i))
            busy = sum(n for s, n, _, _ in running if s == sid)
            reserve = urgent.reserve(sid) if policy == "plan" else 0
            plans.append(SitePlan(sid, "r", cap - busy, cap, curve,
                                  tuple(sorted((e, n) for s, n, e, _ in running if s == sid)), None, reserve,
                                  tuple(sorted((e, n) for s, n, e, m in running if s == sid and m)),
                                  start_cap(cap, reserve)))
        prob = plan_problem(list(pending.values()), plans, t, tick_len_ms=TICK, horizon_ms=CFG.horizon_ms)
        if policy == "plan":
            now = dict(planner.decide(prob).assignments)
        else:
            now = {prob.jobs[j].job_id: prob.sites[o.site].site_id for j, o in baselines.greedy(prob).items()}
        for jid, sid in sorted(now.items()):
            job = pending.pop(jid)
            running.append((sid, job.slots, t + job.duration_ms, not is_urgent(job)))
            starts.append((t, jid, sid))
    return starts, missed


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_two_runs_give_the_same_decisions(rng) -> None:
    sites, jobs = random_stream(rng)
    assert closed_loop(sites, jobs, "plan") == closed_loop(sites, jobs, "plan")


@pytest.mark.slow
def test_plan_misses_no_more_than_greedy_over_many_streams() -> None:
    """Summed over 60 seeded streams; per stream it does not hold in general (the known limitation
    below). Measured 2026-12-07: plan 23 misses, greedy 64, the plan worse on 2 streams (re-planning on
    change, stop 31: 22 and 2); without the start cap 27 and 3, without the reserve (and so the cap)
    42 and 6: the bounds below fail for both."""
    plan_total = greedy_total = worse = 0
    for seed in range(60):
        sites, jobs = random_stream(random.Random(seed))
        _, plan_missed = closed_loop(sites, jobs, "plan")
        _, greedy_missed = closed_loop(sites, jobs, "greedy")
        plan_total += plan_missed
        greedy_total += greedy_missed
        worse += plan_missed > greedy_missed
    print(f"missed: plan {plan_total}, greedy {greedy_total}; streams where the plan missed more: {worse}/60")
    assert 2 * plan_total <= greedy_total
    assert worse <= 2


def test_known_limitation_a_start_before_the_first_urgent_job_is_seen() -> None:
    """Hypothesis found this with other seeds: the property above does not hold in general. At the
    first tick nothing urgent has been seen, so no reserve: two movable jobs start in the plan where
    the urgent job pinned to s0 will need the room; greedy, placing them elsewhere by today's price,
    leaves it. This test holds today's outcome so that a fix shows here (issue 26, closing note)."""
    flat = (0.0625,) * 14
    sites = [("s0", 4, (0.09375, 0.0625, *flat)), ("s1", 4, (0.0625, 0.09375, *flat))]
    jobs = [Job(f"u{rep}", 0.75, 3, 0, T0 + rep * PERIOD + 30 * 60_000, ("s0",), T0 + rep * PERIOD + 10 * 60_000)
            for rep in range(3)]
    jobs += [Job(f"m{n}", 2.0, 1, 6, T0 + 2 * HOUR_MS, None, T0) for n in range(2)]
    _, plan_missed = closed_loop(sites, jobs, "plan")
    _, greedy_missed = closed_loop(sites, jobs, "greedy")
    assert (plan_missed, greedy_missed) == (1, 0)


def test_movable_starts_keep_under_the_start_cap_in_the_plan_and_the_safety_net() -> None:
    """Ten movable jobs all cheapest now at a site that keeps a reserve: the plan, its rounding and
    greedy with the headroom start at most the start cap's slots now (the rest later); a plan that
    starts them all is a violation; a movable job larger than the cap may still start alone."""
    rates = (0.0625, *(0.125,) * 15)
    edges = tuple(T0 + h * HOUR_MS for h in range(len(rates) + 1))
    curve = CostCurve((T0, *edges[1:]), rates, (1.0,) * len(rates))
    cap = start_cap(20, reserve=2)
    assert cap == 6 and start_cap(20, reserve=0) == 0
    site = SitePlan("s0", "r", 20, 20, curve, (), None, 2, (), cap)
    jobs = [Job(f"m{n}", 1.0, 2, 6, T0 + 4 * HOUR_MS, None, T0) for n in range(10)]
    prob = plan_problem(jobs, [site], T0, tick_len_ms=TICK, horizon_ms=CFG.horizon_ms)
    result = solve_problem(prob, CFG)
    now = [jid for jid, p in result.plan.items() if p.start_ms == T0]
    assert len(now) * 2 == cap, now
    assert sum(prob.jobs[j].slots for j in baselines.greedy(prob, headroom=True)) == cap
    assert sum(prob.jobs[j].slots for j in baselines.greedy(prob)) == 20  # without the headroom: all fit now
    all_now = {j: next(o for o in prob.options[j] if o.start_ms == T0) for j in range(6)}
    assert any("over the cap" in v for v in usage_violations(prob, all_now))
    big = plan_problem([Job("big", 8.0, 8, 6, T0 + 4 * HOUR_MS, None, T0)], [site], T0, tick_len_ms=TICK,
                       horizon_ms=CFG.horizon_ms)
    assert list(baselines.greedy(big, headroom=True)) == [0]
