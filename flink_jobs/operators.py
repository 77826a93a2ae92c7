"""The Flink functions of the dispatch job: state, timers and metrics around udfs/.

Each function keeps its domain object (udfs.site_tracker.SiteTracker, udfs.dispatcher.Dispatcher)
in keyed state and delegates every decision to it; nothing here computes a cost or a plan.
"""

from __future__ import annotations

import bisect
import json
import time
from dataclasses import dataclass, field
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.dispatch import DispatchConfig
from udfs.dispatcher import Dispatcher
from udfs.records import ParsedRecord, RecordError, dead_letter, parse_input
from udfs.sharding import JobRoute, shard_catalogue
from udfs.site_tracker import ACCEPTED, DUPLICATE, LATE, SiteInputs, SiteTracker, fingerprint, tick_at_or_after
from udfs.timeutil import format_ts

# One output row type for everything the job writes: which topic, the message key, the JSON value.
OUT_TYPE = Types.ROW_NAMED(["topic", "key", "value"], [Types.STRING(), Types.STRING(), Types.STRING()])
DEAD_LETTER_TAG = OutputTag("dead-letter", OUT_TYPE)
# Job events and counters leave ParseAndValidate on this side output, site events on its main
# output: no filter operator per event (in thread mode each is one more Python call per record).
TO_DISPATCH_TAG = OutputTag("to-dispatch")

# Elements flowing between the operators (pickled tuples):
#   ("event", topic, key, event_ms, record, meta)  a valid input record; meta = (partition, offset, raw)
#   ("event", ..., meta, shard)                     a job event stamped by JobRouter (sharded dispatch)
#   ("site", tick_ms, site_inputs_dict)             a site's inputs at one tick
#   ("count", name, n)                              a counter for pipeline-metrics (late, duplicates, ...)
EVENT, SITE, COUNT = "event", "site", "count"


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _now_iso() -> str:
    return format_ts(int(time.time() * 1000))


def subtask_index(runtime_context: RuntimeContext) -> int:
    try:
        return runtime_context.get_index_of_this_subtask()
    except AttributeError:  # PyFlink 2.2 thread mode calls a method Flink 2.0 moved to TaskInfo
        return runtime_context._runtime_context.getTaskInfo().getIndexOfThisSubtask()


class ParseAndValidate(ProcessFunction):
    """Raw Kafka rows -> validated site events (main output), job events and counters
    (TO_DISPATCH_TAG); anything unusable -> the dead-letter side output."""

    def __init__(self, sites_file: str):
        self.sites_file = sites_file
        self.known_sites: frozenset[str] = frozenset()

    def open(self, runtime_context: RuntimeContext):
        self.known_sites = frozenset(load_catalogue(self.sites_file).site_ids)
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        self.dead_letters = group.counter("dead_letters")
        self.parsed = group.counter("records_parsed")

    def process_element(self, value: Row, ctx: ProcessFunction.Context):
        topic, key, raw, partition, offset = value[0], value[1], value[2], value[3], value[4]
        try:
            parsed = parse_input(topic, raw, self.known_sites)
        except RecordError as exc:
            self.dead_letters.inc()
            record = dead_letter(topic, partition, offset, key, raw, str(exc), _now_iso())
            yield DEAD_LETTER_TAG, Row(topics.DEAD_LETTER, key, _json(record))
            yield TO_DISPATCH_TAG, (COUNT, "dead_letters", 1)
            return
        self.parsed.inc()
        if parsed.topic == topics.JOBS:
            # jobs keep their raw text: a conflicting resubmission is dead-lettered later, by the dispatcher
            yield TO_DISPATCH_TAG, (EVENT, parsed.topic, parsed.key, parsed.event_ms, parsed.record,
                                    (partition, offset, raw))
        else:
            yield EVENT, parsed.topic, parsed.key, parsed.event_ms, parsed.record, (partition, offset, None)


def to_parsed(element: tuple) -> ParsedRecord:
    return ParsedRecord(element[1], element[2], element[3], element[4])


