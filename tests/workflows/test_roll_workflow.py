"""RollWorkflow against Temporal's time-skipping test server, with activity fakes.

``FakeKafka`` stands in for the pods and Kafka behind the roll's activity contracts: pods with uids and
revisions, partitions whose ISR follows which brokers are up (and which lag), a quorum with a leader. It records
every pod deletion, the most brokers down at once, and any partition a restart pushed below
``min.insync.replicas`` -- the invariants the tests assert. Tests hold a pod's return (``hold``) to act while a
restart is in flight.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import contracts as act
from ballast.messages import (
    ROLL_ANNOTATION,
    ROLL_QUERY_PLAN,
    ROLL_QUERY_PROGRESS,
    ROLL_SIGNAL_EXTEND,
    ROLL_UPDATE_CANCEL,
    ROLL_UPDATE_EXTEND,
    ROLL_UPDATE_PAUSE,
    ROLL_UPDATE_RESUME,
    SIGNAL_OBSERVED_CHANGED,
    SIGNAL_SPEC_CHANGED,
    UPDATE_CANCEL_OPERATION,
    UPDATE_PAUSE,
    UPDATE_REQUEST_ROLL,
    UPDATE_RESUME,
    CancelRequest,
    ClusterRef,
    KafkaClusterWorkflowInput,
    ObservedChanged,
    PauseRequest,
    ResumeRequest,
    RollExtend,
    RollInput,
    RollProgress,
    RollRequest,
    RollRequestAccepted,
    RollResult,
    RollStep,
    SpecChanged,
    WorkflowStatusView,
    roll_workflow_id,
)
from ballast.observed import KafkaState, ObservedCluster, PodState, StatefulSetState
from ballast.spec import RollPolicy
from tests.workflows.conftest import record_history_if_asked, terminate_workflows
from tests.workflows.test_kafkacluster_workflow import FakeCluster, idle, quiescent, status, until_phase
from workflows.kafkacluster import KafkaClusterWorkflow
from workflows.roll import RollWorkflow

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.filterwarnings("error:.*handlers are still running:RuntimeWarning"),
]


OLD, NEW = "demo-broker-old", "demo-broker-new"
C_OLD, C_NEW = "demo-controller-old", "demo-controller-new"
HW = 1000


@dataclass
class Pod:
    node_id: int
    uid: str
    revision: str
    ready: bool = True
    waiting: str = ""
    rack: str = ""

    @property
    def role(self) -> str:
        return "controller" if self.node_id >= 1000 else "broker"

    @property
    def name(self) -> str:
        return f"demo-{self.role}-{self.node_id}"


def partition(index: int, replicas: list[int], min_isr: int = 2) -> act.PartitionFacts:
    return act.PartitionFacts(topic="t", partition=index, replicas=replicas, isr=replicas, min_isr=min_isr)


@dataclass
class FakeKafka:
    namespace: str = field(default_factory=lambda: f"r-{uuid.uuid4().hex[:8]}")
    pods: dict[int, Pod] = field(default_factory=dict)
    partitions: list[act.PartitionFacts] = field(default_factory=list)
    leader: int = 1000
    lagging: set[int] = field(default_factory=set)  # up, but out of every ISR (catching up)
    down: set[int] = field(default_factory=set)  # deleted and not back yet
    spec: dict[str, Any] = field(default_factory=dict)
    deletions: list[int] = field(default_factory=list)
    max_down: int = 0
    violations: list[str] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    events: list[act.EventInput] = field(default_factory=list)
    holds: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    in_wait: set[int] = field(default_factory=set)
    restart_lost_replies: set[int] = field(default_factory=set)  # delete lands, then the reply is lost
    stuck_after_restart: dict[int, str] = field(default_factory=dict)
    after_restart: Callable[[int], None] | None = None
    wait_cancelled: list[int] = field(default_factory=list)
    update_revisions: dict[str, str] = field(default_factory=lambda: {"broker": NEW, "controller": C_NEW})

    @classmethod
    def cluster(cls, brokers: int = 4, controllers: int = 3, *, outdated: bool = True, **kwargs: Any) -> FakeKafka:
        fake = cls(**kwargs)
        for i in range(brokers):
            fake.pods[i] = Pod(i, f"uid-{i}-0", OLD if outdated else NEW)
        for i in range(1000, 1000 + controllers):
            fake.pods[i] = Pod(i, f"uid-{i}-0", C_OLD if outdated else C_NEW)
        return fake

    @property
    def ref(self) -> ClusterRef:
        return ClusterRef(namespace=self.namespace, name="demo")

    def activities(self) -> list[Callable[..., Any]]:
        return [self.observe_roll_gate, self.restart_pod, self.wait_pod_rolled, self.elect_preferred_leaders,
                self.record_event, self.observe_cluster]

    def hold(self, node_id: int) -> None:
        self.holds[node_id] = asyncio.get_running_loop().create_future()

    def release(self, node_id: int) -> None:
        self.holds.pop(node_id).set_result(None)

    def count(self, name: str, node_id: int | None = None) -> int:
        return sum(1 for n, a in self.calls if n == name and (node_id is None or getattr(a, "pod", "").endswith(
            f"-{node_id}")))

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def isr(self, p: act.PartitionFacts) -> list[int]:
        return [r for r in p.replicas if r not in self.down and r not in self.lagging and not self.pods[r].waiting]

    def _update_revision(self, role: str) -> str:
        return self.update_revisions[role]

    # The activities.

    @activity.defn(name=act.OBSERVE_ROLL_GATE)
    async def observe_roll_gate(self, inp: act.GateObservationInput) -> act.GateObservation:
        self.calls.append((act.OBSERVE_ROLL_GATE, inp))
        pod = self.pods.get(inp.node_id)
        obs = act.GateObservation(update_revision=self._update_revision(inp.role), now_ms=1_000_000)
        if pod is not None:
            obs.pod_uid, obs.pod_revision, obs.waiting_reason = pod.uid, pod.revision, pod.waiting
            obs.pod_ready = pod.ready and inp.node_id not in self.down
        if inp.role == "broker":
            obs.partitions = [p.model_copy(update={"isr": self.isr(p)}) for p in self.partitions
                              if inp.node_id in p.replicas]
        else:
            obs.quorum_leader_id, obs.quorum_high_watermark = self.leader, HW
            obs.voters = [act.VoterFacts(node_id=n, log_end_offset=-1 if n in self.down or n in self.lagging else HW)
                          for n in self.pods if n >= 1000]
        return obs

    @activity.defn(name=act.RESTART_POD)
    async def restart_pod(self, inp: act.RestartPodInput) -> act.RestartPodResult:
        self.calls.append((act.RESTART_POD, inp))
        node_id = int(inp.pod.rsplit("-", 1)[1])
        pod = self.pods[node_id]
        if pod.uid != inp.expected_uid:
            return act.RestartPodResult(deleted=False)
        before = {(p.topic, p.partition): len(self.isr(p)) for p in self.partitions}
        self.deletions.append(node_id)
        self.down.add(node_id)
        self.max_down = max(self.max_down, len([n for n in self.down if n < 1000]))
        for p in self.partitions:
            if node_id in p.replicas and len(p.replicas) > p.min_isr and before[(p.topic, p.partition)] >= p.min_isr \
                    and len(self.isr(p)) < p.min_isr:
                self.violations.append(f"t-{p.partition} below min ISR with {sorted(self.down)} down")
        count = sum(1 for n in self.deletions if n == node_id)
        pod.uid, pod.revision, pod.ready, pod.waiting = f"uid-{node_id}-{count}", \
            self._update_revision(pod.role), False, ""
        if self.after_restart is not None:
            self.after_restart(node_id)
        if node_id in self.restart_lost_replies:
            self.restart_lost_replies.discard(node_id)
            raise RuntimeError("connection reset (the delete went through)")
        return act.RestartPodResult(deleted=True, previous_uid=inp.expected_uid)

    @activity.defn(name=act.WAIT_POD_ROLLED)
    async def wait_pod_rolled(self, inp: act.WaitPodRolledInput) -> act.WaitPodRolledResult:
        self.calls.append((act.WAIT_POD_ROLLED, inp))
        self.in_wait.add(inp.node_id)
        try:
            hold = self.holds.get(inp.node_id)
            while hold is not None and not hold.done():
                activity.heartbeat()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.wait_cancelled.append(inp.node_id)
            raise
        finally:
            self.in_wait.discard(inp.node_id)
        pod = self.pods[inp.node_id]
        if inp.node_id in self.stuck_after_restart:
            pod.waiting = self.stuck_after_restart[inp.node_id]
            raise ApplicationError(f"{pod.name}: not Ready ({pod.waiting})", type="NotReady", non_retryable=True)
        self.down.discard(inp.node_id)
        pod.ready = True
        return act.WaitPodRolledResult(new_uid=pod.uid, detail=f"{pod.name} back")

    @activity.defn(name=act.ELECT_PREFERRED_LEADERS)
    async def elect_preferred_leaders(self, inp: act.ElectLeadersInput) -> act.ElectLeadersResult:
        self.calls.append((act.ELECT_PREFERRED_LEADERS, inp))
        return act.ElectLeadersResult(elected=[f"t-{inp.node_id}"])

    @activity.defn(name=act.RECORD_EVENT)
    async def record_event(self, inp: act.EventInput) -> str:
        self.events.append(inp)
        return str(len(self.events))

    @activity.defn(name=act.OBSERVE_CLUSTER)
    async def observe_cluster(self, ref: ClusterRef) -> ObservedCluster:
        self.calls.append((act.OBSERVE_CLUSTER, ref))

        def state(pod: Pod) -> PodState:
            return PodState(name=pod.name, node_id=pod.node_id, ready=pod.ready and pod.node_id not in self.down,
                            uid=pod.uid, revision=pod.revision, waiting_reason=pod.waiting, rack=pod.rack,
                            phase="Running")

        pods = sorted(self.pods.values(), key=lambda p: p.node_id)
        return ObservedCluster(
            namespace=ref.namespace, name=ref.name, found=True, spec=self.spec,
            controllers=StatefulSetState(name="demo-controller", exists=True, update_revision=C_NEW),
            brokers=StatefulSetState(name="demo-broker", exists=True, update_revision=NEW),
            controller_pods=[state(p) for p in pods if p.role == "controller"],
            broker_pods=[state(p) for p in pods if p.role == "broker"],
            kafka=KafkaState(reachable=True, quorum_leader_id=self.leader))


def steps(*node_ids: int, if_outdated: bool = False) -> list[RollStep]:
    out = []
    for n in node_ids:
        role = "controller" if n >= 1000 else "broker"
        out.append(RollStep(node_id=n, role=role, pod=f"demo-{role}-{n}", reason="test", if_outdated=if_outdated))
    return out


@dataclass
class Roll:
    env: WorkflowEnvironment
    client: Client
    fake: FakeKafka
    task_queue: str

    async def start(self, step_list: list[RollStep] | None = None, policy: RollPolicy | None = None,
                    **input: Any) -> WorkflowHandle[Any, RollResult]:
        return await self.client.start_workflow(
            RollWorkflow.run, RollInput(ref=self.fake.ref, steps=step_list or [], policy=policy, **input),
            id=f"roll/{self.fake.namespace}/demo/1", task_queue=self.task_queue)


@asynccontextmanager
async def rolling(env: WorkflowEnvironment, fake: FakeKafka) -> AsyncIterator[Roll]:
    task_queue = f"roll-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=[RollWorkflow], activities=fake.activities()):
        yield Roll(env, env.client, fake, task_queue)
        await record_history_if_asked(env.client, roll_workflow_id(fake.namespace, "demo", 1), "roll")


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def progress(handle: WorkflowHandle[Any, Any]) -> RollProgress:
    value: RollProgress = await handle.query(ROLL_QUERY_PROGRESS, result_type=RollProgress)
    return value


async def plan(handle: WorkflowHandle[Any, Any]) -> list[str]:
    lines: list[str] = await handle.query(ROLL_QUERY_PLAN, result_type=list[str])
    return lines


POLICY = RollPolicy()


# --- order ---------------------------------------------------------------------------------------------------

async def test_started_by_hand_plans_and_rolls_in_order_each_pod_once(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=4, leader=1001)
    fake.pods[2].ready = False  # unready brokers go first
    fake.pods[2].waiting = "ContainerCreating"
    fake.partitions = [partition(0, [0, 1, 3]), partition(1, [1, 3, 0])]

    def leadership_moves(node_id: int) -> None:
        if node_id == 1000:
            fake.leader = 1002  # the quorum re-elects while the roll runs

    fake.after_restart = leadership_moves
    async with rolling(env, fake) as run:
        handle = await run.start(reason="new image")  # no steps, no policy: observe and plan
        result = await handle.result()
        lines = await plan(handle)
    assert result.outcome == "Succeeded" and result.message == "7 pods restarted"
    # Controllers first, the active one last -- re-checked before each step: 1002 took over after 1000.
    assert fake.deletions == [1000, 1001, 1002, 2, 0, 1, 3]
    assert result.restarted == fake.deletions and result.remaining == []
    assert fake.violations == [] and fake.max_down == 1
    assert fake.reasons()[0] == "RollStarted" and fake.reasons()[-1] == "RollFinished"
    assert fake.reasons().count("PodRestarted") == 7
    elected = [a.node_id for n, a in fake.calls if n == act.ELECT_PREFERRED_LEADERS]
    assert elected == [2, 0, 1, 3]  # brokers only
    assert lines[2].startswith("3/7 [done] restart controller 1002 (demo-controller-1002)")
    assert "leads the quorum: moved after the other controllers" in lines[2]


async def test_nothing_to_roll_ends_at_once(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(outdated=False)
    async with rolling(env, fake) as run:
        result = await (await run.start()).result()
    assert result.outcome == "Succeeded" and "nothing to restart" in result.message and fake.deletions == []


async def test_outdated_steps_already_current_are_skipped(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=2)
    fake.pods[1].revision = NEW  # restarted by someone else since the plan was made
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0, 1, if_outdated=True), POLICY)
        result = await handle.result()
        lines = await plan(handle)
    assert fake.deletions == [0] and result.restarted == [0] and result.remaining == []
    assert "[skipped]" in lines[1]


# --- gates ---------------------------------------------------------------------------------------------------

async def test_gate_waits_with_the_reason_visible_then_proceeds(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.partitions = [partition(0, [0, 1, 2])]
    fake.lagging = {2}  # ISR [0, 1] == minISR: neither 0 nor 1 may go
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0, 1, 2), POLICY)
        await until(lambda: "RollWaiting" in fake.reasons(), "the gate to hold the roll")
        waiting = (await progress(handle)).waiting
        assert waiting.startswith("gate for broker 0 (demo-broker-0): blocked: t-0: ISR [0, 1] would keep 1 in sync "
                                  "without broker 0, below min.insync.replicas=2")
        desc = await handle.describe()
        assert desc.status is not None and fake.deletions == []
        await env.sleep(timedelta(minutes=3))  # re-checked with backoff meanwhile
        assert fake.deletions == []
        checks = fake.count(act.OBSERVE_ROLL_GATE)
        assert 4 <= checks <= 12, checks  # 5 s doubling to 60 s: not a busy loop
        fake.lagging = set()  # broker 2 caught up
        result = await handle.result()
    assert result.outcome == "Succeeded" and fake.deletions == [0, 1, 2] and fake.violations == []
    assert fake.reasons().count("RollWaiting") == 1


async def test_gate_budget_exhausted_stops_the_roll_without_forcing(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.partitions = [partition(0, [0, 1, 2])]
    fake.lagging = {1}
    async with rolling(env, fake) as run:
        # Broker 1 is out of the ISR: it may go (ISR [0, 2] stays); then 0 may not, and 1 never catches up.
        handle = await run.start(steps(1, 0, 2), RollPolicy(gate_budget="2m"))
        result = await handle.result()
    assert result.outcome == "Failed"
    assert result.message.startswith("gate for broker 0 (demo-broker-0) not met within gateBudget 2m: blocked: t-0")
    assert result.message.endswith("stopped instead of forcing the restart")
    assert fake.deletions == [1] and result.restarted == [1] and result.remaining == [0, 2]
    stopped = fake.events[-1]
    assert (stopped.type, stopped.reason) == ("Warning", "RollStopped")


async def test_controller_gate_waits_for_a_caught_up_majority(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=0, leader=1000)
    fake.lagging = {1002}
    async with rolling(env, fake) as run:
        handle = await run.start(steps(1001, 1002, 1000), POLICY)
        await until(lambda: "RollWaiting" in fake.reasons(), "the quorum gate to hold")
        assert "1/2 other voters caught up, 2 needed without controller 1001" in (await progress(handle)).waiting
        fake.lagging = set()
        result = await handle.result()
    assert result.outcome == "Succeeded" and fake.deletions == [1001, 1002, 1000]


# --- stuck pods ----------------------------------------------------------------------------------------------

async def test_stuck_pod_on_the_old_revision_restarts_without_the_gate(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.partitions = [partition(0, [0, 1, 2])]
    fake.pods[0].waiting, fake.pods[0].ready = "CrashLoopBackOff", False
    fake.lagging = {1}  # ISR [2] < minISR: the gate would block broker 0 forever
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0), POLICY)
        result = await handle.result()
        lines = await plan(handle)
    assert result.outcome == "Succeeded" and fake.deletions == [0]
    assert "restarted without the gate" in lines[0]


async def test_stuck_pod_on_the_new_revision_stops_the_roll(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.pods[1].revision, fake.pods[1].waiting, fake.pods[1].ready = NEW, "CrashLoopBackOff", False
    async with rolling(env, fake) as run:
        result = await (await run.start(steps(0, 1, 2), POLICY)).result()
    assert result.outcome == "Failed" and fake.deletions == [0]
    assert result.message.startswith("demo-broker-1 is CrashLoopBackOff on its update revision")


async def test_pod_stuck_after_its_restart_stops_the_roll(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.stuck_after_restart = {0: "CrashLoopBackOff"}
    async with rolling(env, fake) as run:
        result = await (await run.start(steps(0, 1, 2), POLICY)).result()
    assert result.outcome == "Failed" and fake.deletions == [0]
    assert result.message.startswith("demo-broker-0 is CrashLoopBackOff after its restart")


# --- pause, resume, cancel -----------------------------------------------------------------------------------

async def test_pause_holds_at_the_next_boundary_and_resume_goes_on(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.hold(0)
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0, 1, 2), POLICY)
        await until(lambda: 0 in fake.in_wait, "broker 0 restarting")
        await handle.execute_update(ROLL_UPDATE_PAUSE, PauseRequest(reason="peak hours"), result_type=RollProgress)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(ROLL_UPDATE_PAUSE, PauseRequest(), result_type=RollProgress)
        fake.release(0)  # the restart in flight finishes...
        await until(lambda: _waiting_is(handle, "paused: peak hours"), "the roll to hold")
        await env.sleep(timedelta(minutes=5))
        assert fake.deletions == [0] and fake.down == set()  # ...and nothing more starts
        view = await handle.execute_update(ROLL_UPDATE_RESUME, ResumeRequest(), result_type=RollProgress)
        assert not view.paused
        result = await handle.result()
    assert result.outcome == "Succeeded" and fake.deletions == [0, 1, 2]
    assert {"RollPaused", "RollResumed"} <= set(fake.reasons())


async def _waiting_is(handle: WorkflowHandle[Any, Any], text: str) -> bool:
    return (await progress(handle)).waiting == text


async def test_cancel_finishes_the_restart_in_flight_and_leaves_every_pod_up(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=4)
    fake.hold(1)
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0, 1, 2, 3), POLICY)
        await until(lambda: 1 in fake.in_wait, "broker 1 restarting")
        await handle.execute_update(ROLL_UPDATE_CANCEL, CancelRequest(reason="change window over"),
                                    result_type=RollProgress)
        await asyncio.sleep(0.2)
        assert fake.down == {1} and fake.wait_cancelled == []  # not abandoned mid-restart
        fake.release(1)
        result = await handle.result()
    assert result.outcome == "Cancelled" and result.message == "change window over"
    assert fake.deletions == [0, 1] and result.remaining == [2, 3] and fake.down == set()
    assert fake.reasons()[-1] == "RollCancelled"


async def test_temporal_cancellation_also_waits_for_the_restart_in_flight(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.hold(0)
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0, 1, 2), POLICY)
        await until(lambda: 0 in fake.in_wait, "broker 0 restarting")
        await handle.cancel()
        await asyncio.sleep(0.2)
        assert fake.wait_cancelled == [] and fake.down == {0}
        fake.release(0)
        result = await handle.result()
    assert result.outcome == "Cancelled" and fake.deletions == [0] and fake.down == set()


async def test_temporal_cancellation_during_a_gate_wait_stops_at_once(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.partitions = [partition(0, [0, 1, 2])]
    fake.lagging = {2}
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0, 1, 2), POLICY)
        await until(lambda: "RollWaiting" in fake.reasons(), "the gate to hold the roll")
        await handle.cancel()
        result = await handle.result()
    assert result.outcome == "Cancelled" and fake.deletions == [] and result.remaining == [0, 1, 2]


# --- merging -------------------------------------------------------------------------------------------------

async def test_extend_merges_into_the_running_plan(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=4)
    fake.hold(0)
    async with rolling(env, fake) as run:
        handle = await run.start(steps(0, 1, 2), POLICY)
        await until(lambda: 0 in fake.in_wait, "broker 0 restarting")
        added = await handle.execute_update(ROLL_UPDATE_EXTEND, RollExtend(
            steps=steps(0, 2, 3, 1001), reason="second request"), result_type=list[str])
        assert added == ["broker 3 (demo-broker-3)", "controller 1001 (demo-controller-1001)"]
        # The same request again (e.g. a signal from the cluster workflow) changes nothing.
        await handle.signal(ROLL_SIGNAL_EXTEND, RollExtend(steps=steps(2, 3)))
        fake.release(0)
        result = await handle.result()
        reason = (await progress(handle)).reason
    # Controllers before the brokers still pending; every pod once.
    assert fake.deletions == [0, 1001, 1, 2, 3] and result.outcome == "Succeeded"
    assert reason == "second request"


# --- maxUnavailable ------------------------------------------------------------------------------------------

async def test_max_unavailable_restarts_brokers_together_only_when_the_gate_allows_all(
        env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=6, controllers=0)
    fake.partitions = [partition(0, [0, 2, 4]), partition(1, [1, 3, 5])]
    batches: list[set[int]] = []

    def record(node_id: int) -> None:
        batches.append(set(fake.down))

    fake.after_restart = record
    async with rolling(env, fake) as run:
        result = await (await run.start(steps(0, 2, 1, 3, 4, 5), RollPolicy(max_unavailable=2))).result()
    assert result.outcome == "Succeeded" and sorted(fake.deletions) == [0, 1, 2, 3, 4, 5]
    assert fake.violations == [] and fake.max_down == 2
    # 0 and 2 share t-0 (RF 3, minISR 2): never down together; 2 and 1 may be.
    assert all(not {0, 2} <= down and not {2, 4} <= down and not {1, 3} <= down for down in batches)
    assert fake.deletions[0] == 0 and set(fake.deletions[1:3]) == {1, 2}  # 0 alone, then 2 with 1


async def test_rack_aware_batches_keep_min_isr_outside_the_rack(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=6, controllers=0)
    for node_id, rack in zip(range(6), "aabbcc", strict=True):
        fake.pods[node_id].rack = rack
    # Replicas spread over the racks: a rack may go as a whole.
    fake.partitions = [partition(0, [0, 2, 4]), partition(1, [1, 3, 5]), partition(2, [0, 3, 5])]
    fake.spec = {"rollPolicy": {"maxUnavailable": 2, "rackAware": True}}
    async with rolling(env, fake) as run:
        result = await (await run.start(request=RollRequest(reason="all brokers", brokers=[0, 1, 2, 3, 4, 5]))
                        ).result()
    assert result.outcome == "Succeeded" and fake.max_down == 2 and fake.violations == []
    # Rack by rack, two at a time (the order within a batch is the order the deletes landed).
    assert [set(fake.deletions[i:i + 2]) for i in (0, 2, 4)] == [{0, 1}, {2, 3}, {4, 5}]


# --- idempotence ---------------------------------------------------------------------------------------------

async def test_restart_retried_after_a_lost_reply_deletes_once(env: WorkflowEnvironment) -> None:
    fake = FakeKafka.cluster(brokers=3)
    fake.restart_lost_replies = {1}
    async with rolling(env, fake) as run:
        result = await (await run.start(steps(0, 1, 2), POLICY)).result()
    assert result.outcome == "Succeeded"
    assert fake.count(act.RESTART_POD, 1) == 2  # the activity ran twice...
    assert fake.deletions == [0, 1, 2]  # ...the pod was deleted once: the retry saw another uid
    waits = [a for n, a in fake.calls if n == act.WAIT_POD_ROLLED and a.node_id == 1]
    assert [w.old_uid for w in waits] == ["uid-1-0"]


async def test_roll_input_is_plain_json() -> None:
    text = json.dumps({"ref": {"namespace": "default", "name": "demo"}, "reason": "by hand",
                       "steps": [{"nodeId": 2, "role": "broker", "pod": "demo-broker-2"}],
                       "policy": {"maxUnavailable": 1, "gateBudget": "5m"}})
    parsed = RollInput.model_validate_json(text)
    assert parsed.steps[0].node_id == 2 and parsed.policy is not None and parsed.policy.gate_budget == "5m"


# --- the cluster workflow and its rolls ----------------------------------------------------------------------

@dataclass
class RollingCluster(FakeCluster):
    """``FakeCluster`` whose pods have revisions (a StatefulSet template change bumps the role's update revision,
    as the StatefulSet controller does) and whose roll activities are ``FakeKafka``'s."""

    kafka: FakeKafka = field(default_factory=FakeKafka)
    annotations: dict[str, str] = field(default_factory=dict)
    dynamic: list[act.DynamicConfigsInput] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kafka.namespace = self.namespace
        self.kafka.update_revisions = {"broker": "demo-broker-r1", "controller": "demo-controller-r1"}

    def activities(self) -> list[Callable[..., Any]]:
        k = self.kafka
        return [*super().activities(), k.observe_roll_gate, k.restart_pod, k.wait_pod_rolled,
                k.elect_preferred_leaders, self.apply_dynamic_configs]

    def _sync_pods(self) -> None:
        spec = self._parsed_spec(self.spec)
        for role, ids in (("broker", range(spec.brokers.replicas)),
                          ("controller", range(1000, 1000 + spec.controllers.replicas))):
            if ("StatefulSet", f"demo-{role}") not in self.live:
                continue
            for node_id in ids:
                if node_id not in self.kafka.pods:
                    self.kafka.pods[node_id] = Pod(node_id, f"uid-{node_id}-0", self.kafka.update_revisions[role])

    @activity.defn(name=act.OBSERVE_CLUSTER)
    async def observe_cluster(self, ref: ClusterRef) -> ObservedCluster:
        observed = await super().observe_cluster(ref)
        if not observed.found:
            return observed
        self._sync_pods()
        k = self.kafka

        def states(role: str) -> list[PodState]:
            return [PodState(name=p.name, node_id=p.node_id, ready=p.ready and p.node_id not in k.down, uid=p.uid,
                             revision=p.revision, waiting_reason=p.waiting, phase="Running")
                    for p in sorted(k.pods.values(), key=lambda p: p.node_id) if p.role == role]

        update = {"annotations": dict(self.annotations)}
        if observed.controllers and observed.controllers.exists:
            update["controllers"] = observed.controllers.model_copy(
                update={"update_revision": k.update_revisions["controller"]})
            update["controller_pods"] = states("controller")
        if observed.brokers and observed.brokers.exists:
            update["brokers"] = observed.brokers.model_copy(update={"update_revision": k.update_revisions["broker"]})
            update["broker_pods"] = states("broker")
        if observed.kafka.quorum_leader_id is not None:
            update["kafka"] = observed.kafka.model_copy(update={"quorum_leader_id": k.leader})
        return observed.model_copy(update=update)

    @activity.defn(name=act.APPLY_MANIFESTS)
    async def apply_manifests(self, inp: act.ApplyManifestsInput) -> act.ApplyManifestsResult:
        result = await super().apply_manifests(inp)
        for updated in result.updated:
            kind, name = updated.split("/", 1)
            if kind == "StatefulSet":
                role = name.rsplit("-", 1)[1]
                number = int(self.kafka.update_revisions[role].rsplit("r", 1)[1]) + 1
                self.kafka.update_revisions[role] = f"demo-{role}-r{number}"
        return result

    @activity.defn(name=act.APPLY_DYNAMIC_CONFIGS)
    async def apply_dynamic_configs(self, inp: act.DynamicConfigsInput) -> act.DynamicConfigsResult:
        self.calls.append((act.APPLY_DYNAMIC_CONFIGS, inp))
        self.dynamic.append(inp)
        return act.DynamicConfigsResult(applied=[f"cluster: {k}={v}" for k, v in inp.cluster_wide.items()])


