"""Dispatch solver benchmark: median solve time of 5 runs and objective versus greedy.

    python -m bench.bench_dispatch            # full grid, writes docs/BENCHMARKS.md section
    python -m bench.bench_dispatch --quick    # small grid, prints only

Instances are synthetic and seeded (see ``make_instance``): they model one busy tick with a
backlog — jobs of 1-16 slots and 1-200 compute-hours, priorities 0-9, 40 % with deadlines
(some due within the tick), 20 % with an allow-list; sites with 200-600 free slots at costs of
one compute-hour spread like EU/US day-ahead prices x PUE.
"""

from __future__ import annotations

import argparse
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

from udfs.dispatch import DispatchConfig, solve_dispatch  # noqa: E402
from udfs.objective import HOUR_MS, Job, SiteState  # noqa: E402

TICK_MS = 1_530_439_200_000  # 2018-07-01T10:00:00Z
DOC = REPO / "docs" / "BENCHMARKS.md"
SECTION = "## Dispatch solver"


def make_instance(n_jobs: int, n_sites: int, seed: int = 7) -> tuple[list[Job], list[SiteState]]:
    rng = random.Random(seed * 1_000_003 + n_jobs * 1009 + n_sites)
    sites = []
    for i in range(n_sites):
        price = rng.uniform(20.0, 110.0)  # EUR/MWh
        kw = rng.uniform(0.3, 0.5)
        pue = rng.uniform(1.05, 1.5)
        sites.append(
            SiteState(
                site_id=f"s{i:03d}",
                cost_per_compute_hour=round(price / 1000 * kw * pue, 6),
                available_slots=rng.randint(200, 600),
                region=f"r{i % 7}",
                price_per_mwh=round(price, 3),
            )
        )
    ids = [s.site_id for s in sites]
    jobs = []
    for i in range(n_jobs):
        slots = rng.choice([1, 1, 2, 2, 4, 4, 8, 16])
        deadline = None
        r = rng.random()
        if r < 0.1:
            deadline = TICK_MS + rng.randint(0, 5 * 60_000)  # due within this tick
        elif r < 0.4:
            deadline = TICK_MS + rng.randint(1, 48) * HOUR_MS // 4
        allow = (
            tuple(rng.sample(ids, min(len(ids), rng.randint(1, 3)))) if rng.random() < 0.2 else None
        )
        jobs.append(
            Job(
                job_id=f"j-{i:06d}",
                compute_hours=round(rng.uniform(1, 200), 2),
                slots=slots,
                priority=rng.randint(0, 9),
                deadline_ms=deadline,
                sites=allow,
                submitted_ms=TICK_MS - rng.randint(0, 3_600_000),
            )
        )
    return jobs, sites


def budget_s(n_jobs: int) -> float:
    """Time limit per call: the issue's targets (250 ms up to 1,000 jobs, 3 s for 10,000)."""
    return 0.25 if n_jobs <= 1_000 else 3.0


def run(n_jobs: int, n_sites: int, repeats: int = 5, reference: bool = True) -> dict:
    jobs, sites = make_instance(n_jobs, n_sites)
    cfg = DispatchConfig(time_limit_s=budget_s(n_jobs))
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = solve_dispatch(jobs, sites, TICK_MS, config=cfg)
        times.append((time.perf_counter() - t0) * 1000)
    assert res is not None
    ref_gain = None
    if reference:  # what a long, unpruned solve achieves (best known), for the quality column
        ref = solve_dispatch(
            jobs, sites, TICK_MS, config=DispatchConfig(time_limit_s=20.0, max_vars=60_000)
        )
        ref_gain = max(ref.greedy_objective - ref.objective, 0.0)
    gain = res.greedy_objective - res.objective
    return {
        "jobs": n_jobs,
        "sites": n_sites,
        "median_ms": statistics.median(times),
        "limit_ms": cfg.time_limit_s * 1000,
        "status": res.status,
        "solver": res.solver,
        "n_vars": res.n_vars,
        "pruned": res.pruned,
        "placed": len(res.assignments),
        "gain": gain,
        "ref_gain": ref_gain,
        "cost": res.cost,
        "proven_gap": res.proven_gap,
    }


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
    head = (
        "| jobs | sites | limit (ms) | median (ms) | status | solver | vars | pruned | placed "
        "| gain vs greedy (EUR) | best known gain (EUR) | share |"
    )
    sep = "|---:|---:|---:|---:|---|---|---:|---|---:|---:|---:|---:|"
    lines = [head, sep]
    for r in rows:
        ref = r["ref_gain"]
        share = "n/a" if not ref else f"{min(r['gain'] / ref, 9.99) * 100:.0f} %"
        ref_s = "n/a" if ref is None else f"{ref:,.2f}"
        lines.append(
            f"| {r['jobs']:,} | {r['sites']} | {r['limit_ms']:.0f} | {r['median_ms']:.1f} "
            f"| {r['status']} | {r['solver']} | {r['n_vars']:,} | {'yes' if r['pruned'] else 'no'} "
            f"| {r['placed']:,} | {r['gain']:,.2f} | {ref_s} | {share} |"
        )
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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    grid_j = [100, 1000] if args.quick else [100, 1_000, 10_000]
    grid_s = [5, 50] if args.quick else [5, 50, 200]
    rows = []
    for nj in grid_j:
        for ns in grid_s:
            r = run(nj, ns, args.repeats, reference=not args.quick)
            rows.append(r)
            print(
                f"{nj:>6} jobs x {ns:>3} sites: {r['median_ms']:8.1f} ms  {r['status']:<16} "
                f"{r['solver']:<10} vars={r['n_vars']:<6} gain={r['gain']:.2f} ref={r['ref_gain']}",
                flush=True,
            )
    out = table(rows)
    print()
    print(out)
    if not args.quick and not args.no_write:
        write_section(report(rows, out, args.repeats))
        print(f"\nwrote the '{SECTION}' section of {DOC.relative_to(REPO)}")
    return 0


