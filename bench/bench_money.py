"""Money: what one month of the real sample costs under the MILP dispatch and under each baseline policy.

    python -m bench.bench_money [--month 2018-07] [--rate 60] [--seed 7] [--no-write]

Every policy runs as its own closed loop over the month, with the pipeline's semantics (the same
tick inputs as ``tests/reference.py``: per-site offers in force and latest weather through
``udfs.site_tracker.SiteTracker``; site costs and free slots from ``udfs.cost.site_cost`` with the
policy's *own* committed slots; its own pending queue; jobs released at ``end_at``; a job whose
deadline (latest start) passes unplaced is missed). Only the plan function differs:

* ``milp``: ``udfs.dispatch.solve_dispatch`` (what ``udfs.dispatcher.Dispatcher`` runs; defers
  work whose cost now exceeds its value, places must-place jobs first);
* ``greedy``: ``udfs.baselines.greedy_plan`` (priority order, cheapest feasible site, runs all that fits);
* ``round-robin``: ``round_robin_plan`` with its pointer kept across ticks (cost-blind);
* ``local-only``: ``local_only_plan`` (home region: first allowed site's, else the catalogue's home_region);
* ``price-only``: ``price_only_plan`` (ranks by EUR/MWh, cooling and IT power ignored), charged the true cost.

Cost accounting is the pipeline's ``expected_cost``: compute_hours x cost per compute-hour (EUR,
true PUE) of the site at the start tick. Energy (MWh) = compute_hours x it_kw_per_slot x PUE / 1000.
The hindsight optimum (perfect foresight of prices, weather and every job) is bracketed by
``udfs.hindsight.hindsight_blocked`` on the jobs the MILP placed: a Lagrangian lower bound of the full
month problem and a feasible month plan (upper bound), see "Reading it" below; the capacity-relaxed
bound (each job at its cheapest (tick, site), capacity ignored) is shown too.
``--hindsight-block-days 0`` skips the bounds.
Writes the "## Money" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import machine, md_table, write_section  # noqa: E402
from sources.dataset import load_sample  # noqa: E402
from sources.jobs import generate_jobs  # noqa: E402
from udfs import topics  # noqa: E402
from udfs.baselines import greedy_plan, local_only_plan, price_only_plan, round_robin_plan  # noqa: E402
from udfs.catalogue import Catalogue, load_catalogue  # noqa: E402
from udfs.cost import site_cost  # noqa: E402
from udfs.dispatch import DispatchConfig, solve_dispatch  # noqa: E402
from udfs.dispatcher import job_from_record  # noqa: E402
from udfs.objective import Job, SiteState  # noqa: E402
from udfs.records import RecordError, parse_input  # noqa: E402
from udfs.site_tracker import ACCEPTED, SiteInputs, SiteTracker, tick_at_or_after  # noqa: E402
from udfs.timeutil import parse_ts_ms  # noqa: E402

TITLE = "Money"
HOUR_MS = 3_600_000


# ----------------------------------------------------------------------------- tick inputs
def tick_inputs(events: dict[str, list[dict]], catalogue: Catalogue, tick_len_ms: int,
                ticks: list[int]) -> dict[int, dict[str, SiteInputs]]:
    """Every site's inputs at every tick (the SiteTracker the Flink site operator keeps)."""
    trackers: dict[str, SiteTracker] = {}
    parsed = []
    for topic, recs in events.items():
        for rec in recs:
            try:
                parsed.append(parse_input(topic, json.dumps(rec), catalogue))
            except RecordError:
                continue
    parsed.sort(key=lambda p: p.event_ms)
    for p in parsed:
        tr = trackers.setdefault(p.key, SiteTracker(p.key, catalogue[p.key].offer_interval_ms))
        if tr.add(p, watermark_ms=-(2**63)) != ACCEPTED:
            continue
    return {t: {sid: tr.inputs_at(t) for sid, tr in sorted(trackers.items())} for t in ticks}


@dataclass(frozen=True)
class TickSites:
    """What every policy sees at a tick before its own commitments."""

    inputs: dict[str, SiteInputs]
    cost_eur: dict[str, float]  # EUR per compute-hour (None-free: only sites with a cost)
    mwh_per_ch: dict[str, float]  # MWh per compute-hour = it_kw x PUE / 1000
    price_eur: dict[str, float]


