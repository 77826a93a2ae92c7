"""The per-tick and per-event fast paths give exactly what the plain computations give.

Dispatcher.run_tick remembers site-costs records per site and writes their JSON itself
(udfs.dispatcher._SiteRecords, udfs.cost.SiteCostMemo); SiteTracker.inputs_at/prune, the price
and weather parsers, Offer.checked, fingerprint and the timestamp helpers take shortcuts. Each
test below compares a shortcut with the straightforward computation on varied inputs (None
price, offline, capacity override, committed slots, zeros of both signs, ints for floats,
values out of range), so a cache or shortcut that diverges, even in one byte, fails.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import replace
from datetime import datetime

import pytest

import udfs.dispatcher as dispatcher_mod
import udfs.records as records_mod
from udfs import topics
from udfs.catalogue import Catalogue, Site, ThermalLimits, load_catalogue
from udfs.cost import SiteCostMemo, site_cost
from udfs.dispatch import DispatchConfig
from udfs.dispatcher import Dispatcher, _site_cost_record
from udfs.objective import SiteState
from udfs.offers import Offer
from udfs.records import ParsedRecord, RecordError, parse_input
from udfs.site_tracker import SiteInputs, SiteTracker, fingerprint
from udfs.timeutil import _format_ts, format_ts, parse_ts_ms

T0 = 1_530_403_200_000  # 2018-07-01T00:00:00Z
TICK = 300_000
H = 3_600_000


def _dumps(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"), allow_nan=False)


def _outcome(fn):
    """Value, or the exception's type and message: two computations agree on both."""
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - comparing whatever is raised
        return ("raised", type(exc).__name__, str(exc))


def _exact(a, b) -> bool:
    """Equal and printed the same (tells -0.0 from 0.0, 1 from 1.0 and True)."""
    return type(a) is type(b) and repr(a) == repr(b)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    base = load_catalogue(None)
    odd = Site(site_id="odd", name="Odd", region="x", lat=0.0, lon=0.0, capacity_slots=7, it_kw_per_slot=1.3,
               offer_interval_min=5, currency="USD", fx_to_eur=0.847, fixed_cost_per_slot_hour=0.0123,
               thermal=ThermalLimits(derate_start_c=20.0, derate_max_c=30.0, derate_floor=0.25))
    return Catalogue(base.sites + (odd,), home_region=base.home_region)


# ---------------------------------------------------------------------- site cost
PRICES = [None, 0.0, -0.0, 12.5, 45.123456789, 99_999.9, -3.5, 1e300, math.nan, 7, True]
TEMPS = [None, -95.0, -4.0, 0.0, -0.0, 17.9, 21.3, 25.0, 36.5, 45.0, 50.0, math.inf, 3, False]
RHS = [None, 0.0, 55.0, 60.0, 99.9, 100.0, 101.0, math.nan, 80]
COMMITTED = [0, 3, 280, 1000, -1, 2.0]
ONLINE = [True, False, 1]
CAPACITY = [None, 0, 10, 399, -5, True, 2.5]


def test_memo_fields_are_site_cost_fields(catalogue: Catalogue) -> None:
    rng = random.Random(7)
    grid = list(itertools.product(PRICES, TEMPS, RHS, COMMITTED, ONLINE, CAPACITY))
    for site in catalogue:
        memo = SiteCostMemo(site)
        # every combination once, then a shuffled replay: the weather memo is hit and cleared
        for price, temp, rh, committed, online, cap in grid + rng.sample(grid, 3000):
            want = _outcome(lambda: site_cost(site, price_per_mwh=price, temp_c=temp, rel_humidity=rh,  # noqa: B023
                                              committed_slots=committed, online=online,  # noqa: B023
                                              capacity_slots=cap))  # noqa: B023
            got = _outcome(lambda: memo.fields(price, temp, rh, committed, online, cap))  # noqa: B023
            if got == ("ok", None):
                continue  # outside the fast domain: the caller uses site_cost
            if want[0] == "raised":
                assert got == want, (site.site_id, price, temp, rh, committed, online, cap)
                continue
            sc = want[1]
            expected = (sc.pue, sc.cooling_kw, sc.cost_per_compute_hour, sc.cost_per_compute_hour_eur,
                        sc.capacity_slots, sc.available_slots, sc.available, sc.reason)
            assert got[0] == "ok" and len(got[1]) == len(expected)
            for a, b in zip(got[1], expected, strict=True):
                assert _exact(a, b), (site.site_id, price, temp, rh, committed, online, cap, got[1], expected)


