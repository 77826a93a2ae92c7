"""Dispatch planning ahead: hand-computed cases, edge cases and hypothesis properties."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs import baselines
from udfs.objective import (
    DEFAULT_DELAY,
    HOUR_MS,
    CostCurve,
    DelayModel,
    Job,
    Option,
    Reduction,
    SitePlan,
    objective_of,
    plan_problem,
    usage_violations,
)
from udfs.optimizer import (
    DispatchConfig,
    build_model,
    decision_id,
    decision_records,
    rejection_reason,
    solve_dispatch,
    solve_problem,
)

H = HOUR_MS
T = 1_530_439_200_000 + 5 * 60_000  # 2018-07-01T10:05:00Z, a tick inside an hour
NEXT = (T // H + 1) * H  # 11:00
MILP = DispatchConfig(use_presolve=False)
EVERY_OPTION = Reduction(top=10_000, per_site=10_000)


def site(sid: str, hourly: list[float], avail: int = 10, cap: int | None = None, known: list[float] | None = None,
         releases: tuple[tuple[int, int], ...] = (), region: str = "r") -> SitePlan:
    """A site whose cost per slot-hour is hourly[0] until 11:00, then hourly[1] for an hour, ..."""
    edges = (T, *(NEXT + i * H for i in range(len(hourly))))
    curve = CostCurve(edges, tuple(hourly), tuple(known or [1.0] * len(hourly)))
    return SitePlan(sid, region, avail, avail if cap is None else cap, curve, releases, hourly[0] * 1000)


def job(jid: str, hours: float = 2.0, slots: int = 1, prio: int = 9, deadline: int | None = None,
        sites: tuple[str, ...] | None = None, submitted: int = T - 60_000) -> Job:
    return Job(jid, hours, slots, prio, deadline, sites, submitted)


FLAT = [0.05] * 40


def test_a_job_waits_for_a_known_cheaper_hour() -> None:
    # 0.05/slot-hour until 13:00, then 0.01 for two hours: 2 h at 13:00 cost 0.02, now 0.10 (x1 slot)
    cheap_later = site("a", [0.05, 0.05, 0.05, 0.01, 0.01] + FLAT)
    r = solve_dispatch([job("lazy")], [cheap_later], T)
    p = r.plan["lazy"]
    assert (p.site_id, p.start_ms) == ("a", NEXT + 2 * H)
    assert p.cost == pytest.approx(0.02) and p.cost_now_best == pytest.approx(0.10)
    assert r.assignments == {} and r.missed == []  # nothing starts now: the plan waits
    # the delay term: priority 9's rate (0.1 %/h) of its cost now (0.10) per hour waited, far below the saving
    rate = DEFAULT_DELAY.rate_per_hour[9]
    assert rate == pytest.approx(0.001)
    assert r.objective - r.greedy_objective == pytest.approx(0.02 - 0.10 + rate * 0.10 * (NEXT + 2 * H - T) / H)


def test_a_deadline_forbids_waiting() -> None:
    cheap_later = site("a", [0.05, 0.05, 0.05, 0.01, 0.01] + FLAT)
    due = job("due", deadline=T + 30 * 60_000)  # latest start 10:35: no hourly start before it
    r = solve_dispatch([due], [cheap_later], T)
    assert r.assignments == {"due": "a"} and r.plan["due"].cost == pytest.approx(0.10)


def test_urgent_priority_hardly_waits() -> None:
    # priority 0: one hour of waiting is worth ~3.8 % of its cost; a 10 % cheaper hour 3 h away is not worth it
    later = site("a", [0.05, 0.05, 0.05, 0.045, 0.045] + FLAT)
    assert solve_dispatch([job("p0", prio=0)], [later], T).assignments == {"p0": "a"}
    assert solve_dispatch([job("p9", prio=9)], [later], T).assignments == {}


def test_a_pinned_urgent_job_under_contention_starts_now() -> None:
    # one slot free now at the only allowed site; a cheap hour later. The pinned job (last chance,
    # priority 2) must get the slot now; the relaxed priority-0 job without deadline is planned later.
    s = site("a", [0.05, 0.05, 0.01, 0.01] + FLAT, avail=1, cap=1)
    pinned = job("pinned", prio=2, deadline=T + 60_000, sites=("a",))
    relaxed = job("relaxed", prio=0)
    r = solve_dispatch([relaxed, pinned], [s], T, config=MILP)
    assert r.assignments == {"pinned": "a"} and r.missed == []
    assert r.plan["relaxed"].start_ms >= T + pinned.duration_ms  # after the pinned job releases the slot
    assert r.solver.startswith("milp")


def test_capacity_holds_over_the_whole_run() -> None:
    # two 3-hour jobs want the same cheap window at a 1-slot site: one must go elsewhere or later
    cheap = site("a", [0.05, 0.01, 0.01, 0.01, 0.05, 0.05] + FLAT, avail=1, cap=1)
    dear = site("b", [0.04] * 46)
    jobs = [job("j1", hours=3.0), job("j2", hours=3.0)]
    r = solve_dispatch(jobs, [cheap, dear], T, config=MILP)
    at_a = [p for p in r.plan.values() if p.site_id == "a"]
    assert len(r.plan) == 2
    for p, q in itertools.combinations(at_a, 2):
        assert p.start_ms + 3 * H <= q.start_ms or q.start_ms + 3 * H <= p.start_ms


def test_running_jobs_hold_capacity_until_they_end() -> None:
    # 4 slots, 4 busy until 12:00: a 4-slot job can start at 12:00 at the earliest
    s = site("a", [0.05] * 30, avail=0, cap=4, releases=((NEXT + H, 4),))
    r = solve_dispatch([job("big", slots=4, prio=0)], [s], T)
    assert r.plan["big"].start_ms == NEXT + H and r.assignments == {}


def test_negative_prices_attract_work_and_are_costed_as_negative() -> None:
    paid = site("a", [-0.02, -0.02, 0.05] + FLAT)
    r = solve_dispatch([job("j", hours=2.0, prio=0)], [paid, site("b", [0.03] * 43)], T)
    p = r.plan["j"]
    assert r.assignments == {"j": "a"} and p.cost < 0
    # 10:05-12:05: 55 min + 1 h at -0.02, then 5 min at 0.05
    assert p.cost == pytest.approx(-0.02 * (55 / 60) - 0.02 + 0.05 * (5 / 60))


def test_forecast_part_of_a_placement_is_reported() -> None:
    # known until 12:00, forecast after: a 3-hour run from now is (55 min + 1 h) known, 65 min forecast
    s = site("a", [0.06, 0.06, 0.03, 0.03] + FLAT, known=[1.0, 1.0, 0.0, 0.0] + [0.0] * 40)
    now = job("j", hours=3.0, prio=0, deadline=T + 60_000)  # last chance: it starts now
    r = solve_dispatch([now], [s], T)
    p = r.plan["j"]
    assert p.start_ms == T
    assert p.cost == pytest.approx(0.06 * (115 / 60) + 0.03 * (65 / 60))
    assert p.cost_known == pytest.approx(0.06 * (115 / 60))
    rec = decision_records(r, [now], T)[0]
    assert rec["expected_cost_forecast"] == pytest.approx(0.03 * (65 / 60), abs=1e-6)


def test_max_wait_is_a_hard_limit() -> None:
    cheap_late = site("a", [0.05] * 6 + [0.001] * 10 + FLAT)  # cheap only from 16:00
    delay = DelayModel(max_wait_ms=(2 * H,) * 10)
    r = solve_dispatch([job("j")], [cheap_late], T, config=DispatchConfig(delay=delay))
    assert r.plan["j"].start_ms <= T - 60_000 + 2 * H


def test_missed_and_expired() -> None:
    gone = job("gone", deadline=T - 1, submitted=T - H)
    full = site("a", [0.05] * 30, avail=0, cap=0)
    last = job("last", deadline=T + 60_000)
    r = solve_dispatch([gone, last], [full], T)
    assert r.missed == ["gone", "last"] and r.assignments == {}


def test_allow_list_respected() -> None:
    r = solve_dispatch([job("j", prio=0, sites=("b",))], [site("a", [0.01] * 30), site("b", [0.09] * 30)], T)
    assert r.assignments == {"j": "b"}


def test_model_has_named_constraints() -> None:
    s = site("a", [0.05, 0.01, 0.01] + FLAT, avail=1, cap=1)
    prob = plan_problem([job("j1"), job("j2"), job("p", deadline=T + 60_000, prio=3)], [s], T)
    model, x = build_model(prob)
    names = set(model.constraints)
    assert any(n.startswith("capacity_") for n in names)
    assert any(n.startswith("one_option_") for n in names)
    assert any(n.startswith("start_now_") for n in names)
    assert len(x) == sum(len(o) for o in prob.options)


def test_cbc_gives_the_same_answer() -> None:
    s = [site("a", [0.05, 0.01, 0.01, 0.01] + FLAT, avail=2, cap=2), site("b", [0.03] * 44, avail=3, cap=3)]
    jobs = [job(f"j{i}", hours=1.0 + i, slots=1 + i % 2, prio=i % 10) for i in range(5)]
    a = solve_dispatch(jobs, s, T, config=DispatchConfig(use_presolve=False, solver="highs"))
    b = solve_dispatch(jobs, s, T, config=DispatchConfig(use_presolve=False, solver="cbc", time_limit_s=5))
    assert a.objective == pytest.approx(b.objective, abs=1e-6)


def test_decision_id_and_records() -> None:
    assert decision_id("j", T, "dispatched", "a") == decision_id("j", T, "dispatched", "a")
    assert decision_id("j", T, "dispatched", "a") != decision_id("j", T, "dispatched", "b")
    r = solve_dispatch([job("j", prio=0), job("x", deadline=T - 1)], [site("a", [0.05] * 30)], T)
    recs = decision_records(r, [job("j", prio=0), job("x", deadline=T - 1)], T)
    assert [d["status"] for d in recs] == ["dispatched", "missed-deadline"]
    d = recs[0]
    assert d["start_at"] == "2018-07-01T10:05:00Z" and d["end_at"] == "2018-07-01T12:05:00Z"
    assert d["expected_cost"] == pytest.approx(0.10) and d["expected_cost_known"] == pytest.approx(0.10)


def test_rejection_reason() -> None:
    caps = {"a": 4, "b": 8}
    assert rejection_reason(job("j", slots=16), caps) == "needs 16 slots, the largest allowed site has 8"
    assert rejection_reason(job("j", sites=("zz",)), caps).startswith("allow-list names no known site")
    assert rejection_reason(job("j", slots=8), caps) is None


def test_job_keeps_allow_list_order_and_home() -> None:
    j = Job("j", 1.0, 1, sites=("sto", "ams", "sto"))
    assert j.sites == ("sto", "ams") and j.home_site == "sto"
    assert Job("k", 1.0, 1, sites=("sto",), home="ams").home_site == "ams"


@pytest.mark.parametrize("bad", [dict(compute_hours=0), dict(slots=0), dict(priority=10), dict(job_id="")])
def test_job_validation(bad: dict) -> None:
    kw = dict(job_id="j", compute_hours=1.0, slots=1, priority=5) | bad
    with pytest.raises(ValueError):
        Job(**kw)


# --------------------------------------------------------------------------- properties
@st.composite
def instances(draw, max_jobs: int = 4, max_sites: int = 2):
    n_s = draw(st.integers(1, max_sites))
    sites = []
    for s in range(n_s):
        hourly = [draw(st.sampled_from([-0.01, 0.01, 0.02, 0.05, 0.08])) for _ in range(4)] + [0.04] * 30
        cap = draw(st.integers(0, 4))
        avail = draw(st.integers(0, cap))
        rel = ((NEXT + H, cap - avail),) if cap > avail else ()
        sites.append(site(f"s{s}", hourly, avail=avail, cap=cap, releases=rel))
    jobs = []
    for j in range(draw(st.integers(1, max_jobs))):
        deadline = draw(st.sampled_from([None, T + 60_000, T + 2 * H, T + 5 * H]))
        allow = draw(st.sampled_from([None, ("s0",)]))
        jobs.append(job(f"j{j}", hours=draw(st.sampled_from([0.5, 1.0, 2.0, 4.0])), slots=draw(st.integers(1, 3)),
                        prio=draw(st.integers(0, 9)), deadline=deadline, sites=allow))
    return jobs, sites


def _short_horizon(**kw) -> DispatchConfig:
    return DispatchConfig(horizon_ms=3 * H, reduction=EVERY_OPTION, **kw)


@settings(max_examples=60, deadline=None)
@given(instances(), st.booleans())
def test_plan_is_feasible_and_never_worse_than_greedy(inst, presolve: bool) -> None:
    jobs, sites = inst
    cfg = _short_horizon(use_presolve=presolve)
    r = solve_dispatch(jobs, sites, T, config=cfg)
    prob = plan_problem(jobs, sites, T, horizon_ms=cfg.horizon_ms, reduction=cfg.reduction)
    g = baselines.greedy(prob)
    assert r.objective <= objective_of(prob, g) + 1e-9
    assert r.objective <= r.greedy_objective + 1e-9
    # every job greedy starts on time at its last chance starts now under the plan too
    assert prob.forced <= set(r.assignments)


@settings(max_examples=40, deadline=None)
@given(instances(max_jobs=3))
def test_milp_matches_brute_force(inst) -> None:
    jobs, sites = inst
    # the model, searched to the end (the default node budget stops at the root: udfs.optimizer)
    cfg = _short_horizon(use_presolve=False, max_nodes=100_000, time_limit_s=60.0)
    prob = plan_problem(jobs, sites, T, horizon_ms=cfg.horizon_ms, reduction=cfg.reduction)
    best = None
    for combo in itertools.product(*[[None, *opts] for opts in prob.options]):
        chosen = {j: o for j, o in enumerate(combo) if o is not None}
        if usage_violations(prob, chosen):
            continue
        v = objective_of(prob, chosen)
        best = v if best is None else min(best, v)
    r = solve_problem(prob, cfg)
    assert best is not None and r.objective == pytest.approx(best, abs=1e-7)


@settings(max_examples=30, deadline=None)
@given(instances(), st.randoms(use_true_random=False))
def test_same_plan_for_shuffled_inputs(inst, rnd: random.Random) -> None:
    jobs, sites = inst
    a = solve_dispatch(jobs, sites, T, config=_short_horizon())
    jobs2, sites2 = list(jobs), list(sites)
    rnd.shuffle(jobs2)
    rnd.shuffle(sites2)
    b = solve_dispatch(jobs2, sites2, T, config=_short_horizon())
    assert a.plan == b.plan and a.assignments == b.assignments


def test_large_instance_is_reduced_stays_feasible_and_beats_greedy() -> None:
    rng = random.Random(3)
    sites = [site(f"s{i:02d}", [rng.uniform(0.01, 0.08) for _ in range(50)], avail=rng.randint(0, 20), cap=20)
             for i in range(10)]
    jobs = [job(f"j{i:03d}", hours=rng.choice([1.0, 2.0, 4.0, 8.0]), slots=rng.choice([1, 2, 4]),
                prio=rng.randint(0, 9), deadline=rng.choice([None, T + 3 * H, T + 8 * H])) for i in range(150)]
    cfg = DispatchConfig(time_limit_s=5.0)
    r = solve_dispatch(jobs, sites, T, config=cfg)
    prob = plan_problem(jobs, sites, T)
    assert r.objective <= r.greedy_objective + 1e-9
    assert all(len(o) <= cfg.reduction.top + cfg.reduction.sites * cfg.reduction.per_site + 1 for o in prob.options)
    s_index = {s.site_id: i for i, s in enumerate(prob.sites)}
    chosen = {i: Option(s_index[r.plan[j.job_id].site_id], r.plan[j.job_id].start_ms, 0.0, 0.0, 0.0)
              for i, j in enumerate(prob.jobs) if j.job_id in r.plan}
    assert usage_violations(prob, chosen) == []
