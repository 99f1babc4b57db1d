"""Watchers against a real devcluster and a real Temporal dev server.

A recording stand-in registered as "KafkaClusterWorkflow" (so these tests do not depend on the real
workflow) keeps every signal it receives and answers them through a query; for each ``spec_changed`` it
runs one activity inside the signal's trace context, so tracing can be followed watcher -> workflow ->
activity. Waiting is always on a condition with a deadline; absence of a signal is proven by ordering
(a later, meaningful change arrives as the very next signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import pytest
    import yaml
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import REGISTRY
    from temporalio.client import Client, WorkflowExecutionStatus
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.service import RPCError, RPCStatusCode
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from ballast import observability
    from ballast.messages import (
        SIGNAL_OBSERVED_CHANGED,
        SIGNAL_SPEC_CHANGED,
        KafkaClusterWorkflowInput,
        ObservedChanged,
        SpecChanged,
        cluster_workflow_id,
    )
    from ballast.spec import GROUP, PLURAL, VERSION
    from devcluster.cluster import DevClusterThread
    from devcluster.controllers.kubelet import Kubelet
    from tests.conftest import wait_for
    from watchers.kafkaclusters import ClusterState, KafkaClusterWatcher, decide
    from watchers.leader import LeaderElector, LeaseConfig
    from watchers.owned import OwnedWatcher, drift_reason, owning_cluster
    from watchers.reflector import ObjectEvent, Reflector
    from watchers.runner import Watchers, WatcherSettings

NS = "default"
CRD = "deploy/crds/kafkaclusters.kafka.ballast.dev.yaml"  # relative to the repository root
T = TypeVar("T")


# -- the recording stand-in workflow ----------------------------------------------------------------

@activity.defn(name="touch_cluster")
async def touch_cluster(generation: int) -> int:
    return generation


@workflow.defn(name="KafkaClusterWorkflow")
class RecordingWorkflow:
    def __init__(self) -> None:
        self.spec: list[SpecChanged] = []
        self.observed: list[ObservedChanged] = []
        self.todo: list[SpecChanged] = []

    @workflow.run
    async def run(self, input: KafkaClusterWorkflowInput) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.todo))
            change = self.todo.pop(0)
            # What the real workflow can do to keep each event's activities inside that event's trace.
            with observability.attached_trace_context(change.trace_context):
                await workflow.execute_activity(touch_cluster, change.generation,
                                                start_to_close_timeout=timedelta(seconds=10))

    @workflow.signal(name=SIGNAL_SPEC_CHANGED)
    def spec_changed(self, change: SpecChanged) -> None:
        self.spec.append(change)
        self.todo.append(change)

    @workflow.signal(name=SIGNAL_OBSERVED_CHANGED)
    def observed_changed(self, change: ObservedChanged) -> None:
        self.observed.append(change)

    @workflow.query(name="spec_signals")
    def spec_signals(self) -> list[SpecChanged]:
        return self.spec

    @workflow.query(name="observed_signals")
    def observed_signals(self) -> list[ObservedChanged]:
        return self.observed


# -- helpers and fixtures ---------------------------------------------------------------------------

async def eventually(predicate: Callable[[], Awaitable[T | None]], timeout: float = 10.0,
                     message: str = "condition") -> T:
    """Await ``predicate()`` until it returns something truthy (polling, never blocking the loop)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.03)


