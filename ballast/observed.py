"""What the ``observe_cluster`` activity reports: the actual state of one Kafka cluster.

It is the planner's only input besides the spec, so it holds facts, not opinions: which owned objects
exist (and the hash of what was last applied to them), how ready the pods are, and what Kafka itself says
(quorum leader, registered brokers). No secrets ever go in here: it is recorded in workflow history.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ballast.messages import Message


class ObjectState(Message):
    kind: str
    name: str
    exists: bool
    spec_hash: str = Field(default="", description="kafka.ballast.dev/spec-hash of the live object")


class PodState(Message):
    name: str
    node_id: int
    ready: bool
    phase: str = ""
    deleting: bool = False
    uid: str = ""
    config_hash: str = Field(default="", description="kafka.ballast.dev/config-hash on the pod")
    waiting_reason: str = Field(default="", description="e.g. CrashLoopBackOff, CreateContainerConfigError")
    # Rolling restarts (issue 5); empty/False when the observer does not report them.
    revision: str = Field(default="", description="the pod's controller-revision-hash label")
    unschedulable: bool = Field(default=False, description="Pending with PodScheduled False/Unschedulable")
    rack: str = Field(default="", description="brokers: the value of the rackAwareness topologyKey pod label")


class StatefulSetState(Message):
    name: str
    exists: bool
    replicas: int = 0
    ready_replicas: int = 0
    observed_generation: int = 0
    generation: int = 0
    # Rolling restarts (issue 5): pods whose revision differs from update_revision need a restart (OnDelete).
    update_revision: str = Field(default="", description="status.updateRevision")
    current_revision: str = Field(default="", description="status.currentRevision")


class KafkaState(Message):
    """What the Kafka admin API says; ``reachable`` False means nothing below is known."""

    reachable: bool = False
    error: str = ""
    cluster_id: str | None = None
    quorum_leader_id: int | None = None
    quorum_voters: list[int] = Field(default_factory=list)
    registered_brokers: list[int] = Field(default_factory=list)


class ObservedCluster(Message):
    namespace: str
    name: str
    found: bool = Field(description="False once the KafkaCluster is gone from the API server")
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    deleting: bool = False
    finalizers: list[str] = Field(default_factory=list)
    annotations: dict[str, str] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(default_factory=dict, description="the raw spec, validated by the planner")
    cluster_id: str | None = Field(default=None, description="status.clusterId as persisted")
    objects: list[ObjectState] = Field(default_factory=list)
    controllers: StatefulSetState | None = None
    brokers: StatefulSetState | None = None
    controller_pods: list[PodState] = Field(default_factory=list)
    broker_pods: list[PodState] = Field(default_factory=list)
    kafka: KafkaState = Field(default_factory=KafkaState)
