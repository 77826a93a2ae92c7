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
                         for t in ("jobs", "dispatch", "site-costs", "dead-letter")])
    admin.close()
    producer = KafkaProducer(**conf)
    producer.send("sec-jobs", key=b"j-1", value=json.dumps(
        {"action": "submit", "job_id": "j-1", "submitted_at": "2018-07-01T10:00:00Z", "compute_hours": 1,
         "slots": 1, "priority": 1}).encode())
    producer.flush()
    producer.close()
    env = {"PATH": "/usr/bin:/bin", "GRD_KAFKA_PASSWORD_FILE": str(secure_broker.run_dir / "client.password")}
    proc = subprocess.run([sys.executable, "-m", "deploy.verify", "--bootstrap", secure_broker.bootstrap,
                           "--topic-prefix", "sec-", "--sasl-username", kafka_secure.DEFAULT_USER, "--timeout-s", "30"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("verify OK: 1 jobs, 0 decided, 1 pending without deadline")


def test_dispatch_job_runs_against_the_secure_broker(secure_broker, small_sites, tmp_path):
    """The pipeline with credentials (--kafka-properties-file, a 0600 file): every source and the
    exactly-once sinks authenticate, and the output equals the batch reference."""
    import json
    import os
    import subprocess
    import sys

    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    from deploy.local.common import REPO
    from tests import scenario
    from tests.integration.test_dispatch_job import canonical, comparable_decision, key_of, scenario_events
    from tests.reference import reference_run
    from udfs import topics

    conf = kafka_secure.client_config(secure_broker)
    prefix = "pipe-"
    admin = KafkaAdminClient(**conf)
    admin.create_topics([NewTopic(prefix + t, num_partitions=2, replication_factor=1, topic_configs={
        "retention.ms": "-1"}) for t in topics.ALL_TOPICS])
    admin.close()
    events = scenario_events()
    producer = KafkaProducer(linger_ms=5, **conf)
    for topic, rec in sorted(((t, r) for t, recs in events.items() for r in recs),
                             key=lambda tr: scenario.event_ms(*tr)):
        producer.send(prefix + topic, key=key_of(topic, rec), value=json.dumps(rec).encode(),
                      timestamp_ms=scenario.event_ms(topic, rec))
    producer.flush()
    producer.close()

    props = tmp_path / "client.properties"
    props.touch(mode=0o600)
    props.write_text("".join(f"{k}={v}\n" for k, v in kafka_secure.java_client_properties(
        kafka_secure.DEFAULT_USER, kafka_secure.password_for(secure_broker)).items()))
    proc = subprocess.run(
        [sys.executable, "-m", "flink_jobs.dispatch_job", "--bootstrap", secure_broker.bootstrap, "--topic-prefix",
         prefix, "--bounded", "--checkpoint-interval-s", "2", "--state-dir", str(tmp_path / "ckpt"),
         "--sites-file", small_sites, "--restart-attempts", "0", "--kafka-properties-file", str(props)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "GRD_KAFKA_PROPERTIES_FILE": ""})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert kafka_secure.password_for(secure_broker) not in proc.stdout + proc.stderr

    def committed(topic: str) -> list[dict]:
        consumer = KafkaConsumer(prefix + topic, auto_offset_reset="earliest", consumer_timeout_ms=5000,
                                 isolation_level="read_committed", **conf)
        out = [json.loads(r.value) for r in consumer]
        consumer.close()
        return out

    expected = reference_run(events, sites_file=small_sites)
    assert canonical(committed(topics.SITE_COSTS)) == canonical(expected[topics.SITE_COSTS])
    assert canonical(committed(topics.DISPATCH), comparable_decision) == canonical(expected[topics.DISPATCH],
                                                                                   comparable_decision)
