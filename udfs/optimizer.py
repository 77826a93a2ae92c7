"""Dispatch optimizer of one tick, planning ahead: a PuLP MILP (HiGHS, else CBC) over every
pending job's (site, start) options in the horizon, with the greedy rule as its safety net.

Entry point for the dispatcher (udfs.dispatcher): :func:`solve_dispatch` (plain Python), then
:func:`decision_records` to turn what starts now into ``dispatch`` topic records. The problem,
its options and the objective are defined in :mod:`udfs.objective`.

Model::

    minimise   sum_{j, k} coef[j, k] * x[j, k]          (coef = cost + delay - bonus)
    subject to one_option_j:   sum_k x[j, k] <= 1                                  every job j
               start_now_j:    sum_{k starts now} x[j, k] = 1                      forced jobs
               capacity_s_p:   sum_{(j, k) at s running at p} slots_j x[j, k] <= free[s, p]
               x binary

Only the options starting now are committed (model-predictive control); the rest is the plan
the next tick revises.

Keeping it fast (docs/BENCHMARKS.md "Dispatch solver"):

1. Options are reduced per job (udfs.objective.Reduction: its best few overall, the best starts
   per allowed site, its cheapest start now); each job's best option is always kept.
2. ``presolve``: if every job at its best option fits every capacity, that plan is optimal for
   the full problem and no solver is called.
3. Capacity rows that cannot bind are not emitted.
4. HiGHS starts from the greedy plan (a feasible point of the model); the result is compared
   with greedy under the same objective and greedy is kept if the solver did worse (time limit).

Determinism: jobs and sites sorted by id, options in canonical order, variables named by rank,
one solver thread, and the search bounded by *work*, not time: at most ``max_nodes`` branch-and-bound
nodes (HiGHS ``mip_max_nodes`` and ``mip_max_leaves``, CBC ``maxNodes``); HiGHS and CBC are deterministic
with one thread, so the same inputs give the same plan on any machine under any load (status
``work-limit`` when the node budget ended the search; the best plan found is kept, never worse than
greedy). ``time_limit_s`` stays as a wall-clock safety net for pathological ticks only; when it
fires the status is ``wall-clock-limit``, the dispatcher counts it in ``pipeline-metrics``, and
replay equality holds only for runs where it never fired.
"""

from __future__ import annotations

import bisect
import hashlib
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pulp

from udfs.baselines import greedy
from udfs.objective import (
    DEFAULT_DELAY,
    DEFAULT_HORIZON_MS,
    DEFAULT_REDUCTION,
    DEFAULT_TICK_MS,
    DelayModel,
    Job,
    Option,
    PlanProblem,
    Reduction,
    SitePlan,
    free_slots,
    missed_jobs,
    objective_of,
    plan_problem,
    usage_violations,
)
from udfs.timeutil import format_ts

__all__ = [
    "DispatchConfig",
    "DispatchResult",
    "Placement",
    "build_model",
    "decision_id",
    "decision_records",
    "rejection_reason",
    "solve_dispatch",
    "solver_name",
]

STATUS_OPTIMAL = "optimal"
STATUS_WORK_LIMIT = "work-limit"  # the node budget ended the search: deterministic
STATUS_TIMEOUT = "wall-clock-limit"  # the safety net fired: depends on the machine's speed
STATUS_GREEDY = "greedy-fallback"
STATUS_EMPTY = "empty"


