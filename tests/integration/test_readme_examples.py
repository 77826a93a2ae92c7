"""The README's examples, run as written: a README example that stops working fails `make test`.

Every line of a ```bash block of README.md is run in order, in a fresh environment pointed at the
test session's broker (``KAFKA_BOOTSTRAP``) with topics of its own (``GRD_TOPIC_PREFIX``), a run
directory of its own (``GRD_RUN_DIR``) and a free S3 port (``S3_PORT``); ``eval "$(make X)"`` is
run as the shell would (its stdout must be ``export`` lines, whose variables the later lines get).
Only two things are added to what the README says: a replay gets a short event-time window
(``--start``/``--end`` appended to ``REPLAY_ARGS``, so the README's own window is narrowed, never
its pacing) and ``make jobs`` gets ``--max``. What each command must have done is checked:
records in Kafka equal to the sample's records of that window, the sample's files in the bucket,
the job submissions on `jobs`, the topics, the page answering. Commands that start the whole
pipeline or a second broker are listed in SKIPPED with the test that covers them; a README
command this file does not know fails (add it here).

Besides the blocks: every `make` target the README names exists in `make help`, and every
``python -m`` module it names answers ``--help``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from deploy.local.common import free_port
from udfs import topics as T
from udfs.timeutil import parse_ts_ms

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SAMPLE = REPO / "data" / "sample"

# A replay's event-time window: short, and with day-ahead offers published before it still in force.
WINDOW = ("2018-07-01T00:00:00Z", "2018-07-01T03:00:00Z")

SKIPPED = {
    "demo": "starts everything in the background on the fixed ports; its pieces are run here one by one",
    "test": "this test runs inside it",
    "kafka-up": "the test session's broker stands in for it (tests/conftest.py starts it the same way)",
    "job-local": "runs in the foreground until stopped; the job is tested by tests/integration/test_dispatch_job.py",
}
# The variables make reads from the environment that a test run must not inherit (a sub-make of
# `make test` would print "Entering directory" into what `eval` runs), and the S3 settings that
# only `eval "$(make s3-up)"` may provide.
SCRUBBED = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "GRD_TOPIC_PREFIX", "KAFKA_BOOTSTRAP",
            "SPEED", "SOURCE", "START", "REPLAY_ARGS", "JOBS_ARGS", "COUNT", "BUCKET", "PREFIX", "S3_PORT")


# ---------------------------------------------------------------------------- reading the README
@dataclass
class Block:
    section: str
    lines: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")


def bash_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    section, current = "top", None
    for line in text.splitlines():
        if current is not None:
            if line.startswith("```"):
                blocks.append(current)
                current = None
            elif line.strip():
                current.lines.append(line.strip())
        elif line.startswith("```bash"):
            current = Block(section)
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
    assert current is None, "unclosed ``` block in README.md"
    return blocks


BLOCKS = bash_blocks(README.read_text())


def make_commands(text: str) -> list[list[str]]:
    """Tokens of every `make ...` the README names, in code spans and blocks (`a && b` split)."""
    spans = re.findall(r"`([^`\n]+)`", text) + [line for b in bash_blocks(text) for line in b.lines]
    out = []
    for span in spans:
        for part in re.split(r"&&|;", span):
            inner = re.search(r"\$\((make\b[^)]*)\)", part)
            command = inner.group(1) if inner else part.strip()
            if re.match(r"make\b", command):
                out.append(shlex.split(command, comments=True))
    return out


@dataclass
class Make:
    goals: list[str]
    variables: dict[str, str]
    evaluated: bool = False  # eval "$(make ...)"

    def argv(self) -> list[str]:
        return ["make", "--no-print-directory", *self.goals, *(f"{k}={v}" for k, v in self.variables.items())]


def parse_line(line: str) -> Make:
    tokens = shlex.split(line, comments=True)
    evaluated = False
    if tokens[:1] == ["eval"] and len(tokens) == 2 and tokens[1].startswith("$(") and tokens[1].endswith(")"):
        tokens, evaluated = shlex.split(tokens[1][2:-1]), True
    if tokens[:1] != ["make"] or any(t in ("&&", "|", ";", "&") for t in tokens):
        pytest.fail(f"README command {line!r}: this test runs `make ...` or `eval \"$(make ...)\"` lines only")
    goals = [t for t in tokens[1:] if "=" not in t]
    variables = dict(t.split("=", 1) for t in tokens[1:] if "=" in t)
    return Make(goals, variables, evaluated)


# ---------------------------------------------------------------------------- the sample (the oracle)
@cache
def sample_records() -> dict[str, list[tuple[str, dict]]]:
    """topic -> [(canonical JSON, record)] of data/sample."""
    out = {}
    for topic in (T.PRICES, T.WEATHER):
        rows = []
        with open(SAMPLE / f"{topic}.jsonl", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    rows.append((json.dumps(record, sort_keys=True), record))
        out[topic] = rows
    return out


def expected_in_window(start: str, end: str) -> dict[str, tuple[set[str], set[str]]]:
    """topic -> (must, may): the records whose event time is in [start, end), and those plus the
    offers published before start that are still in force at it (a replay from --start sends them
    first: they were known at start)."""
    s, e = parse_ts_ms(start), parse_ts_ms(end)
    out = {}
    for topic, rows in sample_records().items():
        must, may = set(), set()
        for canon, r in rows:
            if topic == T.WEATHER:
                at = parse_ts_ms(r["observed_at"])
            else:
                at = parse_ts_ms(r.get("published_at") or r["valid_from"])
            if s <= at < e:
                must.add(canon)
                may.add(canon)
            elif topic == T.PRICES and at < s and r.get("published_at") and parse_ts_ms(r["valid_to"]) > s:
                may.add(canon)
        out[topic] = (must, may)
    return out


# ---------------------------------------------------------------------------- Kafka
def _partitions(consumer, topics: list[str], timeout_s: float = 30.0) -> list:
    """Every partition of ``topics`` and their end offsets, once the client knows their leaders."""
    from kafka import TopicPartition

    deadline = time.monotonic() + timeout_s
    while True:
        found = {t: consumer.partitions_for_topic(t) for t in topics}
        if all(found.values()):
            parts = [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps)]
            try:
                return consumer.end_offsets(parts)
            except AttributeError:  # kafka-python 2.3.0 right after topic creation: see dashboard/data.py
                pass
        assert time.monotonic() < deadline, f"topics {topics} not ready after {timeout_s:.0f}s"
        consumer._client.cluster.request_update()
        time.sleep(0.3)


def end_offsets(bootstrap: str, topics: list[str]) -> dict:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        return _partitions(consumer, topics)
    finally:
        consumer.close()


def read_since(bootstrap: str, since: dict, topics: list[str], timeout_s: float = 60.0) -> dict[str, list]:
    """topic -> [(key, value bytes)] written after the offsets ``since``, up to the end offsets now."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=50_000, fetch_max_bytes=64 << 20)
    try:
        ends = _partitions(consumer, topics)
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, since.get(tp, 0))
        out: dict[str, list] = {t: [] for t in topics}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, "could not read back what was written"
            for tp, records in consumer.poll(timeout_ms=500).items():
                out[tp.topic].extend((r.key.decode() if r.key else "", r.value) for r in records
                                     if r.offset < ends[tp])
        return out
    finally:
        consumer.close()


