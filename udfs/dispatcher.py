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
import math
from dataclasses import dataclass, field
from typing import Any

from udfs.baselines import round_robin_plan
from udfs.catalogue import Catalogue
from udfs.cost import SiteCostMemo, site_cost
from udfs.dispatch import (
    STATUS_EMPTY,
    DispatchConfig,
    DispatchResult,
    decision_id,
    decision_records,
    rejection_reason,
    solve_dispatch,
)
from udfs.objective import Job, SiteState, evaluate_objective, plan_cost
from udfs.records import ParsedRecord
from udfs.site_tracker import SiteInputs
from udfs.timeutil import format_ts

# What solve_dispatch returns for a tick without pending jobs (checked in tests/unit/test_dispatch.py),
# without building three empty tick problems: most ticks of a replay have no jobs.
EMPTY_TICK = DispatchResult(assignments={}, missed=[], status=STATUS_EMPTY, solver="none", objective=0.0,
                            solve_ms=0.0, greedy_objective=0.0, cost=0.0)


@dataclass
class TickOutput:
    site_costs: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    dead_letters: list[tuple[ParsedRecord, str]] = field(default_factory=list)
    # Only with run_tick(..., site_cost_json=True): (site_id, record as JSON) in the order of the
    # site-costs records, each byte-identical to json.dumps(rec, separators=(",", ":"), allow_nan=False).
    site_cost_json: list[tuple[str, str]] = field(default_factory=list)


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
        # Derived, not state: per site the site-costs record body of recent inputs (see _SiteRecords).
        self._site_records: dict[str, _SiteRecords] = {}
        self._capacity: tuple[Catalogue, dict[str, int]] | None = None

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
                 counts: dict[str, int] | None = None, *, site_cost_dicts: bool = True,
                 site_cost_json: bool = False) -> TickOutput:
        """One tick. ``job_events``: every job event with event time <= tick not yet applied.
        ``inputs``: the tick's inputs per site (a site without inputs is unavailable).

        ``site_cost_dicts`` (default): the site-costs records as dicts in ``out.site_costs``.
        ``site_cost_json``: the same records already serialised, in ``out.site_cost_json`` as
        (site_id, json), byte-identical to ``json.dumps(rec, separators=(",", ":"),
        allow_nan=False)`` (a record that cannot be serialised raises that ValueError here). A
        caller that only writes JSON passes ``site_cost_dicts=False, site_cost_json=True``."""
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
        tick = format_ts(tick_ms)
        site_costs, cost_json = out.site_costs, out.site_cost_json
        get_site = self.catalogue.get
        caches = self.__dict__.get("_site_records")
        if caches is None:  # an instance unpickled from before the cache existed
            caches = self._site_records = {}
        for site_id in sorted(inputs):
            site = get_site(site_id)
            if site is None:
                continue
            inp = inputs[site_id]
            price, temp, rh = inp.price_per_mwh, inp.temp_c, inp.rel_humidity
            if price is None:
                offers_expired += 1
            n_committed = committed.get(site_id, 0)
            cache = caches.get(site_id)
            if cache is None or cache.site is not site:
                cache = caches[site_id] = _SiteRecords(site)
            # The record is a pure function of this key (and the site) when the key's values say
            # exactly what the record prints: floats (never -0.0 vs 0.0: no zero), ints, bools, str.
            key = None
            if (inp.site_id == site_id and type(price) in _FLOAT_OR_NONE and type(temp) in _FLOAT_OR_NONE
                    and type(rh) in _FLOAT_OR_NONE and price != 0.0 and temp != 0.0 and rh != 0.0
                    and type(inp.online) is bool and type(inp.capacity_slots) in _INT_OR_NONE
                    and type(inp.offer_valid_to_ms) in _INT_OR_NONE and type(inp.currency) is str
                    and type(n_committed) is int):
                key = (price, temp, rh, n_committed, inp.online, inp.capacity_slots, inp.currency,
                       inp.offer_valid_to_ms)
                entry = cache.records.get(key)
            else:
                entry = None
            if entry is None:
                entry = cache.entry(inp, n_committed)
                if key is not None and entry[0] is not None:
                    cache.remember(key, entry)
            body, rest, state = entry
            if site_cost_dicts:
                site_costs.append({"site_id": inp.site_id, "tick": tick, **rest})
            if site_cost_json:
                if body is not None:
                    cost_json.append((inp.site_id, cache.prefix + tick + body))
                else:
                    rec = {"site_id": inp.site_id, "tick": tick, **rest}
                    cost_json.append((inp.site_id, json.dumps(rec, separators=(",", ":"), allow_nan=False)))
            if state is not None:
                site_states.append(state)

        # jobs that can never run anywhere in the catalogue are rejected once, with the reason
        if getattr(self, "_capacity", None) is None or self._capacity[0] is not self.catalogue:
            self._capacity = (self.catalogue, {s.site_id: s.capacity_slots for s in self.catalogue})
        capacity = self._capacity[1]
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

        if jobs:
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
        else:  # nothing to place: the solver and every baseline return the empty plan (EMPTY_TICK)
            result = EMPTY_TICK
            if site_states:
                self.rr_pointer %= len(site_states)
            greedy_cost = naive_obj = cost = naive_cost = 0.0
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


_FLOAT_OR_NONE = frozenset({float, type(None)})
_INT_OR_NONE = frozenset({int, type(None)})
_RECORDS_MAX = 8  # remembered inputs per site: consecutive ticks mostly repeat the last ones
_encode_str = json.encoder.encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)
_new_object = object.__new__
_object_setattr = object.__setattr__


