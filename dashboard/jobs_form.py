"""Submit and cancel records for the ``jobs`` topic (../shared/CONTRACT.md): build, validate, produce.

``build_submit`` / ``build_cancel`` are pure and return ``(record, errors)``; ``JobsProducer``
sends a record keyed by ``job_id`` with the Kafka record timestamp set to ``submitted_at``
(the dispatch job reads event time from it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from udfs.timeutil import format_ts, parse_ts_ms

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def new_job_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return "ui-" + now.strftime("%Y%m%d-%H%M%S")


def _check_job_id(job_id: str, errors: list[str]) -> str:
    job_id = (job_id or "").strip()
    if not job_id:
        errors.append("job id: required")
    elif not JOB_ID_RE.match(job_id):
        errors.append("job id: letters, digits and . _ : - only (at most 64 characters)")
    return job_id


def _check_time(value: str | int, field: str, errors: list[str]) -> int | None:
    try:
        return parse_ts_ms(value, field)
    except ValueError as exc:
        errors.append(f"{exc} (e.g. 2018-07-01T10:00:00Z)")
        return None


def build_submit(
    job_id: str,
    submitted_at: str | int,
    compute_hours: float,
    slots: int,
    priority: int,
    deadline_hours: float | None = None,
    sites: Iterable[str] = (),
    known_sites: Iterable[str] | None = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """A contract ``submit`` record, or None and the list of what is wrong.

    ``deadline_hours``: the latest start, in hours after ``submitted_at`` (None or 0: no deadline).
    ``sites``: allow-list (empty: any site); checked against ``known_sites`` when given.
    """
    errors: list[str] = []
    job_id = _check_job_id(job_id, errors)
    at = _check_time(submitted_at, "submitted at", errors)
    try:
        hours = float(compute_hours)
    except (TypeError, ValueError):
        hours = math.nan
    if not math.isfinite(hours) or hours <= 0:
        errors.append("compute hours: must be a number above 0")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        errors.append("slots: must be a whole number, at least 1")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        errors.append("priority: a whole number from 0 (most urgent) to 9")
    if deadline_hours is not None and (not math.isfinite(float(deadline_hours)) or deadline_hours < 0):
        errors.append("deadline: hours after submission must be 0 or more")
    allow = [str(s) for s in sites]
    if known_sites is not None:
        unknown = sorted(set(allow) - set(known_sites))
        if unknown:
            errors.append(f"sites: unknown site(s) {', '.join(unknown)}")
    if errors:
        return None, errors
    assert at is not None
    record: dict[str, Any] = {
        "action": "submit",
        "job_id": job_id,
        "submitted_at": format_ts(at),
        "compute_hours": hours,
        "slots": slots,
        "priority": priority,
    }
    if deadline_hours:
        record["deadline"] = format_ts(at + int(round(float(deadline_hours) * 3_600_000)))
    if allow:
        record["sites"] = allow
    return record, []


def build_cancel(job_id: str, submitted_at: str | int) -> tuple[dict[str, Any] | None, list[str]]:
    errors: list[str] = []
    job_id = _check_job_id(job_id, errors)
    at = _check_time(submitted_at, "submitted at", errors)
    if errors:
        return None, errors
    assert at is not None
    return {"action": "cancel", "job_id": job_id, "submitted_at": format_ts(at)}, []


class JobsProducer:
    """Lazily connected producer for the ``jobs`` topic; ``send`` waits for the broker's ack."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: Any = None

    def _get(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id="geodispatch-dashboard-jobs",
                acks="all",
                linger_ms=0,
                request_timeout_ms=10000,
                max_block_ms=10000,
                api_version_auto_timeout_ms=3000,
            )
        return self._producer

    def send(self, record: dict[str, Any], timeout_s: float = 10.0) -> tuple[int, int]:
        """Produce and wait; -> (partition, offset). Raises KafkaError when the broker is away."""
        producer = self._get()
        future = producer.send(
            self.topic,
            key=record["job_id"].encode("utf-8"),
            value=json.dumps(record, separators=(",", ":")).encode("utf-8"),
            timestamp_ms=parse_ts_ms(record["submitted_at"]),
        )
        meta = future.get(timeout=timeout_s)
        return meta.partition, meta.offset

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
