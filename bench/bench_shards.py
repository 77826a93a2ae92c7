"""Region-sharded dispatch: one global dispatcher against N shards, same input, same run.

    python -m bench.bench_shards [--copies 8] [--days 2] [--jobs-per-hour 60] [--shards 2] [--no-write]

1. A private Kafka broker; a generated catalogue of ``--copies`` renamed copies of every
   conf/sites.yaml site (each copy keeps its region: 5 regions; copy k draws 0.1 % x k more IT
   power per slot, so no two sites tie on cost); the sample's prices and weather
   of ``--days`` days of July 2018, renamed per copy; a seeded job stream (sources.jobs) whose
   allow-lists are cut to the shard that decides each job (udfs.sharding.job_shard), so the
   shards' problems are independent blocks of the global one and the results must agree.
2. The same input under two topic prefixes; the dispatch job ``--bounded`` once with
   ``--dispatch-shards 1`` and once with ``--dispatch-shards N`` (the dispatch operator then runs
   at parallelism N, one shard per subtask).
3. Compares committed site-costs and dispatch (solver/solve_ms aside) and reports wall time, the
   summed solve time and the subtasks seen per shard. Writes "## Sharded dispatch" in
   docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import (  # noqa: E402
    machine,
    md_table,
    private_broker,
    read_committed_records,
    sample_records,
    write_section,
)
from bench.bench_throughput import create, run_job, site_catalogue  # noqa: E402

TITLE = "Sharded dispatch"
START = "2018-07-01T00:00:00Z"


def load_inputs(bootstrap: str, prefixes: list[str], copies: int, base_ids: list[str], start_ms: int,
                end_ms: int, jobs: list[dict]) -> int:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    items = sample_records(copies, start_ms, end_ms, jobs)
    for prefix in prefixes:
        for ts, topic, key, value in items:
            producer.produce(prefix + topic, value, key, timestamp=ts)
            producer.poll(0)
    if producer.flush(120):
        raise SystemExit("error: loading: records left undelivered")
    return len(items)


def untie(sites_file: Path) -> None:
    """Copies of a site would cost exactly the same, and an MILP with tied optima may pick a
    different (equally cheap) plan for the global and the sharded problem. A per-copy IT power
    offset (0.1 % per copy) makes every site's cost distinct, so agreement can be checked exactly."""
    import yaml

    data = yaml.safe_load(sites_file.read_text())
    for site in data["sites"]:
        copy = int(site["site_id"].rsplit("-t", 1)[1])
        site["it_kw_per_slot"] = round(site["it_kw_per_slot"] * (1 + 0.001 * copy), 6)
    sites_file.write_text(yaml.safe_dump(data, sort_keys=False))


def confined_jobs(sites_file: Path, shards: int, count: int, start_ms: int, rate: float) -> list[dict]:
    from sources.jobs import generate_jobs
    from udfs.catalogue import load_catalogue
    from udfs.sharding import assign_shards, job_shard

    site_shard = assign_shards(load_catalogue(sites_file), shards)
    out = []
    for rec in generate_jobs(11, count, start_ms, rate, sorted(site_shard), allow_fraction=0.3):
        if rec["action"] == "submit":
            shard = job_shard(rec, site_shard, shards)
            rec = dict(rec, sites=[s for s in rec.get("sites") or sorted(site_shard) if site_shard[s] == shard])
        out.append(rec)
    return out


def committed(bootstrap: str, topic: str) -> list[dict]:
    return [json.loads(value) for _ts, value in read_committed_records(bootstrap, topic)]


