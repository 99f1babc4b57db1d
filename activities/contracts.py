"""Names and input/result types of every activity the workflows call.

Workflows call activities by these names with these models (through temporalio's pydantic data
converter), so workflow code never imports activity implementations, and tests can register fakes under
the same names. Each activity is idempotent: running it twice (a retry after a worker crash) has the
same effect as running it once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ballast.messages import ClusterRef, Message

OBSERVE_CLUSTER = "observe_cluster"
ENSURE_FINALIZER = "ensure_finalizer"
REMOVE_FINALIZER = "remove_finalizer"
APPLY_MANIFESTS = "apply_manifests"
WAIT_CONTROLLERS_READY = "wait_controllers_ready"
WAIT_BROKERS_REGISTERED = "wait_brokers_registered"
UPDATE_STATUS = "update_status"
RECORD_EVENT = "record_event"
CLEANUP_CLUSTER = "cleanup_cluster"

Component = Literal["controllers", "brokers"]


class ApplyManifestsInput(Message):
    """Render the manifests of ``components`` from ``spec`` and create/update them in the cluster."""

    ref: ClusterRef
    uid: str = Field(description="KafkaCluster uid, for ownerReferences")
    spec: dict[str, Any]
    cluster_id: str
    components: list[Component]


class ApplyManifestsResult(Message):
    created: list[str] = Field(default_factory=list, description="'Kind/name' of objects created")
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)


class WaitInput(Message):
    """Wait (heartbeating) until the condition holds; fail with a retryable error after ``timeout_seconds``
    so the workflow can report progress and decide (the workflow sets the activity's own timeouts)."""

    ref: ClusterRef
    spec: dict[str, Any]
    expected: int = Field(ge=0, description="controllers (quorum voters) or brokers expected")
    poll_seconds: float = 1.0


class WaitResult(Message):
    ready: int
    detail: str = ""


class ConditionUpdate(Message):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


class StatusUpdate(Message):
    """Patch ``status`` through the /status subresource; fields left None are kept as they are."""

    ref: ClusterRef
    observed_generation: int | None = None
    phase: str | None = None
    conditions: list[ConditionUpdate] = Field(default_factory=list)
    cluster_id: str | None = None
    brokers_desired: int | None = None
    brokers_ready: int | None = None
    controllers_desired: int | None = None
    controllers_ready: int | None = None
    current_operation: dict[str, Any] | None = Field(default=None, description="OperationStatus as JSON; {} clears")
    last_operation: dict[str, Any] | None = None
    rebalance: dict[str, Any] | None = Field(default=None, description="RebalanceStatus as JSON; {} clears")
    outcome: str | None = Field(default=None, description=(
        "The reconcile outcome this write reports (ready, invalid, rejected, degraded, rolling, held, "
        "interrupted), counted in ballast_reconcile_outcomes_total; not a status field"))


class EventInput(Message):
    """A core/v1 Event on the KafkaCluster (reason in CamelCase, e.g. ProvisioningStarted)."""

    ref: ClusterRef
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str


class CleanupInput(Message):
    """``delete_broker_claims`` / ``delete_controller_claims``: each role's ``storage.deleteClaim``; when both
    are None (an input recorded before they existed), ``delete_claims`` decides for both roles."""

    ref: ClusterRef
    delete_claims: bool = False
    delete_broker_claims: bool | None = None
    delete_controller_claims: bool | None = None

    def deletes(self, role: Literal["broker", "controller"]) -> bool:
        if self.delete_broker_claims is None and self.delete_controller_claims is None:
            return self.delete_claims
        return bool(self.delete_broker_claims if role == "broker" else self.delete_controller_claims)


# -- rolling restarts (issue 5) -------------------------------------------------------------------------
OBSERVE_ROLL_GATE = "observe_roll_gate"
RESTART_POD = "restart_pod"
WAIT_POD_ROLLED = "wait_pod_rolled"
ELECT_PREFERRED_LEADERS = "elect_preferred_leaders"

Role = Literal["controller", "broker"]


class PartitionFacts(Message):
    """One partition as Kafka reports it, with the min.insync.replicas in effect for its topic."""

    topic: str
    partition: int
    replicas: list[int]
    isr: list[int]
    leader: int = -1
    min_isr: int = 1
    adding: list[int] = Field(default_factory=list, description="replicas being added by a reassignment")
    removing: list[int] = Field(default_factory=list, description="replicas being removed by a reassignment")


class VoterFacts(Message):
    node_id: int
    log_end_offset: int = -1
    last_caught_up_ms: int = -1
    last_fetch_ms: int = -1


class GateObservationInput(Message):
    ref: ClusterRef
    role: Role
    node_id: int


class GateObservation(Message):
    """The facts a can-roll gate decides on (the decision itself is pure code in ballast.roll).

    Brokers: every partition with a replica on ``node_id`` (and in-flight reassignments touching it).
    Controllers: the quorum's leader, high watermark and voters."""

    reachable: bool = True
    error: str = ""
    partitions: list[PartitionFacts] = Field(default_factory=list)
    quorum_leader_id: int = -1
    quorum_high_watermark: int = -1
    voters: list[VoterFacts] = Field(default_factory=list)
    now_ms: int = Field(default=0, description="the time the facts were read (ms since epoch)")
    pod_ready: bool = False
    pod_uid: str = ""
    pod_revision: str = Field(default="", description="controller-revision-hash label of the pod")
    update_revision: str = Field(default="", description="the StatefulSet's updateRevision")
    waiting_reason: str = ""


class RestartPodInput(Message):
    """Delete ``pod`` only if it still has ``expected_uid`` (so a retry never restarts it twice)."""

    ref: ClusterRef
    pod: str
    expected_uid: str


class RestartPodResult(Message):
    deleted: bool = Field(description="False when the pod was already replaced (uid differs) or gone")
    previous_uid: str = ""


class WaitPodRolledInput(Message):
    """Wait (heartbeating) until the pod is back: a new uid, Ready, the node registered (brokers) or caught
    up in the quorum (controllers), and every replica of the broker back in its partitions' ISR."""

    ref: ClusterRef
    role: Role
    pod: str
    node_id: int
    old_uid: str
    poll_seconds: float = 1.0


class WaitPodRolledResult(Message):
    new_uid: str
    detail: str = ""


class ElectLeadersInput(Message):
    ref: ClusterRef
    node_id: int = Field(description="elect preferred leaders for the partitions whose preferred leader is this")


class ElectLeadersResult(Message):
    """What the preferred-leader election did; per-partition failures are reported, not raised (the roll
    goes on: the auto leader rebalancer, or the next roll, retries them)."""

    elected: list[str] = Field(default_factory=list, description="'topic-partition' whose preferred leader "
                                                                 "took over")
    not_needed: int = Field(default=0, description="partitions already led by their preferred replica")
    failed: dict[str, str] = Field(default_factory=dict, description="'topic-partition' -> Kafka error name")


# -- dynamic broker configuration (issue 5) ---------------------------------------------------------------
APPLY_DYNAMIC_CONFIGS = "apply_dynamic_configs"


class DynamicConfigsInput(Message):
    """Apply broker settings that need no restart with IncrementalAlterConfigs (which settings are dynamic, per
    Kafka version, is ``ballast.kafka_configs``). ``cluster_wide`` goes to the cluster-wide default (resource
    BROKER with an empty name), ``per_broker`` to each of ``brokers`` (resource BROKER named ``<node id>``).
    A value of None deletes the override (DELETE), so the broker falls back to its static value or Kafka's
    default. Idempotent: setting a value that is already set changes nothing."""

    ref: ClusterRef
    cluster_wide: dict[str, str | None] = Field(default_factory=dict)
    per_broker: dict[str, str | None] = Field(default_factory=dict)
    brokers: list[int] = Field(default_factory=list)


class DynamicConfigsResult(Message):
    applied: list[str] = Field(default_factory=list, description="'<resource>: key=value' set")
    deleted: list[str] = Field(default_factory=list, description="'<resource>: key' deleted")


# -- rebalancing, scale-in and volume expansion (issue 6) -------------------------------------------------
PLAN_REBALANCE = "plan_rebalance"
SUBMIT_REASSIGNMENTS = "submit_reassignments"
WAIT_REASSIGNMENTS = "wait_reassignments"
CANCEL_REASSIGNMENTS = "cancel_reassignments"
CLEAR_THROTTLES = "clear_throttles"
ELECT_LEADERS_FOR_PARTITIONS = "elect_leaders_for_partitions"
VERIFY_BROKERS_EMPTY = "verify_brokers_empty"
WAIT_BROKER_PODS_GONE = "wait_broker_pods_gone"
UNREGISTER_BROKERS = "unregister_brokers"
DELETE_BROKER_CLAIMS = "delete_broker_claims"
EXPAND_VOLUMES = "expand_volumes"
WAIT_VOLUMES_RESIZED = "wait_volumes_resized"


class MoveSpec(Message):
    """One partition reassignment: ``source`` replicas (as planned) -> ``target`` replicas (order = preference)."""

    topic: str
    partition: int
    source: list[int]
    target: list[int]
    size_bytes: int = 0

    @property
    def key(self) -> str:
        return f"{self.topic}-{self.partition}"

    @property
    def adding(self) -> list[int]:
        return [b for b in self.target if b not in self.source]

    @property
    def bytes_to_move(self) -> int:
        return self.size_bytes * len(self.adding)


class SpreadFacts(Message):
    mean: float = 0.0
    max_deviation_percent: float = 0.0


class BrokerBalance(Message):
    """One broker's load before and after the plan."""

    id: int
    rack: str | None = None
    capacity_bytes: int = 0
    replicas_before: int = 0
    replicas_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    leaders_before: int = 0
    leaders_after: int = 0


class PlanRebalanceInput(Message):
    """Observe the cluster through Kafka and plan a rebalance (:func:`ballast.rebalance.planner.plan_rebalance`).

    ``remove`` = broker ids to empty (scale-in); ``require_brokers`` = ids that must be registered for the plan
    to mean anything (the new brokers of a scale-out): missing ones fail the activity with a retryable error.
    ``max_moves`` bounds the plan's size in workflow history; a larger plan comes back ``truncated`` and the
    workflow plans again after running it."""

    ref: ClusterRef
    remove: list[int] = Field(default_factory=list)
    require_brokers: list[int] = Field(default_factory=list)
    tolerance_percent: int = 5
    capacity_threshold_percent: int = 85
    max_moves_per_batch: int = 20
    max_moves: int = 5000
    capacity_fallback_bytes: int = Field(default=0, description="disk size to assume when Kafka does not report "
                                                              "one (DescribeLogDirs < v4): the PVC size")


class PlanRebalanceResult(Message):
    batches: list[list[MoveSpec]] = Field(default_factory=list)
    infeasible: list[str] = Field(default_factory=list, description="hard goals no plan can reach; non-empty -> "
                                                                  "no batches, execute nothing")
    truncated: bool = False
    moves: int = 0
    bytes_to_move: int = 0
    lower_bound_bytes: int = 0
    replicas_before: SpreadFacts = Field(default_factory=SpreadFacts)
    replicas_after: SpreadFacts = Field(default_factory=SpreadFacts)
    disk_before: SpreadFacts = Field(default_factory=SpreadFacts)
    disk_after: SpreadFacts = Field(default_factory=SpreadFacts)
    leaders_before: SpreadFacts = Field(default_factory=SpreadFacts)
    leaders_after: SpreadFacts = Field(default_factory=SpreadFacts)
    max_disk_usage_after: float = 0.0
    brokers: list[BrokerBalance] = Field(default_factory=list)
    partitions: int = 0
    in_flight: list[str] = Field(default_factory=list, description="'topic-partition' already being reassigned "
                                                                 "(by someone else): planned around, not moved")
    notes: list[str] = Field(default_factory=list, description="what the plan could not do or left alone, for "
                                                             "people (RebalancePlan.notes)")


class SubmitReassignmentsInput(Message):
    """Set replication throttles for exactly the moving replicas, then submit the moves with
    AlterPartitionReassignments. Idempotent: a move already at its target or already in flight to it is not
    resubmitted; a move whose partition no longer has ``source`` replicas (changed by someone else) or whose
    topic is gone is skipped and reported."""

    ref: ClusterRef
    moves: list[MoveSpec]
    throttle_bytes_per_sec: int = Field(default=0, ge=0, description="0 = no throttle")


class SubmitReassignmentsResult(Message):
    submitted: list[str] = Field(default_factory=list, description="'topic-partition'")
    already_done: list[str] = Field(default_factory=list)
    already_in_flight: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="'topic-partition' -> why")
    throttled_brokers: list[int] = Field(default_factory=list)
    throttled_topics: list[str] = Field(default_factory=list)


