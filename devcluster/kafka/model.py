"""The simulated Kafka cluster (KRaft) shared by all simulated processes of one cluster.

Protocol handlers call these methods and translate results to wire messages; they never mutate the
model's objects. Every public method first advances the simulation to ``clock.now()`` (lazily: only
partitions with something in flight need work), so answers are always current.

Errors: a per-item failure raises :class:`~devcluster.kafka.errors.KafkaError` carrying the code and
message a real Kafka would return; metadata writes while the quorum has no leader raise
:class:`~devcluster.kafka.errors.NoActiveController`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

from devcluster.kafka.errors import ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.simclock import SimClock
from devcluster.kafka.types import (
    AlterConfigOp,
    ConfigEntryView,
    ConfigResourceType,
    CreateTopicResult,
    ElectionResult,
    ElectionType,
    Endpoint,
    HistoryEvent,
    LogDirSpec,
    LogDirView,
    MinIsrViolation,
    NodeView,
    QuorumView,
    ReassignmentView,
)

__all__ = [
    "ErrorCode",
    "KafkaClusterModel",
    "KafkaError",
    "NoActiveController",
    "PartitionState",
    "TopicState",
]


class PartitionState:
    """Live state of one partition. READ-ONLY for callers (the model replaces the tuples on change).

    Attributes: ``topic``, ``topic_id``, ``index``, ``replicas`` (full set in replica order, including
    adding/removing replicas during a reassignment), ``isr``, ``leader`` (-1 = offline),
    ``leader_epoch``, ``partition_epoch``, ``adding_replicas``, ``removing_replicas``,
    ``offline_replicas`` (replicas on fenced brokers or failed log dirs, as KRaft's metadata cache
    reports them). Sizes: :meth:`KafkaClusterModel.replica_size`.
    """

    __slots__ = ()  # filled in by the implementation

    topic: str
    topic_id: uuid.UUID
    index: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]
    offline_replicas: tuple[int, ...]


class TopicState:
    """Live state of one topic. READ-ONLY for callers. ``partitions[i].index == i``."""

    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionState]
    is_internal: bool
    configs: Mapping[str, str]  # the topic's dynamic (DYNAMIC_TOPIC_CONFIG) overrides only


class KafkaClusterModel:
    """One simulated Kafka cluster.

    ``clock`` is shared by every model of a devcluster (see :class:`ClusterDirectory`).
    """

    def __init__(self, cluster_id: str, clock: SimClock) -> None:
        self.cluster_id = cluster_id
        self.clock = clock

    # ----------------------------------------------------------------- time
    def advance_to(self, t: float | None = None) -> None:
        """Run the simulation up to simulated time ``t`` (default ``clock.now()``); never backwards."""
        raise NotImplementedError

    def next_event_time(self) -> float | None:
        """Simulated time of the next scheduled state change (catch-up done, election, fencing...),
        or None if nothing is pending. A ticker may sleep ``clock.wall_delay(t)`` until then."""
        raise NotImplementedError

    @property
    def now(self) -> float:
        """The simulated time the model has advanced to."""
        raise NotImplementedError

    # ------------------------------------------------------------ lifecycle
    def start_node(
        self,
        node_id: int,
        *,
        roles: Iterable[str],
        rack: str | None = None,
        endpoints: Sequence[Endpoint] = (),
        log_dirs: Sequence[LogDirSpec] = (),
        static_config: Mapping[str, str] | None = None,
    ) -> NodeView:
        """A process with ``process.roles`` = ``roles`` (``broker``/``controller``) started.

        ``static_config`` is its server.properties (after env-to-property mapping); keys the model uses:
        ``controller.quorum.voters`` (``id@host:port,...``; fixes the voter set the first time it is seen),
        ``broker.session.timeout.ms``, ``controller.quorum.election.timeout.ms``,
        ``controller.quorum.fetch.timeout.ms``, ``num.partitions``, ``default.replication.factor``,
        ``min.insync.replicas`` and every other broker config (reported as STATIC_BROKER_CONFIG).
        Starting a running node again is a restart (new incarnation). A broker registers with the
        controller and is unfenced as soon as the quorum has a leader; its replicas then catch up.
        Raises KafkaError(INCONSISTENT_CLUSTER_ID) if ``static_config['cluster.id']`` is set and differs.
        """
        raise NotImplementedError

    def stop_node(self, node_id: int, *, graceful: bool = True) -> None:
        """The process stopped. Graceful: controlled shutdown (leaders move and the broker leaves ISRs
        immediately if the quorum has a leader). Not graceful (SIGKILL/crash): the controller notices only
        after ``broker.session.timeout.ms``. A stopped controller voter stops fetching the metadata log."""
        raise NotImplementedError

    def node(self, node_id: int) -> NodeView:
        """Raises KafkaError(BROKER_NOT_AVAILABLE) for an unknown node id."""
        raise NotImplementedError

    def nodes(self) -> list[NodeView]:
        raise NotImplementedError

    def alive_brokers(self) -> list[NodeView]:
        """Registered, unfenced brokers, by node id: the Metadata / DescribeCluster broker list."""
        raise NotImplementedError

    def broker(self, node_id: int) -> NodeView | None:
        """The node if it has the broker role, else None."""
        raise NotImplementedError

    def controllers(self) -> list[NodeView]:
        """Running nodes with the controller role (DescribeCluster endpointType=controller)."""
        raise NotImplementedError

    def active_controller_id(self) -> int:
        """The KRaft quorum leader, or -1 (Metadata/DescribeCluster ``controller_id``)."""
        raise NotImplementedError

    # --------------------------------------------------------------- quorum
    def quorum_state(self) -> QuorumView:
        """DescribeQuorum data for __cluster_metadata-0 as the current leader sees it."""
        raise NotImplementedError

    # --------------------------------------------------------------- topics
    def topics(self) -> list[TopicState]:
        """All topics, ordered by name (live read-only objects)."""
        raise NotImplementedError

    def topic(self, name: str) -> TopicState | None:
        raise NotImplementedError

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicState | None:
        raise NotImplementedError

    def create_topic(
        self,
        name: str,
        *,
        num_partitions: int = -1,
        replication_factor: int = -1,
        assignment: Mapping[int, Sequence[int]] | None = None,
        configs: Mapping[str, str | None] | None = None,
        validate_only: bool = False,
    ) -> CreateTopicResult:
        """CreateTopics for one topic. -1 means the broker default (num.partitions /
        default.replication.factor). ``assignment`` maps partition index -> broker ids (then
        num_partitions and replication_factor must be -1). Errors as Kafka: TOPIC_ALREADY_EXISTS,
        INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT,
        INVALID_CONFIG, INVALID_REQUEST; NoActiveController."""
        raise NotImplementedError

    def create_partitions(
        self,
        name: str,
        count: int,
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """CreatePartitions: grow ``name`` to ``count`` partitions."""
        raise NotImplementedError

    def delete_topic(self, name: str | None = None, topic_id: uuid.UUID | None = None) -> tuple[str, uuid.UUID]:
        """DeleteTopics for one topic by name or id; returns (name, id). UNKNOWN_TOPIC_OR_PARTITION /
        UNKNOWN_TOPIC_ID when missing; NoActiveController."""
        raise NotImplementedError

    def replica_size(self, partition: PartitionState, broker_id: int) -> int:
        """Bytes of ``partition``'s log on ``broker_id`` now (0 if not a replica there)."""
        raise NotImplementedError

    # -------------------------------------------------------------- configs
    def describe_configs(
        self,
        resource_type: ConfigResourceType,
        resource_name: str,
        keys: Sequence[str] | None = None,
        *,
        include_synonyms: bool = False,
        include_documentation: bool = False,
        handling_node: int | None = None,
    ) -> list[ConfigEntryView]:
        """DescribeConfigs for one resource, entries sorted by name. A BROKER resource named ``""`` is
        the cluster-wide default (only dynamic default entries); a broker id must equal
        ``handling_node`` if given (else INVALID_REQUEST, as Kafka). Unknown topic:
        UNKNOWN_TOPIC_OR_PARTITION; unsupported resource type: INVALID_REQUEST."""
        raise NotImplementedError

    def incremental_alter_configs(
        self,
        resource_type: ConfigResourceType,
        resource_name: str,
        ops: Sequence[tuple[str, AlterConfigOp, str | None]],
        *,
        validate_only: bool = False,
        handling_node: int | None = None,
    ) -> None:
        """IncrementalAlterConfigs for one resource: (name, op, value) triples applied atomically.
        Dynamic broker configs take effect at once (e.g. throttle rates). INVALID_CONFIG / INVALID_REQUEST
        for unknown, read-only or malformed configs; NoActiveController."""
        raise NotImplementedError

    def alter_configs(
        self,
        resource_type: ConfigResourceType,
        resource_name: str,
        configs: Mapping[str, str | None],
        *,
        validate_only: bool = False,
        handling_node: int | None = None,
    ) -> None:
        """Legacy AlterConfigs: replaces ALL dynamic configs of the resource with ``configs``."""
        raise NotImplementedError

    # ------------------------------------------------------------- log dirs
    def describe_log_dirs(
        self, broker_id: int, partitions: Mapping[str, Sequence[int]] | None = None
    ) -> list[LogDirView]:
        """DescribeLogDirs as answered by ``broker_id``: every log dir, with replicas filtered to
        ``partitions`` (None = all)."""
        raise NotImplementedError

    # --------------------------------------------------------- reassignment
    def alter_reassignment(self, topic: str, partition: int, target: Sequence[int] | None) -> None:
        """AlterPartitionReassignments for one partition; ``target`` None cancels.
        Errors: UNKNOWN_TOPIC_OR_PARTITION, NO_REASSIGNMENT_IN_PROGRESS (cancel with none in flight),
        INVALID_REPLICA_ASSIGNMENT (empty, duplicates, unknown brokers); NoActiveController."""
        raise NotImplementedError

    def list_reassignments(
        self, partitions: Mapping[str, Sequence[int]] | None = None
    ) -> list[ReassignmentView]:
        """ListPartitionReassignments: in-flight reassignments (unknown partitions are skipped)."""
        raise NotImplementedError

    def elect_leaders(
        self, election_type: ElectionType, partitions: Mapping[str, Sequence[int]] | None = None
    ) -> list[ElectionResult]:
        """ElectLeaders. Per partition: NONE when leadership moved, ELECTION_NOT_NEEDED,
        PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION.
        ``partitions=None`` means all partitions (results then only for partitions that were elected)."""
        raise NotImplementedError

    # -------------------------------------------------------------- history
    def history(self) -> list[HistoryEvent]:
        """A copy of the append-only history up to now."""
        raise NotImplementedError

    def min_isr_violations(self) -> list[MinIsrViolation]:
        """Every ISR change that left a partition with fewer in-sync replicas than its min.insync.replicas."""
        raise NotImplementedError

    # ------------------------------------------------- simulation controls
    def set_ingest_rate(self, topic: str, bytes_per_s: float, weights: Sequence[float] | None = None) -> None:
        raise NotImplementedError

    def set_replication_rate(self, bytes_per_s: float) -> None:
        raise NotImplementedError

    def set_broker_slowness(self, broker_id: int, factor: float) -> None:
        raise NotImplementedError

    def fail_log_dir(self, broker_id: int, path: str) -> None:
        raise NotImplementedError

    def restore_log_dir(self, broker_id: int, path: str, *, wiped: bool = False) -> None:
        raise NotImplementedError

    def inflate_partition(self, topic: str, partition: int, extra_bytes: int) -> None:
        raise NotImplementedError


class ClusterDirectory:
    """Maps cluster ids to models for ONE devcluster (processes of one Kafka cluster share a model).

    Owned by the devcluster (see :func:`devcluster.kafka.directory_for`), never process-global, so
    tests do not leak state into each other. All models share ``clock``.
    """

    def __init__(self, clock: SimClock | None = None) -> None:
        self.clock = clock or SimClock()
        self._models: dict[str, KafkaClusterModel] = {}

    def get_or_create(self, cluster_id: str) -> KafkaClusterModel:
        model = self._models.get(cluster_id)
        if model is None:
            model = self._models[cluster_id] = KafkaClusterModel(cluster_id, self.clock)
        return model

    def get(self, cluster_id: str) -> KafkaClusterModel | None:
        return self._models.get(cluster_id)

    def models(self) -> list[KafkaClusterModel]:
        return list(self._models.values())
