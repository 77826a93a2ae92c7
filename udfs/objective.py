"""The dispatch problem of one tick and the objective every planner is scored with.

Shared by the MILP (``udfs.dispatch``), the baselines (``udfs.baselines``) and the tests, so
the optimizer and the baselines are compared under exactly the same function.

Objective (minimised) of a plan ``x`` (x[j, s] = 1 when job j starts at site s this tick):

    sum_j sum_s x[j, s] * (h_j * c_s - v_j(t) - M_j(t))

* ``h_j`` compute-hours of job j; ``c_s`` cost per compute-hour of site s now (EUR);
* ``v_j(t) = h_j * base * growth**(9 - priority_j) * (1 + boost * u_j(t))``, the value of
  running j now, per compute-hour proportional to an exponential priority weight (priority 0
  is the most urgent) and rising linearly with deadline pressure
  ``u_j(t) = clip(1 - (deadline_j - t) / horizon, 0, 1)`` (0 without a deadline). A job is
  worth starting now only where its cost per compute-hour is below its value rate, so
  deferrable, low-priority work waits for a cheaper tick;
* ``M_j(t)`` is the *must-place* bonus of a job whose latest start falls before the next tick
  (``t <= deadline_j <= t + tick_len``): ``M_j = B * (10 - priority_j)`` with
  ``B = 1 + sum_j (v_j + max_s |h_j c_s|)`` over the tick's jobs and sites. B exceeds any
  change of the rest of the objective, so a plan that places one more must-place job always
  wins (higher priority first); among them the ordinary cost/value terms decide. 0 otherwise.

Feasibility: each job at most one site; per site sum of slots <= available slots; a site only
if it is in the job's allow-list (when it has one); no start after the deadline (a job whose
deadline is before the tick is *missed*); a job not yet submitted at the tick is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_TICK_MS = 5 * 60_000
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Job:
    job_id: str
    compute_hours: float
    slots: int
    priority: int = 5
    deadline_ms: int | None = None  # latest start (inclusive)
    sites: tuple[str, ...] | None = None  # allow-list; None (or empty) = anywhere
    submitted_ms: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not self.job_id:
            raise ValueError(f"job_id: must be a non-empty string, got {self.job_id!r}")
        h = self.compute_hours
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
            raise ValueError(
                f"job {self.job_id!r}: compute_hours: must be a finite number > 0, got {h!r}"
            )
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots <= 0:
            raise ValueError(
                f"job {self.job_id!r}: slots: must be a positive integer, got {self.slots!r}"
            )
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
            # Tuple, duplicates dropped, order kept (the first entry is the job's home site).
            object.__setattr__(self, "sites", tuple(dict.fromkeys(sites)) or None)

    @property
    def duration_ms(self) -> int:
        """Run time: compute_hours / slots hours (rounded up to the millisecond)."""
        return math.ceil(self.compute_hours / self.slots * HOUR_MS)

    def allows(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites


@dataclass(frozen=True)
class SiteState:
    site_id: str
    cost_per_compute_hour: float  # EUR per slot-hour, at this tick
    available_slots: int
    region: str = ""
    price_per_mwh: float | None = None  # EUR/MWh; only the price-only baseline needs it

    def __post_init__(self) -> None:
        c = self.cost_per_compute_hour
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            raise ValueError(
                f"site {self.site_id!r}: cost_per_compute_hour: must be a finite number, got {c!r}"
            )
        a = self.available_slots
        if isinstance(a, bool) or not isinstance(a, int) or a < 0:
            raise ValueError(
                f"site {self.site_id!r}: available_slots: must be an integer >= 0, got {a!r}"
            )
        p = self.price_per_mwh
        if p is not None and (
            isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p)
        ):
            raise ValueError(
                f"site {self.site_id!r}: price_per_mwh: must be a finite number, got {p!r}"
            )


@dataclass(frozen=True)
class ValueModel:
    """Parameters of the value term (see the module docstring)."""

    base_value_per_compute_hour: float = 0.02  # EUR, priority 9 without deadline pressure
    priority_growth: float = 1.5  # x per priority level: priority 0 is worth 1.5**9 ~ 38x
    urgency_horizon_ms: int = 4 * HOUR_MS  # deadline pressure starts this long before it
    urgency_boost: float = 2.0  # value x (1 + boost) right at the deadline

    def __post_init__(self) -> None:
        if not (
            self.base_value_per_compute_hour >= 0
            and self.priority_growth >= 1
            and self.urgency_horizon_ms > 0
            and self.urgency_boost >= 0
        ):
            raise ValueError("ValueModel: base >= 0, growth >= 1, horizon > 0, boost >= 0 required")


DEFAULT_VALUES = ValueModel()

Plan = Mapping[str, str]  # job_id -> site_id


def is_expired(job: Job, tick_ms: int) -> bool:
    """The latest start has passed: the job can never run."""
    return job.deadline_ms is not None and job.deadline_ms < tick_ms


def must_place(job: Job, tick_ms: int, tick_len_ms: int = DEFAULT_TICK_MS) -> bool:
    """Latest start within this tick's window: place now if at all possible.

    Conservative by one boundary: a deadline exactly on the next tick counts, so the job still
    has that tick as a second chance (``last_chance`` below decides "missed")."""
    return job.deadline_ms is not None and tick_ms <= job.deadline_ms <= tick_ms + tick_len_ms


def last_chance(job: Job, tick_ms: int, tick_len_ms: int = DEFAULT_TICK_MS) -> bool:
    """No later tick can start the job: not placed now means missed."""
    return job.deadline_ms is not None and tick_ms <= job.deadline_ms < tick_ms + tick_len_ms


def eligible(job: Job, tick_ms: int) -> bool:
    return job.submitted_ms <= tick_ms and not is_expired(job, tick_ms)


def job_value(job: Job, tick_ms: int, values: ValueModel = DEFAULT_VALUES) -> float:
    """v_j(t) in EUR (without the must-place bonus)."""
    rate = values.base_value_per_compute_hour * values.priority_growth ** (9 - job.priority)
    urgency = 0.0
    if job.deadline_ms is not None:
        slack = job.deadline_ms - tick_ms
        urgency = min(1.0, max(0.0, 1.0 - slack / values.urgency_horizon_ms))
    return job.compute_hours * rate * (1.0 + values.urgency_boost * urgency)


def feasible(job: Job, site: SiteState) -> bool:
    """Static feasibility of the pair (allow-list and size) — capacity sharing aside."""
    return job.allows(site.site_id) and job.slots <= site.available_slots


@dataclass(frozen=True)
class TickProblem:
    """A tick's jobs and sites in canonical (sorted by id) order with all coefficients.

    ``coef[j][s]`` is the objective coefficient of x[j, s], or None when infeasible.
    Everything downstream iterates these sorted lists, so shuffled inputs give identical
    models and identical plans.
    """

    jobs: tuple[Job, ...]  # eligible jobs, sorted by id
    sites: tuple[SiteState, ...]  # sites with available slots, sorted by id
    tick_ms: int
    tick_len_ms: int
    values: tuple[float, ...]
    bonus: tuple[float, ...]
    coef: tuple[tuple[float | None, ...], ...]
    expired: tuple[str, ...]  # job ids whose deadline already passed (missed)


def _canonical(
    jobs: Iterable[Job], sites: Iterable[SiteState]
) -> tuple[list[Job], list[SiteState]]:
    by_job: dict[str, Job] = {}
    for j in jobs:
        if j.job_id in by_job and by_job[j.job_id] != j:
            raise ValueError(f"job {j.job_id!r}: given twice with different fields")
        by_job[j.job_id] = j
    by_site: dict[str, SiteState] = {}
    for s in sites:
        if s.site_id in by_site and by_site[s.site_id] != s:
            raise ValueError(f"site {s.site_id!r}: given twice with different fields")
        by_site[s.site_id] = s
    return [by_job[k] for k in sorted(by_job)], [by_site[k] for k in sorted(by_site)]


def tick_problem(
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    tick_len_ms: int = DEFAULT_TICK_MS,
    values: ValueModel = DEFAULT_VALUES,
) -> TickProblem:
    if isinstance(tick_len_ms, bool) or not isinstance(tick_len_ms, int) or tick_len_ms <= 0:
        raise ValueError(f"tick_len_ms: must be a positive int, got {tick_len_ms!r}")
    all_jobs, all_sites = _canonical(jobs, sites)
    expired = tuple(
        j.job_id for j in all_jobs if j.submitted_ms <= tick_ms and is_expired(j, tick_ms)
    )
    js = [j for j in all_jobs if eligible(j, tick_ms)]
    ss = [s for s in all_sites if s.available_slots > 0]
    vals = [job_value(j, tick_ms, values) for j in js]
    base = 1.0
    for j, v in zip(js, vals, strict=True):
        base += v + max((abs(j.compute_hours * s.cost_per_compute_hour) for s in ss), default=0.0)
    bonus = [base * (10 - j.priority) if must_place(j, tick_ms, tick_len_ms) else 0.0 for j in js]
    coef = tuple(
        tuple(
            j.compute_hours * s.cost_per_compute_hour - v - b if feasible(j, s) else None
            for s in ss
        )
        for j, v, b in zip(js, vals, bonus, strict=True)
    )
    return TickProblem(
        tuple(js), tuple(ss), tick_ms, tick_len_ms, tuple(vals), tuple(bonus), coef, expired
    )


def evaluate_objective(
    plan: Plan,
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    values: ValueModel = DEFAULT_VALUES,
) -> float:
    """The objective (lower is better) of ``plan`` — the same function for every planner.

    Raises ValueError if the plan breaks a constraint (see :func:`plan_violations`)."""
    prob = tick_problem(jobs, sites, tick_ms, tick_len_ms, values)
    return objective_of(prob, plan)


def objective_of(prob: TickProblem, plan: Plan) -> float:
    bad = violations_of(prob, plan)
    if bad:
        raise ValueError("infeasible plan: " + "; ".join(bad[:3]))
    j_index = {j.job_id: i for i, j in enumerate(prob.jobs)}
    s_index = {s.site_id: i for i, s in enumerate(prob.sites)}
    total = 0.0
    for job_id in sorted(plan):  # fixed summation order: identical plans, identical floats
        c = prob.coef[j_index[job_id]][s_index[plan[job_id]]]
        assert c is not None
        total += c
    return total


def plan_violations(
    plan: Plan,
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
) -> list[str]:
    """Human-readable constraint violations of ``plan`` (empty when feasible)."""
    return violations_of(tick_problem(jobs, sites, tick_ms, tick_len_ms), plan)


def violations_of(prob: TickProblem, plan: Plan) -> list[str]:
    jobs = {j.job_id: j for j in prob.jobs}
    sites = {s.site_id: s for s in prob.sites}
    out: list[str] = []
    used: dict[str, int] = {}
    for job_id, site_id in sorted(plan.items()):
        job = jobs.get(job_id)
        site = sites.get(site_id)
        if job is None:
            out.append(f"{job_id}: not eligible at this tick (unknown, future or expired)")
            continue
        if site is None:
            out.append(f"{job_id}: site {site_id!r} unknown or without available slots")
            continue
        if not job.allows(site_id):
            out.append(f"{job_id}: site {site_id!r} not in its allow-list")
        used[site_id] = used.get(site_id, 0) + job.slots
    for site_id, n in sorted(used.items()):
        if n > sites[site_id].available_slots:
            out.append(
                f"site {site_id!r}: {n} slots placed > {sites[site_id].available_slots} available"
            )
    return out


def plan_cost(plan: Plan, jobs: Iterable[Job], sites: Iterable[SiteState]) -> float:
    """EUR cost of a plan: sum of compute_hours x cost per compute-hour of the chosen site."""
    jmap = {j.job_id: j for j in jobs}
    smap = {s.site_id: s for s in sites}
    return sum(jmap[j].compute_hours * smap[plan[j]].cost_per_compute_hour for j in sorted(plan))


def missed_jobs(prob: TickProblem, plan: Plan) -> list[str]:
    """Expired jobs plus last-chance jobs this plan leaves unplaced, sorted."""
    late = [
        j.job_id
        for j in prob.jobs
        if j.job_id not in plan and last_chance(j, prob.tick_ms, prob.tick_len_ms)
    ]
    return sorted(set(prob.expired) | set(late))


def by_id(items: Sequence[SiteState]) -> dict[str, SiteState]:
    return {s.site_id: s for s in items}
