"""Live pollers without Kafka: parsing, de-duplication, unchanged offers, retries and failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sources.live import ComEdPoller, HttpPolicy, OpenMeteoPoller, PollError, fetch_json, poll_cycle
from sources.sites import SiteRef

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def test_comed_first_poll_publishes_newest_then_only_new_ones():
    p = ComEdPoller("u", "chi")
    first = p.records(fixture("comed_5minutefeed.json"))
    assert first == [
        {
            "site_id": "chi",
            "price_per_mwh": 26.0,
            "valid_from": "2025-11-23T07:50:00Z",
            "valid_to": "2025-11-23T07:55:00Z",
            "currency": "USD",
            "source": "comed-5min",
        }
    ]
    assert p.records(fixture("comed_5minutefeed.json")) == []  # same feed again: nothing
    nxt = p.records(fixture("comed_5minutefeed_next.json"))
    assert [r["valid_from"] for r in nxt] == ["2025-11-23T07:55:00Z", "2025-11-23T08:00:00Z"]
    assert [r["price_per_mwh"] for r in nxt] == [27.0, 29.0]
    assert p.stats.invalid == 1  # the "bogus" entry


def test_comed_backfill_and_negative_prices():
    p = ComEdPoller("u", "chi", backfill=10)
    recs = p.records(fixture("comed_5minutefeed.json"))
    assert [r["price_per_mwh"] for r in recs] == [31.0, -3.0, 24.0, 26.0]


def test_comed_rejects_a_non_list():
    with pytest.raises(PollError, match="expected a JSON list"):
        ComEdPoller("u", "chi").records({"error": "maintenance"})


def test_open_meteo_observation_and_dedup():
    p = OpenMeteoPoller("u", [SiteRef("ams", 52.37, 4.9)])
    site = p.sites[0]
    rec = p.record(site, fixture("open_meteo_current.json"))
    assert rec == {
        "site_id": "ams",
        "observed_at": "2025-11-23T08:15:00Z",
        "temp_c": 4.3,
        "rel_humidity": 87.0,
        "source": "open-meteo",
    }
    assert p.record(site, fixture("open_meteo_current.json")) is None
    with pytest.raises(PollError, match="unusable response"):
        p.record(site, {"current": {"time": "2025-11-23T08:30"}})


class FakeResponse:
    def __init__(self, status: int, body: object):
        self.status_code, self._body, self.url = status, body, "http://fake"
        self.text = body if isinstance(body, str) else json.dumps(body)

    def json(self):
        if isinstance(self._body, str):
            raise ValueError("not json")
        return self._body


class FakeSession:
    def __init__(self, responses: list):
        self.responses, self.calls = list(responses), 0

    def get(self, url, params=None, timeout=None):
        self.calls += 1
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_retries_with_exponential_backoff_then_succeeds():
    import requests

    waits: list[float] = []
    session = FakeSession([requests.ConnectionError("refused"), FakeResponse(503, "busy"), FakeResponse(200, [1])])
    assert fetch_json(session, "u", None, HttpPolicy(retries=3, backoff_s=0.5), waits.append) == [1]
    assert waits == [0.5, 1.0] and session.calls == 3


def test_gives_up_after_retries_and_does_not_retry_client_errors():
    session = FakeSession([FakeResponse(500, "x")] * 3)
    with pytest.raises(PollError, match="HTTP 500 after 3 attempts"):
        fetch_json(session, "u", None, HttpPolicy(retries=2, backoff_s=0), lambda s: None)
    session = FakeSession([FakeResponse(404, "no")])
    with pytest.raises(PollError, match="HTTP 404"):
        fetch_json(session, "u", None, HttpPolicy(retries=5, backoff_s=0), lambda s: None)
    assert session.calls == 1


def test_poll_cycle_reports_failures_and_goes_on(capsys):
    comed = ComEdPoller("u", "chi")
    session = FakeSession([FakeResponse(500, "x")])
    published: list = []
    assert poll_cycle([comed], session, HttpPolicy(retries=0), lambda t, r: published.append((t, r))) == 0
    assert comed.stats.failures == 1 and "comed poll failed" in capsys.readouterr().err
    session = FakeSession([FakeResponse(200, fixture("comed_5minutefeed.json"))] * 2)
    assert poll_cycle([comed], session, HttpPolicy(retries=0), lambda t, r: published.append((t, r))) == 1
    assert poll_cycle([comed], session, HttpPolicy(retries=0), lambda t, r: published.append((t, r))) == 0
    assert comed.stats.unchanged == 1 and published[0][0] == "prices"
