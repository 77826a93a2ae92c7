"""End to end: `streamlit run dashboard/app.py` served on a free port against the real broker,
loaded in headless Chromium (Debian's `chromium`, installed by deploy/local/ensure_chromium.sh
when missing) driven by Playwright (the PyPI package, launched with ``executable_path``: it
downloads no browser), checked for what a person sees, and screenshotted to
artifacts/dashboard.png.

The records are scripted by the test (tests/integration/dashboard_records.py), so the page is
tested without the rest of the pipeline; one more decision is written while the page is open
to check that the live fragment picks it up without a reload."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deploy.local.common import free_port, tail
from tests.integration import dashboard_records as R
from udfs import topics as T
from udfs.timeutil import parse_ts_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
ENSURE_CHROMIUM = REPO / "deploy" / "local" / "ensure_chromium.sh"
# Playwright adds the usual automation flags (no first run, no sync, no background networking, no
# sandbox as root); these keep Chromium off the closed network and out of /dev/shm.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio"]
WIDTH, HEIGHT = 1600, 1200


def ensure_chromium() -> str:
    """Path of Debian's chromium, installing the package when missing; a failure fails the test
    (it must not skip silently in CI)."""
    result = subprocess.run(["bash", str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        pytest.fail(f"headless Chromium is needed for this test and could not be installed: {reason}")
    return result.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def chromium_page():
    """A Playwright page in Debian's headless Chromium, closed (browser and driver) on exit."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        finally:
            browser.close()


