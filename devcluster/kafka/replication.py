"""Replication in the simulated cluster: partition changes with KRaft's rules (ISR, leader election,
reassignment completion), replica catch-up at shared/throttled rates, log dirs, reassignments and leader
elections. Mixed into :class:`~devcluster.kafka.model.KafkaClusterModel`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from devcluster.kafka import flow
from devcluster.kafka.configs import (
    FOLLOWER_THROTTLED_RATE,
    FOLLOWER_THROTTLED_REPLICAS,
    LEADER_THROTTLED_RATE,
    LEADER_THROTTLED_REPLICAS,
    parse_throttled_replicas,
)
from devcluster.kafka.errors import DEFAULT_MESSAGES, ErrorCode, KafkaError
from devcluster.kafka.partitions import (
    EPSILON_BYTES,
    Change,
    Election,
    Mode,
    PartitionState,
    ReplicaState,
    pkey,
    plan_change,
    reassignment_target,
    revert_reassignment,
)
from devcluster.kafka.types import (
    ElectionResult,
    ElectionType,
    HistoryEvent,
    LogDirView,
    ReassignmentView,
    ReplicaDirView,
)

if TYPE_CHECKING:
    from devcluster.kafka.lifecycle import _Dir, _Node


class ReplicationMixin:
    """Partition-level behaviour (state lives on the model; see KafkaClusterModel.__init__)."""

    def describe_log_dirs(
        self, broker_id: int, partitions: Mapping[str, Sequence[int]] | None = None
    ) -> list[LogDirView]:
        """DescribeLogDirs as answered by ``broker_id``: every log dir, with replicas filtered to
        ``partitions`` (None = all). ``usable_bytes`` is the capacity minus the replicas' sizes."""
        self._sync()
        node = self._nodes.get(broker_id)
        if node is None:
            return []
        t = self._now
        by_dir: dict[str, list[ReplicaDirView]] = {path: [] for path in node.dirs}
        used: dict[str, float] = dict.fromkeys(node.dirs, 0.0)
        wanted = {name: set(indexes) for name, indexes in partitions.items()} if partitions is not None else None
        for p in sorted(self._replicas_on.get(broker_id, ()), key=pkey):
            replica = p.replica_states.get(broker_id)
            if replica is None or replica.path not in by_dir:
                continue
            size = replica.size_at(t)
            used[replica.path] += size
            if wanted is not None and p.index not in wanted.get(p.topic, ()):
                continue
            lag_bytes = max(0.0, p.log_size(t) - size) if replica.mode is not Mode.SYNC else 0.0
            by_dir[replica.path].append(ReplicaDirView(
                p.topic, p.index, int(size), int(lag_bytes // max(1, self.tuning.record_size_bytes))))
        views = []
        for path, d in node.dirs.items():
            if d.failed:
                views.append(LogDirView(path, ErrorCode.KAFKA_STORAGE_ERROR, -1, -1, ()))
            else:
                usable = max(0, int(d.capacity - used[path]))
                views.append(LogDirView(path, ErrorCode.NONE, d.capacity, usable, tuple(by_dir[path])))
        return views

    def set_log_dir_capacity(self, node_id: int, path: str, capacity_bytes: int) -> None:
        """The filesystem behind a log dir changed size (an online volume expansion): DescribeLogDirs
        reports the new ``total_bytes`` from now on, as a real broker does (it asks the filesystem on
        every request). History: ``log_dir_resized`` (node, path) when the size changed.
        Raises KeyError for an unknown node or log dir."""
        self._sync()
        d = self._nodes[node_id].dirs[path]
        if d.capacity == int(capacity_bytes):
            return
        d.capacity = int(capacity_bytes)
        self._record(HistoryEvent(self._now, "log_dir_resized", node=node_id, path=path))

    def fail_log_dir(self, broker_id: int, path: str) -> None:
        """Simulate a disk failure: the dir's replicas go offline (KAFKA_STORAGE_ERROR), leave the ISR and
        lose leadership; a broker with no online dir left shuts down, as Kafka does."""
        self._sync()
        node = self._nodes[broker_id]
        d = node.dirs[path]
        if d.failed:
            return
        d.failed = True
        self._record(HistoryEvent(self._now, "log_dir_failed", node=broker_id, path=path))
        for p in list(self._replicas_on.get(broker_id, ())):
            self._refresh(p)
        if self._controller_active():
            self._offline_dir_changes(node, d)
        if node.running and all(x.failed for x in node.dirs.values()):
            self.stop_node(broker_id, graceful=False)

    def _offline_dir_changes(self, node: _Node, d: _Dir) -> None:
        for p in sorted(self._replicas_on.get(node.node_id, ()), key=pkey):
            replica = p.replica_states.get(node.node_id)
            if replica is None or replica.path != d.path:
                continue
            if node.node_id in p.isr or p.leader == node.node_id:
                isr = [r for r in p.isr if r != node.node_id]
                self._change(p, isr=isr, acceptable=self._acceptor(p, remove=node.node_id))

    def restore_log_dir(self, broker_id: int, path: str, *, wiped: bool = False) -> None:
        """A failed dir is usable again (in Kafka this takes a broker restart); ``wiped`` = a new empty disk.
        No-op for a dir that has not failed. Wiping a dir whose replicas are still in an ISR (it failed
        while the quorum had no leader, so nobody removed them) raises ValueError: that would silently
        lose committed data, which Kafka's controller prevents by removing them first."""
        self._sync()
        node = self._nodes[broker_id]
        d = node.dirs[path]
        if not d.failed:
            return
        hosted = [p for p in sorted(self._replicas_on.get(broker_id, ()), key=pkey)
                  if p.replica_states[broker_id].path == path]
        if wiped and any(broker_id in p.isr for p in hosted):
            raise ValueError(f"broker {broker_id}'s replicas in {path} are still in sync (no active controller "
                             "removed them); restore without wiping or wait for a controller")
        d.failed = False
        self._record(HistoryEvent(self._now, "log_dir_restored", node=broker_id, path=path))
        for p in hosted:
            if wiped:
                replica = p.replica_states[broker_id]
                replica.size, replica.t = 0.0, self._now
        for p in list(self._replicas_on.get(broker_id, ())):
            if not (p.leader < 0 and self._controller_active() and self._change(p)):
                self._refresh(p)

    def alter_reassignment(self, topic: str, partition: int, target: Sequence[int] | None) -> None:
        """AlterPartitionReassignments for one partition; ``target`` None cancels.
        Errors: UNKNOWN_TOPIC_OR_PARTITION, NO_REASSIGNMENT_IN_PROGRESS (cancel with none in flight),
        INVALID_REPLICA_ASSIGNMENT (empty, duplicates, unknown brokers); NoActiveController."""
        self._sync()
        self._require_controller()
        state = self._topics.get(topic)
        if state is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {topic}.")
        if not 0 <= partition < len(state.partitions):
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {topic}:{partition}.")
        p = state.partitions[partition]
        if target is None:
            if not (p.adding_replicas or p.removing_replicas):
                raise KafkaError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, DEFAULT_MESSAGES[ErrorCode.NO_REASSIGNMENT_IN_PROGRESS])
            replicas, isr, unclean = revert_reassignment(p)
            if unclean and not self._unclean_enabled(p.topic):
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"Unable to revert partition assignment for {topic}:{partition} because it would "
                                 "require an unclean leader election.")
            self._record(HistoryEvent(self._now, "reassignment_cancelled", topic=topic, partition=partition,
                                      replicas=tuple(replicas), adding=p.adding_replicas,
                                      removing=p.removing_replicas))
            self._change(p, isr=isr, replicas=replicas, adding=[], removing=[],
                         election=Election.UNCLEAN if self._unclean_enabled(p.topic) else Election.ONLINE)
            return
        target = [int(b) for b in target]
        self._validate_assignment(target, None)
        replicas, adding, removing = reassignment_target(p, target)
        for broker in replicas:
            if broker not in p.replica_states:
                self._add_replica(p, broker, 0.0)
        if adding or removing:
            self._record(HistoryEvent(self._now, "reassignment_started", topic=topic, partition=partition,
                                      replicas=tuple(replicas), adding=tuple(adding), removing=tuple(removing)))
        self._change(p, replicas=replicas, adding=adding, removing=removing)
        self._drop_unassigned(p)

    def _drop_unassigned(self, p: PartitionState) -> None:
        for broker in [b for b in p.replica_states if b not in p.replicas]:
            self._remove_replica(p, broker)

    def list_reassignments(
        self, partitions: Mapping[str, Sequence[int]] | None = None
    ) -> list[ReassignmentView]:
        """ListPartitionReassignments: in-flight reassignments (unknown partitions are skipped)."""
        self._sync()
        views = []
        names = sorted(self._topics) if partitions is None else list(partitions)
        for name in names:
            topic = self._topics.get(name)
            if topic is None:
                continue
            indexes = range(len(topic.partitions)) if partitions is None else partitions[name]
            for index in indexes:
                if not 0 <= index < len(topic.partitions):
                    continue
                p = topic.partitions[index]
                if p.adding_replicas or p.removing_replicas:
                    views.append(ReassignmentView(name, index, p.replicas, p.adding_replicas, p.removing_replicas))
        return views

    def elect_leaders(
        self, election_type: ElectionType, partitions: Mapping[str, Sequence[int]] | None = None
    ) -> list[ElectionResult]:
        """ElectLeaders. Per partition: NONE when leadership moved, ELECTION_NOT_NEEDED,
        PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION.
        ``partitions=None`` means all partitions; then, as Kafka, partitions whose election was not
        needed are left out (a handler still lists every topic, with possibly no partitions)."""
        self._sync()
        self._require_controller()
        kind = ElectionType(election_type)
        results = []
        if partitions is None:
            for name in sorted(self._topics):
                for p in self._topics[name].partitions:
                    result = self._elect_one(name, p.index, kind)
                    if result.error is not ErrorCode.ELECTION_NOT_NEEDED:
                        results.append(result)
        else:
            for name, indexes in partitions.items():
                for index in indexes:
                    results.append(self._elect_one(name, index, kind))
        return results

    def _elect_one(self, topic: str, index: int, kind: ElectionType) -> ElectionResult:
        state = self._topics.get(topic)
        if state is None:
            return ElectionResult(topic, index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {topic}")
        if not 0 <= index < len(state.partitions):
            return ElectionResult(topic, index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                  f"No such partition as {topic}-{index}")
        p = state.partitions[index]
        if (kind is ElectionType.PREFERRED and p.replicas and p.leader == p.replicas[0]) or (
                kind is ElectionType.UNCLEAN and p.leader >= 0):
            code = ErrorCode.ELECTION_NOT_NEEDED
            return ElectionResult(topic, index, code, DEFAULT_MESSAGES[code])
        election = Election.PREFERRED if kind is ElectionType.PREFERRED else Election.UNCLEAN
        if not self._change(p, election=election):
            code = (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE if kind is ElectionType.PREFERRED
                    else ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE)
            return ElectionResult(topic, index, code, DEFAULT_MESSAGES[code])
        return ElectionResult(topic, index, ErrorCode.NONE, None)

    def _maybe_schedule_rebalance(self) -> None:
        if self._rebalance_at is not None or not self._imbalanced or not self._controller_active():
            return
        controller = self._controller_node()
        if not self._configs.broker_bool(controller, "auto.leader.rebalance.enable", True):
            return
        interval = self._configs.broker_int(controller, "leader.imbalance.check.interval.seconds", 300)
        self._rebalance_at = self._now + max(1, interval)
        self._schedule(self._rebalance_at, "rebalance")

    def _auto_rebalance(self) -> None:
        if not self._controller_active():
            return
        for p in sorted(self._imbalanced, key=pkey):
            self._change(p, election=Election.PREFERRED)
        self._maybe_schedule_rebalance()

    def _is_active(self, broker: int) -> bool:
        node = self._nodes.get(broker)
        return node is not None and node.is_broker and node.active

    def _acceptor(self, p: PartitionState, *, add: int | None = None, remove: int | None = None):
        """LeaderAcceptor: an active broker whose replica's log dir is online."""
        def acceptable(broker: int) -> bool:
            if broker == remove:
                return False
            if broker != add and not self._is_active(broker):
                return False
            replica = p.replica_states.get(broker)
            node = self._nodes.get(broker)
            if replica is None or node is None or replica.path is None:
                return True
            d = node.dirs.get(replica.path)
            return d is None or not d.failed
        return acceptable

    def _unclean_enabled(self, topic: str) -> bool:
        value = self._configs.topic_value(topic, "unclean.leader.election.enable", self._controller_node())
        return (value or "false").lower() == "true"

    def _change(
        self,
        p: PartitionState,
        *,
        isr: Sequence[int] | None = None,
        replicas: Sequence[int] | None = None,
        adding: Sequence[int] | None = None,
        removing: Sequence[int] | None = None,
        election: Election | None = None,
        acceptable=None,
    ) -> bool:
        """Apply a controller partition change (PartitionChangeBuilder semantics); False if a no-op."""
        if election is None:
            election = Election.UNCLEAN if self._unclean_enabled(p.topic) else Election.ONLINE
        change = plan_change(p, acceptable or self._acceptor(p), isr=isr, replicas=replicas, adding=adding,
                             removing=removing, election=election)
        if change is None:
            return False
        self._apply(p, change)
        return True

    def _apply(self, p: PartitionState, change: Change) -> None:
        t = self._now
        p.rebase_log(t)
        for replica in p.replica_states.values():
            if replica.mode is not Mode.SYNC:
                replica.rebase(t)
        old_isr, old_leader, old_replicas = p.isr, p.leader, p.replicas
        if change.leader >= 0 and change.leader != old_leader:
            new_leader = p.replica_states.get(change.leader)
            if new_leader is not None and new_leader.mode is not Mode.SYNC:
                # An unclean (or frozen) leader: the log is what that replica has; others truncate to it.
                p.base = new_leader.size_at(t)
                for replica in p.replica_states.values():
                    if replica.mode is not Mode.SYNC and replica.size > p.base:
                        replica.size = p.base
        if change.bump_leader_epoch:
            p.leader_epoch += 1
        p.partition_epoch += 1
        p.replicas, p.isr, p.leader = change.replicas, change.isr, change.leader
        p.adding_replicas, p.removing_replicas = change.adding, change.removing
        self._metadata_write(1)
        if change.completed_reassignment:
            self._record(HistoryEvent(t, "reassignment_completed", topic=p.topic, partition=p.index,
                                      replicas=p.replicas, removing=tuple(r for r in old_replicas if r not in p.replicas)))
        self._drop_unassigned(p)  # replicas that left the assignment delete their log
        self._refresh(p)
        if p.isr != old_isr or p.leader != old_leader:
            self._record_isr(p)

    def _join_isr(self, replica: ReplicaState) -> None:
        """AlterPartition from the leader adding a caught-up follower (needs an active controller and an
        active follower broker; otherwise it stays pending)."""
        p = replica.partition
        if p.replica_states.get(replica.broker) is not replica or replica.mode is not Mode.SYNC:
            self._pending_isr.discard(replica)
            return
        if replica.broker in p.isr or replica.broker not in p.replicas:
            self._pending_isr.discard(replica)
            return
        if not self._controller_active() or not self._is_active(replica.broker) or p.leader < 0:
            self._pending_isr.add(replica)
            return
        self._pending_isr.discard(replica)
        self._change(p, isr=[*p.isr, replica.broker], election=Election.ONLINE)

    def _complete_copy(self, replica: ReplicaState) -> None:
        # Exactly at the log end (float error must not leave a sliver to copy).
        replica.size, replica.t = replica.partition.log_size(self._now), self._now
        replica.mode = Mode.SYNC
        replica.rate = 0.0
        replica.done_at = math.inf
        self._copying.discard(replica)
        self._rates_dirty = True
        self._join_isr(replica)

    def _source_ok(self, p: PartitionState) -> bool:
        """Whether followers can fetch: a leader whose process runs and whose log dir is online."""
        if p.leader < 0:
            return False
        node = self._nodes.get(p.leader)
        if node is None or not node.running:
            return False
        replica = p.replica_states.get(p.leader)
        if replica is None:
            return False
        d = node.dirs.get(replica.path) if replica.path is not None else None
        return d is None or not d.failed

    def _replica_online(self, replica: ReplicaState) -> bool:
        node = self._nodes.get(replica.broker)
        if node is None or not node.running:
            return False
        d = node.dirs.get(replica.path) if replica.path is not None else None
        return d is None or not d.failed

    def _refresh(self, p: PartitionState) -> None:
        """Recompute replica modes, growth and offline replicas after anything about ``p`` changed."""
        t = self._now
        p.rebase_log(t)
        source = self._source_ok(p)
        log = p.base
        for broker, replica in p.replica_states.items():
            replica.rebase(t)
            online = self._replica_online(replica)
            if broker == p.leader and online:
                mode = Mode.SYNC
            elif not source or not online or not self._is_active(broker):
                mode = Mode.FROZEN
            elif replica.size >= log - max(EPSILON_BYTES, log * 1e-9):
                mode = Mode.SYNC
            else:
                mode = Mode.COPY
            replica.mode = mode
            if mode is Mode.SYNC:
                replica.size = log
            if mode is Mode.COPY:
                if replica not in self._copying:
                    self._copying.add(replica)
                    self._rates_dirty = True
            elif replica in self._copying:
                self._copying.discard(replica)
                replica.rate = 0.0
                self._rates_dirty = True
            if mode is Mode.SYNC and broker not in p.isr and broker != p.leader:
                self._pending_isr.add(replica)
        self._refresh_growth(p)
        p.offline_replicas = tuple(b for b in p.replicas if self._replica_offline(p, b))
        if p.replicas and p.leader != p.replicas[0]:
            self._imbalanced.add(p)
        else:
            self._imbalanced.discard(p)
        if self._pending_isr:
            for replica in [r for r in p.replica_states.values() if r in self._pending_isr]:
                self._join_isr(replica)
        self._maybe_schedule_rebalance()

    def _replica_offline(self, p: PartitionState, broker: int) -> bool:
        node = self._nodes.get(broker)
        if node is None or not node.registered or node.fenced:
            return True
        replica = p.replica_states.get(broker)
        d = node.dirs.get(replica.path) if replica is not None and replica.path is not None else None
        return d is not None and d.failed

    def _refresh_growth(self, p: PartitionState) -> None:
        rate = self._ingest.get(p.topic, 0.0)
        growth = 0.0
        if rate > 0 and self._source_ok(p):
            total = self._weight_total.get(p.topic, 0.0)
            growth = rate * p.weight / total if total > 0 else 0.0
            if self.tuning.acks_all and len(p.isr) < self._configs.min_insync_replicas(p.topic, self._controller_node()):
                growth = 0.0
        if growth != p.growth:
            p.rebase_log(self._now)
            for replica in p.replica_states.values():
                if replica.mode is Mode.COPY:
                    replica.rebase(self._now)
            p.growth = growth
            if any(r.mode is Mode.COPY for r in p.replica_states.values()):
                self._rates_dirty = True

    def _update_rates(self) -> None:
        """Re-share bandwidth among copying replicas and recompute when each catches up."""
        if not self._rates_dirty:
            return
        self._rates_dirty = False
        t = self._now
        copying = sorted(self._copying, key=lambda r: (pkey(r.partition), r.broker))
        flows, limits = [], {}
        throttled: dict[str, tuple[tuple[bool, frozenset[tuple[int, int]]], tuple[bool, frozenset[tuple[int, int]]]]] = {}
        for replica in copying:
            replica.rebase(t)
            p = replica.partition
            keys: list[tuple[str, int]] = [("capacity", replica.broker)]
            node = self._nodes[replica.broker]
            limits[("capacity", replica.broker)] = self.tuning.replication_rate / max(node.slowness, 1e-9)
            if p.topic not in throttled:
                throttled[p.topic] = (
                    parse_throttled_replicas(self._configs.topic.get(p.topic, {}).get(LEADER_THROTTLED_REPLICAS)),
                    parse_throttled_replicas(self._configs.topic.get(p.topic, {}).get(FOLLOWER_THROTTLED_REPLICAS)),
                )
            (leader_all, leader_set), (follower_all, follower_set) = throttled[p.topic]
            if leader_all or (p.index, p.leader) in leader_set:
                keys.append(("leader", p.leader))
                limits[("leader", p.leader)] = self._configs.throttle_rate(p.leader, LEADER_THROTTLED_RATE)
            if follower_all or (p.index, replica.broker) in follower_set:
                keys.append(("follower", replica.broker))
                limits[("follower", replica.broker)] = self._configs.throttle_rate(replica.broker, FOLLOWER_THROTTLED_RATE)
            flows.append(keys)
        rates = flow.allocate(flows, limits)
        heap = []
        for order, (replica, rate) in enumerate(zip(copying, rates, strict=True)):
            replica.rate = rate if math.isfinite(rate) else self.tuning.replication_rate
            replica.done_at = replica.completion_time(t)
            if math.isfinite(replica.done_at):
                heap.append((replica.done_at, order, replica))
        heapq.heapify(heap)
        self._done_heap = heap

    def _next_completion(self) -> float:
        """When the next copying replica catches up (inf if none will at current rates)."""
        heap = self._done_heap
        while heap and (heap[0][2] not in self._copying or heap[0][2].done_at != heap[0][0]):
            heapq.heappop(heap)  # no longer copying (state changed since the rates were computed)
        return heap[0][0] if heap else math.inf

    def _pop_completions(self, until: float) -> list[ReplicaState]:
        """Copying replicas that catch up by ``until``, in a deterministic order."""
        done = []
        heap = self._done_heap
        while heap and heap[0][0] <= until:
            _, _, replica = heapq.heappop(heap)
            if replica in self._copying and replica.done_at <= until:
                done.append(replica)
        return done
