"""Timestamps of the contract: ISO-8601 UTC with a trailing Z, or epoch milliseconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def parse_ts_ms(value: object, field: str = "timestamp") -> int:
    """ISO-8601 UTC string (``...Z`` or ``+00:00``) or epoch ms -> epoch ms.

    Raises ValueError naming ``field`` when the value is not a usable timestamp.
    """
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
    return int(parsed.timestamp() * 1000)


def format_ts(ms: int) -> str:
    """Epoch ms -> ``YYYY-MM-DDTHH:MM:SSZ`` (milliseconds kept only when non-zero)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
