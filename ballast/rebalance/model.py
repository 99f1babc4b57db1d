"""The rebalance planner's inputs and outputs: plain frozen dataclasses, cheap enough for 100k partitions.

The planner (:func:`ballast.rebalance.planner.plan_rebalance`) is pure: the same brokers, partitions and goals
always give the same plan. Activities build these from Kafka's admin API (DescribeCluster for racks,
Metadata for replicas and leaders, DescribeLogDirs for sizes and disk capacity) and turn the plan into the
workflow's pydantic messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class BrokerLoad:
    """A broker the plan may use (or must empty, if its id is in ``Goals.remove``)."""

    id: int
    rack: str | None = None
    capacity_bytes: int = 0  # usable disk size; 0 = unknown (no capacity goal for this broker)


@dataclass(frozen=True, slots=True)
class PartitionLoad:
    """One partition: its replicas in preference order (the first is the preferred leader), its current
    leader (-1 = none) and its size in bytes (the largest replica's log size)."""

    topic: str
    partition: int
    replicas: tuple[int, ...]
    size_bytes: int = 0
    leader: int = -1

    @property
    def key(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Goals:
    """What a plan must reach, in priority order: hard goals (rack awareness when racks >= RF, nothing left on
    ``remove``, no disk above ``capacity_threshold``), then balance (replica count and disk bytes per broker
    within ``tolerance`` of the mean, leaders balanced), then minimal movement."""

    remove: frozenset[int] = frozenset()
    capacity_threshold: float = 0.85
    tolerance: float = 0.05
    max_moves_per_batch: int = 20
    balance_leaders: bool = True


@dataclass(frozen=True, slots=True)
class Move:
    """Reassign one partition from ``source`` replicas to ``target`` replicas (order = preference)."""

    topic: str
    partition: int
    source: tuple[int, ...]
    target: tuple[int, ...]
    size_bytes: int = 0

    @property
    def key(self) -> TopicPartition:
        return (self.topic, self.partition)

    @property
    def adding(self) -> tuple[int, ...]:
        return tuple(b for b in self.target if b not in self.source)

    @property
    def removing(self) -> tuple[int, ...]:
        return tuple(b for b in self.source if b not in self.target)

    @property
    def bytes_to_move(self) -> int:
        """Data copied: one full copy of the partition per added replica (a leader-order change copies none)."""
        return self.size_bytes * len(self.adding)


@dataclass(frozen=True, slots=True)
class Spread:
    """How evenly a quantity is spread over brokers: the largest deviation from the mean, in percent of it."""

    mean: float = 0.0
    max_deviation_percent: float = 0.0

    def within(self, tolerance: float) -> bool:
        return self.max_deviation_percent <= tolerance * 100 + 1e-9


@dataclass(frozen=True, slots=True)
class PlanFigures:
    """What a plan does, for status, the ``plan`` query, the CLI and the benchmark."""

    moves: int = 0
    bytes_to_move: int = 0
    lower_bound_bytes: int = 0  # no plan reaching the same balance can move fewer bytes
    replicas_before: Spread = field(default_factory=Spread)
    replicas_after: Spread = field(default_factory=Spread)
    disk_before: Spread = field(default_factory=Spread)
    disk_after: Spread = field(default_factory=Spread)
    leaders_before: Spread = field(default_factory=Spread)
    leaders_after: Spread = field(default_factory=Spread)
    max_disk_usage_after: float = 0.0  # highest used/capacity over brokers with a known capacity


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    """Ordered batches of moves; ``infeasible`` lists hard goals no plan can reach (e.g. RF above the brokers
    left after a scale-in, or not enough disk): then ``batches`` is empty and nothing must be executed."""

    batches: tuple[tuple[Move, ...], ...] = ()
    figures: PlanFigures = field(default_factory=PlanFigures)
    infeasible: tuple[str, ...] = ()
    # What the plan could not do or left alone, for people (status, CLI): a balance goal out of reach because
    # partitions are indivisible, replicas on brokers unknown to the plan left in place.
    notes: tuple[str, ...] = ()

    @property
    def moves(self) -> tuple[Move, ...]:
        return tuple(m for batch in self.batches for m in batch)

    def target(self, partitions: list[PartitionLoad]) -> dict[TopicPartition, tuple[int, ...]]:
        """The assignment after every batch ran: ``partitions`` with the moves applied."""
        out = {p.key: p.replicas for p in partitions}
        for move in self.moves:
            out[move.key] = move.target
        return out