def wait_for_text(page, needles: list[str], timeout_s: float, failed_shot: Path, log: Path) -> str:
    """Wait until the page's visible text holds every needle; -> that text. On a timeout: a
    screenshot, and a failure that shows what the page did say and the server's log."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("needles => needles.every(n => document.body.innerText.includes(n))",
                               arg=needles, timeout=timeout_s * 1000, polling=500)
    except PlaywrightTimeout:
        text = page.inner_text("body")
        screenshot(page, failed_shot)
        pytest.fail(f"page text still lacks {[n for n in needles if n not in text]} after {timeout_s:.0f}s; "
                    f"it reads:\n{text[:3000]}\nstreamlit log:\n{tail(log)}")
    page.wait_for_timeout(1000)  # let the charts finish drawing before a screenshot
    return page.inner_text("body")


def screenshot(page, path: Path) -> Path:
    """The whole page: Streamlit scrolls inside its own container, so the viewport is grown to the
    height of the tallest scrolling element first (at most 8000 px)."""
    height = page.evaluate("Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))")
    page.set_viewport_size({"width": WIDTH, "height": int(min(max(height or HEIGHT, HEIGHT), 8000))})
    page.wait_for_timeout(1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{tail(log)}")
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read().strip() == b"ok":
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not answer on {url} within {timeout_s:.0f}s:\n{tail(log)}")


@pytest.fixture()
def served_page(kafka_bootstrap, topic_prefix, tmp_path):
    """The page served by a real `streamlit run` subprocess over scripted records; yields its URL."""
    R.create_dashboard_topics(kafka_bootstrap, topic_prefix)
    R.produce(kafka_bootstrap, topic_prefix, R.all_records())
    with serve(kafka_bootstrap, topic_prefix, R.write_catalogue(tmp_path), tmp_path) as (url, log):
        yield url, kafka_bootstrap, topic_prefix, log


@contextlib.contextmanager
def serve(kafka_bootstrap: str, topic_prefix: str, sites_file: Path, tmp_path: Path, **settings: str):
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "GRD_TOPIC_PREFIX": topic_prefix,
        "GRD_SITES": str(sites_file),
        "GRD_DASHBOARD_REFRESH_S": "1",
        **settings,
    }
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
                "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            ],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_page_in_headless_chromium_shows_sites_decisions_and_updates_live(served_page):
    url, bootstrap, prefix, log = served_page
    with chromium_page() as page:
        shot = check_live_page(page, url, bootstrap, prefix, log)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, f"screenshot looks empty: {len(data)} bytes"


def check_live_page(page, url: str, bootstrap: str, prefix: str, log: Path) -> Path:
    page.goto(url)
    failed = ARTIFACTS / "dashboard-failed.png"
    text = wait_for_text(
        page, [*R.SITE_NAMES.values(), "Synthetic price", "j-002", "dispatched", "8.3 %", "Job queue: 2 pending"],
        90, failed, log,
    )
    assert "Cannot reach Kafka" not in text and "Traceback" not in text and "Catching up" not in text
    # One clock: the header is the dispatcher's tick, within one tick of the newest decision's
    clock = re.search(r"Pipeline event time \(the dispatcher's tick\): (\S+Z)", text)
    newest_decision = max(parse_ts_ms(d["tick"]) for d in R.DECISIONS)
    assert clock and 0 <= parse_ts_ms(clock.group(1)) - newest_decision <= 5 * 60_000, text[:400]
    # One pending count on the page: the tile says what the queue heading says.
    assert page.get_by_test_id("stMetric").filter(has_text="Pending").get_by_test_id("stMetricValue").inner_text() \
        == R.EXPECTED["pending"]

    # The pipeline writes another decision: the open page shows it without a reload.
    tick = "2018-07-01T10:15:00Z"
    R.produce(bootstrap, prefix, [(T.DISPATCH, "j-005", R.decision("j-005", "dispatched", "trn", tick, 0.9),
                                   parse_ts_ms(tick)),
                                  (T.PIPELINE_METRICS, "metrics", {"tick": tick, "pending_jobs": 1,
                                                                   "queue": [R.QUEUE["j-006"]]}, parse_ts_ms(tick))])
    text = wait_for_text(page, ["j-005", "Job queue: 1 pending"], 45, failed, log)
    assert "dispatched → Turin" in text

    return screenshot(page, ARTIFACTS / "dashboard.png")


PENDING_SHOWN = """() => {
    const tile = Array.from(document.querySelectorAll('[data-testid="stMetric"]'))
        .find(m => m.innerText.trim().startsWith('Pending'));
    const heading = Array.from(document.querySelectorAll('h3')).find(h => h.innerText.startsWith('Job queue'));
    return {
        tile: tile ? tile.querySelector('[data-testid="stMetricValue"]').innerText.trim() : null,
        heading: heading ? heading.innerText.trim() : null,
        catching: document.body.innerText.includes('Catching up:'),
    };
}"""


def test_page_catching_up_says_so_and_never_shows_two_pending_counts(kafka_bootstrap, topic_prefix, tmp_path):
    """Opened on a backlog it reads 5 records a refresh: the browser, sampled every 100 ms while
    the page catches up, never sees the Pending tile and the queue heading with different counts."""
    R.create_dashboard_topics(kafka_bootstrap, topic_prefix)
    R.produce(kafka_bootstrap, topic_prefix, R.all_records())
    with (serve(kafka_bootstrap, topic_prefix, R.write_catalogue(tmp_path), tmp_path,
                GRD_DASHBOARD_MAX_RECORDS="5") as (url, log), chromium_page() as page):
        page.goto(url)
        seen: list[dict] = []
        deadline = time.monotonic() + 90
        while True:
            now = page.evaluate(PENDING_SHOWN)
            seen.append(now)
            heading = re.fullmatch(r"Job queue: ([\d,]+) pending", now["heading"] or "")
            tile = now["tile"] if now["tile"] and now["tile"][0].isdigit() else None
            assert not (tile and heading and tile != heading.group(1)), f"two pending counts at once: {now}"
            if tile == R.EXPECTED["pending"] and heading and not now["catching"]:
                break
            if time.monotonic() > deadline:
                screenshot(page, ARTIFACTS / "dashboard-catching-up-failed.png")
                pytest.fail(f"the page did not catch up in 90s; last seen {now}\nstreamlit log:\n{tail(log)}")
            page.wait_for_timeout(100)
    catching = [s for s in seen if s["catching"]]
    assert catching, f"the page never said it was catching up: {seen[:5]}"
    assert {(s["tile"], s["heading"]) for s in catching if s["tile"] and s["heading"]} <= {
        ("catching up", "Job queue: catching up")}


def test_page_against_the_running_pipeline(kafka_bootstrap, tmp_path):
    """The real chain: scenario inputs -> the dispatch job on Flink -> output topics -> the page."""
    import uuid

    from tests.integration import test_dispatch_job as pipeline
    from tests.kafka_helpers import consume_all

    prefix = f"page{uuid.uuid4().hex[:6]}-"
    pipeline.create_topics(kafka_bootstrap, [prefix + t for t in T.ALL_TOPICS])
    pipeline.deliver(kafka_bootstrap, prefix, pipeline.scenario_events())
    sites_file = REPO / "conf" / "sites.yaml"
    pipeline.run_job(kafka_bootstrap, prefix, str(sites_file), tmp_path)
    decisions = [json.loads(r.value) for r in consume_all(kafka_bootstrap, prefix + T.DISPATCH, timeout_s=20)]
    latest = max((d for d in decisions if d["status"] == "dispatched"), key=lambda d: (d["tick"], d["job_id"]))
    with serve(kafka_bootstrap, prefix, sites_file, tmp_path) as (url, log), chromium_page() as page:
        page.goto(url)
        text = wait_for_text(page, ["Amsterdam", "Turin", "Stockholm", latest["job_id"]], 120,
                             ARTIFACTS / "dashboard-pipeline-failed.png", log)
        assert "Traceback" not in text and "Cannot reach Kafka" not in text
        screenshot(page, ARTIFACTS / "dashboard-pipeline.png")
