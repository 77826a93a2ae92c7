"""Data side of the dashboard: configuration, the site catalogue (the job's own loader,
``udfs.catalogue``), the incremental topic reader and the pure fold of output records into what
the page shows.

Nothing here imports Streamlit. ``DashboardState`` is a plain fold (``apply`` one record at a
time, then ask for tables and KPIs) tested without Kafka; ``TopicReader`` owns one
read_committed consumer with manual partition assignment and no consumer group, keeps its
positions between refreshes and only fetches what is new.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udfs import topics as T
from udfs.catalogue import Site
from udfs.catalogue import load_catalogue as load_site_catalogue
from udfs.timeutil import format_ts, parse_ts_ms

REPO = Path(__file__).resolve().parents[1]

# Kinds of records the page reads, in the order they are listed in the sidebar.
SITE_COSTS = "site_costs"
DISPATCH = "dispatch"
JOBS = "jobs"
METRICS = "metrics"
DEAD_LETTER = "dead_letter"
KINDS = (SITE_COSTS, DISPATCH, JOBS, METRICS, DEAD_LETTER)
_DEFAULT_TOPICS = {
    SITE_COSTS: T.SITE_COSTS,
    DISPATCH: T.DISPATCH,
    JOBS: T.JOBS,
    METRICS: T.PIPELINE_METRICS,
    DEAD_LETTER: T.DEAD_LETTER,
}
STATUSES = ("dispatched", "cancelled", "missed-deadline", "rejected")
METRIC_FIELDS = (
    "pending_jobs",
    "dispatched",
    "missed_deadline",
    "cancelled",
    "rejected",
    "solve_ms",
    "solver",
    "objective",
    "objective_greedy",
    "objective_naive",
    "cost",
    "cost_greedy",
    "cost_naive",
    "offers_expired",
    "late_events",
    "duplicates",
    "dead_letters",
)


# ---------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class DashboardConfig:
    """Read once from the environment (see ``from_env``)."""

    bootstrap: str = "127.0.0.1:9092"
    sites_path: str = "conf/sites.yaml"
    topic_prefix: str = ""
    topic_overrides: tuple[tuple[str, str], ...] = ()
    refresh_s: float = 3.0
    history_points: int = 4000
    max_records_per_refresh: int = 200_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardConfig:
        env = os.environ if env is None else env
        overrides = tuple(
            (kind, env[f"GRD_TOPIC_{kind.upper()}"]) for kind in KINDS if env.get(f"GRD_TOPIC_{kind.upper()}")
        )
        return cls(
            bootstrap=env.get("KAFKA_BOOTSTRAP", cls.bootstrap),
            sites_path=env.get("GRD_SITES", cls.sites_path),
            topic_prefix=env.get("GRD_TOPIC_PREFIX", ""),
            topic_overrides=overrides,
            refresh_s=max(0.5, float(env.get("GRD_DASHBOARD_REFRESH_S", cls.refresh_s))),
            history_points=max(10, int(env.get("GRD_DASHBOARD_HISTORY", cls.history_points))),
            max_records_per_refresh=max(
                1, int(env.get("GRD_DASHBOARD_MAX_RECORDS", cls.max_records_per_refresh))
            ),
        )

    def topic(self, kind: str) -> str:
        """Topic name for a record kind: GRD_TOPIC_<KIND> if set, else GRD_TOPIC_PREFIX + default."""
        override = dict(self.topic_overrides).get(kind)
        return override or self.topic_prefix + _DEFAULT_TOPICS[kind]

    @property
    def topics(self) -> dict[str, str]:
        return {kind: self.topic(kind) for kind in KINDS}


# ---------------------------------------------------------------------------- site catalogue
def load_catalogue(path: str | os.PathLike[str]) -> tuple[dict[str, Site], str | None]:
    """The job's own catalogue (``udfs.catalogue``), by site_id -> (sites, problem): a missing,
    unreadable or invalid file gives no sites and a one-line reason instead of an exception."""
    p = Path(path)
    if not p.is_file() and not p.is_absolute() and (REPO / p).is_file():
        p = REPO / p  # the default conf/sites.yaml, when the page was started from another directory
    if not p.is_file():
        return {}, f"site catalogue {p} not found (set GRD_SITES)"
    try:
        catalogue = load_site_catalogue(p)
    except (OSError, ValueError) as exc:
        return {}, f"site catalogue {p} unreadable: {str(exc).splitlines()[0]}"
    return {site.site_id: site for site in catalogue}, None


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------- the fold
def _ts(value: Any) -> int | None:
    try:
        return parse_ts_ms(value)
    except ValueError:
        return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return _float_or_none(value)


def like_for_like_saving_pct(cost: float | None, compute_hours: float | None, greedy_cost: float | None,
                             greedy_compute_hours: float | None) -> float | None:
    """1 - (plan's realised EUR per compute-hour) / (the shadow greedy's), in %, over each one's
    finished jobs: bench.bench_money's "EUR/ch vs greedy", with the sign of a saving."""
    if not cost or not compute_hours or not greedy_cost or not greedy_compute_hours:
        return None
    return (1 - (cost / compute_hours) / (greedy_cost / greedy_compute_hours)) * 100


