"""What flows between the dispatch job's operators, keying on the JVM, and the one light Python
function (JobRouter, sharded dispatch only).

Nothing here imports PuLP or HiGHS (flink_jobs/operators.py, the dispatch operator, does): in
thread mode every Python operator is unpickled on its own task thread in one interpreter, and
several threads importing highspy at once hung a job in `openPythonInterpreter`
(docs/RELIABILITY.md, problem 9).
"""

from __future__ import annotations

import time

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.data_stream import KeyedStream
from pyflink.datastream.state import ValueStateDescriptor

from udfs import topics
from udfs.records import JOB_FIELDS, OFFER_FIELDS, SITE_TICK_FIELDS, dead_letter, job_event, json_text
from udfs.records import SITE_COST_FIELDS as SITE_COST_NAMES
from udfs.sharding import JobRoute
from udfs.timeutil import format_ts

# An input record as the SQL hands it over: which topic, where it sat in Kafka, its raw text.
RAW_FIELDS = list(JOB_FIELDS)
RAW_TYPE = Types.ROW_NAMED(RAW_FIELDS, [Types.STRING(), Types.STRING(), Types.STRING(), Types.INT(), Types.LONG()])
# ... with the key it is partitioned by in front: (key, raw record)
SINGLE_KEY = "dispatch"  # the dispatch key without region shards
KEYED_RAW_TYPE = Types.ROW_NAMED(["key", "rec"], [Types.STRING(), RAW_TYPE])
# A site tick as SiteTicker (Java) emits it: SiteTicker.SITE, the same fields in the same order
_LONGS, _DOUBLES = Types.BASIC_ARRAY(Types.LONG()), Types.BASIC_ARRAY(Types.DOUBLE())
SITE_COLUMNS = list(zip(SITE_TICK_FIELDS, [  # a site tick's fields before its offers (udfs.records), and their types
    Types.STRING(), Types.LONG(), Types.BOOLEAN(), Types.DOUBLE(), Types.LONG(), Types.STRING(), Types.DOUBLE(),
    Types.DOUBLE(), Types.BOOLEAN(), Types.INT(), Types.LONG(), Types.LONG(), Types.LONG()], strict=True))
OFFER_COLUMNS = [("offer_from", _LONGS), ("offer_to", _LONGS), ("offer_price", _DOUBLES), ("offer_published", _LONGS)]
SITE_TYPE = Types.ROW_NAMED([n for n, _ in SITE_COLUMNS + OFFER_COLUMNS], [t for _, t in SITE_COLUMNS + OFFER_COLUMNS])
# ... and SiteTicker's output: (dispatch key, job record, site tick), one of the last two null
KEYED_SITE_TICK_TYPE = Types.ROW_NAMED(["key", "rec", "site"], [Types.STRING(), RAW_TYPE, SITE_TYPE])
# ... and a key's tick as TickAssembler (Java) hands it to the dispatch operator: the tick, how far
# the dispatcher may run its own ticks after it, the site ticks as one array per field (their
# offers flattened, with the index of their site tick), and the job records as one array per field
TICK_TYPE = Types.ROW_NAMED(
    ["tick", "up_to", *(f"site_{n}" for n in SITE_TICK_FIELDS), *OFFER_FIELDS, *(f"job_{n}" for n in JOB_FIELDS)],
    [Types.LONG(), Types.LONG(), *(Types.BASIC_ARRAY(t) for _, t in SITE_COLUMNS), Types.BASIC_ARRAY(Types.INT()),
     _LONGS, _LONGS, _DOUBLES, _LONGS, Types.BASIC_ARRAY(Types.STRING()), Types.BASIC_ARRAY(Types.STRING()),
     Types.BASIC_ARRAY(Types.STRING()), Types.BASIC_ARRAY(Types.INT()), _LONGS])

# What the dispatch operator writes: one typed row per key and tick, split into Kafka records in
# SQL on the JVM (flink_jobs.dispatch_job.attach_sinks). site-costs as columns, one array per field
# over the tick's sites, written as JSON by the connector's json format; the dispatch decisions,
# the pipeline-metrics record and the dispatcher's dead letters as (key, JSON text), their shapes
# being nested and open (plan previews, queues, optional fields).
SITE_COST_FIELDS = tuple(zip(SITE_COST_NAMES, (  # the site-costs record (udfs.records): field, SQL type
    "STRING", "STRING", "DOUBLE", "STRING", "STRING", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "INT",
    "INT", "BOOLEAN", "BOOLEAN", "STRING"), strict=True))
SQL_TYPES = {  # the SQL types of the typed output columns, as PyFlink types
    "STRING": Types.STRING(), "DOUBLE": Types.DOUBLE(), "INT": Types.INT(), "BOOLEAN": Types.BOOLEAN()}
_TEXTS = Types.BASIC_ARRAY(Types.STRING())
OUT_FIELDS = [name for name, _ in SITE_COST_FIELDS] + [
    "dispatch_key", "dispatch_value", "metrics_key", "metrics_value", "dead_key", "dead_value"]
