"""udfs.forecast: known offers first, same hour one day earlier beyond them."""

from __future__ import annotations

import pytest

from udfs.forecast import HOUR_MS as H
from udfs.forecast import known_segments, price_curve, price_curves


def hourly(first_h: int, prices: list[float]) -> list[tuple[int, int, float]]:
    return [((first_h + i) * H, (first_h + i + 1) * H, p) for i, p in enumerate(prices)]


def test_known_hours_are_used_and_the_rest_repeats_the_day_before() -> None:
    # known: hours 0..35 priced by their hour of day; the tick is 30:05
    offers = hourly(0, [float(h % 24) for h in range(36)])
    c = price_curve(offers, 30 * H + 5 * 60_000, 60 * H)
    assert c.edges[:3] == (30 * H + 5 * 60_000, 31 * H, 32 * H)
    assert c.prices[:6] == (6.0, 7.0, 8.0, 9.0, 10.0, 11.0) and set(c.known[:6]) == {1.0}
    # hour 36 is not known: the day-ago hour (12) is, so 12.0; hour 59 -> hour 35 -> 11.0
    assert c.prices[6] == 12.0 and c.known[6] == 0.0
    assert c.prices[-1] == 11.0


def test_the_offer_in_force_is_its_own_first_segment() -> None:
    five = 300_000
    offers = [(i * five, (i + 1) * five, float(i % 12)) for i in range(24 * 12 * 2)]
    tick = 48 * H - 2 * five
    c = price_curve(offers, tick, tick + 3 * H)
    assert c.edges[:3] == (tick, tick + five, 48 * H)
    assert c.prices[:2] == (10.0, 11.0) and c.known[:2] == (1.0, 1.0)
    # beyond: the 5-minute prices of the same hour a day earlier, averaged (0..11 -> 5.5)
    assert c.prices[2] == pytest.approx(5.5) and c.known[2] == 0.0


def test_without_history_the_latest_known_price_persists() -> None:
    c = price_curve(hourly(100, [40.0, 42.0]), 100 * H, 104 * H)
    assert c.prices == (40.0, 42.0, 42.0, 42.0) and c.known == (1.0, 1.0, 0.0, 0.0)


def test_a_later_offer_supersedes_an_earlier_one_and_an_expired_newest_leaves_a_gap() -> None:
    segs = known_segments([(0, 3 * H, 10.0), (H, 2 * H, 20.0)])
    assert segs == [(0, H, 10.0), (H, 2 * H, 20.0)]  # the older, longer offer does not come back
    assert price_curve([], 0, H) is None


def test_sites_priced_together_get_the_curves_they_get_alone() -> None:
    # one array across sites must not let one site's offers leak into another's hours
    five = 300_000
    sites = [
        hourly(0, [float(h % 24) for h in range(36)]),
        [],  # nothing known: None
        [(i * five, (i + 1) * five, float(i % 12)) for i in range(24 * 12 * 2)],  # in force now, split
        hourly(29, [40.0, 42.0]),  # no history: the latest known price persists
        [(0, H, 5.0)],  # only long-expired offers: the latest known price persists
    ]
    tick = 30 * H + 5 * five
    together = price_curves(sites, tick, tick + 50 * H)
    assert together == [price_curve(s, tick, tick + 50 * H) for s in sites]
    assert together[1] is None and together[2].edges[1] == tick + five  # type: ignore[union-attr]
