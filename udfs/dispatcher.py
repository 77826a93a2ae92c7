"""The dispatch operator's state machine, in plain Python.

:class:`Dispatcher` holds what the Flink dispatch operator keeps in state: pending jobs,
running jobs (committed slots, released at ``end_at``), the ids already decided, and the
round-robin pointer of the naive baseline. At each tick it receives the job events with an
event time at or before the tick (in event-time order) and every site's :class:`SiteInputs`
for the tick, and returns the ``site-costs``, ``dispatch`` and ``pipeline-metrics`` records.
The same inputs always give the same outputs (apart from measured solve times).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from udfs.baselines import round_robin_plan
from udfs.catalogue import Catalogue
from udfs.cost import site_cost
from udfs.dispatch import DispatchConfig, decision_id, decision_records, rejection_reason, solve_dispatch
from udfs.objective import Job, SiteState, evaluate_objective, plan_cost
from udfs.records import ParsedRecord
from udfs.site_tracker import SiteInputs
from udfs.timeutil import format_ts


@dataclass
class TickOutput:
    site_costs: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    dead_letters: list[tuple[ParsedRecord, str]] = field(default_factory=list)


def job_from_record(rec: dict[str, Any]) -> Job:
    sites = rec.get("sites")
    return Job(job_id=rec["job_id"], compute_hours=float(rec["compute_hours"]), slots=int(rec["slots"]),
               priority=int(rec["priority"]), deadline_ms=rec.get("deadline_ms"),
               sites=tuple(sites) if sites else None, submitted_ms=int(rec["submitted_at_ms"]))


def _job_fingerprint(rec: dict[str, Any]) -> str:
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(body.encode()).hexdigest()[:20]


class Dispatcher:
    def __init__(self, catalogue: Catalogue, config: DispatchConfig):
        self.catalogue = catalogue
        self.config = config
        self.pending: dict[str, dict[str, Any]] = {}  # job_id -> parsed submit record
        self.running: list[tuple[str, str, int, int]] = []  # (job_id, site_id, slots, end_ms)
        self.decided: dict[str, str] = {}  # job_id -> fingerprint of its submit (duplicates, conflicts)
        self.rr_pointer = 0
        self.cumulative = {"cost": 0.0, "cost_greedy": 0.0, "cost_naive": 0.0}

    # ------------------------------------------------------------------ job events
    def apply_job_event(self, parsed: ParsedRecord, out: TickOutput, counts: dict[str, int], tick_ms: int) -> None:
        rec = parsed.record
        job_id = rec["job_id"]
        if rec["action"] == "submit":
            fp = _job_fingerprint(rec)
            known = self.decided.get(job_id) or (_job_fingerprint(self.pending[job_id]) if job_id in self.pending
                                                 else None)
            if known == fp:
                counts["duplicates"] += 1
            elif known is not None:
                out.dead_letters.append((parsed, "job_id: already submitted with different content"))
            else:
                self.pending[job_id] = rec
            return
        # cancel
        if job_id in self.pending:
            del self.pending[job_id]
            self.decided[job_id] = "cancelled"
            out.decisions.append(_decision(job_id, tick_ms, "cancelled", reason="cancelled while pending"))
        elif self.decided.get(job_id) == "cancelled":
            counts["duplicates"] += 1
        elif job_id in self.decided:
            counts["cancels_too_late"] += 1  # already dispatched, missed or rejected: that decision stands
        else:
            out.dead_letters.append((parsed, "job_id: cancel for a job that was never submitted"))

    # ------------------------------------------------------------------ ticks
    def run_tick(self, tick_ms: int, job_events: list[ParsedRecord], inputs: dict[str, SiteInputs],
                 counts: dict[str, int] | None = None) -> TickOutput:
        """One tick. ``job_events``: every job event with event time <= tick not yet applied.
        ``inputs``: the tick's inputs per site (a site without inputs is unavailable)."""
        counts = {"duplicates": 0, "cancels_too_late": 0, **(counts or {})}
        out = TickOutput()
        for parsed in sorted(job_events, key=lambda p: (p.event_ms, p.record["action"] != "submit", p.key,
                                                        _job_fingerprint(p.record))):
            self.apply_job_event(parsed, out, counts, tick_ms)

        # release what has finished by now
        self.running = [r for r in self.running if r[3] > tick_ms]
        committed: dict[str, int] = {}
        for _, site_id, slots, _ in self.running:
            committed[site_id] = committed.get(site_id, 0) + slots

        site_states: list[SiteState] = []
        offers_expired = 0
        for site_id in sorted(inputs):
            site = self.catalogue.get(site_id)
            if site is None:
                continue
            inp = inputs[site_id]
            sc = site_cost(site, price_per_mwh=inp.price_per_mwh, temp_c=inp.temp_c, rel_humidity=inp.rel_humidity,
                           committed_slots=committed.get(site_id, 0), online=inp.online,
                           capacity_slots=inp.capacity_slots)
            if inp.price_per_mwh is None:
                offers_expired += 1
            out.site_costs.append(_site_cost_record(inp, sc, tick_ms))
            if sc.available and sc.available_slots > 0 and sc.cost_per_compute_hour_eur is not None:
                site_states.append(SiteState(site_id=site_id, cost_per_compute_hour=sc.cost_per_compute_hour_eur,
                                             available_slots=sc.available_slots, region=site.region,
                                             price_per_mwh=inp.price_per_mwh * site.fx_to_eur))

        # jobs that can never run anywhere in the catalogue are rejected once, with the reason
        capacity = {s.site_id: s.capacity_slots for s in self.catalogue}
        jobs: list[Job] = []
        for job_id in sorted(self.pending):
            job = job_from_record(self.pending[job_id])
            reason = rejection_reason(job, capacity)
            if reason:
                del self.pending[job_id]
                self.decided[job_id] = "rejected"
                out.decisions.append(_decision(job_id, tick_ms, "rejected", reason=reason))
            else:
                jobs.append(job)

        result = solve_dispatch(jobs, site_states, tick_ms, config=self.config)
        out.decisions.extend(decision_records(result, jobs, tick_ms))
        by_id = {j.job_id: j for j in jobs}
        for job_id, site_id in result.assignments.items():
            job = by_id[job_id]
            self.running.append((job_id, site_id, job.slots, tick_ms + job.duration_ms))
        for job_id in list(result.assignments) + list(result.missed):
            self.decided[job_id] = _job_fingerprint(self.pending.pop(job_id))

        # baselines on the same tick and the same inputs, scored with the same objective
        naive = round_robin_plan(jobs, site_states, tick_ms, tick_len_ms=self.config.tick_len_ms,
                                 start=self.rr_pointer)
        if site_states:
            self.rr_pointer = (self.rr_pointer + len(naive)) % len(site_states)
        greedy_cost = plan_cost(result.greedy_plan, jobs, site_states)  # the solver's own greedy baseline
        naive_obj = evaluate_objective(naive, jobs, site_states, tick_ms, tick_len_ms=self.config.tick_len_ms,
                                       values=self.config.values)
        cost = plan_cost(result.assignments, jobs, site_states)
        naive_cost = plan_cost(naive, jobs, site_states)
        self.cumulative["cost"] += cost
        self.cumulative["cost_greedy"] += greedy_cost
        self.cumulative["cost_naive"] += naive_cost
        statuses = [d["status"] for d in out.decisions]
        out.metrics = {
            "tick": format_ts(tick_ms),
            "pending_jobs": len(self.pending),
            "running_jobs": len(self.running),
            "dispatched": statuses.count("dispatched"),
            "missed_deadline": statuses.count("missed-deadline"),
            "cancelled": statuses.count("cancelled"),
            "rejected": statuses.count("rejected"),
            "sites_available": len(site_states),
            "solver": result.solver,
            "solver_status": result.status,
            "solve_ms": round(result.solve_ms, 3),
            "objective": round(result.objective, 6),
            "objective_greedy": round(result.greedy_objective, 6),
            "objective_naive": round(naive_obj, 6),
            "cost": round(cost, 6),
            "cost_greedy": round(greedy_cost, 6),
            "cost_naive": round(naive_cost, 6),
            "cumulative_cost": round(self.cumulative["cost"], 6),
            "cumulative_cost_greedy": round(self.cumulative["cost_greedy"], 6),
            "cumulative_cost_naive": round(self.cumulative["cost_naive"], 6),
            "offers_expired": offers_expired,
            **{k: v for k, v in counts.items()},
            "dead_letters": counts.get("dead_letters", 0) + len(out.dead_letters),
        }
        return out

    def next_deadline_tick(self, tick_len_ms: int) -> int | None:
        """The last tick that can still start the job with the earliest pending deadline (its
        last chance, udfs.objective.last_chance): unplaced there, it is missed there, whether or
        not any site ticks then, so the decision never depends on which other sites are ticking."""
        deadlines = [r["deadline_ms"] for r in self.pending.values() if r.get("deadline_ms") is not None]
        if not deadlines:
            return None
        return min(deadlines) // tick_len_ms * tick_len_ms

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {"pending": self.pending, "running": self.running, "decided": self.decided,
                "rr_pointer": self.rr_pointer, "cumulative": self.cumulative}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        self.pending = dict(state["pending"])
        self.running = [tuple(r) for r in state["running"]]  # type: ignore[misc]
        self.decided = dict(state["decided"])
        self.rr_pointer = int(state["rr_pointer"])
        self.cumulative = dict(state["cumulative"])