def site_view(catalogue: Catalogue, inputs: dict[str, SiteInputs]) -> TickSites:
    cost, mwh, price = {}, {}, {}
    for sid, inp in inputs.items():
        site = catalogue[sid]
        sc = site_cost(site, price_per_mwh=inp.price_per_mwh, temp_c=inp.temp_c, rel_humidity=inp.rel_humidity,
                       online=inp.online, capacity_slots=inp.capacity_slots)
        if sc.cost_per_compute_hour_eur is not None and sc.pue is not None:
            cost[sid] = sc.cost_per_compute_hour_eur
            mwh[sid] = site.it_kw_per_slot * sc.pue / 1000.0
            price[sid] = inp.price_per_mwh * site.fx_to_eur  # type: ignore[operator]
    return TickSites(inputs, cost, mwh, price)


# ----------------------------------------------------------------------------- the policy loop
Plan = dict[str, str]
PlanFn = Callable[[list[Job], list[SiteState], int], Plan]


@dataclass
class PolicyResult:
    name: str
    cost: float = 0.0
    mwh: float = 0.0
    compute_hours: float = 0.0
    placed: int = 0
    missed: int = 0
    missed_ch: float = 0.0
    unplaced_end: int = 0
    unplaced_end_ch: float = 0.0
    wait_h: float = 0.0
    seconds: float = 0.0
    by_site: dict[str, float] = field(default_factory=dict)
    placements: dict[str, tuple[str, int]] = field(default_factory=dict)


def run_policy(name: str, plan_fn: PlanFn, jobs: list[Job], ticks: list[int], views: dict[int, TickSites],
               catalogue: Catalogue) -> PolicyResult:
    """The Dispatcher's tick loop with a pluggable plan function (own pending queue and commitments)."""
    t0 = time.perf_counter()
    res = PolicyResult(name)
    todo = sorted(jobs, key=lambda j: (j.submitted_ms, j.job_id))
    nxt = 0
    pending: dict[str, Job] = {}
    running: list[tuple[str, int, int]] = []  # (site, slots, end_ms)
    for t in ticks:
        while nxt < len(todo) and todo[nxt].submitted_ms <= t:
            pending[todo[nxt].job_id] = todo[nxt]
            nxt += 1
        for jid in [j for j, job in pending.items() if job.deadline_ms is not None and job.deadline_ms < t]:
            res.missed += 1
            res.missed_ch += pending.pop(jid).compute_hours
        running = [r for r in running if r[2] > t]
        committed: dict[str, int] = {}
        for sid, slots, _ in running:
            committed[sid] = committed.get(sid, 0) + slots
        view = views[t]
        states = []
        for sid in sorted(view.cost_eur):
            inp = view.inputs[sid]
            site = catalogue[sid]
            sc = site_cost(site, price_per_mwh=inp.price_per_mwh, temp_c=inp.temp_c, rel_humidity=inp.rel_humidity,
                           committed_slots=committed.get(sid, 0), online=inp.online, capacity_slots=inp.capacity_slots)
            if sc.available and sc.available_slots > 0:
                states.append(SiteState(sid, view.cost_eur[sid], sc.available_slots, site.region, view.price_eur[sid]))
        if not pending or not states:
            continue
        plan = plan_fn(sorted(pending.values(), key=lambda j: j.job_id), states, t)
        for jid, sid in plan.items():
            job = pending.pop(jid)
            res.cost += job.compute_hours * view.cost_eur[sid]
            res.mwh += job.compute_hours * view.mwh_per_ch[sid]
            res.compute_hours += job.compute_hours
            res.placed += 1
            res.wait_h += (t - job.submitted_ms) / HOUR_MS
            res.by_site[sid] = res.by_site.get(sid, 0.0) + job.compute_hours
            res.placements[jid] = (sid, t)
            running.append((sid, job.slots, t + job.duration_ms))
    res.unplaced_end = len(pending) + (len(todo) - nxt)
    res.unplaced_end_ch = sum(j.compute_hours for j in pending.values()) + sum(j.compute_hours for j in todo[nxt:])
    res.seconds = time.perf_counter() - t0
    return res


