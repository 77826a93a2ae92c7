"""Replay historical data into Kafka, from a folder or ``s3://bucket/prefix``, at any speed, with
optional seeded fault injection.

    python -m sources.replay --source data/sample --speed 3600            # 1 data-hour per second
    python -m sources.replay --source s3://geodispatch/sample --max       # as fast as possible
    python -m sources.replay --max --start 2018-07-01 --end 2018-07-08 --sites ams,chi --fanout 20
    python -m sources.replay --max --seed 7 --duplicate 0.01 --out-of-order 0.05 --malformed 0.001 \
        --manifest faults.json

Every record goes to its topic (prices / weather / site-status / jobs, each renamable), keyed by
``site_id`` (``job_id`` for jobs), with the Kafka record timestamp set to its event time, in
event-time order. A price offer's event time is its ``published_at`` when it has one (the sample's
day-ahead offers: the auction's publication, 12-36 h before they are in force), else its
``valid_from`` (the synthetic US real-time prices), so day-ahead prices go out when the market
published them. ``--start`` also sends, first, the offers published before it that are still in
force at it (they were known at ``--start``).
Ctrl-C (or SIGTERM) stops cleanly: what was handed to the producer is flushed, the summary and
the manifest are written, exit code 130.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sources import producer as P
from sources.cli import (
    Parser,
    UserError,
    add_kafka_args,
    csv_list,
    fail,
    non_negative_int,
    positive_float,
    probability,
    raise_interrupt,
    ts_arg,
)
from sources.dataset import REPLAY_TOPICS, Dataset, Event, fanout_site_ids, merged_events, shift_event, with_fanout
from sources.faults import FaultConfig, FaultInjector
from sources.progress import Progress
from udfs.timeutil import format_ts

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class ReplayConfig:
    source: str = "data/sample"
    speed: float | None = 3600.0  # data-seconds per wall-second; None = as fast as possible
    start_ms: int | None = None
    end_ms: int | None = None
    rebase_to_now: bool = False
    sites: tuple[str, ...] | None = None
    topics: tuple[str, ...] | None = None  # logical topics to replay (default: every file present)
    fanout: int = 0
    topic_names: dict[str, str] = field(default_factory=dict)  # logical -> Kafka topic
    faults: FaultConfig = FaultConfig()
    manifest_path: Path | None = None
    progress: bool = True
    endpoint_url: str | None = None

    def kafka_topic(self, logical: str) -> str:
        return self.topic_names.get(logical, logical)


def topic_names(prefix: str = "", **overrides: str | None) -> dict[str, str]:
    """Logical topic -> Kafka topic: ``prefix + name`` unless overridden (``prices=...``)."""
    names = {t: prefix + t for t in REPLAY_TOPICS}
    for logical, value in overrides.items():
        if value:
            names[logical.replace("_", "-")] = value
    return names


def _base_sites(dataset: Dataset, cfg: ReplayConfig) -> list[str]:
    if cfg.sites:
        return list(cfg.sites)
    ids: set[str] = set()
    for topic, info in (dataset.manifest or {}).get("topics", {}).items():
        if topic != "jobs" and isinstance(info, dict):
            ids.update(info.get("by_site", {}))
    if not ids:  # no manifest: the catalogue's sites (a site without data just gets no fan-out records)
        from sources.sites import site_ids

        ids = set(site_ids())
    return sorted(ids)


def plan_events(
    cfg: ReplayConfig, dataset: Dataset | None = None, now_ms: int | None = None
) -> tuple[Iterator[Event], dict]:
    """The clean event stream the config asks for (before faults) and facts about it."""
    dataset = dataset or Dataset(cfg.source, cfg.endpoint_url)
    chosen = [t for t in (cfg.topics or dataset.files) if t in dataset.files]
    if cfg.topics:
        missing = [t for t in cfg.topics if t not in dataset.files]
        if missing:
            raise UserError(
                f"{cfg.source}: no data for topic(s) {', '.join(missing)}; it has {', '.join(dataset.files)}"
            )
    sites = set(cfg.sites) if cfg.sites else None
    stream: Iterator[Event] = merged_events(dataset, chosen, cfg.start_ms, cfg.end_ms, sites)
    fanout = fanout_site_ids(_base_sites(dataset, cfg), cfg.fanout) if cfg.fanout else {}
    if fanout:
        stream = with_fanout(stream, fanout)
    first = next(stream, None)
    span = dataset.time_range()
    info = {
        "source": cfg.source,
        "topics": chosen,
        "fanout_sites": fanout,
        "first_ms": first.ts if first else None,
        "end_ms": cfg.end_ms if cfg.end_ms is not None else (span[1] + 1 if span else None),
        "delta_ms": 0,
    }
    if first is None:
        return iter(()), info
    if cfg.rebase_to_now:
        # whole hours, so hourly offers stay on the hour and 5-minute ones on their grid
        now = int(time.time() * 1000) if now_ms is None else now_ms
        info["delta_ms"] = (now // HOUR_MS - first.ts // HOUR_MS) * HOUR_MS

    def chained() -> Iterator[Event]:
        delta = info["delta_ms"]
        if not delta:
            yield first
            yield from stream
            return
        yield shift_event(first, delta)
        for event in stream:
            yield shift_event(event, delta)

    return chained(), info


def run_replay(cfg: ReplayConfig, sink: P.Sink, should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Replay per ``cfg`` into ``sink``; returns the summary (also in the manifest). Ctrl-C safe."""
    started = time.monotonic()
    events, info = plan_events(cfg)
    injector = FaultInjector(cfg.faults)
    first_origin = None if info["first_ms"] is None else info["first_ms"]
    # Pace from --start: offers published before it (already known at it) go out at once.
    pace_origin = first_origin
    if first_origin is not None and cfg.start_ms is not None:
        pace_origin = max(first_origin, cfg.start_ms)
    progress = Progress(
        cfg.start_ms if cfg.start_ms is not None else first_origin, info["end_ms"], cfg.speed, enabled=cfg.progress
    )
    kafka_topics = {t: cfg.kafka_topic(t) for t in REPLAY_TOPICS}
    key_bytes: dict[str, bytes] = {}
    interrupted = False
    count = 0
    high_origin = first_origin or 0
    wall0 = time.monotonic()
    try:
        for event, jitter_s in injector.process(events):
            if should_stop():
                interrupted = True
                break
            if event.origin_ts > high_origin:
                high_origin = event.origin_ts
            if cfg.speed is not None and pace_origin is not None:
                _pace(wall0 + (high_origin - pace_origin) / 1000 / cfg.speed, progress, count, high_origin)
            if jitter_s:
                time.sleep(jitter_s)
            key = key_bytes.get(event.key)
            if key is None:
                key = key_bytes[event.key] = event.key.encode()
            sink.send(kafka_topics[event.topic], key, event.value, event.ts)
            count += 1
            if not count & 1023:
                progress.update(count, high_origin)
    except KeyboardInterrupt:
        interrupted = True
    progress.update(count, high_origin)
    progress.close()
    try:
        undelivered = sink.flush(60.0)
    except KeyboardInterrupt:  # a second Ctrl-C while flushing: give up waiting
        undelivered = -1
    elapsed = time.monotonic() - started
    manifest = injector.manifest()
    summary = {
        "records": count,
        "by_topic": {t: manifest["sent"]["by_topic"].get(t, 0) for t in sorted(manifest["sent"]["by_topic"])},
        "topic_names": {t: kafka_topics[t] for t in manifest["sent"]["by_topic"]},
        "seconds": round(elapsed, 3),
        "records_per_s": round(count / elapsed, 1) if elapsed > 0 else None,
        "first": format_ts(info["first_ms"] + info["delta_ms"]) if info["first_ms"] is not None else None,
        "last_data_time": format_ts(high_origin + info["delta_ms"]) if count else None,
        "rebase_delta_ms": info["delta_ms"],
        "fanout_sites": info["fanout_sites"],
        "producer": sink.name,
        "delivery_errors": sink.errors,
        "undelivered_after_flush": undelivered,
        "interrupted": interrupted,
    }
    manifest["summary"] = summary
    manifest["replay"] = {k: v for k, v in asdict(cfg).items() if k not in ("faults", "manifest_path")}
    manifest["replay"]["manifest_path"] = str(cfg.manifest_path) if cfg.manifest_path else None
    if cfg.manifest_path:
        cfg.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        cfg.manifest_path.write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    summary["manifest"] = manifest
    return summary