# ---------------------------------------------------------------------------- running the README
class Runner:
    """Runs README lines one after another in one environment, as a shell session would."""

    def __init__(self, bootstrap: str, prefix: str, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("AWS_")}
        env.update(KAFKA_BOOTSTRAP=bootstrap, GRD_TOPIC_PREFIX=prefix, GRD_RUN_DIR=str(tmp_path / "run"),
                   GRD_STATE_DIR=str(tmp_path / "run" / "checkpoints"), S3_PORT=str(free_port()))
        self.env, self.bootstrap, self.prefix, self.tmp_path = env, bootstrap, prefix, tmp_path
        self.ran: list[str] = []

    def make(self, cmd: Make, timeout_s: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(cmd.argv(), cwd=REPO, env=self.env, capture_output=True, text=True,
                                timeout=timeout_s, stdin=subprocess.DEVNULL)
        shown = shlex.join(cmd.argv())
        assert result.returncode == 0, f"`{shown}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        self.ran.append(shown)
        return result

    def run(self, line: str) -> None:
        cmd = parse_line(line)
        cmd.goals = [g for g in cmd.goals if g not in SKIPPED]
        if not cmd.goals:
            return
        unknown = [g for g in cmd.goals if g not in HANDLERS]
        if unknown:
            pytest.fail(f"README command {line!r}: no check for `make {' '.join(unknown)}` in {__file__}: add one")
        if cmd.evaluated:
            self.evaluate(cmd)
        else:  # `make a b` runs a, then b: here one at a time, each with its own check
            for goal in cmd.goals:
                HANDLERS[goal](self, Make([goal], dict(cmd.variables)))

    def evaluate(self, cmd: Make) -> None:
        out = self.make(cmd).stdout
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert lines and all(ln.startswith("export ") for ln in lines), f"eval would run more than exports: {out!r}"
        for ln in lines:
            for assignment in shlex.split(ln)[1:]:
                name, value = assignment.split("=", 1)
                self.env[name] = value
        if cmd.goals == ["s3-up"]:
            assert self.env.get("AWS_ENDPOINT_URL") == f"http://127.0.0.1:{self.env['S3_PORT']}"
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
                assert self.env.get(name), f"`make s3-up` exports no {name}"

    def stop_leftovers(self) -> None:
        """What a failed run may have left: the S3 server of this environment."""
        subprocess.run([sys.executable, "-m", "deploy.local.s3_server", "down"], cwd=REPO, env=self.env,
                       capture_output=True, timeout=60)


def check_topics(r: Runner, cmd: Make) -> None:
    out = r.make(cmd).stdout
    partitions = int(cmd.variables.get("PARTITIONS", "4"))
    names = [r.prefix + t for t in T.ALL_TOPICS]
    assert f"all of {', '.join(names)} exist" in out, out
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=r.bootstrap)
    try:
        counts = Counter(tp.topic for tp in _partitions(consumer, names))
        assert counts == dict.fromkeys(names, partitions)
    finally:
        consumer.close()


