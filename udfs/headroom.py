"""Headroom for urgent work: deferring cheap work must not take the room urgent work will need.

A plan that defers movable work into a site's cheap hours fills that site; urgent jobs pinned to
it that arrive then find no room and miss their start, where greedy (which starts everything at
once, spread over time) keeps them. So each site keeps free, for *urgent* jobs, as many slots as
urgent jobs pinned to it have recently needed at once, and *movable* jobs may use the rest:

* **urgent** (udfs.objective.is_urgent): the job's window (latest start - submission) is at most
  an hour: it cannot wait for a cheaper hour anyway. Urgent jobs may use every slot.
* **movable**: every other job. At every point of its run, the movable work running or planned at
  a site stays within capacity - reserve (``SitePlan.reserve``). A movable job at its last chance
  that greedy starts now is exempt (it is forced to start; udfs.objective ``forced``).
* **reserve** of a site at a tick: the peak, over the last ``WINDOW_MS``, of the slots that the urgent
  jobs pinned to the site (allow-list of that site alone) would have held at once had each started
  on submission: learned from what has arrived, nothing assumed.
* **start cap** (``SitePlan.start_cap``, ``start_cap``): at a site that keeps a reserve, at most
  ``START_CAP_FRACTION`` of its capacity in movable slots starts at one start point (never less
  than the largest movable job). Without it the plan starts a cheap hour's deferred work at once,
  those runs end together, and in between the site has no slot freeing up for an urgent job.

Measured in docs/BENCHMARKS.md "Contention with pinned urgent work" (bench_money's ``pinned``
variant) and held by tests/unit/test_headroom_property.py.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from udfs.objective import HOUR_MS, Job, is_urgent

WINDOW_MS = 24 * HOUR_MS  # how far back the urgent demand is remembered
# Of a site's derated capacity, the most movable slots that may start there at one start point, at
# sites that keep a reserve. On the pinned variant 0.2, 0.3 and 0.5 all met "no more misses than
# greedy in any priority class" (1, 2, 3 missed at +2.4, +2.0, +1.9 %); 0.3 is the middle of that
# trade (docs/BENCHMARKS.md).
START_CAP_FRACTION = 0.3


def start_cap(capacity_slots: int, reserve: int) -> int:
    """SitePlan.start_cap of a site: capped only where urgent work is pinned (a reserve is kept)."""
    return max(1, int(START_CAP_FRACTION * capacity_slots)) if reserve else 0


def pinned_site(job: Job) -> str | None:
    return job.sites[0] if job.sites is not None and len(job.sites) == 1 else None


class UrgentDemand:
    """Per site, the urgent pinned jobs seen (as if started on submission) and the peak of their
    concurrent slots over the last ``WINDOW_MS``, sampled at each tick."""

    def __init__(self) -> None:
        self.active: dict[str, list[tuple[int, int, int]]] = {}  # site -> [(submitted, end, slots)]
        self.peaks: dict[str, deque[tuple[int, int]]] = {}  # site -> (tick, slots in use then), last window

    def observe(self, job: Job) -> None:
        """A job newly submitted (call once per job: the dispatcher's de-duplication sees to it)."""
        site = pinned_site(job)
        if site is None or not is_urgent(job):
            return
        self.active.setdefault(site, []).append((job.submitted_ms, job.submitted_ms + job.duration_ms, job.slots))

    def advance(self, tick_ms: int) -> None:
        """Sample each site's urgent demand at the tick; forget what is older than the window."""
        for site in sorted(set(self.active) | set(self.peaks)):
            jobs = [a for a in self.active.get(site, ()) if a[1] > tick_ms]
            self.active[site] = jobs
            in_use = sum(n for s, _, n in jobs if s <= tick_ms)
            q = self.peaks.setdefault(site, deque())
            q.append((tick_ms, in_use))
            while q and q[0][0] <= tick_ms - WINDOW_MS:
                q.popleft()

    def reserve(self, site_id: str) -> int:
        q = self.peaks.get(site_id)
        # the peak, not a quantile: on the pinned variant the 0.9 and 0.97 quantiles cost less but
        # missed 12 and 9 urgent starts against the peak's 4 (docs/BENCHMARKS.md "Money")
        return max((n for _, n in q), default=0) if q else 0

    def to_state(self) -> dict[str, Any]:
        return {"active": {k: [list(a) for a in v] for k, v in self.active.items()},
                "peaks": {k: [list(p) for p in v] for k, v in self.peaks.items()}}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        self.active = {k: [tuple(a) for a in v] for k, v in state["active"].items()}  # type: ignore[misc]
        self.peaks = {k: deque(tuple(p) for p in v) for k, v in state["peaks"].items()}  # type: ignore[misc]
