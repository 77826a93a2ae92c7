"""Offline: one site's whole history of offers, weather and status, and its inputs at any instant.

For analyses that know every event up front (tests/reference.py, the batch oracle the job is
checked against, and bench/bench_money.py). There is no watermark here, so nothing is late and
nothing is pruned. The streaming job does the same work per record on the JVM
(flink_jobs/jvm/geodispatch/SiteTicker.java); this module is the independent statement of the
same rules that the job's output is compared with.
"""

from __future__ import annotations

import bisect
import json
from typing import Any

from bench.offer_rules import Offer, OfferBook
from udfs import topics
from udfs.catalogue import Catalogue
from udfs.cooling import DEFAULT_REL_HUMIDITY, MAX_WEATHER_AGE_MS
from udfs.dispatcher import SiteInputs
from udfs.records import ParsedRecord
from udfs.timeutil import parse_ts_ms

_INF = float("inf")


class SiteHistory:
    def __init__(self, site_id: str, offer_interval_ms: int):
        self.site_id = site_id
        self.offers = OfferBook(offer_interval_ms)
        self.weather: list[tuple[int, float, float]] = []  # (observed_ms, temp_c, rh), sorted
        self.status: list[tuple[int, bool, int | None]] = []  # (at_ms, online, capacity), sorted
        self.seen: set[tuple[str, str]] = set()
        self.event_times: list[int] = []  # of the records applied, in the order they came

    def add(self, parsed: ParsedRecord, raw: str) -> bool:
        """Apply one validated record; False if the same record (``raw``, byte for byte) came before."""
        if (parsed.topic, raw) in self.seen:
            return False
        self.seen.add((parsed.topic, raw))
        self.event_times.append(parsed.event_ms)
        rec = parsed.record
        if parsed.topic == topics.PRICES:
            self.offers.add(Offer(valid_from_ms=rec["valid_from_ms"], price_per_mwh=rec["price_per_mwh"],
                                  valid_to_ms=rec.get("valid_to_ms"), currency=rec.get("currency") or "",
                                  source=rec.get("source") or "", published_ms=rec.get("published_at_ms")))
        elif parsed.topic == topics.WEATHER:
            _insort(self.weather, (parsed.event_ms, rec["temp_c"], rec["rel_humidity"]))
        elif parsed.topic == topics.SITE_STATUS:
            _insort(self.status, (parsed.event_ms, rec["online"], rec.get("capacity_slots")))
        return True

    def inputs_at(self, tick_ms: int) -> SiteInputs:
        offer = self.offers.in_force(tick_ms)
        w = _latest_at(self.weather, tick_ms)
        if w is not None and tick_ms - w[0] > MAX_WEATHER_AGE_MS:
            w = None
        s = _latest_at(self.status, tick_ms)
        return SiteInputs(
            self.site_id, tick_ms,
            offer.price_per_mwh if offer else None,
            offer.end_ms(self.offers.default_interval_ms) if offer else None,
            offer.currency if offer else "",
            w[1] if w else None, w[2] if w else None,
            s[1] if s else True, s[2] if s else None, self.offers)

    def keeps_ticking_after(self, tick_ms: int) -> bool:
        """An offer is in force at ``tick_ms``: the site ticks again one tick later. Once the offers
        stop, the site emits one tick that says "unavailable" and stops until its next event."""
        return self.offers.in_force(tick_ms) is not None




def read_site_record(topic: str, rec: dict[str, Any]) -> ParsedRecord:
    """A site record of the sample or a test scenario, read as the history needs it. These
    records are valid by construction: the job validates on the JVM (InputRecords.java); this
    reader only reads, and states the event time as the contract does (an offer's publication if
    it has one, else its start)."""
    out = dict(rec)
    if topic == topics.PRICES:
        out["price_per_mwh"] = float(rec["price_per_mwh"])
        for field in ("valid_from", "valid_to", "published_at"):
            out[f"{field}_ms"] = None if rec.get(field) is None else parse_ts_ms(rec[field], field)
        event = out["published_at_ms"] if out["published_at_ms"] is not None else out["valid_from_ms"]
    elif topic == topics.WEATHER:
        event = parse_ts_ms(rec["observed_at"], "observed_at")
        rh = rec.get("rel_humidity")
        out.update(temp_c=float(rec["temp_c"]), rel_humidity=DEFAULT_REL_HUMIDITY if rh is None else float(rh))
    else:
        event = parse_ts_ms(rec["at"], "at")
        out.update(online=bool(rec["online"]), capacity_slots=rec.get("capacity_slots"))
    return ParsedRecord(topic, rec["site_id"], event, out)


def read_job_record(rec: dict[str, Any]) -> ParsedRecord:
    """A job record of a test scenario or a generated load, normalised as the job's JobRecords.java
    does (valid by construction: this reader checks nothing)."""
    out = dict(rec, submitted_at_ms=parse_ts_ms(rec["submitted_at"], "submitted_at"))
    if rec["action"] == "submit":
        out.update(compute_hours=float(rec["compute_hours"]), slots=int(rec["slots"]), priority=int(rec["priority"]),
                   deadline_ms=None if rec.get("deadline") is None else parse_ts_ms(rec["deadline"], "deadline"))
        if rec.get("sites") is not None:
            out["sites"] = list(dict.fromkeys(rec["sites"]))  # the order kept: the first is the default home
    return ParsedRecord(topics.JOBS, rec["job_id"], out["submitted_at_ms"], out, json.dumps(rec))


def site_histories(events: dict[str, list[dict]], catalogue: Catalogue
                   ) -> tuple[dict[str, SiteHistory], list[ParsedRecord]]:
    """Every site's history from all its records, applied in event-time order (a site outside
    the catalogue is left out), and the job events in event-time order."""
    parsed = []
    for topic, recs in events.items():
        for rec in recs:
            raw = json.dumps(rec)
            if topic != topics.JOBS:
                if rec.get("site_id") in catalogue:
                    parsed.append((read_site_record(topic, rec), raw))
                continue
            parsed.append((read_job_record(rec), raw))
    parsed.sort(key=lambda p: p[0].event_ms)
    histories: dict[str, SiteHistory] = {}
    for p, raw in parsed:
        if p.topic != topics.JOBS:
            histories.setdefault(p.key, SiteHistory(p.key, catalogue[p.key].offer_interval_ms)).add(p, raw)
    return histories, [p for p, _ in parsed if p.topic == topics.JOBS]


def _insort(items: list, item: tuple) -> None:
    i = bisect.bisect_left(items, item[:1])
    # one observation per instant: of two with other content, the larger tuple wins, in any order
    if i < len(items) and items[i][0] == item[0]:
        items[i] = max(items[i], item, key=lambda t: tuple(-1 if v is None else v for v in t))
    else:
        items.insert(i, item)


def _latest_at(items: list, t_ms: int):
    i = bisect.bisect_right(items, (t_ms, _INF, _INF)) - 1
    return items[i] if i >= 0 else None