def test_memo_takes_the_fast_path_for_ordinary_inputs(catalogue: Catalogue) -> None:
    memo = SiteCostMemo(catalogue["ams"])
    assert memo.fields(45.2, 21.3, 65.0, 12, True, None) is not None
    assert memo.fields(None, None, None, 0, False, 10) is not None


# ---------------------------------------------------------------------- run_tick
def _varied_inputs(catalogue: Catalogue, rng: random.Random, tick_ms: int, k: int) -> dict[str, SiteInputs]:
    """Per site: mostly repeated inputs (cache hits), sometimes new values or odd ones."""
    out = {}
    for i, site in enumerate(catalogue):
        if rng.random() < 0.08:
            continue  # no inputs this tick
        slow = k // 12  # hourly values repeat for twelve ticks
        price = rng.choice([None, 0.0, -0.0, 55.5, 1e300, 7, 20.0 + i + slow * 0.37, 33.25]) if rng.random() < 0.3 \
            else 40.0 + i + slow * 0.5
        temp = rng.choice([None, 0.0, -0.0, 38.0, 21, 12.75]) if rng.random() < 0.3 else 15.0 + i + (slow % 5)
        rh = rng.choice([None, 0.0, 100.0, 70]) if rng.random() < 0.2 else 50.0 + slow % 7
        if temp is None and rng.random() < 0.5:
            rh = math.nan  # never priced (no temperature): only JSON refuses it
        online = rng.random() > 0.1 if rng.random() < 0.5 else True
        cap = rng.choice([None, None, 0, 5, 150, 1000])
        currency = rng.choice(["", site.currency, site.currency])
        valid_to = None if price is None else rng.choice([tick_ms + H, tick_ms + 1500, T0 + 7 * H])
        out[site.site_id] = SiteInputs(site.site_id, tick_ms, price, valid_to, currency, temp, rh, online, cap)
    return out


def _job_events(rng: random.Random, tick_ms: int, n: int, k: int) -> list[ParsedRecord]:
    events = []
    for j in range(n):
        rec = {"action": "submit", "job_id": f"j{k}-{j}", "submitted_at": format_ts(tick_ms - 60_000),
               "compute_hours": rng.choice([0.5, 2.0, 8.0]), "slots": rng.choice([1, 4, 40]),
               "priority": rng.randint(0, 9)}
        events.append(parse_input(topics.JOBS, json.dumps(rec)))
    return events


def _untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "solve_ms"} for r in records]


def _expected_site_loop(d: Dispatcher, tick_ms: int, inputs: dict[str, SiteInputs]):
    """run_tick's site loop written out plainly (as before the fast path): records and states."""
    running = [r for r in d.running if r[3] > tick_ms]
    committed: dict[str, int] = {}
    for _, site_id, slots, _ in running:
        committed[site_id] = committed.get(site_id, 0) + slots
    records, states = [], []
    for site_id in sorted(inputs):
        site = d.catalogue.get(site_id)
        if site is None:
            continue
        inp = inputs[site_id]
        sc = site_cost(site, price_per_mwh=inp.price_per_mwh, temp_c=inp.temp_c, rel_humidity=inp.rel_humidity,
                       committed_slots=committed.get(site_id, 0), online=inp.online, capacity_slots=inp.capacity_slots)
        records.append(_site_cost_record(inp, sc, tick_ms))
        if sc.available and sc.available_slots > 0 and sc.cost_per_compute_hour_eur is not None:
            states.append(SiteState(site_id=site_id, cost_per_compute_hour=sc.cost_per_compute_hour_eur,
                                    available_slots=sc.available_slots, region=site.region,
                                    price_per_mwh=inp.price_per_mwh * site.fx_to_eur))
    return records, states


