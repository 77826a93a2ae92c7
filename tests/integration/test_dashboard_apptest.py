"""The page (dashboard/app.py) under streamlit.testing.v1.AppTest against the real Kafka broker,
with scripted output records written by the test: the tiles and tables show the right numbers,
refreshes read only what is new, the forms put the right records on `jobs`, and the empty and
no-broker states say what to do instead of raising."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from deploy.local.common import free_port
from tests.integration import dashboard_records as R
from udfs import topics as T
from udfs.timeutil import parse_ts_ms

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture()
def page_env(kafka_bootstrap, topic_prefix, tmp_path, monkeypatch):
    """Fresh prefixed topics on the session broker and the page's environment pointing at them."""
    R.create_dashboard_topics(kafka_bootstrap, topic_prefix)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("GRD_TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("GRD_SITES", str(R.write_catalogue(tmp_path)))
    return kafka_bootstrap, topic_prefix


def run_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def tiles(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# AppTest's Dataframe elements carry no key: each table is told apart by a column only it has.
TABLE_COLUMN = {"site_costs_table": "price_data", "pending_table": "age_min", "decisions_table": "status",
                "plan_table": "why"}


def frame(at: AppTest, key: str):
    return next(df.value for df in at.dataframe if TABLE_COLUMN[key] in df.value.columns)


def caption_text(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_tiles_and_tables_show_the_scripted_numbers_and_refresh_incrementally(page_env):
    bootstrap, prefix = page_env
    R.produce(bootstrap, prefix, R.all_records())
    at = run_page()

    t = tiles(at)
    e = R.EXPECTED
    assert t["Dispatched"] == e["dispatched"]
    assert t["Pending"] == e["pending"]
    assert t["Missed deadlines"] == e["missed"]
    assert t["Cancelled / rejected"] == e["cancelled_rejected"]
    assert t["Dead letters"] == e["dead_letters"]
    assert t["Cumulative cost"] == e["cum_cost"]
    assert t["Expected saving vs greedy"] == e["expected_saving_greedy"]
    assert t["Saving vs greedy (realised)"] == e["saving_greedy"]
    assert t["Saving vs round-robin"] == e["saving_naive"]
    assert t["Realised vs expected"] == e["realised_vs_expected"]
    assert t["Last solve"] == e["last_solve"]
    assert t["Consumer lag"] == "0"
    assert f"{R.RECORD_COUNT} records read" in caption_text(at)
    assert "2018-07-01T10:10:00Z" in caption_text(at)  # pipeline event time = newest tick
    assert not at.error and not at.info  # nothing to start: every topic has data

    sites = frame(at, "site_costs_table").set_index("site_id")
    assert list(sites.index) == ["ams", "trn", "sto", "chi", "tus"]
    assert sites.loc["sto", "name"] == "Stockholm"
    assert sites.loc["sto", "cost_per_compute_hour"] == R.site_cost("sto", 2)["cost_per_compute_hour"]
    assert sites.loc["ams", "price_per_mwh"] == R.PRICE["ams"] + 2  # the latest tick's value
    assert sites.loc["ams", "tick"] == R.TICKS[-1]
    assert list(sites["price_data"]) == ["real market price"] * 3 + ["synthetic price"] * 2
    assert not sites.loc["tus", "available"]
    assert "Synthetic price** for Chicago, Tucson" in caption_text(at)

    pending = frame(at, "pending_table")
    assert list(pending["job_id"]) == ["j-006", "j-005"]  # default order: priority, then oldest
    assert list(pending["priority"]) == [1, 4]
    assert pending.set_index("job_id").loc["j-005", "deadline"] == "2018-07-01T16:00:00Z"
    assert pending.set_index("job_id").loc["j-005", "age_min"] == 8.0  # 10:02 -> 10:10
    # why a job waits: the latest plan's line, in the queue and in the plan table
    assert pending.set_index("job_id").loc["j-006", "plan"] == e["plan_why"]
    assert pending.set_index("job_id").loc["j-005", "plan"] == "not planned yet"
    assert list(frame(at, "plan_table")["why"]) == [e["plan_why"]]

    decisions = frame(at, "decisions_table")
    assert list(decisions["job_id"]) == ["j-004", "j-003", "j-002", "j-001"]  # newest tick first
    assert list(decisions["status"]) == ["cancelled", "missed-deadline", "dispatched", "dispatched"]
    assert decisions.set_index("job_id").loc["j-002", "site_id"] == "ams"
    assert decisions.set_index("job_id").loc["j-002", "expected_cost"] == 0.42
    assert "`j-002` **dispatched** → Amsterdam" in " ".join(m.value for m in at.markdown)

    # The pending table can be re-ordered.
    at.selectbox(key="pending_order").select("oldest first").run()
    assert list(frame(at, "pending_table")["job_id"]) == ["j-005", "j-006"]
    # The site selector narrows the time series without touching the tables.
    at.multiselect(key="series_sites").set_value(["sto"]).run()
    assert not at.exception

    # New records: the next refresh reads only those (the count grows by exactly their number).
    more = [
        (T.DISPATCH, "j-005", R.decision("j-005", "dispatched", "trn", R.TICKS[2], 0.9), parse_ts_ms(R.TICKS[2])),
        (T.DEAD_LETTER, "sto", {**R.DEAD[0], "offset": 813}, parse_ts_ms(R.TICKS[2])),
        # the dispatcher's next tick: its queue without j-005
        (T.PIPELINE_METRICS, "metrics", {"tick": "2018-07-01T10:15:00Z", "pending_jobs": 1,
                                         "queue": [R.QUEUE["j-006"]]}, parse_ts_ms("2018-07-01T10:15:00Z")),
    ]
    R.produce(bootstrap, prefix, more)
    at.run()
    t = tiles(at)
    assert (t["Dispatched"], t["Pending"], t["Dead letters"]) == ("3", "1", "3")
    assert f"{R.RECORD_COUNT + len(more)} records read" in caption_text(at)
    assert list(frame(at, "pending_table")["job_id"]) == ["j-006"]


def test_while_catching_up_the_page_says_so_and_shows_one_pending_count(page_env, monkeypatch):
    """Opened on a backlog it reads a few records per refresh (GRD_DASHBOARD_MAX_RECORDS): until it
    has read what the topics held when it started it says how far behind it is, and neither the
    Pending tile nor the queue heading shows a count; then both show the same one."""
    bootstrap, prefix = page_env
    R.produce(bootstrap, prefix, R.all_records())
    per_refresh = 8
    monkeypatch.setenv("GRD_DASHBOARD_MAX_RECORDS", str(per_refresh))

    def queue_heading(at: AppTest) -> str:
        (heading,) = [h.value for h in at.subheader if h.value.startswith("Job queue")]
        return heading

    at = run_page()
    progress = []
    while any("Catching up" in i.value for i in at.info):
        infos = [i.value for i in at.info]
        (says,) = [re.search(r"Catching up: (\d+) records behind \((\d+) of the (\d+) ", i) for i in infos
                   if "Catching up" in i]
        behind, read, total = map(int, says.groups())
        assert behind + read == total == R.RECORD_COUNT and read % per_refresh == 0, infos
        assert not any("make " in i for i in infos)  # no "start the replay" hints for data not read yet
        assert tiles(at)["Pending"] == "catching up" and queue_heading(at) == "Job queue: catching up"
        progress.append(read)
        assert len(progress) < R.RECORD_COUNT, "no progress"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    assert progress and progress == sorted(set(progress)), progress  # it said so, and moved on each refresh
    assert f"{R.RECORD_COUNT} records read" in caption_text(at)
    assert tiles(at)["Pending"] == R.EXPECTED["pending"] and queue_heading(at) == "Job queue: 2 pending"
    assert tiles(at)["Dispatched"] == R.EXPECTED["dispatched"]


def jobs_on_topic(bootstrap: str, prefix: str, expect: int) -> dict[str, list]:
    records = R.read_all(bootstrap, prefix + T.JOBS, expect)
    out: dict[str, list] = {}
    for rec in records:
        out.setdefault(rec.key.decode(), []).append(rec)
    return out


def test_submit_and_cancel_through_the_forms_write_the_right_records(page_env):
    bootstrap, prefix = page_env
    R.produce(bootstrap, prefix, R.all_records())
    at = run_page()

    # A bad job id is refused with a message and nothing is written.
    at.text_input(key="form_job_id").input("bad id")
    next(b for b in at.button if b.label == "Submit job").click().run()
    assert any("Not submitted" in e.value and "job id" in e.value for e in at.error)

    at.text_input(key="form_job_id").input("ui-test-1")
    at.number_input(key="form_compute_hours").set_value(6.0)
    at.number_input(key="form_slots").set_value(3)
    at.slider(key="form_priority").set_value(1)
    at.number_input(key="form_deadline_h").set_value(2.0)
    at.multiselect(key="form_sites").set_value(["ams", "sto"])
    next(b for b in at.button if b.label == "Submit job").click().run()
    assert not at.exception
    assert any("ui-test-1" in s.value for s in at.success), [e.value for e in at.error]

    n_jobs = len(R.JOBS)
    by_key = jobs_on_topic(bootstrap, prefix, n_jobs + 1)
    (rec,) = by_key["ui-test-1"]
    assert json.loads(rec.value) == {
        "action": "submit", "job_id": "ui-test-1",
        "submitted_at": "2018-07-01T10:10:00Z",  # stamped with the pipeline's event time, not the wall clock
        "compute_hours": 6.0, "slots": 3, "priority": 1,
        "deadline": "2018-07-01T12:10:00Z", "sites": ["ams", "sto"],
    }
    assert rec.timestamp == parse_ts_ms("2018-07-01T10:10:00Z")
    assert sum(len(v) for v in by_key.values()) == n_jobs + 1  # the refused one was not written
    assert at.text_input(key="form_job_id").value != "ui-test-1"  # a fresh id for the next job

    # The page reads its own submission back from `jobs`: not yet seen by the dispatcher (shown
    # apart from its queue, which the Pending tile counts), and cancellable.
    at.run()
    assert "ui-test-1" not in list(frame(at, "pending_table")["job_id"])
    assert "not yet seen by the dispatcher" in caption_text(at) and "ui-test-1" in caption_text(at)
    assert tiles(at)["Pending"] == "2"
    assert "ui-test-1" in at.selectbox(key="cancel_job_pick").options

    at.selectbox(key="cancel_job_pick").select("ui-test-1")
    next(b for b in at.button if b.label == "Cancel job").click().run()
    assert any("Cancel of `ui-test-1`" in s.value for s in at.success), [e.value for e in at.error]
    by_key = jobs_on_topic(bootstrap, prefix, n_jobs + 2)
    cancel = json.loads(by_key["ui-test-1"][-1].value)
    assert cancel == {"action": "cancel", "job_id": "ui-test-1", "submitted_at": "2018-07-01T10:10:00Z"}
    at.run()
    assert "ui-test-1" not in list(frame(at, "pending_table")["job_id"])
    assert tiles(at)["Pending"] == "2"


def test_empty_topics_say_what_to_start(page_env):
    at = run_page()
    hints = " ".join(i.value for i in at.info)
    for command in ("make replay", "make job-local", "make jobs"):
        assert command in hints
    t = tiles(at)
    assert t["Dispatched"] == "0" and t["Pending"] == "0"
    assert t["Cumulative cost"] == "—" and t["Saving vs greedy (realised)"] == "—" and t["Last solve"] == "—"
    assert not at.error


def test_missing_topics_and_no_broker_are_messages_not_tracebacks(kafka_bootstrap, monkeypatch, tmp_path):
    monkeypatch.setenv("GRD_SITES", str(R.write_catalogue(tmp_path)))
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("GRD_TOPIC_PREFIX", f"never-created-{free_port()}-")
    at = run_page()
    assert any("make topics" in i.value for i in at.info)

    monkeypatch.setenv("KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")  # nothing listens there
    at = run_page()
    (error,) = at.error
    assert "Cannot reach Kafka" in error.value and "make kafka-up" in error.value and "Retrying" in error.value
    assert not at.metric  # no tiles with made-up zeros
