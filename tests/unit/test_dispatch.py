"""Dispatch MILP: hand cases, edge cases and hypothesis properties."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.baselines import greedy_plan
from udfs.dispatch import (
    DispatchConfig,
    build_model,
    candidates,
    decision_id,
    decision_records,
    rejection_reason,
    solve_dispatch,
)
from udfs.objective import (
    DEFAULT_TICK_MS,
    Job,
    SiteState,
    evaluate_objective,
    job_value,
    plan_violations,
    tick_problem,
)

T = 1_530_439_200_000  # 2018-07-01T10:00:00Z
H = 3_600_000
MILP = DispatchConfig(use_presolve=False)


def site(sid: str, cost: float, slots: int, region: str = "r") -> SiteState:
    return SiteState(sid, cost, slots, region, price_per_mwh=cost * 1000)


def job(
    jid: str,
    hours: float = 4.0,
    slots: int = 1,
    prio: int = 0,
    deadline: int | None = None,
    sites: tuple[str, ...] | None = None,
) -> Job:
    return Job(jid, hours, slots, prio, deadline, sites, T - 60_000)


def test_cheapest_site_when_capacity_allows() -> None:
    r = solve_dispatch([job("a"), job("b")], [site("x", 0.03, 10), site("y", 0.02, 10)], T)
    assert r.assignments == {"a": "y", "b": "y"}
    assert r.status == "optimal" and r.missed == []
    r2 = solve_dispatch(
        [job("a"), job("b")], [site("x", 0.03, 10), site("y", 0.02, 10)], T, config=MILP
    )
    assert r2.assignments == r.assignments and r2.solver in ("milp-highs", "milp-cbc")
    assert r2.objective == pytest.approx(r.objective)


def test_scarce_capacity_goes_to_urgent_job() -> None:
    urgent = job("z-urgent", prio=0, deadline=T + 2 * 60_000)  # must start now
    relaxed = job("a-relaxed", prio=0)
    r = solve_dispatch([relaxed, urgent], [site("x", 0.01, 1)], T, config=MILP)
    assert r.assignments == {"z-urgent": "x"} and r.missed == []


def test_deferrable_job_waits_for_cheaper_tick() -> None:
    # priority 9 is worth 0.02 EUR per compute-hour: at 0.05 it waits, at 0.01 it runs
    lazy = job("lazy", prio=9)
    assert solve_dispatch([lazy], [site("x", 0.05, 10)], T).assignments == {}
    assert solve_dispatch([lazy], [site("x", 0.01, 10)], T).assignments == {"lazy": "x"}
    # ... unless its deadline is imminent: then it runs at any price
    due = job("due", prio=9, deadline=T + 60_000)
    assert solve_dispatch([due], [site("x", 5.0, 10)], T).assignments == {"due": "x"}


def test_missed_deadlines() -> None:
    past = job("past", deadline=T - 1)
    last = job("last", slots=5, deadline=T + 60_000)  # no site big enough
    later = job("later", slots=5, deadline=T + DEFAULT_TICK_MS)  # exactly next tick: still a chance
    r = solve_dispatch([past, last, later], [site("x", 0.01, 2)], T)
    assert r.missed == ["last", "past"]
    assert r.assignments == {}


def test_allow_list_respected() -> None:
    r = solve_dispatch([job("a", sites=("x",))], [site("x", 0.05, 5), site("y", 0.001, 5)], T)
    assert r.assignments == {"a": "x"}


def test_edge_cases() -> None:
    empty = solve_dispatch([], [site("x", 0.01, 5)], T)
    assert empty.status == "empty" and empty.assignments == {} and empty.objective == 0
    nosite = solve_dispatch([job("a")], [], T)
    assert nosite.status == "empty" and nosite.assignments == {}
    full = solve_dispatch([job("a")], [site("x", 0.01, 0)], T)  # all offers expired / full
    assert full.assignments == {}
    big = solve_dispatch([job("a", slots=100)], [site("x", 0.01, 10), site("y", 0.01, 99)], T)
    assert big.assignments == {} and big.status == "empty"
    future = solve_dispatch([Job("f", 1.0, 1, 0, None, None, T + 1)], [site("x", 0.01, 5)], T)
    assert future.assignments == {}  # not yet submitted at this tick


@pytest.mark.parametrize(
    "bad",
    [
        dict(compute_hours=float("nan")),
        dict(compute_hours=-1.0),
        dict(slots=0),
        dict(priority=10),
        dict(deadline_ms=1.5),
    ],
)
def test_job_validation(bad: dict) -> None:
    kw = dict(
        job_id="a",
        compute_hours=1.0,
        slots=1,
        priority=0,
        deadline_ms=None,
        sites=None,
        submitted_ms=0,
    )
    kw.update(bad)
    with pytest.raises(ValueError, match="job 'a'"):
        Job(**kw)


def test_site_validation() -> None:
    with pytest.raises(ValueError, match="cost_per_compute_hour"):
        SiteState("x", float("nan"), 1)
    with pytest.raises(ValueError, match="available_slots"):
        SiteState("x", 0.1, -1)


def test_model_has_named_constraints() -> None:
    prob = tick_problem(
        [job("a", slots=3), job("b", slots=3)], [site("x", 0.01, 4), site("y", 0.02, 4)], T
    )
    model, x = build_model(prob, candidates(prob))
    names = set(model.constraints)
    assert {"one_site_0000000", "one_site_0000001", "capacity_00000", "capacity_00001"} <= names
    assert len(x) == 4


def test_cbc_gives_same_answer() -> None:
    jobs = [job(f"j{i}", hours=1 + i, slots=1 + i % 3, prio=i % 10) for i in range(8)]
    sites = [site("x", 0.01, 4), site("y", 0.02, 5), site("z", 0.03, 3)]
    h = solve_dispatch(jobs, sites, T, config=DispatchConfig(use_presolve=False, solver="highs"))
    c = solve_dispatch(jobs, sites, T, config=DispatchConfig(use_presolve=False, solver="cbc"))
    assert c.solver == "milp-cbc" and c.status == "optimal"
    assert c.objective == pytest.approx(h.objective, abs=1e-6)


def test_decision_id_and_records() -> None:
    a = decision_id("j-1", T, "dispatched", "ams")
    assert a == decision_id("j-1", T, "dispatched", "ams") and len(a) == 32
    assert a != decision_id("j-1", T + 1, "dispatched", "ams")
    jobs = [job("a", hours=12.0, slots=4), job("m", deadline=T - 1)]
    r = solve_dispatch(jobs, [site("ams", 0.0231, 10)], T)
    recs = decision_records(r, jobs, T)
    d = recs[0]
    assert d["status"] == "dispatched" and d["start_at"] == "2018-07-01T10:00:00Z"
    assert d["end_at"] == "2018-07-01T13:00:00Z" and d["expected_cost"] == pytest.approx(
        12 * 0.0231
    )
    assert recs[1]["status"] == "missed-deadline" and recs[1]["job_id"] == "m"


def test_rejection_reason() -> None:
    caps = {"ams": 400, "trn": 300}
    assert rejection_reason(job("a", slots=10), caps) is None
    assert "largest allowed site has 300" in rejection_reason(
        job("a", slots=350, sites=("trn",)), caps
    )
    assert "no known site" in rejection_reason(job("a", sites=("xyz",)), caps)


# --- properties -------------------------------------------------------------------------------

SITE_IDS = ["s0", "s1", "s2", "s3"]


@st.composite
def instances(draw, max_jobs: int = 8):  # noqa: ANN001, ANN201
    n_sites = draw(st.integers(1, 4))
    sites = [
        SiteState(
            SITE_IDS[i],
            draw(st.sampled_from([0.005, 0.01, 0.02, 0.03, 0.05, 0.2])),
            draw(st.integers(0, 8)),
            "r",
            None,
        )
        for i in range(n_sites)
    ]
    jobs = []
    for i in range(draw(st.integers(0, max_jobs))):
        dl = draw(st.sampled_from([None, None, T - 1, T + 60_000, T + DEFAULT_TICK_MS, T + 2 * H]))
        allow = draw(st.sampled_from([None, None, ("s0",), ("s1", "s2"), ("s3", "s0")]))
        jobs.append(
            Job(
                f"j{i:02d}",
                draw(st.sampled_from([0.5, 1.0, 3.0, 10.0])),
                draw(st.integers(1, 5)),
                draw(st.integers(0, 9)),
                dl,
                allow,
                T - 1000,
            )
        )
    return jobs, sites


def brute_force(jobs: list[Job], sites: list[SiteState]) -> float:
    best = 0.0
    options = [[None] + [s.site_id for s in sites] for _ in jobs]
    for combo in itertools.product(*options):
        plan = {j.job_id: s for j, s in zip(jobs, combo, strict=True) if s is not None}
        if plan_violations(plan, jobs, sites, T):
            continue
        best = min(best, evaluate_objective(plan, jobs, sites, T))
    return best


@settings(max_examples=60, deadline=None)
@given(instances(), st.booleans())
def test_plan_is_feasible_and_never_worse_than_greedy(inst, presolve: bool) -> None:
    jobs, sites = inst
    r = solve_dispatch(jobs, sites, T, config=DispatchConfig(use_presolve=presolve))
    assert plan_violations(r.assignments, jobs, sites, T) == []  # capacity, allow-lists, deadlines
    jmap = {j.job_id: j for j in jobs}
    for jid in r.assignments:
        assert jmap[jid].deadline_ms is None or jmap[jid].deadline_ms >= T
    assert not set(r.assignments) & set(r.missed)
    obj = evaluate_objective(r.assignments, jobs, sites, T)
    assert obj == pytest.approx(r.objective)
    for beneficial in (True, False):
        g = greedy_plan(jobs, sites, T, beneficial_only=beneficial)
        assert obj <= evaluate_objective(g, jobs, sites, T) + 1e-9


@settings(max_examples=40, deadline=None)
@given(instances(max_jobs=5))
def test_milp_matches_brute_force(inst) -> None:
    jobs, sites = inst
    sites = sites[:3]
    r = solve_dispatch(jobs, sites, T, config=MILP)
    assert r.objective == pytest.approx(brute_force(jobs, sites), rel=1e-6, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(instances(), st.randoms(use_true_random=False))
def test_same_plan_for_shuffled_inputs(inst, rnd: random.Random) -> None:
    jobs, sites = inst
    a = solve_dispatch(jobs, sites, T, config=MILP)
    js, ss = list(jobs), list(sites)
    rnd.shuffle(js)
    rnd.shuffle(ss)
    b = solve_dispatch(js, ss, T, config=MILP)
    assert a.assignments == b.assignments and a.missed == b.missed


def test_pruned_large_instance_stays_feasible_and_beats_greedy() -> None:
    rng = random.Random(3)
    sites = [
        SiteState(f"s{i:02d}", rng.uniform(0.01, 0.05), rng.randint(5, 30), "r") for i in range(30)
    ]
    jobs = [
        Job(f"j{i:04d}", rng.uniform(1, 50), rng.randint(1, 6), rng.randint(0, 9), None, None, T)
        for i in range(400)
    ]
    r = solve_dispatch(jobs, sites, T, config=DispatchConfig(max_vars=600, time_limit_s=2.0))
    assert r.pruned and plan_violations(r.assignments, jobs, sites, T) == []
    assert r.objective <= r.greedy_objective + 1e-9


def test_job_value_definition() -> None:
    j = Job("a", 2.0, 1, 9, None, None, 0)
    assert job_value(j, T) == pytest.approx(2.0 * 0.02)
    j0 = Job("a", 2.0, 1, 0, T + 2 * H, None, 0)  # half-way into the 4 h urgency horizon
    assert job_value(j0, T) == pytest.approx(2.0 * 0.02 * 1.5**9 * (1 + 2.0 * 0.5))


def test_a_tick_without_jobs_matches_what_the_solver_and_baselines_return():
    """Dispatcher.run_tick skips the solve when no job is pending (udfs.dispatcher.EMPTY_TICK):
    the shortcut must be exactly what the full path gives."""
    from udfs.baselines import round_robin_plan
    from udfs.dispatcher import EMPTY_TICK
    from udfs.objective import SiteState, evaluate_objective, plan_cost

    sites = [SiteState(site_id=f"s{i}", cost_per_compute_hour=0.02 + i / 100, available_slots=10 * i + 1)
             for i in range(3)]
    full = solve_dispatch([], sites, 1_530_403_200_000)
    for name in ("assignments", "missed", "status", "solver", "objective", "greedy_objective", "cost",
                 "greedy_plan"):
        assert getattr(full, name) == getattr(EMPTY_TICK, name), name
    assert round_robin_plan([], sites, 1_530_403_200_000, start=7) == {}
    assert evaluate_objective({}, [], sites, 1_530_403_200_000) == 0.0
    assert plan_cost({}, [], sites) == 0.0