def policies(cfg: DispatchConfig, catalogue: Catalogue) -> dict[str, PlanFn]:
    rr = {"ptr": 0}
    regions = {s.site_id: s.region for s in catalogue}

    def milp(jobs: list[Job], sites: list[SiteState], t: int) -> Plan:
        return solve_dispatch(jobs, sites, t, config=cfg).assignments

    def greedy(jobs: list[Job], sites: list[SiteState], t: int) -> Plan:
        return greedy_plan(jobs, sites, t, tick_len_ms=cfg.tick_len_ms, values=cfg.values)

    def round_robin(jobs: list[Job], sites: list[SiteState], t: int) -> Plan:
        plan = round_robin_plan(jobs, sites, t, tick_len_ms=cfg.tick_len_ms, start=rr["ptr"])
        rr["ptr"] = (rr["ptr"] + len(plan)) % len(sites)  # as udfs.dispatcher does
        return plan

    def local_only(jobs: list[Job], sites: list[SiteState], t: int) -> Plan:
        return local_only_plan(jobs, sites, t, tick_len_ms=cfg.tick_len_ms, home_region=catalogue.home_region,
                               site_regions=regions)

    def price_only(jobs: list[Job], sites: list[SiteState], t: int) -> Plan:
        return price_only_plan(jobs, sites, t, tick_len_ms=cfg.tick_len_ms, values=cfg.values)

    return {"milp": milp, "greedy": greedy, "round-robin": round_robin, "local-only": local_only,
            "price-only": price_only}


# ----------------------------------------------------------------------------- hindsight
def relaxed_hindsight(jobs: list[Job], ticks: list[int], views: dict[int, TickSites]) -> dict[str, tuple[float, float]]:
    """Per job: (cheapest cost over its window and sites ignoring capacity, MWh of that choice).
    Sum over any set of jobs = a lower bound on what any plan placing that set can cost."""
    best_tick: list[tuple[float, str]] = []  # per tick: cheapest (EUR/ch, site) over all sites
    best_by_site: list[dict[str, float]] = []
    for t in ticks:
        c = views[t].cost_eur
        best_by_site.append(c)
        best_tick.append(min(((v, s) for s, v in c.items()), default=(float("inf"), "")))
    # suffix structure is not needed at this size: a month is ~9k ticks, a window ~100s of ticks
    out: dict[str, tuple[float, float]] = {}
    import bisect

    for job in jobs:
        lo = bisect.bisect_left(ticks, job.submitted_ms)
        hi = bisect.bisect_right(ticks, job.deadline_ms) if job.deadline_ms is not None else len(ticks)
        best = (float("inf"), -1, "")
        for i in range(lo, hi):
            if job.sites is None:
                v, s = best_tick[i]
            else:
                v, s = min(((best_by_site[i][s], s) for s in job.sites if s in best_by_site[i]),
                           default=(float("inf"), ""))
            if v < best[0]:
                best = (v, i, s)
        if best[1] >= 0:
            mwh = views[ticks[best[1]]].mwh_per_ch[best[2]]
            out[job.job_id] = (job.compute_hours * best[0], job.compute_hours * mwh)
    return out


def hindsight_timeline(ticks: list[int], views: dict[int, TickSites],
                       catalogue: Catalogue) -> dict[int, list[SiteState]]:
    """Per tick, every site with a cost: the cost per compute-hour every policy is charged
    (``TickSites.cost_eur``) and the site's available slots before any commitment."""
    timeline = {}
    for t in ticks:
        v = views[t]
        states = []
        for sid in sorted(v.cost_eur):
            inp = v.inputs[sid]
            sc = site_cost(catalogue[sid], price_per_mwh=inp.price_per_mwh, temp_c=inp.temp_c,
                           rel_humidity=inp.rel_humidity, online=inp.online, capacity_slots=inp.capacity_slots)
            states.append(SiteState(sid, v.cost_eur[sid], sc.available_slots, catalogue[sid].region))
        timeline[t] = states
    return timeline


def solve_hindsight(jobs: list[Job], ticks: list[int], views: dict[int, TickSites], catalogue: Catalogue,
                    tick_len_ms: int, block_days: float, milp: PolicyResult | None):
    """Bounds on the hindsight optimum of the jobs the MILP placed (all jobs without a MILP run)."""
    from udfs.hindsight import hindsight_blocked, plan_violations

    timeline = hindsight_timeline(ticks, views, catalogue)
    h_jobs = [j for j in jobs if milp is None or j.job_id in milp.placements]
    bounds = hindsight_blocked(h_jobs, timeline, block_ms=int(block_days * 24 * HOUR_MS), tick_len_ms=tick_len_ms,
                               mip_time_limit_s=10.0, log=lambda m: print(m, flush=True))
    violations = plan_violations(h_jobs, timeline, milp.placements, tick_len_ms=tick_len_ms) if milp else []
    return bounds, h_jobs, violations


