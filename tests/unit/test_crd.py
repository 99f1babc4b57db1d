"""The KafkaCluster CRD: generated from the models, committed, and accepted by an API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ballast import crd
from ballast.spec import GROUP, PLURAL, VERSION, KafkaClusterSpec

COMMITTED = Path(__file__).resolve().parents[2] / "deploy" / "crds" / f"{PLURAL}.{GROUP}.yaml"


def test_committed_crd_is_up_to_date() -> None:
    assert COMMITTED.read_text() == crd.render_yaml(), "deploy/crds is stale: run `make crds`"


def test_schema_is_structural() -> None:
    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
            if "properties" in node:
                assert node.get("type") == "object", f"{path}: objects must say type: object"
                assert node.get("additionalProperties") is not False, path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(crd.crd()["spec"]["versions"][0]["schema"], "schema")


def test_defaults_in_schema_match_the_models() -> None:
    spec_schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    defaults = KafkaClusterSpec().model_dump(mode="json", by_alias=True, exclude_none=True)
    for field in ("controllers", "brokers", "listeners", "version"):
        assert spec_schema["properties"][field]["default"] == defaults[field]



def _kc(name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": name}, "spec": spec}


def test_api_server_fills_defaults(kafkaclusters: client.CustomObjectsApi) -> None:
    created = kafkaclusters.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _kc("k", {}))
    expected = KafkaClusterSpec().model_dump(mode="json", by_alias=True, exclude_none=True)
    assert created["spec"] == expected
    assert KafkaClusterSpec.model_validate(created["spec"]) == KafkaClusterSpec()


def test_api_server_rejects_bad_specs(kafkaclusters: client.CustomObjectsApi) -> None:
    cases = [
        ({"controllers": {"replicas": 2}}, "spec.controllers.replicas"),
        ({"brokers": {"replicas": 3, "config": {"min.insync.replicas": "3", "default.replication.factor": "3"}}},
         "min.insync.replicas must be less than default.replication.factor"),
        ({"brokers": {"replicas": 2, "config": {"default.replication.factor": "3"}}},
         "default.replication.factor must not exceed brokers.replicas"),
        ({"listeners": [{"name": "a", "port": 9092}, {"name": "b", "port": 9092}]}, "listener ports must be unique"),
        ({"brokers": {"storage": {"size": "lots"}}}, "spec.brokers.storage.size"),
    ]
    for i, (spec, expected) in enumerate(cases):
        with pytest.raises(ApiException) as err:
            kafkaclusters.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _kc(f"bad-{i}", spec))
        assert err.value.status == 422, spec
        assert expected in json.loads(err.value.body)["message"], (spec, err.value.body)