def comparable(rec: dict) -> str:
    return json.dumps({k: v for k, v in rec.items() if k not in ("solve_ms", "solver")}, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_shards", description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=8, help="copies of the 5 sample sites (default 8: 40 sites)")
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--jobs-per-hour", type=float, default=60.0)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="per job run")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.copies < 1 or args.days <= 0 or args.shards < 2:
        ap.error("--copies >= 1, --days > 0 and --shards >= 2 are required")

    from udfs.timeutil import parse_ts_ms

    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    sites_file = work / "sites.yaml"
    base_ids = site_catalogue(args.copies, sites_file)
    untie(sites_file)
    start_ms = parse_ts_ms(START)
    end_ms = start_ms + int(args.days * 86_400_000)
    jobs = confined_jobs(sites_file, args.shards, int(args.days * 24 * args.jobs_per_hour), start_ms,
                         args.jobs_per_hour)
    jobs = [j for j in jobs if parse_ts_ms(j["submitted_at"]) < end_ms]
    bootstrap, stop = private_broker()
    runs = {}
    try:
        prefixes = {1: f"one{uuid.uuid4().hex[:4]}-", args.shards: f"sh{uuid.uuid4().hex[:4]}-"}
        for prefix in prefixes.values():
            create(bootstrap, prefix, 4)
        n_in = load_inputs(bootstrap, list(prefixes.values()), args.copies, base_ids, start_ms, end_ms, jobs)
        for shards, prefix in prefixes.items():
            wall, rc = run_job("flink_jobs.dispatch_job", bootstrap, prefix, sites_file,
                               ["--dispatch-shards", str(shards), "--checkpoint-interval-s", "5"], args.timeout_s,
                               work / "jobs.log")
            if rc != 0:
                raise SystemExit(f"error: the job with {shards} shard(s) exited {rc}; log: {work / 'jobs.log'}")
            out = {t: committed(bootstrap, prefix + t) for t in ("site-costs", "dispatch", "pipeline-metrics")}
            runs[shards] = (wall, out)
            print(f"{shards} shard(s): {wall:.1f} s wall, {len(out['dispatch'])} decisions", flush=True)
    finally:
        stop()

    (wall1, one), (walln, many) = runs[1], runs[args.shards]
    same = {t: sorted(map(comparable, one[t])) == sorted(map(comparable, many[t])) for t in ("site-costs", "dispatch")}
    solve = {1: sum(m["solve_ms"] for m in one["pipeline-metrics"])}
    per_shard: dict[int, float] = defaultdict(float)
    subtasks: dict[int, set[int]] = defaultdict(set)
    for m in many["pipeline-metrics"]:
        per_shard[m["shard"]] += m["solve_ms"]
        subtasks[m["shard"]].add(m["subtask"])
    def cost(out: dict) -> str:  # expected cost of everything dispatched (EUR)
        return f"{sum(d.get('expected_cost') or 0 for d in out['dispatch'] if d['status'] == 'dispatched'):,.2f}"

    rows = [["1 (global)", f"{wall1:.1f}", f"{len(one['site-costs']):,}", f"{len(one['dispatch']):,}", cost(one),
             f"{solve[1] / 1000:.1f}", "-"]]
    rows.append([f"{args.shards} (one subtask each)", f"{walln:.1f}", f"{len(many['site-costs']):,}",
                 f"{len(many['dispatch']):,}", cost(many),
                 " + ".join(f"{per_shard[s] / 1000:.1f}" for s in sorted(per_shard)),
                 ", ".join(f"shard {s} -> subtask {sorted(v)}" for s, v in sorted(subtasks.items()))])
    table = md_table(["dispatch shards", "wall s", "site-costs", "decisions", "dispatched cost EUR",
                      "solve s (per shard)", "placement"], rows, "---|---:|---:|---:|---:|---:|---")
    verdict = (f"site-costs identical: **{same['site-costs']}**, dispatch identical (solver/solve_ms aside): "
               f"**{same['dispatch']}**")
    print(table)
    print(verdict)
    cmd = " ".join(["python -m bench.bench_shards", *(argv if argv is not None else sys.argv[1:])])
    body = (f"Command: `{cmd}`. Machine: {machine()}.\n\n"
            f"{args.copies * 5} sites (5 regions x {args.copies} copies), {args.days:g} days from {START}, "
            f"{n_in:,} input records per run ({len(jobs):,} job records, allow-lists cut to one shard), "
            f"checkpoints every 5 s, job parallelism 1 except the dispatch operator "
            f"(= shards).\n\n{table}\n\n{verdict}. Wall time includes JVM and Python start-up and the "
            f"final checkpoint; the machine is shared, so compare the two rows of this run only.\n")
    if not args.no_write:
        write_section(TITLE, body)
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"bench_shards: {time.monotonic() - started:.0f} s", file=sys.stderr)
    raise SystemExit(code)
