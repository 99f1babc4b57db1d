"""The observed state the operator reports on a ``KafkaCluster``: its ``status``.

Conditions follow the Kubernetes conventions (``type``/``status``/``reason``/``message``,
``observedGeneration`` and ``lastTransitionTime``), so ``kubectl wait --for=condition=Ready`` works.
``currentOperation`` names the Temporal workflow doing the slow work right now, so a user can jump from
``kubectl get kc`` to the operation's history in the Temporal UI.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ballast.spec import Model


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    RECONCILING = "Reconciling"
    DEGRADED = "Degraded"
    INVALID = "Invalid"
    DELETING = "Deleting"


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    DEGRADED = "Degraded"
    INVALID = "Invalid"


class Condition(Model):
    type: str
    status: str = Field(pattern="^(True|False|Unknown)$")
    reason: str = Field(pattern="^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    observed_generation: int = 0
    last_transition_time: str = Field(description="RFC 3339 time the status last changed.")


class ReplicaCounts(Model):
    desired: int = 0
    ready: int = 0


class OperationStatus(Model):
    """The operation a workflow is running now (roll, scale, rebalance, provisioning...)."""

    type: str
    workflow_id: str
    step: str = ""
    progress: str = Field(default="", description="Human-readable progress, e.g. '2/6 brokers'.")
    started_at: str = ""


class LastOperation(Model):
    type: str
    workflow_id: str
    result: str = Field(pattern="^(Succeeded|Failed|Cancelled)$")
    message: str = ""
    finished_at: str = ""


class RebalanceStatus(Model):
    """The latest rebalance (after a scale-out or scale-in, for disk skew, or asked for): its plan's figures and
    how far it got. With ``rebalance.mode: approval`` a plan waits here in state ``AwaitingApproval``."""

    state: str = Field(pattern="^(Planning|AwaitingApproval|Running|Paused|Succeeded|Failed|Cancelled)$")
    reason: str = ""
    workflow_id: str = ""
    moves: int = 0
    batches: int = 0
    batches_done: int = 0
    bytes_to_move: int = 0
    bytes_moved: int = 0
    lower_bound_bytes: int = 0
    disk_spread_before: str = Field(default="", description="largest deviation of a broker's disk bytes from "
                                                            "the mean, e.g. '37.5%'")
    disk_spread_after: str = ""
    replica_spread_before: str = ""
    replica_spread_after: str = ""
    eta: str = Field(default="", description="estimated time left, e.g. '4m10s'")
    message: str = ""


class KafkaClusterStatus(Model):
    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int = 0
    brokers: ReplicaCounts = Field(default_factory=ReplicaCounts)
    controllers: ReplicaCounts = Field(default_factory=ReplicaCounts)
    ready_brokers: str = Field(default="0/0", description="'ready/desired', for kubectl's Brokers column.")
    broker_selector: str = Field(default="", description="Label selector of the broker pods (scale "
                                                         "subresource).")
    cluster_id: str | None = Field(default=None, description="The KRaft cluster id; generated once, never "
                                                             "changed.")
    current_operation: OperationStatus | None = None
    last_operation: LastOperation | None = None
    rebalance: RebalanceStatus | None = None


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of the same type, keeping ``lastTransitionTime`` when ``status`` is unchanged."""
    out: list[Condition] = []
    replaced = False
    for cond in conditions:
        if cond.type == new.type:
            replaced = True
            if cond.status == new.status:
                new = new.model_copy(update={"last_transition_time": cond.last_transition_time})
            out.append(new)
        else:
            out.append(cond)
    if not replaced:
        out.append(new)
    return out
