"""`make demo` as a user runs it, the page watched in headless Chromium during its first minutes,
then README "Step by step" right after `make down` (issue 27).

Everything runs as the README says, on ports and directories of its own: the demo's own Kafka
broker (KAFKA_PORT), run directory (GRD_RUN_DIR), job state (GRD_STATE_DIR) and page
(DASHBOARD_PORT); topics without prefix, as a user has them. The test reads the same topics
itself (read_committed) and holds the page to them:

- the saving tile is the realised like-for-like figure of the `pipeline-metrics` record at the
  page's clock (plan vs the shadow greedy, EUR per compute-hour over each one's finished jobs);
- the header's clock is a dispatcher tick, and the newest decision's tick is within one tick of
  it or every tick after that decision decided nothing (its metrics count no decision);
- the Pending tile equals the queue heading's count at every sample (a view caught between two
  elements of one redraw counts only if it is still on screen 0.1 s later).

Then "Step by step" (its ```bash block, the long-running lines each in a process of their own
as in a terminal of their own) on the demo's leftovers: no `decision_id` twice, no "already
submitted" dead letter, output up to the end of the replayed span, and Ctrl-C stops the job.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from deploy.local.common import free_port, tail
from tests.integration.test_dashboard_browser import ARTIFACTS, chromium_page, screenshot
from tests.integration.test_readme_examples import README, SCRUBBED, bash_blocks, parse_line
from udfs import topics as T
from udfs.timeutil import parse_ts_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TICK_MS = 5 * 60_000
SAMPLE_S = 75  # how long the page is watched once the like-for-like figure exists
STEP_END = "2018-01-02T00:00:00Z"  # step by step replays (and submits jobs) from START to here

# What the page shows, read in one go: the header's clock, every tile by its label, the queue heading.
PAGE_STATE = """() => {
    const tiles = {};
    for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
        const label = m.querySelector('[data-testid="stMetricLabel"]');
        const value = m.querySelector('[data-testid="stMetricValue"]');
        if (label && value) tiles[label.innerText.trim()] = value.innerText.trim();
    }
    const heading = Array.from(document.querySelectorAll('h3')).find(h => h.innerText.startsWith('Job queue'));
    const clock = document.body.innerText.match(/Pipeline event time \\(the dispatcher's tick\\): (\\S+Z)/);
    return {clock: clock ? clock[1] : null, tiles: tiles, heading: heading ? heading.innerText.trim() : null,
            catching: document.body.innerText.includes('Catching up:')};
}"""


class Topic:
    """One topic read from the start, committed records only, caught up on demand."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                      enable_auto_commit=False, isolation_level="read_committed",
                                      fetch_max_bytes=64 << 20)
        self.records: list[dict] = []

    def catch_up(self, quiet_ms: int = 1500) -> list[dict]:
        while batch := self.consumer.poll(timeout_ms=quiet_ms, max_records=100_000):
            self.records.extend(json.loads(r.value) for rs in batch.values() for r in rs)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def demo_env(tmp_path: Path) -> dict[str, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("AWS_")}
    env.update(GRD_RUN_DIR=str(tmp_path / "run"), GRD_STATE_DIR=f"file://{tmp_path / 'state'}",
               KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(free_port()), KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
               DASHBOARD_PORT=str(free_port()))
    return env


def make(env: dict[str, str], *args: str, timeout_s: float = 900) -> str:
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    shown = f"make {' '.join(args)}"
    assert result.returncode == 0, f"{shown} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def like_for_like(records: list[dict]) -> float | None:
    """The realised saving over the shards' records of one tick: 1 - plan EUR/ch / shadow greedy EUR/ch."""
    plan = sum(r["completed_realised_cost"] for r in records)
    plan_ch = sum(r["completed_compute_hours"] for r in records)
    greedy = sum(r["shadow_completed_realised_cost"] for r in records)
    greedy_ch = sum(r["shadow_completed_compute_hours"] for r in records)
    if not (plan and plan_ch and greedy and greedy_ch):
        return None
    return (1 - (plan / plan_ch) / (greedy / greedy_ch)) * 100


def decided(r: dict) -> int:
    return r["dispatched"] + r["missed_deadline"] + r["cancelled"] + r["rejected"]


def check_sample(seen: dict, metrics: list[dict], decisions: list[dict]) -> None:
    """One stable view of the page against the topics as the test reads them now."""
    clock = parse_ts_ms(seen["clock"])
    at_clock = [r for r in metrics if parse_ts_ms(r["tick"]) == clock]
    assert at_clock, f"the page's clock {seen['clock']} is no dispatcher tick in pipeline-metrics"
    expected = like_for_like(at_clock)
    shown = seen["tiles"].get("Saving vs greedy (realised)")
    assert shown == ("—" if expected is None else f"{expected:.1f} %"), \
        f"saving tile {shown!r}; pipeline-metrics at {seen['clock']} give {expected}"
    newest = max((parse_ts_ms(d["tick"]) for d in decisions if parse_ts_ms(d["tick"]) <= clock), default=None)
    assert newest is not None, f"no decision at or before the page's clock {seen['clock']}"
    quiet = [r for r in metrics if newest < parse_ts_ms(r["tick"]) <= clock]
    assert clock - newest <= TICK_MS or not any(decided(r) for r in quiet), \
        f"the page's clock {seen['clock']} runs ahead of the newest decision at {newest} past ticks that decided"


