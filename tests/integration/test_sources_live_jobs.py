"""Live pollers against a local HTTP server serving fixtures, and the job generator, into the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO, create_topics
from udfs.timeutil import parse_ts_ms

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class FixtureServer:
    """127.0.0.1 HTTP server: each path serves the next of its queued (status, body) answers (the last repeats)."""

    def __init__(self):
        self.routes: dict[str, list[tuple[int, bytes]]] = {}
        self.hits: Counter = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                path = self.path.split("?")[0]
                server.hits[path] += 1
                queue = server.routes.get(path) or [(404, b"no route")]
                status, body = queue.pop(0) if len(queue) > 1 else queue[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def http_fixtures():
    server = FixtureServer()
    yield server
    server.close()


def live(server: FixtureServer, bootstrap: str, prefix: str, *extra: str) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "sources.live",
        "--once",
        "--comed-url",
        f"{server.url}/comed",
        "--open-meteo-url",
        f"{server.url}/v1/forecast",
        "--weather-sites",
        "ams,chi",
        "--backoff",
        "0.05",
        "--retries",
        "2",
        "--timeout",
        "5",
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        prefix,
        *extra,
    ]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_pollers_publish_new_offers_and_observations(http_fixtures, kafka_bootstrap, topic_prefix, read_topics):
    topics = [topic_prefix + "prices", topic_prefix + "weather"]
    create_topics(kafka_bootstrap, topics, 1)
    comed = (FIXTURES / "comed_5minutefeed.json").read_bytes()
    http_fixtures.routes["/comed"] = [(503, b"busy"), (200, comed)]  # one transient failure, retried
    http_fixtures.routes["/v1/forecast"] = [(200, (FIXTURES / "open_meteo_current.json").read_bytes())]
    result = live(http_fixtures, kafka_bootstrap, topic_prefix)
    assert result.returncode == 0, result.stderr
    assert http_fixtures.hits["/comed"] == 2
    got = read_topics(kafka_bootstrap, topics, 3)
    assert Counter((t.removeprefix(topic_prefix), k) for t, k, _, _ in got) == {
        ("prices", "chi"): 1,
        ("weather", "ams"): 1,
        ("weather", "chi"): 1,
    }
    for topic, _, value, ts in got:
        rec = json.loads(value)
        assert ts == parse_ts_ms(rec["valid_from"] if topic.endswith("prices") else rec["observed_at"])
    price = next(json.loads(v) for t, _, v, _ in got if t.endswith("prices"))
    assert price["price_per_mwh"] == 26.0 and price["source"] == "comed-5min"


def test_http_failures_are_reported_not_fatal(http_fixtures, kafka_bootstrap, topic_prefix):
    http_fixtures.routes["/comed"] = [(500, b"down")]
    http_fixtures.routes["/v1/forecast"] = [(200, b"<html>not json</html>")]
    result = live(http_fixtures, kafka_bootstrap, topic_prefix)
    assert result.returncode == 1  # --once and every poll failed
    assert "Traceback" not in result.stderr
    assert "warning: comed poll failed" in result.stderr and "warning: open-meteo poll failed" in result.stderr
    assert http_fixtures.hits["/comed"] == 3  # first try + 2 retries


def test_jobs_into_kafka_keyed_by_job_id_stamped_submitted_at(kafka_bootstrap, topic_prefix, read_topics):
    topic = topic_prefix + "jobs"
    create_topics(kafka_bootstrap, [topic], 4)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sources.jobs",
            "--max",
            "--count",
            "300",
            "--rate",
            "40",
            "--seed",
            "3",
            "--id-prefix",
            "j-",
            "--bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            topic_prefix,
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    from sources.jobs import generate_jobs
    from sources.sites import site_ids

    expected = generate_jobs(3, 300, parse_ts_ms("2018-01-01T00:00:00Z"), 40, site_ids())
    got = read_topics(kafka_bootstrap, [topic], len(expected))
    assert sorted(json.loads(v)["job_id"] + json.loads(v)["action"] for _, _, v, _ in got) == sorted(
        j["job_id"] + j["action"] for j in expected
    )
    for _, key, value, ts in got:
        rec = json.loads(value)
        assert key == rec["job_id"] and ts == parse_ts_ms(rec["submitted_at"])