class WaitReassignmentsInput(Message):
    """Poll (heartbeating) ListPartitionReassignments and DescribeLogDirs until none of ``moves`` is in flight,
    or until ``report_after_seconds`` passed: then return the progress so far (``done`` False) and the workflow
    calls again. Kafka being unreachable for a while (a broker restarting) is waited out, not failed."""

    ref: ClusterRef
    moves: list[MoveSpec]
    report_after_seconds: float = 10.0
    poll_seconds: float = 1.0


class WaitReassignmentsResult(Message):
    done: bool
    bytes_total: int = 0
    bytes_moved: int = Field(default=0, description="bytes the added replicas hold so far")
    in_flight: list[str] = Field(default_factory=list)
    completed: list[str] = Field(default_factory=list)
    not_at_target: dict[str, str] = Field(default_factory=dict, description="'topic-partition' no longer in flight "
                                                                          "but not on its target (cancelled by "
                                                                          "someone) -> its replicas")
    detail: str = ""


class CancelReassignmentsInput(Message):
    """Cancel in-flight reassignments of these partitions ('topic-partition'); None = every in-flight one.
    Kafka reverts each cancelled partition to its original replicas: the assignment stays consistent."""

    ref: ClusterRef
    partitions: list[str] | None = None


class CancelReassignmentsResult(Message):
    cancelled: list[str] = Field(default_factory=list)
    not_in_flight: list[str] = Field(default_factory=list)


