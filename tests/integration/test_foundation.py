"""The foundation end to end: a real Kafka 4.x broker and real Flink moving records."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error

import pytest

from deploy.local import flink_cluster
from deploy.local.common import REPO, free_port
from tests.conftest import create_topics
from tests.kafka_helpers import consume_all, produce_json, values

pytestmark = pytest.mark.integration


def price_records(n: int) -> list[dict]:
    sites = ["ams", "trn", "sto", "chi", "tus"]
    return [
        {
            "site_id": sites[i % len(sites)],
            "price_per_mwh": round(20 + (i * 7.31) % 90, 2),
            "valid_from": f"2018-07-{1 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z",
            "valid_to": None,
            "currency": "EUR",
            "source": "test",
        }
        for i in range(n)
    ]


def canonical(recs: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in recs)


def test_kafka_python_round_trip(kafka_bootstrap, topic_prefix):
    topic = topic_prefix + "roundtrip"
    create_topics(kafka_bootstrap, [topic], partitions=2)
    produce_json(kafka_bootstrap, topic, price_records(10))
    got = consume_all(kafka_bootstrap, topic, expected=10, timeout_s=30)
    assert canonical(values(got)) == canonical(price_records(10))


@pytest.mark.slow
def test_passthrough_embedded(kafka_bootstrap, topic_prefix, tmp_path):
    create_topics(kafka_bootstrap, [topic_prefix + "prices", topic_prefix + "prices-out"])
    sent = price_records(1000)
    produce_json(kafka_bootstrap, topic_prefix + "prices", sent)
    proc = subprocess.run(
        [sys.executable, "-m", "flink_jobs.passthrough", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix,
         "--bounded", "--checkpoint-interval-s", "1", "--state-dir", str(tmp_path / "ckpt")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = consume_all(kafka_bootstrap, topic_prefix + "prices-out", expected=1000, timeout_s=60)
    assert len(got) == 1000
    assert canonical(values(got)) == canonical(sent)
    # keyed by site_id, as the contract asks
    assert all(r.key.decode() == json.loads(r.value)["site_id"] for r in got)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    cfg = flink_cluster.ClusterConfig(
        run_dir=tmp_path_factory.mktemp("flink"), rest_port=free_port(), rpc_port=free_port(), slots=2,
        tm_memory="2g", prometheus_ports=str(free_port()),
    )
    flink_cluster.up(cfg)
    try:
        yield cfg
    finally:
        flink_cluster.down(cfg)


@pytest.mark.slow
def test_passthrough_standalone_cluster(kafka_bootstrap, topic_prefix, standalone_cluster):
    cfg = standalone_cluster
    create_topics(kafka_bootstrap, [topic_prefix + "prices", topic_prefix + "prices-out"])
    sent = price_records(1000)
    produce_json(kafka_bootstrap, topic_prefix + "prices", sent)
    jm = f"127.0.0.1:{cfg.rest_port}"
    # --parallelism first: a flag the Flink CLI has too must still reach the program (make job JOB_ARGS=...)
    cmd = flink_cluster.submit_command(
        cfg, "flink_jobs.passthrough",
        ["--parallelism", "2", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix, "--bounded",
         "--checkpoint-interval-s", "1", "--state-dir", str(cfg.run_dir / "ckpt")],
        jobmanager=jm,
    )
    result = flink_cluster.run_cli(cfg, cmd, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    # listed by `flink list -a` and by the REST /jobs endpoint
    jobs = flink_cluster.rest_get(cfg, "/jobs")["jobs"]
    assert len(jobs) == 1
    listing = flink_cluster.run_cli(cfg, flink_cluster.flink_cli(cfg, "list", "-a", jobmanager=jm))
    assert jobs[0]["id"] in listing.stdout
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        try:
            status = flink_cluster.rest_get(cfg, f"/jobs/{jobs[0]['id']}")["state"]
        except (urllib.error.URLError, OSError):
            status = None
        if status in ("FINISHED", "FAILED", "CANCELED"):
            break
        time.sleep(2)
    assert status == "FINISHED"
    vertices = flink_cluster.rest_get(cfg, f"/jobs/{jobs[0]['id']}")["vertices"]
    assert max(v["parallelism"] for v in vertices) == 2, [(v["name"], v["parallelism"]) for v in vertices]
    got = consume_all(kafka_bootstrap, topic_prefix + "prices-out", expected=1000, timeout_s=60)
    assert canonical(values(got)) == canonical(sent)
