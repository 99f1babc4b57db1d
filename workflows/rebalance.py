"""``RebalanceWorkflow``: move partition replicas between brokers, batch by batch, recorded step by step.

Started by ``KafkaClusterWorkflow`` as a child (id ``rebalance/<ns>/<name>/<n>``, one structural operation at a
time per cluster) after a scale-out, before a scale-in (``remove``), when disks drift apart, or on request; or by
hand (``temporal workflow start --type RebalanceWorkflow``, see :class:`ballast.messages.RebalanceInput`). The
runbook:

1. **Plan** (``plan_rebalance``: the cluster as Kafka reports it, planned by the pure
   :func:`ballast.rebalance.planner.plan_rebalance`). Hard goals no plan can reach (RF above the brokers left,
   not enough disk) end it as ``Infeasible`` before anything moves.
2. **Approval** (``require_approval``): the plan is published (``plan`` query, progress in the cluster's
   status) and waits for ``approve`` -- or ``cancel``.
3. **Batches**, each recorded as done: at the boundary, hold while paused, stop when cancelled; ``submit``
   sets replication throttles for exactly the moving replicas and submits the moves (idempotent: a retried or
   replayed submit never moves anything twice); ``wait_reassignments`` polls until the batch is complete,
   reporting bytes moved and an ETA every few seconds. A broker restarting meanwhile is waited out. Then
   preferred leaders are elected for the moved partitions (best effort).
4. A plan too large for one round (``truncated``) is planned again after it ran.
5. **Scale-in** (``remove``): Kafka itself must confirm the removed brokers hold no replica
   (``verify_brokers_empty``); replicas that appeared meanwhile (a new topic) are drained in another round.
6. **Always**: throttles are cleared at the end, whatever happened (success, failure, cancel, a Temporal
   cancellation). A cancel first cancels the batch's in-flight reassignments: Kafka puts those partitions back
   on their original replicas, so the assignment stays consistent.

Progress goes to the cluster's workflow as ``rebalance_progress`` (by workflow id) and to the Temporal UI as
current details; Events mark the start, each batch and the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities import contracts as act
    from ballast.messages import (
        REBALANCE_QUERY_PLAN,
        REBALANCE_QUERY_PROGRESS,
        REBALANCE_SIGNAL_APPROVE,
        REBALANCE_SIGNAL_CANCEL,
        REBALANCE_SIGNAL_PAUSE,
        REBALANCE_SIGNAL_RESUME,
        REBALANCE_UPDATE_APPROVE,
        REBALANCE_UPDATE_CANCEL,
        REBALANCE_UPDATE_PAUSE,
        REBALANCE_UPDATE_RESUME,
        REBALANCE_WORKFLOW_NAME,
        SIGNAL_REBALANCE_PROGRESS,
        ApproveRequest,
        CancelRequest,
        ClusterRef,
        PauseRequest,
        RebalanceInput,
        RebalanceProgress,
        RebalanceResult,
        RebalanceState,
        ResumeRequest,
    )
    from ballast.spec import format_duration
    from ballast.units import format_bytes

Outcome = Literal["Succeeded", "Failed", "Cancelled", "Infeasible"]

# A worker lost while it runs an activity (a crash, SIGKILL, its node gone) is noticed by the server only when a
# timeout of that activity expires; the retry then runs on a live worker. Every rebalance activity heartbeats --
# wait_reassignments every poll, the others every second from a keep-alive thread (activities.rebalance) -- so
# this heartbeat timeout brings that retry within seconds instead of holding the rebalance for a start-to-close
# timeout, while a slow Kafka answer is not taken for a lost worker: the threads record a heartbeat every second and
# the worker sends one at most every 80% of this timeout, so a live worker always gets one in.
HEARTBEAT = timedelta(seconds=3)
# wait_reassignments returns this often with the progress so far, so status and ETA stay current.
REPORT_EVERY_SECONDS = 5.0

_KAFKA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(seconds=30), maximum_attempts=20,
                           non_retryable_error_types=["InvalidInput"])
_QUICK = timedelta(seconds=60)
# Recording an Event is a few Kubernetes API calls and does not heartbeat: a lost worker costs at most this.
_EVENT_TIMEOUT = timedelta(seconds=10)
_EVENT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5),
                           maximum_attempts=3)


class _Stop(Exception):
    """The rebalance cannot go on; the message says why."""


def _failure(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) else None
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err)


def _percent(value: float) -> str:
    return f"{value:.1f}%"


@workflow.defn(name=REBALANCE_WORKFLOW_NAME)
class RebalanceWorkflow:
    """See the module docstring."""

    @workflow.init
    def __init__(self, input: RebalanceInput) -> None:
        self._input = input
        self._ref: ClusterRef = input.ref
        self._plan: act.PlanRebalanceResult | None = None
        self._batch_index = 0  # batches of the current plan done
        self._batches_done = 0  # over every round
        self._moves_done = 0
        self._bytes_done = 0  # bytes of completed batches
        self._batch_bytes_moved = 0  # of the batch in flight
        self._moved: list[str] = []
        self._in_flight: list[act.MoveSpec] = []
        self._state: RebalanceState = "Planning"
        self._approved: str | None = None
        self._paused = False
        self._pause_reason = ""
        self._cancel: str | None = None
        self._waiting = ""
        self._message = ""
        self._eta: int | None = None
        self._rate: float | None = None
        self._rate_sample: tuple[datetime, int] | None = None
        self._throttled = False
        self._last_sent: RebalanceProgress | None = None

    # --- run -------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RebalanceInput) -> RebalanceResult:
        try:
            outcome, message = await self._rebalance()
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not is_cancelled_exception(err):
                # Planning or the drain's verification failed after its retries, maybe after batches ran:
                # a failure like any other (throttles cleared), not a failed workflow that leaves them set.
                outcome, message = "Failed", f"{err.activity_type} failed: {_failure(err)}"
            else:
                # A Temporal cancellation (the cluster workflow ended, `temporal workflow cancel`): leave the
                # cluster consistent before stopping.
                self._cancel = self._cancel or "the rebalance workflow was cancelled"
                outcome, message = "Cancelled", self._cancel
        except _Stop as stop:
            outcome, message = "Failed", str(stop)
        if outcome in ("Failed", "Cancelled"):
            await self._cancel_in_flight()
        await self._clear_throttles()
        return await self._end(outcome, message, emptied=outcome == "Succeeded" and bool(input.remove))

    async def _rebalance(self) -> tuple[Outcome, str]:
        for round_ in range(1, self._input.max_rounds + 1):
            plan = await self._make_plan()
            if plan.infeasible:
                return "Infeasible", "; ".join(plan.infeasible)
            if round_ == 1:
                await self._announce(plan)
                if self._input.require_approval and plan.batches and not await self._await_approval():
                    return "Cancelled", self._cancel or "cancelled"
            if plan.batches:
                self._state = "Running"
                outcome = await self._run_batches(plan)
                if outcome is not None:
                    return outcome
            if self._input.remove:
                holders = await self._holders()
                if not holders:
                    return "Succeeded", self._summary(f"brokers {self._input.remove} hold no replica")
                self._message = f"still on the brokers being removed: {holders}"
                continue
            if not plan.truncated:
                return "Succeeded", self._summary("balanced" if self._moves_done else
                                                  "already balanced: nothing to move")
        if self._input.remove:
            raise _Stop(f"brokers {self._input.remove} still hold replicas after {self._input.max_rounds} rounds: "
                        f"{self._message}")
        return "Succeeded", self._summary(f"stopped after {self._input.max_rounds} rounds")

    def _summary(self, what: str) -> str:
        return (f"{what}; {self._moves_done} moves in {self._batches_done} batches, "
                f"{format_bytes(self._bytes_done)} moved")

    async def _make_plan(self) -> act.PlanRebalanceResult:
        self._state = "Planning"
        self._waiting = ""
        await self._report()
        s = self._input.settings
        plan: act.PlanRebalanceResult = await workflow.execute_activity(
            act.PLAN_REBALANCE, act.PlanRebalanceInput(
                ref=self._ref, remove=self._input.remove, require_brokers=self._input.require_brokers,
                tolerance_percent=s.tolerance_percent, capacity_threshold_percent=s.capacity_threshold_percent,
                max_moves_per_batch=s.max_moves_per_batch, capacity_fallback_bytes=s.capacity_fallback_bytes),
            result_type=act.PlanRebalanceResult, start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=HEARTBEAT, retry_policy=_KAFKA_RETRY,
            summary=f"{self._where}: plan the rebalance")
        self._plan = plan
        self._batch_index = 0
        return plan

    async def _announce(self, plan: act.PlanRebalanceResult) -> None:
        if not plan.batches:
            return
        what = (f"{plan.moves} moves in {len(plan.batches)} batches, {format_bytes(plan.bytes_to_move)} to copy "
                f"(lower bound {format_bytes(plan.lower_bound_bytes)}); disk spread "
                f"{_percent(plan.disk_before.max_deviation_percent)} -> {_percent(plan.disk_after.max_deviation_percent)}, "
                f"replica spread {_percent(plan.replicas_before.max_deviation_percent)} -> "
                f"{_percent(plan.replicas_after.max_deviation_percent)}")
        await self._event("Normal", "RebalancePlanned", f"{self._input.purpose}: {what}"
                          + (" -- waiting for approval" if self._input.require_approval else ""))

    async def _await_approval(self) -> bool:
        self._state = "AwaitingApproval"
        self._waiting = "approval (ballast rebalance approve, or the approve_rebalance update)"
        await self._report()
        await workflow.wait_condition(lambda: self._approved is not None or self._cancel is not None)
        self._waiting = ""
        if self._cancel is not None:
            return False
        await self._event("Normal", "RebalanceApproved", self._approved or "approved")
        return True

    async def _run_batches(self, plan: act.PlanRebalanceResult) -> tuple[Outcome, str] | None:
        while self._batch_index < len(plan.batches):
            await self._boundary()
            if self._cancel is not None:
                return "Cancelled", self._cancel
            batch = plan.batches[self._batch_index]
            await self._submit(batch)
            await self._wait_batch(batch)
            if self._cancel is not None:
                return "Cancelled", self._cancel
            self._batch_index += 1
            self._batches_done += 1
            self._moves_done += len(batch)
            self._bytes_done += sum(m.bytes_to_move for m in batch)
            self._batch_bytes_moved = 0
            self._moved += [m.key for m in batch]
            self._in_flight = []
            await self._elect(batch)
            await self._report()
            await self._batch_event()
        return None

    async def _batch_event(self) -> None:
        """One Event per batch: how far the rebalance got, for ``kubectl describe`` readers."""
        p = self._progress()
        eta = f", ETA {format_duration(timedelta(seconds=p.eta_seconds))}" if p.eta_seconds is not None else ""
        await self._event("Normal", "RebalanceProgress", f"batch {p.batches_done}/{p.batches} done: "
                          f"{format_bytes(p.bytes_moved)} of {format_bytes(p.bytes_to_move)} moved{eta}")

    async def _boundary(self) -> None:
        if self._paused and self._cancel is None:
            self._state = "Paused"
            self._waiting = f"paused: {self._pause_reason}" if self._pause_reason else "paused"
            await self._report()
            await workflow.wait_condition(lambda: not self._paused or self._cancel is not None)
            self._state = "Running"
            self._waiting = ""

    async def _submit(self, batch: list[act.MoveSpec]) -> None:
        self._in_flight = batch
        self._throttled = self._throttled or self._input.settings.throttle_bytes_per_sec > 0
        self._rate_sample = None
        await self._report()
        try:
            result: act.SubmitReassignmentsResult = await workflow.execute_activity(
                act.SUBMIT_REASSIGNMENTS, act.SubmitReassignmentsInput(
                    ref=self._ref, moves=batch, throttle_bytes_per_sec=self._input.settings.throttle_bytes_per_sec),
                result_type=act.SubmitReassignmentsResult, start_to_close_timeout=_QUICK,
                heartbeat_timeout=HEARTBEAT, retry_policy=_KAFKA_RETRY,
                summary=f"{self._where}: submit batch {self._position} ({len(batch)} moves)")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            raise _Stop(f"batch {self._position} could not be submitted: {_failure(err)}") from err
        if result.skipped:
            skipped = ", ".join(f"{k} ({v})" for k, v in list(result.skipped.items())[:5])
            await self._event("Warning", "RebalanceMovesSkipped", f"batch {self._position}: {skipped}")

    async def _wait_batch(self, batch: list[act.MoveSpec]) -> None:
        """Until the batch is complete (or a cancel arrives: the caller cancels what is in flight)."""
        while True:
            waiting = asyncio.ensure_future(workflow.execute_activity(
                act.WAIT_REASSIGNMENTS, act.WaitReassignmentsInput(
                    ref=self._ref, moves=batch, report_after_seconds=REPORT_EVERY_SECONDS),
                result_type=act.WaitReassignmentsResult, start_to_close_timeout=timedelta(minutes=2),
                heartbeat_timeout=HEARTBEAT, retry_policy=_KAFKA_RETRY,
                summary=f"{self._where}: wait for batch {self._position}"))
            await workflow.wait_condition(lambda w=waiting: w.done() or self._cancel is not None)  # type: ignore[misc]
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, ActivityError):
                    await waiting
                return
            try:
                result = waiting.result()
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                raise _Stop(f"batch {self._position}: progress could not be read: {_failure(err)}") from err
            self._progress_sample(result)
            if result.done:
                if result.not_at_target:
                    shown = ", ".join(f"{k} on {v}" for k, v in list(result.not_at_target.items())[:5])
                    await self._event("Warning", "RebalanceMovesReverted",
                                      f"batch {self._position}: not on their target (cancelled by someone?): {shown}")
                return
            await self._report()

    def _progress_sample(self, result: act.WaitReassignmentsResult) -> None:
        """Bytes moved so far and the rate since the batch's previous sample (for the ETA)."""
        now = workflow.now()
        self._batch_bytes_moved = result.bytes_moved
        if self._rate_sample is not None:
            then, moved = self._rate_sample
            elapsed = (now - then).total_seconds()
            if elapsed > 0 and result.bytes_moved > moved:
                self._rate = (result.bytes_moved - moved) / elapsed
        self._rate_sample = (now, result.bytes_moved)
        self._waiting = result.detail

    async def _elect(self, batch: list[act.MoveSpec]) -> None:
        partitions = [m.key for m in batch if m.target and m.target[0] != (m.source[0] if m.source else -1)]
        if not partitions:
            return
        try:
            await workflow.execute_activity(
                act.ELECT_LEADERS_FOR_PARTITIONS, act.ElectPartitionsInput(ref=self._ref, partitions=partitions),
                result_type=act.ElectLeadersResult, start_to_close_timeout=_QUICK, heartbeat_timeout=HEARTBEAT,
                retry_policy=_EVENT_RETRY,
                summary=f"{self._where}: elect preferred leaders of batch {self._position}")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            # Best effort: Kafka's auto leader rebalance moves leadership to the preferred replica eventually.
            workflow.logger.info("preferred leader election failed: %s", _failure(err))

    async def _holders(self) -> dict[int, list[str]]:
        result: act.VerifyBrokersEmptyResult = await workflow.execute_activity(
            act.VERIFY_BROKERS_EMPTY, act.VerifyBrokersEmptyInput(ref=self._ref, brokers=self._input.remove),
            result_type=act.VerifyBrokersEmptyResult, start_to_close_timeout=_QUICK, heartbeat_timeout=HEARTBEAT,
            retry_policy=_KAFKA_RETRY,
            summary=f"{self._where}: verify brokers {self._input.remove} hold nothing")
        return {b: p for b, p in result.holders.items() if p}

    # --- always: leave the cluster consistent ------------------------------------------------------------

    async def _cancel_in_flight(self) -> None:
        if not self._in_flight:
            return
        partitions = [m.key for m in self._in_flight]
        self._in_flight = []
        try:
            result: act.CancelReassignmentsResult = await workflow.execute_activity(
                act.CANCEL_REASSIGNMENTS, act.CancelReassignmentsInput(ref=self._ref, partitions=partitions),
                result_type=act.CancelReassignmentsResult, start_to_close_timeout=_QUICK, heartbeat_timeout=HEARTBEAT,
                retry_policy=_KAFKA_RETRY, summary=f"{self._where}: cancel the in-flight reassignments")
        except ActivityError as err:
            await self._event("Warning", "RebalanceCancelFailed",
                              f"in-flight reassignments of {len(partitions)} partitions could not be cancelled "
                              f"({_failure(err)}); they complete on their own")
            return
        if result.cancelled:
            await self._event("Normal", "ReassignmentsCancelled",
                              f"{len(result.cancelled)} partitions back on their original replicas")

    async def _clear_throttles(self) -> None:
        """Every topic and broker, not just this plan's: a throttle left from a crashed earlier run goes too."""
        if not self._throttled:
            return
        # Unlimited retries: a throttle left behind slows replication for good, so this must get through.
        try:
            await workflow.execute_activity(
                act.CLEAR_THROTTLES, act.ClearThrottlesInput(ref=self._ref),
                result_type=act.ClearThrottlesResult, start_to_close_timeout=timedelta(minutes=2),
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                         maximum_interval=timedelta(seconds=30)),
                summary=f"{self._where}: clear replication throttles")
        finally:
            self._throttled = False

    async def _end(self, outcome: Outcome, message: str, emptied: bool) -> RebalanceResult:
        state: dict[Outcome, RebalanceState] = {"Succeeded": "Succeeded", "Failed": "Failed",
                                                "Cancelled": "Cancelled", "Infeasible": "Failed"}
        self._state = state[outcome]
        self._message, self._waiting, self._eta = message, "", None
        reason = {"Succeeded": "RebalanceFinished", "Failed": "RebalanceFailed", "Cancelled": "RebalanceCancelled",
                  "Infeasible": "RebalanceInfeasible"}[outcome]
        await self._event("Normal" if outcome in ("Succeeded", "Cancelled") else "Warning", reason,
                          f"{self._input.purpose}: {message}")
        await self._report()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RebalanceResult(workflow_id=workflow.info().workflow_id, outcome=outcome, purpose=self._input.purpose,
                               message=message, moves_done=self._moves_done, bytes_moved=self._bytes_done,
                               batches_done=self._batches_done, remove=self._input.remove, emptied=emptied)

    # --- plumbing --------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self._ref.namespace}/{self._ref.name}"

    @property
    def _position(self) -> str:
        total = len(self._plan.batches) if self._plan else 0
        return f"{self._batch_index + 1}/{total}"

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

    def _progress(self) -> RebalanceProgress:
        plan = self._plan
        total_bytes = self._bytes_done
        if plan is not None:
            remaining = sum(m.bytes_to_move for b in plan.batches[self._batch_index:] for m in b)
            total_bytes = self._bytes_done + remaining
            left = max(0, remaining - self._batch_bytes_moved)
            rate = self._rate or float(self._input.settings.throttle_bytes_per_sec or 0)
            self._eta = int(left / rate) if rate > 0 and self._state == "Running" else None
        return RebalanceProgress(
            workflow_id=workflow.info().workflow_id, purpose=self._input.purpose, state=self._state,
            reason=self._input.reason, moves=plan.moves if plan else 0,
            batches=len(plan.batches) if plan else 0, batches_done=self._batch_index,
            bytes_to_move=total_bytes, bytes_moved=self._bytes_done + self._batch_bytes_moved,
            lower_bound_bytes=plan.lower_bound_bytes if plan else 0,
            disk_spread_before=plan.disk_before.max_deviation_percent if plan else 0.0,
            disk_spread_after=plan.disk_after.max_deviation_percent if plan else 0.0,
            replica_spread_before=plan.replicas_before.max_deviation_percent if plan else 0.0,
            replica_spread_after=plan.replicas_after.max_deviation_percent if plan else 0.0,
            eta_seconds=self._eta, paused=self._paused, waiting=self._waiting, message=self._message)

    async def _report(self) -> None:
        """Current details for the Temporal UI; progress to the cluster workflow when it changed."""
        p = self._progress()
        lines = [f"**Rebalance of {self._where}** ({p.purpose}) -- {p.state}: batch {p.batches_done}/{p.batches}, "
                 f"{format_bytes(p.bytes_moved)} of {format_bytes(p.bytes_to_move)} moved"]
        if self._input.reason:
            lines.append(f"- reason: {self._input.reason}")
        if p.eta_seconds is not None:
            lines.append(f"- ETA: {format_duration(timedelta(seconds=p.eta_seconds))}")
        if self._in_flight:
            lines.append(f"- in flight: {', '.join(m.key for m in self._in_flight[:10])}"
                         + (" ..." if len(self._in_flight) > 10 else ""))
        if p.waiting:
            lines.append(f"- waiting: {p.waiting}")
        if self._cancel is not None and p.state not in ("Cancelled", "Failed", "Succeeded"):
            lines.append(f"- cancel requested: {self._cancel}")
        if p.message:
            lines.append(f"- {p.message}")
        workflow.set_current_details("\n".join(lines))
        if p == self._last_sent:
            return
        self._last_sent = p
        try:
            await workflow.get_external_workflow_handle(self._ref.workflow_id).signal(SIGNAL_REBALANCE_PROGRESS, p)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # no cluster workflow (started by hand): nobody to tell
            workflow.logger.info("progress not delivered to %s: %s", self._ref.workflow_id, err)

    # --- queries ---------------------------------------------------------------------------------------

    @workflow.query(name=REBALANCE_QUERY_PLAN)
    def plan(self) -> act.PlanRebalanceResult | None:
        return self._plan

    @workflow.query(name=REBALANCE_QUERY_PROGRESS)
    def progress(self) -> RebalanceProgress:
        return self._progress()

    # --- control: updates for people, signals for the cluster workflow ---------------------------------

    @property
    def _ended(self) -> bool:
        return self._state in ("Succeeded", "Failed", "Cancelled")

    def _check_running(self) -> None:
        if self._ended:
            raise ValueError(f"the rebalance of {self._where} has ended ({self._state})")

    def _do_approve(self, request: ApproveRequest) -> None:
        if self._approved is None and not self._ended:
            self._approved = request.reason or "approved"

    def _do_pause(self, reason: str) -> None:
        if not self._ended and not self._paused:
            self._paused, self._pause_reason = True, reason

    def _do_resume(self) -> None:
        self._paused, self._pause_reason = False, ""

    def _do_cancel(self, reason: str) -> None:
        if not self._ended and self._cancel is None:
            self._cancel = reason or "cancelled"

    @workflow.update(name=REBALANCE_UPDATE_APPROVE)
    async def approve(self, request: ApproveRequest) -> RebalanceProgress:
        self._do_approve(request)
        return self._progress()

    @approve.validator
    def _validate_approve(self, request: ApproveRequest) -> None:
        self._check_running()
        if self._state != "AwaitingApproval" and self._approved is None:
            raise ValueError(f"the rebalance of {self._where} is not waiting for approval ({self._state})")

    @workflow.update(name=REBALANCE_UPDATE_PAUSE)
    async def pause(self, request: PauseRequest) -> RebalanceProgress:
        self._do_pause(request.reason)
        return self._progress()

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        self._check_running()

    @workflow.update(name=REBALANCE_UPDATE_RESUME)
    async def resume(self, request: ResumeRequest) -> RebalanceProgress:
        self._do_resume()
        return self._progress()

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self._check_running()

    @workflow.update(name=REBALANCE_UPDATE_CANCEL)
    async def cancel(self, request: CancelRequest) -> RebalanceProgress:
        self._do_cancel(request.reason)
        return self._progress()

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._check_running()

    @workflow.signal(name=REBALANCE_SIGNAL_APPROVE)
    def approve_signal(self, request: ApproveRequest) -> None:
        self._do_approve(request)

    @workflow.signal(name=REBALANCE_SIGNAL_PAUSE)
    def pause_signal(self, request: PauseRequest) -> None:
        self._do_pause(request.reason)

    @workflow.signal(name=REBALANCE_SIGNAL_RESUME)
    def resume_signal(self, request: ResumeRequest) -> None:
        self._do_resume()

    @workflow.signal(name=REBALANCE_SIGNAL_CANCEL)
    def cancel_signal(self, request: CancelRequest) -> None:
        self._do_cancel(request.reason)
