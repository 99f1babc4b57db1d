"""The naive baseline the planner is measured against: what ``kafka-reassign-partitions.sh --generate`` proposes.

``--generate`` ignores where replicas are and how big they are: for each topic it asks Kafka's replica assignor
(``AdminUtils.assignReplicasToBrokers``) for a fresh assignment of all its partitions over the given broker list,
and the reassignment then moves whatever differs. The assignor places the first replica of partition i on broker
``(i + start) mod n`` and each further replica j at a shift of ``1 + (shift + j) mod (n - 1)`` from it, the shift
growing by one after every n partitions; ``start`` and ``shift`` are random per topic. With rack information on
every broker it walks a rack-alternated broker list (racks sorted, each rack's brokers sorted, taken in turn) and
skips a broker whose rack (while some rack has no replica yet) or which itself already has a replica of the
partition. Here the random numbers come from ``random.Random(seed)`` drawn per topic in topic order, so a seed gives
one reproducible run of the tool (Java's generator gives other numbers, not another algorithm). With rack
information on only some brokers the tool refuses unless ``--disable-rack-aware``; this baseline then assigns
rack-unaware, as that flag would.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ballast.rebalance.model import BrokerLoad, Goals, Move, PartitionLoad, RebalancePlan, TopicPartition
from ballast.rebalance.planner import assignment_figures

__all__ = ["assign_topic", "plan_from_assignment", "round_robin_assignment", "round_robin_plan"]


def _shifted(first: int, shift: int, j: int, n: int) -> int:
    """Index of the (j+2)-th replica candidate: a shift of 1..n-1 from the first replica, so never the first."""
    return (first + 1 + (shift + j) % (n - 1)) % n


def _rack_alternated(brokers: Sequence[BrokerLoad]) -> list[int]:
    by_rack: dict[str, list[int]] = {}
    for b in brokers:
        by_rack.setdefault(b.rack or "", []).append(b.id)
    columns = [sorted(by_rack[r]) for r in sorted(by_rack)]
    out: list[int] = []
    depth = 0
    while len(out) < len(brokers):
        for col in columns:
            if depth < len(col):
                out.append(col[depth])
        depth += 1
    return out


def assign_topic(
    brokers: Sequence[BrokerLoad], n_partitions: int, rf: int, start: int, shift: int
) -> list[tuple[int, ...]]:
    """The assignor's replicas for partitions 0..n_partitions-1 of one topic with a given ``start`` index and
    replica ``shift`` (the tool draws both at random): rack-aware when every broker has a rack."""
    rack_aware = bool(brokers) and all(b.rack is not None for b in brokers)
    order = _rack_alternated(brokers) if rack_aware else sorted(b.id for b in brokers)
    rack_of = {b.id: b.rack or "" for b in brokers}
    n_racks = len(set(rack_of.values())) if rack_aware else 1
    n = len(order)
    if rf > n:
        raise ValueError(f"replication factor {rf} is larger than the {n} brokers")
    out: list[tuple[int, ...]] = []
    for i in range(n_partitions):
        if i > 0 and i % n == 0:
            shift += 1
        first = (i + start) % n
        replicas = [order[first]]
        if rack_aware:
            racks_used = {rack_of[order[first]]}
            k = 0
            while len(replicas) < rf:
                cand = order[_shifted(first, shift * n_racks, k, n)]
                rack = rack_of[cand]
                if (rack not in racks_used or len(racks_used) == n_racks) and cand not in replicas:
                    replicas.append(cand)
                    racks_used.add(rack)
                k += 1
        else:
            replicas.extend(order[_shifted(first, shift, j, n)] for j in range(rf - 1))
        out.append(tuple(replicas))
    return out


def round_robin_assignment(
    brokers: Sequence[BrokerLoad], partitions: Sequence[PartitionLoad], *, seed: int = 0
) -> dict[TopicPartition, tuple[int, ...]]:
    """The assignment ``--generate`` would propose for ``partitions`` over ``brokers`` (the ``--broker-list``),
    deterministic for a given ``seed``. Each topic keeps the replication factor of its lowest-numbered partition;
    its partitions are numbered 0..n-1 in partition order, as the tool does. Raises ValueError when a replication
    factor exceeds the number of brokers (the tool fails the same way)."""
    rng = random.Random(seed)
    n = len(brokers)
    by_topic: dict[str, list[PartitionLoad]] = {}
    for p in partitions:
        by_topic.setdefault(p.topic, []).append(p)
    out: dict[TopicPartition, tuple[int, ...]] = {}
    for topic in sorted(by_topic):
        parts = sorted(by_topic[topic], key=lambda p: p.partition)
        rf = len(parts[0].replicas)
        if rf > n:
            raise ValueError(f"replication factor {rf} of topic {topic!r} is larger than the {n} brokers")
        start = rng.randrange(n)
        shift = rng.randrange(n)
        for p, replicas in zip(parts, assign_topic(brokers, len(parts), rf, start, shift), strict=True):
            out[p.key] = replicas
    return out


def plan_from_assignment(
    brokers: Sequence[BrokerLoad],
    partitions: Sequence[PartitionLoad],
    assignment: dict[TopicPartition, tuple[int, ...]],
    goals: Goals,
) -> RebalancePlan:
    """Any target assignment as a plan: a move for every partition whose replicas differ, in (topic, partition)
    order cut into batches of ``goals.max_moves_per_batch``, and the same figures the planner reports
    (:func:`ballast.rebalance.planner.assignment_figures`), so that the two can be compared line by line."""
    moves = [
        Move(topic=p.topic, partition=p.partition, source=p.replicas, target=assignment[p.key],
             size_bytes=max(0, p.size_bytes))
        for p in sorted(partitions, key=lambda p: p.key)
        if p.key in assignment and assignment[p.key] != p.replicas
    ]
    per = max(1, goals.max_moves_per_batch)
    batches = tuple(tuple(moves[i:i + per]) for i in range(0, len(moves), per))
    return RebalancePlan(batches=batches, figures=assignment_figures(brokers, partitions, assignment, goals))


def round_robin_plan(
    brokers: Sequence[BrokerLoad], partitions: Sequence[PartitionLoad], goals: Goals, *, seed: int = 0
) -> RebalancePlan:
    """``--generate`` over the brokers not in ``goals.remove``, as a plan with the planner's figures."""
    remaining = [b for b in brokers if b.id not in goals.remove]
    return plan_from_assignment(brokers, partitions, round_robin_assignment(remaining, partitions, seed=seed), goals)
