"""What a Python operator costs per record in thread mode, by how records reach it.

    .venv/bin/python -m bench.bench_python_calls --rows 1000000

One job per variant on an embedded mini-cluster (parallelism 1), over the same bounded SQL
`datagen` table (a 100-character string and a number per row), each ending in a no-op:

* ``sql``: SQL only, into a `blackhole` sink (the floor: source and conversion on the JVM);
* ``process``: a Python ProcessFunction (not keyed) on `to_data_stream`;
* ``key_by``: PyFlink's ``key_by`` (a Python function computes the key of every record), then a
  keyed Python function: the shape of the job's first design (a Python operator per site,
  keyed this way; TickOperator replaced it);
* ``jvm_key``: the key computed in SQL and keyed on the JVM (flink_jobs.elements.
  key_by_first_field), then the same keyed Python function. (A ``batched`` variant measured the
  WatermarkBatcher of 2026-12-01; the job now hands Python one row per key and tick, assembled on
  the JVM by TickAssembler, so there is no per-record call left to measure in it.)

Prints wall seconds per variant (start-up included, a few seconds) and us per row beyond ``sql``.
"""

from __future__ import annotations

import argparse
import time

VARIANTS = ("sql", "process", "key_by", "jvm_key")


def run_variant(variant: str, rows: int) -> float:
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import KeyedProcessFunction, ProcessFunction, StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from flink_jobs.config import JobConfig
    from flink_jobs.elements import key_by_first_field
    from flink_jobs.runtime import flink_configuration

    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(JobConfig()))
    env.set_parallelism(1)
    t_env = StreamTableEnvironment.create(env)
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE src (v STRING, n BIGINT) WITH ('connector' = 'datagen',
        'number-of-rows' = '{rows}', 'rows-per-second' = '1000000000', 'fields.v.length' = '100')""")
    start = time.perf_counter()
    if variant == "sql":
        t_env.execute_sql("CREATE TEMPORARY TABLE sink (v STRING, n BIGINT) WITH ('connector' = 'blackhole')")
        t_env.execute_sql("INSERT INTO sink SELECT v, n FROM src").wait()
        return time.perf_counter() - start

    class Count(ProcessFunction):
        def process_element(self, value, ctx):
            return iter(())

    class KeyedCount(KeyedProcessFunction):
        def process_element(self, value, ctx):
            return iter(())

    if variant == "process":
        out = t_env.to_data_stream(t_env.sql_query("SELECT v, n FROM src")).process(Count())
    elif variant == "key_by":
        stream = t_env.to_data_stream(t_env.sql_query("SELECT 'topic' AS topic, v, n FROM src"))
        out = stream.key_by(lambda r: "key", key_type=Types.STRING()).process(KeyedCount())
    else:
        value_type = Types.ROW([Types.STRING(), Types.STRING(), Types.LONG()])
        stream = t_env.to_append_stream(t_env.sql_query("SELECT 'key' AS k, ROW('topic', v, n) AS rec FROM src"),
                                        Types.ROW([Types.STRING(), value_type]))
        out = key_by_first_field(stream, value_type).process(KeyedCount())
    out.name(variant)
    env.execute(f"bench-python-calls-{variant}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_python_calls", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or args.rows <= 0:
        parser.error(f"unknown variant {unknown[0]!r} (choose from {', '.join(VARIANTS)})" if unknown
                     else "--rows must be positive")
    import multiprocessing

    seconds = {}
    for variant in variants:  # each in a fresh process: one mini-cluster per interpreter
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            seconds[variant] = pool.apply(run_variant, (variant, args.rows))
        print(f"{variant:8s} {seconds[variant]:7.1f} s", flush=True)
    floor = seconds.get("sql")
    print(f"\n| variant | wall s ({args.rows:,} rows) | us per row beyond sql |\n|---|---:|---:|")
    for variant, s in seconds.items():
        extra = "" if floor is None or variant == "sql" else f"{(s - floor) / args.rows * 1e6:.1f}"
        print(f"| {variant} | {s:.1f} | {extra} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
