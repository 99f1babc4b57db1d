"""The cluster workflow's structural operations: scale-in and scale-out, rebalancing, volume expansion.

A mixin of :class:`workflows.kafkacluster.KafkaClusterWorkflow` (its state lives there, set up in its
``__init__`` and carried over continue-as-new). The rules it follows:

- **One structural operation at a time**: a ``RebalanceWorkflow`` child (``rebalance/<ns>/<name>/<n>``) for a
  scale-in drain, the rebalance after a scale-out, a requested one, or one for disk skew.
- **Scale-in never loses data**: the StatefulSet keeps its size until the drain succeeded (see
  :func:`ballast.scaling.effective_broker_replicas`), and Kafka confirms right before the shrink that the
  brokers hold nothing; then the pods go, the brokers are unregistered and their claims deleted per
  ``deleteClaim``. A drain that fails, is cancelled or is impossible holds the scale-in for that generation.
- **Volume expansion** grows the claims and rolls (through the roll machinery) only the pods whose claim waits
  for a restart.
- **Disk skew** is checked on a durable timer (``rebalance.checkInterval``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, is_cancelled_exception
from temporalio.workflow import ParentClosePolicy

from workflows.cluster_support import (
    APPLY,
    KAFKA,
    KUBE,
    SKEW_CHECK,
    WAIT,
    Condition,
    Options,
    failure_message,
    timestamp,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities import contracts as act
    from ballast import planner, scaling
    from ballast.messages import (
        REBALANCE_ANNOTATION,
        REBALANCE_APPROVE,
        REBALANCE_SIGNAL_APPROVE,
        REBALANCE_SIGNAL_CANCEL,
        REBALANCE_WORKFLOW_NAME,
        ApproveRequest,
        CancelRequest,
        ClusterRef,
        PendingRebalance,
        RebalanceInput,
        RebalanceProgress,
        RebalancePurpose,
        RebalanceResult,
        RebalanceSettings,
        RollRequest,
        ScaleInHold,
        rebalance_workflow_id,
    )
    from ballast.observed import ObservedCluster
    from ballast.spec import KafkaClusterSpec, format_duration, quantity_bytes
    from ballast.status import ConditionType, Phase
    from ballast.units import format_bytes

OPERATION_REBALANCE = "Rebalance"
OPERATION_SCALE_IN = "ScaleIn"
OPERATION_SCALE_OUT = "ScaleOut"
OPERATION_OF: dict[str, str] = {"scale-in": OPERATION_SCALE_IN, "scale-out": OPERATION_SCALE_OUT,
                                "skew": OPERATION_REBALANCE, "requested": OPERATION_REBALANCE}


@dataclass
class RunningRebalance:
    """The rebalance child this workflow started, or one started by hand that reports here (``adopted``: it
    ends through its last progress signal). One structural operation at a time."""

    workflow_id: str
    purpose: RebalancePurpose
    started_at: str
    reason: str = ""
    target: int | None = None  # scale-in: the broker count it drains for
    remove: list[int] = field(default_factory=list)
    generation: int = 0  # the KafkaCluster generation it was started for
    progress: RebalanceProgress | None = None
    cancel_sent: bool = False
    adopted: bool = False


class StructuralOperations:
    """Mixin: the structural-operation steps of a reconcile pass and the reporting of the rebalance child."""

    # State owned by KafkaClusterWorkflow (set in its __init__).
    _ref: ClusterRef
    _rebalance_count: int
    _last_rebalance_token: str
    _pending_rebalance: PendingRebalance | None
    _drained_target: int | None
    _drained_remove: list[int]
    _scale_in_hold: ScaleInHold | None
    _volume_sizes: dict[str, str]
    _next_skew_check: str
    _skew_check_due: bool
    _rebalance: RunningRebalance | None
    _rebalance_done: RebalanceResult | None
    _rebalance_report_due: bool
    _rebalance_watch: asyncio.Task[None] | None
    _apply_raw: dict[str, Any] | None
    _plan: planner.Plan
    _roll: Any
    _roll_requests: list[RollRequest]
    _phase: Phase
    _message: str
    _step: str
    _operation: dict[str, Any] | None
    _pass_due: bool
    _status_written: dict[str, Any]

    if TYPE_CHECKING:  # provided by KafkaClusterWorkflow
        async def _call(self, activity: str, arg: BaseModel, options: Options, summary: str,
                        result_type: type | None = None) -> Any: ...

        async def _event(self, type_: Any, reason: str, message: str) -> None: ...

        async def _write_status(self, update: act.StatusUpdate, *, summary: str) -> None: ...

        def _set_phase(self, phase: Phase) -> None: ...

        def _show(self) -> None: ...

        def _last_operation(self, result: str, message: str) -> dict[str, Any]: ...


    async def _effective_spec(self, observed: ObservedCluster, wanted: KafkaClusterSpec) -> KafkaClusterSpec:
        """``wanted`` with the broker count that may be rendered now: fewer brokers only once a scale-in drained
        them -- and Kafka confirms, right before the StatefulSet shrinks, that they hold nothing. A larger count
        queues the rebalance onto the new brokers (per ``rebalance.mode``)."""
        current = scaling.current_broker_replicas(observed)
        if self._drained_target is not None and self._drained_target != wanted.brokers.replicas:
            # The spec moved on since the drain: it no longer allows anything.
            self._drained_target = None
            if current is not None and current > wanted.brokers.replicas:
                self._drained_remove = []
        replicas = scaling.effective_broker_replicas(wanted, observed, self._drained_target)
        if current is not None and replicas < current:
            remove = scaling.ScaleIn(current=current, target=replicas).remove
            holders = await self._holders(remove)
            if holders:
                self._drained_target = None
                replicas = current
                await self._event("Warning", "ScaleInBlocked", f"brokers {remove} hold replicas again "
                                  f"({holders}); draining again before removing them")
        if current is not None and replicas > current and wanted.rebalance.mode != "off":
            self._pending_rebalance = PendingRebalance(
                purpose="scale-out", reason=f"scale-out from {current} to {replicas} brokers",
                require_brokers=scaling.added_brokers(current, replicas))
        spec, raw = scaling.with_broker_replicas(wanted, observed.spec, replicas)
        self._apply_raw = raw
        return spec

    async def _holders(self, brokers: list[int]) -> str:
        result: act.VerifyBrokersEmptyResult = await self._call(
            act.VERIFY_BROKERS_EMPTY, act.VerifyBrokersEmptyInput(ref=self._ref, brokers=brokers), KAFKA,
            f"verify brokers {brokers} hold no replica", act.VerifyBrokersEmptyResult)
        held = {b: p for b, p in result.holders.items() if p}
        return "; ".join(f"broker {b}: {', '.join(p[:5])}{' ...' if len(p) > 5 else ''}" for b, p in held.items())

    async def _finish_scale_in(self, spec: KafkaClusterSpec) -> None:
        """After the StatefulSet shrank to a drained count: wait for the pods to go, unregister the brokers from
        KRaft, delete their volume claims per ``deleteClaim``. Each step is idempotent (a crash repeats it)."""
        remove = self._drained_remove
        if not remove or self._drained_target != spec.brokers.replicas:
            return
        target = spec.brokers.replicas
        await self._call(act.WAIT_BROKER_PODS_GONE, act.WaitBrokerPodsGoneInput(ref=self._ref, replicas=target),
                         WAIT, f"wait for broker pods {remove} to go")
        await self._call(act.UNREGISTER_BROKERS, act.UnregisterBrokersInput(ref=self._ref, brokers=remove), KAFKA,
                         f"unregister brokers {remove}", act.UnregisterBrokersResult)
        claims = "kept"
        if spec.brokers.storage.delete_claim:
            await self._call(act.DELETE_BROKER_CLAIMS, act.DeleteBrokerClaimsInput(ref=self._ref, ordinals=remove),
                             KUBE, f"delete the volume claims of brokers {remove}", act.DeleteBrokerClaimsResult)
            claims = "deleted"
        self._drained_remove = []
        self._drained_target = None
        await self._event("Normal", "ScaleInComplete", f"brokers {remove} removed (drained, unregistered; "
                          f"volume claims {claims}); {target} brokers remain")

    def _note_new_volumes(self, observed: ObservedCluster, spec: KafkaClusterSpec) -> None:
        """A role whose StatefulSet does not exist yet gets its claims at the spec's size: nothing to expand."""
        for role, sts, size in (("broker", observed.brokers, spec.brokers.storage.size),
                                ("controller", observed.controllers, spec.controllers.storage.size)):
            if sts is None or not sts.exists:
                self._volume_sizes[role] = size

    async def _expand_volumes(self, spec: KafkaClusterSpec) -> None:
        """A larger ``storage.size``: grow the PVCs, wait for the resize, and roll only the pods whose volume
        waits for a restart to finish it (FileSystemResizePending)."""
        roles: tuple[tuple[act.Role, str], ...] = (("broker", spec.brokers.storage.size),
                                                   ("controller", spec.controllers.storage.size))
        for role, size in roles:
            if not scaling.storage_grew(size, self._volume_sizes.get(role)):
                continue
            expanded: act.ExpandVolumesResult = await self._call(
                act.EXPAND_VOLUMES, act.ExpandVolumesInput(ref=self._ref, role=role, size=size), APPLY,
                f"expand {role} volumes to {size}", act.ExpandVolumesResult)
            resized: act.WaitVolumesResizedResult = await self._call(
                act.WAIT_VOLUMES_RESIZED, act.WaitVolumesResizedInput(ref=self._ref, role=role, size=size), WAIT,
                f"wait for {role} volumes to reach {size}", act.WaitVolumesResizedResult)
            restart = sorted(set(resized.restart_needed.values()))
            if restart:
                self._roll_requests.append(RollRequest(
                    reason=f"finish the file system resize of {len(restart)} {role} volumes to {size}",
                    brokers=restart))
            if expanded.expanded:
                await self._event("Normal", "VolumesExpanded", f"{len(expanded.expanded)} {role} volumes -> {size}"
                                  + (f"; restarting {restart} to finish the resize" if restart else ""))
            self._volume_sizes[role] = size

    async def _structural(self, observed: ObservedCluster, wanted: KafkaClusterSpec, spec: KafkaClusterSpec) -> None:
        """Start the next structural operation, one at a time: a scale-in drain, the rebalance after a
        scale-out, a requested one, or one for disk skew found by the periodic check."""
        running = self._rebalance
        # Every value counts, removal too: taking the annotation off and putting "approve" back approves the next
        # plan, while an "approve" left on the object never approves later plans by itself.
        token = observed.annotations.get(REBALANCE_ANNOTATION, "")
        new_token = token if token != self._last_rebalance_token else ""
        self._last_rebalance_token = token
        if running is not None:
            await self._steer_rebalance(running, wanted, approve=new_token == REBALANCE_APPROVE,
                                        scale_in=spec.brokers.replicas > wanted.brokers.replicas)
            if new_token and new_token != REBALANCE_APPROVE:
                self._queue_rebalance(PendingRebalance(purpose="requested",
                                                       reason=f"annotation {REBALANCE_ANNOTATION}={token}"))
            return
        if spec.brokers.replicas > wanted.brokers.replicas:
            hold = self._scale_in_hold
            if hold is None or hold.target != wanted.brokers.replicas or hold.generation != observed.generation:
                scale_in = scaling.ScaleIn(current=spec.brokers.replicas, target=wanted.brokers.replicas)
                self._scale_in_hold = None
                await self._start_rebalance("scale-in", f"scale-in from {scale_in.current} to {scale_in.target} "
                                            f"brokers: drain {scale_in.remove}", wanted, observed,
                                            remove=scale_in.remove, target=scale_in.target)
            return
        self._scale_in_hold = None
        if new_token and new_token != REBALANCE_APPROVE:
            self._queue_rebalance(PendingRebalance(purpose="requested",
                                                   reason=f"annotation {REBALANCE_ANNOTATION}={token}"))
        pending = self._pending_rebalance
        if pending is not None:
            self._pending_rebalance = None
            await self._start_rebalance(pending.purpose, pending.reason, wanted, observed,
                                        require=pending.require_brokers)
            return
        await self._check_skew(wanted, observed)

    def _queue_rebalance(self, request: PendingRebalance) -> None:
        """Queue a requested rebalance; a queued scale-out one already covers it (and names the new brokers)."""
        if self._pending_rebalance is None or self._pending_rebalance.purpose != "scale-out":
            self._pending_rebalance = request

    async def _steer_rebalance(self, running: RunningRebalance, wanted: KafkaClusterSpec, *, approve: bool,
                               scale_in: bool) -> None:
        """A running rebalance that no longer fits the spec is cancelled (a scale-in to another count; a plan
        waiting for approval when a scale-in is asked for); an approval annotation approves a waiting plan."""
        progress = running.progress
        awaiting = progress is not None and progress.state == "AwaitingApproval"
        if running.cancel_sent:
            return
        if running.purpose == "scale-in" and running.target != wanted.brokers.replicas:
            running.cancel_sent = True
            await self._signal_rebalance(REBALANCE_SIGNAL_CANCEL, CancelRequest(
                reason=f"spec.brokers.replicas is {wanted.brokers.replicas} now"))
        elif running.purpose != "scale-in" and awaiting and scale_in:
            running.cancel_sent = True
            await self._signal_rebalance(REBALANCE_SIGNAL_CANCEL, CancelRequest(
                reason=f"superseded by a scale-in to {wanted.brokers.replicas} brokers"))
        elif approve and awaiting:
            await self._signal_rebalance(REBALANCE_SIGNAL_APPROVE, ApproveRequest(
                workflow_id=running.workflow_id, reason=f"annotation {REBALANCE_ANNOTATION}={REBALANCE_APPROVE}"))

    async def _check_skew(self, wanted: KafkaClusterSpec, observed: ObservedCluster) -> None:
        """The durable periodic check: start a rebalance when disk usage drifted apart beyond the threshold."""
        if wanted.rebalance.mode == "off":
            self._next_skew_check, self._skew_check_due = "", False  # no timer while off
            return
        now = workflow.now()
        if self._next_skew_check and not self._skew_check_due:
            return
        self._next_skew_check = (now + wanted.rebalance.interval).isoformat()
        if not self._skew_check_due:
            return  # the first pass only schedules the check
        self._skew_check_due = False
        if self._roll is not None:
            return
        try:
            plan: act.PlanRebalanceResult = await self._call(
                act.PLAN_REBALANCE, act.PlanRebalanceInput(
                    ref=self._ref, tolerance_percent=wanted.rebalance.tolerance_percent,
                    capacity_threshold_percent=wanted.rebalance.capacity_threshold_percent,
                    max_moves_per_batch=wanted.rebalance.max_moves_per_batch, max_moves=1,
                    capacity_fallback_bytes=quantity_bytes(wanted.brokers.storage.size)),
                SKEW_CHECK, "check disk skew", act.PlanRebalanceResult)
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            workflow.logger.warning("disk skew check failed: %s", failure_message(err))
            return
        spread = plan.disk_before.max_deviation_percent
        if scaling.skewed(spread, wanted.rebalance.skew_threshold_percent) and plan.batches:
            await self._start_rebalance("skew", f"disk usage spread {spread:.1f}% exceeds "
                                        f"{wanted.rebalance.skew_threshold_percent}%", wanted, observed)

    async def _start_rebalance(self, purpose: RebalancePurpose, reason: str, wanted: KafkaClusterSpec,
                               observed: ObservedCluster, *, remove: list[int] | None = None,
                               require: list[int] | None = None, target: int | None = None) -> None:
        self._rebalance_count += 1
        rebalance_id = rebalance_workflow_id(self._ref.namespace, self._ref.name, self._rebalance_count)
        r = wanted.rebalance
        settings = RebalanceSettings(
            throttle_bytes_per_sec=r.throttle_bytes_per_sec, tolerance_percent=r.tolerance_percent,
            capacity_threshold_percent=r.capacity_threshold_percent, max_moves_per_batch=r.max_moves_per_batch,
            capacity_fallback_bytes=quantity_bytes(wanted.brokers.storage.size))
        # A scale-in is the user's explicit request and its drain is the only way to apply it: no approval step.
        approval = r.mode == "approval" and purpose != "scale-in"
        handle = await workflow.start_child_workflow(
            REBALANCE_WORKFLOW_NAME, RebalanceInput(
                ref=self._ref, purpose=purpose, reason=reason, remove=remove or [], require_brokers=require or [],
                require_approval=approval, settings=settings),
            id=rebalance_id, result_type=RebalanceResult, parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"{purpose} {self._ref.namespace}/{self._ref.name}: {reason}"[:200])
        state = RunningRebalance(workflow_id=rebalance_id, purpose=purpose, started_at=timestamp(), reason=reason,
                                  target=target, remove=remove or [], generation=observed.generation)
        self._rebalance = state
        self._rebalance_watch = asyncio.create_task(self._watch_rebalance(state, handle))
        self._rebalance_report_due = True
        await self._event("Normal", "RebalanceStarted", f"{rebalance_id} ({purpose}): {reason}"
                          + ("; the plan waits for approval" if approval else ""))
        self._show()

    async def _watch_rebalance(self, state: RunningRebalance,
                               handle: workflow.ChildWorkflowHandle[Any, RebalanceResult]) -> None:
        try:
            result = await handle
        except ChildWorkflowError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            result = RebalanceResult(workflow_id=state.workflow_id, outcome="Failed", purpose=state.purpose,
                                     message=f"the rebalance workflow ended abnormally: {message}")
        self._rebalance_finished(state, result)

    def _rebalance_finished(self, state: RunningRebalance, result: RebalanceResult) -> None:
        if self._rebalance is not state:
            return
        self._rebalance = None
        self._rebalance_done = result
        if state.purpose == "scale-in" and state.target is not None:
            if result.outcome == "Succeeded" and result.emptied:
                self._drained_target = state.target
                self._drained_remove = state.remove
            elif result.outcome != "Succeeded":
                self._scale_in_hold = ScaleInHold(target=state.target, generation=state.generation,
                                                  outcome=result.outcome, message=result.message)
        self._rebalance_report_due = True
        self._pass_due = True  # observe afresh: shrink after a drain, report Ready, or the next operation
        self._show()

    async def _signal_rebalance(self, name: str, arg: BaseModel) -> bool:
        return await self._signal_child(self._rebalance.workflow_id if self._rebalance else None, name, arg)

    async def _signal_child(self, workflow_id: str | None, name: str, arg: BaseModel) -> bool:
        """Signal the running roll or rebalance (``workflow_id``; None: none runs). False when it is not
        delivered: it ended meanwhile, and its result is on the way."""
        if workflow_id is None:
            return False
        try:
            await workflow.get_external_workflow_handle(workflow_id).signal(name, arg)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            workflow.logger.info("%s not delivered to %s: %s", name, workflow_id, err)
            return False
        return True

    @staticmethod
    def _rebalance_status(p: RebalanceProgress, workflow_id: str) -> dict[str, Any]:
        status: dict[str, Any] = {
            "state": p.state, "reason": p.reason[:512], "workflowId": workflow_id, "moves": p.moves,
            "batches": p.batches, "batchesDone": p.batches_done, "bytesToMove": p.bytes_to_move,
            "bytesMoved": p.bytes_moved, "lowerBoundBytes": p.lower_bound_bytes,
            "diskSpreadBefore": f"{p.disk_spread_before:.1f}%", "diskSpreadAfter": f"{p.disk_spread_after:.1f}%",
            "replicaSpreadBefore": f"{p.replica_spread_before:.1f}%",
            "replicaSpreadAfter": f"{p.replica_spread_after:.1f}%", "message": (p.waiting or p.message)[:1024]}
        if p.eta_seconds is not None:
            status["eta"] = format_duration(timedelta(seconds=p.eta_seconds))
        return status

    def _rebalance_operation(self, state: RunningRebalance) -> dict[str, Any]:
        p = state.progress
        operation = {"type": OPERATION_OF[state.purpose], "workflowId": state.workflow_id,
                     "startedAt": state.started_at}
        if p is None:
            return {**operation, "step": "planning", "progress": state.reason[:1024]}
        eta = f", ETA {format_duration(timedelta(seconds=p.eta_seconds))}" if p.eta_seconds is not None else ""
        step = {"AwaitingApproval": "waiting for approval", "Planning": "planning",
                "Paused": "paused"}.get(p.state, f"batch {min(p.batches_done + 1, p.batches)}/{p.batches}")
        return {**operation, "step": step,
                "progress": f"{format_bytes(p.bytes_moved)} of {format_bytes(p.bytes_to_move)} moved{eta}"[:1024]}

    def _rebalance_message(self, state: RunningRebalance) -> str:
        op = self._rebalance_operation(state)
        return f"{state.purpose} {state.workflow_id}: {op['step']}; {op.get('progress', '')}"

    async def _report_rebalance(self) -> None:
        """Write the running rebalance's progress, or its end, to status (between passes; best effort)."""
        self._rebalance_report_due = False
        done, state = self._rebalance_done, self._rebalance
        try:
            if done is not None:
                self._rebalance_done = None
                await self._report_rebalance_end(done)
            elif state is not None and state.progress is not None:
                update = act.StatusUpdate(ref=self._ref,
                                          rebalance=self._rebalance_status(state.progress, state.workflow_id))
                if self._roll is None:
                    if self._phase in (Phase.READY, Phase.RECONCILING):
                        self._set_phase(Phase.RECONCILING)
                    self._message = self._rebalance_message(state)
                    update.phase = self._phase.value
                    update.current_operation = self._rebalance_operation(state)
                    update.conditions = [Condition(ConditionType.RECONCILING, "True", OPERATION_OF[state.purpose],
                                                    self._message).update()]
                self._show()
                await self._write_status(update, summary="report rebalance progress")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            workflow.logger.warning("rebalance progress not reported: %s", failure_message(err))

    async def _report_rebalance_end(self, result: RebalanceResult) -> None:
        outcome = "Failed" if result.outcome == "Infeasible" else result.outcome
        type_ = OPERATION_OF[result.purpose]
        last = {"type": type_, "workflowId": result.workflow_id, "result": outcome,
                "message": result.message[:1024], "finishedAt": timestamp()}
        rebalance = dict(self._status_written.get("rebalance") or {})
        rebalance.update({"state": outcome, "workflowId": result.workflow_id, "message": result.message[:1024],
                          "bytesMoved": result.bytes_moved, "batchesDone": result.batches_done})
        rebalance.pop("eta", None)
        rebalance.setdefault("reason", "")
        self._message = f"{type_} {result.workflow_id} {result.outcome.lower()}: {result.message}"
        self._show()
        update = act.StatusUpdate(ref=self._ref, last_operation=last, rebalance=rebalance)
        if self._roll is None:
            update.current_operation = {}
            update.conditions = [Condition(ConditionType.RECONCILING, "False", f"{type_}{result.outcome}",
                                            result.message).update()]
        await self._write_status(update, summary=f"report {type_} {result.outcome}")

    async def _report_rebalancing(self, observed: ObservedCluster, spec: KafkaClusterSpec) -> None:
        """The pass is done while a rebalance runs: the cluster serves and is Reconciling."""
        state = self._rebalance
        assert state is not None
        self._set_phase(Phase.RECONCILING)
        self._step = ""
        self._message = self._rebalance_message(state)
        update = act.StatusUpdate(
            ref=self._ref, observed_generation=observed.generation, phase=Phase.RECONCILING.value,
            conditions=[c.update() for c in (
                Condition(ConditionType.RECONCILING, "True", OPERATION_OF[state.purpose], self._message),
                Condition(ConditionType.READY, "True", "Serving", "serving while replicas move"),
                Condition(ConditionType.DEGRADED, "False", "Healthy"),
                Condition(ConditionType.INVALID, "False", "SpecValid"))],
            brokers_desired=spec.brokers.replicas, controllers_desired=spec.controllers.replicas,
            current_operation=self._rebalance_operation(state),
            last_operation=self._last_operation("Succeeded", f"generation {observed.generation} applied")
            if self._operation else None)
        await self._write_status(update, summary="report the rebalance")
        self._operation = None

    async def _report_scale_in_held(self, observed: ObservedCluster, spec: KafkaClusterSpec,
                                    hold: ScaleInHold) -> None:
        """A scale-in that could not be applied: the cluster keeps its brokers and says why."""
        message = (f"spec.brokers.replicas={hold.target} not applied ({hold.outcome.lower()}): {hold.message}; "
                   f"still {spec.brokers.replicas} brokers. A new spec generation tries again.")
        conditions = [Condition(ConditionType.RECONCILING, "False", f"ScaleIn{hold.outcome}", message),
                      Condition(ConditionType.READY, "True", "Serving",
                                 f"serving with {spec.brokers.replicas} brokers")]
        if hold.outcome == "Infeasible":
            phase = Phase.INVALID
            conditions.append(Condition(ConditionType.INVALID, "True", "ScaleInRefused", message))
        elif hold.outcome == "Failed":
            phase = Phase.DEGRADED
            conditions.append(Condition(ConditionType.DEGRADED, "True", "ScaleInFailed", message))
        else:
            phase = Phase.READY
            conditions.append(Condition(ConditionType.DEGRADED, "False", "Healthy"))
        if hold.outcome != "Infeasible":
            conditions.append(Condition(ConditionType.INVALID, "False", "SpecValid"))
        was = self._phase
        self._set_phase(phase)
        self._step = ""
        self._message = message
        await self._write_status(act.StatusUpdate(
            ref=self._ref, observed_generation=observed.generation, phase=phase.value,
            conditions=[c.update() for c in conditions], brokers_desired=spec.brokers.replicas,
            controllers_desired=spec.controllers.replicas,
            current_operation={} if self._operation else None,
            last_operation=self._last_operation("Failed", message) if self._operation else None),
            summary="report the scale-in not applied")
        self._operation = None
        if was is not phase and hold.outcome == "Infeasible":
            await self._event("Warning", "ScaleInRefused", message)
