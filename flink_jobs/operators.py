"""The dispatch operator: state, timers and metrics around udfs.tick_engine.TickEngine (the
offer books, pending jobs, dispatcher), which makes every decision; nothing here computes a cost
or a plan.

This module imports PuLP and HiGHS (through udfs.tick_engine); keep every other Python operator in
flink_jobs/elements.py, which does not (see there why).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import orjson
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs.elements import DEAD_JOB, SINGLE_KEY, Packer, dead_letter_row, subtask_index
from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.optimizer import DispatchConfig
from udfs.records import job_event, json_text
from udfs.sharding import shard_catalogue
from udfs.tick_engine import SITE_TICK, TickEngine, TickResult
from udfs.timeutil import format_ts


@dataclass
class _KeyCache:
    """What TickOperator keeps in memory per key, mirroring its state (written through): only this
    instance writes the key's state, and a restore starts a new instance with an empty cache."""
    engine: TickEngine
    dispatcher_signature: tuple | None = None
    timers: set[int] = field(default_factory=set)  # pending timers this instance registered ...
    timer_heap: list[int] = field(default_factory=list)  # ... as a heap, to forget the ones passed
    counts_written: dict = field(default_factory=dict)  # the counters as last written to the core state
    # the ticks with entries in the site-inbox and job-inbox states (asking the state is a JVM call)
    inbox_ticks: set[int] = field(default_factory=set)


