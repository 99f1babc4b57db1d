"""deploy/ holds what a real cluster runs: every manifest is a valid Kubernetes object, and the operator's
RBAC grants what its activities and watchers use."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "operator").glob("*.yaml"))


def _docs() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _model_name(obj: dict) -> str:
    version = obj["apiVersion"].rpartition("/")[2]
    return f"V1{obj['kind']}" if version == "v1" else f"{version.capitalize()}{obj['kind']}"


@pytest.mark.parametrize("obj", _docs(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_manifest_round_trips_through_the_client_models(obj: dict) -> None:
    api = client.ApiClient()
    model = api._ApiClient__deserialize(obj, _model_name(obj))  # type: ignore[attr-defined]
    assert api.sanitize_for_serialization(model) == obj


def test_rbac_covers_what_the_operator_touches() -> None:
    rules = [rule for doc in _docs() if doc["kind"] == "ClusterRole" for rule in doc["rules"]]

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)

    for group, resource, verbs in (
            ("kafka.ballast.dev", "kafkaclusters", ("get", "list", "watch", "patch")),
            ("kafka.ballast.dev", "kafkaclusters/status", ("get", "update", "patch")),
            ("kafka.ballast.dev", "kafkaclusters/finalizers", ("update",)),
            ("apps", "statefulsets", ("get", "list", "watch", "create", "update", "delete")),
            ("", "services", ("get", "list", "watch", "create", "update")),
            ("", "configmaps", ("get", "list", "watch", "create", "update")),
            ("policy", "poddisruptionbudgets", ("get", "create", "update")),
            ("", "pods", ("get", "list", "watch", "delete")),
            ("", "persistentvolumeclaims", ("get", "list", "patch", "delete")),
            ("storage.k8s.io", "storageclasses", ("get",)),
            ("", "events", ("create", "patch"))):
        for verb in verbs:
            assert allowed(group, resource, verb), f"{verb} {resource}.{group} is not granted"


def test_crd_is_shipped_in_deploy() -> None:
    crd = yaml.safe_load((DEPLOY / "crds" / "kafkaclusters.kafka.ballast.dev.yaml").read_text())
    assert crd["kind"] == "CustomResourceDefinition"
