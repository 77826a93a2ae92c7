"""Reading a replayable data set (a local folder or ``s3://bucket/prefix``) as one stream of
events merged in event-time order, plus the record-level helpers replay needs (event time,
key, time shifting, fan-out).

Layout (written by sources.sample_data, documented in data/PROVENANCE.md): one JSON Lines file
per topic, each sorted by its records' event time, and an optional ``manifest.json`` whose
``topics.<topic>.file`` names the file. Without a manifest, ``<topic>.jsonl`` is used for every
topic of the contract that has one.

The event time of a price offer is its ``published_at`` when present (a day-ahead offer is known
from the auction's publication, 12-36 h before it is in force), else its ``valid_from`` (CONTRACT).
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sources.cli import UserError
from udfs import topics as T
from udfs.timeutil import format_ts, parse_ts_ms

# Topic -> field that carries the event time (the Kafka record timestamp is set from it), unless
# the record has the topic's EVENT_FIELD_IF_PRESENT.
EVENT_FIELD = {T.PRICES: "valid_from", T.WEATHER: "observed_at", T.SITE_STATUS: "at", T.JOBS: "submitted_at"}
# Topic -> optional field that, when a record has it (not null), carries its event time instead:
# an offer published ahead of its validity (a day-ahead auction's result) is known from then.
EVENT_FIELD_IF_PRESENT = {T.PRICES: "published_at"}
# Topic -> every timestamp field, shifted together by --rebase-to-now.
TIME_FIELDS = {
    T.PRICES: ("valid_from", "valid_to", "published_at"),
    T.WEATHER: ("observed_at",),
    T.SITE_STATUS: ("at",),
    T.JOBS: ("submitted_at", "deadline"),
}
KEY_FIELD = {T.PRICES: "site_id", T.WEATHER: "site_id", T.SITE_STATUS: "site_id", T.JOBS: "job_id"}
# Merge order of topics at equal event time: an offer before the weather of the same instant.
TOPIC_ORDER = {T.PRICES: 0, T.WEATHER: 1, T.SITE_STATUS: 2, T.JOBS: 3}
REPLAY_TOPICS = (T.PRICES, T.WEATHER, T.SITE_STATUS, T.JOBS)


@dataclass(slots=True)
class Event:
    """One record on its way to Kafka. ``value`` is the exact bytes to send; ``record`` the parsed
    object (None for injected malformed values)."""

    ts: int
    topic: str
    key: str
    value: bytes
    record: dict | None = None
    origin_ts: int = 0  # event time before any shift (pacing and progress run on it)
    tags: tuple[str, ...] = field(default=())

    def parsed(self) -> dict:
        """The record as a dict (parsed on first use: plain replay never needs it)."""
        if self.record is None:
            self.record = json.loads(self.value)
        return self.record


_TS_CACHE: dict[str | bytes, int] = {}


def event_time_ms(value: object, name: str) -> int:
    """parse_ts_ms with a cache: the sample repeats each timestamp once per site."""
    if isinstance(value, str):
        cached = _TS_CACHE.get(value)
        if cached is None:
            cached = parse_ts_ms(value, name)
            if len(_TS_CACHE) < 2_000_000:
                _TS_CACHE[value] = cached
        return cached
    return parse_ts_ms(value, name)


def event_field(topic: str, record: dict) -> str:
    """The field that carries ``record``'s event time: ``published_at`` for an offer that has one,
    else the topic's EVENT_FIELD."""
    alt = EVENT_FIELD_IF_PRESENT.get(topic)
    if alt is not None and record.get(alt) is not None:
        return alt
    return EVENT_FIELD[topic]


def describe_event_time(topic: str) -> str:
    """How ``topic``'s event time is defined, for messages."""
    alt = EVENT_FIELD_IF_PRESENT.get(topic)
    return f"{alt}, else {EVENT_FIELD[topic]}" if alt else EVENT_FIELD[topic]


_STAMP = rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"'


def _fast_patterns(topic: str, field_name: str) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    key = f'"{KEY_FIELD[topic]}":"([^"\\\\]+)"'.encode()
    stamp = f'"{field_name}":'.encode() + _STAMP
    return re.compile(rb"\{(?:.*?,)??" + key + rb".*?" + stamp), re.compile(rb"\{(?:.*?,)??" + stamp + rb".*?" + key)


