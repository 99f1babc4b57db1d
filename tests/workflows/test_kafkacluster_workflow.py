"""KafkaClusterWorkflow against Temporal's time-skipping test server, with activity fakes.

``FakeCluster`` stands in for the Kubernetes API and Kafka behind the activity contracts: its activities
(registered under the contract names) keep a KafkaCluster object, the spec-hash of every applied object,
the quorum and the registered brokers, and log every call, so the tests assert what the workflow did and in
which order. Tests poke the fake to simulate the world (a Service deleted, the KafkaCluster deleted, a wait
that hangs) and drive the workflow through its signals, queries and updates.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities import contracts as act
from ballast.manifests import SPEC_HASH_ANNOTATION, RenderInput, render_cluster
from ballast.manifests.labels import COMPONENT_LABEL
from ballast.manifests.names import Role, node_ids
from ballast.messages import (
    QUERY_PLAN,
    QUERY_STATUS,
    SA_CLUSTER_PHASE,
    SIGNAL_OBSERVED_CHANGED,
    SIGNAL_SPEC_CHANGED,
    UPDATE_PAUSE,
    UPDATE_RESUME,
    ClusterRef,
    KafkaClusterWorkflowInput,
    ObservedChanged,
    PauseRequest,
    ResumeRequest,
    SpecChanged,
    WorkflowStatusView,
)
from ballast.observed import KafkaState, ObjectState, ObservedCluster, PodState, StatefulSetState
from ballast.planner import FINALIZER
from ballast.spec import KafkaClusterSpec
from tests.workflows.conftest import HISTORIES, terminate_workflows
from workflows.kafkacluster import KafkaClusterWorkflow, kraft_cluster_id
from workflows.rebalance import RebalanceWorkflow
from workflows.roll import RollWorkflow

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    # A workflow that ends or continues-as-new with a handler still running loses that handler's work.
    pytest.mark.filterwarnings("error:.*handlers are still running:RuntimeWarning"),
]

PLACEHOLDER_ID = "A" * 22
# Rebalancing off: no durable disk-skew timer, which time skipping would fire into activities these fakes do not
# have (tests/workflows/test_rebalance_workflow.py turns it on where it is tested).
SPEC = {"version": "3.9.1", "controllers": {"replicas": 3}, "brokers": {"replicas": 3}, "rebalance": {"mode": "off"}}


# --- the fake world ---------------------------------------------------------------------------------------

@dataclass
class FakeCluster:
    """One KafkaCluster and everything it owns, behind the activity contracts."""

    namespace: str = field(default_factory=lambda: f"t-{uuid.uuid4().hex[:8]}")
    name: str = "demo"
    spec: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(SPEC)))
    generation: int = 1
    uid: str = "11111111-2222-3333-4444-555555555555"
    found: bool = True
    deleting: bool = False
    finalizers: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, act.ConditionUpdate] = field(default_factory=dict)
    live: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> spec-hash
    quorum_ready: bool = False
    registered: list[int] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    events: list[act.EventInput] = field(default_factory=list)
    # Activity name -> its next call blocks (heartbeating, so it can be cancelled) until this is resolved:
    # with None it goes on as usual, with an exception it raises it. ``held``: the calls blocked now.
    holds: dict[str, asyncio.Future[Exception | None]] = field(default_factory=dict)
    held: dict[str, asyncio.Future[Exception | None]] = field(default_factory=dict)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    # Activity name -> errors raised by its next calls, in order.
    failures: dict[str, list[Exception]] = field(default_factory=dict)

    @property
    def ref(self) -> ClusterRef:
        return ClusterRef(namespace=self.namespace, name=self.name)

    @property
    def workflow_id(self) -> str:
        return self.ref.workflow_id

    def activities(self) -> list[Callable[..., Any]]:
        return [self.observe_cluster, self.ensure_finalizer, self.remove_finalizer, self.apply_manifests,
                self.wait_controllers_ready, self.wait_brokers_registered, self.update_status, self.record_event,
                self.cleanup_cluster, self.expand_volumes, self.wait_volumes_resized]

    # What the tests look at.

    def names(self, *, skip: tuple[str, ...] = (act.UPDATE_STATUS, act.RECORD_EVENT, act.EXPAND_VOLUMES,
                                                act.WAIT_VOLUMES_RESIZED)) -> list[str]:
        return [name for name, _ in self.calls if name not in skip]

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def update_spec(self, **changes: Any) -> None:
        """Like ``kubectl edit``: a new generation of the spec."""
        self.spec = {**self.spec, **changes}
        self.generation += 1

    # Shared behaviour.

    async def _enter(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        self.started.setdefault(name, asyncio.Event()).set()
        pending = self.failures.get(name)
        if pending:
            raise pending.pop(0)
        hold = self.holds.pop(name, None)
        if hold is None:
            return
        self.held[name] = hold
        try:
            while not hold.done():
                activity.heartbeat()
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        error = hold.result()
        if error is not None:
            raise error

    def hold(self, name: str) -> None:
        """Make the next call of activity ``name`` block until ``release``."""
        self.holds[name] = asyncio.get_running_loop().create_future()

    def release(self, name: str, error: Exception | None = None) -> None:
        self.held.pop(name).set_result(error)

    def _parsed_spec(self, raw: dict[str, Any]) -> KafkaClusterSpec:
        try:
            return KafkaClusterSpec.model_validate(raw)
        except ValueError:
            return KafkaClusterSpec()

    def _desired(self, raw_spec: dict[str, Any], cluster_id: str) -> list[dict[str, Any]]:
        return render_cluster(RenderInput(name=self.name, namespace=self.namespace, uid=self.uid,
                                          spec=self._parsed_spec(raw_spec), cluster_id=cluster_id))

    # The activities.

    @activity.defn(name=act.OBSERVE_CLUSTER)
    async def observe_cluster(self, ref: ClusterRef) -> ObservedCluster:
        await self._enter(act.OBSERVE_CLUSTER, ref)
        if not self.found:
            return ObservedCluster(namespace=ref.namespace, name=ref.name, found=False)
        objects = [ObjectState(kind=o["kind"], name=o["metadata"]["name"],
                               exists=(o["kind"], o["metadata"]["name"]) in self.live,
                               spec_hash=self.live.get((o["kind"], o["metadata"]["name"]), ""))
                   for o in self._desired(self.spec, self.status.get("clusterId") or PLACEHOLDER_ID)]
        spec = self._parsed_spec(self.spec)
        controllers = ("StatefulSet", f"{self.name}-controller") in self.live
        brokers = ("StatefulSet", f"{self.name}-broker") in self.live
        controller_ids = node_ids(Role.CONTROLLER, spec.controllers.replicas)
        return ObservedCluster(
            namespace=ref.namespace, name=ref.name, found=True, uid=self.uid, generation=self.generation,
            deleting=self.deleting, finalizers=list(self.finalizers), spec=self.spec,
            cluster_id=self.status.get("clusterId"), objects=objects,
            controllers=StatefulSetState(name=f"{self.name}-controller", exists=controllers),
            brokers=StatefulSetState(name=f"{self.name}-broker", exists=brokers,
                                     replicas=spec.brokers.replicas if brokers else 0),
            controller_pods=[PodState(name=f"{self.name}-controller-{i}", node_id=i, ready=self.quorum_ready)
                             for i in controller_ids] if controllers else [],
            broker_pods=[PodState(name=f"{self.name}-broker-{i}", node_id=i, ready=i in self.registered)
                         for i in node_ids(Role.BROKER, spec.brokers.replicas)] if brokers else [],
            kafka=KafkaState(reachable=controllers, cluster_id=self.status.get("clusterId") if brokers else None,
                             quorum_leader_id=controller_ids[0] if self.quorum_ready else None,
                             quorum_voters=controller_ids if self.quorum_ready else [],
                             registered_brokers=list(self.registered)))

    @activity.defn(name=act.ENSURE_FINALIZER)
    async def ensure_finalizer(self, ref: ClusterRef) -> bool:
        await self._enter(act.ENSURE_FINALIZER, ref)
        if FINALIZER in self.finalizers or self.deleting:
            return False
        self.finalizers.append(FINALIZER)
        return True

    @activity.defn(name=act.REMOVE_FINALIZER)
    async def remove_finalizer(self, ref: ClusterRef) -> bool:
        await self._enter(act.REMOVE_FINALIZER, ref)
        if FINALIZER not in self.finalizers:
            return False
        self.finalizers.remove(FINALIZER)
        if self.deleting and not self.finalizers:
            self.found = False  # the API server deletes an object whose last finalizer is gone
        return True

    @activity.defn(name=act.APPLY_MANIFESTS)
    async def apply_manifests(self, inp: act.ApplyManifestsInput) -> act.ApplyManifestsResult:
        await self._enter(act.APPLY_MANIFESTS, inp)
        roles = {"controllers": Role.CONTROLLER.value, "brokers": Role.BROKER.value}
        wanted = {roles[c] for c in inp.components}
        result = act.ApplyManifestsResult()
        for obj in self._desired(inp.spec, inp.cluster_id):
            if obj["metadata"]["labels"][COMPONENT_LABEL] not in wanted:
                continue
            key = (obj["kind"], obj["metadata"]["name"])
            digest = obj["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
            bucket = result.unchanged if self.live.get(key) == digest else (
                result.updated if key in self.live else result.created)
            bucket.append(f"{key[0]}/{key[1]}")
            self.live[key] = digest
        return result

    @activity.defn(name=act.WAIT_CONTROLLERS_READY)
    async def wait_controllers_ready(self, inp: act.WaitInput) -> act.WaitResult:
        await self._enter(act.WAIT_CONTROLLERS_READY, inp)
        self.quorum_ready = True
        return act.WaitResult(ready=inp.expected, detail=f"leader 1000, {inp.expected} voters")

    @activity.defn(name=act.WAIT_BROKERS_REGISTERED)
    async def wait_brokers_registered(self, inp: act.WaitInput) -> act.WaitResult:
        await self._enter(act.WAIT_BROKERS_REGISTERED, inp)
        self.registered = node_ids(Role.BROKER, inp.expected)
        return act.WaitResult(ready=inp.expected, detail=f"registered {self.registered}")

    @activity.defn(name=act.UPDATE_STATUS)
    async def update_status(self, inp: act.StatusUpdate) -> bool:
        await self._enter(act.UPDATE_STATUS, inp)
        if not self.found:
            return False
        fields = {"observedGeneration": inp.observed_generation, "phase": inp.phase, "clusterId": inp.cluster_id,
                  "brokersReady": inp.brokers_ready, "controllersReady": inp.controllers_ready}
        self.status.update({k: v for k, v in fields.items() if v is not None})
        for key, value in (("currentOperation", inp.current_operation), ("lastOperation", inp.last_operation)):
            if value:
                self.status[key] = value
            elif value is not None:
                self.status.pop(key, None)
        for cond in inp.conditions:
            self.conditions[cond.type] = cond
        return True

    @activity.defn(name=act.RECORD_EVENT)
    async def record_event(self, inp: act.EventInput) -> str:
        await self._enter(act.RECORD_EVENT, inp)
        self.events.append(inp)
        return f"{self.name}.{len(self.events)}"

    @activity.defn(name=act.EXPAND_VOLUMES)
    async def expand_volumes(self, inp: act.ExpandVolumesInput) -> act.ExpandVolumesResult:
        await self._enter(act.EXPAND_VOLUMES, inp)
        return act.ExpandVolumesResult()

    @activity.defn(name=act.WAIT_VOLUMES_RESIZED)
    async def wait_volumes_resized(self, inp: act.WaitVolumesResizedInput) -> act.WaitVolumesResizedResult:
        await self._enter(act.WAIT_VOLUMES_RESIZED, inp)
        return act.WaitVolumesResizedResult()

    @activity.defn(name=act.CLEANUP_CLUSTER)
    async def cleanup_cluster(self, inp: act.CleanupInput) -> list[str]:
        await self._enter(act.CLEANUP_CLUSTER, inp)
        return []


# --- helpers ----------------------------------------------------------------------------------------------

@dataclass
class Running:
    env: WorkflowEnvironment
    client: Client
    fake: FakeCluster
    task_queue: str

    async def start(self, *, generation: int | None = 1, **input: Any) -> WorkflowHandle[Any, Any]:
        """Start the cluster workflow as the watcher does: signal-with-start with ``spec_changed``."""
        signal: dict[str, Any] = {}
        if generation is not None:
            signal = {"start_signal": SIGNAL_SPEC_CHANGED,
                      "start_signal_args": [SpecChanged(generation=generation, uid=self.fake.uid)]}
        return await self.client.start_workflow(
            KafkaClusterWorkflow.run,
            KafkaClusterWorkflowInput(namespace=self.fake.namespace, name=self.fake.name, **input),
            id=self.fake.workflow_id, task_queue=self.task_queue, **signal)


@asynccontextmanager
async def running(env: WorkflowEnvironment, fake: FakeCluster | None = None, *, client: Client | None = None,
                  workflows: Sequence[type] = (KafkaClusterWorkflow,)) -> AsyncIterator[Running]:
    """A worker (on ``client``, default the environment's) for one fake cluster's workflow; the workflow is
    terminated when the block ends (see :func:`tests.workflows.conftest.terminate_workflows` for why)."""
    fake = fake or FakeCluster()
    client = client or env.client
    task_queue = f"kc-{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=list(workflows), activities=fake.activities()):
        yield Running(env, client, fake, task_queue)
        # Only after a test that passed: a failure's own report matters more than the leftovers it leaves.
        await until(lambda: quiescent(client.get_workflow_handle(fake.workflow_id)),
                    "the workflow to finish its task in flight before the worker stops")
        await terminate_workflows(client, fake.workflow_id)


async def status(handle: WorkflowHandle[Any, Any]) -> WorkflowStatusView:
    """The ``status`` query of the workflow's latest run. The time-skipping server loses a query that reaches a
    run as it continues-as-new (the query never answers): each ask has a short deadline and a lost one is asked
    again, up to the usual wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        try:
            view: WorkflowStatusView = await handle.query(QUERY_STATUS, result_type=WorkflowStatusView,
                                                          rpc_timeout=QUERY_TIMEOUT)
            return view
        except RPCError as err:
            if err.status not in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED) \
                    or loop.time() > deadline:
                raise


