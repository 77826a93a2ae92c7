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

from udfs.catalogue import Site, ThermalLimits
from udfs.cooling import cooling_kw, finite_number, pue

DEFAULT_THERMAL = ThermalLimits()


def _non_negative(name: str, value: float) -> float:
    v = finite_number(name, value)
    if v < 0:
        raise ValueError(f"{name}: must be >= 0, got {value!r}")
    return v


def cost_per_compute_hour(
    price_per_mwh: float,
    it_kw_per_slot: float,
    pue_value: float,
    fixed_cost_per_slot_hour: float = 0.0,
) -> float:
    """price/1000 x it_kw_per_slot x PUE + fixed, in the price's currency per slot-hour."""
    price = finite_number("price_per_mwh", price_per_mwh)
    kw = _non_negative("it_kw_per_slot", it_kw_per_slot)
    pv = finite_number("pue", pue_value)
    if pv < 1.0:
        raise ValueError(f"pue: must be >= 1, got {pue_value!r}")
    fixed = _non_negative("fixed_cost_per_slot_hour", fixed_cost_per_slot_hour)
    return price / 1000.0 * kw * pv + fixed


def unavailable_reason(online: bool, has_offer: bool, has_weather: bool, slots: int, derating: float) -> str:
    """Why a site has no free slot ("" when it has some): the first of offline, no offer, no
    weather, full or thermally derated to nothing."""
    if not online:
        return "offline"
    if not has_offer:
        return "no-offer"
    if not has_weather:
        return "no-weather"
    if slots == 0:
        return "full" if derating > 0 else "derated"
    return ""


def thermal_derating(temp_c: float, limits: ThermalLimits = DEFAULT_THERMAL) -> float:
    """Fraction of the capacity usable at outdoor temperature ``temp_c`` (in [floor, 1])."""
    t = finite_number("temp_c", temp_c)
    if t <= limits.derate_start_c:
        return 1.0
    if t >= limits.derate_max_c:
        return limits.derate_floor
    share = (t - limits.derate_start_c) / (limits.derate_max_c - limits.derate_start_c)
    return 1.0 - share * (1.0 - limits.derate_floor)


def available_slots(
    capacity_slots: int,
    derating: float,
    committed_slots: int = 0,
    *,
    online: bool = True,
    has_offer: bool = True,
) -> int:
    """floor(derating x capacity) - committed, at least 0; 0 if offline or without an offer."""
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
    if not online or not has_offer:
        return 0
    # The epsilon keeps 0.7 * 400 = 279.99999... from losing a slot to float rounding.
    return max(0, math.floor(d * capacity_slots + 1e-9) - committed_slots)


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
    """One site at one tick, from the offer in force (``price_per_mwh`` None when expired),
    the latest weather (None when never observed) and the slots committed to running jobs.

    ``capacity_slots`` overrides the catalogue (from ``site-status`` telemetry).
    ``cooling_kw`` is the cooling load of the committed (running) IT load.
    """
    cap = site.capacity_slots if capacity_slots is None else capacity_slots
    has_weather = temp_c is not None and rel_humidity is not None
    p = pue(temp_c, rel_humidity, site.cooling) if has_weather else None  # type: ignore[arg-type]
    derating = thermal_derating(temp_c, site.thermal) if temp_c is not None else 1.0
    cost = None
    if p is not None and price_per_mwh is not None:
        cost = cost_per_compute_hour(
            price_per_mwh, site.it_kw_per_slot, p, site.fixed_cost_per_slot_hour
        )
    has_offer = price_per_mwh is not None
    # Without weather we cannot price cooling: treat the site as unavailable, like no offer.
    slots = available_slots(
        cap, derating, committed_slots, online=online, has_offer=has_offer and has_weather
    )
    reason = unavailable_reason(online, has_offer, has_weather, slots, derating)
    ckw = (
        cooling_kw(committed_slots * site.it_kw_per_slot, p, site.cooling.fixed_overhead)
        if p
        else None
    )
    return SiteCost(
        site_id=site.site_id,
        pue=p,
        cooling_kw=ckw,
        cost_per_compute_hour=cost,
        cost_per_compute_hour_eur=None if cost is None else cost * site.fx_to_eur,
        capacity_slots=cap,
        derating=derating,
        available_slots=slots,
        available=online and cost is not None,
        reason=reason,
    )
