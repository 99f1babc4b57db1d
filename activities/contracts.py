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