_FAST = {t: _fast_patterns(t, f) for t, f in EVENT_FIELD.items()}
# (marker, patterns) of the topics whose event time may come from EVENT_FIELD_IF_PRESENT: a line
# that contains the marker is matched on that field (or parsed with json when that fails).
_FAST_IF_PRESENT = {t: (f'"{f}"'.encode(), _fast_patterns(t, f)) for t, f in EVENT_FIELD_IF_PRESENT.items()}


def parse_line(topic: str, line: bytes, where: str) -> Event:
    """Event time and key of one JSON line. Compact flat records with a plain ``...Z`` timestamp
    (what sample_data writes) take a regex fast path without a full JSON parse (the consumer
    parses them anyway); anything else is parsed with json. A price line that mentions
    ``"published_at"`` takes its event time from that field (json decides when the regex does not
    match, e.g. for ``"published_at":null``)."""
    alt = _FAST_IF_PRESENT.get(topic)
    if alt is not None and alt[0] in line:
        key_first, ts_first = alt[1]
    else:
        key_first, ts_first = _FAST[topic]
    m = key_first.match(line)
    if m is not None:
        key, stamp = m.group(1), m.group(2)
    else:
        m = ts_first.match(line)
        if m is None or line[-1:] != b"}":
            return _parse_line_slow(topic, line, where)
        stamp, key = m.group(1), m.group(2)
    ts = _TS_CACHE.get(stamp)
    if ts is None:
        try:
            ts = parse_ts_ms(stamp.decode(), "event time")
        except ValueError:
            return _parse_line_slow(topic, line, where)
        if len(_TS_CACHE) < 2_000_000:
            _TS_CACHE[stamp] = ts
    return Event(ts, topic, key.decode(), line, None, ts)


def _parse_line_slow(topic: str, line: bytes, where: str) -> Event:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: not a JSON record ({exc})") from None
    if not isinstance(record, dict):
        raise UserError(f"{where}: not a JSON object")
    field_name = event_field(topic, record)
    try:
        ts = event_time_ms(record.get(field_name), field_name)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    key = record.get(KEY_FIELD[topic])
    if not isinstance(key, str) or not key:
        raise UserError(f"{where}: {KEY_FIELD[topic]} missing")
    return Event(ts, topic, key, line, record, ts)


