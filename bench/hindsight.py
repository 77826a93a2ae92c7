"""Offline hindsight optimum: what a whole replay would have cost with perfect foresight.

Given every job of a replay (submission time, deadline, size) and every tick's site costs and
capacities, choose for each job one (tick, site) with ``submitted <= tick <= deadline`` on an
allowed site to minimise the total cost, where a job started at tick t occupies its slots for
``ceil(duration / tick_len)`` ticks and capacity holds at every tick and site:

    minimise   sum_{j,t,s} cost[j,t,s] * y[j,t,s]  +  sum_j P * u_j
    subject to one_start_j:   sum_{t,s} y[j,t,s] + u_j = 1
               capacity_t_s:  sum_{j, t' in (t - d_j, t]} slots_j * y[j,t',s] <= cap[t,s]

``u_j`` = 1 leaves job j unplaced at a penalty ``P`` above any total cost, so every job that can
be placed is placed; jobs with no feasible (tick, site) at all, or crowded out, are reported in
``unplaced``. A start at (t, s) needs a cost at that tick (offer and weather in force) and
``slots <= cap[t, s]``; occupancy past the last tick of the timeline is not constrained.

Cost accounting is the dispatcher's ``expected_cost``: compute_hours x cost per compute-hour of
the site at the start tick (``accounting="start"``, what ``bench.bench_money`` charges every
policy). ``hindsight_optimum`` also offers ``"integrated"``: slots x hours spent in each tick x
that tick's cost, over the run (the last tick's cost is used past the end of the timeline).

Two solvers, both loading the model into HiGHS in bulk (numpy CSC arrays, no per-variable
Python objects):

* ``hindsight_optimum``: the full model (every feasible (job, tick, site) column). Exact MILP on
  small instances; above ``max_milp_vars`` its LP relaxation (status ``lp-lower-bound``).
* ``hindsight_bounds``: for a month of jobs (the full model has hundreds of millions of
  columns). Column generation on the LP relaxation of the *full* model: the restricted master
  holds a few columns per job; pricing scans every (tick, site) of every job's window with the
  master's capacity duals ``w >= 0``. Every round yields the Lagrangian bound

      L(w) = sum_j min(P, min_{t,s} cost[j,t,s] + slots_j * sum_{k in run(t)} w[k,s]) - sum w * cap

  which is a valid **lower bound** on every feasible plan that places all the jobs, whatever
  ``w >= 0`` (capacity relaxed with non-negative multipliers), and equals the LP optimum of the
  full model when no column prices out (``converged``). The **upper bound** is a feasible
  integer plan: the MILP over the generated columns (plus a greedy feasible plan used as the
  MIP start). The true hindsight optimum lies in [lower_bound, upper_bound].
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import highspy
import numpy as np

from udfs.objective import DEFAULT_TICK_MS, HOUR_MS, Job, SiteState

INF = highspy.kHighsInf


@dataclass(frozen=True)
class HindsightResult:
    total_cost: float  # EUR; a lower bound when status == "lp-lower-bound"
    status: str  # optimal | feasible-timeout | lp-lower-bound | empty | no-solution
    solver: str
    placements: dict[str, tuple[str, int]] = field(default_factory=dict)  # job -> (site, tick)
    unplaced: list[str] = field(default_factory=list)
    n_vars: int = 0
    solve_ms: float = 0.0


@dataclass(frozen=True)
class HindsightBounds:
    """Bounds on the hindsight optimum of the jobs that can be placed (``n_jobs`` - never)."""

    lower_bound: float  # EUR: LP relaxation (Lagrangian) bound, valid for any plan placing all jobs
    upper_bound: float  # EUR: cost of ``placements``, a feasible plan (nan if none)
    lp_value: float  # EUR: the restricted master LP at the last round (>= lower_bound)
    converged: bool  # no column priced out: lower_bound is the full model's LP optimum
    status: str  # optimal (bounds meet) | bounds | bounds-partial (plan leaves jobs out) | empty
    mip_status: str  # HiGHS model status of the restricted MILP (or "greedy")
    placements: dict[str, tuple[str, int]] = field(default_factory=dict)  # job -> (site, tick)
    unplaced: list[str] = field(default_factory=list)  # never placeable, or left out by the plan
    never: list[str] = field(default_factory=list)  # no feasible (tick, site) at all
    n_jobs: int = 0
    rounds: int = 0
    n_columns: int = 0
    plan_source: str = ""  # which plan is ``placements``: restricted-milp | lp-rounded | greedy | seed
    heuristics: dict[str, tuple[int, float]] = field(default_factory=dict)  # plan -> (placed, cost)
    seconds: float = 0.0
    multipliers: np.ndarray | None = field(default=None, repr=False)  # w[site, tick] of lower_bound
    blocks: int = 1  # > 1: from hindsight_blocked (the bound is L(w) of stitched multipliers)

    @property
    def gap(self) -> float:
        """(upper - lower) / |lower|: how far the feasible plan can be from the optimum."""
        if not math.isfinite(self.upper_bound) or self.lower_bound == 0:
            return math.nan
        return (self.upper_bound - self.lower_bound) / abs(self.lower_bound)


def _ticks_running(job: Job, tick_len_ms: int) -> int:
    return max(1, math.ceil(job.duration_ms / tick_len_ms))


# ----------------------------------------------------------------------------- dense timeline
class _Grid:
    """The timeline as arrays: cost[s, t] (nan = cannot start there) and cap[s, t]."""

    def __init__(self, timeline: Mapping[int, Sequence[SiteState]]) -> None:
        self.ticks = np.array(sorted(timeline), dtype=np.int64)
        self.sites = sorted({s.site_id for states in timeline.values() for s in states})
        self.site_no = {sid: i for i, sid in enumerate(self.sites)}
        n_s, n_t = len(self.sites), len(self.ticks)
        self.cost = np.full((n_s, n_t), np.nan)
        self.cap = np.zeros((n_s, n_t), dtype=np.int64)
        for ti, t in enumerate(self.ticks.tolist()):
            for st in timeline[t]:
                si = self.site_no[st.site_id]
                self.cost[si, ti] = st.cost_per_compute_hour
                self.cap[si, ti] = st.available_slots
        self._by_slots: dict[int, np.ndarray] = {}

    @property
    def n_t(self) -> int:
        return len(self.ticks)

    def start_cost(self, slots: int) -> np.ndarray:
        """cost[s, t] where a job of ``slots`` may start, +inf elsewhere."""
        if slots not in self._by_slots:
            ok = ~np.isnan(self.cost) & (self.cap >= slots)
            self._by_slots[slots] = np.where(ok, self.cost, np.inf)
        return self._by_slots[slots]

    def window(self, job: Job) -> tuple[int, int]:
        """Tick indices [lo, hi) where the job may start."""
        lo = int(np.searchsorted(self.ticks, job.submitted_ms, "left"))
        hi = self.n_t if job.deadline_ms is None else int(np.searchsorted(self.ticks, job.deadline_ms, "right"))
        return lo, max(lo, hi)

    def site_rows(self, job: Job) -> np.ndarray:
        if job.sites is None:
            return np.arange(len(self.sites))
        return np.array(sorted(self.site_no[s] for s in job.sites if s in self.site_no), dtype=np.int64)


def _dedupe(jobs: Sequence[Job]) -> list[Job]:
    return sorted({j.job_id: j for j in jobs}.values(), key=lambda j: j.job_id)


def _runs(tt: np.ndarray, ss: np.ndarray, dur: np.ndarray, n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """For columns starting at tick tt on site ss for dur ticks: (column number, flat site * n_t +
    tick) of every tick they occupy inside the timeline."""
    run = np.minimum(tt + dur, n_t) - tt
    starts = np.zeros(len(tt) + 1, dtype=np.int64)
    np.cumsum(run, out=starts[1:])
    col = np.repeat(np.arange(len(tt)), run)
    k = tt[col] + np.arange(int(starts[-1])) - starts[:-1][col]
    return col, ss[col] * n_t + k


def _csc(n_jobs: int, n_t: int, job_no: np.ndarray, ti: np.ndarray, si: np.ndarray, dur: np.ndarray,
         slots: np.ndarray, row0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSC arrays of columns (job_no, start tick ti, site si): 1 in the job's one-start row, then
    ``slots`` in the capacity rows ``row0 + si * n_t + k`` for k in [ti, min(ti + dur, n_t))."""
    run = np.minimum(ti + dur, n_t) - ti
    length = 1 + run
    starts = np.zeros(len(ti) + 1, dtype=np.int64)
    np.cumsum(length, out=starts[1:])
    nnz = int(starts[-1])
    col = np.repeat(np.arange(len(ti)), length)
    pos = np.arange(nnz) - starts[:-1][col]  # position inside the column: 0 = one-start row
    cap_row = row0 + si[col] * n_t + ti[col] + pos - 1
    index = np.where(pos == 0, job_no[col], cap_row).astype(np.int32)
    value = np.where(pos == 0, 1.0, slots[col].astype(np.float64))
    assert n_jobs <= row0
    return starts[:-1].astype(np.int32), index, value