def ensure_topics(r: Runner, names: list[str]) -> None:
    from tests.conftest import create_topics

    create_topics(r.bootstrap, [r.prefix + t for t in names])


def check_replay(r: Runner, cmd: Make) -> None:
    args = shlex.split(cmd.variables.get("REPLAY_ARGS", ""))
    cmd.variables["REPLAY_ARGS"] = shlex.join([*args, "--start", WINDOW[0], "--end", WINDOW[1]])
    topics = [r.prefix + T.PRICES, r.prefix + T.WEATHER]
    ensure_topics(r, [T.PRICES, T.WEATHER])
    before = end_offsets(r.bootstrap, topics)
    started = time.monotonic()
    out = r.make(cmd)
    took = time.monotonic() - started
    got = read_since(r.bootstrap, before, topics)
    expected = expected_in_window(*WINDOW)
    for topic in (T.PRICES, T.WEATHER):
        records = got[r.prefix + topic]
        canon = [json.dumps(json.loads(v), sort_keys=True) for _, v in records]
        must, may = expected[topic]
        assert must, f"the window {WINDOW} holds no {topic}: pick another one"
        assert set(canon) >= must, f"{topic}: {len(must - set(canon))} records of the window missing"
        assert set(canon) <= may, f"{topic}: {len(set(canon) - may)} records from outside the window"
        assert all(k == json.loads(v)["site_id"] for k, v in records), f"{topic}: not keyed by site_id"
        if "--duplicate" not in args:
            assert len(canon) == len(set(canon)), f"{topic}: duplicates without --duplicate"
    total = sum(len(v) for v in got.values())
    if "--duplicate" in args:
        distinct = sum(len({bytes(v) for _, v in vs}) for vs in got.values())
        assert total > distinct, "--duplicate 0.05 sent no duplicate"
    assert f"replayed {total:,} records" in out.stdout, out.stdout
    hours = (parse_ts_ms(WINDOW[1]) - parse_ts_ms(WINDOW[0])) / 3_600_000
    if cmd.variables.get("SPEED") == "max" or "--max" in args:
        assert took < 60, f"a full-speed replay of {hours:.0f} data-hours took {took:.0f}s"
    else:  # paced: an hour of data per second at the default SPEED=3600
        speed = float(cmd.variables.get("SPEED", "3600"))
        assert took >= hours * 3600 / speed * 0.8, f"{hours:.0f} data-hours at {speed:g}x took only {took:.1f}s"


