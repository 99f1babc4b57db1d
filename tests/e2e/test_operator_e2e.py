"""The whole product: Temporal dev server + devcluster (simulated KRaft pods) + `ballast operator` process.

Everything a user would do goes through real clients: kubectl and the kubernetes client against
devcluster, the Temporal client against the dev server.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client, WorkflowExecutionStatus

from ballast.devserver import DevServer
from ballast.manifests import cluster_selector
from ballast.messages import SIGNAL_OBSERVED_CHANGED, SIGNAL_SPEC_CHANGED
from ballast.spec import GROUP, PLURAL, VERSION
from tests.conftest import Kubectl, wait_for
from tests.e2e.conftest import OperatorProcess

SMALL = {"controllers": {"replicas": 3, "storage": {"size": "1Gi"}},
         "brokers": {"replicas": 3, "storage": {"size": "2Gi"}, "config": {"min.insync.replicas": "2"}}}


def _create(custom: client.CustomObjectsApi, name: str, spec: dict) -> dict:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": name}, "spec": spec}
    return custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)


def _get(custom: client.CustomObjectsApi, name: str) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)


def _wait_ready(kubectl: Kubectl, name: str, operator: OperatorProcess, timeout: int = 120) -> None:
    proc = kubectl.run("wait", "--for=condition=Ready", f"kc/{name}", f"--timeout={timeout}s", check=False,
                       timeout=timeout + 30)
    assert proc.returncode == 0, f"{proc.stderr}\n--- operator logs ---\n{operator.logs()[-6000:]}"


def _workflow_status(server: DevServer, workflow_id: str) -> WorkflowExecutionStatus | None:
    async def describe() -> WorkflowExecutionStatus | None:
        temporal = await Client.connect(server.address)
        return (await temporal.get_workflow_handle(workflow_id).describe()).status

    return asyncio.run(describe())


Sample = tuple[str, dict[str, str], float]


def _scrape(address: str) -> list[Sample]:
    """Every sample ``http://address/metrics`` serves right now, parsed as Prometheus text exposition."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the ``name`` samples whose labels include ``labels``."""
    return sum(value for sample, have, value in samples
               if sample == name and all(have.get(k) == v for k, v in labels.items()))


def _operator_metric(operator: OperatorProcess, name: str, **labels: str) -> float:
    return _total(_scrape(operator.env["BALLAST_METRICS_ADDRESS"]), name, **labels)


def _assert_serves_metrics(operator: OperatorProcess, task_queue: str) -> None:
    """The operator process serves its own metrics and the Temporal SDK's, both counting this cluster's work.

    The counters are bumped right after the write that made the cluster Ready, hence waits, not reads.
    """
    wait_for(lambda: _operator_metric(operator, "ballast_reconcile_outcomes_total", outcome="ready") >= 1,
             timeout=10, message="ballast_reconcile_outcomes_total{outcome=ready} >= 1")
    samples = _scrape(operator.env["BALLAST_METRICS_ADDRESS"])
    assert _total(samples, "ballast_watch_events_total", resource="kafkaclusters", type="ADDED") >= 1
    assert _total(samples, "ballast_watch_events_total", resource="pods") > 0
    assert _total(samples, "ballast_signals_total", signal=SIGNAL_SPEC_CHANGED, result="sent") >= 1
    assert _total(samples, "ballast_signals_total", signal=SIGNAL_OBSERVED_CHANGED, result="sent") > 0
    assert _total(samples, "ballast_watchers_leader") == 1  # leader election off: the only watcher leads

    def temporal() -> list[Sample]:
        return _scrape(operator.env["BALLAST_TEMPORAL_METRICS_ADDRESS"])

    wait_for(lambda: _total(temporal(), "temporal_workflow_task_execution_latency_count", task_queue=task_queue)
             > 0, timeout=10, message="temporal_workflow_task_execution_latency on the SDK metrics endpoint")
    assert _total(temporal(), "temporal_activity_execution_latency_count", task_queue=task_queue) > 0


