"""What the brokers say about the partitions of one broker, and preferred-leader election, via kafka-python.

Everything goes through the brokers' admin API (``KafkaAdminClient``): Metadata for replicas, ISR and
leaders, DescribeConfigs for the ``min.insync.replicas`` in effect per topic, ListPartitionReassignments for
reassignments in flight and ElectLeaders. Kafka errors and timeouts become
:class:`~activities.clients.KafkaUnreachable`, so callers have a single "could not ask" case.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from activities.clients import KafkaUnreachable, ask_kafka
from activities.contracts import PartitionFacts

MIN_ISR = "min.insync.replicas"
KAFKA_DEFAULT_MIN_ISR = 1  # Kafka's default when neither the topic nor the broker sets it
PREFERRED = 0  # ElectLeaders election type
_ELECTION_NOT_NEEDED = kafka_errors.ElectionNotNeededError.errno


def _topics(admin: KafkaAdminClient, names: list[str] | None = None) -> list[dict[str, Any]]:
    topics: list[dict[str, Any]] = ask_kafka("Metadata", admin.describe_topics, names)
    # A topic answering with an error (being deleted, authorization) has no trustworthy partitions.
    return [t for t in topics if not t.get("error_code")]


def partitions_with_replica_on(admin: KafkaAdminClient, node_id: int) -> list[PartitionFacts]:
    """Every partition with a replica on ``node_id`` (a reassignment's adding/removing replicas count),
    with its ISR, leader, the topic's effective ``min.insync.replicas`` and any reassignment in flight.

    Sorted by (topic, partition). Raises :class:`KafkaUnreachable` when a question cannot be answered.
    """
    topics = _topics(admin)
    reassignments = ask_kafka("ListPartitionReassignments", admin.list_partition_reassignments)
    moving: dict[tuple[str, int], dict[str, list[int]]] = {
        (tp.topic, tp.partition): state for tp, state in (reassignments or {}).items()}
    mine: list[PartitionFacts] = []
    for topic in topics:
        for part in topic.get("partitions") or []:
            key = (str(topic["name"]), int(part["partition_index"]))
            replicas = [int(r) for r in part.get("replica_nodes") or []]
            state = moving.get(key) or {}
            adding = [int(r) for r in state.get("adding_replicas") or []]
            removing = [int(r) for r in state.get("removing_replicas") or []]
            if node_id not in replicas and node_id not in adding and node_id not in removing:
                continue
            mine.append(PartitionFacts(topic=key[0], partition=key[1], replicas=replicas,
                                       isr=[int(r) for r in part.get("isr_nodes") or []],
                                       leader=int(part.get("leader_id", -1)), adding=adding,
                                       removing=removing))
    min_isr = effective_min_isr(admin, sorted({p.topic for p in mine}), exclude=node_id)
    for p in mine:
        p.min_isr = min_isr.get(p.topic, KAFKA_DEFAULT_MIN_ISR)
    return sorted(mine, key=lambda p: (p.topic, p.partition))


def effective_min_isr(admin: KafkaAdminClient, topics: Iterable[str],
                      exclude: int | None = None) -> dict[str, int]:
    """``min.insync.replicas`` in effect per topic: the topic's own value or what it inherits (DescribeConfigs
    of a topic reports the inherited value too). A topic whose answer lacks it gets the broker default, as
    a broker other than ``exclude`` (the one about to restart) reports it."""
    names = list(topics)
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, [MIN_ISR]) for name in names]
    described = ask_kafka("DescribeConfigs", admin.describe_configs, resources, config_filter="all")
    out: dict[str, int] = {}
    for name, configs in (described.get("topic") or {}).items():
        value = _parse_int((configs.get(MIN_ISR) or {}).get("value"))
        if value is not None:
            out[str(name)] = value
    missing = [n for n in names if n not in out]
    if missing:
        default = _broker_default_min_isr(admin, exclude)
        out.update({n: default for n in missing})
    return out


def _broker_default_min_isr(admin: KafkaAdminClient, exclude: int | None) -> int:
    cluster = ask_kafka("DescribeCluster", admin.describe_cluster)
    brokers = [int(b["broker_id"]) for b in cluster.get("brokers") or [] if not b.get("is_fenced")]
    candidates = [b for b in brokers if b != exclude] or brokers
    if not candidates:
        return KAFKA_DEFAULT_MIN_ISR
    broker = str(candidates[0])
    described = ask_kafka("DescribeConfigs", admin.describe_configs,
                     [ConfigResource(ConfigResourceType.BROKER, broker, [MIN_ISR])], config_filter="all")
    value = _parse_int((((described.get("broker") or {}).get(broker) or {}).get(MIN_ISR) or {}).get("value"))
    return value if value is not None else KAFKA_DEFAULT_MIN_ISR


def _parse_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def registration(admin: KafkaAdminClient, node_id: int) -> str:
    """``registered``, ``fenced`` or ``absent``: how the cluster metadata knows broker ``node_id``
    (DescribeCluster; brokers that do not report fencing count as registered)."""
    cluster = ask_kafka("DescribeCluster", admin.describe_cluster)
    for broker in cluster.get("brokers") or []:
        if int(broker["broker_id"]) == node_id:
            return "fenced" if broker.get("is_fenced") else "registered"
    return "absent"


def isr_lagging(admin: KafkaAdminClient, node_id: int,
                topics: list[str] | None = None) -> tuple[list[str], int]:
    """The partitions (``topic-partition``) with a replica on ``node_id`` that do not have it in their ISR,
    and how many have a replica there, among ``topics`` (None: all). A replica a reassignment is adding or
    removing does not count: it was not (or will not stay) in the ISR whether or not the broker restarted."""
    if topics is not None and not topics:
        return [], 0
    moving = ask_kafka("ListPartitionReassignments", admin.list_partition_reassignments) or {}
    in_flight = {(tp.topic, tp.partition) for tp, state in moving.items()
                 if node_id in [*state.get("adding_replicas", []), *state.get("removing_replicas", [])]}
    lagging: list[str] = []
    total = 0
    for topic in _topics(admin, topics):
        for part in topic.get("partitions") or []:
            if node_id not in (part.get("replica_nodes") or []):
                continue
            if (topic["name"], part["partition_index"]) in in_flight:
                continue
            total += 1
            if node_id not in (part.get("isr_nodes") or []):
                lagging.append(f"{topic['name']}-{part['partition_index']}")
    return sorted(lagging), total


def elect_preferred_leaders(admin: KafkaAdminClient, node_id: int) -> tuple[list[str], int, dict[str, str]]:
    """Preferred-leader election for the partitions whose preferred (first) replica is ``node_id`` and whose
    leader is someone else. Returns (elected, not needed, failed ``topic-partition`` -> error name):
    ``ELECTION_NOT_NEEDED`` (the leader moved back meanwhile) is success, not a failure."""
    wanted: dict[str, list[int]] = {}
    not_needed = 0
    for topic in _topics(admin):
        for part in topic.get("partitions") or []:
            replicas = part.get("replica_nodes") or []
            if not replicas or replicas[0] != node_id:
                continue
            if int(part.get("leader_id", -1)) == node_id:
                not_needed += 1
                continue
            wanted.setdefault(str(topic["name"]), []).append(int(part["partition_index"]))
    if not wanted:
        return [], not_needed, {}
    response = ask_kafka("ElectLeaders", admin.elect_leaders, PREFERRED, wanted, raise_errors=False)
    top = kafka_errors.for_code(int(getattr(response, "error_code", 0) or 0))
    if top is not kafka_errors.NoError:
        raise KafkaUnreachable(f"ElectLeaders failed: {top.__name__}")
    elected: list[str] = []
    failed: dict[str, str] = {}
    for result in response.replica_election_results:
        for part in result.partition_result:
            name = f"{result.topic}-{part.partition_id}"
            if part.error_code == 0:
                elected.append(name)
            elif part.error_code == _ELECTION_NOT_NEEDED:
                not_needed += 1
            else:
                failed[name] = kafka_errors.for_code(part.error_code).__name__
    return sorted(elected), not_needed, failed


def elect_preferred(admin: KafkaAdminClient,
                    wanted: dict[str, list[int]]) -> tuple[list[str], list[str], dict[str, str]]:
    """Preferred-leader election for exactly the partitions in ``wanted`` (topic -> partition indexes).
    Returns (elected, not needed, failed ``topic-partition`` -> Kafka error name), each sorted: a partition
    already led by its preferred replica is ``not needed``; an unknown one fails with
    ``UnknownTopicOrPartitionError``. A top-level error (no controller, ...) raises :class:`KafkaUnreachable`."""
    if not any(wanted.values()):
        return [], [], {}
    response = ask_kafka("ElectLeaders", admin.elect_leaders, PREFERRED, wanted, raise_errors=False)
    top = kafka_errors.for_code(int(getattr(response, "error_code", 0) or 0))
    if top is not kafka_errors.NoError:
        raise KafkaUnreachable(f"ElectLeaders failed: {top.__name__}")
    elected: list[str] = []
    not_needed: list[str] = []
    failed: dict[str, str] = {}
    for result in response.replica_election_results:
        for part in result.partition_result:
            name = f"{result.topic}-{part.partition_id}"
            if part.error_code == 0:
                elected.append(name)
            elif part.error_code == _ELECTION_NOT_NEEDED:
                not_needed.append(name)
            else:
                failed[name] = kafka_errors.for_code(part.error_code).__name__
    return sorted(elected), sorted(not_needed), dict(sorted(failed.items()))
