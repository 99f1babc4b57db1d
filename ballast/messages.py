"""The contract between watchers, the per-cluster workflow and people with the Temporal CLI.

Every workflow takes one input model that is plain JSON, so an operator can start or signal any of them
by hand, e.g.::

    temporal workflow signal --workflow-id kafkacluster/default/demo --name spec_changed \\
        --input '{"generation": 3, "resourceVersion": "1234"}'

Signals are idempotent: they carry the generation/resourceVersion they were sent for, and the workflow
ignores anything not newer than what it already processed, so duplicate deliveries (several watcher
replicas, relists after a 410) are harmless.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ballast.spec import GROUP, RollPolicy

DEFAULT_TASK_QUEUE = "ballast"

# Signal, query and update names: part of the public interface (README, Temporal CLI).
SIGNAL_SPEC_CHANGED = "spec_changed"
SIGNAL_OBSERVED_CHANGED = "observed_changed"
QUERY_STATUS = "status"
QUERY_PLAN = "plan"
UPDATE_PAUSE = "pause"
UPDATE_RESUME = "resume"
UPDATE_REQUEST_ROLL = "request_roll"
UPDATE_CANCEL_OPERATION = "cancel_operation"
# Sent by a RollWorkflow to its cluster's workflow (by workflow id, so a roll started by hand reports too).
SIGNAL_ROLL_PROGRESS = "roll_progress"

# A new value of this annotation on a KafkaCluster asks for one roll of the whole cluster.
ROLL_ANNOTATION = f"{GROUP}/roll"

# The RollWorkflow: its type, and the names of its queries, updates and (for its parent) signals.
ROLL_WORKFLOW_NAME = "RollWorkflow"
ROLL_QUERY_PLAN = "plan"
ROLL_QUERY_PROGRESS = "progress"
ROLL_UPDATE_PAUSE = "pause"
ROLL_UPDATE_RESUME = "resume"
ROLL_UPDATE_CANCEL = "cancel"
ROLL_UPDATE_EXTEND = "extend"
# Workflows cannot send updates to other workflows: the cluster workflow uses these signals instead.
ROLL_SIGNAL_PAUSE = "pause_roll"
ROLL_SIGNAL_RESUME = "resume_roll"
ROLL_SIGNAL_CANCEL = "cancel_roll"
ROLL_SIGNAL_EXTEND = "extend_roll"

# Rebalancing (issue 6): the cluster workflow's updates, the annotation, and the RebalanceWorkflow's interface.
UPDATE_REQUEST_REBALANCE = "request_rebalance"
UPDATE_APPROVE_REBALANCE = "approve_rebalance"
QUERY_REBALANCE = "rebalance"
# On a KafkaCluster: "approve" approves the plan waiting for approval; any other new value asks for a rebalance.
REBALANCE_ANNOTATION = f"{GROUP}/rebalance"
REBALANCE_APPROVE = "approve"
SIGNAL_REBALANCE_PROGRESS = "rebalance_progress"
REBALANCE_WORKFLOW_NAME = "RebalanceWorkflow"
REBALANCE_QUERY_PLAN = "plan"
REBALANCE_QUERY_PROGRESS = "progress"
REBALANCE_UPDATE_APPROVE = "approve"
REBALANCE_UPDATE_PAUSE = "pause"
REBALANCE_UPDATE_RESUME = "resume"
REBALANCE_UPDATE_CANCEL = "cancel"
REBALANCE_SIGNAL_APPROVE = "approve_rebalance"
REBALANCE_SIGNAL_PAUSE = "pause_rebalance"
REBALANCE_SIGNAL_RESUME = "resume_rebalance"
REBALANCE_SIGNAL_CANCEL = "cancel_rebalance"

# Typed search attributes the worker registers on start-up.
SA_CLUSTER_NAME = "KafkaClusterName"
SA_CLUSTER_NAMESPACE = "KafkaClusterNamespace"
SA_CLUSTER_PHASE = "KafkaClusterPhase"


def cluster_workflow_id(namespace: str, name: str) -> str:
    return f"kafkacluster/{namespace}/{name}"


def rebalance_workflow_id(namespace: str, name: str, number: int) -> str:
    """The id of the ``number``-th rebalance the cluster workflow started: ``rebalance/<ns>/<name>/<n>``."""
    return f"rebalance/{namespace}/{name}/{number}"


def roll_workflow_id(namespace: str, name: str, number: int) -> str:
    """The id of the ``number``-th roll the cluster workflow started: ``roll/<ns>/<name>/<n>``."""
    return f"roll/{namespace}/{name}/{number}"


class Message(BaseModel):
    """camelCase on the wire (what a person types into the Temporal CLI), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ClusterRef(Message):
    namespace: str
    name: str

    @property
    def workflow_id(self) -> str:
        return cluster_workflow_id(self.namespace, self.name)


