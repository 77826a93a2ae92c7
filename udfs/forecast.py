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

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
    if not offers:
        return []
    books = _Books([offers])
    return list(zip(books.a.tolist(), books.z.tolist(), books.p.tolist(), strict=True))


# Offsets that keep every site's times apart in one sorted array (epoch ms are below 2**42).
_SITE_SPAN = 2**42


class _Books:
    """The known segments of many sites in one sorted array (site i's times offset by i x
    ``_SITE_SPAN``), and what they cover of many intervals at once. Sites with no segment are left
    out: ``live`` lists the others, in order."""

    def __init__(self, offers: Sequence[Sequence[KnownOffer]]) -> None:
        counts = np.fromiter(map(len, offers), np.int64, len(offers))
        flat = np.asarray(list(itertools.chain.from_iterable(offers)), dtype=np.float64).reshape(-1, 3)
        owner = np.repeat(np.arange(len(offers), dtype=np.int64), counts)
        start, end, price = flat[:, 0].astype(np.int64), flat[:, 1].astype(np.int64), flat[:, 2]
        # where each offer is in force (known_segments), every site at once: a later offer of the
        # same site cuts an earlier one
        same_site_next = np.append(owner[1:] == owner[:-1], False)
        stop = np.where(same_site_next, np.minimum(end, np.append(start[1:], 0)), end)
        keep = stop > start
        per_site = np.bincount(owner[keep], minlength=len(offers))
        self.live = np.flatnonzero(per_site)
        n = per_site[self.live]
        self.first = np.concatenate(([0], np.cumsum(n)[:-1]))  # each live site's first segment
        off = np.repeat(np.arange(len(self.live), dtype=np.int64), n) * _SITE_SPAN
        self.a, self.z, self.p = off + start[keep], off + stop[keep], price[keep]

    def cover(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per interval ``[lo, hi)`` (offset times): (ms covered by known segments, integral of
        price over them), added segment by segment in time order, as a loop would."""
        shape = lo.shape
        lo, hi = lo.ravel(), hi.ravel()
        i0 = np.maximum(0, np.searchsorted(self.a, lo, side="right") - 1)
        count = np.maximum(0, np.searchsorted(self.a, hi, side="left") - i0)
        at = np.repeat(np.arange(len(lo)), count)
        seg = i0[at] + np.arange(len(at)) - np.repeat(np.cumsum(count) - count, count)
        overlap = np.minimum(self.z[seg], hi[at]) - np.maximum(self.a[seg], lo[at])
        some = overlap > 0
        at, seg, overlap = at[some], seg[some], overlap[some]
        covered = np.bincount(at, weights=overlap, minlength=len(lo))
        integral = np.bincount(at, weights=self.p[seg] * overlap, minlength=len(lo))
        return covered.reshape(shape), integral.reshape(shape)

    def latest(self, site: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The price of the site's last known segment starting before ``t`` (else its first)."""
        return self.p[np.maximum(self.first[site], np.searchsorted(self.a, t, side="left") - 1)]

    def pieces(self, site: np.ndarray, lo: np.ndarray, hi: np.ndarray, day_ago: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per piece ``[lo, hi)``: (mean price, ms, share known); the unknown part takes the price
        a day earlier, or where that is unknown too the latest known price."""
        covered, integral = self.cover(lo, hi)
        span = (hi - lo).astype(np.float64)
        fill = np.where(np.isnan(day_ago), self.latest(site, hi), day_ago)
        return (integral + fill * (span - covered)) / span, span, covered / span


def price_curve(offers: Sequence[KnownOffer], tick_ms: int, end_ms: int) -> PriceCurve | None:
    """One site's curve (``price_curves`` of one)."""
    return price_curves([offers], tick_ms, end_ms)[0]


def price_curves(offers: Sequence[Sequence[KnownOffer]], tick_ms: int, end_ms: int) -> list[PriceCurve | None]:
    """Per site, the curve on ``[tick_ms, end_ms)`` from the offers known at the tick (sorted by
    valid_from, history from ``tick - HISTORY_MS`` on), or None when nothing is known at all. The
    first segment is the offer in force at the tick, when one is (so it is the price *now*). The
    sites of a tick share its hours, so each hour is one array across them."""
    out: list[PriceCurve | None] = [None] * len(offers)
    if end_ms <= tick_ms or not any(offers):
        return out
    books = _Books(offers)
    live = books.live.tolist()
    n = len(live)
    if not n:
        return out
    site = np.arange(n, dtype=np.int64)
    off = site * _SITE_SPAN
    h0 = tick_ms // HOUR_MS * HOUR_MS
    # each hour's mean price from h0 - 24 h on (known in the past day; from the tick on, as
    # forecast), which the hour a day later falls back on; NaN where nothing is known
    lo = off[:, None] + (h0 - DAY_MS + HOUR_MS * np.arange(24, dtype=np.int64))[None, :]
    covered, integral = books.cover(lo, lo + HOUR_MS)
    with np.errstate(invalid="ignore", divide="ignore"):
        hours = np.where(covered > 0, integral / covered, np.nan)
    # the current hour: the offer in force first, on its own (a site's second piece, if split)
    hi = min(h0 + HOUR_MS, end_ms)
    i = np.searchsorted(books.a, off + tick_ms, side="right") - 1
    j = np.maximum(i, 0)
    split = (i >= books.first) & (books.a[j] <= off + tick_ms) & (off + tick_ms < books.z[j]) & (books.z[j] < off + hi)
    cut = np.where(split, books.z[j], off + hi)
    mean1, span1, share1 = books.pieces(site, off + tick_ms, cut, hours[:, 0])
    s2 = np.flatnonzero(split)
    mean2, span2, share2 = books.pieces(s2, cut[s2], off[s2] + hi, hours[s2, 0])
    total = mean1 * span1
    total[s2] += mean2 * span2
    hours = np.concatenate((hours, (total / (hi - tick_ms))[:, None]), axis=1)
    # then whole hours, a day at a time: each hour reads the one a day before it
    his, means, shares = [], [], []
    start = h0 + HOUR_MS
    while start < end_ms:
        k = min(24, -(-(end_ms - start) // HOUR_MS))
        lo_h = start + HOUR_MS * np.arange(k, dtype=np.int64)
        hi_h = np.minimum(lo_h + HOUR_MS, end_ms)
        b = hours.shape[1]
        mean, span, share = books.pieces(np.repeat(site, k).reshape(n, k), off[:, None] + lo_h[None, :],
                                         off[:, None] + hi_h[None, :], hours[:, b - 24:b - 24 + k])
        hours = np.concatenate((hours, mean * span / (hi_h - lo_h)[None, :]), axis=1)
        his.append(hi_h)
        means.append(mean)
        shares.append(share)
        start += k * HOUR_MS
    later_edges = np.concatenate(his).tolist() if his else []
    later_means = np.concatenate(means, axis=1).tolist() if means else [[] for _ in live]
    later_shares = np.concatenate(shares, axis=1).tolist() if shares else [[] for _ in live]
    where2 = {int(s): q for q, s in enumerate(s2)}
    for s, index in enumerate(live):
        if s in where2:
            q = where2[s]
            first_edges = [tick_ms, int(cut[s] - off[s]), hi]
            first_means = [float(mean1[s]), float(mean2[q])]
            first_shares = [float(share1[s]), float(share2[q])]
        else:
            first_edges, first_means, first_shares = [tick_ms, hi], [float(mean1[s])], [float(share1[s])]
        out[index] = PriceCurve(tuple(first_edges + later_edges), tuple(first_means + later_means[s]),
                                tuple(first_shares + later_shares[s]))
    return out
