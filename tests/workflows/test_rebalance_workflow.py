"""RebalanceWorkflow and the cluster workflow's structural operations (scale-out, scale-in, rebalance on request or
for disk skew, volume expansion) against Temporal's time-skipping test server, with activity fakes.

``FakePartitions`` stands in for Kafka behind the rebalance contracts: partitions with replicas and sizes, the
reassignments in flight (each completes after ``ticks`` polls of ``wait_reassignments``, or never while
``stalled``), the throttles, and a small greedy planner (drain the brokers removed, else even out replica counts).
It counts how often Kafka accepted each partition's reassignment, so the tests can assert nothing moved twice.
``ScalingCluster`` extends the roll tests' ``RollingCluster`` (itself a ``FakeCluster``) with those partitions, a
broker StatefulSet whose size is what was last applied, pods that go when it shrinks, PVCs and registrations.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import contracts as act
from ballast.manifests.names import Role, node_ids
from ballast.messages import (
    QUERY_REBALANCE,
    REBALANCE_ANNOTATION,
    REBALANCE_QUERY_PLAN,
    REBALANCE_QUERY_PROGRESS,
    REBALANCE_UPDATE_APPROVE,
    REBALANCE_UPDATE_CANCEL,
    REBALANCE_UPDATE_PAUSE,
    REBALANCE_UPDATE_RESUME,
    SIGNAL_REBALANCE_PROGRESS,
    SIGNAL_SPEC_CHANGED,
    UPDATE_APPROVE_REBALANCE,
    UPDATE_CANCEL_OPERATION,
    UPDATE_PAUSE,
    UPDATE_REQUEST_REBALANCE,
    UPDATE_RESUME,
    ApproveRequest,
    CancelRequest,
    ClusterRef,
    KafkaClusterWorkflowInput,
    PauseRequest,
    RebalanceAccepted,
    RebalanceInput,
    RebalanceProgress,
    RebalanceRequest,
    RebalanceResult,
    RebalanceSettings,
    ResumeRequest,
    SpecChanged,
    WorkflowStatusView,
    rebalance_workflow_id,
)
from ballast.observed import ObservedCluster
from tests.workflows.conftest import record_history_if_asked, terminate_workflows, time_skipping_server
from tests.workflows.test_kafkacluster_workflow import FakeCluster, idle, quiescent, status, until_phase
from tests.workflows.test_roll_workflow import Pod, RollingCluster, until
from workflows.kafkacluster import KafkaClusterWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.roll import RollWorkflow

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    # A workflow that ends or continues-as-new with a handler still running loses that handler's work.
    pytest.mark.filterwarnings("error:.*handlers are still running:RuntimeWarning"),
]


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_env() -> AsyncIterator[WorkflowEnvironment]:
    """A server of its own, for a test that skips minutes of workflow time. The test server stops skipping time
    while any activity is pending -- also one of a workflow that already ended, which a cancel racing the
    activity's completion can leave behind (TRY_CANCEL: the workflow does not wait for the acknowledgement)."""
    async with time_skipping_server() as environment:
        yield environment


MB = 2**20
THROTTLE = 10 * MB


# --- the fake Kafka: partitions and their reassignments ----------------------------------------------------------

@dataclass
class Partition:
    replicas: list[int]
    size: int = 100 * MB


def layout(brokers: list[int], count: int, rf: int = 2, topic: str = "t", size: int = 100 * MB) -> dict[str, Partition]:
    """``count`` partitions of ``topic`` with ``rf`` replicas, round-robin over ``brokers``."""
    return {f"{topic}-{i}": Partition([brokers[(i + r) % len(brokers)] for r in range(rf)], size)
            for i in range(count)}


def _spread(values: list[int]) -> float:
    if not values or not sum(values):
        return 0.0
    mean = sum(values) / len(values)
    return max(abs(v - mean) for v in values) / mean * 100


