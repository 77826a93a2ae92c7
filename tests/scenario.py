"""A scripted scenario for the dispatch pipeline: 3 sites, one day of offers and weather, 50 jobs.

Deterministic (seeded); used by the integration tests and as the reference for their expected
output (computed by calling udfs/ directly in event-time order).
"""

from __future__ import annotations

import math
import random

from udfs.timeutil import format_ts, parse_ts_ms

DAY_START = parse_ts_ms("2018-07-01T00:00:00Z")
HOUR = 3_600_000
SITES = ("ams", "trn", "sto")


# ams and sto publish their afternoon and evening like a day-ahead auction: at 10:45, hours ahead
# (event time = published_at), so the plan can wait for a cheaper hour it already knows.
DAY_AHEAD_SITES = ("ams", "sto")
PUBLISHED = DAY_START + 10 * HOUR + 45 * 60_000
PUBLISHED_FROM_H = 12


def offers(hours: int = 24, stop_site: str | None = None, stop_after_h: int | None = None) -> list[dict]:
    out = []
    for h in range(hours):
        for i, site in enumerate(SITES):
            if site == stop_site and stop_after_h is not None and h >= stop_after_h:
                continue
            price = round(35 + 20 * math.sin((h + 3 * i) / 24 * 2 * math.pi) + 7 * i, 2)
            rec = {"site_id": site, "price_per_mwh": price, "valid_from": format_ts(DAY_START + h * HOUR),
                   "currency": "EUR", "source": "scenario"}
            if h % 2 == 0:  # half with an explicit valid_to, half relying on the site's interval
                rec["valid_to"] = format_ts(DAY_START + (h + 1) * HOUR)
            if site in DAY_AHEAD_SITES and h >= PUBLISHED_FROM_H:
                rec["published_at"] = format_ts(PUBLISHED)
            out.append(rec)
    return out


def weather(hours: int = 24) -> list[dict]:
    out = []
    for h in range(hours):
        for i, site in enumerate(SITES):
            temp = round(14 + 12 * math.sin((h - 9) / 24 * 2 * math.pi) + 4 * (1 - i), 1)
            out.append({"site_id": site, "observed_at": format_ts(DAY_START + h * HOUR + 10 * 60_000),
                        "temp_c": temp, "rel_humidity": round(55 + 25 * math.cos(h / 24 * 2 * math.pi), 1)})
    return out


def jobs(n: int = 50, seed: int = 11, hours: int = 20) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        submitted = DAY_START + 30 * 60_000 + int(rng.random() * hours * HOUR)
        rec = {"action": "submit", "job_id": f"j-{k:04d}", "submitted_at": format_ts(submitted),
               "compute_hours": round(rng.lognormvariate(2.0, 0.8), 2), "slots": rng.choice([1, 2, 4, 8, 16, 32]),
               "priority": rng.randint(0, 9)}
        if rng.random() < 0.6:
            rec["deadline"] = format_ts(submitted + int(rng.uniform(0.2, 6) * HOUR))
        if rng.random() < 0.3:
            rec["sites"] = sorted(rng.sample(SITES, rng.randint(1, 2)))
        out.append(rec)
    # a few cancels: of pending jobs, some likely before dispatch
    for k in range(0, n, 9):
        submitted = parse_ts_ms(out[k]["submitted_at"])
        out.append({"action": "cancel", "job_id": out[k]["job_id"], "submitted_at": format_ts(submitted + 60_000)})
    # one job too big for any site
    out.append({"action": "submit", "job_id": "j-huge", "submitted_at": format_ts(DAY_START + 2 * HOUR),
                "compute_hours": 100.0, "slots": 100_000, "priority": 1})
    return out


def event_ms(topic: str, rec: dict) -> int:
    """The record's event time (udfs.records' rule): a price's published_at when it has one."""
    if topic == "prices" and rec.get("published_at"):
        return parse_ts_ms(rec["published_at"])
    field = {"prices": "valid_from", "weather": "observed_at", "site-status": "at", "jobs": "submitted_at"}[topic]
    return parse_ts_ms(rec[field])
