"""Price offer validity, offline: which offer of a site is in force at event time t, if any. The
batch reference (bench/site_history.py, tests/reference.py) applies these rules to raw offers; the
job applies them on the JVM (flink_jobs/jvm/geodispatch/SiteTicker.java) and its Python side gets
the winners with their ends resolved (udfs.offers.KnownOffers). The reference checks one against
the other.

Rules (CONTRACT.md "prices"):

* an offer is valid on ``[valid_from, valid_to)``; without ``valid_to`` it is valid for the
  site's offer interval: ``[valid_from, valid_from + interval)``;
* a later offer (by ``valid_from``) supersedes an earlier one from its own ``valid_from`` on —
  *also* when the later one has already expired: the newest offer that started at or before t
  decides, and if it has expired there is no offer in force (an older, longer offer does not
  come back to life);
* duplicates are harmless and arrival order is irrelevant.

Tie-break for two different offers with the same ``valid_from`` (a correction or a clash of
sources), so that the result never depends on arrival order: the later effective
``valid_to`` wins, then the higher price (pessimistic: never under-estimate cost), then the
lexicographically larger ``source``, then currency.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from udfs.offers import KNOWN_AHEAD_MS


@dataclass(frozen=True)
class Offer:
    valid_from_ms: int
    price_per_mwh: float
    valid_to_ms: int | None = None
    currency: str = ""
    source: str = ""
    published_ms: int | None = None  # when the market published it (None: known from valid_from)

    def __post_init__(self) -> None:
        if isinstance(self.valid_from_ms, bool) or not isinstance(self.valid_from_ms, int):
            raise ValueError(f"valid_from: must be epoch ms (int), got {self.valid_from_ms!r}")
        p = self.price_per_mwh
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
            raise ValueError(f"price_per_mwh: must be a finite number, got {p!r}")
        if self.valid_to_ms is not None:
            if isinstance(self.valid_to_ms, bool) or not isinstance(self.valid_to_ms, int):
                raise ValueError(f"valid_to: must be epoch ms (int), got {self.valid_to_ms!r}")
            if self.valid_to_ms <= self.valid_from_ms:
                raise ValueError("valid_to: must be after valid_from")
        if self.published_ms is not None and (isinstance(self.published_ms, bool)
                                              or not isinstance(self.published_ms, int)):
            raise ValueError(f"published_at: must be epoch ms (int), got {self.published_ms!r}")

    @property
    def known_from_ms(self) -> int:
        """From when the offer is known: its publication, else its start."""
        return self.valid_from_ms if self.published_ms is None else self.published_ms

    def end_ms(self, default_interval_ms: int) -> int:
        """Exclusive end of validity."""
        if self.valid_to_ms is not None:
            return self.valid_to_ms
        return self.valid_from_ms + default_interval_ms

    def valid_at(self, t_ms: int, default_interval_ms: int) -> bool:
        return self.valid_from_ms <= t_ms < self.end_ms(default_interval_ms)

    def rank(self, default_interval_ms: int) -> tuple[int, float, str, str]:
        """Tie-break key among offers with the same valid_from: the larger wins."""
        return (self.end_ms(default_interval_ms), self.price_per_mwh, self.source, self.currency)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/pickle-friendly form (for Flink state)."""
        return {
            "valid_from_ms": self.valid_from_ms,
            "price_per_mwh": self.price_per_mwh,
            "valid_to_ms": self.valid_to_ms,
            "currency": self.currency,
            "source": self.source,
            "published_ms": self.published_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Offer:
        return cls(
            valid_from_ms=int(d["valid_from_ms"]),
            price_per_mwh=float(d["price_per_mwh"]),
            valid_to_ms=None if d.get("valid_to_ms") is None else int(d["valid_to_ms"]),
            currency=str(d.get("currency") or ""),
            source=str(d.get("source") or ""),
            published_ms=None if d.get("published_ms") is None else int(d["published_ms"]),
        )


def _check_interval(default_interval_ms: int) -> None:
    if (
        isinstance(default_interval_ms, bool)
        or not isinstance(default_interval_ms, int)
        or default_interval_ms <= 0
    ):
        raise ValueError(
            f"default_interval_ms: must be a positive int, got {default_interval_ms!r}"
        )


def offer_in_force(offers: Iterable[Offer], t_ms: int, default_interval_ms: int) -> Offer | None:
    """The offer in force at ``t_ms`` among ``offers`` (any order, duplicates allowed), or None."""
    _check_interval(default_interval_ms)
    best: Offer | None = None
    for o in offers:
        if o.valid_from_ms > t_ms:
            continue
        if (
            best is None
            or o.valid_from_ms > best.valid_from_ms
            or (
                o.valid_from_ms == best.valid_from_ms
                and o.rank(default_interval_ms) > best.rank(default_interval_ms)
            )
        ):
            best = o
    if best is None or not best.valid_at(t_ms, default_interval_ms):
        return None
    return best


class OfferBook:
    """Incremental offers of one site, small enough to keep in Flink keyed state.

    Keeps one offer per ``valid_from`` (the tie-break winner), sorted. ``in_force`` answers in
    O(log n); ``prune(before_ms)`` drops what can no longer matter for any t >= before_ms
    (call it with the watermark). State round-trips through ``to_state``/``from_state`` as a
    plain list of dicts.
    """

    __slots__ = ("default_interval_ms", "_starts", "_offers")

    def __init__(self, default_interval_ms: int, offers: Iterable[Offer] = ()) -> None:
        _check_interval(default_interval_ms)
        self.default_interval_ms = default_interval_ms
        self._starts: list[int] = []
        self._offers: list[Offer] = []
        for o in offers:
            self.add(o)

    def __len__(self) -> int:
        return len(self._offers)

    def __iter__(self):  # noqa: ANN204 - plain iterator
        return iter(self._offers)

    def add(self, offer: Offer) -> bool:
        """Insert; returns False when the offer changed nothing (duplicate or tie-loser)."""
        i = bisect.bisect_left(self._starts, offer.valid_from_ms)
        if i < len(self._starts) and self._starts[i] == offer.valid_from_ms:
            cur = self._offers[i]
            if offer.rank(self.default_interval_ms) > cur.rank(self.default_interval_ms):
                self._offers[i] = offer
                return True
            return False
        self._starts.insert(i, offer.valid_from_ms)
        self._offers.insert(i, offer)
        return True

    def in_force(self, t_ms: int) -> Offer | None:
        i = bisect.bisect_right(self._starts, t_ms) - 1
        if i < 0:
            return None
        o = self._offers[i]
        return o if o.valid_at(t_ms, self.default_interval_ms) else None

    def prune(self, before_ms: int) -> int:
        """Drop offers superseded before ``before_ms``; returns how many were dropped.

        The newest offer starting at or before ``before_ms`` is kept even when expired: it still
        supersedes any older offer that might arrive late.
        """
        i = bisect.bisect_right(self._starts, before_ms) - 1
        if i <= 0:
            return 0
        del self._starts[:i]
        del self._offers[:i]
        return i

    def known(self, t_ms: int, since_ms: int) -> tuple[tuple[int, int, float], ...]:
        """(valid_from, end, price) of the offers known at ``t_ms`` (published by then) that can
        matter from ``since_ms`` on, sorted: the input of udfs.forecast.price_curve."""
        i = max(0, bisect.bisect_right(self._starts, since_ms) - 1)
        k = bisect.bisect_left(self._starts, t_ms + KNOWN_AHEAD_MS)
        iv = self.default_interval_ms
        return tuple((o.valid_from_ms, o.end_ms(iv), o.price_per_mwh) for o in self._offers[i:k]
                     if (o.valid_from_ms if o.published_ms is None else o.published_ms) <= t_ms)
