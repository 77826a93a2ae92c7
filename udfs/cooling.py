"""Cooling model: PUE as a function of outdoor dry-bulb temperature and relative humidity.

PUE (power usage effectiveness) = facility power / IT power. We model

    PUE(T, RH) = 1 + fixed_overhead + cooling_fraction(T_eff, RH)

* ``fixed_overhead``: UPS and distribution losses, lighting (a few percent of IT power).
* Free cooling (outside air / water-side economizer) up to ``free_cooling_max_c``: the
  cooling fraction rises linearly from ``free_fraction_min`` at ``free_cooling_min_c`` to
  ``free_fraction_max`` (fans work harder as the air gets warmer). With the defaults PUE goes
  from 1.05 at -4 degC to 1.17 at 18 degC: the step tables used in geo-distributed scheduling
  studies of outside-air cooled data centres (partial PUE 1.05 below -4 degC ... 1.17 near
  18 degC ... about 1.30 at 35 degC; e.g. Xu, Feng & Li, "Temperature aware workload
  management in geo-distributed datacenters", SIGMETRICS 2013 / IEEE TPDS 2015), turned into
  a continuous line.
* Mechanical cooling above that: cooling power = IT power / COP(T) plus auxiliaries (pumps,
  cooling towers, air handlers). The chiller COP is a fraction ``eta`` of the Carnot COP
  between the supply temperature and the condenser temperature (outdoor + approach):

      COP(T) = eta * T_supply / (T_out + approach - T_supply)    (kelvin)

  clipped to ``[cop_min, cop_max]``. eta ~0.3-0.5 is typical of real vapour-compression
  chillers (textbook second-law efficiency; ASHRAE Handbook - HVAC Systems and Equipment).
  Supply 18 degC follows the ASHRAE TC9.9 recommended inlet envelope (18-27 degC, "Thermal
  Guidelines for Data Processing Environments", 2011+).
* The two regimes are blended linearly over ``blend_width_c`` (partial economizer: part of
  the heat still leaves through outside air), and the chiller branch is never taken below the
  free-cooling ceiling, so the curve is continuous and non-decreasing in T at fixed RH.
* Humidity: above ``humidity_ref_rh`` the effective temperature is shifted up (moist air
  carries more enthalpy, so economizer hours end earlier — ASHRAE TC9.9 bounds the dew point,
  not only dry-bulb), and a dehumidification load is added in proportion to the share of
  mechanical cooling (the chiller coil condenses the moisture).

Sanity ranges the defaults reproduce: ~1.05-1.2 in cool weather; ~1.3-1.6 hot and humid
(industry average PUE ~1.58, Uptime Institute Global Data Center Survey 2022-2023; best
hyperscale fleets ~1.10, Google data centre efficiency reports).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from udfs.catalogue import CoolingParams

KELVIN = 273.15
DEFAULT_COOLING = CoolingParams()

# Weather older than this at a tick is too stale to price cooling with (TMY data is hourly): the
# site counts as having no weather then (and is not available).
MAX_WEATHER_AGE_MS = 3 * 3_600_000


def _weather_limits() -> dict[str, float]:
    """udfs/weather_limits.properties: the plausible temperature range and the default humidity,
    the one table the JVM's validator (InputRecords.java) reads too."""
    text = (Path(__file__).with_name("weather_limits.properties")).read_text()
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name.strip(): float(value) for name, value in pairs}


_LIMITS = _weather_limits()
MIN_TEMP_C, MAX_TEMP_C = _LIMITS["min_temp_c"], _LIMITS["max_temp_c"]
DEFAULT_REL_HUMIDITY = _LIMITS["default_rel_humidity"]  # of weather without rel_humidity


def finite_number(name: str, value: float) -> float:
    """``value`` as a float; ValueError naming ``name`` if it is not a finite number (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return float(value)


# The formulas below are written once, in numpy: each takes a tick's arrays (one element per site,
# the parameters a CoolingParams of floats or of arrays, see stacked()) or plain numbers (a single
# site is an array of one), elementwise.


def stacked(params: list, cls: type = CoolingParams):
    """One ``cls`` (CoolingParams, ThermalLimits) whose fields are arrays over the given sites'
    parameters, for the formulas to take a tick's sites at once."""
    return cls(**{f: np.array([getattr(p, f) for p in params], dtype=float) for f in cls.__dataclass_fields__})


def effective_temp_c(temp_c, rel_humidity, p: CoolingParams = DEFAULT_COOLING):
    """Dry-bulb shifted up for humidity above ``humidity_ref_rh`` (never shifted down)."""
    return temp_c + p.humidity_shift_c_per_rh * np.maximum(0.0, rel_humidity - p.humidity_ref_rh)


