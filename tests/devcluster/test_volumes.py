"""Persistent volumes in devcluster: provisioning, binding, expansion, protection and reclaim, via the client."""

from __future__ import annotations

import os
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.conftest import wait_for

NS = "default"


@pytest.fixture
def storage(api_client: client.ApiClient) -> client.StorageV1Api:
    return client.StorageV1Api(api_client)


def pvc_body(name: str, size: str = "1Gi", storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def pod_with_claim(name: str, claim: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "containers": [{"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


def storage_class(name: str, **fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "provisioner": "devcluster.ballast.dev/hostpath", **fields}


def get_pvc(core: client.CoreV1Api, name: str) -> client.V1PersistentVolumeClaim | None:
    try:
        return core.read_namespaced_persistent_volume_claim(name, NS)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def bound(core: client.CoreV1Api, name: str) -> client.V1PersistentVolumeClaim:
    return wait_for(lambda: (c := get_pvc(core, name)) and c.status.phase == "Bound" and c,  # type: ignore[return-value]
                    message=f"{name} bound")


def running_pod(core: client.CoreV1Api, name: str) -> client.V1Pod:
    def check() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, NS)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return pod if ready else None

    return wait_for(check, message=f"{name} ready")  # type: ignore[return-value]


def condition_types(pvc: client.V1PersistentVolumeClaim) -> list[str]:
    return [c.type for c in pvc.status.conditions or []]


def reasons(core: client.CoreV1Api, name: str) -> list[str]:
    return [e.reason for e in core.list_namespaced_event(NS).items if e.involved_object.name == name]


def test_dynamic_provisioning_binds_claim_and_volume(core: client.CoreV1Api) -> None:
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("data"))
    pvc = bound(core, "data")
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.metadata.name == f"pvc-{pvc.metadata.uid}"
    assert pv.spec.capacity == {"storage": "1Gi"} and pv.spec.access_modes == ["ReadWriteOnce"]
    assert pv.spec.storage_class_name == "standard" and pv.spec.persistent_volume_reclaim_policy == "Delete"
    assert (pv.spec.claim_ref.name, pv.spec.claim_ref.namespace, pv.spec.claim_ref.uid) == ("data", NS, pvc.metadata.uid)
    assert pv.status.phase == "Bound" and os.path.isdir(pv.spec.host_path.path)
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "devcluster.ballast.dev/hostpath"
    assert "kubernetes.io/pv-protection" in pv.metadata.finalizers
    assert pvc.spec.storage_class_name == "standard"  # the default class
    assert pvc.status.capacity == {"storage": "1Gi"} and pvc.status.access_modes == ["ReadWriteOnce"]
    annotations = pvc.metadata.annotations
    assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert annotations["volume.kubernetes.io/storage-provisioner"] == "devcluster.ballast.dev/hostpath"
    assert {"Provisioning", "ProvisioningSucceeded"} <= set(reasons(core, "data"))


def test_pods_wait_for_their_claims(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod_with_claim("orphan", "nowhere"))
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("manual", storage_class=""))
    core.create_namespaced_pod(NS, pod_with_claim("waiter", "manual"))

    def message(pod: str) -> str | None:
        conds = {c.type: c for c in core.read_namespaced_pod(pod, NS).status.conditions or []}
        return conds["PodScheduled"].message if "PodScheduled" in conds else None

    tail = " no new claims to deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    assert wait_for(lambda: message("orphan"), message="orphan refused") == \
        '0/3 nodes are available: persistentvolumeclaim "nowhere" not found.' + tail
    assert wait_for(lambda: message("waiter"), message="waiter refused") == \
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims." + tail
    # A matching static volume appears: the claim binds, then the pod is scheduled and runs.
    core.create_persistent_volume({"metadata": {"name": "static-1"}, "spec": {
        "capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "storageClassName": "",
        "hostPath": {"path": "/tmp/devcluster-static-1"}}})
    pvc = bound(core, "manual")
    assert pvc.spec.volume_name == "static-1" and pvc.status.capacity == {"storage": "5Gi"}
    pod = running_pod(core, "waiter")
    assert pod.spec.node_name


def test_expansion_is_validated_by_the_api_server(core: client.CoreV1Api, storage: client.StorageV1Api) -> None:
    storage.create_storage_class(storage_class("fixed"))
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("small", "2Gi", "fixed"))
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("grow", "2Gi"))
    bound(core, "small")
    bound(core, "grow")
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_persistent_volume_claim("grow", NS, {"spec": {"resources": {"requests": {"storage": "1Gi"}}}})
    assert err.value.status == 422 and "field can not be less than status.capacity" in err.value.body
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_persistent_volume_claim("small", NS, {"spec": {"resources": {"requests": {"storage": "3Gi"}}}})
    assert err.value.status == 403
    assert "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must " \
           "support resize" in err.value.body


def watch_claim(core: client.CoreV1Api, name: str, until: Any, timeout: int = 10) -> list[client.V1PersistentVolumeClaim]:
    seen = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_persistent_volume_claim, NS, field_selector=f"metadata.name={name}",
                       timeout_seconds=timeout):
        seen.append(ev["object"])
        if until(ev["object"]):
            w.stop()
            return seen
    raise AssertionError(f"watch of {name} ended first: {[condition_types(c) for c in seen]}")


