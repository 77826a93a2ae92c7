"""Replay into the real broker: every record arrives, keyed by site, stamped with its event time;
faults reconcile with the manifest; Ctrl-C flushes what was sent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from sources.dataset import event_field, fanout_site_ids, load_sample
from sources.sample_data import SAMPLE_DIR
from tests.conftest import REPO, create_topics
from udfs.timeutil import parse_ts_ms

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("sample_data"),
]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_replay_max_window_with_fanout_every_record_arrives(kafka_bootstrap, topic_prefix, read_topics):
    start, end = "2018-07-01T00:00:00Z", "2018-07-04T00:00:00Z"
    topics = [topic_prefix + "prices", topic_prefix + "weather"]
    create_topics(kafka_bootstrap, topics, 4)
    result = run(
        "sources.replay",
        "--max",
        "--start",
        start,
        "--end",
        end,
        "--fanout",
        "3",
        "--bootstrap",
        kafka_bootstrap,
        "--topic-prefix",
        topic_prefix,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    data = load_sample(SAMPLE_DIR, start=start, end=end)
    fan = fanout_site_ids(["ams", "chi", "sto", "trn", "tus"], 3)
    expected = Counter()
    for topic, records in data.items():
        for rec in records:
            expected[(topic_prefix + topic, rec["site_id"])] += 1
            for fid, base in fan.items():
                if base == rec["site_id"]:
                    expected[(topic_prefix + topic, fid)] += 1
    got = read_topics(kafka_bootstrap, topics, sum(expected.values()))
    assert Counter((t, k) for t, k, _, _ in got) == expected
    published_ahead = 0
    for topic, key, value, ts in got:
        rec = json.loads(value)
        assert rec["site_id"] == key
        # a day-ahead offer is stamped with its publication, a real-time one with its valid_from
        assert ts == parse_ts_ms(rec[event_field(topic.removeprefix(topic_prefix), rec)])
        published_ahead += "published_at" in rec and ts < parse_ts_ms(rec["valid_from"])
    # 3 EU sites + 2 fan-out copies (ams-f001, sto-f003): the 22 hours of 1 July (local) still in
    # force at --start (published 30 June), and the local days 2-4 July (published 1-3 July)
    assert published_ahead == 5 * (22 + 3 * 24)
    assert f"replayed {sum(expected.values()):,} records" in result.stdout


def test_faults_reconcile_with_the_manifest(kafka_bootstrap, topic_prefix, read_topics, tmp_path):
    topics = [topic_prefix + "prices", topic_prefix + "weather"]
    create_topics(kafka_bootstrap, topics, 4)
    manifest_path = tmp_path / "faults.json"
    args = [
        "sources.replay",
        "--max",
        "--start",
        "2018-01-10",
        "--end",
        "2018-01-12",
        "--seed",
        "42",
        "--duplicate",
        "0.02",
        "--drop",
        "0.01",
        "--malformed",
        "0.01",
        "--out-of-order",
        "0.05",
        "--late",
        "0.005",
        "--bootstrap",
        kafka_bootstrap,
        "--topic-prefix",
        topic_prefix,
        "--no-progress",
    ]
    result = run(*args, "--manifest", str(manifest_path))
    assert result.returncode == 0, result.stderr
    manifest = json.loads(manifest_path.read_text())
    assert manifest["reconcile"]["ok"]
    sent = manifest["sent"]["by_topic"]
    got = read_topics(kafka_bootstrap, topics, sum(sent.values()))
    by_topic = Counter(t.removeprefix(topic_prefix) for t, _, _, _ in got)
    assert by_topic == Counter(sent)
    malformed = Counter()
    for topic, _, value, _ in got:
        try:
            rec = json.loads(value)
            ok = isinstance(rec, dict) and "_fault" not in rec
        except ValueError:
            ok = False
        malformed[topic.removeprefix(topic_prefix)] += not ok
    assert {t: n for t, n in malformed.items() if n} == manifest["faults"]["malformed"]["by_topic"]
    # determinism: the same flags and seed give the same manifest (dry run, no Kafka)
    again = run(*args, "--dry-run", "--manifest", str(tmp_path / "again.json"))
    assert again.returncode == 0, again.stderr
    m2 = json.loads((tmp_path / "again.json").read_text())
    assert (m2["faults"], m2["sent"], m2["records"]) == (manifest["faults"], manifest["sent"], manifest["records"])


def test_ctrl_c_stops_cleanly_and_flushes(kafka_bootstrap, topic_prefix, read_topics):
    topics = [topic_prefix + "prices", topic_prefix + "weather"]
    create_topics(kafka_bootstrap, topics, 1)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sources.replay",
            "--speed",
            "36000",
            "--start",
            "2018-07-01",
            "--bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            topic_prefix,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # interrupt once records are flowing (a loaded machine can take a while to start Python)
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topics[0], bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=500)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if consumer.poll(timeout_ms=500):
            break
    consumer.close()
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)  # the replay may flush for up to 60 s on a loaded machine
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    sent = int(out.split("interrupted after ")[1].split(" records")[0].replace(",", ""))
    assert sent > 0
    got = read_topics(kafka_bootstrap, topics, sent)
    assert len(got) == sent
