"""A site's known price offers as the dispatcher keeps them for the plan ahead.

The offer rules (validity, supersede, tie-break) are applied on the JVM, once
(flink_jobs/jvm/geodispatch/SiteTicker.java): a site tick carries the offers that changed since the
site's last tick, each the winner for its ``valid_from`` with its end resolved. This book only keeps
them, a day back, and hands the ones known at a tick to the forecast (udfs.forecast.price_curve).
"""

from __future__ import annotations

import bisect

KNOWN_AHEAD_MS = 8 * 24 * 3_600_000  # offers starting further ahead are not handed to the planner


class KnownOffers:
    """One site's offers by ``valid_from``: (end, price per MWh, published_at or None), sorted."""

    __slots__ = ("_starts", "_offers")

    def __init__(self, offers=()) -> None:
        self._starts: list[int] = []
        self._offers: list[tuple[int, float, int | None]] = []
        for valid_from, end, price, published in offers:
            self.put(valid_from, end, price, published)

    def __len__(self) -> int:
        return len(self._starts)

    def put(self, valid_from: int, end: int, price: float, published: int | None) -> None:
        """Insert, or replace the offer with the same ``valid_from`` (the JVM sent the new winner)."""
        i = bisect.bisect_left(self._starts, valid_from)
        if i < len(self._starts) and self._starts[i] == valid_from:
            self._offers[i] = (end, price, published)
        else:
            self._starts.insert(i, valid_from)
            self._offers.insert(i, (end, price, published))

    def prune(self, before_ms: int) -> list[int]:
        """Drop the offers superseded before ``before_ms`` (the newest starting at or before it
        stays); returns the ``valid_from`` of those dropped."""
        i = bisect.bisect_right(self._starts, before_ms) - 1
        if i <= 0:
            return []
        dropped = self._starts[:i]
        del self._starts[:i]
        del self._offers[:i]
        return dropped

    def known(self, t_ms: int, since_ms: int) -> tuple[tuple[int, int, float], ...]:
        """(valid_from, end, price) of the offers known at ``t_ms`` (published by then) that can
        matter from ``since_ms`` on, sorted: the input of udfs.forecast.price_curve."""
        i = max(0, bisect.bisect_right(self._starts, since_ms) - 1)
        k = bisect.bisect_left(self._starts, t_ms + KNOWN_AHEAD_MS)
        return tuple((start, end, price)
                     for start, (end, price, published) in zip(self._starts[i:k], self._offers[i:k], strict=True)
                     if (start if published is None else published) <= t_ms)

    def to_state(self) -> list[tuple[int, int, float, int | None]]:
        return [(start, *offer) for start, offer in zip(self._starts, self._offers, strict=True)]