def test_online_expansion_completes_while_the_pod_runs(core: client.CoreV1Api) -> None:
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("data"))
    core.create_namespaced_pod(NS, pod_with_claim("app", "data"))
    running_pod(core, "app")
    core.patch_namespaced_persistent_volume_claim("data", NS, {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})
    seen = watch_claim(core, "data", lambda c: c.status.capacity == {"storage": "2Gi"})
    kinds = [condition_types(c) for c in seen]
    assert ["Resizing"] in kinds and ["FileSystemResizePending"] in kinds
    statuses = [(c.status.allocated_resource_statuses or {}).get("storage") for c in seen]
    assert "ControllerResizeInProgress" in statuses and "NodeResizePending" in statuses
    pending = next(c for c in seen if condition_types(c) == ["FileSystemResizePending"])
    assert pending.status.conditions[0].message == ("Waiting for user to (re-)start a pod to finish file system "
                                                   "resize of volume on node.")
    final = seen[-1]
    assert not final.status.conditions and not final.status.allocated_resource_statuses
    assert final.status.allocated_resources == {"storage": "2Gi"}
    assert core.read_persistent_volume(final.spec.volume_name).spec.capacity == {"storage": "2Gi"}
    assert core.read_namespaced_pod("app", NS).metadata.uid  # the pod was not restarted
    assert {"ExternalExpanding", "Resizing", "FileSystemResizeRequired", "FileSystemResizeSuccessful"} <= \
        set(reasons(core, "data"))
    assert "FileSystemResizeSuccessful" in reasons(core, "app")


def test_offline_expansion_waits_for_the_pod_to_restart(core: client.CoreV1Api, storage: client.StorageV1Api) -> None:
    storage.create_storage_class(storage_class("offline", allowVolumeExpansion=True,
                                            parameters={"devcluster.ballast.dev/expansion-mode": "offline"}))
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("data", storage_class="offline"))
    core.create_namespaced_pod(NS, pod_with_claim("app", "data"))
    # A control: the same flow on the default (online) class, expanded just after the offline claim.
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("ctl"))
    core.create_namespaced_pod(NS, pod_with_claim("ctl", "ctl"))
    running_pod(core, "app")
    running_pod(core, "ctl")
    core.patch_namespaced_persistent_volume_claim("data", NS, {"spec": {"resources": {"requests": {"storage": "3Gi"}}}})
    core.patch_namespaced_persistent_volume_claim("ctl", NS, {"spec": {"resources": {"requests": {"storage": "3Gi"}}}})
    wait_for(lambda: condition_types(get_pod_claim(core)) == ["FileSystemResizePending"], message="pending")
    # Negative check: the online claim went through the very node-expansion step (a resize delay after
    # it, too, was pending) and completed; by then an online expansion of the offline claim would have too.
    wait_for(lambda: (c := get_pvc(core, "ctl")) and c.status.capacity == {"storage": "3Gi"} and not c.status.conditions,
             message="the online control claim expanded")
    pvc = get_pod_claim(core)
    assert condition_types(pvc) == ["FileSystemResizePending"] and pvc.status.capacity == {"storage": "1Gi"}
    assert core.read_persistent_volume(pvc.spec.volume_name).spec.capacity == {"storage": "3Gi"}
    core.delete_namespaced_pod("app", NS)
    wait_for(lambda: not [p for p in core.list_namespaced_pod(NS).items if p.metadata.name == "app"], message="gone")
    core.create_namespaced_pod(NS, pod_with_claim("app", "data"))
    running_pod(core, "app")
    pvc = get_pod_claim(core)
    assert not pvc.status.conditions and pvc.status.capacity == {"storage": "3Gi"}


def get_pod_claim(core: client.CoreV1Api) -> client.V1PersistentVolumeClaim:
    pvc = get_pvc(core, "data")
    assert pvc is not None
    return pvc


def test_claim_in_use_is_protected_and_its_volume_deleted_after(core: client.CoreV1Api) -> None:
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("data"))
    core.create_namespaced_pod(NS, pod_with_claim("app", "data"))
    running_pod(core, "app")
    pv = core.read_persistent_volume(bound(core, "data").spec.volume_name)
    core.delete_namespaced_persistent_volume_claim("data", NS)
    pvc = get_pod_claim(core)
    assert pvc.metadata.deletion_timestamp is not None and pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    core.delete_namespaced_pod("app", NS)
    wait_for(lambda: get_pvc(core, "data") is None, message="claim gone")

    def pv_gone() -> bool:
        try:
            core.read_persistent_volume(pv.metadata.name)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(pv_gone, message="volume deleted")
    assert not os.path.exists(pv.spec.host_path.path)


def test_retained_volume_is_released(core: client.CoreV1Api, storage: client.StorageV1Api) -> None:
    storage.create_storage_class(storage_class("keep", reclaimPolicy="Retain"))
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("data", storage_class="keep"))
    name = bound(core, "data").spec.volume_name
    core.delete_namespaced_persistent_volume_claim("data", NS)
    pv = wait_for(lambda: (v := core.read_persistent_volume(name)).status.phase == "Released" and v, message="released")
    assert pv.spec.persistent_volume_reclaim_policy == "Retain" and pv.spec.claim_ref.name == "data"


def test_wait_for_first_consumer_provisions_on_the_chosen_node(core: client.CoreV1Api, storage: client.StorageV1Api) -> None:
    storage.create_storage_class(storage_class("lazy", volumeBindingMode="WaitForFirstConsumer"))
    core.create_namespaced_persistent_volume_claim(NS, pvc_body("data", storage_class="lazy"))
    wait_for(lambda: "WaitForFirstConsumer" in reasons(core, "data"), message="waiting event")
    assert get_pod_claim(core).status.phase == "Pending"
    core.create_namespaced_pod(NS, pod_with_claim("app", "data"))
    pod = running_pod(core, "app")
    pvc = bound(core, "data")
    assert pvc.metadata.annotations["volume.kubernetes.io/selected-node"] == pod.spec.node_name