def _new_highs(time_limit_s: float | None = None) -> highspy.Highs:
    h = highspy.Highs()
    h.silent()
    h.setOptionValue("threads", 1)
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    return h


def _add_rows(h: highspy.Highs, lower: np.ndarray, upper: np.ndarray) -> None:
    n = len(lower)
    h.addRows(n, lower.astype(np.float64), upper.astype(np.float64), 0, np.zeros(n, dtype=np.int32),
              np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float64))


def _add_cols(h: highspy.Highs, cost: np.ndarray, starts: np.ndarray, index: np.ndarray,
              value: np.ndarray) -> None:
    n = len(cost)
    h.addCols(n, cost.astype(np.float64), np.zeros(n), np.ones(n), len(index), starts, index, value)


# ----------------------------------------------------------------------------- the full model
def hindsight_optimum(
    jobs: Sequence[Job],
    timeline: Mapping[int, Sequence[SiteState]],
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    accounting: str = "start",
    max_milp_vars: int = 50_000,
    time_limit_s: float = 60.0,
    solver: str = "auto",  # kept for compatibility: HiGHS (highspy) is always used
) -> HindsightResult:
    """The full model, exact (MILP) while it has at most ``max_milp_vars`` columns, else its LP
    relaxation (status ``lp-lower-bound``; a bound on any plan that places the same jobs).

    ``timeline``: tick_ms -> site states at that tick; ``available_slots`` is the site's
    (derated) capacity at that tick before any commitment, ``cost_per_compute_hour`` in EUR."""
    del solver
    if accounting not in ("start", "integrated"):
        raise ValueError(f"accounting: must be 'start' or 'integrated', got {accounting!r}")
    t0 = time.perf_counter()
    g = _Grid(timeline)
    jobs = _dedupe(jobs)
    cj, ct, cs, cc = [], [], [], []
    for jn, job in enumerate(jobs):
        lo, hi = g.window(job)
        rows = g.site_rows(job)
        if hi <= lo or not len(rows):
            continue
        sc = g.start_cost(job.slots)[rows, lo:hi]
        si, ti = np.nonzero(np.isfinite(sc))
        if not len(ti):
            continue
        cj.append(np.full(len(ti), jn))
        ct.append(ti + lo)
        cs.append(rows[si])
        if accounting == "start":
            cc.append(job.compute_hours * sc[si, ti])
        else:
            cc.append(np.array([_integrated(g, job, int(a), int(b), tick_len_ms)
                                for a, b in zip(ti + lo, rows[si], strict=True)]))
    if not cj:
        return HindsightResult(0.0, "empty", "none", unplaced=[j.job_id for j in jobs],
                               solve_ms=(time.perf_counter() - t0) * 1e3)
    col_job, col_t, col_s, col_c = (np.concatenate(x) for x in (cj, ct, cs, cc))
    never = sorted(set(range(len(jobs))) - set(col_job.tolist()))
    relax = len(col_c) > max_milp_vars
    penalty = 1.0 + float(np.sum(np.abs(col_c)))  # above any total cost: placing a job always pays
    n_j, n_t = len(jobs), g.n_t
    h = _new_highs(time_limit_s)
    _add_rows(h, np.ones(n_j), np.ones(n_j))
    _add_rows(h, np.full(len(g.sites) * n_t, -INF), g.cap.reshape(-1).astype(np.float64))
    dur = np.array([_ticks_running(j, tick_len_ms) for j in jobs], dtype=np.int64)
    slots = np.array([j.slots for j in jobs], dtype=np.int64)
    st, ix, va = _csc(n_j, n_t, col_job, col_t, col_s, dur[col_job], slots[col_job], n_j)
    _add_cols(h, col_c, st, ix, va)
    # u_j: one column per job, 1 in its one-start row only
    _add_cols(h, np.full(n_j, penalty), np.arange(n_j, dtype=np.int32), np.arange(n_j, dtype=np.int32),
              np.ones(n_j))
    if not relax:
        n = len(col_c)
        h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.ones(n, dtype=np.uint8))
    h.run()
    ms = h.getModelStatus()
    name = "lp-highs" if relax else "milp-highs"
    info = h.getInfo()
    has_sol = info.primal_solution_status == 2  # feasible
    if not has_sol:
        return HindsightResult(math.nan, "no-solution", name, unplaced=[jobs[i].job_id for i in never],
                               n_vars=len(col_c), solve_ms=(time.perf_counter() - t0) * 1e3)
    x = np.asarray(h.getSolution().col_value)[: len(col_c)]
    total = float(np.dot(col_c, x))
    share = np.bincount(col_job, weights=x, minlength=n_j)
    unplaced = sorted(jobs[i].job_id for i in range(n_j) if share[i] < 1 - 1e-6)
    placements: dict[str, tuple[str, int]] = {}
    if not relax:
        for k in np.nonzero(x > 0.5)[0].tolist():
            placements[jobs[col_job[k]].job_id] = (g.sites[col_s[k]], int(g.ticks[col_t[k]]))
        status = "optimal" if ms == highspy.HighsModelStatus.kOptimal else "feasible-timeout"
    else:
        status = "lp-lower-bound"
    return HindsightResult(total, status, name, placements, unplaced, len(col_c),
                           (time.perf_counter() - t0) * 1e3)


