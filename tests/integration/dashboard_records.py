"""Scripted output records for the dashboard tests (AppTest and browser), with the numbers the
page must show for them. Written by the tests themselves, so the page is tested without the
full pipeline; shapes are those of ../shared/CONTRACT.md and the pipeline-metrics fields the job writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import create_topics
from udfs import topics as T
from udfs.timeutil import parse_ts_ms

# The schema of conf/sites.yaml (udfs/catalogue.py reads it for the page too).
CATALOGUE = """\
sites:
  - {site_id: ams, name: Amsterdam, region: NL, lat: 52.37, lon: 4.90, capacity_slots: 400,
     it_kw_per_slot: 0.4, offer_interval_min: 60}
  - {site_id: trn, name: Turin, region: IT-NORD, lat: 45.07, lon: 7.69, capacity_slots: 300,
     it_kw_per_slot: 0.4, offer_interval_min: 60}
  - {site_id: sto, name: Stockholm, region: SE3, lat: 59.65, lon: 17.92, capacity_slots: 500,
     it_kw_per_slot: 0.45, offer_interval_min: 60}
  - {site_id: chi, name: Chicago, region: US-MISO, lat: 41.88, lon: -87.63, capacity_slots: 600,
     it_kw_per_slot: 0.4, offer_interval_min: 5, currency: USD, fx_to_eur: 0.847, price_synthetic: true}
  - {site_id: tus, name: Tucson, region: US-WECC, lat: 32.22, lon: -110.97, capacity_slots: 250,
     it_kw_per_slot: 0.4, offer_interval_min: 5, currency: USD, fx_to_eur: 0.847, price_synthetic: true}