def makefile_default(name: str) -> str:
    found = re.search(rf"^{name}\s*\?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert found, f"Makefile has no default for {name}"
    return found.group(1)


def check_jobs(r: Runner, cmd: Make) -> None:
    cmd.variables["JOBS_ARGS"] = shlex.join([*shlex.split(cmd.variables.get("JOBS_ARGS", "")), "--max"])
    topic = r.prefix + T.JOBS
    ensure_topics(r, [T.JOBS])
    before = end_offsets(r.bootstrap, [topic])
    r.make(cmd)
    records = [(k, json.loads(v)) for k, v in read_since(r.bootstrap, before, [topic])[topic]]
    count = int(cmd.variables.get("COUNT", makefile_default("COUNT")))
    submitted = {v["job_id"] for _, v in records if v["action"] == "submit"}
    assert len(submitted) == count == sum(1 for _, v in records if v["action"] == "submit")
    assert all(k == v["job_id"] for k, v in records), "jobs are keyed by job_id"
    assert {v["job_id"] for _, v in records if v["action"] == "cancel"} <= submitted


def check_upload(r: Runner, cmd: Make) -> None:
    import boto3

    out = r.make(cmd).stdout
    bucket = cmd.variables.get("BUCKET", makefile_default("BUCKET"))
    prefix = cmd.variables.get("PREFIX", makefile_default("PREFIX"))
    assert f"to s3://{bucket}/{prefix}" in out, out
    s3 = boto3.client("s3", endpoint_url=r.env.get("AWS_ENDPOINT_URL"), region_name=r.env.get("AWS_DEFAULT_REGION"),
                      aws_access_key_id=r.env.get("AWS_ACCESS_KEY_ID"),
                      aws_secret_access_key=r.env.get("AWS_SECRET_ACCESS_KEY"))
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])}
    local = {f"{prefix}/{p.name}": p.stat().st_size for p in SAMPLE.iterdir() if p.is_file()}
    assert {k: v for k, v in listed.items() if k in local} == local, (listed, local)


def check_s3_down(r: Runner, cmd: Make) -> None:
    assert "S3Proxy stopped" in r.make(cmd).stdout


def check_s3_env(r: Runner, cmd: Make) -> None:
    assert r.make(cmd).stdout.startswith("export AWS_ENDPOINT_URL=")


