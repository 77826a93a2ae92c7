"""The dispatch pipeline: Kafka inputs -> validation -> event time -> per-site ticks -> dispatch
-> Kafka outputs (exactly-once).

    prices, weather, site-status, jobs (Kafka, raw JSON + partition/offset metadata)
      -> event-time watermarks  (SQL on the JVM, per partition: bounded out-of-orderness, idleness;
                                 event time by geodispatch.EventTime, the validator's own parser)
      -> JobRecords             (Java, job records: validate, bad records -> dead-letter with
                                 topic/partition/offset/reason; the rest normalised)
      -> SiteTicker             (Java, keyed by site_id: validate, bad records -> dead-letter with
                                 topic/partition/offset/reason; duplicates and late records counted;
                                 offers in force, weather, status; one row per site and tick)
      -> dispatch key           (one key, or with --dispatch-shards N the site's region shard; job
                                 records through JobRouter, keyed by job_id, which sends each job's
                                 records to the shard that decides it)
      -> TickAssembler          (Java, keyed by dispatch key: each record waits in state for its tick;
                                 one row per key and tick once the watermark passes it)
      -> TickOperator           (Python, once per key and tick: udfs.tick_engine: the offer books,
                                 site costs, pending jobs, committed slots, the plan)
      -> site-costs, dispatch, pipeline-metrics, dead-letter (one typed row per key and tick, split
                                in SQL; site-costs written by the json format; Kafka, exactly-once)

    python -m flink_jobs.dispatch_job --help
"""

from __future__ import annotations

import os
import signal

