"""Cost per compute-hour, thermal derating and available capacity of a site.

Formulas (../shared/DESIGN.md "The domain model"):

* cost of one compute-hour (one slot busy for one hour)
  = price (currency/MWh) / 1000 x it_kw_per_slot x PUE(T, RH) + fixed cost per slot-hour;
* thermal derating(T) = 1 below ``derate_start_c``, linear down to ``derate_floor`` at
  ``derate_max_c``, ``derate_floor`` above;
* available slots = floor(derating x capacity) - committed slots, at least 0; 0 when the site
  is offline or has no valid price offer.

Electricity prices may be negative (day-ahead markets clear below zero when wind and solar
flood the grid; the 2018 SMARD data has such hours), so a negative price is accepted and gives
a negative energy cost. Every other input must be finite and non-negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from udfs.catalogue import CoolingParams, Site, ThermalLimits
from udfs.cooling import cooling_load_kw, finite_number, pue_of, stacked

DEFAULT_THERMAL = ThermalLimits()


def _non_negative(name: str, value: float) -> float:
    v = finite_number(name, value)
    if v < 0:
        raise ValueError(f"{name}: must be >= 0, got {value!r}")
    return v


def compute_hour_cost(price_per_mwh, it_kw_per_slot, pue_value, fixed_cost_per_slot_hour=0.0):
    """price/1000 x it_kw_per_slot x PUE + fixed, in the price's currency per slot-hour; numpy,
    elementwise."""
    return price_per_mwh / 1000.0 * it_kw_per_slot * pue_value + fixed_cost_per_slot_hour


def cost_per_compute_hour(
    price_per_mwh: float,
    it_kw_per_slot: float,
    pue_value: float,
    fixed_cost_per_slot_hour: float = 0.0,
) -> float:
    """compute_hour_cost of one site, its inputs checked."""
    price = finite_number("price_per_mwh", price_per_mwh)
    kw = _non_negative("it_kw_per_slot", it_kw_per_slot)
    pv = finite_number("pue", pue_value)
    if pv < 1.0:
        raise ValueError(f"pue: must be >= 1, got {pue_value!r}")
    fixed = _non_negative("fixed_cost_per_slot_hour", fixed_cost_per_slot_hour)
    return float(compute_hour_cost(price, kw, pv, fixed))


def thermal_derating(temp_c, limits: ThermalLimits = DEFAULT_THERMAL):
    """Fraction of the capacity usable at outdoor temperature ``temp_c`` (in [floor, 1]); numpy,
    elementwise over a tick's sites (``limits`` of arrays, udfs.cooling.stacked) or one number."""
    if not np.isfinite(temp_c).all():
        raise ValueError(f"temp_c: must be a finite number, got {temp_c!r}")
    share = np.clip((temp_c - limits.derate_start_c) / (limits.derate_max_c - limits.derate_start_c), 0.0, 1.0)
    return 1.0 - share * (1.0 - limits.derate_floor)


def free_slots(capacity_slots, derating, committed_slots, usable):
    """floor(derating x capacity) - committed, at least 0; 0 where not ``usable`` (offline, or
    without an offer or weather); numpy, elementwise."""
    # The epsilon keeps 0.7 * 400 = 279.99999... from losing a slot to float rounding.
    derated = np.floor(derating * capacity_slots + 1e-9).astype(np.int64)
    return np.where(usable, np.maximum(0, derated - committed_slots), 0)


def available_slots(
    capacity_slots: int,
    derating: float,
    committed_slots: int = 0,
    *,
    online: bool = True,
    has_offer: bool = True,
) -> int:
    """free_slots of one site, its inputs checked."""
    if (
        isinstance(capacity_slots, bool)
        or not isinstance(capacity_slots, int)
        or capacity_slots < 0
    ):
        raise ValueError(f"capacity_slots: must be a non-negative integer, got {capacity_slots!r}")
    if (
        isinstance(committed_slots, bool)
        or not isinstance(committed_slots, int)
        or committed_slots < 0
    ):
        raise ValueError(
            f"committed_slots: must be a non-negative integer, got {committed_slots!r}"
        )
    d = finite_number("derating", derating)
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"derating: must be in [0, 1], got {derating!r}")
    return int(free_slots(capacity_slots, d, committed_slots, online and has_offer))


@dataclass(frozen=True)
class SiteCost:
    """Everything the ``site-costs`` record needs for one site at one tick."""

    site_id: str
    pue: float | None
    cooling_kw: float | None
    cost_per_compute_hour: float | None  # site currency per slot-hour
    cost_per_compute_hour_eur: float | None  # x fx_to_eur: what dispatch compares
    capacity_slots: int
    derating: float
    available_slots: int
    available: bool  # online with a valid offer and weather (it may still be full)
    reason: str  # "" if slots are free, else offline / no-offer / no-weather / derated / full


class SiteParams:
    """The catalogue's constants of some sites as arrays (one element per site), built once."""

    def __init__(self, sites: list[Site]):
        self.site_ids = [s.site_id for s in sites]
        self.it_kw_per_slot = np.array([s.it_kw_per_slot for s in sites], dtype=float)
        self.fixed = np.array([s.fixed_cost_per_slot_hour for s in sites], dtype=float)
        self.fx_to_eur = np.array([s.fx_to_eur for s in sites], dtype=float)
        self.capacity_slots = np.array([s.capacity_slots for s in sites], dtype=np.int64)
        self.cooling = stacked([s.cooling for s in sites], CoolingParams)
        self.thermal = stacked([s.thermal for s in sites], ThermalLimits)

    def take(self, rows) -> SiteParams:
        """The same constants of the sites at ``rows`` (indices or a mask)."""
        out = object.__new__(SiteParams)
        out.site_ids = [self.site_ids[i] for i in np.arange(len(self.site_ids))[rows]]
        for name in ("it_kw_per_slot", "fixed", "fx_to_eur", "capacity_slots"):
            setattr(out, name, getattr(self, name)[rows])
        out.cooling, out.thermal = _take(self.cooling, rows), _take(self.thermal, rows)
        return out


