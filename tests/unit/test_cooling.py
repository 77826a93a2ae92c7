"""Cooling / PUE model: hand-computed points, continuity, monotonicity, ranges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.catalogue import CoolingParams
from udfs.cooling import DEFAULT_REL_HUMIDITY, MAX_TEMP_C, MIN_TEMP_C, chiller_cop, cooling_kw, pue

P = CoolingParams()


def test_free_cooling_points() -> None:
    assert pue(-10, 50) == pytest.approx(1.05)
    assert pue(-4, 50) == pytest.approx(1.05)
    assert pue(7, 50) == pytest.approx(1.03 + 0.02 + 0.5 * 0.12)  # halfway -4..18 -> 1.11
    assert pue(18, 50) == pytest.approx(1.17)


def test_chiller_point_by_hand() -> None:
    # T=35, RH=50 (no humidity effect): COP = 0.35 * 291.15 / (35 + 5 - 18) = 4.632
    cop = 0.35 * 291.15 / 22
    assert chiller_cop(35) == pytest.approx(cop)
    assert pue(35, 50) == pytest.approx(1 + 0.03 + 1 / cop + 0.05)  # ~1.296
    # blend band: 21 degC is half free (0.14), half chiller (COP clipped at 10 -> 0.15)
    assert pue(21, 50) == pytest.approx(1.03 + 0.5 * 0.14 + 0.5 * 0.15)


def test_humidity_by_hand() -> None:
    # RH 80: T_eff = 30 + 0.1 * 20 = 32; dehumidification 0.08 * 20/40 at full chiller share
    cop = 0.35 * 291.15 / (32 + 5 - 18)
    assert pue(30, 80) == pytest.approx(1.03 + 1 / cop + 0.05 + 0.04)


def test_ranges_with_defaults() -> None:
    for t in range(-20, 19):
        for rh in (20, 50, 80):
            assert 1.04 <= pue(t, rh) <= 1.21
    for t, rh in ((32, 75), (35, 70), (38, 85), (42, 60), (45, 90)):
        assert 1.3 <= pue(t, rh) <= 1.6


def test_continuity_at_regime_boundaries() -> None:
    for edge in (
        P.free_cooling_min_c,
        P.free_cooling_max_c,
        P.free_cooling_max_c + P.blend_width_c,
    ):
        for rh in (30, 60, 95):
            lo, hi = pue(edge - 1e-7, rh), pue(edge + 1e-7, rh)
            assert abs(hi - lo) < 1e-5
    # the chiller's COP clip boundaries are continuous too
    for t in [x / 10 for x in range(-100, 600)]:
        assert abs(pue(t + 0.01, 50) - pue(t, 50)) < 0.01


@settings(max_examples=200, deadline=None)
@given(st.floats(-40, 60), st.floats(-40, 60), st.floats(0, 100))
def test_non_decreasing_in_temperature(t1: float, t2: float, rh: float) -> None:
    lo, hi = sorted((t1, t2))
    assert pue(lo, rh) <= pue(hi, rh) + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.floats(-40, 60), st.floats(0, 100), st.floats(0, 100))
def test_non_decreasing_in_humidity(t: float, rh1: float, rh2: float) -> None:
    lo, hi = sorted((rh1, rh2))
    assert pue(t, lo) <= pue(t, hi) + 1e-12


@pytest.mark.parametrize(
    "bad", [(math.nan, 50), (20, math.nan), (math.inf, 50), (20, -1), (20, 101), (120, 50)]
)
def test_bad_inputs_rejected(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        pue(*bad)


def test_the_weather_limits_come_from_the_one_table_the_jvm_reads_too() -> None:
    # udfs/weather_limits.properties; InputRecords.java loads the same file from the operators jar
    # (SiteTickerTest's bad-record case dead-letters a temperature outside it)
    from pathlib import Path

    import udfs

    table = dict(line.split("=", 1) for line in (Path(udfs.__file__).with_name("weather_limits.properties"))
                 .read_text().splitlines() if line and not line.startswith("#"))
    assert (MIN_TEMP_C, MAX_TEMP_C, DEFAULT_REL_HUMIDITY) == (
        float(table["min_temp_c"]), float(table["max_temp_c"]), float(table["default_rel_humidity"]))
    assert pue(MIN_TEMP_C, 50) >= 1 and pue(MAX_TEMP_C, 50) >= 1
    for outside in (MIN_TEMP_C - 0.1, MAX_TEMP_C + 0.1):
        with pytest.raises(ValueError, match="plausible range"):
            pue(outside, 50)
    # the default is below the humidity reference, so a missing reading adds no humidity penalty
    assert DEFAULT_REL_HUMIDITY <= P.humidity_ref_rh and pue(20, DEFAULT_REL_HUMIDITY) == pue(20, 0)


def test_cooling_kw() -> None:
    assert cooling_kw(100, 1.2, 0.03) == pytest.approx(17.0)
    assert cooling_kw(100, 1.02, 0.03) == 0.0  # never negative
    with pytest.raises(ValueError, match="it_kw"):
        cooling_kw(-1, 1.2)
    with pytest.raises(ValueError, match="pue"):
        cooling_kw(1, 0.9)
