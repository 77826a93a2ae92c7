"""End to end: `streamlit run dashboard/app.py` served on a free port against the real broker,
loaded in headless Chromium (Debian's `chromium`, installed by deploy/local/ensure_chromium.sh
when missing), checked for what a person sees, and screenshotted to artifacts/dashboard.png.

The records are scripted by the test (tests/integration/dashboard_records.py), so the page is
tested without the rest of the pipeline; one more decision is written while the page is open
to check that the live fragment picks it up without a reload."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deploy.local.common import free_port, tail
from tests.integration import dashboard_records as R
from tests.integration.headless_chromium import BrowserError, Chromium, ensure_chromium
from udfs import topics as T
from udfs.timeutil import parse_ts_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


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
def serve(kafka_bootstrap: str, topic_prefix: str, sites_file: Path, tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "GRD_TOPIC_PREFIX": topic_prefix,
        "GRD_SITES": str(sites_file),
        "GRD_DASHBOARD_REFRESH_S": "1",
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


def test_page_in_headless_chromium_shows_sites_decisions_and_updates_live(served_page, tmp_path):
    url, bootstrap, prefix, log = served_page
    try:
        chromium = ensure_chromium()
    except BrowserError as exc:
        pytest.fail(str(exc))  # fail loudly: this test must not skip silently in CI
    with Chromium(chromium, tmp_path / "chromium-profile") as browser:
        browser.open(url)
        try:
            text = browser.wait_for_text(
                [*R.SITE_NAMES.values(), "Synthetic price", "j-002", "dispatched", "25.0 %", "Job queue: 2 pending"],
                timeout_s=90,
            )
        except BrowserError as exc:
            browser.screenshot(ARTIFACTS / "dashboard-failed.png")
            pytest.fail(f"{exc}\nstreamlit log:\n{tail(log)}")
        assert "Cannot reach Kafka" not in text and "Traceback" not in text

        # The pipeline writes another decision: the open page shows it without a reload.
        tick = "2018-07-01T10:15:00Z"
        R.produce(bootstrap, prefix, [(T.DISPATCH, "j-005", R.decision("j-005", "dispatched", "trn", tick, 0.9),
                                       parse_ts_ms(tick))])
        text = browser.wait_for_text(["j-005", "Job queue: 1 pending"], timeout_s=45)
        assert "dispatched → Turin" in text

        shot = browser.screenshot(ARTIFACTS / "dashboard.png")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, f"screenshot looks empty: {len(data)} bytes"


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
    with serve(kafka_bootstrap, prefix, sites_file, tmp_path) as (url, log):
        try:
            chromium = ensure_chromium()
        except BrowserError as exc:
            pytest.fail(str(exc))
        with Chromium(chromium, tmp_path / "chromium-profile") as browser:
            browser.open(url)
            try:
                text = browser.wait_for_text(["Amsterdam", "Turin", "Stockholm", latest["job_id"]], timeout_s=120)
            except BrowserError as exc:
                browser.screenshot(ARTIFACTS / "dashboard-pipeline-failed.png")
                pytest.fail(f"{exc}\nstreamlit log:\n{tail(log)}")
            assert "Traceback" not in text and "Cannot reach Kafka" not in text
            browser.screenshot(ARTIFACTS / "dashboard-pipeline.png")
