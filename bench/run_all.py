"""Every benchmark, one after the other: `make bench` runs `python -m bench.run_all`.

    python -m bench.run_all [--quick] [--events N]
                            [--only money,throughput,dispatch,replay,latency,dispatch-in-job,sites-scaling,shards]

Each benchmark is its own module (runnable alone, with flags for size) and rewrites only its own
`##` section of docs/BENCHMARKS.md; this runner calls them as subprocesses (under `nice -n 10`,
one at a time: the machine is shared), prints a summary table and writes the "## Summary" section
(command, machine, date, per-benchmark status and wall time). Benchmarks not implemented yet are
listed as such.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import PY, machine, md_table, write_section  # noqa: E402

NOT_DONE: dict[str, str] = {}


def benches(quick: bool, events: int | None) -> dict[str, list[str]]:
    tp_events = str(events or (300_000 if quick else 5_000_000))
    return {
        "money": ["bench.bench_money", *(["--months", "2018-07", "--variants", "all", "--days", "1", "--no-write"]
                                         if quick else [])],
        "throughput": ["bench.bench_throughput", "--events", tp_events,
                       *(["--variants", "default", "--no-write"] if quick
                         else ["--variants", "default,tick60,ceiling"])],
        "dispatch": ["bench.bench_dispatch", *(["--quick"] if quick else [])],
        "replay": ["bench.bench_replay", *(["--quick"] if quick else [])],
        "latency": ["bench.bench_latency", *(["--quick"] if quick else [])],
        "dispatch-in-job": ["bench.bench_dispatch_in_job", *(["--quick"] if quick else [])],
        "sites-scaling": ["bench.bench_sites_scaling", *(["--quick"] if quick else [])],
        "shards": ["bench.bench_shards", *(["--copies", "2", "--days", "0.5", "--no-write"] if quick else [])],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, nothing written")
    ap.add_argument("--only", help="comma-separated subset of money,throughput,dispatch,replay,latency,"
                    "dispatch-in-job,sites-scaling,shards")
    ap.add_argument("--events", type=int, help="throughput: input events (default 5,000,000)")
    args = ap.parse_args(argv)
    todo = benches(args.quick, args.events)
    names = args.only.split(",") if args.only else list(todo)
    for n in names:
        if n not in todo:
            ap.error(f"--only: unknown benchmark {n!r}")
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    rows = []
    for name in names:
        cmd = [*nice, PY, "-m", *todo[name]]
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(cmd, cwd=REPO)
        rows.append([name, f"`python -m {' '.join(todo[name])}`", "ok" if rc == 0 else f"failed (rc {rc})",
                     f"{time.monotonic() - t0:.0f}"])
    rows += [[k, "", v, ""] for k, v in NOT_DONE.items()]
    table = md_table(["benchmark", "command", "status", "wall s"], rows)
    print("\n" + table)
    if not args.quick:
        cmd = "make bench" + (f" (= python -m bench.run_all {' '.join(argv or sys.argv[1:])})" if argv else "")
        write_section("Summary", f"Command: `{cmd}`. Machine: {machine()}.\n"
                      "Each benchmark below was written by its own module in this run; figures are from one run.\n\n"
                      + table)
    return 0 if all(r[2] == "ok" for r in rows[: len(names)]) else 1


if __name__ == "__main__":
    sys.exit(main())