class SpecChanged(Message):
    """A KafkaCluster changed in a way that matters: new generation, deletion, or a manual annotation."""

    generation: int = Field(ge=0)
    resource_version: str = ""
    deleting: bool = False
    annotations: dict[str, str] = Field(default_factory=dict, description="kafka.ballast.dev/* annotations")
    uid: str = Field(default="", description="metadata.uid: a new uid under the same name is a re-created cluster")
    trace_context: dict[str, str] = Field(default_factory=dict, description="W3C traceparent of the watcher span")


class ObservedChanged(Message):
    """Something the operator owns drifted (a pod not Ready, a Service deleted by hand, ...)."""

    kind: str
    name: str
    reason: str
    resource_version: str = ""
    trace_context: dict[str, str] = Field(default_factory=dict)


class KafkaClusterWorkflowInput(Message):
    """Input of ``KafkaClusterWorkflow``; the carried fields are filled only by continue-as-new."""

    namespace: str
    name: str
    pending_spec: SpecChanged | None = None
    pending_observed: list[ObservedChanged] = Field(default_factory=list)
    processed_generation: int = 0
    paused: bool = False
    pause_reason: str = ""
    uid: str = Field(default="", description="metadata.uid last seen: a new uid is a re-created cluster")
    phase: str = Field(default="", description="last phase reported (Pending when empty)")
    consecutive_failures: int = Field(default=0, ge=0, description="failed passes in a row (retry back-off)")
    max_passes_before_continue_as_new: int | None = Field(
        default=None, ge=1, description="continue-as-new after this many passes (tests); None = when Temporal "
                                        "suggests it")
    # Rolling restarts (issue 5), carried over continue-as-new.
    last_roll_token: str = Field(default="", description=f"the last {ROLL_ANNOTATION} value acted on")
    roll_count: int = Field(default=0, ge=0, description="rolls started so far (numbers the roll workflow ids)")
    pending_roll_requests: list[RollRequest] = Field(default_factory=list)
    applied_spec: dict[str, Any] | None = Field(default=None, description="the spec the brokers' configuration "
                                                                           "was last applied from")
    roll_hold: RollHold | None = None
    # Rebalancing, scale-in and volume expansion (issue 6), carried over continue-as-new.
    rebalance_count: int = Field(default=0, ge=0, description="rebalances started so far (numbers their ids)")
    last_rebalance_token: str = Field(default="", description=f"the last {REBALANCE_ANNOTATION} value acted on")
    pending_rebalance: PendingRebalance | None = None
    drained_target: int | None = Field(default=None, description="broker count a finished drain allows")
    drained_remove: list[int] = Field(default_factory=list, description="drained broker ids still to remove")
    scale_in_hold: ScaleInHold | None = None
    volume_sizes: dict[str, str] = Field(default_factory=dict, description="role -> storage size expanded to")
    next_skew_check: str = Field(default="", description="ISO time of the next disk skew check")

    @property
    def ref(self) -> ClusterRef:
        return ClusterRef(namespace=self.namespace, name=self.name)


class PauseRequest(Message):
    reason: str = Field(default="", max_length=1024)


class ResumeRequest(Message):
    pass


class RollRequest(Message):
    """Input of the ``request_roll`` update: restart pods one at a time, health-gated. ``brokers`` names the
    broker node ids to restart; None restarts every pod of the cluster (controllers, then brokers). A request
    while a roll runs is merged into it."""

    reason: str = Field(default="", max_length=1024)
    brokers: list[int] | None = Field(default=None, description="broker node ids; None = the whole cluster")


