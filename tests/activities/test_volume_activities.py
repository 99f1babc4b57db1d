"""Volume expansion, run for real (temporalio's ActivityEnvironment) against devcluster: the StatefulSet's claim
template grows through apply_manifests (re-created, orphaning its pods: nothing restarts), expand_volumes grows
the claims, wait_volumes_resized reports which pods must restart to finish an offline expansion, and the
resize is done once they have. Plus the refusals: a class without expansion, a driver that cannot do it."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cluster import ClusterActivities
from activities.contracts import ExpandVolumesInput, RestartPodInput, WaitVolumesResizedInput
from ballast.messages import ClusterRef
from ballast.spec import GROUP, PLURAL, VERSION
from devcluster.bootstrap import PROVISIONER
from devcluster.controllers.volumes import EXPANSION_MODE
from tests.activities.test_activities import NS, apply_input, create_cluster
from tests.activities.test_roll_activities import _up
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("quiet_kafka_client")

BROKER_CLAIMS = ["data-demo-broker-0", "data-demo-broker-1"]


def _storage_class(name: str, *, expandable: bool = True, provisioner: str = PROVISIONER,
                   parameters: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                            "provisioner": provisioner, "allowVolumeExpansion": expandable}
    if parameters:
        body["parameters"] = parameters
    return body


def _claim(core: client.CoreV1Api, name: str) -> client.V1PersistentVolumeClaim:
    return core.read_namespaced_persistent_volume_claim(name, NS)


def _uids(core: client.CoreV1Api) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(NS).items}


def test_offline_expansion_template_claims_and_restarts(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api, apps: client.AppsV1Api, api_client: client.ApiClient) -> None:
    # A driver without online node expansion: the file system grows only when a pod (re)starts.
    client.StorageV1Api(api_client).create_storage_class(
        _storage_class("offline", parameters={EXPANSION_MODE: "offline"}))
    kc = _up(custom, acts, env, ref, {"controllers": {"replicas": 1},
                                      "brokers": {"replicas": 2, "storage": {"size": "1Gi",
                                                                             "storageClassName": "offline"}}})
    pods, old_set = _uids(core), apps.read_namespaced_stateful_set("demo-broker", NS)
    grow = ExpandVolumesInput(ref=ref, role="broker", size="2Gi")

    # The claims may not grow before the StatefulSet's template does (new pods would get the old size).
    with pytest.raises(ApplicationError) as err:
        env.run(acts.expand_volumes, grow)
    assert err.value.non_retryable and err.value.type == "TemplateNotExpanded"
    assert all(_claim(core, c).spec.resources.requests["storage"] == "1Gi" for c in BROKER_CLAIMS)

    # The spec grows: apply_manifests re-creates the StatefulSet (templates are immutable), orphaning its pods.
    kc = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo",
                                               {"spec": {"brokers": {"storage": {"size": "2Gi"}}}})
    applied = env.run(acts.apply_manifests, apply_input(kc, ["brokers"]))
    assert "StatefulSet/demo-broker" in applied.updated
    new_set = apps.read_namespaced_stateful_set("demo-broker", NS)
    assert new_set.metadata.uid != old_set.metadata.uid
    assert new_set.spec.volume_claim_templates[0].spec.resources.requests["storage"] == "2Gi"

    def adopted() -> bool:
        owners = {p.metadata.name: [r.uid for r in p.metadata.owner_references or [] if r.controller]
                  for p in core.list_namespaced_pod(NS).items if p.metadata.name.startswith("demo-broker-")}
        return owners == {"demo-broker-0": [new_set.metadata.uid], "demo-broker-1": [new_set.metadata.uid]}

    wait_for(adopted, message="the broker pods adopted by the new StatefulSet")
    assert _uids(core) == pods  # no pod restarted, none added
    assert env.run(acts.apply_manifests, apply_input(kc, ["brokers"])).updated == []  # converged

    expanded = env.run(acts.expand_volumes, grow)
    assert (expanded.expanded, expanded.already) == (BROKER_CLAIMS, [])
    again = env.run(acts.expand_volumes, grow)  # a retry: nothing to do, and never a shrink
    assert (again.expanded, again.already) == ([], BROKER_CLAIMS)
    smaller = env.run(acts.expand_volumes, ExpandVolumesInput(ref=ref, role="broker", size="1536Mi"))
    assert smaller.already == BROKER_CLAIMS and _claim(core, BROKER_CLAIMS[0]).spec.resources.requests[
        "storage"] == "2Gi"
    controllers = env.run(acts.expand_volumes, ExpandVolumesInput(ref=ref, role="controller", size="1Gi"))
    assert (controllers.expanded, controllers.already) == ([], ["data-demo-controller-1000"])

    wait = WaitVolumesResizedInput(ref=ref, role="broker", size="2Gi", poll_seconds=0.1)
    resized = env.run(acts.wait_volumes_resized, wait)
    assert resized.resized == [] and resized.restart_needed == {"data-demo-broker-0": 0, "data-demo-broker-1": 1}
    for name in BROKER_CLAIMS:
        claim = _claim(core, name)
        assert claim.status.capacity["storage"] == "1Gi"
        assert any(c.type == "FileSystemResizePending" and c.status == "True" for c in claim.status.conditions)
    assert _uids(core) == pods

    # Restarting a pod finishes its claim's resize (the kubelet grows the file system before starting it).
    restarted = env.run(acts.restart_pod, RestartPodInput(ref=ref, pod="demo-broker-0",
                                                          expected_uid=pods["demo-broker-0"]))
    assert restarted.deleted
    wait_for(lambda: _claim(core, "data-demo-broker-0").status.capacity["storage"] == "2Gi",
             timeout=20, message="data-demo-broker-0 resized by its new pod")
    resized = env.run(acts.wait_volumes_resized, wait)
    assert resized.resized == ["data-demo-broker-0"] and resized.restart_needed == {"data-demo-broker-1": 1}
    env.run(acts.restart_pod, RestartPodInput(ref=ref, pod="demo-broker-1", expected_uid=pods["demo-broker-1"]))
    wait_for(lambda: _claim(core, "data-demo-broker-1").status.capacity["storage"] == "2Gi",
             timeout=20, message="data-demo-broker-1 resized by its new pod")
    resized = env.run(acts.wait_volumes_resized, wait)
    assert resized.resized == BROKER_CLAIMS and resized.restart_needed == {}
    assert _uids(core)["demo-controller-1000"] == pods["demo-controller-1000"]


def test_online_expansion_needs_no_restart(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api) -> None:
    kc = _up(custom, acts, env, ref, {"controllers": {"replicas": 1}, "brokers": {"replicas": 1}})
    pods = _uids(core)
    kc = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo",
                                               {"spec": {"brokers": {"storage": {"size": "20Gi"}}}})
    env.run(acts.apply_manifests, apply_input(kc, ["brokers"]))
    assert env.run(acts.expand_volumes, ExpandVolumesInput(ref=ref, role="broker", size="20Gi")).expanded == [
        "data-demo-broker-0"]
    resized = env.run(acts.wait_volumes_resized, WaitVolumesResizedInput(ref=ref, role="broker", size="20Gi",
                                                                          poll_seconds=0.05))
    assert resized.resized == ["data-demo-broker-0"] and resized.restart_needed == {}
    assert _claim(core, "data-demo-broker-0").status.capacity["storage"] == "20Gi"
    assert _uids(core) == pods


def _bound_claim(core: client.CoreV1Api, name: str, storage_class: str, size: str = "1Gi") -> None:
    """A broker claim as the StatefulSet would have made it (labels included), bound."""
    core.create_namespaced_persistent_volume_claim(NS, {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": "demo",
                                              "app.kubernetes.io/component": "broker"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                 "resources": {"requests": {"storage": size}}}})
    wait_for(lambda: _claim(core, name).status.phase == "Bound", message=f"{name} bound")


def test_refusals_no_expansion_class_and_an_infeasible_resize(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api, api_client: client.ApiClient) -> None:
    storage = client.StorageV1Api(api_client)
    storage.create_storage_class(_storage_class("fixed", expandable=False))
    # A class of a driver devcluster does not run: the test plays its external resizer.
    storage.create_storage_class(_storage_class("external", provisioner="csi.example.com"))
    # Claims without pods or StatefulSet: which ordinals count comes from the KafkaCluster's spec.
    create_cluster(custom, {"controllers": {"replicas": 1}, "brokers": {"replicas": 2}})
    _bound_claim(core, "data-demo-broker-0", "fixed")
    core.create_persistent_volume({
        "metadata": {"name": "pv-external"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "external",
                 "hostPath": {"path": "/tmp/pv-external"}}})
    _bound_claim(core, "data-demo-broker-1", "external")
    wait = WaitVolumesResizedInput(ref=ref, role="broker", size="2Gi", poll_seconds=0.05)

    with pytest.raises(ApplicationError) as err:
        env.run(acts.wait_volumes_resized, wait)
    assert err.value.non_retryable and err.value.type == "VolumeNotExpanded"
    with pytest.raises(ApplicationError) as err:
        env.run(acts.expand_volumes, ExpandVolumesInput(ref=ref, role="broker", size="2Gi"))
    assert err.value.non_retryable and err.value.type == "VolumeExpansionNotAllowed"
    assert "storageclass that provisions the pvc must support resize" in err.value.message
    core.delete_namespaced_persistent_volume_claim("data-demo-broker-0", NS)
    wait_for(lambda: [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(NS).items]
             == ["data-demo-broker-1"], message="data-demo-broker-0 gone")

    assert env.run(acts.expand_volumes, ExpandVolumesInput(ref=ref, role="broker", size="2Gi")).expanded == [
        "data-demo-broker-1"]
    # Nobody resizes it and its class stopped allowing expansion meanwhile: it never will.
    storage.patch_storage_class("external", {"allowVolumeExpansion": False})
    with pytest.raises(ApplicationError) as err:
        env.run(acts.wait_volumes_resized, wait)
    assert err.value.non_retryable and err.value.type == "VolumeExpansionNotAllowed"
    assert "StorageClass external does not allow volume expansion" in err.value.message

    # The driver says it cannot: ControllerResizeInfeasible, with its message.
    storage.patch_storage_class("external", {"allowVolumeExpansion": True})
    claim = _claim(core, "data-demo-broker-1")
    core.patch_namespaced_persistent_volume_claim_status("data-demo-broker-1", NS, {"status": {
        "allocatedResourceStatuses": {"storage": "ControllerResizeInfeasible"},
        "conditions": [{"type": "ControllerResizeError", "status": "True",
                        "message": "requested size exceeds the maximum volume size of 1Gi"}]}})
    with pytest.raises(ApplicationError) as err:
        env.run(acts.wait_volumes_resized, wait)
    assert err.value.non_retryable and err.value.type == "VolumeResizeInfeasible"
    assert "exceeds the maximum volume size" in err.value.message
    assert claim.status.capacity["storage"] == "1Gi"