def test_run_tick_site_costs_match_the_plain_computation(catalogue: Catalogue, monkeypatch) -> None:
    seen_states: list[list[SiteState]] = []
    real_solve = dispatcher_mod.solve_dispatch

    def spy(jobs, site_states, tick_ms, *, config):
        seen_states.append(list(site_states))
        return real_solve(jobs, site_states, tick_ms, config=config)

    monkeypatch.setattr(dispatcher_mod, "solve_dispatch", spy)
    rng = random.Random(11)
    config = DispatchConfig(tick_len_ms=TICK, time_limit_s=5.0)
    modes = [{}, {"site_cost_json": True}, {"site_cost_dicts": False, "site_cost_json": True}]
    dispatchers = [Dispatcher(catalogue, config) for _ in modes]
    hits = 0
    for k in range(160):
        tick_ms = T0 + k * TICK
        inputs = _varied_inputs(catalogue, rng, tick_ms, k)
        events = _job_events(rng, tick_ms, rng.choice([0, 0, 1, 3]), k)
        want_records, want_states = _expected_site_loop(dispatchers[0], tick_ms, inputs)
        want_json = []
        for rec in want_records:
            try:
                want_json.append(("ok", _dumps(rec)))
            except ValueError as exc:
                want_json.append(("raised", str(exc)))
        outs = []
        for d, mode in zip(dispatchers, modes, strict=True):
            seen_states.clear()
            if mode.get("site_cost_json") and any(w[0] == "raised" for w in want_json):
                with pytest.raises(ValueError, match=next(w[1] for w in want_json if w[0] == "raised")):
                    d.run_tick(tick_ms, events, dict(inputs), **mode)
                # the tick did not happen for this one: replay it without the unserialisable record
                bad = {r["site_id"] for r, w in zip(want_records, want_json, strict=True) if w[0] == "raised"}
                ok_inputs = {s: v for s, v in inputs.items() if s not in bad}
                out = d.run_tick(tick_ms, events, ok_inputs, **mode)
                outs.append(None)
                continue
            out = d.run_tick(tick_ms, events, dict(inputs), **mode)
            if not seen_states:  # no job pending: the solve is skipped (udfs.dispatcher.EMPTY_TICK)
                assert not d.pending
                seen_states.append(want_states)
            assert seen_states == [want_states]
            for a, b in zip(seen_states[0], want_states, strict=True):
                assert all(_exact(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
            if mode.get("site_cost_dicts", True):
                assert [list(r.items()) for r in out.site_costs] == [list(r.items()) for r in want_records]
                assert [repr(r) for r in out.site_costs] == [repr(r) for r in want_records]
            else:
                assert out.site_costs == []
            if mode.get("site_cost_json"):
                assert out.site_cost_json == [(r["site_id"], w[1]) for r, w in zip(want_records, want_json,
                                                                                   strict=True)]
            else:
                assert out.site_cost_json == []
            outs.append(out)
        # the modes are one computation: same decisions and metrics
        done = [o for o in outs if o is not None]
        for o in done[1:]:
            assert _untimed(o.decisions) == _untimed(done[0].decisions)
            assert _untimed([o.metrics]) == _untimed([done[0].metrics])
        if any(o is None for o in outs):  # bring the dispatchers back in step
            state = dispatchers[0].to_state()
            for d in dispatchers[1:]:
                d.load_state(json.loads(json.dumps(state)))
        hits += sum(len(c.records) for c in dispatchers[2]._site_records.values())
    assert hits > 0  # the record cache was used
    assert any(d.running for d in dispatchers)  # committed slots were exercised


TWINS = [  # equal under ==, printed differently: a cache keyed on == alone would mix them up
    ("price_per_mwh", 0.0, -0.0), ("temp_c", 0.0, -0.0), ("rel_humidity", 0.0, -0.0),
    ("price_per_mwh", 7.0, 7), ("temp_c", 21.0, 21), ("rel_humidity", 70.0, 70), ("online", True, 1),
    ("capacity_slots", 1, True), ("capacity_slots", 0, False), ("offer_valid_to_ms", T0 + H, float(T0 + H)),
    ("price_per_mwh", 1.0, True), ("temp_c", 1.0, True),
]


@pytest.mark.parametrize("field,a,b", TWINS)
@pytest.mark.parametrize("price_moves", [False, True])
def test_run_tick_tells_equal_looking_inputs_apart(catalogue, field, a, b, price_moves) -> None:
    dicts, jsons = Dispatcher(catalogue, DispatchConfig(tick_len_ms=TICK)), \
        Dispatcher(catalogue, DispatchConfig(tick_len_ms=TICK))
    for k in range(12):
        tick_ms = T0 + k * TICK
        base = SiteInputs("odd", tick_ms, 40.0 + (k if price_moves else 0), T0 + H, "USD", 22.5, 65.0, True, None)
        inputs = {"odd": replace(base, **{field: (a, b)[k % 2]})}
        want = _outcome(lambda: [_dumps(r) for r in _expected_site_loop(dicts, tick_ms, inputs)[0]])  # noqa: B023
        got_dicts = _outcome(lambda: [_dumps(r) for r in dicts.run_tick(  # noqa: B023
            tick_ms, [], inputs).site_costs])  # noqa: B023
        got_json = _outcome(lambda: [j for _, j in jsons.run_tick(  # noqa: B023
            tick_ms, [], inputs, site_cost_dicts=False, site_cost_json=True).site_cost_json])  # noqa: B023
        assert got_dicts == want == got_json, (k, field, (a, b)[k % 2])


def test_run_tick_cache_follows_a_catalogue_change(catalogue: Catalogue) -> None:
    d = Dispatcher(catalogue, DispatchConfig(tick_len_ms=TICK))
    inp = {"ams": SiteInputs("ams", T0, 45.0, T0 + H, "EUR", 20.0, 50.0, True, None)}
    first = d.run_tick(T0, [], inp, site_cost_json=True).site_cost_json
    cheaper = replace(catalogue["ams"], it_kw_per_slot=0.2)
    d.catalogue = Catalogue(tuple(cheaper if s.site_id == "ams" else s for s in catalogue))
    second = d.run_tick(T0 + TICK, [], inp, site_cost_json=True)
    want = _site_cost_record(inp["ams"], site_cost(cheaper, price_per_mwh=45.0, temp_c=20.0, rel_humidity=50.0),
                             T0 + TICK)
    assert second.site_cost_json == [("ams", _dumps(want))] != first


def test_site_inputs_with_another_site_id_than_their_key(catalogue: Catalogue) -> None:
    d = Dispatcher(catalogue, DispatchConfig(tick_len_ms=TICK))
    inputs = {"ams": SiteInputs("sto", T0, 45.0, T0 + H, "EUR", 20.0, 50.0, True, None)}
    records, _ = _expected_site_loop(d, T0, inputs)
    out = d.run_tick(T0, [], inputs, site_cost_json=True)
    assert out.site_costs == records and out.site_cost_json == [("sto", _dumps(records[0]))]


# ---------------------------------------------------------------------- site tracker
def _plain_inputs_at(tr: SiteTracker, tick_ms: int) -> SiteInputs:
    offer = tr.offers.in_force(tick_ms)
    w = next((x for x in reversed(tr.weather) if x[0] <= tick_ms), None)
    if w is not None and tick_ms - w[0] > tr.max_weather_age_ms:
        w = None
    s = next((x for x in reversed(tr.status) if x[0] <= tick_ms), None)
    return SiteInputs(site_id=tr.site_id, tick_ms=tick_ms, price_per_mwh=offer.price_per_mwh if offer else None,
                      offer_valid_to_ms=offer.end_ms(tr.offers.default_interval_ms) if offer else None,
                      currency=offer.currency if offer else "", temp_c=w[1] if w else None,
                      rel_humidity=w[2] if w else None, online=s[1] if s else True, capacity_slots=s[2] if s else None)


def test_tracker_inputs_and_prune_match_the_plain_rules() -> None:
    rng = random.Random(3)
    tr = SiteTracker("ams", H)
    events = []
    for h in range(48):
        t = T0 + h * H
        if rng.random() < 0.8:
            rec = {"site_id": "ams", "price_per_mwh": rng.choice([0.0, 31.5, 60.25, 12]),
                   "valid_from": format_ts(t), "currency": "EUR"}
            if rng.random() < 0.5:
                rec["valid_to"] = format_ts(t + rng.choice([H // 2, H, 2 * H]))
            events.append(parse_input(topics.PRICES, json.dumps(rec)))
        if rng.random() < 0.7:
            events.append(parse_input(topics.WEATHER, json.dumps(
                {"site_id": "ams", "observed_at": format_ts(t + 600_000), "temp_c": rng.uniform(-5, 40),
                 "rel_humidity": rng.choice([40, 77.5])})))
        if rng.random() < 0.1:
            events.append(parse_input(topics.SITE_STATUS, json.dumps(
                {"site_id": "ams", "at": format_ts(t + 900_000), "online": rng.random() < 0.7,
                 "capacity_slots": rng.choice([None, 100])})))
    rng.shuffle(events)
    for p in events:
        tr.add(p, watermark_ms=-(2**63))
    for k in range(48 * 12 + 40):
        tick_ms = T0 + k * TICK
        got, want = tr.inputs_at(tick_ms), _plain_inputs_at(tr, tick_ms)
        assert got == want and got.to_dict() == want.to_dict() and repr(got) == repr(want)
        assert list(got.to_dict()) == list(want.to_dict())
        assert SiteInputs.from_dict(got.to_dict()) == got
        seen_before = dict(tr.seen)
        cutoff = tick_ms - tr.offers.default_interval_ms
        tr.prune(tick_ms)
        assert tr.seen == {fp: t for fp, t in seen_before.items() if t > cutoff}
        assert tr.inputs_at(tick_ms) == want  # pruning never changes the answer at the watermark
    state = SiteTracker.from_state(tr.to_state())
    assert state.inputs_at(T0 + 47 * H) == tr.inputs_at(T0 + 47 * H)


# ---------------------------------------------------------------------- records
GOOD_PRICE = {"site_id": "ams", "price_per_mwh": 27.3, "valid_from": "2018-01-01T00:00:00Z",
              "valid_to": "2018-01-01T01:00:00Z", "currency": "EUR", "source": "smard", "zone": "NL"}
GOOD_WEATHER = {"site_id": "ams", "observed_at": "2018-01-01T00:00:00Z", "temp_c": 5.1, "rel_humidity": 79.0}


def _price_variants():
    yield GOOD_PRICE
    for field, values in {
        "site_id": [None, "", "   ", "x" * 129, "x" * 128, "nowhere", 5, "sto"],
        "price_per_mwh": [None, 0, 0.0, -0.0, 30, -1.0, 100_000, 100_000.5, True, "30", 10**400, 1e308],
        "valid_from": [None, "", "2018-01-01", "2018-01-01T00:00:00+00:00", "2018-01-01T00:00:00z",
                       " 2018-01-01T00:00:00Z ", "not a time", 1514764800000, 1.5e12, True, "2018-01-01T00:00:00.5Z"],
        "valid_to": [None, "2018-01-01T00:00:00Z", "2017-12-31T23:00:00Z", "bad", 1514768400000],
        "currency": [None, "", 3, "USD"],
        "source": [None, ["x"], "s"],
    }.items():
        for v in values:
            yield dict(GOOD_PRICE, **{field: v})
        yield {k: v for k, v in GOOD_PRICE.items() if k != field}


def _weather_variants():
    yield GOOD_WEATHER
    for field, values in {
        "site_id": [None, "", " ", "unknown", "chi"],
        "observed_at": [None, "2018-01-01T00:00:00", "2018-07-01T12:34:56.789Z", 1514764800000, "x"],
        "temp_c": [None, -90, -90.0, -90.1, 70.0, 70.5, 0, -0.0, "5", False, 10**400],
        "rel_humidity": [None, 0, 100, 100.0001, -0.0, 55.5, True],
    }.items():
        for v in values:
            yield dict(GOOD_WEATHER, **{field: v})
        yield {k: v for k, v in GOOD_WEATHER.items() if k != field}


@pytest.mark.parametrize("topic,variants", [(topics.PRICES, _price_variants), (topics.WEATHER, _weather_variants)])
@pytest.mark.parametrize("known", ["catalogue", None])
def test_parse_fast_path_matches_the_plain_parser(topic, variants, known, catalogue, monkeypatch) -> None:
    known_sites = catalogue if known == "catalogue" else None
    for rec in variants():
        raw = json.dumps(rec)
        fast = _outcome(lambda: parse_input(topic, raw, known_sites))  # noqa: B023
        again = _outcome(lambda: parse_input(topic, raw, known_sites))  # noqa: B023 - with warm caches
        with monkeypatch.context() as m:
            m.setattr(records_mod, "_fast_price", lambda *a: None)
            m.setattr(records_mod, "_fast_weather", lambda *a: None)
            plain = _outcome(lambda: parse_input(topic, raw, known_sites))  # noqa: B023
        assert fast == plain == again, rec
        if fast[0] == "ok":
            assert list(fast[1].record.items()) == list(plain[1].record.items())
            assert all(_exact(fast[1].record[k], plain[1].record[k]) for k in plain[1].record)
            assert type(fast[1].event_ms) is int and repr(fast[1]) == repr(plain[1])
            assert fingerprint(fast[1]) == fingerprint(plain[1])
        else:
            assert fast[1] in ("RecordError", "OverflowError"), (rec, fast)


def test_payload_size_counts_utf8_bytes() -> None:
    from udfs.records import MAX_PAYLOAD_BYTES

    pad = "é" * ((MAX_PAYLOAD_BYTES - 200) // 2 + 50)  # fewer characters than the limit, more bytes
    raw = json.dumps(dict(GOOD_WEATHER, note=pad), ensure_ascii=False)
    assert len(raw) < MAX_PAYLOAD_BYTES < len(raw.encode())
    with pytest.raises(RecordError, match="bytes, more than"):
        parse_input(topics.WEATHER, raw)
    assert parse_input(topics.WEATHER, raw.encode()[:0] or json.dumps(GOOD_WEATHER).encode()).key == "ams"


def test_fingerprint_is_the_documented_formula() -> None:
    import hashlib

    for rec in [dict(GOOD_PRICE, extra={"b": [1, 2.5, None], "a": "ü"}), dict(GOOD_WEATHER, t=math.nan),
                dict(GOOD_WEATHER, when=object())]:
        p = ParsedRecord(topics.WEATHER, "ams", 5, rec)
        body = json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str)
        if "when" in rec:  # default=str prints the object's address: same object, same text
            assert fingerprint(p) == fingerprint(p)
            continue
        assert fingerprint(p) == hashlib.sha1(f"weather|ams|5|{body}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------------- offers, timestamps
@pytest.mark.parametrize("args", [
    (0, 1.0, None, "", ""), (5, 30.25, 10, "EUR", "s"), (5, -0.0, None, "", ""), (5, 3, 10, "", ""),
    (5, 1.0, 5, "", ""), (5, 1.0, 4, "", ""), (True, 1.0, None, "", ""), (5.0, 1.0, None, "", ""),
    (5, math.nan, None, "", ""), (5, math.inf, None, "", ""), (5, True, None, "", ""), (5, 1.0, 9.0, "", ""),
    (5, 1.0, False, "", ""), (5, "1", None, "", ""),
])
def test_offer_checked_is_the_constructor(args) -> None:
    fast = _outcome(lambda: Offer.checked(*args))
    plain = _outcome(lambda: Offer(*args))
    assert fast == plain
    if fast[0] == "ok":
        assert repr(fast[1]) == repr(plain[1]) and fast[1].to_dict() == plain[1].to_dict()
        assert hash(fast[1]) == hash(plain[1])


def test_timestamp_caches_return_what_the_plain_conversion_returns() -> None:
    rng = random.Random(5)
    for _ in range(3):  # cold, then warm caches
        for ms in [0, 999, 1000, 1001, T0, T0 + 123, -1500, 253402300799000] + \
                  [rng.randrange(0, 4 * 10**12) for _ in range(200)]:
            text = format_ts(ms)
            assert text == _format_ts(ms)
            plain = int(datetime.fromisoformat(text[:-1] + "+00:00").timestamp() * 1000)  # may be 1 ms off ms
            assert parse_ts_ms(text) == plain
    assert format_ts(T0 + 0.0) == format_ts(T0)  # type: ignore[arg-type]
    for bad, field in [("not a time", "valid_from"), ("not a time", "observed_at"), ("2018-01-01T00:00:00", "at")]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            parse_ts_ms(bad, field)
    assert parse_ts_ms("2018-07-01T00:00:00Z", "a") == parse_ts_ms("2018-07-01T00:00:00+00:00", "b") == T0
    assert parse_ts_ms(1.9e12) == 1_900_000_000_000 and parse_ts_ms(7) == 7
