"""The job's Java operators (flink_jobs/jvm) under Flink's operator test harness: compiles the
operators and flink_jobs/jvm/test against PyFlink's own Flink jars and the harness jars
(`make test-jars`), then runs the cases in SiteTickerTest, JobRecordsTest and TickAssemblerTest (each asserts
hand-worked values)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyflink

REPO = Path(__file__).resolve().parents[2]
LIB = Path(pyflink.__file__).parent / "lib"
TEST_JARS = REPO / ".cache" / "jars" / "flink-test"


def test_java_operators_under_the_operator_test_harness(tmp_path):
    harness = sorted(TEST_JARS.glob("*.jar"))
    assert harness, f"no harness jars in {TEST_JARS}: run `make test-jars`"
    classpath = [*LIB.glob("flink-dist-*.jar"), *LIB.glob("flink-table-api-java-uber-*.jar"), *harness,
                 *LIB.glob("log4j-*.jar")]
    sources = sorted((REPO / "flink_jobs" / "jvm").rglob("*.java"))
    cp = ":".join(map(str, classpath))
    compiled = subprocess.run(["javac", "--release", "11", "-Xlint:all", "-Xlint:-serial", "-Werror", "-d",
                               str(tmp_path), "-cp", cp, *map(str, sources)], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr[-4000:]
    for main, cases in (("SiteTickerTest", 11), ("JobRecordsTest", 3), ("TickAssemblerTest", 4)):
        # udfs/ on the class path: InputRecords reads weather_limits.properties from there (the jar packs it)
        run = subprocess.run(["java", "-cp", f"{tmp_path}:{REPO / 'udfs'}:{cp}", f"geodispatch.{main}"],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
        assert f"{main}: {cases} cases passed" in run.stdout
