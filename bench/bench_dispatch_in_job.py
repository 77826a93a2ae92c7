"""Dispatch inside the running job: decisions per second and solve ms per tick over a pending-jobs x sites grid.

    python -m bench.bench_dispatch_in_job [--grid 100x5,100x50,100x200,1000x5,1000x50,1000x200]
                                          [--hours 1.5] [--quick] [--no-write]

Each cell P x S (pending jobs x sites), on a private Kafka broker (fresh topic prefix per cell):
* sites: a generated catalogue of S sites (renamed copies of conf/sites.yaml, as bench_throughput
  does) with capacity_slots = max(1, round(P / (4 S))) each, so about a quarter of the backlog fits
  per tick and capacity is contested; their prices and weather are renamed copies of the real 2018
  sample over ``--hours`` of event time;
* jobs: a burst of P submissions in the first minute, then per tick as many as the sites hold
  (S x capacity), at random instants; each takes 1 slot for exactly one tick (compute_hours =
  tick/60), priority 0-6 (valuable enough that the objective places them whenever capacity allows), no
  deadline, no allow-list (seeded). Placements free their slots at the next tick, so the backlog
  stays near P.
* ``python -m flink_jobs.dispatch_job --bounded --execution-mode thread`` works through the loaded
  backlog flat out; the job's own ``pipeline-metrics`` give pending jobs, dispatched and solve_ms per
  tick; output LogAppendTime gives the wall time per tick (gap between consecutive pipeline-metrics
  records) and decisions per second (dispatched decisions / first-to-last output append span).
The first 2 ticks (the burst arriving) are left out of the per-tick figures. Writes the
"## Dispatch in the job" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import code_label, job_code_dir, machine, md_table, private_broker, write_section  # noqa: E402
from bench.bench_latency import generated_catalogue, pct  # noqa: E402
from bench.bench_sites_scaling import DEFAULT_START, run_bounded  # noqa: E402

TITLE = "Dispatch in the job"


def job_records(pending: int, per_tick: int, start_ms: int, end_ms: int, tick_ms: int, seed: int = 11) -> list[dict]:
    from udfs.timeutil import format_ts

    rng = random.Random(seed)
    recs = []
    n = 0

    def submit(at_ms: int) -> None:
        nonlocal n
        n += 1
        recs.append({"action": "submit", "job_id": f"b-{n:07d}", "submitted_at": format_ts(at_ms // 1000 * 1000),
                     "compute_hours": round(tick_ms / 3_600_000, 6), "slots": 1, "priority": rng.randint(0, 6)})

    for _ in range(pending):
        submit(start_ms + rng.randint(0, 59_000))
    t = start_ms + tick_ms
    while t < end_ms:
        for _ in range(per_tick):
            submit(t + rng.randint(0, tick_ms - 1000))
        t += tick_ms
    return sorted(recs, key=lambda r: r["submitted_at"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_dispatch_in_job", description=__doc__.split("\n")[0])
    ap.add_argument("--grid", default="100x5,100x50,100x200,1000x5,1000x50,1000x200",
                    help="cells PENDINGxSITES, comma-separated (sites: multiples of 5)")
    ap.add_argument("--hours", type=float, default=1.5, help="event-time span per cell (default 1.5 h = 18 ticks)")
    ap.add_argument("--start", default=DEFAULT_START)
    ap.add_argument("--tick-minutes", type=int, default=5)
    ap.add_argument("--solver-time-limit-s", type=float, default=2.0, help="the job's default is 2 s")
    ap.add_argument("--checkpoint-interval-s", type=float, default=10.0)
    ap.add_argument("--timeout-s", type=float, default=600.0, help="per cell")
    ap.add_argument("--job-code", default="worktree", help="worktree or a git ref (see bench._common.job_code_dir)")
    ap.add_argument("--quick", action="store_true", help="cells 100x5 and 1000x5 over 1 h, nothing written")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.grid, args.hours, args.no_write = "100x5,1000x5", 1.0, True
    from udfs.timeutil import parse_ts_ms

    cells = []
    for c in args.grid.split(","):
        p, s = c.lower().split("x")
        if int(s) % 5:
            ap.error("--grid: sites must be multiples of 5")
        cells.append((int(p), int(s)))
    tick_ms = args.tick_minutes * 60_000
    start_ms = parse_ts_ms(args.start)
    end_ms = start_ms + int(args.hours * 3_600_000)
    code = job_code_dir(args.job_code)
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-job-"))
    log = work / "job.log"
    print(f"grid {cells}, {args.hours:g} h per cell; logs in {log}", flush=True)
    bootstrap, stop = private_broker("1g")
    results = []
    try:
        for pending, sites in cells:
            cap = max(1, round(pending / (4 * sites)))
            sites_file = work / f"sites-{pending}x{sites}.yaml"
            generated_catalogue(sites, sites_file, capacity=cap)
            jobs = job_records(pending, cap * sites, start_ms, end_ms, tick_ms)
            extra = ["--checkpoint-interval-s", str(args.checkpoint_interval_s), "--tick-minutes",
                     str(args.tick_minutes), "--solver-time-limit-s", str(args.solver_time_limit_s)]
            r = run_bounded(bootstrap, sites_file, sites // 5, start_ms, end_ms, jobs, extra, log, code,
                            args.timeout_s)
            r.update(pending_target=pending, sites=sites, cap=cap, jobs_in=len(jobs))
            ms = r["metrics"][2:]
            r["m"] = ms
            r["gaps"] = r["tick_gap_ms"][2:]
            r["per_tick"] = sum(r["gaps"]) / len(r["gaps"]) if r["gaps"] else float("nan")
            results.append(r)
            solve = [m.get("solve_ms", 0.0) for m in ms]
            print(f"  {pending}x{sites} (cap {cap}/site): {len(ms)} ticks, pending p50 "
                  f"{statistics.median([m.get('pending_jobs', 0) for m in ms]) if ms else 0:.0f}, solve p50 "
                  f"{statistics.median(solve) if solve else float('nan'):.0f} ms, {r['decisions']:,} decisions in "
                  f"{r['proc']:.1f} s; wall {r['wall']:.0f} s rc {r['rc']}", flush=True)
    finally:
        stop()
        if code != REPO:
            import shutil

            shutil.rmtree(code, ignore_errors=True)
    rows = []
    for r in results:
        ms = r["m"]
        solve = [m.get("solve_ms", 0.0) for m in ms]
        before = [m.get("pending_jobs", 0) + m.get("dispatched", 0) + m.get("missed_deadline", 0) for m in ms]
        disp = [m.get("dispatched", 0) for m in ms]
        solvers = sorted({f"{m.get('solver')}/{m.get('solver_status')}" for m in ms})
        rows.append([f"{r['pending_target']:,} x {r['sites']}", f"{r['cap']}",
                     f"{statistics.median(before) if before else 0:,.0f}", f"{len(ms)}",
                     f"{statistics.median(disp) if disp else 0:,.0f}",
                     f"{statistics.median(solve) if solve else float('nan'):,.0f}", f"{pct(solve, 95):,.0f}",
                     f"{r['per_tick']:,.0f}", f"{pct(r['gaps'], 95):,.0f}",
                     f"{r['decisions'] / r['proc']:,.0f}" if r["proc"] == r["proc"] and r["proc"] else "n/a",
                     f"{r['decisions']:,}", ", ".join(solvers), "ok" if r["rc"] == 0 else f"rc {r['rc']}"])
    table = md_table(["pending x sites", "slots/site", "pending at solve p50", "ticks", "dispatched/tick p50",
                      "solve ms p50", "solve ms p95", "wall ms/tick mean", "tick gap p95 ms", "decisions/s",
                      "decisions", "solver/status", "exit"], rows)
    print(table)
    if not args.no_write and results:
        write_doc(args, table, cells)
    print(f"logs kept in {work}")
    return 0 if results and all(r["rc"] == 0 for r in results) else 1


def write_doc(args: argparse.Namespace, table: str, cells: list[tuple[int, int]]) -> None:
    body = f"""Command: `nice -n 10 .venv/bin/python -m bench.bench_dispatch_in_job --grid {args.grid}
--hours {args.hours:g} --job-code {args.job_code}` (part of `make bench`). Machine: {machine()}; broker,
loader, Flink mini-cluster and its Python share these cores with other work.

