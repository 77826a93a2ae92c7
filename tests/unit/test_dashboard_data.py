"""Pure logic of the dashboard: configuration, catalogue, the fold of output records into
tables and KPIs, the incremental reader (with a fake consumer), charts and job records."""

from __future__ import annotations

import json
from collections import namedtuple

import pytest
from kafka import TopicPartition
from kafka.errors import NoBrokersAvailable

from dashboard import charts
from dashboard.data import (
    DISPATCH,
    JOBS,
    METRICS,
    SITE_COSTS,
    DashboardConfig,
    DashboardState,
    Kpis,
    TopicReader,
    load_catalogue,
)
from dashboard.jobs_form import build_cancel, build_submit
from udfs.catalogue import Site


def cost(site: str, tick: str, c: float = 0.02, **extra) -> dict:
    return {"site_id": site, "tick": tick, "price_per_mwh": 50.0, "pue": 1.2, "cost_per_compute_hour": c,
            "capacity_slots": 100, "available_slots": 40, "available": True, **extra}


def submit(job: str, at: str, priority: int = 5, **extra) -> dict:
    return {"action": "submit", "job_id": job, "submitted_at": at, "compute_hours": 4.0, "slots": 2,
            "priority": priority, **extra}


def catalogue_site(site_id: str, name: str, lat: float = 0.0, lon: float = 0.0, synthetic: bool = False) -> Site:
    return Site(site_id, name, "r", lat, lon, capacity_slots=100, it_kw_per_slot=0.4, offer_interval_min=60,
                price_synthetic=synthetic)


def decision(job: str, status: str, tick: str, decision_id: str | None = None, site: str | None = "ams") -> dict:
    return {"decision_id": decision_id or f"d-{job}", "job_id": job, "status": status, "site_id": site,
            "tick": tick, "expected_cost": 0.5, "solver": "milp", "solve_ms": 10.0}


# ---------------------------------------------------------------------------- configuration
def test_config_from_env_defaults_prefix_and_overrides():
    cfg = DashboardConfig.from_env({})
    assert cfg.bootstrap == "127.0.0.1:9092"
    assert cfg.sites_path == "conf/sites.yaml"
    assert cfg.topics == {"site_costs": "site-costs", "dispatch": "dispatch", "jobs": "jobs",
                          "metrics": "pipeline-metrics", "dead_letter": "dead-letter"}
    cfg = DashboardConfig.from_env({"KAFKA_BOOTSTRAP": "h:1", "GRD_SITES": "x.yaml", "GRD_TOPIC_PREFIX": "t1-",
                                    "GRD_TOPIC_DISPATCH": "my-dispatch", "GRD_DASHBOARD_REFRESH_S": "0.1"})
    assert (cfg.bootstrap, cfg.sites_path) == ("h:1", "x.yaml")
    assert cfg.topic(SITE_COSTS) == "t1-site-costs"
    assert cfg.topic(DISPATCH) == "my-dispatch"
    assert cfg.refresh_s == 0.5  # clamped
    hash(cfg)  # frozen, usable as a cache key


# ---------------------------------------------------------------------------- catalogue
def test_load_catalogue_missing_present_and_invalid(tmp_path):
    """The job's loader (udfs.catalogue) by site_id; its errors become the page's one-line problem."""
    sites, problem = load_catalogue(tmp_path / "nope.yaml")
    assert sites == {} and "not found" in problem
    path = tmp_path / "s.yaml"
    path.write_text("sites:\n"
                    "  - {site_id: sto, name: Stockholm, region: SE3, lat: 59.6, lon: 17.9, capacity_slots: 500,"
                    " it_kw_per_slot: 0.4, offer_interval_min: 60}\n"
                    "  - {site_id: chi, name: Chicago, region: US, lat: 41.9, lon: -87.6, capacity_slots: 600,"
                    " it_kw_per_slot: 0.4, offer_interval_min: 5, price_synthetic: true}\n")
    sites, problem = load_catalogue(path)
    assert problem is None and sites["sto"].capacity_slots == 500
    assert not sites["sto"].price_synthetic and sites["chi"].price_synthetic
    path.write_text("sites: [unclosed")
    assert "unreadable" in load_catalogue(path)[1]
    path.write_text("sites:\n  - {site_id: sto, name: Stockholm}\n")  # the job would refuse it too
    sites, problem = load_catalogue(path)
    assert sites == {} and "site 'sto'" in problem


