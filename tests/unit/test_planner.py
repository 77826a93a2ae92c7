"""Re-planning only on change (udfs.planner): when it must re-plan it does, and then its decisions
are those of planning in full at every tick; between, new jobs go into the standing plan's room."""

from __future__ import annotations

import numpy as np

from udfs.objective import HOUR_MS, CostCurve, Job, SitePlan, plan_problem, restricted
from udfs.optimizer import DispatchConfig
from udfs.planner import Planner

H = HOUR_MS
TICK = 5 * 60_000
T0 = 1_530_439_200_000 + TICK  # 2018-07-01T10:05:00Z
HOUR0 = T0 // H * H  # 10:00
NEW_OFFER_TICK = 4  # 10:25: site b's offer for 12:00 is published
FORCED_TICK = 6  # 10:35: a job at its last chance arrives


def rate(site: str, hour: int, tick: int) -> tuple[float, float]:
    """(EUR per slot-hour, known share) of ``site`` in the hour starting HOUR0 + hour h."""
    if site == "a":
        return (0.01 if 1 <= hour <= 3 else 0.05), (1.0 if hour <= 2 else 0.0)
    if hour == 2 and tick >= NEW_OFFER_TICK:
        return 0.001, 1.0  # the new offer: cheap, known
    return 0.04, (1.0 if hour <= 1 else 0.0)


def sites_at(tick: int, running: list[tuple[str, int, int]]) -> list[SitePlan]:
    t = T0 + tick * TICK
    first = (t // H + 1) * H
    hours = range((t - HOUR0) // H, (t - HOUR0) // H + 40)
    plans = []
    for sid in ("a", "b"):
        curve = CostCurve((t, *(first + i * H for i in range(len(hours)))),
                          tuple(rate(sid, h, tick)[0] for h in hours), tuple(rate(sid, h, tick)[1] for h in hours))
        mine = tuple(sorted((end, n) for s, end, n in running if s == sid))
        plans.append(SitePlan(sid, "r", 20 - sum(n for _, n in mine), 20, curve, mine, 50.0))
    return plans


ARRIVALS = {
    0: [Job("j1", 4.0, 2, 9, submitted_ms=T0)],
    2: [Job("j2", 4.0, 2, 9, submitted_ms=T0 + 2 * TICK)],  # new between full plans
    FORCED_TICK: [Job("j3", 1.0, 1, 2, deadline_ms=T0 + FORCED_TICK * TICK + 60_000,
                      submitted_ms=T0 + FORCED_TICK * TICK - 60_000)],
    9: [Job("j4", 2.0, 4, 9, submitted_ms=T0 + 9 * TICK)],
}


def closed_loop(replan: str) -> list[tuple[int, list[tuple[str, str]], bool]]:
    planner = Planner(DispatchConfig(replan=replan))
    pending: dict[str, Job] = {}
    running: list[tuple[str, int, int]] = []
    log = []
    for tick in range(26):  # 10:05 .. 12:10: the hours 11:00 and 12:00 pass
        t = T0 + tick * TICK
        pending.update({j.job_id: j for j in ARRIVALS.get(tick, [])})
        running = [r for r in running if r[1] > t]
        result = planner.decide(plan_problem(list(pending.values()), sites_at(tick, running), t))
        for jid, sid in result.assignments.items():
            job = pending.pop(jid)
            running.append((sid, t + job.duration_ms, job.slots))
        log.append((tick, sorted(result.assignments.items()), result.replanned))
    return log


def test_replanning_on_change_decides_as_planning_every_tick_through_new_jobs_offers_and_due_starts() -> None:
    on_change, every_tick = closed_loop("on-change"), closed_loop("every-tick")
    assert [(t, a) for t, a, _ in on_change] == [(t, a) for t, a, _ in every_tick]
    full = [t for t, _, replanned in on_change if replanned]
    hour_ticks = [t for t in range(26) if (T0 + t * TICK) % H == 0]
    # in full: the first tick, the new offer, the job at its last chance, each new hour; nowhere else
    assert full == sorted({0, NEW_OFFER_TICK, FORCED_TICK, *hour_ticks})
    assert not on_change[2][2] and not on_change[9][2]  # the new jobs j2 and j4 went into the standing plan
    starts = {jid: t for t, a, _ in on_change for jid, _ in a}
    assert starts["j3"] == FORCED_TICK
    assert (T0 + starts["j1"] * TICK) % H == 0 and starts["j1"] > 0  # waited for a planned start on the hour
    assert all(replanned for _, _, replanned in every_tick)


def test_the_restricted_problem_leaves_the_held_room_and_no_cap_where_there_was_none() -> None:
    t = T0
    plans = sites_at(0, [])
    jobs = [Job("big", 4.0, 20, 9, submitted_ms=t), Job("new", 2.0, 2, 9, submitted_ms=t)]
    prob = plan_problem(jobs, plans, t)
    big = 0
    fixed = {big: next(o for o in prob.options[big] if plans[o.site].site_id == "a" and o.start_ms == HOUR0 + H)}
    sub = restricted(prob, fixed)
    assert [j.job_id for j in sub.jobs] == ["new"]
    a = 0
    held = np.asarray(prob.starts) >= HOUR0 + H
    held &= np.asarray(prob.starts) < HOUR0 + H + jobs[0].duration_ms
    assert (sub.free[a] == np.where(held, 0, prob.free[a])).all()
    assert (sub.start_cap_left >= sum(j.slots for j in sub.jobs)).all()  # no site keeps a reserve: no cap
    planner = Planner(DispatchConfig(replan="on-change"))
    planner.decide(plan_problem(jobs[:1], plans, t))
    # a new job whose best place the standing plan does not hold: placed in the room left
    elsewhere = Job("elsewhere", 2.0, 2, 9, sites=("b",), submitted_ms=t)
    result = planner.decide(plan_problem([jobs[0], elsewhere], plans, t))
    assert not result.replanned
    assert result.plan["big"].site_id == "a" and result.plan["big"].start_ms == HOUR0 + H
    assert result.plan["elsewhere"].site_id == "b"
    # a new job whose best place (site a while the big job runs) the standing plan holds: in full,
    # where the standing job may give way
    result = planner.decide(plan_problem(jobs, plans, t))
    assert result.replanned


def test_the_standing_plan_survives_a_restart_from_state() -> None:
    plans = sites_at(0, [])
    planner = Planner(DispatchConfig(replan="on-change"))
    planner.decide(plan_problem(ARRIVALS[0], plans, T0))
    restored = Planner(DispatchConfig(replan="on-change"))
    restored.load_state(planner.to_state())
    jobs = ARRIVALS[0] + ARRIVALS[2]
    later = T0 + 2 * TICK
    a = planner.decide(plan_problem(jobs, sites_at(2, []), later))
    b = restored.decide(plan_problem(jobs, sites_at(2, []), later))
    assert not a.replanned and (a.plan, a.assignments) == (b.plan, b.assignments)
