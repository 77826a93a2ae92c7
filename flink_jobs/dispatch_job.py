"""The dispatch pipeline: Kafka inputs -> validation -> event time -> per-site ticks -> dispatch
-> Kafka outputs (exactly-once).

    prices, weather, site-status, jobs (Kafka, raw JSON + partition/offset metadata)
      -> event-time watermarks       (in SQL on the JVM, per partition: bounded out-of-orderness, idleness)
      -> site records: one row per tick (SQL window on the JVM, records joined into one string);
                       records behind the watermark (or odd ones) on their own
      -> job records:  ParseAndValidate (bad records -> dead-letter, with topic/partition/offset/reason)
                       [JobRouter keyed by job_id with --dispatch-shards N: each job's events go to the
                       shard that decides it]
      -> TickOperator  one key, or one key per region shard (udfs.tick_engine: parse and validate
                       site records, offers in force, weather, status, late/duplicate counted, pending
                       jobs, committed slots, PuLP dispatch per tick)
      -> site-costs (one packed row per tick, split in SQL), dispatch, pipeline-metrics, dead-letter
                       (Kafka, exactly-once)

    python -m flink_jobs.dispatch_job --help
"""

from __future__ import annotations

from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from flink_jobs.config import JobConfig, load_config
from flink_jobs.elements import (
    BATCH,
    COUNT,
    DEAD_LETTER_TAG,
    EVENT,
    OUT_TYPE,
    SINGLE,
    SITE_COSTS_PACKED,
    TOPIC_CODES,
    JobRouter,
    ParseAndValidate,
    batch_element,
    single_element,
)
from flink_jobs.operators import TickOperator
from flink_jobs.runtime import (
    create_environments,
    kafka_sink_options,
    kafka_source_options,
    watermark_interval,
    with_clause,
)
from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.sharding import assign_shards

EVENT_TIME_FIELD = {
    topics.PRICES: "valid_from",
    topics.WEATHER: "observed_at",
    topics.SITE_STATUS: "at",
    topics.JOBS: "submitted_at",
}


def event_time_sql(field: str) -> str:
    """Event time from the raw JSON on the JVM: ISO-8601 (..Z) or epoch ms, else the Kafka record
    timestamp, so a malformed record never has a NULL rowtime (it still reaches the dead-letter)."""
    value = f"JSON_VALUE(`v`, '$.{field}')"
    return (
        f"COALESCE(TO_TIMESTAMP_LTZ(TRY_CAST({value} AS BIGINT), 3), "
        f"CAST(TRY_CAST(REPLACE(REPLACE({value}, 'T', ' '), 'Z', '') AS TIMESTAMP(3)) AS TIMESTAMP_LTZ(3)), "
        f"`kafka_ts`)"
    )


def declare_sources(t_env: StreamTableEnvironment, cfg: JobConfig) -> None:
    """One raw table per input topic: key, value text, where the record sits in Kafka, and its
    event time with a watermark. Watermarks are generated per Kafka partition by the source, so
    topics and partitions read at different speeds never make each other's records late."""
    for topic in topics.INPUT_TOPICS:
        t_env.execute_sql(f"""
CREATE TEMPORARY TABLE `src_{topic}` (
  `k` STRING,
  `v` STRING,
  `kafka_partition` INT METADATA FROM 'partition' VIRTUAL,
  `kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL,
  `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  `event_time` AS {event_time_sql(EVENT_TIME_FIELD[topic])},
  WATERMARK FOR `event_time` AS `event_time` - {watermark_interval(cfg.out_of_orderness_s)}
) WITH (
  {with_clause(kafka_source_options(cfg, topic, "dispatch"))},
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
)""")


def declare_sinks(t_env: StreamTableEnvironment, cfg: JobConfig) -> None:
    for topic in topics.OUTPUT_TOPICS:
        t_env.execute_sql(f"""
CREATE TEMPORARY TABLE `sink_{topic}` (
  `k` STRING,
  `v` STRING
) WITH (
  {with_clause(kafka_sink_options(cfg, topic, topic))},
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
)""")


SITE_TOPIC_CODE = {code_topic: code for code, code_topic in TOPIC_CODES.items()}
SQL_RS, SQL_US = "U&'\\001E'", "U&'\\001F'"  # operators.RS and operators.US as SQL literals


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def shard_sql(site_shard: dict[str, int] | None) -> str:
    """The dispatch shard of a site record, on the JVM (unknown sites: shard 0, which dead-letters them)."""
    if not site_shard:
        return "0"
    cases = " ".join(f"WHEN {sql_text(site)} THEN {shard}" for site, shard in sorted(site_shard.items()))
    return f"CASE JSON_VALUE(`v`, '$.site_id') {cases} ELSE 0 END"


