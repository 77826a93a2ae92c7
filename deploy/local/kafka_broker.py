"""Single-node Apache Kafka 4.x (KRaft combined mode) from the Maven Central jars.

Started the way the distribution's scripts do it: ``java -cp <jars> kafka.tools.StorageTool
format`` once, then ``java -cp <jars> kafka.Kafka server.properties``. Everything lives under
``.run/kafka`` (or the directory given), bound to 127.0.0.1.

    python -m deploy.local.kafka_broker up|down|status|topics [--port N] [--partitions N]
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from deploy.local.common import (
    KAFKA_JARS,
    RUN_DIR,
    SetupError,
    check_port_free,
    fail,
    read_pid,
    require_java,
    stop_pid,
    tail,
)
from udfs.topics import ALL_TOPICS

HERE = Path(__file__).resolve().parent
# The exactly-once sinks use a 15-minute transaction timeout; the broker must allow at least that.
TRANSACTION_MAX_TIMEOUT_MS = 3_600_000
# Record timestamps are event times (2018 for the sample data): no time-based deletion.
TOPIC_CONFIG = {"retention.ms": "-1"}


@dataclass(frozen=True)
class BrokerConfig:
    run_dir: Path = RUN_DIR / "kafka"
    port: int = int(os.environ.get("KAFKA_PORT", "9092"))
    controller_port: int = int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093"))
    heap: str = os.environ.get("KAFKA_HEAP", "1g")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "kafka.log"


def server_properties(cfg: BrokerConfig) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{cfg.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{cfg.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={cfg.run_dir / 'data'}",
            "num.partitions=4",
            # One node: every internal topic must accept replication factor 1.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            f"transaction.max.timeout.ms={TRANSACTION_MAX_TIMEOUT_MS}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            # Replayed history carries record timestamps from years ago: time-based retention
            # would delete it on arrival. Keep by size only.
            "log.retention.ms=-1",
            "log.retention.bytes=4294967296",
            "",
        ]
    )


def _classpath() -> str:
    jars = sorted(KAFKA_JARS.glob("*.jar"))
    if not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise SetupError(f"Kafka jars missing in {KAFKA_JARS}: run `make jars` (needs Maven: apt-get install maven)")
    return ":".join(str(j) for j in jars)


def _java_cmd(cfg: BrokerConfig, main: str, *args: str) -> list[str]:
    return [
        require_java(),
        f"-Xmx{cfg.heap}",
        "-Xms256m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={cfg.run_dir / 'logs'}",
        "-cp",
        _classpath(),
        main,
        *args,
    ]


def _format_storage(cfg: BrokerConfig, props: Path) -> None:
    if (cfg.run_dir / "data" / "meta.properties").exists():
        return
    cluster_id = "-"
    while cluster_id.startswith("-"):  # StorageTool would read a leading '-' as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    result = subprocess.run(
        _java_cmd(cfg, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SetupError(f"kafka storage format failed: {(result.stderr or result.stdout).strip()[-500:]}")


def start(cfg: BrokerConfig, timeout_s: float = 90.0) -> int:
    """Start the broker in the background and wait until it answers metadata requests."""
    pid = read_pid(cfg.pid_file)
    if pid is not None:
        wait_ready(cfg.bootstrap, timeout_s)
        return pid
    check_port_free(cfg.port, "KAFKA_PORT")
    check_port_free(cfg.controller_port, "KAFKA_CONTROLLER_PORT")
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    props = cfg.run_dir / "server.properties"
    props.write_text(server_properties(cfg))
    _format_storage(cfg, props)
    with open(cfg.log_file, "ab") as log:
        proc = subprocess.Popen(
            _java_cmd(cfg, "kafka.Kafka", str(props)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so `down` stops it and only it
        )
    cfg.pid_file.write_text(str(proc.pid))
    try:
        wait_ready(cfg.bootstrap, timeout_s, proc)
    except SetupError:
        stop_pid(cfg.pid_file, "kafka")
        raise
    return proc.pid


def wait_ready(bootstrap: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SetupError(
                f"Kafka exited with code {proc.returncode}; last lines of its log:\n{_log_tail(bootstrap)}"
            )
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            last_error = str(exc)
            time.sleep(0.5)
    raise SetupError(
        f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s ({last_error}); "
        f"last lines of its log:\n{_log_tail(bootstrap)}"
    )


def _log_tail(bootstrap: str) -> str:
    port = int(bootstrap.rsplit(":", 1)[1])
    for cfg in (BrokerConfig(port=port), BrokerConfig()):
        if cfg.log_file.exists():
            return tail(cfg.log_file)
    return "(no log)"


def stop(cfg: BrokerConfig) -> bool:
    return stop_pid(cfg.pid_file, "kafka", timeout_s=30)


def create_topics(bootstrap: str, partitions: int = 4, topics: tuple[str, ...] = ALL_TOPICS) -> list[str]:
    """Create the contract's topics (idempotent). Returns the names that were new."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        existing = set(admin.list_topics())
        new = [t for t in topics if t not in existing]
        if new:
            admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1, topic_configs=TOPIC_CONFIG) for t in new]
            )
        return new
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.kafka_broker", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "topics"])
    parser.add_argument(
        "--port", type=int, default=BrokerConfig.port, help="broker port (env KAFKA_PORT, default 9092)"
    )
    parser.add_argument(
        "--controller-port",
        type=int,
        default=BrokerConfig.controller_port,
        help="KRaft controller port (env KAFKA_CONTROLLER_PORT)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=int(os.environ.get("PARTITIONS", "4")),
        help="partitions per topic (env PARTITIONS)",
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP"),
        help="for `topics`: broker to talk to (env KAFKA_BOOTSTRAP)",
    )
    parser.add_argument(
        "--topic-prefix",
        default=os.environ.get("GRD_TOPIC_PREFIX", ""),
        help="for `topics`: prefix of every topic name (env GRD_TOPIC_PREFIX, as the job, sources and page)",
    )
    args = parser.parse_args(argv)
    cfg = BrokerConfig(port=args.port, controller_port=args.controller_port)
    try:
        if args.action == "up":
            pid = start(cfg)
            print(
                f"Kafka {kafka_version()} (KRaft, broker+controller) up on {cfg.bootstrap}, "
                f"pid {pid}, log {cfg.log_file}"
            )
        elif args.action == "down":
            print("Kafka stopped" if stop(cfg) else "Kafka was not running")
        elif args.action == "status":
            pid = read_pid(cfg.pid_file)
            print(f"Kafka running, pid {pid}, {cfg.bootstrap}" if pid else "Kafka not running")
            return 0 if pid else 1
        else:
            bootstrap = args.bootstrap or cfg.bootstrap
            names = tuple(args.topic_prefix + t for t in ALL_TOPICS)
            new = create_topics(bootstrap, args.partitions, names)
            print(f"topics on {bootstrap}: created {', '.join(new) or 'none'}; all of {', '.join(names)} exist")
    except SetupError as exc:
        fail(str(exc))
    except Exception as exc:  # a broker that is down shows up as a KafkaError: keep it one line
        if type(exc).__module__.startswith("kafka"):
            fail(f"cannot talk to Kafka at {args.bootstrap or cfg.bootstrap}: {exc} (is it up? `make kafka-up`)")
        raise
    return 0


def kafka_version() -> str:
    jar = next(iter(sorted(KAFKA_JARS.glob("kafka_2.13-*.jar"))), None)
    return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar") if jar else "?"


if __name__ == "__main__":
    sys.exit(main())
