"""The cluster activities, run for real (temporalio's ActivityEnvironment) against a devcluster.

Every test talks to the devcluster API server through the official client, and the Kafka ones to the
simulated KRaft nodes devcluster runs for the apache/kafka containers the renderer asks for.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities import clients
from activities.cluster import COMPONENT, FINALIZER, ClusterActivities
from activities.contracts import (
    ApplyManifestsInput,
    CleanupInput,
    ConditionUpdate,
    EventInput,
    StatusUpdate,
    WaitInput,
)
from activities.kube import CONFLICT_RETRIES, KUBERNETES_API_ERROR
from ballast.config import KafkaAddressing, OperatorSettings
from ballast.manifests import SPEC_HASH_ANNOTATION, RenderInput, cluster_selector, render_cluster
from ballast.messages import ClusterRef
from ballast.spec import GROUP, KIND, PLURAL, VERSION, KafkaClusterSpec
from devcluster.cluster import DevClusterThread
from tests.conftest import wait_for

CRD_FILE = Path(__file__).resolve().parents[2] / "deploy" / "crds" / f"{PLURAL}.{GROUP}.yaml"
NS = "default"
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
SMALL = {"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}
ALL_OBJECTS = [
    "ConfigMap/demo-controller-config", "Service/demo-controllers", "PodDisruptionBudget/demo-controller",
    "StatefulSet/demo-controller", "ConfigMap/demo-broker-config", "Service/demo-brokers",
    "Service/demo-kafka-bootstrap", "PodDisruptionBudget/demo-broker", "StatefulSet/demo-broker",
]


def create_cluster(custom: client.CustomObjectsApi, spec: dict[str, Any], name: str = "demo") -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": name}, "spec": spec}
    created: dict[str, Any] = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    return created


def apply_input(kc: dict[str, Any], components: list[Any] | None = None) -> ApplyManifestsInput:
    return ApplyManifestsInput(ref=ClusterRef(namespace=NS, name=kc["metadata"]["name"]), uid=kc["metadata"]["uid"],
                               spec=kc["spec"], cluster_id=CLUSTER_ID,
                               components=components if components is not None else ["controllers", "brokers"])


def get_kc(custom: client.CustomObjectsApi, name: str = "demo") -> dict[str, Any]:
    got: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
    return got


# -- apply ---------------------------------------------------------------------------------------------------


def test_apply_creates_owned_objects_and_second_apply_changes_nothing(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment,
        core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    kc = create_cluster(custom, SMALL)
    first = env.run(acts.apply_manifests, apply_input(kc))
    assert first.created == ALL_OBJECTS and not first.updated and not first.unchanged

    sts = apps.read_namespaced_stateful_set("demo-broker", NS)
    assert [(o.kind, o.name, o.uid, o.controller) for o in sts.metadata.owner_references] == \
        [(KIND, "demo", kc["metadata"]["uid"], True)]
    assert sts.metadata.annotations[SPEC_HASH_ANNOTATION]

    # devcluster's loopback proxy annotates each new Service once; let that settle so that any later write
    # to a Service would be the operator's.
    def proxied() -> bool:
        return all(clients.LOOPBACK_ANNOTATION in (s.metadata.annotations or {})
                   for s in core.list_namespaced_service(NS, label_selector=cluster_selector("demo")).items)

    wait_for(proxied, message="loopback annotations on the Services")
    before = _written_versions(core, apps)

    second = env.run(acts.apply_manifests, apply_input(kc))
    assert second.unchanged == ALL_OBJECTS and not second.created and not second.updated
    assert _written_versions(core, apps) == before


def _written_versions(core: client.CoreV1Api, apps: client.AppsV1Api) -> dict[str, str]:
    """What changes when the operator writes an object: resourceVersion of Services and ConfigMaps,
    metadata.generation of StatefulSets (their status changes all the time while pods start)."""
    selector = cluster_selector("demo")
    out = {f"Service/{s.metadata.name}": s.metadata.resource_version
           for s in core.list_namespaced_service(NS, label_selector=selector).items}
    out |= {f"ConfigMap/{c.metadata.name}": c.metadata.resource_version
            for c in core.list_namespaced_config_map(NS, label_selector=selector).items}
    out |= {f"StatefulSet/{s.metadata.name}": str(s.metadata.generation)
            for s in apps.list_namespaced_stateful_set(NS, label_selector=selector).items}
    assert len(out) == 7
    return out


def test_apply_only_the_requested_components(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                             env: ActivityEnvironment, apps: client.AppsV1Api) -> None:
    kc = create_cluster(custom, SMALL)
    result = env.run(acts.apply_manifests, apply_input(kc, ["controllers"]))
    assert result.created == ALL_OBJECTS[:4]
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_stateful_set("demo-broker", NS)
    assert err.value.status == 404


def test_apply_repairs_drift_and_updates_changed_objects(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    kc = create_cluster(custom, SMALL)
    env.run(acts.apply_manifests, apply_input(kc))

    # A Service deleted by hand: observe sees it missing, apply recreates it and leaves the rest alone.
    core.delete_namespaced_service("demo-kafka-bootstrap", NS)
    observed = env.run(acts.observe_cluster, ref)
    missing = [f"{o.kind}/{o.name}" for o in observed.objects if not o.exists]
    assert missing == ["Service/demo-kafka-bootstrap"]
    repaired = env.run(acts.apply_manifests, apply_input(kc))
    assert repaired.created == ["Service/demo-kafka-bootstrap"]
    assert len(repaired.unchanged) == len(ALL_OBJECTS) - 1
    assert core.read_namespaced_service("demo-kafka-bootstrap", NS).spec.type == "ClusterIP"

    # A ConfigMap edited by hand (content and hash): replaced with the desired content; a foreign
    # annotation someone added survives.
    cm = core.read_namespaced_config_map("demo-broker-config", NS)
    desired_data = dict(cm.data)
    core.patch_namespaced_config_map("demo-broker-config", NS, {
        "data": {"KAFKA_NUM_NETWORK_THREADS": "99"},
        "metadata": {"annotations": {SPEC_HASH_ANNOTATION: "edited", "example.com/note": "keep me"}}})
    result = env.run(acts.apply_manifests, apply_input(kc))
    assert result.updated == ["ConfigMap/demo-broker-config"]
    cm = core.read_namespaced_config_map("demo-broker-config", NS)
    assert cm.data == desired_data
    assert cm.metadata.annotations["example.com/note"] == "keep me"
    assert cm.metadata.annotations[SPEC_HASH_ANNOTATION] != "edited"

    # A new generation of the spec: only what it changes is updated.
    kc["spec"]["brokers"]["replicas"] = 2
    result = env.run(acts.apply_manifests, apply_input(kc, ["brokers"]))
    assert "StatefulSet/demo-broker" in result.updated
    assert apps.read_namespaced_stateful_set("demo-broker", NS).spec.replicas == 2
    assert "Service/demo-brokers" in result.unchanged


def test_apply_refuses_objects_it_does_not_own(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                               env: ActivityEnvironment, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "demo-controller-config"}, "data": {"a": "b"}})
    kc = create_cluster(custom, SMALL)
    with pytest.raises(ApplicationError) as err:
        env.run(acts.apply_manifests, apply_input(kc))
    assert err.value.type == "OwnershipConflict" and err.value.non_retryable
    assert "ConfigMap/demo-controller-config" in err.value.message and "not owned" in err.value.message
    assert core.read_namespaced_config_map("demo-controller-config", NS).data == {"a": "b"}


def test_apply_reports_an_object_the_api_server_rejects_as_invalid(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment,
        apps: client.AppsV1Api) -> None:
    kc = create_cluster(custom, SMALL)
    # A StatefulSet of ours whose selector is not the desired one: a selector is immutable, the API server
    # answers 422 to the update. (Changed volumeClaimTemplates, also immutable, are re-created instead.)
    [sts] = [o for o in render_cluster(RenderInput(name="demo", namespace=NS, uid=kc["metadata"]["uid"],
                                                   spec=KafkaClusterSpec.model_validate(kc["spec"]),
                                                   cluster_id=CLUSTER_ID))
             if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "demo-broker"]
    sts["metadata"]["annotations"][SPEC_HASH_ANNOTATION] = "stale"
    sts["spec"]["selector"]["matchLabels"]["example.com/extra"] = "x"
    sts["spec"]["template"]["metadata"]["labels"]["example.com/extra"] = "x"
    apps.create_namespaced_stateful_set(NS, sts)
    with pytest.raises(ApplicationError) as err:
        env.run(acts.apply_manifests, apply_input(kc, ["brokers"]))
    assert err.value.type == "InvalidManifest" and err.value.non_retryable
    assert err.value.message.startswith("StatefulSet/demo-broker: ")
    assert "Forbidden: updates to statefulset spec for fields other than" in err.value.message


def test_apply_rejects_an_invalid_spec_naming_the_field(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                                        env: ActivityEnvironment) -> None:
    kc = create_cluster(custom, SMALL)
    spec = {**kc["spec"], "brokers": {**kc["spec"]["brokers"], "replicas": "many"}}
    with pytest.raises(ApplicationError) as err:
        env.run(acts.apply_manifests, apply_input({**kc, "spec": spec}))
    assert err.value.type == "InvalidManifest" and err.value.non_retryable
    assert "spec.brokers.replicas" in err.value.message


# -- API errors: conflicts retried, server errors retryable ----------------------------------------------------


def _injected(dc: DevClusterThread) -> list[tuple[str, str, str, int]]:
    return list(dc.call(lambda c: list(c.faults.injected)))


def test_apply_retries_through_conflicts_and_gives_up_with_a_clear_error(
        dc: DevClusterThread, custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment,
        core: client.CoreV1Api) -> None:
    kc = create_cluster(custom, SMALL)
    # Two 409s on a create (someone created it after our read): re-read, retried, created.
    dc.call(lambda c: c.faults.fail_next(2, 409, verb="create", resource="configmaps"))
    assert env.run(acts.apply_manifests, apply_input(kc)).created == ALL_OBJECTS
    assert _injected(dc) == [("create", "configmaps", "demo-controller-config", 409)] * 2

    # Two 409s on an update (a stale resourceVersion): re-read, retried, updated.
    core.patch_namespaced_config_map("demo-broker-config", NS, {"data": {"KAFKA_NUM_NETWORK_THREADS": "99"},
                                                                 "metadata": {"annotations": {
                                                                     SPEC_HASH_ANNOTATION: "edited"}}})
    dc.call(lambda c: c.faults.fail_next(2, 409, verb="update", resource="configmaps"))
    assert env.run(acts.apply_manifests, apply_input(kc)).updated == ["ConfigMap/demo-broker-config"]
    assert _injected(dc)[2:] == [("update", "configmaps", "demo-broker-config", 409)] * 2
    assert core.read_namespaced_config_map("demo-broker-config", NS).data.get("KAFKA_NUM_NETWORK_THREADS") != "99"

    # A conflict on every attempt: a retryable "Conflict" naming the object (Temporal retries the activity).
    core.delete_namespaced_service("demo-kafka-bootstrap", NS)
    dc.call(lambda c: c.faults.fail_next(CONFLICT_RETRIES, 409, verb="create", resource="services"))
    with pytest.raises(ApplicationError) as err:
        env.run(acts.apply_manifests, apply_input(kc))
    assert err.value.type == "Conflict" and not err.value.non_retryable
    assert err.value.message == f"Service/demo-kafka-bootstrap: kept changing under us (409 {CONFLICT_RETRIES} times)"
    # The next attempt, the conflict over, finishes the job.
    assert env.run(acts.apply_manifests, apply_input(kc)).created == ["Service/demo-kafka-bootstrap"]


def test_a_server_error_is_retryable(dc: DevClusterThread, custom: client.CustomObjectsApi,
                                     acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef) -> None:
    kc = create_cluster(custom, SMALL)
    dc.call(lambda c: c.faults.fail_next(1, 500, verb="create", resource="statefulsets"))
    with pytest.raises(ApplicationError) as err:
        env.run(acts.apply_manifests, apply_input(kc))
    assert err.value.type == KUBERNETES_API_ERROR and not err.value.non_retryable
    assert err.value.message.startswith("StatefulSet/demo-controller: HTTP 500: Internal error occurred")
    # The retry (what Temporal does with it) carries on where the failed attempt stopped.
    retried = env.run(acts.apply_manifests, apply_input(kc))
    assert retried.unchanged == ALL_OBJECTS[:3] and retried.created == ALL_OBJECTS[3:]

    dc.call(lambda c: c.faults.fail_next(1, 500, verb="update", resource="kafkaclusters/status"))
    with pytest.raises(ApplicationError) as err:
        env.run(acts.update_status, StatusUpdate(ref=ref, phase="Provisioning"))
    assert err.value.type == KUBERNETES_API_ERROR and not err.value.non_retryable
    assert "HTTP 500" in err.value.message
    assert env.run(acts.update_status, StatusUpdate(ref=ref, phase="Provisioning")) is True


def test_update_status_retries_through_conflicts_and_gives_up_with_a_clear_error(
        dc: DevClusterThread, custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment,
        ref: ClusterRef) -> None:
    create_cluster(custom, SMALL)
    dc.call(lambda c: c.faults.fail_next(2, 409, verb="update", resource="kafkaclusters/status"))
    assert env.run(acts.update_status, StatusUpdate(ref=ref, phase="Provisioning", observed_generation=1)) is True
    assert get_kc(custom)["status"]["phase"] == "Provisioning"
    assert _injected(dc) == [("update", "kafkaclusters/status", "demo", 409)] * 2

    dc.call(lambda c: c.faults.fail_next(CONFLICT_RETRIES, 409, verb="update", resource="kafkaclusters/status"))
    with pytest.raises(ApplicationError) as err:
        env.run(acts.update_status, StatusUpdate(ref=ref, phase="Ready"))
    assert err.value.type == "Conflict" and not err.value.non_retryable
    assert err.value.message == f"{KIND}/demo: status kept changing (409 {CONFLICT_RETRIES} times)"
    assert get_kc(custom)["status"]["phase"] == "Provisioning"


# -- observe -------------------------------------------------------------------------------------------------


def test_observe_a_missing_cluster(acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
                                   custom: client.CustomObjectsApi) -> None:
    observed = env.run(acts.observe_cluster, ref)
    assert observed.found is False and observed.name == "demo"


def test_observe_a_cluster_without_pods_reports_kafka_unreachable_fast(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef) -> None:
    kc = create_cluster(custom, SMALL)
    started = time.monotonic()
    observed = env.run(acts.observe_cluster, ref)
    assert time.monotonic() - started < 1.0
    assert observed.found and observed.uid == kc["metadata"]["uid"] and observed.generation == 1
    assert observed.spec == kc["spec"] and observed.cluster_id is None and not observed.deleting
    assert [f"{o.kind}/{o.name}" for o in observed.objects] == ALL_OBJECTS
    assert not any(o.exists for o in observed.objects)
    assert observed.controllers is not None and not observed.controllers.exists
    assert observed.kafka.reachable is False
    assert "no controller pods" in observed.kafka.error and "no broker pods" in observed.kafka.error


def test_kafka_probes_are_bounded_in_time_and_leave_no_threads() -> None:
    """A listener that accepts and never answers (a hung process) costs at most the timeout; nobody
    listening fails at once; a failed admin-client bootstrap stops the IO thread kafka-python started."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(clients.KafkaUnreachable, match="timed out"):
            clients.describe_quorum_via_controllers(f"127.0.0.1:{port}", timeout=0.3)
        assert time.monotonic() - started < 1.0
    with pytest.raises(clients.KafkaUnreachable, match="cannot connect"):
        clients.describe_quorum_via_controllers(f"127.0.0.1:{port}", timeout=0.3)

    threads = threading.active_count()
    started = time.monotonic()
    with pytest.raises(clients.KafkaUnreachable, match="cannot bootstrap"):
        clients.kafka_admin_client(f"127.0.0.1:{port}", timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert threading.active_count() == threads


# -- status --------------------------------------------------------------------------------------------------


def test_update_status_merges_conditions_and_skips_no_op_writes(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef) -> None:
    create_cluster(custom, SMALL)
    update = StatusUpdate(ref=ref, observed_generation=1, phase="Provisioning", cluster_id=CLUSTER_ID,
                          brokers_desired=3, brokers_ready=1, controllers_desired=3, controllers_ready=3,
                          current_operation={"type": "Provisioning", "workflowId": ref.workflow_id, "step": "brokers"},
                          conditions=[ConditionUpdate(type="Ready", status="False", reason="Provisioning",
                                                      message="waiting for brokers")])
    assert env.run(acts.update_status, update) is True
    kc = get_kc(custom)
    status = kc["status"]
    assert status["phase"] == "Provisioning" and status["observedGeneration"] == 1
    assert status["clusterId"] == CLUSTER_ID and status["readyBrokers"] == "1/3"
    assert status["brokers"] == {"desired": 3, "ready": 1} and status["controllers"] == {"desired": 3, "ready": 3}
    assert status["brokerSelector"] == "app.kubernetes.io/component=broker,app.kubernetes.io/instance=demo"
    assert status["currentOperation"]["step"] == "brokers"
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"], ready["observedGeneration"]) == \
        ("Ready", "False", "Provisioning", 1)

    # The same update again writes nothing.
    rv = kc["metadata"]["resourceVersion"]
    assert env.run(acts.update_status, update) is False
    assert get_kc(custom)["metadata"]["resourceVersion"] == rv

    # Pretend the condition has been False for a long time: a new reason keeps lastTransitionTime...
    kc["status"]["conditions"][0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    custom.replace_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "demo", kc)
    env.run(acts.update_status, StatusUpdate(ref=ref, conditions=[
        ConditionUpdate(type="Ready", status="False", reason="BrokersStarting", message="2/3")]))
    [ready] = get_kc(custom)["status"]["conditions"]
    assert (ready["reason"], ready["lastTransitionTime"]) == ("BrokersStarting", "2020-01-01T00:00:00Z")

    # ...a new status moves it; other condition types are added beside it; {} clears the operation.
    env.run(acts.update_status, StatusUpdate(ref=ref, phase="Ready", brokers_ready=3, current_operation={},
                                             last_operation={"type": "Provisioning", "workflowId": ref.workflow_id,
                                                             "result": "Succeeded"},
                                             conditions=[ConditionUpdate(type="Ready", status="True", reason="Ready"),
                                                         ConditionUpdate(type="Reconciling", status="False",
                                                                         reason="Idle")]))
    status = get_kc(custom)["status"]
    ready, reconciling = status["conditions"]
    assert ready["status"] == "True" and ready["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert reconciling["type"] == "Reconciling" and reconciling["observedGeneration"] == 1
    assert status["readyBrokers"] == "3/3" and "currentOperation" not in status
    assert status["lastOperation"]["result"] == "Succeeded"


def test_update_status_of_a_missing_cluster_is_a_no_op(acts: ClusterActivities, env: ActivityEnvironment,
                                                        ref: ClusterRef, custom: client.CustomObjectsApi) -> None:
    assert env.run(acts.update_status, StatusUpdate(ref=ref, phase="Ready")) is False


# -- events --------------------------------------------------------------------------------------------------


def test_identical_events_are_aggregated(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                         env: ActivityEnvironment, ref: ClusterRef, core: client.CoreV1Api) -> None:
    kc = create_cluster(custom, SMALL)
    event = EventInput(ref=ref, reason="ProvisioningStarted", message="creating 1 controller and 1 broker")
    first = env.run(acts.record_event, event)
    second = env.run(acts.record_event, event)
    assert first == second
    other = env.run(acts.record_event, EventInput(ref=ref, type="Warning", reason="InvalidSpec",
                                                  message="spec.version: unsupported"))
    assert other != first

    events = {e.metadata.name: e for e in core.list_namespaced_event(
        NS, field_selector=f"involvedObject.uid={kc['metadata']['uid']}").items}
    assert set(events) == {first, other}
    ev = events[first]
    assert ev.count == 2 and ev.type == "Normal" and ev.reason == "ProvisioningStarted"
    assert (ev.involved_object.kind, ev.involved_object.name, ev.involved_object.api_version) == \
        (KIND, "demo", f"{GROUP}/{VERSION}")
    assert ev.source.component == COMPONENT and ev.reporting_component == COMPONENT
    assert ev.reporting_instance == "test-worker"
    assert ev.first_timestamp <= ev.last_timestamp
    assert events[other].count == 1 and events[other].type == "Warning"


# -- finalizers ----------------------------------------------------------------------------------------------


def test_finalizer_lifecycle_with_deletion(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                           env: ActivityEnvironment, ref: ClusterRef) -> None:
    create_cluster(custom, SMALL)
    assert env.run(acts.ensure_finalizer, ref) is True
    assert env.run(acts.ensure_finalizer, ref) is True
    assert get_kc(custom)["metadata"]["finalizers"] == [FINALIZER]

    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo")
    observed = env.run(acts.observe_cluster, ref)
    assert observed.found and observed.deleting and observed.finalizers == [FINALIZER]
    assert env.run(acts.ensure_finalizer, ref) is True  # still there; nothing to add
    env.run(acts.remove_finalizer, ref)
    wait_for(lambda: not env.run(acts.observe_cluster, ref).found, message="KafkaCluster gone")
    env.run(acts.remove_finalizer, ref)  # idempotent on a cluster that is gone
    assert env.run(acts.ensure_finalizer, ref) is False


def test_finalizer_keeps_other_finalizers(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                          env: ActivityEnvironment, ref: ClusterRef) -> None:
    kc = create_cluster(custom, SMALL)
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo",
                                          {"metadata": {"finalizers": ["example.com/other"]}})
    env.run(acts.ensure_finalizer, ref)
    assert get_kc(custom)["metadata"]["finalizers"] == ["example.com/other", FINALIZER]
    env.run(acts.remove_finalizer, ref)
    meta = get_kc(custom)["metadata"]
    assert meta["finalizers"] == ["example.com/other"] and meta["uid"] == kc["metadata"]["uid"]


# -- cleanup -------------------------------------------------------------------------------------------------


def test_cleanup_deletes_claims_only_when_asked(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                                env: ActivityEnvironment, ref: ClusterRef,
                                                core: client.CoreV1Api) -> None:
    kc = create_cluster(custom, SMALL)
    env.run(acts.ensure_finalizer, ref)
    env.run(acts.apply_manifests, apply_input(kc))

    def claims() -> list[str]:
        return sorted(c.metadata.name for c in core.list_namespaced_persistent_volume_claim(
            NS, label_selector=cluster_selector("demo")).items)

    expected = ["data-demo-broker-0", "data-demo-controller-1000"]
    wait_for(lambda: claims() == expected, timeout=15, message="claims created by the StatefulSets")

    # Claims of a live cluster are never deleted.
    with pytest.raises(ApplicationError) as err:
        env.run(acts.cleanup_cluster, CleanupInput(ref=ref, delete_claims=True))
    assert err.value.type == "NotDeleting" and err.value.non_retryable

    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo")
    assert env.run(acts.cleanup_cluster, CleanupInput(ref=ref, delete_claims=False)) == []
    assert claims() == expected
    # Each role's deleteClaim on its own: the brokers' claims go, the controllers' stay.
    only_brokers = CleanupInput(ref=ref, delete_broker_claims=True, delete_controller_claims=False)
    assert env.run(acts.cleanup_cluster, only_brokers) == ["data-demo-broker-0"]
    wait_for(lambda: claims() == ["data-demo-controller-1000"], timeout=20, message="broker claim deleted")
    assert env.run(acts.cleanup_cluster, CleanupInput(ref=ref, delete_claims=True)) == ["data-demo-controller-1000"]
    # The claims go once their pods are gone (pvc-protection); a retry meanwhile is harmless.
    assert set(env.run(acts.cleanup_cluster, CleanupInput(ref=ref, delete_claims=True))) <= set(expected)
    wait_for(lambda: claims() == [], timeout=20, message="claims deleted")
    env.run(acts.remove_finalizer, ref)
    assert env.run(acts.cleanup_cluster, CleanupInput(ref=ref, delete_claims=True)) == []


# -- waits against simulated Kafka ---------------------------------------------------------------------------


def test_waits_complete_against_a_simulated_kraft_cluster(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api) -> None:
    kc = create_cluster(custom, {"controllers": {"replicas": 3}, "brokers": {"replicas": 3}})
    beats: list[dict[str, Any]] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])

    env.run(acts.apply_manifests, apply_input(kc, ["controllers"]))
    wait = WaitInput(ref=ref, spec=kc["spec"], expected=3, poll_seconds=0.2)
    done = env.run(acts.wait_controllers_ready, wait)
    assert done.ready == 3 and "voters [1000, 1001, 1002]" in done.detail
    assert beats[-1]["leader"] in (1000, 1001, 1002) and beats[-1]["voters"] == [1000, 1001, 1002]

    # Whichever controller is asked first (two of three are followers, which answer NOT_LEADER_OR_FOLLOWER),
    # the probe finds the active controller through DescribeCluster and gets the same answer from it.
    answers = set()
    for pod in core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=controller").items:
        address = json.loads(pod.metadata.annotations[clients.LOOPBACK_ANNOTATION])["9093"]
        quorum = clients.describe_quorum_via_controllers(address, timeout=1.0)
        answers.add((quorum.cluster_id, quorum.leader_id, tuple(quorum.voters)))
    assert answers == {(CLUSTER_ID, beats[-1]["leader"], (1000, 1001, 1002))}

    env.run(acts.apply_manifests, apply_input(kc, ["brokers"]))
    done = env.run(acts.wait_brokers_registered, wait)
    assert done.ready == 3 and "registered [0, 1, 2]" in done.detail

    observed = env.run(acts.observe_cluster, ref)
    assert observed.kafka.reachable and observed.kafka.error == ""
    assert observed.kafka.cluster_id == CLUSTER_ID
    assert observed.kafka.quorum_voters == [1000, 1001, 1002] and observed.kafka.quorum_leader_id is not None
    assert observed.kafka.registered_brokers == [0, 1, 2]
    assert [p.node_id for p in observed.controller_pods] == [1000, 1001, 1002]
    assert all(p.ready and p.phase == "Running" and p.config_hash for p in observed.broker_pods)
    assert observed.brokers is not None and observed.brokers.ready_replicas == 3
    assert all(o.exists and o.spec_hash for o in observed.objects)

    # A retried attempt carries on from the heartbeat details it is given back (as plain dicts).
    env.info = dataclasses.replace(env.info, heartbeat_details=[{"startedAt": "2026-01-01T00:00:00Z", "polls": 7}])
    resumed = env.run(acts.wait_brokers_registered, wait)
    assert "since 2026-01-01T00:00:00Z, 8 polls" in resumed.detail


