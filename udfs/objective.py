"""The dispatch problem of one tick, planned ahead, and the objective every planner is scored with.

Shared by the MILP (``udfs.optimizer``), the baselines (``udfs.baselines``), the benchmarks and
the tests, so the optimizer and the baselines are compared under exactly the same function.

**What is decided.** At tick ``t0`` every pending job j gets at most one *option* o = (site s,
start t): s on its allow-list with a price now, t in the start grid ``t0`` ("now"), then every
hour boundary up to ``t0 + horizon`` (default 24 h; finer near now, coarser further out), and
``t <= latest_start_j``. Only the options starting now are committed; the rest of the plan is
what the dispatcher expects to do, revised at the next tick (model-predictive control).

**Objective** (minimised), for the options the plan uses::

    sum_{j, o = (s, t)}  cost_j(s, t) + delay_j(t) - bonus_j

* ``cost_j(s, t)`` = slots_j x the integral over the run ``[t, t + duration_j)`` of the site's
  cost per slot-hour (``CostCurve``: price x IT kW per slot x PUE / 1000 + fixed cost, in EUR),
  hour by hour: known offers where known (day-ahead included), udfs.forecast's forecast
  elsewhere; the PUE of the latest weather (persistence).
* ``delay_j(t)`` = ``rate_p`` x (t - submitted_j) in hours x ``ref_j``: the value of waiting,
  **relative to the job's own cost**: ``ref_j`` = |cost of the job now at its cheapest allowed
  site| and ``rate_p`` the fraction of that cost one hour of waiting is worth at priority p
  (``DelayModel.rate_per_hour`` = 0.1 % x 1.5^(9 - p): 0.1 %/h at priority 9, 0.5 %/h at 5,
  3.8 %/h at 0: a priority-9 job waits 20 hours for a price 2 % lower, a priority-0 job waits
  only for a much cheaper hour close by). No absolute currency constant: the same rule holds whatever
  one slot stands for. The rates are a business choice, calibrated on the sample
  (docs/BENCHMARKS.md "Money"): higher rates wait less and save less.
* ``bonus_j`` = ``B`` x (10 - priority_j), ``B`` = 1 + sum_j max_o |cost + delay|: larger than
  any change of the cost terms, so a plan that places one more job in the horizon always wins,
  and one job of a higher priority beats one of a lower (not lexicographic: two priority-5 jobs
  outweigh one priority-0 job); among plans placing the same jobs, cost and delay decide.

**Constraints.** Each job at most one option; capacity at every point p of the start grid and
every site: the slots of planned jobs running at p (a job holds its slots for its whole run) <=
the slots free at p (``available_slots`` now; later, the derated capacity minus the running
jobs still running then; checking the start points is exact, since usage only rises at a start
and the running jobs only release); allow-lists; ``latest_start_j`` = min(deadline, submitted +
``max_wait`` of its priority, 24 h by default) (hard; once passed, only "now"). **Priority:**
every job at its last chance (latest start before the next tick) that greedy-by-priority starts
now is *forced* to start now: no job greedy would start on time is missed at its last tick.
(Earlier, a job planned later keeps its slots in the plan, so later ticks do not give them away
lightly; a job that arrives later with a higher priority can still take them.)

**Reduction** (``Reduction``): each job keeps its 5 best options, the best start at each of its 5
best sites and its cheapest start now; its best option is always among them, so a plan of every
job at its best option that fits is optimal for the full problem (udfs.optimizer's presolve).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

DEFAULT_TICK_MS = 5 * 60_000
HOUR_MS = 3_600_000
DEFAULT_HORIZON_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Job:
    job_id: str
    compute_hours: float
    slots: int
    priority: int = 5
    deadline_ms: int | None = None  # latest start (inclusive)
    sites: tuple[str, ...] | None = None  # allow-list, in the order sent; None (or empty) = anywhere
    submitted_ms: int = 0
    home: str | None = None  # where it runs without GeoDispatch; default the first of `sites`

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not self.job_id:
            raise ValueError(f"job_id: must be a non-empty string, got {self.job_id!r}")
        h = self.compute_hours
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
            raise ValueError(f"job {self.job_id!r}: compute_hours: must be a finite number > 0, got {h!r}")
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots <= 0:
            raise ValueError(f"job {self.job_id!r}: slots: must be a positive integer, got {self.slots!r}")
        p = self.priority
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 9:
            raise ValueError(f"job {self.job_id!r}: priority: must be an integer 0..9, got {p!r}")
        for name in ("deadline_ms", "submitted_ms"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"job {self.job_id!r}: {name}: must be epoch ms (int), got {v!r}")
        if self.sites is not None:
            sites = tuple(self.sites)
            if not all(isinstance(s, str) and s for s in sites):
                raise ValueError(f"job {self.job_id!r}: sites: must be a list of site ids")
            # Tuple, duplicates dropped, order kept (the first entry is the job's default home).
            object.__setattr__(self, "sites", tuple(dict.fromkeys(sites)) or None)

    @functools.cached_property  # read in every plan's inner loops; the job is immutable
    def duration_ms(self) -> int:
        """Run time: compute_hours / slots hours (rounded up to the millisecond)."""
        return math.ceil(self.compute_hours / self.slots * HOUR_MS)

    @property
    def home_site(self) -> str | None:
        return self.home or (self.sites[0] if self.sites else None)

    def allows(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites


@dataclass(frozen=True)
class SiteState:
    """A site at one instant: what a start-now policy needs (and the hindsight timeline)."""

    site_id: str
    cost_per_compute_hour: float  # EUR per slot-hour, now
    available_slots: int
    region: str = ""
    price_per_mwh: float | None = None  # EUR/MWh now; only the price-only baseline needs it

    def __post_init__(self) -> None:
        c = self.cost_per_compute_hour
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            raise ValueError(f"site {self.site_id!r}: cost_per_compute_hour: must be a finite number, got {c!r}")
        a = self.available_slots
        if isinstance(a, bool) or not isinstance(a, int) or a < 0:
            raise ValueError(f"site {self.site_id!r}: available_slots: must be an integer >= 0, got {a!r}")


@dataclass(frozen=True)
class CostCurve:
    """A site's cost per slot-hour (EUR) from the tick on: piecewise constant on ``edges``, with the
    share of each segment that rests on known offers (the rest is forecast)."""

    edges: tuple[int, ...]  # ms; edges[0] = the tick
    rates: tuple[float, ...]  # EUR per slot-hour, per segment
    known: tuple[float, ...]  # 0..1 per segment

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.rates) + 1 or len(self.rates) != len(self.known) or not self.rates:
            raise ValueError("CostCurve: edges must be one longer than rates and known, and rates non-empty")
        e = np.asarray(self.edges, dtype=np.float64)
        widths = np.diff(e) / HOUR_MS
        r = np.asarray(self.rates, dtype=np.float64)
        kn = np.asarray(self.known, dtype=np.float64)
        object.__setattr__(self, "_e", e)
        object.__setattr__(self, "_cum", np.concatenate(([0.0], np.cumsum(r * widths))))
        object.__setattr__(self, "_cum_known", np.concatenate(([0.0], np.cumsum(r * widths * kn))))

    @classmethod
    def flat(cls, tick_ms: int, rate: float, end_ms: int) -> CostCurve:
        """One rate from the tick to ``end_ms`` (tests, start-now views)."""
        return cls((tick_ms, end_ms), (rate,), (1.0,))

    @property
    def end_ms(self) -> int:
        return self.edges[-1]

    def rate_now(self) -> float:
        return self.rates[0]

    def _at(self, cum: np.ndarray, t: np.ndarray) -> np.ndarray:
        # beyond the last edge the last rate continues (callers size curves to cover every run)
        e = self._e
        inside = np.interp(t, e, cum)
        beyond = np.maximum(0.0, t - e[-1]) / HOUR_MS * self.rates[-1]
        return inside + beyond

    def run_cost(self, start_ms: np.ndarray | float, duration_ms: np.ndarray | float) -> np.ndarray:
        """EUR per slot of running from ``start`` for ``duration`` (broadcasts)."""
        s = np.asarray(start_ms, dtype=np.float64)
        return self._at(self._cum, s + duration_ms) - self._at(self._cum, s)

    def run_cost_known(self, start_ms: np.ndarray | float, duration_ms: np.ndarray | float) -> np.ndarray:
        """The part of :meth:`run_cost` that rests on known offers."""
        s = np.asarray(start_ms, dtype=np.float64)
        e = self._e
        cum = self._cum_known
        return np.interp(s + duration_ms, e, cum) - np.interp(s, e, cum)


def _busy(releases: tuple[tuple[int, int], ...], t: np.ndarray) -> np.ndarray:
    """Slots of the given (end_ms, slots) runs still running at each time of ``t``."""
    if not releases:
        return np.zeros(len(t), dtype=np.int64)
    ends, slots = np.asarray(releases, dtype=np.int64).T
    return ((ends[None, :] > t[:, None]) * slots[None, :]).sum(axis=1)


@dataclass(frozen=True)
class SitePlan:
    """A site as the planner sees it at a tick."""

    site_id: str
    region: str
    available_slots: int  # free now
    capacity_slots: int  # derated capacity before commitments (held for the horizon: persistence)
    curve: CostCurve
    releases: tuple[tuple[int, int], ...] = ()  # (end_ms, slots) of the jobs running here now
    price_per_mwh: float | None = None  # EUR/MWh now (price-only baseline)
    reserve: int = 0  # slots movable work leaves free for urgent work (udfs.headroom)
    movable_releases: tuple[tuple[int, int], ...] = ()  # the part of `releases` that is movable work
    start_cap: int = 0  # most slots of movable work that may start here at one start point (0: no cap;
    # udfs.headroom.start_cap)

    def free_over(self, points: Sequence[int], tick_ms: int, movable: bool = False) -> np.ndarray:
        """Slots free at each of ``points`` (ms): now the available slots, later the capacity less
        the running jobs still running then; ``movable``: what movable work may take there
        (capacity - reserve - movable work running, and never more than is free)."""
        t = np.asarray(points, dtype=np.int64)
        free = np.maximum(0, self.capacity_slots - _busy(self.releases, t))
        free = np.where(t <= tick_ms, self.available_slots, free)
        if not movable:
            return free
        return np.minimum(free, np.maximum(0, self.capacity_slots - self.reserve - _busy(self.movable_releases, t)))

    def now(self) -> SiteState:
        return SiteState(self.site_id, self.curve.rate_now(), self.available_slots, self.region, self.price_per_mwh)


@dataclass(frozen=True)
class DelayModel:
    """How long a job may wait, by priority (index 0..9). Documented in the module docstring."""

    rate_per_hour: tuple[float, ...] = tuple(0.001 * 1.5 ** (9 - p) for p in range(10))
    max_wait_ms: tuple[int, ...] = (24 * HOUR_MS,) * 10

    def __post_init__(self) -> None:
        if len(self.rate_per_hour) != 10 or len(self.max_wait_ms) != 10:
            raise ValueError("DelayModel: one rate and one max wait per priority 0..9")
        if any(r < 0 for r in self.rate_per_hour) or any(w < 0 for w in self.max_wait_ms):
            raise ValueError("DelayModel: rates and waits must be >= 0")


DEFAULT_DELAY = DelayModel()


class Option(NamedTuple):
    site: int  # index into PlanProblem.sites
    start_ms: int
    cost: float  # EUR, whole run, hour by hour
    cost_known: float  # EUR of `cost` resting on known offers
    delay: float  # EUR-equivalent delay term


Plan = Mapping[str, tuple[str, int]]  # job_id -> (site_id, start_ms)


@dataclass(frozen=True)
class PlanProblem:
    """A tick's jobs, sites and options in canonical (sorted by id) order."""

    tick_ms: int
    tick_len_ms: int
    jobs: tuple[Job, ...]  # eligible, sorted by id
    sites: tuple[SitePlan, ...]  # with a price now, sorted by id
    starts: tuple[int, ...]  # the start grid
    options: tuple[tuple[Option, ...], ...]  # per job, sorted by (cost + delay, site id, start)
    bonus: tuple[float, ...]  # per job
    forced: frozenset[str]  # jobs that must start now (last chance, and greedy starts them now)
    expired: tuple[str, ...]  # job ids whose latest start passed before the tick (missed)
    ref_cost: tuple[float, ...] = field(default=())  # per job: |cost now at its cheapest site|
    delay_per_hour: tuple[float, ...] = field(default=())  # per job: rate_p x ref_cost
    movable: tuple[bool, ...] = field(default=())  # per job: not urgent (is_urgent), so held to the headroom
    # (site, start point) arrays of what placements outside this problem already hold (``restricted``):
    # slots running, movable slots running, movable slots starting
    held: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def coef(self, j: int, o: Option) -> float:
        return o.cost + o.delay - self.bonus[j]

    @functools.cached_property
    def free(self) -> np.ndarray:
        """Slots free at every (site, start point) before the plan (see ``free_slots``)."""
        return self._room([s.free_over(self.starts, self.tick_ms) for s in self.sites], 0)

    @functools.cached_property
    def free_movable(self) -> np.ndarray:
        return self._room([s.free_over(self.starts, self.tick_ms, movable=True) for s in self.sites], 1)

    @functools.cached_property
    def start_cap_left(self) -> np.ndarray:
        """Per (site, start point), the movable slots that may still start there: the site's
        ``start_cap``, never less than the largest movable job (none is shut out); no cap: more
        than any plan holds."""
        most = sum(j.slots for j in self.jobs) + 1
        largest = max((j.slots for jn, j in enumerate(self.jobs) if self.movable and self.movable[jn]), default=0)
        caps = np.asarray([max(s.start_cap, largest) if s.start_cap else 0 for s in self.sites], dtype=np.int64)
        left = self._room([np.full(len(self.starts), c) for c in caps], 2)
        return _frozen(np.where(caps[:, None] > 0, left, most))

    def _room(self, rows: list[np.ndarray], held: int) -> np.ndarray:
        a = np.asarray(rows, dtype=np.int64).reshape(len(rows), len(self.starts))
        if self.held is not None:
            a = np.maximum(0, a - self.held[held])
        return _frozen(a)

    def option_at(self, j: int, si: int, start_ms: int) -> Option | None:
        """Job j at site si from ``start_ms``, priced as ``plan_problem`` prices its options (None if
        the site is not allowed or too small)."""
        job, site = self.jobs[j], self.sites[si]
        if not job.allows(site.site_id) or job.slots > max(site.capacity_slots, site.available_slots):
            return None
        cost = job.slots * float(site.curve.run_cost(start_ms, job.duration_ms))
        known = job.slots * float(site.curve.run_cost_known(start_ms, job.duration_ms))
        return Option(si, start_ms, cost, known, self.delay_per_hour[j] * (start_ms - job.submitted_ms) / HOUR_MS)

    def fits(self, j: int, o: Option) -> bool:
        """Job j at option o fits the room before the plan (capacity, and for movable work the
        reserve and the start cap) at every start point of its run."""
        n = self.jobs[j].slots
        lo = bisect.bisect_left(self.starts, o.start_ms)
        hi = bisect.bisect_left(self.starts, o.start_ms + self.jobs[j].duration_ms)
        if not (self.free[o.site, lo:hi] >= n).all():
            return False
        return not self.keeps_headroom(j) or bool((self.free_movable[o.site, lo:hi] >= n).all()
                                                  and self.start_cap_left[o.site, lo] >= n)

    def keeps_headroom(self, j: int) -> bool:
        """Job j may not use the sites' reserve: movable, and not forced to start now."""
        return bool(self.movable) and self.movable[j] and self.jobs[j].job_id not in self.forced


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def is_expired(job: Job, tick_ms: int) -> bool:
    """The deadline (latest start) has passed: the job can never run."""
    return job.deadline_ms is not None and job.deadline_ms < tick_ms


