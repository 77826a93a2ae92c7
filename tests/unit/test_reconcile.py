"""deploy.reconcile: the exactly-once verifier's logic on hand-made inputs."""

from __future__ import annotations

from deploy.reconcile import decision_due_ms, reconcile
from udfs.optimizer import decision_id
from udfs.timeutil import parse_ts_ms

T0 = "2018-07-01T10:00:00Z"


def ts(hhmm: str) -> str:
    return f"2018-07-01T{hhmm}:00Z"


def submit(job_id: str, at: str = "09:58", deadline: str | None = None, slots: int = 4, sites=None) -> dict:
    rec = {"action": "submit", "job_id": job_id, "submitted_at": ts(at), "compute_hours": 4.0, "slots": slots,
           "priority": 3}
    if deadline:
        rec["deadline"] = ts(deadline)
    if sites:
        rec["sites"] = sites
    return rec


def cancel(job_id: str, at: str) -> dict:
    return {"action": "cancel", "job_id": job_id, "submitted_at": ts(at)}


def dispatched(job_id: str, site: str, tick: str, end: str, slots: int = 4) -> dict:
    return {"decision_id": decision_id(job_id, parse_ts_ms(ts(tick)), "dispatched", site), "job_id": job_id,
            "status": "dispatched", "site_id": site, "tick": ts(tick), "start_at": ts(tick), "end_at": ts(end),
            "slots": slots, "expected_cost": 1.0, "cost_per_compute_hour": 0.1, "solver": "milp", "solve_ms": 3.0}


def other(job_id: str, status: str, tick: str) -> dict:
    return {"decision_id": decision_id(job_id, parse_ts_ms(ts(tick)), status, None), "job_id": job_id,
            "status": status, "site_id": None, "tick": ts(tick), "reason": "x"}


def cost(site: str, tick: str, available_slots: int = 10, capacity: int = 10, price: float | None = 40.0) -> dict:
    return {"site_id": site, "tick": ts(tick), "price_per_mwh": price, "capacity_slots": capacity,
            "available_slots": available_slots if price is not None else 0, "available": price is not None,
            "reason": None if price is not None else "no-offer"}


def ticks(site: str, start: str, end: str, **kw) -> list[dict]:
    out, t, stop = [], parse_ts_ms(ts(start)), parse_ts_ms(ts(end))
    while t <= stop:
        hhmm = f"{t // 3_600_000 % 24:02d}:{t // 60_000 % 60:02d}"
        out.append(cost(site, hhmm, **kw))
        t += 300_000
    return out


def test_clean_run_is_ok_and_pending_without_deadline_is_not_lost():
    jobs = [submit("a", deadline="11:00"), submit("b"), submit("c", deadline="10:30"), cancel("c", "10:01")]
    decisions = [dispatched("a", "ams", "10:00", "11:00"), other("c", "cancelled", "10:05")]
    report = reconcile(jobs, decisions, ticks("ams", "10:00", "12:00"))
    assert report.ok, report.summary()
    assert report.jobs_submitted == 3 and report.jobs_decided == 2
    assert report.pending_without_deadline == ["b"]
    assert report.horizon == ts("12:00")
    assert report.summary().startswith("verify OK: 3 jobs, 2 decided, 1 pending without deadline")


def test_lost_decision_only_once_it_is_due():
    jobs = [submit("a", deadline="10:32")]  # missed-deadline due at the first tick after 10:32 = 10:35
    assert decision_due_ms(jobs[0], None) == parse_ts_ms(ts("10:35"))
    assert reconcile(jobs, [], ticks("ams", "10:00", "10:30")).ok
    assert reconcile(jobs, [], ticks("ams", "10:00", "10:30"), horizon_ms=parse_ts_ms(ts("10:34"))).ok
    report = reconcile(jobs, [], ticks("ams", "10:00", "10:35"))
    assert [x["job_id"] for x in report.lost] == ["a"] and not report.ok
    assert report.lost[0]["due_tick"] == ts("10:35")
    # a missed-deadline decision is terminal
    assert reconcile(jobs, [other("a", "missed-deadline", "10:35")], ticks("ams", "10:00", "11:00")).ok


def test_cancel_makes_a_job_without_deadline_due():
    jobs = [submit("a"), cancel("a", "10:07")]
    assert not reconcile(jobs, [], ticks("ams", "10:00", "10:10")).ok
    assert reconcile(jobs, [], ticks("ams", "10:00", "10:05")).ok  # not yet due (tick 10:10)


def test_job_submitted_after_its_deadline_is_due_at_its_first_tick():
    jobs = [submit("a", at="10:21", deadline="10:02")]
    assert decision_due_ms(jobs[0], None) == parse_ts_ms(ts("10:25"))


