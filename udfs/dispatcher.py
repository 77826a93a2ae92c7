"""The dispatch operator's state machine, in plain Python.

:class:`Dispatcher` holds what the Flink dispatch operator keeps in state: pending jobs, running
jobs (committed slots, released at ``end_at``, with what they were expected to cost and what
they have cost so far), the ids already decided, each pending job's baseline costs at first
sight, and the round-robin pointer of the naive baseline. At each tick it receives the job events
with an event time at or before the tick (in event-time order) and every ticking site's
:class:`SiteInputs`, and returns the ``site-costs``, ``dispatch`` and ``pipeline-metrics`` records.
The same inputs always give the same outputs (apart from measured solve times).

Per tick: site costs (udfs.cost), then each available site's cost curve over the horizon
(udfs.forecast: known offers, a forecast beyond; PUE of the latest weather), then the plan
(udfs.optimizer), of which only the starts due now are committed.

Money accounting (``pipeline-metrics``), every figure in EUR:

* ``cost`` / ``cumulative_cost``: expected cost (whole run, hour by hour) of the jobs dispatched;
* ``cost_greedy`` / ``cost_naive``: what the same jobs would have cost under the greedy rule
  (start at once, cheapest site now) and round-robin, each priced hour by hour at the tick the
  job was first seen (its first chance to start); a saving is against these, on the same jobs;
* ``realised_cost``: the running jobs' cost over the last interval, at the offers that held then
  (the rate of each site's previous tick); ``completed_*``: expected against realised of the
  jobs that have finished, so the forecasts are accountable.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from udfs.baselines import greedy, round_robin
from udfs.catalogue import Catalogue, Site
from udfs.cost import SiteCosts, SiteParams, compute_hour_cost, site_costs
from udfs.forecast import HISTORY_MS, price_curves
from udfs.headroom import UrgentDemand, start_cap
from udfs.ledger import Ledger
from udfs.objective import HOUR_MS, CostCurve, Job, SitePlan, is_urgent, objective_of, plan_problem
from udfs.offers import KnownOffers
from udfs.optimizer import (
    DispatchConfig,
    DispatchResult,
    decision_id,
    decision_records,
    rejection_reason,
)
from udfs.planner import Planner
from udfs.records import SITE_COST_FIELDS, ParsedRecord
from udfs.timeutil import format_ts

MAX_CURVE_RUN_MS = 7 * 24 * HOUR_MS  # beyond this much of a run the curve's last rate continues
PLAN_PREVIEW = 25  # planned (waiting) jobs listed per pipeline-metrics record, soonest first
QUEUE_LIMIT = 500  # pending jobs listed per pipeline-metrics record (the page's queue), oldest first


@dataclass(frozen=True)
class SiteInputs:
    """What a site looked like at one tick, before any cost is computed (the job's SiteTicker
    reports it; offline replays build it from history)."""

    site_id: str
    tick_ms: int
    price_per_mwh: float | None  # None: no valid offer (expired or never seen)
    offer_valid_to_ms: int | None
    currency: str
    temp_c: float | None
    rel_humidity: float | None
    online: bool
    capacity_slots: int | None  # from site-status; None: the catalogue's value
    # the site's offers (udfs.offers; the batch reference's bench.offer_rules.OfferBook answers the
    # same known()); only a plan needs the ones known at the tick (known_offers)
    book: KnownOffers | None = None

    def known_offers(self) -> tuple[tuple[int, int, float], ...]:
        """(valid_from, end, price) of the offers known at the tick, from a day back: the input of
        udfs.forecast. Asked for only when there are jobs to plan: most ticks have none."""
        return () if self.book is None else self.book.known(self.tick_ms, self.tick_ms - HISTORY_MS)


@dataclass
class TickOutput:
    site_costs: dict[str, list] = field(default_factory=dict)  # columns: site_cost_rows() gives records
    decisions: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    dead_letters: list[tuple[ParsedRecord, str]] = field(default_factory=list)


def job_from_record(rec: dict[str, Any]) -> Job:
    sites = rec.get("sites")
    return Job(job_id=rec["job_id"], compute_hours=float(rec["compute_hours"]), slots=int(rec["slots"]),
               priority=int(rec["priority"]), deadline_ms=rec.get("deadline_ms"),
               sites=tuple(sites) if sites else None, submitted_ms=int(rec["submitted_at_ms"]),
               home=rec.get("home"))


def _job_fingerprint(rec: dict[str, Any]) -> str:
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(body.encode()).hexdigest()[:20]


def cost_curves(sites: list[Site], inputs: list[SiteInputs], pues: list[float], tick_ms: int,
                end_ms: int) -> list[CostCurve | None]:
    """Each site's cost per slot-hour in EUR from the tick to ``end_ms``: the known offers and the
    forecast beyond (udfs.forecast, all sites at once), at the PUE of the latest weather
    (persistence); None where nothing is known."""
    out: list[CostCurve | None] = []
    for site, pue, pc in zip(sites, pues, price_curves([i.known_offers() for i in inputs], tick_ms, end_ms),
                             strict=True):
        if pc is None:
            out.append(None)
            continue
        rates = compute_hour_cost(np.array(pc.prices), site.it_kw_per_slot, pue, site.fixed_cost_per_slot_hour)
        out.append(CostCurve(pc.edges, tuple((rates * site.fx_to_eur).tolist()), pc.known))
    return out


class Dispatcher:
    def __init__(self, catalogue: Catalogue, config: DispatchConfig):
        self.catalogue = catalogue
        self.config = config
        self.pending: dict[str, dict[str, Any]] = {}  # job_id -> parsed submit record
        # job_id -> {"site_id", "slots", "start_ms", "end_ms", "expected", "realised", "priced_to_ms"}
        self.ledger = Ledger()  # the plan's running jobs, charged at the offers that held
        # The greedy rule run alongside on the same job events and site ticks, with its own pending
        # queue and capacity, charged the same way: the like-for-like baseline of the saving.
        self.shadow_pending: dict[str, dict[str, Any]] = {}
        self.shadow = Ledger()
        self.shadow_missed = 0
        self.decided: dict[str, str] = {}  # job_id -> fingerprint of its submit (duplicates, conflicts)
        self.first_sight: dict[str, tuple[float, float]] = {}  # pending job -> (greedy EUR, round-robin EUR)
        self.site_rates: dict[str, tuple[int, float | None]] = {}  # site -> (tick, EUR/slot-hour then)
        self.site_params = SiteParams(sorted(catalogue, key=lambda s: s.site_id))  # the constants as arrays
        self.rr_pointer = 0
        self.urgent = UrgentDemand()  # the urgent reserve each site keeps from movable work
        self.planner = Planner(config)  # the standing plan between ticks (udfs.planner)
        self.cumulative = {"cost": 0.0, "cost_greedy": 0.0, "cost_naive": 0.0, "wall_clock_limit_ticks": 0}

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
                self.shadow_pending[job_id] = rec
                self.urgent.observe(job_from_record(rec))
            return
        # cancel
        self.shadow_pending.pop(job_id, None)  # the shadow honours it too while the job waits there
        if job_id in self.pending:
            del self.pending[job_id]
            self.first_sight.pop(job_id, None)
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

        self.urgent.advance(tick_ms)
        realised = self.ledger.charge(tick_ms, self.site_rates)
        self.shadow.charge(tick_ms, self.site_rates)
        committed = self.ledger.committed()

        tick = format_ts(tick_ms)
        rows, costs = self._site_costs(inputs, committed)
        offers_expired = sum(1 for inp in rows if inp.price_per_mwh is None)
        # what the next tick charges the sites' running jobs
        self.site_rates.update(zip(costs.site_ids, ((tick_ms, r) for r in _nullable(costs.cost_per_compute_hour_eur)),
                                   strict=True))
        out.site_costs = _site_cost_columns(tick, rows, costs)
        usable = np.flatnonzero(costs.available & ~np.isnan(costs.pue))

        # jobs that can never run anywhere in the catalogue are rejected once, with the reason
        capacity = {s.site_id: s.capacity_slots for s in self.catalogue}
        jobs: list[Job] = []
        for job_id in sorted(self.pending):
            job = job_from_record(self.pending[job_id])
            reason = rejection_reason(job, capacity)
            if reason:
                del self.pending[job_id]
                self.shadow_pending.pop(job_id, None)  # greedy could not run it either
                self.first_sight.pop(job_id, None)
                self.decided[job_id] = "rejected"
                out.decisions.append(_decision(job_id, tick_ms, "rejected", reason=reason))
            else:
                jobs.append(job)
        self._shadow_tick(tick_ms, inputs)

        result: DispatchResult | None = None
        cost = greedy_cost = naive_cost = 0.0
        naive_obj: float | None = 0.0
        plan_preview: list[dict[str, Any]] = []
        if jobs:
            available = [(self.catalogue[rows[i].site_id], rows[i], costs.at(i)) for i in usable]
            plans = self._site_plans(tick_ms, jobs, available, committed)
            cfg = self.config
            prob = plan_problem(jobs, plans, tick_ms, tick_len_ms=cfg.tick_len_ms, horizon_ms=cfg.horizon_ms,
                                delay=cfg.delay, reduction=cfg.reduction)
            self._remember_first_sight(prob)
            result = self.planner.decide(prob)
            out.decisions.extend(decision_records(result, jobs, tick_ms,
                                                  {jid: g for jid, (g, _) in self.first_sight.items()}))
            by_id = {j.job_id: j for j in jobs}
            for job_id, site_id in result.assignments.items():
                job, p = by_id[job_id], result.plan[job_id]
                self.ledger.start(job_id, site_id, job.slots, tick_ms, tick_ms + job.duration_ms, p.cost,
                                  movable=not is_urgent(job, cfg.delay))
                g, n = self.first_sight.pop(job_id, (p.cost_now_best, p.cost_now_best))
                cost += p.cost
                greedy_cost += g
                naive_cost += n
            for job_id in list(result.assignments) + list(result.missed):
                self.first_sight.pop(job_id, None)
                self.decided[job_id] = _job_fingerprint(self.pending.pop(job_id))
            rr, _ = round_robin(prob, self.rr_pointer)
            try:
                naive_obj = objective_of(prob, rr)
            except ValueError:  # round-robin left a last-chance job that greedy starts: not a valid plan
                naive_obj = None
            for job_id, p in sorted(result.plan.items(), key=lambda kv: (kv[1].start_ms, kv[0])):
                if p.start_ms > tick_ms and len(plan_preview) < PLAN_PREVIEW:
                    plan_preview.append(_planned(job_id, by_id[job_id], p))
        # only the sites with running jobs need their rate for the next interval's charge
        busy = set(self.ledger.committed()) | set(self.shadow.committed())
        self.site_rates = {sid: v for sid, v in self.site_rates.items() if sid in busy}
        self.cumulative["cost"] += cost
        self.cumulative["cost_greedy"] += greedy_cost
        self.cumulative["cost_naive"] += naive_cost
        statuses = [d["status"] for d in out.decisions]
        c = self.cumulative
        lt, st = self.ledger.totals, self.shadow.totals
        c["wall_clock_limit_ticks"] += int(bool(result and result.wall_clock_limit))
        planned_later = sum(1 for p in result.plan.values() if p.start_ms > tick_ms) if result else 0
        out.metrics = {
            "tick": tick,
            "pending_jobs": len(self.pending),
            "running_jobs": len(self.running),
            "planned_jobs": planned_later,
            "dispatched": statuses.count("dispatched"),
            "missed_deadline": statuses.count("missed-deadline"),
            "cancelled": statuses.count("cancelled"),
            "rejected": statuses.count("rejected"),
            "sites_available": len(usable),
            "solver": result.solver if result else "none",
            "solver_status": result.status if result else "empty",
            "solve_ms": round(result.solve_ms, 3) if result else 0.0,
            # the solver's wall-clock safety net fired (udfs.optimizer): replay equality holds only without it
            "solver_wall_clock_limit": bool(result and result.wall_clock_limit),
            "solver_wall_clock_limit_ticks": c["wall_clock_limit_ticks"],
            "replanned": bool(result and result.replanned),  # planned in full (udfs.planner)
            "objective": round(result.objective, 6) if result else 0.0,
            "objective_greedy": round(result.greedy_objective, 6) if result else 0.0,
            "objective_naive": None if naive_obj is None else round(naive_obj, 6),
            "cost": round(cost, 6),
            "cost_greedy": round(greedy_cost, 6),
            "cost_naive": round(naive_cost, 6),
            "cumulative_cost": round(c["cost"], 6),
            "cumulative_cost_greedy": round(c["cost_greedy"], 6),
            "cumulative_cost_naive": round(c["cost_naive"], 6),
            "realised_cost": round(realised, 6),
            "cumulative_realised_cost": round(lt["realised"], 6),
            "completed_jobs": lt["completed_jobs"],
            "completed_expected_cost": round(lt["completed_expected"], 6),
            "completed_realised_cost": round(lt["completed_realised"], 6),
            "completed_compute_hours": round(lt["completed_compute_hours"], 6),
            # the shadow greedy on the same job events and site ticks (udfs.ledger accounting both):
            # the like-for-like saving is per compute-hour of the finished jobs, plan against shadow
            "shadow_completed_jobs": st["completed_jobs"],
            "shadow_completed_realised_cost": round(st["completed_realised"], 6),
            "shadow_completed_compute_hours": round(st["completed_compute_hours"], 6),
            "shadow_running_jobs": len(self.shadow.running),
            "shadow_pending_jobs": len(self.shadow_pending),
            "shadow_missed_deadline": self.shadow_missed,
            "unpriced_slot_hours": round(lt["unpriced_slot_hours"], 6),
            "plan": plan_preview,
            "queue": self._queue(result),
            "offers_expired": offers_expired,
            **{k: v for k, v in counts.items()},
            "dead_letters": counts.get("dead_letters", 0) + len(out.dead_letters),
        }
        return out

    def _queue(self, result: DispatchResult | None) -> list[dict[str, Any]]:
        """What the dispatcher has seen and not decided after this tick, oldest first, each with its
        place in the plan (site and start) or none ("not planned yet"): the page's job queue."""
        rows = []
        plan = result.plan if result else {}
        for job_id, rec in sorted(self.pending.items(), key=lambda kv: (kv[1]["submitted_at_ms"], kv[0])):
            if len(rows) >= QUEUE_LIMIT:
                break
            p = plan.get(job_id)
            deadline = rec.get("deadline_ms")
            rows.append({"job_id": job_id, "priority": rec["priority"], "compute_hours": rec["compute_hours"],
                         "slots": rec["slots"], "submitted_at": format_ts(rec["submitted_at_ms"]),
                         "deadline": None if deadline is None else format_ts(deadline), "sites": rec.get("sites"),
                         "site_id": p.site_id if p else None, "start_at": format_ts(p.start_ms) if p else None})
        return rows

    def _shadow_tick(self, tick_ms: int, inputs: dict[str, SiteInputs]) -> None:
        """The greedy rule at this tick on the shadow's own queue and capacity (bench.bench_money's
        greedy loop): a job whose latest start has passed is missed; the rest start now in priority
        order at the allowed site with room whose cost per compute-hour is lowest now, or wait."""
        for job_id in sorted(self.shadow_pending):
            deadline = self.shadow_pending[job_id].get("deadline_ms")
            if deadline is not None and deadline < tick_ms:
                del self.shadow_pending[job_id]
                self.shadow_missed += 1
        jobs = [job_from_record(rec) for _, rec in sorted(self.shadow_pending.items())]
        if not jobs:
            return
        committed = self.shadow.committed()
        end = tick_ms + min(MAX_CURVE_RUN_MS, max(j.duration_ms for j in jobs))
        plans = []
        _, costs = self._site_costs(inputs, committed)
        for i, site_id in enumerate(costs.site_ids):
            site, sc = self.catalogue[site_id], costs.at(i)
            if sc.available and sc.pue is not None:  # greedy looks at the rate now only
                plans.append(SitePlan(site_id, site.region, sc.available_slots, sc.capacity_slots,
                                      CostCurve.flat(tick_ms, sc.cost_per_compute_hour_eur, end)))
        prob = plan_problem(jobs, plans, tick_ms, tick_len_ms=self.config.tick_len_ms,
                            horizon_ms=self.config.tick_len_ms, delay=self.config.delay)
        for jn, o in sorted(greedy(prob).items()):
            job = prob.jobs[jn]
            self.shadow.start(job.job_id, prob.sites[o.site].site_id, job.slots, tick_ms, tick_ms + job.duration_ms,
                              o.cost)
            del self.shadow_pending[job.job_id]

    def _site_costs(self, inputs: dict[str, SiteInputs], committed: dict[str, int]
                    ) -> tuple[list[SiteInputs], SiteCosts]:
        """The ticking sites of the catalogue (by site_id) and their costs at this tick, with
        ``committed`` slots busy: udfs.cost.site_costs over their arrays at once."""
        ticking = [i for i, site_id in enumerate(self.site_params.site_ids) if site_id in inputs]
        params = self.site_params if len(ticking) == len(self.site_params.site_ids) else self.site_params.take(ticking)
        rows = [inputs[site_id] for site_id in params.site_ids]
        nan = math.nan

        def column(field: str) -> list:
            return [nan if getattr(i, field) is None else getattr(i, field) for i in rows]

        return rows, site_costs(params, price_per_mwh=column("price_per_mwh"), temp_c=column("temp_c"),
                                rel_humidity=column("rel_humidity"),
                                committed_slots=[committed.get(i.site_id, 0) for i in rows],
                                online=[i.online for i in rows],
                                capacity_slots=[-1 if i.capacity_slots is None else i.capacity_slots for i in rows])

    def _site_plans(self, tick_ms: int, jobs: list[Job], available: list[tuple[Site, SiteInputs, Any]],
                    committed: dict[str, int]) -> list[SitePlan]:
        longest = min(MAX_CURVE_RUN_MS, max(j.duration_ms for j in jobs))
        end = tick_ms + self.config.horizon_ms + longest
        releases: dict[str, list[tuple[int, int]]] = {}
        movable: dict[str, list[tuple[int, int]]] = {}
        for r in self.running.values():
            releases.setdefault(r["site_id"], []).append((r["end_ms"], r["slots"]))
            if r["movable"]:
                movable.setdefault(r["site_id"], []).append((r["end_ms"], r["slots"]))
        plans = []
        curves = cost_curves([a[0] for a in available], [a[1] for a in available], [a[2].pue for a in available],
                             tick_ms, end)
        for (site, inp, sc), curve in zip(available, curves, strict=True):
            if curve is None:
                continue
            derated = math.floor(sc.derating * sc.capacity_slots + 1e-9)  # as udfs.cost.available_slots
            reserve = self.urgent.reserve(site.site_id)
            plans.append(SitePlan(site.site_id, site.region, sc.available_slots, derated, curve,
                                  tuple(sorted(releases.get(site.site_id, ()))),
                                  inp.price_per_mwh * site.fx_to_eur,  # type: ignore[operator]
                                  reserve, tuple(sorted(movable.get(site.site_id, ()))), start_cap(derated, reserve)))
        return plans

    def _remember_first_sight(self, prob: Any) -> None:
        """The baselines' cost of each job new at this tick: greedy and round-robin starting it now."""
        new = [jn for jn, j in enumerate(prob.jobs) if j.job_id not in self.first_sight]
        if not new:
            return
        g = greedy(prob)
        rr, self.rr_pointer = round_robin(prob, self.rr_pointer)
        for jn in new:
            job = prob.jobs[jn]
            now = [o.cost for o in prob.options[jn] if o.start_ms == prob.tick_ms]
            fallback = min(now) if now else float("nan")
            gc = g[jn].cost if jn in g else fallback
            nc = rr[jn].cost if jn in rr else gc
            if gc == gc:  # not NaN: the job could start somewhere now
                self.first_sight[job.job_id] = (gc, nc)

    def signature(self) -> tuple:
        """Changes whenever the state does (the operator writes the state only then)."""
        return (len(self.pending), len(self.running), len(self.decided), len(self.first_sight), self.rr_pointer,
                tuple(self.ledger.totals.values()), tuple(self.shadow.totals.values()), len(self.shadow.running),
                len(self.shadow_pending), self.shadow_missed,
                tuple((k, len(v)) for k, v in sorted(self.urgent.active.items())),
                tuple((k, v[-1] if v else None) for k, v in sorted(self.urgent.peaks.items())),
                tuple(self.cumulative.values()), tuple(sorted(self.site_rates.items())), self.planner.basis,
                tuple(sorted(self.planner.standing.items())))

    def next_deadline_tick(self, tick_len_ms: int) -> int | None:
        """The last tick that can still start the job with the earliest pending deadline (its
        last chance, udfs.objective.last_chance): unplaced there, it is missed there, whether or
        not any site ticks then, so the decision never depends on which other sites are ticking."""
        deadlines = [r["deadline_ms"] for r in self.pending.values() if r.get("deadline_ms") is not None]
        if not deadlines:
            return None
        return min(deadlines) // tick_len_ms * tick_len_ms

    # ------------------------------------------------------------------ state
    STATE_VERSION = 4

    @property
    def running(self) -> dict[str, dict[str, Any]]:
        return self.ledger.running

    def to_state(self) -> dict[str, Any]:
        return {"version": self.STATE_VERSION, "pending": self.pending, "ledger": self.ledger.to_state(),
                "shadow": {"pending": self.shadow_pending, "ledger": self.shadow.to_state(),
                           "missed": self.shadow_missed},
                "decided": self.decided, "first_sight": self.first_sight, "site_rates": self.site_rates,
                "rr_pointer": self.rr_pointer, "cumulative": self.cumulative, "urgent": self.urgent.to_state(),
                "planner": self.planner.to_state()}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        if state.get("version") != self.STATE_VERSION:
            raise ValueError(f"dispatcher state version {state.get('version', 1)} does not match this job's "
                             f"{self.STATE_VERSION}: start the job without this savepoint (docs/DEPLOY.md)")
        self.pending = dict(state["pending"])
        self.ledger.load_state(state["ledger"])
        self.shadow_pending = dict(state["shadow"]["pending"])
        self.shadow.load_state(state["shadow"]["ledger"])
        self.shadow_missed = int(state["shadow"]["missed"])
        self.decided = dict(state["decided"])
        self.first_sight = {k: tuple(v) for k, v in state["first_sight"].items()}  # type: ignore[misc]
        self.site_rates = {k: tuple(v) for k, v in state["site_rates"].items()}  # type: ignore[misc]
        self.rr_pointer = int(state["rr_pointer"])
        self.cumulative = dict(state["cumulative"])
        self.urgent.load_state(state.get("urgent"))
        self.planner.load_state(state.get("planner"))