class Dataset:
    """A folder or ``s3://bucket/prefix`` holding one JSON Lines file per topic."""

    def __init__(self, source: str, endpoint_url: str | None = None):
        self.source = source
        self.is_s3 = source.startswith("s3://")
        self._s3 = None
        self.manifest: dict | None = None
        if self.is_s3:
            from sources import s3

            self.bucket, self.prefix = s3.parse_s3_url(source)
            self._s3 = s3.client(endpoint_url)
            keys = {k.rsplit("/", 1)[-1]: k for k in self._s3_call(s3.list_keys, self._s3, self.bucket, self.prefix)}
            if not keys:
                raise UserError(f"{source}: no objects under that prefix (upload with `make upload-sample`)")
            self._keys = keys
            if "manifest.json" in keys:
                self.manifest = self._load_manifest(
                    self._s3_call(s3.read_bytes, self._s3, self.bucket, keys["manifest.json"])
                )
        else:
            self.root = Path(source)
            if not self.root.is_dir():
                raise UserError(f"{source}: no such folder (build it with `make sample-data`)")
            manifest = self.root / "manifest.json"
            if manifest.exists():
                try:
                    self.manifest = self._load_manifest(manifest.read_bytes())
                except OSError as exc:
                    raise UserError(f"{manifest}: {exc.strerror or exc}") from None
        self.files = self._topic_files()
        if not self.files:
            raise UserError(f"{source}: no data files (expected {', '.join(t + '.jsonl' for t in REPLAY_TOPICS)})")

    def _load_manifest(self, raw: bytes) -> dict:
        try:
            manifest = json.loads(raw)
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
            return manifest
        except ValueError as exc:
            raise UserError(f"{self.source}/manifest.json: not valid JSON ({exc})") from None

    def _s3_call(self, fn, *args):
        from sources import s3

        try:
            return fn(*args)
        except UserError:
            raise
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("botocore", "boto3", "urllib3"):
                raise UserError(s3.describe_error(exc, self.source)) from None
            raise

    def _exists(self, name: str) -> bool:
        return name in self._keys if self.is_s3 else (self.root / name).is_file()

    def _topic_files(self) -> dict[str, str]:
        files = {}
        declared = (self.manifest or {}).get("topics", {})
        for topic in REPLAY_TOPICS:
            name = declared.get(topic, {}).get("file") if isinstance(declared.get(topic), dict) else None
            if name:
                if not self._exists(name):
                    raise UserError(f"{self.source}: manifest names {name} for {topic}, but it is missing")
                files[topic] = name
            elif self._exists(f"{topic}.jsonl"):
                files[topic] = f"{topic}.jsonl"
        return files

    def time_range(self) -> tuple[int, int] | None:
        """(first, last) event time over all topics, from the manifest when it has them."""
        spans = []
        for topic in self.files:
            info = (self.manifest or {}).get("topics", {}).get(topic, {})
            if "first" in info and "last" in info:
                spans.append((parse_ts_ms(info["first"]), parse_ts_ms(info["last"])))
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def lines(self, topic: str) -> Iterator[bytes]:
        name = self.files[topic]
        if self.is_s3:
            from sources import s3

            stream = self._s3_call(s3.iter_lines, self._s3, self.bucket, self._keys[name])
            while True:
                try:
                    line = self._s3_call(next, stream)
                except StopIteration:
                    return
                yield line
        else:
            path = self.root / name
            try:
                with open(path, "rb") as fh:
                    yield from fh
            except OSError as exc:
                raise UserError(f"{path}: {exc.strerror or exc}") from None

    def events(
        self, topic: str, start_ms: int | None = None, end_ms: int | None = None, sites: set[str] | None = None
    ) -> Iterator[Event]:
        """One topic's events in file order, filtered to event time ``[start_ms, end_ms)`` and ``sites``.

        An offer published ahead (``published_at``) before ``start_ms`` that is still in force at
        ``start_ms`` (``valid_to`` after it, or without ``valid_to`` a ``valid_from`` at or after
        it) is kept too, at its publication time: at ``start_ms`` it was already known, so a replay
        from there starts with the day-ahead prices a live consumer would have had.
        """
        name = self.files[topic]
        carry_marker = _FAST_IF_PRESENT[topic][0] if topic in _FAST_IF_PRESENT else None
        last = None
        for lineno, raw in enumerate(self.lines(topic), 1):
            line = raw.strip()
            if not line:
                continue
            where = f"{self.source}/{name}:{lineno}"
            event = parse_line(topic, line, where)
            if last is not None and event.ts < last:
                raise UserError(
                    f"{where}: not sorted by event time ({describe_event_time(topic)}): "
                    f"{format_ts(event.ts)} after {format_ts(last)}"
                )
            last = event.ts
            if end_ms is not None and event.ts >= end_ms:
                return  # sorted: nothing later can be in range
            if start_ms is not None and event.ts < start_ms:
                if carry_marker is None or carry_marker not in line or not _in_force_at(event, start_ms):
                    continue
            if sites is not None and event.key not in sites and topic != T.JOBS:
                continue
            yield event


def _in_force_at(event: Event, at_ms: int) -> bool:
    """Whether the offer ``event`` is still in force at ``at_ms`` or comes into force later."""
    try:
        record = event.parsed()
    except ValueError:
        return False
    if not isinstance(record, dict):
        return False
    name = "valid_to" if record.get("valid_to") is not None else "valid_from"
    try:
        bound = event_time_ms(record.get(name), name)
    except ValueError:
        return False  # a broken offer before the start is skipped, as any record before it
    return bound > at_ms if name == "valid_to" else bound >= at_ms


def merged_events(
    dataset: Dataset,
    topics: Iterable[str] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    sites: set[str] | None = None,
) -> Iterator[Event]:
    """All chosen topics merged by (event time, topic order); stable within a topic."""
    chosen = [t for t in (topics or dataset.files) if t in dataset.files]
    if len(chosen) == 1:
        yield from dataset.events(chosen[0], start_ms, end_ms, sites)
        return

    # (ts, topic order, sequence) is unique, so tuples never compare the Event itself
    def keyed(topic: str) -> Iterator[tuple[int, int, int, Event]]:
        order = TOPIC_ORDER[topic]
        for i, e in enumerate(dataset.events(topic, start_ms, end_ms, sites)):
            yield (e.ts, order, i, e)

    for item in heapq.merge(*(keyed(t) for t in chosen)):
        yield item[3]


