"""User mistakes give one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def corrupt_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt")
    (root / "manifest.json").write_text("{not json")
    (root / "prices.jsonl").write_text("")
    return root


CASES = [
    ("replay-unknown-flag", ["sources.replay", "--bogus"], "unrecognized arguments"),
    ("replay-speed-zero", ["sources.replay", "--speed", "0"], "must be > 0"),
    ("replay-bad-start", ["sources.replay", "--start", "July"], "--start"),
    ("replay-end-before-start", ["sources.replay", "--start", "2018-07-02", "--end", "2018-07-01"], "is not after"),
    ("replay-missing-folder", ["sources.replay", "--source", "/nonexistent/sample", "--max"], "no such folder"),
    ("replay-bad-probability", ["sources.replay", "--drop", "2"], "not a probability"),
    ("replay-unknown-topic", ["sources.replay", "--topics", "bananas", "--dry-run"], "unknown topic"),
    ("replay-bad-s3-url", ["sources.replay", "--source", "s3:///x", "--dry-run"], "no bucket name"),
    ("jobs-negative-count", ["sources.jobs", "--count", "-3"], "must be >= 0"),
    ("jobs-unwritable-out", ["sources.jobs", "--count", "1", "--out", "/nonexistent/dir/jobs.jsonl"], "/nonexistent"),
    ("live-bad-interval", ["sources.live", "--interval", "soon"], "not a number"),
    ("live-unknown-site", ["sources.live", "--once", "--no-comed", "--weather-sites", "atlantis"], "atlantis"),
    ("upload-missing-folder", ["sources.upload", "--bucket", "b-1", "--source", "/nonexistent"], "not a folder"),
    ("upload-no-bucket", ["sources.upload"], "--bucket"),
]


@pytest.mark.parametrize(("name", "args", "needle"), CASES, ids=[c[0] for c in CASES])
def test_one_clear_line_exit_2(name, args, needle):
    result = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0] and needle in lines[0]
    assert "Traceback" not in result.stderr


def test_corrupt_manifest(corrupt_sample):
    result = subprocess.run(
        [sys.executable, "-m", "sources.replay", "--source", str(corrupt_sample), "--max", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "manifest.json: not valid JSON" in result.stderr


def test_broker_down_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "sources.jobs", "--count", "1", "--max", "--bootstrap", "127.0.0.1:9"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cannot connect to Kafka at 127.0.0.1:9" in result.stderr