@dataclass
class Kpis:
    dispatched: int = 0
    cancelled: int = 0
    missed_deadline: int = 0
    rejected: int = 0
    pending: int = 0
    pipeline_pending: int | None = None
    ticks: int = 0
    latest_tick: str | None = None
    solver: str | None = None
    solve_ms: float | None = None
    cum_cost: float | None = None
    cum_greedy: float | None = None
    cum_naive: float | None = None
    saving_vs_greedy_pct: float | None = None  # realised, like for like: plan vs the shadow greedy
    expected_saving_vs_greedy_pct: float | None = None  # expected cost vs greedy priced at first sight
    shadow_completed_jobs: int | None = None
    completed_compute_hours: float | None = None
    shadow_completed_realised: float | None = None
    shadow_completed_compute_hours: float | None = None
    saving_vs_naive_pct: float | None = None
    dead_letters: int = 0
    offers_expired: float | None = None
    late_events: float | None = None
    duplicates: float | None = None
    lag: int | None = None
    lag_by_topic: dict[str, int] = field(default_factory=dict)
    # Records still to read of those the topics held when the page started (None: caught up).
    backlog: int | None = None
    planned: int | None = None  # pending jobs the latest plan starts later (waiting for a cheaper hour)
    completed_jobs: int | None = None
    completed_expected: float | None = None  # what the finished jobs were expected to cost at dispatch
    completed_realised: float | None = None  # what they cost at the offers that actually held

    @property
    def realised_vs_expected_pct(self) -> float | None:
        if not self.completed_expected or self.completed_realised is None:
            return None
        return (self.completed_realised / self.completed_expected - 1) * 100

    @property
    def catching_up(self) -> bool:
        return self.backlog is not None

    def pending_text(self) -> str:
        """The one pending count the page shows (tile and queue heading): none while catching up,
        when jobs may have been read before the decisions about them."""
        return "catching up" if self.catching_up else f"{self.pending:,}"