class WorkflowStatusView(Message):
    """What the ``status`` query returns."""

    namespace: str
    name: str
    phase: str
    paused: bool
    processed_generation: int
    pending_generation: int | None = None
    step: str = ""
    message: str = ""
    roll: str = Field(default="", description="workflow id of the roll running now, if any")


# --- rolling restarts (issue 5) ----------------------------------------------------------------------------

class RollStep(Message):
    """One pod to restart. ``if_outdated`` steps come from a template change and are skipped when the pod is
    already on the StatefulSet's update revision when its turn comes; manual steps restart regardless."""

    node_id: int = Field(ge=0)
    role: Literal["controller", "broker"]
    pod: str
    reason: str = ""
    if_outdated: bool = False
    rack: str = Field(default="", description="brokers: their rack, for rack-aware batching")

    def describe(self) -> str:
        return f"{self.role} {self.node_id} ({self.pod})"


class RollInput(Message):
    """Input of ``RollWorkflow`` (plain JSON, so it can be started by hand)::

        temporal workflow start --type RollWorkflow --task-queue ballast --workflow-id roll/default/demo/manual \\
            --input '{"ref": {"namespace": "default", "name": "demo"}, "reason": "by hand"}'

    ``steps`` empty: the workflow observes the cluster and plans the roll itself (``request`` as for the
    ``request_roll`` update; without one, the pods not on their StatefulSet's update revision). ``policy``
    None: the cluster's ``spec.rollPolicy``."""

    ref: ClusterRef
    steps: list[RollStep] = Field(default_factory=list)
    policy: RollPolicy | None = None
    reason: str = ""
    request: RollRequest | None = None
    elect_preferred_leaders: bool = Field(default=True, description="after each broker, move leadership of "
                                                                    "its preferred partitions back to it")
    racks: dict[int, str] = Field(default_factory=dict, description="broker node id -> rack, for rack-aware "
                                                                  "batches (the whole rack counts as down)")


class RollExtend(Message):
    """Merge more steps into a running roll (a second request never runs a second roll in parallel)."""

    steps: list[RollStep]
    reason: str = ""


class CancelRequest(Message):
    reason: str = Field(default="", max_length=1024)


StepStatus = Literal["pending", "restarting", "waiting", "done", "skipped"]
RollOutcome = Literal["Running", "Succeeded", "Failed", "Cancelled"]


class RollProgress(Message):
    """What the ``progress`` query returns and what a roll signals to its cluster's workflow."""

    workflow_id: str
    outcome: RollOutcome = "Running"
    reason: str = ""
    total: int = 0
    done: int = 0
    step: str = Field(default="", description="'i/n <role> <id> (<pod>)' of the step in flight or next")
    in_flight: list[int] = Field(default_factory=list, description="node ids being restarted now")
    waiting: str = Field(default="", description="why the roll waits (gate not met, paused, delay)")
    paused: bool = False
    message: str = ""


class RollResult(Message):
    """How a roll ended; ``Failed`` means it stopped (gate budget spent, a pod stuck on the new revision) and
    left the rest of the plan undone rather than force anything."""

    workflow_id: str
    outcome: Literal["Succeeded", "Failed", "Cancelled"]
    message: str = ""
    restarted: list[int] = Field(default_factory=list, description="node ids restarted, in order")
    remaining: list[int] = Field(default_factory=list, description="node ids of steps not done")


class RollRequestAccepted(Message):
    """What ``request_roll`` answers."""

    accepted: bool = True
    merged_into: str = Field(default="", description="the running roll the request was merged into, if any")
    message: str = ""


class RollHold(Message):
    """The cluster workflow does not start a roll on its own for these update revisions (the last roll for
    them failed or was cancelled); a new spec, a roll request or a new roll annotation lifts it."""

    revisions: str
    outcome: Literal["Failed", "Cancelled"]
    message: str = ""


# --- rebalancing, scale-in and volume expansion (issue 6) ----------------------------------------------------

RebalancePurpose = Literal["scale-out", "scale-in", "skew", "requested"]
RebalanceOutcome = Literal["Running", "Succeeded", "Failed", "Cancelled", "Infeasible"]
RebalanceState = Literal["Planning", "AwaitingApproval", "Running", "Paused", "Succeeded", "Failed", "Cancelled"]