def _decision(job_id: str, tick_ms: int, status: str, reason: str) -> dict[str, Any]:
    tick = format_ts(tick_ms)
    return {"decision_id": decision_id(job_id, tick_ms, status, None), "job_id": job_id, "status": status,
            "site_id": None, "tick": tick, "reason": reason}


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _site_cost_record(inp: SiteInputs, sc: Any, tick_ms: int) -> dict[str, Any]:
    return {
        "site_id": inp.site_id,
        "tick": format_ts(tick_ms),
        "price_per_mwh": inp.price_per_mwh,
        "currency": inp.currency or None,
        "offer_valid_to": format_ts(inp.offer_valid_to_ms) if inp.offer_valid_to_ms is not None else None,
        "temp_c": inp.temp_c,
        "rel_humidity": inp.rel_humidity,
        "pue": _round(sc.pue),
        "cooling_kw": _round(sc.cooling_kw, 3),
        "cost_per_compute_hour": _round(sc.cost_per_compute_hour, 9),
        "cost_per_compute_hour_eur": _round(sc.cost_per_compute_hour_eur, 9),
        "capacity_slots": sc.capacity_slots,
        "available_slots": sc.available_slots,
        "available": bool(sc.available),
        "online": inp.online,
        "reason": sc.reason or None,
    }
