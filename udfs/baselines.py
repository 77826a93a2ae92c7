"""Start-now baseline policies of one tick, on the same :class:`udfs.objective.PlanProblem` as the
MILP, so every plan is scored with the same objective and the same hour-by-hour cost.

Each returns ``{job index: Option}`` with every chosen option starting now (what these rules do:
they never plan ahead); jobs that do not fit now wait for a later tick.

* ``greedy``: jobs in priority order (last-chance jobs first, then priority, deadline, id), each
  to the allowed site with room whose cost per compute-hour *now* is lowest (ties by site id).
  This is the rule the dispatcher had before it planned ahead, and the MILP's guard and warm start.
* ``round_robin``: the same job order, sites in id order from a rotating pointer; cost-blind.
* ``local_only``: each job only at its home site (``Job.home``, default the first entry of its
  allow-list as sent); a job without one runs at a site picked by a stable hash of its id among
  the catalogue's ``home_region`` sites (or all sites).
* ``price_only``: like greedy, but ranks sites by electricity price now alone (cooling and IT kW
  ignored); it is charged the true cost.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence

from udfs.objective import Option, PlanProblem, free_slots, greedy_order

Chosen = dict[int, Option]


def now_option(prob: PlanProblem, jn: int, si: int) -> Option:
    """The option "job jn starts now at site si" (the problem's own, or priced the same way)."""
    for o in prob.options[jn]:
        if o.site == si and o.start_ms == prob.tick_ms:
            return o
    option = prob.option_at(jn, si, prob.tick_ms)
    assert option is not None, "callers pick allowed sites with room"
    return option


def _fill(prob: PlanProblem, rank: Sequence[float], allowed: Callable[[int], str | None] | None = None,
          headroom: bool = False) -> Chosen:
    """Jobs in greedy order, each to the site of lowest ``rank`` (ties: site id) that it is allowed
    (``allowed``: per job, the one site it may use) and that has room for its whole run now."""
    # a job starting now needs room at every start point its run covers (placements held outside
    # the problem may start later, udfs.objective.restricted); movable work starting now keeps
    # under each site's start cap
    free = free_slots(prob).copy()
    free_movable = free_slots(prob, headroom=True).copy()
    cap_now = prob.start_cap_left[:, 0].copy()
    by_rank = sorted(range(len(prob.sites)), key=lambda si: (rank[si], si))  # sites are sorted by id
    chosen: Chosen = {}
    for jn in greedy_order(prob.jobs, prob.tick_ms, prob.tick_len_ms):
        job = prob.jobs[jn]
        n = job.slots
        held = headroom and prob.keeps_headroom(jn)
        only = allowed(jn) if allowed is not None else None
        run = bisect.bisect_left(prob.starts, prob.tick_ms + job.duration_ms)
        for si in by_rank:  # the first site that takes it is the best
            site_id = prob.sites[si].site_id
            if free[si, 0] < n or not job.allows(site_id) or (allowed is not None and site_id != only):
                continue
            if free[si, :run].min() < n:
                continue
            if held and (cap_now[si] < n or free_movable[si, :run].min() < n):
                continue
            free[si, :run] -= n
            if prob.keeps_headroom(jn):
                free_movable[si, :run] -= n
                cap_now[si] -= n
            chosen[jn] = now_option(prob, jn, si)
            break
    return chosen


def greedy(prob: PlanProblem, headroom: bool = False) -> Chosen:
    """``headroom``: movable jobs leave each site's urgent reserve free (the plan's safety net and
    warm start, udfs.headroom); without it, the plain rule (the baseline)."""
    return _fill(prob, [s.curve.rate_now() for s in prob.sites], headroom=headroom)


def price_only(prob: PlanProblem) -> Chosen:
    for s in prob.sites:
        if s.price_per_mwh is None:
            raise ValueError(f"price_only: site {s.site_id!r}: price_per_mwh missing")
    return _fill(prob, [s.price_per_mwh for s in prob.sites])


def round_robin(prob: PlanProblem, start: int = 0) -> tuple[Chosen, int]:
    """``start``: the pointer (keep it across ticks for a true rotation); returns (plan, next pointer)."""
    n = len(prob.sites)
    free = [s.available_slots for s in prob.sites]
    chosen: Chosen = {}
    ptr = start % n if n else 0
    for jn in greedy_order(prob.jobs, prob.tick_ms, prob.tick_len_ms):
        job = prob.jobs[jn]
        for step in range(n):
            si = (ptr + step) % n
            if job.allows(prob.sites[si].site_id) and free[si] >= job.slots:
                free[si] -= job.slots
                chosen[jn] = now_option(prob, jn, si)
                ptr = (si + 1) % n
                break
    return chosen, ptr


def hashed_site(job_id: str, site_ids: Iterable[str]) -> str | None:
    """A stable pick among ``site_ids`` by a hash of the job id."""
    ids = sorted(site_ids)
    if not ids:
        return None
    h = int.from_bytes(hashlib.sha1(job_id.encode("utf-8")).digest()[:8], "big")
    return ids[h % len(ids)]


def local_only(prob: PlanProblem, home_sites: Iterable[str]) -> Chosen:
    """``home_sites``: where a job without a home of its own may run (the catalogue's home region)."""
    homes = sorted(home_sites)

    def home(jn: int) -> str | None:
        job = prob.jobs[jn]
        return job.home_site or hashed_site(job.job_id, homes)

    return _fill(prob, [0.0] * len(prob.sites), allowed=home)