@dataclass
class ClusterRun:
    env: WorkflowEnvironment
    client: Client
    fake: RollingCluster
    task_queue: str

    async def start(self, **input: Any) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(
            KafkaClusterWorkflow.run,
            KafkaClusterWorkflowInput(namespace=self.fake.namespace, name=self.fake.name, **input),
            id=self.fake.workflow_id, task_queue=self.task_queue, start_signal=SIGNAL_SPEC_CHANGED,
            start_signal_args=[SpecChanged(generation=1, uid=self.fake.uid)])


@asynccontextmanager
async def cluster(env: WorkflowEnvironment, fake: RollingCluster | None = None) -> AsyncIterator[ClusterRun]:
    fake = fake or RollingCluster()
    task_queue = f"kcr-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=[KafkaClusterWorkflow, RollWorkflow],
                      activities=fake.activities()):
        yield ClusterRun(env, env.client, fake, task_queue)
        # As test_kafkacluster_workflow.running: nothing abandoned on the shared time-skipping server.
        await until(lambda: quiescent(env.client.get_workflow_handle(fake.workflow_id)),
                    "the workflow to finish its task in flight before the worker stops")
        await terminate_workflows(env.client, fake.workflow_id)


async def until_rolled(handle: WorkflowHandle[Any, Any], fake: RollingCluster, number: int,
                       result: str = "Succeeded") -> None:
    """Until roll ``number`` ended with ``result`` and the cluster workflow is idle again."""
    roll_id = roll_workflow_id(fake.namespace, fake.name, number)

    async def check() -> bool:
        last = fake.status.get("lastOperation") or {}
        if last.get("workflowId") != roll_id or last.get("result") != result:
            return False
        view = await status(handle)
        return not view.roll and view.pending_generation is None and await idle(handle)
    await until(check, f"{roll_id} {result}")


