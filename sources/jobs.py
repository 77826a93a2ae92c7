"""Synthetic job submissions (and some cancels) on the replay clock.

    python -m sources.jobs --rate 20 --count 500 --seed 7 [--start 2018-01-01T00:00:00Z] [--speed 3600 | --max]
    python -m sources.jobs --count 10 --out -          # print the records instead of producing them
    python -m sources.jobs --count 0 --end 2019-01-01T00:00:00Z   # no count limit: until --end or Ctrl-C

The model (all seeded; see generate_jobs): Poisson arrivals at ``rate`` jobs per data-hour;
compute_hours lognormal (median 4 h, sigma 1.0, clipped to [0.25, 200]); slots from
{1, 2, 4, 8, 16}; priority 0..9 from a mix that favours the middle; a deadline (latest start)
for 70% of jobs, lognormal slack (median 6 h, clipped to [0.25 h, 72 h]); an allow-list (a
random non-empty proper subset of the sites) for 20%; a cancel for 5%, an exponential time
(mean 2 h, at least 1 min) after submission. Records are the CONTRACT ``jobs`` shapes, keyed by
``job_id``, with the Kafka timestamp = ``submitted_at``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import Iterator

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
from sources.progress import Progress
from sources.sites import site_ids as catalogue_site_ids
from udfs import topics as T
from udfs.timeutil import format_ts, parse_ts_ms

DEFAULT_START = "2018-01-01T00:00:00Z"  # the start of the sample year (data/sample covers 2018)
SLOT_CHOICES = (1, 2, 4, 8, 16)
SLOT_WEIGHTS = (0.35, 0.25, 0.20, 0.12, 0.08)
PRIORITY_WEIGHTS = (0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.14, 0.12, 0.10, 0.10)  # index = priority


def generate_jobs(
    seed: int,
    count: int,
    start_ms: int,
    rate_per_hour: float,
    site_ids: list[str] | tuple[str, ...],
    *,
    cancel_fraction: float = 0.05,
    allow_fraction: float = 0.20,
    deadline_fraction: float = 0.70,
    id_prefix: str = "j-",
) -> list[dict]:
    """``count`` submit records (plus cancels for a fraction), sorted by ``submitted_at``.

    Deterministic: the same arguments give the same list. Every job draws the same random
    numbers whatever the fractions, so changing one fraction does not reshuffle the other fields.
    """
    return list(
        iter_jobs(
            seed,
            start_ms,
            rate_per_hour,
            site_ids,
            count=count,
            cancel_fraction=cancel_fraction,
            allow_fraction=allow_fraction,
            deadline_fraction=deadline_fraction,
            id_prefix=id_prefix,
        )
    )


def iter_jobs(
    seed: int,
    start_ms: int,
    rate_per_hour: float,
    site_ids: list[str] | tuple[str, ...],
    *,
    count: int | None = None,
    end_ms: int | None = None,
    cancel_fraction: float = 0.05,
    allow_fraction: float = 0.20,
    deadline_fraction: float = 0.70,
    id_prefix: str = "j-",
) -> Iterator[dict]:
    """The job records of generate_jobs, produced lazily in ``submitted_at`` order (submits before
    cancels of the same second). ``count`` None: no limit on submits; ``end_ms``: only records
    with ``submitted_at`` before it (a cancel due at or after it is not sent). With neither, the
    stream is endless. The first ``count`` submits are the same whatever ``count``/``end_ms``
    (job ids are padded to the width of ``count``, at least 6 digits).
    """
    if rate_per_hour <= 0:
        raise ValueError("rate_per_hour must be > 0")
    sites = sorted(set(site_ids))
    rng = random.Random(seed)
    mean_gap_ms = 3_600_000 / rate_per_hour
    width = max(6, len(str(count or 0)))
    t = float(start_ms)
    cancels: list[tuple[int, int, dict]] = []  # (at, sequence, record): released in time order
    for n in itertools.count(1) if count is None else range(1, count + 1):
        t += rng.expovariate(1.0) * mean_gap_ms
        submitted = int(t) // 1000 * 1000  # whole seconds
        if end_ms is not None and submitted >= end_ms:
            break
        compute_hours = round(min(200.0, max(0.25, rng.lognormvariate(math.log(4.0), 1.0))), 2)
        slots = rng.choices(SLOT_CHOICES, SLOT_WEIGHTS)[0]
        priority = rng.choices(range(10), PRIORITY_WEIGHTS)[0]
        u_deadline, slack_h = rng.random(), min(72.0, max(0.25, rng.lognormvariate(math.log(6.0), 0.8)))
        u_allow, k_allow, allow_seed = rng.random(), rng.random(), rng.random()
        u_cancel, cancel_after_s = rng.random(), max(60.0, rng.expovariate(1 / 7200))
        job_id = f"{id_prefix}{n:0{width}d}"
        job: dict = {
            "action": "submit",
            "job_id": job_id,
            "submitted_at": format_ts(submitted),
            "compute_hours": compute_hours,
            "slots": slots,
            "priority": priority,
        }
        if u_deadline < deadline_fraction:
            job["deadline"] = format_ts(submitted + int(slack_h * 60) * 60_000)
        if u_allow < allow_fraction and len(sites) > 1:
            size = 1 + int(k_allow * (len(sites) - 1))  # 1 .. len-1: a real restriction
            job["sites"] = sorted(random.Random(allow_seed).sample(sites, size))
        # submits come in time order; a cancel waits until a later second's submit is due
        while cancels and cancels[0][0] < submitted:
            yield heapq.heappop(cancels)[2]
        yield job
        if u_cancel < cancel_fraction:
            at = submitted + int(cancel_after_s) * 1000
            heapq.heappush(cancels, (at, n, {"action": "cancel", "job_id": job_id, "submitted_at": format_ts(at)}))
    while cancels:
        at, _, record = heapq.heappop(cancels)
        if end_ms is not None and at >= end_ms:
            break
        yield record


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m sources.jobs",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=positive_float, default=20.0, help="jobs per data-hour (default %(default)s)")
    parser.add_argument(
        "--count",
        type=non_negative_int,
        default=500,
        help="jobs to submit (default %(default)s); 0 = no limit: until --end, or until stopped",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=ts_arg, help=f"data time of the first arrival window (default {DEFAULT_START})")
    parser.add_argument(
        "--end",
        type=ts_arg,
        help="data time to stop at (exclusive): no submit or cancel at or after it, whatever --count",
    )
    parser.add_argument(
        "--rebase-to-now", action="store_true", help="start at the current hour (pairs with replay --rebase-to-now)"
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=positive_float, default=3600.0, help="data-seconds per wall-second (default %(default)s)"
    )
    pace.add_argument("--max", action="store_true", help="as fast as possible")
    parser.add_argument("--sites", type=csv_list, help="site ids for allow-lists (default: the catalogue, GRD_SITES)")
    parser.add_argument("--cancel-fraction", type=probability, default=0.05)
    parser.add_argument("--allow-fraction", type=probability, default=0.20)
    parser.add_argument("--deadline-fraction", type=probability, default=0.70)
    parser.add_argument("--id-prefix", default=None,
                        help="job ids are PREFIX + a zero-padded number (default 'j-' + a tag new for every run, "
                             "so a second run never reuses ids already in the topic; 'j-' gives fixed ids)")
    parser.add_argument("--out", help="write JSON lines to this file ('-' = stdout) instead of Kafka")
    parser.add_argument("--no-progress", action="store_true")
    add_kafka_args(parser)
    parser.add_argument("--topic", help="Kafka topic (default: prefix + jobs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    sink: P.Sink | None = None
    out = None
    sent = 0
    interrupted = False
    submits = cancels = 0
    topic = args.topic or args.topic_prefix + T.JOBS
    try:
        sites = args.sites or catalogue_site_ids()
        if args.rebase_to_now:
            start = int(time.time()) // 3600 * 3_600_000
        else:
            start = args.start if args.start is not None else parse_ts_ms(DEFAULT_START)
        end_ms = args.end
        if end_ms is not None and end_ms <= start:
            raise UserError(f"--end {format_ts(end_ms)} is not after the start {format_ts(start)}")
        if not args.count and end_ms is None and (args.out or args.max):
            raise UserError(
                f"--count 0 (no limit) with {'--out' if args.out else '--max'} needs --end: it would never finish"
            )
        jobs = iter_jobs(
            args.seed,
            start,
            args.rate,
            sites,
            count=args.count or None,
            end_ms=end_ms,
            cancel_fraction=args.cancel_fraction,
            allow_fraction=args.allow_fraction,
            deadline_fraction=args.deadline_fraction,
            id_prefix=args.id_prefix if args.id_prefix is not None else f"j-{secrets.token_hex(3)}-",
        )
        if args.out:
            try:
                out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise UserError(f"{args.out}: {exc.strerror or exc}") from None
        else:
            sink = P.make_sink(args.producer, args.bootstrap)
        # the progress bar's end: --end, else (a bounded count) about count / rate hours ahead
        end = end_ms
        if end is None and args.count:
            end = start + int(args.count / args.rate * 3_600_000)
        progress = Progress(
            start, end, None if args.max else args.speed, enabled=not args.no_progress and not out, label="jobs"
        )
        wall0 = time.monotonic()
        try:
            for job in jobs:
                ts = parse_ts_ms(job["submitted_at"])
                if not args.max and not out:
                    while (wait := wall0 + (ts - start) / 1000 / args.speed - time.monotonic()) > 0:
                        time.sleep(min(wait, 0.25))
                        progress.update(sent, ts)
                line = json.dumps(job, separators=(",", ":"))
                if out:
                    out.write(line + "\n")
                else:
                    assert sink is not None
                    sink.send(topic, job["job_id"].encode(), line.encode(), ts)
                sent += 1
                if job["action"] == "submit":
                    submits += 1
                else:
                    cancels += 1
                progress.update(sent, ts)
        except KeyboardInterrupt:
            interrupted = True
        except BrokenPipeError:  # the reader went away (`--out - | head`): stop quietly, as a filter does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        progress.close()
        if sink is not None:
            sink.flush(60.0)
            if sink.errors:
                fail(f"{sink.errors} job records failed delivery (last error: {sink.last_error})", code=1)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if sink is not None:
            sink.close()
        if out is not None and out is not sys.stdout:
            out.close()
    if not args.out or args.out != "-":
        where = args.out if args.out else f"{topic} on {args.bootstrap} via {sink.name if sink else '?'}"
        print(
            f"{'interrupted after' if interrupted else 'sent'} {sent:,} job records ({submits:,} submits, "
            f"{cancels:,} cancels) to {where}",
            file=sys.stderr,
        )
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
