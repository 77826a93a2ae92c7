"""Offline hindsight optimum: what a whole replay would have cost with perfect foresight.

Given every job of a replay (submission time, deadline, size) and every tick's site costs and
capacities, choose for each job one (tick, site) with ``submitted <= tick <= deadline`` to
minimise the total cost, where a job started at tick t occupies its slots for
``ceil(duration / tick_len)`` ticks and capacity holds at every tick and site:

    minimise   sum_{j,t,s} cost[j,t,s] * y[j,t,s]  +  P * (number of jobs left unplaced)
    subject to one_start_j:   sum_{t,s} y[j,t,s] <= 1
               capacity_t_s:  sum_{j, t' in (t - d_j, t]} slots_j * y[j,t',s] <= cap[t,s]

``P`` exceeds any total cost, so every job that can be placed is placed; jobs with no
feasible (tick, site) at all, or crowded out, are reported in ``unplaced``.

Cost accounting (``accounting``):
* ``"start"`` (default): compute_hours x cost per compute-hour at the start tick — the same
  accounting as ``expected_cost`` in the dispatch records, so the two are comparable;
* ``"integrated"``: slots x hours spent in each tick x that tick's cost, over the run (the
  last tick's cost is used past the end of the timeline).

When the model has more than ``max_milp_vars`` variables the LP relaxation is solved instead
and the result is a *lower bound* (status ``lp-lower-bound``; valid as a bound on any plan
that places the same jobs, i.e. whenever ``unplaced`` is empty).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulp

from udfs.dispatch import solver_name
from udfs.objective import DEFAULT_TICK_MS, HOUR_MS, Job, SiteState


@dataclass(frozen=True)
class HindsightResult:
    total_cost: float  # EUR; a lower bound when status == "lp-lower-bound"
    status: str  # optimal | feasible-timeout | lp-lower-bound | empty | no-solution
    solver: str
    placements: dict[str, tuple[str, int]] = field(default_factory=dict)  # job -> (site, tick)
    unplaced: list[str] = field(default_factory=list)
    n_vars: int = 0
    solve_ms: float = 0.0


def _ticks_running(job: Job, tick_len_ms: int) -> int:
    return max(1, math.ceil(job.duration_ms / tick_len_ms))


def hindsight_optimum(
    jobs: Sequence[Job],
    timeline: Mapping[int, Sequence[SiteState]],
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    accounting: str = "start",
    max_milp_vars: int = 50_000,
    time_limit_s: float = 60.0,
    solver: str = "auto",
) -> HindsightResult:
    """``timeline``: tick_ms -> site states at that tick; ``available_slots`` is the site's
    (derated) capacity at that tick before any commitment, ``cost_per_compute_hour`` in EUR."""
    if accounting not in ("start", "integrated"):
        raise ValueError(f"accounting: must be 'start' or 'integrated', got {accounting!r}")
    t0 = time.perf_counter()
    ticks = sorted(timeline)
    states = [{s.site_id: s for s in timeline[t]} for t in ticks]
    jobs = sorted({j.job_id: j for j in jobs}.values(), key=lambda j: j.job_id)

    def coef(job: Job, ti: int, sid: str) -> float:
        if accounting == "start":
            return job.compute_hours * states[ti][sid].cost_per_compute_hour
        total, left, k = 0.0, job.duration_ms, ti
        while left > 0:
            st = states[min(k, len(ticks) - 1)].get(sid) or states[ti][sid]
            span = min(left, tick_len_ms)
            total += job.slots * span / HOUR_MS * st.cost_per_compute_hour
            left -= span
            k += 1
        return total

    pairs: dict[tuple[int, int, str], float] = {}
    for jn, job in enumerate(jobs):
        for ti, t in enumerate(ticks):
            if t < job.submitted_ms or (job.deadline_ms is not None and t > job.deadline_ms):
                continue
            for sid, st in sorted(states[ti].items()):
                if job.allows(sid) and job.slots <= st.available_slots:
                    pairs[jn, ti, sid] = coef(job, ti, sid)
    placeable = {jn for jn, _, _ in pairs}
    never = [jobs[jn].job_id for jn in range(len(jobs)) if jn not in placeable]
    if not pairs:
        return HindsightResult(
            0.0, "empty", "none", unplaced=never, solve_ms=(time.perf_counter() - t0) * 1e3
        )

    relax = len(pairs) > max_milp_vars
    worst: dict[int, float] = {}
    for (jn, _, _), c in pairs.items():
        worst[jn] = max(worst.get(jn, 0.0), abs(c))
    penalty = 1.0 + sum(worst.values())  # above any total cost: placing a job always pays
    site_no = {sid: i for i, sid in enumerate(sorted({k[2] for k in pairs}))}
    model = pulp.LpProblem("hindsight", pulp.LpMinimize)
    cat = pulp.LpContinuous if relax else pulp.LpBinary
    y = {
        k: model.add_variable(f"y_{k[0]:07d}_{k[1]:06d}_{site_no[k[2]]:05d}", 0, 1, cat)
        for k in pairs
    }
    model += pulp.LpAffineExpression([(v, pairs[k] - penalty) for k, v in y.items()]), "objective"
    by_job: dict[int, list] = {}
    use: dict[tuple[int, str], list] = {}
    for (jn, ti, sid), v in y.items():
        by_job.setdefault(jn, []).append(v)
        d = _ticks_running(jobs[jn], tick_len_ms)
        for k in range(ti, min(ti + d, len(ticks))):
            use.setdefault((k, sid), []).append((v, jobs[jn].slots))
    for jn in sorted(by_job):
        if len(by_job[jn]) > 1:
            model += pulp.lpSum(by_job[jn]) <= 1, f"one_start_{jn:07d}"
    for k, sid in sorted(use):
        terms = use[k, sid]
        cap = states[k][sid].available_slots if sid in states[k] else 0
        if sum(w for _, w in terms) > cap:
            model += pulp.LpAffineExpression(terms) <= cap, f"capacity_{k:06d}_{site_no[sid]:05d}"

    name = solver_name(solver)
    if name == "milp-highs":
        slv = pulp.HiGHS(msg=False, timeLimit=time_limit_s, mip=not relax, threads=1)
    else:
        slv = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1, round(time_limit_s)), mip=not relax)
    model.solve(slv)
    # Check the solver's status before reading any value.
    sol = model.sol_status
    if sol not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return HindsightResult(
            math.nan,
            "no-solution",
            name,
            unplaced=never,
            n_vars=len(y),
            solve_ms=(time.perf_counter() - t0) * 1e3,
        )
    placements: dict[str, tuple[str, int]] = {}
    total = 0.0
    placed_share: dict[int, float] = {}
    for (jn, ti, sid), v in y.items():
        val = v.varValue or 0.0
        if val <= 1e-9:
            continue
        total += pairs[jn, ti, sid] * val
        placed_share[jn] = placed_share.get(jn, 0.0) + val
        if not relax and val > 0.5:
            placements[jobs[jn].job_id] = (sid, ticks[ti])
    unplaced = sorted(
        set(never) | {jobs[jn].job_id for jn in placeable if placed_share.get(jn, 0.0) < 1 - 1e-6}
    )
    if relax:
        status = "lp-lower-bound"
        name = name.replace("milp", "lp")
    else:
        status = "optimal" if sol == pulp.LpSolutionOptimal else "feasible-timeout"
    return HindsightResult(
        total, status, name, placements, unplaced, len(y), (time.perf_counter() - t0) * 1e3
    )
