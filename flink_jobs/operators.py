"""The Flink functions of the dispatch job: state, timers and metrics around udfs/.

Each function keeps its domain object (udfs.site_tracker.SiteTracker, udfs.dispatcher.Dispatcher)
in keyed state and delegates every decision to it; nothing here computes a cost or a plan.
"""

from __future__ import annotations

import json
import time
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
from udfs.site_tracker import ACCEPTED, DUPLICATE, SiteInputs, SiteTracker, tick_at_or_after
from udfs.timeutil import format_ts

# One output row type for everything the job writes: which topic, the message key, the JSON value.
OUT_TYPE = Types.ROW_NAMED(["topic", "key", "value"], [Types.STRING(), Types.STRING(), Types.STRING()])
DEAD_LETTER_TAG = OutputTag("dead-letter", OUT_TYPE)

# Elements flowing between the operators (pickled tuples):
#   ("event", topic, key, event_ms, record, meta)  a valid input record; meta = (partition, offset, raw)
#   ("site", tick_ms, site_inputs_dict)             a site's inputs at one tick
#   ("count", name, n)                              a counter for pipeline-metrics (late, duplicates, ...)
EVENT, SITE, COUNT = "event", "site", "count"


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _now_iso() -> str:
    return format_ts(int(time.time() * 1000))


class ParseAndValidate(ProcessFunction):
    """Raw Kafka rows -> validated events; anything unusable -> the dead-letter side output."""

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
            yield COUNT, "dead_letters", 1
            return
        self.parsed.inc()
        # jobs keep their raw text: a conflicting resubmission is dead-lettered later, by the dispatcher
        meta = (partition, offset, raw if topic == topics.JOBS else None)
        yield EVENT, parsed.topic, parsed.key, parsed.event_ms, parsed.record, meta


def to_parsed(element: tuple) -> ParsedRecord:
    return ParsedRecord(element[1], element[2], element[3], element[4])


