"""Thin PyFlink scalar UDF wrappers around the domain core — the ONLY module importing pyflink.

Register them in the Table API, e.g.::

    from udfs import flink_udfs
    for name, fn in flink_udfs.scalar_udfs(catalogue).items():
        t_env.create_temporary_function(name, fn)
    # SELECT site_pue(site_id, temp_c, rel_humidity), site_cost_per_compute_hour(...), ...

The catalogue is loaded on the client when the wrappers are built (``load_catalogue()`` honours
``GRD_SITES``) and shipped to the Python workers pickled with the function, so workers need no
file. Every UDF returns NULL instead of raising on bad input (unknown site, NaN, out of range):
a malformed record must never fail the job — validation and dead-lettering happen upstream.

The dispatch operator does not go through a UDF: it calls the plain function
:func:`udfs.dispatch.solve_dispatch` from its ``KeyedProcessFunction``/``ProcessFunction``.
"""

from __future__ import annotations

from pyflink.table import DataTypes
from pyflink.table.udf import ScalarFunction, UserDefinedScalarFunctionWrapper, udf

from udfs.catalogue import Catalogue, load_catalogue
from udfs.cooling import pue
from udfs.cost import available_slots, cost_per_compute_hour, thermal_derating


class _SiteFunction(ScalarFunction):
    def __init__(self, catalogue: Catalogue | None = None) -> None:
        self.catalogue = catalogue if catalogue is not None else load_catalogue()


class SitePue(_SiteFunction):
    """site_pue(site_id STRING, temp_c DOUBLE, rel_humidity DOUBLE) -> DOUBLE"""

    def eval(self, site_id, temp_c, rel_humidity):  # noqa: ANN001, ANN201 - Flink calls it
        site = self.catalogue.get(site_id) if site_id is not None else None
        if site is None or temp_c is None or rel_humidity is None:
            return None
        try:
            return pue(float(temp_c), float(rel_humidity), site.cooling)
        except (TypeError, ValueError):
            return None


class SiteCostPerComputeHour(_SiteFunction):
    """site_cost_per_compute_hour(site_id, price_per_mwh, temp_c, rel_humidity, to_eur BOOLEAN)
    -> DOUBLE: price/1000 x it_kw_per_slot x PUE + fixed, in the site currency, or in EUR when
    ``to_eur`` is true (x fx_to_eur)."""

    def eval(self, site_id, price_per_mwh, temp_c, rel_humidity, to_eur=False):  # noqa: ANN001, ANN201
        site = self.catalogue.get(site_id) if site_id is not None else None
        if site is None or price_per_mwh is None or temp_c is None or rel_humidity is None:
            return None
        try:
            p = pue(float(temp_c), float(rel_humidity), site.cooling)
            c = cost_per_compute_hour(
                float(price_per_mwh), site.it_kw_per_slot, p, site.fixed_cost_per_slot_hour
            )
        except (TypeError, ValueError):
            return None
        return c * site.fx_to_eur if to_eur else c


class SiteAvailableSlots(_SiteFunction):
    """site_available_slots(site_id, temp_c, committed_slots INT, online BOOLEAN,
    has_offer BOOLEAN, capacity_slots INT) -> INT. ``capacity_slots`` NULL means the catalogue's;
    ``temp_c`` NULL means no derating is known (no weather: 0 slots, like no offer)."""

    def eval(self, site_id, temp_c, committed_slots, online, has_offer, capacity_slots=None):  # noqa: ANN001, ANN201
        site = self.catalogue.get(site_id) if site_id is not None else None
        if site is None:
            return None
        try:
            cap = site.capacity_slots if capacity_slots is None else int(capacity_slots)
            if temp_c is None:
                return 0
            d = thermal_derating(float(temp_c), site.thermal)
            return available_slots(
                cap, d, int(committed_slots or 0), online=bool(online), has_offer=bool(has_offer)
            )
        except (TypeError, ValueError):
            return None


def site_pue_udf(catalogue: Catalogue | None = None) -> UserDefinedScalarFunctionWrapper:
    return udf(
        SitePue(catalogue), result_type=DataTypes.DOUBLE(), deterministic=True, name="site_pue"
    )


def site_cost_udf(catalogue: Catalogue | None = None) -> UserDefinedScalarFunctionWrapper:
    return udf(
        SiteCostPerComputeHour(catalogue),
        result_type=DataTypes.DOUBLE(),
        deterministic=True,
        name="site_cost_per_compute_hour",
    )


def site_available_slots_udf(
    catalogue: Catalogue | None = None,
) -> UserDefinedScalarFunctionWrapper:
    return udf(
        SiteAvailableSlots(catalogue),
        result_type=DataTypes.INT(),
        deterministic=True,
        name="site_available_slots",
    )


def scalar_udfs(catalogue: Catalogue | None = None) -> dict[str, UserDefinedScalarFunctionWrapper]:
    """All scalar UDFs by their SQL name, sharing one catalogue."""
    cat = catalogue if catalogue is not None else load_catalogue()
    return {
        "site_pue": site_pue_udf(cat),
        "site_cost_per_compute_hour": site_cost_udf(cat),
        "site_available_slots": site_available_slots_udf(cat),
    }