@contextlib.asynccontextmanager
async def running(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def kc(name: str, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": name, **meta},
            "spec": spec or {}}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    """CustomObjectsApi with the KafkaCluster CRD installed and Established."""
    ext = client.ApiextensionsV1Api(api_client)
    crd = Path(__file__).resolve().parents[2] / CRD  # resolved here: the workflow sandbox forbids it at import
    ext.create_custom_resource_definition(yaml.safe_load(crd.read_text()))
    deadline = time.monotonic() + 10
    while not any(c.type == "Established" and c.status == "True"
                  for c in ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}").status.conditions or []):
        assert time.monotonic() < deadline, "CRD not Established"
        time.sleep(0.02)
    return client.CustomObjectsApi(api_client)


@pytest.fixture
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (signal-with-start semantics are the server's)."""
    binary = Path(sys.executable).parent / "temporal"
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(binary),
                                                data_converter=pydantic_data_converter)
    async with env:
        yield env


async def traced_client(env: WorkflowEnvironment, provider: TracerProvider) -> Client:
    config = env.client.config()
    config["interceptors"] = [observability.tracing_interceptor(provider)]
    return Client(**config)


def recording_worker(temporal_client: Client, task_queue: str) -> Worker:
    return Worker(temporal_client, task_queue=task_queue, workflows=[RecordingWorkflow],
                  activities=[touch_cluster])


async def spec_signals(temporal_client: Client, name: str) -> list[SpecChanged]:
    try:
        return await temporal_client.get_workflow_handle(cluster_workflow_id(NS, name)).query(
            "spec_signals", result_type=list[SpecChanged])
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return []
        raise


async def observed_signals(temporal_client: Client, name: str) -> list[ObservedChanged]:
    return await temporal_client.get_workflow_handle(cluster_workflow_id(NS, name)).query(
        "observed_signals", result_type=list[ObservedChanged])


async def nth_spec_signal(temporal_client: Client, name: str, n: int) -> list[SpecChanged]:
    """Wait until cluster ``name`` got ``n`` spec_changed signals; fail if it got more."""
    async def got() -> list[SpecChanged] | None:
        sigs = await spec_signals(temporal_client, name)
        return sigs if len(sigs) >= n else None
    sigs = await eventually(got, message=f"{n} spec_changed signal(s) for {name}")
    assert len(sigs) == n, f"expected exactly {n} signals, got {sigs}"
    return sigs


def store_writes(dc: DevClusterThread) -> list[tuple[str, str, str]]:
    """From now on, every write devcluster commits, as (event type, resource key, namespace/name) -- from
    its own store, so nothing a client does escapes it. Writes of devcluster's own node controller
    (``/nodes``, ``kube-node-lease``) are left out."""
    seen: list[tuple[str, str, str]] = []

    def install(cluster: Any) -> None:
        def listener(event: Any) -> None:
            meta = event.obj["metadata"]
            where = f"{meta.get('namespace', '')}/{meta['name']}"
            if event.key != "/nodes" and not where.startswith("kube-node-lease/"):
                seen.append((event.type, event.key, where))

        cluster.api.store.listeners.append(listener)

    dc.call(install)
    return seen


# -- pure decisions ---------------------------------------------------------------------------------

def _obj(generation: int = 1, uid: str = "u1", deleting: bool = False, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": NS, "name": "k", "uid": uid, "generation": generation,
                            "resourceVersion": "7", "annotations": annotations}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def test_decide_what_matters() -> None:
    base = ClusterState("u1", 1, False, ())
    assert decide(ObjectEvent("ADDED", _obj(), None), None) is not None
    assert decide(ObjectEvent("MODIFIED", _obj(), _obj()), base) is None  # status/labels only
    assert decide(ObjectEvent("MODIFIED", _obj(2), _obj()), base).reason == "generation"  # type: ignore[union-attr]
    roll = decide(ObjectEvent("MODIFIED", _obj(**{"kafka.ballast.dev/roll": "x"}), _obj()), base)
    assert roll is not None and roll.state.annotations == (("kafka.ballast.dev/roll", "x"),) and roll.start
    assert decide(ObjectEvent("MODIFIED", _obj(**{"example.com/other": "x"}), _obj()), base) is None
    deleting = decide(ObjectEvent("MODIFIED", _obj(deleting=True), _obj()), base)
    assert deleting is not None and deleting.state.deleting and deleting.start
    gone = decide(ObjectEvent("DELETED", _obj(), _obj()), base)
    assert gone is not None and gone.state.deleting and not gone.start  # signal only: nothing to start
    assert decide(ObjectEvent("DELETED", _obj(), _obj()), ClusterState("u1", 1, True, ())) is None
    assert decide(ObjectEvent("ADDED", _obj(uid="u2"), None), base).reason == "new"  # type: ignore[union-attr]


def test_drift_reasons() -> None:
    def pod(ready: bool, phase: str = "Running") -> dict[str, Any]:
        return {"metadata": {"name": "p", "namespace": NS, "labels": {"kafka.ballast.dev/cluster": "k"}},
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}}
    assert drift_reason("Pod", ObjectEvent("MODIFIED", pod(False), pod(True))) == "PodNotReady"
    assert drift_reason("Pod", ObjectEvent("MODIFIED", pod(True), pod(False))) == "PodReady"
    assert drift_reason("Pod", ObjectEvent("MODIFIED", pod(False, "Failed"), pod(True))) == "PodFailed"
    assert drift_reason("Pod", ObjectEvent("ADDED", pod(False), None)) is None
    assert drift_reason("Service", ObjectEvent("DELETED", pod(True), pod(True))) == "ServiceDeleted"
    sts = {"metadata": {"generation": 1, "annotations": {"kafka.ballast.dev/spec-hash": "a"}}}
    by_hand = {"metadata": {"generation": 2, "annotations": {"kafka.ballast.dev/spec-hash": "a"}}}
    by_operator = {"metadata": {"generation": 2, "annotations": {"kafka.ballast.dev/spec-hash": "b"}}}
    assert drift_reason("StatefulSet", ObjectEvent("MODIFIED", by_hand, sts)) == "StatefulSetModified"
    assert drift_reason("StatefulSet", ObjectEvent("MODIFIED", by_operator, sts)) is None
    assert owning_cluster(pod(True)) == (NS, "k")
    owned = {"metadata": {"namespace": NS, "ownerReferences": [
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "name": "c", "uid": "x"}]}}
    assert owning_cluster(owned) == (NS, "c")