def test_project_catalogue():
    """The catalogue the job reads (conf/sites.yaml), also by relative path: chi and tus synthetic."""
    sites, problem = load_catalogue("conf/sites.yaml")
    assert problem is None
    assert {"ams", "trn", "sto", "chi", "tus"} <= set(sites)
    assert {s for s, site in sites.items() if site.price_synthetic} >= {"chi", "tus"}
    assert {s for s, site in sites.items() if not site.price_synthetic} >= {"ams", "trn", "sto"}


# ---------------------------------------------------------------------------- fold: site costs
def test_site_costs_latest_per_site_and_series_in_tick_order():
    st = DashboardState()
    st.apply(SITE_COSTS, json.dumps(cost("ams", "2018-07-01T10:05:00Z", 0.03)).encode())
    st.apply(SITE_COSTS, cost("ams", "2018-07-01T10:00:00Z", 0.01))  # late arrival of an older tick
    st.apply(SITE_COSTS, cost("sto", "2018-07-01T10:00:00Z", 0.02))
    st.apply(SITE_COSTS, cost("ams", "2018-07-01T10:05:00Z", 0.03))  # duplicate: same site and tick
    rows = {r["site_id"]: r for r in st.current_costs()}
    assert rows["ams"]["cost_per_compute_hour"] == 0.03 and rows["ams"]["tick"] == "2018-07-01T10:05:00Z"
    series = st.site_series(["ams"])
    assert [r["tick"] for r in series] == ["2018-07-01T10:00:00Z", "2018-07-01T10:05:00Z"]
    assert st.event_time_ms is not None and st.site_series(["nope"]) == []
    since = st.site_series(since_ms=st.event_time_ms)
    assert [(r["site_id"], r["tick"]) for r in since] == [("ams", "2018-07-01T10:05:00Z")]


def test_current_costs_lists_catalogue_sites_first_with_synthetic_label():
    catalogue = {"tus": catalogue_site("tus", "Tucson", synthetic=True), "ams": catalogue_site("ams", "Amsterdam")}
    st = DashboardState()
    st.apply(SITE_COSTS, cost("zzz", "2018-07-01T10:00:00Z"))
    st.apply(SITE_COSTS, cost("ams", "2018-07-01T10:00:00Z"))
    rows = st.current_costs(catalogue)
    assert [r["site_id"] for r in rows] == ["tus", "ams", "zzz"]
    assert rows[0]["price_data"] == "synthetic price" and rows[0]["tick"] is None  # no data yet
    assert rows[1]["price_data"] == "real market price" and rows[1]["name"] == "Amsterdam"


def test_history_is_bounded_and_keeps_newest():
    st = DashboardState(history_points=10)
    for minute in range(40):
        st.apply(SITE_COSTS, cost("ams", f"2018-07-01T10:{minute:02d}:00Z"))
    series = st.costs_series["ams"]
    assert 10 <= len(series) <= 12
    assert max(series) == st.costs_latest["ams"]["_tick_ms"]


# ---------------------------------------------------------------------------- fold: jobs and decisions
def queue_row(job: str, at: str, priority: int = 5, site: str | None = None, start: str | None = None, **extra):
    return {"job_id": job, "priority": priority, "compute_hours": 4.0, "slots": 2, "submitted_at": at,
            "deadline": None, "sites": None, "site_id": site, "start_at": start, **extra}


def test_the_queue_is_the_dispatchers_own_with_its_plan_and_unseen_jobs_apart():
    st = DashboardState()
    for i, job in enumerate(["j1", "j2", "j3", "j4"]):
        st.apply(JOBS, submit(job, f"2018-07-01T10:0{i}:00Z", priority=i))
    st.apply(JOBS, submit("j9", "2018-07-01T10:30:00Z"))  # after the dispatcher's clock: not seen yet
    st.apply(DISPATCH, decision("j3", "dispatched", "2018-07-01T10:05:00Z"))
    st.apply(METRICS, {"tick": "2018-07-01T10:10:00Z", "pending_jobs": 3, "queue": [
        queue_row("j1", "2018-07-01T10:00:00Z", 0, deadline="2018-07-01T12:00:00Z"),
        queue_row("j2", "2018-07-01T10:01:00Z", 1, "sto", "2018-07-01T14:00:00Z"),
        queue_row("j4", "2018-07-01T10:03:00Z", 3)]})
    pending = st.pending_jobs()
    assert [(p["job_id"], p["plan"]) for p in pending] == [
        ("j1", "not planned yet"), ("j2", "waiting for 14:00 at sto"), ("j4", "not planned yet")]
    assert pending[0]["age_min"] == 10.0 and pending[0]["to_deadline_min"] == 110.0  # on the dispatcher's clock
    assert [u["job_id"] for u in st.unseen_jobs()] == ["j9"]
    k = st.kpis()
    assert (k.pending, k.dispatched) == (3, 1)


