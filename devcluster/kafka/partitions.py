"""Partition and replica state of the simulated cluster, and KRaft's partition-change rules.

Sizes are piecewise linear in simulated time: a partition's log (the leader's copy) is
``base + growth x (t - t0)``; an in-sync replica *is* that log; a catching-up replica grows at its
allocated rate until it reaches the log; a frozen replica (broker down, leader unavailable, failed disk)
keeps its size. Nothing is stepped per tick: state is rebased only when something about the partition
changes, which keeps steady partitions free.

:func:`plan_change` is a port of the semantics of Kafka 3.9's PartitionChangeBuilder (ELR disabled):
reassignment completion, leader election (preferred / online / unclean), when the ISR may change, and
when the leader epoch is bumped.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

EPSILON_BYTES = 1e-6
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


class Mode(enum.IntEnum):
    SYNC = 0  # holds the whole log (the leader, or a follower that is caught up)
    COPY = 1  # catching up at ``rate``
    FROZEN = 2  # not replicating


class ReplicaState:
    """One replica of one partition on one broker (model-internal)."""

    __slots__ = ("broker", "done_at", "mode", "partition", "path", "rate", "size", "t")

    def __init__(self, partition: PartitionState, broker: int, path: str | None, size: float, t: float) -> None:
        self.partition = partition
        self.broker = broker
        self.path = path  # log dir on the broker
        self.mode = Mode.FROZEN
        self.size = size  # bytes at time t (COPY/FROZEN); SYNC replicas read the partition log
        self.t = t
        self.rate = 0.0
        self.done_at = float("inf")

    def size_at(self, t: float) -> float:
        log = self.partition.log_size(t)
        if self.mode is Mode.SYNC:
            return log
        if self.mode is Mode.COPY:
            return min(self.size + self.rate * max(0.0, t - self.t), log)
        return self.size

    def rebase(self, t: float) -> None:
        self.size = self.size_at(t)
        self.t = t

    def completion_time(self, now: float) -> float:
        """When a COPY replica reaches the log, given its rate and the log's growth (inf if never)."""
        lag = self.partition.log_size(now) - self.size_at(now)
        if lag <= EPSILON_BYTES:
            return now
        closing = self.rate - self.partition.growth
        return now + lag / closing if closing > 0 else float("inf")


class PartitionState:
    """Live state of one partition. READ-ONLY for callers (the model replaces the tuples on change).

    ``replicas`` is the full set in replica order (during a reassignment: target replicas first, then the
    removing ones), ``leader`` is -1 when offline, ``offline_replicas`` lists replicas on fenced brokers or
    failed log dirs (as KRaft's metadata cache reports them). Sizes: ``KafkaClusterModel.replica_size``.
    """

    __slots__ = (
        "_replica_states",
        "adding_replicas",
        "base",
        "growth",
        "index",
        "isr",
        "leader",
        "leader_epoch",
        "offline_replicas",
        "partition_epoch",
        "removing_replicas",
        "replicas",
        "t0",
        "topic",
        "topic_id",
        "weight",
    )

    def __init__(self, topic: str, topic_id: uuid.UUID, index: int, replicas: Sequence[int], isr: Sequence[int]):
        self.topic = topic
        self.topic_id = topic_id
        self.index = index
        self.replicas: tuple[int, ...] = tuple(replicas)
        self.isr: tuple[int, ...] = tuple(isr)
        self.leader = self.isr[0] if self.isr else -1
        self.leader_epoch = 0
        self.partition_epoch = 0
        self.adding_replicas: tuple[int, ...] = ()
        self.removing_replicas: tuple[int, ...] = ()
        self.offline_replicas: tuple[int, ...] = ()
        self.base = 0.0
        self.t0 = 0.0
        self.growth = 0.0
        self.weight = 1.0
        self._replica_states: dict[int, ReplicaState] = {}

    def log_size(self, t: float) -> float:
        return self.base + self.growth * max(0.0, t - self.t0)

    def rebase_log(self, t: float) -> None:
        self.base = self.log_size(t)
        self.t0 = t

    @property
    def replica_states(self) -> dict[int, ReplicaState]:
        return self._replica_states

    def __repr__(self) -> str:
        return (f"PartitionState({self.topic}-{self.index} replicas={list(self.replicas)} isr={list(self.isr)} "
                f"leader={self.leader} adding={list(self.adding_replicas)} removing={list(self.removing_replicas)})")


