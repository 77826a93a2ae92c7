"""The dispatch operator: state, timers and metrics around udfs.tick_engine.TickEngine (site
trackers and dispatcher), which makes every decision; nothing here computes a cost or a plan.

This module imports PuLP and HiGHS (through udfs.tick_engine); keep every other operator in
flink_jobs/elements.py, which does not (see there why).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs.elements import (
    BATCH,
    COUNT,
    RS,
    SINGLE,
    SITE_COSTS_PACKED,
    US,
    _json,
    dead_letter_row,
    decode_batch,
    subtask_index,
    to_parsed,
)
from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.dispatch import DispatchConfig
from udfs.sharding import shard_catalogue
from udfs.tick_engine import RawRecord, TickEngine, TickResult
from udfs.timeutil import format_ts

SNAPSHOT_EVERY_TICKS = 64  # trackers are snapshotted this often; site records in between are logged


@dataclass
class _KeyCache:
    """What TickOperator keeps in memory per key, mirroring its state (written through): only this
    instance writes the key's state, and a restore starts a new instance with an empty cache."""
    engine: TickEngine
    log_seq: int
    log_by_tick: list[tuple[int, int]]  # heap of (tick its records are first needed at, log seq)
    log_any: list[int]  # log seqs of records for any tick (late ones): dropped at every snapshot
    ticks_since_snapshot: int = 0
    dispatcher_signature: tuple | None = None
    timers: set[int] = field(default_factory=set)  # ticks this instance registered a timer for
    counts_written: dict = field(default_factory=dict)  # the counters as last written to the core state
    inbox_ticks: set[int] = field(default_factory=set)  # ticks with job events in the job-inbox state


