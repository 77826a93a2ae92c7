"""The light Flink functions of the dispatch job and the elements they pass on: parsing job
records, routing jobs to shards, the shape of the JVM's tick batches.

Nothing here imports PuLP or HiGHS (flink_jobs/operators.py, the dispatch operator, does): in
thread mode every Python operator is unpickled on its own task thread in one interpreter, and
several threads importing highspy at once hung a job in `openPythonInterpreter`
(docs/RELIABILITY.md, problem 10).
"""

from __future__ import annotations

import json
import time
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.records import ParsedRecord, RecordError, dead_letter, parse_input
from udfs.sharding import JobRoute
from udfs.timeutil import format_ts

# One output row type for everything the job writes: which topic, the message key, the JSON value.
# A tick's site-costs travel as one row (topic SITE_COSTS_PACKED): "site_id US json" records
# joined by RS, split back into Kafka records in SQL on the JVM (one Python hand-over per tick,
# not one per site and tick).
OUT_TYPE = Types.ROW_NAMED(["topic", "key", "value"], [Types.STRING(), Types.STRING(), Types.STRING()])
DEAD_LETTER_TAG = OutputTag("dead-letter", OUT_TYPE)
SITE_COSTS_PACKED = "site-costs-packed"
# Separators of the JVM's tick batches and of packed site-costs: ASCII record and unit separators,
# which JSON text never holds unescaped (the SQL sends any record that does hold one on its own).
RS, US = "\x1e", "\x1f"
TOPIC_CODES = {"p": topics.PRICES, "w": topics.WEATHER, "s": topics.SITE_STATUS}

# Elements flowing into TickOperator (pickled tuples):
#   ("batch", shard, tick_ms, blob)                 a tick's on-time site records, batched in SQL
#   ("single", shard, topic, key, raw, partition, offset)  a site record sent on its own (behind
#                                                   the watermark, or holding a separator)
#   ("event", topic, key, event_ms, record, meta)  a valid job event; meta = (partition, offset, raw)
#   ("event", ..., meta, shard)                     a job event stamped by JobRouter (sharded dispatch)
#   ("count", name, n)                              a counter for pipeline-metrics (dead letters)
BATCH, SINGLE, EVENT, COUNT = "batch", "single", "event", "count"


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
    """Raw job rows -> validated job events and counters (main output); anything unusable -> the
    dead-letter side output. (Site records are parsed by TickOperator, a tick's batch at a time.)"""

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
        yield EVENT, parsed.topic, parsed.key, parsed.event_ms, parsed.record, (partition, offset, raw)



def decode_batch(blob: str) -> list[tuple]:
    """The JVM's tick batch -> site records. Each record is "<topic code><partition>,<offset>" US
    key US value (see flink_jobs.dispatch_job.site_batches_sql)."""
    rows = []
    for item in blob.split(RS):
        head, key, raw = item.split(US, 2)
        partition, offset = head[1:].split(",")
        rows.append((TOPIC_CODES[head[0]], key, raw, partition, offset))
    return rows


def dead_letter_row(d) -> Row:
    """A udfs.tick_engine.DeadRecord -> the dead-letter output row."""
    partition = None if d.partition is None else int(d.partition)
    offset = None if d.offset is None else int(d.offset)
    return Row(topics.DEAD_LETTER, d.key, _json(dead_letter(d.topic, partition, offset, d.key, d.raw, d.error,
                                                            _now_iso())))


def to_parsed(element: tuple) -> ParsedRecord:
    return ParsedRecord(element[1], element[2], element[3], element[4])


def epoch_ms(value) -> int:
    """A TIMESTAMP_LTZ from the Table API -> epoch ms: a java.time.Instant in thread mode, a
    pyflink Instant or a datetime in process mode."""
    if hasattr(value, "toEpochMilli"):
        return int(value.toEpochMilli())
    if hasattr(value, "to_epoch_milli"):
        return value.to_epoch_milli()
    return round(value.timestamp() * 1000)


def batch_element(row) -> tuple:
    """A SQL tick-batch row (shard, tick, site_batch) -> the dispatch operator's element."""
    return BATCH, row[0], epoch_ms(row[1]), row[2]


def single_element(row) -> tuple:
    """A SQL single-record row (shard, topic, k, v, partition, offset) -> the operator's element."""
    return SINGLE, row[0], row[1], row[2], row[3], row[4], row[5]


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


