"""A batch reference run of the dispatch pipeline's semantics, straight on udfs/.

All events are known up front and applied in event-time order, so there is no watermark, no
lateness and no arrival order: this is what the streaming job must reproduce exactly. Ticks
follow the job's rules: a site ticks from the first tick at or after each of its events and
keeps ticking while an offer is valid then or later; the dispatcher ticks on every site tick,
on the tick after each job event, and on the tick after each pending deadline.
"""

from __future__ import annotations

from bench.site_history import site_histories
from udfs import topics
from udfs.catalogue import load_catalogue
from udfs.dispatcher import Dispatcher, SiteInputs, site_cost_rows
from udfs.optimizer import DispatchConfig
from udfs.records import ParsedRecord
from udfs.timeutil import tick_at_or_after


def reference_inputs(events: dict[str, list[dict]], tick_len_ms: int = 300_000, sites_file: str | None = None
                     ) -> tuple[dict[int, dict[str, SiteInputs]], list[ParsedRecord]]:
    """Every site's inputs at every tick it ticks, and the valid job events in event-time order."""
    histories, job_events = site_histories(events, load_catalogue(sites_file))
    site_ticks = {site_id: {tick_at_or_after(t, tick_len_ms) for t in h.event_times}
                  for site_id, h in histories.items()}
    inputs_by_tick: dict[int, dict[str, SiteInputs]] = {}
    for site_id, tracker in histories.items():
        todo = sorted(site_ticks[site_id])
        done: set[int] = set()
        while todo:
            t = todo.pop(0)
            if t in done:
                continue
            done.add(t)
            inputs_by_tick.setdefault(t, {})[site_id] = tracker.inputs_at(t)
            if tracker.keeps_ticking_after(t) and t + tick_len_ms not in done:
                todo.append(t + tick_len_ms)
                todo.sort()
    return inputs_by_tick, job_events


def reference_run(events: dict[str, list[dict]], tick_len_ms: int = 300_000, sites_file: str | None = None,
                  solver_time_limit_s: float = 10.0) -> dict[str, list[dict]]:
    catalogue = load_catalogue(sites_file)
    inputs_by_tick, job_events = reference_inputs(events, tick_len_ms, sites_file)
    dispatcher = Dispatcher(catalogue, DispatchConfig(tick_len_ms=tick_len_ms, time_limit_s=solver_time_limit_s))
    ticks = set(inputs_by_tick) | {tick_at_or_after(p.event_ms, tick_len_ms) for p in job_events}
    out: dict[str, list[dict]] = {topics.SITE_COSTS: [], topics.DISPATCH: [], topics.PIPELINE_METRICS: []}
    i = 0
    while ticks:
        t = min(ticks)
        ticks.discard(t)
        batch = []
        while i < len(job_events) and job_events[i].event_ms <= t:
            batch.append(job_events[i])
            i += 1
        result = dispatcher.run_tick(t, batch, inputs_by_tick.get(t, {}))
        out[topics.SITE_COSTS].extend(site_cost_rows(result.site_costs))
        out[topics.DISPATCH].extend(result.decisions)
        out[topics.PIPELINE_METRICS].append(result.metrics)
        nxt = dispatcher.next_deadline_tick(tick_len_ms)
        if nxt is not None:
            ticks.add(max(nxt, t + tick_len_ms))
    return out
