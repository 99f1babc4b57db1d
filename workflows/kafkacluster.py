"""``KafkaClusterWorkflow``: the durable reconcile loop of one KafkaCluster (id ``kafkacluster/<ns>/<name>``).

The runbook it follows, pass after pass:

1. **Wait for work**: a ``spec_changed`` signal for a generation not processed yet, ``observed_changed``
   signals (debounced: one pod restart touches several objects, one pass covers the burst), a retry after a
   failed pass, or a ``resume``. While paused, signals queue up but nothing runs -- not even deletion.
2. **Observe** the cluster (activity ``observe_cluster``).
3. **Gone** -> end. **Being deleted** -> clean up per ``deleteClaim``, remove the finalizer, end.
4. **Validate** the spec. Invalid -> ``Invalid`` condition naming the field and a Warning Event; nothing in
   the cluster changes; wait for the next generation.
5. **Plan** (pure, :mod:`ballast.planner`) and **act** step by step, with ``status.currentOperation`` showing
   ``step i/n``. A newer generation or a deletion interrupts the running step: activities are idempotent and
   the next pass re-plans from a fresh observation.
6. **Roll** when needed (issue 5): after the plan, dynamic broker settings that changed are applied live
   (``apply_dynamic_configs``), and pods not on their StatefulSet's update revision, a new
   ``kafka.ballast.dev/roll`` annotation token or a ``request_roll`` update start a ``RollWorkflow`` child
   (``roll/<ns>/<name>/<n>``, one at a time; a request while it runs extends it). The roll reports progress
   back (``roll_progress``), shown in ``currentOperation`` (type ``Roll``, step i/n, the pod in flight);
   ``pause``/``resume`` hold it at its next step boundary, ``cancel_operation`` stops it there. A roll that
   failed or was cancelled is not restarted on its own for the same revisions (a new spec or request does).
7. **Structural operations** (issue 6, :mod:`workflows.structural`): a smaller broker count is rendered only
   once a scale-in drained the brokers it removes (a ``RebalanceWorkflow`` child, verified through Kafka right
   before the shrink); a larger one is followed by a rebalance onto the new brokers (per ``rebalance.mode``);
   requested and disk-skew rebalances (durable timer); volume expansion rolls only the pods that need it.
8. **Report**: phase and conditions (Ready / Reconciling / Degraded / Invalid), ``observedGeneration``,
   replica counts, ``lastOperation``, Events.
9. **Continue-as-new** when Temporal suggests it (never while a roll or rebalance runs), carrying queued signals and state.

Nothing here does I/O: every side effect is an activity called by its contract name
(:mod:`activities.contracts`), so tests can run this workflow against fakes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, is_cancelled_exception
from temporalio.workflow import ParentClosePolicy

from workflows.cluster_support import (
    APPLY,
    EVENT,
    KAFKA,
    KUBE,
    WAIT,
    Condition,
    Options,
    failure_message,
    rejected,
    timestamp,
)
from workflows.structural import RunningRebalance, StructuralOperations

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities import contracts as act
    from ballast import observability, planner, roll
    from ballast.manifests.names import Role, config_map_name, node_ids
    from ballast.messages import (
        QUERY_PLAN,
        QUERY_REBALANCE,
        QUERY_STATUS,
        REBALANCE_ANNOTATION,
        REBALANCE_SIGNAL_APPROVE,
        REBALANCE_SIGNAL_CANCEL,
        REBALANCE_SIGNAL_PAUSE,
        REBALANCE_SIGNAL_RESUME,
        ROLL_ANNOTATION,
        ROLL_SIGNAL_CANCEL,
        ROLL_SIGNAL_EXTEND,
        ROLL_SIGNAL_PAUSE,
        ROLL_SIGNAL_RESUME,
        ROLL_WORKFLOW_NAME,
        SA_CLUSTER_NAME,
        SA_CLUSTER_NAMESPACE,
        SA_CLUSTER_PHASE,
        SIGNAL_OBSERVED_CHANGED,
        SIGNAL_REBALANCE_PROGRESS,
        SIGNAL_ROLL_PROGRESS,
        SIGNAL_SPEC_CHANGED,
        UPDATE_APPROVE_REBALANCE,
        UPDATE_CANCEL_OPERATION,
        UPDATE_PAUSE,
        UPDATE_REQUEST_REBALANCE,
        UPDATE_REQUEST_ROLL,
        UPDATE_RESUME,
        ApproveRequest,
        CancelRequest,
        KafkaClusterWorkflowInput,
        ObservedChanged,
        PauseRequest,
        PendingRebalance,
        RebalanceAccepted,
        RebalanceProgress,
        RebalanceRequest,
        RebalanceResult,
        ResumeRequest,
        RollExtend,
        RollHold,
        RollInput,
        RollProgress,
        RollRequest,
        RollRequestAccepted,
        RollResult,
        RollStep,
        ScaleInHold,
        SpecChanged,
        WorkflowStatusView,
        roll_workflow_id,
    )
    from ballast.observed import ObservedCluster, PodState
    from ballast.spec import KafkaClusterSpec
    from ballast.status import ConditionType, Phase
    from ballast.validation import FieldError, parse_spec

WORKFLOW_NAME = "KafkaClusterWorkflow"

# One pod restart touches the pod, its StatefulSet and Endpoints within a second or two: let the burst settle
# so one pass covers it. A spec change ends the wait early.
DEBOUNCE = timedelta(seconds=2)
# Observed changes are triggers, not data (the pass observes afresh); keep a few for the plan query and logs.
MAX_PENDING_OBSERVED = 20
# A failed pass is retried after 30 s, doubling up to 10 minutes while it keeps failing.
RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(minutes=10)
# After applying a StatefulSet, its status (updateRevision) is re-observed until the StatefulSet controller has
# caught up: this many times, waiting 1, 2, 4... seconds in between.
SETTLE_ATTEMPTS = 6
OPERATION_ROLL = "Roll"
# workflow.patched id of the roll integration (the re-observation after applying a StatefulSet).
ROLL_PATCH = "roll-after-apply"
# workflow.patched id of the structural operations (scale-in/out, rebalance, volume expansion, skew checks).
REBALANCE_PATCH = "rebalance"

SKEW_CHECK_SUMMARY = "check disk skew"

SA_NAME = SearchAttributeKey.for_keyword(SA_CLUSTER_NAME)
SA_NAMESPACE = SearchAttributeKey.for_keyword(SA_CLUSTER_NAMESPACE)
SA_PHASE = SearchAttributeKey.for_keyword(SA_CLUSTER_PHASE)


def kraft_cluster_id(raw: bytes) -> str:
    """A KRaft cluster id as ``kafka-storage.sh random-uuid`` prints it: 16 bytes, unpadded base64url."""
    return base64.urlsafe_b64encode(raw[:16]).decode().rstrip("=")


def new_kraft_cluster_id() -> str:
    """A fresh, replay-safe cluster id. Like Kafka's ``Uuid.randomUuid`` it never starts with ``-``: the
    image passes it on a command line (``kafka-storage format -t <id>``), where it would read as an option."""
    while True:
        cluster_id = kraft_cluster_id(workflow.uuid4().bytes)
        if not cluster_id.startswith("-"):
            return cluster_id


def _ready_pods(pods: list[PodState], expected_ids: list[int]) -> int:
    wanted = set(expected_ids)
    return sum(1 for p in pods if p.node_id in wanted and p.ready and not p.deleting)


def _merged(written: dict[str, Any], update: act.StatusUpdate) -> dict[str, Any]:
    """``written`` with ``update`` applied the way UPDATE_STATUS applies it: None keeps, conditions by type."""
    # ``outcome`` is what the write reports (a metric), not status: it never makes a write due on its own.
    fields = update.model_dump(exclude_none=True, exclude={"ref", "conditions", "outcome"})
    conditions = {**written.get("conditions", {}), **{c.type: c.model_dump() for c in update.conditions}}
    return {**written, **fields, "conditions": conditions}


@dataclass
class _RunningRoll:
    """The roll this workflow started (``handle``) or adopted (a roll started by hand that reports here)."""

    workflow_id: str
    handle: workflow.ChildWorkflowHandle[Any, RollResult] | None
    started_at: str
    revisions: str
    reason: str = ""
    # (node id, target) of every step sent to it: a revision-change step targets the update revision, a manual
    # one its request. A pass sends only what is new, so its many observations merge nothing twice.
    sent: set[tuple[int, str]] = field(default_factory=set)
    progress: RollProgress | None = None
    cancel: str = ""


def _revisions(observed: ObservedCluster) -> str:
    """The update revisions a roll brings the pods to: the key of a roll hold."""
    return "/".join(s.update_revision if s else "" for s in (observed.controllers, observed.brokers))


def _combined(requests: list[RollRequest]) -> RollRequest | None:
    """Several queued roll requests as one: every pod if any asks for all, else the union of the ids."""
    if not requests:
        return None
    reason = "; ".join(dict.fromkeys(r.reason or "requested" for r in requests))
    if any(r.brokers is None for r in requests):
        return RollRequest(reason=reason, brokers=None)
    ids = list(dict.fromkeys(n for r in requests for n in r.brokers or []))
    return RollRequest(reason=reason, brokers=ids)


def _without_health_waits(plan: planner.Plan) -> planner.Plan:
    """``plan`` minus its health waits, for a pass during a roll: a pod down for a restart is expected (the roll's
    own gates and waits cover it), and waiting for it here would only fail the pass. After the roll, a pass
    checks health again."""
    steps = tuple(s for s in plan.steps
                  if not isinstance(s, planner.WaitControllersReady | planner.WaitBrokersRegistered))
    if all(isinstance(s, planner.MarkReady) for s in steps):
        return planner.Plan()
    return planner.Plan(steps, plan.operation)


@workflow.defn(name=WORKFLOW_NAME)
class KafkaClusterWorkflow(StructuralOperations):
    """One per KafkaCluster, long-lived; see the module docstring for the runbook."""

    @workflow.init
    def __init__(self, input: KafkaClusterWorkflowInput) -> None:
        # @workflow.init: the signal that came with signal-with-start is handled against this state.
        self._ref = input.ref
        self._pending_spec: SpecChanged | None = input.pending_spec
        self._pending_observed: list[ObservedChanged] = list(input.pending_observed)
        self._processed_generation = input.processed_generation
        self._paused = input.paused
        self._pause_reason = input.pause_reason
        self._uid = input.uid
        self._phase = Phase(input.phase) if input.phase else Phase.PENDING
        self._failures = input.consecutive_failures
        self._max_passes = input.max_passes_before_continue_as_new
        # A fresh start reconciles once even without a signal (started by hand, or a lost signal); a
        # continued run has its due work in the carried input.
        self._pass_due = workflow.info().continued_run_id is None
        # The trace context of an annotation change that made a pass due (it queues no generation).
        self._due_trace_context: dict[str, str] = {}
        self._passes = 0
        self._finished = False
        self._plan = planner.Plan()
        self._plan_done = 0
        self._step = ""
        self._message = ""
        self._invalid: tuple[int, str] | None = None
        self._operation: dict[str, Any] | None = None
        self._cluster_id: str | None = None
        self._generated_cluster_id: str | None = None
        self._counts: dict[str, int] = {}
        # The status as this run last wrote it (see _write_status); empty after a start or continue-as-new.
        self._status_written: dict[str, Any] = {}
        # Rolling restarts.
        self._last_roll_token = input.last_roll_token
        self._roll_count = input.roll_count
        self._roll_requests: list[RollRequest] = list(input.pending_roll_requests)
        self._applied_spec: dict[str, Any] | None = input.applied_spec
        self._roll_hold: RollHold | None = input.roll_hold
        self._roll: _RunningRoll | None = None
        self._roll_done: RollResult | None = None  # finished, not reported yet
        self._roll_report_due = False
        self._roll_watch: asyncio.Task[None] | None = None
        self._applied_updates: list[str] = []  # "Kind/name" this pass' applies updated
        # Rebalancing, scale-in and volume expansion.
        self._rebalance_count = input.rebalance_count
        self._last_rebalance_token = input.last_rebalance_token
        self._pending_rebalance: PendingRebalance | None = input.pending_rebalance
        self._drained_target = input.drained_target
        self._drained_remove: list[int] = list(input.drained_remove)
        self._scale_in_hold: ScaleInHold | None = input.scale_in_hold
        self._volume_sizes: dict[str, str] = dict(input.volume_sizes)
        self._next_skew_check = input.next_skew_check
        self._skew_check_due = False
        self._rebalance: RunningRebalance | None = None
        self._rebalance_done: RebalanceResult | None = None
        self._rebalance_report_due = False
        self._rebalance_watch: asyncio.Task[None] | None = None
        self._apply_raw: dict[str, Any] | None = None  # the spec manifests are rendered from this pass

    # --- run -------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: KafkaClusterWorkflowInput) -> str:
        self._upsert_search_attributes()
        self._show()
        while True:
            await self._wait_for_work()
            if self._continue_as_new_due():
                # Checked before acting: a steady stream of signals must not grow the history forever.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carry_over())
            # The pass runs in the trace of the watcher event that asked for it, so its activities join that
            # event's trace (a signal to a running workflow only gets a link to it otherwise). Context only:
            # no command changes, and replays behave the same.
            with observability.attached_trace_context(self._trigger_trace_context()):
                result = await self._reconcile_pass()
            if result is not None:
                self._finished = True
                self._show()
                await workflow.wait_condition(workflow.all_handlers_finished)
                return result

    def _trigger_trace_context(self) -> dict[str, str]:
        """The W3C trace context of the signal the next pass answers: the queued spec change's, else the newest
        traced drift notice's; empty (the workflow's own trace) for a retry, a resume or a timer."""
        if self._pending_spec is not None and self._pending_spec.trace_context:
            return self._pending_spec.trace_context
        for change in reversed(self._pending_observed):
            if change.trace_context:
                return change.trace_context
        return self._due_trace_context

    async def _wait_for_work(self) -> None:
        """Return when a pass should run, or continue-as-new is due. Roll progress is reported meanwhile."""
        while True:
            if self._roll_report_due:
                await self._report_roll()
                continue
            if self._rebalance_report_due:
                await self._report_rebalance()
                continue
            timeout, summary = self._wake_up()
            try:
                await workflow.wait_condition(
                    lambda: (self._work_ready() or self._continue_as_new_due() or self._roll_report_due
                             or self._rebalance_report_due),
                    timeout=timeout, timeout_summary=summary)
            except TimeoutError:
                if summary == SKEW_CHECK_SUMMARY:
                    self._skew_check_due = True
                self._pass_due = True
                continue
            if self._roll_report_due or self._rebalance_report_due:
                continue
            if self._continue_as_new_due():
                return
            if self._pending_spec is None and not self._pass_due:
                await self._debounce()
                if not self._work_ready():  # paused meanwhile
                    continue
            return

    async def _debounce(self) -> None:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._pending_spec is not None or self._paused,
                                          timeout=DEBOUNCE, timeout_summary="debounce observed changes")

    def _work_ready(self) -> bool:
        return not self._paused and (self._pending_spec is not None or bool(self._pending_observed)
                                     or self._pass_due)

    def _wake_up(self) -> tuple[timedelta | None, str]:
        """The timer of the wait for work: a failed pass' retry, or the next disk skew check (durable)."""
        retry = self._retry_delay()
        skew = self._until_skew_check()
        if skew is not None and (retry is None or skew < retry):
            return skew, SKEW_CHECK_SUMMARY
        return retry, "retry the failed pass"

    def _until_skew_check(self) -> timedelta | None:
        if not self._next_skew_check or self._paused or self._skew_check_due:
            return None
        due = datetime.fromisoformat(self._next_skew_check)
        return max(due - workflow.now(), timedelta(seconds=1))

    def _retry_delay(self) -> timedelta | None:
        """Back-off before retrying a failed pass; None (no timer) when nothing failed or a pass is due."""
        if self._failures == 0 or self._pass_due or self._paused:
            return None
        delay: timedelta = RETRY_FIRST * (2 ** min(self._failures - 1, 10))
        return min(delay, RETRY_MAX)

    def _continue_as_new_due(self) -> bool:
        if self._roll is not None or self._roll_done is not None or self._roll_report_due:
            return False  # the roll reports to this run and is awaited by it: continue after it ended
        if self._rebalance is not None or self._rebalance_done is not None or self._rebalance_report_due:
            return False
        if self._max_passes is not None and self._passes >= self._max_passes:
            return True
        return workflow.info().is_continue_as_new_suggested()

    def _carry_over(self) -> KafkaClusterWorkflowInput:
        observed = list(self._pending_observed)
        if self._pass_due and not observed and self._pending_spec is None:
            # A due pass (a resume, an elapsed retry) has no field of its own: carry it as a trigger.
            observed.append(ObservedChanged(kind="Workflow", name=workflow.info().workflow_id,
                                            reason="a pass was due at continue-as-new"))
        return KafkaClusterWorkflowInput(
            namespace=self._ref.namespace, name=self._ref.name, pending_spec=self._pending_spec,
            pending_observed=observed, processed_generation=self._processed_generation, paused=self._paused,
            pause_reason=self._pause_reason, uid=self._uid, phase=self._phase.value,
            consecutive_failures=self._failures, max_passes_before_continue_as_new=self._max_passes,
            last_roll_token=self._last_roll_token, roll_count=self._roll_count,
            pending_roll_requests=self._roll_requests, applied_spec=self._applied_spec, roll_hold=self._roll_hold,
            rebalance_count=self._rebalance_count, last_rebalance_token=self._last_rebalance_token,
            pending_rebalance=self._pending_rebalance, drained_target=self._drained_target,
            drained_remove=self._drained_remove, scale_in_hold=self._scale_in_hold,
            volume_sizes=self._volume_sizes, next_skew_check=self._next_skew_check)

    # --- one pass --------------------------------------------------------------------------------------

    async def _reconcile_pass(self) -> str | None:
        """Observe, then delete / report invalid / plan and act. Returns a result when the workflow ends."""
        self._passes += 1
        self._pending_spec = None  # anything arriving from now on is newer than this pass' observation
        self._pending_observed = []
        self._pass_due = False
        self._due_trace_context = {}
        self._show()
        try:
            observed = await self._observe()
            if not observed.found:
                return self._gone()
            if observed.deleting:
                return await self._delete(observed)
            await self._reconcile(observed)
            return None
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            return await self._after_failure(err)

    async def _observe(self) -> ObservedCluster:
        observed: ObservedCluster = await self._call(
            act.OBSERVE_CLUSTER, self._ref, KUBE, "observe the cluster", ObservedCluster)
        if self._uid and observed.found and observed.uid != self._uid:
            # Deleted and created again under the same name: its generations start over at 1.
            workflow.logger.info("KafkaCluster %s re-created (uid %s -> %s)", self._ref.name, self._uid,
                                 observed.uid)
            self._processed_generation = 0
            self._invalid = None
            self._generated_cluster_id = None
            self._status_written = {}
        if observed.found:
            self._uid = observed.uid
        self._cluster_id = observed.cluster_id
        return observed

    async def _reconcile(self, observed: ObservedCluster) -> None:
        spec, errors = parse_spec(observed.spec)
        if spec is None or errors:
            await self._report_invalid(observed, errors)
            return
        self._invalid = None
        wanted = spec
        self._apply_raw = observed.spec
        structural = workflow.patched(REBALANCE_PATCH)
        if structural:
            spec = await self._effective_spec(observed, wanted)
            self._note_new_volumes(observed, spec)
        plan = planner.plan_reconcile(observed, spec)
        if self._roll is not None:
            # Pods down for the roll are the roll's business (its gates and waits): no health waits here.
            plan = _without_health_waits(plan)
        self._start_plan(plan)
        if plan and not await self._act_interruptibly(plan, observed, spec):
            return
        if self._plan_done < len(plan):  # paused between steps
            return
        if structural:
            await self._finish_scale_in(spec)
            await self._expand_volumes(spec)
        observed, held = await self._after_plan(observed, spec, plan)
        if structural:
            await self._structural(observed, wanted, spec)
        self._mark_processed(observed.generation)
        self._failures = 0
        hold = self._scale_in_hold
        if self._roll is not None:
            await self._report_rolling(observed, spec)
        elif held is not None:
            await self._report_held(observed, spec, held)
        elif hold is not None and hold.generation == observed.generation and self._rebalance is None:
            await self._report_scale_in_held(observed, spec, hold)
        elif self._rebalance is not None:
            await self._report_rebalancing(observed, spec)
        else:
            await self._report_ready(observed, spec, plan)

    async def _act_interruptibly(self, plan: planner.Plan, observed: ObservedCluster,
                                 spec: KafkaClusterSpec) -> bool:
        """Run the plan; a newer generation or a deletion cancels it. False when interrupted."""
        acting = asyncio.create_task(self._act(plan, observed, spec))
        await workflow.wait_condition(lambda: acting.done() or self._interrupting(observed.generation))
        if acting.done():
            acting.result()  # re-raise an activity failure
            return True
        acting.cancel()
        try:
            await acting
        except (asyncio.CancelledError, ActivityError) as err:
            if not is_cancelled_exception(err):
                raise
        why = self._interrupt_reason()
        workflow.logger.info("%s interrupted at %s: %s", plan.operation, self._step, why)
        await self._finish_operation("Cancelled", why)
        return False

    def _mark_processed(self, generation: int) -> None:
        """``generation`` is done. A spec signal queued meanwhile for it or an older one (the watcher's
        signal racing our observation) carries no news: drop it instead of running an empty pass."""
        self._processed_generation = max(self._processed_generation, generation)
        pending = self._pending_spec
        if pending is not None and not pending.deleting and pending.generation <= self._processed_generation:
            self._pending_spec = None

    def _interrupting(self, generation: int) -> bool:
        pending = self._pending_spec
        return pending is not None and (pending.deleting or pending.generation > generation)

    def _interrupt_reason(self) -> str:
        pending = self._pending_spec
        if pending is not None and pending.deleting:
            return "the KafkaCluster is being deleted"
        return f"superseded by generation {pending.generation if pending else '?'}"

    async def _act(self, plan: planner.Plan, observed: ObservedCluster, spec: KafkaClusterSpec) -> None:
        """Each step in order; stops (leaving the rest for after ``resume``) when paused between steps."""
        await self._begin_operation(plan, spec)
        for index, step in enumerate(plan.steps, start=1):
            if self._paused:
                self._step = f"paused before {index}/{len(plan)}"
                self._show()
                return
            self._step = f"{index}/{len(plan)} {step.describe()}"
            self._show()
            if not isinstance(step, planner.MarkReady):
                await self._report_progress(plan, spec)
            await self._do(step, observed, spec)
            self._plan_done = index

    async def _do(self, step: planner.Step, observed: ObservedCluster, spec: KafkaClusterSpec) -> None:
        match step:
            case planner.EnsureFinalizer():
                await self._call(act.ENSURE_FINALIZER, self._ref, KUBE, "add the cleanup finalizer")
            case planner.EnsureClusterId(adopt=adopt):
                await self._ensure_cluster_id(adopt)
            case planner.Apply(components=components):
                await self._apply(list(components), observed)
            case planner.WaitControllersReady(expected=expected):
                result = await self._wait(act.WAIT_CONTROLLERS_READY, expected, observed,
                                          f"wait for {expected} controllers and a quorum leader")
                self._counts["controllers"] = result.ready
                await self._event("Normal", "ControllersReady", f"KRaft quorum ready: {result.detail}")
            case planner.WaitBrokersRegistered(expected=expected):
                result = await self._wait(act.WAIT_BROKERS_REGISTERED, expected, observed,
                                          f"wait for {expected} brokers to register")
                self._counts["brokers"] = result.ready
                await self._event("Normal", "BrokersRegistered", f"brokers registered: {result.detail}")
            case planner.MarkReady():
                pass  # _reconcile reports Ready once every step is done
            case planner.Cleanup() | planner.RemoveFinalizer():
                raise AssertionError(f"{type(step).__name__} belongs to a deletion plan")

    async def _ensure_cluster_id(self, adopt: str | None) -> None:
        """Fix the KRaft cluster id in status before any manifest uses it: ``workflow.uuid4`` is replay-safe,
        and the id generated once is reused by every retry of this workflow run."""
        if adopt is None and self._generated_cluster_id is None:
            self._generated_cluster_id = new_kraft_cluster_id()
        cluster_id = adopt or self._generated_cluster_id
        assert cluster_id is not None
        await self._write_status(act.StatusUpdate(ref=self._ref, cluster_id=cluster_id),
                                 summary=f"persist cluster id {cluster_id}")
        self._cluster_id = cluster_id

    async def _apply(self, components: list[act.Component], observed: ObservedCluster) -> None:
        if self._cluster_id is None:
            raise AssertionError("the plan applies manifests before the cluster id is fixed")
        result: act.ApplyManifestsResult = await self._call(act.APPLY_MANIFESTS, act.ApplyManifestsInput(
            ref=self._ref, uid=observed.uid, spec=self._apply_raw if self._apply_raw is not None else observed.spec,
            cluster_id=self._cluster_id,
            components=components), APPLY, f"apply {' and '.join(components)} manifests",
            act.ApplyManifestsResult)
        self._applied_updates += result.updated

    async def _wait(self, activity: str, expected: int, observed: ObservedCluster, summary: str) -> act.WaitResult:
        result: act.WaitResult = await self._call(
            activity, act.WaitInput(ref=self._ref, spec=observed.spec, expected=expected), WAIT, summary,
            act.WaitResult)
        return result

    # --- rolling restarts ------------------------------------------------------------------------------

    async def _after_plan(self, observed: ObservedCluster, spec: KafkaClusterSpec,
                          plan: planner.Plan) -> tuple[ObservedCluster, tuple[int, RollHold] | None]:
        """After the plan: apply changed dynamic broker settings, then start or extend a roll if pods need one.
        Returns the observation the roll was planned from, and (pods waiting, hold) when a hold keeps a needed
        roll from starting."""
        updated = set(self._applied_updates)
        fresh = observed
        if any(u.startswith("StatefulSet/") for u in updated) and workflow.patched(ROLL_PATCH):
            # A template change shows as a new updateRevision in the StatefulSet's status: observe it.
            fresh = await self._observe_settled()
        removed: list[str] = []
        if f"ConfigMap/{config_map_name(self._ref.name, Role.BROKER)}" in updated:
            removed = await self._apply_dynamic(spec)
        self._applied_spec = observed.spec
        return fresh, await self._maybe_roll(fresh, spec, plan, removed)

    async def _observe_settled(self) -> ObservedCluster:
        """Observe until the StatefulSet controller has processed the applied generations (bounded)."""
        delay = timedelta(seconds=1)
        fresh = await self._observe()
        for _ in range(SETTLE_ATTEMPTS):
            if all(s is None or not s.exists or s.observed_generation >= s.generation
                   for s in (fresh.controllers, fresh.brokers)):
                break
            await workflow.sleep(delay, summary="let the StatefulSet controller record the new revision")
            delay *= 2
            fresh = await self._observe()
        return fresh

    async def _apply_dynamic(self, spec: KafkaClusterSpec) -> list[str]:
        """Apply the broker settings Kafka takes live (``ballast.roll.classify_change`` against the spec applied
        before); returns the dynamic settings that were removed (those need a restart as well)."""
        old: KafkaClusterSpec | None = None
        if self._applied_spec is not None:
            old, errors = parse_spec(self._applied_spec)
            old = old if not errors else None
        change = roll.classify_change(old, spec)
        if not change.dynamic:
            return []
        cluster_wide, per_broker = roll.split_dynamic(change.dynamic, spec.version)
        await self._call(act.APPLY_DYNAMIC_CONFIGS, act.DynamicConfigsInput(
            ref=self._ref, cluster_wide=cluster_wide, per_broker=per_broker,
            brokers=node_ids(Role.BROKER, spec.brokers.replicas) if per_broker else []),
            KAFKA, f"apply {len(change.dynamic)} dynamic broker settings", act.DynamicConfigsResult)
        shown = ", ".join(f"{k}={v}" if v is not None else f"{k} (removed)" for k, v in change.dynamic.items())
        await self._event("Normal", "ConfigApplied", f"applied without a restart: {shown}")
        return [k for k, v in change.dynamic.items() if v is None]

    async def _maybe_roll(self, observed: ObservedCluster, spec: KafkaClusterSpec, plan: planner.Plan,
                          removed: list[str]) -> tuple[int, RollHold] | None:
        """Start a roll (or extend the running one) for the pods on an old revision, a new roll annotation token,
        removed dynamic settings and queued ``request_roll`` updates."""
        requests = list(self._roll_requests)
        token = observed.annotations.get(ROLL_ANNOTATION, "")
        if token and token != self._last_roll_token and plan.operation != planner.OPERATION_PROVISIONING:
            requests.append(RollRequest(reason=f"annotation {ROLL_ANNOTATION}={token}"))
        if removed:
            requests.append(RollRequest(
                reason=f"removed broker settings ({', '.join(removed)}) stay in effect until a restart",
                brokers=node_ids(Role.BROKER, spec.brokers.replicas)))
        request = _combined(requests)
        wanted = roll.plan_roll(observed, request, rack_aware=spec.roll_policy.rack_aware)
        revisions = _revisions(observed)
        held: tuple[int, RollHold] | None = None
        if self._roll is not None:
            if not await self._extend_roll(self._roll, wanted, request, observed):
                return None  # the roll just ended: the requests stay queued for the next pass
        elif not wanted:
            self._roll_hold = None  # nothing to roll: whatever held a roll back is moot
        elif request is None and self._roll_hold is not None and self._roll_hold.revisions == revisions:
            held = (len(wanted), self._roll_hold)
        elif wanted.blocked:
            self._roll_hold = RollHold(revisions=revisions, outcome="Failed", message=wanted.blocked)
            await self._event("Warning", "RollBlocked", wanted.blocked)
            held = (len(wanted), self._roll_hold)
        else:
            await self._start_roll(wanted, request, spec, observed)
        self._roll_requests = []
        if token:
            self._last_roll_token = token
        return held

    @staticmethod
    def _step_key(step: RollStep, observed: ObservedCluster) -> tuple[int, str]:
        """What a step restarts a pod for: its update revision, or a request (every request is new)."""
        sts = observed.controllers if step.role == Role.CONTROLLER.value else observed.brokers
        return step.node_id, (sts.update_revision if sts else "") if step.if_outdated else "requested"

    async def _start_roll(self, wanted: roll.RollPlan, request: RollRequest | None, spec: KafkaClusterSpec,
                          observed: ObservedCluster) -> None:
        self._roll_count += 1
        roll_id = roll_workflow_id(self._ref.namespace, self._ref.name, self._roll_count)
        reasons = ([request.reason] if request is not None else []) + (
            ["the pod template changed"] if any(s.if_outdated for s in wanted.steps) else [])
        reason = "; ".join(reasons) or "requested"
        racks = {p.node_id: p.rack for p in observed.broker_pods if p.rack}
        handle = await workflow.start_child_workflow(
            ROLL_WORKFLOW_NAME, RollInput(ref=self._ref, steps=list(wanted.steps), policy=spec.roll_policy,
                                          reason=reason, racks=racks),
            id=roll_id, result_type=RollResult, parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"roll {self._ref.namespace}/{self._ref.name}: {reason}"[:200])
        state = _RunningRoll(workflow_id=roll_id, handle=handle, started_at=timestamp(),
                             revisions=_revisions(observed), reason=reason,
                             sent={self._step_key(s, observed) for s in wanted.steps})
        self._roll = state
        self._roll_hold = None
        self._roll_watch = asyncio.create_task(self._watch_roll(state, handle))
        self._roll_report_due = True
        self._show()

    async def _extend_roll(self, state: _RunningRoll, wanted: roll.RollPlan, request: RollRequest | None,
                           observed: ObservedCluster) -> bool:
        """Merge what is new in ``wanted`` into the running roll; False when it could not be told (it ended)."""
        sent = state.sent
        new = [s for s in wanted.steps if not s.if_outdated or self._step_key(s, observed) not in sent]
        if not new:
            return True
        reason = request.reason if request is not None else "a newer pod template"
        if not await self._signal_roll(ROLL_SIGNAL_EXTEND, RollExtend(steps=new, reason=reason)):
            return False
        state.sent = sent | {self._step_key(s, observed) for s in new}
        state.revisions = _revisions(observed)
        await self._event("Normal", "RollExtended", f"{state.workflow_id}: + "
                          + ", ".join(s.describe() for s in new) + f" ({reason})")
        return True

    async def _watch_roll(self, state: _RunningRoll, handle: workflow.ChildWorkflowHandle[Any, RollResult]) -> None:
        try:
            result = await handle
        except ChildWorkflowError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            result = RollResult(workflow_id=state.workflow_id, outcome="Failed",
                                message=f"the roll workflow ended abnormally: {message}")
        self._roll_finished(result)

    def _roll_finished(self, result: RollResult) -> None:
        state = self._roll
        if state is None or state.workflow_id != result.workflow_id:
            return
        self._roll = None
        self._roll_done = result
        if result.outcome == "Succeeded" and result.remaining:
            # Merged into it as it was ending: they run in the next roll.
            self._roll_requests.append(RollRequest(reason=f"merged into {result.workflow_id} as it ended",
                                                   brokers=result.remaining))
        if result.outcome != "Succeeded" and state.revisions:
            # Not again on its own for the same revisions: a new spec or request_roll starts the next one.
            self._roll_hold = RollHold(revisions=state.revisions, outcome=result.outcome, message=result.message)
        self._roll_report_due = True
        self._pass_due = True  # observe afresh: Ready, or the next roll
        self._show()

    async def _signal_roll(self, name: str, arg: BaseModel) -> bool:
        return await self._signal_child(self._roll.workflow_id if self._roll else None, name, arg)

    def _roll_operation(self, state: _RunningRoll) -> dict[str, Any]:
        """``currentOperation`` for the roll: step i/n and the pod(s) in flight, progress, why it waits."""
        p = state.progress
        if p is None:
            return {"type": OPERATION_ROLL, "workflowId": state.workflow_id, "step": "starting",
                    "progress": state.reason[:256], "startedAt": state.started_at}
        progress = f"{p.done}/{p.total} pods done" + (" (paused)" if p.paused else "")
        if p.waiting:
            progress += f"; waiting: {p.waiting}"
        return {"type": OPERATION_ROLL, "workflowId": state.workflow_id,
                "step": (f"{p.step} in flight" if p.in_flight else p.step or "finishing")[:256],
                "progress": progress[:1024], "startedAt": state.started_at}

    def _roll_message(self, state: _RunningRoll) -> str:
        p = state.progress
        if p is None:
            return f"roll {state.workflow_id} starting: {state.reason}"
        now = p.waiting or (f"restarting {p.step}" if p.in_flight else f"next: {p.step}")
        return f"roll {state.workflow_id}: {p.done}/{p.total} pods done; {now}"

    async def _report_roll(self) -> None:
        """Write the running roll's progress, or its end, to status (between passes; best effort)."""
        self._roll_report_due = False
        done, state = self._roll_done, self._roll
        try:
            if done is not None:
                self._roll_done = None
                await self._report_roll_end(done)
            elif state is not None:
                if self._phase in (Phase.READY, Phase.RECONCILING, Phase.DEGRADED):
                    self._set_phase(Phase.RECONCILING)
                self._message = self._roll_message(state)
                self._show()
                await self._write_status(act.StatusUpdate(
                    ref=self._ref, phase=self._phase.value,
                    conditions=[Condition(ConditionType.RECONCILING, "True", "Rolling", self._message).update()],
                    current_operation=self._roll_operation(state)), summary="report roll progress")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            workflow.logger.warning("roll progress not reported: %s", failure_message(err))

    async def _report_roll_end(self, result: RollResult) -> None:
        last = {"type": OPERATION_ROLL, "workflowId": result.workflow_id, "result": result.outcome,
                "message": result.message[:1024], "finishedAt": timestamp()}
        conditions: list[Condition]
        if result.outcome == "Failed":
            self._set_phase(Phase.DEGRADED)
            conditions = [Condition(ConditionType.DEGRADED, "True", "RollFailed", result.message),
                          Condition(ConditionType.RECONCILING, "False", "RollFailed", result.message)]
        elif result.outcome == "Cancelled":
            conditions = [Condition(ConditionType.RECONCILING, "False", "RollCancelled", result.message)]
        else:
            conditions = [Condition(ConditionType.RECONCILING, "False", "RollComplete", result.message)]
        self._message = f"roll {result.workflow_id} {result.outcome.lower()}: {result.message}"
        self._show()
        await self._write_status(act.StatusUpdate(
            ref=self._ref, phase=self._phase.value, conditions=[c.update() for c in conditions],
            current_operation={}, last_operation=last), summary=f"report roll {result.outcome}")

    async def _report_rolling(self, observed: ObservedCluster, spec: KafkaClusterSpec) -> None:
        """The pass is done while a roll runs: the cluster serves (the gates see to it) and is Reconciling."""
        assert self._roll is not None
        self._set_phase(Phase.RECONCILING)
        self._step = ""
        self._message = self._roll_message(self._roll)
        update = act.StatusUpdate(
            ref=self._ref, observed_generation=observed.generation, phase=Phase.RECONCILING.value,
            conditions=[c.update() for c in (
                Condition(ConditionType.RECONCILING, "True", "Rolling", self._message),
                Condition(ConditionType.READY, "True", "Rolling",
                           "serving while pods restart behind the can-roll gates"),
                Condition(ConditionType.DEGRADED, "False", "Healthy"),
                Condition(ConditionType.INVALID, "False", "SpecValid"))],
            brokers_desired=spec.brokers.replicas, controllers_desired=spec.controllers.replicas,
            current_operation=self._roll_operation(self._roll),
            last_operation=self._last_operation("Succeeded", f"generation {observed.generation} applied")
            if self._operation else None, outcome="rolling")
        await self._write_status(update, summary="report the roll")
        self._operation = None

    async def _report_held(self, observed: ObservedCluster, spec: KafkaClusterSpec,
                           held: tuple[int, RollHold]) -> None:
        """Pods still need a restart but the last roll for these revisions failed or was cancelled."""
        pending, hold = held
        message = (f"{pending} pods not restarted: the roll {'stopped' if hold.outcome == 'Failed' else 'was cancelled'}"
                   f" ({hold.message}); a new spec or request_roll starts another")
        failed = hold.outcome == "Failed"
        self._set_phase(Phase.DEGRADED if failed else Phase.READY)
        self._step = ""
        self._message = message
        reason = "RollFailed" if failed else "RollCancelled"
        update = act.StatusUpdate(
            ref=self._ref, observed_generation=observed.generation, phase=self._phase.value,
            conditions=[c.update() for c in (
                Condition(ConditionType.DEGRADED, "True" if failed else "False", reason if failed else "Healthy",
                           message if failed else ""),
                Condition(ConditionType.RECONCILING, "False", reason, message),
                Condition(ConditionType.INVALID, "False", "SpecValid"))],
            brokers_desired=spec.brokers.replicas, controllers_desired=spec.controllers.replicas,
            current_operation={} if self._operation else None,
            last_operation=self._last_operation("Succeeded", f"generation {observed.generation} applied")
            if self._operation else None, outcome="held")
        await self._write_status(update, summary="report the held roll")
        self._operation = None

    # --- deletion --------------------------------------------------------------------------------------

    async def _delete(self, observed: ObservedCluster) -> str:
        """Cleanup per deleteClaim, then release the finalizer; the API server then deletes the object."""
        plan = planner.plan_deletion(observed)
        self._start_plan(plan)
        if self._roll is not None:
            # Not worth finishing: the cluster goes. The roll still lets its restart in flight end first.
            await self._signal_roll(ROLL_SIGNAL_CANCEL, CancelRequest(reason="the KafkaCluster is being deleted"))
        self._set_phase(Phase.DELETING)
        self._operation = {"type": plan.operation, "workflowId": workflow.info().workflow_id,
                           "startedAt": timestamp()}
        # Tell kubectl users what holds the deletion; best effort, the object may vanish any moment.
        try:
            await self._write_status(act.StatusUpdate(ref=self._ref, phase=Phase.DELETING.value,
                                                      current_operation=self._operation),
                                     summary="report Deleting")
        except ActivityError as err:
            workflow.logger.warning("could not report Deleting: %s", failure_message(err))
        await self._event("Normal", "Deleting", "; ".join(planner.describe_plan(plan)) or "nothing to clean up")
        for index, step in enumerate(plan.steps, start=1):
            self._step = f"{index}/{len(plan)} {step.describe()}"
            self._show()
            match step:
                case planner.Cleanup(delete_broker_claims=brokers, delete_controller_claims=controllers):
                    await self._call(act.CLEANUP_CLUSTER, act.CleanupInput(
                        ref=self._ref, delete_claims=brokers and controllers, delete_broker_claims=brokers,
                        delete_controller_claims=controllers), KUBE, step.describe())
                case planner.RemoveFinalizer():
                    await self._call(act.REMOVE_FINALIZER, self._ref, KUBE, "remove the cleanup finalizer")
            self._plan_done = index
        return f"deleted: {observed.namespace}/{observed.name} (generation {observed.generation})"

    def _gone(self) -> str:
        self._set_phase(Phase.DELETING)
        self._step = ""
        self._message = "the KafkaCluster no longer exists"
        return f"gone: {self._ref.namespace}/{self._ref.name} no longer exists"

    # --- failures --------------------------------------------------------------------------------------

    async def _after_failure(self, err: ActivityError) -> str | None:
        """A step failed after its retries. Often the cluster was deleted under us: look before reporting."""
        self._failures += 1
        self._roll_report_due = self._roll_report_due or self._roll is not None
        message = failure_message(err)
        workflow.logger.warning("pass failed at %s: %s", self._step or "observe", message)
        try:
            observed = await self._observe()
        except ActivityError:
            observed = None
        if observed is not None and not observed.found:
            return self._gone()
        generation = observed.generation if observed else None
        if generation is not None:
            self._mark_processed(generation)
        where = f"{self._step}: " if self._step else ""
        if rejected(err):
            phase, conditions = Phase.INVALID, [
                Condition(ConditionType.INVALID, "True", "Rejected", f"{where}{message}"),
                Condition(ConditionType.READY, "False", "Rejected", f"{where}{message}")]
        else:
            phase, conditions = Phase.DEGRADED, [
                Condition(ConditionType.DEGRADED, "True", "StepFailed", f"{where}{message}"),
                Condition(ConditionType.READY, "False", "StepFailed", f"{where}{message}")]
        retry = self._retry_delay()
        conditions.append(Condition(ConditionType.RECONCILING, "True", "RetryScheduled",
                                     f"retry in {int(retry.total_seconds()) if retry else 0}s"))
        self._set_phase(phase)
        self._message = f"{where}{message}"
        self._step = ""
        try:
            await self._write_status(act.StatusUpdate(
                ref=self._ref, observed_generation=generation, phase=phase.value,
                conditions=[c.update() for c in conditions],
                current_operation={} if self._operation else None,
                last_operation=self._last_operation("Failed", f"{where}{message}") if self._operation else None,
                outcome="rejected" if phase is Phase.INVALID else "degraded"),
                summary=f"report {phase.value}")
            self._operation = None
        except ActivityError as status_err:
            workflow.logger.warning("could not report the failure: %s", failure_message(status_err))
        await self._event("Warning", "ReconcileFailed", f"{where}{message}")
        return None

    # --- status ----------------------------------------------------------------------------------------

    def _start_plan(self, plan: planner.Plan) -> None:
        self._plan = plan
        self._plan_done = 0
        self._counts = {}
        self._step = ""
        self._applied_updates = []

    async def _begin_operation(self, plan: planner.Plan, spec: KafkaClusterSpec) -> None:
        provisioning = plan.operation == planner.OPERATION_PROVISIONING
        self._set_phase(Phase.PROVISIONING if provisioning else Phase.RECONCILING)
        if self._operation is not None and self._operation.get("type") == plan.operation:
            return  # the same operation going on after a pause or a failed attempt: same start, no new Event
        self._operation = {"type": plan.operation, "workflowId": workflow.info().workflow_id,
                           "startedAt": timestamp()}
        if provisioning:
            await self._event("Normal", "ProvisioningStarted",
                              f"provisioning Kafka {spec.version}: {spec.controllers.replicas} controllers, "
                              f"{spec.brokers.replicas} brokers")
        else:
            first = plan.steps[0]
            await self._event("Normal", "ReconcileStarted", f"{len(plan)} steps, first: {planner.describe_step(first)}")

    async def _report_progress(self, plan: planner.Plan, spec: KafkaClusterSpec) -> None:
        """``currentOperation`` shows the step about to run, so ``kubectl get kc`` tells what is going on."""
        assert self._operation is not None
        controllers = self._counts.get("controllers", 0)
        brokers = self._counts.get("brokers", 0)
        self._operation = {**self._operation, "step": self._step,
                           "progress": f"controllers {controllers}/{spec.controllers.replicas}, "
                                       f"brokers {brokers}/{spec.brokers.replicas}"}
        conditions = [Condition(ConditionType.RECONCILING, "True", plan.operation, self._step)]
        if plan.operation == planner.OPERATION_PROVISIONING:
            conditions.append(Condition(ConditionType.READY, "False", "Provisioning", self._step))
        await self._write_status(act.StatusUpdate(
            ref=self._ref, phase=self._phase.value, conditions=[c.update() for c in conditions],
            brokers_desired=spec.brokers.replicas, controllers_desired=spec.controllers.replicas,
            current_operation=self._operation), summary=f"report step {self._step}")

    async def _report_ready(self, observed: ObservedCluster, spec: KafkaClusterSpec, plan: planner.Plan) -> None:
        controllers = self._counts.get("controllers", _ready_pods(
            observed.controller_pods, node_ids(Role.CONTROLLER, spec.controllers.replicas)))
        brokers = self._counts.get("brokers", _ready_pods(
            observed.broker_pods, node_ids(Role.BROKER, spec.brokers.replicas)))
        summary = (f"{controllers}/{spec.controllers.replicas} controllers, "
                   f"{brokers}/{spec.brokers.replicas} brokers ready")
        finished = self._operation is not None
        update = act.StatusUpdate(
            ref=self._ref, observed_generation=observed.generation, phase=Phase.READY.value,
            conditions=[c.update() for c in (
                Condition(ConditionType.READY, "True", "ClusterReady", summary),
                Condition(ConditionType.RECONCILING, "False", "ReconcileComplete",
                           f"generation {observed.generation} reconciled"),
                Condition(ConditionType.DEGRADED, "False", "Healthy"),
                Condition(ConditionType.INVALID, "False", "SpecValid"))],
            brokers_desired=spec.brokers.replicas, brokers_ready=brokers,
            controllers_desired=spec.controllers.replicas, controllers_ready=controllers,
            current_operation={} if finished else None,
            last_operation=self._last_operation("Succeeded", summary) if finished else None, outcome="ready")
        was = self._phase
        self._set_phase(Phase.READY)
        self._step = ""
        self._message = summary
        await self._write_status(update, summary="report Ready")
        self._operation = None
        if was is not Phase.READY:
            reason = "ClusterReady" if plan.operation != planner.OPERATION_RECONCILE else "Reconciled"
            await self._event("Normal", reason, f"generation {observed.generation}: {summary}")

    async def _report_invalid(self, observed: ObservedCluster, errors: list[FieldError]) -> None:
        """An invalid spec changes nothing in the cluster: say which field is wrong and wait for a new one."""
        message = "; ".join(str(e) for e in errors) or "the spec does not parse"
        self._mark_processed(observed.generation)
        self._failures = 0
        self._start_plan(planner.Plan())
        self._set_phase(Phase.INVALID)
        self._message = message
        ready = "the running cluster is left as it is" if observed.cluster_id else "nothing was provisioned"
        await self._write_status(act.StatusUpdate(
            ref=self._ref, observed_generation=observed.generation, phase=Phase.INVALID.value,
            conditions=[c.update() for c in (
                Condition(ConditionType.INVALID, "True", "InvalidSpec", message),
                Condition(ConditionType.READY, "False", "InvalidSpec",
                           f"generation {observed.generation} is invalid; {ready}"),
                Condition(ConditionType.RECONCILING, "False", "InvalidSpec", "waiting for a corrected spec"))],
            current_operation={} if self._operation else None,
            last_operation=self._last_operation("Failed", message) if self._operation else None,
            outcome="invalid"), summary="report the invalid spec")
        self._operation = None
        if self._invalid != (observed.generation, message):
            await self._event("Warning", "InvalidSpec", message)
        self._invalid = (observed.generation, message)

    async def _finish_operation(self, result: str, message: str) -> None:
        """Record an interrupted operation as ``lastOperation`` (best effort: the cluster may be going away)."""
        if self._operation is None:
            return
        try:
            await self._write_status(act.StatusUpdate(
                ref=self._ref, current_operation={}, last_operation=self._last_operation(result, message),
                outcome="interrupted" if result == "Cancelled" else None), summary=f"record operation {result}")
        except ActivityError as err:
            workflow.logger.warning("could not record the interrupted operation: %s", failure_message(err))
        self._operation = None

    def _last_operation(self, result: str, message: str) -> dict[str, Any]:
        operation = self._operation or {}
        return {"type": operation.get("type", ""), "workflowId": workflow.info().workflow_id,
                "result": result, "message": message[:1024], "finishedAt": timestamp()}

    async def _write_status(self, update: act.StatusUpdate, *, summary: str) -> None:
        """Write status unless it would change nothing this run already wrote (so passes that find nothing
        to do stay quiet). Fields left None keep their value, as in the activity."""
        # The reports set the phase before their step and message: show all of it (no command, replay-safe).
        self._show()
        believed = _merged(self._status_written, update)
        if believed == self._status_written:
            return
        await self._call(act.UPDATE_STATUS, update, KUBE, summary)
        self._status_written = believed

    async def _event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        """Record an Event on the KafkaCluster; best effort, a failed Event never fails a pass."""
        try:
            await self._call(act.RECORD_EVENT, act.EventInput(ref=self._ref, type=type_, reason=reason,
                                                              message=message[:1024]),
                             EVENT, f"event {reason}")
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            workflow.logger.warning("event %s not recorded: %s", reason, failure_message(err))

    # --- plumbing --------------------------------------------------------------------------------------

    async def _call(self, activity: str, arg: BaseModel, options: Options, summary: str,
                    result_type: type | None = None) -> Any:
        return await workflow.execute_activity(
            activity, arg, result_type=result_type, start_to_close_timeout=options.start_to_close,
            heartbeat_timeout=options.heartbeat, retry_policy=options.retry,
            summary=f"{self._ref.namespace}/{self._ref.name}: {summary}")

    def _set_phase(self, phase: Phase) -> None:
        if phase is self._phase:
            return
        self._phase = phase
        workflow.upsert_search_attributes([SA_PHASE.value_set(phase.value)])
        self._show()

    def _upsert_search_attributes(self) -> None:
        current = workflow.info().typed_search_attributes
        wanted = ((SA_NAME, self._ref.name), (SA_NAMESPACE, self._ref.namespace), (SA_PHASE, self._phase.value))
        updates = [key.value_set(value) for key, value in wanted if current.get(key) != value]
        if updates:
            workflow.upsert_search_attributes(updates)

    def _show(self) -> None:
        """The Temporal UI's "current details": what this workflow is doing, in markdown."""
        lines = [f"**KafkaCluster {self._ref.namespace}/{self._ref.name}** -- phase **{self._phase.value}**", ""]
        if self._paused:
            lines.append(f"- **paused**{': ' + self._pause_reason if self._pause_reason else ''}")
        if self._step:
            lines.append(f"- step: {self._step}")
        if self._message:
            lines.append(f"- {self._message}")
        lines.append(f"- generation processed: {self._processed_generation}")
        if self._pending_spec is not None:
            lines.append(f"- queued: generation {self._pending_spec.generation}"
                         f"{' (deletion)' if self._pending_spec.deleting else ''}")
        if self._pending_observed:
            lines.append(f"- queued: {len(self._pending_observed)} observed change(s)")
        if self._failures:
            lines.append(f"- failed passes in a row: {self._failures}")
        if self._roll is not None:
            lines.append(f"- {self._roll_message(self._roll)}")
        elif self._roll_hold is not None:
            lines.append(f"- roll held ({self._roll_hold.outcome}): {self._roll_hold.message}")
        if self._roll_requests:
            lines.append(f"- queued: {len(self._roll_requests)} roll request(s)")
        if self._rebalance is not None:
            lines.append(f"- {self._rebalance_message(self._rebalance)}")
        if self._pending_rebalance is not None:
            lines.append(f"- queued: {self._pending_rebalance.purpose} rebalance ({self._pending_rebalance.reason})")
        if self._scale_in_hold is not None:
            lines.append(f"- scale-in to {self._scale_in_hold.target} not applied ({self._scale_in_hold.outcome}): "
                         f"{self._scale_in_hold.message}")
        workflow.set_current_details("\n".join(lines))

    def _view(self) -> WorkflowStatusView:
        return WorkflowStatusView(
            namespace=self._ref.namespace, name=self._ref.name, phase=self._phase.value, paused=self._paused,
            processed_generation=self._processed_generation,
            pending_generation=self._pending_spec.generation if self._pending_spec else None,
            step=self._step, message=self._message, roll=self._roll.workflow_id if self._roll else "")

    # --- signals ---------------------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_SPEC_CHANGED)
    def spec_changed(self, change: SpecChanged) -> None:
        """Queue a desired generation; only the newest one matters, stale and duplicate ones are dropped.
        A new ``kafka.ballast.dev/roll`` token (no new generation) makes a pass due: it starts the roll."""
        if change.uid and self._uid and change.uid != self._uid:
            # A re-created KafkaCluster: its generations restart, so nothing processed before counts.
            self._uid = change.uid
            self._processed_generation = 0
            self._pending_spec = None
        token = change.annotations.get(ROLL_ANNOTATION, "")
        rebalance_token = change.annotations.get(REBALANCE_ANNOTATION, "")
        if rebalance_token != self._last_rebalance_token and not self._pass_due:
            self._pass_due = True
            self._due_trace_context = change.trace_context
        if token and token != self._last_roll_token and not self._pass_due:
            self._pass_due = True
            self._due_trace_context = change.trace_context
            self._show()
        newer = change.generation > self._processed_generation
        if not newer and not change.deleting:
            return
        pending = self._pending_spec
        if pending is None:
            self._pending_spec = change
        else:
            newest = change if change.generation >= pending.generation else pending
            # A deletion is never taken back, whatever order the signals arrive in.
            self._pending_spec = newest.model_copy(update={"deleting": pending.deleting or change.deleting})
        self._show()

    @workflow.signal(name=SIGNAL_OBSERVED_CHANGED)
    def observed_changed(self, change: ObservedChanged) -> None:
        """Queue a drift notice; the pass observes afresh, so duplicates are simply dropped."""
        key = (change.kind, change.name, change.reason, change.resource_version)
        if any((o.kind, o.name, o.reason, o.resource_version) == key for o in self._pending_observed):
            return
        self._pending_observed = [*self._pending_observed, change][-MAX_PENDING_OBSERVED:]
        self._show()

    # --- queries ---------------------------------------------------------------------------------------

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> WorkflowStatusView:
        return self._view()

    @workflow.query(name=QUERY_PLAN)
    def plan(self) -> list[str]:
        """What the workflow would do next (a dry run): the steps left of the plan made from the last
        observation, after notes on anything that comes first. Empty: nothing to do."""
        lines: list[str] = []
        if self._paused:
            lines.append(f"paused{' (' + self._pause_reason + ')' if self._pause_reason else ''}: "
                         "nothing runs until resume")
        if self._pending_spec is not None:
            lines.append(f"queued: generation {self._pending_spec.generation}"
                         f"{' (deletion)' if self._pending_spec.deleting else ''}: observe and re-plan first")
        elif self._pending_observed or self._pass_due:
            lines.append("queued: observe and re-plan first")
        if self._invalid is not None:
            lines.append(f"waiting for a valid spec: generation {self._invalid[0]}: {self._invalid[1]}")
        lines += planner.describe_plan(self._plan)[self._plan_done:]
        if self._roll is not None:
            lines.append(f"{self._roll_message(self._roll)} (its steps: the plan query of {self._roll.workflow_id})")
        elif self._roll_hold is not None:
            lines.append(f"roll held ({self._roll_hold.outcome}): {self._roll_hold.message}")
        if self._roll_requests:
            lines.append(f"queued: {len(self._roll_requests)} roll request(s): start or extend a roll")
        return lines

    @workflow.signal(name=SIGNAL_ROLL_PROGRESS)
    def roll_progress(self, progress: RollProgress) -> None:
        """Progress of the roll this workflow runs -- or of one started by hand for this cluster, which is then
        tracked (and merged into) as if it had started it."""
        state = self._roll
        if state is None:
            if progress.outcome != "Running":
                return  # the end of a roll already accounted for
            state = self._roll = _RunningRoll(workflow_id=progress.workflow_id, handle=None,
                                              started_at=timestamp(), revisions="", reason=progress.reason)
        elif state.workflow_id != progress.workflow_id:
            workflow.logger.warning("roll %s reports while %s runs: ignored", progress.workflow_id,
                                    state.workflow_id)
            return
        state.progress = progress
        if progress.outcome != "Running" and state.handle is None:
            self._roll_finished(RollResult(workflow_id=progress.workflow_id, outcome=progress.outcome,
                                           message=progress.message))
            return
        self._roll_report_due = True
        self._show()

    @workflow.signal(name=SIGNAL_REBALANCE_PROGRESS)
    def rebalance_progress(self, progress: RebalanceProgress) -> None:
        """Progress of the rebalance this workflow runs -- or of one started by hand for this cluster, which is then
        tracked as the structural operation running (nothing else starts until it ends)."""
        state = self._rebalance
        ended = progress.state in ("Succeeded", "Failed", "Cancelled")
        if state is None:
            if ended:
                return  # the end of a rebalance already accounted for
            state = self._rebalance = RunningRebalance(workflow_id=progress.workflow_id, purpose=progress.purpose,
                                                       started_at=timestamp(), reason=progress.reason, adopted=True)
        elif state.workflow_id != progress.workflow_id:
            workflow.logger.warning("rebalance %s reports while %s runs: ignored", progress.workflow_id,
                                    state.workflow_id)
            return
        state.progress = progress
        if ended and state.adopted:
            outcome: Literal["Succeeded", "Failed", "Cancelled"] = progress.state  # type: ignore[assignment]
            self._rebalance_finished(state, RebalanceResult(workflow_id=progress.workflow_id, outcome=outcome,
                                                            purpose=progress.purpose, message=progress.message))
            return
        self._rebalance_report_due = True
        self._show()

    @workflow.query(name=QUERY_REBALANCE)
    def rebalance(self) -> RebalanceProgress | None:
        """The running rebalance's progress (its plan: the ``plan`` query of its workflow), else None."""
        state = self._rebalance
        return state.progress if state is not None else None

    @workflow.update(name=UPDATE_REQUEST_REBALANCE)
    async def request_rebalance(self, request: RebalanceRequest) -> RebalanceAccepted:
        """Plan and run a rebalance now (with ``rebalance.mode: approval``, the plan waits for approval)."""
        reason = request.reason or "requested"
        self._queue_rebalance(PendingRebalance(purpose="requested", reason=reason))
        self._pass_due = True
        self._show()
        message = "a rebalance starts" + (" after the running one" if self._rebalance is not None else "")
        if self._paused:
            message += " after resume (the cluster's workflow is paused)"
        await self._event("Normal", "RebalanceRequested", reason)
        return RebalanceAccepted(accepted=True, message=message)

    @request_rebalance.validator
    def _validate_request_rebalance(self, request: RebalanceRequest) -> None:
        where = f"{self._ref.namespace}/{self._ref.name}"
        if self._finished:
            raise ValueError(f"{where} is gone; there is nothing to rebalance")
        if self._phase not in (Phase.READY, Phase.RECONCILING):
            raise ValueError(f"{where} is {self._phase.value}: a rebalance can be requested when the cluster is "
                             "Ready or Reconciling")

    @workflow.update(name=UPDATE_APPROVE_REBALANCE)
    async def approve_rebalance(self, request: ApproveRequest) -> RebalanceAccepted:
        """Approve the plan waiting for approval (``rebalance.mode: approval``)."""
        state = self._rebalance
        assert state is not None
        await self._signal_rebalance(REBALANCE_SIGNAL_APPROVE, ApproveRequest(
            workflow_id=state.workflow_id, reason=request.reason or "approved by an operator"))
        return RebalanceAccepted(accepted=True, workflow_id=state.workflow_id, message="approved; moves start")

    @approve_rebalance.validator
    def _validate_approve_rebalance(self, request: ApproveRequest) -> None:
        state = self._rebalance
        where = f"{self._ref.namespace}/{self._ref.name}"
        if state is None or state.progress is None or state.progress.state != "AwaitingApproval":
            raise ValueError(f"{where}: no rebalance plan is waiting for approval")
        if request.workflow_id and request.workflow_id != state.workflow_id:
            raise ValueError(f"{where}: {request.workflow_id} is not the plan waiting for approval "
                             f"({state.workflow_id})")

    # --- updates ---------------------------------------------------------------------------------------

    @workflow.update(name=UPDATE_PAUSE)
    async def pause(self, request: PauseRequest) -> WorkflowStatusView:
        """Stop acting after the running step; signals keep queuing. Deletion waits for ``resume`` too."""
        self._paused = True
        self._pause_reason = request.reason
        self._show()
        if self._roll is not None:
            await self._signal_roll(ROLL_SIGNAL_PAUSE, PauseRequest(reason=request.reason))
        if self._rebalance is not None:
            await self._signal_rebalance(REBALANCE_SIGNAL_PAUSE, PauseRequest(reason=request.reason))
        await self._event("Normal", "ReconcilePaused", request.reason or "paused by an operator")
        return self._view()

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        if self._finished:
            raise ValueError(f"{self._ref.namespace}/{self._ref.name} is gone; there is nothing to pause")
        if self._paused:
            reason = f" ({self._pause_reason})" if self._pause_reason else ""
            raise ValueError(f"{self._ref.namespace}/{self._ref.name} is already paused{reason}; "
                             "resume it first")

    @workflow.update(name=UPDATE_RESUME)
    async def resume(self, request: ResumeRequest) -> WorkflowStatusView:
        """Act again: a pass runs right away, observing afresh and re-planning what was left."""
        self._paused = False
        self._pause_reason = ""
        self._pass_due = True
        self._show()
        if self._roll is not None:
            await self._signal_roll(ROLL_SIGNAL_RESUME, ResumeRequest())
        if self._rebalance is not None:
            await self._signal_rebalance(REBALANCE_SIGNAL_RESUME, ResumeRequest())
        await self._event("Normal", "ReconcileResumed", "resumed by an operator")
        return self._view()

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        if not self._paused:
            raise ValueError(f"{self._ref.namespace}/{self._ref.name} is not paused")

    @workflow.update(name=UPDATE_REQUEST_ROLL)
    async def request_roll(self, request: RollRequest) -> RollRequestAccepted:
        """Restart ``request.brokers`` (node ids; None: every pod), health-gated; merged into a running roll.
        The next pass (right away, unless paused) starts or extends the roll."""
        self._roll_requests.append(request)
        self._pass_due = True
        self._show()
        what = "every pod" if request.brokers is None else f"nodes {request.brokers}"
        running = self._roll.workflow_id if self._roll is not None else ""
        message = f"{what}: merged into the running roll {running}" if running else f"{what}: a roll starts"
        if self._paused:
            message += " after resume (the cluster's workflow is paused)"
        await self._event("Normal", "RollRequested", f"{request.reason or 'requested'}: {what}")
        return RollRequestAccepted(accepted=True, merged_into=running, message=message)

    @request_roll.validator
    def _validate_request_roll(self, request: RollRequest) -> None:
        where = f"{self._ref.namespace}/{self._ref.name}"
        if self._finished:
            raise ValueError(f"{where} is gone; there is nothing to roll")
        if self._roll is None and self._phase is not Phase.READY and self._roll_hold is None:
            raise ValueError(f"{where} is {self._phase.value}: a roll can be requested when the cluster is Ready "
                             "or rolling")
        if request.brokers is not None and (not request.brokers or any(n < 0 for n in request.brokers)):
            raise ValueError("brokers: node ids (>= 0); leave it out to restart every pod")

    @workflow.update(name=UPDATE_CANCEL_OPERATION)
    async def cancel_operation(self, request: CancelRequest) -> WorkflowStatusView:
        """Cancel the running roll at its next step boundary (the restart in flight finishes: every pod is back).
        It is not restarted on its own for the same revisions; ``request_roll`` or a new spec starts another.
        A running rebalance is cancelled too: its in-flight moves are cancelled (back on their original
        replicas) and throttles cleared; a cancelled scale-in is not retried for the same generation."""
        reason = request.reason or "cancelled by an operator"
        state = self._roll
        if state is not None:
            state.cancel = reason
            await self._signal_roll(ROLL_SIGNAL_CANCEL, CancelRequest(reason=state.cancel))
            await self._event("Normal", "RollCancelRequested", f"{state.workflow_id}: {state.cancel}")
        running = self._rebalance
        if running is not None:
            running.cancel_sent = True
            delivered = await self._signal_rebalance(REBALANCE_SIGNAL_CANCEL, CancelRequest(reason=reason))
            if not delivered and running.adopted and self._rebalance is running:
                # A hand-started rebalance that no longer runs (terminated): it will never report its end.
                self._rebalance = None
                self._pass_due = True
            await self._event("Normal", "RebalanceCancelRequested", f"{running.workflow_id}: {reason}")
        return self._view()

    @cancel_operation.validator
    def _validate_cancel_operation(self, request: CancelRequest) -> None:
        if self._roll is None and self._rebalance is None:
            raise ValueError(f"{self._ref.namespace}/{self._ref.name}: no operation to cancel (a running roll "
                             "or rebalance can be cancelled; pause holds a reconcile)")
