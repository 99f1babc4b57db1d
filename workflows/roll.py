"""``RollWorkflow``: one health-gated rolling restart of a Kafka cluster, recorded step by step.

Started by ``KafkaClusterWorkflow`` as a child (id ``roll/<ns>/<name>/<n>``, one at a time per cluster), or by
hand (``temporal workflow start --type RollWorkflow``, see :class:`ballast.messages.RollInput`). The plan is
fixed up front (:func:`ballast.roll.plan_roll`) and shown by the ``plan`` query; each step is recorded as done,
so after any crash the roll resumes at the exact pod where it stopped. For each step:

1. **Boundary**: paused -> hold here; cancel requested -> stop here (every restarted pod is back by now).
2. Controllers: re-check who leads the quorum; the active controller goes last among the controllers left.
3. **Gate** (``observe_roll_gate`` facts, pure decision in :mod:`ballast.roll`): the broker gate (no partition
   below ``min.insync.replicas``) or the quorum gate (a majority of the other voters caught up). Not met:
   re-check with backoff (5 s doubling to 60 s), the reason in ``currentDetails``, an Event and the cluster's
   status; not met within ``gateBudget`` -> the roll stops (``Failed``, the cluster Degraded): never forced.
   A pod stuck (CrashLoopBackOff, unschedulable...) on the old revision restarts without the gate; a pod stuck
   on the new revision stops the roll. With ``maxUnavailable`` > 1 the next brokers join the batch only while
   the gate allows all of them down together (with ``rackAware``, only brokers of one rack, the whole rack
   counted down).
4. **Restart** (``restart_pod``): the pod's uid is recorded in workflow state before the call and the delete
   is conditional on it, so a retried or replayed step never restarts the replacement.
5. **Wait** (``wait_pod_rolled``, heartbeating, ``readyTimeout`` per call): Ready, registered and back in every
   ISR. Not back in time: a stuck new pod stops the roll; a slow one is waited for up to ``gateBudget`` more.
6. Preferred-leader election for the broker's partitions (best effort), then ``delayBetweenRestarts``.

Pause/resume/cancel (updates, or signals from the cluster workflow) take effect at step boundaries: a cancel
(also a Temporal cancellation of this workflow) lets the restart in flight finish first. ``extend`` merges
more steps into the running plan instead of a second roll. Progress goes to the cluster's workflow as the
``roll_progress`` signal (by workflow id, so a roll started by hand reports too).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities import contracts as act
    from ballast import roll
    from ballast.messages import (
        ROLL_QUERY_PLAN,
        ROLL_QUERY_PROGRESS,
        ROLL_SIGNAL_CANCEL,
        ROLL_SIGNAL_EXTEND,
        ROLL_SIGNAL_PAUSE,
        ROLL_SIGNAL_RESUME,
        ROLL_UPDATE_CANCEL,
        ROLL_UPDATE_EXTEND,
        ROLL_UPDATE_PAUSE,
        ROLL_UPDATE_RESUME,
        ROLL_WORKFLOW_NAME,
        SIGNAL_ROLL_PROGRESS,
        CancelRequest,
        ClusterRef,
        PauseRequest,
        ResumeRequest,
        RollExtend,
        RollInput,
        RollOutcome,
        RollProgress,
        RollResult,
        RollStep,
        StepStatus,
    )
    from ballast.observed import ObservedCluster
    from ballast.spec import KafkaClusterSpec, RollPolicy, format_duration

GATE_FIRST_RETRY = timedelta(seconds=5)
GATE_MAX_RETRY = timedelta(seconds=60)
# A worker lost while it runs an activity (a crash, SIGKILL, its node gone) is noticed by the server only when
# a timeout of that activity expires; the retry then runs on a live worker. Every roll activity heartbeats --
# wait_pod_rolled every poll (1 s, 0.25 s once the pod is Ready), the short ones every second from a keep-alive
# thread (activities.roll.KEEPALIVE_SECONDS) -- so this heartbeat timeout brings that retry within seconds
# instead of holding the roll for a start-to-close timeout. The worker sends a heartbeat at most every 80% of
# it, so a poll may stall about a second before the server counts the worker lost (then the wait is retried
# and resumes from its heartbeat details, harmlessly).
HEARTBEAT = timedelta(seconds=5)

_KUBE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=30), maximum_attempts=10,
                          non_retryable_error_types=["InvalidInput"])
# Start-to-close of the short calls: bounds a hung call, not a lost worker (HEARTBEAT does that). An
# observe_roll_gate takes several Kafka requests, each bounded by the operator's Kafka timeout.
_QUICK = timedelta(seconds=60)
# Recording an Event is a few Kubernetes API calls and heartbeats not: a lost worker costs at most this.
_EVENT_TIMEOUT = timedelta(seconds=10)
_EVENT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5),
                           maximum_attempts=3)


class _Stop(Exception):
    """The roll cannot go on safely; the message says why (it becomes the Degraded condition's message)."""


@dataclass(eq=False)
class _Step:
    step: RollStep
    status: StepStatus = "pending"
    old_uid: str = ""
    new_uid: str = ""
    detail: str = ""
    note: str = ""  # a decision about this step (moved after the other controllers, restarted without the gate)
    gate_since: datetime | None = None  # when the gate wait began (the budget runs from here)
    gate_checks: int = 0
    announced: bool = False  # a "waiting" Event was recorded

    def line(self, index: int, total: int) -> str:
        told = "; ".join(x for x in (self.note, self.detail) if x)
        detail = f" -- {told}" if told else ""
        return f"{index}/{total} [{self.status}] restart {self.step.describe()}: {self.step.reason}{detail}"


def _failure(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) else None
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err)