def _decision(job_id: str, tick_ms: int, status: str, reason: str) -> dict[str, Any]:
    tick = format_ts(tick_ms)
    return {"decision_id": decision_id(job_id, tick_ms, status, None), "job_id": job_id, "status": status,
            "site_id": None, "tick": tick, "reason": reason}


def _planned(job_id: str, job: Job, p: Any) -> dict[str, Any]:
    saving = 1 - p.cost / p.cost_now_best if p.cost_now_best > 0 else None
    return {"job_id": job_id, "site_id": p.site_id, "start_at": format_ts(p.start_ms), "priority": job.priority,
            "expected_cost": round(p.cost, 6), "greedy_cost": round(p.cost_now_best, 6),
            "saving": None if saving is None else round(saving, 4),
            "forecast_share": round(1 - p.cost_known / p.cost, 4) if p.cost else 0.0}


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _nullable(values: np.ndarray, digits: int | None = None) -> list:
    """An array as a list, NaN as None, rounded to ``digits`` if given."""
    if digits is not None:
        values = np.round(values, digits)
    return [None if v != v else v for v in values.tolist()]


def _site_cost_columns(tick: str, rows: list[SiteInputs], sc: SiteCosts) -> dict[str, list]:
    """The site-costs records of a tick as columns (udfs.records.SITE_COST_FIELDS, one list per
    field, one element per ticking site); site_cost_rows() turns them into records."""
    return {
        "site_id": list(sc.site_ids),
        "tick": [tick] * len(rows),
        "price_per_mwh": [i.price_per_mwh for i in rows],
        "currency": [i.currency or None for i in rows],
        "offer_valid_to": [None if i.offer_valid_to_ms is None else format_ts(i.offer_valid_to_ms) for i in rows],
        "temp_c": [i.temp_c for i in rows],
        "rel_humidity": [i.rel_humidity for i in rows],
        "pue": _nullable(sc.pue, 6),
        "cooling_kw": _nullable(sc.cooling_kw, 3),
        "cost_per_compute_hour": _nullable(sc.cost_per_compute_hour, 9),
        "cost_per_compute_hour_eur": _nullable(sc.cost_per_compute_hour_eur, 9),
        "capacity_slots": sc.capacity_slots.tolist(),
        "available_slots": sc.available_slots.tolist(),
        "available": sc.available.tolist(),
        "online": [i.online for i in rows],
        "reason": [r or None for r in sc.reason.tolist()],
    }


def site_cost_rows(columns: dict[str, list]) -> list[dict[str, Any]]:
    """TickOutput.site_costs (columns) as site-costs records, one dict per site."""
    names = [name for name in SITE_COST_FIELDS if name in columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*(columns[n] for n in names), strict=True)]