async def plan(handle: WorkflowHandle[Any, Any]) -> list[str]:
    lines: list[str] = await handle.query(QUERY_PLAN, result_type=list[str])
    return lines


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# A status query answers in milliseconds; one that takes longer was lost (see until_phase).
QUERY_TIMEOUT = timedelta(seconds=3)


async def until_phase(handle: WorkflowHandle[Any, Any], phase: str, *, generation: int | None = None) -> None:
    """Until the workflow reports ``phase`` (and ``generation``) with nothing queued, no step and no activity
    in flight -- so the Events and status writes that follow a phase change have happened too."""
    async def check() -> bool:
        view = await status(handle)
        if view.phase != phase or (generation is not None and view.processed_generation < generation) \
                or view.pending_generation is not None or view.step:
            return False
        return await idle(handle)
    await until(check, f"phase {phase}" + (f" at generation {generation}" if generation else ""))


# Commands a workflow task may end with while the workflow then just waits.
_WAITING = {EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED}


async def idle(handle: WorkflowHandle[Any, Any]) -> bool:
    """The workflow's last task completed and started no activity: it is waiting for a signal or a timer."""
    history = await handle.fetch_history()
    for event in reversed(history.events):
        if event.event_type not in _WAITING:
            return event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    return False


async def quiescent(handle: WorkflowHandle[Any, Any]) -> bool:
    """Closed, or running with no workflow task outstanding and no activity pending: stopping its worker now
    abandons nothing on the server."""
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        return True
    if description.raw_description.pending_activities:
        return False
    history = await handle.fetch_history()
    task_events = [e.event_type for e in history.events if e.event_type in _WORKFLOW_TASK_EVENTS]
    return bool(task_events) and task_events[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


_WORKFLOW_TASK_EVENTS = {EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
                         EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                         EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT}


async def settle(env: WorkflowEnvironment) -> None:
    """Skip past the observed-changes debounce (workflow time), so the queued pass runs now."""
    await env.sleep(timedelta(seconds=3))


# --- provisioning ------------------------------------------------------------------------------------------

async def test_provisioning_runs_controllers_then_brokers_then_ready(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)

        assert fake.names() == [act.OBSERVE_CLUSTER, act.ENSURE_FINALIZER, act.APPLY_MANIFESTS,
                                act.WAIT_CONTROLLERS_READY, act.APPLY_MANIFESTS, act.WAIT_BROKERS_REGISTERED]
        applies = [arg for name, arg in fake.calls if name == act.APPLY_MANIFESTS]
        assert [a.components for a in applies] == [["controllers"], ["brokers"]]
        # The cluster id is persisted before any manifest uses it, and both roles get the same one.
        cluster_id = fake.status["clusterId"]
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert {a.cluster_id for a in applies} == {cluster_id}
        first_id_write = next(i for i, (n, a) in enumerate(fake.calls)
                              if n == act.UPDATE_STATUS and a.cluster_id is not None)
        assert first_id_write < next(i for i, (n, _) in enumerate(fake.calls) if n == act.APPLY_MANIFESTS)
        waits = [arg for name, arg in fake.calls if name.startswith("wait_")]
        assert [w.expected for w in waits] == [3, 3]

        assert fake.finalizers == [FINALIZER]
        assert fake.status["phase"] == "Ready" and fake.status["observedGeneration"] == 1
        assert fake.status["brokersReady"] == 3 and fake.status["controllersReady"] == 3
        assert "currentOperation" not in fake.status
        assert fake.status["lastOperation"]["type"] == "Provisioning"
        assert fake.status["lastOperation"]["result"] == "Succeeded"
        assert fake.status["lastOperation"]["workflowId"] == fake.workflow_id
        assert {t: c.status for t, c in fake.conditions.items()} == {
            "Ready": "True", "Reconciling": "False", "Degraded": "False", "Invalid": "False"}
        assert fake.reasons() == ["ProvisioningStarted", "ControllersReady", "BrokersRegistered", "ClusterReady"]

        # While provisioning, currentOperation said which step ran: step i/n, workflow id, progress.
        progress = [a.current_operation for n, a in fake.calls if n == act.UPDATE_STATUS and a.current_operation]
        assert [p["step"].split(" ")[0] for p in progress] == ["1/7", "2/7", "3/7", "4/7", "5/7", "6/7"]
        assert all(p["type"] == "Provisioning" and p["workflowId"] == fake.workflow_id for p in progress)
        assert progress[4]["progress"] == "controllers 3/3, brokers 0/3"

        description = await handle.describe()
        phase = [v for k, v in description.typed_search_attributes if k.name == SA_CLUSTER_PHASE]
        assert phase == ["Ready"]
        assert await plan(handle) == []
        assert outcomes(fake) == ["ready"]  # what ballast_reconcile_outcomes_total counts (in the activity)

        # The Temporal UI: the workflow's current details, and a summary on every activity it scheduled.
        details = await current_details(handle)
        assert details.startswith(f"**KafkaCluster {fake.namespace}/demo** -- phase **Ready**")
        assert "- generation processed: 1" in details and "3/3 controllers, 3/3 brokers ready" in details
        summaries = await activity_summaries(handle)
        assert len(summaries) == len(fake.calls)
        assert all(s.startswith(f"{fake.namespace}/demo: ") for s in summaries), summaries
        shown = [s.split(": ", 1)[1] for s in summaries]
        assert {"observe the cluster", "add the cleanup finalizer", f"persist cluster id {cluster_id}",
                "apply controllers manifests", "wait for 3 controllers and a quorum leader",
                "report step 2/7 generate the KRaft cluster id",
                "event ClusterReady", "report Ready"} <= set(shown), shown

        # Nothing drifted: an observed change only observes, writes nothing, acts on nothing.
        before = len(fake.calls)
        await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="Pod", name="demo-broker-0",
                                                                     reason="Ready"))
        await settle(env)
        await until(lambda: _async(fake.count(act.OBSERVE_CLUSTER) == 2), "the second observation")
        await until_phase(handle, "Ready")
        assert [n for n, _ in fake.calls[before:]] == [act.OBSERVE_CLUSTER]

        if os.environ.get("BALLAST_RECORD_HISTORIES"):
            await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, deleting=True))
            fake.deleting = True
            await handle.result()
            history = await handle.fetch_history()
            (HISTORIES / "provision_drift_delete.json").write_text(history.to_json())