def _integrated(g: _Grid, job: Job, ti: int, si: int, tick_len_ms: int) -> float:
    total, left, k = 0.0, job.duration_ms, ti
    while left > 0:
        c = g.cost[si, min(k, g.n_t - 1)]
        if math.isnan(c):
            c = g.cost[si, ti]
        span = min(left, tick_len_ms)
        total += job.slots * span / HOUR_MS * c
        left -= span
        k += 1
    return total


# ----------------------------------------------------------------------------- plans
def plan_cost(jobs: Sequence[Job], timeline: Mapping[int, Sequence[SiteState]],
              placements: Mapping[str, tuple[str, int]]) -> float:
    """Start accounting: sum of compute_hours x cost per compute-hour at the start (site, tick)."""
    by_id = {j.job_id: j for j in jobs}
    costs = {(t, s.site_id): s.cost_per_compute_hour for t, states in timeline.items() for s in states}
    return sum(by_id[jid].compute_hours * costs[t, sid] for jid, (sid, t) in placements.items())


def plan_violations(jobs: Sequence[Job], timeline: Mapping[int, Sequence[SiteState]],
                    placements: Mapping[str, tuple[str, int]], *, tick_len_ms: int = DEFAULT_TICK_MS
                    ) -> list[tuple[int, str, int, int]]:
    """Where a plan breaks the hindsight model's rules: (tick, site, slots used, capacity) for
    every over-capacity tick, plus (tick, site, -1, 0) for a start outside the job's window, on a
    site it does not allow, or where the site cannot start it. Empty = feasible in the model, so
    the model's optimum (and its lower bound) is at most the plan's cost."""
    g = _Grid(timeline)
    by_id = {j.job_id: j for j in jobs}
    use = np.zeros_like(g.cap)
    bad: list[tuple[int, str, int, int]] = []
    for jid, (sid, t) in placements.items():
        job = by_id[jid]
        ti = int(np.searchsorted(g.ticks, t))
        lo, hi = g.window(job)
        si = g.site_no.get(sid)
        if (si is None or ti >= g.n_t or g.ticks[ti] != t or not lo <= ti < hi or not job.allows(sid)
                or not np.isfinite(g.start_cost(job.slots)[si, ti])):
            bad.append((t, sid, -1, 0))
            continue
        use[si, ti:ti + _ticks_running(job, tick_len_ms)] += job.slots
    for si, ti in zip(*np.nonzero(use > g.cap), strict=True):
        bad.append((int(g.ticks[ti]), g.sites[si], int(use[si, ti]), int(g.cap[si, ti])))
    return sorted(bad)