@dataclass(frozen=True)
class SiteCosts:
    """A tick's sites at once: SiteCost's fields as arrays (NaN where SiteCost has None), one
    element per site of the SiteParams they were computed for."""

    site_ids: list[str]
    pue: np.ndarray
    cooling_kw: np.ndarray
    cost_per_compute_hour: np.ndarray
    cost_per_compute_hour_eur: np.ndarray
    capacity_slots: np.ndarray
    derating: np.ndarray
    available_slots: np.ndarray
    available: np.ndarray
    reason: np.ndarray

    def at(self, i: int) -> SiteCost:
        return SiteCost(site_id=self.site_ids[i], pue=_value(self.pue[i]), cooling_kw=_value(self.cooling_kw[i]),
                        cost_per_compute_hour=_value(self.cost_per_compute_hour[i]),
                        cost_per_compute_hour_eur=_value(self.cost_per_compute_hour_eur[i]),
                        capacity_slots=int(self.capacity_slots[i]), derating=float(self.derating[i]),
                        available_slots=int(self.available_slots[i]), available=bool(self.available[i]),
                        reason=str(self.reason[i]))


def site_costs(
    params: SiteParams,
    *,
    price_per_mwh: np.ndarray,
    temp_c: np.ndarray,
    rel_humidity: np.ndarray,
    committed_slots: np.ndarray,
    online: np.ndarray,
    capacity_slots: np.ndarray,
) -> SiteCosts:
    """The sites of ``params`` at one tick, at once: the offer in force (``price_per_mwh`` NaN
    where expired), the latest weather (NaN where none), the slots committed to running jobs,
    online, and the capacity (-1 where site-status gave none: the catalogue's). Without weather
    a site cannot price cooling: it is unavailable, like without an offer. ``cooling_kw`` is the
    cooling load of the committed (running) IT load."""
    price = np.asarray(price_per_mwh, dtype=float)
    temp = np.asarray(temp_c, dtype=float)
    rh = np.asarray(rel_humidity, dtype=float)
    committed = np.asarray(committed_slots, dtype=np.int64)
    online = np.asarray(online, dtype=bool)
    if np.isinf(price).any():
        raise ValueError("price_per_mwh: must be a finite number")
    if (committed < 0).any():
        raise ValueError(f"committed_slots: must be >= 0, got {int(committed.min())}")
    cap = np.where(np.asarray(capacity_slots) < 0, params.capacity_slots, capacity_slots).astype(np.int64)
    has_offer = ~np.isnan(price)
    has_weather = ~np.isnan(temp) & ~np.isnan(rh)
    has_temp = ~np.isnan(temp)
    pue = np.full(len(price), np.nan)
    pue[has_weather] = pue_of(temp[has_weather], rh[has_weather], _take(params.cooling, has_weather))
    if not has_temp.all():
        _check_finite_where("temp_c", temp, has_temp)
    derating = np.ones(len(price))
    derating[has_temp] = thermal_derating(temp[has_temp], _take(params.thermal, has_temp))
    cost = compute_hour_cost(price, params.it_kw_per_slot, pue, params.fixed)
    slots = free_slots(cap, derating, committed, online & has_offer & has_weather)
    cooling = cooling_load_kw(committed * params.it_kw_per_slot, pue, params.cooling.fixed_overhead)
    reason = np.select([~online, ~has_offer, ~has_weather, (slots == 0) & (derating > 0), slots == 0],
                       ["offline", "no-offer", "no-weather", "full", "derated"], "")
    return SiteCosts(params.site_ids, pue, cooling, cost, cost * params.fx_to_eur, cap, derating, slots,
                     online & ~np.isnan(cost), reason)


def _take(params, mask: np.ndarray):
    """A CoolingParams/ThermalLimits of arrays cut to the sites where ``mask`` holds."""
    return type(params)(**{f: getattr(params, f)[mask] for f in type(params).__dataclass_fields__})


def _check_finite_where(name: str, values: np.ndarray, present: np.ndarray) -> None:
    if not np.isfinite(values[present]).all():
        raise ValueError(f"{name}: must be a finite number")


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def site_cost(
    site: Site,
    *,
    price_per_mwh: float | None,
    temp_c: float | None,
    rel_humidity: float | None,
    committed_slots: int = 0,
    online: bool = True,
    capacity_slots: int | None = None,
) -> SiteCost:
    """One site at one tick (site_costs with arrays of one); None where there is no offer, no
    weather or no site-status capacity. ``capacity_slots`` overrides the catalogue."""
    for name, value in (("price_per_mwh", price_per_mwh), ("temp_c", temp_c), ("rel_humidity", rel_humidity)):
        if value is not None:
            finite_number(name, value)
    for name, value in (("capacity_slots", capacity_slots), ("committed_slots", committed_slots)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
    return site_costs(
        SiteParams([site]),
        price_per_mwh=[math.nan if price_per_mwh is None else price_per_mwh],
        temp_c=[math.nan if temp_c is None else temp_c],
        rel_humidity=[math.nan if rel_humidity is None else rel_humidity],
        committed_slots=[committed_slots], online=[online],
        capacity_slots=[-1 if capacity_slots is None else capacity_slots]).at(0)