@dataclass(frozen=True)
class DispatchConfig:
    tick_len_ms: int = DEFAULT_TICK_MS
    horizon_ms: int = DEFAULT_HORIZON_MS
    # Deterministic bound of the search (branch-and-bound nodes). Calibrated in docs/BENCHMARKS.md
    # "Dispatch solver": the rounded LP closes most ticks at the root; the rest rarely improve after.
    max_nodes: int = 0
    # Wall-clock safety net of the solver alone (not of model building, so that it never fires on
    # an ordinary tick); a tick that hits it is counted in pipeline-metrics (solver_wall_clock_hits).
    time_limit_s: float = 10.0
    # Optimality tolerance relative to the EUR part of the objective (sum over jobs of the
    # largest |cost + delay|), applied as an *absolute* gap: a relative gap on the whole
    # objective would be dominated by the placement bonus and ignore the EUR terms.
    gap_eur_rel: float = 1e-3
    solver: str = "auto"  # "auto" (HiGHS if highspy is importable, else CBC) | "highs" | "cbc"
    use_presolve: bool = True
    delay: DelayModel = DEFAULT_DELAY
    reduction: Reduction = DEFAULT_REDUCTION
    # "on-change": plan in full only when the plan's inputs changed, else place the new jobs in the
    # standing plan's room (udfs.planner); "every-tick": plan in full at every tick
    replan: str = "on-change"


DEFAULT_CONFIG = DispatchConfig()


@dataclass(frozen=True)
class Placement:
    """Where and when a job is planned, and what it is expected to cost."""

    site_id: str
    start_ms: int
    cost: float  # EUR, whole run hour by hour
    cost_known: float  # EUR of it on known offers (the rest is forecast)
    cost_now_best: float  # EUR had it started now at the cheapest site with room (what greedy pays)


@dataclass(frozen=True)
class DispatchResult:
    plan: dict[str, Placement]  # every job the plan places in the horizon
    assignments: dict[str, str]  # job_id -> site_id, starting at this tick
    missed: list[str]  # sorted job ids whose deadline has passed or passes unplaced now
    status: str  # optimal | work-limit | wall-clock-limit | greedy-fallback | empty
    solver: str  # milp-highs | milp-cbc | presolve | greedy | none
    objective: float  # udfs.objective value of the plan (lower is better)
    solve_ms: float  # wall time of the whole call
    greedy_objective: float  # same objective for the greedy plan on the same inputs
    greedy_assignments: dict[str, str] = field(default_factory=dict)  # what greedy starts now
    n_vars: int = 0  # binary variables in the model (0 when no solver ran)
    detail: str = ""  # why a fallback happened, if it did
    proven_gap: float | None = None  # objective - solver's dual bound (HiGHS only), EUR
    wall_clock_limit: bool = False  # the safety net stopped the solver: this decision may vary by machine
    replanned: bool = True  # planned in full (False: the standing plan kept, udfs.planner)

    @property
    def cost(self) -> float:
        """EUR of the jobs starting now, whole run hour by hour."""
        return sum(self.plan[j].cost for j in self.assignments)


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


_INDEX = operator.attrgetter("index")  # a PuLP variable's column, set by buildSolverModel


class _Model(pulp.LpProblem):  # type: ignore[misc,valid-type]
    """A PuLP problem whose every variable is made by ``add_variable`` and registered then: its
    variables are known in the order they were made, without PuLP scanning every constraint at
    each ``variables()`` call."""

    def add_variable(self, *args: Any, **kw: Any) -> pulp.LpVariable:
        var = super().add_variable(*args, **kw)
        self._register_variable(var)
        return var

    def variables(self) -> list[pulp.LpVariable]:
        return self._variables

    def _add_variables(self, variables: Iterable[pulp.LpVariable]) -> None:
        """Every variable was registered when made: nothing to scan when a constraint is added."""