def chiller_cop(temp_c, p: CoolingParams = DEFAULT_COOLING):
    """Carnot-fraction COP at outdoor temperature ``temp_c``, clipped to [cop_min, cop_max]."""
    t_supply = p.supply_c + KELVIN
    lift = (temp_c + p.approach_c + KELVIN) - t_supply
    # a condenser colder than the supply (lift <= 0): the clip takes over
    carnot = p.chiller_eta * t_supply / np.where(lift > 0, lift, 1.0)
    return np.where(lift > 0, np.clip(carnot, p.cop_min, p.cop_max), p.cop_max)


def free_cooling_fraction(temp_c, p: CoolingParams = DEFAULT_COOLING):
    """Cooling kW per IT kW with outside air: flat below the floor, linear up to the ceiling."""
    share = np.clip((temp_c - p.free_cooling_min_c) / (p.free_cooling_max_c - p.free_cooling_min_c), 0.0, 1.0)
    return p.free_fraction_min + share * (p.free_fraction_max - p.free_fraction_min)


def mechanical_share(temp_c, p: CoolingParams = DEFAULT_COOLING):
    """Share of the heat removed by chillers: 0 below the free-cooling ceiling, 1 above the
    blend band, linear in between (so the PUE curve has no jump)."""
    return np.clip((temp_c - p.free_cooling_max_c) / p.blend_width_c, 0.0, 1.0)


def cooling_fraction(temp_c, rel_humidity, p: CoolingParams = DEFAULT_COOLING):
    """Cooling power per IT power (PUE - 1 - fixed_overhead)."""
    t = effective_temp_c(temp_c, rel_humidity, p)
    m = mechanical_share(t, p)
    free = free_cooling_fraction(t, p)
    # maximum(): a chiller never beats the free-cooling ceiling, which keeps the blend monotone.
    chiller = np.maximum(1.0 / chiller_cop(t, p) + p.chiller_aux_fraction, p.free_fraction_max)
    humid = np.maximum(0.0, rel_humidity - p.humidity_ref_rh) / np.maximum(1e-9, 100.0 - p.humidity_ref_rh)
    dehumid = p.dehumidification_fraction * humid * m
    return (1.0 - m) * free + m * chiller + dehumid


def pue_of(temp_c, rel_humidity, p: CoolingParams = DEFAULT_COOLING):
    """PUE(T, RH) >= 1 of a tick's sites at once. ``temp_c`` in degC, ``rel_humidity`` in percent
    [0, 100]. Raises ValueError on NaN/inf, on RH outside [0, 100] and on temperatures outside
    [MIN_TEMP_C, MAX_TEMP_C] (no weather station reports those; it is a unit or parsing error)."""
    t = np.asarray(temp_c, dtype=float)
    rh = np.asarray(rel_humidity, dtype=float)
    _check_all("temp_c", t, MIN_TEMP_C, MAX_TEMP_C, "degC is outside the plausible range "
               f"[{MIN_TEMP_C:g}, {MAX_TEMP_C:g}]")
    _check_all("rel_humidity", rh, 0.0, 100.0, "is outside [0, 100] percent")
    return 1.0 + p.fixed_overhead + cooling_fraction(t, rh, p)


def _check_all(name: str, values: np.ndarray, low: float, high: float, outside: str) -> None:
    """ValueError naming the first value that is not finite or lies outside [low, high]."""
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        v = float(values[bad].flat[0])
        if not math.isfinite(v):
            raise ValueError(f"{name}: must be a finite number, got {v!r}")
        raise ValueError(f"{name}: {v} {outside}")


def pue(temp_c: float, rel_humidity: float, params: CoolingParams = DEFAULT_COOLING) -> float:
    """PUE of one site (pue_of with arrays of one)."""
    t = finite_number("temp_c", temp_c)
    rh = finite_number("rel_humidity", rel_humidity)
    return float(pue_of(t, rh, params))


def cooling_load_kw(it_kw, pue_value, overhead=DEFAULT_COOLING.fixed_overhead):
    """Cooling load (kW) = IT load x (PUE - 1 - other overhead), never negative; numpy, elementwise."""
    return it_kw * np.maximum(0.0, pue_value - 1.0 - overhead)


def cooling_kw(
    it_kw: float, pue_value: float, overhead: float = DEFAULT_COOLING.fixed_overhead
) -> float:
    """cooling_load_kw of one site, its inputs checked."""
    it = finite_number("it_kw", it_kw)
    pv = finite_number("pue", pue_value)
    ov = finite_number("overhead", overhead)
    if it < 0:
        raise ValueError(f"it_kw: must be >= 0, got {it}")
    if pv < 1:
        raise ValueError(f"pue: must be >= 1, got {pv}")
    if ov < 0:
        raise ValueError(f"overhead: must be >= 0, got {ov}")
    return float(cooling_load_kw(it, pv, ov))