# ----------------------------------------------------------------------------- month scale
def _placeable(g: _Grid, jobs: list[Job]) -> tuple[list[Job], list[tuple[int, int, np.ndarray]], list[str]]:
    """Jobs with a finite start cost at some allowed site and tick, each with its tick window and
    site rows; and the ids of those that can never be placed."""
    keep: list[Job] = []
    info: list[tuple[int, int, np.ndarray]] = []
    never: list[str] = []
    for job in jobs:
        lo, hi = g.window(job)
        rows = g.site_rows(job)
        if hi > lo and len(rows) and np.isfinite(g.start_cost(job.slots)[rows, lo:hi]).any():
            keep.append(job)
            info.append((lo, hi, rows))
        else:
            never.append(job.job_id)
    return keep, info, never


def hindsight_bounds(
    jobs: Sequence[Job],
    timeline: Mapping[int, Sequence[SiteState]],
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    max_rounds: int = 60,
    time_limit_s: float = 600.0,
    mip_time_limit_s: float = 120.0,
    tol: float = 1e-9,
    seed_plans: Sequence[Mapping[str, tuple[str, int]]] = (),
    lp_strategy: int | None = None,
    lp_solver: str | None = None,
    log: Callable[[str], None] | None = None,
) -> HindsightBounds:
    """Lower and upper bounds on the hindsight optimum (start accounting) by column generation;
    see the module docstring. ``time_limit_s`` bounds the column generation (the bounds stay
    valid when it stops early, only wider); ``mip_time_limit_s`` the final restricted MILP."""
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    g = _Grid(timeline)
    all_jobs = _dedupe(jobs)
    n_s, n_t = len(g.sites), g.n_t
    # per job: window, sites, cheapest start (the capacity-relaxed choice)
    keep, info, never = _placeable(g, all_jobs)
    n_j = len(keep)
    if not n_j:
        return HindsightBounds(0.0, 0.0, 0.0, True, "empty", "none", unplaced=never, never=never,
                               n_jobs=len(all_jobs), seconds=time.perf_counter() - t0)
    ch = np.array([j.compute_hours for j in keep])
    slots = np.array([j.slots for j in keep], dtype=np.int64)
    dur = np.array([_ticks_running(j, tick_len_ms) for j in keep], dtype=np.int64)
    finite = g.cost[np.isfinite(g.cost)]
    spread = float(finite.max() - min(0.0, finite.min())) if len(finite) else 1.0
    penalty = 1.0 + float(ch.sum()) * max(spread, 1e-6) * 2  # above any change of the total cost

    # The master holds the one-start rows and only the *active* capacity rows (row generation:
    # a capacity row joins when the LP point breaks it). Rows left out have multiplier 0, which
    # keeps the Lagrangian bound valid; at convergence no row is broken and no column prices out.
    rowmap = np.full(n_s * n_t, -1, dtype=np.int64)  # flat (site * n_t + tick) -> master row
    n_rows = [n_j]
    # columns: parallel arrays, grown per round; a set of (j, t, s) keys to avoid duplicates
    col_j: list[np.ndarray] = []
    col_t: list[np.ndarray] = []
    col_s: list[np.ndarray] = []
    col_c: list[np.ndarray] = []
    seen: set[tuple[int, int, int]] = set()

    def add(h: highspy.Highs, js: list[int], ts: list[int], ss: list[int]) -> int:
        fresh = [(j, t, s) for j, t, s in zip(js, ts, ss, strict=True) if (j, t, s) not in seen]
        if not fresh:
            return 0
        seen.update(fresh)
        a = np.array(fresh, dtype=np.int64)
        jj, tt, ss_ = a[:, 0], a[:, 1], a[:, 2]
        cc = ch[jj] * g.cost[ss_, tt]
        col, flat = _runs(tt, ss_, dur[jj], n_t)
        r = rowmap[flat]
        on = r >= 0
        cols = np.concatenate([np.arange(len(jj)), col[on]])
        rows = np.concatenate([jj, r[on]])
        vals = np.concatenate([np.ones(len(jj)), slots[jj][col[on]].astype(np.float64)])
        order = np.argsort(cols, kind="stable")
        starts = np.zeros(len(jj), dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=len(jj))[:-1], out=starts[1:])
        _add_cols(h, cc, starts.astype(np.int32), rows[order].astype(np.int32), vals[order])
        col_j.append(jj)
        col_t.append(tt)
        col_s.append(ss_)
        col_c.append(cc)
        return len(fresh)

    def activate(h: highspy.Highs, flat_new: np.ndarray) -> None:
        """Add the capacity rows ``flat_new`` with their entries in every column so far."""
        first = n_rows[0]
        rowmap[flat_new] = first + np.arange(len(flat_new))
        n_rows[0] += len(flat_new)
        entries_r, entries_c, entries_v = [], [], []
        if col_j:
            jj, tt, ss_ = (np.concatenate(x) for x in (col_j, col_t, col_s))
            col, flat = _runs(tt, ss_, dur[jj], n_t)
            r = rowmap[flat]
            on = r >= first
            entries_r.append(r[on] - first)
            entries_c.append(n_j + col[on])
            entries_v.append(slots[jj][col[on]].astype(np.float64))
        rr = np.concatenate(entries_r) if entries_r else np.zeros(0, dtype=np.int64)
        rc_ = np.concatenate(entries_c) if entries_c else np.zeros(0, dtype=np.int64)
        rv = np.concatenate(entries_v) if entries_v else np.zeros(0)
        order = np.argsort(rr, kind="stable")
        starts = np.zeros(len(flat_new), dtype=np.int64)
        np.cumsum(np.bincount(rr, minlength=len(flat_new))[:-1], out=starts[1:])
        h.addRows(len(flat_new), np.full(len(flat_new), -INF), cap_flat[flat_new], len(rr),
                  starts.astype(np.int32), rc_[order].astype(np.int32), rv[order])

    def usage(x: np.ndarray) -> np.ndarray:
        """Slots in use per flat (site, tick) under the column values x (y columns only)."""
        jj, tt, ss_ = (np.concatenate(v) for v in (col_j, col_t, col_s))
        diff = np.zeros((n_s, n_t + 1))
        load = x * slots[jj]
        np.add.at(diff, (ss_, tt), load)
        np.add.at(diff, (ss_, np.minimum(tt + dur[jj], n_t)), -load)
        return np.cumsum(diff, axis=1)[:, :n_t].reshape(-1)

    cap_flat = g.cap.reshape(-1).astype(np.float64)
    h = _new_highs()
    if lp_strategy is not None:
        h.setOptionValue("simplex_strategy", lp_strategy)
    if lp_solver is not None:
        h.setOptionValue("solver", lp_solver)
    _add_rows(h, np.ones(n_j), np.ones(n_j))
    _add_cols(h, np.full(n_j, penalty), np.arange(n_j, dtype=np.int32), np.arange(n_j, dtype=np.int32),
              np.ones(n_j))  # u_j: columns 0..n_j-1

    # initial columns: each job's cheapest start (capacity relaxed), and feasible plans
    cheapest = np.empty(n_j)
    js, ts, ss = [], [], []
    for jn in range(n_j):
        lo, hi, rows = info[jn]
        sc = g.start_cost(int(slots[jn]))[rows, lo:hi]
        k = int(np.argmin(sc))
        si, ti = divmod(k, hi - lo)
        cheapest[jn] = ch[jn] * sc[si, ti]
        js.append(jn)
        ts.append(lo + ti)
        ss.append(int(rows[si]))
    add(h, js, ts, ss)
    job_no = {j.job_id: jn for jn, j in enumerate(keep)}
    plans: dict[str, list[tuple[int, int] | None]] = {}
    plans["greedy"] = _greedy_fill(g, info, slots, dur, g.cap.copy(), _tight_first(keep, info, slots))
    for n, seed in enumerate(seed_plans):
        p = _from_mapping(g, keep, job_no, info, slots, dur, seed)
        if p is not None:
            plans[f"seed{n}" if len(seed_plans) > 1 else "seed"] = p
    for p in plans.values():
        done = [jn for jn in range(n_j) if p[jn] is not None]
        add(h, done, [p[jn][0] for jn in done], [p[jn][1] for jn in done])
    say(f"hindsight: {n_j:,} jobs ({len(never)} never placeable), {n_s} sites x {n_t:,} ticks; "
        + ", ".join(f"{k} plan {_score(g, ch, p)[1]:,.2f} EUR ({n_j - _score(g, ch, p)[0]:,} placed)"
                    for k, p in plans.items())
        + f" [{time.perf_counter() - t0:.1f} s]")

    # column generation on the LP relaxation
    best_lb, lp_value, converged, rounds = -math.inf, math.nan, False, 0
    best_w = np.zeros((n_s, n_t))
    x_lp = None
    while rounds < max_rounds:
        rounds += 1
        t_lp = time.perf_counter()
        while True:
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                break
            x_all = np.asarray(h.getSolution().col_value)
            broken = np.nonzero((usage(x_all[n_j:]) > cap_flat + 1e-7) & (rowmap < 0))[0]
            if not len(broken):
                break
            activate(h, broken)
        t_lp = time.perf_counter() - t_lp
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            say(f"hindsight: master LP {h.modelStatusToString(h.getModelStatus())}")
            break
        t_lp0 = time.perf_counter()
        sol = h.getSolution()
        lp_value = h.getInfo().objective_function_value
        x_lp = np.asarray(sol.col_value)
        dual = np.asarray(sol.row_dual)
        mu = dual[:n_j]
        w = np.zeros(n_s * n_t)
        act = np.nonzero(rowmap >= 0)[0]
        w[act] = np.maximum(0.0, -dual[rowmap[act]])
        w = w.reshape(n_s, n_t)
        best, (js, ts, ss) = _price(g, info, ch, slots, dur, w, penalty, cheapest, mu, tol)
        t_pr = time.perf_counter() - t_lp0
        lb = float(best.sum() - np.dot(w.reshape(-1), cap_flat))
        if lb > best_lb:
            best_lb, best_w = lb, w
        added = add(h, js, ts, ss)
        say(f"hindsight round {rounds}: LP {lp_value:,.4f}  bound {lb:,.4f}  +{added:,} columns "
            f"({sum(len(c) for c in col_c):,} total, {n_rows[0] - n_j:,} capacity rows; LP {t_lp:.1f} s, "
            f"pricing {t_pr:.1f} s) [{time.perf_counter() - t0:.1f} s]")
        if not added:
            converged = True
            break
        if time.perf_counter() - t0 > time_limit_s:
            break

    cj, ct, cs, cc = (np.concatenate(x) for x in (col_j, col_t, col_s, col_c))
    if x_lp is not None:
        # LP rounding: keep the jobs the LP places integrally (a subset of a feasible LP point is
        # feasible), then fit the others greedily into the capacity they leave
        xv = x_lp[n_j:n_j + len(cj)]
        whole = np.nonzero(xv > 1 - 1e-7)[0]
        p: list[tuple[int, int] | None] = [None] * n_j
        free = g.cap.copy()
        for k in whole.tolist():
            jn = int(cj[k])
            if p[jn] is None:
                p[jn] = (int(ct[k]), int(cs[k]))
                free[cs[k], ct[k]:ct[k] + dur[jn]] -= slots[jn]
        if (free >= 0).all():
            rest = [jn for jn in _tight_first(keep, info, slots) if p[jn] is None]
            p = plans["lp-rounded"] = _greedy_fill(g, info, slots, dur, free, rest, p)
            done = [jn for jn in rest if p[jn] is not None]
            add(h, done, [p[jn][0] for jn in done], [p[jn][1] for jn in done])
            cj, ct, cs, cc = (np.concatenate(x) for x in (col_j, col_t, col_s, col_c))
    scores = {k: _score(g, ch, p) for k, p in plans.items()}
    say("hindsight: " + ", ".join(f"{k} plan {c:,.4f} EUR ({n_j - u:,} placed)" for k, (u, c) in scores.items()))
    start_name = min(scores, key=lambda k: scores[k])

    # upper bound: the MILP over the generated columns, the best heuristic plan as its start
    n_cols = len(cj)
    h.changeColsIntegrality(n_j + n_cols, np.arange(n_j + n_cols, dtype=np.int32),
                            np.ones(n_j + n_cols, dtype=np.uint8))
    start = np.zeros(n_j + n_cols)
    index = {(int(a), int(b), int(c)): n_j + k for k, (a, b, c) in enumerate(zip(cj, ct, cs, strict=True))}
    for jn, pl in enumerate(plans[start_name]):
        if pl is None:
            start[jn] = 1.0
        else:
            start[index[jn, pl[0], pl[1]]] = 1.0
    h.setOptionValue("time_limit", float(mip_time_limit_s))
    h.setOptionValue("mip_rel_gap", 1e-6)
    h.setOptionValue("solver", "choose")
    chosen_name, chosen = start_name, plans[start_name]
    mip_status = "not run"
    t_mip = time.perf_counter()
    for _ in range(5):  # the MILP sees only the active capacity rows: add any its plan breaks
        h.setSolution(_solution(start))
        h.run()
        mip_status = h.modelStatusToString(h.getModelStatus())
        if h.getInfo().primal_solution_status != 2:
            break
        x = np.asarray(h.getSolution().col_value)
        xi = (x[n_j:] > 0.5).astype(np.float64)
        broken = np.nonzero(usage(xi) > cap_flat + 1e-7)[0]
        if len(broken):
            activate(h, broken[rowmap[broken] < 0])
            mip_status = "broke inactive rows"
            if time.perf_counter() - t_mip > mip_time_limit_s:
                break
            continue
        mp: list[tuple[int, int] | None] = [None] * n_j
        for k in np.nonzero(xi)[0].tolist():
            mp[cj[k]] = (int(ct[k]), int(cs[k]))
        scores["restricted-milp"] = _score(g, ch, mp)
        u0, c0 = scores[start_name]
        if scores["restricted-milp"] < (u0, c0 - 1e-9 * max(1.0, abs(c0))):  # strictly better only
            chosen_name, chosen = "restricted-milp", mp
        break
    plan = _as_plan(g, keep, chosen)
    upper = scores[chosen_name][1]
    unplaced = sorted(set(never) | {j.job_id for j in keep if j.job_id not in plan})
    if len(plan) < n_j:  # the bound assumes every placeable job placed; the plan is not comparable
        status = "bounds-partial"
    elif upper - best_lb <= 1e-6 * max(1.0, abs(best_lb)):
        status = "optimal"
    else:
        status = "bounds"
    say(f"hindsight: lower {best_lb:,.4f}  upper {upper:,.4f} (restricted MILP: {mip_status}; plan from "
        f"{chosen_name}, {len(plan):,} placed) [{time.perf_counter() - t0:.1f} s]")
    heur = {k: (n_j - u, c) for k, (u, c) in scores.items()}
    return HindsightBounds(best_lb, upper, lp_value, converged, status, mip_status, plan, unplaced, never,
                           len(all_jobs), rounds, n_cols, chosen_name, heur, time.perf_counter() - t0, best_w)


