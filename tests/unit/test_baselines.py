"""Baselines: feasible plans, their definitions, scored by the shared objective."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.baselines import (
    evaluate_objective,
    greedy_plan,
    home_site,
    local_only_plan,
    plan_cost,
    price_only_plan,
    round_robin_plan,
)
from udfs.dispatch import solve_dispatch
from udfs.objective import Job, SiteState, plan_violations

T = 1_530_439_200_000


def j(
    jid: str,
    prio: int = 5,
    slots: int = 1,
    sites: tuple[str, ...] | None = None,
    hours: float = 2.0,
) -> Job:
    return Job(jid, hours, slots, prio, None, sites, T)


SITES = [
    SiteState("ams", 0.030, 2, "eu-west", 60.0),
    SiteState("sto", 0.020, 2, "eu-north", 45.0),
    SiteState("tus", 0.025, 2, "us-west", 30.0),
]


def test_greedy_priority_then_cheapest() -> None:
    jobs = [j("c", prio=5), j("a", prio=1), j("b", prio=1), j("d", prio=9)]
    assert greedy_plan(jobs, SITES, T) == {"a": "sto", "b": "sto", "c": "tus", "d": "tus"}


def test_greedy_beneficial_only_skips_unprofitable() -> None:
    assert greedy_plan([j("lazy", prio=9)], SITES, T, beneficial_only=True) == {}
    assert greedy_plan([j("lazy", prio=9)], SITES, T) == {"lazy": "sto"}


def test_round_robin_rotates() -> None:
    jobs = [j(f"j{i}") for i in range(5)]
    plan = round_robin_plan(jobs, SITES, T)
    assert [plan[f"j{i}"] for i in range(5)] == ["ams", "sto", "tus", "ams", "sto"]
    assert round_robin_plan(jobs[:1], SITES, T, start=2) == {"j0": "tus"}


def test_local_only_home_region() -> None:
    assert home_site(j("a", sites=("tus", "ams")), ["ams", "sto"]) == "tus"
    assert home_site(j("a"), ["ams", "sto"]) == home_site(j("a"), ["sto", "ams"])  # stable
    plan = local_only_plan([j("a"), j("b", sites=("tus", "ams"))], SITES, T, home_region="eu-west")
    assert plan == {"a": "ams", "b": "tus"}


def test_price_only_ignores_cooling_and_pays_true_cost() -> None:
    # tus has the lowest price, but its cooling makes sto the cheaper compute-hour
    plan = price_only_plan([j("a")], SITES, T)
    assert plan == {"a": "tus"}
    assert plan_cost(plan, [j("a")], SITES) == pytest.approx(2.0 * 0.025)
    assert plan_cost(greedy_plan([j("a")], SITES, T), [j("a")], SITES) == pytest.approx(2.0 * 0.020)
    with pytest.raises(ValueError, match="price_per_mwh missing"):
        price_only_plan([j("a")], [SiteState("x", 0.01, 1)], T)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 9), st.integers(1, 3), st.sampled_from([None, ("ams",), ("sto", "tus")])
        ),
        max_size=10,
    )
)
def test_all_baselines_feasible_and_milp_at_least_as_good(specs) -> None:
    jobs = [Job(f"j{i}", 3.0, s, p, None, a, T) for i, (p, s, a) in enumerate(specs)]
    best = solve_dispatch(jobs, SITES, T).objective
    for plan in (
        greedy_plan(jobs, SITES, T),
        round_robin_plan(jobs, SITES, T),
        local_only_plan(jobs, SITES, T, home_region="eu-north"),
        price_only_plan(jobs, SITES, T),
    ):
        assert plan_violations(plan, jobs, SITES, T) == []
        assert best <= evaluate_objective(plan, jobs, SITES, T) + 1e-9