def test_duplicate_delivery_and_conflicting_decisions():
    jobs = [submit("a", deadline="11:00"), submit("b", deadline="11:00")]
    d_a = dispatched("a", "ams", "10:00", "10:30")
    decisions = [d_a, dict(d_a), dispatched("b", "ams", "10:00", "10:30"), dispatched("b", "ams", "10:05", "10:35")]
    report = reconcile(jobs, decisions, ticks("ams", "10:00", "11:00", available_slots=20, capacity=20))
    assert report.counts()["duplicate_deliveries"] == 1 and report.duplicate_deliveries[0]["copies"] == 2
    assert [x["job_id"] for x in report.duplicated] == ["b"]
    assert len(report.duplicated[0]["decisions"]) == 2
    assert not report.ok
    # a cancelled decision after a dispatch is a second terminal decision too
    report = reconcile(jobs[:1], [d_a, other("a", "cancelled", "10:10")], ticks("ams", "10:00", "11:00"))
    assert [x["job_id"] for x in report.duplicated] == ["a"]


def test_capacity_and_overbooking():
    jobs = [submit("a", slots=6, deadline="12:00"), submit("b", slots=6, deadline="12:00")]
    # both fit "available" at their own ticks (the record lies), but together they exceed capacity 10
    decisions = [dispatched("a", "ams", "10:00", "11:00", slots=6), dispatched("b", "ams", "10:05", "11:00", slots=6)]
    report = reconcile(jobs, decisions, ticks("ams", "10:00", "11:00", available_slots=10, capacity=10))
    assert report.capacity_violations and report.capacity_violations[0] == {
        "site_id": "ams", "tick": ts("10:05"), "running_slots": 12, "capacity_slots": 10}
    assert not report.overbooked
    # more slots dispatched at one tick than site-costs said were available
    decisions = [dispatched("a", "ams", "10:00", "10:30", slots=6), dispatched("b", "ams", "10:00", "10:30", slots=6)]
    costs = [cost("ams", "10:00", available_slots=8, capacity=20)] + ticks("ams", "10:05", "11:00", capacity=20)
    report = reconcile(jobs, decisions, costs)
    assert report.overbooked == [{"site_id": "ams", "tick": ts("10:00"), "dispatched_slots": 12,
                                  "available_slots": 8}]
    assert not report.capacity_violations


def test_running_job_released_at_end():
    jobs = [submit("a", slots=10, deadline="12:00"), submit("b", slots=10, deadline="12:00")]
    decisions = [dispatched("a", "ams", "10:00", "10:30", slots=10), dispatched("b", "ams", "10:30", "11:00", slots=10)]
    assert reconcile(jobs, decisions, ticks("ams", "10:00", "11:00")).ok


def test_expired_offer_and_missing_site_costs():
    jobs = [submit("a", deadline="12:00"), submit("b", deadline="12:00")]
    costs = ticks("ams", "10:00", "11:00", price=None) + ticks("sto", "10:30", "11:00")
    decisions = [dispatched("a", "ams", "10:00", "10:30"), dispatched("b", "sto", "10:10", "10:40")]
    report = reconcile(jobs, decisions, costs)
    assert {(x["job_id"], x["why"]) for x in report.expired_offer} == {("a", "no price"),
                                                                       ("b", "no site-costs record")}


def test_deadline_allow_list_and_orphans():
    jobs = [submit("a", deadline="10:02"), submit("b", deadline="12:00", sites=["sto"])]
    decisions = [dispatched("a", "ams", "10:05", "10:30"), dispatched("b", "ams", "10:05", "10:30"),
                 dispatched("zz", "ams", "10:05", "10:30")]
    report = reconcile(jobs, decisions, ticks("ams", "10:00", "11:00", available_slots=50, capacity=50))
    assert [x["job_id"] for x in report.deadline_violations] == ["a"]
    assert [x["job_id"] for x in report.allow_list_violations] == ["b"]
    assert [x["job_id"] for x in report.orphans] == ["zz"]
    assert report.jobs_decided == 2


def test_decisions_beyond_the_horizon_are_not_judged():
    jobs = [submit("a", deadline="12:00")]
    decisions = [dispatched("a", "ams", "10:40", "11:00")]
    report = reconcile(jobs, decisions, ticks("ams", "10:00", "10:30"))
    assert report.ok and report.beyond_horizon == 1


def test_no_output_at_all_with_explicit_horizon_loses_everything_due():
    jobs = [submit("a", deadline="10:10"), submit("b")]
    report = reconcile(jobs, [], [], horizon_ms=parse_ts_ms(ts("11:00")))
    assert [x["job_id"] for x in report.lost] == ["a"]
    assert reconcile(jobs, [], []).horizon is None


def test_report_serialises():
    import json

    report = reconcile([submit("a", deadline="10:10")], [], ticks("ams", "10:00", "11:00"))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["counts"]["lost"] == 1 and data["summary"].startswith("verify FAIL")
