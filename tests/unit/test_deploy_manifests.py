"""deploy/: the Kubernetes manifests, the job image, the standalone cluster config and the Grafana
dashboard, checked offline.

Two layers: plain checks of what GeoDispatch needs (topics match udfs/topics.py,
the job's flags exist, the image ships the connector the Maven pom pins, ...), and kubeconform
against pinned schemas (core kinds from the kubernetes-validate wheel, CRDs from deploy/k8s/schemas).
kubeconform is built once from the Go module proxy into .cache/go; if that build fails the test
fails (it does not skip).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from deploy.k8s import validate
from deploy.local.common import REPO, SetupError
from flink_jobs.config import OPERATORS_JAR, JobConfig
from udfs import topics

K8S = REPO / "deploy" / "k8s"
STANDALONE = REPO / "deploy" / "standalone"
GRAFANA = REPO / "deploy" / "grafana" / "geodispatch.json"


def docs_of(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    out = []
    for path in validate.manifest_files():
        out.extend(docs_of(path))
    return out


def by_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


EXPECTED_KINDS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "KafkaNodePool": "kafka.strimzi.io/v1",
    "Kafka": "kafka.strimzi.io/v1",
    "KafkaTopic": "kafka.strimzi.io/v1",
    "FlinkDeployment": "flink.apache.org/v1beta1",
    "Deployment": "apps/v1",
    "Service": "v1",
}


def test_every_manifest_parses_with_kind_api_version_and_name(manifests):
    assert {m["kind"] for m in manifests} == set(EXPECTED_KINDS)
    for m in manifests:
        assert m["apiVersion"] == EXPECTED_KINDS[m["kind"]], m["kind"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", m["metadata"]["name"]), m["metadata"]["name"]
        if m["kind"] != "Namespace":
            assert m["metadata"]["namespace"] == "geodispatch"


def test_kustomization_lists_every_manifest():
    kust = docs_of(K8S / "kustomization.yaml")[0]
    assert sorted(kust["resources"]) == sorted(p.name for p in validate.manifest_files())


def test_a_kafka_topic_per_contract_topic(manifests):
    kafka = by_kind(manifests, "Kafka")[0]
    found = {t["spec"]["topicName"]: t for t in by_kind(manifests, "KafkaTopic")}
    assert set(found) == set(topics.ALL_TOPICS)
    for name, topic in found.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["replicas"] == 3
        assert int(topic["spec"]["config"]["min.insync.replicas"]) == 2
        if name in topics.INPUT_TOPICS:
            # replayed history carries old record timestamps: time-based retention would drop it
            assert int(topic["spec"]["config"]["retention.ms"]) == -1, name
        else:
            assert int(topic["spec"]["config"]["retention.ms"]) > 0, name
    # site-keyed topics have enough partitions for the source parallelism of the FlinkDeployment
    parallelism = by_kind(manifests, "FlinkDeployment")[0]["spec"]["job"]["parallelism"]
    for name in (topics.PRICES, topics.WEATHER, topics.SITE_STATUS, topics.JOBS, topics.SITE_COSTS):
        assert found[name]["spec"]["partitions"] >= parallelism
        assert found[name]["spec"]["partitions"] % parallelism == 0


def test_kafka_is_kraft_with_node_pools_and_allows_the_jobs_transaction_timeout(manifests):
    kafka = by_kind(manifests, "Kafka")[0]
    pools = by_kind(manifests, "KafkaNodePool")
    roles = {role for p in pools for role in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools)
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) % 2 == 1  # a quorum
    config = kafka["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] == 2 and config["default.replication.factor"] == 3
    assert int(config["transaction.max.timeout.ms"]) >= JobConfig().transaction_timeout_ms
    assert kafka["spec"]["kafka"]["version"] == _pom_property("kafka/pom.xml", "kafka.version")
    assert kafka["spec"]["entityOperator"]["topicOperator"] == {}


def _pom_property(pom: str, name: str) -> str:
    text = (REPO / "deploy" / "maven" / pom).read_text()
    m = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", text)
    assert m, f"{name} not in deploy/maven/{pom}"
    return m.group(1)


def _job_flags(args: list[str]) -> dict[str, str]:
    flags = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            flags[arg] = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
    return flags


def test_flink_deployment_runs_the_pyflink_job_with_s3_state_and_ha(manifests):
    fd = by_kind(manifests, "FlinkDeployment")[0]
    spec = fd["spec"]
    assert spec["flinkVersion"] == "v2_2"
    job = spec["job"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["jarURI"].startswith("local:///opt/flink/") and job["jarURI"].endswith("flink-python-2.2.1.jar")
    assert job["args"][:2] == ["-pym", "flink_jobs.dispatch_job"]
    assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
    # every job flag exists in flink_jobs/config.py (argparse would reject the JobManager's start)
    known = {"--" + f.replace("_", "-") for f in JobConfig.__dataclass_fields__}
    flags = _job_flags(job["args"][2:])
    assert set(flags) <= known, set(flags) - known
    assert flags["--parallelism"] == str(job["parallelism"])
    assert flags["--state-dir"].startswith("s3://")
    conf = spec["flinkConfiguration"]
    assert conf["execution.checkpointing.dir"] == flags["--state-dir"]
    assert conf["execution.checkpointing.savepoint-dir"].startswith("s3://")
    assert conf["high-availability.type"] == "kubernetes"
    assert conf["high-availability.storageDir"].startswith("s3://")
    assert "PrometheusReporterFactory" in conf["metrics.reporter.prom.factory.class"]
    assert all(isinstance(v, str) for v in conf.values()), "flinkConfiguration values must be strings"
    container = spec["podTemplate"]["spec"]["containers"][0]
    assert container["name"] == "flink-main-container"  # the operator merges by this name
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "flink-s3-fs-presto" in env["ENABLE_BUILT_IN_PLUGINS"]
    # secrets by reference only
    assert container["envFrom"][0]["secretRef"]["name"] == "geodispatch-s3"
    kafka = by_kind(manifests, "Kafka")[0]["metadata"]["name"]
    assert flags["--bootstrap"] == f"{kafka}-kafka-bootstrap.geodispatch.svc:9092"


def test_dashboard_deployment_and_service_match(manifests):
    deploy = by_kind(manifests, "Deployment")[0]
    service = by_kind(manifests, "Service")[0]
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert "dashboard/app.py" in container["command"] + container.get("args", [])
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["http"] == 8501 and service["spec"]["ports"][0]["targetPort"] == "http"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert (REPO / "dashboard" / "app.py").exists()


def test_no_inline_secrets_anywhere():
    pattern = re.compile(r"(?i)(password|secret[-_]?key|sasl\.jaas\.config|aws_secret_access_key)\s*[:=]\s*\S+")
    for path in [*K8S.glob("*.yaml"), K8S / "Dockerfile", *STANDALONE.rglob("*")]:
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.lstrip().startswith("#"):
                    continue
                assert not pattern.search(line) or "<" in line, f"{path.name}: {line.strip()}"


def test_dockerfile_builds_on_official_flink_with_python_311_and_the_pinned_connector():
    text = (K8S / "Dockerfile").read_text()
    assert re.search(r"^ARG FLINK_IMAGE=flink:2\.2\.1-", text, re.M)
    assert re.search(r"^ARG PYTHON_VERSION=3\.11$", text, re.M)
    assert "-r /opt/geodispatch/requirements.txt" in text
    connector = _pom_property("flink/pom.xml", "kafka.connector.version")
    jar = f"flink-sql-connector-kafka-{connector}.jar"
    assert f"ARG KAFKA_CONNECTOR_JAR={jar}" in text
    assert "/opt/flink/lib/${KAFKA_CONNECTOR_JAR}" in text
    assert "GRD_JAR_DIR=/opt/flink/lib" in text  # flink_jobs.config.connector_jars() looks there
    for package in ("udfs", "flink_jobs", "dashboard", "conf"):
        assert re.search(rf"^COPY {package} /opt/geodispatch/{package}$", text, re.M), package
        assert (REPO / package).is_dir()
    assert "apache-flink==2.2.1" in (REPO / "requirements.txt").read_text()
    ignore = (K8S / "Dockerfile.dockerignore").read_text()
    assert f"!.cache/jars/flink/{jar}" in ignore
    # the job's Java operators (flink_jobs.config.OPERATORS_JAR) ship beside the connector
    assert f"COPY .cache/jars/flink/{OPERATORS_JAR} /opt/flink/lib/{OPERATORS_JAR}" in text
    assert f"!.cache/jars/flink/{OPERATORS_JAR}" in ignore


def test_standalone_config_is_multi_host():
    conf = yaml.safe_load((STANDALONE / "conf" / "config.yaml").read_text())
    flat = _flatten(conf)
    masters = [ln for ln in (STANDALONE / "conf" / "masters").read_text().splitlines() if ln and ln[0] != "#"]
    workers = [ln for ln in (STANDALONE / "conf" / "workers").read_text().splitlines() if ln and ln[0] != "#"]
    assert len(masters) >= 2 and all(re.fullmatch(r"[\w.-]+:\d+", m) for m in masters)
    assert len(workers) >= 2 and len(set(workers)) == len(workers)
    assert flat["high-availability.type"] == "zookeeper"
    assert flat["execution.checkpointing.dir"].startswith("s3://")
    assert flat["rest.bind-address"] == "0.0.0.0" and flat["web.submit.enable"] is False
    assert "PrometheusReporterFactory" in flat["metrics.reporter.prom.factory.class"]
    for key in ("jobmanager.bind-host", "taskmanager.bind-host", "taskmanager.numberOfTaskSlots"):
        assert key in flat, key


def _flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def test_grafana_dashboard_plots_throughput_lag_checkpoints_dead_letters_and_solve_time():
    dash = json.loads(GRAFANA.read_text())
    panels = [p for p in dash["panels"] if p.get("type") != "row"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in ("throughput", "lag", "checkpoint duration", "dead letters", "solve time"):
        assert topic in titles, topic
    exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets", []))
    # our counters, with the names the Prometheus reporter really serves (test_metrics_prometheus.py)
    operators = ((REPO / "flink_jobs" / "operators.py").read_text()
                 + (REPO / "flink_jobs" / "jvm" / "geodispatch" / "SiteTicker.java").read_text())
    for name in set(re.findall(r"flink_taskmanager_job_task_operator_geodispatch_(\w+)", exprs)):
        assert f'"{name}"' in operators, name
    for name in ("geodispatch_dead_letters", "geodispatch_records_parsed", "lastCheckpointDuration",
                 "KafkaSourceReader_KafkaConsumer_records_lag_max", "kafka_consumergroup_lag"):
        assert name in exprs, name
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dash["templating"]["list"]} >= {"datasource", "job_name"}


def test_crd_schemas_are_committed_for_every_custom_kind(manifests):
    for m in manifests:
        group, _, version = m["apiVersion"].rpartition("/")
        if group and "." in group:
            schema = validate.CRD_SCHEMAS / group / f"{m['kind'].lower()}_{version}.json"
            assert schema.exists(), schema
            assert json.loads(schema.read_text())["properties"]["kind"]["enum"] == [m["kind"]]


@pytest.fixture(scope="module")
def kubeconform_ready():
    try:
        return validate.kubeconform_command([])
    except SetupError as exc:
        pytest.fail(f"kubeconform setup failed (not skipped): {exc}")


def test_kubeconform_accepts_every_manifest(kubeconform_ready):
    code, report = validate.run_kubeconform()
    bad = [r for r in report.get("resources", []) if r.get("status") != "statusValid"]
    assert code == 0 and not bad, json.dumps(report)[:3000]
    assert report["summary"]["valid"] == sum(len(docs_of(p)) for p in validate.manifest_files())
    assert report["summary"]["skipped"] == 0


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("flink-deployment.yaml", "upgradeMode: savepoint", "upgradeMode: savepoints"),  # enum
        ("flink-deployment.yaml", "  flinkVersion: v2_2", "  flinkVersoin: v2_2"),  # unknown field
        ("topics.yaml", "  partitions: 12", '  partitions: "12"'),  # type
        ("kafka.yaml", "  roles:", "  rolez:"),  # unknown field in KafkaNodePool
        ("dashboard.yaml", "containerPort: 8501", "containerPortt: 8501"),  # core kind, strict
    ],
)
def test_kubeconform_rejects_broken_manifests(kubeconform_ready, tmp_path, file, old, new):
    text = (K8S / file).read_text()
    assert old in text
    broken = tmp_path / file
    broken.write_text(text.replace(old, new, 1))
    code, report = validate.run_kubeconform([broken])
    assert code != 0
    assert any(r.get("status") == "statusInvalid" for r in report["resources"]), report