async def test_template_change_rolls_through_a_child_and_reports_progress(env: WorkflowEnvironment) -> None:
    async with cluster(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        assert fake.kafka.deletions == []  # a new cluster's pods are new: nothing to roll

        fake.update_spec(image="example/kafka:3.9.1-patched")
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_rolled(handle, fake, 1)
        await until_phase(handle, "Ready", generation=2)

    k = fake.kafka
    assert k.deletions == [1001, 1002, 1000, 0, 1, 2]  # the active controller (1000) last
    assert k.violations == [] and k.max_down == 1
    assert {p.revision for p in k.pods.values()} == {"demo-broker-r2", "demo-controller-r2"}
    roll_id = roll_workflow_id(fake.namespace, "demo", 1)
    operations = [a.current_operation for n, a in fake.calls if n == act.UPDATE_STATUS and a.current_operation]
    rolls = [o for o in operations if o["type"] == "Roll"]
    assert rolls and all(o["workflowId"] == roll_id for o in rolls)
    assert any(o["step"] == "4/6 broker 0 (demo-broker-0) in flight" for o in rolls), rolls
    assert fake.status["lastOperation"]["type"] == "Roll" and fake.status["phase"] == "Ready"
    assert "currentOperation" not in fake.status
    assert fake.conditions["Ready"].status == "True" and fake.conditions["Degraded"].status == "False"
    reasons = fake.reasons()
    assert reasons.index("RollStarted") < reasons.index("RollFinished")


async def test_dynamic_setting_applies_live_without_a_roll(env: WorkflowEnvironment) -> None:
    async with cluster(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        fake.update_spec(brokers={"replicas": 3, "config": {"log.retention.ms": "3600000"}})
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_phase(handle, "Ready", generation=2)
        assert [d.cluster_wide for d in fake.dynamic] == [{"log.retention.ms": "3600000"}]
        assert fake.kafka.deletions == [] and "ConfigApplied" in fake.reasons()

        # A read-only one rolls the brokers (not the controllers).
        fake.update_spec(brokers={"replicas": 3, "config": {"log.retention.ms": "3600000",
                                                            "num.partitions": "6"}})
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=3))
        await until_rolled(handle, fake, 1)
        assert fake.kafka.deletions == [0, 1, 2] and len(fake.dynamic) == 1


