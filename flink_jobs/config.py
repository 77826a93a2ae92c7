"""Job configuration, read once into a frozen dataclass from environment variables and flags.

Every setting has a flag and an environment variable (shown by ``--help``); no host names live
inside table definitions.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JAR_DIR = Path(os.environ.get("GRD_JAR_DIR", REPO / ".cache" / "jars" / "flink"))


@dataclass(frozen=True)
class JobConfig:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    group_id: str = "geodispatch"
    startup_mode: str = "earliest-offset"
    bounded: bool = False
    parallelism: int = 1
    checkpoint_interval_s: float = 10.0
    out_of_orderness_s: float = 300.0
    idle_timeout_s: float = 30.0
    tick_minutes: int = 5
    transaction_timeout_ms: int = 900_000
    delivery_guarantee: str = "exactly-once"
    restart_attempts: int = 10
    restart_delay_s: float = 5.0
    sites_file: str = str(REPO / "conf" / "sites.yaml")
    solver_time_limit_s: float = 10.0  # a safety net: decisions are bounded by work (udfs.optimizer)
    replan: str = "on-change"  # udfs.planner
    dispatch_shards: int = 1
    state_dir: str = str(REPO / ".run" / "checkpoints")
    execution_mode: str = "thread"
    bundle_size: int = 1000
    output_topic: str = "prices-out"  # passthrough only
    detached: bool = False
    kafka_properties_file: str = ""

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


# flag name -> (env var, help). Order is the order of --help.
_HELP = {
    "bootstrap": ("KAFKA_BOOTSTRAP", "Kafka bootstrap servers"),
    "topic_prefix": ("GRD_TOPIC_PREFIX", "prefix added to every topic name (tests, several pipelines on one broker)"),
    "group_id": ("GRD_GROUP_ID", "Kafka consumer group id"),
    "startup_mode": ("GRD_STARTUP_MODE", "where the sources start: earliest-offset | latest-offset | group-offsets"),
    "bounded": ("GRD_BOUNDED", "stop at the offsets that are the latest when the job starts (tests, batch replays)"),
    "parallelism": ("GRD_PARALLELISM", "default operator parallelism"),
    "checkpoint_interval_s": ("GRD_CHECKPOINT_INTERVAL_S",
                              "checkpoint interval, seconds (exactly-once sinks commit on it)"),
    "out_of_orderness_s": ("GRD_OUT_OF_ORDERNESS_S", "watermark bound for out-of-order events, seconds of event time"),
    "idle_timeout_s": ("GRD_IDLE_TIMEOUT_S",
                       "a quiet source partition stops holding back event time after this, s"),
    "tick_minutes": ("GRD_TICK_MINUTES", "dispatch tick length, minutes of event time"),
    "transaction_timeout_ms": ("GRD_TRANSACTION_TIMEOUT_MS",
                               "transaction timeout of the exactly-once sinks (<= broker max)"),
    "delivery_guarantee": ("GRD_DELIVERY_GUARANTEE", "sink guarantee: exactly-once | at-least-once | none"),
    "restart_attempts": ("GRD_RESTART_ATTEMPTS", "fixed-delay restart strategy: attempts"),
    "restart_delay_s": ("GRD_RESTART_DELAY_S", "fixed-delay restart strategy: delay in seconds"),
    "sites_file": ("GRD_SITES", "site catalogue (YAML)"),
    "solver_time_limit_s": ("GRD_SOLVER_TIME_LIMIT_S",
                            "wall-clock safety net of one dispatch solve, s (counted when it fires)"),
    "replan": ("GRD_REPLAN", "plan in full only when the plan's inputs changed, the new jobs in the standing plan's "
                             "room between (on-change), or at every tick (docs/BENCHMARKS.md \"Decision time\")"),
    "dispatch_shards": ("GRD_DISPATCH_SHARDS",
                        "region shards of the dispatch, one subtask each (1 = one global solve per tick)"),
    "state_dir": ("GRD_STATE_DIR", "checkpoint directory (a path or URI such as s3://...)"),
    "execution_mode": ("GRD_PYTHON_EXECUTION_MODE", "Python worker mode: process | thread"),
    "bundle_size": ("GRD_BUNDLE_SIZE", "python.fn-execution.bundle.size"),
    "output_topic": ("GRD_OUTPUT_TOPIC", "passthrough job: output topic (before the prefix)"),
    "detached": ("GRD_DETACHED", "return once the job is submitted instead of waiting for it to end"),
    "kafka_properties_file": ("GRD_KAFKA_PROPERTIES_FILE",
                              "extra Kafka client properties (key=value lines, e.g. SASL/TLS), all sources/sinks"),
}

_CHOICES = {
    "startup_mode": ("earliest-offset", "latest-offset", "group-offsets"),
    "delivery_guarantee": ("exactly-once", "at-least-once", "none"),
    "execution_mode": ("process", "thread"),
    "replan": ("on-change", "every-tick"),
}


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def load_config(argv: list[str] | None = None, prog: str | None = None, description: str | None = None) -> JobConfig:
    """Defaults < environment < flags. A wrong flag or env value exits with one line (code 2)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    defaults = JobConfig()
    for f in fields(JobConfig):
        env, text = _HELP[f.name]
        default = getattr(defaults, f.name)
        raw_env = os.environ.get(env)
        kind = type(default)
        try:
            current = (_parse_bool(raw_env) if kind is bool else kind(raw_env)) if raw_env is not None else default
        except ValueError:
            parser.error(f"environment variable {env}={raw_env!r}: expected {kind.__name__}")
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=current,
                                help=f"{text} (env {env}, default {default})")
        else:
            parser.add_argument(flag, type=kind, default=current, choices=_CHOICES.get(f.name), metavar=None,
                                help=f"{text} (env {env}, default {default})")
    args = parser.parse_args(argv)
    cfg = JobConfig(**{f.name: getattr(args, f.name) for f in fields(JobConfig)})
    problems = []
    if cfg.parallelism < 1:
        problems.append("--parallelism must be at least 1")
    if cfg.checkpoint_interval_s <= 0:
        problems.append("--checkpoint-interval-s must be positive")
    if cfg.tick_minutes < 1:
        problems.append("--tick-minutes must be at least 1")
    if cfg.dispatch_shards < 1:
        problems.append("--dispatch-shards must be at least 1")
    if cfg.out_of_orderness_s < 0:
        problems.append("--out-of-orderness-s must not be negative")
    if cfg.kafka_properties_file:
        try:
            kafka_client_properties(cfg.kafka_properties_file)
        except (OSError, ValueError) as exc:
            problems.append(f"--kafka-properties-file: {exc}")
    if problems:
        parser.error("; ".join(problems))
    return cfg


