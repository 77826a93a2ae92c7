"""Exactly-once verifier: reconciles `dispatch` and `site-costs` against `jobs` (read_committed).

Reads the three topics and `dead-letter` from the beginning up to their end offsets (as seen
when it starts), leaves out the job records the pipeline dead-lettered (those are owed no
decision), and reports lost decisions, duplicated decisions, capacity violations and decisions
made on an expired offer (deploy/reconcile.py). Prints one
summary line; `--json` prints the full report as JSON on stdout (the summary line then goes
to stderr). Exit code 0 when clean, 1 on any violation, 2 when it cannot run.

    python -m deploy.verify --bootstrap 127.0.0.1:9092 [--topic-prefix P] [--horizon ISO] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from deploy.reconcile import reconcile
from udfs import topics
from udfs.timeutil import parse_ts_ms


def read_committed(bootstrap: str, topic: str, timeout_s: float = 60.0, idle_s: float = 5.0,
                   extra: dict[str, Any] | None = None) -> list[tuple[bytes | None, bytes, int, int]]:
    """(key, value, partition, offset) of every committed record of ``topic``, from the beginning
    to the end offsets seen when called (records committed later are not waited for)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level="read_committed", max_partition_fetch_bytes=8 << 20,
                             request_timeout_ms=30_000, **(extra or {}))
    try:
        deadline = time.monotonic() + timeout_s
        parts = consumer.partitions_for_topic(topic)
        while parts is None and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise SystemExit(f"error: topic {topic} not found on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)  # read_committed: the last stable offsets
        out: list[tuple[bytes | None, bytes, int, int]] = []
        last_progress = time.monotonic()
        while time.monotonic() < deadline:
            if all(consumer.position(tp) >= end for tp, end in ends.items()):
                break
            batch = consumer.poll(timeout_ms=500)
            for tp, records in batch.items():
                out.extend((r.key, r.value, tp.partition, r.offset) for r in records)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_s:
                break  # only aborted/control records are left before the end offsets
        return out
    finally:
        consumer.close()


def _json_records(records: list[tuple[bytes | None, bytes, int, int]]) -> tuple[list[dict[str, Any]], int]:
    out, bad = [], 0
    for _, value, _, _ in records:
        try:
            rec = json.loads(value)
        except (ValueError, TypeError):
            bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            bad += 1
    return out, bad


def load_inputs(bootstrap: str, prefix: str, timeout_s: float,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reads site-costs first, then dispatch, then jobs and dead-letter: a decision can only be
    newer than the site-costs horizon, never missing from below it (the outputs are committed per
    checkpoint)."""

    site_costs, bad_costs = _json_records(read_committed(bootstrap, prefix + topics.SITE_COSTS, timeout_s,
                                                         extra=extra))
    decisions, bad_decisions = _json_records(read_committed(bootstrap, prefix + topics.DISPATCH, timeout_s,
                                                            extra=extra))
    raw_jobs = read_committed(bootstrap, prefix + topics.JOBS, timeout_s, extra=extra)
    dead, _ = _json_records(read_committed(bootstrap, prefix + topics.DEAD_LETTER, timeout_s, extra=extra))
    dead_jobs = {(d.get("partition"), d.get("offset")) for d in dead if d.get("topic") == topics.JOBS}
    job_events, invalid = [], 0
    for _, value, partition, offset in sorted(raw_jobs, key=lambda r: (r[2], r[3])):
        if (partition, offset) in dead_jobs:
            invalid += 1
            continue
        events, unreadable = _json_records([(None, value, partition, offset)])
        job_events.extend(events)
        invalid += unreadable
    return {"site_costs": site_costs, "decisions": decisions, "job_events": job_events,
            "invalid_job_records": invalid, "unreadable_outputs": bad_costs + bad_decisions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.verify", description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    parser.add_argument("--topic-prefix", default=os.environ.get("GRD_TOPIC_PREFIX", ""),
                        help="prefix of every topic name (env GRD_TOPIC_PREFIX)")
    parser.add_argument("--horizon", default=None,
                        help="event time (ISO-8601 Z) up to which decisions are owed; default: the last "
                             "site-costs tick read (the point the pipeline has reached)")
    parser.add_argument("--tick-minutes", type=int, default=int(os.environ.get("GRD_TICK_MINUTES", "5")),
                        help="dispatch tick length of the job, minutes (env GRD_TICK_MINUTES)")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="give up reading a topic after this")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON on stdout")
    parser.add_argument("--sasl-username", default=os.environ.get("GRD_KAFKA_USER"),
                        help="SASL/SCRAM-SHA-512 user (env GRD_KAFKA_USER; see deploy/local/kafka_secure.py)")
    parser.add_argument("--sasl-password-file", default=os.environ.get("GRD_KAFKA_PASSWORD_FILE"),
                        help="file holding the SASL password (env GRD_KAFKA_PASSWORD_FILE, or GRD_KAFKA_PASSWORD)")
    args = parser.parse_args(argv)
    extra: dict[str, Any] | None = None
    if args.sasl_username:
        password = (open(args.sasl_password_file).read().strip() if args.sasl_password_file
                    else os.environ.get("GRD_KAFKA_PASSWORD", ""))
        extra = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                 "sasl_plain_username": args.sasl_username, "sasl_plain_password": password}
    try:
        horizon = parse_ts_ms(args.horizon, "--horizon") if args.horizon else None
    except ValueError as exc:
        parser.error(str(exc))
    try:
        data = load_inputs(args.bootstrap, args.topic_prefix, args.timeout_s, extra)
    except Exception as exc:  # a broker that is down: one line, exit 2
        if type(exc).__module__.startswith("kafka"):
            print(f"error: cannot read from Kafka at {args.bootstrap}: {exc}", file=sys.stderr)
            return 2
        raise
    report = reconcile(data["job_events"], data["decisions"], data["site_costs"], horizon_ms=horizon,
                       tick_ms=args.tick_minutes * 60_000)
    if args.json:
        doc = report.to_dict()
        doc["invalid_job_records"] = data["invalid_job_records"]
        doc["unreadable_outputs"] = data["unreadable_outputs"]
        doc["site_costs_read"] = len(data["site_costs"])
        print(json.dumps(doc, indent=1, sort_keys=True))
        print(report.summary(), file=sys.stderr)
    else:
        print(report.summary())
    return 0 if report.ok and not data["unreadable_outputs"] else 1


if __name__ == "__main__":
    sys.exit(main())
