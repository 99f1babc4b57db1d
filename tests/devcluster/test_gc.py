"""Garbage collection through the kubernetes client: background, foreground and orphan deletion."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import wait_for

NS = "default"
HOLD = "test.ballast.dev/hold"


def _statefulset(apps: client.AppsV1Api, name: str) -> Any:
    """A StatefulSet with no replicas: an owner whose own controller creates no pods."""
    body = {
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}},
        },
    }
    return apps.create_namespaced_stateful_set(NS, body)


def _ref(owner: Any, kind: str = "StatefulSet", api_version: str = "apps/v1", block: bool | None = None,
         uid: str | None = None) -> dict[str, Any]:
    ref = {"apiVersion": api_version, "kind": kind, "name": owner.metadata.name, "uid": uid or owner.metadata.uid}
    if block is not None:
        ref["blockOwnerDeletion"] = block
    return ref


def _cm(core: client.CoreV1Api, name: str, refs: list[dict[str, Any]], finalizers: list[str] | None = None) -> Any:
    meta: dict[str, Any] = {"name": name, "ownerReferences": refs}
    if finalizers:
        meta["finalizers"] = finalizers
    return core.create_namespaced_config_map(NS, {"metadata": meta, "data": {"k": "v"}})


def _exists(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _gone(read: Any, *args: Any) -> bool:
    return _exists(read, *args) is None


def _release(core: client.CoreV1Api, name: str) -> None:
    cm = core.read_namespaced_config_map(name, NS)
    cm.metadata.finalizers = None
    core.replace_namespaced_config_map(name, NS, cm)


def test_background_deletion_collects_dependents_and_their_dependents(core: client.CoreV1Api,
                                                                      apps: client.AppsV1Api) -> None:
    sts = _statefulset(apps, "web")
    first = _cm(core, "web-a", [_ref(sts)])
    _cm(core, "web-b", [_ref(sts, block=True)])
    _cm(core, "web-a-child", [_ref(first, kind="ConfigMap", api_version="v1")])
    bystander = core.create_namespaced_config_map(NS, {"metadata": {"name": "bystander"}})

    status = apps.delete_namespaced_stateful_set("web", NS)  # the API default: Background
    assert status["status"] == "Success"
    assert _gone(apps.read_namespaced_stateful_set, "web", NS)  # the owner goes at once
    for name in ("web-a", "web-b", "web-a-child"):
        wait_for(lambda n=name: _gone(core.read_namespaced_config_map, n, NS), message=f"{name} collected")
    assert core.read_namespaced_config_map("bystander", NS).metadata.uid == bystander.metadata.uid


def test_foreground_deletion_waits_for_blocking_dependents(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    sts = _statefulset(apps, "db")
    parent = _cm(core, "db-parent", [_ref(sts, block=True)])
    _cm(core, "db-child", [_ref(parent, kind="ConfigMap", api_version="v1", block=True)], finalizers=[HOLD])
    _cm(core, "db-loose", [_ref(sts)])

    apps.delete_namespaced_stateful_set("db", NS, body=client.V1DeleteOptions(propagation_policy="Foreground"))
    # Every dependent is deleted; the one with its own dependents in foreground too.
    wait_for(lambda: _gone(core.read_namespaced_config_map, "db-loose", NS), message="loose dependent deleted")
    child = wait_for(lambda: (c := core.read_namespaced_config_map("db-child", NS)).metadata.deletion_timestamp
                     and c, message="child terminating")
    assert child.metadata.finalizers == [HOLD]
    parent_now = core.read_namespaced_config_map("db-parent", NS)
    assert parent_now.metadata.deletion_timestamp is not None
    assert parent_now.metadata.finalizers == ["foregroundDeletion"]
    owner = apps.read_namespaced_stateful_set("db", NS)
    assert owner.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in owner.metadata.finalizers

    _release(core, "db-child")  # the last blocker goes: the chain unwinds up to the owner
    wait_for(lambda: _gone(core.read_namespaced_config_map, "db-parent", NS), message="parent deleted")
    wait_for(lambda: _gone(apps.read_namespaced_stateful_set, "db", NS), message="owner deleted")


def test_foreground_owner_does_not_wait_for_non_blocking_dependents(core: client.CoreV1Api,
                                                                    apps: client.AppsV1Api) -> None:
    sts = _statefulset(apps, "cache")
    _cm(core, "cache-lazy", [_ref(sts, block=False)], finalizers=[HOLD])

    apps.delete_namespaced_stateful_set("cache", NS, body=client.V1DeleteOptions(propagation_policy="Foreground"))
    wait_for(lambda: _gone(apps.read_namespaced_stateful_set, "cache", NS), message="owner deleted")
    lazy = core.read_namespaced_config_map("cache-lazy", NS)
    assert lazy.metadata.deletion_timestamp is not None and lazy.metadata.finalizers == [HOLD]
    _release(core, "cache-lazy")
    wait_for(lambda: _gone(core.read_namespaced_config_map, "cache-lazy", NS), message="dependent deleted")


def test_orphan_deletion_keeps_dependents_and_strips_the_reference(core: client.CoreV1Api,
                                                                   apps: client.AppsV1Api) -> None:
    sts = _statefulset(apps, "queue")
    other = core.create_namespaced_config_map(NS, {"metadata": {"name": "other-owner"}})
    _cm(core, "queue-a", [_ref(sts, block=True)])
    _cm(core, "queue-b", [_ref(sts), _ref(other, kind="ConfigMap", api_version="v1")])

    apps.delete_namespaced_stateful_set("queue", NS, body=client.V1DeleteOptions(propagation_policy="Orphan"))
    wait_for(lambda: _gone(apps.read_namespaced_stateful_set, "queue", NS), message="owner deleted")
    a = core.read_namespaced_config_map("queue-a", NS)
    assert a.metadata.owner_references is None and a.metadata.deletion_timestamp is None
    b = core.read_namespaced_config_map("queue-b", NS)
    assert [r.uid for r in b.metadata.owner_references] == [other.metadata.uid]


def test_dangling_references_are_collected(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    sts = _statefulset(apps, "live")
    _cm(core, "unresolvable", [{"apiVersion": "nope.example.com/v1", "kind": "Nope", "name": "x",
                                "uid": str(uuid.uuid4())}])
    _cm(core, "never-existed", [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "ghost",
                                 "uid": str(uuid.uuid4())}])
    _cm(core, "wrong-uid", [_ref(sts, uid=str(uuid.uuid4()))])
    _cm(core, "mixed", [_ref(sts), {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "ghost",
                                    "uid": str(uuid.uuid4())}])
    kept = _cm(core, "kept", [_ref(sts)])

    for name in ("never-existed", "wrong-uid"):
        wait_for(lambda n=name: _gone(core.read_namespaced_config_map, n, NS), message=f"{name} collected")
    mixed = wait_for(lambda: len((m := core.read_namespaced_config_map("mixed", NS)).metadata.owner_references) == 1
                     and m, message="dangling reference removed")
    assert mixed.metadata.owner_references[0].uid == sts.metadata.uid
    assert mixed.metadata.deletion_timestamp is None
    assert core.read_namespaced_config_map("kept", NS).metadata.resource_version == kept.metadata.resource_version
    # An owner kind the server does not know cannot be checked, so the dependent stays.
    assert core.read_namespaced_config_map("unresolvable", NS).metadata.deletion_timestamp is None


def test_cluster_scoped_owner(core: client.CoreV1Api, api_client: client.ApiClient) -> None:
    storage = client.StorageV1Api(api_client)
    owner = storage.create_storage_class({"metadata": {"name": "gc-owner"}, "provisioner": "example.com/x"})
    ref = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "name": "gc-owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(NS, {"metadata": {"name": "sc-dependent", "ownerReferences": [ref]}})
    # A cluster-scoped dependent naming a namespaced owner kind is invalid and never collected.
    bad_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "sc-dependent", "uid": str(uuid.uuid4())}
    storage.create_storage_class({"metadata": {"name": "gc-invalid", "ownerReferences": [bad_ref]},
                                  "provisioner": "example.com/x"})

    storage.delete_storage_class("gc-owner")
    wait_for(lambda: _gone(core.read_namespaced_config_map, "sc-dependent", NS), message="dependent collected")
    assert storage.read_storage_class("gc-invalid").metadata.deletion_timestamp is None


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_custom_resource_owner(core: client.CoreV1Api, custom: client.CustomObjectsApi,
                               api_client: client.ApiClient, policy: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition({
        "metadata": {"name": "widgets.gc.example.com"},
        "spec": {"group": "gc.example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]}})
    widget = wait_for(lambda: _try_create_widget(custom), message="CRD established")
    ref = {"apiVersion": "gc.example.com/v1", "kind": "Widget", "name": "w", "uid": widget["metadata"]["uid"],
           "blockOwnerDeletion": True}
    core.create_namespaced_config_map(NS, {"metadata": {"name": "widget-cm", "ownerReferences": [ref]}})

    custom.delete_namespaced_custom_object("gc.example.com", "v1", NS, "widgets", "w", propagation_policy=policy)
    wait_for(lambda: _gone(core.read_namespaced_config_map, "widget-cm", NS), message="dependent collected")
    wait_for(lambda: _gone(custom.get_namespaced_custom_object, "gc.example.com", "v1", NS, "widgets", "w"),
             message="owner gone")


def _try_create_widget(custom: client.CustomObjectsApi) -> Any:
    try:
        return custom.create_namespaced_custom_object("gc.example.com", "v1", NS, "widgets",
                                                      {"apiVersion": "gc.example.com/v1", "kind": "Widget",
                                                       "metadata": {"name": "w"}})
    except ApiException as err:
        if err.status == 404:
            return None
        raise
