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

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DEFAULT_TASK_QUEUE = "ballast"

# Signal, query and update names: part of the public interface (README, Temporal CLI).
SIGNAL_SPEC_CHANGED = "spec_changed"
SIGNAL_OBSERVED_CHANGED = "observed_changed"
QUERY_STATUS = "status"
QUERY_PLAN = "plan"
UPDATE_PAUSE = "pause"
UPDATE_RESUME = "resume"
UPDATE_REQUEST_ROLL = "request_roll"

# Typed search attributes the worker registers on start-up.
SA_CLUSTER_NAME = "KafkaClusterName"
SA_CLUSTER_NAMESPACE = "KafkaClusterNamespace"
SA_CLUSTER_PHASE = "KafkaClusterPhase"


def cluster_workflow_id(namespace: str, name: str) -> str:
    return f"kafkacluster/{namespace}/{name}"


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