def test_one_clock_the_dispatchers_tick_and_how_far_the_inputs_run_ahead():
    st = DashboardState()
    st.apply(JOBS, submit("j1", "2018-07-01T10:00:00Z", deadline="2018-07-01T12:00:00Z"))
    st.apply(METRICS, {"tick": "2018-07-01T10:30:00Z", "pending_jobs": 1,
                       "queue": [queue_row("j1", "2018-07-01T10:00:00Z", deadline="2018-07-01T12:00:00Z")]})
    st.apply(SITE_COSTS, cost("ams", "2018-07-02T02:30:00Z"))  # a site ticking on an offer published ahead
    assert st.clock_ms == st.dispatcher_ms == 1_530_441_000_000  # 10:30, not the input's 02:30 next day
    assert st.inputs_ahead_ms() == 16 * 3_600_000
    (j1,) = st.pending_jobs()
    assert j1["age_min"] == 30.0 and j1["to_deadline_min"] == 90.0  # on the dispatcher's clock


def test_decisions_deduplicated_by_id_and_newest_first():
    st = DashboardState()
    st.apply(DISPATCH, decision("a", "dispatched", "2018-07-01T10:00:00Z", "d1"))
    st.apply(DISPATCH, decision("b", "missed-deadline", "2018-07-01T10:10:00Z", "d2", site=None))
    st.apply(DISPATCH, decision("a", "dispatched", "2018-07-01T10:00:00Z", "d1"))  # duplicate
    st.apply(DISPATCH, decision("c", "cancelled", "2018-07-01T10:05:00Z", "d3", site=None))
    assert [d["job_id"] for d in st.latest_decisions()] == ["b", "c", "a"]
    assert st.latest_decisions(limit=1)[0]["decision_id"] == "d2"
    k = st.kpis()
    assert (k.dispatched, k.missed_deadline, k.cancelled) == (1, 1, 1)


def test_unreadable_records_are_counted_not_fatal():
    st = DashboardState()
    assert not st.apply(SITE_COSTS, b"{not json")
    assert not st.apply(SITE_COSTS, {"tick": "2018-07-01T10:00:00Z"})  # no site_id
    assert not st.apply(DISPATCH, b"[1, 2]")
    assert not st.apply(JOBS, {"action": "explode", "job_id": "x"})
    assert not st.apply(METRICS, {"tick": "yesterday"})
    assert not st.apply(SITE_COSTS, None)
    assert st.empty and st.unreadable[SITE_COSTS] == 3


# ---------------------------------------------------------------------------- fold: metrics and KPIs
def test_kpis_cumulative_cost_and_savings_on_same_ticks():
    st = DashboardState()
    st.apply(METRICS, {"tick": "2018-07-01T10:00:00Z", "cost": 1.0, "cost_greedy": 2.0, "cost_naive": 4.0,
                       "solve_ms": 5.0, "solver": "milp", "pending_jobs": 7, "late_events": 2})
    st.apply(METRICS, {"tick": "2018-07-01T10:05:00Z", "cost": 3.0, "cost_greedy": 6.0})  # no naive here
    st.apply(METRICS, {"tick": "2018-07-01T10:10:00Z", "cost": 5.0, "solve_ms": 8.0})  # no baselines at all
    st.apply(METRICS, {"tick": "2018-07-01T10:05:00Z", "cost": 3.0, "cost_greedy": 6.0})  # duplicate tick
    k = st.kpis({"site-costs": 3, "dispatch": 2})
    assert k.cum_cost == 9.0 and k.cum_greedy == 8.0 and k.cum_naive == 4.0
    assert k.expected_saving_vs_greedy_pct == pytest.approx((8.0 - 4.0) / 8.0 * 100)  # only ticks 10:00 and 10:05
    assert k.saving_vs_greedy_pct is None  # no finished jobs of plan and shadow greedy yet
    assert k.saving_vs_naive_pct == pytest.approx((4.0 - 1.0) / 4.0 * 100)  # only tick 10:00
    assert (k.ticks, k.latest_tick, k.solve_ms, k.solver, k.pipeline_pending) == (
        3, "2018-07-01T10:10:00Z", 8.0, None, None)
    assert k.late_events == 2 and k.duplicates is None
    assert k.lag == 5 and k.lag_by_topic["dispatch"] == 2
    # Without dispatch records the counters fall back to the pipeline's per-tick numbers.
    st.apply(METRICS, {"tick": "2018-07-01T10:15:00Z", "dispatched": 4, "missed_deadline": 1})
    assert (st.kpis().dispatched, st.kpis().missed_deadline) == (4, 1)