async def test_request_roll_merges_into_the_running_roll(env: WorkflowEnvironment) -> None:
    async with cluster(env) as run:
        fake = run.fake
        handle = await run.start()
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(UPDATE_CANCEL_OPERATION, CancelRequest(), result_type=WorkflowStatusView)
        assert "no operation to cancel" in str(rejected.value.cause)
        await until_phase(handle, "Ready", generation=1)

        fake.kafka.hold(0)
        accepted = await handle.execute_update(UPDATE_REQUEST_ROLL, RollRequest(reason="rotate", brokers=[0, 1]),
                                               result_type=RollRequestAccepted)
        assert accepted.accepted and accepted.merged_into == ""
        await until(lambda: 0 in fake.kafka.in_wait, "broker 0 restarting")
        roll_id = roll_workflow_id(fake.namespace, "demo", 1)
        assert (await status(handle)).roll == roll_id
        second = await handle.execute_update(UPDATE_REQUEST_ROLL, RollRequest(reason="and 2", brokers=[2, 1]),
                                             result_type=RollRequestAccepted)
        assert second.merged_into == roll_id
        await until(lambda: "RollExtended" in fake.reasons(), "the roll extended")
        fake.kafka.release(0)
        await until_rolled(handle, fake, 1)
        assert fake.kafka.deletions == [0, 1, 2]  # one roll, each broker once
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(UPDATE_REQUEST_ROLL, RollRequest(brokers=[]), result_type=RollRequestAccepted)
        assert "brokers: node ids" in str(rejected.value.cause)


