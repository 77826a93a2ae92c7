"""Throughput: the dispatch pipeline (to ``site-costs``) against the passthrough ceiling, same broker, same run.

    python -m bench.bench_throughput [--events 5000000] [--variants default,tick60] [--no-write]

1. Starts a private Kafka broker (free ports, temp dir) and loads ``--events`` (rounded up to whole
   copies of the 2018 sample, 280,320 price+weather records each) with confluent-kafka. Copy ``k``
   renames every site ``<id>-t<k>`` so each copy is a distinct site of a generated catalogue (the
   pipeline would dead-letter unknown sites); record timestamps = event time.
2. Runs each job ``--bounded`` (stops at the offsets present when it starts) as a subprocess, one
   after the other. Output topics use ``LogAppendTime``, so every output record carries the wall
   time the job wrote it; a run's processing time is first-to-last output append time inside its
   own launch-to-exit window (start-up and the final checkpoint excluded; wall time is reported too).
   * passthrough (``flink_jobs.passthrough``): reads the ``prices`` topic only (its schema is prices');
   * pipeline (``flink_jobs.dispatch_job``): reads prices and weather, writes site-costs, dispatch,
     pipeline-metrics (no jobs are loaded: this measures the per-event path);
   * variants of the pipeline: ``tick60`` (``--tick-minutes 60``), ``process`` (``--execution-mode process``);
   * ``ceiling`` (``bench.ceiling_job``): the pipeline's inputs and its site-costs records on the JVM
     alone, no Python operator: the ceiling of the contract (tests/integration/test_ceiling.py
     checks its records equal the job's).
Rates are input events / processing seconds. Writes the "## Throughput" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import PY, machine, md_table, private_broker, read_committed_records, write_section  # noqa: E402

TITLE = "Throughput"
SAMPLE = REPO / "data" / "sample"
INPUT = ("prices", "weather", "site-status", "jobs")
OUTPUT = ("site-costs", "dispatch", "pipeline-metrics", "dead-letter", "prices-out")
# Pipeline variants (job flags). The pipeline's work is per event and per site per tick, so the
# tick length changes the rate as much as the event count does: "tick60" shows the per-event path.
VARIANTS = {
    "default": [],
    "tick60": ["--tick-minutes", "60"],
    "process": ["--execution-mode", "process"],
    "ceiling": [],  # bench.ceiling_job, not flink_jobs.dispatch_job
}


def site_catalogue(copies: int, path: Path) -> list[str]:
    """A catalogue with ``copies`` renamed copies of every conf/sites.yaml site; returns the base ids."""
    import yaml

    base = yaml.safe_load((REPO / "conf" / "sites.yaml").read_text())
    sites = []
    for k in range(copies):
        for s in base["sites"]:
            c = dict(s)
            c["site_id"] = f"{s['site_id']}-t{k:03d}"
            c["name"] = f"{s['name']} (copy {k})"
            sites.append(c)
    base["sites"] = sites
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return [s["site_id"] for s in yaml.safe_load((REPO / "conf" / "sites.yaml").read_text())["sites"]]


def load_events(bootstrap: str, prefix: str, copies: int, base_ids: list[str]) -> tuple[dict[str, int], float]:
    """Produce ``copies`` renamed copies of the sample's prices and weather; returns counts and seconds."""
    from confluent_kafka import Producer

    from sources.dataset import parse_line

    producer = Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_048_576, "acks": 1,
        "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_151,
        "enable.idempotence": False,
    })
    errors = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            errors.append(err)

    counts: dict[str, int] = {}
    t0 = time.monotonic()
    for topic in ("prices", "weather"):
        lines = [ln for ln in (SAMPLE / f"{topic}.jsonl").read_bytes().splitlines() if ln.strip()]
        events = [parse_line(topic, ln, f"{topic}.jsonl:{i}") for i, ln in enumerate(lines, 1)]
        name = prefix + topic
        renames = [{b: (f'"site_id":"{b}"'.encode(), f'"site_id":"{b}-t{k:03d}"'.encode(), f"{b}-t{k:03d}".encode())
                    for b in base_ids} for k in range(copies)]
        # event-time order across copies: every partition stays ordered (per-partition watermarks)
        for ev in events:
            for rename in renames:
                old, new, key = rename[ev.key]
                value = ev.value.replace(old, new, 1)
                while True:
                    try:
                        producer.produce(name, value, key, timestamp=ev.ts, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
        counts[topic] = len(events) * copies
    left = producer.flush(300)
    secs = time.monotonic() - t0
    if left or errors:
        raise SystemExit(f"error: loading: {left} undelivered, {len(errors)} errors ({errors[:1]})")
    return counts, secs


def append_times(bootstrap: str, topic: str) -> list[int]:
    """Broker append times (ms) of every committed record of an output topic (created with
    LogAppendTime, so the time is when the job wrote it, not an event time)."""
    return [ts for ts, _ in read_committed_records(bootstrap, topic, idle_polls=5)]


def run_job(module: str, bootstrap: str, prefix: str, sites_file: Path, extra: list[str], timeout_s: float,
            log: Path) -> tuple[float, int]:
    """Wall seconds from launch to exit, and the exit code (-1 on timeout)."""
    state = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    cmd = [PY, "-m", module, "--bounded", "--bootstrap", bootstrap, "--topic-prefix", prefix,
           "--group-id", f"bench-{uuid.uuid4().hex[:8]}", "--sites-file", str(sites_file),
           "--state-dir", str(state), *extra]
    t0 = time.monotonic()
    with open(log, "ab") as out:
        out.write(("\n$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = -1
    shutil.rmtree(state, ignore_errors=True)
    return time.monotonic() - t0, rc


def create(bootstrap: str, prefix: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(prefix + t, partitions, 1, config={"retention.ms": "-1"}) for t in INPUT]
    appended = {"retention.ms": "-1", "message.timestamp.type": "LogAppendTime"}
    new += [NewTopic(prefix + t, partitions, 1, config=appended) for t in OUTPUT]
    for f in admin.create_topics(new).values():
        f.result(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_throughput", description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=5_000_000, help="at least this many input events (default 5M)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--variants", default="default,tick60,ceiling",
                    help=f"pipeline variants, comma-separated, of {','.join(VARIANTS)}")
    ap.add_argument("--tick-minutes", type=int, default=5)
    ap.add_argument("--timeout-s", type=float, default=3600.0, help="per job run")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if not (SAMPLE / "manifest.json").exists():
        print("error: data/sample missing: run `make sample-data`", file=sys.stderr)
        return 2
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"--variants: unknown {v!r}")
    per_copy = sum(1 for t in ("prices", "weather") for ln in (SAMPLE / f"{t}.jsonl").open("rb") if ln.strip())
    copies = max(1, math.ceil(args.events / per_copy))
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    sites_file = work / "sites.yaml"
    base_ids = site_catalogue(copies, sites_file)
    log = work / "jobs.log"
    print(f"{copies} copies x {per_copy:,} events, {copies * len(base_ids)} sites; logs in {log}", flush=True)
    def job_flags(variant: str) -> list[str]:
        flags = VARIANTS[variant]
        return flags if "--tick-minutes" in flags else ["--tick-minutes", str(args.tick_minutes), *flags]

    bootstrap, stop = private_broker("1g")
    results: list[dict] = []
    try:
        prefix = f"tp-{uuid.uuid4().hex[:6]}-"
        create(bootstrap, prefix, args.partitions)
        counts, load_s = load_events(bootstrap, prefix, copies, base_ids)
        total = counts["prices"] + counts["weather"]
        print(f"loaded {total:,} events ({counts['prices']:,} prices, {counts['weather']:,} weather) in "
              f"{load_s:.1f} s = {total / load_s:,.0f} ev/s (confluent-kafka)", flush=True)
        runs = [("passthrough", "flink_jobs.passthrough", [], counts["prices"], "prices-out")]
        runs += [("jvm ceiling", "bench.ceiling_job", job_flags(v), total, "site-costs") if v == "ceiling" else
                 (f"pipeline {v}", "flink_jobs.dispatch_job", job_flags(v), total, "site-costs") for v in variants]
        for label, module, extra, n, out_topic in runs:
            launched = time.time() * 1000
            wall, rc = run_job(module, bootstrap, prefix, sites_file, extra, args.timeout_s, log)
            results.append({"label": label, "module": module, "extra": extra, "events": n, "wall": wall, "rc": rc,
                            "window": (launched, time.time() * 1000), "topic": out_topic})
            print(f"{label:28s} {n:>10,} ev wall {wall:7.1f} s rc {rc}", flush=True)
        stamps = {t: sorted(append_times(bootstrap, prefix + t)) for t in {r["topic"] for r in results}}
    finally:
        stop()
    for r in results:
        lo, hi = r["window"]
        ts = [t for t in stamps[r["topic"]] if lo <= t <= hi]
        r["outputs"] = len(ts)
        r["proc"] = (ts[-1] - ts[0]) / 1000 if len(ts) > 1 else float("nan")
        r["startup"] = (ts[0] - lo) / 1000 if ts else float("nan")
        r["rate"] = r["events"] / r["proc"] if r["rc"] == 0 and r["proc"] > 0 else float("nan")
    passthrough = next((r for r in results if r["label"] == "passthrough"), None)
    rows = []
    for r in results:
        ratio = r["rate"] / passthrough["rate"] if passthrough and passthrough["rate"] > 0 else float("nan")
        flags = " ".join(r["extra"])
        rate = ("timeout" if r["rc"] == -1 else f"failed rc {r['rc']}") if r["rc"] else f"{r['rate']:,.0f}"
        rows.append([r["label"], f"`{flags}`" if flags else "", f"{r['events']:,}", f"{r['outputs']:,} {r['topic']}",
                     f"{r['wall']:.1f}", f"{r['startup']:.1f}", f"{r['proc']:.1f}", rate,
                     "1.00" if r is passthrough else f"{ratio:.2f}", f"{r['events'] / r['wall']:,.0f}"])
    table = md_table(["job", "flags", "events in", "records out", "wall s", "launch to 1st output s",
                      "processing s", "events/s", "x passthrough", "events/wall s"], rows)
    print(table)
    summary = {"results": results, "counts": counts, "copies": copies, "sites": copies * len(base_ids),
               "load_s": load_s, "table": table}
    if not args.no_write:
        write_doc(summary, args)
    print(f"logs kept in {work}")
    return 0 if all(r["rc"] == 0 for r in results) else 1


def write_doc(s: dict, args: argparse.Namespace) -> None:
    c = s["counts"]
    total = c["prices"] + c["weather"]
    body = f"""Command: `nice -n 10 .venv/bin/python -m bench.bench_throughput --events {args.events}
--variants {args.variants}` (part of `make bench`). Machine: {machine()}; the broker, the Flink
mini-cluster and its Python (thread mode: inside the TaskManager JVM) all share these cores.

Input: {s['copies']} renamed copies of the 2018 sample = {total:,} events ({c['prices']:,} prices,
{c['weather']:,} weather) for {s['sites']} sites (generated catalogue: copies of conf/sites.yaml),
{args.partitions} partitions per topic, loaded first with confluent-kafka in {s['load_s']:.1f} s
({total / s['load_s']:,.0f} events/s). Each job runs `--bounded` on an embedded mini-cluster
(parallelism 1, exactly-once sinks, checkpoints every 10 s, tick {args.tick_minutes} min unless the
flags say otherwise), one after the other on the same topics. Output topics use `LogAppendTime`:
"processing s" is the span between the run's first and last output record as appended by the broker
(excludes JVM/Python start-up and the final checkpoint; "events/wall s" includes them). The
passthrough reads `prices` only, so its rate is prices events/s; the pipeline's is prices + weather
events/s; the pipeline writes one site-costs record per site per tick, so with 5-minute ticks it
writes more records than it reads.

{s['table']}

{verdict(s['results'])}
"""
    write_section(TITLE, body)


TARGET_EVENTS_S, TARGET_RATIO = 150_000, 0.5  # the targets for the pipeline


def verdict(results: list[dict]) -> str:
    """Each pipeline row against the targets, in words (the figures are the table's)."""
    passthrough = next((r for r in results if r["label"] == "passthrough"), None)
    lines = []
    for r in results:
        if r is passthrough or r["rc"] or not r["rate"] == r["rate"]:
            continue
        ratio = r["rate"] / passthrough["rate"] if passthrough and passthrough["rate"] > 0 else float("nan")
        met = r["rate"] >= TARGET_EVENTS_S and ratio >= TARGET_RATIO
        lines.append(f"* {r['label']}: {r['rate']:,.0f} events/s = {r['rate'] / TARGET_EVENTS_S:.2f} of the "
                     f"{TARGET_EVENTS_S:,} target, {ratio:.2f} x passthrough (target {TARGET_RATIO}): "
                     + ("met." if met else f"missed by {TARGET_EVENTS_S / r['rate']:.0f}x in rate."))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