def test_saving_tile_is_the_realised_like_for_like_figure_per_compute_hour():
    st = DashboardState()
    # the latest tick's cumulative totals count; each shard's add up
    st.apply(METRICS, {"tick": "2018-07-01T10:00:00Z", "completed_realised_cost": 1.0, "completed_compute_hours": 1.0,
                       "shadow_completed_realised_cost": 1.0, "shadow_completed_compute_hours": 1.0})
    for shard, (plan, plan_ch, greedy, greedy_ch) in enumerate([(8.0, 100.0, 12.0, 120.0), (1.0, 20.0, 2.0, 20.0)]):
        st.apply(METRICS, {"tick": "2018-07-01T10:05:00Z", "shard": shard, "completed_realised_cost": plan,
                           "completed_compute_hours": plan_ch, "shadow_completed_realised_cost": greedy,
                           "shadow_completed_compute_hours": greedy_ch, "cost": 5.0, "cost_greedy": 50.0})
    k = st.kpis()
    # plan 9 EUR / 120 ch = 0.075; greedy 14 EUR / 140 ch = 0.1: 25 % cheaper per compute-hour
    assert k.saving_vs_greedy_pct == pytest.approx(25.0)
    assert k.expected_saving_vs_greedy_pct == pytest.approx(90.0)  # the expected figure stays apart


def test_kpis_with_no_metrics_are_missing_not_zero():
    k = DashboardState().kpis()
    assert k.cum_cost is None and k.saving_vs_greedy_pct is None and k.lag is None and k.solve_ms is None
    assert k.dispatched == 0 and k.dead_letters == 0


def test_dead_letters_counted_once_per_source_record():
    st = DashboardState()
    dl = {"topic": "prices", "partition": 0, "offset": 5, "key": "ams", "raw": "x", "error": "e", "at": "t"}
    st.apply("dead_letter", dl)
    st.apply("dead_letter", dict(dl))
    st.apply("dead_letter", {**dl, "offset": 6})
    st.apply("dead_letter", {"error": "no coordinates"})
    assert st.dead_letters == 3 and st.kpis().dead_letters == 3 and len(st.recent_dead) == 3


def test_hints_say_what_to_start():
    st = DashboardState()
    text = " ".join(st.hints(["t-site-costs"]))
    assert "make topics" in text and "make replay" in text and "make job-local" in text and "make jobs" in text
    st.apply(JOBS, submit("j1", "2018-07-01T10:00:00Z"))
    assert any("no dispatch decision" in h for h in st.hints())
    st.apply(SITE_COSTS, cost("ams", "2018-07-01T10:00:00Z"))
    st.apply(DISPATCH, decision("j1", "dispatched", "2018-07-01T10:05:00Z"))
    assert st.hints() == []


def test_cost_series_is_cumulative():
    st = DashboardState()
    st.apply(METRICS, {"tick": "2018-07-01T10:05:00Z", "cost": 2.0, "cost_greedy": 3.0})
    st.apply(METRICS, {"tick": "2018-07-01T10:00:00Z", "cost": 1.0, "cost_greedy": 1.0, "cost_naive": 5.0})
    rows = st.cost_series()
    assert rows[-1] == {"tick": "2018-07-01T10:05:00Z", "cum_cost": 3.0, "cum_cost_greedy": 4.0, "cum_cost_naive": 5.0}



