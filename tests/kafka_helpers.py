"""Small kafka-python helpers for tests: produce JSON records, read a topic back (read_committed)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer


def produce_json(bootstrap: str, topic: str, records: Iterable[dict], key_field: str | None = "site_id",
                 timestamp_ms=None) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    n = 0
    for rec in records:
        key = str(rec[key_field]).encode() if key_field and rec.get(key_field) is not None else None
        ts = timestamp_ms(rec) if timestamp_ms else None
        producer.send(topic, key=key, value=json.dumps(rec).encode(), timestamp_ms=ts)
        n += 1
    producer.flush()
    producer.close()
    return n


def produce_raw(bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    n = 0
    for key, value in values:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush()
    producer.close()
    return n


def consume_all(bootstrap: str, topic: str, expected: int | None = None, timeout_s: float = 60.0,
                idle_s: float = 3.0) -> list:
    """Read a topic from the start with read_committed until `expected` records arrived (or it
    stays quiet for `idle_s` after the timeout when no count is given)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        consumer_timeout_ms=int(idle_s * 1000),
    )
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for msgs in batch.values():
                records.extend(msgs)
            if expected is not None and len(records) >= expected:
                # one more short poll to catch any unexpected extras
                for msgs in consumer.poll(timeout_ms=1000).values():
                    records.extend(msgs)
                break
    finally:
        consumer.close()
    return records


def values(records: list) -> list[dict]:
    return [json.loads(r.value) for r in records]