async def _async(value: bool) -> bool:
    return value


def outcomes(fake: FakeCluster) -> list[str]:
    """The reconcile outcomes the workflow reported with its status writes, in order."""
    return [a.outcome for n, a in fake.calls if n == act.UPDATE_STATUS and a.outcome]


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The markdown the Temporal UI shows as the workflow's "current details"."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def activity_summaries(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The summary (the Temporal UI's label) of every activity the workflow scheduled, "" where there is none."""
    converter = pydantic_data_converter.payload_converter
    return [converter.from_payload(e.user_metadata.summary, str) if e.user_metadata.HasField("summary") else ""
            for e in (await handle.fetch_history()).events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]


async def test_drift_repairs_only_what_changed(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)

        # Someone deletes the bootstrap Service by hand: re-created, no wait, Ready again.
        del fake.live[("Service", "demo-kafka-bootstrap")]
        before = len(fake.calls)
        await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="Service", name="demo-kafka-bootstrap",
                                                                     reason="Deleted"))
        await settle(env)
        await until(lambda: _async(("Service", "demo-kafka-bootstrap") in fake.live), "the Service re-created")
        await until_phase(handle, "Ready")
        done = [(n, a) for n, a in fake.calls[before:] if n not in (act.UPDATE_STATUS, act.RECORD_EVENT)]
        assert [n for n, _ in done] == [act.OBSERVE_CLUSTER, act.APPLY_MANIFESTS]
        assert done[1][1].components == ["brokers"]
        assert fake.status["lastOperation"]["type"] == "Reconcile"
        assert fake.reasons()[-2:] == ["ReconcileStarted", "Reconciled"]

        # A new generation that changes the broker config: brokers re-applied and waited for.
        fake.update_spec(brokers={"replicas": 3, "config": {"log.retention.hours": "24"}})
        before = len(fake.calls)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_phase(handle, "Ready", generation=2)
        # The StatefulSet was updated: observed once more for its update revision (pods on an old one roll).
        assert fake.names()[-4:] == [act.OBSERVE_CLUSTER, act.APPLY_MANIFESTS, act.WAIT_BROKERS_REGISTERED,
                                     act.OBSERVE_CLUSTER]
        assert fake.status["observedGeneration"] == 2
        assert len(fake.calls) > before


# --- signals ----------------------------------------------------------------------------------------------

async def test_signals_coalesce_to_the_newest_generation(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.generation = 3
        handle = await run.start(generation=None, paused=True, pause_reason="maintenance window")
        for generation in (1, 2, 3, 3, 2):
            await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=generation))
        view = await status(handle)
        assert view.paused and view.pending_generation == 3 and view.processed_generation == 0
        assert fake.calls == []  # paused: nothing observed, nothing done
        lines = await plan(handle)
        assert lines[0] == "paused (maintenance window): nothing runs until resume"
        assert lines[1] == "queued: generation 3: observe and re-plan first"

        await handle.execute_update(UPDATE_RESUME, ResumeRequest(), result_type=WorkflowStatusView)
        await until_phase(handle, "Ready", generation=3)
        assert fake.count(act.OBSERVE_CLUSTER) == 1  # one pass for five signals
        assert fake.status["observedGeneration"] == 3

        # Duplicates and stale generations (a watcher relisting) are ignored: no pass at all.
        for generation in (3, 1):
            await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=generation))
        await settle(env)
        assert (await status(handle)).pending_generation is None
        assert fake.count(act.OBSERVE_CLUSTER) == 1


async def test_observed_changes_are_debounced_into_one_pass(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        for i in range(5):
            await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="Pod", name=f"demo-broker-{i % 3}",
                                                                         reason="Ready", resource_version=str(i)))
        await settle(env)
        await until(lambda: _async(fake.count(act.OBSERVE_CLUSTER) == 2), "one observation for the burst")
        await settle(env)
        assert fake.count(act.OBSERVE_CLUSTER) == 2


async def test_recreated_cluster_starts_its_generations_over(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.generation = 4
        handle = await run.start(generation=4)
        await until_phase(handle, "Ready", generation=4)
        # Deleted by hand (finalizer removed) and created again under the same name: generation 1, new uid.
        fake.uid, fake.generation, fake.live, fake.status = "99999999-2222-3333-4444-555555555555", 1, {}, {}
        fake.finalizers, fake.quorum_ready, fake.registered = [], False, []
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, uid=fake.uid))
        await until(lambda: _async(fake.status.get("phase") == "Ready"), "the new cluster Ready")
        assert fake.status["observedGeneration"] == 1 and (await status(handle)).processed_generation == 1


# --- invalid spec -----------------------------------------------------------------------------------------

async def test_invalid_spec_changes_nothing_and_waits_for_the_next_generation(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.spec["brokers"] = {"replicas": 3, "config": {"min.insync.replicas": "3"}}
        handle = await run.start()
        await until_phase(handle, "Invalid", generation=1)

        assert fake.names() == [act.OBSERVE_CLUSTER]  # no finalizer, no manifests
        invalid = fake.conditions["Invalid"]
        assert invalid.status == "True" and invalid.reason == "InvalidSpec"
        assert "spec.brokers.config[min.insync.replicas]" in invalid.message
        assert fake.conditions["Ready"].status == "False"
        assert fake.status["phase"] == "Invalid" and fake.status["observedGeneration"] == 1
        warning = fake.events[-1]
        assert (warning.type, warning.reason) == ("Warning", "InvalidSpec")
        assert "min.insync.replicas" in warning.message
        lines = await plan(handle)
        assert lines[0].startswith("waiting for a valid spec: generation 1: spec.brokers.config[min.insync.replicas]")

        # Drift notices while invalid: observed again, but no repeated Event and no status rewrite.
        writes = fake.count(act.UPDATE_STATUS)
        await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="Pod", name="x", reason="Deleted"))
        await settle(env)
        await until(lambda: _async(fake.count(act.OBSERVE_CLUSTER) == 2), "the second observation")
        await until_phase(handle, "Invalid")
        assert fake.count(act.UPDATE_STATUS) == writes and fake.reasons().count("InvalidSpec") == 1

        # The corrected spec (generation 2) is provisioned.
        fake.update_spec(brokers={"replicas": 3, "config": {"min.insync.replicas": "2"}})
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_phase(handle, "Ready", generation=2)
        assert fake.conditions["Invalid"].status == "False"
        assert fake.count(act.APPLY_MANIFESTS) == 2
        assert outcomes(fake) == ["invalid", "ready"]  # the drift pass while Invalid reported nothing new


async def test_spec_that_does_not_parse_names_the_field(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        run.fake.spec["controllers"] = {"replicas": 4}
        handle = await run.start()
        await until_phase(handle, "Invalid", generation=1)
        assert run.fake.conditions["Invalid"].message.startswith("spec.controllers.replicas:")


# --- failures -------------------------------------------------------------------------------------------

async def test_rejected_step_reports_then_retries_with_backoff(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.failures[act.APPLY_MANIFESTS] = [ApplicationError(
            "Service/demo-controllers already exists and is not owned by KafkaCluster demo",
            type="OwnershipConflict", non_retryable=True)]
        handle = await run.start()
        await until_phase(handle, "Invalid", generation=1)
        assert fake.conditions["Invalid"].reason == "Rejected"
        assert "not owned by KafkaCluster demo" in fake.conditions["Invalid"].message
        assert fake.conditions["Invalid"].message.startswith("3/7 apply controllers manifests: ")
        assert fake.status["lastOperation"]["result"] == "Failed"
        # The Event follows the status write: on a loaded machine it may still be on its way.
        await until(lambda: _async(bool(fake.events) and fake.events[-1].reason == "ReconcileFailed"),
                    "the ReconcileFailed Event")
        assert fake.events[-1].type == "Warning"

        # Someone removes the conflicting object; the retry after the back-off provisions the cluster.
        await env.sleep(timedelta(seconds=31))
        await until_phase(handle, "Ready", generation=1)
        assert fake.conditions["Invalid"].status == "False"
        assert outcomes(fake) == ["rejected", "ready"]


async def test_cluster_deleted_while_a_step_fails_ends_cleanly(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.hold(act.WAIT_BROKERS_REGISTERED)
        handle = await run.start()
        await until(lambda: _async(act.WAIT_BROKERS_REGISTERED in fake.started), "the brokers wait")
        # The KafkaCluster vanishes (its finalizer removed by hand) and the wait fails for good.
        fake.found = False
        fake.release(act.WAIT_BROKERS_REGISTERED, ApplicationError("KafkaCluster gone", non_retryable=True))
        assert (await handle.result()).startswith("gone: ")
        assert fake.names()[-1] == act.OBSERVE_CLUSTER  # looked before reporting; reported nothing


# --- pause / resume ---------------------------------------------------------------------------------------

async def test_pause_stops_between_steps_and_resume_finishes(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.hold(act.WAIT_CONTROLLERS_READY)
        handle = await run.start()
        await until(lambda: _async(act.WAIT_CONTROLLERS_READY in fake.started), "the controllers wait")

        view = await handle.execute_update(UPDATE_PAUSE, PauseRequest(reason="disk replacement"),
                                           result_type=WorkflowStatusView)
        assert view.paused and view.step.startswith("4/7 wait for the controller quorum")
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(UPDATE_PAUSE, PauseRequest(), result_type=WorkflowStatusView)
        assert "is already paused (disk replacement); resume it first" in str(rejected.value.cause)

        # The running step finishes; the next one does not start.
        fake.release(act.WAIT_CONTROLLERS_READY)
        await until(lambda: _async_status(handle, lambda v: v.step == "paused before 5/7"), "the pause to hold")
        assert (await status(handle)).phase == "Provisioning"
        assert fake.names()[-1] == act.WAIT_CONTROLLERS_READY
        lines = await plan(handle)
        assert lines[0] == "paused (disk replacement): nothing runs until resume"
        details = await current_details(handle)
        assert "phase **Provisioning**" in details and "- **paused**: disk replacement" in details
        assert "- step: paused before 5/7" in details
        assert [line.split(" -- ")[0] for line in lines[1:]] == [
            "5/7 apply brokers manifests", "6/7 wait for 3 brokers to register", "7/7 mark the cluster Ready"]
        # Signals still queue while paused.
        await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="Pod", name="x", reason="Ready"))
        await settle(env)
        assert fake.names()[-1] == act.WAIT_CONTROLLERS_READY

        done = len(fake.names())
        await handle.execute_update(UPDATE_RESUME, ResumeRequest(), result_type=WorkflowStatusView)
        await until_phase(handle, "Ready", generation=1)
        # Resumed: observe afresh, then only what was left (the controllers are not touched again).
        assert fake.names()[done:] == [act.OBSERVE_CLUSTER, act.APPLY_MANIFESTS, act.WAIT_BROKERS_REGISTERED]
        assert fake.reasons().count("ProvisioningStarted") == 1  # one operation, paused and resumed
        assert "ReconcilePaused" in fake.reasons() and "ReconcileResumed" in fake.reasons()
        assert fake.status["lastOperation"]["type"] == "Provisioning"

        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(UPDATE_RESUME, ResumeRequest(), result_type=WorkflowStatusView)
        assert "is not paused" in str(rejected.value.cause)


async def _async_closed(handle: WorkflowHandle[Any, Any]) -> bool:
    description = await handle.describe()
    return description.status == WorkflowExecutionStatus.CONTINUED_AS_NEW


async def _async_status(handle: WorkflowHandle[Any, Any], check: Callable[[WorkflowStatusView], bool]) -> bool:
    return check(await status(handle))


# --- continue-as-new --------------------------------------------------------------------------------------

async def test_continue_as_new_carries_pending_signals_and_state(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.hold(act.WAIT_BROKERS_REGISTERED)
        first = await run.start(max_passes_before_continue_as_new=1)
        await until(lambda: _async(act.WAIT_BROKERS_REGISTERED in fake.started), "the brokers wait")

        # A new generation arrives mid-provisioning: it interrupts the pass, which was this run's last.
        fake.update_spec(brokers={"replicas": 4})
        await first.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2, uid=fake.uid))
        # (The cancelled wait stays blocked: the workflow does not wait for it (TRY_CANCEL), and completing it
        # while the run continues-as-new trips the test server. Worker shutdown cancels it.)
        latest = run.client.get_workflow_handle(fake.workflow_id)
        await until_phase(latest, "Ready", generation=2)

        history = await run.client.get_workflow_handle(fake.workflow_id, run_id=first.result_run_id).fetch_history()
        last = history.events[-1]
        assert last.HasField("workflow_execution_continued_as_new_event_attributes")
        continued = last.workflow_execution_continued_as_new_event_attributes
        carried = json.loads(continued.input.payloads[0].data)
        assert carried["pendingSpec"]["generation"] == 2
        assert carried["phase"] == "Provisioning" and carried["uid"] == fake.uid
        assert carried["maxPassesBeforeContinueAsNew"] == 1
        assert [w.expected for n, w in fake.calls if n == act.WAIT_BROKERS_REGISTERED] == [3, 4]

        # The second run reached Ready with that pass and continued-as-new too; the newest one is idle and
        # remembers everything.
        second = run.client.get_workflow_handle(fake.workflow_id, run_id=continued.new_execution_run_id)
        await until(lambda: _async_closed(second), "the second run to continue-as-new")
        assert fake.status["lastOperation"]["result"] == "Succeeded"
        description = await latest.describe()
        assert description.run_id not in (first.result_run_id, continued.new_execution_run_id)
        await until_phase(latest, "Ready", generation=2)
        view = await status(latest)
        assert (view.phase, view.processed_generation, view.pending_generation) == ("Ready", 2, None)
        assert await plan(latest) == []


async def test_continue_as_new_when_temporal_suggests_it(dev_env: WorkflowEnvironment) -> None:
    """On a real dev server that suggests continue-as-new past 50 events: a stream of (duplicate) signals
    grows the history until the server suggests it, and the workflow continues-as-new with its state."""
    async with running(dev_env) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        first_run = (await handle.describe()).run_id
        for _ in range(30):
            await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, uid=run.fake.uid))

        async def continued() -> bool:
            return (await handle.describe()).run_id != first_run
        await until(continued, "continue-as-new")
        first = run.client.get_workflow_handle(run.fake.workflow_id, run_id=first_run)
        assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        view = await status(handle)
        assert (view.phase, view.processed_generation, view.pending_generation) == ("Ready", 1, None)
        assert run.fake.count(act.OBSERVE_CLUSTER) == 1  # duplicates never caused a pass


# --- deletion ---------------------------------------------------------------------------------------------

async def test_deleting_a_ready_cluster_cleans_up_and_ends(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        for role in ("controllers", "brokers"):
            fake.spec[role] = {**fake.spec[role], "storage": {"size": "1Gi", "deleteClaim": True}}
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)

        fake.deleting = True
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, deleting=True))
        result = await handle.result()
        assert result == f"deleted: {fake.namespace}/demo (generation 1)"
        assert fake.names()[-3:] == [act.OBSERVE_CLUSTER, act.CLEANUP_CLUSTER, act.REMOVE_FINALIZER]
        cleanup = next(arg for name, arg in fake.calls if name == act.CLEANUP_CLUSTER)
        assert cleanup.delete_claims is True
        assert not fake.found and fake.finalizers == []
        assert fake.events[-1].reason == "Deleting"
        description = await handle.describe()
        assert [v for k, v in description.typed_search_attributes if k.name == SA_CLUSTER_PHASE] == ["Deleting"]


async def test_deletion_mid_provisioning_cancels_the_operation(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        fake.hold(act.WAIT_BROKERS_REGISTERED)
        handle = await run.start()
        await until(lambda: _async(act.WAIT_BROKERS_REGISTERED in fake.started), "the brokers wait")

        fake.deleting = True
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, deleting=True))
        # The workflow does not wait for the cancelled wait to acknowledge it (TRY_CANCEL).
        result = await handle.result()
        assert result.startswith("deleted: ")
        after_wait = fake.names()[fake.names().index(act.WAIT_BROKERS_REGISTERED) + 1:]
        assert after_wait == [act.OBSERVE_CLUSTER, act.CLEANUP_CLUSTER, act.REMOVE_FINALIZER]
        cleanup = next(arg for name, arg in fake.calls if name == act.CLEANUP_CLUSTER)
        assert cleanup.delete_claims is False  # deleteClaim defaults to keeping the data
        cancelled = [a.last_operation for n, a in fake.calls if n == act.UPDATE_STATUS and a.last_operation]
        assert cancelled[-1]["result"] == "Cancelled" and cancelled[-1]["type"] == "Provisioning"
        assert cancelled[-1]["message"] == "the KafkaCluster is being deleted"
        assert outcomes(fake) == ["interrupted"]


async def test_cluster_gone_ends_the_workflow(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        fake.found = False
        await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="KafkaCluster", name="demo",
                                                                     reason="Deleted"))
        # (result() lets the test server skip the debounce timer.)
        assert (await handle.result()) == f"gone: {fake.namespace}/demo no longer exists"
        assert fake.names()[-1] == act.OBSERVE_CLUSTER


async def test_cluster_id_is_kafka_uuid_text() -> None:
    # What `kafka-storage.sh random-uuid` prints: 16 bytes as unpadded base64url.
    raw = bytes.fromhex("fb9dc7ff1b4f4a2e9f3e2c1d0a0b0c0d")
    assert kraft_cluster_id(raw) == base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert len(kraft_cluster_id(raw)) == 22 and kraft_cluster_id(raw).startswith("-")  # why ids are re-drawn


# --- replay -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("history_file", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_histories_replay_deterministically(history_file: Path) -> None:
    """Histories recorded from earlier runs (``BALLAST_RECORD_HISTORIES=1``) must replay on today's code:
    a change that breaks determinism for running workflows fails here."""
    from temporalio.client import WorkflowHistory

    history = WorkflowHistory.from_json("kafkacluster/recorded", history_file.read_text())
    replayer = Replayer(workflows=[KafkaClusterWorkflow, RollWorkflow, RebalanceWorkflow],
                        data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
