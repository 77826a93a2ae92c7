"""Fault injection: counts reconcile, determinism, and the lateness bounds it promises."""

from __future__ import annotations

import json

import pytest

from sources.dataset import Event, dumps
from sources.faults import MALFORMED_KINDS, FaultConfig, FaultInjector, malformed_value
from udfs.timeutil import format_ts

T0 = 1_530_403_200_000  # 2018-07-01T00:00:00Z


def stream(hours: int = 48, sites=("ams", "chi", "sto")) -> list[Event]:
    out = []
    for h in range(hours):
        for minute in range(0, 60, 5):
            t = T0 + h * 3_600_000 + minute * 60_000
            for s in sites:
                if minute == 0 or s == "chi":
                    rec = {
                        "site_id": s,
                        "price_per_mwh": 40.0 + h,
                        "valid_from": format_ts(t),
                        "valid_to": format_ts(t + 300_000),
                    }
                    out.append(Event(t, "prices", s, dumps(rec), rec, t))
            if minute == 0:
                for s in sites:
                    rec = {"site_id": s, "observed_at": format_ts(t), "temp_c": 20.0, "rel_humidity": 50.0}
                    out.append(Event(t, "weather", s, dumps(rec), rec, t))
    return out


ALL = FaultConfig(
    seed=11,
    drop=0.02,
    duplicate=0.05,
    malformed=0.03,
    out_of_order=0.1,
    ooo_max_ms=600_000,
    late=0.01,
    late_bound_ms=900_000,
    late_extra_ms=1_800_000,
)


def run(cfg: FaultConfig, events=None):
    inj = FaultInjector(cfg)
    out = [e for e, _ in inj.process(events if events is not None else stream())]
    return out, inj.manifest()


def test_no_faults_is_the_identity():
    src = stream()
    out, manifest = run(FaultConfig(seed=1), src)
    assert out == src
    assert manifest["sent"]["total"] == manifest["input"]["total"] == len(src)
    assert manifest["realized"]["max_lateness_ms"] == 0


def test_same_seed_same_stream_other_seed_other_stream():
    a, ma = run(ALL)
    b, mb = run(ALL)
    assert [(e.topic, e.key, e.value, e.ts) for e in a] == [(e.topic, e.key, e.value, e.ts) for e in b]
    assert ma == mb
    c, _ = run(FaultConfig(**{**ALL.__dict__, "seed": 12}))
    assert [(e.key, e.value) for e in a] != [(e.key, e.value) for e in c]


def test_counts_reconcile_per_topic():
    out, m = run(ALL)
    assert m["reconcile"]["ok"]
    for topic in ("prices", "weather"):
        expected = (
            m["input"]["by_topic"][topic]
            - m["faults"]["drop"]["by_topic"].get(topic, 0)
            + m["faults"]["duplicate"]["by_topic"].get(topic, 0)
            + m["faults"]["malformed"]["by_topic"].get(topic, 0)
        )
        assert sum(1 for e in out if e.topic == topic) == expected == m["sent"]["by_topic"][topic]
    assert all(m["faults"][c]["total"] > 0 for c in ("drop", "duplicate", "malformed", "out_of_order", "late"))
    assert sum(m["faults"]["malformed"]["by_kind"].values()) == m["faults"]["malformed"]["total"]
    assert len(m["records"]["drop"]) == m["faults"]["drop"]["total"]


def test_malformed_records_are_exactly_the_unusable_ones():
    out, m = run(ALL)
    bad: dict[str, int] = {}
    for e in out:
        try:
            rec = json.loads(e.value)
            ok = isinstance(rec, dict) and "_fault" not in rec
        except ValueError:
            ok = False
        if not ok:
            bad[e.topic] = bad.get(e.topic, 0) + 1
    assert bad == m["faults"]["malformed"]["by_topic"]