def report(rows: list[dict], out: str, repeats: int) -> str:
    # Filled in by hand-written notes below the generated table; see docs/BENCHMARKS.md.
    return NOTES.format(machine=machine(), table=out, repeats=repeats)


NOTES = """\
Command: `make bench-dispatch` (= `.venv/bin/python -m bench.bench_dispatch`; `--quick` for a
small grid without writing this file). Machine: {machine}; shared with other processes while
measured.

What is measured: median wall time of {repeats} calls of `udfs.dispatch.solve_dispatch` (build
the tick problem, greedy plan, PuLP model, HiGHS solve, read back, compare) with the time limit
shown (the issue's targets: 250 ms up to 1,000 jobs, 3 s for 10,000). Objective as defined in
`udfs/objective.py` (cost minus value, plus the must-place bonus). "gain vs greedy" = greedy
objective - MILP objective in EUR (>= 0 by construction: HiGHS starts from the greedy plan and
the greedy plan is returned if the MILP's is worse). Greedy is the MILP's own fallback
(`beneficial_only=True`), the strongest greedy under this objective. "best known gain" is one
run with a 20 s limit and up to 60,000 variables; "share" = gain / best known gain.
Instances (`make_instance`, seeded): a busy tick with a backlog — 1-16 slots, 1-200
compute-hours, priorities 0-9, 10 % due within the tick, 30 % with later deadlines, 20 % with
an allow-list of 1-3 sites; sites with 200-600 free slots; capacity is contested at the cheap
sites in every row.

{table}

Reading it:
* Model reductions in `udfs/dispatch.py`: exact ones (pairs whose placement cannot pay are
  dropped; each job keeps only the cheapest prefix of its sites that covers total demand plus
  fragmentation, a proven-exact cut; constraints that cannot bind are not emitted; when every
  job's best site fits, that plan is returned without a solver, `solver=presolve`) and one
  heuristic (above 3,000 pairs each job keeps its k cheapest sites plus its greedy site and
  that site's cheaper neighbour; `pruned=yes`).
* Where the targets are missed, time goes to building the model through PuLP (Python objects
  per variable, ~10-25 us each, and PuLP's column-by-column load into HiGHS) and to HiGHS
  proving the knapsack-like capacity constraints; within a 250 ms budget on 1,000 contested
  jobs HiGHS returns its warm start (the greedy plan), status `feasible-timeout`, so the
  result is only as good as greedy there. Raising `DispatchConfig.time_limit_s` to 1-3 s
  recovers most of the best-known gain (see "best known gain"). Next steps if this matters:
  load the model through highspy's bulk `addCols`/`addRows` instead of PuLP objects, and
  decompose per contested site group.
* A gain far above the cost scale (10,000 x 5: 3.6e8) counts must-place bonuses, not EUR: the
  reference plan starts more due-now jobs than greedy (each is worth the bonus B of
  `udfs/objective.py`). Greedy is not optimal for due-now jobs under contention either.
* Measured misses: 1,000 jobs keep to ~250 ms but, except 1,000 x 50, only return the greedy
  plan; 10,000 jobs take 3.1-5.5 s against the 3 s target (the Python-side tick problem over
  10,000 x 200 pairs and PuLP's model load alone exceed the budget) and return the greedy plan.
  The dispatch ticks of the demo (5 sites, tens to a few hundred pending jobs) solve to proven
  optimality in 20-100 ms.
"""


if __name__ == "__main__":
    raise SystemExit(main())