def two_pending_counts(seen: dict) -> bool:
    pending = re.fullmatch(r"Job queue: ([\d,]+) pending", seen["heading"] or "")
    tile = seen["tiles"].get("Pending")
    return bool(pending and tile and not seen["catching"] and tile != pending.group(1))


def watch_demo_page(env: dict[str, str]) -> int:
    """Samples the demo's page every ~0.25 s for SAMPLE_S seconds once the saving exists; -> samples checked."""
    bootstrap, url = env["KAFKA_BOOTSTRAP"], f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    metrics, decisions = Topic(bootstrap, T.PIPELINE_METRICS), Topic(bootstrap, T.DISPATCH)
    checked, log = 0, Path(env["GRD_RUN_DIR"]) / "demo" / "dashboard.log"
    try:
        deadline = time.monotonic() + 300
        while not any(like_for_like([r]) is not None for r in metrics.catch_up()):
            assert time.monotonic() < deadline, f"no like-for-like figure in 300 s:\n{tail(log)}"
            time.sleep(2)
        with chromium_page() as page:
            page.goto(url)
            stop, previous = time.monotonic() + SAMPLE_S, None
            while time.monotonic() < stop:
                seen = page.evaluate(PAGE_STATE)
                if two_pending_counts(seen):  # caught between two elements of one redraw, or shown?
                    page.wait_for_timeout(100)
                    again = page.evaluate(PAGE_STATE)
                    assert not two_pending_counts(again), f"two pending counts at once: {seen}, then {again}"
                # Streamlit redraws element by element: compare with the topics only a view that held still.
                if seen == previous and seen["clock"] and not seen["catching"]:
                    check_sample(seen, metrics.catch_up(quiet_ms=500), decisions.catch_up(quiet_ms=500))
                    checked += 1
                previous = seen
                page.wait_for_timeout(250)
            screenshot(page, ARTIFACTS / "dashboard-demo.png")
    finally:
        metrics.close()
        decisions.close()
    return checked


def step_by_step(env: dict[str, str], tmp_path: Path) -> None:
    """README "Step by step", line by line; the long-running lines in processes of their own."""
    block = next(b for b in bash_blocks(README.read_text()) if any("make job-local" in ln for ln in b.lines))
    window = {"replay": f"REPLAY_ARGS=--end {STEP_END}", "jobs": f"JOBS_ARGS=--end {STEP_END}"}
    job, feeds = None, []
    for line in block.lines:
        cmd = parse_line(line)
        for goal in cmd.goals:
            args = [goal, *(f"{k}={v}" for k, v in cmd.variables.items())]
            if goal == "job-local":
                log = open(tmp_path / "job-local.log", "w")
                job = subprocess.Popen(["make", "--no-print-directory", *args], cwd=REPO, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            elif goal in window:  # paced, side by side as in two terminals; narrowed to one day
                feeds.append(subprocess.Popen(["make", "--no-print-directory", *args, window[goal]], cwd=REPO,
                                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            elif goal == "dashboard":
                continue  # the page is checked on the demo above and in test_readme_examples
            else:
                make(env, *args)
    assert job is not None and len(feeds) == 2, f"Step by step no longer starts job, replay and jobs: {block.lines}"
    try:
        for feed in feeds:
            assert feed.wait(timeout=300) == 0, feed.stderr.read()
        check_clean_run(env["KAFKA_BOOTSTRAP"], tmp_path)
    finally:
        os.killpg(job.pid, signal.SIGINT)  # Ctrl-C in the job's terminal
        try:
            job.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            pytest.fail(f"make job-local did not stop within 15 s of Ctrl-C:\n{tail(tmp_path / 'job-local.log')}")


def check_clean_run(bootstrap: str, tmp_path: Path) -> None:
    metrics = Topic(bootstrap, T.PIPELINE_METRICS)
    end, deadline = parse_ts_ms(STEP_END), time.monotonic() + 300
    try:
        while max((parse_ts_ms(r["tick"]) for r in metrics.catch_up()), default=0) < end - 3 * TICK_MS:
            assert time.monotonic() < deadline, \
                f"the job's output stalls before {STEP_END}:\n{tail(tmp_path / 'job-local.log')}"
            time.sleep(2)
    finally:
        metrics.close()
    outputs = {name: Topic(bootstrap, name) for name in (T.DISPATCH, T.DEAD_LETTER)}
    try:
        decisions, dead = (outputs[T.DISPATCH].catch_up(), outputs[T.DEAD_LETTER].catch_up())
    finally:
        for topic in outputs.values():
            topic.close()
    assert decisions and min(d["tick"] for d in decisions) >= "2018-01-01", "the demo's July decisions were read again"
    twice = [i for i, n in Counter(d["decision_id"] for d in decisions).items() if n > 1]
    assert not twice, f"{len(twice)} decision ids written twice, e.g. {twice[:3]}"
    assert not [d for d in dead if "already submitted" in d.get("reason", "")], dead[:3]


def test_demo_page_then_step_by_step_after_down(tmp_path):
    env = demo_env(tmp_path)
    try:
        make(env, "demo")
        try:
            checked = watch_demo_page(env)
        finally:
            make(env, "down")
        assert checked >= 10, f"only {checked} stable views of the page in {SAMPLE_S} s"
        print(f"{checked} stable views of the demo's page matched the topics")
        step_by_step(env, tmp_path)
    finally:
        make(env, "down")  # the broker `make kafka-up` started, whatever failed
