"""What the cluster workflow shows to people watching it: one trace per Kubernetes event through the real
``KafkaClusterWorkflow`` to its activities (an in-memory span exporter), and the static summaries of the child
workflows it starts (the Temporal UI's label for them). Time-skipping test server, activity fakes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities import contracts as act
from ballast import observability
from ballast.messages import (
    SIGNAL_OBSERVED_CHANGED,
    SIGNAL_SPEC_CHANGED,
    UPDATE_REQUEST_ROLL,
    ClusterRef,
    KafkaClusterWorkflowInput,
    ObservedChanged,
    RollRequest,
    RollRequestAccepted,
    SpecChanged,
    rebalance_workflow_id,
    roll_workflow_id,
)
from ballast.observed import ObservedCluster
from tests.workflows.test_kafkacluster_workflow import (
    FakeCluster,
    _async,
    running,
    settle,
    until,
    until_phase,
)
from tests.workflows.test_rebalance_workflow import scaling_cluster, until_rebalanced, with_brokers
from tests.workflows.test_roll_workflow import RollingCluster, until_rolled
from workflows.kafkacluster import KafkaClusterWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.roll import RollWorkflow

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.filterwarnings("error:.*handlers are still running:RuntimeWarning"),
]


def traced_client(env: WorkflowEnvironment, provider: TracerProvider) -> Client:
    """The environment's client with the tracing interceptor, as the operator connects (its workers too)."""
    config = env.client.config()
    config["interceptors"] = [observability.tracing_interceptor(provider)]
    return Client(**config)


async def static_summary(client: Client, workflow_id: str) -> str:
    """A workflow's static summary as its start recorded it (the test server keeps it on the started event;
    a real server also returns it from describe)."""
    started = (await client.get_workflow_handle(workflow_id).fetch_history()).events[0]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    if not started.user_metadata.HasField("summary"):
        return ""
    text: str = pydantic_data_converter.payload_converter.from_payload(started.user_metadata.summary, str)
    return text


def _named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time or 0)


async def test_each_event_runs_its_pass_in_its_own_trace(
        env: WorkflowEnvironment, spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """As the watchers do it: each event's span sends a signal carrying its traceparent. The pass that answers
    it -- also in a workflow that is already running -- starts its activities under that span."""
    provider, exporter = spans
    traced = traced_client(env, provider)
    tracer = provider.get_tracer("test.watchers")
    fake = FakeCluster()
    async with running(env, fake, client=traced) as run:
        with tracer.start_as_current_span("KafkaCluster ADDED"):
            handle = await traced.start_workflow(
                KafkaClusterWorkflow.run, KafkaClusterWorkflowInput(namespace=fake.namespace, name=fake.name),
                id=fake.workflow_id, task_queue=run.task_queue, start_signal=SIGNAL_SPEC_CHANGED,
                start_signal_args=[SpecChanged(generation=1, uid=fake.uid,
                                               trace_context=observability.inject_trace_context())])
        await until_phase(handle, "Ready", generation=1)

        # A new generation, signalled to the running workflow.
        fake.update_spec(brokers={"replicas": 3, "config": {"log.retention.hours": "24"}})
        with tracer.start_as_current_span("KafkaCluster MODIFIED"):
            await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(
                generation=2, uid=fake.uid, trace_context=observability.inject_trace_context()))
        await until_phase(handle, "Ready", generation=2)

        # Drift noticed by the owned-objects watcher.
        del fake.live[("Service", "demo-kafka-bootstrap")]
        with tracer.start_as_current_span("Service DELETED"):
            await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(
                kind="Service", name="demo-kafka-bootstrap", reason="Deleted",
                trace_context=observability.inject_trace_context()))
        await settle(env)
        await until(lambda: _async(("Service", "demo-kafka-bootstrap") in fake.live), "the Service re-created")
        await until_phase(handle, "Ready", generation=2)

        # Tracing changes no workflow command: this history replays on a worker without the interceptor.
        await Replayer(workflows=[KafkaClusterWorkflow], data_converter=pydantic_data_converter).replay_workflow(
            await handle.fetch_history())

    finished = list(exporter.get_finished_spans())
    by_id = {s.context.span_id: s for s in finished}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, f"{span.name} has no parent"
        return by_id[span.parent.span_id]

    events = [_named(finished, name)[0] for name in ("KafkaCluster ADDED", "KafkaCluster MODIFIED",
                                                     "Service DELETED")]
    assert len({e.context.trace_id for e in events}) == 3
    applies = _named(finished, f"RunActivity:{act.APPLY_MANIFESTS}")
    # Provisioning applied controllers then brokers; generation 2 the brokers; the drift pass the Service.
    assert len(applies) == 4
    assert [parent(parent(a)).name for a in applies] == [
        "KafkaCluster ADDED", "KafkaCluster ADDED", "KafkaCluster MODIFIED", "Service DELETED"]
    assert [a.context.trace_id for a in applies] == [events[0].context.trace_id] * 2 + [
        events[1].context.trace_id, events[2].context.trace_id]
    # Every activity of a pass is in its event's trace, not just the applies (the observation starts it).
    observes = _named(finished, f"RunActivity:{act.OBSERVE_CLUSTER}")
    assert {o.context.trace_id for o in observes} == {e.context.trace_id for e in events}


