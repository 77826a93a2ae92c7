"""Configuration and launcher logic, without Kafka or Flink running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from deploy.local import kafka_broker
from deploy.local.common import REPO, SetupError, check_port_free
from flink_jobs.config import JobConfig, load_config
from flink_jobs.runtime import watermark_interval


def test_flags_override_env_override_defaults(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "10.0.0.1:9092")
    monkeypatch.setenv("GRD_TICK_MINUTES", "15")
    cfg = load_config(["--tick-minutes", "10", "--bounded"])
    assert cfg.bootstrap == "10.0.0.1:9092"
    assert cfg.tick_minutes == 10
    assert cfg.bounded is True
    assert JobConfig().tick_minutes == 5


def test_bad_env_value_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("GRD_TICK_MINUTES", "five")
    with pytest.raises(SystemExit) as exc:
        load_config([])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "GRD_TICK_MINUTES" in err[-1]


def test_wrong_flag_gives_one_line_not_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "flink_jobs.passthrough", "--no-such-flag"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unrecognized arguments: --no-such-flag" in proc.stderr


def test_invalid_values_rejected(capsys):
    with pytest.raises(SystemExit):
        load_config(["--parallelism", "0"])
    assert "--parallelism must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(("seconds", "literal"), [
    (300, "INTERVAL '0 00:05:00.000' DAY TO SECOND(3)"),
    (0.25, "INTERVAL '0 00:00:00.250' DAY TO SECOND(3)"),
    (90061.5, "INTERVAL '1 01:01:01.500' DAY TO SECOND(3)"),
])
def test_watermark_interval_literal(seconds, literal):
    assert watermark_interval(seconds) == literal


def test_broker_properties_make_transactions_work_on_one_node(tmp_path):
    props = kafka_broker.server_properties(kafka_broker.BrokerConfig(run_dir=tmp_path, port=19092,
                                                                     controller_port=19093))
    lines = dict(line.split("=", 1) for line in props.splitlines() if line)
    assert lines["process.roles"] == "broker,controller"
    assert lines["transaction.state.log.replication.factor"] == "1"
    assert lines["transaction.state.log.min.isr"] == "1"
    assert int(lines["transaction.max.timeout.ms"]) >= JobConfig().transaction_timeout_ms
    assert "127.0.0.1:19092" in lines["listeners"] and "0.0.0.0" not in props


def test_port_in_use_names_port_and_variable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(SetupError, match=rf"port {port} .*KAFKA_PORT"):
            check_port_free(port, "KAFKA_PORT")


def test_kafka_up_on_busy_port_is_one_line(tmp_path):
    env = {**os.environ, "GRD_RUN_DIR": str(tmp_path)}  # not the developer's own .run/
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "deploy.local.kafka_broker", "up", "--port", str(port)],
                              cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: port") and "Traceback" not in proc.stderr


def test_kafka_properties_file_reaches_every_source_and_sink(tmp_path):
    from flink_jobs.runtime import kafka_sink_options, kafka_source_options, with_clause

    props = tmp_path / "client.properties"
    props.write_text("# SASL to an external cluster\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                     "username='gd' password='secret';\n")
    cfg = load_config(["--kafka-properties-file", str(props)])
    for options in (kafka_source_options(cfg, "prices", "t"), kafka_sink_options(cfg, "dispatch", "dispatch")):
        assert options["properties.security.protocol"] == "SASL_SSL"
        assert options["properties.sasl.mechanism"] == "SCRAM-SHA-512"
    clause = with_clause(kafka_source_options(cfg, "prices", "t"))
    assert "username=''gd'' password=''secret'';" in clause  # quotes escaped inside the SQL literal
    # the connector jar shades the Kafka client, so the login module is named in its shaded package
    assert kafka_source_options(cfg, "prices", "t")["properties.sasl.jaas.config"].startswith(
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule required")


def test_kafka_properties_file_may_not_override_what_the_job_sets(tmp_path, capsys):
    props = tmp_path / "client.properties"
    props.write_text("isolation.level=read_uncommitted\n")
    with pytest.raises(SystemExit):
        load_config(["--kafka-properties-file", str(props)])
    assert "isolation.level is set by the job" in capsys.readouterr().err