class _WarmHiGHS(pulp.HiGHS):  # type: ignore[misc,valid-type]
    """pulp.HiGHS that first solves the LP relaxation and rounds it to a feasible plan
    (``round_lp``). When the rounded plan is within ``gap_abs`` of the relaxation's bound it is
    optimal within the tolerance: HiGHS then only confirms it (every column fixed) instead of
    branching. Otherwise the better of it and the greedy plan (``start``) is HiGHS's starting
    incumbent, so on a limit the result is never worse than greedy. The relaxation of this
    model is nearly integral, so the first case is the common one. PuLP's highspy path has no warm
    start option of its own. Columns are in the model's variable order; ``start`` and ``round_lp``'s
    arrays follow it."""

    def __init__(self, start: np.ndarray | None = None,
                 round_lp: Callable[[np.ndarray], tuple[np.ndarray | None, float]] | None = None,
                 gap_abs: float = 0.0, **kw: Any) -> None:
        super().__init__(gapAbs=gap_abs, **kw)
        self._start = start
        self._round_lp = round_lp
        self._gap_abs = gap_abs
        self.lp_bound: float | None = None  # the relaxation's objective, a lower bound
        self.model_status: Any = None  # HiGHS's status of the MIP solve (which limit ended it)

    def buildSolverModel(self, lp: pulp.LpProblem) -> None:  # noqa: N802 - PuLP's name
        """The model in three calls (columns, integrality, rows as one sparse matrix) instead of
        PuLP's call per column and per row: the same model, built in a fraction of the time."""
        import highspy

        h = lp.solverModel
        variables = lp.variables()
        n = len(variables)
        for i, var in enumerate(variables):
            var.index = i
        inf = highspy.kHighsInf
        cost = np.fromiter((lp.objective.get(v, 0.0) for v in variables), dtype=np.float64, count=n)
        lower = np.fromiter((-inf if v.lowBound is None else v.lowBound for v in variables), np.float64, count=n)
        upper = np.fromiter((inf if v.upBound is None else v.upBound for v in variables), np.float64, count=n)
        cols = np.arange(n, dtype=np.int32)
        h.addVars(n, lower, upper)
        h.changeColsCost(n, cols, cost)
        integral = np.asarray([v.cat == pulp.LpInteger for v in variables], dtype=bool)
        if self.mip and integral.any():
            h.changeColsIntegrality(int(integral.sum()), cols[integral],
                                    np.full(int(integral.sum()), highspy.HighsVarType.kInteger))
        row_lower, row_upper, starts, index, value = [], [], [0], [], []
        for i, row in enumerate(lp._constraints.values()):
            row.index = i
            lb, ub = row.getLb(), row.getUb()
            row_lower.append(-inf if lb is None else lb)
            row_upper.append(inf if ub is None else ub)
            index.extend(map(_INDEX, row.keys()))
            value.extend(row.values())
            starts.append(len(index))
        if row_lower:
            h.addRows(len(row_lower), np.asarray(row_lower), np.asarray(row_upper), len(index),
                      np.asarray(starts[:-1], dtype=np.int32), np.asarray(index, dtype=np.int32),
                      np.asarray(value, dtype=np.float64))

    def findSolutionValues(self, lp: pulp.LpProblem) -> tuple[int, int]:  # noqa: N802 - PuLP's name
        """PuLP 3.3 maps every HiGHS status but kSolutionLimit (the node and leaf limits): read the
        incumbent of that one here."""
        import highspy

        h = lp.solverModel
        self.model_status = h.getModelStatus()
        if self.model_status != highspy.HighsModelStatus.kSolutionLimit:
            return super().findSolutionValues(lp)
        if h.getInfo().primal_solution_status != 2:  # kSolutionStatusFeasible: no incumbent
            return pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound
        values = list(h.getSolution().col_value)
        for var in lp.variables():
            var.varValue = values[var.index]
        return pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible

    def limit_status(self) -> str:
        """Which limit ended a solve that stopped short of proven optimality."""
        import highspy

        return STATUS_TIMEOUT if self.model_status == highspy.HighsModelStatus.kTimeLimit else STATUS_WORK_LIMIT

    def callSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802 - PuLP's name
        import highspy

        h = lp.solverModel
        # highspy registers a Python callback that HiGHS may call from inside run(), with the GIL
        # released; inside Flink's thread mode (Python embedded in the JVM) a solve hung there
        # with every Python thread waiting for the GIL. We use no callbacks: turn them off.
        h.disableCallbacks()
        n = h.getNumCol()
        start = self._start
        if self._round_lp is not None and n:
            cols = np.arange(n, dtype=np.int32)
            h.changeColsIntegrality(n, cols, np.full(n, highspy.HighsVarType.kContinuous))
            h.run()
            relaxed = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
            if relaxed:
                self.lp_bound = h.getInfo().objective_function_value
                values = np.asarray(h.getSolution().col_value)
            h.changeColsIntegrality(n, cols, np.full(n, highspy.HighsVarType.kInteger))
            if relaxed:
                rounded, value = self._round_lp(values)
                if rounded is not None and value - self.lp_bound <= self._gap_abs:
                    h.changeColsBounds(n, cols, rounded, rounded)  # optimal within the gap: no branching
                start = rounded if rounded is not None else start
        if start is not None:
            sol = highspy.HighsSolution()
            sol.col_value = list(start)
            sol.value_valid = True
            h.setSolution(sol)
        super().callSolver(lp)


