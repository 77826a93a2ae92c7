"""Baselines: start-now plans on the same problem as the MILP, scored by the shared objective."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from udfs import baselines
from udfs.objective import HOUR_MS, CostCurve, Job, SitePlan, objective_of, plan_problem, usage_violations
from udfs.optimizer import DispatchConfig, solve_problem

T = 1_530_439_200_000


def j(jid: str, prio: int = 5, slots: int = 1, sites: tuple[str, ...] | None = None, hours: float = 2.0,
      home: str | None = None) -> Job:
    return Job(jid, hours, slots, prio, None, sites, T, home)


def s(sid: str, rate: float, avail: int = 2, region: str = "r", price: float | None = None) -> SitePlan:
    return SitePlan(sid, region, avail, avail, CostCurve.flat(T, rate, T + 48 * HOUR_MS), (),
                    price if price is not None else rate * 1000)


SITES = [s("ams", 0.030, 2, "eu-west", 60.0), s("sto", 0.020, 2, "eu-north", 45.0), s("tus", 0.025, 2, "us-west", 30.0)]


def ids(prob, chosen) -> dict[str, str]:
    return {prob.jobs[jn].job_id: prob.sites[o.site].site_id for jn, o in chosen.items()}


def test_greedy_priority_then_cheapest_now() -> None:
    prob = plan_problem([j("a", 5), j("b", 1), j("c", 2), j("d", 9)], SITES, T)
    assert ids(prob, baselines.greedy(prob)) == {"b": "sto", "c": "sto", "a": "tus", "d": "tus"}
    assert all(o.start_ms == T for o in baselines.greedy(prob).values())


def test_round_robin_rotates() -> None:
    prob = plan_problem([j("a"), j("b"), j("c")], SITES, T)
    chosen, ptr = baselines.round_robin(prob, start=1)
    assert ids(prob, chosen) == {"a": "sto", "b": "tus", "c": "ams"} and ptr == 1


def test_local_only_runs_at_the_declared_home() -> None:
    # the allow-list keeps its order: the first entry is the home, not the alphabetically first
    prob = plan_problem([j("a", sites=("tus", "ams")), j("b", home="sto"), j("c")], SITES, T)
    chosen = baselines.local_only(prob, ["ams"])
    assert ids(prob, chosen) == {"a": "tus", "b": "sto", "c": "ams"}


def test_price_only_ignores_cooling_and_pays_true_cost() -> None:
    # tus has the lowest price per MWh, sto the lowest cost per compute-hour
    prob = plan_problem([j("a")], SITES, T)
    chosen = baselines.price_only(prob)
    assert ids(prob, chosen) == {"a": "tus"}
    assert chosen[0].cost == 2.0 * 0.025  # charged at tus's true cost


@st.composite
def specs(draw):
    sites = [s(f"s{i}", draw(st.sampled_from([0.01, 0.02, 0.03])), draw(st.integers(0, 4))) for i in range(3)]
    jobs = [j(f"j{i}", draw(st.integers(0, 9)), draw(st.integers(1, 3)),
              draw(st.sampled_from([None, ("s0",), ("s1", "s2")]))) for i in range(draw(st.integers(1, 6)))]
    return jobs, sites


@settings(max_examples=50, deadline=None)
@given(specs())
def test_all_baselines_feasible_and_milp_at_least_as_good(spec) -> None:
    jobs, sites = spec
    prob = plan_problem(jobs, sites, T)
    cfg = DispatchConfig()
    milp = solve_problem(prob, cfg)
    # never worse than greedy; than the others, within the solver's stated tolerance (udfs.optimizer:
    # gap_eur_rel of the tick's EUR scale; the root-only work limit may stop there)
    tolerance = cfg.gap_eur_rel * sum(max((abs(o.cost + o.delay) for o in opts), default=0.0) for opts in prob.options)
    assert milp.objective <= objective_of(prob, baselines.greedy(prob)) + 1e-9
    for chosen in (baselines.greedy(prob), baselines.round_robin(prob)[0], baselines.local_only(prob, ["s0"]),
                   baselines.price_only(prob)):
        assert usage_violations(prob, chosen) == []
        assert milp.objective <= objective_of(prob, chosen) + tolerance + 1e-9
