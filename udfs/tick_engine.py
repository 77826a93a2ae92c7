"""Everything one dispatch key decides per tick, in plain Python.

The per-record work happens before this, on the JVM (flink_jobs/jvm/geodispatch): validation,
de-duplication, lateness, which offer is in force, the latest weather and status, when each site
ticks (SiteTicker), and which tick each record joins (TickAssembler, which holds the records in
Flink state until the watermark passes their tick). What reaches this engine is one call per key
and tick, :meth:`TickEngine.run`: the tick, how far it may run, and the tick's records: one *site
tick* per ticking site (the site's inputs at that instant, the offers that changed since its last
tick, its counters) and the job events. It runs, in order, the ticks due up to there: the tick
itself if it has inputs, and the last chance of each pending deadline (which only the dispatcher
knows). These are the rules of tests/reference.py, so the output does not depend on arrival order
or batching. The job's dispatch operator (flink_jobs.operators.TickOperator) feeds one
:class:`TickEngine` per dispatch key (one key, or one per region shard).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from udfs import topics
from udfs.catalogue import Catalogue
from udfs.dispatcher import Dispatcher, SiteInputs, TickOutput
from udfs.forecast import HISTORY_MS
from udfs.offers import KnownOffers
from udfs.optimizer import DispatchConfig
from udfs.records import ParsedRecord, job_event
from udfs.timeutil import tick_at_or_after

COUNTERS = ("late_events", "duplicates", "dead_letters")  # what a site tick reports besides inputs
# of core_state(); 4 kept the offer books as one value, 3 its own inbox and due ticks, 2 parsed every record
STATE_VERSION = 5


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
    def __init__(self, catalogue: Catalogue, tick_len_ms: int, config: DispatchConfig):
        self.catalogue = catalogue  # the sites this key decides
        self.tick_len_ms = tick_len_ms
        self.dispatcher = Dispatcher(catalogue, config)
        # each site's offers as its ticks reported them, a day back: the plan ahead prices with them
        self.books: dict[str, KnownOffers] = {}
        # what changed in the books since the operator last took it: (site, valid_from) -> the
        # offer (end, price, published) or None (dropped); the operator writes only that to state
        self.book_changes: dict[tuple[str, int], tuple | None] = {}
        self.last_tick: int | None = None
        self.counts: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    # ------------------------------------------------------------------ ticks
    def run(self, tick: int, up_to: int, site_ticks: Iterable[dict[str, Any]],
            job_records: Iterable[tuple]) -> list[TickResult]:
        """One tick as TickAssembler hands it over (udfs.records.assembled_tick): its site ticks
        and its job records, (topic, key, value, partition, offset) each; runs, in order, every
        tick due up to ``up_to`` (>= ``tick``): ``tick`` if a site ticks or a job event joins it,
        and the last chance of each pending deadline. A record that could not join its own tick
        (late) joined this one: a late job event is decided now, a late site tick's offers go to
        the book; both are counted."""
        sites: dict[str, dict[str, Any]] = {}
        jobs: list[tuple[ParsedRecord, Any]] = []
        for payload in site_ticks:
            if self._site_tick(payload):
                sites[payload["site_id"]] = payload
        for topic, _key, value, partition, offset in job_records:
            if topic == topics.DEAD_JOB:  # dead-lettered on the JVM (JobRecords): counted in the tick's metrics
                self.count("dead_letters")
            else:
                parsed = job_event(value)
                if tick_at_or_after(parsed.event_ms, self.tick_len_ms) != tick:
                    self.count("late_jobs")
                jobs.append((parsed, (partition, offset, parsed.raw)))
        results = []
        inputs_at = tick if sites or jobs else None
        while True:
            deadline = self._deadline_due()
            if inputs_at is not None and (deadline is None or inputs_at <= deadline):
                results.append(self._run_tick(inputs_at, sites, jobs))
                inputs_at = None
            elif deadline is not None and deadline <= up_to:
                results.append(self._run_tick(deadline, {}, []))
            else:
                return results

    def _site_tick(self, payload: dict[str, Any]) -> bool:
        """Take a site tick's counters; True if it brings the site's inputs for a tick not yet run."""
        for name in COUNTERS:
            if payload.get(name):
                self.count(name, payload[name])
        if not payload.get("tick_inputs"):
            return False
        if self.last_tick is not None and payload["tick"] <= self.last_tick:
            # The dispatcher ran past this tick without it: its watermark came from the job records
            # alone while the site topics were idle. Its offers still go to the book; the tick
            # itself is late, like a record behind the watermark.
            self._update_book(payload, self.last_tick)
            self.count("late_site_ticks")
            return False
        return True

    def _deadline_due(self) -> int | None:
        """The tick of the earliest pending job's last chance, not before the next tick."""
        deadline = self.dispatcher.next_deadline_tick(self.tick_len_ms)
        if deadline is None or self.last_tick is None:
            return deadline
        return max(deadline, self.last_tick + self.tick_len_ms)

    def _run_tick(self, tick: int, sites: dict[str, dict[str, Any]],
                  jobs: list[tuple[ParsedRecord, Any]]) -> TickResult:
        inputs = {site_id: self._site_inputs(payload, tick) for site_id, payload in sorted(sites.items())}
        meta = {id(parsed): m for parsed, m in jobs}
        counts, self.counts = self.counts, {}
        out = self.dispatcher.run_tick(tick, [parsed for parsed, _ in jobs], inputs, counts)
        self.last_tick = tick
        dead = []
        for parsed, reason in out.dead_letters:
            partition, offset, raw = meta.get(id(parsed)) or (None, None, None)
            dead.append(DeadRecord(parsed.topic, partition, offset, parsed.key, raw, reason))
        return TickResult(tick, out, dead)

    def _update_book(self, p: dict[str, Any], tick: int) -> KnownOffers:
        site_id = p["site_id"]
        book = self.books.get(site_id)
        if book is None:
            book = self.books[site_id] = KnownOffers()
        for valid_from, end, price, published in p["offers"]:  # resolved on the JVM (SiteTicker)
            book.put(valid_from, end, float(price), published)
            self.book_changes[site_id, valid_from] = (end, float(price), published)
        for valid_from in book.prune(tick - HISTORY_MS):
            self.book_changes[site_id, valid_from] = None
        return book

    def _site_inputs(self, p: dict[str, Any], tick: int) -> SiteInputs:
        site_id = p["site_id"]
        book = self._update_book(p, tick)
        return SiteInputs(site_id, tick, p["price_per_mwh"], p["offer_valid_to"], p["currency"], p["temp_c"],
                          p["rel_humidity"], p["online"], p["capacity_slots"], book)

    # ------------------------------------------------------------------ state
    # The Flink operator keeps: the small core, the dispatcher and the offer books (the records
    # waiting for their tick are in TickAssembler's state, on the JVM).
    def core_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "last_tick": self.last_tick, "counts": self.counts}

    def take_book_changes(self) -> dict[tuple[str, int], tuple | None]:
        """The books' changes since the last call (``book_changes``), handed over and forgotten."""
        changes, self.book_changes = self.book_changes, {}
        return changes

    def restore(self, core: dict[str, Any] | None, dispatcher: dict[str, Any] | None,
                book_entries: Iterable[tuple[tuple[str, int], tuple]] = ()) -> None:
        """From the operator's state; ``book_entries``: ((site, valid_from), (end, price, published))
        of every offer kept, as ``take_book_changes`` handed them over (any order)."""
        core = core or {}
        if core and core.get("version") != STATE_VERSION:
            raise ValueError(f"dispatch engine state is version {core.get('version', 2)}, this job reads "
                             f"version {STATE_VERSION}: start it without the savepoint (docs/DEPLOY.md)")
        self.dispatcher.load_state(dispatcher)
        self.last_tick = core.get("last_tick")
        self.counts = dict(core.get("counts") or {})
        books: dict[str, list[tuple]] = {}
        for (site_id, valid_from), offer in book_entries:
            books.setdefault(site_id, []).append((valid_from, *offer))
        self.books = {site_id: KnownOffers(sorted(offers)) for site_id, offers in books.items()}
        self.book_changes = {}
