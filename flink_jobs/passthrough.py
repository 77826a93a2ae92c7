"""Passthrough: `prices` -> JSON parse with an event-time watermark on `valid_from` -> Kafka.

The ceiling the throughput benchmark compares the real pipeline with: same source, same
parsing and watermarking, no domain work.

    python -m flink_jobs.passthrough [--bounded] [--output-topic prices-out] ...
"""

from __future__ import annotations

from pyflink.table import StreamTableEnvironment, Table

from flink_jobs.config import JobConfig, load_config
from flink_jobs.runtime import (
    create_environments,
    kafka_sink_options,
    kafka_source_options,
    watermark_interval,
    with_clause,
)
from udfs import topics

# ISO-8601 with a trailing Z -> TIMESTAMP(3), read as UTC (the session time zone is UTC).
ISO_TO_TS = "TO_TIMESTAMP(REPLACE(REPLACE({col}, 'T', ' '), 'Z', ''))"


def declare_tables(t_env: StreamTableEnvironment, cfg: JobConfig) -> None:
    t_env.execute_sql(f"""
CREATE TEMPORARY TABLE prices_in (
  site_id STRING,
  price_per_mwh DOUBLE,
  valid_from STRING,
  valid_to STRING,
  currency STRING,
  source STRING,
  -- a record without a parseable valid_from gets epoch 0 rather than a NULL rowtime
  event_time AS COALESCE({ISO_TO_TS.format(col="valid_from")}, TIMESTAMP '1970-01-01 00:00:00'),
  WATERMARK FOR event_time AS event_time - {watermark_interval(cfg.out_of_orderness_s)}
) WITH (
  {with_clause(kafka_source_options(cfg, topics.PRICES, "passthrough"))},
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
)""")
    t_env.execute_sql(f"""
CREATE TEMPORARY TABLE prices_out (
  site_id STRING,
  price_per_mwh DOUBLE,
  valid_from STRING,
  valid_to STRING,
  currency STRING,
  source STRING
) WITH (
  {with_clause(kafka_sink_options(cfg, cfg.output_topic, "passthrough"))},
  'key.format' = 'raw',
  'key.fields' = 'site_id',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
)""")


def passthrough(t_env: StreamTableEnvironment) -> Table:
    """The transformation on its own, so it can be tested and benchmarked apart from Kafka."""
    return t_env.sql_query("SELECT site_id, price_per_mwh, valid_from, valid_to, currency, source FROM prices_in")


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="python -m flink_jobs.passthrough", description=__doc__.split("\n")[0])
    _env, t_env = create_environments(cfg)
    declare_tables(t_env, cfg)
    result = passthrough(t_env).execute_insert("prices_out")
    print(f"passthrough submitted: {cfg.topic(topics.PRICES)} -> {cfg.topic(cfg.output_topic)}", flush=True)
    if not cfg.detached:
        result.wait()


if __name__ == "__main__":
    main()
