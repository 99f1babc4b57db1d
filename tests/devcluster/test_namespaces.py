"""Namespace deletion end to end through the kubernetes client: Terminating, purge, conditions, finalize."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.cluster import DevClusterThread
from tests.conftest import wait_for

HOLD = "test.ballast.dev/hold"
GROUP = "ns.example.com"


def _gone(read: Any, *args: Any) -> bool:
    try:
        read(*args)
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


def _conditions(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    ns = core.read_namespace(name)
    return {c.type: c for c in ns.status.conditions or []}


def _install_crd(api_client: client.ApiClient, custom: client.CustomObjectsApi, namespace: str) -> None:
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition({
        "metadata": {"name": f"gadgets.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]}})

    def create() -> bool:
        try:
            custom.create_namespaced_custom_object(GROUP, "v1", namespace, "gadgets",
                                                   {"apiVersion": f"{GROUP}/v1", "kind": "Gadget",
                                                    "metadata": {"name": "g"}, "spec": {"size": 1}})
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    wait_for(create, message="custom resource created")


def test_namespace_deletion_purges_content_and_waits_for_finalizers(
        core: client.CoreV1Api, apps: client.AppsV1Api, custom: client.CustomObjectsApi,
        api_client: client.ApiClient) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "plain"}, "data": {"a": "b"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "held", "finalizers": [HOLD]}})
    core.create_namespaced_secret("doomed", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    core.create_namespaced_service("doomed", {"metadata": {"name": "svc"},
                                              "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    _install_crd(api_client, custom, "doomed")
    core.create_namespace({"metadata": {"name": "bystander"}})
    core.create_namespaced_config_map("bystander", {"metadata": {"name": "plain"}})

    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp is not None
    assert ns.spec.finalizers == ["kubernetes"]

    def held_alone() -> bool:
        return ([c.metadata.name for c in core.list_namespaced_config_map("doomed").items] == ["held"]
                and not core.list_namespaced_secret("doomed").items
                and not core.list_namespaced_service("doomed").items
                and not core.list_namespaced_endpoints("doomed").items
                and not custom.list_namespaced_custom_object(GROUP, "v1", "doomed", "gadgets")["items"])

    wait_for(held_alone, message="everything but the held object deleted")
    held = core.read_namespaced_config_map("held", "doomed")
    assert held.metadata.deletion_timestamp is not None and held.metadata.finalizers == [HOLD]

    conds = wait_for(lambda: (c := _conditions(core, "doomed")).get("NamespaceFinalizersRemaining") and c,
                     message="deletion conditions")
    assert [(t, c.status, c.reason) for t, c in conds.items()] == [
        ("NamespaceDeletionDiscoveryFailure", "False", "ResourcesDiscovered"),
        ("NamespaceDeletionGroupVersionParsingFailure", "False", "ParsedGroupVersions"),
        ("NamespaceDeletionContentFailure", "False", "ContentDeleted"),
        ("NamespaceContentRemaining", "True", "SomeResourcesRemain"),
        ("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain"),
    ]
    assert conds["NamespaceContentRemaining"].message == \
        "Some resources are remaining: configmaps. has 1 resource instances"
    assert conds["NamespaceFinalizersRemaining"].message == \
        f"Some content in the namespace has finalizers remaining: {HOLD} in 1 resource instances"
    assert conds["NamespaceDeletionContentFailure"].message == \
        "All content successfully deleted, may be waiting on finalization"

    # Still Terminating: nothing new may be created in it.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert err.value.status == 403
    assert json.loads(err.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "late" is forbidden: unable to create new content in namespace doomed because it '
                   "is being terminated",
        "reason": "Forbidden",
        "details": {"name": "late", "kind": "configmaps",
                    "causes": [{"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated",
                                "field": "metadata.namespace"}]},
        "code": 403,
    }

    held.metadata.finalizers = None
    core.replace_namespaced_config_map("held", "doomed", held)
    wait_for(lambda: _gone(core.read_namespace, "doomed"), message="namespace deleted")
    assert [c.metadata.name for c in core.list_namespaced_config_map("bystander").items] == ["plain"]
    assert core.read_namespace("bystander").status.phase == "Active"

    # The name is free again, and a new namespace starts empty.
    core.create_namespace({"metadata": {"name": "doomed"}})
    assert not core.list_namespaced_config_map("doomed").items


def test_empty_namespace_goes_at_once(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "empty"}})
    core.delete_namespace("empty")
    wait_for(lambda: _gone(core.read_namespace, "empty"), message="namespace deleted")


def test_failed_deletes_are_reported_and_retried(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "flaky"}})
    core.create_namespaced_secret("flaky", {"metadata": {"name": "s"}})
    dc.call(lambda c: c.faults.fail_next(1000, 500, verb="delete", resource="secrets", namespace="flaky"))

    core.delete_namespace("flaky")
    failure = wait_for(lambda: (c := _conditions(core, "flaky").get("NamespaceDeletionContentFailure"))
                       and c.status == "True" and c, message="content failure condition")
    assert failure.reason == "ContentDeletionFailed"
    assert failure.message == "Failed to delete all resource types, 1 remaining: Internal error occurred: " \
                              "injected fault"
    assert core.read_namespace("flaky").status.phase == "Terminating"

    dc.call(lambda c: c.faults.clear())
    wait_for(lambda: _gone(core.read_namespace, "flaky"), message="namespace deleted after retries")


def test_other_spec_finalizers_keep_the_namespace(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "guarded"}})
    core.replace_namespace_finalize("guarded", {"metadata": {"name": "guarded"},
                                                "spec": {"finalizers": ["kubernetes", "example.com/guard"]}})
    core.delete_namespace("guarded")
    wait_for(lambda: core.read_namespace("guarded").spec.finalizers == ["example.com/guard"],
             message="kubernetes finalizer removed")
    assert core.read_namespace("guarded").status.phase == "Terminating"
    core.replace_namespace_finalize("guarded", {"metadata": {"name": "guarded"}, "spec": {"finalizers": []}})
    wait_for(lambda: _gone(core.read_namespace, "guarded"), message="namespace deleted")