def load_sample(
    source: str | Path = "data/sample",
    topics: Iterable[str] | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    sites: Iterable[str] | None = None,
) -> dict[str, list[dict]]:
    """The sample's records per topic (CONTRACT dicts, event-time order), e.g. for tests and benchmarks.

    ``start``/``end`` (ISO-8601 UTC or epoch ms) bound the event time to ``[start, end)``; offers
    published before ``start`` and still in force at it are included (see Dataset.events). A
    price's event time is its ``published_at`` when present, else its ``valid_from``.
    """
    dataset = Dataset(str(source))
    start_ms = parse_ts_ms(start, "start") if start is not None else None
    end_ms = parse_ts_ms(end, "end") if end is not None else None
    site_set = set(sites) if sites is not None else None
    out: dict[str, list[dict]] = {}
    for topic in topics or dataset.files:
        if topic in dataset.files:
            out[topic] = [e.parsed() for e in dataset.events(topic, start_ms, end_ms, site_set)]
    return out


# ----------------------------------------------------------------------------- transformations


def shift_event(event: Event, delta_ms: int) -> Event:
    """The same record with every time field moved by ``delta_ms`` (for --rebase-to-now)."""
    if not delta_ms:
        return event
    record = dict(event.parsed())
    for name in TIME_FIELDS[event.topic]:
        if name in record and record[name] is not None:
            record[name] = format_ts(event_time_ms(record[name], name) + delta_ms)
    return Event(event.ts + delta_ms, event.topic, event.key, dumps(record), record, event.origin_ts, event.tags)


def dumps(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def fanout_site_ids(base_ids: Iterable[str], n: int) -> dict[str, str]:
    """``n`` synthetic site ids -> the real site each derives from, round-robin over the sorted
    base ids: ``ams-f001``, ``chi-f002``, ... (the number is global, so ids are unique)."""
    bases = sorted(set(base_ids))
    if n and not bases:
        raise UserError("--fanout needs at least one real site in the data")
    return {f"{bases[(i - 1) % len(bases)]}-f{i:03d}": bases[(i - 1) % len(bases)] for i in range(1, n + 1)}


def fanout_offsets(fanout_id: str) -> dict[str, float]:
    """Deterministic offsets of a fan-out site from its base site (documented in PROVENANCE.md):
    price x (1 + 0.01 k) with k in -10..10, temperature +0.5 m degC with m in -5..5, RH + r with r in -4..4."""
    i = int(fanout_id.rsplit("-f", 1)[1])
    return {
        "price_factor": 1 + 0.01 * ((i * 7) % 21 - 10),
        "temp_offset_c": 0.5 * ((i * 3) % 11 - 5),
        "rh_offset": float((i * 5) % 9 - 4),
    }


def derive_event(event: Event, fanout_id: str) -> Event:
    """A fan-out site's copy of a real site's record (same event time)."""
    off = fanout_offsets(fanout_id)
    record = dict(event.parsed())
    record["site_id"] = fanout_id
    if event.topic == T.PRICES and isinstance(record.get("price_per_mwh"), (int, float)):
        record["price_per_mwh"] = round(record["price_per_mwh"] * off["price_factor"], 2)
        record["derived_from"] = event.key
    elif event.topic == T.WEATHER:
        if isinstance(record.get("temp_c"), (int, float)):
            record["temp_c"] = round(record["temp_c"] + off["temp_offset_c"], 2)
        if isinstance(record.get("rel_humidity"), (int, float)):
            record["rel_humidity"] = round(min(100.0, max(0.0, record["rel_humidity"] + off["rh_offset"])), 2)
        record["derived_from"] = event.key
    return Event(event.ts, event.topic, fanout_id, dumps(record), record, event.origin_ts, event.tags)


def with_fanout(events: Iterable[Event], fanout: dict[str, str]) -> Iterator[Event]:
    """Each real-site event followed by its fan-out copies (jobs are not fanned out)."""
    by_base: dict[str, list[str]] = {}
    for fid, base in fanout.items():
        by_base.setdefault(base, []).append(fid)
    for event in events:
        yield event
        if event.topic != T.JOBS:
            for fid in by_base.get(event.key, ()):
                yield derive_event(event, fid)
