"""Optional authenticated Kafka: the local KRaft broker with its client listener on SASL/SCRAM.

Builds on deploy/local/kafka_broker.py (same jars, same BrokerConfig, same run-dir layout) and
changes only the listeners: clients must authenticate with SCRAM-SHA-512 on
SASL_PLAINTEXT://127.0.0.1:<port>; the KRaft controller listener stays on 127.0.0.1 only. The
SCRAM credential is created when the storage is formatted (``StorageTool format --add-scram``),
so no clear-text password sits in server.properties except the broker's own inter-broker login,
and the file is written 0600. The password comes from GRD_KAFKA_PASSWORD or is generated into
``<run_dir>/client.password`` (0600): nothing secret lives in the repository.

Still plaintext on the wire (loopback only); TLS would add an SSL listener and a keystore.

    python -m deploy.local.kafka_secure up|down [--port N]   # prints the client properties
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

from deploy.local import kafka_broker
from deploy.local.common import RUN_DIR, SetupError, check_port_free, fail, read_pid, stop_pid
from deploy.local.kafka_broker import BrokerConfig

MECHANISM = "SCRAM-SHA-512"
DEFAULT_USER = os.environ.get("GRD_KAFKA_USER", "geodispatch")


def password_for(cfg: BrokerConfig) -> str:
    env = os.environ.get("GRD_KAFKA_PASSWORD")
    if env:
        return env
    path = cfg.run_dir / "client.password"
    if not path.exists():
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def server_properties(cfg: BrokerConfig, user: str, password: str) -> str:
    """kafka_broker.server_properties with the PLAINTEXT client listener replaced by SASL_PLAINTEXT."""
    lines = []
    for line in kafka_broker.server_properties(cfg).splitlines():
        if line.startswith("listeners="):
            line = f"listeners=SASL_PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{cfg.controller_port}"
        elif line.startswith("advertised.listeners="):
            line = f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{cfg.port}"
        elif line.startswith("inter.broker.listener.name="):
            line = "inter.broker.listener.name=SASL_PLAINTEXT"
        elif line.startswith("listener.security.protocol.map="):
            line = "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        lines.append(line)
    jaas = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{password}";'
    lines += [
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
        "",
    ]
    return "\n".join(lines)


def client_config(cfg: BrokerConfig, user: str = DEFAULT_USER, password: str | None = None) -> dict[str, str]:
    """kafka-python keyword arguments for an authenticated client."""
    return {"bootstrap_servers": cfg.bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": MECHANISM,
            "sasl_plain_username": user, "sasl_plain_password": password or password_for(cfg)}


def java_client_properties(user: str, password: str) -> dict[str, str]:
    """The same for Java clients (Flink connector options take them as ``properties.<key>``)."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": MECHANISM,
            "sasl.jaas.config": f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                                f'username="{user}" password="{password}";'}


def start(cfg: BrokerConfig, user: str = DEFAULT_USER, timeout_s: float = 90.0) -> int:
    if read_pid(cfg.pid_file) is not None:
        wait_ready(cfg, user, timeout_s)
        return read_pid(cfg.pid_file) or 0
    check_port_free(cfg.port, "KAFKA_PORT")
    check_port_free(cfg.controller_port, "KAFKA_CONTROLLER_PORT")
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    password = password_for(cfg)
    props = cfg.run_dir / "server.properties"
    props.touch(mode=0o600)
    props.write_text(server_properties(cfg, user, password))
    if not (cfg.run_dir / "data" / "meta.properties").exists():
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            kafka_broker._java_cmd(cfg, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props),
                                   "--add-scram", f"{MECHANISM}=[name={user},password={password}]"),
            capture_output=True, text=True)
        if result.returncode != 0:
            raise SetupError(f"kafka storage format failed: {(result.stderr or result.stdout).strip()[-500:]}")
    with open(cfg.log_file, "ab") as log:
        proc = subprocess.Popen(kafka_broker._java_cmd(cfg, "kafka.Kafka", str(props)), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    cfg.pid_file.write_text(str(proc.pid))
    try:
        wait_ready(cfg, user, timeout_s, proc)
    except SetupError:
        stop_pid(cfg.pid_file, "kafka")
        raise
    return proc.pid


def wait_ready(cfg: BrokerConfig, user: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SetupError(f"Kafka exited with code {proc.returncode}; see {cfg.log_file}")
        try:
            admin = KafkaAdminClient(request_timeout_ms=3000, **client_config(cfg, user))
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            last = str(exc)
            time.sleep(0.5)
    raise SetupError(f"secure Kafka at {cfg.bootstrap} did not answer within {timeout_s:.0f}s ({last})")


def stop(cfg: BrokerConfig) -> bool:
    return stop_pid(cfg.pid_file, "kafka", timeout_s=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.kafka_secure", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_SECURE_PORT", "9192")))
    parser.add_argument("--controller-port", type=int, default=int(os.environ.get("KAFKA_SECURE_CONTROLLER_PORT",
                                                                                   "9193")))
    args = parser.parse_args(argv)
    cfg = BrokerConfig(run_dir=RUN_DIR / "kafka-secure", port=args.port, controller_port=args.controller_port)
    try:
        if args.action == "up":
            pid = start(cfg)
            print(f"Kafka with SASL/{MECHANISM} up on {cfg.bootstrap}, pid {pid}; user {DEFAULT_USER}, password in "
                  f"{Path(cfg.run_dir) / 'client.password'} (or GRD_KAFKA_PASSWORD)")
        else:
            print("Kafka stopped" if stop(cfg) else "Kafka was not running")
    except SetupError as exc:
        fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
