"""Fixtures of the sources/ integration tests: a real S3-compatible server (S3Proxy from Maven
Central) on a free 127.0.0.1 port for the session, and a Kafka read-back helper."""

from __future__ import annotations

import pytest
import yaml

from deploy.local import s3_server
from deploy.local.common import REPO, SetupError, free_port


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Starts S3Proxy once per session; yields the AWS_* environment that points boto3 at it."""
    cfg = s3_server.S3Config(run_dir=tmp_path_factory.mktemp("s3proxy"), port=free_port())
    try:
        s3_server.start(cfg)
    except SetupError as exc:
        pytest.fail(f"S3Proxy did not start: {exc}")
    print(f"\n[s3] S3Proxy up on {cfg.endpoint}")
    try:
        yield cfg.env()
    finally:
        s3_server.stop(cfg)


def _consume(
    bootstrap: str, topics: list[str], expected: int, timeout_s: float = 120.0
) -> list[tuple[str, str, bytes, int]]:
    """(topic, key, value, timestamp_ms) of every record of ``topics``, read from the beginning up to
    the end offsets seen when called (callers have finished producing), so extras show up too.
    ``expected`` only waits for topics whose records are still being written (up to the timeout)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
        max_poll_records=50_000,
    )
    try:
        deadline = time.monotonic() + timeout_s
        parts: list = []
        while time.monotonic() < deadline:
            found = {t: consumer.partitions_for_topic(t) for t in topics}
            if all(found.values()):
                parts = [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps)]
                break
            time.sleep(0.2)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        while sum(ends.values()) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
            ends = consumer.end_offsets(parts)
        out: list[tuple[str, str, bytes, int]] = []
        while time.monotonic() < deadline and any(consumer.position(tp) < end for tp, end in ends.items()):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                out.extend((tp.topic, (r.key or b"").decode(), r.value, r.timestamp) for r in records)
        return out
    finally:
        consumer.close()


@pytest.fixture()
def read_topics():
    """read_topics(bootstrap, topics, expected) -> [(topic, key, value bytes, timestamp ms)]."""
    return _consume


@pytest.fixture(scope="session")
def small_sites(tmp_path_factory) -> str:
    """The default catalogue with small capacities, so jobs compete for slots."""
    data = yaml.safe_load((REPO / "conf" / "sites.yaml").read_text())
    for site in data["sites"]:
        site["capacity_slots"] = 40
    path = tmp_path_factory.mktemp("sites") / "sites.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)
