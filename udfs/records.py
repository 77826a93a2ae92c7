"""Parsing and validation of the input records of ../shared/CONTRACT.md.

``parse_input(topic, raw, known_sites)`` returns a :class:`ParsedRecord` or raises
:class:`RecordError` whose message becomes the dead letter's ``error`` ("field: why").
Plain Python: the Flink job, the dashboard form and the sources all use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from udfs import topics
from udfs.timeutil import parse_ts_ms

MAX_PAYLOAD_BYTES = 64 * 1024  # larger values are refused before parsing (an oversized payload is an attack or a bug)
DEAD_LETTER_RAW_BYTES = 4096  # the contract keeps the first 4 KiB of a bad record
MAX_ID_LEN = 128
TEMP_RANGE_C = (-90.0, 70.0)  # beyond the records ever observed on Earth: a sensor or unit error
MAX_PRICE_PER_MWH = 100_000.0  # far above any market cap (EPEX SPOT's is 4,000 EUR/MWh)
# Prices below zero are real (day-ahead markets clear negative when wind and solar flood the grid;
# EPEX SPOT's floor is -500 EUR/MWh); this bound only catches unit errors.
MIN_PRICE_PER_MWH = -100_000.0
# Weather without rel_humidity: a mid value, where the cooling model adds no humidity penalty
# (udfs.cooling's humidity_ref_rh is 60 %), so a missing reading never makes a site look dearer.
DEFAULT_REL_HUMIDITY = 50.0


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


def _site(rec: dict[str, Any], known_sites: Container[str] | None) -> str:
    site_id = _ident(rec, "site_id")
    if known_sites is not None and site_id not in known_sites:
        raise RecordError(f"site_id: unknown site {site_id!r}")
    return site_id


def _optional_text(rec: dict[str, Any], field: str) -> None:
    value = rec.get(field)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"{field}: not a string")


def parse_price(rec: dict[str, Any], known_sites: Container[str] | None = None) -> ParsedRecord:
    site_id = _site(rec, known_sites)
    price = _number(rec, "price_per_mwh", MIN_PRICE_PER_MWH, MAX_PRICE_PER_MWH)
    valid_from = _ts(rec, "valid_from")
    valid_to = _ts(rec, "valid_to", required=False)
    if valid_to is not None and valid_to <= valid_from:  # type: ignore[operator]
        raise RecordError("valid_to: not after valid_from")
    # published_at: when the market published it (a day-ahead offer, a day early); the event time
    published = _ts(rec, "published_at", required=False)
    if published is not None and published > valid_from:  # type: ignore[operator]
        raise RecordError("published_at: after valid_from")
    _optional_text(rec, "currency")
    _optional_text(rec, "source")
    out = dict(rec, price_per_mwh=price, valid_from_ms=valid_from, valid_to_ms=valid_to, published_at_ms=published)
    event = valid_from if published is None else published
    return ParsedRecord(topics.PRICES, site_id, event, out)  # type: ignore[arg-type]


def parse_weather(rec: dict[str, Any], known_sites: Container[str] | None = None) -> ParsedRecord:
    site_id = _site(rec, known_sites)
    observed = _ts(rec, "observed_at")
    temp = _number(rec, "temp_c", *TEMP_RANGE_C)
    rh = _number(rec, "rel_humidity", 0.0, 100.0, required=False)
    out = dict(rec, temp_c=temp, rel_humidity=DEFAULT_REL_HUMIDITY if rh is None else rh, observed_at_ms=observed)
    return ParsedRecord(topics.WEATHER, site_id, observed, out)  # type: ignore[arg-type]


def parse_status(rec: dict[str, Any], known_sites: Container[str] | None = None) -> ParsedRecord:
    site_id = _site(rec, known_sites)
    at = _ts(rec, "at")
    online = _required(rec, "online")
    if not isinstance(online, bool):
        raise RecordError("online: not true or false")
    capacity = _integer(rec, "capacity_slots", 0, 10_000_000, required=False)
    out = dict(rec, online=online, capacity_slots=capacity, at_ms=at)
    return ParsedRecord(topics.SITE_STATUS, site_id, at, out)  # type: ignore[arg-type]


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


PARSERS = {
    topics.PRICES: parse_price,
    topics.WEATHER: parse_weather,
    topics.SITE_STATUS: parse_status,
    topics.JOBS: parse_job,
}


def parse_input(topic: str, raw: str | bytes | None, known_sites: Container[str] | None = None) -> ParsedRecord:
    """Parse one input record of ``topic`` (the contract name). Raises RecordError."""
    parser = PARSERS.get(topic)
    if parser is None:
        raise RecordError(f"topic: {topic!r} is not an input topic")
    if raw is None:
        raise RecordError("payload: empty (tombstone)")
    return parser(_obj(raw), known_sites)


def dead_letter(topic: str, partition: int | None, offset: int | None, key: str | None, raw: str | bytes | None,
                error: str, at: str) -> dict[str, Any]:
    """The ``dead-letter`` record of the contract: where the record was, its first 4 KiB and why."""
    if isinstance(raw, bytes):
        raw = raw[:DEAD_LETTER_RAW_BYTES].decode("utf-8", errors="replace")
    text = (raw or "")[:DEAD_LETTER_RAW_BYTES]
    return {"topic": topic, "partition": partition, "offset": offset, "key": key, "raw": text, "error": error,
            "at": at}