def hindsight_blocked(
    jobs: Sequence[Job],
    timeline: Mapping[int, Sequence[SiteState]],
    *,
    block_ms: int = 7 * 24 * HOUR_MS,
    extend_ms: int = 3 * 24 * HOUR_MS,
    tick_len_ms: int = DEFAULT_TICK_MS,
    log: Callable[[str], None] | None = None,
    **kw,
) -> HindsightBounds:
    """``hindsight_bounds`` for timelines too long to solve at once, in consecutive blocks.

    Upper bound: jobs submitted in block b are planned (``hindsight_bounds``) on the ticks of b
    plus ``extend_ms``, their windows cut at that end, on the capacity the earlier blocks' plans
    leave; the union is a feasible plan of the whole timeline (a restriction: only better plans
    are excluded). Lower bound: each block's capacity multipliers w on its own ticks, stitched
    into one w over the whole timeline, give the Lagrangian bound L(w) of the *full* problem
    (every job, its full window, full capacity) -- valid for any w >= 0, so a true lower bound
    on the hindsight optimum, though not the full LP optimum."""
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    g = _Grid(timeline)
    all_jobs = _dedupe(jobs)
    n_s, n_t = len(g.sites), g.n_t
    if not n_t or not all_jobs:
        return hindsight_bounds(all_jobs, timeline, tick_len_ms=tick_len_ms, log=log, **kw)
    used = np.zeros_like(g.cap)
    w = np.zeros((n_s, n_t))
    plan: dict[str, tuple[str, int]] = {}
    by_id = {j.job_id: j for j in all_jobs}
    rounds = n_cols = blocks = 0
    mip = set()
    first = int(g.ticks[0])
    b0 = first
    while b0 <= int(g.ticks[-1]):
        b1 = b0 + block_ms
        lo = int(np.searchsorted(g.ticks, b0))
        mid = int(np.searchsorted(g.ticks, b1))
        hi = int(np.searchsorted(g.ticks, b1 + extend_ms))
        end_ms = int(g.ticks[hi - 1])
        sub_tl = {}
        for ti in range(lo, hi):
            states = []
            for si, sid in enumerate(g.sites):
                if not np.isnan(g.cost[si, ti]):
                    states.append(SiteState(sid, float(g.cost[si, ti]), int(max(0, g.cap[si, ti] - used[si, ti]))))
            sub_tl[int(g.ticks[ti])] = states
        sub_jobs = []
        for j in all_jobs:
            if b0 <= max(j.submitted_ms, first) < b1 or (blocks == 0 and j.submitted_ms < b0):
                # no-deadline jobs start within their own block; deadline jobs up to their deadline
                own_end = int(g.ticks[max(lo, mid - 1)])
                dl = own_end if j.deadline_ms is None else min(j.deadline_ms, end_ms)
                sub_jobs.append(replace(j, deadline_ms=dl))
        blocks += 1
        if sub_jobs:
            r = hindsight_bounds(sub_jobs, sub_tl, tick_len_ms=tick_len_ms, log=log, **kw)
            rounds += r.rounds
            n_cols += r.n_columns
            mip.add(r.mip_status)
            if r.multipliers is not None and r.multipliers.shape[1] == hi - lo:
                w[:, lo:mid] = np.maximum(w[:, lo:mid], r.multipliers[:, : mid - lo])
            for jid, (sid, t) in r.placements.items():
                plan[jid] = (sid, t)
                si, ti = g.site_no[sid], int(np.searchsorted(g.ticks, t))
                used[si, ti:ti + _ticks_running(by_id[jid], tick_len_ms)] += by_id[jid].slots
            say(f"hindsight block {blocks} ({len(sub_jobs):,} jobs): lower {r.lower_bound:,.4f} "
                f"upper {r.upper_bound:,.4f} ({r.plan_source}) [{time.perf_counter() - t0:.1f} s]")
        b0 = b1
    # the Lagrangian bound of the full problem at the stitched multipliers
    keep, info, never = _placeable(g, all_jobs)
    ch = np.array([j.compute_hours for j in keep])
    slots = np.array([j.slots for j in keep], dtype=np.int64)
    dur = np.array([_ticks_running(j, tick_len_ms) for j in keep], dtype=np.int64)
    cheapest = np.array([ch[jn] * np.min(g.start_cost(int(slots[jn]))[rows, lo:hi])
                         for jn, (lo, hi, rows) in enumerate(info)])
    # a block that could not place all its jobs has multipliers on its penalty's scale: cap w at
    # what a slot-tick can be worth (the cost spread of a compute-hour over one tick) and keep the
    # best of a few scalings -- L(w) is a valid bound for every w >= 0
    finite = g.cost[np.isfinite(g.cost)]
    w = np.minimum(w, float(finite.max() - min(0.0, finite.min())) * tick_len_ms / HOUR_MS)
    cap_flat = g.cap.reshape(-1).astype(np.float64)
    lower = -math.inf
    for alpha in (1.0, 0.5, 0.0):
        best, _ = _price(g, info, ch, slots, dur, alpha * w, math.inf, cheapest)
        lb = float(best.sum() - alpha * np.dot(w.reshape(-1), cap_flat))
        say(f"hindsight: L({alpha:g} w) = {lb:,.4f}")
        if lb > lower:
            lower, w_best = lb, alpha * w
    w = w_best
    # repair: jobs a block left out, greedily into the capacity the plan leaves (full windows)
    job_no = {j.job_id: jn for jn, j in enumerate(keep)}
    missing = [jn for jn in _tight_first(keep, info, slots) if keep[jn].job_id not in plan]
    if missing:
        fixed = _greedy_fill(g, info, slots, dur, g.cap - used, missing)
        for jn in missing:
            if fixed[jn] is not None:
                plan[keep[jn].job_id] = (g.sites[fixed[jn][1]], int(g.ticks[fixed[jn][0]]))
        say(f"hindsight: repaired {sum(f is not None for f in fixed):,} of {len(missing):,} jobs the blocks left out")
    del job_no
    upper = plan_cost(all_jobs, timeline, plan)
    unplaced = sorted(set(never) | {j.job_id for j in keep if j.job_id not in plan})
    status = "bounds-partial" if len(plan) < len(keep) else "bounds"
    say(f"hindsight ({blocks} blocks): lower {lower:,.4f}  upper {upper:,.4f}  ({len(plan):,} placed) "
        f"[{time.perf_counter() - t0:.1f} s]")
    return HindsightBounds(lower, upper, math.nan, False, status, "/".join(sorted(mip)), plan, unplaced, never,
                           len(all_jobs), rounds, n_cols, f"{blocks} blocks", {}, time.perf_counter() - t0, w,
                           blocks)


