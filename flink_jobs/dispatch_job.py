"""The dispatch pipeline: Kafka inputs -> validation -> event time -> per-site ticks -> dispatch
-> Kafka outputs (exactly-once).

    prices, weather, site-status, jobs (Kafka, raw JSON + partition/offset metadata)
      -> event-time watermarks       (in SQL on the JVM, per partition: bounded out-of-orderness, idleness)
      -> ParseAndValidate            (bad records -> dead-letter, with topic/partition/offset/reason;
                                      site events on, job events and counters beside its main output)
      -> SiteTicks   keyed by site   (offers in force, latest weather, status; late/duplicate counted)
      -> DispatchTicks  one key      (pending jobs, committed slots, PuLP dispatch per tick)
                        or one key per region shard (--dispatch-shards N; JobRouter keyed by
                        job_id sends each job's events to the shard that decides it)
      -> site-costs, dispatch, pipeline-metrics, dead-letter (Kafka, exactly-once)

    python -m flink_jobs.dispatch_job --help
"""

from __future__ import annotations

from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from flink_jobs.config import JobConfig, load_config
from flink_jobs.operators import (
    COUNT,
    DEAD_LETTER_TAG,
    EVENT,
    OUT_TYPE,
    TO_DISPATCH_TAG,
    DispatchTicks,
    JobRouter,
    ParseAndValidate,
    SiteTicks,
)
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


def raw_input_stream(t_env: StreamTableEnvironment) -> DataStream:
    union = " UNION ALL ".join(
        f"SELECT '{t}' AS topic, k, v, kafka_partition, kafka_offset, event_time FROM `src_{t}`"
        for t in topics.INPUT_TOPICS
    )
    return t_env.to_data_stream(t_env.sql_query(union))


def build_pipeline(raw: DataStream, cfg: JobConfig) -> DataStream:
    """Raw input rows -> one stream of (topic, key, value) output rows, dead letters included."""
    tick_ms = cfg.tick_minutes * 60_000
    parsed = raw.process(ParseAndValidate(cfg.sites_file)).name("parse-validate").uid("parse-validate")
    dead_from_parse = parsed.get_side_output(DEAD_LETTER_TAG)
    # timestamps and watermarks come from the sources (see declare_sources)
    site_events = parsed
    to_dispatch = parsed.get_side_output(TO_DISPATCH_TAG)  # job events and counters
    site_ticks = (
        site_events.key_by(lambda e: e[2], key_type=Types.STRING())
        .process(SiteTicks(cfg.sites_file, tick_ms))
        .name("site-ticks")
        .uid("site-ticks")
    )
    if cfg.dispatch_shards == 1:
        outputs = (
            site_ticks.union(to_dispatch)
            .key_by(lambda e: "dispatch", key_type=Types.STRING())
            .process(DispatchTicks(cfg.sites_file, tick_ms, cfg.solver_time_limit_s), output_type=OUT_TYPE)
            .name("dispatch")
            .uid("dispatch")
            .set_parallelism(1)  # one global optimisation per tick
        )
    else:
        outputs = sharded_dispatch(to_dispatch, site_ticks, cfg, tick_ms)
    return outputs.union(dead_from_parse)


MAX_PARALLELISM = 128  # of the dispatch operator: fixed, so the shard keys' subtasks are known


def sharded_dispatch(to_dispatch: DataStream, site_ticks: DataStream, cfg: JobConfig, tick_ms: int) -> DataStream:
    """One dispatch key per region shard, each on its own subtask (udfs/sharding.py)."""
    shards = cfg.dispatch_shards
    site_shard = assign_shards(load_catalogue(cfg.sites_file), shards)
    keys = shard_keys(shards)
    routed_jobs = (
        to_dispatch.filter(lambda e: e[0] == EVENT).name("job-events")
        .key_by(lambda e: e[2], key_type=Types.STRING())
        .process(JobRouter(site_shard, shards))
        .name("job-router")
        .uid("job-router")
    )
    counts = to_dispatch.filter(lambda e: e[0] == COUNT).name("counts")

    def shard_key(e) -> str:
        if e[0] == EVENT:
            return keys[e[6]]  # stamped by JobRouter
        if e[0] == COUNT:
            return keys[0]  # counted once, in shard 0's pipeline-metrics
        return keys[site_shard[e[2]["site_id"]]]

    return (
        site_ticks.union(routed_jobs, counts)
        .key_by(shard_key, key_type=Types.STRING())
        .process(DispatchTicks(cfg.sites_file, tick_ms, cfg.solver_time_limit_s, keys, site_shard),
                 output_type=OUT_TYPE)
        .name("dispatch")
        .uid("dispatch")
        .set_parallelism(shards)
        .set_max_parallelism(MAX_PARALLELISM)
    )


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
    """Each output topic gets its rows through a SQL filter on the JVM (no Python operator per sink)."""
    t_env.create_temporary_view("job_outputs", t_env.from_data_stream(outputs))
    statements = t_env.create_statement_set()
    for topic in topics.OUTPUT_TOPICS:
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
    attach_sinks(env, t_env, build_pipeline(raw_input_stream(t_env), cfg))
    print(f"dispatch job: {len(catalogue)} sites, tick {cfg.tick_minutes} min, inputs "
          f"{', '.join(cfg.topic(t) for t in topics.INPUT_TOPICS)} on {cfg.bootstrap}", flush=True)
    if cfg.detached:
        env.execute_async("geodispatch-dispatch")
    else:
        env.execute("geodispatch-dispatch")


if __name__ == "__main__":
    main()
