"""The execution environment every job shares: jars, Python interpreter, checkpoints, restarts."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
from pyflink.table import EnvironmentSettings, StreamTableEnvironment

from flink_jobs.config import REPO, JobConfig, connector_jars, kafka_client_properties


def flink_configuration(cfg: JobConfig) -> Configuration:
    conf = Configuration()
    conf.set_string("pipeline.jars", ";".join(connector_jars()))
    # The Python workers must run our venv's interpreter, not whatever `python` is on PATH.
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    # Thread mode runs Python inside the TaskManager JVM (pemja), which starts the base
    # interpreter, not the venv: it finds our packages only through python.pythonpath.
    python_path = [sysconfig.get_paths()["purelib"]]
    if not os.environ.get("GRD_CODE_SHIPPED"):
        # Embedded runs import our packages from the checkout; `flink run` ships them with -pyfs
        # instead (deploy/local/flink_cluster.py sets GRD_CODE_SHIPPED), so a restarted worker runs
        # the code that was submitted, not whatever the checkout holds by then.
        python_path.insert(0, str(REPO))
    conf.set_string("python.pythonpath", os.pathsep.join(python_path))
    conf.set_string("python.execution-mode", cfg.execution_mode)
    conf.set_string("python.fn-execution.bundle.size", str(cfg.bundle_size))
    # Restart strategy through configuration keys (Flink 2.x dropped the object setters).
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", str(cfg.restart_attempts))
    conf.set_string("restart-strategy.fixed-delay.delay", f"{int(cfg.restart_delay_s * 1000)} ms")
    conf.set_string("execution.checkpointing.interval", f"{int(cfg.checkpoint_interval_s * 1000)} ms")
    conf.set_string("execution.checkpointing.mode", "EXACTLY_ONCE")
    conf.set_string("execution.checkpointing.dir", _as_uri(cfg.state_dir))
    conf.set_string("state.backend.type", "hashmap")
    # Chained operators hand records on without a defensive copy. The SQL that unnests the
    # dispatch operator's output rows (dispatch_job.attach_sinks) emits each record joined to the
    # row it came from, and copying that row per record made the split quadratic in its size.
    conf.set_string("pipeline.object-reuse", "true")
    conf.set_string("table.local-time-zone", "UTC")
    conf.set_string("table.exec.source.idle-timeout", f"{int(cfg.idle_timeout_s * 1000)} ms")
    return conf


def _as_uri(path: str) -> str:
    return path if "://" in path else Path(path).resolve().as_uri()


def create_environments(cfg: JobConfig) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    conf = flink_configuration(cfg)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    env.enable_checkpointing(int(cfg.checkpoint_interval_s * 1000), CheckpointingMode.EXACTLY_ONCE)
    settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    t_env = StreamTableEnvironment.create(env, environment_settings=settings)
    return env, t_env


def kafka_source_options(cfg: JobConfig, topic: str, group_suffix: str) -> dict[str, str]:
    options = {
        "connector": "kafka",
        "topic": cfg.topic(topic),
        "properties.bootstrap.servers": cfg.bootstrap,
        "properties.group.id": f"{cfg.group_id}-{group_suffix}",
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": cfg.startup_mode,
    }
    if cfg.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return {**options, **_extra_properties(cfg)}


# flink-sql-connector-kafka shades the Kafka client: a class named in a property (the JAAS login
# module, callback handlers) must carry the shaded package, or the login fails with
# "No LoginModule found for org.apache.kafka...ScramLoginModule".
SHADED_KAFKA_PACKAGE = "org.apache.flink.kafka.shaded."


def _extra_properties(cfg: JobConfig) -> dict[str, str]:
    if not cfg.kafka_properties_file:
        return {}
    props = kafka_client_properties(cfg.kafka_properties_file)
    return {f"properties.{k}": SHADED_KAFKA_PACKAGE + v if v.startswith("org.apache.kafka.") else v
            for k, v in props.items()}


def kafka_sink_options(cfg: JobConfig, topic: str, sink_name: str) -> dict[str, str]:
    options = {
        "connector": "kafka",
        "topic": cfg.topic(topic),
        "properties.bootstrap.servers": cfg.bootstrap,
        "sink.delivery-guarantee": cfg.delivery_guarantee,
    }
    if cfg.delivery_guarantee == "exactly-once":
        # One prefix per sink and per pipeline, so two sinks never fence each other's transactions.
        options["sink.transactional-id-prefix"] = f"{cfg.group_id}-{cfg.topic_prefix}{sink_name}"
        # The connector's default (1 h) exceeds the broker's default maximum (15 min).
        options["properties.transaction.timeout.ms"] = str(cfg.transaction_timeout_ms)
    return {**options, **_extra_properties(cfg)}


def with_clause(options: dict[str, str]) -> str:
    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"  # SQL string literal (a JAAS config has quotes)

    return ",\n  ".join(f"{quote(k)} = {quote(v)}" for k, v in options.items())


def watermark_interval(seconds: float) -> str:
    """A SQL interval literal for a bound in seconds (the planner accepts only the default leading
    precision, so DAY TO SECOND covers bounds up to 99 days with millisecond resolution)."""
    ms = int(round(seconds * 1000))
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}' DAY TO SECOND(3)"
