"""Seeded, deterministic fault injection for replay, with a manifest a verifier can reconcile.

Fault classes (each decided by its own random stream derived from the seed, so turning one on
does not change the choices of another; same input + same flags + same seed = same output):

- ``drop``: the record is not sent.
- ``duplicate``: one extra identical copy (same key, value, timestamp) is sent; the copy is then
  subject to delays like any record.
- ``malformed``: an extra, broken record is inserted right after the original (same topic, key
  and Kafka timestamp); the original is sent intact, so a clean consumer's result is unchanged.
  Kinds: not-json, truncated, not-an-object, missing-field, wrong-type, bad-timestamp, not-utf8, empty.
- ``out_of_order``: the record is held back by d in (0, ooo_max_ms] of event time; it goes out
  before the first record whose event time exceeds its own + d, so its lateness (how far the
  highest event time already sent is ahead of it) is < d <= ooo_max_ms.
- ``late``: held back by d in (late_bound_ms, late_bound_ms + late_extra_ms]; it goes out as soon
  as a record with event time >= its own + d has been sent, so its lateness is >= d > late_bound_ms
  (unless the stream ends first: the manifest reports the lateness actually realized).
- ``jitter``: a wall-clock pause in [0, jitter_max_ms] before sending (processing time only).

Drop applies to the source record; duplicate and malformed to kept records; delays to every
copy. Reconciliation: sent = input - drop + duplicate + malformed (per topic), and the manifest
says so for the run.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from sources.dataset import EVENT_FIELD, Event, event_field
from udfs.timeutil import format_ts

FAULT_CLASSES = ("drop", "duplicate", "malformed", "out_of_order", "late", "jitter")
MALFORMED_KINDS = (
    "not-json",
    "truncated",
    "not-an-object",
    "missing-field",
    "wrong-type",
    "bad-timestamp",
    "not-utf8",
    "empty",
)
# The field a missing-field / wrong-type record breaks, per topic.
_VALUE_FIELD = {"prices": "price_per_mwh", "weather": "temp_c", "site-status": "online", "jobs": "compute_hours"}
RECORD_LIST_CAP = 100_000  # per class; the counts stay exact beyond it


@dataclass(frozen=True)
class FaultConfig:
    seed: int = 0
    drop: float = 0.0
    duplicate: float = 0.0
    malformed: float = 0.0
    out_of_order: float = 0.0
    ooo_max_ms: int = 600_000
    late: float = 0.0
    late_bound_ms: int = 900_000
    late_extra_ms: int = 3_600_000
    jitter: float = 0.0
    jitter_max_ms: int = 50

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "malformed", "out_of_order", "late", "jitter"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} probability {p} is not in [0, 1]")
        if self.out_of_order and self.ooo_max_ms <= 0:
            raise ValueError("out-of-order needs --ooo-max-ms > 0")
        if self.late and self.late_extra_ms <= 0:
            raise ValueError("late events need --late-extra-ms > 0")
        if self.out_of_order and self.late and self.ooo_max_ms > self.late_bound_ms:
            raise ValueError(
                f"--ooo-max-ms {self.ooo_max_ms} exceeds --late-bound-ms {self.late_bound_ms}: "
                "out-of-order records would count as late"
            )

    @property
    def active(self) -> bool:
        return any((self.drop, self.duplicate, self.malformed, self.out_of_order, self.late, self.jitter))


class _Counter:
    """Counts per (topic, key); totals and per-topic figures are derived when asked."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, event: Event) -> None:
        k = (event.topic, event.key)
        self.counts[k] = self.counts.get(k, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def by_topic(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (topic, _), n in self.counts.items():
            out[topic] = out.get(topic, 0) + n
        return dict(sorted(out.items()))

    def as_dict(self) -> dict:
        by_key: dict[str, dict[str, int]] = {}
        for (topic, key), n in sorted(self.counts.items()):
            by_key.setdefault(topic, {})[key] = n
        return {"total": self.total, "by_topic": self.by_topic, "by_topic_key": by_key}


def malformed_value(event: Event, kind: str) -> bytes:
    """A broken version of ``event``'s value, of the given kind."""
    record = dict(event.parsed())
    if kind == "not-json":
        return b"{this is not json: " + event.value[:40]
    if kind == "truncated":
        return event.value[: max(1, len(event.value) // 2)]
    if kind == "not-an-object":
        ts_field = event_field(event.topic, record) if event.topic in EVENT_FIELD else ""
        return json.dumps([record.get(ts_field), event.key]).encode()
    if kind == "missing-field":
        record.pop(_VALUE_FIELD.get(event.topic, ""), None)
        record["_fault"] = kind
        return json.dumps(record).encode()
    if kind == "wrong-type":
        record[_VALUE_FIELD.get(event.topic, "value")] = "not-a-number"
        record["_fault"] = kind
        return json.dumps(record).encode()
    if kind == "bad-timestamp":
        # the topic's required timestamp (a price's valid_from even when published_at carries its
        # event time): a consumer must reject the record whether or not it reads published_at
        record[EVENT_FIELD.get(event.topic, "at")] = "2018-13-45T99:99:99Z"
        record["_fault"] = kind
        return json.dumps(record).encode()
    if kind == "not-utf8":
        return b"\xff\xfe\xfd" + event.value[:20]
    if kind == "empty":
        return b""
    raise ValueError(f"unknown malformed kind {kind}")


class FaultInjector:
    """Transforms an event-time-ordered stream into the faulty delivery order.

    Iterate ``process(events)``: yields ``(event, jitter_s)``. Read ``manifest()`` afterwards.
    """

    def __init__(self, config: FaultConfig):
        self.config = config
        self._rng = {
            name: random.Random(f"{config.seed}/{name}") for name in FAULT_CLASSES + ("malformed-kind", "delay")
        }
        self.counts = {name: _Counter() for name in FAULT_CLASSES}
        self.malformed_kinds: dict[str, int] = {}
        self.input = _Counter()
        self.sent = _Counter()
        self.records: dict[str, list[dict]] = {"drop": [], "malformed": [], "late": []}
        self.max_lateness_ms = 0
        self.realized_ooo = _Counter()  # sent with 0 < lateness <= late_bound_ms
        self.realized_late = _Counter()  # sent with lateness > late_bound_ms
        self._max_ts: int | None = None
        self._seq = 0

    def _hit(self, name: str, p: float) -> bool:
        return p > 0 and self._rng[name].random() < p

    def _note(self, name: str, event: Event, **extra: object) -> None:
        if len(self.records[name]) < RECORD_LIST_CAP:
            self.records[name].append({"topic": event.topic, "key": event.key, "ts": format_ts(event.ts), **extra})

    def _emit(self, event: Event) -> tuple[Event, float]:
        if self._max_ts is not None and event.ts < self._max_ts:
            lateness = self._max_ts - event.ts
            self.max_lateness_ms = max(self.max_lateness_ms, lateness)
            (self.realized_late if lateness > self.config.late_bound_ms else self.realized_ooo).add(event)
        else:
            self._max_ts = event.ts
        self.sent.add(event)
        jitter = 0.0
        if self.config.jitter and self._hit("jitter", self.config.jitter):
            self.counts["jitter"].add(event)
            jitter = self._rng["jitter"].uniform(0, self.config.jitter_max_ms) / 1000
        return event, jitter

    def process(self, events: Iterable[Event]) -> Iterator[tuple[Event, float]]:
        cfg = self.config
        if not cfg.active:  # clean replay: only the counting
            for event in events:
                self.input.add(event)
                yield self._emit(event)
            return
        ooo: list[tuple[int, int, Event]] = []
        late: list[tuple[int, int, Event]] = []
        for event in events:
            t = event.ts
            while ooo and ooo[0][0] < t:  # before t's records: lateness stays below the delay
                yield self._emit(heapq.heappop(ooo)[2])
            self.input.add(event)
            if self._hit("drop", cfg.drop):
                self.counts["drop"].add(event)
                self._note("drop", event)
            else:
                units = [event]
                if self._hit("duplicate", cfg.duplicate):
                    self.counts["duplicate"].add(event)
                    units.append(
                        Event(
                            event.ts,
                            event.topic,
                            event.key,
                            event.value,
                            event.record,
                            event.origin_ts,
                            event.tags + ("duplicate",),
                        )
                    )
                for unit in units:
                    if self._hit("late", cfg.late):
                        delay = cfg.late_bound_ms + self._rng["delay"].randint(1, cfg.late_extra_ms)
                        self.counts["late"].add(unit)
                        self._note("late", unit, delay_ms=delay)
                        self._seq += 1
                        heapq.heappush(late, (t + delay, self._seq, unit))
                    elif self._hit("out_of_order", cfg.out_of_order):
                        delay = self._rng["delay"].randint(1, cfg.ooo_max_ms)
                        self.counts["out_of_order"].add(unit)
                        self._seq += 1
                        heapq.heappush(ooo, (t + delay, self._seq, unit))
                    else:
                        yield self._emit(unit)
                if self._hit("malformed", cfg.malformed):
                    kind = self._rng["malformed-kind"].choice(MALFORMED_KINDS)
                    bad = Event(
                        event.ts,
                        event.topic,
                        event.key,
                        malformed_value(event, kind),
                        None,
                        event.origin_ts,
                        ("malformed", kind),
                    )
                    self.counts["malformed"].add(bad)
                    self.malformed_kinds[kind] = self.malformed_kinds.get(kind, 0) + 1
                    self._note("malformed", bad, kind=kind)
                    yield self._emit(bad)
            # only once something at or past the release time went out: lateness then reaches the delay
            while late and self._max_ts is not None and late[0][0] <= self._max_ts:
                yield self._emit(heapq.heappop(late)[2])
        while ooo or late:  # end of stream: whatever is held, in release order
            heap = ooo if ooo and (not late or ooo[0] <= late[0]) else late
            yield self._emit(heapq.heappop(heap)[2])

    def manifest(self) -> dict:
        faults = {name: c.as_dict() for name, c in self.counts.items()}
        faults["malformed"]["by_kind"] = dict(sorted(self.malformed_kinds.items()))
        expected = {}
        for topic in sorted(set(self.input.by_topic) | set(self.sent.by_topic)):
            expected[topic] = (
                self.input.by_topic.get(topic, 0)
                - self.counts["drop"].by_topic.get(topic, 0)
                + self.counts["duplicate"].by_topic.get(topic, 0)
                + self.counts["malformed"].by_topic.get(topic, 0)
            )
        return {
            "format": "geodispatch-fault-manifest/1",
            "config": asdict(self.config),
            "input": self.input.as_dict(),
            "sent": self.sent.as_dict(),
            "faults": faults,
            "realized": {
                "max_lateness_ms": self.max_lateness_ms,
                "out_of_order": self.realized_ooo.as_dict(),
                "late_beyond_bound": self.realized_late.as_dict(),
            },
            "reconcile": {
                "rule": "sent = input - drop + duplicate + malformed, per topic",
                "expected_sent": expected,
                "ok": all(expected[t] == self.sent.by_topic.get(t, 0) for t in expected),
            },
            "records": self.records,
        }