def test_sharded_metrics_add_up_per_tick():
    """--dispatch-shards: one metrics record per shard and tick; the page adds the shards up."""
    st = DashboardState()
    for shard, (cost, pending, solve) in enumerate(((1.0, 2, 5.0), (2.0, 3, 9.0))):
        st.apply(METRICS, {"tick": "2018-07-01T10:00:00Z", "shard": shard, "cost": cost, "cost_greedy": 2 * cost,
                           "pending_jobs": pending, "solve_ms": solve, "solver": "milp"})
    k = st.kpis()
    assert (k.ticks, k.cum_cost, k.cum_greedy, k.pipeline_pending, k.solve_ms) == (1, 3.0, 6.0, 5, 9.0)
    assert st.cost_series() == [{"tick": "2018-07-01T10:00:00Z", "cum_cost": 3.0, "cum_cost_greedy": 6.0,
                                 "cum_cost_naive": 0.0}]

# ---------------------------------------------------------------------------- the reader (fake consumer)
Rec = namedtuple("Rec", "value")


class FakeConsumer:
    """Partitions as lists; positions advance like Kafka's; counts how often each record is handed out."""

    def __init__(self, topics: dict[str, list[list[bytes]]]):
        self.topics = topics
        self.assigned: list[TopicPartition] = []
        self.positions: dict[TopicPartition, int] = {}
        self.handed_out = 0

    def partitions_for_topic(self, topic):
        return set(range(len(self.topics[topic]))) if topic in self.topics else set()

    def assign(self, tps):
        self.assigned = list(tps)
        for tp in tps:
            self.positions.setdefault(tp, 0)

    def end_offsets(self, tps):
        return {tp: len(self.topics[tp.topic][tp.partition]) for tp in tps}

    def position(self, tp):
        return self.positions[tp]

    def poll(self, timeout_ms=0, max_records=None):
        out = {}
        room = max_records if max_records is not None else 1 << 30
        for tp in self.assigned:
            log = self.topics[tp.topic][tp.partition]
            start = self.positions[tp]
            batch = log[start:start + min(2, room)]  # small batches: the reader must loop
            room -= len(batch)
            if batch:
                out[tp] = [Rec(v) for v in batch]
                self.positions[tp] = start + len(batch)
                self.handed_out += len(batch)
        return out

    def close(self):
        pass


def test_reader_polls_only_new_records():
    cfg = DashboardConfig(topic_prefix="p-")
    enc = lambda r: json.dumps(r).encode()  # noqa: E731
    topics = {
        "p-site-costs": [[enc(cost("ams", f"2018-07-01T10:0{i}:00Z")) for i in range(5)], []],
        "p-dispatch": [[enc(decision("j1", "dispatched", "2018-07-01T10:01:00Z"))]],
        "p-jobs": [[enc(submit("j1", "2018-07-01T10:00:00Z")), enc(submit("j2", "2018-07-01T10:00:00Z"))]],
        "p-pipeline-metrics": [[enc({"tick": "2018-07-01T10:01:00Z", "cost": 1.0, "pending_jobs": 1})]],
        "p-dead-letter": [[]],
    }
    fake = FakeConsumer(topics)
    reader = TopicReader(cfg, consumer_factory=lambda c: fake)
    first = reader.poll()
    assert first.ok and first.new_records == 9 and reader.missing_topics == []
    assert reader.state.kpis().pending == 1 and reader.lag_by_topic == {
        "p-site-costs": 0, "p-dispatch": 0, "p-jobs": 0, "p-pipeline-metrics": 0, "p-dead-letter": 0}
    assert reader.poll().new_records == 0  # nothing new: nothing re-read
    topics["p-dispatch"][0].append(enc(decision("j2", "dispatched", "2018-07-01T10:02:00Z")))
    topics["p-dead-letter"][0].append(enc({"topic": "prices", "partition": 0, "offset": 1, "error": "x"}))
    again = reader.poll()
    assert again.new_records == 2 and fake.handed_out == 11 and reader.records_read == 11
    k = reader.state.kpis()
    assert (k.pending, k.dispatched, k.dead_letters) == (1, 2, 1)  # pending as of the dispatcher's last tick


def test_reader_budget_leaves_lag_visible():
    cfg = DashboardConfig()
    topics = {"site-costs": [[json.dumps(cost("ams", "2018-07-01T10:00:00Z")).encode()] * 10]}
    reader = TopicReader(cfg, consumer_factory=lambda c: FakeConsumer(topics))
    result = reader.poll(max_records=4)
    assert result.ok and result.new_records == 4
    assert reader.lag_by_topic["site-costs"] == 6
    assert sorted(reader.missing_topics) == ["dead-letter", "dispatch", "jobs", "pipeline-metrics"]
    assert reader.poll().new_records == 6 and reader.lag_by_topic["site-costs"] == 0