async def test_roll_annotation_rolls_once_per_new_token(env: WorkflowEnvironment) -> None:
    async with cluster(env) as run:
        fake = run.fake
        fake.annotations = {ROLL_ANNOTATION: "t0"}  # present at creation: adopted, nothing rolls
        handle = await run.start(max_passes_before_continue_as_new=3)
        await until_phase(handle, "Ready", generation=1)
        assert fake.kafka.deletions == []

        fake.annotations = {ROLL_ANNOTATION: "t1"}
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, annotations=fake.annotations))
        await until_rolled(handle, fake, 1)
        assert fake.kafka.deletions == [1001, 1002, 1000, 0, 1, 2]

        # The same token again (a relist, or another annotation edited): no roll, across continue-as-new too.
        for _ in range(3):
            await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="Pod", name="demo-broker-0",
                                                                         reason="Ready", resource_version="x"))
            await env.sleep(timedelta(seconds=3))
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, annotations=fake.annotations))
        await env.sleep(timedelta(seconds=3))
        latest = run.client.get_workflow_handle(fake.workflow_id)
        await until_phase(latest, "Ready")
        assert len(fake.kafka.deletions) == 6
        assert (await latest.describe()).run_id != handle.result_run_id  # the token survived continue-as-new

        fake.annotations = {ROLL_ANNOTATION: "t2"}
        await latest.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=1, annotations=fake.annotations))
        await until_rolled(latest, fake, 2)
        assert len(fake.kafka.deletions) == 12


