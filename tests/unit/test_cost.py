"""Cost per compute-hour, thermal derating and available slots."""

from __future__ import annotations

import math

import pytest

from udfs.catalogue import DEFAULT_SITES_PATH, ThermalLimits, load_catalogue
from udfs.cost import available_slots, cost_per_compute_hour, site_cost, thermal_derating


def test_cost_by_hand() -> None:
    # 54.2 EUR/MWh, 0.4 kW, PUE 1.2 -> 0.0542 * 0.4 * 1.2 = 0.026016 EUR per slot-hour
    assert cost_per_compute_hour(54.2, 0.4, 1.2) == pytest.approx(0.026016)
    assert cost_per_compute_hour(54.2, 0.4, 1.2, 0.01) == pytest.approx(0.036016)
    assert cost_per_compute_hour(-10.0, 0.5, 1.1) == pytest.approx(-0.0055)  # negative prices exist


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((math.nan, 0.4, 1.2), "price_per_mwh"),
        ((50, -0.4, 1.2), "it_kw_per_slot"),
        ((50, 0.4, 0.9), "pue"),
        ((50, 0.4, math.nan), "pue"),
        ((50, 0.4, 1.2, -1), "fixed_cost_per_slot_hour"),
        ((math.inf, 0.4, 1.2), "price"),
    ],
)
def test_cost_rejects_bad_input(args: tuple, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        cost_per_compute_hour(*args)


def test_derating_by_hand() -> None:
    lim = ThermalLimits(derate_start_c=35, derate_max_c=45, derate_floor=0.0)
    assert thermal_derating(20, lim) == 1.0
    assert thermal_derating(35, lim) == 1.0
    assert thermal_derating(40, lim) == pytest.approx(0.5)
    assert thermal_derating(45, lim) == 0.0
    assert thermal_derating(50, lim) == 0.0
    floor = ThermalLimits(derate_start_c=40, derate_max_c=50, derate_floor=0.25)
    assert thermal_derating(45, floor) == pytest.approx(0.625)
    assert thermal_derating(60, floor) == 0.25
    with pytest.raises(ValueError, match="temp_c"):
        thermal_derating(math.nan, lim)


def test_derating_continuous_and_non_increasing() -> None:
    lim = ThermalLimits()
    prev = 1.0
    for i in range(0, 600):
        d = thermal_derating(i / 10, lim)
        assert d <= prev + 1e-12 and abs(d - prev) <= 0.011
        prev = d


def test_available_slots() -> None:
    assert available_slots(400, 1.0, 0) == 400
    assert available_slots(400, 0.7, 0) == 280  # float 0.7*400 = 279.99999999999997
    assert available_slots(400, 0.5, 150) == 50
    assert available_slots(400, 0.5, 250) == 0  # never negative
    assert available_slots(400, 1.0, 0, online=False) == 0
    assert available_slots(400, 1.0, 0, has_offer=False) == 0
    for bad in ((-1, 1.0, 0), (400, 1.5, 0), (400, math.nan, 0), (400, 1.0, -3), (400.0, 1.0, 0)):
        with pytest.raises(ValueError):
            available_slots(*bad)  # type: ignore[arg-type]


def test_site_cost_record() -> None:
    cat = load_catalogue(DEFAULT_SITES_PATH)
    r = site_cost(
        cat["ams"], price_per_mwh=54.2, temp_c=21.5, rel_humidity=63.0, committed_slots=188
    )
    assert r.available and r.available_slots == 212 and r.reason == ""
    assert 1.15 < r.pue < 1.25
    assert r.cost_per_compute_hour == pytest.approx(54.2 / 1000 * 0.4 * r.pue)
    assert r.cooling_kw == pytest.approx(188 * 0.4 * (r.pue - 1.03))
    expired = site_cost(cat["ams"], price_per_mwh=None, temp_c=21.5, rel_humidity=63.0)
    assert not expired.available and expired.available_slots == 0 and expired.reason == "no-offer"
    off = site_cost(cat["ams"], price_per_mwh=50, temp_c=10, rel_humidity=50, online=False)
    assert off.available_slots == 0 and off.reason == "offline"
    usd = site_cost(cat["chi"], price_per_mwh=30, temp_c=10, rel_humidity=50)
    assert usd.cost_per_compute_hour_eur == pytest.approx(usd.cost_per_compute_hour * 0.847)
    hot = site_cost(cat["tus"], price_per_mwh=30, temp_c=55, rel_humidity=5)
    assert hot.available_slots == 50  # derated to the 25 % floor
