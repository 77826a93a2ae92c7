"""The throughput benchmark's ceiling: the dispatch job's inputs and its site-costs records, on the
JVM alone (no Python operator), to show how close the real job comes to what its contract allows.

    python -m bench.ceiling_job [the dispatch job's flags]

The same sources, validation, SiteTicker and TickAssembler as flink_jobs.dispatch_job; then, in
place of the Python dispatch operator, bench/jvm/geodispatch/CeilingSiteCosts.java writes each
site tick's site-costs record (nothing committed: no jobs are planned), through the same sink.
tests/integration/test_ceiling.py checks the records equal the job's on the same input.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyflink
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream

from flink_jobs.config import JAR_DIR, OPERATORS_JAR, load_config
from flink_jobs.dispatch_job import checked_jobs, declare_sinks, declare_sources, site_ticks, sql_text
from flink_jobs.elements import SINGLE_KEY, SITE_COST_FIELDS, SQL_TYPES, assembled_ticks
from flink_jobs.runtime import create_environments
from udfs import topics
from udfs.catalogue import load_catalogue

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "bench" / "jvm" / "geodispatch").glob("*.java"))
JAR = REPO / ".cache" / "jars" / "bench" / "geodispatch-ceiling.jar"


def ceiling_jar() -> Path:
    """bench/jvm compiled against PyFlink's Flink jars and the job's operators (rebuilt when older)."""
    if JAR.is_file() and JAR.stat().st_mtime > max(p.stat().st_mtime for p in [*SOURCES, JAR_DIR / OPERATORS_JAR]):
        return JAR
    lib = Path(pyflink.__file__).parent / "lib"
    cp = ":".join(map(str, [*lib.glob("flink-dist-*.jar"), JAR_DIR / OPERATORS_JAR]))
    classes = JAR.parent / "classes"
    subprocess.run(["rm", "-rf", str(classes)], check=True)
    classes.mkdir(parents=True)
    subprocess.run(["javac", "--release", "11", "-d", str(classes), "-cp", cp, *map(str, SOURCES)], check=True)
    subprocess.run(["jar", "cf", str(JAR), "-C", str(classes), "."], check=True)
    return JAR


def site_params(sites_file: str):
    """Each site's constants in CeilingSiteCosts.PARAMS order, as the JVM map it takes."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    names = list(gateway.jvm.geodispatch.CeilingSiteCosts.PARAMS)
    params = gateway.jvm.java.util.HashMap()
    for site in load_catalogue(sites_file):
        values = {"it_kw_per_slot": site.it_kw_per_slot, "fixed_cost_per_slot_hour": site.fixed_cost_per_slot_hour,
                  "fx_to_eur": site.fx_to_eur, "capacity_slots": site.capacity_slots,
                  **vars(site.cooling), **vars(site.thermal)}
        array = gateway.new_array(gateway.jvm.double, len(names))
        for i, name in enumerate(names):
            array[i] = float(values[name])
        params.put(site.site_id, array)
    return params


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="python -m bench.ceiling_job", description=__doc__.split("\n")[0])
    jar = ceiling_jar()
    env, t_env = create_environments(cfg)
    env.add_jars(jar.resolve().as_uri())  # the client's class loader
    shipped = t_env.get_config().get_configuration().get_string("pipeline.jars", "")
    t_env.get_config().set("pipeline.jars", ";".join(filter(None, [shipped, jar.resolve().as_uri()])))  # the job's
    declare_sources(t_env, cfg)
    declare_sinks(t_env, cfg)
    jobs, _ = checked_jobs(t_env, cfg, sql_text(SINGLE_KEY))
    ticks, _ = site_ticks(t_env, cfg, jobs, {}, SINGLE_KEY)
    from pyflink.java_gateway import get_gateway

    names = ["k", *(name for name, _ in SITE_COST_FIELDS)]
    out_type = Types.ROW_NAMED(names, [Types.STRING(), *(SQL_TYPES[t] for _, t in SITE_COST_FIELDS)])
    costs = DataStream(assembled_ticks(ticks, cfg.tick_minutes * 60_000)._j_data_stream.flatMap(
        get_gateway().jvm.geodispatch.CeilingSiteCosts(site_params(cfg.sites_file)), out_type.get_java_type_info()))
    t_env.create_temporary_view("ceiling_site_costs", t_env.from_data_stream(costs.set_parallelism(1)))
    result = t_env.execute_sql(f"INSERT INTO `sink_{topics.SITE_COSTS}` SELECT * FROM ceiling_site_costs")
    print(f"ceiling job: site-costs on the JVM alone -> {cfg.topic(topics.SITE_COSTS)}", flush=True)
    if not cfg.detached:
        result.wait()


if __name__ == "__main__":
    main()