# ----------------------------------------------------------------------------- main
def month_bounds(month: str) -> tuple[int, int]:
    y, m = (int(x) for x in month.split("-"))
    start = parse_ts_ms(f"{y:04d}-{m:02d}-01T00:00:00Z")
    end = parse_ts_ms(f"{y + (m == 12):04d}-{m % 12 + 1:02d}-01T00:00:00Z")
    return start, end


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_money", description=__doc__.split("\n")[0])
    ap.add_argument("--month", default="2018-07", help="YYYY-MM of the sample (default %(default)s)")
    ap.add_argument("--days", type=float, default=None, help="only the first N days of the month (quick runs)")
    ap.add_argument("--rate", type=float, default=60.0, help="jobs per hour (default %(default)s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tick-minutes", type=int, default=5)
    ap.add_argument("--solver-time-limit-s", type=float, default=2.0, help="per tick, as the pipeline's default")
    ap.add_argument("--sites-file", default=str(REPO / "conf" / "sites.yaml"))
    ap.add_argument("--policies", default="milp,greedy,round-robin,local-only,price-only")
    ap.add_argument("--hindsight-block-days", type=float, default=7.0,
                    help="udfs.hindsight.hindsight_blocked block length in days (0 = skip the hindsight bounds)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if not (REPO / "data" / "sample" / "manifest.json").exists():
        print("error: data/sample missing: run `make sample-data`", file=sys.stderr)
        return 2
    tick_len = args.tick_minutes * 60_000
    start, end = month_bounds(args.month)
    if args.days:
        end = min(end, start + int(args.days * 24 * HOUR_MS))
    catalogue = load_catalogue(args.sites_file)
    site_ids = list(catalogue.site_ids)
    # offers and weather from a few hours before the month, so the first ticks have inputs in force
    events = load_sample(REPO / "data" / "sample", topics=[topics.PRICES, topics.WEATHER], start=start - 6 * HOUR_MS,
                         end=end, sites=site_ids)
    n_jobs = int(args.rate * (end - start) / HOUR_MS)
    recs = generate_jobs(args.seed, n_jobs, start, args.rate, site_ids, cancel_fraction=0.0)
    jobs = [job_from_record(parse_input(topics.JOBS, json.dumps(r), catalogue).record) for r in recs]
    jobs = [j for j in jobs if j.submitted_ms < end]
    ticks = list(range(tick_at_or_after(start, tick_len), end, tick_len))
    t0 = time.perf_counter()
    views = {t: site_view(catalogue, inp) for t, inp in tick_inputs(events, catalogue, tick_len, ticks).items()}
    print(f"{args.month}{f' first {args.days:g} days' if args.days else ''}: {len(ticks):,} ticks, "
          f"{len(site_ids)} sites, {len(jobs):,} jobs ({sum(j.compute_hours for j in jobs):,.0f} compute-hours); "
          f"inputs in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = DispatchConfig(tick_len_ms=tick_len, time_limit_s=args.solver_time_limit_s)
    fns = policies(cfg, catalogue)
    results: dict[str, PolicyResult] = {}
    for name in args.policies.split(","):
        results[name] = r = run_policy(name, fns[name], jobs, ticks, views, catalogue)
        print(f"{name:12s} cost {r.cost:10,.2f} EUR  {r.mwh:8,.2f} MWh  placed {r.placed:,} "
              f"({r.compute_hours:,.0f} ch)  missed {r.missed:,}  unplaced {r.unplaced_end:,}  "
              f"{r.cost / max(r.compute_hours, 1e-9):.5f} EUR/ch  [{r.seconds:.1f} s]", flush=True)
    relaxed = relaxed_hindsight(jobs, ticks, views)
    exact = None
    if args.hindsight_block_days:
        exact = solve_hindsight(jobs, ticks, views, catalogue, tick_len, args.hindsight_block_days, results.get("milp"))
    report = build_report(args, results, relaxed, exact, jobs, ticks)
    print(report["table"])
    print(report["verdict"])
    if not args.no_write and not args.days:
        write_section(TITLE, report["body"])
        print(f"wrote the '## {TITLE}' section of docs/BENCHMARKS.md")
    return 0


def build_report(args, results: dict[str, PolicyResult], relaxed: dict[str, tuple[float, float]], exact, jobs,
                 ticks) -> dict[str, str]:
    milp = results.get("milp")
    rows = []
    for name, r in results.items():
        per = r.cost / r.compute_hours if r.compute_hours else float("nan")
        vs = (f"{(1 - per / (milp.cost / milp.compute_hours)) * -100:+.1f} %" if milp and name != "milp" else "")
        rows.append([name, f"{r.cost:,.2f}", f"{r.mwh:,.2f}", f"{r.compute_hours:,.0f}", f"{per * 1000:.2f}",
                     f"{r.placed:,}", f"{r.missed:,} ({r.missed_ch:,.0f} ch)",
                     f"{r.unplaced_end:,} ({r.unplaced_end_ch:,.0f} ch)",
                     f"{r.wait_h / max(r.placed, 1):.2f}", vs])
    # hindsight bound on the jobs MILP placed, and on all jobs
    lb_all = sum(v[0] for v in relaxed.values())
    ch_all = sum(j.compute_hours for j in jobs if j.job_id in relaxed)
    mwh_all = sum(v[1] for v in relaxed.values())
    rows.append(["hindsight lower bound (capacity relaxed, all jobs)", f"{lb_all:,.2f}", f"{mwh_all:,.2f}",
                 f"{ch_all:,.0f}", f"{lb_all / ch_all * 1000:.2f}", f"{len(relaxed):,}", "0", "0", "", ""])
    if exact:
        h, h_jobs, _ = exact
        ch = sum(j.compute_hours for j in h_jobs)
        rows.append([f"hindsight lower bound (Lagrangian, capacity kept; {len(h_jobs):,} jobs)",
                     f"{h.lower_bound:,.2f}", "", f"{ch:,.0f}", f"{h.lower_bound / ch * 1000:.2f}", f"{len(h_jobs):,}",
                     "", "", "", ""])
        rows.append([f"hindsight feasible plan (upper bound; {h.blocks} blocks)", f"{h.upper_bound:,.2f}", "",
                     f"{ch:,.0f}", f"{h.upper_bound / ch * 1000:.2f}", f"{len(h.placements):,}", "",
                     f"{len(h.unplaced):,}", "", ""])
    table = md_table(["policy", "cost EUR", "energy MWh", "compute-h placed", "EUR per 1,000 ch", "jobs placed",
                      "missed deadline", "unplaced at month end", "mean wait h", "EUR/ch vs milp"], rows)
    verdict = []
    if milp:
        m_per = milp.cost / milp.compute_hours

        def saving(name: str) -> float:
            r = results[name]
            return 1 - m_per / (r.cost / r.compute_hours)

        for name, target in (("round-robin", 0.25), ("price-only", 0.05)):
            if name in results:
                s = saving(name)
                verdict.append(f"* vs {name}: MILP {s * 100:.1f} % cheaper per compute-hour (target >= "
                               f"{target * 100:.0f} %): {'met' if s >= target else 'MISSED'}; in total EUR "
                               f"{(1 - milp.cost / results[name].cost) * 100:.1f} % below.")
        same = [jid for jid in milp.placements if jid in relaxed]
        lb_same = sum(relaxed[j][0] for j in same)
        gap = milp.cost / lb_same - 1 if lb_same > 0 else float("nan")
        verdict.append(f"* vs hindsight: on the {len(same):,} jobs the MILP placed, the capacity-relaxed hindsight "
                       f"bound is {lb_same:,.2f} EUR; the MILP's {milp.cost:,.2f} EUR is {gap * 100:.1f} % above it "
                       f"(target <= 10 %): {'met' if gap <= 0.10 else 'MISSED against this bound'} (the true optimum "
                       f"lies between the two, so the real gap is at most this).")
    if exact:
        h, h_jobs, violations = exact
        ch = sum(j.compute_hours for j in h_jobs)
        if milp:
            lo_gap = milp.cost / h.lower_bound - 1
            up_gap = milp.cost / h.upper_bound - 1
            ok = "met" if lo_gap <= 0.10 else ("MISSED" if up_gap > 0.10 else "undecided (between the bounds)")
            verdict.append(
                f"* vs hindsight (capacity kept, same {len(h_jobs):,} jobs the MILP placed, same start-tick cost): "
                f"the optimum lies in [{h.lower_bound:,.2f}, {h.upper_bound:,.2f}] EUR (bounds {h.gap * 100:.1f} % "
                f"apart); the MILP's {milp.cost:,.2f} EUR is {lo_gap * 100:.1f} % above the lower bound and "
                f"{up_gap * 100:.1f} % above the feasible hindsight plan (target <= 10 %): {ok}"
                + (f", missing by {(lo_gap - 0.10) * 100:.1f} to {(up_gap - 0.10) * 100:.1f} points." if up_gap > 0.10
                   else ".")
                + f" The MILP's own plan breaks the hindsight model's rules at {len(violations)} (tick, site) "
                f"points{' (so the lower bound is valid against it)' if not violations else ''}. "
                f"Solved in {h.seconds:.0f} s ({h.rounds} column-generation rounds, {h.n_columns:,} columns).")
    verdict_text = "\n".join(verdict)
    cmd = (f"python -m bench.bench_money --month {args.month} --rate {args.rate:g} --seed {args.seed} "
           f"--hindsight-block-days {args.hindsight_block_days:g}")
    body = f"""Command: `.venv/bin/{cmd}`
(part of `make bench`). Machine: {machine()}.

Data: the real sample for {args.month} ({len(ticks):,} ticks of {args.tick_minutes} min), every catalogue site
(ams, trn, sto: SMARD day-ahead prices; chi, tus: synthetic US prices; EPW weather), and
`sources.jobs.generate_jobs(seed={args.seed}, rate={args.rate:g}/h)` over the month without cancels
({len(jobs):,} jobs, {sum(j.compute_hours for j in jobs):,.0f} compute-hours). Each policy runs as its own closed
loop (own pending queue, committed slots released at `end_at`) through the pipeline's tick semantics;
the MILP is `solve_dispatch` with the pipeline's default 2 s limit. Cost = compute-hours x EUR per
compute-hour at the start tick (true PUE), as `expected_cost` in `dispatch`; energy = compute-hours x
IT kW x PUE. Policies place different amounts of work (the MILP defers work whose value is below its
current cost, and may leave some of it unplaced at month end; local-only queues at its home site and
misses deadlines), so the comparison uses EUR per compute-hour placed; total EUR is shown too.

{table}

{verdict_text}

Reading it (measured with the defaults above; the load is ~20 % of the 2,000 catalogue slots):
* Almost all of the saving over round-robin and local-only is *where*: the cheapest site per
  compute-hour takes nearly every job. The MILP is within 0.3 % of greedy (the same cheapest-site
  rule) because capacity at the cheap sites rarely binds at this load, so there is little for the
  optimizer to trade off; its extra gains come from deferring low-value work to cheaper ticks.
* price-only loses 4-5 % here (target 5 %): ranking by EUR/MWh ignores IT kW per slot (0.35-0.50)
  and PUE, which differ by 10-40 % between sites; where the cheapest market also has the cheapest
  compute-hour the two agree. The margin depends on the month and the site mix; it is not met on July.
* Hindsight (`udfs.hindsight.hindsight_blocked`, HiGHS via highspy, models loaded as numpy arrays):
  the same jobs the MILP placed, the same start-tick cost, capacity kept at every tick (a job holds
  its slots for its whole run), starts between submission and deadline on allowed sites. The month
  is solved in blocks of `--hindsight-block-days` days: each block by column generation on the LP
  relaxation (capacity rows added as the LP breaks them), its feasible plan by LP rounding plus a
  greedy fill (and a time-limited restricted MILP), on the capacity earlier blocks leave. The union
  of the block plans is a feasible month plan: an UPPER bound on the true optimum (no-deadline jobs
  must start within their own block). The block LPs' capacity multipliers, stitched over the month,
  give the Lagrangian bound of the FULL month problem (every job with its full window): a LOWER
  bound, valid for any multipliers, but not the month's LP optimum. The true optimum lies between
  the two; the MILP's gap is reported to each. The capacity-relaxed row is the older, looser bound.
* The MILP's value model (`udfs.objective.ValueModel`) defers only work whose value per compute-hour
  is below the current cost (mostly priority 8-9); it does not look ahead at tomorrow's prices, so it
  cannot reach the time-shifting share of the hindsight saving. A price forecast (day-ahead prices are
  known 12-36 h ahead) in the value term would.
"""
    return {"table": table, "verdict": verdict_text, "body": body}


if __name__ == "__main__":
    sys.exit(main())
