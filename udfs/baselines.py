"""Baseline planners for one tick, scored with the same objective as the MILP.

All take the same inputs as :func:`udfs.dispatch.solve_dispatch` and return a plan
``{job_id: site_id}`` that respects capacity, allow-lists and deadlines; score it with
:func:`evaluate_objective` (re-exported here) or :func:`udfs.objective.plan_cost`.

* ``greedy_plan``: jobs in priority order (must-place jobs first, then priority, deadline,
  id), each to the cheapest feasible site with room (ties by site id). As a baseline it runs
  every job that fits now (``beneficial_only=False``: what a plain FIFO/priority scheduler
  does); the MILP's fallback uses ``beneficial_only=True`` (skip a job whose cost now
  exceeds its value, unless it must be placed).
* ``round_robin_plan``: jobs in priority order, sites in id order, a rotating pointer; each
  job goes to the next feasible site with room. Cost-blind.
* ``local_only_plan``: each job only in its home region, cheapest site there. Home region =
  region of the first site of the job's allow-list; else the catalogue's ``home_region`` if
  given; else the region of a site picked by a stable hash of the job id.
* ``price_only_plan``: like greedy but ranks sites by electricity price alone (cooling and
  IT power ignored); its *actual* cost is evaluated with the true cost per compute-hour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from udfs.objective import (
    DEFAULT_TICK_MS,
    DEFAULT_VALUES,
    Job,
    SiteState,
    TickProblem,
    ValueModel,
    evaluate_objective,
    must_place,
    plan_cost,
    tick_problem,
)

__all__ = [
    "evaluate_objective",
    "greedy_plan",
    "local_only_plan",
    "plan_cost",
    "price_only_plan",
    "round_robin_plan",
    "home_site",
]


def _job_order(prob: TickProblem) -> list[int]:
    def key(j: int) -> tuple:
        job = prob.jobs[j]
        dl = job.deadline_ms if job.deadline_ms is not None else float("inf")
        return (not must_place(job, prob.tick_ms, prob.tick_len_ms), job.priority, dl, job.job_id)

    return sorted(range(len(prob.jobs)), key=key)


def _fill(
    prob: TickProblem,
    site_key,
    *,
    beneficial_only: bool = False,  # noqa: ANN001
    allowed=None,
) -> dict[str, str]:  # noqa: ANN001
    """Shared loop: in job order, each job to the feasible site with room minimising site_key."""
    free = [s.available_slots for s in prob.sites]
    plan: dict[str, str] = {}
    for j in _job_order(prob):
        job = prob.jobs[j]
        best = None
        for s, c in enumerate(prob.coef[j]):
            if c is None or free[s] < job.slots or (allowed is not None and not allowed(j, s)):
                continue
            k = (site_key(s), prob.sites[s].site_id)
            if best is None or k < best[0]:
                best = (k, s)
        if best is None:
            continue
        s = best[1]
        if beneficial_only and prob.coef[j][s] >= 0:  # type: ignore[operator]
            continue  # costs more now than it is worth: wait for a cheaper tick
        free[s] -= job.slots
        plan[job.job_id] = prob.sites[s].site_id
    return plan


def _problem(
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    tick_len_ms: int,
    values: ValueModel,
    given: TickProblem | None,
) -> TickProblem:
    return given if given is not None else tick_problem(jobs, sites, tick_ms, tick_len_ms, values)


def greedy_plan(
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    values: ValueModel = DEFAULT_VALUES,
    beneficial_only: bool = False,
    _prob: TickProblem | None = None,
) -> dict[str, str]:
    prob = _problem(jobs, sites, tick_ms, tick_len_ms, values, _prob)
    return _fill(
        prob, lambda s: prob.sites[s].cost_per_compute_hour, beneficial_only=beneficial_only
    )


def price_only_plan(
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    values: ValueModel = DEFAULT_VALUES,
) -> dict[str, str]:
    prob = tick_problem(jobs, sites, tick_ms, tick_len_ms, values)
    for s in prob.sites:
        if s.price_per_mwh is None:
            raise ValueError(f"price_only_plan: site {s.site_id!r}: price_per_mwh missing")
    return _fill(prob, lambda s: prob.sites[s].price_per_mwh)


def round_robin_plan(
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    start: int = 0,
) -> dict[str, str]:
    """``start``: the pointer position (keep it across ticks for a true rotation)."""
    prob = tick_problem(jobs, sites, tick_ms, tick_len_ms)
    n = len(prob.sites)
    free = [s.available_slots for s in prob.sites]
    plan: dict[str, str] = {}
    ptr = start % n if n else 0
    for j in _job_order(prob):
        job = prob.jobs[j]
        for step in range(n):
            s = (ptr + step) % n
            if prob.coef[j][s] is not None and free[s] >= job.slots:
                free[s] -= job.slots
                plan[job.job_id] = prob.sites[s].site_id
                ptr = (s + 1) % n
                break
    return plan


def home_site(job: Job, site_ids: Iterable[str]) -> str | None:
    """A job's home site: the first of its allow-list, else a stable hash over the site ids."""
    if job.sites:
        return job.sites[0]
    ids = sorted(site_ids)
    if not ids:
        return None
    h = int.from_bytes(hashlib.sha1(job.job_id.encode("utf-8")).digest()[:8], "big")
    return ids[h % len(ids)]


def local_only_plan(
    jobs: Iterable[Job],
    sites: Iterable[SiteState],
    tick_ms: int,
    *,
    tick_len_ms: int = DEFAULT_TICK_MS,
    home_region: str | None = None,
    site_regions: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``site_regions``: region of every catalogue site (needed to resolve the home region of a
    site that is unavailable now); defaults to the regions carried by ``sites``."""
    prob = tick_problem(jobs, sites, tick_ms, tick_len_ms)
    regions = dict(site_regions or {})
    for s in prob.sites:
        regions.setdefault(s.site_id, s.region)

    def region_of(job: Job) -> str | None:
        if job.sites:
            return regions.get(job.sites[0])
        if home_region:
            return home_region
        h = home_site(job, regions)
        return regions.get(h) if h else None

    homes = [region_of(j) for j in prob.jobs]
    return _fill(
        prob,
        lambda s: prob.sites[s].cost_per_compute_hour,
        allowed=lambda j, s: homes[j] is not None and prob.sites[s].region == homes[j],
    )
