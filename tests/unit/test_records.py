"""Input validation (udfs.records): every rule with its dead-letter reason."""

from __future__ import annotations

import json

import pytest

from udfs import topics
from udfs.records import DEFAULT_REL_HUMIDITY, RecordError, parse_input
from udfs.timeutil import parse_ts_ms

SITES = {"ams", "sto"}
OFFER = {"site_id": "ams", "price_per_mwh": 54.2, "valid_from": "2018-07-01T10:00:00Z",
         "valid_to": "2018-07-01T11:00:00Z", "currency": "EUR"}


def parse(topic: str, rec: dict):
    return parse_input(topic, json.dumps(rec), SITES)


def test_negative_prices_are_valid_market_data() -> None:
    p = parse(topics.PRICES, OFFER | {"price_per_mwh": -76.01})
    assert p.record["price_per_mwh"] == -76.01 and p.event_ms == parse_ts_ms("2018-07-01T10:00:00Z")


def test_published_at_is_the_event_time_of_an_offer() -> None:
    p = parse(topics.PRICES, OFFER | {"published_at": "2018-06-30T10:45:00Z"})
    assert p.event_ms == parse_ts_ms("2018-06-30T10:45:00Z")
    assert p.record["valid_from_ms"] == parse_ts_ms("2018-07-01T10:00:00Z")


@pytest.mark.parametrize("change, reason", [
    ({"price_per_mwh": "cheap"}, "price_per_mwh: not a number"),
    ({"price_per_mwh": 1e9}, "price_per_mwh: 1e+09 is above 100000"),
    ({"valid_to": "2018-07-01T09:00:00Z"}, "valid_to: not after valid_from"),
    ({"published_at": "2018-07-01T10:30:00Z"}, "published_at: after valid_from"),
    ({"site_id": "xyz"}, "site_id: unknown site 'xyz'"),
])
def test_bad_offers_say_why(change: dict, reason: str) -> None:
    with pytest.raises(RecordError, match=reason.replace("+", r"\+")):
        parse(topics.PRICES, OFFER | change)


def test_weather_humidity_is_optional_with_a_documented_default() -> None:
    w = parse(topics.WEATHER, {"site_id": "sto", "observed_at": "2018-07-01T10:00:00Z", "temp_c": 21.5})
    assert w.record["rel_humidity"] == DEFAULT_REL_HUMIDITY
    with pytest.raises(RecordError, match="rel_humidity: 120 is above 100"):
        parse(topics.WEATHER, {"site_id": "sto", "observed_at": "2018-07-01T10:00:00Z", "temp_c": 1.0,
                               "rel_humidity": 120})


def test_job_allow_list_keeps_its_order_and_home_is_checked() -> None:
    j = parse(topics.JOBS, {"action": "submit", "job_id": "j", "submitted_at": "2018-07-01T10:00:00Z",
                            "compute_hours": 2, "slots": 1, "priority": 3, "sites": ["sto", "ams", "sto"]})
    assert j.record["sites"] == ["sto", "ams"]
    with pytest.raises(RecordError, match="home: unknown site 'nyc'"):
        parse(topics.JOBS, {"action": "submit", "job_id": "j", "submitted_at": "2018-07-01T10:00:00Z",
                            "compute_hours": 2, "slots": 1, "priority": 3, "home": "nyc"})