class SiteTicks(KeyedProcessFunction):
    """Keyed by site_id: keeps the site's offers/weather/status and emits its inputs at every tick.

    Ticks: a site ticks at the first tick at or after each accepted event and keeps ticking while
    an offer is in force (udfs.site_tracker.SiteTracker.keeps_ticking_after). Python timers can
    fire out of order (a timer registered inside on_timer reaches the JVM after later ones have
    fired), so a timer only says "event time reached T": each firing emits, in order, every tick
    of the running chain up to T, and a timer at or before the last emitted tick does nothing.

    Cost per event is independent of how much the site holds: an accepted event goes into a
    state bucket of the tick it first matters to ("pending", keyed by that tick) and is applied
    to the tracker when that tick is emitted. Re-pickling the whole tracker on every event made
    a backlog quadratic: sources read partitions far ahead of the watermark, so a tracker could
    hold months of offers. The tracker and the bucket ticks are also cached in memory: state is
    only written by this instance, and a restore starts a new instance with an empty cache.
    """

    def __init__(self, sites_file: str, tick_len_ms: int):
        self.sites_file = sites_file
        self.tick_len_ms = tick_len_ms

    def open(self, runtime_context: RuntimeContext):
        self.catalogue = load_catalogue(self.sites_file)
        # The tracker object itself is the state value: no per-record conversion.
        self.tracker_state = runtime_context.get_state(ValueStateDescriptor("tracker", Types.PICKLED_BYTE_ARRAY()))
        # tick -> accepted events first needed at that tick, as (topic, key, event_ms, record, fingerprint)
        self.pending = runtime_context.get_map_state(
            MapStateDescriptor("pending-by-tick", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        # (next chain tick or None, last emitted tick)
        self.ticks = runtime_context.get_state(ValueStateDescriptor("ticks", Types.PICKLED_BYTE_ARRAY()))
        self.cache: dict[str, tuple[SiteTracker, list[int]]] = {}  # site -> (tracker, sorted pending ticks)
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        self.late = group.counter("late_events")
        self.duplicates = group.counter("duplicates")
        self.expired = group.counter("offers_expired")

    def _cached(self, site_id: str) -> tuple[SiteTracker, list[int]]:
        found = self.cache.get(site_id)
        if found is None:
            tracker = self.tracker_state.value() or SiteTracker(site_id, self.catalogue[site_id].offer_interval_ms)
            found = self.cache[site_id] = (tracker, sorted(self.pending.keys()))
        return found

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        if value[0] != EVENT:
            yield value  # counters pass through to the dispatcher
            return
        parsed = to_parsed(value)
        tracker, pending_ticks = self._cached(parsed.key)
        fp = fingerprint(parsed)
        outcome = tracker.classify(parsed, ctx.timer_service().current_watermark(), fp)
        if outcome == ACCEPTED:
            tick = tick_at_or_after(parsed.event_ms, self.tick_len_ms)
            i = bisect.bisect_left(pending_ticks, tick)
            if i < len(pending_ticks) and pending_ticks[i] == tick:
                bucket = self.pending.get(tick)
                # a duplicate has the same event time, so it can only be in the same bucket
                outcome = DUPLICATE if any(e[4] == fp for e in bucket) else ACCEPTED
            else:
                pending_ticks.insert(i, tick)
                bucket = []
                ctx.timer_service().register_event_time_timer(tick)
            if outcome == ACCEPTED:
                bucket.append((parsed.topic, parsed.key, parsed.event_ms, parsed.record, fp))
                self.pending.put(tick, bucket)
        if outcome == DUPLICATE:
            self.duplicates.inc()
            yield COUNT, "duplicates", 1
        elif outcome == LATE:
            self.late.inc()
            yield COUNT, "late_events", 1

    def _apply_pending(self, tracker: SiteTracker, pending_ticks: list[int], up_to: int) -> None:
        """Apply every pending event first needed at or before tick ``up_to``."""
        while pending_ticks and pending_ticks[0] <= up_to:
            tick = pending_ticks.pop(0)
            for topic, key, event_ms, record, fp in self.pending.get(tick) or []:
                tracker.apply(ParsedRecord(topic, key, event_ms, record), fp)
            self.pending.remove(tick)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        next_tick, last = self.ticks.value() or (None, None)
        if last is not None and timestamp <= last:
            return
        tracker, pending_ticks = self._cached(ctx.get_current_key())
        # the chain's ticks this (late) timer stands for, then the timer's own tick
        tick = next_tick if next_tick is not None and next_tick < timestamp else timestamp
        while True:
            self._apply_pending(tracker, pending_ticks, tick)
            inputs = tracker.inputs_at(tick)
            if inputs.price_per_mwh is None:
                self.expired.inc()
            yield SITE, tick, inputs.to_dict()
            tracker.prune(tick)
            if tick == timestamp:
                break
            chained = tick + self.tick_len_ms if tracker.keeps_ticking_after(tick) else None
            tick = chained if chained is not None and chained < timestamp else timestamp
        next_tick = timestamp + self.tick_len_ms if tracker.keeps_ticking_after(timestamp) else None
        if next_tick is not None:
            ctx.timer_service().register_event_time_timer(next_tick)
        self.ticks.update((next_tick, timestamp))
        self.tracker_state.update(tracker)


class JobRouter(KeyedProcessFunction):
    """Keyed by job_id, only with sharded dispatch: stamps every job event with the shard that
    decides the job (udfs.sharding.JobRoute), so a cancel reaches the shard of its submit."""

    def __init__(self, site_shard: dict[str, int], shards: int):
        self.site_shard = site_shard
        self.shards = shards

    def open(self, runtime_context: RuntimeContext):
        self.route_state = runtime_context.get_state(ValueStateDescriptor("route", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        route = self.route_state.value() or JobRoute()
        if value[4]["action"] == "submit":
            ready = [value, *route.on_submit(value[4], self.site_shard, self.shards)]
        elif route.on_cancel(value):
            ready = [value]
        else:
            ready = []
            ctx.timer_service().register_event_time_timer(value[3])
        self.route_state.update(route)
        for element in ready:
            yield (*element[:6], route.shard)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        route = self.route_state.value()
        if route is None or not route.waiting:
            return
        shard, released = route.on_event_time_passed(ctx.get_current_key(), self.shards)
        self.route_state.update(route)
        for element in released:
            yield (*element[:6], shard)


@dataclass
class _DispatchKey:
    """What DispatchTicks keeps in memory per key, mirroring its state (written through on every
    change): no unpickling of the dispatcher per tick. Only this instance writes the key's state,
    and a restore starts a new instance with an empty cache."""
    dispatcher: Dispatcher
    last_tick: int | None
    counts: dict[str, int]
    timers: set[int] = field(default_factory=set)  # ticks this instance registered a timer for


class DispatchTicks(KeyedProcessFunction):
    """One key (global dispatch): buffers job events and site inputs by tick, and at each tick calls
    udfs.dispatcher.Dispatcher, emitting site-costs, dispatch and pipeline-metrics rows.

    Ticks come from site inputs and job events (timers registered per element, which fire in
    order) and from pending deadlines (registered inside on_timer, which may fire late: a firing
    first catches up on every deadline tick before it)."""

    def __init__(self, sites_file: str, tick_len_ms: int, solver_time_limit_s: float,
                 shard_keys: list[str] | None = None, site_shard: dict[str, int] | None = None):
        self.sites_file = sites_file
        self.tick_len_ms = tick_len_ms
        self.solver_time_limit_s = solver_time_limit_s
        # sharded dispatch: the Flink key of each shard and the shard of each site (else one key)
        self.shard_keys = shard_keys or []
        self.site_shard = site_shard or {}
        self.pending_gauge_value = 0

    def open(self, runtime_context: RuntimeContext):
        self.catalogue = load_catalogue(self.sites_file)
        self.cache: dict[str, _DispatchKey] = {}
        self.shard_of_key = {key: shard for shard, key in enumerate(self.shard_keys)}
        self.shard_catalogues = {key: shard_catalogue(self.catalogue, self.site_shard, shard)
                                 for key, shard in self.shard_of_key.items()}
        self.subtask = subtask_index(runtime_context)
        self.config = DispatchConfig(tick_len_ms=self.tick_len_ms, time_limit_s=self.solver_time_limit_s)
        self.dispatcher_state = runtime_context.get_state(
            ValueStateDescriptor("dispatcher", Types.PICKLED_BYTE_ARRAY()))
        # tick -> job elements of that tick; "tick|site" -> one site's inputs at that tick. One
        # entry per site (not a dict of all sites per tick, re-pickled on every site's arrival:
        # that made a tick cost quadratic in the number of sites).
        self.inbox = runtime_context.get_map_state(
            MapStateDescriptor("job-inbox", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        self.site_inputs = runtime_context.get_map_state(
            MapStateDescriptor("site-inputs-by-site", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.counts = runtime_context.get_state(ValueStateDescriptor("counts", Types.PICKLED_BYTE_ARRAY()))
        self.last_tick = runtime_context.get_state(ValueStateDescriptor("last-tick", Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        group.gauge("pending_jobs", lambda: self.pending_gauge_value)
        self.decisions_counter = group.counter("decisions")
        self.late_jobs = group.counter("late_jobs")

    def _cached(self, key: str) -> _DispatchKey:
        found = self.cache.get(key)
        if found is None:
            dispatcher = Dispatcher(self.shard_catalogues.get(key, self.catalogue), self.config)
            dispatcher.load_state(self.dispatcher_state.value())
            found = self.cache[key] = _DispatchKey(dispatcher, self.last_tick.value(), self.counts.value() or {})
        return found

    def _count(self, cached: _DispatchKey, name: str, n: int = 1) -> None:
        cached.counts[name] = cached.counts.get(name, 0) + n
        self.counts.update(cached.counts)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        kind = value[0]
        timers = ctx.timer_service()
        cached = self._cached(ctx.get_current_key())
        last = cached.last_tick
        if kind == COUNT:
            self._count(cached, value[1], value[2])
        elif kind == SITE:
            tick_ms, inputs = value[1], value[2]
            if last is not None and tick_ms <= last:
                self._count(cached, "late_site_inputs")  # cannot happen while watermarks follow records
                return iter(())
            self.site_inputs.put(f"{tick_ms}|{inputs['site_id']}", inputs)
            if tick_ms not in cached.timers:  # every site of a tick asks for the same timer
                cached.timers.add(tick_ms)
                timers.register_event_time_timer(tick_ms)
        else:
            tick = tick_at_or_after(value[3], self.tick_len_ms)
            watermark = timers.current_watermark()
            if tick <= watermark or (last is not None and tick <= last):
                # A late job is not dropped: it joins the next tick (and is counted).
                self.late_jobs.inc()
                self._count(cached, "late_jobs")
                tick = tick_at_or_after(max(watermark, last or watermark) + 1, self.tick_len_ms)
            events = self.inbox.get(tick) or []
            events.append(value)
            self.inbox.put(tick, events)
            timers.register_event_time_timer(tick)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        key = ctx.get_current_key()
        cached = self._cached(key)
        last = cached.last_tick
        if last is not None and timestamp <= last:
            return
        dispatcher = cached.dispatcher
        while True:  # deadline ticks this firing stands for, then the firing's own tick
            deadline = dispatcher.next_deadline_tick(self.tick_len_ms)
            tick = deadline if deadline is not None and (last is None or deadline > last) and deadline < timestamp \
                else timestamp
            yield from self._run_tick(dispatcher, tick, self.shard_of_key.get(key), cached)
            last = tick
            if tick == timestamp:
                break
        nxt = dispatcher.next_deadline_tick(self.tick_len_ms)
        if nxt is not None:
            ctx.timer_service().register_event_time_timer(max(nxt, timestamp + self.tick_len_ms))
        cached.last_tick = timestamp
        cached.timers = {t for t in cached.timers if t > timestamp}
        self.last_tick.update(timestamp)
        self.dispatcher_state.update(dispatcher.to_state())
        self.pending_gauge_value = len(dispatcher.pending)

    def _run_tick(self, dispatcher: Dispatcher, tick: int, shard: int | None, cached: _DispatchKey):
        elements = self.inbox.get(tick) or []
        self.inbox.remove(tick)
        inputs = {}
        for site_id in dispatcher.catalogue.site_ids:  # a lookup per site: linear in sites
            key = f"{tick}|{site_id}"
            found = self.site_inputs.get(key)
            if found is not None:
                inputs[site_id] = SiteInputs.from_dict(found)
                self.site_inputs.remove(key)
        events, meta = [], {}
        for element in elements:
            parsed = to_parsed(element)
            events.append(parsed)
            meta[id(parsed)] = element[5]
        counts, cached.counts = cached.counts, {}
        self.counts.clear()
        out = dispatcher.run_tick(tick, events, inputs, counts)
        for rec in out.site_costs:
            yield Row(topics.SITE_COSTS, rec["site_id"], _json(rec))
        for rec in out.decisions:
            self.decisions_counter.inc()
            yield Row(topics.DISPATCH, rec["job_id"], _json(rec))
        for parsed, reason in out.dead_letters:
            partition, offset, raw = meta.get(id(parsed), (None, None, None))
            yield Row(topics.DEAD_LETTER, parsed.key,
                      _json(dead_letter(topics.JOBS, partition, offset, parsed.key,
                                        raw or json.dumps(parsed.record), reason, _now_iso())))
        if shard is None:
            yield Row(topics.PIPELINE_METRICS, format_ts(tick), _json(out.metrics))
        else:  # one record per shard and tick
            metrics = {**out.metrics, "shard": shard, "subtask": self.subtask}
            yield Row(topics.PIPELINE_METRICS, f"{format_ts(tick)}|{shard}", _json(metrics))
