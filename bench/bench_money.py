"""Money: what a month of the real sample costs when the dispatcher plans ahead, against each baseline.

    python -m bench.bench_money [--months 2018-07,2018-01] [--variants all,eu,contention,pinned] [--rate 60]
                                [--seed 7] [--days N] [--max-nodes 0] [--no-headroom] [--no-write]

Every policy runs as its own closed loop over the month with the pipeline's semantics: the tick
inputs of ``tests/reference.py`` (offers in force and the offers *known* at each tick, day-ahead
offers from their publication, through ``bench.site_history.SiteHistory``; the latest weather),
site costs and free slots from ``udfs.cost.site_costs`` with the policy's *own* running jobs, its
own pending queue, jobs released at ``end_at``, a job whose deadline passes unstarted missed. Every
policy decides on the same ``udfs.objective.PlanProblem`` of its tick:

* ``milp``: ``udfs.planner.Planner``, what ``udfs.dispatcher.Dispatcher`` runs: plans
  every pending job's (site, start) over the horizon (in full when the plan's inputs changed, else
  the new jobs in the standing plan's room; ``--replan every-tick``: in full at every tick),
  starts only what is due now;
* ``greedy``: the rule the dispatcher had before it looked ahead: start now, priority order, at the
  allowed site whose cost per compute-hour is lowest now;
* ``round-robin`` (cost-blind), ``local-only`` (the job's declared home: ``home``, else the first
  entry of its allow-list as sent, else a hashed site of the catalogue's home region) and
  ``price-only`` (ranks by EUR/MWh now, cooling and IT kW ignored), all starting now.

**Accounting, the same for every policy, hour by hour:** a job that runs at site s on
``[start, end)`` is charged slots x the integral of s's *realised* cost per slot-hour (the offer
that actually held and the PUE of the weather then, at every tick) over its run: not what the
planner expected. It is the dispatcher's own ledger (``udfs.ledger``), so the page's like-for-like
saving and this benchmark's are one definition (tests/unit/test_shadow_greedy.py). Energy (MWh)
is integrated the same way (IT kW x PUE). Waits are start minus
submission.

**Hindsight, like for like:** the same jobs, the same rules (allowed sites, starts between
submission and min(deadline, submission + max wait), any tick), the same objective (realised cost
+ the same delay term), each job at its own best (site, start) with perfect knowledge of prices and
weather; capacity is relaxed, so this is a LOWER bound on the hindsight optimum and the gap to it
an upper bound on the true gap (at this load capacity rarely binds).

Variants: ``all`` (the five catalogue sites: ams, trn, sto real SMARD day-ahead prices, chi and tus
synthetic US prices), ``eu`` (the three European sites alone: every price real), ``contention``
(every site, capacities x 0.3 so that the cheap sites bind at peak), ``pinned`` (issue 26: half the jobs
urgent and pinned to one site, half movable, capacities x 0.4 where greedy just keeps up; ``pinned_jobs``;
missed starts reported per priority; the plan keeps udfs.headroom's reserve, ``--no-headroom`` drops it).
Writes the "## Money" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import machine, md_table, write_section  # noqa: E402
from bench.site_history import read_job_record, site_histories  # noqa: E402
from sources.dataset import load_sample  # noqa: E402
from sources.jobs import generate_jobs  # noqa: E402
from udfs import baselines, topics  # noqa: E402
from udfs.catalogue import Catalogue, load_catalogue  # noqa: E402
from udfs.cost import SiteParams, site_costs  # noqa: E402
from udfs.dispatcher import MAX_CURVE_RUN_MS, SiteInputs, cost_curves, job_from_record  # noqa: E402
from udfs.headroom import UrgentDemand, start_cap  # noqa: E402
from udfs.ledger import Ledger  # noqa: E402
from udfs.objective import HOUR_MS, CostCurve, Job, SitePlan, latest_start, plan_problem  # noqa: E402
from udfs.optimizer import DispatchConfig  # noqa: E402
from udfs.planner import REPLAN_MODES, Planner  # noqa: E402
from udfs.timeutil import parse_ts_ms, tick_at_or_after  # noqa: E402

TITLE = "Money"
HISTORY_DAYS = 8  # prices loaded before the month: the trackers' history and the week-ago forecast error
POLICIES = ("milp", "greedy", "round-robin", "local-only", "price-only")
EU_SITES = ("ams", "sto", "trn")
PINNED_SCALE = 0.4  # capacities of the pinned variant: tight enough that greedy just keeps up (BENCHMARKS)


# ----------------------------------------------------------------------------- the month's sites
@dataclass
class Month:
    """Every site's inputs at every tick, and the realised cost and energy per slot-hour."""

    catalogue: Catalogue
    ticks: list[int]
    inputs: dict[int, dict[str, SiteInputs]]
    # per site: realised EUR and MWh per slot-hour at each tick (nan where the site had no price)
    rate: dict[str, np.ndarray] = field(default_factory=dict)
    mwh: dict[str, np.ndarray] = field(default_factory=dict)
    pue: dict[int, dict[str, float]] = field(default_factory=dict)
    _curves: dict[tuple[int, str], CostCurve | None] = field(default_factory=dict)
    _params: dict[tuple[str, ...], SiteParams] = field(default_factory=dict)

    def params(self, site_ids: list[str]) -> SiteParams:
        """The catalogue's constants of these sites as arrays (udfs.cost), made once per list."""
        key = tuple(site_ids)
        if key not in self._params:
            self._params[key] = SiteParams([self.catalogue[sid] for sid in site_ids])
        return self._params[key]

    def curve(self, t: int, sid: str, horizon_ms: int) -> CostCurve | None:
        if (t, sid) not in self._curves:  # every site of the tick at once (udfs.forecast over arrays)
            ids = sorted(s for s in self.inputs[t] if self.pue[t].get(s) is not None)  # priced sites
            curves = cost_curves([self.catalogue[s] for s in ids], [self.inputs[t][s] for s in ids],
                                 [self.pue[t][s] for s in ids], t, t + horizon_ms + MAX_CURVE_RUN_MS)
            self._curves.update(((t, s), None) for s in self.inputs[t])
            self._curves.update(((t, s), c) for s, c in zip(ids, curves, strict=True))
        return self._curves[(t, sid)]

    def realised(self, starts: list[tuple[int, str, str, int, int]], per: dict[str, np.ndarray]) -> Ledger:
        """The jobs started [(tick, job, site, slots, end)] charged by udfs.ledger (the dispatcher's
        accounting) at ``per`` (a per-tick rate of each site), tick after tick until all have ended."""
        ledger = Ledger()
        by_tick: dict[int, list[tuple[int, str, str, int, int]]] = {}
        for start in starts:
            by_tick.setdefault(start[0], []).append(start)
        last_start = max(by_tick, default=0)
        filled = {sid: _forward_filled(r) for sid, r in per.items()}
        prev = None
        for i, t in enumerate(self.ticks):
            if prev is not None:
                ledger.charge(t, {sid: (prev, float(r[i - 1])) for sid, r in filled.items()})
            for _, jid, sid, slots, end in by_tick.get(t, ()):
                ledger.start(jid, sid, slots, t, end, 0.0)
            if t >= last_start and not ledger.running:
                return ledger
            prev = t
        # past the last tick the last rate continues (runs are at most MAX_CURVE_RUN_MS past the month)
        ledger.charge(max(r["end_ms"] for r in ledger.running.values()),
                      {sid: (prev, float(r[-1])) for sid, r in filled.items()})
        return ledger


