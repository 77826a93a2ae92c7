"""Dispatch solver benchmark: solve time of one planning tick (p50/p95 over seeded instances) and
the objective against greedy, with the 24 h horizon.

    python -m bench.bench_dispatch            # full grid, writes docs/BENCHMARKS.md section
    python -m bench.bench_dispatch --quick    # small grid, prints only

Instances are synthetic and seeded (see ``make_instance``): one tick with a backlog of pending
jobs (1-16 slots, 0.5-48 compute-hours, priorities 0-9, 10 % at their last chance, 40 % with a
deadline in the next 12 h, 20 % with an allow-list), sites with 100-600 slots of which some are
busy until a random time, and an hourly cost curve per site over the horizon (a daily price
shape with noise, like day-ahead prices x PUE; known for the first 11-35 h, forecast after).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from udfs.objective import DEFAULT_HORIZON_MS, HOUR_MS, CostCurve, Job, SitePlan  # noqa: E402
from udfs.optimizer import DispatchConfig, solve_dispatch  # noqa: E402

TICK_MS = 1_530_439_200_000 + 5 * 60_000  # 2018-07-01T10:05:00Z
DOC = REPO / "docs" / "BENCHMARKS.md"
SECTION = "## Dispatch solver"


def make_instance(n_jobs: int, n_sites: int, seed: int = 7) -> tuple[list[Job], list[SitePlan]]:
    rng = random.Random(seed * 1_000_003 + n_jobs * 1009 + n_sites)
    hours = 24 + 48 + 1
    first = (TICK_MS // HOUR_MS + 1) * HOUR_MS
    sites = []
    for i in range(n_sites):
        level = rng.uniform(20.0, 110.0) / 1000 * rng.uniform(0.3, 0.5) * rng.uniform(1.05, 1.5)
        phase = rng.uniform(0, 24)
        rates = tuple(max(-0.01, level * (1 + 0.35 * math.sin((h + phase) / 24 * 2 * math.pi) + rng.gauss(0, 0.08)))
                      for h in range(hours))
        known_h = rng.randint(11, 35)
        curve = CostCurve((TICK_MS, *(first + h * HOUR_MS for h in range(hours))), rates,
                          tuple(1.0 if h < known_h else 0.0 for h in range(hours)))
        cap = rng.randint(100, 600)
        busy = rng.randint(0, cap // 2)
        releases = ((TICK_MS + rng.randint(1, 12) * HOUR_MS, busy),) if busy else ()
        sites.append(SitePlan(f"s{i:03d}", f"r{i % 7}", cap - busy, cap, curve, releases, level * 1000))
    ids = [s.site_id for s in sites]
    jobs = []
    for i in range(n_jobs):
        r = rng.random()
        deadline = None
        if r < 0.1:
            deadline = TICK_MS + rng.randint(0, 4 * 60_000)  # last chance at this tick
        elif r < 0.5:
            deadline = TICK_MS + rng.randint(1, 48) * HOUR_MS // 4
        allow = tuple(rng.sample(ids, min(len(ids), rng.randint(1, 3)))) if rng.random() < 0.2 else None
        jobs.append(Job(job_id=f"j-{i:06d}", compute_hours=round(rng.uniform(0.5, 48), 2),
                        slots=rng.choice([1, 1, 2, 2, 4, 4, 8, 16]), priority=rng.randint(0, 9), deadline_ms=deadline,
                        sites=allow, submitted_ms=TICK_MS - rng.randint(0, 6 * HOUR_MS)))
    return jobs, sites


def run(n_jobs: int, n_sites: int, instances: int, time_limit_s: float) -> dict:
    cfg = DispatchConfig(time_limit_s=time_limit_s)
    times, gains, statuses, n_vars = [], [], [], []
    for seed in range(instances):
        jobs, sites = make_instance(n_jobs, n_sites, seed)
        t0 = time.perf_counter()
        res = solve_dispatch(jobs, sites, TICK_MS, config=cfg)
        times.append((time.perf_counter() - t0) * 1000)
        gains.append(res.greedy_objective - res.objective)
        statuses.append(f"{res.solver}/{res.status}")
        n_vars.append(res.n_vars)
    times.sort()
    return {"jobs": n_jobs, "sites": n_sites, "limit_ms": time_limit_s * 1000, "p50_ms": statistics.median(times),
            "p95_ms": times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], "max_ms": times[-1],
            "statuses": ", ".join(f"{k} x{statuses.count(k)}" for k in sorted(set(statuses))),
            "vars": statistics.median(n_vars), "gain": statistics.median(gains), "instances": instances}


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc {_nproc()}), {cpu}, Python {platform.python_version()}"


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def table(rows: list[dict]) -> str:
    head = ("| pending jobs | sites | limit (ms) | p50 (ms) | p95 (ms) | max (ms) | solver/status | median vars "
            "| median gain vs greedy |")
    lines = [head, "|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['jobs']:,} | {r['sites']} | {r['limit_ms']:.0f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
                     f"| {r['max_ms']:.0f} | {r['statuses']} | {r['vars']:,.0f} | {r['gain']:,.2f} |")
    return "\n".join(lines)


def write_section(body: str) -> None:
    """Replace (or append) only the '## Dispatch solver' section of docs/BENCHMARKS.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    DOC.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid, print only")
    ap.add_argument("--instances", type=int, default=20, help="seeded instances per grid cell (default %(default)s)")
    ap.add_argument("--time-limit-s", type=float, default=DispatchConfig.time_limit_s,
                    help="wall-clock safety net per solve (default %(default)s); the work limit is max_nodes")
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    grid = [(100, 5), (300, 5), (1000, 5), (1000, 50)] if not args.quick else [(100, 5), (300, 5)]
    rows = []
    for nj, ns in grid:
        r = run(nj, ns, 3 if args.quick else args.instances, args.time_limit_s)
        rows.append(r)
        print(f"{nj:>6} jobs x {ns:>3} sites: p50 {r['p50_ms']:7.0f} ms  p95 {r['p95_ms']:7.0f} ms  {r['statuses']}  "
              f"vars={r['vars']:.0f} gain={r['gain']:.2f}", flush=True)
    out = table(rows)
    print()
    print(out)
    if not args.quick and not args.no_write:
        write_section(NOTES.format(machine=machine(), table=out, instances=args.instances,
                                   limit=args.time_limit_s, horizon=DEFAULT_HORIZON_MS // HOUR_MS))
        print(f"\nwrote the '{SECTION}' section of {DOC.relative_to(REPO)}")
    return 0


NOTES = """\
Command: `make bench-dispatch` (= `.venv/bin/python -m bench.bench_dispatch`; `--quick` for a
small grid without writing this file). Machine: {machine}; shared with other processes while
measured.

What is measured: wall time of one `udfs.optimizer.solve_dispatch` call (the plan problem with
every pending job's options over the {horizon} h horizon, the greedy plan, the PuLP model, the LP
relaxation rounded to a warm start, the HiGHS solve, read back, compare with greedy), over
{instances} seeded instances per row. The search is bounded by work (issue 26): HiGHS's root only
(`DispatchConfig.max_nodes` = 0, one thread), status `work-limit` when the root did not prove
optimality; the wall-clock safety net ({limit:g} s) fires as `wall-clock-limit` (none should).
The same instance gives the same plan on any machine: only the times below vary with load.
Targets (issue 28): p95 <= 0.5 s at 1,000 pending jobs x 50 sites.
"gain vs greedy" = greedy objective - plan objective (>= 0 by construction), in the objective's
units (EUR of cost and delay, plus the placement bonus for each extra job placed in the horizon).

{table}
"""


if __name__ == "__main__":
    raise SystemExit(main())