def declare_site_records(t_env: StreamTableEnvironment, site_shard: dict[str, int] | None) -> None:
    """`site_records_<topic>`: every prices, weather and site-status record with its shard and
    whether it goes to Python on its own (`single`): behind its source's watermark, or holding a
    batch separator, or without key or value."""
    def odd(column: str) -> str:
        return f"`{column}` IS NULL OR POSITION({SQL_RS} IN `{column}`) > 0 OR POSITION({SQL_US} IN `{column}`) > 0"

    for topic, code in SITE_TOPIC_CODE.items():
        t_env.create_temporary_view(f"site_records_{code}", t_env.sql_query(f"""
SELECT '{code}' AS code, '{topic}' AS topic, k, v, kafka_partition, kafka_offset,
  event_time, {shard_sql(site_shard)} AS shard,
  (CURRENT_WATERMARK(event_time) IS NOT NULL AND event_time <= CURRENT_WATERMARK(event_time))
    OR {odd('k')} OR {odd('v')} AS single
FROM `src_{topic}`"""))


def site_batches_sql(cfg: JobConfig, code: str) -> str:
    """One row per tick (and shard) with one topic's on-time site records joined in one string.

    One window per topic, not one over all three: a window drops records behind its own
    watermark, and only a window fed by the record's own source has a watermark no further than
    the one `single` was decided on (a window over all sources follows the others while one is
    idle). The window is shifted by 1 ms so a record at exactly a tick belongs to that tick
    (udfs.site_tracker.tick_at_or_after); its window_time (end - 1 ms) is the tick."""
    size = watermark_interval(cfg.tick_minutes * 60)
    record = (f"CONCAT(code, CAST(kafka_partition AS STRING), ',', CAST(kafka_offset AS STRING), {SQL_US}, k, "
              f"{SQL_US}, v)")
    return f"""SELECT shard, window_time AS tick, LISTAGG({record}, {SQL_RS}) AS site_batch
FROM TABLE(TUMBLE(TABLE site_records_on_time_{code}, DESCRIPTOR(event_time), {size}, INTERVAL '0.001' SECOND))
GROUP BY window_start, window_end, window_time, shard"""


def tick_inputs(t_env: StreamTableEnvironment, cfg: JobConfig,
                site_shard: dict[str, int] | None) -> tuple[DataStream, DataStream, DataStream]:
    """Site batches, single site records and raw job rows, as DataStreams of TickOperator elements
    (job rows still to be parsed)."""
    declare_site_records(t_env, site_shard)
    batches = []
    for code in SITE_TOPIC_CODE.values():
        t_env.create_temporary_view(f"site_records_on_time_{code}", t_env.sql_query(
            f"SELECT * FROM site_records_{code} WHERE NOT single"))
        batches.append(t_env.to_data_stream(t_env.sql_query(site_batches_sql(cfg, code))).map(
            batch_element).name(f"site-batches-{code}"))
    singles = t_env.to_data_stream(t_env.sql_query(" UNION ALL ".join(
        f"SELECT shard, topic, k, v, kafka_partition, kafka_offset FROM site_records_{code} WHERE single"
        for code in SITE_TOPIC_CODE.values()))).map(single_element).name("site-singles")
    jobs = t_env.to_data_stream(t_env.sql_query(
        f"SELECT '{topics.JOBS}' AS topic, k, v, kafka_partition, kafka_offset FROM `src_{topics.JOBS}`"))
    return batches[0].union(*batches[1:]), singles, jobs