def test_reader_says_it_is_catching_up_until_it_has_read_what_was_there_at_start():
    """A page opened on a backlog reads jobs before the decisions about them: until it has read up
    to the end offsets it saw first it says how far behind it is and shows no pending count."""
    cfg = DashboardConfig()
    enc = lambda r: json.dumps(r).encode()  # noqa: E731
    jobs = [enc(submit(f"j{i}", f"2018-07-01T10:0{i}:00Z")) for i in range(6)]
    decisions = [enc(decision(f"j{i}", "dispatched", "2018-07-01T10:10:00Z")) for i in range(5)]
    topics = {"jobs": [jobs], "dispatch": [decisions]}
    reader = TopicReader(cfg, consumer_factory=lambda c: FakeConsumer(topics))
    assert reader.backlog is None and not reader.caught_up  # nothing seen yet

    assert reader.poll(max_records=4).new_records == 4
    assert (reader.backlog, reader.backlog_total) == (7, 11)
    k = reader.state.kpis(reader.lag_by_topic, backlog=reader.backlog)
    assert k.catching_up and k.pending_text() == "catching up"

    topics["jobs"][0].append(enc(submit("j9", "2018-07-01T10:11:00Z")))  # written after the page started
    assert reader.poll(max_records=4).new_records == 4 and reader.backlog == 3
    assert reader.poll(max_records=3).new_records == 3
    assert reader.backlog is None and reader.caught_up and reader.lag_by_topic == {"jobs": 1, "dispatch": 0}
    k = reader.state.kpis(reader.lag_by_topic, backlog=reader.backlog)
    assert not k.catching_up and k.pending_text() == "0"  # no dispatcher tick read: nothing it has seen
    assert [u["job_id"] for u in reader.state.unseen_jobs()] == ["j5"]  # j9 not read yet

    topics["dispatch"][0].extend([enc(decision("j5", "dispatched", "2018-07-01T10:15:00Z"))] * 3)
    reader.poll(max_records=1)  # live updates after that are lag, not catching up again
    assert reader.backlog is None and sum(reader.lag_by_topic.values()) == 3


def test_pending_tile_and_queue_count_the_same_jobs():
    st = DashboardState()
    assert st.kpis().pending == 0 and st.pending_jobs() == []
    rows = [queue_row(f"j{i}", f"2018-07-01T10:0{i}:00Z") for i in range(3)]
    st.apply(METRICS, {"tick": "2018-07-01T10:05:00Z", "shard": 0, "pending_jobs": 2, "queue": rows[:2]})
    st.apply(METRICS, {"tick": "2018-07-01T10:05:00Z", "shard": 1, "pending_jobs": 1, "queue": rows[2:]})
    assert st.kpis().pending == len(st.pending_jobs()) == 3  # shards add up
    st.apply(DISPATCH, decision("j0", "dispatched", "2018-07-01T10:10:00Z"))  # the queue changes at the next tick
    assert st.kpis().pending == len(st.pending_jobs()) == 3
    assert Kpis(pending=1234).pending_text() == "1,234"


def test_reader_without_broker_reports_and_retries():
    calls = []

    def no_broker(cfg):
        calls.append(cfg)
        raise NoBrokersAvailable()

    reader = TopicReader(DashboardConfig(bootstrap="127.0.0.1:1"), consumer_factory=no_broker)
    for _ in range(2):
        result = reader.poll()
        assert not result.ok and result.error == "NoBrokersAvailable"
    assert len(calls) == 2 and not reader.connected and reader.state.empty


