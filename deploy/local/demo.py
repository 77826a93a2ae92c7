"""`make demo` / `make down`: the whole pipeline on one machine, every process in the background.

up:   Kafka (KRaft) -> topics -> dispatch job (embedded Flink mini-cluster) -> replay of the
      sample data -> synthetic jobs -> Streamlit page. PIDs and logs under .run/demo/.
down: stops everything by recorded PID (and a standalone Flink cluster if one is up).
reset: after down, removes the topics' data, the job's state and the demo's logs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from deploy.local import flink_cluster, kafka_broker
from deploy.local.common import REPO, RUN_DIR, SetupError, check_port_free, fail, read_pid, stop_pid, tail

DEMO_DIR = RUN_DIR / "demo"
START = os.environ.get("DEMO_START", "2018-07-01T00:00:00Z")
SPEED = os.environ.get("SPEED", "3600")
DASHBOARD_PORT = int(os.environ.get("DASHBOARD_PORT", "8501"))
SAMPLE = REPO / "data" / "sample"


def replay_end(sample: Path = SAMPLE) -> str | None:
    """The data time just after the sample's last record (where the replay stops), from its
    manifest; None when it cannot be read (the jobs then run until `make down`)."""
    try:
        from sources.dataset import Dataset
        from udfs.timeutil import format_ts

        span = Dataset(str(sample)).time_range()
    except Exception:  # no sample yet (make demo builds it first) or an unreadable manifest
        return None
    return format_ts(span[1] + 1000) if span else None


def jobs_command(env: Mapping[str, str] = os.environ, end: str | None = None) -> list[str]:
    """The demo's job stream: RATE per data-hour from START on the replay's clock. Without an
    explicit COUNT it has no count limit and stops where the replay stops (the sample's end), so
    jobs keep flowing for the whole replay; COUNT=N stops after N jobs as `make jobs` does."""
    count = env.get("COUNT") or "0"
    cmd = [sys.executable, "-m", "sources.jobs", "--rate", env.get("RATE", "20"), "--count", count,
           "--seed", env.get("SEED", "7"), "--start", START, "--speed", SPEED, "--no-progress"]
    if end is not None:
        cmd += ["--end", end]
    return cmd


# name -> command; started in this order, stopped in reverse
SERVICES: dict[str, list[str]] = {
    "dispatch-job": [sys.executable, "-m", "flink_jobs.dispatch_job"],
    "replay": [sys.executable, "-m", "sources.replay", "--source", "data/sample", "--speed", SPEED,
               "--start", START, "--no-progress"],
    "jobs": jobs_command(end=replay_end()),  # make demo builds the sample before it runs this
    "dashboard": [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.address", "127.0.0.1",
                  "--server.port", str(DASHBOARD_PORT), "--server.headless", "true",
                  "--browser.gatherUsageStats", "false"],
}


def _pid_file(name: str) -> Path:
    return DEMO_DIR / f"{name}.pid"


def _log_file(name: str) -> Path:
    return DEMO_DIR / f"{name}.log"


def _shown(path: Path) -> str:
    """A path as the user typed it: relative to the repo when inside it (GRD_RUN_DIR may be anywhere)."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def start_service(name: str) -> int:
    pid = read_pid(_pid_file(name))
    if pid is not None:
        return pid
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    with open(_log_file(name), "ab") as log:
        proc = subprocess.Popen(SERVICES[name], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _pid_file(name).write_text(str(proc.pid))
    time.sleep(2)
    if proc.poll() is not None:
        raise SetupError(f"{name} exited with code {proc.returncode}; last lines of {_log_file(name)}:\n"
                         f"{tail(_log_file(name))}")
    return proc.pid


def up() -> None:
    broker = kafka_broker.BrokerConfig()
    kafka_broker.start(broker)
    kafka_broker.create_topics(broker.bootstrap, int(os.environ.get("PARTITIONS", "4")))
    print(f"Kafka {kafka_broker.kafka_version()} (KRaft) on {broker.bootstrap}; topics ready")
    if read_pid(_pid_file("dashboard")) is None:
        check_port_free(DASHBOARD_PORT, "DASHBOARD_PORT")
    for name in SERVICES:
        pid = start_service(name)
        print(f"  {name:<13} pid {pid:<7} log {_shown(_log_file(name))}")
    print(f"""
GeoDispatch demo is running (event time starts {START}, {SPEED} data-seconds per second):
  page            http://127.0.0.1:{DASHBOARD_PORT}   (decisions appear within a minute)
  decisions       .venv/bin/python -m deploy.local.tail dispatch      (also site-costs, dead-letter, pipeline-metrics)
  stop            make down""")


def down() -> None:
    for name in reversed(list(SERVICES)):
        if stop_pid(_pid_file(name), name):
            print(f"stopped {name}")
    try:
        flink_cluster.rest_get(flink_cluster.ClusterConfig(), "/overview", timeout=1)
        flink_cluster.down(flink_cluster.ClusterConfig())
        print("stopped the Flink session cluster")
    except OSError:
        pass
    if kafka_broker.stop(kafka_broker.BrokerConfig()):
        print("stopped Kafka")


def reset() -> None:
    """After `make down`: forget the topics' data and the job's state, so the next run starts clean
    (no decisions of an earlier run read again, no job id already taken)."""
    running = [name for name in SERVICES if read_pid(_pid_file(name)) is not None]
    if read_pid(kafka_broker.BrokerConfig().pid_file) is not None:
        running.append("kafka")
    if running:
        raise SetupError(f"still running: {', '.join(running)}; run `make down` first")
    from flink_jobs.config import JobConfig

    state = os.environ.get("GRD_STATE_DIR", JobConfig.state_dir).removeprefix("file://")
    targets = [kafka_broker.BrokerConfig().run_dir / "data", DEMO_DIR]
    if "://" in state:
        print(f"left {state} alone (not a local path): remove the job's state there yourself")
    else:
        targets.append(Path(state))
    for path in targets:
        if path.exists():
            shutil.rmtree(path)
            print(f"removed {path}")
    print("clean: the next `make demo` (or `make kafka-up topics`) starts with empty topics and no job state")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.demo", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "reset"])
    args = parser.parse_args(argv)
    try:
        {"up": up, "down": down, "reset": reset}[args.action]()
    except SetupError as exc:
        fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
