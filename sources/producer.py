"""Kafka producers behind one small interface: ``send(topic, key, value, ts_ms)``, ``flush()``, ``close()``.

The record timestamp is always the event time (the Flink job's watermarks run on it).
``confluent-kafka`` (librdkafka) is several times faster than ``kafka-python`` from Python;
both are supported, ``auto`` picks confluent-kafka when it is installed. Settings measured in
docs/BENCHMARKS.md ("Replay producer").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sources.cli import UserError


class Sink:
    name = "sink"
    # Delivery failures so far and the last one's text; producers update them from their callbacks.
    _failed = 0
    _last_error = ""

    def send(self, topic: str, key: bytes, value: bytes, ts_ms: int) -> None:
        raise NotImplementedError

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for delivery; returns the number of records still undelivered."""
        return 0

    def close(self) -> None:
        pass

    @property
    def errors(self) -> int:
        return self._failed

    @property
    def last_error(self) -> str:
        return self._last_error


@dataclass
class ListSink(Sink):
    """Collects what would be sent (tests, dry runs)."""

    name = "list"
    sent: list[tuple[str, bytes, bytes, int]] = field(default_factory=list)

    def send(self, topic: str, key: bytes, value: bytes, ts_ms: int) -> None:
        self.sent.append((topic, key, value, ts_ms))


@dataclass(frozen=True)
class ProducerSettings:
    linger_ms: int = 50
    batch_bytes: int = 1_048_576
    # none by default: kafka-python consumers (tests, dashboard) cannot read lz4/zstd/snappy without extra packages
    compression: str = "none"  # none | gzip | lz4 | zstd | snappy
    acks: str = "1"


class KafkaPythonSink(Sink):
    name = "kafka-python"

    def __init__(self, bootstrap: str, settings: ProducerSettings | None = None):
        settings = settings or ProducerSettings()
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self._failed = 0
        self._last_error = ""
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks=int(settings.acks) if settings.acks.lstrip("-").isdigit() else settings.acks,
                linger_ms=settings.linger_ms,
                batch_size=settings.batch_bytes,
                compression_type=None if settings.compression == "none" else settings.compression,
                max_request_size=max(1_048_576, settings.batch_bytes),
                buffer_memory=64 * 1_048_576,
                request_timeout_ms=30_000,
                client_id="geodispatch-sources",
            )
        except KafkaError as exc:
            raise UserError(f"cannot connect to Kafka at {bootstrap}: {exc} (is it up? `make kafka-up`)") from None
        except (AssertionError, ValueError) as exc:  # e.g. codec library not installed
            raise UserError(f"kafka-python producer settings rejected: {exc}") from None

    def _on_error(self, exc: BaseException) -> None:
        self._failed += 1
        self._last_error = str(exc)

    def send(self, topic: str, key: bytes, value: bytes, ts_ms: int) -> None:
        self._producer.send(topic, value=value, key=key, timestamp_ms=ts_ms).add_errback(self._on_error)

    def flush(self, timeout_s: float = 60.0) -> int:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout_s)
            return 0
        except KafkaTimeoutError:
            return -1

    def close(self) -> None:
        self._producer.close(timeout=10)


class ConfluentSink(Sink):
    name = "confluent"

    def __init__(self, bootstrap: str, settings: ProducerSettings | None = None):
        settings = settings or ProducerSettings()
        from confluent_kafka import KafkaException, Producer

        self._failed = 0
        self._last_error = ""
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": settings.acks,
                "linger.ms": settings.linger_ms,
                "batch.size": settings.batch_bytes,
                "compression.type": settings.compression,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "batch.num.messages": 100_000,
                "message.timeout.ms": 60_000,
                # a Python callback per delivered record costs as much as the produce call: failures only
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
                "client.id": "geodispatch-sources",
                "log_level": 0,  # librdkafka would print every reconnect to stderr; errors go to error_cb
                "error_cb": self._on_client_error,
            }
        )
        try:  # librdkafka connects lazily: ask for metadata so a dead broker is one clear line now
            self._producer.list_topics(timeout=5)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            detail = err.str() if hasattr(err, "str") else str(err)
            raise UserError(f"cannot connect to Kafka at {bootstrap}: {detail} (is it up? `make kafka-up`)") from None
        self._BufferError = BufferError
        self._pending = 0

    def _on_client_error(self, err) -> None:
        self._last_error = str(err)

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self._failed += 1
            self._last_error = str(err)

    def send(self, topic: str, key: bytes, value: bytes, ts_ms: int) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, timestamp=ts_ms)
                break
            except BufferError:  # local queue full: let librdkafka drain, then retry
                self._producer.poll(0.05)
        self._pending += 1
        if self._pending >= 10_000:  # serve delivery callbacks now and then
            self._producer.poll(0)
            self._pending = 0

    def flush(self, timeout_s: float = 60.0) -> int:
        return int(self._producer.flush(timeout_s))


def confluent_available() -> bool:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


def make_sink(kind: str, bootstrap: str, settings: ProducerSettings | None = None) -> Sink:
    """``auto`` | ``kafka-python`` | ``confluent``."""
    if kind == "auto":
        kind = "confluent" if confluent_available() else "kafka-python"
    if kind == "confluent":
        if not confluent_available():
            raise UserError("--producer confluent needs the confluent-kafka package (pip install -r requirements.txt)")
        return ConfluentSink(bootstrap, settings)
    if kind == "kafka-python":
        return KafkaPythonSink(bootstrap, settings)
    raise UserError(f"unknown producer {kind!r}")
