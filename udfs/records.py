"""The records of ../shared/CONTRACT.md as the dispatcher reads and writes them.

Input records are parsed and validated on the JVM, each rule once
(flink_jobs/jvm/geodispatch/InputRecords.java): a bad record becomes a dead letter there. A valid
job record reaches Python as JobRecords.java writes it, ``{"job": <normalised record>, "raw":
<the value as it came>}``, read here by :func:`job_event` without checking anything again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from udfs import topics

DEAD_LETTER_RAW_BYTES = 4096  # the contract keeps the first 4 KiB of a bad record


@dataclass(frozen=True)
class ParsedRecord:
    topic: str  # the contract topic name (without any prefix)
    key: str  # site_id, or job_id for jobs
    event_ms: int  # event time: valid_from / observed_at / at / submitted_at
    record: dict[str, Any]  # normalised: timestamps as epoch ms in *_ms fields, originals kept
    raw: str | None = None  # the value as it came, for a dead letter (None where not kept)


def job_event(text: str | bytes) -> ParsedRecord:
    """A job record checked and normalised by JobRecords.java (its envelope as JSON text): the
    record has ``submitted_at_ms``, and a submit ``compute_hours`` (float), ``slots``,
    ``priority``, ``deadline_ms`` (or None) and ``sites`` without repeats when it has an allow-list."""
    envelope = orjson.loads(text)
    job = envelope["job"]
    return ParsedRecord(topics.JOBS, job["job_id"], job["submitted_at_ms"], job, envelope["raw"])


def dead_letter(topic: str, partition: int | None, offset: int | None, key: str | None, raw: str | bytes | None,
                error: str, at: str) -> dict[str, Any]:
    """The ``dead-letter`` record of the contract: where the record was, its first 4 KiB and why."""
    if isinstance(raw, bytes):
        raw = raw[:DEAD_LETTER_RAW_BYTES].decode("utf-8", errors="replace")
    text = (raw or "")[:DEAD_LETTER_RAW_BYTES]
    return {"topic": topic, "partition": partition, "offset": offset, "key": key, "raw": text, "error": error,
            "at": at}


def json_text(value: dict[str, Any]) -> str:
    """An output record's JSON value, compact (orjson: ~10x json.dumps, and this runs for every
    site-costs record). A NaN would be written as null: the formulas refuse non-finite inputs, so
    none reaches an output record."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# The site-costs record of ../shared/CONTRACT.md, its fields in order (flink_jobs.elements types them)
SITE_COST_FIELDS = ("site_id", "tick", "price_per_mwh", "currency", "offer_valid_to", "temp_c", "rel_humidity", "pue",
                    "cooling_kw", "cost_per_compute_hour", "cost_per_compute_hour_eur", "capacity_slots",
                    "available_slots", "available", "online", "reason")

# A tick as flink_jobs/jvm/geodispatch/TickAssembler.java hands it over (flink_jobs.elements.TICK_TYPE
# names its types): tick, up_to, one array per site-tick field, the site ticks' offers flattened
# (offer_site: which site tick), one array per job-record field.
SITE_TICK_FIELDS = ("site_id", "tick", "tick_inputs", "price_per_mwh", "offer_valid_to", "currency", "temp_c",
                    "rel_humidity", "online", "capacity_slots", "late_events", "duplicates", "dead_letters")
OFFER_FIELDS = ("offer_site", "offer_from", "offer_to", "offer_price", "offer_published")
JOB_FIELDS = ("topic", "k", "v", "kafka_partition", "kafka_offset")


def assembled_tick(row) -> tuple[int, int, list[dict[str, Any]], list[tuple]]:
    """TickAssembler's row -> (tick, up_to, the site ticks as dicts of SITE_TICK_FIELDS with their
    ``offers`` as [valid_from, valid_to, price, published_at], the job records as (topic, key, value,
    partition, offset))."""
    n_site, n_offer = len(SITE_TICK_FIELDS), len(OFFER_FIELDS)
    sites = [dict(zip(SITE_TICK_FIELDS, values, strict=True)) for values in zip(*row[2:2 + n_site], strict=True)]
    for site in sites:
        site["offers"] = []
    offer_site, *offers = row[2 + n_site:2 + n_site + n_offer]
    for i, offer in zip(offer_site, zip(*offers, strict=True), strict=True):
        sites[i]["offers"].append(offer)
    jobs = list(zip(*row[2 + n_site + n_offer:], strict=True))
    return row[0], row[1], sites, jobs