class TickOperator(KeyedProcessFunction):
    """One key (global dispatch) or one key per region shard: runs the key's udfs.tick_engine.
    TickEngine — site trackers, pending jobs, the PuLP dispatch — and writes what each tick decides.

    Input is a tick's site records in one batch from the JVM, site records on their own, job
    events and counters. A timer at the engine's next due tick wakes it; a firing runs every
    tick due by then (timers registered inside on_timer can fire late in PyFlink, so a firing
    only says "event time reached T")."""

    def __init__(self, sites_file: str, tick_len_ms: int, solver_time_limit_s: float,
                 shard_keys: list[str] | None = None, site_shard: dict[str, int] | None = None):
        self.sites_file = sites_file
        self.tick_len_ms = tick_len_ms
        self.solver_time_limit_s = solver_time_limit_s
        # sharded dispatch: the Flink key of each shard and the shard of each site (else one key)
        self.shard_keys = shard_keys or []
        self.site_shard = site_shard or {}
        self.pending_gauge_value = 0
        self.solve_ms_value = 0.0

    def open(self, runtime_context: RuntimeContext):
        self.catalogue = load_catalogue(self.sites_file)
        self.known_sites = frozenset(self.catalogue.site_ids)
        self.cache: dict[str, _KeyCache] = {}
        self.shard_of_key = {key: shard for shard, key in enumerate(self.shard_keys)}
        self.shard_catalogues = {key: shard_catalogue(self.catalogue, self.site_shard, shard)
                                 for key, shard in self.shard_of_key.items()}
        self.subtask = subtask_index(runtime_context)
        self.config = DispatchConfig(tick_len_ms=self.tick_len_ms, time_limit_s=self.solver_time_limit_s)

        def state(name: str):
            return runtime_context.get_state(ValueStateDescriptor(name, Types.PICKLED_BYTE_ARRAY()))

        self.core_state = state("engine-core")
        self.dispatcher_state = state("dispatcher")
        self.tracker_snapshot = state("tracker-snapshot")
        # site records received since the snapshot or still waiting for their tick, by arrival:
        # seq -> (("blob", text) | ("rows", rows), watermark, tick)
        self.site_log = runtime_context.get_map_state(
            MapStateDescriptor("site-log", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        self.job_inbox = runtime_context.get_map_state(
            MapStateDescriptor("job-inbox", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        group.gauge("pending_jobs", lambda: self.pending_gauge_value)
        group.gauge("solve_ms", lambda: int(round(self.solve_ms_value)))  # the last tick's; a gauge must be an int
        self.decisions_counter = group.counter("decisions")
        self.dead_letters = group.counter("dead_letters")
        self.parsed = group.counter("records_parsed")
        self.late = group.counter("late_events")
        self.duplicates = group.counter("duplicates")
        self.expired = group.counter("offers_expired")
        self.late_jobs = group.counter("late_jobs")

    def _cached(self, key: str) -> _KeyCache:
        found = self.cache.get(key)
        if found is None:
            engine = TickEngine(self.shard_catalogues.get(key, self.catalogue), self.tick_len_ms, self.config,
                                self.known_sites, site_cost_json=True)
            entries = sorted(self.site_log.items())
            log = [(decode_batch(payload) if kind == "blob" else payload, watermark)
                   for _, ((kind, payload), watermark, _) in entries]
            engine.restore(self.core_state.value(), self.dispatcher_state.value(), self.tracker_snapshot.value(), log,
                           dict(self.job_inbox.items()))
            by_tick = [(entry[2], seq) for seq, entry in entries if entry[2] is not None]
            heapq.heapify(by_tick)
            found = self.cache[key] = _KeyCache(engine, entries[-1][0] + 1 if entries else 0, by_tick,
                                                [seq for seq, entry in entries if entry[2] is None],
                                                inbox_ticks=set(engine.inbox))
        return found

    def _log(self, cached: _KeyCache, entry: tuple, watermark: int | None, tick: int | None) -> None:
        self.site_log.put(cached.log_seq, (entry, watermark, tick))
        if tick is None:
            cached.log_any.append(cached.log_seq)
        else:
            heapq.heappush(cached.log_by_tick, (tick, cached.log_seq))
        cached.log_seq += 1

    def _timer(self, cached: _KeyCache, timers) -> None:
        """A timer at the engine's next due tick (once: a call into the JVM costs)."""
        due = cached.engine.next_due()
        if due is not None and due not in cached.timers:
            cached.timers.add(due)
            timers.register_event_time_timer(due)

    def _snapshot(self, cached: _KeyCache) -> None:
        """Trackers as they are now; the log keeps only what they do not hold yet: batches of
        ticks still to come, and any late offer still waiting for its site's next tick."""
        engine = cached.engine
        last = engine.last_tick
        self.tracker_snapshot.update(engine.trackers)
        while cached.log_by_tick and cached.log_by_tick[0][0] <= last:
            self.site_log.remove(heapq.heappop(cached.log_by_tick)[1])
        for seq in cached.log_any:
            self.site_log.remove(seq)
        cached.log_any = []
        waiting = engine.waiting_rows(up_to_ms=last)
        if waiting:
            self._log(cached, ("rows", waiting), None, None)

    def _site_records(self, cached: _KeyCache, rows: list[RawRecord], watermark: int | None):
        dead = cached.engine.add_site_records(rows, watermark)
        self.parsed.inc(len(rows) - len(dead))
        if dead:
            self.dead_letters.inc(len(dead))
        for d in dead:
            yield dead_letter_row(d)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        kind = value[0]
        timers = ctx.timer_service()
        cached = self._cached(ctx.get_current_key())
        engine = cached.engine
        if kind == BATCH and (engine.last_tick is None or value[2] > engine.last_tick):
            self._log(cached, ("blob", value[3]), None, value[2])
            yield from self._site_records(cached, decode_batch(value[3]), None)
        elif kind == BATCH:  # the tick ran already (its topic was idle while others went on): as singles
            watermark = timers.current_watermark()
            self._log(cached, ("blob", value[3]), watermark, None)
            yield from self._site_records(cached, decode_batch(value[3]), watermark)
        elif kind == SINGLE:
            row = (value[2], value[3], value[4], value[5], value[6])
            watermark = timers.current_watermark()
            self._log(cached, ("rows", [row]), watermark, None)
            yield from self._site_records(cached, [row], watermark)
        elif kind == COUNT:
            engine.count(value[1], value[2])
        else:
            late_before = engine.counts.get("late_jobs", 0)
            tick = engine.add_job_event(to_parsed(value), value[5], timers.current_watermark())
            self.job_inbox.put(tick, engine.inbox[tick])
            cached.inbox_ticks.add(tick)
            if engine.counts.get("late_jobs", 0) > late_before:
                self.late_jobs.inc()
        if engine.counts != cached.counts_written:  # only counters change here (and what the log holds)
            self.core_state.update(engine.core_state())
            cached.counts_written = dict(engine.counts)
        self._timer(cached, timers)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        key = ctx.get_current_key()
        cached = self._cached(key)
        engine = cached.engine
        results = engine.advance(timestamp)
        if not results:
            return
        for result in results:
            if result.tick_ms in cached.inbox_ticks:
                cached.inbox_ticks.discard(result.tick_ms)
                self.job_inbox.remove(result.tick_ms)
            yield from self._tick_rows(result, self.shard_of_key.get(key))
        cached.timers = {t for t in cached.timers if t > engine.last_tick}
        cached.ticks_since_snapshot += len(results)
        if cached.ticks_since_snapshot >= SNAPSHOT_EVERY_TICKS:
            self._snapshot(cached)
            cached.ticks_since_snapshot = 0
        d = engine.dispatcher
        signature = (len(d.pending), len(d.running), len(d.decided), d.rr_pointer, tuple(d.cumulative.values()))
        if signature != cached.dispatcher_signature:
            self.dispatcher_state.update(d.to_state())
            cached.dispatcher_signature = signature
        self.core_state.update(engine.core_state())
        cached.counts_written = dict(engine.counts)
        self.pending_gauge_value = len(d.pending)
        self._timer(cached, ctx.timer_service())

    def _tick_rows(self, result: TickResult, shard: int | None):
        out = result.output
        metrics = out.metrics
        for counter, name in ((self.late, "late_events"), (self.duplicates, "duplicates"),
                              (self.expired, "offers_expired")):
            if metrics.get(name):  # a call into the JVM each
                counter.inc(metrics[name])
        self.solve_ms_value = metrics.get("solve_ms", 0.0)
        if out.site_cost_json:
            yield Row(SITE_COSTS_PACKED, None, RS.join(f"{site_id}{US}{text}" for site_id, text in out.site_cost_json))
        if out.decisions:
            self.decisions_counter.inc(len(out.decisions))
        for rec in out.decisions:
            yield Row(topics.DISPATCH, rec["job_id"], _json(rec))
        for d in result.dead:
            self.dead_letters.inc()
            yield dead_letter_row(d)
        if shard is None:
            yield Row(topics.PIPELINE_METRICS, format_ts(result.tick_ms), _json(metrics))
        else:  # one record per shard and tick
            yield Row(topics.PIPELINE_METRICS, f"{format_ts(result.tick_ms)}|{shard}",
                      _json({**metrics, "shard": shard, "subtask": self.subtask}))

