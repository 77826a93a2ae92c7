"""The PyFlink scalar UDF wrappers (eval methods called directly; no cluster needed)."""

from __future__ import annotations

import pytest

pytest.importorskip("pyflink")

from udfs import flink_udfs  # noqa: E402
from udfs.catalogue import DEFAULT_SITES_PATH, load_catalogue  # noqa: E402
from udfs.cooling import pue  # noqa: E402

CAT = load_catalogue(DEFAULT_SITES_PATH)


def test_wrappers_delegate_and_never_raise() -> None:
    f = flink_udfs.SitePue(CAT)
    assert f.eval("ams", 21.5, 63.0) == pytest.approx(pue(21.5, 63.0, CAT["ams"].cooling))
    assert f.eval("nowhere", 21.5, 63.0) is None and f.eval("ams", float("nan"), 50.0) is None
    c = flink_udfs.SiteCostPerComputeHour(CAT)
    p = pue(10.0, 50.0)
    assert c.eval("ams", 50.0, 10.0, 50.0) == pytest.approx(0.05 * 0.4 * p)
    assert c.eval("chi", 50.0, 10.0, 50.0, True) == pytest.approx(0.05 * 0.4 * p * 0.847)
    assert c.eval("ams", None, 10.0, 50.0) is None
    a = flink_udfs.SiteAvailableSlots(CAT)
    assert a.eval("ams", 20.0, 100, True, True) == 300
    assert a.eval("ams", 20.0, 0, True, False) == 0
    assert a.eval("ams", 40.0, 0, True, True, 200) == 100
    assert a.eval("ams", None, 0, True, True) == 0


def test_udf_objects_build() -> None:
    fns = flink_udfs.scalar_udfs(CAT)
    assert set(fns) == {"site_pue", "site_cost_per_compute_hour", "site_available_slots"}
