"""Job validation (udfs.records): its rules with their dead-letter reasons. The site topics' rules are
tested on the JVM (tests/unit/test_jvm_operators.py)."""

from __future__ import annotations

import json

import pytest

from udfs import topics
from udfs.records import RecordError, parse_input

SITES = {"ams", "sto"}
OFFER = {"site_id": "ams", "price_per_mwh": 54.2, "valid_from": "2018-07-01T10:00:00Z",
         "valid_to": "2018-07-01T11:00:00Z", "currency": "EUR"}
JOB = {"action": "submit", "job_id": "j", "submitted_at": "2018-07-01T10:00:00Z", "compute_hours": 2, "slots": 1,
       "priority": 3}


def parse(topic: str, rec: dict):
    return parse_input(topic, json.dumps(rec), SITES)


def test_site_topics_are_not_parsed_in_python() -> None:
    # their rules live on the JVM (InputRecords.java, tests/unit/test_jvm_operators.py)
    with pytest.raises(RecordError, match="not parsed in Python"):
        parse(topics.PRICES, OFFER)


@pytest.mark.parametrize("change, reason", [
    ({"priority": 12}, "priority: 12 is outside 0..9"),
    ({"slots": 1.5}, "slots: not an integer"),
    ({"compute_hours": 0}, "compute_hours: must be positive"),
    ({"deadline": "2018-07-01T09:00:00Z"}, "deadline: before submitted_at"),
    ({"submitted_at": "2018-07-01T10:00:00"}, "submitted_at: timestamp without a time zone"),
    ({"sites": []}, "sites: not a non-empty list of site ids"),
    ({"sites": ["ams", "xyz"]}, "sites: unknown site 'xyz'"),
    ({"action": "launch"}, "action: 'launch' is not submit or cancel"),
])
def test_bad_jobs_say_why(change: dict, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        parse(topics.JOBS, JOB | change)


def test_job_allow_list_keeps_its_order_and_home_is_checked() -> None:
    j = parse(topics.JOBS, {"action": "submit", "job_id": "j", "submitted_at": "2018-07-01T10:00:00Z",
                            "compute_hours": 2, "slots": 1, "priority": 3, "sites": ["sto", "ams", "sto"]})
    assert j.record["sites"] == ["sto", "ams"]
    with pytest.raises(RecordError, match="home: unknown site 'nyc'"):
        parse(topics.JOBS, {"action": "submit", "job_id": "j", "submitted_at": "2018-07-01T10:00:00Z",
                            "compute_hours": 2, "slots": 1, "priority": 3, "home": "nyc"})