class SiteTicks(KeyedProcessFunction):
    """Keyed by site_id: keeps the site's offers/weather/status and emits its inputs at every tick."""

    def __init__(self, sites_file: str, tick_len_ms: int):
        self.sites_file = sites_file
        self.tick_len_ms = tick_len_ms

    def open(self, runtime_context: RuntimeContext):
        self.catalogue = load_catalogue(self.sites_file)
        self.tracker_state = runtime_context.get_state(ValueStateDescriptor("tracker", Types.PICKLED_BYTE_ARRAY()))
        self.due_ticks = runtime_context.get_state(ValueStateDescriptor("due-ticks", Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        self.late = group.counter("late_events")
        self.duplicates = group.counter("duplicates")
        self.expired = group.counter("offers_expired")

    def _tracker(self, site_id: str) -> SiteTracker:
        state = self.tracker_state.value()
        if state is not None:
            return SiteTracker.from_state(state)
        return SiteTracker(site_id, self.catalogue[site_id].offer_interval_ms)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        if value[0] != EVENT:
            yield value  # counters pass through to the dispatcher
            return
        parsed = to_parsed(value)
        tracker = self._tracker(parsed.key)
        watermark = ctx.timer_service().current_watermark()
        outcome = tracker.add(parsed, watermark)
        if outcome == ACCEPTED:
            self.tracker_state.update(tracker.to_state())
            tick = tick_at_or_after(parsed.event_ms, self.tick_len_ms)
            self.due_ticks.update(sorted(set(self.due_ticks.value() or []) | {tick}))
            ctx.timer_service().register_event_time_timer(tick)
        elif outcome == DUPLICATE:
            self.duplicates.inc()
            yield COUNT, "duplicates", 1
        else:
            self.late.inc()
            yield COUNT, "late_events", 1

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        # Python timers can fire out of order (a timer registered inside on_timer reaches the JVM
        # after later ones have fired), so a timer only says "event time reached T": every due
        # tick up to T is emitted here, in order, and the timer's own time is not trusted.
        due = list(self.due_ticks.value() or [])
        if not due or due[0] > timestamp:
            return
        tracker = self._tracker(ctx.get_current_key())
        while due and due[0] <= timestamp:
            tick = due.pop(0)
            inputs = tracker.inputs_at(tick)
            if inputs.price_per_mwh is None:
                self.expired.inc()
            yield SITE, tick, inputs.to_dict()
            if tracker.keeps_ticking_after(tick):
                nxt = tick + self.tick_len_ms
                if nxt not in due:
                    due.append(nxt)
                    due.sort()
                    ctx.timer_service().register_event_time_timer(nxt)
            tracker.prune(tick)
        self.due_ticks.update(due)
        self.tracker_state.update(tracker.to_state())


class DispatchTicks(KeyedProcessFunction):
    """One key (global dispatch): buffers job events and site inputs, and at each tick calls
    udfs.dispatcher.Dispatcher, emitting site-costs, dispatch and pipeline-metrics rows."""

    def __init__(self, sites_file: str, tick_len_ms: int, solver_time_limit_s: float):
        self.sites_file = sites_file
        self.tick_len_ms = tick_len_ms
        self.solver_time_limit_s = solver_time_limit_s
        self.pending_gauge_value = 0

    def open(self, runtime_context: RuntimeContext):
        self.catalogue = load_catalogue(self.sites_file)
        self.config = DispatchConfig(tick_len_ms=self.tick_len_ms, time_limit_s=self.solver_time_limit_s)
        self.dispatcher_state = runtime_context.get_state(
            ValueStateDescriptor("dispatcher", Types.PICKLED_BYTE_ARRAY()))
        self.inbox = runtime_context.get_map_state(
            MapStateDescriptor("job-inbox", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.site_inputs = runtime_context.get_map_state(
            MapStateDescriptor("site-inputs", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.counts = runtime_context.get_state(ValueStateDescriptor("counts", Types.PICKLED_BYTE_ARRAY()))
        self.due_ticks = runtime_context.get_state(ValueStateDescriptor("due-ticks", Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        group.gauge("pending_jobs", lambda: self.pending_gauge_value)
        self.decisions_counter = group.counter("decisions")
        self.late_jobs = group.counter("late_jobs")

    def _count(self, name: str, n: int = 1) -> None:
        counts = self.counts.value() or {}
        counts[name] = counts.get(name, 0) + n
        self.counts.update(counts)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        kind = value[0]
        timers = ctx.timer_service()
        if kind == COUNT:
            self._count(value[1], value[2])
        elif kind == SITE:
            tick_ms, inputs = value[1], value[2]
            if tick_ms <= timers.current_watermark():
                self._count("late_site_inputs")
            self.site_inputs.put(f"{tick_ms:015d}|{inputs['site_id']}", inputs)
            self._due(timers, tick_ms)
        else:
            event_ms, record = value[3], value[4]
            partition, offset = value[5][0], value[5][1]
            # one entry per delivered record (a re-delivered duplicate too: the dispatcher counts it)
            key = f"{event_ms:015d}|{record['job_id']}|{record['action']}|{partition}|{offset}"
            self.inbox.put(key, value)
            tick = tick_at_or_after(event_ms, self.tick_len_ms)
            watermark = timers.current_watermark()
            if tick <= watermark:
                # A late job is not dropped: it joins the next tick (and is counted).
                self.late_jobs.inc()
                self._count("late_jobs")
                tick = tick_at_or_after(watermark + 1, self.tick_len_ms)
            self._due(timers, tick)
        return iter(())

    def _due(self, timers, tick: int) -> None:
        due = set(self.due_ticks.value() or [])
        if tick not in due:
            due.add(tick)
            self.due_ticks.update(sorted(due))
            timers.register_event_time_timer(tick)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        # As in SiteTicks: process every due tick up to the timer's time, in order.
        due = list(self.due_ticks.value() or [])
        if not due or due[0] > timestamp:
            return
        dispatcher = Dispatcher(self.catalogue, self.config)
        dispatcher.load_state(self.dispatcher_state.value())
        inbox = sorted(self.inbox.items())
        site_inputs: dict[int, dict[str, SiteInputs]] = {}
        used = []
        for key, value in self.site_inputs.items():
            tick = int(key.split("|", 1)[0])
            if tick <= timestamp:
                site_inputs.setdefault(tick, {})[value["site_id"]] = SiteInputs.from_dict(value)
                used.append(key)
        for key in used:
            self.site_inputs.remove(key)
        while due and due[0] <= timestamp:
            tick = due.pop(0)
            yield from self._run_tick(dispatcher, tick, inbox, site_inputs.get(tick, {}))
            nxt = dispatcher.next_deadline_tick(self.tick_len_ms)
            if nxt is not None:
                nxt = max(nxt, tick + self.tick_len_ms)
                if nxt not in due:
                    due.append(nxt)
                    due.sort()
                    ctx.timer_service().register_event_time_timer(nxt)
        self.due_ticks.update(due)
        self.dispatcher_state.update(dispatcher.to_state())
        self.pending_gauge_value = len(dispatcher.pending)

    def _run_tick(self, dispatcher: Dispatcher, tick: int, inbox: list, inputs: dict[str, SiteInputs]):
        events, meta = [], {}
        while inbox and int(inbox[0][0].split("|", 1)[0]) <= tick:
            key, element = inbox.pop(0)
            parsed = to_parsed(element)
            events.append(parsed)
            meta[id(parsed)] = element[5]
            self.inbox.remove(key)
        counts = self.counts.value() or {}
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
        yield Row(topics.PIPELINE_METRICS, format_ts(tick), _json(out.metrics))