def test_exporter_follows_otel_environment() -> None:
    assert observability.select_span_exporter({}) is None
    otlp = observability.select_span_exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert type(otlp).__name__ == "OTLPSpanExporter"
    assert observability.select_span_exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                                               "OTEL_TRACES_EXPORTER": "none"}) is None
    assert type(observability.select_span_exporter({"OTEL_TRACES_EXPORTER": "console"})).__name__ == \
        "ConsoleSpanExporter"
    provider = observability.configure_tracing(use_env=False, set_global=False)
    assert provider.resource.attributes["service.name"] == "ballast"
    provider.shutdown()


def test_json_logs_carry_cluster_workflow_and_trace(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, _ = spans
    record_holder: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record_holder.append(self.format(record))

    handler = Capture()
    handler.addFilter(observability.ContextFilter())
    handler.setFormatter(observability.JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    try:
        with provider.get_tracer("t").start_as_current_span("s") as span, \
                observability.log_context(cluster="default/demo", workflow_id="kafkacluster/default/demo"):
            logger.warning("hello %s", "world")
        import json
        line = json.loads(record_holder[0])
        assert line["msg"] == "hello world" and line["level"] == "WARNING"
        assert line["cluster"] == "default/demo" and line["workflow_id"] == "kafkacluster/default/demo"
        assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    finally:
        logger.removeHandler(handler)


# -- KafkaCluster watcher ---------------------------------------------------------------------------

async def test_cluster_changes_signal_with_start(custom: client.CustomObjectsApi, api_client: client.ApiClient,
                                                 temporal: WorkflowEnvironment) -> None:
    tq = f"tq-{uuid.uuid4()}"
    tc = temporal.client
    watcher = KafkaClusterWatcher(api_client, tc, task_queue=tq)
    async with recording_worker(tc, tq), running(watcher.run()):
        created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, kc("demo"))
        [first] = await nth_spec_signal(tc, "demo", 1)
        assert first.generation == 1 and not first.deleting
        assert first.resource_version == created["metadata"]["resourceVersion"]
        assert first.uid == created["metadata"]["uid"]
        desc = await tc.get_workflow_handle(cluster_workflow_id(NS, "demo")).describe()
        assert desc.workflow_type == "KafkaClusterWorkflow" and desc.status == WorkflowExecutionStatus.RUNNING
        assert desc.task_queue == tq

        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo", {"spec": {"brokers": {"replicas": 5}}})
        sigs = await nth_spec_signal(tc, "demo", 2)
        assert sigs[1].generation == 2

        # Labels, foreign annotations and status do not bump the generation: no signal. The roll
        # annotation that follows must be the very next signal.
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo",
                                              {"metadata": {"labels": {"team": "a"},
                                                            "annotations": {"example.com/note": "x"}}})
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "demo",
                                                     {"status": {"phase": "Provisioning"}})
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo",
                                              {"metadata": {"annotations": {"kafka.ballast.dev/roll": "now"}}})
        sigs = await nth_spec_signal(tc, "demo", 3)
        assert sigs[2].annotations == {"kafka.ballast.dev/roll": "now"} and sigs[2].generation == 2

        custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo")
        sigs = await nth_spec_signal(tc, "demo", 4)
        assert sigs[3].deleting and sigs[3].generation == 2

        # With a finalizer, deletion is first a deletionTimestamp: signalled (with start) once.
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL,
                                               kc("fin", finalizers=["kafka.ballast.dev/cleanup"]))
        await nth_spec_signal(tc, "fin", 1)
        custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "fin")
        sigs = await nth_spec_signal(tc, "fin", 2)
        assert sigs[1].deleting
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "fin", {"metadata": {"finalizers": None}})
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, kc("after"))
        await nth_spec_signal(tc, "after", 1)
        # The final DELETED of "fin" came before "after" was created: it added no signal.
        assert len(await spec_signals(tc, "fin")) == 2