def _make_solver(name: str, cfg: DispatchConfig, gap_abs: float, start: np.ndarray | None = None,
                 round_lp: Callable[[np.ndarray], tuple[np.ndarray | None, float]] | None = None) -> Any:
    if name == "milp-highs":
        return _WarmHiGHS(start, round_lp, gap_abs, msg=False, timeLimit=cfg.time_limit_s, gapRel=0.0, threads=1,
                          mip_max_nodes=cfg.max_nodes, mip_max_leaves=cfg.max_nodes)
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1, round(cfg.time_limit_s)), gapRel=0.0, gapAbs=gap_abs,
                             threads=1, maxNodes=cfg.max_nodes)


def round_plan(prob: PlanProblem, weight: Mapping[tuple[int, int], float]) -> dict[int, Option]:
    """A feasible plan near a fractional one: forced jobs first, then jobs by their largest weight
    (ties: higher bonus, id); each takes its heaviest option that still fits every capacity point
    (then its other options in cost order); a job that fits nowhere is left out."""
    free = free_slots(prob).astype(np.int64)
    free_movable = free_slots(prob, headroom=True).astype(np.int64)
    cap_left = prob.start_cap_left.copy()
    starts = prob.starts
    chosen: dict[int, Option] = {}

    def top(j: int) -> float:
        return max((weight.get((j, k), 0.0) for k in range(len(prob.options[j]))), default=0.0)

    order = sorted(range(len(prob.jobs)), key=lambda j: (prob.jobs[j].job_id not in prob.forced, -top(j),
                                                         -prob.bonus[j], prob.jobs[j].job_id))
    for j in order:
        job = prob.jobs[j]
        opts = list(enumerate(prob.options[j]))
        if job.job_id in prob.forced:
            opts = [(k, o) for k, o in opts if o.start_ms == prob.tick_ms]
        opts.sort(key=lambda ko: (-weight.get((j, ko[0]), 0.0), ko[0]))
        for _, o in opts:
            lo = bisect.bisect_left(starts, o.start_ms)
            hi = bisect.bisect_left(starts, o.start_ms + job.duration_ms)
            held = prob.keeps_headroom(j)
            room = (free[o.site, lo:hi] >= job.slots).all()
            if room and (not held or ((free_movable[o.site, lo:hi] >= job.slots).all()
                                      and cap_left[o.site, lo] >= job.slots)):
                free[o.site, lo:hi] -= job.slots
                if held:
                    free_movable[o.site, lo:hi] -= job.slots
                    cap_left[o.site, lo] -= job.slots
                chosen[j] = o
                break
    return chosen


def _var_name(j: int, k: int) -> str:
    return f"x_{j:07d}_{k:04d}"