from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from flink_jobs.config import JobConfig, load_config
from flink_jobs.elements import (
    KEYED_RAW_TYPE,
    KEYED_SITE_TICK_TYPE,
    OUT_TYPE,
    RAW_TYPE,
    SINGLE_KEY,
    SITE_COST_FIELDS,
    TICK_TYPE,
    JobRouter,
    assembled_ticks,
    key_by_first_field,
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
from udfs.cooling import MAX_WEATHER_AGE_MS
from udfs.forecast import HISTORY_MS
from udfs.sharding import assign_shards

# The JSON fields that carry each topic's event time, first present wins (udfs.records says the
# same): a price offer's publication when it has one (a day-ahead offer), else its start.
EVENT_TIME_FIELDS = {
    topics.PRICES: ("published_at", "valid_from"),
    topics.WEATHER: ("observed_at",),
    topics.SITE_STATUS: ("at",),
    topics.JOBS: ("submitted_at",),
}


def event_time_sql(fields: tuple[str, ...]) -> str:
    """Event time from the raw JSON on the JVM: the first of ``fields`` present, parsed by
    geodispatch.EventTime (the validator's own timestamp rule), else the Kafka record timestamp, so
    a malformed record never has a NULL rowtime (it still reaches the dead-letter)."""
    names = ", ".join(sql_text(f) for f in fields)
    return f"COALESCE(TO_TIMESTAMP_LTZ(EVENT_TIME_MS(`v`, {names}), 3), `kafka_ts`)"


def declare_sources(t_env: StreamTableEnvironment, cfg: JobConfig) -> None:
    """One raw table per input topic: key, value text, where the record sits in Kafka, and its
    event time with a watermark. Watermarks are generated per Kafka partition by the source, so
    topics and partitions read at different speeds never make each other's records late."""
    t_env.create_java_temporary_system_function("EVENT_TIME_MS", "geodispatch.EventTime")
    for topic in topics.INPUT_TOPICS:
        t_env.execute_sql(f"""
CREATE TEMPORARY TABLE `src_{topic}` (
  `k` STRING,
  `v` STRING,
  `kafka_partition` INT METADATA FROM 'partition' VIRTUAL,
  `kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL,
  `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  `event_time` AS {event_time_sql(EVENT_TIME_FIELDS[topic])},
  WATERMARK FOR `event_time` AS `event_time` - {watermark_interval(cfg.out_of_orderness_s)}
) WITH (
  {with_clause(kafka_source_options(cfg, topic, "dispatch"))},
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
)""")


def declare_sinks(t_env: StreamTableEnvironment, cfg: JobConfig) -> None:
    """site-costs: typed columns, written as JSON by the connector's json format; the other topics
    take their values as JSON text (raw)."""
    for topic in topics.OUTPUT_TOPICS:
        if topic == topics.SITE_COSTS:
            columns = ",\n  ".join(f"`{name}` {sql_type}" for name, sql_type in SITE_COST_FIELDS)
            value = "'value.format' = 'json'"
        else:
            columns, value = "`v` STRING", "'value.format' = 'raw'"
        t_env.execute_sql(f"""
CREATE TEMPORARY TABLE `sink_{topic}` (
  `k` STRING,
  {columns}
) WITH (
  {with_clause(kafka_sink_options(cfg, topic, topic))},
  'key.format' = 'raw',
  'key.fields' = 'k',
  {value},
  'value.fields-include' = 'EXCEPT_KEY'
)""")


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def raw_rows_sql(topic: str, key_sql: str) -> str:
    """One input topic's records as (key, raw record): what the Python operators receive."""
    return (f"SELECT {key_sql} AS `key`, ROW('{topic}', k, v, kafka_partition, kafka_offset) AS rec "
            f"FROM `src_{topic}`")


def raw_rows(t_env: StreamTableEnvironment, queries: list[str]) -> DataStream:
    """The (key, raw record) rows of the given queries (raw_rows_sql), as one stream."""
    return t_env.to_append_stream(t_env.sql_query(" UNION ALL ".join(queries)), KEYED_RAW_TYPE)


def checked_jobs(t_env: StreamTableEnvironment, cfg: JobConfig, key_sql: str) -> tuple[DataStream, DataStream]:
    """The jobs topic's rows (key, raw record), keyed by ``key_sql``, through JobRecords (Java):
    a valid record's value becomes its normalised JSON with the value as it came; a bad one
    becomes a dead letter (the second stream) and a stand-in row the dispatcher counts."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    sites = jvm.java.util.HashSet()
    for site_id in load_catalogue(cfg.sites_file).site_ids:
        sites.add(site_id)
    raw = raw_rows(t_env, [raw_rows_sql(topics.JOBS, key_sql)])
    j_jobs = (raw._j_data_stream.process(jvm.geodispatch.JobRecords(sites), KEYED_RAW_TYPE.get_java_type_info())
              .name("job-records").uid("job-records"))
    return DataStream(j_jobs), DataStream(j_jobs.getSideOutput(jvm.geodispatch.InputRecords.DEAD_LETTERS))


def site_ticks(t_env: StreamTableEnvironment, cfg: JobConfig, jobs: DataStream, dispatch_key: dict[str, str],
               default_key: str) -> tuple[DataStream, DataStream]:
    """The site topics' raw records, keyed by site_id on the JVM, and the job rows, keyed by
    their dispatcher's key, through SiteTicker (Java): rows of site ticks, each with the key of the
    dispatcher that decides its site (``default_key`` for a site outside the catalogue, whose
    dead letters it counts), and the job rows as they came; and the site records' dead letters."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    catalogue = load_catalogue(cfg.sites_file)
    intervals = jvm.java.util.HashMap()
    for site in catalogue:
        intervals.put(site.site_id, site.offer_interval_ms)
    keys = jvm.java.util.HashMap()
    for site_id, key in dispatch_key.items():
        keys.put(site_id, key)
    ticker = jvm.geodispatch.SiteTicker(intervals, keys, default_key, cfg.tick_minutes * 60_000, HISTORY_MS,
                                        MAX_WEATHER_AGE_MS)
    site_topics = [t for t in topics.INPUT_TOPICS if t != topics.JOBS]
    sites = raw_rows(t_env, [raw_rows_sql(t, "COALESCE(JSON_VALUE(`v`, '$.site_id'), '')") for t in site_topics])
    keyed = key_by_first_field(sites.union(jobs), RAW_TYPE)
    j_ticks = keyed._j_data_stream.transform("site-ticker", KEYED_SITE_TICK_TYPE.get_java_type_info(),
                                             jvm.geodispatch.SiteTicker.Operator(ticker)).uid("site-ticker")
    return DataStream(j_ticks), DataStream(j_ticks.getSideOutput(jvm.geodispatch.InputRecords.DEAD_LETTERS))


def build_pipeline(t_env: StreamTableEnvironment, cfg: JobConfig) -> DataStream:
    """Kafka input tables -> one stream of (topic, key, value) output rows; the input records'
    dead letters go to the view ``record_dead_letters``.

    Job records are checked by JobRecords (Java). Every record then goes through SiteTicker
    (Java): site records keyed by site, job records by their dispatcher's key, passed on. Its site
    ticks and the job records reach Python in the dispatch operator (TickOperator), keyed on the
    JVM: with one dispatch key everything goes to it; with region shards a site's ticks go to its
    shard and job records through JobRouter, keyed by job_id, which sends each job's records to
    the shard that decides it."""
    tick_ms = cfg.tick_minutes * 60_000
    if cfg.dispatch_shards == 1:
        keys, site_shard = [SINGLE_KEY], {}
        jobs, job_dead = checked_jobs(t_env, cfg, sql_text(SINGLE_KEY))
    else:
        catalogue = load_catalogue(cfg.sites_file)
        site_shard = assign_shards(catalogue, cfg.dispatch_shards)
        keys = shard_keys(cfg.dispatch_shards)
        by_job, job_dead = checked_jobs(t_env, cfg, "COALESCE(JSON_VALUE(`v`, '$.job_id'), '')")
        jobs = (
            key_by_first_field(by_job, RAW_TYPE)
            .process(JobRouter(site_shard, keys), output_type=KEYED_RAW_TYPE)
            .name("job-router")
            .uid("job-router")
        )
    ticks, site_dead = site_ticks(t_env, cfg, jobs, {site: keys[shard] for site, shard in site_shard.items()},
                                  keys[0])
    t_env.create_temporary_view("record_dead_letters", t_env.from_data_stream(site_dead.union(job_dead)))
    outputs = (
        key_by_first_field(assembled_ticks(ticks, tick_ms), TICK_TYPE)
        .process(TickOperator(cfg.sites_file, tick_ms, cfg.solver_time_limit_s,
                              keys if site_shard else None, site_shard, cfg.replan), output_type=OUT_TYPE)
        .name("dispatch")
        .uid("dispatch")
    )
    if site_shard:  # one subtask per shard
        return outputs.set_parallelism(cfg.dispatch_shards).set_max_parallelism(MAX_PARALLELISM)
    return outputs.set_parallelism(1)  # one global optimisation per tick


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
    """Each output topic gets its records from the dispatch operator's rows (one per key and tick,
    elements.OUT_TYPE) through SQL on the JVM: the arrays unnested, one Kafka record per element."""
    t_env.create_temporary_view("tick_outputs", t_env.from_data_stream(outputs))

    def unnest(keys: str) -> str:  # an array's elements with their position, to index its sibling arrays
        return f"FROM tick_outputs AS o CROSS JOIN UNNEST(o.`{keys}`) WITH ORDINALITY AS u(k, n)"

    site_costs = ", ".join(f"o.`{name}`[u.n]" for name, _ in SITE_COST_FIELDS)
    statements = t_env.create_statement_set()
    statements.add_insert_sql(f"INSERT INTO `sink_{topics.SITE_COSTS}` SELECT u.k, {site_costs} {unnest('site_id')}")
    statements.add_insert_sql(f"INSERT INTO `sink_{topics.DISPATCH}` SELECT u.k, o.dispatch_value[u.n] "
                              f"{unnest('dispatch_key')}")
    statements.add_insert_sql(f"INSERT INTO `sink_{topics.PIPELINE_METRICS}` SELECT metrics_key, metrics_value "
                              f"FROM tick_outputs")
    statements.add_insert_sql(f"INSERT INTO `sink_{topics.DEAD_LETTER}` SELECT u.k, o.dead_value[u.n] "
                              f"{unnest('dead_key')} UNION ALL SELECT `k`, `v` FROM record_dead_letters")
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
    print(f"dispatch job: {len(catalogue)} sites, tick {cfg.tick_minutes} min, parallelism {cfg.parallelism} "
          f"(dispatch {cfg.dispatch_shards}), inputs {', '.join(cfg.topic(t) for t in topics.INPUT_TOPICS)} "
          f"on {cfg.bootstrap}", flush=True)
    if cfg.detached:
        env.execute_async("geodispatch-dispatch")
        return
    # A shell's background job starts with SIGINT ignored: take Ctrl-C (and `kill -INT`) back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        env.execute("geodispatch-dispatch")
    except KeyboardInterrupt:  # Ctrl-C on `make job-local`: the mini-cluster goes with this process
        print("dispatch job: interrupted, stopping", flush=True)
        os._exit(130)  # the JVM gateway's non-daemon threads would keep a normal exit waiting


if __name__ == "__main__":
    main()
