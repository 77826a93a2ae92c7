"""Shared fixtures. The Kafka broker starts once per test session, on free ports, in a
temporary directory, and stops afterwards even when tests fail."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deploy.local import kafka_broker  # noqa: E402
from deploy.local.common import free_port  # noqa: E402


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """A real single-node Kafka 4.x (KRaft) for the whole session; yields its bootstrap string.

    Set GRD_TEST_KAFKA=host:port to reuse a broker that is already running.
    """
    external = os.environ.get("GRD_TEST_KAFKA")
    if external:
        yield external
        return
    cfg = kafka_broker.BrokerConfig(
        run_dir=tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port(), heap="768m"
    )
    kafka_broker.start(cfg)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    message = (f"[kafka] Apache Kafka {kafka_broker.kafka_version()} broker (KRaft, broker+controller) "
               f"up on {cfg.bootstrap}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # shown in the run's output, not captured like a print
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(message)
    try:
        yield cfg.bootstrap
    finally:
        kafka_broker.stop(cfg)


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """data/sample, which `make test` builds first (make sample-data). Missing is a failure, not a skip."""
    from sources.sample_data import SAMPLE_DIR

    if not (SAMPLE_DIR / "manifest.json").exists():
        pytest.fail(f"{SAMPLE_DIR} is not built: run `make sample-data` (make test does it first)")
    return SAMPLE_DIR


@pytest.fixture()
def topic_prefix() -> str:
    """A unique prefix so tests sharing the session broker never read each other's records."""
    return f"t{uuid.uuid4().hex[:8]}-"


def create_topics(bootstrap: str, names: list[str], partitions: int = 4) -> None:
    kafka_broker.create_topics(bootstrap, partitions, tuple(names))