@dataclass
class FakePartitions:
    """Kafka's partitions and reassignments behind the rebalance activity contracts."""

    namespace: str = field(default_factory=lambda: f"rb-{uuid.uuid4().hex[:8]}")
    brokers: list[int] = field(default_factory=lambda: [0, 1, 2])
    partitions: dict[str, Partition] = field(default_factory=dict)
    moving: dict[str, list[int]] = field(default_factory=dict)  # 'topic-partition' in flight -> its target
    polls: Counter[str] = field(default_factory=Counter)  # wait polls a move in flight has seen
    ticks: int = 1  # polls until a move in flight completes
    stalled: bool = False  # moves in flight make no progress; a wait polls until they do or are cancelled
    stall_from: int = 0  # > 0: from this wait call on, as if stalled
    plans: list[act.PlanRebalanceResult] = field(default_factory=list)  # scripted, used before planning
    disk_spread: float | None = None  # what the plans report as the disk spread before (None: computed)
    on_verify: Callable[[], None] | None = None
    submissions: Counter[str] = field(default_factory=Counter)  # reassignments Kafka accepted, per partition
    throttled: set[str] = field(default_factory=set)  # topics with replication throttles
    throttle_rate: int = 0
    clears: int = 0
    calls: list[tuple[str, Any]] = field(default_factory=list)
    events: list[act.EventInput] = field(default_factory=list)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    # Activity name -> what its next calls do, in order: raise the exception, or (None) run as usual.
    failures: dict[str, list[Exception | None]] = field(default_factory=dict)

    @property
    def ref(self) -> ClusterRef:
        return ClusterRef(namespace=self.namespace, name="demo")

    def activities(self, *, events: bool = True) -> list[Callable[..., Any]]:
        return [self.plan_rebalance, self.submit_reassignments, self.wait_reassignments, self.cancel_reassignments,
                self.clear_throttles, self.elect_leaders_for_partitions, self.verify_brokers_empty,
                *([self.record_event] if events else [])]

    # What the tests look at and set up.

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)

    def args(self, name: str) -> list[Any]:
        return [a for n, a in self.calls if n == name]

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def assignment(self) -> dict[str, list[int]]:
        return {k: list(p.replicas) for k, p in self.partitions.items()}

    def holding(self, broker: int) -> list[str]:
        return sorted(k for k, p in self.partitions.items()
                      if broker in p.replicas or broker in self.moving.get(k, []))

    def move(self, key: str, target: list[int]) -> act.MoveSpec:
        topic, partition = key.rsplit("-", 1)
        p = self.partitions[key]
        return act.MoveSpec(topic=topic, partition=int(partition), source=list(p.replicas), target=target,
                            size_bytes=p.size)

    # Shared behaviour.

    async def _enter(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        self.started.setdefault(name, asyncio.Event()).set()
        pending = self.failures.get(name)
        if pending:
            error = pending.pop(0)
            if error is not None:
                raise error

    def _bytes(self, assignment: dict[str, list[int]]) -> list[int]:
        return [sum(self.partitions[k].size for k, r in assignment.items() if b in r) for b in self.brokers]

    def _plan(self, inp: act.PlanRebalanceInput) -> act.PlanRebalanceResult:
        """Greedy and deterministic: replace every replica on a removed broker by the least loaded broker left;
        without brokers to remove, move replicas from the most to the least loaded broker until counts are even."""
        live = [b for b in self.brokers if b not in inp.remove]
        target = self.assignment()
        load = Counter({b: 0 for b in live})
        load.update(b for r in target.values() for b in r if b in load)
        infeasible: list[str] = []
        for key in sorted(target):
            replicas = target[key]
            for i, b in enumerate(replicas):
                if b not in inp.remove:
                    continue
                options = sorted((c for c in live if c not in replicas), key=lambda c: (load[c], c))
                if not options:
                    infeasible.append(f"{key}: replication factor {len(replicas)} > {len(live)} brokers left")
                    break
                replicas[i] = options[0]
                load[options[0]] += 1
        if infeasible:
            return act.PlanRebalanceResult(infeasible=infeasible)
        while not inp.remove and live:
            most = max(live, key=lambda b: (load[b], -b))
            least = min(live, key=lambda b: (load[b], b))
            if load[most] - load[least] <= 1:
                break
            key = next(k for k in sorted(target) if most in target[k] and least not in target[k])
            target[key] = [least if b == most else b for b in target[key]]
            load[most] -= 1
            load[least] += 1
        moves = [self.move(k, target[k]) for k in sorted(target) if target[k] != self.partitions[k].replicas]
        truncated = len(moves) > inp.max_moves
        moves = moves[:inp.max_moves]
        size = inp.max_moves_per_batch
        before = self._bytes(self.assignment())
        spread = _spread(before) if self.disk_spread is None else self.disk_spread
        return act.PlanRebalanceResult(
            batches=[moves[i:i + size] for i in range(0, len(moves), size)], truncated=truncated,
            moves=len(moves), bytes_to_move=sum(m.bytes_to_move for m in moves),
            lower_bound_bytes=sum(m.bytes_to_move for m in moves) // 2, partitions=len(self.partitions),
            disk_before=act.SpreadFacts(max_deviation_percent=spread),
            disk_after=act.SpreadFacts(max_deviation_percent=_spread(self._bytes(target))))

    def _moved(self, moves: list[act.MoveSpec]) -> int:
        return sum(m.bytes_to_move if m.key not in self.moving else m.bytes_to_move * self.polls[m.key] // self.ticks
                   for m in moves)

    # The activities.

    @activity.defn(name=act.PLAN_REBALANCE)
    async def plan_rebalance(self, inp: act.PlanRebalanceInput) -> act.PlanRebalanceResult:
        await self._enter(act.PLAN_REBALANCE, inp)
        missing = sorted(set(inp.require_brokers) - set(self.brokers))
        if missing:
            raise ApplicationError(f"brokers {missing} are not registered", type="BrokersNotRegistered")
        if self.plans:
            return self.plans.pop(0)
        return self._plan(inp)

    @activity.defn(name=act.SUBMIT_REASSIGNMENTS)
    async def submit_reassignments(self, inp: act.SubmitReassignmentsInput) -> act.SubmitReassignmentsResult:
        await self._enter(act.SUBMIT_REASSIGNMENTS, inp)
        result = act.SubmitReassignmentsResult()
        for m in inp.moves:
            p = self.partitions.get(m.key)
            if p is None:
                result.skipped[m.key] = "topic deleted"
            elif m.key in self.moving:
                result.already_in_flight.append(m.key)
            elif p.replicas == m.target:
                result.already_done.append(m.key)
            elif p.replicas != m.source:
                result.skipped[m.key] = f"replicas are {p.replicas} now"
            else:
                self.moving[m.key] = list(m.target)
                self.polls[m.key] = 0
                self.submissions[m.key] += 1
                result.submitted.append(m.key)
            if inp.throttle_bytes_per_sec and m.key in self.moving:
                self.throttled.add(m.topic)
                self.throttle_rate = inp.throttle_bytes_per_sec
        result.throttled_topics = sorted(self.throttled)
        return result

    @activity.defn(name=act.WAIT_REASSIGNMENTS)
    async def wait_reassignments(self, inp: act.WaitReassignmentsInput) -> act.WaitReassignmentsResult:
        await self._enter(act.WAIT_REASSIGNMENTS, inp)
        keys = [m.key for m in inp.moves]
        call = self.count(act.WAIT_REASSIGNMENTS)
        try:
            while (self.stalled or 0 < self.stall_from <= call) and any(k in self.moving for k in keys):
                activity.heartbeat()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.cancelled.append(act.WAIT_REASSIGNMENTS)
            raise
        for key in keys:
            if key in self.moving:
                self.polls[key] += 1
                if self.polls[key] >= self.ticks:
                    self.partitions[key].replicas = self.moving.pop(key)
        flying = [k for k in keys if k in self.moving]
        total = sum(m.bytes_to_move for m in inp.moves)
        if flying:
            return act.WaitReassignmentsResult(done=False, bytes_total=total, bytes_moved=self._moved(inp.moves),
                                               in_flight=flying, detail=f"{len(flying)} moves copying")
        off = {m.key: str(self.partitions[m.key].replicas) for m in inp.moves
               if m.key in self.partitions and sorted(self.partitions[m.key].replicas) != sorted(m.target)}
        return act.WaitReassignmentsResult(done=True, bytes_total=total, bytes_moved=self._moved(inp.moves),
                                           completed=[k for k in keys if k not in off], not_at_target=off)

    @activity.defn(name=act.CANCEL_REASSIGNMENTS)
    async def cancel_reassignments(self, inp: act.CancelReassignmentsInput) -> act.CancelReassignmentsResult:
        await self._enter(act.CANCEL_REASSIGNMENTS, inp)
        result = act.CancelReassignmentsResult()
        for key in inp.partitions if inp.partitions is not None else sorted(self.moving):
            if self.moving.pop(key, None) is not None:  # Kafka puts it back on its original replicas
                result.cancelled.append(key)
            else:
                result.not_in_flight.append(key)
        return result

    @activity.defn(name=act.CLEAR_THROTTLES)
    async def clear_throttles(self, inp: act.ClearThrottlesInput) -> act.ClearThrottlesResult:
        await self._enter(act.CLEAR_THROTTLES, inp)
        topics, self.throttled, self.throttle_rate = sorted(self.throttled), set(), 0
        self.clears += 1
        return act.ClearThrottlesResult(topics=topics, brokers=list(self.brokers))

    @activity.defn(name=act.ELECT_LEADERS_FOR_PARTITIONS)
    async def elect_leaders_for_partitions(self, inp: act.ElectPartitionsInput) -> act.ElectLeadersResult:
        await self._enter(act.ELECT_LEADERS_FOR_PARTITIONS, inp)
        return act.ElectLeadersResult(elected=list(inp.partitions))

    @activity.defn(name=act.VERIFY_BROKERS_EMPTY)
    async def verify_brokers_empty(self, inp: act.VerifyBrokersEmptyInput) -> act.VerifyBrokersEmptyResult:
        await self._enter(act.VERIFY_BROKERS_EMPTY, inp)
        if self.on_verify is not None:
            self.on_verify()
        holders = {b: self.holding(b) for b in inp.brokers}
        return act.VerifyBrokersEmptyResult(holders={b: p for b, p in holders.items() if p})

    @activity.defn(name=act.RECORD_EVENT)
    async def record_event(self, inp: act.EventInput) -> str:
        self.calls.append((act.RECORD_EVENT, inp))
        self.events.append(inp)
        return str(len(self.events))


# --- RebalanceWorkflow alone ---------------------------------------------------------------------------------------

@workflow.defn(name="RebalanceProgressSink", sandboxed=False)
class ProgressSink:
    """Stands in for the cluster workflow (same id): collects the progress a rebalance signals, ends at its end."""

    def __init__(self) -> None:
        self._seen: list[RebalanceProgress] = []

    @workflow.run
    async def run(self) -> list[RebalanceProgress]:
        await workflow.wait_condition(
            lambda: bool(self._seen) and self._seen[-1].state in ("Succeeded", "Failed", "Cancelled"))
        return self._seen

    @workflow.signal(name=SIGNAL_REBALANCE_PROGRESS)
    def progress(self, progress: RebalanceProgress) -> None:
        self._seen.append(progress)


@dataclass
class Rebalance:
    """Handles without time skipping: their ``result()`` waits in real time (a time-skipping handle's would let
    the server jump past the heartbeat timeout of an activity a fake keeps in flight)."""

    env: WorkflowEnvironment
    client: Client
    fake: FakePartitions
    task_queue: str

    async def start(self, **input: Any) -> WorkflowHandle[Any, RebalanceResult]:
        settings = input.pop("settings", RebalanceSettings(throttle_bytes_per_sec=THROTTLE, max_moves_per_batch=2))
        started = await self.client.start_workflow(
            RebalanceWorkflow.run, RebalanceInput(ref=self.fake.ref, settings=settings, **input),
            id=f"rebalance/{self.fake.namespace}/demo/1", task_queue=self.task_queue)
        return self.client.get_workflow_handle(started.id, run_id=started.result_run_id, result_type=RebalanceResult)

    async def sink(self) -> WorkflowHandle[Any, list[RebalanceProgress]]:
        started = await self.client.start_workflow(ProgressSink.run, id=self.fake.ref.workflow_id,
                                                   task_queue=self.task_queue)
        return self.client.get_workflow_handle(started.id, run_id=started.result_run_id,
                                               result_type=list[RebalanceProgress])


@asynccontextmanager
async def rebalancing(env: WorkflowEnvironment, fake: FakePartitions) -> AsyncIterator[Rebalance]:
    task_queue = f"rebalance-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=[RebalanceWorkflow, ProgressSink],
                      activities=fake.activities()):
        yield Rebalance(env, env.client, fake, task_queue)
        await record_history_if_asked(env.client, rebalance_workflow_id(fake.namespace, "demo", 1), "rebalance")


