"""Validate the Kubernetes manifests of deploy/k8s offline, with kubeconform and pinned JSON schemas.

    python -m deploy.k8s.validate          # builds kubeconform once, then validates every manifest

Everything is pinned and cached under .cache/ (no network after the first run):
- kubeconform ``KUBECONFORM_VERSION``, built from the Go module proxy with ``go install`` into
  ``.cache/go/bin`` (GOPATH, GOMODCACHE, GOCACHE under ``.cache/go``);
- schemas of the core kinds (Deployment, Service, ...): the ``-local-strict`` set for Kubernetes
  ``K8S_VERSION`` that the ``kubernetes-validate`` wheel on PyPI ships, sha256-checked, extracted to
  ``.cache/k8s-schemas`` (their ``$ref``s rewritten to relative file references);
- schemas of the custom resources (FlinkDeployment, Kafka, KafkaNodePool, KafkaTopic): minimal ones written from
  our manifests by deploy/k8s/schemas/make_schemas.py (see its README.md).

No ``-ignore-missing-schemas``: a kind without a schema fails validation.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from deploy.local.common import CACHE_DIR, REPO, SetupError

KUBECONFORM_VERSION = "v0.7.0"
K8S_VERSION = "1.34.0"
KV_WHEEL = "kubernetes_validate-1.37.0-py3-none-any.whl"
KV_REQ = "kubernetes-validate==1.37.0"
KV_SHA256 = "85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9"

K8S_DIR = REPO / "deploy" / "k8s"
CRD_SCHEMAS = K8S_DIR / "schemas"
GO_DIR = CACHE_DIR / "go"
CORE_SCHEMAS = CACHE_DIR / "k8s-schemas" / f"v{K8S_VERSION}-local-strict"


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest (kustomization.yaml is kustomize's input, not an API object)."""
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def ensure_kubeconform() -> Path:
    binary = GO_DIR / "bin" / "kubeconform"
    stamp = GO_DIR / "bin" / ".kubeconform-version"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == KUBECONFORM_VERSION:
        return binary
    go = shutil.which("go")
    if not go:
        raise SetupError("go not found: install Go 1.22+ (apt-get install golang-go) to build kubeconform")
    env = dict(os.environ)
    env.update(GOBIN=str(GO_DIR / "bin"), GOPATH=str(GO_DIR), GOMODCACHE=str(GO_DIR / "mod"),
               GOCACHE=str(GO_DIR / "build"), GOFLAGS="-mod=mod", CGO_ENABLED="0")
    result = subprocess.run(
        ["nice", "-n", "10", go, "install", f"github.com/yannh/kubeconform/cmd/kubeconform@{KUBECONFORM_VERSION}"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    if result.returncode != 0 or not binary.exists():
        raise SetupError(f"building kubeconform {KUBECONFORM_VERSION} failed: {result.stderr.strip()[-1500:]}")
    stamp.write_text(KUBECONFORM_VERSION + "\n")
    return binary


def ensure_core_schemas() -> Path:
    stamp = CORE_SCHEMAS / ".extracted"
    if stamp.exists():
        return CORE_SCHEMAS
    wheel_dir = CACHE_DIR / "pkgs" / "kubernetes-validate"
    wheel = wheel_dir / KV_WHEEL
    if not wheel.exists():
        wheel_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel_dir), KV_REQ],
            capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0 or not wheel.exists():
            raise SetupError(f"pip download {KV_REQ} failed: {result.stderr.strip()[-800:]}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != KV_SHA256:
        raise SetupError(f"{wheel} has sha256 {digest}, expected {KV_SHA256}: delete it and retry")
    inner = f"kubernetes_validate/kubernetes-json-schema/v{K8S_VERSION}-local-strict/"
    shutil.rmtree(CORE_SCHEMAS, ignore_errors=True)
    CORE_SCHEMAS.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith(inner) and n.endswith(".json")]
        if not names:
            raise SetupError(f"{wheel} has no {inner}")
        for name in names:
            schema = json.load(io.TextIOWrapper(zf.open(name), encoding="utf-8"))
            # The wheel's files point at each other through an https $id; make them plain local files.
            schema.pop("$id", None)
            text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
            (CORE_SCHEMAS / Path(name).name).write_text(text)
    stamp.write_text(f"{KV_REQ} {KV_SHA256}\n")
    return CORE_SCHEMAS


def kubeconform_command(files: list[Path] | None = None) -> list[str]:
    core = ensure_core_schemas()
    return [
        str(ensure_kubeconform()),
        "-strict",
        "-summary",
        "-output", "json",
        "-kubernetes-version", K8S_VERSION,
        "-schema-location", str(core / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
        "-schema-location", str(CRD_SCHEMAS / "{{ .Group }}" / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
        *(str(f) for f in (files if files is not None else manifest_files())),
    ]


def run_kubeconform(files: list[Path] | None = None) -> tuple[int, dict]:
    result = subprocess.run(kubeconform_command(files), capture_output=True, text=True, timeout=120, cwd=REPO)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = {"raw": result.stdout, "stderr": result.stderr}
    return result.returncode, report


def main() -> int:
    try:
        code, report = run_kubeconform()
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for res in report.get("resources", []):
        print(f"{res.get('status')}: {res.get('filename')} {res.get('kind')}/{res.get('name')} {res.get('msg', '')}")
    summary = report.get("summary", report)
    print(f"kubeconform {KUBECONFORM_VERSION}: {json.dumps(summary)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