class ClearThrottlesInput(Message):
    """Remove ``leader/follower.replication.throttled.replicas`` from the topics and the throttle rates from
    the brokers. ``topics``/``brokers`` None = every topic/broker that has them. Idempotent."""

    ref: ClusterRef
    topics: list[str] | None = None
    brokers: list[int] | None = None


class ClearThrottlesResult(Message):
    topics: list[str] = Field(default_factory=list, description="topics whose throttle configs were removed")
    brokers: list[int] = Field(default_factory=list)


class ElectPartitionsInput(Message):
    ref: ClusterRef
    partitions: list[str] = Field(description="'topic-partition' whose preferred leader should lead")


class VerifyBrokersEmptyInput(Message):
    ref: ClusterRef
    brokers: list[int]


class VerifyBrokersEmptyResult(Message):
    """What Kafka says the brokers still hold: partition replicas (Metadata, including replicas being added by
    reassignments) and, for brokers that answer, replica logs on disk (DescribeLogDirs)."""

    holders: dict[int, list[str]] = Field(default_factory=dict, description="broker id -> 'topic-partition' "
                                                                          "(only brokers holding something)")

    @property
    def empty(self) -> bool:
        return not any(self.holders.values())


class WaitBrokerPodsGoneInput(Message):
    """Wait (heartbeating) until the broker pods with ordinal >= ``replicas`` are gone."""

    ref: ClusterRef
    replicas: int = Field(ge=0)
    poll_seconds: float = 1.0


