"""The throughput benchmark's ceiling (bench/ceiling_job.py: site-costs on the JVM alone) writes the
same site-costs records as the dispatch job on the same input, so the benchmark compares like
with like."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from deploy.local.common import REPO
from tests import scenario
from tests.conftest import create_topics
from tests.integration.test_dispatch_job import canonical, deliver, read_outputs, run_job
from udfs import topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_jvm_ceiling_writes_the_jobs_site_costs(kafka_bootstrap, small_sites, tmp_path):
    events = {topics.PRICES: scenario.offers(stop_site="trn", stop_after_h=16), topics.WEATHER: scenario.weather()}
    outputs = {}
    for module in ("flink_jobs.dispatch_job", "bench.ceiling_job"):
        prefix = f"ceil{uuid.uuid4().hex[:6]}-"
        create_topics(kafka_bootstrap, [prefix + t for t in topics.ALL_TOPICS])
        deliver(kafka_bootstrap, prefix, events)
        if module == "flink_jobs.dispatch_job":
            run_job(kafka_bootstrap, prefix, small_sites, tmp_path / "job")
        else:
            proc = subprocess.run(
                [sys.executable, "-m", module, "--bootstrap", kafka_bootstrap, "--topic-prefix", prefix, "--bounded",
                 "--checkpoint-interval-s", "2", "--state-dir", str(tmp_path / "ceiling"), "--sites-file",
                 small_sites, "--restart-attempts", "0"], cwd=REPO, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-4000:]
        outputs[module] = read_outputs(kafka_bootstrap, prefix)[topics.SITE_COSTS]
    job, ceiling = outputs["flink_jobs.dispatch_job"], outputs["bench.ceiling_job"]
    assert len(job) > 100 and any(not r["available"] for r in job)  # trn goes unavailable
    assert canonical(ceiling) == canonical(job)
