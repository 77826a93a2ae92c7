"""Parsing and validation of the ``jobs`` records of ../shared/CONTRACT.md.

``parse_input(topics.JOBS, raw, known_sites)`` returns a :class:`ParsedRecord` or raises
:class:`RecordError` whose message becomes the dead letter's ``error`` ("field: why"). The job's
dispatch operator validates job events with it; the site topics' rules live on the JVM
(flink_jobs/jvm/geodispatch/InputRecords.java), where their records are parsed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import orjson

from udfs import topics
from udfs.timeutil import parse_ts_ms

MAX_PAYLOAD_BYTES = 64 * 1024  # larger values are refused before parsing (an oversized payload is an attack or a bug)
DEAD_LETTER_RAW_BYTES = 4096  # the contract keeps the first 4 KiB of a bad record
MAX_ID_LEN = 128


class RecordError(ValueError):
    """A record that cannot be used; str(error) is the dead-letter reason."""


@dataclass(frozen=True)
class ParsedRecord:
    topic: str  # the contract topic name (without any prefix)
    key: str  # site_id, or job_id for jobs
    event_ms: int  # event time: valid_from / observed_at / at / submitted_at
    record: dict[str, Any]  # normalised: timestamps as epoch ms in *_ms fields, originals kept


def _obj(raw: str | bytes) -> dict[str, Any]:
    # an ASCII str has as many UTF-8 bytes as characters (isascii() is O(1) on str)
    size = len(raw) if not isinstance(raw, str) or raw.isascii() else len(raw.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise RecordError(f"payload: {size} bytes, more than the {MAX_PAYLOAD_BYTES} allowed")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"payload: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(value, dict):
        raise RecordError(f"payload: expected a JSON object, got {type(value).__name__}")
    return value


def _required(rec: dict[str, Any], field: str) -> Any:
    if field not in rec or rec[field] is None:
        raise RecordError(f"{field}: missing")
    return rec[field]


def _number(rec: dict[str, Any], field: str, lo: float | None = None, hi: float | None = None,
            required: bool = True) -> float | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise RecordError(f"{field}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{field}: not a number")
    value = float(value)
    if not math.isfinite(value):
        raise RecordError(f"{field}: not a finite number")
    if lo is not None and value < lo:
        raise RecordError(f"{field}: {value:g} is below {lo:g}")
    if hi is not None and value > hi:
        raise RecordError(f"{field}: {value:g} is above {hi:g}")
    return value


def _integer(rec: dict[str, Any], field: str, lo: int, hi: int | None = None, required: bool = True) -> int | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise RecordError(f"{field}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise RecordError(f"{field}: not an integer")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise RecordError(f"{field}: {value} is outside {lo}..{hi if hi is not None else 'inf'}")
    return value


def _ts(rec: dict[str, Any], field: str, required: bool = True) -> int | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise RecordError(f"{field}: missing")
        return None
    try:
        return parse_ts_ms(value, field)
    except ValueError as exc:
        raise RecordError(str(exc)) from None


def _ident(rec: dict[str, Any], field: str) -> str:
    value = _required(rec, field)
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{field}: not a non-empty string")
    if len(value) > MAX_ID_LEN:
        raise RecordError(f"{field}: longer than {MAX_ID_LEN} characters")
    return value


def parse_job(rec: dict[str, Any], known_sites: Container[str] | None = None) -> ParsedRecord:
    action = _required(rec, "action")
    if action not in ("submit", "cancel"):
        raise RecordError(f"action: {str(action)[:20]!r} is not submit or cancel")
    job_id = _ident(rec, "job_id")
    submitted = _ts(rec, "submitted_at")
    out = dict(rec, submitted_at_ms=submitted)
    if action == "submit":
        out["compute_hours"] = _number(rec, "compute_hours", 0.0, 1_000_000.0)
        if out["compute_hours"] <= 0:
            raise RecordError("compute_hours: must be positive")
        out["slots"] = _integer(rec, "slots", 1, 1_000_000)
        out["priority"] = _integer(rec, "priority", 0, 9)
        deadline = _ts(rec, "deadline", required=False)
        if deadline is not None and deadline < submitted:  # type: ignore[operator]
            raise RecordError("deadline: before submitted_at")
        out["deadline_ms"] = deadline
        sites = rec.get("sites")
        if sites is not None:
            if not isinstance(sites, list) or not sites or not all(isinstance(s, str) for s in sites):
                raise RecordError("sites: not a non-empty list of site ids")
            if known_sites is not None:
                unknown = sorted({s for s in sites if s not in known_sites})
                if unknown:
                    raise RecordError(f"sites: unknown site {unknown[0]!r}")
            out["sites"] = list(dict.fromkeys(sites))  # order kept: the first is the default home
        home = rec.get("home")
        if home is not None:
            if not isinstance(home, str) or not home:
                raise RecordError("home: not a site id")
            if known_sites is not None and home not in known_sites:
                raise RecordError(f"home: unknown site {home!r}")
    return ParsedRecord(topics.JOBS, job_id, submitted, out)  # type: ignore[arg-type]


def parse_input(topic: str, raw: str | bytes | None, known_sites: Container[str] | None = None) -> ParsedRecord:
    """Parse one record of the ``jobs`` topic (the contract name). Raises RecordError. The site
    topics are parsed on the JVM (flink_jobs/jvm/geodispatch/InputRecords.java)."""
    if topic != topics.JOBS:
        raise RecordError(f"topic: {topic!r} is not parsed in Python (the site topics are parsed on the JVM)")
    if raw is None:
        raise RecordError("payload: empty (tombstone)")
    return parse_job(_obj(raw), known_sites)


def dead_letter(topic: str, partition: int | None, offset: int | None, key: str | None, raw: str | bytes | None,
                error: str, at: str) -> dict[str, Any]:
    """The ``dead-letter`` record of the contract: where the record was, its first 4 KiB and why."""
    if isinstance(raw, bytes):
        raw = raw[:DEAD_LETTER_RAW_BYTES].decode("utf-8", errors="replace")
    text = (raw or "")[:DEAD_LETTER_RAW_BYTES]
    return {"topic": topic, "partition": partition, "offset": offset, "key": key, "raw": text, "error": error,
            "at": at}


def json_text(value: dict[str, Any]) -> str:
    """An output record's JSON value, compact (orjson: ~10x json.dumps, and this runs for every
    site-costs record). A NaN would be written as null: the formulas refuse non-finite inputs, so
    none reaches an output record."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()

