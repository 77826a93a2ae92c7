"""Sample-data parsing: SMARD local time (DST gap and repeat) to UTC, EPW re-stamping, the
synthetic US price model, and (when built) the real data/sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sources import sample_data as sd
from sources.cli import UserError
from udfs.timeutil import format_ts, parse_ts_ms

SMARD_HEADER = "\ufeffDate;Time of day;Netherlands[€/MWh];Sweden 4[€/MWh]\n"


def utc(date: str, clock: str, seen: set[int] | None = None) -> str:
    ms = sd.cet_local_to_utc_ms(date, clock, seen if seen is not None else set())
    return "None" if ms is None else format_ts(ms)


def test_winter_and_summer_offsets():
    assert utc("Jan 1, 2018", "12:00 AM") == "2017-12-31T23:00:00Z"
    assert utc("Jul 1, 2018", "12:00 PM") == "2018-07-01T10:00:00Z"
    assert utc("Dec 31, 2018", "11:00 PM") == "2018-12-31T22:00:00Z"


def test_march_gap():
    # 2018-03-25: clocks jump from 02:00 CET to 03:00 CEST; 02:xx local does not exist
    assert utc("Mar 25, 2018", "1:00 AM") == "2018-03-25T00:00:00Z"
    assert utc("Mar 25, 2018", "2:00 AM") == "None"
    assert utc("Mar 25, 2018", "3:00 AM") == "2018-03-25T01:00:00Z"


def test_october_repeat():
    # 2018-10-28: 02:00-03:00 local happens twice, first in CEST (UTC+2) then in CET (UTC+1)
    seen: set[int] = set()
    first = sd.cet_local_to_utc_ms("Oct 28, 2018", "2:00 AM", seen)
    seen.add(first)
    second = sd.cet_local_to_utc_ms("Oct 28, 2018", "2:00 AM", seen)
    assert format_ts(first) == "2018-10-28T00:00:00Z"
    assert format_ts(second) == "2018-10-28T01:00:00Z"
    assert utc("Oct 28, 2018", "1:00 AM") == "2018-10-27T23:00:00Z"
    assert utc("Oct 28, 2018", "3:00 AM") == "2018-10-28T02:00:00Z"


def _smard_file(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "smard.csv"
    path.write_text(SMARD_HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_parse_smard_across_both_switches_is_hourly_in_utc(tmp_path):
    rows = [
        "Mar 25, 2018;1:00 AM;10;20",
        "Mar 25, 2018;3:00 AM;11;-",
        "Mar 25, 2018;4:00 AM;12;22",
        "Oct 28, 2018;1:00 AM;30;40",
        "Oct 28, 2018;2:00 AM;31;41",
        "Oct 28, 2018;2:00 AM;32;42",
        "Oct 28, 2018;3:00 AM;33;43",
    ]
    series = sd.parse_smard(_smard_file(tmp_path, rows), ["Netherlands", "Sweden 4"])
    nl = series["Netherlands"].points
    assert [format_ts(t) for t, _ in nl] == [
        "2018-03-25T00:00:00Z",
        "2018-03-25T01:00:00Z",
        "2018-03-25T02:00:00Z",
        "2018-10-27T23:00:00Z",
        "2018-10-28T00:00:00Z",
        "2018-10-28T01:00:00Z",
        "2018-10-28T02:00:00Z",
    ]
    assert [p for _, p in nl] == [10, 11, 12, 30, 31, 32, 33]
    assert series["Sweden 4"].missing == 1 and len(series["Sweden 4"].points) == 6


def test_parse_smard_rejects_a_nonexistent_local_time(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sd.parse_smard(_smard_file(tmp_path, ["Mar 25, 2018;2:00 AM;1;2"]), ["Netherlands"])


def test_parse_smard_unknown_zone(tmp_path):
    with pytest.raises(UserError, match="price zone column missing"):
        sd.parse_smard(_smard_file(tmp_path, ["Jan 1, 2018;12:00 AM;1;2"]), ["Atlantis"])


def _epw(tmp_path: Path, tz: float, rows: list[tuple[int, int, int, float, float]]) -> Path:
    header = [f"LOCATION,TEST,-,XXX,TMY3,000000,41.98,-87.92,{tz},201.0"] + ["X"] * 7
    body = [f"1990,{m},{d},{h},0,flags,{t},0.0,{rh},99500" for m, d, h, t, rh in rows]
    path = tmp_path / "t.epw"
    path.write_text("\n".join(header + body) + "\n")
    return path


def test_epw_hour_ending_local_standard_time_to_utc_and_wrap(tmp_path):
    path = _epw(tmp_path, -6.0, [(1, 1, 1, -5.0, 80), (7, 1, 12, 25.5, 55), (12, 31, 24, -3.0, 101)])
    ws = sd.parse_epw(path, sd.WeatherFile("x", "t.epw", "test"))
    got = [(format_ts(t), temp, rh) for t, temp, rh in ws.points]
    # Dec 31 hour 24 LST = 2019-01-01T06:00Z, wrapped one year back into 2018; RH clipped to 100
    assert got == [
        ("2018-01-01T06:00:00Z", -3.0, 100.0),
        ("2018-01-01T07:00:00Z", -5.0, 80.0),
        ("2018-07-01T18:00:00Z", 25.5, 55.0),
    ]
    assert ws.wrapped == 1 and ws.utc_offset_h == -6.0


def test_epw_pvgis_hour_start_utc(tmp_path):
    path = _epw(tmp_path, 1.0, [(1, 1, 1, 2.0, 90)])
    ws = sd.parse_epw(path, sd.WeatherFile("x", "t.epw", "pvgis", utc_offset_h=0.0, hour_start=True))
    assert format_ts(ws.points[0][0]) == "2018-01-01T00:00:00Z"


def test_synthetic_prices_are_deterministic_5_minute_dollars_per_mwh():
    model = sd.SyntheticPrice(2.6, -6, 101)
    day = parse_ts_ms("2018-07-02T00:00:00Z")
    a = sd.synthetic_prices(model, day, day + 86_400_000)
    assert a == sd.synthetic_prices(model, day, day + 86_400_000)
    assert len(a) == 288 and all(b[0] - a_[0] == 300_000 for a_, b in zip(a, a[1:], strict=False))
    prices = [p for _, p in a]
    assert -10 <= min(prices) and max(prices) < 1000  # $/MWh: cents/kWh x 10, floor -1 cent
    assert 15 < sum(prices) / len(prices) < 60  # around a ComEd-like 2-4 cents/kWh
    assert sd.synthetic_prices(sd.SyntheticPrice(2.6, -6, 102), day, day + 86_400_000) != a


def test_sha256_mismatch_is_a_clear_error(tmp_path):
    pkg = sd.Package("fake", "1.0", "fake-1.0.whl", "0" * 64)
    (tmp_path / "fake-1.0.whl").write_bytes(b"not the real file")
    with pytest.raises(UserError, match="sha256 mismatch for fake-1.0.whl"):
        sd.fetch_package(pkg, tmp_path)


SAMPLE = sd.SAMPLE_DIR


@pytest.mark.usefixtures("sample_data")
def test_built_sample_is_complete_and_hourly_in_utc():
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    assert set(manifest["sites"]) == {"ams", "trn", "sto", "chi", "tus"}
    assert manifest["topics"]["weather"]["by_site"] == {s: 8760 for s in manifest["sites"]}
    assert manifest["topics"]["prices"]["by_site"]["chi"] == 105_120
    eu: dict[str, list[int]] = {"ams": [], "trn": [], "sto": []}
    last_weather = ""
    with open(SAMPLE / "prices.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["site_id"] in eu:
                eu[rec["site_id"]].append(parse_ts_ms(rec["valid_from"]))
                assert parse_ts_ms(rec["valid_to"]) - parse_ts_ms(rec["valid_from"]) == 3_600_000
                assert rec["currency"] == "EUR" and rec["source"] == "smard-day-ahead"
            else:
                assert rec["source"] == "synthetic" and rec["currency"] == "USD"
    for site, times in eu.items():
        # 8760 distinct consecutive UTC hours: no hole at the March gap, no overlap at the October repeat
        assert len(times) == 8760 - manifest["sites"][site]["price"]["missing_hours_skipped"]
        assert all(b - a == 3_600_000 for a, b in zip(times, times[1:], strict=False)), site
        assert format_ts(times[0]) == "2017-12-31T23:00:00Z"
    with open(SAMPLE / "weather.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            assert rec["observed_at"] >= last_weather
            last_weather = rec["observed_at"]
            assert -40 < rec["temp_c"] < 50 and 0 <= rec["rel_humidity"] <= 100


def _local_day_hours(day: str) -> list[int]:
    """UTC starts of every hour of a local CET/CEST calendar day (23, 24 or 25 of them)."""
    seen: set[int] = set()
    out = []
    month, d, year = day.split()
    for h in range(24):
        clock = f"{h % 12 or 12}:00 {'AM' if h < 12 else 'PM'}"
        for _ in range(2):  # the October repeat: 02:00 twice
            ms = sd.cet_local_to_utc_ms(f"{month} {d}, {year}", clock, seen)
            if ms is None or ms in seen:
                break
            seen.add(ms)
            out.append(ms)
    return sorted(out)


@pytest.mark.parametrize(
    ("delivery_day", "hours", "published"),
    [
        ("Jan 15 2018", 24, "2018-01-14T11:45:00Z"),  # winter: 12:45 CET = 11:45Z
        ("Jul 2 2018", 24, "2018-07-01T10:45:00Z"),  # summer: 12:45 CEST = 10:45Z
        ("Mar 25 2018", 23, "2018-03-24T11:45:00Z"),  # the spring switch day, published the day before in CET
        ("Mar 26 2018", 24, "2018-03-25T10:45:00Z"),  # published on the switch day, after it: CEST
        ("Oct 28 2018", 25, "2018-10-27T10:45:00Z"),  # the autumn switch day (25 h), published in CEST
        ("Oct 29 2018", 24, "2018-10-28T11:45:00Z"),  # published on the switch day, after it: CET
        ("Jan 1 2018", 24, "2017-12-31T11:45:00Z"),  # the sample's first day
    ],
)
def test_day_ahead_offer_is_published_at_1245_local_the_day_before_delivery(delivery_day, hours, published):
    starts = _local_day_hours(delivery_day)
    assert len(starts) == hours
    assert {format_ts(sd.day_ahead_published_ms(t)) for t in starts} == {published}
    pub = parse_ts_ms(published)
    # the first hour of the day is known 11 h 15 min ahead, the last one 22-24 h more
    assert starts[0] - pub == 11 * 3_600_000 + 15 * 60_000
    assert starts[-1] - pub == (hours - 1 + 11) * 3_600_000 + 15 * 60_000
    # the hour before the delivery day belongs to the previous day's auction
    previous = sd.day_ahead_published_ms(starts[0] - 3_600_000)
    assert pub - 25 * 3_600_000 <= previous <= pub - 23 * 3_600_000
    assert format_ts(previous)[11:] in ("10:45:00Z", "11:45:00Z")


@pytest.mark.usefixtures("sample_data")
def test_built_sample_offers_carry_their_publication_and_the_file_is_in_event_time_order():
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    assert manifest["builder_version"] == sd.BUILDER_VERSION
    prices = manifest["topics"]["prices"]
    assert prices["event_time_field"].startswith("published_at when present")
    assert prices["first"] == "2017-12-31T11:45:00Z"
    assert manifest["sites"]["ams"]["price"]["published_at"]
    assert manifest["sites"]["chi"]["price"]["published_at"] is None
    last: tuple[int, str] = (0, "")
    last_valid: dict[tuple[int, str], int] = {}
    with_pub = 0
    with open(SAMPLE / "prices.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            valid_from = parse_ts_ms(rec["valid_from"])
            if rec["source"] == "smard-day-ahead":
                ts = parse_ts_ms(rec["published_at"])
                assert ts == sd.day_ahead_published_ms(valid_from)
                assert 11 * 3_600_000 < valid_from - ts < 36 * 3_600_000
                with_pub += 1
            else:
                assert "published_at" not in rec  # synthetic real-time prices: known once in force
                ts = valid_from
            key = (ts, rec["site_id"])
            assert key >= last, line
            assert last_valid.get(key, -1) < valid_from  # one publication of a site: hours in order
            last, last_valid[key] = key, valid_from
    assert with_pub == 3 * 8760
