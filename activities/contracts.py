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


class EventInput(Message):
    """A core/v1 Event on the KafkaCluster (reason in CamelCase, e.g. ProvisioningStarted)."""

    ref: ClusterRef
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str


class CleanupInput(Message):
    ref: ClusterRef
    delete_claims: bool = False


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