def test_a_wait_heartbeats_until_cancelled(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                           env: ActivityEnvironment, ref: ClusterRef) -> None:
    kc = create_cluster(custom, SMALL)
    beats: list[dict[str, Any]] = []
    first_beat = threading.Event()

    def on_heartbeat(*details: Any) -> None:
        beats.append(details[0])
        first_beat.set()

    env.on_heartbeat = on_heartbeat
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            env.run(acts.wait_controllers_ready, WaitInput(ref=ref, spec=kc["spec"], expected=1, poll_seconds=5))
        except BaseException as err:  # the test inspects it
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert first_beat.wait(5)
    started = time.monotonic()
    env.cancel()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledError)
    assert beats[0]["detail"] == "0/1 controllers Ready; waiting for demo-controller-1000"


@pytest.fixture(autouse=True)
def _quiet_kafka_client(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """kafka-python logs every bootstrap retry at WARNING while brokers register; not a test failure."""
    caplog.set_level("ERROR", logger="kafka")
    yield


def test_operator_settings_from_env() -> None:
    default = OperatorSettings.from_env({})
    assert default.kafka_addressing is KafkaAddressing.CLUSTER_DNS and default.kubeconfig is None
    assert default.namespaces == () and not default.temporal_tls.enabled
    settings = OperatorSettings.from_env({
        "KUBECONFIG": "/k", "BALLAST_NAMESPACES": "kafka, team-a,", "BALLAST_TASK_QUEUE": "q",
        "TEMPORAL_ADDRESS": "temporal:7233", "TEMPORAL_NAMESPACE": "ops", "TEMPORAL_TLS_CERT": "/c.pem",
        "TEMPORAL_TLS_KEY": "/k.pem"})
    assert settings.namespaces == ("kafka", "team-a") and settings.task_queue == "q"
    assert (settings.temporal_address, settings.temporal_namespace) == ("temporal:7233", "ops")
    assert settings.temporal_tls.enabled and settings.temporal_tls.cert_path == "/c.pem"
    with pytest.raises(ValueError, match=r"^BALLAST_KAFKA_ADDRESSING: "):
        OperatorSettings.from_env({"BALLAST_KAFKA_ADDRESSING": "dns"})