def _pace(target: float, progress: Progress, count: int, data_ms: int) -> None:
    while True:
        wait = target - time.monotonic()
        if wait <= 0:
            return
        time.sleep(min(wait, 0.25))  # short naps: progress stays live, Ctrl-C stays quick
        progress.update(count, data_ms)


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m sources.replay",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", default="data/sample", help="folder or s3://bucket/prefix (default %(default)s)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=positive_float, default=3600.0, help="data-seconds per wall-second (default %(default)s)"
    )
    pace.add_argument("--max", action="store_true", help="as fast as possible (ignores --speed)")
    parser.add_argument(
        "--start",
        type=ts_arg,
        help="first event time to replay (ISO-8601 UTC, inclusive); offers published before it and still "
        "in force at it are sent first",
    )
    parser.add_argument("--end", type=ts_arg, help="event time to stop at (exclusive)")
    parser.add_argument(
        "--rebase-to-now", action="store_true", help="shift all times so the first record is at the current hour"
    )
    parser.add_argument("--sites", type=csv_list, help="only these site ids (comma-separated)")
    parser.add_argument("--topics", type=csv_list, help=f"only these topics (of {', '.join(REPLAY_TOPICS)})")
    parser.add_argument(
        "--fanout",
        type=non_negative_int,
        default=0,
        help="N extra synthetic sites derived from the real ones (ids like ams-f001)",
    )
    parser.add_argument(
        "--manifest", type=Path, help="write the run's JSON manifest (counts per topic and fault class) here"
    )
    parser.add_argument("--endpoint-url", help="S3 endpoint (default env AWS_ENDPOINT_URL)")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    parser.add_argument("--dry-run", action="store_true", help="do everything but send (no Kafka needed)")
    kafka = parser.add_argument_group("Kafka")
    add_kafka_args(kafka)
    for t in REPLAY_TOPICS:
        kafka.add_argument(f"--{t}-topic", help=f"Kafka topic for {t} (default: prefix + {t})")
    kafka.add_argument("--linger-ms", type=non_negative_int, default=50)
    kafka.add_argument("--batch-bytes", type=non_negative_int, default=1_048_576)
    kafka.add_argument(
        "--compression",
        choices=["none", "gzip", "lz4", "zstd", "snappy"],
        default="none",
        help="batch compression (kafka-python consumers need extra packages for lz4/zstd/snappy)",
    )
    kafka.add_argument("--acks", choices=["0", "1", "all"], default="1")
    faults = parser.add_argument_group("fault injection (seeded, deterministic; see sources/faults.py)")
    faults.add_argument("--seed", type=int, default=0)
    faults.add_argument("--drop", type=probability, default=0.0, help="probability a record is not sent")
    faults.add_argument("--duplicate", type=probability, default=0.0, help="probability of one extra copy")
    faults.add_argument("--malformed", type=probability, default=0.0, help="probability of an extra broken record")
    faults.add_argument(
        "--out-of-order", type=probability, default=0.0, help="probability a record is held back <= --ooo-max-ms"
    )
    faults.add_argument(
        "--ooo-max-ms",
        type=non_negative_int,
        default=600_000,
        help="event-time bound of out-of-order delivery; the data are 5 min apart (default %(default)s)",
    )
    faults.add_argument(
        "--late", type=probability, default=0.0, help="probability a record arrives later than --late-bound-ms"
    )
    faults.add_argument(
        "--late-bound-ms",
        type=non_negative_int,
        default=900_000,
        help="late records arrive more than this behind the newest event time sent (default %(default)s)",
    )
    faults.add_argument(
        "--late-extra-ms",
        type=non_negative_int,
        default=3_600_000,
        help="late records are up to this much beyond the bound",
    )
    faults.add_argument(
        "--jitter", type=probability, default=0.0, help="probability of a wall-clock pause before a send"
    )
    faults.add_argument("--jitter-max-ms", type=non_negative_int, default=50)
    return parser