def _forward_filled(rate: np.ndarray) -> np.ndarray:
    """A tick without a price (rare: offers are continuous) takes the last known one (0 before any)."""
    out = np.asarray(rate, dtype=np.float64).copy()
    known = ~np.isnan(out)
    idx = np.where(known, np.arange(len(out)), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = out[idx]
    filled[~known & (np.maximum.accumulate(known) == 0)] = 0.0
    return filled


def load_month(catalogue: Catalogue, start: int, end: int, tick_len: int, site_ids: list[str]) -> Month:
    # offers and weather from two days before the month (history for the forecast) to a week after
    # it (runs that end after the month are charged what actually held)
    events = load_sample(REPO / "data" / "sample", topics=[topics.PRICES, topics.WEATHER],
                         start=start - HISTORY_DAYS * 24 * HOUR_MS, end=end + 8 * 24 * HOUR_MS, sites=site_ids)
    trackers, _ = site_histories(events, catalogue)
    ticks = list(range(tick_at_or_after(start - HISTORY_DAYS * 24 * HOUR_MS, tick_len), end + 8 * 24 * HOUR_MS,
                       tick_len))
    month = Month(catalogue, ticks, {})
    for sid in site_ids:
        month.rate[sid] = np.full(len(ticks), np.nan)
        month.mwh[sid] = np.full(len(ticks), np.nan)
    priced: dict[str, list[tuple[int, float, float, float]]] = {sid: [] for sid in trackers}  # (tick index, inputs)
    for i, t in enumerate(ticks):
        month.pue[t] = {}
        in_month = start <= t < end
        inputs = {sid: tr.inputs_at(t) for sid, tr in sorted(trackers.items())} if in_month else {}
        if in_month:
            month.inputs[t] = inputs
        for sid, tr in sorted(trackers.items()):
            inp = inputs.get(sid) or tr.inputs_at(t)
            if inp.price_per_mwh is not None and inp.temp_c is not None:
                rh = math.nan if inp.rel_humidity is None else inp.rel_humidity
                priced[sid].append((i, inp.price_per_mwh, inp.temp_c, rh))
    for sid, rows in sorted(priced.items()):  # each site's ticks at once: the formulas over arrays
        if not rows:
            continue
        idx, price, temp, rh = (np.asarray(c) for c in zip(*rows, strict=True))
        n = len(idx)
        sc = site_costs(SiteParams([catalogue[sid]]).take(np.zeros(n, dtype=np.int64)), price_per_mwh=price,
                        temp_c=temp, rel_humidity=rh, committed_slots=np.zeros(n, dtype=np.int64),
                        online=np.ones(n, dtype=bool), capacity_slots=np.full(n, -1))
        month.rate[sid][idx] = sc.cost_per_compute_hour_eur
        month.mwh[sid][idx] = catalogue[sid].it_kw_per_slot * sc.pue / 1000.0
        for i, pue in zip(idx.tolist(), sc.pue.tolist(), strict=True):
            month.pue[ticks[i]][sid] = None if math.isnan(pue) else pue
    month.ticks_in_month = [t for t in ticks if start <= t < end]  # type: ignore[attr-defined]
    return month


# ----------------------------------------------------------------------------- the policy loop
@dataclass
class PolicyResult:
    name: str
    cost: float = 0.0  # realised, hour by hour
    expected: float = 0.0  # what the planner expected (milp) at dispatch
    delay: float = 0.0  # the objective's delay term of the placed jobs
    mwh: float = 0.0
    compute_hours: float = 0.0
    placed: int = 0
    missed: int = 0
    missed_ch: float = 0.0
    missed_by_priority: dict[int, int] = field(default_factory=dict)
    missed_at: list[tuple[int, str]] = field(default_factory=list)  # (tick it was found missed, job id)
    unplaced_end: int = 0
    waits_h: list[float] = field(default_factory=list)
    solve_s: list[float] = field(default_factory=list)
    full_plans: int = 0  # ticks the plan was made in full (udfs.planner)
    wall_clock: int = 0  # ticks whose solve the wall-clock safety net ended (decisions may then vary)
    seconds: float = 0.0
    placements: dict[str, tuple[str, int]] = field(default_factory=dict)


def site_plans(month: Month, t: int, running: list[tuple[str, int, int, bool]], cfg: DispatchConfig,
               capacity_scale: float, urgent: UrgentDemand) -> list[SitePlan]:
    committed: dict[str, int] = {}
    releases: dict[str, list[tuple[int, int]]] = {}
    movable: dict[str, list[tuple[int, int]]] = {}
    for sid, slots, end, is_movable in running:
        committed[sid] = committed.get(sid, 0) + slots
        releases.setdefault(sid, []).append((end, slots))
        if is_movable:
            movable.setdefault(sid, []).append((end, slots))
    plans = []
    ids = list(month.inputs[t])
    inputs = [month.inputs[t][sid] for sid in ids]
    caps = [int(month.catalogue[sid].capacity_slots * capacity_scale) for sid in ids]

    def column(name: str) -> list[float]:
        return [math.nan if getattr(i, name) is None else getattr(i, name) for i in inputs]

    costs = site_costs(month.params(ids), price_per_mwh=column("price_per_mwh"), temp_c=column("temp_c"),
                       rel_humidity=column("rel_humidity"), committed_slots=[committed.get(sid, 0) for sid in ids],
                       online=[i.online for i in inputs], capacity_slots=caps)
    for k, (sid, inp, cap) in enumerate(zip(ids, inputs, caps, strict=True)):
        site = month.catalogue[sid]
        sc = costs.at(k)
        if not sc.available or sc.pue is None:
            continue
        curve = month.curve(t, sid, cfg.horizon_ms)
        if curve is None:
            continue
        derated = math.floor(sc.derating * cap + 1e-9)
        reserve = urgent.reserve(sid)
        plans.append(SitePlan(sid, site.region, sc.available_slots, derated, curve,
                              tuple(sorted(releases.get(sid, ()))), inp.price_per_mwh * site.fx_to_eur,
                              reserve, tuple(sorted(movable.get(sid, ()))), start_cap(derated, reserve)))
    return plans


def run_policy(name: str, jobs: list[Job], month: Month, cfg: DispatchConfig, capacity_scale: float,
               home_sites: list[str], headroom: bool = True) -> PolicyResult:
    t0 = time.perf_counter()
    res = PolicyResult(name)
    todo = sorted(jobs, key=lambda j: (j.submitted_ms, j.job_id))
    nxt = 0
    pending: dict[str, Job] = {}
    running: list[tuple[str, int, int, bool]] = []  # (site, slots, end, movable)
    urgent = UrgentDemand()  # what the dispatcher learns; only the plan ("milp") keeps the headroom
    reserve = urgent if name == "milp" and headroom else UrgentDemand()  # an empty one: no reserve
    rr = 0
    planner = Planner(cfg)
    started: list[tuple[int, str, str, int, int]] = []  # (tick, job, site, slots, end)
    for t in month.ticks_in_month:  # type: ignore[attr-defined]
        while nxt < len(todo) and todo[nxt].submitted_ms <= t:
            pending[todo[nxt].job_id] = todo[nxt]
            urgent.observe(todo[nxt])
            nxt += 1
        urgent.advance(t)
        for jid in [j for j, job in pending.items() if job.deadline_ms is not None and job.deadline_ms < t]:
            job = pending.pop(jid)
            res.missed += 1
            res.missed_ch += job.compute_hours
            res.missed_by_priority[job.priority] = res.missed_by_priority.get(job.priority, 0) + 1
            res.missed_at.append((t, jid))
        running = [r for r in running if r[2] > t]
        if not pending:
            continue
        plans = site_plans(month, t, running, cfg, capacity_scale, reserve)
        if not plans:
            continue
        s0 = time.perf_counter()
        prob = plan_problem(list(pending.values()), plans, t, tick_len_ms=cfg.tick_len_ms, horizon_ms=cfg.horizon_ms,
                            delay=cfg.delay, reduction=cfg.reduction)
        if name == "milp":
            result = planner.decide(prob)
            res.full_plans += int(result.replanned)
            res.wall_clock += int(result.wall_clock_limit)
            starts = {jid: (p.site_id, p.cost) for jid, p in result.plan.items() if p.start_ms == t}
        else:
            if name == "greedy":
                chosen = baselines.greedy(prob)
            elif name == "round-robin":
                chosen, rr = baselines.round_robin(prob, rr)
            elif name == "local-only":
                chosen = baselines.local_only(prob, home_sites)
            else:
                chosen = baselines.price_only(prob)
            starts = {prob.jobs[jn].job_id: (prob.sites[o.site].site_id, o.cost) for jn, o in chosen.items()}
        res.solve_s.append(time.perf_counter() - s0)
        j_index = {j.job_id: i for i, j in enumerate(prob.jobs)}
        for jid, (sid, expected) in starts.items():
            job = pending.pop(jid)
            end = t + job.duration_ms
            started.append((t, jid, sid, job.slots, end))
            res.expected += expected
            jn = j_index[jid]
            res.delay += prob.delay_per_hour[jn] * (t - job.submitted_ms) / HOUR_MS
            res.compute_hours += job.compute_hours
            res.placed += 1
            res.waits_h.append((t - job.submitted_ms) / HOUR_MS)
            res.placements[jid] = (sid, t)
            running.append((sid, job.slots, end, prob.movable[jn]))
    res.unplaced_end = len(pending) + (len(todo) - nxt)
    # realised cost and energy, hour by hour at what held: the dispatcher's own ledger (udfs.ledger)
    res.cost = month.realised(started, month.rate).totals["completed_realised"]
    res.mwh = month.realised(started, month.mwh).totals["completed_realised"]
    res.seconds = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- hindsight (like for like)
def hindsight_relaxed(jobs: list[Job], month: Month, cfg: DispatchConfig, capacity_scale: float) -> dict:
    """Per job, its best (site, start tick) with perfect knowledge: realised cost + the same delay
    term, starts on any tick in [submitted, latest start], allowed sites, capacity relaxed."""
    ticks = np.asarray(month.ticks, dtype=np.int64)
    tl = int(ticks[1] - ticks[0])
    grid = np.arange(len(ticks) + 1, dtype=np.float64)
    cum = {sid: np.concatenate(([0.0], np.cumsum(np.nan_to_num(r, nan=np.nanmax(r)) * tl / HOUR_MS)))
           for sid, r in month.rate.items()}
    cum_mwh = {sid: np.concatenate(([0.0], np.cumsum(np.nan_to_num(r, nan=0.0) * tl / HOUR_MS)))
               for sid, r in month.mwh.items()}
    out = {"objective": 0.0, "cost": 0.0, "delay": 0.0, "mwh": 0.0, "placed": 0}
    for job in jobs:
        lo = int(np.searchsorted(ticks, job.submitted_ms))
        if lo >= len(ticks):
            continue
        last = latest_start(job, int(ticks[lo]), cfg.delay, 10**15)
        hi = int(np.searchsorted(ticks, last, side="right"))
        if hi <= lo:
            continue
        d = job.duration_ms / tl
        idx = grid[lo:hi]
        costs = {sid: job.slots * (np.interp(idx + d, grid, c) - c[lo:hi]) for sid, c in cum.items()
                 if job.allows(sid) and job.slots <= month.catalogue[sid].capacity_slots * capacity_scale}
        if not costs:
            continue
        # the delay term's scale, as udfs.objective: |cost now at the cheapest site| when first seen
        rate = cfg.delay.rate_per_hour[job.priority] * min(abs(c[0]) for c in costs.values())
        wait = (ticks[lo:hi] - job.submitted_ms) / HOUR_MS
        best = None
        for sid in sorted(costs):
            obj = costs[sid] + rate * wait
            k = int(np.argmin(obj))
            if best is None or obj[k] < best[0]:
                best = (float(obj[k]), float(costs[sid][k]), float(rate * wait[k]), sid, lo + k)
        o, c, w, sid, k = best  # type: ignore[misc]
        out["objective"] += o
        out["cost"] += c
        out["delay"] += w
        out["mwh"] += job.slots * float(np.interp(k + d, grid, cum_mwh[sid]) - cum_mwh[sid][k])
        out["placed"] += 1
    return out


# ----------------------------------------------------------------------------- forecast error
def forecast_error(month: Month, site_ids: list[str]) -> dict[str, tuple[float, float]]:
    """Per site: mean absolute error of the day-ago and the week-ago forecast of an hour's cost,
    relative to its mean absolute value, over the month's hours (the error of udfs.forecast's rule
    beyond the known offers; EU sites: real prices)."""
    out = {}
    tl = month.ticks[1] - month.ticks[0]
    per_hour = HOUR_MS // tl
    first = month.ticks.index(month.ticks_in_month[0])  # type: ignore[attr-defined]
    n_month = len(month.ticks_in_month) // per_hour  # type: ignore[attr-defined]
    for sid in site_ids:
        r = month.rate[sid]
        usable = len(r) // per_hour * per_hour
        hours = np.nanmean(r[:usable].reshape(-1, per_hour), axis=1)
        h0 = first // per_hour
        cur = hours[h0:h0 + n_month]
        day, week = hours[h0 - 24:h0 + n_month - 24], hours[h0 - 168:h0 + n_month - 168]
        scale = np.nanmean(np.abs(cur))
        out[sid] = (float(np.nanmean(np.abs(cur - day)) / scale), float(np.nanmean(np.abs(cur - week)) / scale))
    return out


# ----------------------------------------------------------------------------- main
def month_bounds(month: str) -> tuple[int, int]:
    y, m = (int(x) for x in month.split("-"))
    start = parse_ts_ms(f"{y:04d}-{m:02d}-01T00:00:00Z")
    end = parse_ts_ms(f"{y + (m == 12):04d}-{m % 12 + 1:02d}-01T00:00:00Z")
    return start, end


VARIANTS = {"all": (None, 1.0), "eu": (EU_SITES, 1.0), "contention": (None, 0.3), "pinned": (None, PINNED_SCALE)}


def pinned_jobs(seed: int, start: int, end: int, rate: float, site_ids: list[str]) -> list[Job]:
    """The ``pinned`` variant's workload (issue 26): half the jobs urgent, pinned to one site
    (allow-list of one, latest start 10-30 min after submission, priority 0-2, median 2 h of work),
    half movable (any site, latest start 3-12 h after submission, priority 6-9, median 4 h);
    Poisson arrivals at ``rate`` per hour. Seeded: the same arguments give the same jobs."""
    rng = random.Random(seed)
    jobs, t, n = [], float(start), 0
    while True:
        t += rng.expovariate(rate / HOUR_MS)
        if t >= end:
            return jobs
        n += 1
        sub = int(t) // 1000 * 1000
        site = rng.choice(site_ids)
        if rng.random() < 0.5:
            ch = min(24.0, max(0.25, rng.lognormvariate(math.log(2.0), 0.8)))
            jobs.append(Job(f"u-{n:06d}", round(ch, 2), rng.choice((1, 2, 4, 8)), rng.randint(0, 2),
                            sub + rng.randint(10, 30) * 60_000, (site,), sub))
        else:
            ch = min(48.0, max(0.25, rng.lognormvariate(math.log(4.0), 1.0)))
            jobs.append(Job(f"m-{n:06d}", round(ch, 2), rng.choice((1, 2, 4, 8, 16)), rng.randint(6, 9),
                            sub + int(rng.uniform(3, 12) * HOUR_MS) // 60_000 * 60_000, None, sub, home=site))


def run_variant(args, month_name: str, variant: str, log=print) -> dict:
    sites_subset, scale = VARIANTS[variant]
    tick_len = args.tick_minutes * 60_000
    start, end = month_bounds(month_name)
    if args.days:
        end = min(end, start + int(args.days * 24 * HOUR_MS))
    catalogue = load_catalogue(args.sites_file)
    site_ids = sorted(sites_subset or catalogue.site_ids)
    t0 = time.perf_counter()
    month = load_month(catalogue, start, end, tick_len, site_ids)
    if variant == "pinned":
        jobs = pinned_jobs(args.seed, start, end, args.rate, site_ids)
    else:
        n_jobs = int(args.rate * (end - start) / HOUR_MS)
        recs = generate_jobs(args.seed, n_jobs, start, args.rate, site_ids, cancel_fraction=0.0)
        jobs = [job_from_record(read_job_record(r).record) for r in recs]
        jobs = [j for j in jobs if j.submitted_ms < end]
    log(f"{month_name} {variant}{f' first {args.days:g} days' if args.days else ''}: {len(month.ticks_in_month):,} "
        f"ticks, sites {','.join(site_ids)}, capacity x{scale:g}, {len(jobs):,} jobs "
        f"({sum(j.compute_hours for j in jobs):,.0f} compute-hours); inputs in {time.perf_counter() - t0:.1f} s")
    cfg = DispatchConfig(tick_len_ms=tick_len, time_limit_s=args.solver_time_limit_s,
                         horizon_ms=int(args.horizon_h * HOUR_MS), max_nodes=args.max_nodes, replan=args.replan)
    home_sites = sorted(s.site_id for s in catalogue if s.region == catalogue.home_region and s.site_id in site_ids) \
        or site_ids
    results = {}
    for name in args.policies.split(","):
        r = run_policy(name, jobs, month, cfg, scale, home_sites, headroom=not args.no_headroom)
        results[name] = r
        if args.decisions:  # every start, to compare two runs byte for byte (cmp)
            out = Path(args.decisions) / f"{month_name}-{variant}-{name}.tsv"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(f"{t}\t{jid}\t{sid}\n" for jid, (sid, t) in
                                   sorted(r.placements.items(), key=lambda kv: (kv[1][1], kv[0]))))
        log(f"  {name:12s} cost {r.cost:10,.2f} EUR  {r.mwh:8,.2f} MWh  placed {r.placed:,}  missed {r.missed:,}  "
            f"(by priority {dict(sorted(r.missed_by_priority.items()))})  unplaced {r.unplaced_end:,}  "
            f"{r.cost / max(r.compute_hours, 1e-9) * 1000:.2f} EUR/1000ch  "
            f"wait mean {np.mean(r.waits_h or [0]):.2f} h p95 {np.percentile(r.waits_h or [0], 95):.2f} h "
            f"[{r.seconds:.1f} s, solve p95 {np.percentile(r.solve_s or [0], 95) * 1000:.0f} ms"
            f"{f', {r.full_plans:,} of {len(r.solve_s):,} ticks planned in full' if name == 'milp' else ''}"
            f"{f', wall-clock net fired {r.wall_clock:,} times' if r.wall_clock else ''}]")
    milp = results.get("milp")
    placed_jobs = [j for j in jobs if milp is None or j.job_id in milp.placements]
    hind = hindsight_relaxed(placed_jobs, month, cfg, scale)
    errors = forecast_error(month, [s for s in site_ids if s in EU_SITES])
    return {"month": month_name, "variant": variant, "sites": site_ids, "scale": scale, "jobs": jobs,
            "results": results, "hindsight": hind, "forecast_error": errors}


def _missed(r: PolicyResult) -> str:
    """Missed starts, and by priority where any were missed."""
    by = ", ".join(f"p{p} {n}" for p, n in sorted(r.missed_by_priority.items()))
    return f"{r.missed:,}" + (f" ({by})" if by else "")


def report(runs: list[dict]) -> tuple[str, str]:
    tables = []
    verdicts = []
    for run in runs:
        res = run["results"]
        g = res.get("greedy")
        rows = []
        for name, r in res.items():
            per = r.cost / r.compute_hours if r.compute_hours else float("nan")
            vs = f"{(per / (g.cost / g.compute_hours) - 1) * 100:+.1f} %" if g and name != "greedy" else ""
            rows.append([name, f"{r.cost:,.2f}", f"{per * 1000:.2f}", vs, f"{r.mwh:,.2f}", f"{r.compute_hours:,.0f}",
                         f"{r.placed:,}", _missed(r), f"{r.unplaced_end:,}",
                         f"{np.mean(r.waits_h or [0]):.2f}", f"{np.percentile(r.waits_h or [0], 95):.2f}"])
        h = run["hindsight"]
        m = res.get("milp")
        if m:
            rows.append([f"hindsight, capacity relaxed (lower bound; the {h['placed']:,} jobs the MILP placed)",
                         f"{h['cost']:,.2f}", f"{h['cost'] / max(m.compute_hours, 1e-9) * 1000:.2f}", "",
                         f"{h['mwh']:,.2f}", f"{m.compute_hours:,.0f}", f"{h['placed']:,}", "", "", "", ""])
        header = ["policy", "realised cost EUR", "EUR per 1,000 ch", "EUR/ch vs greedy", "energy MWh", "compute-h",
                  "placed", "missed deadline", "unplaced at end", "mean wait h", "p95 wait h"]
        title = (f"**{run['month']}, {run['variant']}** (sites {', '.join(run['sites'])}; capacity x{run['scale']:g}; "
                 f"{len(run['jobs']):,} jobs, {sum(j.compute_hours for j in run['jobs']):,.0f} compute-hours)")
        errs = run["forecast_error"]
        err_line = ""
        if errs:
            err_line = "Forecast error, mean |error| / mean |price| of an hour's price: " + "; ".join(
                f"{sid} day-ago {d * 100:.0f} %, week-ago {w * 100:.0f} %" for sid, (d, w) in errs.items()) + "."
        tables.append(f"{title}\n\n{md_table(header, rows)}\n\n{err_line}".rstrip())
        if m and g:
            saving = 1 - (m.cost / m.compute_hours) / (g.cost / g.compute_hours)
            gap_cost = m.cost / h["cost"] - 1 if h["cost"] > 0 else float("nan")
            obj_m = m.cost + m.delay
            gap_obj = obj_m / h["objective"] - 1 if h["objective"] > 0 else float("nan")
            missed_vs = f"missed {m.missed} (greedy {g.missed})"
            than = f"{saving * 100:.1f} % cheaper" if saving >= 0 else f"{-saving * 100:.1f} % dearer"
            verdicts.append(f"* {run['month']} {run['variant']}: MILP {than} per compute-hour "
                            f"than greedy; {missed_vs}; realised {m.cost:,.2f} EUR against expected "
                            f"{m.expected:,.2f} EUR ({(m.cost / m.expected - 1) * 100:+.1f} %); "
                            f"cost {gap_cost * 100:.1f} % "
                            f"and cost + delay {gap_obj * 100:.1f} % above the like-for-like hindsight lower bound.")
    return "\n\n".join(tables), "\n".join(verdicts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_money", description=__doc__.split("\n")[0])
    ap.add_argument("--months", default="2018-07,2018-01", help="YYYY-MM list of the sample (default %(default)s)")
    ap.add_argument("--variants", default="all,eu,contention,pinned",
                    help=f"of {','.join(VARIANTS)} (default %(default)s)")
    ap.add_argument("--days", type=float, default=None, help="only the first N days of each month (quick runs)")
    ap.add_argument("--rate", type=float, default=60.0, help="jobs per hour (default %(default)s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tick-minutes", type=int, default=5)
    ap.add_argument("--horizon-h", type=float, default=24.0)
    ap.add_argument("--solver-time-limit-s", type=float, default=DispatchConfig.time_limit_s,
                    help="wall-clock safety net per solve, as the pipeline's default (%(default)s)")
    ap.add_argument("--max-nodes", type=int, default=DispatchConfig.max_nodes,
                    help="branch-and-bound nodes per solve, the deterministic work limit (%(default)s)")
    ap.add_argument("--sites-file", default=str(REPO / "conf" / "sites.yaml"))
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--no-headroom", action="store_true",
                    help="the plan without the urgent reserve (udfs.headroom), for comparison")
    ap.add_argument("--replan", choices=REPLAN_MODES, default=DispatchConfig.replan,
                    help="the plan in full only when its inputs changed (default) or at every tick")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--decisions", metavar="DIR", default=None,
                    help="write every start (tick, job, site) per month, variant and policy to DIR/*.tsv")
    args = ap.parse_args(argv)
    if not (REPO / "data" / "sample" / "manifest.json").exists():
        print("error: data/sample missing: run `make sample-data`", file=sys.stderr)
        return 2
    bad = [v for v in args.variants.split(",") if v not in VARIANTS]
    if bad:
        print(f"error: --variants: unknown {bad[0]!r} (one of {', '.join(VARIANTS)})", file=sys.stderr)
        return 2
    runs = []
    for m in args.months.split(","):
        for v in args.variants.split(","):
            runs.append(run_variant(args, m, v, log=lambda s: print(s, flush=True)))
            print("\n".join(report(runs[-1:])), flush=True)  # each variant's table as soon as it is done
    tables, verdicts = report(runs)
    if not args.no_write and not args.days:
        cmd = (f"python -m bench.bench_money --months {args.months} --variants {args.variants} --rate {args.rate:g} "
               f"--seed {args.seed}")
        write_section(TITLE, BODY.format(cmd=cmd, machine=machine(), seed=args.seed, rate=f"{args.rate:g}",
                                         tables=tables, verdicts=verdicts))
        print(f"wrote the '## {TITLE}' section of docs/BENCHMARKS.md")
    return 0


BODY = """Command: `.venv/bin/{cmd}` (part of `make bench`). Machine: {machine}.

Jobs: `sources.jobs.generate_jobs(seed={seed}, rate={rate}/h)` over each month without cancels, the same
seeded jobs for every policy. Every policy runs its own closed loop with the pipeline's tick semantics
and decides on the same `udfs.objective.PlanProblem` (see the module docstring of `bench/bench_money.py`).
**Every cost is realised, hour by hour**: the offers that actually held and the PUE of the weather at
each 5-minute tick over the job's run, the same accounting for every policy. Prices: ams, trn, sto
are real SMARD day-ahead prices of 2018 (known from their publication, D-1 12:45 local); chi and tus
are SYNTHETIC 5-minute US prices (known only while in force). Weather: typical-year EPW re-stamped
onto 2018. Greedy is the rule the dispatcher had before it planned ahead (start now, cheapest cost
per compute-hour now). The hindsight row is a capacity-relaxed lower bound under the same rules and
objective (realised cost + delay term), on the jobs the MILP placed.

{tables}

{verdicts}
"""


if __name__ == "__main__":
    sys.exit(main())
