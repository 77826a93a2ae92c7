"""The dispatch operator: state and metrics around udfs.tick_engine.TickEngine (the
offer books, pending jobs, dispatcher), which makes every decision; nothing here computes a cost
or a plan.

This module imports PuLP and HiGHS (through udfs.tick_engine); keep every other Python operator in
flink_jobs/elements.py, which does not (see there why).
"""

from __future__ import annotations

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs.elements import SINGLE_KEY, dead_letter_text, out_row, subtask_index
from udfs.catalogue import load_catalogue
from udfs.optimizer import DispatchConfig
from udfs.records import assembled_tick, json_text
from udfs.sharding import shard_catalogue
from udfs.tick_engine import TickEngine, TickResult
from udfs.timeutil import format_ts


class TickOperator(KeyedProcessFunction):
    """One key (global dispatch) or one key per region shard: runs the key's udfs.tick_engine.
    TickEngine and writes what each tick decides.

    Input: one row per key and tick, assembled on the JVM (TickAssembler, flink_jobs/jvm) once the
    watermark has passed the tick: the tick, how far the engine may run past it (its own deadline
    ticks), and the tick's site ticks (SiteTicker) and job records as one array per field. It has no
    timers or inboxes: Flink holds the records and fires the ticks.

    State: the small core (last tick, counters), the dispatcher and the offer books (one map entry
    per offer, so a tick writes only the offers it changed). The key's
    engine lives in memory between calls, restored from that state when the key is first seen
    after a (re)start, and written back after each call whatever changed."""

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
        self.engines: dict[str, TickEngine] = {}
        self.dispatcher_signatures: dict[str, tuple] = {}
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
        # one entry per offer ("site|valid_from" -> (end, price, published)): a tick writes only
        # the offers it changed, not every site's day of history again
        self.books_state = runtime_context.get_map_state(
            MapStateDescriptor("offer-book", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        group = runtime_context.get_metrics_group().add_group("geodispatch")
        group.gauge("pending_jobs", lambda: self.pending_gauge_value)
        group.gauge("solve_ms", lambda: int(round(self.solve_ms_value)))  # the last tick's; a gauge must be an int
        self.decisions_counter = group.counter("decisions")
        # the dispatcher's refusals (JobRecords and SiteTicker count the input records' under this name)
        self.dead_letters = group.counter("dead_letters")
        self.expired = group.counter("offers_expired")
        self.late_jobs = group.counter("late_jobs")

    def _engine(self, key: str) -> TickEngine:
        engine = self.engines.get(key)
        if engine is None:
            engine = TickEngine(self.shard_catalogues.get(key, self.catalogue), self.tick_len_ms, self.config)
            engine.restore(self.core_state.value(), self.dispatcher_state.value(),
                           ((_offer_of(entry), offer) for entry, offer in self.books_state.items()))
            self.engines[key] = engine
            self.dispatcher_signatures[key] = engine.dispatcher.signature()
        return engine

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        # value: one tick of this key (TickAssembler, elements.TICK_TYPE)
        key = ctx.get_current_key() if self.shard_keys else SINGLE_KEY  # a call into the JVM costs
        engine = self._engine(key)
        late_jobs_before = engine.counts.get("late_jobs", 0)
        results = engine.run(*assembled_tick(value))
        # the late job events of this call: those still counted in the engine, and those its ticks reported
        late_jobs = engine.counts.get("late_jobs", 0) - late_jobs_before
        late_jobs += sum(result.output.metrics.get("late_jobs", 0) for result in results)
        if late_jobs > 0:
            self.late_jobs.inc(late_jobs)
        if results:
            shard = self.shard_of_key.get(key)
            for result in results:
                yield self._tick_row(result, shard)
            signature = engine.dispatcher.signature()
            if signature != self.dispatcher_signatures[key]:
                self.dispatcher_state.update(engine.dispatcher.to_state())
                self.dispatcher_signatures[key] = signature
            self.pending_gauge_value = len(engine.dispatcher.pending)
        for (site_id, valid_from), offer in engine.take_book_changes().items():
            if offer is None:
                self.books_state.remove(f"{site_id}|{valid_from}")
            else:
                self.books_state.put(f"{site_id}|{valid_from}", offer)
        self.core_state.update(engine.core_state())

    def _tick_row(self, result: TickResult, shard: int | None) -> Row:
        out = result.output
        metrics = out.metrics
        if metrics.get("offers_expired"):  # a call into the JVM
            self.expired.inc(metrics["offers_expired"])
        self.solve_ms_value = metrics.get("solve_ms", 0.0)
        if out.decisions:
            self.decisions_counter.inc(len(out.decisions))
        if result.dead:
            self.dead_letters.inc(len(result.dead))
        if shard is None:
            metrics_record = (format_ts(result.tick_ms), json_text(metrics))
        else:  # one record per shard and tick
            metrics_record = (f"{format_ts(result.tick_ms)}|{shard}",
                              json_text({**metrics, "shard": shard, "subtask": self.subtask}))
        return out_row(out.site_costs, [(rec["job_id"], json_text(rec)) for rec in out.decisions], metrics_record,
                       [(d.key, dead_letter_text(d)) for d in result.dead])


def _offer_of(entry: str) -> tuple[str, int]:
    """An offer-book map key ("site|valid_from") as (site, valid_from)."""
    site_id, valid_from = entry.rsplit("|", 1)
    return site_id, int(valid_from)