class RebalanceSettings(Message):
    """The knobs of one rebalance (from ``spec.rebalance``)."""

    throttle_bytes_per_sec: int = Field(default=50 * 2**20, ge=0)
    tolerance_percent: int = Field(default=5, ge=1, le=50)
    capacity_threshold_percent: int = Field(default=85, ge=10, le=100)
    max_moves_per_batch: int = Field(default=20, ge=1)
    capacity_fallback_bytes: int = Field(default=0, ge=0, description="the brokers' PVC size, for Kafka versions "
                                                                    "that do not report disk capacity")


class RebalanceInput(Message):
    """Input of ``RebalanceWorkflow`` (plain JSON, so it can be started by hand)::

        temporal workflow start --type RebalanceWorkflow --task-queue ballast \\
            --workflow-id rebalance/default/demo/manual \\
            --input '{"ref": {"namespace": "default", "name": "demo"}, "reason": "by hand"}'

    ``remove``: broker ids to empty (a scale-in drains them, verifies through Kafka that they hold nothing, then
    its parent shrinks the StatefulSet). ``require_approval``: publish the plan and wait for ``approve``."""

    ref: ClusterRef
    purpose: RebalancePurpose = "requested"
    reason: str = ""
    remove: list[int] = Field(default_factory=list)
    require_brokers: list[int] = Field(default_factory=list, description="broker ids that must be registered "
                                                                       "first (the new brokers of a scale-out)")
    require_approval: bool = False
    settings: RebalanceSettings = Field(default_factory=RebalanceSettings)
    max_rounds: int = Field(default=10, ge=1, description="re-plan and run again while a plan came back "
                                                         "truncated or the result is not balanced yet")


class RebalanceProgress(Message):
    """What the ``progress`` query returns and what a rebalance signals to its cluster's workflow."""

    workflow_id: str
    purpose: RebalancePurpose = "requested"
    state: RebalanceState = "Planning"
    reason: str = ""
    moves: int = 0
    batches: int = 0
    batches_done: int = 0
    bytes_to_move: int = 0
    bytes_moved: int = 0
    lower_bound_bytes: int = 0
    disk_spread_before: float = 0.0
    disk_spread_after: float = 0.0
    replica_spread_before: float = 0.0
    replica_spread_after: float = 0.0
    eta_seconds: int | None = None
    paused: bool = False
    waiting: str = ""
    message: str = ""


class RebalanceResult(Message):
    """How a rebalance ended. ``Infeasible``: the plan's hard goals cannot be met (nothing was moved);
    ``Failed``/``Cancelled``: in-flight moves were cancelled, throttles cleared, the assignment is consistent."""

    workflow_id: str
    outcome: Literal["Succeeded", "Failed", "Cancelled", "Infeasible"]
    purpose: RebalancePurpose = "requested"
    message: str = ""
    moves_done: int = 0
    bytes_moved: int = 0
    batches_done: int = 0
    remove: list[int] = Field(default_factory=list)
    emptied: bool = Field(default=False, description="scale-in: Kafka confirmed the removed brokers hold nothing")


class RebalanceRequest(Message):
    """Input of the cluster workflow's ``request_rebalance`` update."""

    reason: str = Field(default="", max_length=1024)


class ApproveRequest(Message):
    """Input of ``approve_rebalance``: approve the plan waiting for approval (``workflow_id`` names it, so a
    stale approval never approves a newer plan; empty = whichever waits)."""

    workflow_id: str = ""
    reason: str = Field(default="", max_length=1024)


class RebalanceAccepted(Message):
    accepted: bool = True
    workflow_id: str = ""
    message: str = ""


class PendingRebalance(Message):
    """A rebalance the cluster workflow starts once no other structural operation runs."""

    purpose: RebalancePurpose
    reason: str = ""
    require_brokers: list[int] = Field(default_factory=list)


class ScaleInHold(Message):
    """A scale-in to ``target`` that failed, was cancelled or is impossible: not retried on its own for this
    ``generation`` (a new spec generation tries again)."""

    target: int
    generation: int
    outcome: Literal["Failed", "Cancelled", "Infeasible"]
    message: str = ""


KafkaClusterWorkflowInput.model_rebuild()
