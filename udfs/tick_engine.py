"""Everything one dispatch key decides per tick, in plain Python, driven by event time.

The per-record work happens before this, on the JVM (flink_jobs/jvm/geodispatch/SiteTicker.java):
validation, de-duplication, lateness, which offer is in force, the latest weather and status, and
when each site ticks. What reaches this engine is one *site tick* per site and tick (the site's
inputs at that instant, the offers that changed since its last tick, its counters) and the job
events. The job's dispatch operator (flink_jobs.operators.TickOperator) feeds one
:class:`TickEngine` per dispatch key (one key, or one per region shard):

* ``add_site_tick(payload)``: a site tick (it arrives before the watermark passes its tick);
* ``add_job_event(parsed, meta, watermark_ms)``: a validated job event.

``advance(up_to_ms)`` then runs, in order, every tick due at or before ``up_to_ms`` (the
watermark): a tick at which a site ticked, the tick of each job event, and the last chance of the
earliest pending deadline. These are the rules of tests/reference.py, so the output does not
depend on arrival order or batching.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from udfs.catalogue import Catalogue
from udfs.dispatcher import Dispatcher, SiteInputs, TickOutput
from udfs.forecast import HISTORY_MS
from udfs.offers import Offer, OfferBook
from udfs.optimizer import DispatchConfig
from udfs.records import ParsedRecord
from udfs.timeutil import tick_at_or_after

SITE_TICK = "site-tick"  # the topic name SiteTicker gives its rows
COUNTERS = ("late_events", "duplicates", "dead_letters")  # what a site tick reports besides inputs
STATE_VERSION = 3  # of core_state(); 2 was the engine that parsed every record in Python


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


class TickEngine:
    def __init__(self, catalogue: Catalogue, tick_len_ms: int, config: DispatchConfig, site_cost_json: bool = False):
        self.catalogue = catalogue  # the sites this key decides
        self.tick_len_ms = tick_len_ms
        # True: site-costs come as ready JSON text (TickOutput.site_cost_json), not as dicts
        self.site_cost_json = site_cost_json
        self.dispatcher = Dispatcher(catalogue, config)
        # each site's offers as its ticks reported them, a day back: the plan ahead prices with them
        self.books: dict[str, OfferBook] = {}
        self.site_inbox: dict[int, dict[str, dict]] = defaultdict(dict)  # tick -> site -> site tick
        self.inbox: dict[int, list[tuple[ParsedRecord, Any]]] = defaultdict(list)  # tick -> (job event, meta)
        self._due: list[int] = []  # heap of the ticks of site_inbox and inbox (may hold stale ones)
        self._new_due: list[int] = []  # ticks added to _due since take_new_due_ticks() (the caller's timers)
        self.last_tick: int | None = None
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ inputs
    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def add_site_tick(self, payload: dict[str, Any]) -> int | None:
        """A site tick from SiteTicker; returns its tick, or None for a row of counters only."""
        for name in COUNTERS:
            if payload.get(name):
                self.count(name, payload[name])
        if not payload.get("tick_inputs"):
            return None
        tick = payload["tick"]
        if self.last_tick is not None and tick <= self.last_tick:
            # The dispatcher ran past this tick without it: its watermark came from the job records
            # alone while the site topics were idle. Its offers still go to the book; the tick
            # itself is late, like a record behind the watermark.
            self._update_book(payload, self.last_tick)
            self.count("late_site_ticks")
            return None
        self._schedule(tick)
        self.site_inbox[tick][payload["site_id"]] = payload
        return tick

    def add_job_event(self, parsed: ParsedRecord, meta: Any, watermark_ms: int) -> int:
        """Queue a validated job event for its tick; returns that tick. A job event behind the
        watermark is not dropped: it joins the next tick (and is counted)."""
        tick = tick_at_or_after(parsed.event_ms, self.tick_len_ms)
        last = self.last_tick
        if tick <= watermark_ms or (last is not None and tick <= last):
            self.count("late_jobs")
            tick = tick_at_or_after(max(watermark_ms, last if last is not None else watermark_ms) + 1,
                                    self.tick_len_ms)
        self._schedule(tick)
        self.inbox[tick].append((parsed, meta))
        return tick

    def _schedule(self, tick: int) -> None:
        if tick not in self.site_inbox and tick not in self.inbox:
            heapq.heappush(self._due, tick)
            self._new_due.append(tick)

    # ------------------------------------------------------------------ ticks
    def next_due(self) -> int | None:
        """The next tick to run (it runs once event time reaches it), or None."""
        last = self.last_tick
        due = self._due
        while due and ((last is not None and due[0] <= last) or (due[0] not in self.site_inbox
                                                                  and due[0] not in self.inbox)):
            heapq.heappop(due)
        candidates = [due[0]] if due else []
        deadline = self.dispatcher.next_deadline_tick(self.tick_len_ms)
        if deadline is not None:
            candidates.append(deadline if last is None else max(deadline, last + self.tick_len_ms))
        return min(candidates) if candidates else None

    def take_new_due_ticks(self) -> list[int]:
        """The ticks a site tick or job event made due since the last call (a caller that wakes
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
        inputs = {site_id: self._site_inputs(payload, tick)
                  for site_id, payload in sorted(self.site_inbox.pop(tick, {}).items())}
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

    def _update_book(self, p: dict[str, Any], tick: int) -> OfferBook:
        site_id = p["site_id"]
        book = self.books.get(site_id)
        if book is None:
            book = self.books[site_id] = OfferBook(self.catalogue[site_id].offer_interval_ms)
        for valid_from, valid_to, price, published in p["offers"]:
            book.put(Offer(valid_from, float(price), valid_to, published_ms=published))
        book.prune(tick - HISTORY_MS)
        return book

    def _site_inputs(self, p: dict[str, Any], tick: int) -> SiteInputs:
        site_id = p["site_id"]
        book = self._update_book(p, tick)
        return SiteInputs(site_id, tick, p["price_per_mwh"], p["offer_valid_to"], p["currency"], p["temp_c"],
                          p["rel_humidity"], p["online"], p["capacity_slots"], book)

    # ------------------------------------------------------------------ state
    # The Flink operator keeps: the small core (written whenever it changes), the dispatcher, the
    # offer books (written after each run of ticks), and the site ticks and job events waiting
    # for their tick (by tick).
    def core_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "last_tick": self.last_tick, "counts": self.counts}

    def books_state(self) -> dict[str, list[dict[str, Any]]]:
        return {site_id: book.to_state() for site_id, book in self.books.items()}

    def restore(self, core: dict[str, Any] | None, dispatcher: dict[str, Any] | None,
                books: dict[str, list[dict[str, Any]]] | None, site_inbox: dict[int, dict[str, dict]] | None,
                inbox: dict[int, list] | None) -> None:
        core = core or {}
        if core and core.get("version") != STATE_VERSION:
            raise ValueError(f"dispatch engine state is version {core.get('version', 2)}, this job reads "
                             f"version {STATE_VERSION}: start it without the savepoint (docs/DEPLOY.md)")
        self.dispatcher.load_state(dispatcher)
        self.last_tick = core.get("last_tick")
        self.counts = dict(core.get("counts") or {})
        self.books = {site_id: OfferBook.from_state(offers, self.catalogue[site_id].offer_interval_ms)
                      for site_id, offers in (books or {}).items()}
        self.site_inbox = defaultdict(dict, site_inbox or {})
        self.inbox = defaultdict(list, inbox or {})
        for tick in {*self.site_inbox, *self.inbox}:
            heapq.heappush(self._due, tick)