class TickOperator(KeyedProcessFunction):
    """One key (global dispatch) or one key per region shard: runs the key's udfs.tick_engine.
    TickEngine and writes what each tick decides.

    Input: the site ticks of the key's sites (SiteTicker, on the JVM) and the raw job records, in
    arrival order, batched per watermark on the JVM (elements.batched_by_watermark: a batch arrives
    before the watermark that follows its records). A site tick waits for its tick; a job event is
    validated and joins its tick. One timer, at the earliest due tick, wakes it; a firing runs
    every tick due up to the current watermark (timers registered inside on_timer can fire late in
    PyFlink, so a firing only says "event time reached T"), writes their output as packed rows, and
    sets the timer at the next due tick.

    State: the small core (last tick, counters), the dispatcher, the offer books, and the site
    ticks and job events waiting for their tick (by tick)."""

    def __init__(self, sites_file: str, tick_len_ms: int, solver_time_limit_s: float,
                 shard_keys: list[str] | None = None, site_shard: dict[str, int] | None = None,
                 replan: str = "on-change"):
        self.sites_file = sites_file
        self.tick_len_ms = tick_len_ms
        self.solver_time_limit_s = solver_time_limit_s
        self.replan = replan
        # sharded dispatch: the Flink key of each shard and the shard of each site (else one key)
        self.shard_keys = shard_keys or []
        self.site_shard = site_shard or {}
        self.pending_gauge_value = 0
        self.solve_ms_value = 0.0

    def open(self, runtime_context: RuntimeContext):
        self.catalogue = load_catalogue(self.sites_file)
        self.cache: dict[str, _KeyCache] = {}
        self.shard_of_key = {key: shard for shard, key in enumerate(self.shard_keys)}
        self.shard_catalogues = {key: shard_catalogue(self.catalogue, self.site_shard, shard)
                                 for key, shard in self.shard_of_key.items()}
        self.subtask = subtask_index(runtime_context)
        self.config = DispatchConfig(tick_len_ms=self.tick_len_ms, time_limit_s=self.solver_time_limit_s,
                                     replan=self.replan)

        def state(name: str):
            return runtime_context.get_state(ValueStateDescriptor(name, Types.PICKLED_BYTE_ARRAY()))

        self.core_state = state("engine-core")
        self.dispatcher_state = state("dispatcher")
        self.books_state = state("offer-books")
        self.site_inbox = runtime_context.get_map_state(
            MapStateDescriptor("site-inbox", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        self.job_inbox = runtime_context.get_map_state(
            MapStateDescriptor("job-inbox", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        group.gauge("pending_jobs", lambda: self.pending_gauge_value)
        group.gauge("solve_ms", lambda: int(round(self.solve_ms_value)))  # the last tick's; a gauge must be an int
        self.decisions_counter = group.counter("decisions")
        # the dispatcher's refusals (JobRecords and SiteTicker count the input records' under this name)
        self.dead_letters = group.counter("dead_letters")
        self.expired = group.counter("offers_expired")
        self.late_jobs = group.counter("late_jobs")

    def _cached(self, key: str) -> _KeyCache:
        found = self.cache.get(key)
        if found is None:
            engine = TickEngine(self.shard_catalogues.get(key, self.catalogue), self.tick_len_ms, self.config,
                                site_cost_json=True)
            engine.restore(self.core_state.value(), self.dispatcher_state.value(), self.books_state.value(),
                           dict(self.site_inbox.items()), dict(self.job_inbox.items()))
            found = self.cache[key] = _KeyCache(engine, counts_written=dict(engine.counts),
                                                inbox_ticks={*engine.site_inbox, *engine.inbox})
        return found

    def _timer_at(self, cached: _KeyCache, tick: int | None, timers) -> None:
        """A timer at ``tick`` unless an earlier one is pending: a firing runs every tick up to the
        watermark and then sets the timer at the engine's next due tick (a call into the JVM
        costs, and most timers of a backlog would fire with nothing left to run)."""
        if tick is None or tick in cached.timers or (cached.timer_heap and cached.timer_heap[0] < tick):
            return
        cached.timers.add(tick)
        heapq.heappush(cached.timer_heap, tick)
        timers.register_event_time_timer(tick)

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        # value: the key's rows since the last watermark, in arrival order, as one array per field:
        # topic, key, value, partition, offset (WatermarkBatcher, flink_jobs/jvm): one call from the
        # JVM per batch, not per row
        timers = ctx.timer_service()
        watermark = timers.current_watermark()  # what each job event would have met alone
        # every call into the JVM costs: with one dispatch key there is no need to ask for it
        cached = self._cached(ctx.get_current_key() if self.shard_keys else SINGLE_KEY)
        engine = cached.engine
        site_ticks: set[int] = set()
        job_ticks: set[int] = set()
        late_jobs_before = engine.counts.get("late_jobs", 0)
        for row in zip(*value, strict=True):
            if row[0] == SITE_TICK:
                tick = engine.add_site_tick(orjson.loads(row[2]))
                if tick is not None:
                    site_ticks.add(tick)
                continue
            if row[0] == DEAD_JOB:  # dead-lettered on the JVM (JobRecords): counted in the tick's metrics
                engine.count("dead_letters")
                continue
            parsed = job_event(row[2])
            job_ticks.add(engine.add_job_event(parsed, (row[3], row[4], parsed.raw), watermark))
        for tick in site_ticks:
            self.site_inbox.put(tick, engine.site_inbox[tick])
        for tick in job_ticks:
            self.job_inbox.put(tick, engine.inbox[tick])
        cached.inbox_ticks |= site_ticks | job_ticks
        late_jobs = engine.counts.get("late_jobs", 0) - late_jobs_before
        if late_jobs > 0:
            self.late_jobs.inc(late_jobs)
        for tick in engine.take_new_due_ticks():
            self._timer_at(cached, tick, timers)
        if engine.counts != cached.counts_written:  # only counters change here (and what the inboxes hold)
            self.core_state.update(engine.core_state())
            cached.counts_written = dict(engine.counts)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            return
        key = ctx.get_current_key()
        cached = self._cached(key)
        engine = cached.engine
        timers = ctx.timer_service()
        # Every tick up to the watermark, not only up to this timer: all rows before the watermark
        # are in, and reading a backlog one watermark covers hundreds of ticks, each of which would
        # otherwise be a call from the JVM with its own output rows.
        results = engine.advance(max(timestamp, timers.current_watermark()))
        if results:
            shard = self.shard_of_key.get(key)
            packed = Packer()
            for result in results:
                if result.tick_ms in cached.inbox_ticks:
                    cached.inbox_ticks.discard(result.tick_ms)
                    self.site_inbox.remove(result.tick_ms)  # removing a key that is not there is a no-op
                    self.job_inbox.remove(result.tick_ms)
                yield from self._tick_rows(result, shard, packed)
            yield from packed.flush()
            while cached.timer_heap and cached.timer_heap[0] <= engine.last_tick:
                cached.timers.discard(heapq.heappop(cached.timer_heap))
            self.books_state.update(engine.books_state())
            d = engine.dispatcher
            signature = d.signature()
            if signature != cached.dispatcher_signature:
                self.dispatcher_state.update(d.to_state())
                cached.dispatcher_signature = signature
            self.core_state.update(engine.core_state())
            cached.counts_written = dict(engine.counts)
            self.pending_gauge_value = len(d.pending)
        self._timer_at(cached, engine.next_due(), timers)

    def _tick_rows(self, result: TickResult, shard: int | None, packed: Packer):
        out = result.output
        metrics = out.metrics
        if metrics.get("offers_expired"):  # a call into the JVM
            self.expired.inc(metrics["offers_expired"])
        self.solve_ms_value = metrics.get("solve_ms", 0.0)
        for site_id, text in out.site_cost_json:
            yield from packed.add(topics.SITE_COSTS, site_id, text)
        if out.decisions:
            self.decisions_counter.inc(len(out.decisions))
        for rec in out.decisions:
            yield from packed.add(topics.DISPATCH, rec["job_id"], json_text(rec))
        for d in result.dead:
            self.dead_letters.inc()
            yield dead_letter_row(d)
        if shard is None:
            yield from packed.add(topics.PIPELINE_METRICS, format_ts(result.tick_ms), json_text(metrics))
        else:  # one record per shard and tick
            yield from packed.add(topics.PIPELINE_METRICS, f"{format_ts(result.tick_ms)}|{shard}",
                                  json_text({**metrics, "shard": shard, "subtask": self.subtask}))
