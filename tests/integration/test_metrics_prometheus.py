"""The Flink Prometheus reporter of the local standalone cluster serves the job's own metrics.

A standalone session cluster (from the pip package, config from deploy/local/flink_cluster.py, which
turns the reporter on) runs the dispatch job unbounded on prefixed topics holding the scripted
scenario plus a few malformed records; the TaskManager's /metrics endpoint must then show the
``geodispatch`` metric group with the exact counts (dead letters = bad records produced, records
parsed = good records produced). The job is cancelled and the cluster stopped in any case.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from deploy.local import flink_cluster
from deploy.local.common import REPO, free_port
from tests import scenario
from tests.conftest import create_topics
from tests.kafka_helpers import produce_json, produce_raw
from udfs import topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The names the reporter gives our counters: flink_<scope: taskmanager_job_task_operator>_<group>_<name>.
PREFIX = "flink_taskmanager_job_task_operator_geodispatch_"
DEAD_LETTERS = PREFIX + "dead_letters"
RECORDS_PARSED = PREFIX + "records_parsed"
DECISIONS = PREFIX + "decisions"
PENDING_JOBS = PREFIX + "pending_jobs"

BAD_RECORDS = [
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": 40'),
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": "cheap", "valid_from": "2018-07-01T05:00:00Z"}'),
    (topics.PRICES, b"xyz", b'{"site_id": "xyz", "price_per_mwh": 40, "valid_from": "2018-07-01T05:00:00Z"}'),
    (topics.WEATHER, b"sto", b"[1, 2, 3]"),
    (topics.JOBS, b"j-bad", b'{"action": "launch", "job_id": "j-bad", "submitted_at": "2018-07-01T05:00:00Z"}'),
]


def two_free_ports() -> str:
    """A range "p-(p+1)" with both ports free: the JobManager and the TaskManager each take one."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return f"{port}-{port + 1}"
    raise RuntimeError("no two consecutive free ports")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        return resp.read().decode()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of one metric family: (labels, value)."""
    out = []
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
            out.append((labels, float(m.group(2))))
    return out


def total(text: str, name: str, job_id: str) -> float | None:
    found = [v for labels, v in samples(text, name) if labels.get("job_id") == job_id]
    return sum(found) if found else None


@pytest.fixture()
def cluster(tmp_path):
    cfg = flink_cluster.ClusterConfig(
        run_dir=tmp_path / "flink", rest_port=free_port(), rpc_port=free_port(), slots=2, tm_memory="2g",
        prometheus_ports=two_free_ports(),
    )
    try:
        flink_cluster.up(cfg)
        yield cfg
    finally:
        for job in _jobs(cfg):
            if job.get("status") in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"):
                flink_cluster.run_cli(cfg, flink_cluster.flink_cli(
                    cfg, "cancel", job["id"], jobmanager=f"127.0.0.1:{cfg.rest_port}"), timeout=60)
        flink_cluster.down(cfg)


def _jobs(cfg) -> list[dict]:
    try:
        return flink_cluster.rest_get(cfg, "/jobs")["jobs"]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return []


def test_taskmanager_prometheus_endpoint_serves_geodispatch_counters(kafka_bootstrap, topic_prefix, cluster):
    cfg = cluster
    create_topics(kafka_bootstrap, [topic_prefix + t for t in topics.ALL_TOPICS], partitions=2)
    good = {
        topics.PRICES: produce_json(kafka_bootstrap, topic_prefix + topics.PRICES, scenario.offers()),
        topics.WEATHER: produce_json(kafka_bootstrap, topic_prefix + topics.WEATHER, scenario.weather()),
        topics.JOBS: produce_json(kafka_bootstrap, topic_prefix + topics.JOBS, scenario.jobs(), key_field="job_id"),
    }
    for topic, key, value in BAD_RECORDS:
        produce_raw(kafka_bootstrap, topic_prefix + topic, [(key, value)])

    jm = f"127.0.0.1:{cfg.rest_port}"
    cmd = flink_cluster.submit_command(
        cfg, "flink_jobs.dispatch_job",
        ["--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix, "--no-bounded",
         "--checkpoint-interval-s", "2", "--idle-timeout-s", "2", "--state-dir", str(cfg.run_dir / "ckpt"),
         "--sites-file", str(REPO / "conf" / "sites.yaml"), "--restart-attempts", "0"],
        jobmanager=jm,
    )
    result = flink_cluster.run_cli(cfg, cmd, timeout=180)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = flink_cluster.rest_get(cfg, "/jobs")["jobs"]
    assert len(jobs) == 1
    job_id = jobs[0]["id"]

    low, high = (int(p) for p in cfg.prometheus_ports.split("-"))
    want_parsed = sum(good.values())
    deadline = time.monotonic() + 120
    seen: dict[str, float | None] = {}
    tm_text = ""
    while time.monotonic() < deadline:
        state = flink_cluster.rest_get(cfg, f"/jobs/{job_id}")["state"]
        assert state in ("RUNNING", "CREATED", "INITIALIZING"), f"job is {state}"
        for port in range(low, high + 1):
            try:
                text = scrape(port)
            except (urllib.error.URLError, OSError):
                continue
            if "flink_taskmanager_" in text:
                tm_text = text
        seen = {name: total(tm_text, name, job_id) for name in (DEAD_LETTERS, RECORDS_PARSED, DECISIONS)}
        if seen[DEAD_LETTERS] == len(BAD_RECORDS) and seen[RECORDS_PARSED] == want_parsed and seen[DECISIONS]:
            break
        time.sleep(2)
    assert tm_text, f"no TaskManager metrics on ports {cfg.prometheus_ports}"
    assert seen[DEAD_LETTERS] == len(BAD_RECORDS), seen
    assert seen[RECORDS_PARSED] == want_parsed, seen
    assert seen[DECISIONS] and seen[DECISIONS] > 0, seen
    # every counter the operators register is exported, with the job and operator as labels
    for name in ("late_events", "duplicates", "offers_expired", "late_jobs", "pending_jobs"):
        assert samples(tm_text, PREFIX + name), f"{PREFIX + name} missing"
    labels = samples(tm_text, DEAD_LETTERS)[0][0]
    assert {"job_id", "job_name", "task_name", "operator_name", "subtask_index", "tm_id"} <= labels.keys(), labels
    assert labels["job_name"] == "geodispatch-dispatch"
    # Flink's own metrics the Grafana dashboard uses are there too (lag, throughput, checkpoints)
    for name in ("flink_taskmanager_job_task_numRecordsInPerSecond",
                 "flink_taskmanager_job_task_operator_pendingRecords"):
        assert name in tm_text, name