def config_from_args(args: argparse.Namespace) -> ReplayConfig:
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise UserError(f"--end {format_ts(args.end)} is not after --start {format_ts(args.start)}")
    if args.topics:
        unknown = [t for t in args.topics if t not in REPLAY_TOPICS]
        if unknown:
            raise UserError(f"unknown topic(s) {', '.join(unknown)}; choose from {', '.join(REPLAY_TOPICS)}")
    try:
        faults = FaultConfig(
            seed=args.seed,
            drop=args.drop,
            duplicate=args.duplicate,
            malformed=args.malformed,
            out_of_order=args.out_of_order,
            ooo_max_ms=args.ooo_max_ms,
            late=args.late,
            late_bound_ms=args.late_bound_ms,
            late_extra_ms=args.late_extra_ms,
            jitter=args.jitter,
            jitter_max_ms=args.jitter_max_ms,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    overrides = {t: getattr(args, f"{t.replace('-', '_')}_topic") for t in REPLAY_TOPICS}
    return ReplayConfig(
        source=args.source,
        speed=None if args.max else args.speed,
        start_ms=args.start,
        end_ms=args.end,
        rebase_to_now=args.rebase_to_now,
        sites=tuple(args.sites) if args.sites else None,
        topics=tuple(args.topics) if args.topics else None,
        fanout=args.fanout,
        topic_names=topic_names(args.topic_prefix, **overrides),
        faults=faults,
        manifest_path=args.manifest,
        progress=not args.no_progress,
        endpoint_url=args.endpoint_url,
    )


class _CountSink(P.Sink):
    name = "dry-run"

    def send(self, topic: str, key: bytes, value: bytes, ts_ms: int) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    # Ctrl-C stops cleanly even when started in the background by a shell, which hands the
    # process SIGINT ignored (then Python installs no handler of its own)
    signal.signal(signal.SIGINT, raise_interrupt)
    sink: P.Sink | None = None
    try:
        cfg = config_from_args(args)
        # Open the data before connecting to Kafka: a wrong path is reported without a broker.
        Dataset(cfg.source, cfg.endpoint_url)
        settings = P.ProducerSettings(args.linger_ms, args.batch_bytes, args.compression, args.acks)
        sink = _CountSink() if args.dry_run else P.make_sink(args.producer, args.bootstrap, settings)
        summary = run_replay(cfg, sink)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted before the replay started", file=sys.stderr)
        return 130
    finally:
        if sink is not None:
            try:
                sink.close()
            except Exception:  # closing after an error must not hide the first message
                pass
    topics = ", ".join(f"{summary['topic_names'][t]} {n:,}" for t, n in summary["by_topic"].items()) or "nothing"
    state = "interrupted after" if summary["interrupted"] else "replayed"
    print(
        f"{state} {summary['records']:,} records ({topics}) in {summary['seconds']:.1f}s "
        f"= {summary['records_per_s'] or 0:,.0f} rec/s via {summary['producer']}; data {summary['first']} .. "
        f"{summary['last_data_time']}" + (f"; manifest {cfg.manifest_path}" if cfg.manifest_path else "")
    )
    if summary["delivery_errors"] or summary["undelivered_after_flush"]:
        fail(
            f"{summary['delivery_errors']} records failed delivery, {max(0, summary['undelivered_after_flush'])} "
            f"undelivered after flush (last error: {sink.last_error if sink else '?'})",
            code=1,
        )
    return 130 if summary["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