# ---------------------------------------------------------------------------- charts
def test_charts_build_valid_vega_lite_with_and_without_data():
    st = DashboardState()
    for site in ("ams", "chi"):
        st.apply(SITE_COSTS, cost(site, "2018-07-01T10:00:00Z"))
        st.apply(SITE_COSTS, cost(site, "2018-07-01T10:05:00Z", available=False))
    st.apply(METRICS, {"tick": "2018-07-01T10:00:00Z", "cost": 1.0, "cost_greedy": 2.0, "cost_naive": 3.0})
    catalogue = {"ams": catalogue_site("ams", "Amsterdam", 52.4, 4.9),
                 "chi": catalogue_site("chi", "Chicago", 41.9, -87.6, synthetic=True)}
    rows = st.current_costs(catalogue)
    spec = charts.site_map(rows).to_dict()
    assert [c["title"] for c in spec["hconcat"]] == ["Europe & east", "Americas"]
    assert "Chicago (synthetic price)" in json.dumps(spec)
    assert len(charts.site_series_chart(st.site_series()).to_dict()["vconcat"]) == 4
    assert charts.cost_chart(st.cost_series()).to_dict()["mark"]["type"] == "line"
    for empty in (charts.site_map([]), charts.site_series_chart([]), charts.cost_chart([])):
        assert empty.to_dict()["mark"]["type"] == "text"
    assert charts.regions_of(DashboardState().current_costs(catalogue))  # sites without data still placed


# ---------------------------------------------------------------------------- job records
def test_build_submit_valid_record():
    record, errors = build_submit("j-9", "2018-07-01T10:00:00Z", 6, 3, 1, deadline_hours=2.5, sites=["ams", "sto"],
                                  known_sites=["ams", "sto", "trn"])
    assert errors == []
    assert record == {"action": "submit", "job_id": "j-9", "submitted_at": "2018-07-01T10:00:00Z",
                      "compute_hours": 6.0, "slots": 3, "priority": 1, "deadline": "2018-07-01T12:30:00Z",
                      "sites": ["ams", "sto"]}
    record, _ = build_submit("j-10", 1530439200000, 1.5, 1, 9)  # epoch ms accepted, no deadline, any site
    assert record == {"action": "submit", "job_id": "j-10", "submitted_at": "2018-07-01T10:00:00Z",
                      "compute_hours": 1.5, "slots": 1, "priority": 9}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_id": " "}, "job id: required"),
        ({"job_id": "a b"}, "job id: letters"),
        ({"submitted_at": "10:00"}, "submitted at"),
        ({"compute_hours": 0}, "compute hours"),
        ({"compute_hours": float("nan")}, "compute hours"),
        ({"slots": 0}, "slots"),
        ({"priority": 10}, "priority"),
        ({"deadline_hours": -1}, "deadline"),
        ({"sites": ["mars"]}, "unknown site(s) mars"),
    ],
)
def test_build_submit_rejects_bad_input(kwargs, message):
    args = {"job_id": "j", "submitted_at": "2018-07-01T10:00:00Z", "compute_hours": 1.0, "slots": 1, "priority": 0,
            "known_sites": ["ams"], **kwargs}
    record, errors = build_submit(**args)
    assert record is None and any(message in e for e in errors), errors


def test_build_cancel():
    assert build_cancel("j-1", "2018-07-01T10:30:00Z") == (
        {"action": "cancel", "job_id": "j-1", "submitted_at": "2018-07-01T10:30:00Z"}, [])
    record, errors = build_cancel("", "2018-07-01T10:30:00Z")
    assert record is None and errors


def test_the_plan_says_why_a_job_waits_in_the_queue_and_in_the_plan_table():
    st = DashboardState()
    st.apply(JOBS, {"action": "submit", "job_id": "j-1", "submitted_at": "2018-07-01T10:00:00Z", "compute_hours": 4,
                    "slots": 2, "priority": 8})
    st.apply(METRICS, {"tick": "2018-07-01T10:05:00Z", "pending_jobs": 1, "planned_jobs": 1, "completed_jobs": 3,
                       "completed_expected_cost": 2.0, "completed_realised_cost": 2.1,
                       "plan": [{"job_id": "j-1", "site_id": "sto", "start_at": "2018-07-02T03:00:00Z",
                                 "priority": 8, "expected_cost": 0.62, "greedy_cost": 1.0, "saving": 0.38,
                                 "forecast_share": 0.0}],
                       "queue": [queue_row("j-1", "2018-07-01T10:00:00Z", 8, "sto", "2018-07-02T03:00:00Z")]})
    (row,) = st.pending_jobs()
    assert row["plan"] == "waiting for 03:00 at sto, 38 % cheaper"
    assert [p["why"] for p in st.plan()] == [row["plan"]]
    k = st.kpis()
    assert k.planned == 1 and k.completed_jobs == 3
    assert k.realised_vs_expected_pct == pytest.approx(5.0)