def _price(g: _Grid, info: list[tuple[int, int, np.ndarray]], ch: np.ndarray, slots: np.ndarray,
           dur: np.ndarray, w: np.ndarray, penalty: float, cheapest: np.ndarray, mu: np.ndarray | None = None,
           tol: float = 1e-9) -> tuple[np.ndarray, tuple[list[int], list[int], list[int]]]:
    """Per job, min over its (tick, site) starts (and leaving it out, at ``penalty``) of
    cost + slots x sum of ``w`` over its run; and, when ``mu`` is given, the columns whose reduced
    cost against ``mu`` is negative (per job, the best start per site). ``cheapest``: the
    capacity-relaxed cheapest start cost of each job (its value wherever w = 0)."""
    n_s, n_t = w.shape
    max_d = int(dur.max())
    wc = np.zeros((n_s, n_t + 1 + max_d))  # prefix sums of w, padded: a run past the end reads the total
    np.cumsum(w, axis=1, out=wc[:, 1:n_t + 1])
    wc[:, n_t + 1:] = wc[:, n_t:n_t + 1]
    best = np.minimum(cheapest, penalty)
    js: list[int] = []
    ts: list[int] = []
    ss: list[int] = []
    for jn, (lo, hi, rows) in enumerate(info):
        d = int(dur[jn])
        if not (wc[rows, hi - 1 + d] - wc[rows, lo] > 0).any():
            continue  # no positive w under any start: the cheapest start is the best column
        sc = g.start_cost(int(slots[jn]))[rows, lo:hi]
        rc = ch[jn] * sc + slots[jn] * (wc[rows, lo + d:hi + d] - wc[rows, lo:hi])
        per_site = rc.min(axis=1)
        best[jn] = min(penalty, float(per_site.min()))
        if mu is None:
            continue
        for r in np.nonzero(per_site < mu[jn] - tol * max(1.0, abs(mu[jn])))[0].tolist():
            js.append(jn)
            ts.append(lo + int(np.argmin(rc[r])))
            ss.append(int(rows[r]))
    return best, (js, ts, ss)


