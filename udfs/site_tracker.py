"""Event-time state of one site: offers, weather and status history, de-duplication.

udfs.tick_engine keeps one :class:`SiteTracker` per ``site_id`` and asks it, at each tick, for the
site's inputs at that instant: the offer in force, the offers known by then (published, kept
from a day back for the forecast: udfs.forecast), the latest weather and status. Everything is
indexed by event time, so the answer does not depend on arrival order: records that arrive
behind the watermark are counted as late.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from udfs import topics
from udfs.forecast import HISTORY_MS
from udfs.offers import Offer, OfferBook
from udfs.records import ParsedRecord

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
LATE = "late"

_INF = float("inf")

# Weather older than this at a tick is too stale to price cooling with (TMY data is hourly).
DEFAULT_MAX_WEATHER_AGE_MS = 3 * 3_600_000


def tick_at_or_after(t_ms: int, tick_len_ms: int) -> int:
    """The first tick boundary >= t (an event at exactly a tick belongs to that tick)."""
    return -(-t_ms // tick_len_ms) * tick_len_ms


def fingerprint(parsed: ParsedRecord) -> str:
    """Same key, event time and content -> same fingerprint (the duplicate rule)."""
    body = json.dumps(parsed.record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(f"{parsed.topic}|{parsed.key}|{parsed.event_ms}|{body}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class SiteInputs:
    """What the site looked like at one tick, before any cost is computed."""

    site_id: str
    tick_ms: int
    price_per_mwh: float | None  # None: no valid offer (expired or never seen)
    offer_valid_to_ms: int | None
    currency: str
    temp_c: float | None
    rel_humidity: float | None
    online: bool
    capacity_slots: int | None  # from site-status; None: the catalogue's value
    # (valid_from, end, price) of the offers known at the tick, from a day back: udfs.forecast's input
    offers: tuple[tuple[int, int, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiteInputs:
        return cls(**d)


class SiteTracker:
    def __init__(self, site_id: str, offer_interval_ms: int, max_weather_age_ms: int = DEFAULT_MAX_WEATHER_AGE_MS):
        self.site_id = site_id
        self.offers = OfferBook(offer_interval_ms)
        self.max_weather_age_ms = max_weather_age_ms
        self.weather: list[tuple[int, float, float]] = []  # (observed_ms, temp_c, rh), sorted
        self.status: list[tuple[int, bool, int | None]] = []  # (at_ms, online, capacity), sorted
        self.seen: dict[str, int] = {}  # fingerprint -> event ms, for de-duplication

    # ------------------------------------------------------------------ events
    def add(self, parsed: ParsedRecord, watermark_ms: int) -> str:
        """Apply one validated record; returns ACCEPTED, DUPLICATE or LATE."""
        outcome = self.classify(parsed, watermark_ms)
        if outcome == ACCEPTED:
            self.apply(parsed)
        return outcome

    def classify(self, parsed: ParsedRecord, watermark_ms: int, fp: str | None = None) -> str:
        """ACCEPTED, DUPLICATE (of a record already applied) or LATE, without applying it."""
        if (fp or fingerprint(parsed)) in self.seen:
            return DUPLICATE
        if self._is_late(parsed, watermark_ms):
            return LATE
        return ACCEPTED

    def apply(self, parsed: ParsedRecord, fp: str | None = None) -> None:
        """Apply a record :meth:`classify` accepted. Only records at or before a tick change the
        site's inputs at that tick, so records may be applied in any order, as late as that tick."""
        rec = parsed.record
        # remembered until it can no longer arrive on time: an offer until it is in force
        relevant_ms = rec["valid_from_ms"] if parsed.topic == topics.PRICES else parsed.event_ms
        self.seen[fp or fingerprint(parsed)] = relevant_ms
        if parsed.topic == topics.PRICES:
            self.offers.add(Offer(valid_from_ms=rec["valid_from_ms"], price_per_mwh=rec["price_per_mwh"],
                                  valid_to_ms=rec.get("valid_to_ms"), currency=rec.get("currency") or "",
                                  source=rec.get("source") or "", published_ms=rec.get("published_at_ms")))
        elif parsed.topic == topics.WEATHER:
            _insort(self.weather, (parsed.event_ms, rec["temp_c"], rec["rel_humidity"]))
        elif parsed.topic == topics.SITE_STATUS:
            _insort(self.status, (parsed.event_ms, rec["online"], rec.get("capacity_slots")))

    def _is_late(self, parsed: ParsedRecord, watermark_ms: int) -> bool:
        if parsed.topic == topics.PRICES:
            # An offer is useless (and dropped) once event time has passed the end of its validity.
            end = parsed.record.get("valid_to_ms") or parsed.event_ms + self.offers.default_interval_ms
            return end <= watermark_ms
        return parsed.event_ms <= watermark_ms

    # ------------------------------------------------------------------ ticks
    def inputs_at(self, tick_ms: int) -> SiteInputs:
        offers = self.offers
        offer = offers.in_force(tick_ms)
        weather = self.weather
        i = bisect.bisect_right(weather, (tick_ms, _INF, _INF)) - 1
        w = weather[i] if i >= 0 else None
        if w is not None and tick_ms - w[0] > self.max_weather_age_ms:
            w = None
        status = self.status
        i = bisect.bisect_right(status, (tick_ms, _INF, _INF)) - 1
        if offer is not None:
            price, valid_to, currency = offer.price_per_mwh, offer.end_ms(offers.default_interval_ms), offer.currency
        else:
            price, valid_to, currency = None, None, ""
        if w:
            temp, rh = w[1], w[2]
        else:
            temp = rh = None
        if i >= 0:
            s = status[i]
            online, capacity = s[1], s[2]
        else:
            online, capacity = True, None
        return SiteInputs(self.site_id, tick_ms, price, valid_to, currency, temp, rh, online, capacity,
                          offers.known(tick_ms, tick_ms - HISTORY_MS))

    def keeps_ticking_after(self, tick_ms: int) -> bool:
        """Whether the tick after ``tick_ms`` is worth emitting: an offer is in force at ``tick_ms``.

        Only what happened at or before the tick decides (a streaming operator knows nothing
        later), so once the offers stop the site emits one tick that says "unavailable" and
        stops; its next event starts it again. A finished replay therefore does not tick forever.
        """
        return self.offers.in_force(tick_ms) is not None

    def prune(self, watermark_ms: int) -> None:
        """Forget what can no longer change an answer at or after the watermark."""
        self.offers.prune(watermark_ms - HISTORY_MS)  # a day back stays for the forecast
        self.weather = _keep_from_latest(self.weather, watermark_ms)
        self.status = _keep_from_latest(self.status, watermark_ms)
        # a re-delivered copy older than the watermark is late anyway: no need to remember it
        # (rebuilt only when something is old enough to go: most ticks drop nothing)
        seen = self.seen
        cutoff = watermark_ms - self.offers.default_interval_ms
        if seen and min(seen.values()) <= cutoff:
            self.seen = {fp: t for fp, t in seen.items() if t > cutoff}

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {"site_id": self.site_id, "interval": self.offers.default_interval_ms,
                "max_weather_age_ms": self.max_weather_age_ms, "offers": self.offers.to_state(),
                "weather": self.weather, "status": self.status, "seen": self.seen}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SiteTracker:
        tracker = cls(state["site_id"], state["interval"], state["max_weather_age_ms"])
        tracker.offers = OfferBook.from_state(state["offers"], state["interval"])
        tracker.weather = [tuple(w) for w in state["weather"]]  # type: ignore[misc]
        tracker.status = [tuple(s) for s in state["status"]]  # type: ignore[misc]
        tracker.seen = dict(state["seen"])
        return tracker


def _insort(items: list, item: tuple) -> None:
    i = bisect.bisect_left(items, item[:1])
    # one observation per instant: the later-arriving duplicate time with other content replaces
    # it deterministically by taking the larger tuple
    if i < len(items) and items[i][0] == item[0]:
        items[i] = max(items[i], item, key=lambda t: tuple(-1 if v is None else v for v in t))
    else:
        items.insert(i, item)


def _latest_at(items: list, t_ms: int):
    i = bisect.bisect_right(items, (t_ms, _INF, _INF)) - 1
    return items[i] if i >= 0 else None


def _keep_from_latest(items: list, t_ms: int) -> list:
    if len(items) < 2:  # nothing before the latest to drop
        return items
    i = bisect.bisect_right(items, (t_ms, _INF, _INF)) - 1
    return items[i:] if i > 0 else items