def build_model(prob: PlanProblem) -> tuple[pulp.LpProblem, dict[tuple[int, int], pulp.LpVariable]]:
    """The MILP over the problem's options; returns the problem and ``{(job, option): variable}``.
    Zero-padded names keep PuLP's name-sorted variable order equal to the canonical order."""
    model = _Model("dispatch", pulp.LpMinimize)
    x: dict[tuple[int, int], pulp.LpVariable] = {}
    for j, opts in enumerate(prob.options):
        for k in range(len(opts)):
            x[j, k] = model.add_variable(_var_name(j, k), 0, 1, cat=pulp.LpBinary)
    coefs = [prob.coef(j, o) for j, opts in enumerate(prob.options) for o in opts]  # in x's order
    model += pulp.LpAffineExpression(zip(x.values(), coefs, strict=True)), "objective"
    for j, opts in enumerate(prob.options):
        if prob.jobs[j].job_id in prob.forced:
            now = [(x[j, k], 1) for k, o in enumerate(opts) if o.start_ms == prob.tick_ms]
            model += pulp.LpAffineExpression(now) == 1, f"start_now_{j:07d}"
        if len(opts) > 1:  # a single option is already bounded by x <= 1
            model += pulp.LpAffineExpression([(x[j, k], 1) for k in range(len(opts))]) <= 1, f"one_option_{j:07d}"
    _capacity_rows(model, prob, x, free_slots(prob), "capacity", lambda j: True)
    if any(s.reserve for s in prob.sites):  # movable work leaves the urgent reserve free (udfs.headroom)
        _capacity_rows(model, prob, x, free_slots(prob, headroom=True), "headroom", prob.keeps_headroom)
    if any(s.start_cap for s in prob.sites):  # movable starts do not bunch (udfs.headroom)
        _start_cap_rows(model, prob, x)
    return model, x


def _start_cap_rows(model: pulp.LpProblem, prob: PlanProblem, x: dict[tuple[int, int], pulp.LpVariable]) -> None:
    """Per (site, start point): the slots of movable work starting there <= the site's start cap."""
    arrays = _option_arrays(prob, [j for j in range(len(prob.jobs)) if prob.keeps_headroom(j)])
    if arrays is None:
        return
    _, opts, site, start, _, slots = arrays
    caps = prob.start_cap_left
    keys = site * len(prob.starts) + np.searchsorted(np.asarray(prob.starts, dtype=np.int64), start)
    order = np.argsort(keys, kind="stable")  # within a row, options stay in canonical order
    keys, opts, slots = keys[order], opts[order], slots[order]
    binding = np.bincount(keys, weights=slots, minlength=caps.size) > caps.ravel()
    keep = binding[keys]
    _add_rows(model, list(x.values()), keys[keep], opts[keep], slots[keep], caps, "startcap")