def test_create_to_ready_then_spec_change_then_delete(operator: OperatorProcess, kubectl: Kubectl,
                                                      custom: client.CustomObjectsApi, core: client.CoreV1Api,
                                                      apps: client.AppsV1Api, temporal_server: DevServer,
                                                      task_queue: str) -> None:
    _create(custom, "alpha", SMALL)
    _wait_ready(kubectl, "alpha", operator)
    _assert_serves_metrics(operator, task_queue)
    kc = _get(custom, "alpha")
    status = kc["status"]
    assert status["observedGeneration"] == 1 and status["readyBrokers"] == "3/3" and status["clusterId"]
    assert {s.metadata.name for s in apps.list_namespaced_stateful_set("default").items} == {
        "alpha-controller", "alpha-broker"}
    header, row = kubectl.run("get", "kc", "alpha").stdout.splitlines()
    assert header.split() == ["NAME", "BROKERS", "PHASE", "OPERATION", "AGE"]
    assert row.split()[:3] == ["alpha", "3/3", "Ready"]

    # A spec change: a new generation, reconciled, observedGeneration follows.
    custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "alpha",
                                          {"spec": {"brokers": {"config": {"min.insync.replicas": "2",
                                                                           "log.retention.hours": "24"}}}})
    wait_for(lambda: _get(custom, "alpha")["status"].get("observedGeneration") == 2, timeout=60,
             message="generation 2 reconciled")
    config = core.read_namespaced_config_map("alpha-broker-config", "default")
    assert "24" in json.dumps(config.data)

    # The scale subresource: kubectl scale is a new generation with 4 brokers, reconciled like any other.
    kubectl.run("scale", "kc/alpha", "--replicas=4")
    assert _get(custom, "alpha")["spec"]["brokers"]["replicas"] == 4
    wait_for(lambda: (_get(custom, "alpha")["status"].get("observedGeneration") == 3
                      and _get(custom, "alpha")["status"].get("readyBrokers") == "4/4"), timeout=90,
             message="generation 3 (4 brokers) reconciled")
    assert apps.read_namespaced_stateful_set("alpha-broker", "default").status.ready_replicas == 4
    assert kubectl.run("get", "kc", "alpha", "--no-headers").stdout.split()[:3] == ["alpha", "4/4", "Ready"]
    claims = {c.metadata.name for c in core.list_namespaced_persistent_volume_claim("default").items}
    assert claims == {f"data-alpha-broker-{i}" for i in range(4)} | {
        f"data-alpha-controller-{i}" for i in (1000, 1001, 1002)}

    # Delete: owned objects are garbage-collected, the claims are kept (deleteClaim defaults to false),
    # and the workflow ends.
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "alpha")

    def gone() -> bool:
        try:
            _get(custom, "alpha")
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(gone, timeout=60, message="KafkaCluster deleted (finalizer removed)")
    selector = cluster_selector("alpha")
    policy = client.PolicyV1Api(apps.api_client)
    wait_for(lambda: not apps.list_namespaced_stateful_set("default").items, timeout=30,
             message="StatefulSets garbage-collected")
    wait_for(lambda: not (core.list_namespaced_service("default", label_selector=selector).items
                          or core.list_namespaced_config_map("default", label_selector=selector).items
                          or policy.list_namespaced_pod_disruption_budget("default", label_selector=selector).items),
             timeout=30, message="Services, ConfigMaps and PodDisruptionBudgets garbage-collected")
    # The cleanup ran before the finalizer went: a claim it deleted would carry a deletionTimestamp now (kept
    # by pvc-protection while its pod shuts down).
    kept = core.list_namespaced_persistent_volume_claim("default").items
    assert {c.metadata.name for c in kept} == claims
    assert not [c.metadata.name for c in kept if c.metadata.deletion_timestamp]
    wait_for(lambda: _workflow_status(temporal_server, "kafkacluster/default/alpha")
             == WorkflowExecutionStatus.COMPLETED, timeout=30, message="cluster workflow completed")
    assert _operator_metric(operator, "ballast_reconcile_outcomes_total", outcome="deleted") == 1


def test_operator_killed_mid_provisioning_resumes_without_duplicates(
        operator: OperatorProcess, kubectl: Kubectl, custom: client.CustomObjectsApi,
        record_writes: Callable[[], list[tuple[str, str, str]]]) -> None:
    _create(custom, "beta", SMALL)
    # Kill the operator once the controllers exist but before the cluster is Ready.
    wait_for(lambda: any(key == "apps/statefulsets" and t == "ADDED" for t, key, _ in record_writes()),
             timeout=60, message="controller StatefulSet created")
    operator.kill()
    operator.start()
    _wait_ready(kubectl, "beta", operator)
    created = Counter((key, name) for t, key, name in record_writes() if t == "ADDED" and key in (
        "apps/statefulsets", "/services", "/configmaps", "policy/poddisruptionbudgets"))
    assert len(created) == 9 and all(count == 1 for count in created.values()), created
    pods = Counter(name for t, key, name in record_writes() if t == "ADDED" and key == "/pods")
    assert pods == Counter({f"default/beta-controller-{i}": 1 for i in (1000, 1001, 1002)}
                           | {f"default/beta-broker-{i}": 1 for i in range(3)}), pods


def test_invalid_spec_is_reported_and_changes_nothing(operator: OperatorProcess, kubectl: Kubectl,
                                                      custom: client.CustomObjectsApi, core: client.CoreV1Api,
                                                      apps: client.AppsV1Api) -> None:
    # Passes the CRD schema, fails the operator's deeper validation (an operator-owned config key).
    _create(custom, "gamma", {**SMALL, "brokers": {**SMALL["brokers"], "config": {"node.id": "7"}}})

    def invalid() -> dict | None:
        for cond in (_get(custom, "gamma").get("status") or {}).get("conditions") or []:
            if cond["type"] == "Invalid" and cond["status"] == "True":
                return cond
        return None

    cond = wait_for(invalid, timeout=60, message="Invalid condition")
    assert "node.id" in cond["message"]  # type: ignore[index]
    wait_for(lambda: _operator_metric(operator, "ballast_reconcile_outcomes_total", outcome="invalid") >= 1,
             timeout=10, message="ballast_reconcile_outcomes_total{outcome=invalid} >= 1")
    assert not apps.list_namespaced_stateful_set("default").items

    def warning() -> bool:
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=gamma").items
        return any(e.type == "Warning" and "node.id" in e.message for e in events)

    wait_for(warning, timeout=30, message="a Warning Event naming the field")
    # Fixing the spec (a new generation) provisions the cluster.
    custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "gamma",
                                          {"spec": {"brokers": {"config": {"node.id": None}}}})
    _wait_ready(kubectl, "gamma", operator)