# Set by the job itself; a properties file may not override them.
RESERVED_KAFKA_PROPERTIES = {"bootstrap.servers", "group.id", "isolation.level", "transaction.timeout.ms",
                             "transactional.id", "key.deserializer", "value.deserializer"}


def kafka_client_properties(path: str) -> dict[str, str]:
    """Java-properties style ``key=value`` lines (``#`` comments) -> dict. Raises ValueError."""
    props: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{path}:{n}: expected key=value")
        if key in RESERVED_KAFKA_PROPERTIES:
            raise ValueError(f"{path}:{n}: {key} is set by the job (use its own flag)")
        props[key] = value.strip()
    return props


OPERATORS_JAR = "geodispatch-operators.jar"  # flink_jobs/jvm, compiled by `make setup`


def connector_jars() -> list[str]:
    """file:// URLs of the jars the job ships (Kafka SQL connector, our Java operators)."""
    jars = sorted(JAR_DIR.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        print(f"error: Kafka connector jar missing in {JAR_DIR}: run `make jars`", file=sys.stderr)
        raise SystemExit(2)
    operators = JAR_DIR / OPERATORS_JAR
    if not operators.is_file():
        print(f"error: {operators} missing: run `make setup`", file=sys.stderr)
        raise SystemExit(2)
    return [j.resolve().as_uri() for j in [*jars, operators]]