"""

SITE_NAMES = {"ams": "Amsterdam", "trn": "Turin", "sto": "Stockholm", "chi": "Chicago", "tus": "Tucson"}
TICKS = ["2018-07-01T10:00:00Z", "2018-07-01T10:05:00Z", "2018-07-01T10:10:00Z"]
PRICE = {"ams": 54.2, "trn": 61.0, "sto": 31.5, "chi": 40.0, "tus": 45.0}
PUE = {"ams": 1.21, "trn": 1.30, "sto": 1.08, "chi": 1.25, "tus": 1.45}


def site_cost(site: str, tick_index: int) -> dict[str, Any]:
    price = PRICE[site] + tick_index  # moves a little each tick
    pue = PUE[site]
    return {
        "site_id": site,
        "tick": TICKS[tick_index],
        "price_per_mwh": price,
        "offer_valid_to": "2018-07-01T11:00:00Z",
        "temp_c": 20.0 + tick_index,
        "rel_humidity": 60.0,
        "pue": pue,
        "cooling_kw": 10.0,
        "cost_per_compute_hour": round(price / 1000 * 0.4 * pue, 6),
        "capacity_slots": 400,
        "available_slots": 200 - 10 * tick_index,
        "available": site != "tus" or tick_index < 2,  # Tucson's offer expires at the last tick
    }


def submit(job_id: str, at: str, priority: int, hours: float = 8.0, slots: int = 2, deadline: str | None = None):
    record = {"action": "submit", "job_id": job_id, "submitted_at": at, "compute_hours": hours, "slots": slots,
              "priority": priority}
    if deadline:
        record["deadline"] = deadline
    return record


def decision(job_id: str, status: str, site: str | None, tick: str, cost: float | None, reason: str | None = None):
    record = {
        "decision_id": f"d-{job_id}-{status}", "job_id": job_id, "status": status, "site_id": site, "tick": tick,
        "start_at": tick if status == "dispatched" else None, "end_at": "2018-07-01T14:10:00Z" if cost else None,
        "expected_cost": cost, "cost_per_compute_hour": 0.0136 if cost else None, "solver": "milp", "solve_ms": 41.0,
    }
    if reason:
        record["reason"] = reason
    return record


JOBS = [
    submit("j-001", "2018-07-01T09:58:00Z", 2),
    submit("j-002", "2018-07-01T09:59:00Z", 5),
    submit("j-003", "2018-07-01T09:30:00Z", 1, deadline="2018-07-01T10:00:00Z"),
    submit("j-004", "2018-07-01T10:01:00Z", 7),
    {"action": "cancel", "job_id": "j-004", "submitted_at": "2018-07-01T10:03:00Z"},
    submit("j-005", "2018-07-01T10:02:00Z", 4, hours=12.0, slots=4, deadline="2018-07-01T16:00:00Z"),
    submit("j-006", "2018-07-01T10:06:00Z", 1, hours=3.0, slots=1),
]
DECISIONS = [
    decision("j-001", "dispatched", "sto", TICKS[0], 0.27),
    decision("j-002", "dispatched", "ams", TICKS[1], 0.42),
    decision("j-003", "missed-deadline", None, TICKS[1], None, reason="deadline 2018-07-01T10:00:00Z passed"),
    decision("j-004", "cancelled", None, TICKS[1], None, reason="cancelled by request"),
]
# the dispatcher's own queue (pipeline-metrics "queue"): j-005 not planned yet, j-006 planned (see "plan")
QUEUE = {
    "j-005": {"job_id": "j-005", "priority": 4, "compute_hours": 12.0, "slots": 4,
              "submitted_at": "2018-07-01T10:02:00Z", "deadline": "2018-07-01T16:00:00Z", "sites": None,
              "site_id": None, "start_at": None},
    "j-006": {"job_id": "j-006", "priority": 1, "compute_hours": 3.0, "slots": 1,
              "submitted_at": "2018-07-01T10:06:00Z", "deadline": None, "sites": None,
              "site_id": "sto", "start_at": "2018-07-02T03:00:00Z"},
}
METRICS = [
    {"tick": TICKS[0], "pending_jobs": 3, "dispatched": 1, "solve_ms": 30.0, "solver": "milp", "cost": 1.0,
     "cost_greedy": 2.0, "cost_naive": 3.0, "offers_expired": 0, "late_events": 1, "duplicates": 0, "dead_letters": 1},
    {"tick": TICKS[1], "pending_jobs": 2, "dispatched": 1, "solve_ms": 41.0, "solver": "milp", "cost": 2.0,
     "cost_greedy": 2.0, "cost_naive": 3.0, "offers_expired": 0, "late_events": 0, "duplicates": 2, "dead_letters": 1},
    # Last tick: optional fields missing on purpose (the page shows what it has).
    {"tick": TICKS[2], "pending_jobs": 2, "solve_ms": 12.4, "solver": "milp", "cost": 3.0, "cost_greedy": 4.0,
     "cost_naive": 4.0, "offers_expired": 1, "planned_jobs": 1, "completed_jobs": 1, "completed_expected_cost": 1.0,
     "completed_realised_cost": 1.1, "completed_compute_hours": 2.0, "shadow_completed_realised_cost": 1.5,
     "shadow_completed_compute_hours": 2.5, "shadow_completed_jobs": 2,
     "queue": [QUEUE["j-005"], QUEUE["j-006"]],
     "plan": [{"job_id": "j-006", "site_id": "sto", "start_at": "2018-07-02T03:00:00Z", "priority": 7,
               "expected_cost": 0.62, "greedy_cost": 1.0, "saving": 0.38, "forecast_share": 0.25}]},
]
DEAD = [
    {"topic": "prices", "partition": 0, "offset": 812, "key": "ams", "raw": '{"site_id":"ams","price_per_mwh":"x"}',
     "error": "price_per_mwh: not a number", "at": "2018-07-01T10:02:00Z"},
    {"topic": "weather", "partition": 1, "offset": 17, "key": "trn", "raw": "{not json", "error": "not JSON",
     "at": "2018-07-01T10:04:00Z"},
]

# What the page must show for the records above.
EXPECTED = {
    "dispatched": "2",
    "pending": "2",  # j-005, j-006 (j-004 was cancelled, the rest decided)
    "missed": "1",
    "cancelled_rejected": "1 / 0",
    "dead_letters": "2",
    "cum_cost": "6.00",
    "cum_naive": "10.00",
    "expected_saving_greedy": "25.0 %",  # expected cost vs greedy priced at first sight: (8 - 6) / 8
    "saving_greedy": "8.3 %",  # realised per compute-hour vs the shadow greedy: 1 - (1.1 / 2) / (1.5 / 2.5)
    "saving_naive": "40.0 %",
    "realised_vs_expected": "+10.0 %",
    "plan_why": "waiting for 03:00 at sto, 38 % cheaper (25 % on forecast prices)",
    "last_solve": "12 ms",
}
RECORD_COUNT = 5 * len(TICKS) + len(JOBS) + len(DECISIONS) + len(METRICS) + len(DEAD)


def all_records() -> list[tuple[str, str, dict[str, Any], int]]:
    """(topic, key, value, timestamp ms) for every scripted record, before any prefix."""
    out = []
    for i, tick in enumerate(TICKS):
        for site in SITE_NAMES:
            out.append((T.SITE_COSTS, site, site_cost(site, i), parse_ts_ms(tick)))
    out += [(T.JOBS, r["job_id"], r, parse_ts_ms(r["submitted_at"])) for r in JOBS]
    out += [(T.DISPATCH, r["job_id"], r, parse_ts_ms(r["tick"])) for r in DECISIONS]
    out += [(T.PIPELINE_METRICS, "metrics", r, parse_ts_ms(r["tick"])) for r in METRICS]
    out += [(T.DEAD_LETTER, r["key"], r, parse_ts_ms(r["at"])) for r in DEAD]
    return out


def write_catalogue(directory: Path) -> Path:
    path = directory / "sites.yaml"
    path.write_text(CATALOGUE)
    return path


def create_dashboard_topics(bootstrap: str, prefix: str, partitions: int = 2) -> None:
    create_topics(bootstrap, [prefix + t for t in T.ALL_TOPICS], partitions)


def produce(bootstrap: str, prefix: str, records: list[tuple[str, str, dict[str, Any], int]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for topic, key, value, ts in records:
            producer.send(prefix + topic, key=key.encode(), value=json.dumps(value).encode(), timestamp_ms=ts)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 20.0) -> list[Any]:
    """Every record of ``topic`` (read_committed, from the beginning), waiting for ``expect`` of them."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()
