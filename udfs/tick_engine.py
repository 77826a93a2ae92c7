"""Everything one dispatch key decides per tick, in plain Python: its sites' trackers and its
dispatcher, driven by event time.

The job's dispatch operator (flink_jobs.operators.TickOperator) feeds one :class:`TickEngine` per
dispatch key (one key, or one per region shard), every record as it arrives:

* site records (prices, weather, site-status), each classified against the operator's watermark:
  ``add_site_record(row, watermark_ms)``. An accepted record waits for the first tick at or after
  its event time; an offer behind the watermark that is still in force is applied at the site's
  next tick, anything else behind it is counted as late. (``watermark_ms`` None: on time by
  construction, as in a batch of one tick's records: ``add_site_records(rows)``.)
* validated job events (``add_job_event``) and counters (``count``).

``advance(up_to_ms)`` then runs, in order, every tick due at or before ``up_to_ms`` (the
watermark): a site ticks at the first tick at or after each of its accepted records and keeps
ticking while an offer is in force; the dispatcher ticks when a site ticks, at the tick of each
job event and at the last chance of the earliest pending deadline. These are the rules of
tests/reference.py, so the output does not depend on arrival order or batching.

Per record the work is a parse and a heap insert; per site and tick a lookup of its inputs.
Duplicates are byte-identical re-deliveries (same topic, same value): the raw text is the
fingerprint, which costs nothing to compute.

An earlier wiring fed this engine per-tick batches from SQL windows and lost ticks after pauses
and restarts, because a window holds records until its own topic's watermark passes
(docs/RELIABILITY.md, problem 9); records one at a time, classified on arrival, are never held.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from udfs.catalogue import Catalogue
from udfs.dispatch import DispatchConfig
from udfs.dispatcher import Dispatcher, TickOutput
from udfs.records import ParsedRecord, RecordError, parse_input
from udfs.site_tracker import ACCEPTED, DUPLICATE, LATE, SiteTracker, tick_at_or_after

# A site record as it arrived: (topic, key, raw value, partition, offset).
RawRecord = tuple[str, Any, Any, Any, Any]
NO_WATERMARK = -(2**63)


@dataclass(frozen=True)
class DeadRecord:
    """An input record that could not be used, with where it was and why."""
    topic: str
    partition: int | None
    offset: int | None
    key: str | None
    raw: str | None
    error: str


@dataclass
class TickResult:
    tick_ms: int
    output: TickOutput
    dead: list[DeadRecord] = field(default_factory=list)  # job events the dispatcher refused


@dataclass
class _Pending:
    """An accepted site record waiting for the first tick it matters to (queued as (tick, seq, this))."""
    parsed: ParsedRecord
    fingerprint: str
    raw: RawRecord
    tag: Any = None  # the caller's: where the record is logged


class TickEngine:
    def __init__(self, catalogue: Catalogue, tick_len_ms: int, config: DispatchConfig,
                 known_sites: Container[str] | None = None, site_cost_json: bool = False):
        self.catalogue = catalogue  # the sites this key decides
        self.known_sites = known_sites if known_sites is not None else frozenset(catalogue.site_ids)
        self.tick_len_ms = tick_len_ms
        # True: site-costs come as ready JSON text (TickOutput.site_cost_json), not as dicts
        self.site_cost_json = site_cost_json
        self.dispatcher = Dispatcher(catalogue, config)
        self.trackers: dict[str, SiteTracker] = {}
        # Reading a backlog, one topic's batches can run far ahead of event time, so everything
        # queued by tick is a heap or a dict: the cost per record and per tick never depends on
        # how much is queued.
        # site -> heap of (tick, seq, record) not applied yet (tuples: compared in C, not by a dataclass)
        self.pending: dict[str, list[tuple[int, int, _Pending]]] = defaultdict(list)
        self.site_ticks: dict[int, set[str]] = defaultdict(set)  # tick -> sites with a record first needed then
        self.chain: dict[int, set[str]] = defaultdict(set)  # tick -> sites whose offer keeps them ticking
        self.inbox: dict[int, list[tuple[ParsedRecord, Any]]] = defaultdict(list)  # tick -> (job event, meta)
        self._due: list[int] = []  # heap of the ticks of site_ticks and inbox (may hold stale ones)
        self._new_due: list[int] = []  # ticks added to _due since take_new_due_ticks() (the caller's timers)
        self._applied_tags: list[Any] = []  # tags of the records applied since take_applied_tags()
        self._pending_fps: set[str] = set()  # fingerprints of the pending records (de-duplication)
        self._seq = 0
        self.last_tick: int | None = None
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ inputs
    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def add_site_records(self, rows: Iterable[RawRecord], watermark_ms: int | None = None,
                         tag: Any = None) -> list[DeadRecord]:
        """Parse, validate, de-duplicate and queue site records. ``watermark_ms`` None: the records
        are on time (a tick batch); else each is classified against it. Returns the dead letters."""
        dead = []
        for row in rows:
            outcome = self.add_site_record(row, watermark_ms, tag)
            if isinstance(outcome, DeadRecord):
                dead.append(outcome)
        return dead

    def add_site_record(self, row: RawRecord, watermark_ms: int | None = None,
                        tag: Any = None) -> str | DeadRecord:
        """One site record (see add_site_records): ACCEPTED, DUPLICATE, LATE (both counted) or
        its DeadRecord (counted as a dead letter)."""
        try:
            parsed = parse_input(row[0], row[2], self.known_sites)
        except RecordError as exc:
            self.count("dead_letters")
            return DeadRecord(row[0], row[3], row[4], row[1], row[2], str(exc))
        if parsed.key not in self.catalogue:  # routed to the wrong shard: never silently used
            self.count("dead_letters")
            return DeadRecord(row[0], row[3], row[4], row[1], row[2], "site_id: not decided by this dispatch shard")
        outcome = self._queue(parsed, row, watermark_ms, tag)
        if outcome == DUPLICATE:
            self.count("duplicates")
        elif outcome == LATE:
            self.count("late_events")
        return outcome

    def _queue(self, parsed: ParsedRecord, row: RawRecord, watermark_ms: int | None, tag: Any = None) -> str:
        tracker = self.trackers.get(parsed.key)
        if tracker is None:
            tracker = self.trackers[parsed.key] = SiteTracker(parsed.key, self.catalogue[parsed.key].offer_interval_ms)
        fp = f"{parsed.topic}|{row[2]}"
        outcome = tracker.classify(parsed, NO_WATERMARK if watermark_ms is None else watermark_ms, fp)
        if outcome == ACCEPTED and fp in self._pending_fps:
            outcome = DUPLICATE
        if outcome == ACCEPTED:
            tick = tick_at_or_after(parsed.event_ms, self.tick_len_ms)
            self._seq += 1
            self._pending_fps.add(fp)
            heapq.heappush(self.pending[parsed.key], (tick, self._seq, _Pending(parsed, fp, row, tag)))
            if self.last_tick is None or tick > self.last_tick:
                if tick not in self.site_ticks:
                    heapq.heappush(self._due, tick)
                    self._new_due.append(tick)
                self.site_ticks[tick].add(parsed.key)
            # else: a late offer still in force, applied at the site's next tick
        return outcome

    def add_job_event(self, parsed: ParsedRecord, meta: Any, watermark_ms: int) -> int:
        """Queue a validated job event for its tick; returns that tick. A job event behind the
        watermark is not dropped: it joins the next tick (and is counted)."""
        tick = tick_at_or_after(parsed.event_ms, self.tick_len_ms)
        last = self.last_tick
        if tick <= watermark_ms or (last is not None and tick <= last):
            self.count("late_jobs")
            tick = tick_at_or_after(max(watermark_ms, last if last is not None else watermark_ms) + 1,
                                    self.tick_len_ms)
        if tick not in self.inbox:
            heapq.heappush(self._due, tick)
            self._new_due.append(tick)
        self.inbox[tick].append((parsed, meta))
        return tick

    # ------------------------------------------------------------------ ticks
    def next_due(self) -> int | None:
        """The next tick to run (it runs once event time reaches it), or None."""
        last = self.last_tick
        due = self._due
        while due and ((last is not None and due[0] <= last) or (due[0] not in self.site_ticks
                                                                  and due[0] not in self.inbox)):
            heapq.heappop(due)
        candidates = [t for t in self.chain if last is None or t > last]  # one entry per ticking site at most
        if due:
            candidates.append(due[0])
        deadline = self.dispatcher.next_deadline_tick(self.tick_len_ms)
        if deadline is not None:
            candidates.append(deadline if last is None else max(deadline, last + self.tick_len_ms))
        return min(candidates) if candidates else None

    def take_new_due_ticks(self) -> list[int]:
        """The ticks a queued record or job event made due since the last call (a caller that wakes
        the engine by timers sets one at each; ticks that follow a run come from next_due)."""
        new, self._new_due = self._new_due, []
        return new

    def advance(self, up_to_ms: int) -> list[TickResult]:
        """Run every tick due at or before ``up_to_ms``, in order."""
        results = []
        while True:
            tick = self.next_due()
            if tick is None or tick > up_to_ms:
                return results
            results.append(self._run_tick(tick))

    def _run_tick(self, tick: int) -> TickResult:
        ticking = self.site_ticks.pop(tick, set()) | self.chain.pop(tick, set())
        inputs = {}
        for site_id in sorted(ticking):
            tracker = self.trackers[site_id]
            self._apply_pending(site_id, tracker, tick)
            inputs[site_id] = tracker.inputs_at(tick)
            tracker.prune(tick)
            if tracker.keeps_ticking_after(tick):
                self.chain[tick + self.tick_len_ms].add(site_id)
        jobs = self.inbox.pop(tick, [])
        meta = {id(parsed): m for parsed, m in jobs}
        counts, self.counts = self.counts, {}
        out = self.dispatcher.run_tick(tick, [parsed for parsed, _ in jobs], inputs, counts,
                                       site_cost_dicts=not self.site_cost_json, site_cost_json=self.site_cost_json)
        self.last_tick = tick
        dead = []
        for parsed, reason in out.dead_letters:
            partition, offset, raw = meta.get(id(parsed)) or (None, None, None)
            dead.append(DeadRecord(parsed.topic, partition, offset, parsed.key, raw, reason))
        return TickResult(tick, out, dead)

    def _apply_pending(self, site_id: str, tracker: SiteTracker, tick: int) -> None:
        waiting = self.pending.get(site_id)
        if not waiting:
            return
        while waiting and waiting[0][0] <= tick:
            p = heapq.heappop(waiting)[2]
            self._pending_fps.discard(p.fingerprint)
            tracker.apply(p.parsed, p.fingerprint)
            if p.tag is not None:
                self._applied_tags.append(p.tag)
        if not waiting:
            del self.pending[site_id]

    # ------------------------------------------------------------------ state
    # The Flink operator keeps: the small core (written whenever it changes), the dispatcher, the
    # job inbox by tick, the trackers as a periodic snapshot, and the site records received
    # since that snapshot (a log; it also rebuilds what waits for a tick). Restoring replays the
    # log onto the snapshot, without counting anything twice.
    def core_state(self) -> dict[str, Any]:
        return {"last_tick": self.last_tick, "chain": dict(self.chain), "counts": self.counts}

    def take_applied_tags(self) -> list[Any]:
        """The tags of the records applied to their trackers since the last call: once the trackers
        are snapshotted, their log entries can go."""
        applied, self._applied_tags = self._applied_tags, []
        return applied

    def waiting_rows(self, dropped: Callable[[Any], bool]) -> list[RawRecord]:
        """The raw records accepted but not applied yet whose tag says their log entry is being
        dropped (``dropped(tag)``): a new log must hold them."""
        return [p.raw for waiting in self.pending.values() for _, _, p in waiting if dropped(p.tag)]

    def restore(self, core: dict[str, Any] | None, dispatcher: dict[str, Any] | None,
                trackers: dict[str, SiteTracker] | None, log: Iterable[tuple[list[RawRecord], int | None, Any]],
                inbox: dict[int, list] | None = None) -> None:
        self.trackers = dict(trackers or {})
        self.dispatcher.load_state(dispatcher)
        core = core or {}
        self.last_tick = core.get("last_tick")
        for rows, watermark_ms, tag in log:  # re-queue what arrived since the snapshot (parsing is pure)
            for row in rows:
                try:
                    parsed = parse_input(row[0], row[2], self.known_sites)
                except RecordError:
                    continue
                if parsed.key in self.catalogue:
                    self._queue(parsed, row, watermark_ms, tag)
        self.chain = defaultdict(set, core.get("chain") or {})
        self.inbox = defaultdict(list, inbox or {})
        for tick in self.inbox:
            heapq.heappush(self._due, tick)
        self.counts = dict(core.get("counts") or {})
        if self.last_tick is not None:  # records applied before the failure are applied again
            for site_id, tracker in self.trackers.items():
                self._apply_pending(site_id, tracker, self.last_tick)
                tracker.prune(self.last_tick)