async def progress(handle: WorkflowHandle[Any, Any]) -> RebalanceProgress:
    value: RebalanceProgress = await handle.query(REBALANCE_QUERY_PROGRESS, result_type=RebalanceProgress)
    return value


async def _state_is(handle: WorkflowHandle[Any, Any], state: str) -> bool:
    return (await progress(handle)).state == state


def scale_out_kafka(**kwargs: Any) -> FakePartitions:
    """Five brokers, every replica on the first three: the plan moves replicas onto 3 and 4."""
    fake = FakePartitions(brokers=[0, 1, 2, 3, 4], **kwargs)
    fake.partitions = layout([0, 1, 2], 9)
    return fake


async def test_batches_run_in_order_once_each_across_a_failed_wait(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka(ticks=2)  # each batch reports progress once before it completes
    fake.failures[act.WAIT_REASSIGNMENTS] = [None, ApplicationError("connection reset: broker 3 restarting")]
    async with rebalancing(env, fake) as run:
        sink = await run.sink()
        handle = await run.start(purpose="scale-out", require_brokers=[3, 4], reason="scale-out to 5")
        result = await handle.result()
        plan = await handle.query(REBALANCE_QUERY_PLAN, result_type=act.PlanRebalanceResult)
        seen = await sink.result()

    assert result.outcome == "Succeeded" and result.purpose == "scale-out"
    assert plan is not None and len(plan.batches) >= 2
    submitted = [[m.key for m in s.moves] for s in fake.args(act.SUBMIT_REASSIGNMENTS)]
    assert submitted == [[m.key for m in b] for b in plan.batches]  # in order, each batch once
    assert set(fake.submissions.values()) == {1}  # no partition reassigned twice
    # Two polls per batch, plus the failed one the retry replaced.
    assert fake.count(act.WAIT_REASSIGNMENTS) == 2 * len(plan.batches) + 1
    assert (result.moves_done, result.batches_done) == (plan.moves, len(plan.batches))
    assert result.bytes_moved == plan.bytes_to_move
    assert fake.holding(3) and fake.holding(4) and fake.moving == {}
    counts = Counter(b for p in fake.partitions.values() for b in p.replicas)
    assert max(counts.values()) - min(counts.values()) <= 1
    # Moves throttled while copying, throttles cleared once at the end; after each batch, the preferred leader is
    # elected where it changed.
    assert fake.throttle_rate == 0 and fake.throttled == set() and fake.clears == 1
    elected = [e.partitions for e in fake.args(act.ELECT_LEADERS_FOR_PARTITIONS)]
    new_leader = [[m.key for m in b if m.target[0] != m.source[0]] for b in plan.batches]
    assert elected == [keys for keys in new_leader if keys] and elected
    assert fake.reasons() == ["RebalancePlanned", *["RebalanceProgress"] * len(plan.batches), "RebalanceFinished"]
    assert fake.events[-2].message.startswith(f"batch {len(plan.batches)}/{len(plan.batches)} done: ")
    assert "scale-out: " in fake.events[0].message and "moves in" in fake.events[0].message

    # The cluster workflow (stood in for by the sink) heard each step: planning, batch by batch, the end.
    states = [p.state for p in seen]
    assert states[0] == "Planning" and states[-1] == "Succeeded" and "Running" in states
    done = [p.batches_done for p in seen if p.state == "Running"]
    assert done == sorted(done) and done[-1] == len(plan.batches)
    assert any(p.eta_seconds is not None and 0 < p.bytes_moved < p.bytes_to_move for p in seen)
    assert seen[-1].bytes_moved == plan.bytes_to_move and seen[-1].eta_seconds is None
    assert all(p.workflow_id == handle.id and p.purpose == "scale-out" for p in seen)


async def test_progress_without_a_cluster_workflow_is_dropped(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka()
    async with rebalancing(env, fake) as run:
        handle = await run.start()  # no workflow with the cluster's id: nobody to tell
        result = await handle.result()
        final = await progress(handle)
    assert result.outcome == "Succeeded" and result.moves_done > 0
    assert final.state == "Succeeded" and final.bytes_moved == result.bytes_moved


async def test_already_balanced_moves_nothing(env: WorkflowEnvironment) -> None:
    fake = FakePartitions()
    fake.partitions = layout([0, 1, 2], 6)
    async with rebalancing(env, fake) as run:
        result = await (await run.start()).result()
    assert result.outcome == "Succeeded" and result.message.startswith("already balanced: nothing to move")
    assert fake.count(act.SUBMIT_REASSIGNMENTS) == 0 and fake.clears == 0  # nothing throttled, nothing to clear
    assert fake.reasons() == ["RebalanceFinished"]


# --- approval ------------------------------------------------------------------------------------------------------

async def test_approval_holds_the_plan_until_approved(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka()
    async with rebalancing(env, fake) as run:
        handle = await run.start(require_approval=True)
        await until(lambda: _state_is(handle, "AwaitingApproval"), "the plan to wait for approval")
        waiting = await progress(handle)
        plan = await handle.query(REBALANCE_QUERY_PLAN, result_type=act.PlanRebalanceResult)
        assert plan is not None and waiting.moves == plan.moves > 0 and waiting.bytes_to_move == plan.bytes_to_move
        assert waiting.waiting.startswith("approval")
        assert fake.count(act.SUBMIT_REASSIGNMENTS) == 0
        assert fake.events[0].reason == "RebalancePlanned" and fake.events[0].message.endswith("waiting for approval")

        approved = await handle.execute_update(REBALANCE_UPDATE_APPROVE, ApproveRequest(reason="looks right"),
                                               result_type=RebalanceProgress)
        assert approved.state == "AwaitingApproval"  # answered before the moves start
        result = await handle.result()
    assert result.outcome == "Succeeded" and fake.count(act.SUBMIT_REASSIGNMENTS) == len(plan.batches)
    approval = next(e for e in fake.events if e.reason == "RebalanceApproved")
    assert approval.message == "looks right"


async def test_cancel_while_awaiting_approval_moves_nothing(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka()
    before = fake.assignment()
    async with rebalancing(env, fake) as run:
        handle = await run.start(require_approval=True)
        await until(lambda: _state_is(handle, "AwaitingApproval"), "the plan to wait for approval")
        await handle.execute_update(REBALANCE_UPDATE_CANCEL, CancelRequest(reason="not today"),
                                    result_type=RebalanceProgress)
        result = await handle.result()
    assert result.outcome == "Cancelled" and result.message == "not today" and result.moves_done == 0
    assert fake.assignment() == before
    assert [n for n, _ in fake.calls if n != act.RECORD_EVENT] == [act.PLAN_REBALANCE]
    assert fake.reasons()[-1] == "RebalanceCancelled"


async def test_approve_is_refused_without_a_plan_waiting(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka(stalled=True)
    async with rebalancing(env, fake) as run:
        handle = await run.start()  # no approval asked for
        await until(lambda: act.WAIT_REASSIGNMENTS in fake.started, "the first batch")
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(REBALANCE_UPDATE_APPROVE, ApproveRequest(), result_type=RebalanceProgress)
        assert "is not waiting for approval (Running)" in str(rejected.value.cause)
        fake.stalled = False
        assert (await handle.result()).outcome == "Succeeded"


# --- pause, resume, cancel ---------------------------------------------------------------------------------------

async def test_pause_holds_at_the_next_batch_boundary_and_resume_goes_on(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka(stalled=True)
    async with rebalancing(env, fake) as run:
        handle = await run.start()
        await until(lambda: act.WAIT_REASSIGNMENTS in fake.started, "the first batch copying")
        paused = await handle.execute_update(REBALANCE_UPDATE_PAUSE, PauseRequest(reason="peak hours"),
                                             result_type=RebalanceProgress)
        assert paused.paused and paused.state == "Running"
        fake.stalled = False  # the batch in flight completes...
        await until(lambda: _state_is(handle, "Paused"), "the rebalance to hold")
        held = await progress(handle)
        assert held.waiting == "paused: peak hours" and held.batches_done == 1 and held.eta_seconds is None
        assert fake.count(act.SUBMIT_REASSIGNMENTS) == 1 and fake.moving == {}  # ...and the next does not start

        await handle.execute_update(REBALANCE_UPDATE_RESUME, ResumeRequest(), result_type=RebalanceProgress)
        result = await handle.result()
        plan = await handle.query(REBALANCE_QUERY_PLAN, result_type=act.PlanRebalanceResult)
    assert plan is not None and result.outcome == "Succeeded" and result.batches_done == len(plan.batches) > 1
    assert set(fake.submissions.values()) == {1}


async def test_cancel_mid_batch_cancels_the_moves_in_flight_and_clears_throttles(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka(stall_from=2)  # batch 1 completes; batch 2 is copying when the cancel arrives
    async with rebalancing(env, fake) as run:
        handle = await run.start()
        await until(lambda: fake.count(act.WAIT_REASSIGNMENTS) == 2 and bool(fake.moving), "the second batch copying")
        after_first = fake.assignment()
        in_flight = sorted(fake.moving)
        assert fake.throttled == {"t"}
        await handle.execute_update(REBALANCE_UPDATE_CANCEL, CancelRequest(reason="change window over"),
                                    result_type=RebalanceProgress)
        result = await handle.result()
    assert result.outcome == "Cancelled" and result.message == "change window over"
    assert result.batches_done == 1 and fake.count(act.SUBMIT_REASSIGNMENTS) == 2
    cancels = fake.args(act.CANCEL_REASSIGNMENTS)
    assert [c.partitions for c in cancels] == [in_flight]
    # Back on their original replicas: batch 1's moves stay done, batch 2's never happened.
    assert fake.moving == {} and fake.assignment() == after_first
    assert fake.throttled == set() and fake.clears == 1
    assert fake.reasons()[-2:] == ["ReassignmentsCancelled", "RebalanceCancelled"]
    names = [n for n, _ in fake.calls if n != act.RECORD_EVENT]
    assert names[-2:] == [act.CANCEL_REASSIGNMENTS, act.CLEAR_THROTTLES]


async def test_non_retryable_submit_failure_fails_and_clears_throttles(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka()
    fake.failures[act.SUBMIT_REASSIGNMENTS] = [None, ApplicationError(
        "InvalidReplicaAssignment: broker 9 is not registered", type="InvalidInput", non_retryable=True)]
    async with rebalancing(env, fake) as run:
        result = await (await run.start()).result()
    assert result.outcome == "Failed"
    assert result.message == "batch 2/3 could not be submitted: InvalidReplicaAssignment: broker 9 is not registered"
    assert result.batches_done == 1 and fake.count(act.SUBMIT_REASSIGNMENTS) == 2  # not retried
    assert fake.clears == 1 and fake.throttled == set() and fake.moving == {}
    failed = fake.events[-1]
    assert (failed.type, failed.reason) == ("Warning", "RebalanceFailed")


async def test_temporal_cancellation_cancels_the_moves_and_clears_throttles(env: WorkflowEnvironment) -> None:
    fake = scale_out_kafka(stalled=True)
    before = fake.assignment()
    async with rebalancing(env, fake) as run:
        handle = await run.start()
        await until(lambda: act.WAIT_REASSIGNMENTS in fake.started and bool(fake.moving), "the first batch copying")
        await handle.cancel()
        result = await handle.result()
    assert result.outcome == "Cancelled" and result.message == "the rebalance workflow was cancelled"
    assert fake.assignment() == before and fake.moving == {}
    assert fake.count(act.CANCEL_REASSIGNMENTS) == 1 and fake.clears == 1 and fake.throttled == set()


async def test_infeasible_plan_ends_without_moving_anything(env: WorkflowEnvironment) -> None:
    fake = FakePartitions(brokers=[0, 1, 2])
    fake.partitions = layout([0, 1, 2], 3, rf=3)
    async with rebalancing(env, fake) as run:
        result = await (await run.start(purpose="scale-in", remove=[2])).result()
    assert result.outcome == "Infeasible" and not result.emptied
    assert result.message.startswith("t-0: replication factor 3 > 2 brokers left")
    assert [n for n, _ in fake.calls if n != act.RECORD_EVENT] == [act.PLAN_REBALANCE]  # no submit, no throttles
    infeasible = fake.events[-1]
    assert (infeasible.type, infeasible.reason) == ("Warning", "RebalanceInfeasible")


# --- scale-in and re-planning --------------------------------------------------------------------------------------

async def test_scale_in_verifies_the_brokers_are_empty_and_drains_what_appeared(env: WorkflowEnvironment) -> None:
    fake = FakePartitions(brokers=[0, 1, 2, 3, 4])
    fake.partitions = layout([0, 1, 2, 3, 4], 10)

    def topic_created_meanwhile() -> None:
        fake.on_verify = None
        fake.partitions["new-0"] = Partition([4, 0], 10 * MB)

    fake.on_verify = topic_created_meanwhile
    async with rebalancing(env, fake) as run:
        result = await (await run.start(purpose="scale-in", remove=[3, 4])).result()
    assert result.outcome == "Succeeded" and result.emptied and result.remove == [3, 4]
    assert result.message.startswith("brokers [3, 4] hold no replica")
    assert fake.holding(3) == [] and fake.holding(4) == []
    plans = fake.args(act.PLAN_REBALANCE)
    assert [p.remove for p in plans] == [[3, 4], [3, 4]]  # planned again for what appeared
    assert [v.brokers for v in fake.args(act.VERIFY_BROKERS_EMPTY)] == [[3, 4], [3, 4]]
    last_submit = fake.args(act.SUBMIT_REASSIGNMENTS)[-1]
    assert [m.key for m in last_submit.moves] == ["new-0"]
    assert fake.reasons().count("RebalancePlanned") == 1  # announced once


async def test_verification_failing_after_the_moves_fails_and_clears_throttles(env: WorkflowEnvironment) -> None:
    fake = FakePartitions(brokers=[0, 1, 2, 3])
    fake.partitions = layout([0, 1, 2, 3], 4)
    fake.failures[act.VERIFY_BROKERS_EMPTY] = [ApplicationError("DescribeLogDirs refused: unknown broker 3",
                                                                type="InvalidInput", non_retryable=True)]
    async with rebalancing(env, fake) as run:
        result = await (await run.start(purpose="scale-in", remove=[3])).result()
    # The moves ran (throttled); Kafka could not confirm broker 3 is empty: not emptied, and no throttle left.
    assert result.outcome == "Failed" and not result.emptied and result.moves_done > 0
    assert result.message == "verify_brokers_empty failed: DescribeLogDirs refused: unknown broker 3"
    assert fake.clears == 1 and fake.throttled == set()
    assert fake.reasons()[-1] == "RebalanceFailed"


async def test_truncated_plan_is_planned_again_after_it_ran(env: WorkflowEnvironment) -> None:
    fake = FakePartitions(brokers=[0, 1, 2])
    fake.partitions = {"a-0": Partition([0, 1]), "b-0": Partition([0, 1]), "c-0": Partition([0, 1])}
    first = fake.move("a-0", [2, 1])
    fake.plans = [act.PlanRebalanceResult(batches=[[first]], truncated=True, moves=1,
                                          bytes_to_move=first.bytes_to_move)]
    async with rebalancing(env, fake) as run:
        handle = await run.start()
        result = await handle.result()
    # The second round planned from the cluster as it is after the first: only b-0 is left to move.
    assert result.outcome == "Succeeded" and result.moves_done == 2 and result.batches_done == 2
    assert fake.count(act.PLAN_REBALANCE) == 2
    assert [[m.key for m in s.moves] for s in fake.args(act.SUBMIT_REASSIGNMENTS)] == [["a-0"], ["b-0"]]
    assert fake.partitions["a-0"].replicas == [2, 1] and 2 in fake.partitions["b-0"].replicas


async def test_rebalance_input_is_plain_json() -> None:
    text = json.dumps({"ref": {"namespace": "default", "name": "demo"}, "reason": "by hand", "remove": [4],
                       "requireApproval": True, "settings": {"throttleBytesPerSec": 1048576}})
    parsed = RebalanceInput.model_validate_json(text)
    assert parsed.remove == [4] and parsed.require_approval and parsed.settings.throttle_bytes_per_sec == 2**20
    assert parsed.purpose == "requested" and parsed.max_rounds == 10


# --- the cluster workflow and its structural operations ---------------------------------------------------------

@dataclass
class ScalingCluster(RollingCluster):
    """``RollingCluster`` plus Kafka's partitions (``parts``) behind the rebalance contracts, a broker StatefulSet
    whose size is what was last applied (its pods follow it), brokers that stay registered until unregistered,
    and one PVC per broker ordinal. A StatefulSet's update revision changes only with its pod template."""

    parts: FakePartitions = field(default_factory=FakePartitions)
    sts_brokers: int = 0
    templates: dict[str, str] = field(default_factory=dict)
    claims: set[int] = field(default_factory=set)
    resize_pending: dict[str, int] = field(default_factory=dict)  # PVC -> node id, after an expansion

    def __post_init__(self) -> None:
        super().__post_init__()
        p = self.parts
        p.namespace, p.brokers = self.namespace, self.registered
        p.calls, p.events, p.started, p.cancelled = self.calls, self.events, self.started, self.cancelled
        p.failures = self.failures  # type: ignore[assignment]

    def activities(self) -> list[Callable[..., Any]]:
        return [*super().activities(), *self.parts.activities(events=False), self.wait_broker_pods_gone,
                self.unregister_brokers, self.delete_broker_claims]

    def applied(self, replicas: int) -> list[act.ApplyManifestsInput]:
        """The applies that rendered the brokers with ``replicas``."""
        return [a for n, a in self.calls if n == act.APPLY_MANIFESTS and "brokers" in a.components
                and self._parsed_spec(a.spec).brokers.replicas == replicas]

    def _sync_pods(self) -> None:
        """The pods the StatefulSets run: as many brokers as the broker StatefulSet was last applied with."""
        controllers = self._parsed_spec(self.spec).controllers.replicas
        for role, ids in (("broker", range(self.sts_brokers)), ("controller", range(1000, 1000 + controllers))):
            if ("StatefulSet", f"demo-{role}") not in self.live:
                continue
            for node_id in ids:
                if node_id not in self.kafka.pods:
                    self.kafka.pods[node_id] = Pod(node_id, f"uid-{node_id}-0", self.kafka.update_revisions[role])
        for node_id in [n for n in self.kafka.pods if self.sts_brokers <= n < 1000]:
            del self.kafka.pods[node_id]

    @activity.defn(name=act.OBSERVE_CLUSTER)
    async def observe_cluster(self, ref: ClusterRef) -> ObservedCluster:
        observed = await super().observe_cluster(ref)
        if not observed.found or observed.brokers is None or not observed.brokers.exists:
            return observed
        return observed.model_copy(update={
            "brokers": observed.brokers.model_copy(update={"replicas": self.sts_brokers}),
            "broker_pods": [p for p in observed.broker_pods if p.node_id in self.kafka.pods]})

    @activity.defn(name=act.APPLY_MANIFESTS)
    async def apply_manifests(self, inp: act.ApplyManifestsInput) -> act.ApplyManifestsResult:
        # FakeCluster's apply (not RollingCluster's): a new update revision only when the pod template changed, as
        # the StatefulSet controller does -- a new replica count or claim size restarts nothing.
        result = await FakeCluster.apply_manifests(self, inp)
        for obj in self._desired(inp.spec, inp.cluster_id):
            if obj["kind"] != "StatefulSet" or f"StatefulSet/{obj['metadata']['name']}" not in (
                    result.created + result.updated):
                continue
            name, template = obj["metadata"]["name"], json.dumps(obj["spec"]["template"], sort_keys=True)
            role = name.rsplit("-", 1)[1]
            if self.templates.get(name, template) != template:
                number = int(self.kafka.update_revisions[role].rsplit("r", 1)[1]) + 1
                self.kafka.update_revisions[role] = f"demo-{role}-r{number}"
            self.templates[name] = template
            if role == "broker":
                self.sts_brokers = obj["spec"]["replicas"]
                self.claims |= set(range(self.sts_brokers))
        return result

    @activity.defn(name=act.WAIT_BROKERS_REGISTERED)
    async def wait_brokers_registered(self, inp: act.WaitInput) -> act.WaitResult:
        await self._enter(act.WAIT_BROKERS_REGISTERED, inp)
        # A removed broker stays registered (fenced) until it is unregistered.
        self.registered[:] = sorted(set(self.registered) | set(node_ids(Role.BROKER, inp.expected)))
        return act.WaitResult(ready=inp.expected, detail=f"registered {self.registered}")

    @activity.defn(name=act.UPDATE_STATUS)
    async def update_status(self, inp: act.StatusUpdate) -> bool:
        done = await super().update_status(inp)
        for key, value in (("rebalance", inp.rebalance), ("brokersDesired", inp.brokers_desired)):
            if value is not None:
                self.status[key] = value
        return done

    @activity.defn(name=act.WAIT_BROKER_PODS_GONE)
    async def wait_broker_pods_gone(self, inp: act.WaitBrokerPodsGoneInput) -> None:
        await self._enter(act.WAIT_BROKER_PODS_GONE, inp)
        self._sync_pods()
        left = [n for n in self.kafka.pods if inp.replicas <= n < 1000]
        assert not left, f"broker pods {left} still there"

    @activity.defn(name=act.UNREGISTER_BROKERS)
    async def unregister_brokers(self, inp: act.UnregisterBrokersInput) -> act.UnregisterBrokersResult:
        await self._enter(act.UNREGISTER_BROKERS, inp)
        running = [b for b in inp.brokers if b in self.kafka.pods]
        if running:
            raise ApplicationError(f"brokers {running} are still running", type="BrokerRunning", non_retryable=True)
        result = act.UnregisterBrokersResult(unregistered=[b for b in inp.brokers if b in self.registered],
                                             not_registered=[b for b in inp.brokers if b not in self.registered])
        self.registered[:] = [b for b in self.registered if b not in inp.brokers]
        return result

    @activity.defn(name=act.DELETE_BROKER_CLAIMS)
    async def delete_broker_claims(self, inp: act.DeleteBrokerClaimsInput) -> act.DeleteBrokerClaimsResult:
        await self._enter(act.DELETE_BROKER_CLAIMS, inp)
        if any(n in self.kafka.pods for n in inp.ordinals):
            raise ApplicationError("a pod still uses its claim", type="ClaimInUse", non_retryable=True)
        deleted = [n for n in inp.ordinals if n in self.claims]
        self.claims -= set(inp.ordinals)
        return act.DeleteBrokerClaimsResult(deleted=[f"data-demo-broker-{n}" for n in deleted])

    @activity.defn(name=act.EXPAND_VOLUMES)
    async def expand_volumes(self, inp: act.ExpandVolumesInput) -> act.ExpandVolumesResult:
        await self._enter(act.EXPAND_VOLUMES, inp)
        return act.ExpandVolumesResult(expanded=[f"data-demo-{inp.role}-{n}" for n in sorted(self.kafka.pods)
                                                 if (n >= 1000) == (inp.role == "controller")])

    @activity.defn(name=act.WAIT_VOLUMES_RESIZED)
    async def wait_volumes_resized(self, inp: act.WaitVolumesResizedInput) -> act.WaitVolumesResizedResult:
        await self._enter(act.WAIT_VOLUMES_RESIZED, inp)
        return act.WaitVolumesResizedResult(restart_needed=dict(self.resize_pending))


@dataclass
class ClusterRun:
    env: WorkflowEnvironment
    client: Client
    fake: ScalingCluster
    task_queue: str

    async def start(self, **input: Any) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(
            KafkaClusterWorkflow.run,
            KafkaClusterWorkflowInput(namespace=self.fake.namespace, name=self.fake.name, **input),
            id=self.fake.workflow_id, task_queue=self.task_queue, start_signal=SIGNAL_SPEC_CHANGED,
            start_signal_args=[SpecChanged(generation=1, uid=self.fake.uid)])

    def rebalance(self, number: int) -> WorkflowHandle[Any, RebalanceResult]:
        return self.client.get_workflow_handle(rebalance_workflow_id(self.fake.namespace, "demo", number),
                                               result_type=RebalanceResult)


@asynccontextmanager
async def cluster(env: WorkflowEnvironment, fake: ScalingCluster) -> AsyncIterator[ClusterRun]:
    task_queue = f"kcs-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue,
                      workflows=[KafkaClusterWorkflow, RebalanceWorkflow, RollWorkflow], activities=fake.activities()):
        yield ClusterRun(env, env.client, fake, task_queue)
        # As test_kafkacluster_workflow.running: nothing abandoned on the shared time-skipping server.
        await until(lambda: quiescent(env.client.get_workflow_handle(fake.workflow_id)),
                    "the workflow to finish its task in flight before the worker stops")
        await terminate_workflows(env.client, fake.workflow_id)


def scaling_cluster(brokers: int, *, rebalance: dict[str, Any] | None = None, partitions: int = 0,
                    rf: int = 2, delete_claim: bool = False) -> ScalingCluster:
    fake = ScalingCluster()
    fake.spec["brokers"] = {"replicas": brokers, "storage": {"size": "10Gi", "deleteClaim": delete_claim}}
    # A long check interval: only the skew test lets the durable skew timer fire.
    fake.spec["rebalance"] = {"checkInterval": "24h", **(rebalance or {})}
    fake.parts.partitions = layout(list(range(brokers)), partitions or 2 * brokers, rf)
    return fake


def with_brokers(fake: ScalingCluster, replicas: int) -> None:
    fake.update_spec(brokers={**fake.spec["brokers"], "replicas": replicas})


async def _rebalance_state(handle: WorkflowHandle[Any, Any]) -> str:
    """The state of the rebalance the cluster workflow runs (the ``rebalance`` query: progress or null)."""
    running: dict[str, Any] | None = await handle.query(QUERY_REBALANCE)
    return str(running["state"]) if running is not None else ""


async def _rebalance_state_is(handle: WorkflowHandle[Any, Any], state: str) -> bool:
    return await _rebalance_state(handle) == state


async def until_rebalanced(handle: WorkflowHandle[Any, Any], fake: ScalingCluster, number: int,
                           result: str = "Succeeded") -> None:
    """Until rebalance ``number`` ended with ``result`` (status.rebalance says so) and the cluster workflow's
    pass after it is done."""
    wanted = rebalance_workflow_id(fake.namespace, "demo", number)

    async def check() -> bool:
        rebalance = fake.status.get("rebalance") or {}
        if rebalance.get("workflowId") != wanted or rebalance.get("state") != result:
            return False
        view = await status(handle)
        return view.pending_generation is None and not await _rebalance_state(handle) and await idle(handle)
    await until(check, f"{wanted} {result}")


# --- scale-out -----------------------------------------------------------------------------------------------------

async def test_scale_out_rebalances_onto_the_new_brokers_once_registered(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(3)
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        assert fake.parts.count(act.PLAN_REBALANCE) == 0  # a new cluster has nothing to rebalance

        with_brokers(fake, 5)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_rebalanced(handle, fake, 1)
        await until_phase(handle, "Ready", generation=2)
        result = await run.rebalance(1).result()

    assert fake.sts_brokers == 5 and fake.registered == [0, 1, 2, 3, 4]
    calls = [(n, a) for n, a in fake.calls if n in (act.WAIT_BROKERS_REGISTERED, act.PLAN_REBALANCE)]
    # Planned once the 5 brokers registered...
    assert [(n, getattr(a, "expected", None)) for n, a in calls] == [
        (act.WAIT_BROKERS_REGISTERED, 3), (act.WAIT_BROKERS_REGISTERED, 5), (act.PLAN_REBALANCE, None)]
    assert fake.parts.args(act.PLAN_REBALANCE)[0].require_brokers == [3, 4]  # ...and only with them
    assert result.outcome == "Succeeded" and result.purpose == "scale-out" and result.moves_done > 0
    assert fake.parts.holding(3) and fake.parts.holding(4) and fake.parts.clears == 1
    assert fake.kafka.deletions == []  # a new replica count restarts nobody
    last = fake.status["lastOperation"]
    assert (last["type"], last["result"], last["workflowId"]) == ("ScaleOut", "Succeeded", result.workflow_id)
    assert fake.status["rebalance"]["state"] == "Succeeded" and fake.status["rebalance"]["bytesMoved"] > 0
    started = next(e for e in fake.events if e.reason == "RebalanceStarted")
    assert started.message == (f"{rebalance_workflow_id(fake.namespace, 'demo', 1)} (scale-out): "
                               "scale-out from 3 to 5 brokers")
    assert fake.reasons().index("RebalanceStarted") < fake.reasons().index("RebalanceFinished")
    reconciling = [c for n, a in fake.calls if n == act.UPDATE_STATUS for c in a.conditions if c.type == "Reconciling"]
    assert any(c.reason == "ScaleOutSucceeded" and c.status == "False" for c in reconciling)
    # While it ran, currentOperation said so.
    operations = [a.current_operation for n, a in fake.calls if n == act.UPDATE_STATUS and a.current_operation]
    assert any(o["type"] == "ScaleOut" and o["workflowId"] == result.workflow_id for o in operations)


async def test_scale_out_with_rebalance_off_moves_nothing(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(3, rebalance={"mode": "off"})
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        with_brokers(fake, 5)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_phase(handle, "Ready", generation=2)
    assert fake.sts_brokers == 5 and fake.registered == [0, 1, 2, 3, 4]
    assert fake.parts.count(act.PLAN_REBALANCE) == 0 and "RebalanceStarted" not in fake.reasons()
    assert fake.parts.holding(3) == [] and "rebalance" not in fake.status


async def test_scale_out_with_approval_waits_for_the_update_or_the_annotation(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(3, rebalance={"mode": "approval"})
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(UPDATE_APPROVE_REBALANCE, ApproveRequest(), result_type=RebalanceAccepted)
        assert "no rebalance plan is waiting for approval" in str(rejected.value.cause)

        with_brokers(fake, 5)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until(lambda: _rebalance_state_is(handle, "AwaitingApproval"), "the plan to wait for approval")
        await until(lambda: (fake.status.get("currentOperation") or {}).get("step") == "waiting for approval",
                    "the wait in status")
        assert fake.status["phase"] == "Reconciling" and fake.status["rebalance"]["state"] == "AwaitingApproval"
        assert fake.parts.count(act.SUBMIT_REASSIGNMENTS) == 0
        first = rebalance_workflow_id(fake.namespace, "demo", 1)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(UPDATE_APPROVE_REBALANCE, ApproveRequest(workflow_id="rebalance/x/y/9"),
                                        result_type=RebalanceAccepted)
        assert f"is not the plan waiting for approval ({first})" in str(rejected.value.cause)
        accepted = await handle.execute_update(UPDATE_APPROVE_REBALANCE, ApproveRequest(workflow_id=first),
                                               result_type=RebalanceAccepted)
        assert accepted.workflow_id == first
        await until_rebalanced(handle, fake, 1)
        assert fake.parts.holding(3) and fake.parts.holding(4)

        # A new topic lands on the first brokers only; a requested rebalance waits for approval too, and the
        # annotation approves it.
        fake.parts.partitions.update(layout([0, 1], 6, topic="new"))
        await handle.execute_update(UPDATE_REQUEST_REBALANCE, RebalanceRequest(reason="new topic"),
                                    result_type=RebalanceAccepted)
        await until(lambda: _rebalance_state_is(handle, "AwaitingApproval"), "the second plan to wait for approval")
        submits = fake.parts.count(act.SUBMIT_REASSIGNMENTS)
        fake.annotations = {REBALANCE_ANNOTATION: "approve"}
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2, annotations=fake.annotations))
        await until_rebalanced(handle, fake, 2)
        result = await run.rebalance(2).result()
    assert result.purpose == "requested" and result.outcome == "Succeeded"
    assert fake.parts.count(act.SUBMIT_REASSIGNMENTS) > submits
    approvals = [e.message for e in fake.events if e.reason == "RebalanceApproved"]
    assert approvals == ["approved by an operator", f"annotation {REBALANCE_ANNOTATION}=approve"]


# --- scale-in ------------------------------------------------------------------------------------------------------

async def test_scale_in_drains_verifies_then_shrinks_unregisters_and_deletes_claims(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(5, delete_claim=True)
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        assert fake.sts_brokers == 5 and fake.claims == {0, 1, 2, 3, 4}

        fake.parts.stalled = True
        with_brokers(fake, 3)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until(lambda: bool(fake.parts.moving), "the drain copying")
        await until(lambda: (fake.status.get("currentOperation") or {}).get("type") == "ScaleIn", "the drain in status")
        # Draining: the StatefulSet keeps its 5 brokers.
        assert fake.sts_brokers == 5 and fake.applied(3) == [] and len(fake.kafka.pods) == 8
        assert fake.status["phase"] == "Reconciling"
        drain = fake.parts.args(act.PLAN_REBALANCE)[0]
        assert drain.remove == [3, 4]

        fake.parts.stalled = False
        await until(lambda: fake.sts_brokers == 3 and "ScaleInComplete" in fake.reasons(), "the shrink")
        await until_phase(handle, "Ready", generation=2)
        result = await run.rebalance(1).result()

    assert result.outcome == "Succeeded" and result.emptied and result.remove == [3, 4]
    calls = [(n, a) for n, a in fake.calls if n not in (act.UPDATE_STATUS, act.RECORD_EVENT)]
    shrink = next(i for i, (_, a) in enumerate(calls) if a is fake.applied(3)[0])
    verify = calls[shrink - 1]  # Kafka asked right before the StatefulSet shrinks
    assert verify[0] == act.VERIFY_BROKERS_EMPTY and verify[1].brokers == [3, 4]
    after = [n for n, _ in calls[shrink:]]
    order = [act.APPLY_MANIFESTS, act.WAIT_BROKER_PODS_GONE, act.UNREGISTER_BROKERS, act.DELETE_BROKER_CLAIMS]
    assert [n for n in after if n in order] == order
    verifies = fake.parts.args(act.VERIFY_BROKERS_EMPTY)
    assert [v.brokers for v in verifies] == [[3, 4], [3, 4]]  # the drain's own check, then the cluster's
    assert fake.registered == [0, 1, 2] and fake.claims == {0, 1, 2}
    assert sorted(n for n in fake.kafka.pods if n < 1000) == [0, 1, 2]
    assert fake.parts.holding(3) == [] and fake.parts.holding(4) == [] and fake.parts.clears == 1
    complete = next(e for e in fake.events if e.reason == "ScaleInComplete")
    assert complete.message == ("brokers [3, 4] removed (drained, unregistered; volume claims deleted); "
                                "3 brokers remain")
    ends = [a.last_operation for n, a in fake.calls if n == act.UPDATE_STATUS and a.last_operation]
    assert any(o["type"] == "ScaleIn" and o["result"] == "Succeeded" for o in ends)
    assert fake.status["brokersDesired"] == 3 and fake.conditions["Ready"].status == "True"


async def test_replicas_back_on_a_drained_broker_block_the_shrink_and_drain_again(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(5)
    verified = 0

    def topic_created_after_the_drain() -> None:
        nonlocal verified
        verified += 1
        if verified == 2:  # the cluster workflow's check before the shrink, after the drain's own
            fake.parts.partitions["late-0"] = Partition([4, 1], 10 * MB)

    fake.parts.on_verify = topic_created_after_the_drain
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        with_brokers(fake, 3)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until(lambda: fake.sts_brokers == 3, "the shrink")
        await until_phase(handle, "Ready", generation=2)
        second = await run.rebalance(2).result()

    blocked = next(e for e in fake.events if e.reason == "ScaleInBlocked")
    assert blocked.type == "Warning" and blocked.message.startswith("brokers [3, 4] hold replicas again (broker 4: late-0)")
    # Not shrunk then: drained again (late-0 moved), verified empty twice more, then shrunk.
    assert second.purpose == "scale-in" and second.emptied and second.moves_done == 1
    assert fake.parts.holding(4) == [] and len(fake.applied(3)) == 1 and verified == 4
    assert [n for n, _ in fake.calls if n in (act.APPLY_MANIFESTS, act.VERIFY_BROKERS_EMPTY)][-2:] == [
        act.VERIFY_BROKERS_EMPTY, act.APPLY_MANIFESTS]
    assert fake.registered == [0, 1, 2]


async def test_infeasible_scale_in_keeps_the_brokers_and_reports_invalid(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(5, rf=3)
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        with_brokers(fake, 2)  # replication factor 3 cannot live on 2 brokers
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_phase(handle, "Invalid", generation=2)
        invalid = fake.conditions["Invalid"]
        assert (invalid.status, invalid.reason) == ("True", "ScaleInRefused")
        assert invalid.message.startswith("spec.brokers.replicas=2 not applied (infeasible): t-0: replication "
                                          "factor 3 > 2 brokers left")
        assert fake.conditions["Ready"].status == "True"  # still serving with its 5 brokers
        assert fake.sts_brokers == 5 and fake.registered == [0, 1, 2, 3, 4] and fake.parts.moving == {}
        assert fake.parts.count(act.SUBMIT_REASSIGNMENTS) == 0
        assert fake.reasons().count("ScaleInRefused") == 1

        # Not retried for the same generation: another pass (a resume runs one) observes again, reports the same.
        plans, observed = fake.parts.count(act.PLAN_REBALANCE), fake.count(act.OBSERVE_CLUSTER)
        await handle.execute_update(UPDATE_PAUSE, PauseRequest(), result_type=WorkflowStatusView)
        await handle.execute_update(UPDATE_RESUME, ResumeRequest(), result_type=WorkflowStatusView)
        await until(lambda: fake.count(act.OBSERVE_CLUSTER) > observed, "another pass")
        await until_phase(handle, "Invalid")
        assert fake.parts.count(act.PLAN_REBALANCE) == plans and fake.reasons().count("ScaleInRefused") == 1

        # A new generation tries again.
        with_brokers(fake, 4)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=3))
        await until(lambda: fake.sts_brokers == 4, "the scale-in to 4")
        await until_phase(handle, "Ready", generation=3)
    assert fake.conditions["Invalid"].status == "False" and fake.registered == [0, 1, 2, 3]
    assert fake.parts.args(act.PLAN_REBALANCE)[-1].remove == [4]


async def test_failed_drain_deletes_nothing(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(5, delete_claim=True)
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        fake.failures[act.SUBMIT_REASSIGNMENTS] = [ApplicationError(
            "InvalidReplicaAssignment", type="InvalidInput", non_retryable=True)]
        with_brokers(fake, 3)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_rebalanced(handle, fake, 1, "Failed")
        await until_phase(handle, "Degraded", generation=2)
    assert_nothing_removed(fake)
    degraded = fake.conditions["Degraded"]
    assert (degraded.status, degraded.reason) == ("True", "ScaleInFailed")
    assert degraded.message.startswith("spec.brokers.replicas=3 not applied (failed): batch 1/1 could not be "
                                       "submitted: InvalidReplicaAssignment")
    assert fake.parts.moving == {} and fake.parts.clears == 1


async def test_cancelled_drain_deletes_nothing(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(5, delete_claim=True)
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        before = fake.parts.assignment()
        fake.parts.stalled = True
        with_brokers(fake, 3)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until(lambda: bool(fake.parts.moving), "the drain copying")
        await handle.execute_update(UPDATE_CANCEL_OPERATION, CancelRequest(reason="not now"),
                                    result_type=WorkflowStatusView)
        await until_rebalanced(handle, fake, 1, "Cancelled")
        await until_phase(handle, "Ready", generation=2)
    assert_nothing_removed(fake)
    assert fake.parts.assignment() == before and fake.parts.moving == {} and fake.parts.clears == 1
    reconciling = fake.conditions["Reconciling"]
    assert (reconciling.status, reconciling.reason) == ("False", "ScaleInCancelled")
    assert reconciling.message.startswith("spec.brokers.replicas=3 not applied (cancelled): not now")
    assert "RebalanceCancelRequested" in fake.reasons()


async def test_replicas_back_during_a_drain_cancel_it(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(5)
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        before = fake.parts.assignment()
        fake.parts.stalled = True
        with_brokers(fake, 3)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until(lambda: bool(fake.parts.moving), "the drain copying")
        with_brokers(fake, 5)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=3))
        await until_rebalanced(handle, fake, 1, "Cancelled")
        await until_phase(handle, "Ready", generation=3)
        result = await run.rebalance(1).result()
    assert result.outcome == "Cancelled" and result.message == "spec.brokers.replicas is 5 now"
    assert_nothing_removed(fake)
    assert fake.parts.assignment() == before and fake.parts.clears == 1
    assert fake.conditions["Reconciling"].reason == "ReconcileComplete"  # nothing held: the spec is what runs


def assert_nothing_removed(fake: ScalingCluster) -> None:
    assert fake.sts_brokers == 5 and fake.applied(3) == []
    assert fake.registered == [0, 1, 2, 3, 4] and fake.claims == {0, 1, 2, 3, 4}
    for name in (act.WAIT_BROKER_PODS_GONE, act.UNREGISTER_BROKERS, act.DELETE_BROKER_CLAIMS):
        assert fake.count(name) == 0, name


# --- volume expansion ----------------------------------------------------------------------------------------------

async def test_volume_expansion_rolls_only_the_brokers_waiting_for_a_restart(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(3)
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        assert fake.count(act.EXPAND_VOLUMES) == 0  # created with their size

        fake.resize_pending = {"data-demo-broker-1": 1}
        fake.update_spec(brokers={"replicas": 3, "storage": {"size": "20Gi"}})
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until(lambda: fake.kafka.deletions == [1] and not fake.kafka.down, "broker 1 restarted")
        await until_phase(handle, "Ready", generation=2)
    expands = [a for n, a in fake.calls if n == act.EXPAND_VOLUMES]
    assert [(e.role, e.size) for e in expands] == [("broker", "20Gi")]
    waits = [a for n, a in fake.calls if n == act.WAIT_VOLUMES_RESIZED]
    assert [(w.role, w.size) for w in waits] == [("broker", "20Gi")]
    assert fake.kafka.deletions == [1]  # not 0, not 2, no controller
    expanded = next(e for e in fake.events if e.reason == "VolumesExpanded")
    assert expanded.message == "3 broker volumes -> 20Gi; restarting [1] to finish the resize"
    assert fake.status["lastOperation"]["type"] == "Roll"


# --- rebalance on request and for disk skew ------------------------------------------------------------------------

async def test_request_rebalance_starts_a_requested_rebalance(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(3)
    fake.parts.partitions = layout([0, 1], 6)  # broker 2 holds nothing
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        accepted = await handle.execute_update(UPDATE_REQUEST_REBALANCE, RebalanceRequest(reason="broker 2 idle"),
                                               result_type=RebalanceAccepted)
        assert accepted.accepted and accepted.message == "a rebalance starts"
        await until_rebalanced(handle, fake, 1)
        result = await run.rebalance(1).result()
    assert result.purpose == "requested" and result.outcome == "Succeeded" and fake.parts.holding(2)
    assert fake.parts.args(act.PLAN_REBALANCE)[0].remove == []
    assert fake.status["rebalance"]["reason"] == "broker 2 idle"
    assert "RebalanceRequested" in fake.reasons()


async def test_a_rebalance_started_by_hand_is_adopted_as_the_running_operation(env: WorkflowEnvironment) -> None:
    fake = scaling_cluster(3)
    fake.parts.partitions = layout([0, 1], 6)  # broker 2 holds nothing
    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        fake.parts.stalled = True  # the first batch makes no progress, so the rebalance is seen running
        by_hand = await run.client.start_workflow(
            RebalanceWorkflow.run, RebalanceInput(ref=fake.ref, reason="by hand"), id=f"by-hand-{uuid.uuid4()}",
            task_queue=run.task_queue, result_type=RebalanceResult)
        await until(lambda: _rebalance_state_is(handle, "Running"), "the hand-started rebalance adopted")
        # While it runs, a requested rebalance waits for it instead of running beside it.
        await handle.execute_update(UPDATE_REQUEST_REBALANCE, RebalanceRequest(reason="second"),
                                    result_type=RebalanceAccepted)
        assert (await handle.query(QUERY_REBALANCE))["workflowId"] == by_hand.id
        fake.parts.stalled = False
        assert (await by_hand.result()).outcome == "Succeeded"
        await until_rebalanced(handle, fake, 1)  # then the queued request runs as the workflow's first own one
        assert (await run.rebalance(1).result()).purpose == "requested"


async def test_skew_check_on_its_timer_starts_a_rebalance_only_when_needed(fresh_env: WorkflowEnvironment) -> None:
    env = fresh_env
    fake = scaling_cluster(3, rebalance={"checkInterval": "5m", "skewThresholdPercent": 20})
    parts = fake.parts

    def checks() -> list[act.PlanRebalanceInput]:
        return [p for p in parts.args(act.PLAN_REBALANCE) if p.max_moves == 1]

    async def check_ran(number: int) -> None:
        await env.sleep(timedelta(minutes=5, seconds=1))  # the durable timer fires (workflow time)
        await until(lambda: len(checks()) == number, f"skew check {number}")
        await until_phase(handle, "Ready")

    async with cluster(env, fake) as run:
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        assert checks() == []  # the first pass only schedules the check

        parts.disk_spread = 35.0  # skewed, but even replica counts: the plan has nothing to move
        await check_ran(1)
        parts.disk_spread = 10.0  # within the threshold, though the counts drifted apart
        parts.partitions.update(layout([0], 4, rf=1, topic="hot"))
        await check_ran(2)
        assert "RebalanceStarted" not in fake.reasons()

        parts.disk_spread = 35.0  # skewed, and a plan can move something
        await check_ran(3)
        await until_rebalanced(handle, fake, 1)
        result = await run.rebalance(1).result()
    assert result.purpose == "skew" and result.outcome == "Succeeded" and result.moves_done > 0
    started = next(e for e in fake.events if e.reason == "RebalanceStarted")
    assert started.message.endswith("(skew): disk usage spread 35.0% exceeds 20%")
    assert len(checks()) == 3