async def test_pause_holds_the_roll_and_cancel_operation_stops_it(env: WorkflowEnvironment) -> None:
    async with cluster(env) as run:
        fake = run.fake
        fake.spec["brokers"] = {"replicas": 4}
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        fake.kafka.hold(0)
        fake.update_spec(image="example/kafka:new")
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until(lambda: 0 in fake.kafka.in_wait, "broker 0 restarting")

        await handle.execute_update(UPDATE_PAUSE, PauseRequest(reason="incident"), result_type=WorkflowStatusView)
        fake.kafka.release(0)
        roll = run.client.get_workflow_handle(roll_workflow_id(fake.namespace, "demo", 1))
        await until(lambda: _waiting_is(roll, "paused: incident"), "the roll to hold")
        await env.sleep(timedelta(minutes=2))
        assert fake.kafka.deletions == [1001, 1002, 1000, 0]
        await until(lambda: (fake.status.get("currentOperation") or {}).get("progress", "").startswith(
            "4/7 pods done (paused)"), "the pause in status")

        fake.kafka.hold(2)
        await handle.execute_update(UPDATE_RESUME, ResumeRequest(), result_type=WorkflowStatusView)
        await until(lambda: 2 in fake.kafka.in_wait, "broker 2 restarting")
        await handle.execute_update(UPDATE_CANCEL_OPERATION, CancelRequest(reason="enough"),
                                    result_type=WorkflowStatusView)
        fake.kafka.release(2)
        await until_rolled(handle, fake, 1, "Cancelled")
        assert fake.kafka.deletions == [1001, 1002, 1000, 0, 1, 2]  # not broker 3
        assert fake.kafka.down == set()
        assert fake.status["lastOperation"]["message"] == "enough"

        # Cancelled: not restarted on its own (an observed change runs a pass), but a request does.
        before = list(fake.kafka.deletions)
        await handle.signal(SIGNAL_OBSERVED_CHANGED, ObservedChanged(kind="Pod", name="demo-broker-0",
                                                                     reason="Ready", resource_version="y"))
        await env.sleep(timedelta(seconds=3))
        await until_phase(handle, "Ready")
        assert fake.kafka.deletions == before
        assert fake.conditions["Reconciling"].reason == "RollCancelled"
        assert fake.conditions["Reconciling"].message.startswith("1 pods not restarted: the roll was cancelled")
        await handle.execute_update(UPDATE_REQUEST_ROLL, RollRequest(reason="finish it", brokers=[3]),
                                    result_type=RollRequestAccepted)
        await until_rolled(handle, fake, 2)
        assert fake.kafka.deletions == [*before, 3]