class TopicState:
    """Live state of one topic. READ-ONLY for callers. ``partitions[i].index == i``."""

    __slots__ = ("is_internal", "name", "partitions", "topic_id")

    def __init__(self, name: str, topic_id: uuid.UUID) -> None:
        self.name = name
        self.topic_id = topic_id
        self.partitions: list[PartitionState] = []
        self.is_internal = name in INTERNAL_TOPICS

    def __repr__(self) -> str:
        return f"TopicState({self.name}, {self.topic_id}, {len(self.partitions)} partitions)"


def pkey(p: PartitionState) -> tuple[str, int]:
    """A deterministic sort key (iteration over sets of partitions must not depend on hashing)."""
    return (p.topic, p.index)


class Election(enum.Enum):
    PREFERRED = "preferred"
    ONLINE = "online"
    UNCLEAN = "unclean"


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of :func:`plan_change` (only fields that differ from the partition are meaningful)."""

    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    adding: tuple[int, ...]
    removing: tuple[int, ...]
    bump_leader_epoch: bool
    unclean: bool
    completed_reassignment: bool


def plan_change(
    p: PartitionState,
    acceptable: Callable[[int], bool],
    *,
    isr: Sequence[int] | None = None,
    replicas: Sequence[int] | None = None,
    adding: Sequence[int] | None = None,
    removing: Sequence[int] | None = None,
    election: Election = Election.ONLINE,
) -> Change | None:
    """What a partition change request turns into, or None if it changes nothing."""
    target_isr = list(p.isr if isr is None else isr)
    target_replicas = list(p.replicas if replicas is None else replicas)
    target_adding = list(p.adding_replicas if adding is None else adding)
    target_removing = list(p.removing_replicas if removing is None else removing)
    completed = False
    if target_adding or target_removing:
        new_isr, new_replicas = target_isr, target_replicas
        if target_removing:
            new_isr = [r for r in target_isr if r not in target_removing]
            new_replicas = [r for r in target_replicas if r not in target_removing]
        if new_isr and new_replicas and set(new_replicas) <= set(new_isr):
            target_isr, target_replicas = new_isr, new_replicas
            target_adding, target_removing = [], []
            completed = True

    def valid(r: int) -> bool:
        return r in target_isr and acceptable(r)

    leader, unclean = -1, False
    if election is Election.PREFERRED and target_replicas and valid(target_replicas[0]):
        leader = target_replicas[0]
    elif valid(p.leader):
        leader = p.leader
    else:
        candidates = target_replicas[1:] if election is Election.PREFERRED else target_replicas
        leader = next((r for r in candidates if valid(r)), -1)
        if leader < 0 and election is Election.UNCLEAN:
            leader = next((r for r in target_replicas if acceptable(r)), -1)
            unclean = leader >= 0
    new_isr = tuple(p.isr)
    if unclean:
        new_isr = (leader,)
    elif target_isr and tuple(target_isr) != p.isr:
        new_isr = tuple(target_isr)
    # The leader epoch moves with the leader, and when replicas leave the replica set.
    bump = leader != p.leader or not set(p.replicas) <= set(target_replicas)
    change = Change(
        replicas=tuple(target_replicas),
        isr=new_isr,
        leader=leader,
        adding=tuple(target_adding),
        removing=tuple(target_removing),
        bump_leader_epoch=bump,
        unclean=unclean,
        completed_reassignment=completed,
    )
    if (change.replicas == p.replicas and change.isr == p.isr and change.leader == p.leader
            and change.adding == p.adding_replicas and change.removing == p.removing_replicas):
        return None
    return change


def reassignment_target(p: PartitionState, target: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(replicas, adding, removing) for a new reassignment target, as PartitionReassignmentReplicas
    computes them from the *current* (possibly in-flight) replica set."""
    current = list(p.replicas)
    removing = sorted(set(current) - set(target))
    adding = sorted(set(target) - set(current))
    return list(target) + removing, adding, removing


def revert_reassignment(p: PartitionState) -> tuple[list[int], list[int], bool]:
    """(replicas, isr, unclean) after cancelling the in-flight reassignment (PartitionReassignmentRevert)."""
    replicas = [r for r in p.replicas if r not in p.adding_replicas]
    isr = [r for r in p.isr if r not in p.adding_replicas]
    unclean = False
    if not isr:
        isr = [replicas[0]]
        unclean = True
    return replicas, isr, unclean