def _score(g: _Grid, ch: np.ndarray, p: list[tuple[int, int] | None]) -> tuple[int, float]:
    """(jobs left unplaced, cost): lower is better."""
    return (sum(x is None for x in p), float(sum(ch[jn] * g.cost[x[1], x[0]] for jn, x in enumerate(p) if x)))


def _tight_first(keep: list[Job], info: list[tuple[int, int, np.ndarray]], slots: np.ndarray) -> list[int]:
    return sorted(range(len(keep)), key=lambda jn: (info[jn][1] - info[jn][0], -slots[jn], keep[jn].job_id))


def _from_mapping(g: _Grid, keep: list[Job], job_no: dict[str, int], info, slots: np.ndarray, dur: np.ndarray,
                  seed: Mapping[str, tuple[str, int]]) -> list[tuple[int, int] | None] | None:
    """A given plan (job -> (site, tick)) as (tick index, site) per job, or None when it breaks the
    model (start outside the window or site, or over capacity at some tick)."""
    p: list[tuple[int, int] | None] = [None] * len(keep)
    use = np.zeros_like(g.cap)
    for jid, (sid, t) in seed.items():
        jn = job_no.get(jid)
        if jn is None:
            continue
        ti = int(np.searchsorted(g.ticks, t))
        si = g.site_no.get(sid)
        lo, hi, _ = info[jn]
        if (si is None or not lo <= ti < hi or g.ticks[ti] != t or not keep[jn].allows(sid)
                or not np.isfinite(g.start_cost(int(slots[jn]))[si, ti])):
            return None
        p[jn] = (ti, si)
        use[si, ti:ti + dur[jn]] += slots[jn]
    return p if (use <= g.cap).all() else None


