"""Write minimal JSON schemas for our custom resources, from OUR manifests (not upstream CRDs).

No package registry ships the Flink operator's or Strimzi's CRDs for the versions we target, and
upstream files must not be copied into this repository. So the schemas here are inferred from the
custom resources in deploy/k8s: every field we use, with its type, nested objects closed
(``additionalProperties: false``) except free-form maps, plus the enums we know. They catch typos,
wrong types and bad enum values in our manifests; they do not prove upstream validity (a real
cluster's API server does that on apply).

    python -m deploy.k8s.schemas.make_schemas     # rewrite the .json files after editing a manifest
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
K8S = HERE.parent
# keys whose value is a free-form map (any key allowed, string or scalar values)
FREE_FORM = {"flinkConfiguration", "config", "labels", "annotations", "podTemplate", "template", "metrics",
             "jvmOptions", "matchLabels", "resources", "logging", "spec.job.args"}
ENUMS = {
    ("spec", "job", "upgradeMode"): ["stateless", "savepoint", "last-state"],
    ("spec", "job", "state"): ["running", "suspended"],
    ("spec", "flinkVersion"): ["v1_18", "v1_19", "v1_20", "v2_0", "v2_1", "v2_2"],
    ("spec", "mode"): ["native", "standalone"],
}


def infer(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if path in ENUMS:
        return {"type": "string", "enum": ENUMS[path]}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        items = [infer(v, path) for v in value]
        merged: dict[str, Any] = items[0] if items else {}
        for extra in items[1:]:
            merged = merge(merged, extra)
        return {"type": "array", "items": merged}
    if isinstance(value, dict):
        if path and path[-1] in FREE_FORM:
            return {"type": "object"}
        return {"type": "object", "additionalProperties": False,
                "properties": {k: infer(v, (*path, k)) for k, v in value.items()}}
    return {}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if a.get("type") == "object" and b.get("type") == "object" and "properties" in a and "properties" in b:
        props = dict(a["properties"])
        for k, v in b["properties"].items():
            props[k] = merge(props[k], v) if k in props else v
        return {**a, "properties": props}
    return a


def schemas() -> dict[Path, dict[str, Any]]:
    out: dict[Path, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") == "Kustomization" or "." not in doc.get("apiVersion", "").split("/")[0]:
                continue
            group, version = doc["apiVersion"].split("/")
            target = HERE / group / f"{doc['kind'].lower()}_{version}.json"
            body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
            schema = infer(body, ())
            schema["properties"].update({
                "apiVersion": {"type": "string", "enum": [doc["apiVersion"]]},
                "kind": {"type": "string", "enum": [doc["kind"]]},
                "metadata": {"type": "object"},
            })
            schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
            out[target] = merge(out[target], schema) if target in out else schema
    return out


def main() -> None:
    for target, schema in schemas().items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", **schema}, indent=1)
                          + "\n")
        print(f"wrote {target.relative_to(K8S.parent.parent)}")


if __name__ == "__main__":
    main()
