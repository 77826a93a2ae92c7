"""What a site's electricity will cost from now on: the offers already known, a forecast beyond.

Day-ahead markets publish tomorrow's hourly prices around 12:45 CET the day before (the EU's
single day-ahead coupling), so at any moment 11-35 h of a European site's prices are *known*.
Beyond them, and for real-time markets known only while in force (the US sites), the price is
*forecast*:

* **same hour one day earlier** ("day-ago persistence"): the forecast of hour h is the price of
  hour h - 24 h, itself known or forecast (so a curve longer than a day repeats the last day);
* an hour whose day-ago hour is not known either (the first day of a stream) takes the latest
  known price (plain persistence).

Its error on the sample is measured in docs/BENCHMARKS.md ("Forecast"). The weather forecast is
persistence: the PUE of the latest observation holds for the whole run (udfs.dispatcher).

A curve is a sequence of segments: ``[tick, next hour)``, then whole hours, each with its
time-weighted mean price and the share of it covered by known offers. Offers follow the
in-force rule of udfs.offers: the newest ``valid_from`` at or before t decides, and an expired
newest offer leaves t unknown.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# How far back the offer book keeps offers: the day-ago forecast of the current hour's bucket
# reads the bucket that started 24 h before the current hour began.
HISTORY_MS = DAY_MS + HOUR_MS

KnownOffer = tuple[int, int, float]  # (valid_from ms, exclusive end ms, price per MWh)


@dataclass(frozen=True)
class PriceCurve:
    edges: tuple[int, ...]  # segment boundaries: edges[0] = the tick, then hour boundaries
    prices: tuple[float, ...]  # per segment: time-weighted mean price (currency/MWh)
    known: tuple[float, ...]  # per segment: share of its duration covered by known offers (0..1)


def known_segments(offers: Sequence[KnownOffer]) -> list[KnownOffer]:
    """Where each offer is in force: ``offers`` sorted by valid_from, one per valid_from; offer i
    holds on ``[valid_from_i, min(end_i, valid_from_{i+1}))`` (a later offer supersedes it)."""
    out = []
    for i, (start, end, price) in enumerate(offers):
        stop = min(end, offers[i + 1][0]) if i + 1 < len(offers) else end
        if stop > start:
            out.append((start, stop, price))
    return out


def _integrate(segs: Sequence[KnownOffer], starts: Sequence[int], lo: int, hi: int) -> tuple[int, float]:
    """(ms covered by known segments, integral of price over them) on ``[lo, hi)``."""
    covered, integral = 0, 0.0
    i = max(0, bisect.bisect_right(starts, lo) - 1)
    while i < len(segs) and segs[i][0] < hi:
        a, z, p = segs[i]
        overlap = min(z, hi) - max(a, lo)
        if overlap > 0:
            covered += overlap
            integral += p * overlap
        i += 1
    return covered, integral


def _latest_known(segs: Sequence[KnownOffer], starts: Sequence[int], t: int) -> float:
    """The price of the last known segment starting before ``t`` (else the first one)."""
    i = bisect.bisect_left(starts, t) - 1
    return segs[max(0, i)][2]


def price_curve(offers: Sequence[KnownOffer], tick_ms: int, end_ms: int) -> PriceCurve | None:
    """The curve on ``[tick_ms, end_ms)`` from the offers known at the tick (sorted by valid_from,
    history from ``tick - HISTORY_MS`` on), or None when nothing is known at all. The first
    segment is the offer in force at the tick, when one is (so it is the price *now*)."""
    segs = known_segments(offers)
    if not segs or end_ms <= tick_ms:
        return None
    starts = [sg[0] for sg in segs]
    h0 = tick_ms // HOUR_MS * HOUR_MS
    first = h0 - DAY_MS
    values: list[float | None] = []  # per hour bucket from `first`: mean price, for the day-ago rule
    edges = [tick_ms]
    prices: list[float] = []
    known: list[float] = []
    b = 0
    while True:
        b_start = first + b * HOUR_MS
        b_end = b_start + HOUR_MS
        if b_end <= tick_ms:  # history: the whole hour, as it was known
            covered, integral = _integrate(segs, starts, b_start, b_end)
            values.append(integral / covered if covered else None)
            b += 1
            continue
        lo, hi = max(b_start, tick_ms), min(b_end, end_ms)
        pieces = [(lo, hi)]
        if lo == tick_ms:  # the current hour: the offer in force first, on its own
            i = bisect.bisect_right(starts, tick_ms) - 1
            if i >= 0 and segs[i][0] <= tick_ms < segs[i][1] < hi:
                pieces = [(lo, segs[i][1]), (segs[i][1], hi)]
        day_ago = values[b - 24] if b >= 24 else None
        total = 0.0
        for plo, phi in pieces:
            covered, integral = _integrate(segs, starts, plo, phi)
            span = phi - plo
            fill = day_ago if day_ago is not None else _latest_known(segs, starts, phi)
            mean = (integral + fill * (span - covered)) / span
            total += mean * span
            prices.append(mean)
            known.append(covered / span)
            edges.append(phi)
        values.append(total / (hi - lo))
        if hi >= end_ms:
            break
        b += 1
    return PriceCurve(tuple(edges), tuple(prices), tuple(known))