def build_pipeline(t_env: StreamTableEnvironment, cfg: JobConfig) -> DataStream:
    """Kafka input tables -> one stream of (topic, key, value) output rows, dead letters included."""
    tick_ms = cfg.tick_minutes * 60_000
    sharded = cfg.dispatch_shards > 1
    site_shard = assign_shards(load_catalogue(cfg.sites_file), cfg.dispatch_shards) if sharded else {}
    batches, singles, raw_jobs = tick_inputs(t_env, cfg, site_shard)
    parsed_jobs = raw_jobs.process(ParseAndValidate(cfg.sites_file)).name("parse-jobs").uid("parse-jobs")
    dead_from_parse = parsed_jobs.get_side_output(DEAD_LETTER_TAG)
    if not sharded:
        keys = ["dispatch"]
        job_elements = parsed_jobs
    else:
        keys = shard_keys(cfg.dispatch_shards)
        routed = (parsed_jobs.filter(lambda e: e[0] == EVENT).name("job-events")
                  .key_by(lambda e: e[2], key_type=Types.STRING())
                  .process(JobRouter(site_shard, cfg.dispatch_shards))
                  .name("job-router")
                  .uid("job-router"))
        job_elements = routed.union(parsed_jobs.filter(lambda e: e[0] == COUNT).name("counts"))

    def tick_key(e) -> str:
        if e[0] in (BATCH, SINGLE):
            return keys[e[1]]
        if e[0] == EVENT and sharded:
            return keys[e[6]]  # stamped by JobRouter
        return keys[0]  # counters are counted once, in shard 0's pipeline-metrics

    ticks = (
        batches.union(singles, job_elements)
        .key_by(tick_key, key_type=Types.STRING())
        .process(TickOperator(cfg.sites_file, tick_ms, cfg.solver_time_limit_s, keys if sharded else None,
                              site_shard), output_type=OUT_TYPE)
        .name("dispatch")
        .uid("dispatch")
    )
    if sharded:  # one subtask per shard
        ticks = ticks.set_parallelism(cfg.dispatch_shards).set_max_parallelism(MAX_PARALLELISM)
    else:
        ticks = ticks.set_parallelism(1)  # one global optimisation per tick
    return ticks.union(dead_from_parse)


MAX_PARALLELISM = 128  # of the dispatch operator: fixed, so the shard keys' subtasks are known


def shard_keys(shards: int) -> list[str]:
    """A key per shard that Flink's key-group hashing places on subtask == shard, so every shard
    gets its own subtask (plain "shard-0", "shard-1" could share one). Asked of the JVM itself
    (KeyGroupRangeAssignment on the Row the key selector produces), not re-implemented here."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    assign = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment.assignKeyToParallelOperator
    keys = []
    for shard in range(shards):
        for salt in range(100_000):
            key = f"shard-{shard}" if salt == 0 else f"shard-{shard}.{salt}"
            row = jvm.org.apache.flink.types.Row.withPositions(1)
            row.setField(0, key)
            if assign(row, MAX_PARALLELISM, shards) == shard:
                keys.append(key)
                break
    return keys


def attach_sinks(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, outputs: DataStream) -> None:
    """Each output topic gets its rows through SQL on the JVM (no Python operator per sink); a
    tick's packed site-costs are split into one Kafka record per site there."""
    t_env.create_temporary_view("job_outputs", t_env.from_data_stream(outputs))
    statements = t_env.create_statement_set()
    statements.add_insert_sql(
        f"INSERT INTO `sink_{topics.SITE_COSTS}` SELECT SPLIT_INDEX(e.x, {SQL_US}, 0) AS `k`, "
        f"SUBSTRING(e.x FROM POSITION({SQL_US} IN e.x) + 1) AS `v` "
        f"FROM job_outputs CROSS JOIN UNNEST(SPLIT(job_outputs.`value`, {SQL_RS})) AS e(x) "
        f"WHERE job_outputs.`topic` = '{SITE_COSTS_PACKED}'")
    for topic in topics.OUTPUT_TOPICS:
        if topic != topics.SITE_COSTS:
            statements.add_insert_sql(f"INSERT INTO `sink_{topic}` SELECT `key` AS `k`, `value` AS `v` "
                                      f"FROM job_outputs WHERE `topic` = '{topic}'")
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="python -m flink_jobs.dispatch_job", description=__doc__.split("\n")[0])
    try:
        catalogue = load_catalogue(cfg.sites_file)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: site catalogue: {exc}") from None
    try:
        assign_shards(catalogue, cfg.dispatch_shards)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    env, t_env = create_environments(cfg)
    declare_sources(t_env, cfg)
    declare_sinks(t_env, cfg)
    attach_sinks(env, t_env, build_pipeline(t_env, cfg))
    print(f"dispatch job: {len(catalogue)} sites, tick {cfg.tick_minutes} min, inputs "
          f"{', '.join(cfg.topic(t) for t in topics.INPUT_TOPICS)} on {cfg.bootstrap}", flush=True)
    if cfg.detached:
        env.execute_async("geodispatch-dispatch")
    else:
        env.execute("geodispatch-dispatch")


if __name__ == "__main__":
    main()