def _capacity_rows(model: pulp.LpProblem, prob: PlanProblem, x: dict[tuple[int, int], pulp.LpVariable],
                   free: np.ndarray, name: str, counts: Callable[[int], bool]) -> None:
    """Per (site, start point): the slots of the counted jobs running there <= ``free``; rows that
    cannot bind (the counted jobs' largest terms fit) are not emitted."""
    cover = option_cover(prob, [j for j in range(len(prob.jobs)) if counts(j)])
    if cover is None:
        return
    keys, jobs, opts, slots = cover
    # a job counts once per row at most: the row cannot bind when its jobs' slots fit
    n_jobs = len(prob.jobs)
    job_slots = np.asarray([j.slots for j in prob.jobs], dtype=np.int64)
    pair = np.unique(keys * n_jobs + jobs)
    most = np.bincount(pair // n_jobs, weights=job_slots[pair % n_jobs], minlength=free.size)
    keep = (most > free.ravel())[keys]
    _add_rows(model, list(x.values()), keys[keep], opts[keep], slots[keep], free, name)


def _add_rows(model: pulp.LpProblem, variables: list[pulp.LpVariable], keys: np.ndarray, opts: np.ndarray,
              slots: np.ndarray, rhs: np.ndarray, name: str) -> None:
    """One row per run of equal ``keys`` (site x points + point, sorted): sum of slots x option's
    variable (``variables`` in option order, as build_model adds them) <= rhs[site, point]."""
    if not len(keys):
        return
    n_points = rhs.shape[1]
    bounds = (np.flatnonzero(np.diff(keys)) + 1).tolist()
    for lo, hi in zip([0, *bounds], [*bounds, len(keys)], strict=True):
        s, p = divmod(int(keys[lo]), n_points)
        terms = zip(map(variables.__getitem__, opts[lo:hi].tolist()), slots[lo:hi].tolist(), strict=True)
        model += pulp.LpAffineExpression(terms) <= int(rhs[s, p]), f"{name}_{s:05d}_{p:03d}"


def _option_arrays(prob: PlanProblem, jobs: list[int]) -> tuple[np.ndarray, ...] | None:
    """Every option of the given jobs (in order, each job's in canonical order) as arrays: (job,
    option's index in canonical order, site, start, duration, slots); None when there is none."""
    counts = np.asarray([len(o) for o in prob.options], dtype=np.int64)
    first = np.concatenate(([0], np.cumsum(counts)))  # option index of each job's first option
    jobs_a = np.asarray(jobs, dtype=np.int64)
    n_opts = counts[jobs_a]
    if not n_opts.sum():
        return None
    job = np.repeat(jobs_a, n_opts)
    opt = first[job] + np.arange(len(job)) - np.repeat(np.cumsum(n_opts) - n_opts, n_opts)
    chosen = [prob.options[j] for j in jobs]
    site = np.fromiter((o.site for opts in chosen for o in opts), np.int64, len(job))
    start = np.fromiter((o.start_ms for opts in chosen for o in opts), np.int64, len(job))
    dur = np.asarray([j.duration_ms for j in prob.jobs], dtype=np.int64)[job]
    slots = np.asarray([j.slots for j in prob.jobs], dtype=np.int64)[job]
    return job, opt, site, start, dur, slots


def option_cover(prob: PlanProblem, jobs: list[int]) -> tuple[np.ndarray, ...] | None:
    """Every (site, start point) each option of the given jobs runs over, as arrays sorted by
    (row key = site x points + point, option): (key, job, option's index in canonical order, slots)."""
    arrays = _option_arrays(prob, jobs)
    if arrays is None:
        return None
    job, opt, site, start, dur, slots = arrays
    starts = np.asarray(prob.starts, dtype=np.int64)
    p0 = np.searchsorted(starts, start, side="left")
    p1 = np.searchsorted(starts, start + dur, side="left")
    width = p1 - p0
    each = np.repeat(np.arange(len(job)), width)
    point = p0[each] + np.arange(len(each)) - np.repeat(np.cumsum(width) - width, width)
    keys = site[each] * len(starts) + point
    order = np.argsort(keys, kind="stable")  # within a row, options stay in canonical order
    each = each[order]
    return keys[order], job[each], opt[each], slots[each]


def _best_fits(prob: PlanProblem) -> dict[int, Option] | None:
    """Every job at its best option, if that respects every rule (then it is optimal)."""
    chosen = {j: opts[0] for j, opts in enumerate(prob.options) if opts}
    for j, job in enumerate(prob.jobs):
        if job.job_id in prob.forced and (j not in chosen or chosen[j].start_ms != prob.tick_ms):
            return None
    if chosen and usage_violations(prob, chosen):
        return None
    return chosen


def solve_dispatch(jobs: Iterable[Job], sites: Iterable[SitePlan], tick_ms: int, *,
                   config: DispatchConfig = DEFAULT_CONFIG) -> DispatchResult:
    """Plan the pending jobs over the horizon and say which start now, and where.

    ``jobs``: pending (not started, not cancelled) jobs; jobs submitted after ``tick_ms`` are
    ignored, jobs whose deadline is before ``tick_ms`` are reported missed. ``sites``: the sites
    with a price now (udfs.objective.SitePlan: free slots now, capacity, running jobs' releases,
    the cost curve); leave out unavailable ones.
    """
    t0 = time.perf_counter()
    cfg = config
    prob = plan_problem(jobs, sites, tick_ms, tick_len_ms=cfg.tick_len_ms, horizon_ms=cfg.horizon_ms,
                        delay=cfg.delay, reduction=cfg.reduction)
    return solve_problem(prob, cfg, t0)


def solve_problem(prob: PlanProblem, cfg: DispatchConfig = DEFAULT_CONFIG, t0: float | None = None) -> DispatchResult:
    t0 = time.perf_counter() if t0 is None else t0
    g = greedy(prob, headroom=True)  # the safety net keeps the headroom too (udfs.headroom)
    # the greedy plan stays inside the model: its options join the job's list if pruned away
    options = list(prob.options)
    for j, o in g.items():
        if o not in options[j]:
            options[j] = (*options[j], o)
    if options != list(prob.options):
        prob = _with_options(prob, options)
    greedy_obj = objective_of(prob, g)

    def done(chosen: Mapping[int, Option], status: str, solver: str, **kw: Any) -> DispatchResult:
        plan = {}
        for j, o in sorted(chosen.items()):
            plan[prob.jobs[j].job_id] = placement(prob, j, o, g[j].cost if j in g else None)
        starting = {jid: p.site_id for jid, p in plan.items() if p.start_ms == prob.tick_ms}
        return DispatchResult(
            plan=plan, assignments=starting, missed=missed_jobs(prob, starting), status=status, solver=solver,
            objective=objective_of(prob, chosen), solve_ms=(time.perf_counter() - t0) * 1000.0,
            greedy_objective=greedy_obj,
            greedy_assignments={prob.jobs[j].job_id: prob.sites[o.site].site_id for j, o in sorted(g.items())},
            **kw)

    if not any(prob.options):
        return done({}, STATUS_EMPTY, "none")
    if cfg.use_presolve:
        best = _best_fits(prob)
        if best is not None:
            return done(best, STATUS_OPTIMAL, "presolve")
    name = solver_name(cfg.solver)
    model, x = build_model(prob)
    columns = list(x)  # (job, option) of each column, in the model's variable order
    column_of = {(j, prob.options[j][k]): c for c, (j, k) in enumerate(columns)}

    def as_columns(chosen: Mapping[int, Option]) -> np.ndarray:
        values = np.zeros(len(columns))
        values[[column_of[j, o] for j, o in chosen.items()]] = 1.0
        return values

    start = as_columns(g)
    scale = sum(max((abs(o.cost + o.delay) for o in opts), default=0.0) for opts in prob.options)
    rounded_plan: list[tuple[dict[int, Option], float]] = []  # the rounded relaxation and its objective

    def round_lp(values: np.ndarray) -> tuple[np.ndarray | None, float]:
        rounded = round_plan(prob, {columns[c]: float(values[c]) for c in np.flatnonzero(values > 1e-9)})
        value = objective_of(prob, rounded)
        rounded_plan.append((rounded, value))
        if value > greedy_obj:
            return None, value
        return as_columns(rounded), value

    solver = _make_solver(name, cfg, max(1e-9, cfg.gap_eur_rel * scale), start, round_lp)
    s0 = time.perf_counter()
    try:
        model.solve(solver)
    except pulp.PulpSolverError as exc:  # solver crashed or missing: never stop the job
        return done(g, STATUS_GREEDY, "greedy", n_vars=len(x), detail=f"{name} failed: {exc}")
    if isinstance(solver, _WarmHiGHS):
        limit = solver.limit_status()
    else:  # CBC does not say which limit stopped it
        limit = STATUS_TIMEOUT if time.perf_counter() - s0 >= cfg.time_limit_s else STATUS_WORK_LIMIT
    clock = limit == STATUS_TIMEOUT and model.sol_status != pulp.LpSolutionOptimal
    # Check the status before reading values: 1 = optimal, 2 = integer-feasible (a limit stopped it).
    sol = model.sol_status
    if sol not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return done(g, STATUS_GREEDY, "greedy", n_vars=len(x), wall_clock_limit=clock,
                    detail=f"{name}: no solution ({pulp.LpSolution.get(sol, sol)})")
    chosen = {j: prob.options[j][k] for (j, k), v in x.items() if v.varValue is not None and v.varValue > 0.5}
    status = STATUS_OPTIMAL if sol == pulp.LpSolutionOptimal else limit
    try:
        obj = objective_of(prob, chosen)
    except ValueError as exc:  # numerically infeasible rounding: keep the safe plan
        return done(g, STATUS_GREEDY, "greedy", n_vars=len(x), wall_clock_limit=clock, detail=f"{name}: {exc}")
    if rounded_plan and status != STATUS_OPTIMAL and rounded_plan[0][1] < obj:
        # HiGHS may end a root-only search on an incumbent of its own, worse than the rounded
        # relaxation it was started from: keep the better of the two
        chosen, obj = rounded_plan[0]
    if obj > greedy_obj + 1e-9 * max(1.0, abs(greedy_obj)):
        # Only reachable on a limit or through the solver's gap tolerance.
        return done(g, STATUS_GREEDY, "greedy", n_vars=len(x), wall_clock_limit=clock,
                    detail=f"{name} ({status}) plan worse than greedy")
    gap = None
    if getattr(solver, "lp_bound", None) is not None:
        gap = max(0.0, obj - solver.lp_bound)  # against the LP relaxation: a valid bound either way
    return done(chosen, status, name, n_vars=len(x), wall_clock_limit=clock, proven_gap=gap)


def placement(prob: PlanProblem, j: int, o: Option, greedy_cost: float | None = None) -> Placement:
    """Job j planned at option o; ``cost_now_best`` is what greedy pays for it now, or (greedy does
    not start it) its cheapest start now, or its own cost when it cannot start now."""
    if greedy_cost is None:
        now = [q.cost for q in prob.options[j] if q.start_ms == prob.tick_ms]
        greedy_cost = min(now) if now else o.cost
    return Placement(prob.sites[o.site].site_id, o.start_ms, o.cost, o.cost_known, greedy_cost)


def _with_options(prob: PlanProblem, options: list[tuple[Option, ...]]) -> PlanProblem:
    from dataclasses import replace

    return replace(prob, options=tuple(options))


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


def decision_records(result: DispatchResult, jobs: Iterable[Job], tick_ms: int,
                     greedy_costs: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """``dispatch`` topic records (../shared/CONTRACT.md) for this tick's dispatched and missed jobs.
    ``greedy_costs``: what greedy would have paid for each job (the dispatcher prices it when the job
    is first seen); default: greedy at this tick."""
    greedy_costs = greedy_costs or {}
    jmap = {j.job_id: j for j in jobs}
    tick = format_ts(tick_ms)
    out: list[dict[str, Any]] = []
    for job_id, site_id in sorted(result.assignments.items()):
        job = jmap[job_id]
        p = result.plan[job_id]
        out.append({
            "decision_id": decision_id(job_id, tick_ms, "dispatched", site_id),
            "job_id": job_id,
            "status": "dispatched",
            "site_id": site_id,
            "tick": tick,
            "start_at": tick,
            "end_at": format_ts(tick_ms + job.duration_ms),
            "expected_cost": round(p.cost, 6),
            "expected_cost_known": round(p.cost_known, 6),  # on offers already published
            "expected_cost_forecast": round(p.cost - p.cost_known, 6),  # on udfs.forecast's forecast
            "cost_per_compute_hour": round(p.cost / job.compute_hours, 6),  # over the whole run
            # had it started at once at the cheapest site with room (the greedy rule)
            "greedy_cost": round(greedy_costs.get(job_id, p.cost_now_best), 6),
            "waited_h": round((tick_ms - job.submitted_ms) / 3_600_000, 3),
            "slots": job.slots,
            "solver": result.solver,
            "solve_ms": round(result.solve_ms, 3),
        })
    for job_id in result.missed:
        out.append({
            "decision_id": decision_id(job_id, tick_ms, "missed-deadline", None),
            "job_id": job_id,
            "status": "missed-deadline",
            "site_id": None,
            "tick": tick,
            "reason": "deadline passed without a feasible site",
            "solver": result.solver,
            "solve_ms": round(result.solve_ms, 3),
        })
    return out
