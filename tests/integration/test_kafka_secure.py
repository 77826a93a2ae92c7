"""The optional SASL/SCRAM broker (deploy/local/kafka_secure.py): unauthenticated and wrongly
authenticated clients are refused, an authenticated one produces and reads back."""

from __future__ import annotations

import stat

import pytest

from deploy.local import kafka_secure
from deploy.local.common import free_port
from deploy.local.kafka_broker import BrokerConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    cfg = BrokerConfig(run_dir=tmp_path_factory.mktemp("kafka-sasl"), port=free_port(), controller_port=free_port(),
                       heap="384m")
    kafka_secure.start(cfg)
    try:
        yield cfg
    finally:
        kafka_secure.stop(cfg)


def test_generated_config_is_loopback_only_and_private(secure_broker):
    props = (secure_broker.run_dir / "server.properties").read_text()
    listeners = [x for x in props.splitlines() if x.startswith(("listeners=", "advertised.listeners="))]
    assert all("127.0.0.1" in x and "PLAINTEXT://" not in x.replace("SASL_PLAINTEXT://", "") for x in listeners)
    for name in ("server.properties", "client.password"):
        mode = stat.S_IMODE((secure_broker.run_dir / name).stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))


def test_unauthenticated_client_is_refused(secure_broker):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap, request_timeout_ms=4000,
                         api_version_auto_timeout_ms=4000).list_topics()


def test_wrong_password_is_refused(secure_broker):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    conf = kafka_secure.client_config(secure_broker, password="not-the-password")
    with pytest.raises(KafkaError):
        KafkaAdminClient(request_timeout_ms=4000, api_version_auto_timeout_ms=4000, **conf).list_topics()


def test_authenticated_client_produces_and_reads(secure_broker):
    from kafka import KafkaConsumer, KafkaProducer

    conf = kafka_secure.client_config(secure_broker)
    producer = KafkaProducer(**conf)
    for i in range(20):
        producer.send("secure-smoke", key=b"ams", value=f'{{"n": {i}}}'.encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer("secure-smoke", auto_offset_reset="earliest", consumer_timeout_ms=5000,
                             isolation_level="read_committed", **conf)
    got = [r.value for r in consumer]
    consumer.close()
    assert len(got) == 20


def test_verifier_reads_with_credentials(secure_broker):
    import json
    import subprocess
    import sys

    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    from deploy.local.common import REPO

    conf = kafka_secure.client_config(secure_broker)
    admin = KafkaAdminClient(**conf)
    admin.create_topics([NewTopic(f"sec-{t}", num_partitions=1, replication_factor=1)
                         for t in ("jobs", "dispatch", "site-costs")])
    admin.close()
    producer = KafkaProducer(**conf)
    producer.send("sec-jobs", key=b"j-1", value=json.dumps(
        {"action": "submit", "job_id": "j-1", "submitted_at": "2018-07-01T10:00:00Z", "compute_hours": 1,
         "slots": 1, "priority": 1}).encode())
    producer.flush()
    producer.close()
    env = {"PATH": "/usr/bin:/bin", "GRD_KAFKA_PASSWORD_FILE": str(secure_broker.run_dir / "client.password")}
    proc = subprocess.run([sys.executable, "-m", "flink_jobs.verify", "--bootstrap", secure_broker.bootstrap,
                           "--topic-prefix", "sec-", "--sasl-username", kafka_secure.DEFAULT_USER, "--timeout-s", "30"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("verify OK: 1 jobs, 0 decided, 1 pending without deadline")
