"""Replay without Kafka: reading folders, filters, fan-out, rebase, keys and record timestamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sources.cli import UserError
from sources.dataset import (
    Dataset,
    _parse_line_slow,
    event_field,
    fanout_offsets,
    fanout_site_ids,
    load_sample,
    parse_line,
)
from sources.faults import FaultConfig
from sources.producer import ListSink
from sources.replay import ReplayConfig, plan_events, run_replay, topic_names
from udfs.timeutil import format_ts, parse_ts_ms

T0 = parse_ts_ms("2018-07-01T00:00:00Z")


def write_sample(root: Path, hours: int = 6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    prices, weather = [], []
    for h in range(hours):
        t = T0 + h * 3_600_000
        for s in ("ams", "sto"):
            prices.append(
                {
                    "site_id": s,
                    "price_per_mwh": 40.0 + h,
                    "valid_from": format_ts(t),
                    "valid_to": format_ts(t + 3_600_000),
                    "currency": "EUR",
                    "source": "smard-day-ahead",
                }
            )
        for m in range(0, 60, 5):
            prices.append(
                {
                    "site_id": "chi",
                    "price_per_mwh": 25.0,
                    "valid_from": format_ts(t + m * 60_000),
                    "valid_to": format_ts(t + (m + 5) * 60_000),
                    "currency": "USD",
                    "source": "synthetic",
                }
            )
        for s in ("ams", "chi", "sto"):
            weather.append({"site_id": s, "observed_at": format_ts(t), "temp_c": 20.5, "rel_humidity": 60.0})
    prices.sort(key=lambda r: r["valid_from"])
    (root / "prices.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in prices))
    (root / "weather.jsonl").write_text("".join(json.dumps(r) + "\n" for r in weather))  # not compact: slow path
    by_site = {"prices": {"file": "prices.jsonl", "by_site": {"ams": 1, "chi": 1, "sto": 1}}}
    (root / "manifest.json").write_text(json.dumps({"topics": by_site}))  # fan-out takes its base sites from here
    return root


def replay(tmp_path: Path, **kw) -> tuple[list, dict]:
    src = write_sample(tmp_path / "sample")
    sink = ListSink()
    summary = run_replay(ReplayConfig(source=str(src), speed=None, progress=False, **kw), sink)
    return sink.sent, summary


def test_everything_in_event_time_order_keyed_by_site_with_event_timestamps(tmp_path):
    sent, summary = replay(tmp_path)
    assert summary["by_topic"] == {"prices": 6 * 14, "weather": 18}
    assert [s[3] for s in sent] == sorted(s[3] for s in sent)
    for topic, key, value, ts in sent:
        rec = json.loads(value)
        assert key.decode() == rec["site_id"]
        assert ts == parse_ts_ms(rec["valid_from" if topic == "prices" else "observed_at"])
    # at equal event time the offer comes before the weather
    first_hour = [s[0] for s in sent if s[3] == T0]
    assert first_hour == ["prices"] * 3 + ["weather"] * 3


def test_start_end_sites_and_topic_names(tmp_path):
    sent, summary = replay(
        tmp_path,
        start_ms=T0 + 3_600_000,
        end_ms=T0 + 2 * 3_600_000,
        sites=("ams", "chi"),
        topic_names=topic_names("x-", weather="wx"),
    )
    assert {s[0] for s in sent} == {"x-prices", "wx"}
    assert {s[1] for s in sent} == {b"ams", b"chi"}
    assert all(T0 + 3_600_000 <= s[3] < T0 + 2 * 3_600_000 for s in sent)
    assert summary["by_topic"] == {"prices": 13, "weather": 2}


def test_fanout_adds_derived_sites_with_documented_offsets(tmp_path):
    sent, summary = replay(tmp_path, fanout=4, topics=("weather", "prices"))
    ids = fanout_site_ids(["ams", "chi", "sto"], 4)
    assert ids == {"ams-f001": "ams", "chi-f002": "chi", "sto-f003": "sto", "ams-f004": "ams"}
    assert summary["fanout_sites"] == ids
    by_key: dict[str, list[dict]] = {}
    for topic, key, value, _ in sent:
        by_key.setdefault(f"{topic}/{key.decode()}", []).append(json.loads(value))
    assert len(by_key["prices/chi-f002"]) == len(by_key["prices/chi"]) == 72
    off = fanout_offsets("ams-f001")
    assert by_key["prices/ams-f001"][0]["price_per_mwh"] == round(40.0 * off["price_factor"], 2)
    assert by_key["weather/ams-f004"][0]["temp_c"] == round(20.5 + fanout_offsets("ams-f004")["temp_offset_c"], 2)
    assert by_key["weather/ams-f004"][0]["derived_from"] == "ams"


def test_rebase_to_now_shifts_every_time_field_by_whole_hours(tmp_path):
    src = write_sample(tmp_path / "s")
    now = parse_ts_ms("2025-11-23T10:37:12Z")
    events, info = plan_events(ReplayConfig(source=str(src), rebase_to_now=True), now_ms=now)
    first = next(events)
    rec = first.parsed()
    assert rec["valid_from"] == "2025-11-23T10:00:00Z" and rec["valid_to"] == "2025-11-23T11:00:00Z"
    assert first.ts == parse_ts_ms("2025-11-23T10:00:00Z") and first.origin_ts == T0
    assert info["delta_ms"] % 3_600_000 == 0


def test_manifest_file_and_faults(tmp_path):
    sent, summary = replay(
        tmp_path, faults=FaultConfig(seed=1, duplicate=0.2, malformed=0.1), manifest_path=tmp_path / "m.json"
    )
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["reconcile"]["ok"]
    assert manifest["sent"]["total"] == len(sent) == summary["records"]
    assert manifest["summary"]["by_topic"] == summary["by_topic"]


def test_load_sample_returns_contract_dicts(tmp_path):
    src = write_sample(tmp_path / "s")
    data = load_sample(src, start="2018-07-01T01:00:00Z", end="2018-07-01T02:00:00Z", sites=["sto"])
    assert [r["site_id"] for r in data["weather"]] == ["sto"]
    assert data["prices"][0]["valid_from"] == "2018-07-01T01:00:00Z"


def test_unreadable_or_unsorted_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        Dataset(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no data files"):
        Dataset(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "weather.jsonl").write_text(
        '{"site_id":"a","observed_at":"2018-07-01T01:00:00Z"}\n{"site_id":"a","observed_at":"2018-07-01T00:00:00Z"}\n'
    )
    with pytest.raises(UserError, match="not sorted"):
        list(Dataset(str(bad)).events("weather"))
    (bad / "weather.jsonl").write_text('{"site_id":"a","observed_at":"yesterday"}\n')
    with pytest.raises(UserError, match="weather.jsonl:1"):
        list(Dataset(str(bad)).events("weather"))


@given(
    site=st.text(min_size=1, max_size=12).filter(lambda s: s.strip() == s and s),
    ms=st.integers(min_value=0, max_value=4_000_000_000_000).map(lambda x: x // 1000 * 1000),
    price=st.floats(allow_nan=False, allow_infinity=False),
    key_first=st.booleans(),
    compact=st.booleans(),
)
def test_fast_path_agrees_with_json(site, ms, price, key_first, compact):
    fields = [("site_id", site), ("valid_from", format_ts(ms)), ("price_per_mwh", price)]
    if not key_first:
        fields.reverse()
    sep = (",", ":") if compact else (", ", ": ")
    line = json.dumps(dict(fields), separators=sep).encode()
    fast, slow = parse_line("prices", line, "x"), _parse_line_slow("prices", line, "x")
    assert (fast.ts, fast.key, fast.value) == (slow.ts, slow.key, slow.value) == (ms, site, line)


# ----------------------------------------------------------------------------- offers published ahead

H = 3_600_000
PUB = T0 - 13 * H  # 2018-06-30T11:00Z: the day-ahead offers of 2018-07-01T00:00..06:00Z were published then


def write_day_ahead_sample(root: Path, hours: int = 6) -> Path:
    """ams: hourly offers published ahead (PUB for the first day, T0 + 2 h for hours from T0 + 4 h);
    chi: 5-minute real-time offers without published_at; weather hourly."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for h in range(hours):
        t = T0 + h * H
        pub = PUB if h < 4 else T0 + 2 * H
        rec = {
            "site_id": "ams",
            "price_per_mwh": 40.0 + h,
            "valid_from": format_ts(t),
            "valid_to": format_ts(t + H),
            "published_at": format_ts(pub),
            "currency": "EUR",
            "source": "smard-day-ahead",
        }
        rows.append((pub, rec))
        for m in range(0, 60, 30):
            rows.append(
                (
                    t + m * 60_000,
                    {
                        "site_id": "chi",
                        "price_per_mwh": 25.0,
                        "valid_from": format_ts(t + m * 60_000),
                        "valid_to": format_ts(t + (m + 30) * 60_000),
                        "currency": "USD",
                        "source": "synthetic",
                    },
                )
            )
    rows.sort(key=lambda r: (r[0], r[1]["site_id"]))
    (root / "prices.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for _, r in rows))
    weather = [{"site_id": "ams", "observed_at": format_ts(T0 + h * H), "temp_c": 20.0} for h in range(hours)]
    (root / "weather.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in weather))
    return root


def test_offer_event_time_is_published_at_when_present_else_valid_from():
    ahead = (
        b'{"site_id":"ams","price_per_mwh":1.0,"valid_from":"2018-07-01T22:00:00Z",'
        b'"published_at":"2018-07-01T10:45:00Z"}'
    )
    now = b'{"site_id":"chi","price_per_mwh":1.0,"valid_from":"2018-07-01T22:00:00Z"}'
    null = b'{"site_id":"chi","published_at":null,"valid_from":"2018-07-01T22:00:00Z"}'
    assert parse_line("prices", ahead, "x").ts == parse_ts_ms("2018-07-01T10:45:00Z")
    assert parse_line("prices", now, "x").ts == parse_ts_ms("2018-07-01T22:00:00Z")
    assert parse_line("prices", null, "x").ts == parse_ts_ms("2018-07-01T22:00:00Z")
    assert _parse_line_slow("prices", ahead, "x").ts == parse_ts_ms("2018-07-01T10:45:00Z")
    assert event_field("prices", json.loads(ahead)) == "published_at"
    assert event_field("prices", json.loads(null)) == event_field("prices", json.loads(now)) == "valid_from"
    assert event_field("weather", {"published_at": "x"}) == "observed_at"  # only prices have it
    with pytest.raises(UserError, match="published_at"):
        parse_line("prices", b'{"site_id":"ams","valid_from":"2018-07-01T22:00:00Z","published_at":"soon"}', "x")


def test_replay_sends_day_ahead_offers_at_publication_and_real_time_ones_when_in_force(tmp_path):
    src = write_day_ahead_sample(tmp_path / "s")
    sink = ListSink()
    run_replay(ReplayConfig(source=str(src), speed=None, progress=False), sink)
    assert [s[3] for s in sink.sent] == sorted(s[3] for s in sink.sent)
    for topic, key, value, ts in sink.sent:
        rec = json.loads(value)
        if topic == "prices" and key == b"ams":
            assert ts == parse_ts_ms(rec["published_at"]) < parse_ts_ms(rec["valid_from"])
        elif topic == "prices":
            assert "published_at" not in rec and ts == parse_ts_ms(rec["valid_from"])
        else:
            assert ts == parse_ts_ms(rec["observed_at"])
    # the first four ams offers go out before anything else, 13 h ahead of the first one's validity
    assert [(s[1], s[3]) for s in sink.sent[:4]] == [(b"ams", PUB)] * 4
    assert Dataset(str(src)).events("prices").__next__().ts == PUB


def test_start_keeps_offers_published_before_it_that_are_still_in_force(tmp_path):
    src = write_day_ahead_sample(tmp_path / "s")
    data = load_sample(src, topics=["prices"], start=T0 + H, end=T0 + 3 * H)
    ams = [r["valid_from"] for r in data["prices"] if r["site_id"] == "ams"]
    # published at PUB (before start): the hours still in force at T0 + 1 h, not the one that ended
    assert ams == [format_ts(T0 + h * H) for h in (1, 2, 3)] + [format_ts(T0 + h * H) for h in (4, 5)]
    chi = [r["valid_from"] for r in data["prices"] if r["site_id"] == "chi"]
    assert chi == [format_ts(T0 + H + m * 30 * 60_000) for m in range(4)]  # real-time: event time in [start, end)
    # a start after everything was published: only the offers in force from it on
    late = load_sample(src, topics=["prices"], start=T0 + 5 * H, sites=["ams"])
    assert [r["valid_from"] for r in late["prices"]] == [format_ts(T0 + 5 * H)]


def test_replay_paces_from_start_not_from_the_earlier_publication(tmp_path):
    import time

    src = write_day_ahead_sample(tmp_path / "s")
    sink = ListSink()
    began = time.monotonic()
    # 13 data-hours of publications before --start would take 13 s at this speed; the hour after it 1 s
    summary = run_replay(ReplayConfig(source=str(src), speed=3600.0, start_ms=T0, end_ms=T0 + H, progress=False), sink)
    assert time.monotonic() - began < 5
    assert sink.sent[0][3] == PUB and summary["records"] == len(sink.sent)


def test_rebase_to_now_shifts_published_at_with_the_other_times(tmp_path):
    src = write_day_ahead_sample(tmp_path / "s")
    now = parse_ts_ms("2025-11-23T10:37:12Z")
    events, info = plan_events(ReplayConfig(source=str(src), rebase_to_now=True), now_ms=now)
    first = next(events)
    rec = first.parsed()
    assert info["delta_ms"] == parse_ts_ms("2025-11-23T10:00:00Z") - PUB
    assert rec["published_at"] == "2025-11-23T10:00:00Z" and first.ts == parse_ts_ms("2025-11-23T10:00:00Z")
    assert rec["valid_from"] == "2025-11-23T23:00:00Z" and rec["valid_to"] == "2025-11-24T00:00:00Z"
    assert first.origin_ts == PUB


def test_unsorted_prices_name_the_event_time_rule(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "prices.jsonl").write_text(
        '{"site_id":"a","valid_from":"2018-07-01T01:00:00Z"}\n'
        '{"site_id":"a","valid_from":"2018-07-02T00:00:00Z","published_at":"2018-07-01T00:45:00Z"}\n'
    )
    with pytest.raises(UserError, match=r"prices.jsonl:2: not sorted by event time \(published_at, else valid_from\)"):
        list(Dataset(str(bad)).events("prices"))


@given(
    site=st.text(min_size=1, max_size=12).filter(lambda s: s.strip() == s and s),
    ms=st.integers(min_value=0, max_value=4_000_000_000_000).map(lambda x: x // 1000 * 1000),
    lead=st.one_of(st.none(), st.just("null"), st.integers(min_value=0, max_value=200_000_000)),
    order=st.permutations(range(4)),
    compact=st.booleans(),
)
def test_fast_path_agrees_with_json_with_published_at(site, ms, lead, order, compact):
    fields = [("site_id", site), ("valid_from", format_ts(ms)), ("price_per_mwh", 1.5), ("source", "x")]
    if lead == "null":
        fields[3] = ("published_at", None)
    elif lead is not None:
        fields[3] = ("published_at", format_ts(max(0, ms - lead // 1000 * 1000)))
    sep = (",", ":") if compact else (", ", ": ")
    line = json.dumps(dict(fields[i] for i in order), separators=sep).encode()
    fast, slow = parse_line("prices", line, "x"), _parse_line_slow("prices", line, "x")
    expected = ms if lead in (None, "null") else max(0, ms - lead // 1000 * 1000)
    assert (fast.ts, fast.key, fast.value) == (slow.ts, slow.key, slow.value) == (expected, site, line)
