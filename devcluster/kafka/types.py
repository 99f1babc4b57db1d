"""Public value types of the simulated Kafka cluster model (what protocol handlers read and pass in).

Conventions:
- Node ids, partition indexes and offsets are ints; ``-1`` means "none" exactly as on the wire
  (e.g. ``leader == -1`` for an offline partition).
- Times are simulated seconds since the epoch (floats) inside the model; fields whose names end in
  ``_ms`` are epoch milliseconds, ready for the wire.
- Enumerations carry Kafka's wire numbers, so ``int(x)`` can be written into a response directly.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from devcluster.kafka.errors import ErrorCode

BROKER = "broker"
CONTROLLER = "controller"


class ConfigResourceType(enum.IntEnum):
    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


class ConfigSource(enum.IntEnum):
    """DescribeConfigs ``config_source`` (DescribeConfigsResponse v1+)."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


class ConfigType(enum.IntEnum):
    """DescribeConfigs ``config_type`` (v3+)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class AlterConfigOp(enum.IntEnum):
    """IncrementalAlterConfigs ``config_operation``."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class ElectionType(enum.IntEnum):
    """ElectLeaders ``election_type`` (v1+; v0 is always PREFERRED)."""

    PREFERRED = 0
    UNCLEAN = 1


class Dynamic(enum.Enum):
    """How a broker config may be changed at run time (Kafka's DynamicBrokerConfig rules)."""

    READ_ONLY = "read-only"
    PER_BROKER = "per-broker"
    CLUSTER_WIDE = "cluster-wide"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An advertised listener: ``name`` is the listener name (e.g. ``PLAINTEXT``, ``CONTROLLER``).

    ``host``/``port`` are what the process advertises (usually a pod DNS name); the protocol layer maps
    them to loopback addresses when it writes Metadata / DescribeCluster responses.
    """

    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(frozen=True, slots=True)
class LogDirSpec:
    """A log directory a broker was started with, and the capacity of the volume behind it."""

    path: str
    capacity_bytes: int


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node (process) as the model knows it.

    ``running``: the process is up. ``registered``/``fenced`` are the controller's view of a broker:
    Metadata/DescribeCluster list only brokers that are registered and not fenced (KRaft semantics);
    a crashed broker stays unfenced until ``broker.session.timeout.ms`` passes.
    """

    node_id: int
    roles: frozenset[str]
    rack: str | None
    endpoints: tuple[Endpoint, ...]
    log_dirs: tuple[LogDirSpec, ...]
    running: bool
    registered: bool
    fenced: bool
    incarnation_id: uuid.UUID
    directory_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class ReplicaDirView:
    """One replica inside a log dir (DescribeLogDirs)."""

    topic: str
    partition: int
    size_bytes: int
    offset_lag: int
    is_future: bool = False


@dataclass(frozen=True, slots=True)
class LogDirView:
    """One log dir of one broker (DescribeLogDirs). A failed dir has error KAFKA_STORAGE_ERROR,
    ``total_bytes == usable_bytes == -1`` and no replicas."""

    path: str
    error: ErrorCode
    total_bytes: int
    usable_bytes: int
    replicas: tuple[ReplicaDirView, ...]


@dataclass(frozen=True, slots=True)
class QuorumReplicaView:
    """A voter or observer in DescribeQuorum. ``-1`` values mean "unknown to the current leader"."""

    replica_id: int
    replica_directory_id: uuid.UUID
    log_end_offset: int
    last_fetch_timestamp_ms: int
    last_caught_up_timestamp_ms: int


@dataclass(frozen=True, slots=True)
class QuorumView:
    """DescribeQuorum's partition data for ``__cluster_metadata``-0 (plus ``nodes`` for v2)."""

    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: tuple[QuorumReplicaView, ...]
    observers: tuple[QuorumReplicaView, ...]
    voter_endpoints: dict[int, tuple[Endpoint, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigSynonym:
    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True, slots=True)
class ConfigEntryView:
    """One DescribeConfigs entry. ``value`` is None for sensitive configs (as Kafka sends)."""

    name: str
    value: str | None
    read_only: bool
    is_default: bool
    source: ConfigSource
    is_sensitive: bool
    config_type: ConfigType
    documentation: str | None = None
    synonyms: tuple[ConfigSynonym, ...] = ()


@dataclass(frozen=True, slots=True)
class CreateTopicResult:
    """CreateTopics per-topic data on success (v5+ also returns the configs)."""

    name: str
    topic_id: uuid.UUID
    num_partitions: int
    replication_factor: int
    configs: tuple[ConfigEntryView, ...]


@dataclass(frozen=True, slots=True)
class ReassignmentView:
    """ListPartitionReassignments per-partition data (``replicas`` is the full in-flight set)."""

    topic: str
    partition: int
    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ElectionResult:
    topic: str
    partition: int
    error: ErrorCode
    message: str | None


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One entry of the model's append-only history.

    ``kind`` is one of: ``isr`` (topic, partition, isr, leader, leader_epoch), ``node_start``,
    ``node_stop`` (node, graceful), ``broker_registered`` (node; registered with the controller, fenced),
    ``broker_fenced``/``broker_unfenced`` (node),
    ``broker_fenced`` also has ``reason`` (``controlled_shutdown`` or ``session_timeout``),
    ``quorum_leader`` (leader, epoch; leader -1 when the quorum lost its leader), ``topic_created``,
    ``topic_deleted``, ``reassignment_started``/``reassignment_completed``/``reassignment_cancelled``
    (topic, partition, replicas, adding, removing), ``log_dir_failed``/``log_dir_restored``
    (node, path). ``min_isr`` is the partition's effective min.insync.replicas for ``isr`` events.
    """

    time: float
    kind: str
    topic: str | None = None
    partition: int | None = None
    node: int | None = None
    isr: tuple[int, ...] = ()
    leader: int | None = None
    leader_epoch: int | None = None
    replicas: tuple[int, ...] = ()
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()
    min_isr: int | None = None
    graceful: bool | None = None
    path: str | None = None
    epoch: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MinIsrViolation:
    time: float
    topic: str
    partition: int
    isr_size: int
    min_isr: int
