"""Offline hindsight optimum."""

from __future__ import annotations

import pytest

from bench.hindsight import hindsight_optimum
from udfs.objective import DEFAULT_TICK_MS, Job, SiteState

T = 1_530_439_200_000
TICK = DEFAULT_TICK_MS


def timeline(costs: list[float], slots: int = 2) -> dict[int, list[SiteState]]:
    return {T + i * TICK: [SiteState("x", c, slots)] for i, c in enumerate(costs)}


def test_waits_for_the_cheapest_tick_in_its_window() -> None:
    jobs = [Job("a", 1.0, 1, 5, T + 2 * TICK, None, T)]
    r = hindsight_optimum(jobs, timeline([0.05, 0.04, 0.01, 0.001]))
    assert r.status == "optimal" and r.placements == {"a": ("x", T + 2 * TICK)}
    assert r.total_cost == pytest.approx(0.01)


def test_capacity_spans_ticks() -> None:
    # each job needs 2 slots for 2 ticks (10 min); the site has 2 slots: they cannot overlap
    long = [Job(n, 2 * 2 * TICK / 3_600_000, 2, 5, None, None, T) for n in ("a", "b")]
    r = hindsight_optimum(long, timeline([0.01, 0.02, 0.03, 0.04]))
    starts = sorted(t for _, t in r.placements.values())
    assert starts[1] - starts[0] >= 2 * TICK
    hours = 2 * 2 * TICK / 3_600_000
    assert r.total_cost == pytest.approx(hours * (0.01 + 0.03))


def test_unplaceable_and_empty() -> None:
    jobs = [Job("big", 1.0, 5, 5, None, None, T), Job("late", 1.0, 1, 5, T - 1, None, T - 10)]
    r = hindsight_optimum(jobs, timeline([0.01]))
    assert r.status == "empty" and r.unplaced == ["big", "late"]


def test_lp_bound_when_too_big_and_integrated_accounting() -> None:
    jobs = [Job(f"j{i}", 1.0, 1, 5, None, None, T) for i in range(6)]
    tl = timeline([0.03, 0.01, 0.02], slots=3)
    exact = hindsight_optimum(jobs, tl)
    lp = hindsight_optimum(jobs, tl, max_milp_vars=1)
    assert lp.status == "lp-lower-bound" and lp.solver.startswith("lp-")
    assert lp.total_cost <= exact.total_cost + 1e-9
    integ = hindsight_optimum(jobs[:1], tl, accounting="integrated")
    # 1 slot x 1 h from the 0.01 tick: 5 min at 0.01, then 55 min at 0.02 (last tick held)
    assert integ.total_cost == pytest.approx(0.01 / 12 + 0.02 * 11 / 12)
    with pytest.raises(ValueError, match="accounting"):
        hindsight_optimum(jobs, tl, accounting="bogus")
