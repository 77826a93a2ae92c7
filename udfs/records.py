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