async def test_relist_after_expired_watch_loses_nothing(dc: DevClusterThread, custom: client.CustomObjectsApi,
                                                        api_client: client.ApiClient,
                                                        temporal: WorkflowEnvironment) -> None:
    tq = f"tq-{uuid.uuid4()}"
    tc = temporal.client
    # timeoutSeconds of 1-2 s: the server ends streams often and the watcher must reconnect seamlessly.
    watcher = KafkaClusterWatcher(api_client, tc, task_queue=tq, timeout_seconds=1)
    for name in ("a", "b"):
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, kc(name))
    closed_before = metric("ballast_watch_restarts_total", resource="kafkaclusters", reason="closed")
    async with recording_worker(tc, tq), running(watcher.run()):
        await nth_spec_signal(tc, "a", 1)
        await nth_spec_signal(tc, "b", 1)

        async def reconnected() -> bool:
            await asyncio.sleep(0)
            return metric("ballast_watch_restarts_total", resource="kafkaclusters", reason="closed") > closed_before
        await eventually(reconnected, message="a watch ended by its timeoutSeconds")

        # A dropped stream resumes from the last resourceVersion (no relist).
        expired_before = metric("ballast_watch_restarts_total", resource="kafkaclusters", reason="expired")
        dc.call(lambda c: c.faults.drop_watches())
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "a", {"spec": {"brokers": {"replicas": 4}}})
        assert (await nth_spec_signal(tc, "a", 2))[1].generation == 2

        # Stream dropped, changes made, history compacted, all before the watcher can reconnect: it gets
        # 410 Expired, relists and must still see every change.
        def behind_its_back(cluster: Any) -> None:
            from devcluster.api import DeleteOptions
            rt = cluster.api.lookup(GROUP, VERSION, PLURAL)
            cluster.faults.drop_watches()
            a = cluster.api.get(rt, NS, "a")
            cluster.api.update(rt, NS, "a", {**a, "spec": {**a["spec"], "brokers": {**a["spec"]["brokers"], "replicas": 5}}})
            cluster.api.delete(rt, NS, "b", DeleteOptions())
            cluster.api.create(rt, NS, kc("c"))
            cluster.faults.expire()

        dc.call(behind_its_back)
        assert (await nth_spec_signal(tc, "a", 3))[2].generation == 3
        assert (await nth_spec_signal(tc, "b", 2))[1].deleting
        assert (await nth_spec_signal(tc, "c", 1))[0].generation == 1
        assert metric("ballast_watch_restarts_total", resource="kafkaclusters", reason="expired") == expired_before + 1


