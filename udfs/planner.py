"""Model-predictive control across ticks: plan in full only when the plan's inputs changed.

A full plan (udfs.optimizer.solve_problem over every pending job) is made when:

* the hour changed since the standing plan was made: a new hour joins the horizon, and the plan's
  later starts lie on the hour, so one may be due now;
* any site's inputs changed: the site set, its derated capacity, its urgent reserve or start cap,
  the known part of its cost curve from the next hour on (new offers known, new weather);
* a job is at its last chance and greedy starts it now (``PlanProblem.forced``);
* a job of the standing plan can no longer keep its place (its site or option is gone);
* a new job's best place would fit the room were it not for the standing plan: in full, the
  standing work may give way to it (without this rule the new jobs ran at once elsewhere, at up
  to twice the cost, and July 1-7 cost 2.5 % more than planning every tick).

Between, the standing plan is kept (its jobs stay where and when they were planned) and only the
jobs it does not hold (new ones, and any it left unplaced) are planned, in the room the standing
plan leaves (udfs.objective.restricted): a small model instead of the whole queue. A standing job
whose start now has become cheaper than its planned start is planned again with them.
``DispatchConfig.replan = "every-tick"`` plans in full at every tick (the benchmark's comparison).
Measured in docs/BENCHMARKS.md "Decision time": the same EUR within 0.2 %, 1.3-1.5x faster.

Deterministic: what triggers a full plan depends on the inputs only; the standing plan is part of
the dispatcher's state (checkpointed with it).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import replace
from typing import Any

from udfs.objective import HOUR_MS, Option, PlanProblem, restricted
from udfs.optimizer import DEFAULT_CONFIG, DispatchConfig, DispatchResult, placement, solve_problem

REPLAN_MODES = ("on-change", "every-tick")


def plan_basis(prob: PlanProblem) -> str:
    """A fingerprint of what a plan rests on besides its jobs: the hour, and every site's capacity,
    reserve, start cap and the known part of its cost curve from the next hour on, where the plan's
    later starts lie. Left out: the rest of this hour (it prices only the starts now, which every
    tick decides afresh) and the forecast's rates (beyond a day they follow this hour's mean, which
    a 5-minute market moves at every tick; they are read again at the next hour)."""
    next_hour = (prob.tick_ms // HOUR_MS + 1) * HOUR_MS
    parts: list[Any] = [prob.tick_ms // HOUR_MS, prob.tick_len_ms, len(prob.starts)]
    for s in prob.sites:
        c = s.curve
        i = max(0, bisect.bisect_right(c.edges, next_hour) - 1)  # the segment in force at the next hour
        known = [(e, r, k) for e, r, k in zip(c.edges[i:], c.rates[i:], c.known[i:], strict=False) if k > 0]
        parts.append((s.site_id, s.capacity_slots, s.reserve, s.start_cap, known))
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:20]


class Planner:
    """Keeps the standing plan between ticks; :meth:`decide` is one tick's decision."""

    def __init__(self, config: DispatchConfig = DEFAULT_CONFIG) -> None:
        if config.replan not in REPLAN_MODES:
            raise ValueError(f"replan: one of {', '.join(REPLAN_MODES)}, got {config.replan!r}")
        self.config = config
        self.standing: dict[str, tuple[str, int]] = {}  # job -> (site, start) planned after the last tick
        self.basis: str | None = None  # plan_basis of the problem the standing plan was made on

    def decide(self, prob: PlanProblem) -> DispatchResult:
        basis = plan_basis(prob)
        fixed = self._kept(prob) if basis == self.basis and self.config.replan == "on-change" else None
        if fixed is None or _holds_a_best_place(prob, fixed, sub := restricted(prob, fixed)):
            # in full; when the standing plan holds a new job's best place, it may give way to it
            result = solve_problem(prob, self.config)
        else:
            result = _with_standing(prob, fixed, solve_problem(sub, self.config))
        self.standing = {jid: (p.site_id, p.start_ms) for jid, p in result.plan.items() if p.start_ms > prob.tick_ms}
        self.basis = basis
        return result

    def _kept(self, prob: PlanProblem) -> dict[int, Option] | None:
        """{job index: option} of the standing plan's pending jobs, or None when it cannot stand."""
        if prob.forced:
            return None
        site_index = {s.site_id: si for si, s in enumerate(prob.sites)}
        fixed: dict[int, Option] = {}
        for jn, job in enumerate(prob.jobs):
            place = self.standing.get(job.job_id)
            if place is None:
                continue
            site, start = place
            if start <= prob.tick_ms or site not in site_index:
                return None
            option = next((o for o in prob.options[jn] if o.site == site_index[site] and o.start_ms == start), None)
            if option is None:  # not among the job's options this tick: price it as the problem does
                option = prob.option_at(jn, site_index[site], start)
                if option is None:
                    return None
            now = min((prob.coef(jn, o) for o in prob.options[jn] if o.start_ms == prob.tick_ms), default=math.inf)
            if now < prob.coef(jn, option):  # starting now has become cheaper: planned again, with the new jobs
                continue
            fixed[jn] = option
        return fixed

    def to_state(self) -> dict[str, Any]:
        return {"standing": {k: list(v) for k, v in self.standing.items()}, "basis": self.basis}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if state:
            self.standing = {k: (v[0], int(v[1])) for k, v in state["standing"].items()}
            self.basis = state["basis"]


def _holds_a_best_place(prob: PlanProblem, fixed: dict[int, Option], sub: PlanProblem) -> bool:
    """Some job of ``sub`` (the restricted problem) has a best option that fits the full problem's
    room but not the room the standing placements ``fixed`` leave."""
    others = [jn for jn in range(len(prob.jobs)) if jn not in fixed]  # sub's jobs, in its order
    return any(sub.options[sj] and prob.fits(jn, prob.options[jn][0]) and not sub.fits(sj, sub.options[sj][0])
               for sj, jn in enumerate(others))


def _with_standing(prob: PlanProblem, fixed: dict[int, Option], result: DispatchResult) -> DispatchResult:
    """The restricted problem's result with the standing placements added to its plan; objectives
    count them too (greedy's: greedy for the other jobs, the standing plan kept)."""
    plan = dict(result.plan)
    kept = 0.0
    for jn, o in fixed.items():
        plan[prob.jobs[jn].job_id] = placement(prob, jn, o)
        kept += prob.coef(jn, o)
    return replace(result, plan=dict(sorted(plan.items())), objective=result.objective + kept,
                   greedy_objective=result.greedy_objective + kept, replanned=False)