async def test_a_roll_started_by_hand_reports_to_the_cluster_workflow(env: WorkflowEnvironment) -> None:
    async with cluster(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        fake.kafka.hold(1)
        by_hand = await run.client.start_workflow(
            RollWorkflow.run, RollInput(ref=fake.ref, request=RollRequest(reason="by hand", brokers=[1])),
            id=f"roll/{fake.namespace}/demo/manual", task_queue=run.task_queue)
        await until(lambda: 1 in fake.kafka.in_wait, "broker 1 restarting")
        await until(lambda: _async_status_roll(handle, by_hand.id), "the cluster workflow to adopt the roll")
        await until(lambda: (fake.status.get("currentOperation") or {}).get("workflowId") == by_hand.id,
                    "the roll in status")
        # A request meanwhile merges into it, as into the cluster workflow's own rolls.
        accepted = await handle.execute_update(UPDATE_REQUEST_ROLL, RollRequest(reason="also 2", brokers=[2]),
                                               result_type=RollRequestAccepted)
        assert accepted.merged_into == by_hand.id
        fake.kafka.release(1)
        assert (await by_hand.result()).outcome == "Succeeded"
        await until(lambda: (fake.status.get("lastOperation") or {}).get("workflowId") == by_hand.id,
                    "the roll's result in status")
    assert fake.kafka.deletions == [1, 2]


async def _async_status_roll(handle: WorkflowHandle[Any, Any], roll_id: str) -> bool:
    return (await status(handle)).roll == roll_id
