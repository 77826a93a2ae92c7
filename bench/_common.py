"""Helpers shared by the benchmarks: the machine line, docs/BENCHMARKS.md sections, a private broker."""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "BENCHMARKS.md"
SAMPLE = REPO / "data" / "sample"
PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line: nproc, CPU model, Python, date."""
    return (f"{os.cpu_count()} CPUs (nproc), {cpu_model()}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}; measured {time.strftime('%Y-%m-%d %H:%M %Z')}")


def write_section(title: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the ``## title`` section of docs/BENCHMARKS.md, leaving the others alone."""
    section = f"## {title}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{section}\n\n{body.rstrip()}\n\n"
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    doc.write_text(text.rstrip() + "\n")


def private_broker(heap: str = "1g"):
    """(bootstrap, stop function) of a fresh single-node Kafka on free ports in a temp dir."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from deploy.local import kafka_broker
    from deploy.local.common import free_port

    cfg = kafka_broker.BrokerConfig(
        run_dir=Path(tempfile.mkdtemp(prefix="bench-kafka-")), port=free_port(), controller_port=free_port(), heap=heap
    )
    kafka_broker.start(cfg)
    return cfg.bootstrap, lambda: kafka_broker.stop(cfg)


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "|".join("---:" if i else "---" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", "|" + align + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def job_code_dir(spec: str = "worktree") -> Path:
    """Where the Flink job under test is run from. ``worktree``: this checkout as it is. Any git ref
    (e.g. ``HEAD``): that commit's tree extracted into a temp dir (``git archive``; nothing in the
    repository is touched), with the working tree's flink_jobs/runtime.py copied over it (the
    thread-mode python.pythonpath fix), so a benchmark can measure a committed state while the
    checkout is being edited. The jars stay in this checkout's .cache (pass GRD_JAR_DIR)."""
    import subprocess

    if spec == "worktree":
        return REPO
    dest = Path(tempfile.mkdtemp(prefix="bench-code-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", spec],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "flink_jobs" / "runtime.py").write_text((REPO / "flink_jobs" / "runtime.py").read_text())
    return dest


def job_env() -> dict[str, str]:
    """Environment of a job subprocess: the checkout's connector jars whatever the code dir."""
    return {**os.environ, "GRD_JAR_DIR": str(REPO / ".cache" / "jars" / "flink")}


def code_label(spec: str) -> str:
    """``worktree`` (with a note when it has uncommitted job changes) or ``<ref> = <short sha>``."""
    import subprocess

    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD" if spec == "worktree" else spec],
                         capture_output=True, text=True).stdout.strip()
    if spec != "worktree":
        return f"commit {sha} (`{spec}`) + the working tree's flink_jobs/runtime.py (thread-mode python path)"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "flink_jobs", "udfs"],
                           capture_output=True, text=True).stdout.strip()
    return f"working tree on {sha}" + (" (with uncommitted changes in flink_jobs/ or udfs/)" if dirty else "")


def sample_records(copies: int, start_ms: int, end_ms: int, jobs: list[dict],
                   rename: bool = True) -> list[tuple[int, str, bytes, bytes]]:
    """(event time ms, topic, key, value) of the sample's weather with event time in [start, end)
    and its prices *valid from* then (a day-ahead offer is published the day before: its event time
    is earlier, and without it the European sites would have no offer in the span), each site as
    ``copies`` renamed copies (``ams-t000``, ``ams-t001``, ...; one copy
    under its own id when not ``rename``), and the jobs, in event-time order (stable: a site's
    records keep the order of the file)."""
    import json

    from sources.dataset import parse_line
    from udfs.timeutil import parse_ts_ms

    out: list[tuple[int, str, bytes, bytes]] = []
    for topic in ("prices", "weather"):
        for i, line in enumerate((SAMPLE / f"{topic}.jsonl").read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            ev = parse_line(topic, line, f"{topic}.jsonl:{i}")
            at = parse_ts_ms(json.loads(ev.value)["valid_from"]) if topic == "prices" else ev.ts
            if not start_ms <= at < end_ms:
                continue
            if not rename:
                out.append((ev.ts, topic, ev.key.encode(), ev.value))
                continue
            for k in range(copies):
                new_id = f"{ev.key}-t{k:03d}"
                value = ev.value.replace(f'"site_id":"{ev.key}"'.encode(), f'"site_id":"{new_id}"'.encode(), 1)
                out.append((ev.ts, topic, new_id.encode(), value))
    for job in jobs:
        out.append((parse_ts_ms(job["submitted_at"]), "jobs", job["job_id"].encode(),
                    json.dumps(job, separators=(",", ":")).encode()))
    out.sort(key=lambda r: r[0])
    return out


def read_committed_records(bootstrap: str, topic: str, idle_polls: int = 3) -> list[tuple[int, bytes]]:
    """(record timestamp ms, value) of every committed record of a topic (read_committed, until
    ``idle_polls`` empty polls find every partition at its end)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:6]}",
                  "isolation.level": "read_committed", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out: list[tuple[int, bytes]] = []
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in md.partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        c.assign(parts)
        idle = 0
        while idle < idle_polls:
            msgs = c.consume(20_000, 1.0)
            if not msgs:
                pos = c.position(parts)
                if all(tp.offset < 0 or tp.offset >= ends[tp.partition] - 1 for tp in pos):
                    idle += 1
                continue
            idle = 0
            out.extend((m.timestamp()[1], m.value()) for m in msgs if m.error() is None)
        return out
    finally:
        c.close()
