"""Topics, partitions and configs of the simulated cluster: CreateTopics / CreatePartitions / DeleteTopics
with KRaft's validation and error texts, and the config APIs (DescribeConfigs, IncrementalAlterConfigs,
AlterConfigs). Mixed into :class:`~devcluster.kafka.model.KafkaClusterModel`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from devcluster.kafka import placement
from devcluster.kafka.errors import DEFAULT_MESSAGES, ErrorCode, KafkaError
from devcluster.kafka.partitions import (
    PartitionState,
    ReplicaState,
    TopicState,
)
from devcluster.kafka.types import (
    AlterConfigOp,
    ConfigEntryView,
    ConfigResourceType,
    CreateTopicResult,
    HistoryEvent,
)


class TopicsMixin:
    """Topic and config operations (state lives on the model; see KafkaClusterModel.__init__)."""

    def topics(self) -> list[TopicState]:
        """All topics, ordered by name (live read-only objects)."""
        self._sync()
        return [self._topics[name] for name in sorted(self._topics)]

    def topic(self, name: str) -> TopicState | None:
        self._sync()
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicState | None:
        self._sync()
        return self._topics_by_id.get(topic_id)

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
        self._sync()
        self._require_controller()
        reason = _invalid_topic_reason(name)
        if reason:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {reason}")
        if any(_unify(name) == _unify(other) and name != other for other in self._topics):
            colliding = next(o for o in self._topics if _unify(o) == _unify(name))
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                             f"Topic '{name}' collides with existing topic: {colliding}")
        if name in self._topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        topic_configs = dict(configs or {})
        if topic_configs:
            self._configs.validate_topic(topic_configs)
        replica_lists = self._assign(num_partitions, replication_factor, assignment)
        isrs = []
        for index, replicas in enumerate(replica_lists):
            isr = [r for r in replicas if self._is_active(r)]
            if not isr:
                if assignment:
                    raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                     "All brokers specified in the manual partition assignment for partition "
                                     f"{index} are fenced or in controlled shutdown.")
                raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                                 f"Unable to replicate the partition {len(replicas)} time(s): All brokers are "
                                 "currently fenced or in controlled shutdown.")
            isrs.append(isr)
        topic_id = self._uuid()
        overrides = {k: v for k, v in topic_configs.items() if v is not None}
        if not validate_only:
            topic = TopicState(name, topic_id)
            self._topics[name] = topic
            self._topics_by_id[topic_id] = topic
            self._configs.topic[name] = overrides
            self._metadata_write(1 + len(overrides) + len(replica_lists))
            self._record(HistoryEvent(self._now, "topic_created", topic=name))
            for index, (replicas, isr) in enumerate(zip(replica_lists, isrs, strict=True)):
                self._add_partition(topic, index, replicas, isr)
        entries = self._configs.describe_topic(name, None, False, self._controller_node())
        if validate_only:
            # Effective values as the topic would have them.
            saved = self._configs.topic.get(name)
            self._configs.topic[name] = overrides
            entries = self._configs.describe_topic(name, None, False, self._controller_node())
            if saved is None:
                del self._configs.topic[name]
            else:
                self._configs.topic[name] = saved
        return CreateTopicResult(name, topic_id, len(replica_lists), len(replica_lists[0]), tuple(entries))

    def _assign(
        self, num_partitions: int, replication_factor: int, assignment: Mapping[int, Sequence[int]] | None
    ) -> list[list[int]]:
        if assignment:
            if replication_factor != -1:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "A manual partition assignment was specified, but "
                                 "replication factor was not set to -1.")
            if num_partitions != -1:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "A manual partition assignment was specified, but "
                                 "numPartitions was not set to -1.")
            rf: int | None = None
            for index in assignment:
                self._validate_assignment(assignment[index], rf)
                rf = len(assignment[index])
            if sorted(assignment) != list(range(len(assignment))):
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 "partitions should be a consecutive 0-based integer sequence")
            return [list(assignment[i]) for i in range(len(assignment))]
        if replication_factor < -1 or replication_factor == 0:
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             "Replication factor must be larger than 0, or -1 to use the default value.")
        if num_partitions < -1 or num_partitions == 0:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             "Number of partitions was set to an invalid non-positive value.")
        controller = self._controller_node()
        partitions = num_partitions if num_partitions != -1 else self._configs.broker_int(controller, "num.partitions", 1)
        rf = (replication_factor if replication_factor != -1
              else self._configs.broker_int(controller, "default.replication.factor", 1))
        try:
            return placement.place(self._rng, self._usable_brokers(), partitions, rf)
        except placement.PlacementError as exc:
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             f"Unable to replicate the partition {rf} time(s): {exc}") from None

    def _usable_brokers(self) -> list[placement.UsableBroker]:
        return [placement.UsableBroker(n.node_id, n.rack, not n.active)
                for n in sorted(self._nodes.values(), key=lambda n: n.node_id) if n.is_broker and n.registered]

    def _validate_assignment(self, replicas: Sequence[int], rf: int | None) -> None:
        """validateManualPartitionAssignment."""
        if not replicas:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             "The manual partition assignment includes an empty replica list.")
        previous = None
        for broker in sorted(replicas):
            node = self._nodes.get(broker)
            if node is None or not node.is_broker or not node.registered:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"The manual partition assignment includes broker {broker}, but no such broker "
                                 "is registered.")
            if broker == previous:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"The manual partition assignment includes the broker {previous} more than once.")
            previous = broker
        if rf is not None and len(replicas) != rf:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"The manual partition assignment includes a partition with {len(replicas)} "
                             f"replica(s), but this is not consistent with previous partitions, which have "
                             f"{rf} replica(s).")

    def _add_partition(self, topic: TopicState, index: int, replicas: Sequence[int], isr: Sequence[int]) -> None:
        p = PartitionState(topic.name, topic.topic_id, index, replicas, isr)
        p.base, p.t0 = 0.0, self._now
        topic.partitions.append(p)
        for broker in replicas:
            self._add_replica(p, broker, 0.0)
        self._refresh(p)
        self._record_isr(p)

    def _add_replica(self, p: PartitionState, broker: int, size: float) -> ReplicaState:
        replica = ReplicaState(p, broker, self._pick_dir(broker), size, self._now)
        node = self._nodes.get(broker)
        if node is not None and replica.path in node.dirs:
            node.dirs[replica.path].replicas += 1
        p.replica_states[broker] = replica
        self._replicas_on.setdefault(broker, set()).add(p)
        return replica

    def _remove_replica(self, p: PartitionState, broker: int) -> None:
        replica = p.replica_states.pop(broker, None)
        if replica is not None:
            node = self._nodes.get(broker)
            if node is not None and replica.path in node.dirs:
                node.dirs[replica.path].replicas -= 1
            if replica in self._copying:
                self._copying.discard(replica)
                self._rates_dirty = True
            self._pending_isr.discard(replica)
        on = self._replicas_on.get(broker)
        if on is not None:
            on.discard(p)

    def _pick_dir(self, broker: int) -> str | None:
        """The online log dir with the fewest replicas (Kafka's default placement across JBOD dirs)."""
        node = self._nodes.get(broker)
        if node is None or not node.dirs:
            return None
        online = [d for d in node.dirs.values() if not d.failed] or list(node.dirs.values())
        return min(online, key=lambda d: d.replicas).path

    def create_partitions(
        self,
        name: str,
        count: int,
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """CreatePartitions: grow ``name`` to ``count`` partitions."""
        self._sync()
        self._require_controller()
        topic = self._topics.get(name)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, DEFAULT_MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
        current = len(topic.partitions)
        if count == current:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partition(s).")
        if count < current:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             f"The topic {name} currently has {current} partition(s); {count} would not be an increase.")
        additional = count - current
        rf = len(topic.partitions[0].replicas) if topic.partitions else 1
        if assignment is not None:
            if len(assignment) != additional:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"Attempted to add {additional} additional partition(s), but only "
                                 f"{len(assignment)} assignment(s) were specified.")
            for replicas in assignment:
                self._validate_assignment(replicas, rf)
            lists = [list(r) for r in assignment]
        else:
            try:
                lists = placement.place(self._rng, self._usable_brokers(), additional, rf)
            except placement.PlacementError as exc:
                raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR, str(exc)) from None
        isrs = [[r for r in replicas if self._is_active(r)] for replicas in lists]
        if any(not isr for isr in isrs):
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             f"Unable to replicate the partition {rf} time(s): All brokers are currently fenced "
                             "or in controlled shutdown.")
        if validate_only:
            return
        self._metadata_write(additional)
        for offset, (replicas, isr) in enumerate(zip(lists, isrs, strict=True)):
            self._add_partition(topic, current + offset, replicas, isr)
        self._reweigh(topic)

    def delete_topic(self, name: str | None = None, topic_id: uuid.UUID | None = None) -> tuple[str, uuid.UUID]:
        """DeleteTopics for one topic by name or id; returns (name, id). UNKNOWN_TOPIC_OR_PARTITION /
        UNKNOWN_TOPIC_ID when missing; NoActiveController."""
        self._sync()
        self._require_controller()
        if name is not None:
            topic = self._topics.get(name)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, DEFAULT_MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
        else:
            topic = self._topics_by_id.get(topic_id) if topic_id is not None else None
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID, DEFAULT_MESSAGES[ErrorCode.UNKNOWN_TOPIC_ID])
        for p in topic.partitions:
            for broker in list(p.replica_states):
                self._remove_replica(p, broker)
            self._imbalanced.discard(p)
        del self._topics[topic.name]
        del self._topics_by_id[topic.topic_id]
        self._configs.topic.pop(topic.name, None)
        self._ingest.pop(topic.name, None)
        self._weight_total.pop(topic.name, None)
        self._metadata_write(1)
        self._record(HistoryEvent(self._now, "topic_deleted", topic=topic.name))
        return topic.name, topic.topic_id

    def replica_size(self, partition: PartitionState, broker_id: int) -> int:
        """Bytes of ``partition``'s log on ``broker_id`` now (0 if not a replica there)."""
        self._sync()
        replica = partition.replica_states.get(broker_id)
        return int(replica.size_at(self._now)) if replica is not None else 0

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
        UNKNOWN_TOPIC_OR_PARTITION; unsupported resource type: INVALID_REQUEST. Documentation is not
        simulated (always None)."""
        self._sync()
        if resource_type == ConfigResourceType.TOPIC:
            reason = _invalid_topic_reason(resource_name)
            if reason:
                raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {reason}")
            if resource_name not in self._topics:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None)
            return self._configs.describe_topic(resource_name, keys, include_synonyms, handling_node)
        if resource_type == ConfigResourceType.BROKER:
            if resource_name == "":
                return self._configs.describe_broker(None, keys, include_synonyms)
            node_id = _parse_int(resource_name)
            expected = handling_node if handling_node is not None else node_id
            if node_id is None or node_id != expected:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"Unexpected broker id, expected {expected} or empty string, but received "
                                 f"{resource_name}")
            if node_id not in self._nodes:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"Unexpected broker id, expected {expected} or empty string, but received "
                                 f"{resource_name}")
            return self._configs.describe_broker(node_id, keys, include_synonyms)
        if resource_type == ConfigResourceType.BROKER_LOGGER:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Broker loggers are not simulated.")
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {_resource_type_name(resource_type)}")

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
        self._sync()
        ops = [(name, AlterConfigOp(op), value) for name, op, value in ops]
        self._configs.check_request(ops)
        if resource_type == ConfigResourceType.BROKER:
            node_id = self._broker_resource(resource_name, handling_node)
            new = self._configs.apply_broker_ops(node_id, ops)
            self._require_controller()
            self._check_broker_exists(node_id)
            if not validate_only:
                self._store_broker_configs(node_id, new)
        elif resource_type == ConfigResourceType.TOPIC:
            self._require_controller()
            self._check_topic_name(resource_name)
            new = self._configs.apply_topic_ops(resource_name, ops)
            self._check_topic_exists(resource_name)
            if not validate_only:
                self._store_topic_configs(resource_name, new)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown resource type {int(resource_type)}")

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
        self._sync()
        nulls = [name for name, value in configs.items() if value is None]
        if nulls:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls))
        new = {name: str(value) for name, value in configs.items()}
        if resource_type == ConfigResourceType.BROKER:
            node_id = self._broker_resource(resource_name, handling_node)
            self._configs.validate_broker(node_id, new)
            self._require_controller()
            self._check_broker_exists(node_id)
            if not validate_only:
                self._store_broker_configs(node_id, new)
        elif resource_type == ConfigResourceType.TOPIC:
            self._require_controller()
            self._check_topic_name(resource_name)
            self._configs.validate_topic(new)
            self._check_topic_exists(resource_name)
            if not validate_only:
                self._store_topic_configs(resource_name, new)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown resource type {int(resource_type)}")

    def _broker_resource(self, name: str, handling_node: int | None) -> int | None:
        if name == "":
            return None
        node_id = _parse_int(name)
        if node_id is None:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Node id must be an integer, but it is: {name}")
        if handling_node is not None and node_id != handling_node:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Unexpected broker id, expected {handling_node}, but received {name}")
        return node_id

    def _check_broker_exists(self, node_id: int | None) -> None:
        if node_id is not None and node_id not in self._nodes:
            raise KafkaError(ErrorCode.BROKER_ID_NOT_REGISTERED, f"No node with id {node_id} found.")

    @staticmethod
    def _check_topic_name(name: str) -> None:
        if name == "":
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Default topic resources are not allowed.")
        reason = _invalid_topic_reason(name)
        if reason:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {reason}")

    def _check_topic_exists(self, name: str) -> None:
        if name not in self._topics:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")

    def _store_broker_configs(self, node_id: int | None, new: dict[str, str]) -> None:
        if node_id is None:
            self._configs.dynamic_default = new
        else:
            self._configs.dynamic_broker[node_id] = new
        self._metadata_write(max(1, len(new)))
        # min.insync.replicas (writability), throttles (rates) and the rebalance switch may have changed.
        for topic in self._topics.values():
            for p in topic.partitions:
                self._refresh_growth(p)
        self._rates_dirty = True
        self._maybe_schedule_rebalance()

    def _store_topic_configs(self, name: str, new: dict[str, str]) -> None:
        self._configs.topic[name] = new
        self._metadata_write(max(1, len(new)))
        for p in self._topics[name].partitions:
            self._refresh_growth(p)
        self._rates_dirty = True


def _parse_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _resource_type_name(resource_type: int) -> str:
    try:
        return ConfigResourceType(resource_type).name
    except ValueError:
        return "UNKNOWN"


_LEGAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _invalid_topic_reason(name: str) -> str | None:
    """org.apache.kafka.common.internals.Topic#detectInvalidTopic."""
    if not name:
        return "the empty string is not allowed"
    if name == ".":
        return "'.' is not allowed"
    if name == "..":
        return "'..' is not allowed"
    if len(name) > 249:
        return f"the length of '{name}' is longer than the max allowed length 249"
    if any(c not in _LEGAL for c in name):
        return f"'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
    return None


def _unify(name: str) -> str:
    return name.replace(".", "_")
