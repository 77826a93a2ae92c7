"""The Flink Prometheus reporter of the local standalone cluster serves the job's own metrics.

A standalone session cluster (from the pip package, config from deploy/local/flink_cluster.py, which
turns the reporter on) runs the dispatch job unbounded on prefixed topics holding the scripted
scenario plus a few malformed records; the TaskManager's /metrics endpoint must then show the
``geodispatch`` metric group with the exact counts (dead letters = bad records produced, records
parsed = good records produced). The job is cancelled and the cluster stopped in any case.
"""

from __future__ import annotations

import json
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
from udfs import topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The names the reporter gives our counters: flink_<scope: taskmanager_job_task_operator>_<group>_<name>.
PREFIX = "flink_taskmanager_job_task_operator_geodispatch_"
DEAD_LETTERS = PREFIX + "dead_letters"
RECORDS_PARSED = PREFIX + "records_parsed"
PENDING_JOBS = PREFIX + "pending_jobs"
BAD_RECORD_TS = scenario.DAY_START + 5 * scenario.HOUR

BAD_RECORDS = [
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": 40'),
    (topics.PRICES, b"ams", b'{"site_id": "ams", "price_per_mwh": "cheap", "valid_from": "2018-07-01T05:00:00Z"}'),
    (topics.PRICES, b"xyz", b'{"site_id": "xyz", "price_per_mwh": 40, "valid_from": "2018-07-01T05:00:00Z"}'),
    (topics.WEATHER, b"sto", b"[1, 2, 3]"),
    (topics.JOBS, b"j-bad", b'{"action": "launch", "job_id": "j-bad", "submitted_at": "2018-07-01T05:00:00Z"}'),
]


def produce_scenario(bootstrap: str, prefix: str) -> int:
    """The scenario's prices, weather and jobs, then the bad records, each with its event time as
    the Kafka record timestamp (a record without a usable event time falls back to that timestamp,
    so the bad records must not carry today's date: it would move event time years ahead)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    items = [(topic, rec) for topic, recs in ((topics.PRICES, scenario.offers()), (topics.WEATHER, scenario.weather()),
                                              (topics.JOBS, scenario.jobs())) for rec in recs]
    items.sort(key=lambda item: scenario.event_ms(*item))
    for topic, rec in items:
        key = rec["job_id"] if topic == topics.JOBS else rec["site_id"]
        producer.send(prefix + topic, key=key.encode(), value=json.dumps(rec).encode(),
                      timestamp_ms=scenario.event_ms(topic, rec))
    for topic, key, value in BAD_RECORDS:
        producer.send(prefix + topic, key=key, value=value, timestamp_ms=BAD_RECORD_TS)
    producer.flush()
    producer.close()
    return len(items)


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
    good = produce_scenario(kafka_bootstrap, topic_prefix)

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
    deadline = time.monotonic() + 120
    seen: dict[str, float | None] = {}
    tm_text = jm_text = ""
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
            elif "flink_jobmanager_" in text:
                jm_text = text
        seen = {name: total(tm_text, name, job_id) for name in (DEAD_LETTERS, RECORDS_PARSED)}
        completed = total(jm_text, "flink_jobmanager_job_numberOfCompletedCheckpoints", job_id)
        if seen[DEAD_LETTERS] == len(BAD_RECORDS) and seen[RECORDS_PARSED] == good and completed:
            break
        time.sleep(2)
    assert tm_text, f"no TaskManager metrics on ports {cfg.prometheus_ports}"
    assert seen[DEAD_LETTERS] == len(BAD_RECORDS), seen
    assert seen[RECORDS_PARSED] == good, seen
    # the gauge is registered when the operator opens; Python counters appear on their first update
    assert [v for labels, v in samples(tm_text, PENDING_JOBS) if labels.get("job_id") == job_id]
    # counted where the records are parsed, both on the JVM: site records in site-ticker, job records in
    # job-records; the dispatch operator counts only its refusals, and there are none here
    by_operator = {labels["operator_name"]: v for labels, v in samples(tm_text, DEAD_LETTERS)
                   if labels.get("job_id") == job_id}
    assert by_operator == {"site_ticker": len(BAD_RECORDS) - 1, "job_records": 1, "dispatch": 0}, by_operator
    labels = samples(tm_text, DEAD_LETTERS)[0][0]
    assert {"job_id", "job_name", "task_name", "operator_name", "subtask_index", "tm_id"} <= labels.keys(), labels
    assert labels["job_name"] == "geodispatch_dispatch"  # the reporter turns '-' into '_'
    # Flink's own metrics that deploy/grafana/geodispatch.json plots: throughput, lag, checkpoints
    for name in ("flink_taskmanager_job_task_numRecordsInPerSecond",
                 "flink_taskmanager_job_task_operator_numRecordsOutPerSecond",
                 "flink_taskmanager_job_task_operator_pendingRecords",
                 "flink_taskmanager_job_task_operator_KafkaSourceReader_KafkaConsumer_records_lag_max",
                 "flink_taskmanager_job_task_backPressuredTimeMsPerSecond"):
        assert samples(tm_text, name), name
    assert jm_text, "no JobManager metrics"
    assert (total(jm_text, "flink_jobmanager_job_numberOfCompletedCheckpoints", job_id) or 0) >= 1
    assert samples(jm_text, "flink_jobmanager_job_lastCheckpointDuration")
