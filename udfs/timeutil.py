"""Timestamps of the contract: ISO-8601 UTC with a trailing Z, or epoch milliseconds.

Both conversions are pure, and the same instants come back again and again (every site's
records carry the same hour, every site-cost record of a tick the same tick), so the results
are memoised in small bounded dicts: a hit is one dict lookup instead of a datetime round trip.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_CACHE_MAX = 4096  # entries per cache; a full cache is cleared (timestamps mostly move forward)
_PARSED: dict[str, int] = {}  # ISO text -> epoch ms (successful parses only)
_FORMATTED: dict[int, str] = {}  # epoch ms -> text


def parse_ts_ms(value: object, field: str = "timestamp") -> int:
    """ISO-8601 UTC string (``...Z`` or ``+00:00``) or epoch ms -> epoch ms.

    Raises ValueError naming ``field`` when the value is not a usable timestamp.
    """
    if type(value) is str:
        ms = _PARSED.get(value)  # type: ignore[call-overload]
        if ms is not None:
            return ms
    if isinstance(value, bool):
        raise ValueError(f"{field}: not a timestamp")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{field}: not a finite number")
        return int(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: missing or not a string")
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field}: not an ISO-8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{field}: timestamp without a time zone (use a trailing Z)")
    ms = int(parsed.timestamp() * 1000)
    if type(value) is str:
        if len(_PARSED) >= _CACHE_MAX:
            _PARSED.clear()
        _PARSED[value] = ms
    return ms


def tick_at_or_after(t_ms: int, tick_len_ms: int) -> int:
    """The first tick boundary >= t (an event at exactly a tick belongs to that tick)."""
    return -(-t_ms // tick_len_ms) * tick_len_ms


def format_ts(ms: int) -> str:
    """Epoch ms -> ``YYYY-MM-DDTHH:MM:SSZ`` (milliseconds kept only when non-zero)."""
    if type(ms) is int:
        text = _FORMATTED.get(ms)
        if text is None:
            text = _format_ts(ms)
            if len(_FORMATTED) >= _CACHE_MAX:
                _FORMATTED.clear()
            _FORMATTED[ms] = text
        return text
    return _format_ts(ms)


def _format_ts(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