URGENT_WINDOW_MS = HOUR_MS  # a job that must start within this of its submission cannot wait for a price


def is_urgent(job: Job, delay: DelayModel = DEFAULT_DELAY) -> bool:
    """The job's window (latest start - submission) is at most ``URGENT_WINDOW_MS``: it may use a
    site's reserve (udfs.headroom); every other job is *movable* and leaves the reserve free."""
    return latest_start(job, job.submitted_ms, delay) - job.submitted_ms <= URGENT_WINDOW_MS


def last_chance(job: Job, tick_ms: int, tick_len_ms: int = DEFAULT_TICK_MS) -> bool:
    """No later tick can start the job: not started now means missed."""
    return job.deadline_ms is not None and tick_ms <= job.deadline_ms < tick_ms + tick_len_ms


def latest_start(job: Job, tick_ms: int, delay: DelayModel = DEFAULT_DELAY,
                 horizon_ms: int = DEFAULT_HORIZON_MS) -> int:
    """The latest start the plan may give the job (>= the tick unless expired)."""
    limit = min(tick_ms + horizon_ms, max(tick_ms, job.submitted_ms + delay.max_wait_ms[job.priority]))
    return limit if job.deadline_ms is None else min(limit, job.deadline_ms)


def start_grid(tick_ms: int, horizon_ms: int = DEFAULT_HORIZON_MS) -> tuple[int, ...]:
    """Now, then every hour boundary after it up to ``tick + horizon``."""
    first = (tick_ms // HOUR_MS + 1) * HOUR_MS
    return (tick_ms, *range(first, tick_ms + horizon_ms + 1, HOUR_MS))


def greedy_order(jobs: Sequence[Job], tick_ms: int, tick_len_ms: int) -> list[int]:
    """Priority order: last-chance jobs first, then priority, deadline, id."""
    def key(j: int) -> tuple:
        job = jobs[j]
        dl = job.deadline_ms if job.deadline_ms is not None else math.inf
        return (not last_chance(job, tick_ms, tick_len_ms), job.priority, dl, job.job_id)

    return sorted(range(len(jobs)), key=key)


def _canonical(jobs: Iterable[Job], sites: Iterable[SitePlan]) -> tuple[list[Job], list[SitePlan]]:
    by_job: dict[str, Job] = {}
    for j in jobs:
        if j.job_id in by_job and by_job[j.job_id] != j:
            raise ValueError(f"job {j.job_id!r}: given twice with different fields")
        by_job[j.job_id] = j
    by_site: dict[str, SitePlan] = {}
    for s in sites:
        if s.site_id in by_site:
            raise ValueError(f"site {s.site_id!r}: given twice")
        by_site[s.site_id] = s
    return [by_job[k] for k in sorted(by_job)], [by_site[k] for k in sorted(by_site)]


@dataclass(frozen=True)
class Reduction:
    """Which options of each job enter the model: its ``top`` best overall, the ``per_site`` best
    starts at each of its ``sites`` best sites (room to move when a site fills up) and its
    cheapest start now. Each job's best option is always kept, so a plan of every job at its best
    option that fits is optimal for the full problem too."""

    top: int = 5
    per_site: int = 1
    sites: int = 5


DEFAULT_REDUCTION = Reduction()


def plan_problem(jobs: Iterable[Job], sites: Iterable[SitePlan], tick_ms: int, *,
                 tick_len_ms: int = DEFAULT_TICK_MS, horizon_ms: int = DEFAULT_HORIZON_MS,
                 delay: DelayModel = DEFAULT_DELAY, reduction: Reduction = DEFAULT_REDUCTION) -> PlanProblem:
    if isinstance(tick_len_ms, bool) or not isinstance(tick_len_ms, int) or tick_len_ms <= 0:
        raise ValueError(f"tick_len_ms: must be a positive int, got {tick_len_ms!r}")
    all_jobs, all_sites = _canonical(jobs, sites)
    expired = tuple(j.job_id for j in all_jobs if j.submitted_ms <= tick_ms and is_expired(j, tick_ms))
    js = [j for j in all_jobs if j.submitted_ms <= tick_ms and not is_expired(j, tick_ms)]
    starts = start_grid(tick_ms, horizon_ms)
    n_j, n_s, n_t = len(js), len(all_sites), len(starts)
    if n_j == 0 or n_s == 0:
        return PlanProblem(tick_ms, tick_len_ms, tuple(js), tuple(all_sites), starts, tuple(() for _ in js),
                           tuple(0.0 for _ in js), frozenset(), expired, tuple(0.0 for _ in js),
                           tuple(0.0 for _ in js))
    grid = np.asarray(starts, dtype=np.float64)
    dur = np.asarray([j.duration_ms for j in js], dtype=np.float64)
    slots = np.asarray([j.slots for j in js], dtype=np.float64)
    # cost[j, s, t]: the whole run, hour by hour, at every site and start (one vector call per site)
    cost = np.empty((n_j, n_s, n_t))
    known = np.empty((n_j, n_s, n_t))
    for si, site in enumerate(all_sites):
        cost[:, si, :] = site.curve.run_cost(grid[None, :], dur[:, None])
        known[:, si, :] = site.curve.run_cost_known(grid[None, :], dur[:, None])
    cost *= slots[:, None, None]
    known *= slots[:, None, None]
    avail = np.asarray([s.available_slots for s in all_sites])
    cap = np.asarray([max(s.capacity_slots, s.available_slots) for s in all_sites])
    site_ids = [s.site_id for s in all_sites]
    allowed = np.asarray([[j.allows(sid) for sid in site_ids] for j in js]) & (slots[:, None] <= cap[None, :])
    fits_now = allowed & (slots[:, None] <= avail[None, :])
    last = np.asarray([latest_start(j, tick_ms, delay, horizon_ms) for j in js], dtype=np.float64)
    in_time = grid[None, :] <= last[:, None]  # (j, t); t = 0 ("now") is always in time
    ok = allowed[:, :, None] & in_time[:, None, :]
    ok[:, :, 0] = fits_now
    now_cost = np.where(fits_now, cost[:, :, 0], np.inf)
    ref = np.abs(np.min(now_cost, axis=1))
    no_room = ~np.isfinite(ref)
    if no_room.any():  # nothing fits now: the cheapest allowed site now sets the scale
        ref[no_room] = np.abs(np.min(np.where(allowed, cost[:, :, 0], np.inf), axis=1))[no_room]
    ref[~np.isfinite(ref)] = 0.0
    rate = np.asarray([delay.rate_per_hour[j.priority] for j in js])
    wait_h = (grid[None, :] - np.asarray([j.submitted_ms for j in js], dtype=np.float64)[:, None]) / HOUR_MS
    dly = (rate * ref)[:, None] * wait_h  # (j, t)
    coef = np.where(ok, cost + dly[:, None, :], np.inf)
    flat = coef.reshape(n_j, n_s * n_t)
    # which options enter the model (Reduction), as a mask over (job, site x start)
    keep = np.zeros(flat.shape, dtype=bool)
    rows = np.arange(n_j)[:, None]
    order = np.argsort(flat, axis=1, kind="stable")  # canonical order: coef, then site (sorted by id), start
    keep[rows, order[:, : reduction.top]] = True
    best_site = np.argsort(coef, axis=2, kind="stable")[:, :, : reduction.per_site]  # (j, s, k)
    site_best = coef[rows, np.arange(n_s)[None, :], best_site[:, :, 0]]  # (j, s)
    top_sites = np.argsort(site_best, axis=1, kind="stable")[:, : reduction.sites]  # (j, m)
    at_site = np.take_along_axis(best_site, top_sites[:, :, None], axis=1)  # (j, m, k)
    keep[rows[:, :, None], top_sites[:, :, None] * n_t + at_site] = True
    keep &= np.isfinite(flat)
    now_jobs = np.flatnonzero(fits_now.any(axis=1))  # and each job's cheapest start now
    keep[now_jobs, np.argmin(now_cost[now_jobs], axis=1) * n_t] = True
    ranked = np.take_along_axis(keep, order, axis=1)
    job_of, rank = np.nonzero(ranked)  # row-major: by job, then in canonical order
    idx = order[job_of, rank]
    site_of, point = idx // n_t, idx % n_t
    made = zip(site_of.tolist(), np.asarray(starts)[point].tolist(), cost[job_of, site_of, point].tolist(),
               known[job_of, site_of, point].tolist(), dly[job_of, point].tolist(), strict=True)
    every = [Option(*o) for o in made]
    bounds = np.concatenate(([0], np.cumsum(np.bincount(job_of, minlength=n_j)))).tolist()
    options: list[tuple[Option, ...]] = [tuple(every[bounds[jn]:bounds[jn + 1]]) for jn in range(n_j)]
    base = 1.0 + sum(max((abs(o.cost + o.delay) for o in opts), default=0.0) for opts in options)
    bonus = tuple(base * (10 - j.priority) for j in js)
    # greedy by priority at the last chance: the jobs it starts now must start now in every plan
    free = avail.copy()
    forced = set()
    for jn in greedy_order(js, tick_ms, tick_len_ms):
        job = js[jn]
        if not last_chance(job, tick_ms, tick_len_ms):
            break
        room = [si for si in range(n_s) if fits_now[jn, si] and free[si] >= job.slots]
        if room:
            best = min(room, key=lambda si: (all_sites[si].curve.rate_now(), si))  # greedy's rule
            free[best] -= job.slots
            forced.add(job.job_id)
            if not any(o.site == best and o.start_ms == tick_ms for o in options[jn]):
                options[jn] = (*options[jn], Option(best, tick_ms, float(cost[jn, best, 0]),
                                                    float(known[jn, best, 0]), float(dly[jn, 0])))
    return PlanProblem(tick_ms, tick_len_ms, tuple(js), tuple(all_sites), starts, tuple(options), bonus,
                       frozenset(forced), expired, tuple(float(r) for r in ref),
                       tuple(float(d) for d in rate * ref), tuple(not is_urgent(j, delay) for j in js))


def usage(prob: PlanProblem, chosen: Mapping[int, Option], headroom_only: bool = False) -> np.ndarray:
    """Slots planned at every (site, start point); ``headroom_only``: of the jobs held to the headroom."""
    n_s, n_p = len(prob.sites), len(prob.starts)
    runs = [(o.site, o.start_ms, o.start_ms + prob.jobs[jn].duration_ms, prob.jobs[jn].slots)
            for jn, o in chosen.items() if not headroom_only or prob.keeps_headroom(jn)]
    if not runs:
        return np.zeros((n_s, n_p), dtype=np.int64)
    site, start, end, slots = (np.asarray(c, dtype=np.int64) for c in zip(*runs, strict=True))
    starts = np.asarray(prob.starts, dtype=np.int64)
    change = np.zeros((n_s, n_p + 1), dtype=np.int64)  # +slots where a run starts, -slots after it
    np.add.at(change, (site, np.searchsorted(starts, start)), slots)
    np.add.at(change, (site, np.searchsorted(starts, end)), -slots)
    return np.cumsum(change, axis=1)[:, :n_p]


def movable_starts(prob: PlanProblem, chosen: Mapping[int, Option]) -> np.ndarray:
    """Slots of the jobs held to the headroom starting at every (site, start point)."""
    started = np.zeros((len(prob.sites), len(prob.starts)), dtype=np.int64)
    for jn, o in chosen.items():
        if prob.keeps_headroom(jn):
            started[o.site, bisect.bisect_left(prob.starts, o.start_ms)] += prob.jobs[jn].slots
    return started


def free_slots(prob: PlanProblem, headroom: bool = False) -> np.ndarray:
    """Slots free at every (site, start point) before the plan; ``headroom``: free to movable work.
    Computed once per problem (read-only)."""
    return prob.free_movable if headroom else prob.free


def usage_violations(prob: PlanProblem, chosen: Mapping[int, Option]) -> list[str]:
    """Rule and capacity violations of a plan given as {job index: option} (empty when feasible)."""
    out = []
    for jn, o in chosen.items():
        job, site = prob.jobs[jn], prob.sites[o.site]
        if not job.allows(site.site_id):
            out.append(f"{job.job_id}: site {site.site_id!r} not in its allow-list")
        if o.start_ms not in prob.starts:
            out.append(f"{job.job_id}: start {o.start_ms} is not on the start grid")
    for jn, job in enumerate(prob.jobs):
        if job.job_id in prob.forced and (jn not in chosen or chosen[jn].start_ms != prob.tick_ms):
            out.append(f"{job.job_id}: at its last chance and greedy starts it now, but the plan does not")
    if prob.sites and prob.starts:
        over = np.argwhere(usage(prob, chosen) > free_slots(prob))
        for si, pi in over[:5]:
            out.append(f"site {prob.sites[si].site_id!r}: over capacity at {prob.starts[pi]}")
        if any(s.reserve for s in prob.sites):
            over = np.argwhere(usage(prob, chosen, headroom_only=True) > free_slots(prob, headroom=True))
            for si, pi in over[:5]:
                out.append(f"site {prob.sites[si].site_id!r}: movable work in the urgent reserve at {prob.starts[pi]}")
        if any(s.start_cap for s in prob.sites):
            over = np.argwhere(movable_starts(prob, chosen) > prob.start_cap_left)
            for si, pi in over[:5]:
                out.append(f"site {prob.sites[si].site_id!r}: movable starts over the cap at {prob.starts[pi]}")
    return out


def objective_of(prob: PlanProblem, chosen: Mapping[int, Option]) -> float:
    """The objective (lower is better) of a plan; raises ValueError when it breaks a rule."""
    bad = usage_violations(prob, chosen)
    if bad:
        raise ValueError("infeasible plan: " + "; ".join(bad[:3]))
    return sum(prob.coef(jn, chosen[jn]) for jn in sorted(chosen))  # fixed order: identical floats


def restricted(prob: PlanProblem, fixed: Mapping[int, Option]) -> PlanProblem:
    """The problem of the jobs not in ``fixed`` ({job index: option}), in the room the fixed
    placements leave (their slots running, movable slots running and starting held at every point)."""
    keep = [jn for jn in range(len(prob.jobs)) if jn not in fixed]
    held = (usage(prob, fixed), usage(prob, fixed, headroom_only=True), movable_starts(prob, fixed))
    if prob.held is not None:
        held = tuple(a + b for a, b in zip(prob.held, held, strict=True))  # type: ignore[assignment]

    def pick(values: tuple) -> tuple:
        return tuple(values[jn] for jn in keep) if values else values

    ids = {prob.jobs[jn].job_id for jn in keep}
    return replace(prob, jobs=pick(prob.jobs), options=pick(prob.options), bonus=pick(prob.bonus),
                   forced=prob.forced & ids, ref_cost=pick(prob.ref_cost), delay_per_hour=pick(prob.delay_per_hour),
                   movable=pick(prob.movable), held=held)


def as_plan(prob: PlanProblem, chosen: Mapping[int, Option]) -> dict[str, tuple[str, int]]:
    return {prob.jobs[jn].job_id: (prob.sites[o.site].site_id, o.start_ms) for jn, o in sorted(chosen.items())}


def from_plan(prob: PlanProblem, plan: Plan) -> dict[int, Option]:
    """{job index: option} of a plan {job_id: (site_id, start)}; KeyError if not an option."""
    j_index = {j.job_id: i for i, j in enumerate(prob.jobs)}
    out = {}
    for jid, (sid, start) in plan.items():
        jn = j_index[jid]
        out[jn] = next(o for o in prob.options[jn] if prob.sites[o.site].site_id == sid and o.start_ms == start)
    return out


def missed_jobs(prob: PlanProblem, starting_now: Iterable[str]) -> list[str]:
    """Expired jobs plus last-chance jobs that do not start now, sorted."""
    now = set(starting_now)
    late = [j.job_id for j in prob.jobs if j.job_id not in now and last_chance(j, prob.tick_ms, prob.tick_len_ms)]
    return sorted(set(prob.expired) | set(late))
