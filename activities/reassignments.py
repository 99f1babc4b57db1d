"""kafka-python calls for partitions, reassignments, log dirs and replication throttles, with errors
classified.

The admin reads and writes that the rebalance activities (:mod:`activities.rebalance`) build on: Metadata
(:func:`describe_partitions`), ListPartitionReassignments (:func:`list_reassignments`), DescribeCluster
(:func:`describe_brokers`), DescribeLogDirs (:func:`describe_log_dirs`), and the throttled-replica configs of
topics (:func:`set_topic_throttles`, :func:`alter_topic_configs`, :func:`describe_topic_throttles`). A partition
is a ``(topic, partition)`` tuple, :data:`PartitionKey`.

Errors: a topic config Kafka refuses (``dynamic_configs.REJECTED``) raises
:class:`~activities.dynamic_configs.ConfigRejected`; every other failure to get an answer (a connection lost, a
timeout, an error code) raises :class:`~activities.clients.KafkaUnreachable`, and :func:`ask_kafka` wraps a
client call so. A topic that is gone is not an error: it is left out of what is reported or set. Nothing here
talks to Temporal; the activities turn these errors into theirs.

The throttle config names follow ``kafka-reassign-partitions``: :data:`TOPIC_THROTTLES` per topic,
:data:`BROKER_THROTTLES` per broker (those are set through :mod:`activities.dynamic_configs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kafka.protocol.admin import DescribeLogDirsRequest

from activities import clients, dynamic_configs
from activities.clients import KafkaUnreachable, ask_kafka

LEADER_THROTTLED_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_THROTTLED_REPLICAS = "follower.replication.throttled.replicas"
LEADER_THROTTLED_RATE = "leader.replication.throttled.rate"
FOLLOWER_THROTTLED_RATE = "follower.replication.throttled.rate"
TOPIC_THROTTLES = (LEADER_THROTTLED_REPLICAS, FOLLOWER_THROTTLED_REPLICAS)
BROKER_THROTTLES = (LEADER_THROTTLED_RATE, FOLLOWER_THROTTLED_RATE)

PartitionKey = tuple[str, int]  # (topic, partition index)


def by_topic(keys: Iterable[PartitionKey]) -> dict[str, list[int]]:
    """topic -> its partition indexes, sorted and without repeats (the shape the admin requests take)."""
    out: dict[str, list[int]] = {}
    for topic, index in sorted(set(keys)):
        out.setdefault(topic, []).append(index)
    return out


@dataclass(frozen=True)
class PartitionMetadata:
    """One partition as Metadata reports it: its replicas (the preferred leader first) and its leader
    (-1: none)."""

    replicas: tuple[int, ...]
    leader: int


def describe_partitions(admin: KafkaAdminClient,
                        topics: list[str] | None = None) -> dict[PartitionKey, PartitionMetadata]:
    """Every partition of ``topics`` (None: all) as Metadata reports it. A topic answering with an error
    (unknown, being deleted) is left out: its partitions are "gone"."""
    described: list[dict[str, Any]] = ask_kafka("Metadata", admin.describe_topics, topics)
    out: dict[PartitionKey, PartitionMetadata] = {}
    for topic in described:
        if topic.get("error_code"):
            continue
        for part in topic.get("partitions") or []:
            out[(str(topic["name"]), int(part["partition_index"]))] = PartitionMetadata(
                replicas=tuple(int(r) for r in part.get("replica_nodes") or []),
                leader=int(part.get("leader_id", -1)))
    return out


@dataclass(frozen=True)
class InFlightReassignment:
    """One reassignment in flight: ``replicas`` is the full set (target, then the replicas being removed)."""

    replicas: tuple[int, ...]
    adding: tuple[int, ...]
    removing: tuple[int, ...]

    @property
    def target(self) -> list[int]:
        return [r for r in self.replicas if r not in self.removing]

    @property
    def original(self) -> list[int]:
        return [r for r in self.replicas if r not in self.adding]


def list_reassignments(admin: KafkaAdminClient,
                       keys: Iterable[PartitionKey] | None = None) -> dict[PartitionKey, InFlightReassignment]:
    """ListPartitionReassignments, for ``keys`` (None: every partition)."""
    wanted = None if keys is None else by_topic(keys)
    if wanted is not None and not wanted:
        return {}
    listed = ask_kafka("ListPartitionReassignments", admin.list_partition_reassignments, wanted) or {}
    return {(tp.topic, tp.partition): InFlightReassignment(tuple(state.get("replicas") or ()),
                                                tuple(state.get("adding_replicas") or ()),
                                                tuple(state.get("removing_replicas") or ()))
            for tp, state in listed.items()}


@dataclass
class RegisteredBrokers:
    """DescribeCluster: the registered brokers (fenced ones included) and their racks."""

    racks: dict[int, str | None] = field(default_factory=dict)
    fenced: set[int] = field(default_factory=set)

    @property
    def active(self) -> list[int]:
        return sorted(b for b in self.racks if b not in self.fenced)


def describe_brokers(admin: KafkaAdminClient) -> RegisteredBrokers:
    cluster: dict[str, Any] = ask_kafka("DescribeCluster", admin.describe_cluster)
    out = RegisteredBrokers()
    for broker in cluster.get("brokers") or []:
        node = int(broker["broker_id"])
        out.racks[node] = broker.get("rack") or None
        if broker.get("is_fenced"):
            out.fenced.add(node)
    return out


@dataclass
class BrokerLogDirs:
    """DescribeLogDirs as one broker answers it: the replica logs it has and the disk size of its online log
    dirs (0 when the broker does not report one: DescribeLogDirs < v4)."""

    capacity: int = 0
    sizes: dict[PartitionKey, int] = field(default_factory=dict)


def describe_log_dirs(admin: KafkaAdminClient, broker: int,
                      keys: Iterable[PartitionKey] | None = None) -> BrokerLogDirs:
    """DescribeLogDirs sent to ``broker`` about ``keys`` (None: every replica log it has, including logs of
    partitions Metadata no longer lists). A future replica (an intra-broker move) counts as a log too."""
    topics = None if keys is None else list(by_topic(keys).items())
    response = clients.admin_request(admin, DescribeLogDirsRequest(topics=topics), node_id=broker)
    top = int(getattr(response, "error_code", 0) or 0)
    if top:
        raise KafkaUnreachable(f"DescribeLogDirs on broker {broker}: {kafka_errors.for_code(top).__name__}")
    out = BrokerLogDirs()
    for result in response.results:
        if result.error_code:  # an offline dir: no replicas, no capacity to count on
            continue
        out.capacity += max(0, int(getattr(result, "total_bytes", -1) or 0))
        for topic in result.topics:
            for part in topic.partitions:
                key = (str(topic.name), int(part.partition_index))
                out.sizes[key] = max(out.sizes.get(key, 0), int(part.partition_size))
    return out


def set_topic_throttles(admin: KafkaAdminClient, values: Mapping[str, tuple[str, str]]) -> list[str]:
    """SET the two throttled-replica lists per topic; returns the topics set (a topic that is gone is
    skipped: its moves fail on their own)."""
    return alter_topic_configs(admin, {t: {LEADER_THROTTLED_REPLICAS: (AlterConfigOp.SET, leader),
                                     FOLLOWER_THROTTLED_REPLICAS: (AlterConfigOp.SET, follower)}
                                 for t, (leader, follower) in values.items()})


def alter_topic_configs(admin: KafkaAdminClient,
                  ops: Mapping[str, Mapping[str, tuple[AlterConfigOp, str | None]]]) -> list[str]:
    """IncrementalAlterConfigs on TOPIC resources (any broker forwards it to the controller)."""
    if not ops:
        return []
    request = KafkaAdminClient._alter_configs_request(
        [ConfigResource(ConfigResourceType.TOPIC, topic, dict(o)) for topic, o in sorted(ops.items())],
        incremental=True)
    response = clients.admin_request(admin, request)
    done: list[str] = []
    for result in response.responses:
        topic = str(result.resource_name)
        if not result.error_code:
            done.append(topic)
            continue
        error = kafka_errors.for_code(result.error_code)
        if error is kafka_errors.UnknownTopicOrPartitionError:
            continue
        detail = f"IncrementalAlterConfigs topic {topic}: {result.error_message or error.__name__}"
        if result.error_code in dynamic_configs.REJECTED:
            raise dynamic_configs.ConfigRejected(detail)
        raise KafkaUnreachable(detail)
    return sorted(done)


def describe_topic_throttles(admin: KafkaAdminClient, topics: list[str]) -> dict[str, list[str]]:
    """The throttled-replica configs set on each of ``topics`` (DescribeConfigs; unset ones report no
    value and a default source, and are left out)."""
    if not topics:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, t, list(TOPIC_THROTTLES)) for t in topics]
    described = ask_kafka("DescribeConfigs", admin.describe_configs, resources, config_filter="modified")
    out: dict[str, list[str]] = {}
    for topic, configs in (described.get("topic") or {}).items():
        keys = sorted(k for k, v in configs.items() if k in TOPIC_THROTTLES and (v or {}).get("value"))
        if keys:
            out[str(topic)] = keys
    return out