OUT_TYPE = Types.ROW_NAMED(OUT_FIELDS, [*(Types.BASIC_ARRAY(SQL_TYPES[t]) for _, t in SITE_COST_FIELDS),
                                        _TEXTS, _TEXTS, Types.STRING(), Types.STRING(), _TEXTS, _TEXTS])


def out_row(site_costs: dict[str, list], decisions: list[tuple[str, str]], metrics: tuple[str, str],
            dead: list[tuple[str | None, str]]) -> Row:
    """One tick's output row (OUT_TYPE): the site-costs columns as they are, the rest as (key, JSON)."""
    columns = [site_costs.get(name, []) for name, _ in SITE_COST_FIELDS]
    return Row(*columns, [k for k, _ in decisions], [v for _, v in decisions], metrics[0], metrics[1],
               [k for k, _ in dead], [v for _, v in dead])


def key_by_first_field(stream: DataStream, value_type) -> KeyedStream:
    """A stream of Row(key STRING, value) keyed by its first field on the JVM; the keyed Python
    function then sees ``value``. PyFlink's own ``key_by`` runs a Python function on every record
    to compute the key, which measured ~55 us per record in thread mode (docs/BENCHMARKS.md,
    "Profiling"): more than the dispatch operator's own work per record. This is that same
    wiring (PyFlink's KeyByKeySelector on field 0) without the Python step."""
    from pyflink.java_gateway import get_gateway

    j_stream = stream._j_data_stream
    keyed = j_stream.keyBy(get_gateway().jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info())
    return KeyedStream(keyed, value_type, stream)


def assembled_ticks(stream: DataStream, tick_len_ms: int) -> DataStream:
    """Rows (key, job record, site tick) -> rows (key, one tick's records: TICK_TYPE) once the watermark passes
    the tick, on the JVM (flink_jobs/jvm/geodispatch/TickAssembler.java), keyed by ``key``: the
    keyed Python operator downstream is then called once per key and tick, and Flink's state and
    timers hold the records until then."""
    from pyflink.java_gateway import get_gateway

    assembler = get_gateway().jvm.geodispatch.TickAssembler(tick_len_ms)
    out_type = Types.ROW_NAMED(["key", "tick"], [Types.STRING(), TICK_TYPE])
    keyed = key_by_first_field(stream, Types.ROW_NAMED(["rec", "site"], [RAW_TYPE, SITE_TYPE]))
    j_stream = keyed._j_data_stream.process(assembler, out_type.get_java_type_info())
    return DataStream(j_stream).name("tick-assembler").uid("tick-assembler")


def _now_iso() -> str:
    return format_ts(int(time.time() * 1000))


def dead_letter_text(d) -> str:
    """A udfs.tick_engine.DeadRecord -> the dead-letter record's JSON text."""
    partition = None if d.partition is None else int(d.partition)
    offset = None if d.offset is None else int(d.offset)
    return json_text(dead_letter(d.topic, partition, offset, d.key, d.raw, d.error, _now_iso()))


def subtask_index(runtime_context: RuntimeContext) -> int:
    try:
        return runtime_context.get_index_of_this_subtask()
    except AttributeError:  # PyFlink 2.2 thread mode calls a method Flink 2.0 moved to TaskInfo
        return runtime_context._runtime_context.getTaskInfo().getIndexOfThisSubtask()


class JobRouter(KeyedProcessFunction):
    """Keyed by job_id, only with sharded dispatch: sends every job row (checked by JobRecords on
    the JVM) on with the key of the shard that decides the job (udfs.sharding.JobRoute), so a
    cancel reaches the shard of its submit. The stand-in of a dead-lettered record goes to shard 0,
    whose dispatch operator counts it."""

    def __init__(self, site_shard: dict[str, int], shard_keys: list[str]):
        self.site_shard = site_shard
        self.shard_keys = shard_keys

    def open(self, runtime_context: RuntimeContext):
        self.route_state = runtime_context.get_state(ValueStateDescriptor("route", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        if value[0] != topics.JOBS:  # JobRecords' stand-in for a dead letter
            yield Row(self.shard_keys[0], value)
            return
        parsed = job_event(value[2])
        route = self.route_state.value() or JobRoute()
        shards = len(self.shard_keys)
        if parsed.record["action"] == "submit":
            ready = [value, *route.on_submit(parsed.record, self.site_shard, shards)]
        elif route.on_cancel(value):
            ready = [value]
        else:
            ready = []
            ctx.timer_service().register_event_time_timer(parsed.event_ms)
        self.route_state.update(route)
        for rec in ready:
            yield Row(self.shard_keys[route.shard], rec)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        route = self.route_state.value()
        if route is None or not route.waiting:
            return
        shard, released = route.on_event_time_passed(ctx.get_current_key(), len(self.shard_keys))
        self.route_state.update(route)
        for rec in released:
            yield Row(self.shard_keys[shard], rec)