def check_dashboard(r: Runner, cmd: Make) -> None:
    cmd.variables.setdefault("DASHBOARD_PORT", str(free_port()))
    url = f"http://127.0.0.1:{cmd.variables['DASHBOARD_PORT']}/_stcore/health"
    log = r.tmp_path / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd.argv(), cwd=REPO, env=r.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"`make dashboard` exited {proc.returncode}:\n{log.read_text()}"
            try:
                if urllib.request.urlopen(url, timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the page did not answer on {url}:\n{log.read_text()}"
            time.sleep(0.5)
        r.ran.append(shlex.join(cmd.argv()))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and streamlit: its own process group
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def check_down(r: Runner, cmd: Make) -> None:
    r.make(cmd)  # nothing of this runner's is running (its GRD_RUN_DIR is its own): stops nothing, fails nothing


def check_reset(r: Runner, cmd: Make) -> None:
    run = Path(r.env["GRD_RUN_DIR"])
    leftovers = [run / "kafka" / "data" / "meta.properties", Path(r.env["GRD_STATE_DIR"]) / "chk-1" / "_metadata",
                 run / "demo" / "dispatch-job.log"]
    for path in leftovers:  # what a demo leaves behind
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    r.make(cmd)
    assert not any(p.exists() for p in leftovers)


HANDLERS = {
    "down": check_down,
    "reset": check_reset,
    "topics": check_topics,
    "replay": check_replay,
    "jobs": check_jobs,
    "upload-sample": check_upload,
    "s3-up": lambda r, cmd: pytest.fail("`make s3-up` is run as eval \"$(make s3-up)\" in the README"),
    "s3-env": check_s3_env,
    "s3-down": check_s3_down,
    "dashboard": check_dashboard,
}


# ---------------------------------------------------------------------------- the tests
@pytest.mark.slow
@pytest.mark.usefixtures("sample_data")
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.id}-{i}" for i, b in enumerate(BLOCKS)])
def test_readme_block_runs_as_written(block: Block, kafka_bootstrap, topic_prefix, tmp_path):
    runner = Runner(kafka_bootstrap, topic_prefix, tmp_path)
    try:
        for line in block.lines:
            runner.run(line)
    finally:
        runner.stop_leftovers()
    print("\n".join(runner.ran))


def test_the_readme_shows_the_s3_path_and_a_full_speed_replay():
    """The blocks the issue asked for are there (and so run by the test above)."""
    lines = [parse_line(ln) for b in BLOCKS for ln in b.lines]
    goals = [(c.goals, c.evaluated, c.variables) for c in lines]
    assert (["s3-up"], True, {}) in goals and (["s3-down"], False, {}) in goals
    assert any(g == ["upload-sample"] for g, _, _ in goals)
    assert any(g == ["replay"] and v.get("SOURCE", "").startswith("s3://") and v.get("SPEED") == "max"
               for g, _, v in goals)
    assert any(g == ["replay"] and "SOURCE" not in v for g, _, v in goals)
    assert any("jobs" in g for g, _, _ in goals) and any("topics" in g for g, _, _ in goals)


def test_every_make_target_the_readme_names_is_in_make_help():
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    listed = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    targets = set(re.findall(r"^\s*(?:\x1b\[[0-9;]*m)?([a-z0-9-]+)", listed.stdout, re.M))
    named = {t for tokens in make_commands(README.read_text()) for t in tokens[1:] if re.fullmatch(r"[a-z0-9-]+", t)}
    assert named, "no make command found in README.md"
    assert not named - targets, f"README names targets that `make help` does not list: {sorted(named - targets)}"


README_MODULES = sorted(set(re.findall(r"python -m ([a-z_][a-z0-9_.]*)", README.read_text())))


@pytest.mark.parametrize("module", README_MODULES)
def test_every_module_the_readme_names_answers_help(module: str):
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout[:300]


def test_make_replay_passes_speed_or_max_never_both():
    """`make replay` with SPEED=max, or with --max in REPLAY_ARGS, must not also pass --speed."""
    def command(*variables: str) -> list[str]:
        out = subprocess.run(["make", "--no-print-directory", "-n", "replay", *variables], cwd=REPO,
                             env={k: v for k, v in os.environ.items() if k not in SCRUBBED}, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return shlex.split(next(ln for ln in out.stdout.splitlines() if "sources.replay" in ln))

    assert command()[-2:] == ["--speed", "3600"]
    assert "--max" in command("SPEED=max") and "--speed" not in command("SPEED=max")
    assert "--speed" not in command("REPLAY_ARGS=--max --start 2018-07-01")
    assert command("SPEED=60", "REPLAY_ARGS=--duplicate 0.05")[-4:] == ["--speed", "60", "--duplicate", "0.05"]