Cells run: {", ".join(f"{p:,} pending x {s} sites" for p, s in cells)}. Each: `python -m flink_jobs.dispatch_job
--bounded --execution-mode thread --solver-time-limit-s {args.solver_time_limit_s:g}` (job code:
{code_label(args.job_code)}) on {args.hours:g} h of event time ({args.hours * 60 / args.tick_minutes:.0f}
ticks) loaded beforehand: real 2018 sample prices/weather copied to every generated site; a burst of P jobs
then, every tick, as many 1-slot one-tick jobs as the sites hold (slots/site = round(P / 4S)), so the
backlog stays near P and a quarter of it fits per tick. Figures are the job's own: `pending at solve` =
pending_jobs + dispatched + missed of the tick's `pipeline-metrics`, `solve ms` = its solve_ms
(the MILP call: model build, HiGHS, read back), `wall ms/tick mean` = append-time span of the measured ticks'
`pipeline-metrics` records / their number (everything the job does per tick: site inputs, site-costs,
the solve, the baselines, state; a mean, because the Python operator hands its output over in bundles,
so single gaps are lumpy: "tick gap p95" shows the spread), decisions/s = `dispatch` records /
first-to-last output append span. The first 2 ticks are left out. The solver-only figures of the
same sizes are in "Dispatch solver" above.

{table}
"""
    write_section(TITLE, body)


if __name__ == "__main__":
    sys.exit(main())