class _SiteRecords:
    """One site's site-costs records for recent inputs, in :meth:`Dispatcher.run_tick`.

    An entry is (JSON body after the tick or None, the record's fields after ``tick`` as a dict,
    the SiteState the dispatch sees or None). The JSON record is ``prefix + tick + body``.
    """

    __slots__ = ("site", "memo", "prefix", "records", "weather_text")

    def __init__(self, site: Any) -> None:
        self.site = site
        self.memo = SiteCostMemo(site)
        self.prefix = '{"site_id":' + _encode_str(site.site_id) + ',"tick":"'
        self.records: dict[tuple, tuple[str | None, dict[str, Any], SiteState | None]] = {}
        self.weather_text: dict[tuple, tuple[float | None, str]] = {}

    def remember(self, key: tuple, entry: tuple) -> None:
        if len(self.records) >= _RECORDS_MAX:
            self.records.clear()
        self.records[key] = entry

    def entry(self, inp: SiteInputs, n_committed: int) -> tuple[str | None, dict[str, Any], SiteState | None]:
        site = self.site
        fields = self.memo.fields(inp.price_per_mwh, inp.temp_c, inp.rel_humidity, n_committed, inp.online,
                                  inp.capacity_slots) if inp.site_id == site.site_id else None
        if fields is None:  # outside the fast path's domain: the plain computation, or its error
            sc = site_cost(site, price_per_mwh=inp.price_per_mwh, temp_c=inp.temp_c, rel_humidity=inp.rel_humidity,
                           committed_slots=n_committed, online=inp.online, capacity_slots=inp.capacity_slots)
            rec = _site_cost_record(inp, sc, inp.tick_ms)
            del rec["site_id"], rec["tick"]
            state = None
            if sc.available and sc.available_slots > 0 and sc.cost_per_compute_hour_eur is not None:
                state = SiteState(site_id=site.site_id, cost_per_compute_hour=sc.cost_per_compute_hour_eur,
                                  available_slots=sc.available_slots, region=site.region,
                                  price_per_mwh=inp.price_per_mwh * site.fx_to_eur)
            return None, rec, state
        p, ckw, cost, cost_eur, cap, slots, available, reason = fields
        price, temp, rh = inp.price_per_mwh, inp.temp_c, inp.rel_humidity
        online, vto = inp.online, inp.offer_valid_to_ms
        currency = inp.currency or None
        # temp_c, rel_humidity and pue (rounded) as JSON: the same for every tick of one observation
        # (not remembered for a zero, whose sign JSON shows and == does not)
        wkey = (temp, rh)
        weather = self.weather_text.get(wkey) if temp != 0.0 and rh != 0.0 else None
        if weather is None:
            pue_r = None if p is None else round(p, 6)
            weather = (pue_r, f'"temp_c":{_float_json(temp)},"rel_humidity":{_float_json(rh)},'
                              f'"pue":{_float_json(pue_r)}')
            if temp != 0.0 and rh != 0.0:
                if len(self.weather_text) >= _RECORDS_MAX:
                    self.weather_text.clear()
                self.weather_text[wkey] = weather
        pue_r, weather_json = weather
        ckw_r = None if ckw is None else round(ckw, 3)
        cost_r = None if cost is None else round(cost, 9)
        cost_eur_r = None if cost_eur is None else round(cost_eur, 9)
        valid_to = format_ts(vto) if vto is not None else None
        rest = {
            "price_per_mwh": price,
            "currency": currency,
            "offer_valid_to": valid_to,
            "temp_c": temp,
            "rel_humidity": rh,
            "pue": pue_r,
            "cooling_kw": ckw_r,
            "cost_per_compute_hour": cost_r,
            "cost_per_compute_hour_eur": cost_eur_r,
            "capacity_slots": cap,
            "available_slots": slots,
            "available": bool(available),
            "online": online,
            "reason": reason or None,
        }
        body: str | None = None
        if currency is None or type(currency) is str:
            body = (f'","price_per_mwh":{_float_json(price)},'
                    f'"currency":{"null" if currency is None else _encode_str(currency)},'
                    f'"offer_valid_to":{"null" if valid_to is None else _encode_str(valid_to)},{weather_json},'
                    f'"cooling_kw":{_float_json(ckw_r)},"cost_per_compute_hour":{_float_json(cost_r)},'
                    f'"cost_per_compute_hour_eur":{_float_json(cost_eur_r)},"capacity_slots":{int.__repr__(cap)},'
                    f'"available_slots":{int.__repr__(slots)},"available":{"true" if available else "false"},'
                    f'"online":{"true" if online else "false"},"reason":{_REASON_JSON[reason]}}}')
            if "inf" in body or "nan" in body:  # a non-finite float: json.dumps refuses it, let it say so
                body = None
        state = None
        if available and slots > 0 and cost_eur is not None:
            price_eur = price * site.fx_to_eur  # type: ignore[operator]
            if type(cost_eur) is float and math.isfinite(cost_eur) and type(price_eur) is float \
                    and math.isfinite(price_eur):
                # what SiteState(...) builds, without re-checking values known to be valid
                state = _new_object(SiteState)
                _object_setattr(state, "__dict__", {"site_id": site.site_id, "cost_per_compute_hour": cost_eur,
                                                    "available_slots": slots, "region": site.region,
                                                    "price_per_mwh": price_eur})
            else:
                state = SiteState(site_id=site.site_id, cost_per_compute_hour=cost_eur, available_slots=slots,
                                  region=site.region, price_per_mwh=price_eur)
        return body, rest, state


def _float_json(v: float | None) -> str:
    """json.dumps of a float or None (a non-finite float gives "inf"/"nan": callers check)."""
    return "null" if v is None else float.__repr__(v)


_REASON_JSON = {r: (_encode_str(r) if r else "null")
                for r in ("", "offline", "no-offer", "no-weather", "full", "derated")}
