"""Exactly-once reconciliation of the dispatch pipeline's outputs against its job inputs.

Pure logic (no Kafka, no Flink): :func:`reconcile` takes the job events (``jobs`` topic, already
validated), the ``dispatch`` decisions and the ``site-costs`` records, and a horizon (the event
time the pipeline has provably reached), and returns a :class:`Reconciliation` that lists:

* lost decisions — a submitted job whose decision was due by the horizon and never came:
  a job with a ``deadline`` D is due by the first tick after D (the dispatcher decides
  ``missed-deadline`` there at the latest), a job cancelled at C by the tick at or after C, and
  never before the tick at or after its submission. A job with neither deadline nor cancel may
  legitimately stay pending (it waits for a cheap enough tick): it is counted apart
  (``pending_without_deadline``) and is not a failure;
* duplicated decisions — one job with more than one distinct terminal decision (conflicting),
  and the same ``decision_id`` delivered more than once (duplicate delivery);
* capacity violations — slots of dispatched jobs running at a site at a tick above that site's
  ``capacity_slots`` (from site-costs), and slots newly dispatched at a site/tick above the
  ``available_slots`` site-costs published for that site/tick (overbooking);
* expired-offer decisions — a job dispatched at a site/tick where site-costs shows no price,
  the site unavailable, or no site-costs record at all;
* also: dispatched after the job's deadline, outside its allow-list, decisions about jobs never
  submitted (orphans).

``deploy/verify.py`` does the reading (read_committed) and prints the result.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from udfs.timeutil import format_ts, parse_ts_ms

TERMINAL = frozenset({"dispatched", "cancelled", "missed-deadline", "rejected"})
DEFAULT_TICK_MS = 300_000

# Categories that make the verifier fail, in report order.
FAILURES = ("lost", "duplicated", "duplicate_deliveries", "capacity_violations", "overbooked",
            "expired_offer", "deadline_violations", "allow_list_violations", "orphans")


@dataclass
class Reconciliation:
    horizon: str | None
    jobs_submitted: int = 0
    jobs_decided: int = 0
    decisions: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    pending_with_deadline_not_due: int = 0
    pending_without_deadline: list[str] = field(default_factory=list)
    beyond_horizon: int = 0
    lost: list[dict[str, Any]] = field(default_factory=list)
    duplicated: list[dict[str, Any]] = field(default_factory=list)
    duplicate_deliveries: list[dict[str, Any]] = field(default_factory=list)
    capacity_violations: list[dict[str, Any]] = field(default_factory=list)
    overbooked: list[dict[str, Any]] = field(default_factory=list)
    expired_offer: list[dict[str, Any]] = field(default_factory=list)
    deadline_violations: list[dict[str, Any]] = field(default_factory=list)
    allow_list_violations: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(getattr(self, name) for name in FAILURES)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in FAILURES}

    def summary(self) -> str:
        c = self.counts()
        head = "OK" if self.ok else "FAIL"
        return (f"verify {head}: {self.jobs_submitted} jobs, {self.jobs_decided} decided, "
                f"{len(self.pending_without_deadline)} pending without deadline, "
                f"{self.pending_with_deadline_not_due} pending not yet due; "
                f"lost {c['lost']}, duplicated {c['duplicated']} (+{c['duplicate_deliveries']} duplicate deliveries), "
                f"capacity violations {c['capacity_violations']} (+{c['overbooked']} overbooked), "
                f"expired-offer decisions {c['expired_offer']}, deadline {c['deadline_violations']}, "
                f"allow-list {c['allow_list_violations']}, orphans {c['orphans']} "
                f"(horizon {self.horizon or 'none'})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["counts"] = self.counts()
        out["summary"] = self.summary()
        return out


def _ms(rec: dict[str, Any], name: str) -> int | None:
    """``name_ms`` when the record was parsed by udfs.records, else the ISO/epoch field, else None."""
    if rec.get(f"{name}_ms") is not None:
        return int(rec[f"{name}_ms"])
    value = rec.get(name)
    return None if value is None else parse_ts_ms(value, name)


def tick_at_or_after(ms: int, tick_ms: int) -> int:
    return -(-ms // tick_ms) * tick_ms


def decision_due_ms(submit: dict[str, Any], cancel_ms: int | None, tick_ms: int = DEFAULT_TICK_MS) -> int | None:
    """The latest tick by which the job must have a terminal decision, or None when it may stay
    pending indefinitely (no deadline, not cancelled)."""
    submitted = _ms(submit, "submitted_at")
    first_tick = tick_at_or_after(submitted, tick_ms) if submitted is not None else None
    dues = []
    deadline = _ms(submit, "deadline")
    if deadline is not None:
        dues.append((deadline // tick_ms + 1) * tick_ms)  # missed-deadline at the first tick after it
    if cancel_ms is not None:
        dues.append(tick_at_or_after(cancel_ms, tick_ms))
    if not dues:
        return None
    due = min(dues)
    return max(due, first_tick) if first_tick is not None else due


def default_horizon(site_costs: Iterable[dict[str, Any]], decisions: Iterable[dict[str, Any]] = ()) -> int | None:
    """The last tick the pipeline has output (site-costs first: every tick has them)."""
    ticks = [parse_ts_ms(r["tick"]) for r in site_costs if r.get("tick") is not None]
    if not ticks:
        ticks = [parse_ts_ms(d["tick"]) for d in decisions if d.get("tick") is not None]
    return max(ticks) if ticks else None


def reconcile(job_events: Iterable[dict[str, Any]], decisions: Iterable[dict[str, Any]],
              site_costs: Iterable[dict[str, Any]], horizon_ms: int | None = None,
              tick_ms: int = DEFAULT_TICK_MS) -> Reconciliation:
    """Check the outputs against the inputs up to ``horizon_ms`` (default: the last site-costs
    tick). ``job_events``: valid ``jobs`` records (submit/cancel; duplicates allowed, the first
    submit of a job_id counts). ``decisions``/``site_costs``: everything read from the topics."""
    decisions = list(decisions)
    site_costs = list(site_costs)
    if horizon_ms is None:
        horizon_ms = default_horizon(site_costs, decisions)
    horizon = horizon_ms if horizon_ms is not None else -(2**62)
    report = Reconciliation(horizon=format_ts(horizon_ms) if horizon_ms is not None else None)

    submits: dict[str, dict[str, Any]] = {}
    cancels: dict[str, int] = {}
    for ev in job_events:
        job_id = ev.get("job_id")
        if not job_id:
            continue
        if ev.get("action") == "submit":
            submits.setdefault(job_id, ev)
        elif ev.get("action") == "cancel":
            at = _ms(ev, "submitted_at")
            if at is not None and (job_id not in cancels or at < cancels[job_id]):
                cancels[job_id] = at
    report.jobs_submitted = len(submits)

    # --- duplicates: per decision_id (delivery) and per job (conflicting terminal decisions)
    report.decisions = len(decisions)
    report.statuses = dict(sorted(Counter(d.get("status", "?") for d in decisions).items()))
    by_id_count = Counter(d.get("decision_id") for d in decisions)
    for did, n in sorted(by_id_count.items(), key=lambda kv: str(kv[0])):
        if n > 1:
            d = next(x for x in decisions if x.get("decision_id") == did)
            report.duplicate_deliveries.append({"decision_id": did, "job_id": d.get("job_id"), "copies": n})
    unique: dict[str, dict[str, Any]] = {}
    for d in decisions:
        unique.setdefault(str(d.get("decision_id")), d)
    per_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in unique.values():
        if d.get("status") in TERMINAL:
            per_job[d["job_id"]].append(d)
    for job_id in sorted(per_job):
        ds = per_job[job_id]
        if len(ds) > 1:
            report.duplicated.append({"job_id": job_id, "decisions": sorted(
                ({"decision_id": d["decision_id"], "status": d["status"], "tick": d.get("tick"),
                  "site_id": d.get("site_id")} for d in ds), key=lambda x: (x["tick"] or "", x["decision_id"]))})
    report.jobs_decided = sum(1 for j in per_job if j in submits)
    report.orphans = [{"job_id": j, "decision_ids": [d["decision_id"] for d in per_job[j]]}
                      for j in sorted(per_job) if j not in submits]

    # --- lost: a decision was due by the horizon and none exists
    for job_id in sorted(submits):
        if job_id in per_job:
            continue
        due = decision_due_ms(submits[job_id], cancels.get(job_id), tick_ms)
        if due is None:
            report.pending_without_deadline.append(job_id)
        elif due <= horizon:
            sub = submits[job_id]
            report.lost.append({"job_id": job_id, "due_tick": format_ts(due),
                                "deadline": sub.get("deadline") or _iso(_ms(sub, "deadline")),
                                "cancelled_at": _iso(cancels.get(job_id))})
        else:
            report.pending_with_deadline_not_due += 1

    # --- capacity, overbooking, expired offers, deadline and allow-list
    costs: dict[tuple[str, int], dict[str, Any]] = {}
    for r in site_costs:
        t = parse_ts_ms(r["tick"])
        if t <= horizon:
            costs[(r["site_id"], t)] = r
    dispatched = [d for d in unique.values() if d.get("status") == "dispatched"]
    running_by_site: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    new_slots: dict[tuple[str, int], int] = defaultdict(int)
    for d in dispatched:
        t = parse_ts_ms(d["tick"])
        sub = submits.get(d["job_id"], {})
        slots = int(d.get("slots", sub.get("slots", 0)) or 0)
        start = _ms(d, "start_at") or t
        end = _ms(d, "end_at") or start
        running_by_site[d["site_id"]].append((start, end, slots))
        if t > horizon:
            report.beyond_horizon += 1
            continue
        new_slots[(d["site_id"], t)] += slots
        rec = costs.get((d["site_id"], t))
        if rec is None:
            report.expired_offer.append({"decision_id": d["decision_id"], "job_id": d["job_id"],
                                         "site_id": d["site_id"], "tick": d["tick"], "why": "no site-costs record"})
        elif rec.get("price_per_mwh") is None or not rec.get("available", False):
            why = "no price" if rec.get("price_per_mwh") is None else f"unavailable ({rec.get('reason')})"
            report.expired_offer.append({"decision_id": d["decision_id"], "job_id": d["job_id"],
                                         "site_id": d["site_id"], "tick": d["tick"], "why": why})
        deadline = _ms(sub, "deadline") if sub else None
        if deadline is not None and t > deadline:
            report.deadline_violations.append({"decision_id": d["decision_id"], "job_id": d["job_id"],
                                               "tick": d["tick"], "deadline": _iso(deadline)})
        allowed = sub.get("sites") if sub else None
        if allowed and d["site_id"] not in allowed:
            report.allow_list_violations.append({"decision_id": d["decision_id"], "job_id": d["job_id"],
                                                 "site_id": d["site_id"], "sites": list(allowed)})
    for (site_id, t), slots in sorted(new_slots.items()):
        rec = costs.get((site_id, t))
        if rec is not None and slots > int(rec.get("available_slots") or 0):
            report.overbooked.append({"site_id": site_id, "tick": format_ts(t), "dispatched_slots": slots,
                                      "available_slots": rec.get("available_slots")})
    for (site_id, t), rec in sorted(costs.items()):
        running = sum(s for start, end, s in running_by_site.get(site_id, ()) if start <= t < end)
        cap = rec.get("capacity_slots")
        if cap is not None and running > int(cap):
            report.capacity_violations.append({"site_id": site_id, "tick": format_ts(t), "running_slots": running,
                                               "capacity_slots": cap})
    return report


def _iso(ms: int | None) -> str | None:
    return None if ms is None else format_ts(ms)
