"""Render the ``KafkaCluster`` CustomResourceDefinition from the pydantic models.

The spec/status models are the source of truth; this module turns their JSON Schema into a Kubernetes
*structural* OpenAPI v3 schema (every ``$ref`` inlined, no ``anyOf`` with null, no ``title``, no
``additionalProperties: false``) and adds what pydantic cannot express: CEL rules the API server checks
(``x-kubernetes-validations``), printer columns and the status/scale subresources.

``python -m ballast.crd > deploy/crds/kafkaclusters.kafka.ballast.dev.yaml`` (``make crds``) writes it;
a test fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter

from ballast.spec import GROUP, KIND, PLURAL, VERSION, KafkaClusterSpec
from ballast.status import KafkaClusterStatus

JSON = dict[str, Any]

# CEL rules, keyed by the path of the schema node they attach to ("" = spec root). They repeat the
# checks of ballast.validation that the API server can judge, so most mistakes never reach the operator.
_CONFIG = "self.brokers.config"
SPEC_RULES: dict[str, list[JSON]] = {
    "": [
        {
            "rule": f"!has({_CONFIG}) || !('min.insync.replicas' in {_CONFIG}) || "
                    f"!('default.replication.factor' in {_CONFIG}) || "
                    f"int({_CONFIG}['min.insync.replicas']) < int({_CONFIG}['default.replication.factor'])",
            "message": "brokers.config: min.insync.replicas must be less than default.replication.factor",
            "fieldPath": ".brokers.config",
        },
        {
            "rule": f"!has({_CONFIG}) || !('default.replication.factor' in {_CONFIG}) || "
                    f"int({_CONFIG}['default.replication.factor']) <= self.brokers.replicas",
            "message": "brokers.config: default.replication.factor must not exceed brokers.replicas",
            "fieldPath": ".brokers.config",
        },
    ],
    "brokers.storage.size": [
        {"rule": "quantity(self).compareTo(quantity(oldSelf)) >= 0",
         "message": "storage size may grow but never shrink", "reason": "FieldValueForbidden"},
    ],
    "controllers.storage.size": [
        {"rule": "quantity(self).compareTo(quantity(oldSelf)) >= 0",
         "message": "storage size may grow but never shrink", "reason": "FieldValueForbidden"},
    ],
    "brokers.storage.storageClassName": [
        {"rule": "self == oldSelf", "message": "storageClassName is immutable"},
    ],
    "listeners": [
        {"rule": "self.all(l, self.exists_one(m, m.name == l.name))", "message": "listener names must be unique"},
        {"rule": "self.all(l, self.exists_one(m, m.port == l.port))", "message": "listener ports must be unique"},
    ],
}

PRINTER_COLUMNS: list[JSON] = [
    {"name": "Brokers", "type": "string", "jsonPath": ".status.readyBrokers",
     "description": "Ready brokers / desired brokers"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Operation", "type": "string", "jsonPath": ".status.currentOperation.type",
     "description": "The operation a workflow is running now"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

_DROP = {"title", "$defs", "discriminator"}


def _structural(node: Any, defs: JSON) -> Any:
    """Inline refs and rewrite pydantic's JSON Schema idioms into structural-schema equivalents."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    variants = node.get("anyOf")
    if variants is not None:
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            merged = {**_structural(non_null[0], defs), **rest}
            if merged.get("default", 0) is None:
                merged.pop("default")
            return _structural(merged, defs)
    out: JSON = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
            continue
        out[key] = _structural(value, defs)
    if "enum" in out and "type" not in out:
        first = out["enum"][0]
        out["type"] = {bool: "boolean", int: "integer", str: "string"}.get(type(first), "string")
    return out


def _attach_rules(schema: JSON, rules: dict[str, list[JSON]]) -> None:
    for path, node_rules in rules.items():
        node = schema
        for part in [p for p in path.split(".") if p]:
            node = node["properties"][part]
        node.setdefault("x-kubernetes-validations", []).extend(node_rules)


def _add_factory_defaults(model: type[BaseModel], schema: JSON) -> None:
    """Give object fields built by ``default_factory`` an explicit ``default`` so the API server fills in
    the whole default block (pydantic's JSON Schema leaves factory defaults out)."""
    for name, info in model.model_fields.items():
        alias = info.alias or name
        prop = schema.get("properties", {}).get(alias)
        if prop is None:
            continue
        if info.default_factory is not None and info.annotation is not None and "default" not in prop:
            factory = info.default_factory
            value = TypeAdapter(info.annotation).dump_python(factory(),  # type: ignore[call-arg]
                                                             mode="json", by_alias=True, exclude_none=True)
            prop["default"] = value
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            _add_factory_defaults(nested, prop)


def model_schema(model: type[BaseModel], *, with_defaults: bool = True) -> JSON:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: JSON = _structural(raw, raw.get("$defs", {}))
    if with_defaults:
        _add_factory_defaults(model, schema)
    return schema


def _status_schema() -> JSON:
    schema = model_schema(KafkaClusterStatus, with_defaults=False)
    # Status is written by the operator only; keep the schema tolerant of fields added by newer versions.
    schema.pop("required", None)
    return schema


def crd() -> JSON:
    spec_schema = model_schema(KafkaClusterSpec)
    _attach_rules(spec_schema, SPEC_RULES)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "ballast", "app.kubernetes.io/part-of": "ballast"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "kafkacluster", "kind": KIND, "listKind": f"{KIND}List",
                      "shortNames": ["kc"], "categories": ["kafka", "ballast"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.brokers.replicas",
                              "statusReplicasPath": ".status.brokers.ready",
                              "labelSelectorPath": ".status.brokerSelector"},
                },
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A Kafka cluster (KRaft) run by Ballast.",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": _status_schema(),
                    },
                }},
            }],
        },
    }


def render_yaml() -> str:
    header = "# Generated by `make crds` (python -m ballast.crd) from ballast/spec.py and ballast/status.py.\n" \
             "# Do not edit by hand.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