def test_duplicates_are_extra_identical_copies():
    out, m = run(FaultConfig(seed=3, duplicate=0.1))
    seen: dict[tuple, int] = {}
    for e in out:
        seen[(e.topic, e.key, e.value)] = seen.get((e.topic, e.key, e.value), 0) + 1
    assert sum(n - 1 for n in seen.values()) == m["faults"]["duplicate"]["total"] > 0


def test_out_of_order_stays_within_its_bound_and_late_goes_beyond():
    # the data are 5 minutes apart: a delay has to exceed that to overtake anything
    cfg = FaultConfig(
        seed=5, out_of_order=0.2, ooo_max_ms=600_000, late=0.02, late_bound_ms=900_000, late_extra_ms=600_000
    )
    out, m = run(cfg)
    assigned_late = {(r["topic"], r["key"], r["ts"]) for r in m["records"]["late"]}
    high = 0
    late_seen = 0
    for e in out:
        lateness = high - e.ts if e.ts < high else 0
        high = max(high, e.ts)
        if (e.topic, e.key, format_ts(e.ts)) in assigned_late:
            if e.ts + cfg.late_bound_ms + cfg.late_extra_ms < stream()[-1].ts:  # else the stream ended first
                assert lateness > cfg.late_bound_ms
            late_seen += lateness > cfg.late_bound_ms
        else:
            assert lateness <= cfg.ooo_max_ms
    assert m["realized"]["out_of_order"]["total"] > 0
    assert late_seen == m["realized"]["late_beyond_bound"]["total"] > 0.8 * m["faults"]["late"]["total"]
    assert m["realized"]["max_lateness_ms"] <= cfg.late_bound_ms + cfg.late_extra_ms + 300_000
    assert 0 < m["realized"]["out_of_order"]["total"] <= m["faults"]["out_of_order"]["total"]


def test_clean_records_survive_in_event_time_multiset():
    """Without drops, the usable records are the input plus copies: nothing else changes."""
    src = stream()
    out, _ = run(FaultConfig(seed=9, duplicate=0.05, out_of_order=0.3, malformed=0.05, jitter=0.0))
    good = sorted({(e.topic, e.key, e.value) for e in out if e.record is not None or not e.tags})
    assert good == sorted({(e.topic, e.key, e.value) for e in src})


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_malformed_kind_is_unusable(kind):
    rec = {"site_id": "ams", "price_per_mwh": 1.0, "valid_from": "2018-07-01T00:00:00Z"}
    value = malformed_value(Event(T0, "prices", "ams", dumps(rec), rec, T0), kind)
    try:
        parsed = json.loads(value)
    except ValueError:
        return
    assert not isinstance(parsed, dict) or parsed.get("_fault") == kind


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(drop=1.5)
    with pytest.raises(ValueError, match="exceeds --late-bound-ms"):
        FaultConfig(out_of_order=0.1, ooo_max_ms=600_000, late=0.1, late_bound_ms=300_000)


def test_jitter_is_counted_and_bounded():
    inj = FaultInjector(FaultConfig(seed=4, jitter=0.5, jitter_max_ms=20))
    pauses = [j for _, j in inj.process(stream(4))]
    assert sum(1 for j in pauses if j > 0) <= inj.manifest()["faults"]["jitter"]["total"]
    assert max(pauses) <= 0.02


def test_malformed_offers_published_ahead():
    """A day-ahead offer (published_at = its event time): not-an-object carries the event time,
    bad-timestamp breaks the required valid_from (rejected whether or not a consumer reads published_at)."""
    rec = {
        "site_id": "ams",
        "price_per_mwh": 1.0,
        "valid_from": "2018-07-01T22:00:00Z",
        "published_at": "2018-07-01T10:45:00Z",
    }
    event = Event(T0, "prices", "ams", dumps(rec), rec, T0)
    assert json.loads(malformed_value(event, "not-an-object")) == ["2018-07-01T10:45:00Z", "ams"]
    bad = json.loads(malformed_value(event, "bad-timestamp"))
    assert bad["valid_from"] == "2018-13-45T99:99:99Z" and bad["published_at"] == rec["published_at"]