class DashboardState:
    """Everything the page shows, folded from records one at a time.

    Output topics are exactly-once, but the fold still de-duplicates (site-costs by site and
    tick, decisions by ``decision_id``, metrics by tick, dead letters by their source
    coordinates) so a replayed or re-read record never counts twice.
    """

    def __init__(self, history_points: int = 4000, recent_decisions: int = 2000) -> None:
        self.history_points = history_points
        self.costs_latest: dict[str, dict[str, Any]] = {}  # site_id -> record (+ _tick_ms)
        self.costs_series: dict[str, dict[int, dict[str, Any]]] = {}  # site -> tick_ms -> record
        self.decisions: dict[str, dict[str, Any]] = {}  # decision_id -> record (bounded by recent_decisions)
        self.decision_order: deque[str] = deque()
        self.recent_decisions = recent_decisions
        self.status_counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self._seen_decisions: set[str] = set()
        self.job_decision: dict[str, dict[str, Any]] = {}  # job_id -> latest decision
        self.submitted: dict[str, dict[str, Any]] = {}  # job_id -> submit record (+ _submitted_ms)
        self.cancel_requested: dict[str, int | None] = {}  # job_id -> submitted_at ms of the cancel
        # (tick_ms, shard) -> metrics record: a sharded job writes one record per shard and tick
        self.metrics: dict[tuple[int, int], dict[str, Any]] = {}
        self.dead_letters = 0
        self._seen_dead: set[tuple[Any, Any, Any]] = set()
        self.recent_dead: deque[dict[str, Any]] = deque(maxlen=50)
        self.unreadable: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.event_time_ms: int | None = None  # the newest timestamp of any record read (inputs run ahead)
        self.dispatcher_ms: int | None = None  # the dispatcher's newest tick (pipeline-metrics): its clock

    # -- folding --------------------------------------------------------------------------
    def apply(self, kind: str, value: bytes | str | Mapping[str, Any] | None) -> bool:
        """Fold one record of ``kind``; False (and counted as unreadable) when it cannot be used."""
        record = self._decode(value)
        ok = record is not None and getattr(self, f"_apply_{kind}")(record)
        if ok:
            self.counts[kind] += 1
        else:
            self.unreadable[kind] += 1
        return ok

    def apply_all(self, kind: str, values: Iterable[bytes | str | Mapping[str, Any] | None]) -> int:
        return sum(1 for v in values if self.apply(kind, v))

    @staticmethod
    def _decode(value: bytes | str | Mapping[str, Any] | None) -> dict[str, Any] | None:
        if isinstance(value, Mapping):
            return dict(value)
        if value is None:
            return None
        try:
            record = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def _see_time(self, ms: int | None) -> None:
        if ms is not None and (self.event_time_ms is None or ms > self.event_time_ms):
            self.event_time_ms = ms

    def _apply_site_costs(self, r: dict[str, Any]) -> bool:
        site, tick = r.get("site_id"), _ts(r.get("tick"))
        if not isinstance(site, str) or not site or tick is None:
            return False
        r["_tick_ms"] = tick
        series = self.costs_series.setdefault(site, {})
        series[tick] = r
        if len(series) > self.history_points * 5 // 4:
            # Keep the newest ticks; trimming in batches keeps the cost per record constant.
            for old in sorted(series)[: len(series) - self.history_points]:
                del series[old]
        latest = self.costs_latest.get(site)
        if latest is None or tick >= latest["_tick_ms"]:
            self.costs_latest[site] = r
        self._see_time(tick)
        return True

    def _apply_dispatch(self, r: dict[str, Any]) -> bool:
        job, status = r.get("job_id"), r.get("status")
        if not isinstance(job, str) or not job or not isinstance(status, str):
            return False
        tick = _ts(r.get("tick"))
        r["_tick_ms"] = tick
        decision_id = str(r.get("decision_id") or f"{job}/{status}/{r.get('tick')}/{r.get('site_id')}")
        if decision_id in self._seen_decisions:
            return True  # a duplicate: already counted
        self._seen_decisions.add(decision_id)
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        self.decisions[decision_id] = r
        self.decision_order.append(decision_id)
        while len(self.decision_order) > self.recent_decisions:
            self.decisions.pop(self.decision_order.popleft(), None)
        previous = self.job_decision.get(job)
        if previous is None or (tick or 0) >= (previous.get("_tick_ms") or 0):
            self.job_decision[job] = r
        self._see_time(tick)
        return True

    def _apply_jobs(self, r: dict[str, Any]) -> bool:
        job, action = r.get("job_id"), r.get("action")
        if not isinstance(job, str) or not job:
            return False
        at = _ts(r.get("submitted_at"))
        if action == "submit":
            if at is None:
                return False
            r["_submitted_ms"] = at
            self.submitted.setdefault(job, r)  # a re-sent submit keeps the first one
        elif action == "cancel":
            self.cancel_requested.setdefault(job, at)
        else:
            return False
        self._see_time(at)
        return True

    def _apply_metrics(self, r: dict[str, Any]) -> bool:
        tick = _ts(r.get("tick"))
        if tick is None:
            return False
        r["_tick_ms"] = tick
        self.metrics[(tick, int(_num(r.get("shard")) or 0))] = r
        self._see_time(tick)
        if self.dispatcher_ms is None or tick > self.dispatcher_ms:
            self.dispatcher_ms = tick
        return True

    def _apply_dead_letter(self, r: dict[str, Any]) -> bool:
        coords = (r.get("topic"), r.get("partition"), r.get("offset"))
        if coords != (None, None, None):
            if coords in self._seen_dead:
                return True
            self._seen_dead.add(coords)
        self.dead_letters += 1
        self.recent_dead.append(r)
        return True

    # -- views ----------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return not any(self.counts.values())

    @property
    def clock_ms(self) -> int | None:
        """The page's one clock: the dispatcher's tick (its watermark), not the newest input (day-ahead
        offers are published a day early); before its first tick, the newest record's time."""
        return self.dispatcher_ms if self.dispatcher_ms is not None else self.event_time_ms

    def inputs_ahead_ms(self) -> int:
        """How far the newest input record runs ahead of the dispatcher's clock."""
        if self.dispatcher_ms is None or self.event_time_ms is None:
            return 0
        return max(0, self.event_time_ms - self.dispatcher_ms)

    def latest_metrics(self) -> list[dict[str, Any]]:
        """The pipeline-metrics records of the latest tick (one per dispatch shard)."""
        if not self.metrics:
            return []
        latest = max(tick for tick, _ in self.metrics)
        return [r for (tick, _), r in sorted(self.metrics.items()) if tick == latest]

    def plan(self) -> list[dict[str, Any]]:
        """The latest plan's waiting jobs (soonest start first), each with a line saying why it waits."""
        rows = []
        for r in self.latest_metrics():
            for p in r.get("plan") or ():
                if isinstance(p, dict) and p.get("job_id") and p.get("start_at"):
                    rows.append({**p, "why": plan_text(p)})
        rows.sort(key=lambda p: (str(p["start_at"]), str(p["job_id"])))
        return rows

    def pending_jobs(self) -> list[dict[str, Any]]:
        """The dispatcher's own queue at its latest tick (pipeline-metrics ``queue``: seen and not
        decided, oldest first, at most its first 500), each with its plan or "not planned yet"; ages
        on the dispatcher's clock. The Pending tile counts the dispatcher's ``pending_jobs``."""
        why = {p["job_id"]: p["why"] for p in self.plan()}
        now = self.clock_ms
        rows = []
        for r in self.latest_metrics():
            for q in r.get("queue") or ():
                if not isinstance(q, dict) or not q.get("job_id") or _ts(q.get("submitted_at")) is None:
                    continue
                submitted = _ts(q["submitted_at"])
                deadline = _ts(q.get("deadline")) if q.get("deadline") is not None else None
                sites = q.get("sites")
                if q["job_id"] in why:
                    plan = why[q["job_id"]]
                elif q.get("site_id") and q.get("start_at"):
                    plan = plan_text(q)
                else:
                    plan = "not planned yet"
                rows.append({
                    "job_id": q["job_id"],
                    "priority": q.get("priority"),
                    "compute_hours": _num(q.get("compute_hours")),
                    "slots": q.get("slots"),
                    "submitted_at": format_ts(submitted),
                    "age_min": round(max(0, (now or submitted) - submitted) / 60000, 1),
                    "deadline": format_ts(deadline) if deadline is not None else None,
                    "to_deadline_min": (
                        round((deadline - (now or submitted)) / 60000, 1) if deadline is not None else None
                    ),
                    "sites": ", ".join(map(str, sites)) if isinstance(sites, list) and sites else "any",
                    "plan": plan,
                })
        rows.sort(key=lambda row: (row["submitted_at"], row["job_id"]))
        return rows

    def unseen_jobs(self) -> list[dict[str, Any]]:
        """Submitted, not decided or cancelled, and not in the dispatcher's latest queue: it has not
        reached them yet (beyond a queue it listed only in part: those submitted after its clock)."""
        lasts = self.latest_metrics()
        queued = {q.get("job_id") for r in lasts for q in (r.get("queue") or ()) if isinstance(q, dict)}
        listed_all = sum(len(r.get("queue") or ()) for r in lasts) >= sum(_num(r.get("pending_jobs")) or 0
                                                                          for r in lasts)
        clock = self.dispatcher_ms

        def seen(job_id: str, submitted: int) -> bool:
            return job_id in queued or (not listed_all and clock is not None and submitted <= clock)

        rows = [{"job_id": job_id, "priority": r.get("priority"), "submitted_at": format_ts(r["_submitted_ms"])}
                for job_id, r in self.submitted.items()
                if job_id not in self.job_decision and job_id not in self.cancel_requested
                and not seen(job_id, r["_submitted_ms"])]
        rows.sort(key=lambda row: (row["submitted_at"], row["job_id"]))
        return rows

    def latest_decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest decisions first (by tick, then arrival)."""
        order = {d: i for i, d in enumerate(self.decision_order)}
        newest = sorted(self.decisions.items(), key=lambda kv: (kv[1].get("_tick_ms") or 0, order[kv[0]]), reverse=True)
        rows = []
        for decision_id, r in newest[:limit]:
            rows.append(
                {
                    "tick": r.get("tick"),
                    "job_id": r.get("job_id"),
                    "status": r.get("status"),
                    "site_id": r.get("site_id"),
                    "start_at": r.get("start_at"),
                    "end_at": r.get("end_at"),
                    "expected_cost": _num(r.get("expected_cost")),
                    "cost_per_compute_hour": _num(r.get("cost_per_compute_hour")),
                    "solver": r.get("solver"),
                    "solve_ms": _num(r.get("solve_ms")),
                    "reason": r.get("reason"),
                    "decision_id": decision_id,
                }
            )
        return rows

    def current_costs(self, catalogue: Mapping[str, Site] | None = None) -> list[dict[str, Any]]:
        """One row per site (catalogue sites first, then any site seen only in the stream)."""
        catalogue = catalogue or {}
        site_ids = list(catalogue) + sorted(s for s in self.costs_latest if s not in catalogue)
        rows = []
        for site_id in site_ids:
            site = catalogue.get(site_id)
            r = self.costs_latest.get(site_id, {})
            rows.append(
                {
                    "site_id": site_id,
                    "name": site.name if site else site_id,
                    "region": site.region if site else "",
                    "price_data": "synthetic price" if (site and site.price_synthetic) else "real market price",
                    "lat": site.lat if site else None,
                    "lon": site.lon if site else None,
                    "tick": r.get("tick"),
                    "price_per_mwh": _num(r.get("price_per_mwh")),
                    "currency": site.currency if site else "",
                    "offer_valid_to": r.get("offer_valid_to"),
                    "temp_c": _num(r.get("temp_c")),
                    "rel_humidity": _num(r.get("rel_humidity")),
                    "pue": _num(r.get("pue")),
                    "cooling_kw": _num(r.get("cooling_kw")),
                    "cost_per_compute_hour": _num(r.get("cost_per_compute_hour")),
                    "available_slots": r.get("available_slots"),
                    "capacity_slots": r.get("capacity_slots", site.capacity_slots if site else None),
                    "available": r.get("available") if r else None,
                }
            )
        return rows

    def site_series(self, sites: Iterable[str] | None = None, since_ms: int | None = None) -> list[dict[str, Any]]:
        """Long-format time series rows: site_id, tick (ISO), and the four plotted measures."""
        wanted = list(self.costs_series) if sites is None else [s for s in sites if s in self.costs_series]
        rows = []
        for site in wanted:
            for tick_ms in sorted(self.costs_series[site]):
                if since_ms is not None and tick_ms < since_ms:
                    continue
                r = self.costs_series[site][tick_ms]
                rows.append(
                    {
                        "site_id": site,
                        "tick": format_ts(tick_ms),
                        "price_per_mwh": _num(r.get("price_per_mwh")),
                        "cost_per_compute_hour": _num(r.get("cost_per_compute_hour")),
                        "pue": _num(r.get("pue")),
                        "available_slots": _num(r.get("available_slots")),
                        "temp_c": _num(r.get("temp_c")),
                        "available": r.get("available"),
                    }
                )
        return rows

    def cost_series(self) -> list[dict[str, Any]]:
        """Cumulative cost of the chosen plan and of the baselines, per metrics tick."""
        rows = []
        totals = {"cost": 0.0, "cost_greedy": 0.0, "cost_naive": 0.0}
        keys = sorted(self.metrics)
        for i, (tick_ms, shard) in enumerate(keys):
            r = self.metrics[(tick_ms, shard)]
            for name in totals:
                value = _num(r.get(name))
                if value is not None:
                    totals[name] += value
            if i + 1 == len(keys) or keys[i + 1][0] != tick_ms:  # the tick's last shard
                rows.append({"tick": format_ts(tick_ms), **{f"cum_{k}": v for k, v in totals.items()}})
        return rows

    def kpis(
        self,
        lag_by_topic: Mapping[str, int] | None = None,
        backlog: int | None = None,
    ) -> Kpis:
        """The tiles. Pending is the dispatcher's own count at its latest tick (the queue below lists
        the same jobs, its first 500); ``backlog``: see Kpis."""
        k = Kpis(
            dispatched=self.status_counts.get("dispatched", 0),
            cancelled=self.status_counts.get("cancelled", 0),
            missed_deadline=self.status_counts.get("missed-deadline", 0),
            rejected=self.status_counts.get("rejected", 0),
            pending=0,
            backlog=backlog,
            dead_letters=self.dead_letters,
            ticks=len({tick for tick, _ in self.metrics}),
        )
        if lag_by_topic is not None:
            k.lag_by_topic = dict(lag_by_topic)
            k.lag = sum(lag_by_topic.values())
        if self.metrics:
            latest = max(tick for tick, _ in self.metrics)
            lasts = [r for (tick, _), r in sorted(self.metrics.items()) if tick == latest]
            k.latest_tick = format_ts(latest)
            pending = [p for p in (_num(r.get("pending_jobs")) for r in lasts) if p is not None]
            k.pipeline_pending = int(sum(pending)) if pending else None
            k.pending = k.pipeline_pending or 0
            k.solver = lasts[0].get("solver") if isinstance(lasts[0].get("solver"), str) else None
            solve = [v for v in (_num(r.get("solve_ms")) for r in lasts) if v is not None]
            k.solve_ms = max(solve) if solve else None  # shards solve side by side

            def total(name: str) -> float | None:
                values = [v for v in (_num(r.get(name)) for r in lasts) if v is not None]
                return sum(values) if values else None

            planned = total("planned_jobs")
            k.planned = None if planned is None else int(planned)
            done = total("completed_jobs")
            k.completed_jobs = None if done is None else int(done)
            k.completed_expected = total("completed_expected_cost")
            k.completed_realised = total("completed_realised_cost")
            k.completed_compute_hours = total("completed_compute_hours")
            shadow_done = total("shadow_completed_jobs")
            k.shadow_completed_jobs = None if shadow_done is None else int(shadow_done)
            k.shadow_completed_realised = total("shadow_completed_realised_cost")
            k.shadow_completed_compute_hours = total("shadow_completed_compute_hours")
            k.saving_vs_greedy_pct = like_for_like_saving_pct(
                k.completed_realised, k.completed_compute_hours, k.shadow_completed_realised,
                k.shadow_completed_compute_hours)
        # Cumulative cost against each baseline over the ticks where both numbers exist.
        cost_all = greedy_cost = greedy = naive_cost = naive = 0.0
        have = {"cost": False, "greedy": False, "naive": False}
        sums: dict[str, float | None] = {"offers_expired": None, "late_events": None, "duplicates": None}
        for r in self.metrics.values():
            c, g, n = _num(r.get("cost")), _num(r.get("cost_greedy")), _num(r.get("cost_naive"))
            if c is not None:
                cost_all += c
                have["cost"] = True
                if g is not None:
                    greedy_cost += c
                    greedy += g
                if n is not None:
                    naive_cost += c
                    naive += n
            if g is not None:
                have["greedy"] = True
            if n is not None:
                have["naive"] = True
            for name in sums:
                value = _num(r.get(name))
                if value is not None:
                    sums[name] = (sums[name] or 0.0) + value
        k.cum_cost = cost_all if have["cost"] else None
        k.cum_greedy = greedy if have["greedy"] and have["cost"] else None
        k.cum_naive = naive if have["naive"] and have["cost"] else None
        k.expected_saving_vs_greedy_pct = (greedy - greedy_cost) / greedy * 100 if greedy > 0 else None
        k.saving_vs_naive_pct = (naive - naive_cost) / naive * 100 if naive > 0 else None
        k.offers_expired, k.late_events, k.duplicates = sums["offers_expired"], sums["late_events"], sums["duplicates"]
        if self.counts[DISPATCH] == 0 and self.metrics:
            # No dispatch records read yet: fall back to the pipeline's own per-tick counters.
            for attr, name in (("dispatched", "dispatched"), ("missed_deadline", "missed_deadline")):
                total = sum(_num(r.get(name)) or 0 for r in self.metrics.values())
                setattr(k, attr, int(total))
        return k

    def hints(self, missing_topics: Iterable[str] = ()) -> list[str]:
        """What to start, for the parts of the page that have nothing to show yet."""
        missing = list(missing_topics)
        hints = []
        if missing:
            hints.append(f"Topics not created yet: {', '.join(missing)}. Run `make topics` (or `make demo`).")
        if not self.counts[SITE_COSTS]:
            hints.append(
                "No site costs yet: start the replay of price and weather data (`make replay`) "
                "and the dispatch job (`make job-local`, or `make job` on a Flink cluster)."
            )
        if not self.counts[JOBS]:
            hints.append("No jobs submitted yet: stream synthetic jobs with `make jobs`, or submit one in the sidebar.")
        elif not self.counts[DISPATCH]:
            hints.append("Jobs are waiting but no dispatch decision has arrived: is the dispatch job running? "
                         "(`make job-local`)")
        return hints


# ---------------------------------------------------------------------------- the reader
ConsumerFactory = Callable[[DashboardConfig], Any]


def default_consumer(config: DashboardConfig) -> Any:
    """One consumer for all five topics: no group (nothing committed), read_committed."""
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=config.bootstrap,
        client_id="geodispatch-dashboard",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        allow_auto_create_topics=False,
        request_timeout_ms=4000,  # bounds how long a refresh waits when the broker went away
        api_version_auto_timeout_ms=3000,
        reconnect_backoff_max_ms=2000,
        fetch_max_wait_ms=200,
        max_poll_records=5000,
    )


@dataclass
class PollResult:
    ok: bool
    new_records: int = 0
    error: str | None = None


class TopicReader:
    """Keeps one consumer and its positions across refreshes; ``poll`` folds only new records.

    Thread-safe: Streamlit runs every browser session (and its fragment reruns) in its own
    thread while they share this object through ``st.cache_resource``.
    """

    def __init__(
        self,
        config: DashboardConfig,
        consumer_factory: ConsumerFactory = default_consumer,
        min_interval_s: float = 0.0,
        metadata_refresh_s: float = 10.0,
    ) -> None:
        self.config = config
        self.state = DashboardState(history_points=config.history_points)
        self.lock = threading.RLock()
        self._factory = consumer_factory
        self._consumer: Any = None
        self._kind_of: dict[str, str] = {topic: kind for kind, topic in config.topics.items()}
        self._assigned: set[Any] = set()
        self._metadata_at = 0.0
        self._metadata_refresh_s = metadata_refresh_s
        self._min_interval_s = min_interval_s
        self.missing_topics: list[str] = list(config.topics.values())
        self.connected = False
        self.last_error: str | None = None
        self.last_poll_at: float | None = None
        self.records_read = 0
        self.lag_by_topic: dict[str, int] = {}
        # Catching up: the end offsets of each partition when the reader first saw it, until it has
        # read up to all of them (then `caught_up` stays True; later records are live updates).
        self._backlog_ends: dict[Any, int] = {}
        self._backlog_left: int | None = None
        self.caught_up = False
        self.backlog_total = 0

    @property
    def backlog(self) -> int | None:
        """Records still to read (as of the last poll) of those the topics held when the reader first
        saw them; None once it has read them all, or before it has seen any partition."""
        return None if self.caught_up else self._backlog_left

    # -- connection -----------------------------------------------------------------------
    def _connect(self) -> None:
        if self._consumer is None:
            self._consumer = self._factory(self.config)
            self._assigned = set()
            self._metadata_at = 0.0

    def _refresh_assignment(self, force: bool = False) -> None:
        from kafka import TopicPartition

        now = time.monotonic()
        if not force and self._assigned and not self.missing_topics and now - self._metadata_at < 60:
            return
        if not force and now - self._metadata_at < self._metadata_refresh_s:
            return
        self._metadata_at = now
        wanted: set[Any] = set()
        missing = []
        for topic in self.config.topics.values():
            partitions = self._consumer.partitions_for_topic(topic)
            if not partitions:
                missing.append(topic)
            wanted.update(TopicPartition(topic, p) for p in partitions or ())
        self.missing_topics = missing
        if wanted != self._assigned:
            self._consumer.assign(sorted(wanted))  # keeps the positions of partitions it had
            self._assigned = wanted

    def close(self) -> None:
        with self.lock:
            if self._consumer is not None:
                try:
                    self._consumer.close()
                finally:
                    self._consumer = None
                    self.connected = False

    # -- polling --------------------------------------------------------------------------
    def poll(self, budget_s: float = 2.0, max_records: int = 200_000, force: bool = False) -> PollResult:
        """Fetch what was written since the last call (up to the end offsets seen at the start,
        within ``budget_s``) and fold it. Never raises for broker trouble: returns ok=False."""
        from kafka.errors import KafkaError

        with self.lock:
            if (
                not force
                and self.last_poll_at is not None
                and self.connected
                and time.monotonic() - self.last_poll_at < self._min_interval_s
            ):
                return PollResult(ok=True)
            try:
                self._connect()
                self._refresh_assignment(force=self._metadata_at == 0.0)
                new = self._drain(budget_s, max_records) if self._assigned else 0
            except (KafkaError, OSError, ValueError) as exc:
                self.connected = False
                self.last_error = _one_line(exc)
                if self._consumer is not None and not _is_transient(exc):
                    # A consumer that never reached a broker is useless: make a fresh one next time.
                    try:
                        self._consumer.close()
                    except Exception:  # noqa: BLE001 - closing a broken client must not mask the real error
                        pass
                    self._consumer = None
                return PollResult(ok=False, error=self.last_error)
            self.connected = True
            self.last_error = None
            self.last_poll_at = time.monotonic()
            return PollResult(ok=True, new_records=new)

    def _drain(self, budget_s: float, max_records: int) -> int:
        consumer = self._consumer
        ends = self._end_offsets(list(self._assigned))  # read_committed: the last stable offsets
        deadline = time.monotonic() + budget_s
        new = 0

        if not self.caught_up:
            for tp in self._assigned:
                if tp not in self._backlog_ends:
                    self._backlog_ends[tp] = ends.get(tp) or 0
                    self.backlog_total += max(0, self._backlog_ends[tp] - consumer.position(tp))

        def behind() -> list[Any]:
            return [tp for tp in self._assigned if consumer.position(tp) < (ends.get(tp) or 0)]

        lagging = behind()
        while lagging and new < max_records and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=200, max_records=min(5000, max_records - new))
            for tp, records in batches.items():
                kind = self._kind_of.get(tp.topic)
                if kind is None:
                    continue
                for rec in records:
                    self.state.apply(kind, rec.value)
                    new += 1
            lagging = behind()  # positions are local state: no round trip
        self.records_read += new
        lag: dict[str, int] = {}
        for tp in self._assigned:
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, (ends.get(tp) or 0) - consumer.position(tp))
        self.lag_by_topic = lag
        if not self.caught_up:
            self._backlog_left = sum(
                max(0, end - consumer.position(tp)) for tp, end in self._backlog_ends.items() if tp in self._assigned
            )
            self.caught_up = self._backlog_left == 0
        return new

    def _end_offsets(self, partitions: list[Any], attempts: int = 10) -> dict[Any, int]:
        """``end_offsets`` with retries: right after a topic is created its partition leaders may be
        unknown, and kafka-python 2.3.0 then fails with an AttributeError inside the fetcher
        (``future.exception`` is None for a partly successful ListOffsets) instead of retrying."""
        from kafka.errors import KafkaTimeoutError

        for _ in range(attempts):
            try:
                return self._consumer.end_offsets(partitions)
            except AttributeError:
                self._consumer._client.cluster.request_update()  # refresh leaders, then try again
                time.sleep(0.2)
        raise KafkaTimeoutError("partition leaders not known yet (topics just created?)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


def _is_transient(exc: BaseException) -> bool:
    """Errors after which the same consumer recovers by itself (it reconnects on its own)."""
    from kafka.errors import KafkaTimeoutError, NoBrokersAvailable

    return isinstance(exc, KafkaTimeoutError) and not isinstance(exc, NoBrokersAvailable)


def plan_text(p: Mapping[str, Any]) -> str:
    """"waiting for 03:00 at sto, 38 % cheaper" (the start in UTC, the saving against starting now)."""
    start = str(p.get("start_at") or "")
    when = start[11:16] if len(start) >= 16 else start
    text = f"waiting for {when} at {p.get('site_id')}"
    saving = _num(p.get("saving"))
    if saving is not None:
        text += f", {saving * 100:.0f} % cheaper" if saving >= 0 else f", {-saving * 100:.0f} % dearer (capacity)"
    share = _num(p.get("forecast_share"))
    if share:
        text += f" ({share * 100:.0f} % on forecast prices)"
    return text