@workflow.defn(name=ROLL_WORKFLOW_NAME)
class RollWorkflow:
    """See the module docstring."""

    @workflow.init
    def __init__(self, input: RollInput) -> None:
        self._ref: ClusterRef = input.ref
        self._reason = input.reason
        self._policy: RollPolicy = input.policy or RollPolicy()
        self._elect = input.elect_preferred_leaders
        self._racks: dict[int, str] = dict(input.racks)
        self._steps: list[_Step] = [_Step(s) for s in input.steps]
        self._paused = False
        self._pause_reason = ""
        self._cancel: str | None = None
        self._changed = False  # extended, paused or cancelled: a gate wait re-evaluates at once
        self._waiting = ""
        self._in_flight: list[_Step] = []
        self._outcome: RollOutcome = "Running"
        self._message = ""
        self._last_sent: RollProgress | None = None
        self._task: asyncio.Task[None] | None = None

    # --- run -------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RollInput) -> RollResult:
        if not input.steps or input.policy is None:
            planned = await self._plan_from_cluster(input)
            if planned is not None:
                return planned
        await self._event("Normal", "RollStarted", f"{len(self._steps)} pods: {self._reason or 'roll'}; "
                          + ", ".join(s.step.describe() for s in self._steps[:8])
                          + (" ..." if len(self._steps) > 8 else ""))
        await self._report()
        try:
            outcome, message = await self._roll()
        except (asyncio.CancelledError, ActivityError) as err:
            if not is_cancelled_exception(err):
                raise
            # A Temporal cancellation (the cluster workflow ended, or `temporal workflow cancel`): the restart in
            # flight was shielded from it; let it finish so no pod is left half-restarted, then stop.
            self._cancel = self._cancel or "the roll workflow was cancelled"
            await self._finish_in_flight()
            outcome, message = "Cancelled", self._cancel
        return await self._end(outcome, message)

    async def _plan_from_cluster(self, input: RollInput) -> RollResult | None:
        """Started without steps or policy (by hand): observe the cluster and plan, as its workflow would."""
        observed: ObservedCluster = await workflow.execute_activity(
            act.OBSERVE_CLUSTER, self._ref, result_type=ObservedCluster, start_to_close_timeout=_QUICK,
            retry_policy=_KUBE_RETRY, summary=f"{self._where}: observe the cluster")
        if not observed.found:
            return await self._end("Failed", f"KafkaCluster {self._where} not found")
        try:
            spec = KafkaClusterSpec.model_validate(observed.spec)
        except ValidationError:
            spec = KafkaClusterSpec()
        if input.policy is None:
            self._policy = spec.roll_policy
        if not input.steps:
            plan = roll.plan_roll(observed, input.request, rack_aware=self._policy.rack_aware)
            if plan.blocked:
                return await self._end("Failed", plan.blocked)
            self._steps = [_Step(s) for s in plan.steps]
            self._racks = {p.node_id: p.rack for p in observed.broker_pods if p.rack} | self._racks
            if not self._steps:
                return await self._end("Succeeded", "nothing to restart: every pod runs its update revision")
        return None

    async def _roll(self) -> tuple[Literal["Succeeded", "Failed", "Cancelled"], str]:
        while True:
            await self._boundary()
            if self._cancel is not None:
                return "Cancelled", self._cancel
            pending = self._pending()
            if not pending:
                # A signal handler may still be merging steps in: look once more after it ran.
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._pending():
                    restarted = sum(1 for s in self._steps if s.status == "done")
                    return "Succeeded", f"{restarted} pods restarted" + (
                        f", {len(self._steps) - restarted} already up to date" if restarted < len(self._steps) else "")
                continue
            try:
                batch = await self._next_batch(pending)
                if batch:
                    await self._run_shielded(batch)
                    await self._delay()
            except _Stop as stop:
                return "Failed", str(stop)

    async def _boundary(self) -> None:
        """Between steps: hold while paused (unless cancelled)."""
        if self._paused and self._cancel is None:
            self._waiting = f"paused{': ' + self._pause_reason if self._pause_reason else ''}"
            await self._report()
            await workflow.wait_condition(lambda: not self._paused or self._cancel is not None)
            self._waiting = ""

    def _pending(self) -> list[_Step]:
        return [s for s in self._steps if s.status == "pending"]

    # --- choosing the next batch -----------------------------------------------------------------------

    async def _next_batch(self, pending: list[_Step]) -> list[tuple[_Step, act.GateObservation]]:
        """The pods to restart now, once the gate allows; [] to re-evaluate (a step was skipped or reordered, or
        the roll was paused, cancelled or extended while waiting)."""
        first = pending[0]
        self._changed = False
        obs = await self._observe(first)
        if first.step.role == "controller" and obs.reachable and obs.quorum_leader_id == first.step.node_id:
            later = [s for s in pending[1:] if s.step.role == "controller"]
            if later:
                # Leadership may have moved here since the plan was made: the active controller goes last.
                self._steps.remove(first)
                self._steps.insert(self._steps.index(later[-1]) + 1, first)
                first.note = "leads the quorum: moved after the other controllers"
                return []
        if first.gate_since is None:
            first.gate_since = workflow.now()
        while True:
            if self._skip_if_current(first, obs):
                return []
            decision = roll.stuck_decision(roll.pod_from_gate(obs, first.step), obs.update_revision)
            if decision == "stop":
                raise _Stop(f"{first.step.pod} is {roll.stuck_reason(roll.pod_from_gate(obs, first.step))} on its "
                            "update revision: the new spec does not start there, so the roll stops instead of "
                            "restarting more pods with it")
            if decision == "restart-without-gate":
                first.note = (f"stuck ({obs.waiting_reason}) on the old revision: restarted without the gate, "
                              "the new spec may be the fix")
                return [(first, obs)]
            gate = (roll.can_roll_controller(first.step.node_id, obs) if first.step.role == "controller"
                    else roll.broker_gate([first.step.node_id], [obs]))
            if gate.ok:
                return await self._grow(first, obs, pending)
            if not await self._wait_for_gate(first, str(gate)):
                return []
            obs = await self._observe(first)

    def _skip_if_current(self, step: _Step, obs: act.GateObservation) -> bool:
        if step.step.if_outdated and obs.update_revision and obs.pod_revision == obs.update_revision:
            step.status, step.detail = "skipped", f"already on {obs.update_revision}"
            return True
        if not obs.pod_uid:
            step.status, step.detail = "skipped", "no pod: the StatefulSet creates it from the current template"
            return True
        return False

    async def _wait_for_gate(self, step: _Step, why: str) -> bool:
        """Wait before re-checking a gate that is not met; False: re-plan now (paused, cancelled, extended).
        Raises :class:`_Stop` once ``gateBudget`` is spent."""
        since = step.gate_since or workflow.now()
        waited = workflow.now() - since
        budget = self._policy.budget
        if waited >= budget:
            raise _Stop(f"gate for {step.step.describe()} not met within gateBudget {self._policy.gate_budget}: "
                        f"{why}; stopped instead of forcing the restart")
        self._waiting = f"gate for {step.step.describe()}: {why} (waiting {format_duration(waited)} of " \
                        f"{self._policy.gate_budget})"
        if not step.announced:
            step.announced = True
            await self._event("Normal", "RollWaiting", f"{step.step.describe()} waits: {why}")
        await self._report()
        delay = min(GATE_FIRST_RETRY * (2 ** min(step.gate_checks, 10)), GATE_MAX_RETRY, budget - waited)
        step.gate_checks += 1
        try:
            await workflow.wait_condition(lambda: self._changed, timeout=max(delay, timedelta(seconds=1)),
                                          timeout_summary="re-check the can-roll gate")
        except TimeoutError:
            return True
        if self._paused:
            step.gate_since, step.gate_checks = None, 0  # time spent paused does not count against the budget
        return False

    async def _grow(self, first: _Step, obs: act.GateObservation,
                    pending: list[_Step]) -> list[tuple[_Step, act.GateObservation]]:
        """``maxUnavailable`` > 1: add the following brokers while the gate allows all of them down together."""
        batch = [(first, obs)]
        candidates = roll.batch_candidates([s.step for s in pending], self._policy.max_unavailable,
                                           self._policy.rack_aware)
        if len(candidates) <= 1:
            return batch
        rack = first.step.rack
        rack_members = {n for n, r in self._racks.items() if r == rack} | \
            {s.step.node_id for s in self._steps if s.step.rack == rack} if self._policy.rack_aware and rack else set()
        by_node = {s.step.node_id: s for s in pending}
        for candidate in candidates[1:]:
            step = by_node[candidate.node_id]
            other = await self._observe(step)
            if self._skip_if_current(step, other):
                continue
            if roll.stuck_decision(roll.pod_from_gate(other, step.step), other.update_revision) != "gate":
                break  # a stuck pod is handled alone when its turn comes
            nodes = [s.step.node_id for s, _ in batch] + [step.step.node_id]
            if not roll.broker_gate(nodes, [o for _, o in batch] + [other], also_down=rack_members).ok:
                break
            batch.append((step, other))
        return batch

    # --- restarting ------------------------------------------------------------------------------------

    async def _run_shielded(self, batch: list[tuple[_Step, act.GateObservation]]) -> None:
        """Restart ``batch``; a cancellation of this workflow does not interrupt it (see ``run``)."""
        for step, obs in batch:
            step.old_uid = obs.pod_uid  # recorded before the delete: the restart is conditional on it
            step.status = "restarting"
        self._in_flight = [s for s, _ in batch]
        self._task = asyncio.create_task(self._restart_batch(self._in_flight))
        await asyncio.shield(self._task)

    async def _finish_in_flight(self) -> None:
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(_Stop, ActivityError):
                await task

    async def _restart_batch(self, steps: list[_Step]) -> None:
        self._waiting = ""
        await self._report()
        try:
            await asyncio.gather(*(self._restart(s) for s in steps))
            await asyncio.gather(*(self._wait_rolled(s) for s in steps))
            for step in steps:
                step.status = "done"
                await self._event("Normal", "PodRestarted", f"{step.step.describe()}: {step.detail}")
            if self._elect:
                for step in steps:
                    if step.step.role == "broker":
                        await self._elect_leaders(step)
        finally:
            self._in_flight = []
            await self._report()

    async def _restart(self, step: _Step) -> None:
        try:
            result: act.RestartPodResult = await workflow.execute_activity(
                act.RESTART_POD, act.RestartPodInput(ref=self._ref, pod=step.step.pod, expected_uid=step.old_uid),
                result_type=act.RestartPodResult, start_to_close_timeout=_QUICK, heartbeat_timeout=HEARTBEAT,
                retry_policy=_KUBE_RETRY,
                summary=f"{self._where}: restart {step.step.pod}")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            raise _Stop(f"restarting {step.step.describe()} failed: {_failure(err)}") from err
        step.detail = "deleted" if result.deleted else "already replaced"
        step.status = "waiting"

    async def _wait_rolled(self, step: _Step) -> None:
        """Until the pod is back for real. After each ``readyTimeout`` without it: a stuck new pod stops the roll;
        a slow one is waited for, up to ``gateBudget`` beyond ``readyTimeout``."""
        started = workflow.now()
        ready = self._policy.ready
        while True:
            try:
                result: act.WaitPodRolledResult = await workflow.execute_activity(
                    act.WAIT_POD_ROLLED, act.WaitPodRolledInput(
                        ref=self._ref, role=step.step.role, pod=step.step.pod, node_id=step.step.node_id,
                        old_uid=step.old_uid),
                    result_type=act.WaitPodRolledResult, start_to_close_timeout=ready,
                    schedule_to_close_timeout=ready, heartbeat_timeout=HEARTBEAT,
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(
                        seconds=10), non_retryable_error_types=["InvalidInput"]),
                    summary=f"{self._where}: wait for {step.step.pod} to be back")
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                await self._after_slow(step, started, _failure(err))
                continue
            step.new_uid, step.detail = result.new_uid, result.detail
            return

    async def _after_slow(self, step: _Step, started: datetime, failure: str) -> None:
        obs = await self._observe(step)
        pod = roll.pod_from_gate(obs, step.step)
        if obs.pod_uid and obs.pod_uid != step.old_uid and roll.is_stuck(pod):
            raise _Stop(f"{step.step.pod} is {roll.stuck_reason(pod)} after its restart: the new spec does not "
                        "start there, so the roll stops instead of restarting more pods with it")
        waited = workflow.now() - started
        if waited >= self._policy.ready + self._policy.budget:
            raise _Stop(f"{step.step.describe()} not back within readyTimeout {self._policy.ready_timeout} + "
                        f"gateBudget {self._policy.gate_budget}: {failure}")
        self._waiting = f"{step.step.describe()} not back after {format_duration(waited)}: {failure}"
        if not step.announced:
            step.announced = True
            await self._event("Warning", "RollSlow", self._waiting)
        await self._report()

    async def _elect_leaders(self, step: _Step) -> None:
        try:
            result: act.ElectLeadersResult = await workflow.execute_activity(
                act.ELECT_PREFERRED_LEADERS, act.ElectLeadersInput(ref=self._ref, node_id=step.step.node_id),
                result_type=act.ElectLeadersResult, start_to_close_timeout=_QUICK, heartbeat_timeout=HEARTBEAT,
                retry_policy=RetryPolicy(maximum_attempts=3), summary=f"{self._where}: preferred leaders of "
                                                                      f"broker {step.step.node_id}")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            # Best effort: Kafka's auto leader rebalance moves leadership back eventually.
            workflow.logger.warning("preferred leader election for %s failed: %s", step.step.describe(),
                                    _failure(err))
            return
        if result.elected:
            step.detail += f"; led {len(result.elected)} partitions again"

    async def _delay(self) -> None:
        delay = self._policy.delay
        if delay <= timedelta() or not self._pending() or self._cancel is not None:
            return
        self._waiting = f"delayBetweenRestarts {self._policy.delay_between_restarts}"
        await self._report()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._cancel is not None, timeout=delay,
                                          timeout_summary="delay between restarts")
        self._waiting = ""

    # --- the end ---------------------------------------------------------------------------------------

    async def _end(self, outcome: Literal["Succeeded", "Failed", "Cancelled"], message: str) -> RollResult:
        self._outcome, self._message, self._waiting = outcome, message, ""
        reason = {"Succeeded": "RollFinished", "Failed": "RollStopped", "Cancelled": "RollCancelled"}[outcome]
        await self._event("Warning" if outcome == "Failed" else "Normal", reason, message)
        await self._report()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RollResult(workflow_id=workflow.info().workflow_id, outcome=outcome, message=message,
                          restarted=[s.step.node_id for s in self._steps if s.status == "done"],
                          remaining=[s.step.node_id for s in self._steps if s.status not in ("done", "skipped")])

    # --- plumbing --------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self._ref.namespace}/{self._ref.name}"

    async def _observe(self, step: _Step) -> act.GateObservation:
        """The gate's facts for ``step``; if they cannot be had, an unreachable observation (the gate says no)."""
        try:
            obs: act.GateObservation = await workflow.execute_activity(
                act.OBSERVE_ROLL_GATE, act.GateObservationInput(ref=self._ref, role=step.step.role,
                                                                node_id=step.step.node_id),
                result_type=act.GateObservation, start_to_close_timeout=_QUICK, heartbeat_timeout=HEARTBEAT,
                retry_policy=_KUBE_RETRY,
                summary=f"{self._where}: gate facts for {step.step.describe()}")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            return act.GateObservation(reachable=False, error=f"observing failed: {_failure(err)}",
                                       pod_uid=step.old_uid or "unknown")
        return obs

    async def _event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        try:
            await workflow.execute_activity(
                act.RECORD_EVENT, act.EventInput(ref=self._ref, type=type_, reason=reason, message=message[:1024]),
                start_to_close_timeout=_EVENT_TIMEOUT, retry_policy=_EVENT_RETRY,
                summary=f"{self._where}: event {reason}")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            workflow.logger.warning("event %s not recorded: %s", reason, _failure(err))

    def _progress(self) -> RollProgress:
        total = len(self._steps)
        done = sum(1 for s in self._steps if s.status in ("done", "skipped"))
        current = self._in_flight or self._pending()[:1]
        index = self._steps.index(current[0]) + 1 if current else total
        step = f"{index}/{total} " + ", ".join(s.step.describe() for s in current) if current else ""
        return RollProgress(workflow_id=workflow.info().workflow_id, outcome=self._outcome, reason=self._reason,
                            total=total, done=done, step=step, in_flight=[s.step.node_id for s in self._in_flight],
                            waiting=self._waiting, paused=self._paused, message=self._message)

    async def _report(self) -> None:
        """Current details for the Temporal UI; progress to the cluster workflow when it changed."""
        progress = self._progress()
        lines = [f"**Roll of {self._where}** -- {progress.outcome}: {progress.done}/{progress.total} done"]
        if self._reason:
            lines.append(f"- reason: {self._reason}")
        if progress.step and progress.outcome == "Running":
            lines.append(f"- {'in flight' if progress.in_flight else 'next'}: {progress.step}")
        if progress.waiting:
            lines.append(f"- waiting: {progress.waiting}")
        if self._cancel is not None and progress.outcome == "Running":
            lines.append(f"- cancel requested: {self._cancel}")
        if progress.message:
            lines.append(f"- {progress.message}")
        workflow.set_current_details("\n".join(lines))
        if progress == self._last_sent:
            return
        self._last_sent = progress
        try:
            await workflow.get_external_workflow_handle(self._ref.workflow_id).signal(SIGNAL_ROLL_PROGRESS, progress)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # no cluster workflow (a roll started by hand): nobody to tell
            workflow.logger.info("progress not delivered to %s: %s", self._ref.workflow_id, err)

    # --- queries ---------------------------------------------------------------------------------------

    @workflow.query(name=ROLL_QUERY_PLAN)
    def plan(self) -> list[str]:
        total = len(self._steps)
        return [s.line(i, total) for i, s in enumerate(self._steps, start=1)]

    @workflow.query(name=ROLL_QUERY_PROGRESS)
    def progress(self) -> RollProgress:
        return self._progress()

    # --- control: updates for people, signals for the cluster workflow ---------------------------------

    def _check_running(self) -> None:
        if self._outcome != "Running":
            raise ValueError(f"the roll of {self._where} has ended ({self._outcome})")

    def _do_pause(self, reason: str) -> None:
        if self._outcome != "Running" or self._paused:
            return
        self._paused, self._pause_reason, self._changed = True, reason, True

    def _do_resume(self) -> None:
        if not self._paused:
            return
        self._paused, self._pause_reason, self._changed = False, "", True

    def _do_cancel(self, reason: str) -> None:
        if self._outcome != "Running" or self._cancel is not None:
            return
        self._cancel, self._changed = reason or "cancelled by an operator", True

    def _do_extend(self, extend: RollExtend) -> list[RollStep]:
        """Each pod at most once per roll among what is pending or in flight; a manual step for a pod this roll
        already restarted is dropped too (it restarted once, as asked). A template-change step for such a pod is
        kept: a newer template came after its restart (and it is skipped if the pod is current by its turn).
        Steps merged as the roll ends stay pending and come back in ``RollResult.remaining``, which the cluster
        workflow turns into its next roll: a request is never lost in that race."""
        pending = self._pending()
        in_flight = {s.step.node_id for s in self._steps if s.status in ("restarting", "waiting")}
        done = {s.step.node_id for s in self._steps if s.status == "done"}
        wanted = [s for s in extend.steps
                  if s.node_id not in in_flight and (s.if_outdated or s.node_id not in done)]
        merged, added = roll.merge_steps([s.step for s in pending], wanted)
        by_node = {s.step.node_id: s for s in pending}
        for step in merged:  # upgraded steps (manual over if-outdated) replace their entry in place
            if step.node_id in by_node:
                by_node[step.node_id].step = step
        fresh = {s.node_id: _Step(s) for s in added}
        kept = [s for s in self._steps if s.status != "pending"]
        self._steps = kept + [by_node.get(s.node_id) or fresh[s.node_id] for s in merged]
        if added:
            self._changed = True
            if extend.reason and extend.reason not in self._reason:
                self._reason = f"{self._reason}; {extend.reason}" if self._reason else extend.reason
        return added

    @workflow.update(name=ROLL_UPDATE_PAUSE)
    async def pause(self, request: PauseRequest) -> RollProgress:
        """Hold at the next step boundary (the restart in flight finishes first)."""
        self._do_pause(request.reason)
        await self._event("Normal", "RollPaused", request.reason or "paused by an operator")
        return self._progress()

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        self._check_running()
        if self._paused:
            raise ValueError("the roll is already paused")

    @workflow.update(name=ROLL_UPDATE_RESUME)
    async def resume(self, request: ResumeRequest) -> RollProgress:
        self._do_resume()
        await self._event("Normal", "RollResumed", "resumed by an operator")
        return self._progress()

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self._check_running()
        if not self._paused:
            raise ValueError("the roll is not paused")

    @workflow.update(name=ROLL_UPDATE_CANCEL)
    async def cancel(self, request: CancelRequest) -> RollProgress:
        """Stop at the next step boundary; the restart in flight finishes, so every pod is back."""
        self._do_cancel(request.reason)
        return self._progress()

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._check_running()

    @workflow.update(name=ROLL_UPDATE_EXTEND)
    async def extend(self, request: RollExtend) -> list[str]:
        """Merge more pods into this roll (each at most once among the steps not started yet)."""
        added = self._do_extend(request)
        return [s.describe() for s in added]

    @extend.validator
    def _validate_extend(self, request: RollExtend) -> None:
        self._check_running()

    @workflow.signal(name=ROLL_SIGNAL_PAUSE)
    def pause_signal(self, request: PauseRequest) -> None:
        self._do_pause(request.reason)

    @workflow.signal(name=ROLL_SIGNAL_RESUME)
    def resume_signal(self, request: ResumeRequest) -> None:
        self._do_resume()

    @workflow.signal(name=ROLL_SIGNAL_CANCEL)
    def cancel_signal(self, request: CancelRequest) -> None:
        self._do_cancel(request.reason)

    @workflow.signal(name=ROLL_SIGNAL_EXTEND)
    def extend_signal(self, request: RollExtend) -> None:
        self._do_extend(request)

