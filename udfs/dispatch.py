"""Dispatch optimizer of one tick: a PuLP MILP (HiGHS, else CBC) with a greedy safety net.

Entry point for the Flink dispatch operator: :func:`solve_dispatch` (plain Python), then
:func:`decision_records` to turn its result into ``dispatch`` topic records.

Model (objective and its terms are defined in :mod:`udfs.objective`):

    minimise   sum_{(j,s) in C} coef[j,s] * x[j,s]
    subject to one_site_j:   sum_s x[j,s] <= 1                         for every job j
               capacity_s:   sum_j slots_j * x[j,s] <= available_s     for every site s
               x[j,s] in {0, 1}

Allow-lists, job sizes and deadlines are enforced by construction: the candidate set C only
holds pairs where the site is allowed, the job fits the site's free slots and the job is not
expired. C also drops every pair with coef >= 0: such a placement can only make the objective
worse and never frees capacity, so an optimal plan never uses it (exact reduction).

Keeping it fast (see docs/BENCHMARKS.md "Dispatch solver"):

1. ``presolve``: if every job taking its own best site fits all capacities, that plan is
   optimal and no solver is called.
2. Constraints that cannot bind are not emitted (a site whose candidates fit all at once, a
   job with a single candidate site).
3. Above ``max_vars`` candidate pairs, each job keeps only its ``k`` best sites (k =
   max(min_candidates, max_vars // jobs)) plus the site the greedy plan gives it. This is a
   heuristic (the pruned optimum can be worse than the full one; the benchmark measures it)
   but the result is still never worse than greedy, whose plan stays inside the model.

Determinism: jobs and sites are sorted by id and variables named by that rank, so shuffled
inputs build the identical model; the solver runs single-threaded. Among plans with equal
objective the solver's (deterministic) choice stands; the greedy fallback breaks ties by id.
A run that hits the time limit depends on machine speed — its status says so.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulp

from udfs.baselines import greedy_plan
from udfs.objective import (
    DEFAULT_TICK_MS,
    DEFAULT_VALUES,
    Job,
    SiteState,
    TickProblem,
    ValueModel,
    missed_jobs,
    objective_of,
    tick_problem,
)
from udfs.timeutil import format_ts

__all__ = [
    "DispatchConfig",
    "DispatchResult",
    "Job",
    "SiteState",
    "ValueModel",
    "build_model",
    "decision_id",
    "decision_records",
    "rejection_reason",
    "solve_dispatch",
    "solver_name",
]

STATUS_OPTIMAL = "optimal"
STATUS_TIMEOUT = "feasible-timeout"
STATUS_GREEDY = "greedy-fallback"
STATUS_EMPTY = "empty"


@dataclass(frozen=True)
class DispatchConfig:
    tick_len_ms: int = DEFAULT_TICK_MS
    time_limit_s: float = 1.0  # whole call budget; the solver gets what model building left
    max_vars: int = 3_000  # candidate pairs above which each job's sites are pruned
    min_candidates: int = 3
    # Optimality tolerance, relative to the EUR part of the objective (sum over jobs of the
    # largest |cost - value|), applied as HiGHS/CBC's *absolute* gap: a relative gap on the
    # whole objective would be dominated by the must-place bonus and ignore the EUR terms.
    gap_eur_rel: float = 1e-4
    solver: str = "auto"  # "auto" (HiGHS if highspy is importable, else CBC) | "highs" | "cbc"
    use_presolve: bool = True
    values: ValueModel = DEFAULT_VALUES


DEFAULT_CONFIG = DispatchConfig()


@dataclass(frozen=True)
class DispatchResult:
    assignments: dict[str, str]  # job_id -> site_id, to start at this tick
    missed: list[str]  # sorted job ids whose deadline has passed or passes unplaced now
    status: str  # optimal | feasible-timeout | greedy-fallback | empty
    solver: str  # milp-highs | milp-cbc | presolve | greedy | none
    objective: float  # udfs.objective value of the plan (lower is better)
    solve_ms: float  # wall time of the whole call
    greedy_objective: float  # same objective for the greedy plan on the same inputs
    cost: float  # EUR: sum compute_hours x cost per compute-hour of the placed jobs
    n_vars: int = 0  # binary variables in the model (0 when no solver ran)
    pruned: bool = False  # candidate pruning was applied (step 3 above)
    detail: str = ""  # why a fallback happened, if it did
    proven_gap: float | None = None  # objective - solver's dual bound (HiGHS only), EUR
    site_cost: dict[str, float] = field(default_factory=dict)  # placed job -> EUR/compute-hour
    greedy_plan: dict[str, str] = field(default_factory=dict)  # the greedy baseline on the same tick


def solver_name(choice: str = "auto") -> str:
    if choice == "cbc":
        return "milp-cbc"
    if choice == "highs":
        return "milp-highs"
    try:
        import highspy  # noqa: F401
    except ImportError:
        return "milp-cbc"
    return "milp-highs"


class _WarmHiGHS(pulp.HiGHS):  # type: ignore[misc,valid-type]
    """pulp.HiGHS that hands HiGHS a starting plan (the greedy one) before it runs: on a time
    limit the incumbent is then never worse than greedy. PuLP's highspy path has no warm
    start option of its own."""

    def __init__(self, start: Mapping[str, float] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self._start = dict(start or {})

    def callSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802 - PuLP's name
        # highspy registers a Python callback that HiGHS may call from inside run(), with the GIL
        # released; inside Flink's thread mode (Python embedded in the JVM) a solve hung there
        # with every Python thread waiting for the GIL. We use no callbacks: turn them off.
        lp.solverModel.disableCallbacks()
        if self._start:
            import highspy

            sol = highspy.HighsSolution()
            sol.col_value = [self._start.get(v.name, 0.0) for v in lp.variables()]
            sol.value_valid = True
            lp.solverModel.setSolution(sol)
        super().callSolver(lp)


def _make_solver(
    name: str, time_limit_s: float, gap_abs: float, start: Mapping[str, float] | None = None
) -> Any:
    if name == "milp-highs":
        return _WarmHiGHS(
            start, msg=False, timeLimit=time_limit_s, gapRel=0.0, gapAbs=gap_abs, threads=1
        )
    return pulp.PULP_CBC_CMD(
        msg=False, timeLimit=max(1, round(time_limit_s)), gapRel=0.0, gapAbs=gap_abs, threads=1
    )


def eur_scale(prob: TickProblem, cands: Sequence[Sequence[int]]) -> float:
    """Sum over jobs of the largest |coef| without the must-place bonus: the EUR magnitude."""
    total = 0.0
    for j, cand in enumerate(cands):
        b = prob.bonus[j]
        total += max((abs(prob.coef[j][s] + b) for s in cand), default=0.0)  # type: ignore[operator]
    return total


def candidates(prob: TickProblem) -> list[list[int]]:
    """Per job, the site indices worth considering (coef < 0), best first, ties by site id."""
    out: list[list[int]] = []
    for row in prob.coef:
        cand = [s for s, c in enumerate(row) if c is not None and c < 0]
        cand.sort(key=lambda s, row=row: (row[s], s))
        out.append(cand)
    return out


def build_model(prob: TickProblem, cands: Sequence[Sequence[int]]) -> tuple[pulp.LpProblem, dict]:
    """The MILP over the candidate pairs; returns the problem and ``{(j, s): LpVariable}``.

    Indices are positions in ``prob.jobs`` / ``prob.sites`` (sorted by id); zero-padded names
    keep PuLP's name-sorted variable order equal to that canonical order.
    """
    model = pulp.LpProblem("dispatch", pulp.LpMinimize)
    x: dict[tuple[int, int], pulp.LpVariable] = {}
    for j, cand in enumerate(cands):
        for s in cand:
            x[j, s] = model.add_variable(f"x_{j:07d}_{s:05d}", 0, 1, cat=pulp.LpBinary)
    model += pulp.LpAffineExpression([(v, prob.coef[j][s]) for (j, s), v in x.items()]), "objective"
    for j, cand in enumerate(cands):
        if len(cand) > 1:  # a single candidate is already bounded by x <= 1
            model += pulp.LpAffineExpression([(x[j, s], 1) for s in cand]) <= 1, f"one_site_{j:07d}"
    per_site: dict[int, list[int]] = {}
    for j, cand in enumerate(cands):
        for s in cand:
            per_site.setdefault(s, []).append(j)
    for s in sorted(per_site):
        js = per_site[s]
        cap = prob.sites[s].available_slots
        if sum(prob.jobs[j].slots for j in js) <= cap:
            continue  # cannot bind
        model += (
            pulp.LpAffineExpression([(x[j, s], prob.jobs[j].slots) for j in js]) <= cap,
            f"capacity_{s:05d}",
        )
    return model, x


def _presolve(prob: TickProblem, cands: Sequence[Sequence[int]]) -> dict[str, str] | None:
    """Every job at its best site, if that respects all capacities (then it is optimal)."""
    used = [0] * len(prob.sites)
    plan: dict[str, str] = {}
    for j, cand in enumerate(cands):
        if cand:
            s = cand[0]
            used[s] += prob.jobs[j].slots
            plan[prob.jobs[j].job_id] = prob.sites[s].site_id
    if any(u > s.available_slots for u, s in zip(used, prob.sites, strict=True)):
        return None
    return plan


def _cover_prefix(prob: TickProblem, cands: list[list[int]]) -> None:
    """Exact reduction: cut each job's list (cost order) after the shortest prefix P_j with
    sum_{s in P_j} free_s >= D + |P_j| * (m - 1), D = total slots of all candidate jobs,
    m = largest job. Proof sketch: if j sits outside P_j in an optimal plan, some site of P_j
    must have room for it (else P_j would hold more than D - slots_j slots), and moving j
    there does not raise the objective (cheaper site, same value); repeat for every job.
    """
    active = [j for j, c in enumerate(cands) if c]
    if not active:
        return
    demand = sum(prob.jobs[j].slots for j in active)
    m1 = max(prob.jobs[j].slots for j in active) - 1
    for j in active:
        cand = cands[j]
        total = 0
        for k, s in enumerate(cand):
            total += prob.sites[s].available_slots
            if total >= demand + (k + 1) * m1:
                del cand[k + 1 :]
                break


def _prune(
    prob: TickProblem, cands: list[list[int]], greedy: Mapping[str, str], cfg: DispatchConfig
) -> bool:
    """Heuristic cap of each job's list to k sites (+ its greedy site and that site's cheaper
    neighbour) when the model would exceed ``max_vars``. Returns whether anything was cut."""
    n_pairs = sum(len(c) for c in cands)
    active = sum(1 for c in cands if c)
    if n_pairs <= cfg.max_vars or active == 0:
        return False
    k = max(cfg.min_candidates, cfg.max_vars // active)
    s_index = {s.site_id: i for i, s in enumerate(prob.sites)}
    cut = False
    for j, cand in enumerate(cands):
        if len(cand) > k:
            keep = cand[:k]
            g = greedy.get(prob.jobs[j].job_id)
            if g is not None:
                # the greedy plan stays feasible in the pruned model (never worse than greedy)
                gs = s_index[g]
                gi = cand.index(gs) if gs in cand else -1
                keep.extend(cand[i] for i in (gi - 1, gi) if i >= k) if gi >= 0 else keep.append(gs)
            cands[j] = keep
            cut = True
    return cut


def solve_dispatch(
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    *,
    config: DispatchConfig = DEFAULT_CONFIG,
) -> DispatchResult:
    """Plan this tick: which pending jobs start now, and where.

    ``jobs``: pending (not yet started, not cancelled) jobs; jobs submitted after ``tick_ms``
    are ignored, jobs whose deadline is before ``tick_ms`` are reported missed.
    ``sites``: sites with a valid offer (cost in EUR per compute-hour) and their free slots;
    leave out, or give 0 slots to, unavailable sites.
    """
    t0 = time.perf_counter()
    cfg = config
    prob = tick_problem(jobs, sites, tick_ms, cfg.tick_len_ms, cfg.values)
    cands = candidates(prob)
    greedy = greedy_plan(
        prob.jobs,
        prob.sites,
        tick_ms,
        tick_len_ms=cfg.tick_len_ms,
        values=cfg.values,
        beneficial_only=True,
        _prob=prob,
    )
    greedy_obj = objective_of(prob, greedy)

    def done(plan: Mapping[str, str], status: str, solver: str, **kw: Any) -> DispatchResult:
        s_cost = {s.site_id: s.cost_per_compute_hour for s in prob.sites}
        j_hours = {j.job_id: j.compute_hours for j in prob.jobs}
        plan = dict(sorted(plan.items()))
        return DispatchResult(
            assignments=plan,
            missed=missed_jobs(prob, plan),
            status=status,
            solver=solver,
            objective=objective_of(prob, plan),
            solve_ms=(time.perf_counter() - t0) * 1000.0,
            greedy_objective=greedy_obj,
            greedy_plan=dict(greedy),
            cost=sum(j_hours[j] * s_cost[s] for j, s in plan.items()),
            site_cost={j: s_cost[s] for j, s in plan.items()},
            **kw,
        )

    if not any(cands):
        return done({}, STATUS_EMPTY, "none")
    if cfg.use_presolve:
        plan = _presolve(prob, cands)
        if plan is not None:
            return done(plan, STATUS_OPTIMAL, "presolve")
    _cover_prefix(prob, cands)
    pruned = _prune(prob, cands, greedy, cfg)
    name = solver_name(cfg.solver)
    model, x = build_model(prob, cands)
    # Budget left for the solver, minus PuLP's own load/unload time (~15 us per variable).
    remaining = max(0.05, cfg.time_limit_s - (time.perf_counter() - t0) - 15e-6 * len(x))
    try:
        gap_abs = max(1e-9, cfg.gap_eur_rel * eur_scale(prob, cands))
        j_index = {jb.job_id: i for i, jb in enumerate(prob.jobs)}
        s_index = {st.site_id: i for i, st in enumerate(prob.sites)}
        start = {
            x[j_index[jid], s_index[sid]].name: 1.0
            for jid, sid in greedy.items()
            if (j_index[jid], s_index[sid]) in x
        }
        model.solve(_make_solver(name, remaining, gap_abs, start))
    except pulp.PulpSolverError as exc:  # solver crashed or missing: never stop the job
        return done(
            greedy,
            STATUS_GREEDY,
            "greedy",
            n_vars=len(x),
            pruned=pruned,
            detail=f"{name} failed: {exc}",
        )
    # Check the status before reading values: 1 = optimal, 2 = integer-feasible (time limit).
    sol = model.sol_status
    if sol not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return done(
            greedy,
            STATUS_GREEDY,
            "greedy",
            n_vars=len(x),
            pruned=pruned,
            detail=f"{name}: no solution ({pulp.LpSolution.get(sol, sol)})",
        )
    plan = {
        prob.jobs[j].job_id: prob.sites[s].site_id
        for (j, s), v in x.items()
        if v.varValue is not None and v.varValue > 0.5
    }
    status = STATUS_OPTIMAL if sol == pulp.LpSolutionOptimal else STATUS_TIMEOUT
    try:
        obj = objective_of(prob, plan)
    except ValueError as exc:  # numerically infeasible rounding: keep the safe plan
        return done(
            greedy, STATUS_GREEDY, "greedy", n_vars=len(x), pruned=pruned, detail=f"{name}: {exc}"
        )
    if obj > greedy_obj + 1e-9 * max(1.0, abs(greedy_obj)):
        # Only reachable on a time limit or through the solver's gap tolerance.
        return done(
            greedy,
            STATUS_GREEDY,
            "greedy",
            n_vars=len(x),
            pruned=pruned,
            detail=f"{name} ({status}) plan worse than greedy",
        )
    gap = None
    if name == "milp-highs":
        try:
            gap = max(0.0, obj - float(model.solverModel.getInfo().mip_dual_bound))
        except Exception:  # noqa: BLE001 - diagnostics only
            gap = None
    return done(plan, status, name, n_vars=len(x), pruned=pruned, proven_gap=gap)


# --- records for the dispatch topic ------------------------------------------------------------


def decision_id(job_id: str, tick_ms: int, status: str, site_id: str | None) -> str:
    """Deterministic id of a decision: sha1 of its identity, 32 hex chars."""
    key = f"{job_id}\x1f{int(tick_ms)}\x1f{status}\x1f{site_id or ''}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:32]


def rejection_reason(job: Job, capacity_slots: Mapping[str, int]) -> str | None:
    """Why ``job`` can never run on the catalogue (site_id -> nominal slots), or None."""
    allowed = [s for s in capacity_slots if job.allows(s)]
    if job.sites is not None and not allowed:
        return "allow-list names no known site: " + ",".join(job.sites)
    if not any(job.slots <= capacity_slots[s] for s in allowed):
        biggest = max((capacity_slots[s] for s in allowed), default=0)
        return f"needs {job.slots} slots, the largest allowed site has {biggest}"
    return None


def decision_records(
    result: DispatchResult, jobs: Iterable[Job], tick_ms: int
) -> list[dict[str, Any]]:
    """``dispatch`` topic records (CONTRACT.md) for this tick's dispatched and missed jobs."""
    jmap = {j.job_id: j for j in jobs}
    tick = format_ts(tick_ms)
    out: list[dict[str, Any]] = []
    for job_id, site_id in sorted(result.assignments.items()):
        job = jmap[job_id]
        c = result.site_cost[job_id]
        out.append(
            {
                "decision_id": decision_id(job_id, tick_ms, "dispatched", site_id),
                "job_id": job_id,
                "status": "dispatched",
                "site_id": site_id,
                "tick": tick,
                "start_at": tick,
                "end_at": format_ts(tick_ms + job.duration_ms),
                "expected_cost": round(job.compute_hours * c, 6),
                "cost_per_compute_hour": round(c, 6),
                "slots": job.slots,
                "solver": result.solver,
                "solve_ms": round(result.solve_ms, 3),
            }
        )
    for job_id in result.missed:
        out.append(
            {
                "decision_id": decision_id(job_id, tick_ms, "missed-deadline", None),
                "job_id": job_id,
                "status": "missed-deadline",
                "site_id": None,
                "tick": tick,
                "reason": "deadline passed without a feasible site",
                "solver": result.solver,
                "solve_ms": round(result.solve_ms, 3),
            }
        )
    return out
