"""Replica placement for new partitions, following KRaft's striped placer (Kafka 3.9).

Racks are visited round-robin starting at a random rack, brokers round-robin inside each rack starting at
a random broker; each partition shifts the starting rack by one, which produces the "striped" pattern.
Unfenced brokers are preferred (the leader, first replica, must be unfenced); fenced ones are used only
when a rack has no more unfenced brokers. Randomness comes from the model's seeded RNG, so placement is
deterministic for a given cluster id and history.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


class PlacementError(Exception):
    """InvalidReplicationFactorException with Kafka's message."""


@dataclass(frozen=True, slots=True)
class UsableBroker:
    node_id: int
    rack: str | None
    fenced: bool


class _BrokerList:
    def __init__(self) -> None:
        self.brokers: list[int] = []
        self.index = 0
        self.offset = 0
        self.epoch = 0

    def initialize(self, rng: random.Random) -> None:
        if self.brokers:
            self.brokers.sort()
            self.offset = rng.randrange(len(self.brokers))

    def shuffle(self, rng: random.Random) -> None:
        rng.shuffle(self.brokers)

    def next(self, epoch: int) -> int:
        if not self.brokers:
            return -1
        if self.epoch != epoch:
            self.epoch = epoch
            self.index = 0
            self.offset = (self.offset + 1) % len(self.brokers)
        if self.index >= len(self.brokers):
            return -1
        broker = self.brokers[(self.index + self.offset) % len(self.brokers)]
        self.index += 1
        return broker


class _Rack:
    def __init__(self) -> None:
        self.fenced = _BrokerList()
        self.unfenced = _BrokerList()

    def next(self, epoch: int) -> int:
        result = self.unfenced.next(epoch)
        return result if result >= 0 else self.fenced.next(epoch)


def _rack_key(name: str | None) -> tuple[int, str]:
    # Kafka sorts Optional<String> with empty (no rack) first.
    return (0, "") if name is None else (1, name)


class _RackList:
    def __init__(self, rng: random.Random, brokers: Sequence[UsableBroker]) -> None:
        self.rng = rng
        self.racks: dict[str | None, _Rack] = {}
        self.total = len(brokers)
        self.unfenced = 0
        for broker in brokers:
            rack = self.racks.setdefault(broker.rack, _Rack())
            if broker.fenced:
                rack.fenced.brokers.append(broker.node_id)
            else:
                self.unfenced += 1
                rack.unfenced.brokers.append(broker.node_id)
        for rack in self.racks.values():
            rack.fenced.initialize(rng)
            rack.unfenced.initialize(rng)
        self.names = sorted(self.racks, key=_rack_key)
        self.epoch = 0
        self.offset = rng.randrange(len(self.names)) if self.names else 0

    def place(self, replication_factor: int) -> list[int]:
        if self.epoch == self.unfenced and self.unfenced > 1:
            self.rng.shuffle(self.names)
            for rack in self.racks.values():
                rack.fenced.shuffle(self.rng)
                rack.unfenced.shuffle(self.rng)
            self.epoch = 0
        if self.offset == len(self.names):
            self.offset = 0
        brokers: list[int] = []
        first = self.offset
        while True:
            result = self.racks[self.names[first]].unfenced.next(self.epoch)
            if result >= 0:
                brokers.append(result)
                break
            first = (first + 1) % len(self.names)
        rack_index = self.offset
        for _ in range(1, replication_factor):
            result = -1
            while result < 0:
                if rack_index == first:
                    first = -1
                else:
                    result = self.racks[self.names[rack_index]].next(self.epoch)
                rack_index = (rack_index + 1) % len(self.names)
            brokers.append(result)
        self.epoch += 1
        self.offset += 1
        return brokers


def place(
    rng: random.Random, brokers: Sequence[UsableBroker], num_partitions: int, replication_factor: int
) -> list[list[int]]:
    """Replica lists for ``num_partitions`` new partitions; raises PlacementError like Kafka."""
    racks = _RackList(rng, brokers)
    if replication_factor <= 0:
        raise PlacementError(
            f"Invalid replication factor {replication_factor}: the replication factor must be positive.")
    if racks.unfenced == 0:
        raise PlacementError("All brokers are currently fenced.")
    if replication_factor > racks.total:
        raise PlacementError(
            f"The target replication factor of {replication_factor} cannot be reached because only "
            f"{racks.total} broker(s) are registered.")
    return [racks.place(replication_factor) for _ in range(num_partitions)]
