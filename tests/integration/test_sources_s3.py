"""The S3 path for real: S3Proxy on 127.0.0.1, `make upload-sample`, replay s3://... into Kafka,
every record arrives (counted by topic and key)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter

import pytest

from sources.sample_data import SAMPLE_DIR
from tests.conftest import REPO, create_topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("sample_data"),
]


def test_upload_sample_then_replay_from_s3(s3_endpoint, kafka_bootstrap, topic_prefix, read_topics):
    env = {**os.environ, **s3_endpoint}
    bucket, prefix = f"gd-{uuid.uuid4().hex[:8]}", "runs/sample"
    up = subprocess.run(
        ["make", "--no-print-directory", "upload-sample", f"BUCKET={bucket}", f"PREFIX={prefix}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"to s3://{bucket}/{prefix}" in up.stdout

    topics = [topic_prefix + "prices", topic_prefix + "weather"]
    create_topics(kafka_bootstrap, topics, 4)
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "sources.replay",
            "--source",
            f"s3://{bucket}/{prefix}",
            "--max",
            "--no-progress",
            "--bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            topic_prefix,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stderr
    manifest = json.loads((SAMPLE_DIR / "manifest.json").read_text())
    expected = Counter(
        {(topic_prefix + t, site): n for t, info in manifest["topics"].items() for site, n in info["by_site"].items()}
    )
    got = read_topics(kafka_bootstrap, topics, sum(expected.values()), timeout_s=150)
    assert Counter((t, k) for t, k, _, _ in got) == expected


def test_missing_prefix_is_one_clear_line(s3_endpoint):
    env = {**os.environ, **s3_endpoint}
    result = subprocess.run(
        [sys.executable, "-m", "sources.replay", "--source", "s3://no-such-bucket-x/p", "--max"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: s3://no-such-bucket-x/p")
