"""GeoDispatch monitoring page: `make dashboard` (streamlit run dashboard/app.py).

Thin on purpose: reading and folding the topics is in ``data.py``, charts in ``charts.py``,
job records in ``jobs_form.py``. The consumer and its folded state live in
``st.cache_resource`` (one per server process, shared by all browser sessions); the live part
of the page is a fragment that reruns every few seconds and only fetches new records.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import charts  # noqa: E402
from dashboard.data import DashboardConfig, Kpis, Site, TopicReader, load_catalogue  # noqa: E402
from dashboard.jobs_form import JobsProducer, build_cancel, build_submit, new_job_id  # noqa: E402
from udfs.timeutil import format_ts  # noqa: E402

st.set_page_config(page_title="GeoDispatch monitor", page_icon=":material/bolt:", layout="wide")

CONFIG = DashboardConfig.from_env()
DASH = "—"


@st.cache_resource(show_spinner=False)
def get_reader(key: str, _config: DashboardConfig) -> TopicReader:
    return TopicReader(_config)


@st.cache_resource(show_spinner=False)
def get_producer(bootstrap: str, topic: str) -> JobsProducer:
    return JobsProducer(bootstrap, topic)


@st.cache_data(ttl=60, show_spinner=False)
def get_catalogue(path: str) -> tuple[dict[str, Site], str | None]:
    return load_catalogue(path)


reader = get_reader(repr(CONFIG), CONFIG)
catalogue, catalogue_problem = get_catalogue(CONFIG.sites_path)


def fmt(value: float | int | None, spec: str = ",.0f", suffix: str = "") -> str:
    return DASH if value is None else f"{value:{spec}}{suffix}"


def pipeline_now_ms() -> int:
    """When a job submitted from the page happens: the newest record's time (where the watermark is
    going; the dispatcher's tick is behind it, and a job stamped there would arrive late), else the
    wall clock."""
    with reader.lock:
        now = reader.state.event_time_ms
    return now if now is not None else int(time.time() * 1000)


# ---------------------------------------------------------------------------- job controls
def _set_message(kind: str, text: str) -> None:
    st.session_state["jobs_message"] = (kind, text)


def _send(record: dict) -> bool:
    from kafka.errors import KafkaError

    producer = get_producer(CONFIG.bootstrap, CONFIG.topic("jobs"))
    try:
        partition, offset = producer.send(record)
    except (KafkaError, OSError) as exc:
        _set_message("error", f"Could not write to `{producer.topic}` on Kafka at {CONFIG.bootstrap}: {exc}")
        return False
    _set_message(
        "success", f"{record['action'].capitalize()} of `{record['job_id']}` written to `{producer.topic}` "
        f"(partition {partition}, offset {offset}, submitted_at {record['submitted_at']})."
    )
    return True


def on_submit() -> None:
    s = st.session_state
    deadline = float(s["form_deadline_h"] or 0)
    record, errors = build_submit(
        job_id=s["form_job_id"],
        submitted_at=(s["form_submitted_at"] or "").strip() or pipeline_now_ms(),
        compute_hours=float(s["form_compute_hours"]),
        slots=int(s["form_slots"]),
        priority=int(s["form_priority"]),
        deadline_hours=deadline or None,
        sites=s["form_sites"],
        known_sites=list(catalogue) or None,
    )
    if errors:
        _set_message("error", "Not submitted: " + "; ".join(errors))
        return
    if _send(record):
        s["form_job_id"] = new_job_id()


def on_cancel() -> None:
    s = st.session_state
    job_id = (s.get("cancel_job_typed") or "").strip() or (s.get("cancel_job_pick") or "")
    record, errors = build_cancel(job_id, pipeline_now_ms())
    if errors:
        _set_message("error", "Not cancelled: " + "; ".join(errors))
        return
    _send(record)
    s["cancel_job_typed"] = ""


def sidebar() -> float | None:
    sb = st.sidebar
    sb.header("GeoDispatch")
    live = sb.toggle("Live updates", value=True, key="live", help="Re-read the topics every few seconds.")
    every = sb.select_slider(
        "Refresh every (s)", options=[1.0, 2.0, 3.0, 5.0, 10.0, 30.0], value=_nearest_refresh(CONFIG.refresh_s),
        key="refresh_s",
    )
    sb.caption(f"Kafka `{CONFIG.bootstrap}` · site catalogue `{CONFIG.sites_path}`")
    with sb.expander("Topics read (read_committed)"):
        for kind, topic in CONFIG.topics.items():
            st.markdown(f"- `{topic}` ({kind.replace('_', ' ')})")

    sb.subheader("Submit a job")
    st.session_state.setdefault("form_job_id", new_job_id())
    with sb.form("submit_job", clear_on_submit=False, border=True):
        st.text_input("Job id", key="form_job_id")
        st.number_input("Compute hours (total work)", min_value=0.1, value=4.0, step=0.5, key="form_compute_hours")
        st.number_input("Slots (while it runs)", min_value=1, value=2, step=1, key="form_slots")
        st.slider("Priority (0 most urgent … 9)", min_value=0, max_value=9, value=5, key="form_priority")
        st.number_input(
            "Must start within (hours, 0 = no deadline)", min_value=0.0, value=0.0, step=1.0, key="form_deadline_h"
        )
        st.multiselect(
            "Allowed sites (empty = any)", options=list(catalogue), key="form_sites",
            format_func=lambda s: f"{catalogue[s].name} ({s})" if s in catalogue else s,
        )
        st.text_input(
            "Submitted at (UTC, empty = pipeline time now)", key="form_submitted_at",
            placeholder="e.g. 2018-07-01T10:00:00Z",
            help="The dispatch job works in event time: by default the job is stamped with the newest "
            "tick the page has seen, so a replay of 2018 data treats it as submitted now.",
        )
        st.form_submit_button("Submit job", on_click=on_submit, type="primary")

    sb.subheader("Cancel a job")
    reader.poll(max_records=CONFIG.max_records_per_refresh)  # the sidebar reruns only on a full rerun
    with reader.lock:
        pending_ids = [row["job_id"] for row in reader.state.pending_jobs() + reader.state.unseen_jobs()]
    with sb.form("cancel_job", border=True):
        # No count here: the list is as of the last full rerun, the live queue is on the page.
        st.selectbox("Pending job", options=pending_ids, index=None, key="cancel_job_pick",
                     placeholder="choose a pending job",
                     help="Jobs pending when the page was loaded or a form was last sent; type any other id below.")
        st.text_input("…or type a job id", key="cancel_job_typed")
        st.form_submit_button("Cancel job", on_click=on_cancel)

    message = st.session_state.get("jobs_message")
    if message:
        (sb.success if message[0] == "success" else sb.error)(message[1])
    return every if live else None


def _nearest_refresh(value: float) -> float:
    return min([1.0, 2.0, 3.0, 5.0, 10.0, 30.0], key=lambda o: abs(o - value))


# ---------------------------------------------------------------------------- live view
def kpi_tiles(k: Kpis) -> None:
    row = st.columns(6)
    row[0].metric("Dispatched", fmt(k.dispatched), help="Jobs placed on a site (dispatch topic).")
    row[1].metric(
        "Pending", k.pending_text(),
        help="Jobs the dispatcher has seen and not decided at its latest tick (its pipeline-metrics): "
        "the job queue below. Jobs submitted after its clock are listed apart, as not yet seen.",
    )
    row[2].metric("Missed deadlines", fmt(k.missed_deadline))
    row[3].metric("Cancelled / rejected", f"{k.cancelled} / {k.rejected}")
    row[4].metric("Dead letters", fmt(k.dead_letters), help="Input records the pipeline could not use (dead-letter).")
    row[5].metric(
        "Consumer lag", fmt(k.lag), help="Records written to the topics but not yet shown here: "
        + (", ".join(f"{t}: {n}" for t, n in sorted(k.lag_by_topic.items())) or "none"),
    )
    row = st.columns(6)
    row[0].metric("Cumulative cost", fmt(k.cum_cost, ",.2f"),
                  help="Expected cost of the jobs dispatched (EUR, whole run hour by hour: known offers, "
                       "forecast beyond).")
    row[1].metric("Expected saving vs greedy", fmt(k.expected_saving_vs_greedy_pct, ".1f", " %"),
                  help=f"EXPECTED, not realised: the plan's expected cost ({fmt(k.cum_cost, ',.2f')}) against "
                       f"greedy's for the same jobs priced when each was first seen ({fmt(k.cum_greedy, ',.2f')}), "
                       "with no capacity of greedy's own and no realised prices: it overstates the saving.")
    row[2].metric(
        "Saving vs greedy (realised)", fmt(k.saving_vs_greedy_pct, ".1f", " %"),
        help=f"Like for like: EUR per compute-hour of the plan's finished jobs ({fmt(k.completed_jobs)}, "
             f"{fmt(k.completed_compute_hours, ',.0f')} compute-hours, {fmt(k.completed_realised, ',.2f')} EUR) "
             f"against a greedy run inside the job on the same job events and site ticks with its own "
             f"capacity ({fmt(k.shadow_completed_jobs)} finished, {fmt(k.shadow_completed_compute_hours, ',.0f')} "
             f"compute-hours, {fmt(k.shadow_completed_realised, ',.2f')} EUR), both charged hour by hour at the "
             "offers that held: the figure of docs/BENCHMARKS.md \"Money\" (EUR/ch vs greedy).",
    )
    row[3].metric("Saving vs round-robin", fmt(k.saving_vs_naive_pct, ".1f", " %"))
    row[4].metric(
        "Realised vs expected", fmt(k.realised_vs_expected_pct, "+.1f", " %"),
        help=f"Finished jobs ({fmt(k.completed_jobs)}): cost at the offers that actually held "
             f"({fmt(k.completed_realised, ',.2f')}) against what was expected at dispatch "
             f"({fmt(k.completed_expected, ',.2f')}); the gap is the forecast's error.",
    )
    row[5].metric(
        "Last solve", fmt(k.solve_ms, ",.0f", " ms"),
        help=f"Solver {k.solver or DASH} at tick {k.latest_tick or DASH}; {k.ticks} ticks seen; "
             f"{fmt(k.planned)} jobs planned to start later.",
    )


STATUS_ICON = {
    "dispatched": ":green[:material/check_circle:]",
    "missed-deadline": ":orange[:material/schedule:]",
    "cancelled": ":gray[:material/cancel:]",
    "rejected": ":red[:material/block:]",
}


def decision_line(d: dict) -> str:
    site = d.get("site_id")
    where = f" → {catalogue[site].name if site in catalogue else site}" if site else ""
    cost = f", expected cost {d['expected_cost']:,.4f}" if d.get("expected_cost") is not None else ""
    reason = f" ({d['reason']})" if d.get("reason") else ""
    return (f"{STATUS_ICON.get(d['status'], '')} `{d['job_id']}` **{d['status']}**{where} "
            f"at {d.get('tick') or DASH}{cost}{reason}")


PENDING_ORDER = {
    "priority, then oldest": (["priority", "age_min"], [True, False]),
    "oldest first": (["age_min"], [False]),
    "nearest deadline": (["to_deadline_min"], [True]),
    "largest first": (["compute_hours"], [False]),
}


def queue_and_decisions(k: Kpis, pending: list[dict], unseen: list[dict], decisions: list[dict]) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Job queue: catching up" if k.catching_up else f"Job queue: {k.pending_text()} pending")
        if k.catching_up:
            st.caption("Jobs read so far with no decision read yet: many may be decided in records still to read.")
        order = st.selectbox("Order by", options=list(PENDING_ORDER), key="pending_order")
        df = pd.DataFrame(pending, columns=[
            "job_id", "priority", "plan", "compute_hours", "slots", "submitted_at", "age_min", "deadline",
            "to_deadline_min", "sites",
        ])
        if not df.empty:
            by, ascending = PENDING_ORDER[order]
            df = df.sort_values(by=by, ascending=ascending, na_position="last", kind="stable")
        if len(pending) < k.pending:
            st.caption(f"The oldest {len(pending):,} of {k.pending:,}, as the dispatcher lists them.")
        st.dataframe(
            df, hide_index=True, width="stretch", key="pending_table",
            column_config={
                "job_id": "job",
                "compute_hours": st.column_config.NumberColumn("compute h", format="%.1f"),
                "age_min": st.column_config.NumberColumn("age (min)", format="%.0f"),
                "to_deadline_min": st.column_config.NumberColumn("to deadline (min)", format="%.0f"),
                "submitted_at": "submitted",
            },
        )
        if unseen:
            st.caption(f"Submitted, not yet seen by the dispatcher (after its clock): {len(unseen):,}, the "
                       f"first {', '.join(r['job_id'] for r in unseen[:5])}.")
    with right:
        st.subheader("Latest dispatch decisions")
        status = st.selectbox(
            "Status", options=["all", "dispatched", "missed-deadline", "cancelled", "rejected"], key="decision_status"
        )
        rows = [d for d in decisions if status == "all" or d["status"] == status]
        if rows:
            st.markdown("  \n".join(decision_line(d) for d in rows[:5]))
        st.dataframe(
            pd.DataFrame(rows, columns=[
                "tick", "job_id", "status", "site_id", "expected_cost", "cost_per_compute_hour", "start_at", "end_at",
                "solver", "solve_ms", "reason",
            ]),
            hide_index=True, width="stretch", key="decisions_table",
            column_config={
                "job_id": "job",
                "site_id": "site",
                "expected_cost": st.column_config.NumberColumn("expected cost", format="%.4f"),
                "cost_per_compute_hour": st.column_config.NumberColumn("cost / compute-h", format="%.4f"),
                "solve_ms": st.column_config.NumberColumn("solve ms", format="%.0f"),
            },
        )


def live_view() -> None:
    result = reader.poll(max_records=CONFIG.max_records_per_refresh)
    with reader.lock:  # one snapshot: every number on the page comes from the same read
        state = reader.state
        pending = state.pending_jobs()
        k = state.kpis(reader.lag_by_topic if reader.connected else None, backlog=reader.backlog)
        unseen = state.unseen_jobs()
        backlog_total, records_read = reader.backlog_total, reader.records_read
        hints = state.hints(reader.missing_topics if reader.connected else ())
        empty = state.empty
        now_ms = state.clock_ms
        ahead_ms = state.inputs_ahead_ms()
        costs = state.current_costs(catalogue)
        decisions = state.latest_decisions(limit=100)
        cost_rows = state.cost_series()
        plan = state.plan()
        recent_dead = list(state.recent_dead)
        all_sites = list(dict.fromkeys(list(catalogue) + sorted(state.costs_series)))
    if not result.ok:
        msg = (
            f"Cannot reach Kafka at `{CONFIG.bootstrap}` ({result.error}). Is the broker up? Start it with "
            "`make kafka-up` (or everything with `make demo`). Retrying automatically"
        )
        if empty:
            st.error(msg + ".", icon=":material/power_off:")
            return
        st.warning(msg + "; showing the data read so far.", icon=":material/power_off:")
    ahead = f" · inputs run {ahead_ms / 3_600_000:.1f} h ahead of it (offers published ahead)" if ahead_ms else ""
    st.caption(
        f"Pipeline event time (the dispatcher's tick): **{format_ts(now_ms) if now_ms else DASH}**{ahead} · "
        f"page refreshed {datetime.now(UTC).strftime('%H:%M:%S')} UTC · {records_read} records read"
    )
    if k.catching_up:
        st.info(
            f"Catching up: {k.backlog:,} records behind ({backlog_total - (k.backlog or 0):,} of the "
            f"{backlog_total:,} that were in the topics when the page started read so far). Counts are "
            "partial until then, and the pending count is shown once they are read.",
            icon=":material/hourglass_top:",
        )
    else:
        for hint in hints:  # while catching up, "nothing yet" would only mean "not read yet"
            st.info(hint, icon=":material/info:")
    if catalogue_problem:
        st.warning(f"{catalogue_problem}: the map needs the site coordinates.")

    kpi_tiles(k)
    # The queue right under the tiles: its heading repeats the Pending tile's count, and Streamlit redraws
    # element by element, so nothing slow may be drawn between the two.
    queue_and_decisions(k, pending, unseen, decisions)

    st.subheader("Sites by current cost")
    st.altair_chart(charts.site_map(costs, width=340), width="content")
    st.caption("Colour: cost of one compute-hour now (green cheap, red dear; grey unavailable). "
               "Size: free slots. Hover a site for details.")
    st.subheader("Current cost per site")
    synthetic = [r["name"] for r in costs if r["price_data"] == "synthetic price"]
    if synthetic:
        st.caption(
            f"**Synthetic price** for {', '.join(synthetic)}: no public price data for these nodes ships "
            "with the project, so their price series is generated. The others use real day-ahead prices."
        )
    st.dataframe(
        pd.DataFrame(costs).drop(columns=["lat", "lon"]), hide_index=True, width="stretch",
        key="site_costs_table",
        column_order=[
            "name", "site_id", "cost_per_compute_hour", "price_per_mwh", "currency", "pue", "temp_c", "rel_humidity",
            "available_slots", "capacity_slots", "available", "price_data", "region", "offer_valid_to", "tick",
            "cooling_kw",
        ],
        column_config={
            "site_id": "id",
            "price_data": "price data",
            "price_per_mwh": st.column_config.NumberColumn("price / MWh", format="%.2f"),
            "cost_per_compute_hour": st.column_config.NumberColumn("cost / compute-h", format="%.4f"),
            "pue": st.column_config.NumberColumn("PUE", format="%.3f"),
            "temp_c": st.column_config.NumberColumn("temp °C", format="%.1f"),
            "rel_humidity": st.column_config.NumberColumn("RH %", format="%.0f"),
            "cooling_kw": st.column_config.NumberColumn("cooling kW", format="%.1f"),
            "available_slots": "free slots",
            "capacity_slots": "capacity",
            "offer_valid_to": "offer valid to",
        },
    )

    st.subheader("Site time series")
    c1, c2 = st.columns([3, 1])
    picked = c1.multiselect(
        "Sites", options=all_sites, default=all_sites, key="series_sites",
        format_func=lambda s: f"{catalogue[s].name} ({s})" if s in catalogue else s,
    )
    window_h = c2.selectbox("Window (event time)", options=[6, 24, 72, 168, 0], index=1, key="series_window",
                            format_func=lambda h: "everything kept" if h == 0 else f"last {h} h")
    since = now_ms - window_h * 3_600_000 if (window_h and now_ms) else None
    with reader.lock:
        series = reader.state.site_series(picked, since_ms=since)
    st.altair_chart(charts.site_series_chart(series), width="stretch")

    st.subheader("Cumulative cost: dispatch plan vs baselines")
    st.altair_chart(charts.cost_chart(cost_rows), width="stretch")

    st.subheader("Planned starts ahead" + (f" ({len(plan):,} shown)" if plan else ""))
    if plan and not k.catching_up:
        st.caption("Jobs the latest plan starts later, soonest first, and why they wait: the saving is against "
                   "starting at once at the cheapest site with room; the plan is revised every tick.")
        st.dataframe(
            pd.DataFrame(plan, columns=["start_at", "job_id", "priority", "site_id", "why", "expected_cost",
                                        "greedy_cost", "forecast_share"]),
            hide_index=True, width="stretch", key="plan_table",
            column_config={
                "start_at": "planned start", "job_id": "job", "site_id": "site",
                "expected_cost": st.column_config.NumberColumn("expected cost", format="%.4f"),
                "greedy_cost": st.column_config.NumberColumn("if started now", format="%.4f"),
                "forecast_share": st.column_config.NumberColumn("on forecast", format="percent"),
            },
        )
    else:
        st.caption("No job is waiting for a cheaper hour." if not k.catching_up else "Catching up.")

    with st.expander(f"Dead letters: {k.dead_letters} · offers expired {fmt(k.offers_expired)} · "
                     f"late events {fmt(k.late_events)} · duplicates {fmt(k.duplicates)}"):
        if recent_dead:
            st.dataframe(pd.DataFrame(recent_dead[::-1]), hide_index=True, width="stretch")
        else:
            st.write("No dead letters read.")


# ---------------------------------------------------------------------------- page
st.title("GeoDispatch · live dispatch monitor")
st.markdown(
    "Compute jobs wait in a queue; every **tick** (event time) the dispatch job puts them on the site where a "
    "compute-hour is cheapest right now — the site's electricity price × its cooling overhead (PUE, from the "
    "weather) — as long as it has free slots, and compares its plan with a greedy and a naive baseline. "
    "The page reads the pipeline's output topics and updates itself; use the sidebar to submit or cancel a job."
)
run_every = sidebar()
st.fragment(run_every=run_every)(live_view)()