class UnregisterBrokersInput(Message):
    """UnregisterBroker for each id (KRaft forgets the removed brokers). An id that is not registered counts as
    done; a broker still running is refused (non-retryable)."""

    ref: ClusterRef
    brokers: list[int]


class UnregisterBrokersResult(Message):
    unregistered: list[int] = Field(default_factory=list)
    not_registered: list[int] = Field(default_factory=list)


class DeleteBrokerClaimsInput(Message):
    """Delete the PVCs of the broker ordinals given (after a scale-in, with ``deleteClaim``). Refused for an
    ordinal whose pod still exists. Idempotent."""

    ref: ClusterRef
    ordinals: list[int]


class DeleteBrokerClaimsResult(Message):
    deleted: list[str] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list)


class ExpandVolumesInput(Message):
    """Grow every PVC of ``role`` whose requested size is below ``size`` (never shrink). The StatefulSet's
    volumeClaimTemplates must already ask for ``size`` so new pods get it: ``apply_manifests`` with the new spec
    re-creates the StatefulSet (templates are immutable) with ``propagationPolicy: Orphan``, so no pod restarts;
    called before that, this fails non-retryably (``TemplateNotExpanded``)."""

    ref: ClusterRef
    role: Role = "broker"
    size: str


class ExpandVolumesResult(Message):
    expanded: list[str] = Field(default_factory=list, description="PVC names patched")
    already: list[str] = Field(default_factory=list, description="PVC names already at or above size")


class WaitVolumesResizedInput(Message):
    """Wait (heartbeating) until every PVC of ``role`` either reports ``capacity >= size`` or carries the
    ``FileSystemResizePending`` condition (the pod must restart to finish). A resize the storage driver
    rejects (``ControllerResizeInfeasible``) fails the activity non-retryably with its message."""

    ref: ClusterRef
    role: Role = "broker"
    size: str
    poll_seconds: float = 1.0


class WaitVolumesResizedResult(Message):
    resized: list[str] = Field(default_factory=list, description="PVCs whose capacity already reached size")
    restart_needed: dict[str, int] = Field(default_factory=dict, description="PVC -> node id of the pod that must "
                                                                           "restart (FileSystemResizePending)")