async def test_bookmarks_keep_the_resume_point(dc: DevClusterThread, api_client: client.ApiClient) -> None:
    """Writes to other collections move the server's revision on; only BOOKMARKs tell a quiet watch about
    it. History compacted up to the bookmarked revision must not force a relist after the stream drops
    (resuming from the last object event's revision would get 410 Expired)."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "watched"}})
    reflector = Reflector("configmaps", core.list_namespaced_config_map, NS)
    seen: list[ObjectEvent] = []

    async def handle(event: ObjectEvent) -> None:
        seen.append(event)

    async with running(reflector.run(handle)):
        await eventually(lambda: asyncio.sleep(0, reflector.synced.is_set()), message="first list")
        listed_at = int(reflector.resource_version or 0)
        for i in range(3):
            core.create_namespaced_secret(NS, {"metadata": {"name": f"elsewhere-{i}"}})
        head: int = dc.call(lambda c: c.api.store.current_rv)
        assert head > listed_at

        async def bookmarked() -> int | None:
            await asyncio.sleep(0)
            rv = int(reflector.resource_version or 0)
            return rv if rv >= head else None

        resume_at = await eventually(bookmarked, timeout=5, message="a BOOKMARK at the newest revision")
        expired = metric("ballast_watch_restarts_total", resource="configmaps", reason="expired")
        writes = store_writes(dc)

        def drop_and_compact(cluster: Any) -> None:
            cluster.faults.drop_watches("/configmaps")
            cluster.faults.expire(upto_rv=resume_at)

        dc.call(drop_and_compact)
        core.create_namespaced_config_map(NS, {"metadata": {"name": "after"}})
        await eventually(lambda: asyncio.sleep(0, any(e.obj["metadata"]["name"] == "after" for e in seen)),
                         message="the event after the reconnect")
    assert metric("ballast_watch_restarts_total", resource="configmaps", reason="expired") == expired
    assert [(e.type, e.key, e.relisted) for e in seen] == [("ADDED", (NS, "watched"), True),
                                                          ("ADDED", (NS, "after"), False)]
    assert [key for _, key, _ in writes] == ["/configmaps"]  # the test's own; a reflector only reads


# -- owned objects ----------------------------------------------------------------------------------

async def test_owned_drift_signals_the_running_workflow_only(dc: DevClusterThread, api_client: client.ApiClient,
                                                             temporal: WorkflowEnvironment) -> None:
    tq = f"tq-{uuid.uuid4()}"
    tc = temporal.client
    core = client.CoreV1Api(api_client)
    labels = {"app.kubernetes.io/managed-by": "ballast", "kafka.ballast.dev/cluster": "demo"}
    ghost_labels = {**labels, "kafka.ballast.dev/cluster": "ghost"}
    core.create_namespaced_service(NS, {"metadata": {"name": "demo-bootstrap", "labels": labels},
                                        "spec": {"ports": [{"port": 9092}], "selector": labels}})
    for name, lab in (("demo-broker-0", labels), ("ghost-broker-0", ghost_labels)):
        core.create_namespaced_pod(NS, {"metadata": {"name": name, "labels": lab},
                                        "spec": {"containers": [{"name": "kafka", "image": "apache/kafka:3.9.1"}]}})
    await tc.start_workflow("KafkaClusterWorkflow", KafkaClusterWorkflowInput(namespace=NS, name="demo"),
                            id=cluster_workflow_id(NS, "demo"), task_queue=tq)

    def ready(name: str) -> bool:
        pod = core.read_namespaced_pod(name, NS)
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    # Ready before the watcher starts, so its first list sees them Ready (a first sighting is not drift,
    # and no PodReady transition can slip in before the PodNotReady this test is about).
    wait_for(lambda: ready("demo-broker-0") and ready("ghost-broker-0"), message="pods Ready")
    watcher = OwnedWatcher(api_client, tc, debounce=0.2)
    pods = next(r for kind, r in watcher.reflectors if kind == "Pod")

    async def both_ready() -> bool:
        await asyncio.sleep(0)
        return pods.synced.is_set()  # the watcher has listed them

    not_found_before = metric("ballast_signals_total", signal=SIGNAL_OBSERVED_CHANGED, result="not_found")
    async with recording_worker(tc, tq), running(watcher.run()):
        await eventually(both_ready, message="pods listed")
        dc.call(lambda c: Kubelet.of(c).set_behavior("app.kubernetes.io/managed-by=ballast", "never_ready"))

        async def got(n: int) -> list[ObservedChanged] | None:
            sigs = await observed_signals(tc, "demo")
            return sigs if len(sigs) >= n else None

        sigs = await eventually(lambda: got(1), message="PodNotReady signal")
        assert [(s.kind, s.name, s.reason) for s in sigs] == [("Pod", "demo-broker-0", "PodNotReady")]
        assert sigs[0].resource_version

        core.delete_namespaced_service("demo-bootstrap", NS)
        sigs = await eventually(lambda: got(2), message="ServiceDeleted signal")
        assert (sigs[1].kind, sigs[1].name, sigs[1].reason) == ("Service", "demo-bootstrap", "ServiceDeleted")

        # The ghost cluster's pod went NotReady too: signalled to nobody, and no workflow was started.
        async def ghost_skipped() -> bool:
            return metric("ballast_signals_total", signal=SIGNAL_OBSERVED_CHANGED,
                          result="not_found") > not_found_before
        await eventually(ghost_skipped, message="signal to the ghost cluster answered not found")
        with pytest.raises(RPCError) as err:
            await tc.get_workflow_handle(cluster_workflow_id(NS, "ghost")).describe()
        assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_owned_drift_is_debounced_per_object(dc: DevClusterThread, api_client: client.ApiClient,
                                                   temporal: WorkflowEnvironment) -> None:
    """A burst of Ready flips of one pod within the debounce window is one signal (the latest reason);
    the next flip after it is the next signal. The watcher writes nothing to the cluster meanwhile."""
    tq = f"tq-{uuid.uuid4()}"
    tc = temporal.client
    core = client.CoreV1Api(api_client)
    labels = {"app.kubernetes.io/managed-by": "ballast", "kafka.ballast.dev/cluster": "demo"}
    # Bound to a node no kubelet serves: only this test writes the pod's status, as a kubelet would.
    core.create_namespaced_pod(NS, {"metadata": {"name": "demo-broker-0", "labels": labels},
                                    "spec": {"nodeName": "offline-node",
                                             "containers": [{"name": "kafka", "image": "apache/kafka:3.9.1"}]}})

    def set_ready(ready: bool) -> None:
        core.patch_namespaced_pod_status("demo-broker-0", NS, {"status": {"conditions": [
            {"type": "Ready", "status": str(ready)}]}})

    set_ready(True)
    await tc.start_workflow("KafkaClusterWorkflow", KafkaClusterWorkflowInput(namespace=NS, name="demo"),
                            id=cluster_workflow_id(NS, "demo"), task_queue=tq)
    watcher = OwnedWatcher(api_client, tc, debounce=1.0)
    pods = next(r for kind, r in watcher.reflectors if kind == "Pod")

    async def got(n: int) -> list[ObservedChanged] | None:
        sigs = await observed_signals(tc, "demo")
        return sigs if len(sigs) >= n else None

    writes = store_writes(dc)
    async with recording_worker(tc, tq), running(watcher.run()):
        await eventually(lambda: asyncio.sleep(0, pods.synced.is_set()), message="pods listed")
        started = time.monotonic()
        for ready in (False, True, False, True, False):
            set_ready(ready)
        burst = time.monotonic() - started
        sigs = await eventually(lambda: got(1), message="the burst's signal")
        set_ready(True)
        sigs = await eventually(lambda: got(2), message="the next flip's signal")
    assert burst < watcher.debounce, f"the flips took {burst:.2f}s: not one burst"
    assert [(s.kind, s.name, s.reason) for s in sigs] == [("Pod", "demo-broker-0", "PodNotReady"),
                                                          ("Pod", "demo-broker-0", "PodReady")]
    assert int(sigs[0].resource_version) < int(sigs[1].resource_version)
    # Only the six status writes this test made: the watcher signals, it never writes.
    assert writes == [("MODIFIED", "/pods", f"{NS}/demo-broker-0")] * 6


# -- tracing and metrics ----------------------------------------------------------------------------

def _by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_from_watch_event_to_activity(custom: client.CustomObjectsApi, api_client: client.ApiClient,
                                                      temporal: WorkflowEnvironment,
                                                      spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    tq = f"tq-{uuid.uuid4()}"
    tc = await traced_client(temporal, provider)
    watcher = KafkaClusterWatcher(api_client, tc, task_queue=tq, tracer=provider.get_tracer("ballast.watchers"))
    metrics_port = free_port()
    server = observability.start_metrics_server(f"127.0.0.1:{metrics_port}")
    try:
        async with recording_worker(tc, tq), running(watcher.run()):
            custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, kc("traced"))

            async def activity_spans(n: int) -> list[ReadableSpan] | None:
                found = _by_name(list(exporter.get_finished_spans()), "RunActivity:touch_cluster")
                return found if len(found) >= n else None

            await eventually(lambda: activity_spans(1), message="activity span")
            custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "traced",
                                                  {"spec": {"brokers": {"replicas": 5}}})
            await eventually(lambda: activity_spans(2), message="second activity span")
            signals = await spec_signals(tc, "traced")
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()

    assert 'ballast_signals_total{result="sent",signal="spec_changed"}' in body
    assert 'ballast_watch_events_total{resource="kafkaclusters",type="ADDED"}' in body

    finished = list(exporter.get_finished_spans())
    by_id = {s.context.span_id: s for s in finished}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, f"{span.name} has no parent"
        return by_id[span.parent.span_id]

    # First event: watcher span -> SignalWithStart -> RunWorkflow / HandleSignal, and -> the activity.
    added = _by_name(finished, "KafkaCluster ADDED")[0]
    assert added.parent is None
    trace_id = added.context.trace_id
    sws = _by_name(finished, "SignalWithStartWorkflow:KafkaClusterWorkflow")
    assert parent(sws[0]) is added
    run = _by_name(finished, "RunWorkflow:KafkaClusterWorkflow")[0]
    assert parent(run) is sws[0] and run.context.trace_id == trace_id
    handle = _by_name(finished, "HandleSignal:spec_changed")
    assert all(h.context.trace_id == trace_id for h in handle)
    runs = sorted(_by_name(finished, "RunActivity:touch_cluster"), key=lambda s: s.start_time or 0)
    assert parent(parent(runs[0])) is added and runs[0].context.trace_id == trace_id

    # The signal carries the watcher span's traceparent for humans (and for the workflow).
    assert signals[0].trace_context["traceparent"].startswith(f"00-{trace_id:032x}-{added.context.span_id:016x}-")

    # Second event, workflow already running: its own trace reaches the activity; the workflow's signal
    # span (in the workflow's trace) links to it.
    modified = _by_name(finished, "KafkaCluster MODIFIED")[0]
    assert modified.parent is None and modified.context.trace_id != trace_id
    assert parent(sws[1]) is modified
    assert any(link.context.trace_id == modified.context.trace_id for h in handle for link in h.links)
    assert parent(parent(runs[1])) is modified


async def test_temporal_sdk_metrics_on_prometheus(temporal: WorkflowEnvironment) -> None:
    port = free_port()
    runtime = observability.temporal_runtime(f"127.0.0.1:{port}")
    config = temporal.client.config()
    tc = await Client.connect(temporal.client.service_client.config.target_host, namespace=config["namespace"],
                              runtime=runtime, data_converter=pydantic_data_converter)
    await tc.count_workflows()
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    assert "temporal_request" in body


# -- leader election --------------------------------------------------------------------------------

async def test_exactly_one_leader_and_failover(api_client: client.ApiClient) -> None:
    coordination = client.CoordinationV1Api(api_client)

    def elector(identity: str, release: bool) -> LeaderElector:
        return LeaderElector(api_client, LeaseConfig(namespace=NS, identity=identity, lease_duration=2.0,
                                                     renew_deadline=1.5, retry_period=0.2,
                                                     release_on_cancel=release))

    leading: set[str] = set()

    def work(identity: str) -> Callable[[], Coroutine[Any, Any, None]]:
        async def lead() -> None:
            leading.add(identity)
            try:
                await asyncio.Event().wait()
            finally:
                leading.discard(identity)
        return lead

    crashy, steady = elector("crashy", release=False), elector("steady", release=True)
    crashy_task = asyncio.create_task(crashy.run(work("crashy")))
    await eventually(lambda: asyncio.sleep(0, crashy.is_leader), message="first leader")
    steady_task = asyncio.create_task(steady.run(work("steady")))
    try:
        # Several renew periods with two candidates: still exactly one leader, the Lease names it.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert leading == {"crashy"} and crashy.is_leader and not steady.is_leader
            await asyncio.sleep(0.05)
        lease = coordination.read_namespaced_lease("ballast-watchers", NS)
        assert lease.spec.holder_identity == "crashy" and lease.spec.lease_duration_seconds == 2
        transitions = lease.spec.lease_transitions or 0

        # The leader dies without releasing: the standby takes over once the Lease expires.
        crashy_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await crashy_task
        stopped = time.monotonic()
        await eventually(lambda: asyncio.sleep(0, steady.is_leader), timeout=6, message="failover")
        assert time.monotonic() - stopped >= 1.5  # not before the Lease could have expired
        assert leading == {"steady"}
        lease = coordination.read_namespaced_lease("ballast-watchers", NS)
        assert lease.spec.holder_identity == "steady" and lease.spec.lease_transitions == transitions + 1

        # A clean stop releases the Lease: a new candidate takes it without waiting for expiry.
        newcomer = elector("newcomer", release=True)
        newcomer_task = asyncio.create_task(newcomer.run(work("newcomer")))
        steady_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await steady_task
        released = time.monotonic()
        await eventually(lambda: asyncio.sleep(0, newcomer.is_leader), timeout=6, message="takeover after release")
        assert time.monotonic() - released < 1.5
        newcomer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await newcomer_task
        assert coordination.read_namespaced_lease("ballast-watchers", NS).spec.holder_identity is None
    finally:
        for task in (crashy_task, steady_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ApiException):
                await task


async def test_only_the_leading_replica_signals_and_a_new_leader_resyncs(
        dc: DevClusterThread, custom: client.CustomObjectsApi, api_client: client.ApiClient,
        temporal: WorkflowEnvironment) -> None:
    tq = f"tq-{uuid.uuid4()}"
    tc = temporal.client
    writes = store_writes(dc)

    def replica(identity: str) -> Watchers:
        settings = WatcherSettings(namespaces=(NS,), task_queue=tq, lease_namespace=NS, identity=identity,
                                   debounce_seconds=0.2)
        lease = LeaseConfig(namespace=NS, identity=identity, lease_duration=2.0, renew_deadline=1.5,
                            retry_period=0.2, release_on_cancel=False)
        return Watchers(api_client, tc, settings, lease=lease)

    first, second = replica("first"), replica("second")
    first_task = asyncio.create_task(first.run())
    await eventually(lambda: asyncio.sleep(0, first.may_signal()), message="first replica leads")
    second_task = asyncio.create_task(second.run())
    try:
        async with recording_worker(tc, tq):
            custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, kc("demo"))
            await nth_spec_signal(tc, "demo", 1)
            assert first.clusters is not None and second.clusters is None  # the standby does not even watch

            # The leader dies without releasing; the new leader lists everything and signals it again
            # (a duplicate the workflow ignores), then follows changes.
            first_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first_task
            sigs = await eventually(lambda: asyncio.sleep(0, second.may_signal()), timeout=6,
                                    message="second replica leads") and await nth_spec_signal(tc, "demo", 2)
            assert sigs[1].generation == 1
            custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo",
                                                  {"spec": {"brokers": {"replicas": 5}}})
            assert (await nth_spec_signal(tc, "demo", 3))[2].generation == 2
    finally:
        for task in (first_task, second_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    # Two replicas, a failover and three signals later, the only writes besides the test's own KafkaCluster
    # create and patch are the replicas' Lease.
    clusters = f"{GROUP}/{PLURAL}"
    assert [w for w in writes if w[1] != "coordination.k8s.io/leases"] == [
        ("ADDED", clusters, f"{NS}/demo"), ("MODIFIED", clusters, f"{NS}/demo")]
    assert {name for _, key, name in writes if key == "coordination.k8s.io/leases"} == {f"{NS}/ballast-watchers"}