def _solution(x: np.ndarray):
    sol = highspy.HighsSolution()
    sol.col_value = x.tolist()
    sol.value_valid = True
    return sol


def _as_plan(g: _Grid, keep: list[Job], p: list[tuple[int, int] | None]) -> dict[str, tuple[str, int]]:
    return {keep[jn].job_id: (g.sites[x[1]], int(g.ticks[x[0]])) for jn, x in enumerate(p) if x is not None}


def _cheapest_first(flat: np.ndarray, first: int):
    """Indices of the finite entries of ``flat``, cheapest first (``first`` is the argmin; the
    full sort only happens when it does not fit)."""
    yield first
    for k in np.argsort(flat, kind="stable").tolist():
        if not np.isfinite(flat[k]):
            return
        if k != first:
            yield k


def _greedy_fill(g: _Grid, info: list[tuple[int, int, np.ndarray]], slots: np.ndarray, dur: np.ndarray,
                 free: np.ndarray, order: list[int], out: list[tuple[int, int] | None] | None = None
                 ) -> list[tuple[int, int] | None]:
    """Place the jobs of ``order`` in turn, each at its cheapest (tick, site) whose ``free``
    capacity covers the whole run (``free`` is updated). (tick index, site) per job, or None."""
    out = list(out) if out is not None else [None] * len(info)
    for jn in order:
        lo, hi, rows = info[jn]
        d, need = int(dur[jn]), int(slots[jn])
        flat = g.start_cost(need)[rows, lo:hi].reshape(-1)
        first = int(np.argmin(flat))
        if not np.isfinite(flat[first]):
            continue
        for k in _cheapest_first(flat, first):
            si, ti = divmod(k, hi - lo)
            s, t = int(rows[si]), lo + ti
            if free[s, t:t + d].min() >= need:
                free[s, t:t + d] -= need
                out[jn] = (t, s)
                break
    return out