async def test_child_workflows_carry_static_summaries(env: WorkflowEnvironment) -> None:
    """The Temporal UI labels a roll and a rebalance with what they are for and which cluster they belong to."""
    roller = RollingCluster()
    async with running(env, roller, workflows=[KafkaClusterWorkflow, RollWorkflow]) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        await handle.execute_update(UPDATE_REQUEST_ROLL, RollRequest(reason="rotate certificates", brokers=[0]),
                                    result_type=RollRequestAccepted)
        await until_rolled(handle, roller, 1)
        summary = await static_summary(env.client, roll_workflow_id(roller.namespace, "demo", 1))
        assert summary == f"roll {roller.namespace}/demo: rotate certificates"

    scaler: Any = scaling_cluster(3)
    async with running(env, scaler, workflows=[KafkaClusterWorkflow, RebalanceWorkflow, RollWorkflow]) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        with_brokers(scaler, 4)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_rebalanced(handle, scaler, 1)
        summary = await static_summary(env.client, rebalance_workflow_id(scaler.namespace, "demo", 1))
        assert summary.startswith(f"scale-out {scaler.namespace}/demo: "), summary


@dataclass
class KafkaLoggingCluster(FakeCluster):
    """Its observation logs through kafka-python's logger, as the real one does when a broker is unreachable."""

    @activity.defn(name=act.OBSERVE_CLUSTER)
    async def observe_cluster(self, ref: ClusterRef) -> ObservedCluster:
        logging.getLogger("kafka.conn").warning("connect attempt to %s-broker-0 returned ECONNREFUSED", ref.name)
        return await super().observe_cluster(ref)


async def test_workflow_and_activity_logs_carry_cluster_workflow_and_trace(
        env: WorkflowEnvironment, spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """The JSON lines of a pass that fails: the workflow's own warning and temporalio's note on the failed
    activity both name the cluster and the workflow, in the trace of the event that asked for the pass."""
    provider, _ = spans
    traced = traced_client(env, provider)
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith(("temporalio.", "kafka.")):
                lines.append(self.format(record))

    handler = Capture()
    handler.addFilter(observability.ContextFilter())
    handler.setFormatter(observability.JsonFormatter())
    logging.getLogger().addHandler(handler)
    fake = KafkaLoggingCluster()
    fake.failures[act.APPLY_MANIFESTS] = [ApplicationError("Service/demo-controllers is not ours",
                                                           type="OwnershipConflict", non_retryable=True)]
    try:
        async with running(env, fake, client=traced) as run:
            with provider.get_tracer("test.watchers").start_as_current_span("KafkaCluster ADDED") as added:
                handle = await traced.start_workflow(
                    KafkaClusterWorkflow.run, KafkaClusterWorkflowInput(namespace=fake.namespace, name=fake.name),
                    id=fake.workflow_id, task_queue=run.task_queue, start_signal=SIGNAL_SPEC_CHANGED,
                    start_signal_args=[SpecChanged(generation=1, uid=fake.uid,
                                                   trace_context=observability.inject_trace_context())])
            await until_phase(handle, "Invalid", generation=1)
    finally:
        logging.getLogger().removeHandler(handler)

    records = [json.loads(line) for line in lines]
    workflow_warning = next(r for r in records if r["msg"].startswith("pass failed at 3/7 apply controllers"))
    activity_failure = next(r for r in records if r["logger"] == "temporalio.activity"
                            and r["msg"].startswith("Completing activity as failed"))
    kafka_warning = next(r for r in records if r["logger"] == "kafka.conn")
    for record in (workflow_warning, activity_failure, kafka_warning):
        assert record["cluster"] == f"{fake.namespace}/demo", record
        assert record["workflow_id"] == fake.workflow_id, record
    # temporalio notes the failure after the activity's span ended; what is logged inside the activity and the
    # workflow's own records are in the event's trace.
    for record in (workflow_warning, kafka_warning):
        assert record["trace_id"] == f"{added.get_span_context().trace_id:032x}", record
