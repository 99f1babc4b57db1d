"""The simulated Kafka cluster (KRaft, Kafka 3.9 semantics) shared by all simulated processes of one cluster.

Protocol handlers call these methods and translate results to wire messages; they never mutate the
model's objects. Every public method first advances the simulation to ``clock.now()`` (lazily: only
partitions with something in flight need work), so answers are always current.

Errors: a per-item failure raises :class:`~devcluster.kafka.errors.KafkaError` carrying the code and
message a real Kafka would return; metadata writes while the quorum has no leader raise
:class:`~devcluster.kafka.errors.NoActiveController`.

What is simulated (and how it maps to Kafka):
- Nodes start/stop; brokers register with the active controller, are unfenced shortly after and fenced
  on controlled shutdown (at once) or on crash (after ``broker.session.timeout.ms``, 9 s by default).
  Fencing removes the broker from every ISR (never emptying one: unclean election is off, the last
  member stays and the partition goes offline with leader -1) and moves leaderships to the next ISR
  member in replica order.
- A partition's log grows at its share of the topic's ingest rate while it has a running leader and, as
  with ``acks=all`` producers, at least min.insync.replicas in-sync replicas. Followers out of the ISR
  copy at their share of replication bandwidth (see :mod:`devcluster.kafka.flow`) and join the ISR when
  caught up; reassignments add replicas the same way, then drop the removed ones.
- The KRaft quorum (:mod:`devcluster.kafka.quorum`): elections after the leader stops, no leader
  without a majority, metadata writes impossible without a leader.
- Auto leader rebalance (preferred election every ``leader.imbalance.check.interval.seconds``) when
  ``auto.leader.rebalance.enable`` is true, as KRaft's controller does.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from devcluster.kafka.configs import (
    ConfigState,
)
from devcluster.kafka.errors import DEFAULT_MESSAGES, ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.lifecycle import LifecycleMixin, _Node
from devcluster.kafka.partitions import (
    PartitionState,
    ReplicaState,
    TopicState,
    pkey,
)
from devcluster.kafka.quorum import Quorum
from devcluster.kafka.replication import ReplicationMixin
from devcluster.kafka.simclock import SimClock
from devcluster.kafka.topics import TopicsMixin
from devcluster.kafka.types import Endpoint, HistoryEvent, MinIsrViolation

__all__ = [
    "ClusterDirectory",
    "ErrorCode",
    "KafkaClusterModel",
    "KafkaError",
    "NoActiveController",
    "PartitionState",
    "TopicState",
    "Tuning",
]

COMPLETION_BATCH_S = 1e-3


@dataclass
class Tuning:
    """Simulation parameters that are not Kafka configs (rates per simulated second)."""

    replication_rate: float = 100 * 2**20  # a follower broker's total catch-up fetch bandwidth, bytes/s
    broker_unfence_delay_s: float = 0.5  # registration -> unfenced (metadata catch-up + heartbeat)
    graceful_election_delay_s: float = 0.2  # a resigning quorum leader's successor takes over
    acks_all: bool = True  # producers use acks=all: no writes while ISR < min.insync.replicas
    record_size_bytes: int = 1024  # bytes per record, to express byte lags as offset lags
    seed: int | None = None  # RNG seed; default derived from the cluster id


class KafkaClusterModel(LifecycleMixin, TopicsMixin, ReplicationMixin):
    """One simulated Kafka cluster. ``clock`` is shared by every model of a devcluster."""

    def __init__(self, cluster_id: str, clock: SimClock, tuning: Tuning | None = None) -> None:
        self.cluster_id = cluster_id
        self.clock = clock
        self.tuning = tuning or Tuning()
        seed = self.tuning.seed if self.tuning.seed is not None else zlib.crc32(cluster_id.encode())
        self._rng = random.Random(seed)
        self._metadata_rng = random.Random(seed + 1)
        self._now = clock.now()
        self._nodes: dict[int, _Node] = {}
        self._quorum = Quorum()
        self._voter_endpoints: dict[int, tuple[Endpoint, ...]] = {}
        self._configs = ConfigState()
        self._topics: dict[str, TopicState] = {}
        self._topics_by_id: dict[uuid.UUID, TopicState] = {}
        self._replicas_on: dict[int, set[PartitionState]] = {}
        self._copying: set[ReplicaState] = set()
        self._pending_isr: set[ReplicaState] = set()
        self._imbalanced: set[PartitionState] = set()
        self._rates_dirty = False
        self._done_heap: list[tuple[float, int, ReplicaState]] = []
        self._timers: list[tuple[float, int, str, tuple[object, ...]]] = []
        self._timer_seq = 0
        self._election_at: float | None = None
        self._rebalance_at: float | None = None
        self._ingest: dict[str, float] = {}
        self._weight_total: dict[str, float] = {}  # sum of the partitions' ingest weights, per topic
        self._history: list[HistoryEvent] = []

    # ================================================================== time
    @property
    def now(self) -> float:
        """The simulated time the model has advanced to."""
        return self._now

    def advance_to(self, t: float | None = None) -> None:
        """Run the simulation up to simulated time ``t`` (default ``clock.now()``); never backwards."""
        target = self.clock.now() if t is None else t
        while True:
            self._update_rates()
            next_timer = self._timers[0][0] if self._timers else math.inf
            next_done = self._next_completion()
            step = min(next_timer, next_done)
            if step > target:
                break
            self._now = max(self._now, step)
            if next_done <= next_timer:
                # Replicas finishing within the same millisecond finish together: one re-share of the
                # bandwidth instead of one per replica (a restarted broker's replicas of one topic all
                # catch up at about the same moment).
                for replica in self._pop_completions(min(next_done + COMPLETION_BATCH_S, next_timer, target)):
                    if replica in self._copying:
                        self._complete_copy(replica)
            else:
                _, _, kind, args = heapq.heappop(self._timers)
                self._fire(kind, args)
        self._now = max(self._now, target)

    def next_event_time(self) -> float | None:
        """Simulated time of the next scheduled state change (catch-up done, election, fencing, ...),
        or None if nothing is pending. A ticker may sleep ``clock.wall_delay(t)`` until then."""
        self._update_rates()
        candidates = [self._next_completion()]
        if self._timers:
            candidates.append(self._timers[0][0])
        best = min(candidates)
        return None if math.isinf(best) else best

    def _sync(self) -> None:
        self.advance_to(self.clock.now())

    def _schedule(self, at: float, kind: str, *args: object) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, kind, args))

    def _fire(self, kind: str, args: tuple[object, ...]) -> None:
        if kind == "elect":
            self._election_at = None
            self._try_elect()
        elif kind == "fence":
            node_id, incarnation = args
            self._fence_if_stale(int(node_id), incarnation)  # type: ignore[arg-type]
        elif kind == "unfence":
            node_id, incarnation = args
            self._unfence(int(node_id), incarnation)  # type: ignore[arg-type]
        elif kind == "resign":
            if self._quorum.leader >= 0 and self._quorum.epoch == args[0] and not self._quorum.has_majority():
                self._quorum.resign(self._now)
                self._record(HistoryEvent(self._now, "quorum_leader", leader=-1, epoch=self._quorum.epoch))
                self._schedule_election(self._now + self._controller_ms("controller.quorum.election.timeout.ms", 1000))
        elif kind == "rebalance":
            self._rebalance_at = None
            self._auto_rebalance()










    # ------------------------------------------------------- registration
    def unregister_broker(self, broker_id: int) -> None:
        """UnregisterBroker (KIP-631), as the KRaft controller of Kafka 3.9 does it (``ReplicationControlManager.
        unregisterBroker``): the broker leaves every ISR it is in (never emptying one; leaderships move to the
        next ISR member, as on fencing), then its registration is removed, so Metadata, DescribeCluster and
        new replica placement no longer know it. Partition assignments are not touched: replicas still
        assigned to the broker stay assigned (offline), which is why an operator drains a broker first.

        Any registered broker can be unregistered -- fenced, stopped or still running: a live broker is not
        refused. A running broker whose registration is removed keeps running, but its heartbeats now fail
        with STALE_BROKER_EPOCH and (Kafka 3.9's BrokerLifecycleManager only retries them) it stays out of
        the cluster until its process restarts and registers anew. A broker that restarted while its
        previous registration was still held (waiting for the old session to expire) registers at once.

        Raises KafkaError(BROKER_ID_NOT_REGISTERED) for an id with no registration (never seen, a controller,
        or already unregistered), and NoActiveController without a quorum leader (metadata writes need one).
        History: ``broker_unregistered`` (node).
        """
        self._sync()
        self._require_controller()
        node = self._nodes.get(broker_id)
        if node is None or not node.is_broker or not node.registered:
            raise KafkaError(ErrorCode.BROKER_ID_NOT_REGISTERED, f"Broker ID {broker_id} is not currently registered")
        # handleBrokerUnregistered: the same ISR and leader changes as fencing, then UnregisterBrokerRecord.
        node.fenced = True
        for p in sorted(self._replicas_on.get(broker_id, ()), key=pkey):
            isr = [r for r in p.isr if r != broker_id]
            if not (broker_id in p.isr and self._change(p, isr=isr, acceptable=self._acceptor(p, remove=broker_id))):
                self._refresh(p)
        node.registered = False
        node.session_deadline = math.inf
        self._metadata_write(1)
        self._record(HistoryEvent(self._now, "broker_unregistered", node=broker_id))
        self._pending_isr = {r for r in self._pending_isr if r.broker != broker_id}
        if node.running and node.incarnation != node.registered_incarnation:
            self._try_register(node)  # a restarted broker that was waiting for the old registration to go

























































    # --------------------------------------------------------- replication







    # ===================================================== history helpers
    def _record(self, event: HistoryEvent) -> None:
        self._history.append(event)

    def _record_isr(self, p: PartitionState) -> None:
        self._record(HistoryEvent(
            self._now, "isr", topic=p.topic, partition=p.index, isr=p.isr, leader=p.leader,
            leader_epoch=p.leader_epoch, replicas=p.replicas,
            min_isr=self._configs.min_insync_replicas(p.topic, self._controller_node())))

    def history(self) -> list[HistoryEvent]:
        """A copy of the append-only history up to now."""
        self._sync()
        return list(self._history)

    def min_isr_violations(self) -> list[MinIsrViolation]:
        """Every ISR change that left a partition with fewer in-sync replicas than its min.insync.replicas."""
        return [MinIsrViolation(e.time, e.topic or "", e.partition or 0, len(e.isr), e.min_isr or 1)
                for e in self.history() if e.kind == "isr" and len(e.isr) < (e.min_isr or 1)]

    # =================================================== simulation controls
    def set_ingest_rate(self, topic: str, bytes_per_s: float, weights: Sequence[float] | None = None) -> None:
        """Producers write ``bytes_per_s`` (simulated) to ``topic``, spread over its partitions by
        ``weights`` (default equal; one weight per partition)."""
        self._sync()
        state = self._topics.get(topic)
        if state is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, DEFAULT_MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
        if bytes_per_s < 0 or not math.isfinite(bytes_per_s):
            raise ValueError("the ingest rate must be a finite number >= 0")
        if weights is not None and (
                len(weights) != len(state.partitions) or any(w < 0 or not math.isfinite(w) for w in weights)):
            raise ValueError(f"need {len(state.partitions)} finite weights >= 0")
        self._ingest[topic] = float(bytes_per_s)
        for p in state.partitions:
            p.rebase_log(self._now)
            p.weight = 1.0 if weights is None else float(weights[p.index])
        self._weight_total[topic] = sum(p.weight for p in state.partitions)
        for p in state.partitions:
            self._refresh_growth(p)

    def _reweigh(self, topic: TopicState) -> None:
        self._weight_total[topic.name] = sum(p.weight for p in topic.partitions)
        for p in topic.partitions:
            self._refresh_growth(p)

    def ingest_rate(self, topic: str) -> float:
        return self._ingest.get(topic, 0.0)

    def set_replication_rate(self, bytes_per_s: float) -> None:
        """Every follower broker's catch-up bandwidth (bytes per simulated second)."""
        self._sync()
        if bytes_per_s <= 0 or not math.isfinite(bytes_per_s):
            raise ValueError("the replication rate must be a finite number > 0")
        self.tuning.replication_rate = float(bytes_per_s)
        self._rates_dirty = True

    def set_broker_slowness(self, broker_id: int, factor: float) -> None:
        """Make ``broker_id`` catch up ``factor`` times slower than the replication rate (1 = normal)."""
        self._sync()
        if factor <= 0 or not math.isfinite(factor):
            raise ValueError("the slowness factor must be a finite number > 0")
        self._nodes[broker_id].slowness = float(factor)
        self._rates_dirty = True

    def inflate_partition(self, topic: str, partition: int, extra_bytes: int) -> None:
        """Skew: add ``extra_bytes`` to the partition's log at once (in-sync replicas get them too)."""
        self._sync()
        state = self._topics.get(topic)
        if state is None or not 0 <= partition < len(state.partitions):
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, DEFAULT_MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
        if extra_bytes < 0:
            raise ValueError("extra_bytes must be >= 0")
        p = state.partitions[partition]
        p.rebase_log(self._now)
        p.base += extra_bytes
        self._refresh(p)
        self._rates_dirty = True

    # ================================================================ misc
    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


class ClusterDirectory:
    """Maps cluster ids to models for ONE devcluster (processes of one Kafka cluster share a model).

    Owned by the devcluster (see :func:`devcluster.kafka.directory_for`), never process-global, so
    tests do not leak state into each other. All models share ``clock``.
    """

    def __init__(self, clock: SimClock | None = None, tuning: Tuning | None = None) -> None:
        self.clock = clock or SimClock()
        self._tuning = tuning
        self._models: dict[str, KafkaClusterModel] = {}

    def get_or_create(self, cluster_id: str) -> KafkaClusterModel:
        model = self._models.get(cluster_id)
        if model is None:
            tuning = Tuning(**vars(self._tuning)) if self._tuning is not None else None
            model = self._models[cluster_id] = KafkaClusterModel(cluster_id, self.clock, tuning)
        return model

    def get(self, cluster_id: str) -> KafkaClusterModel | None:
        return self._models.get(cluster_id)

    def models(self) -> list[KafkaClusterModel]:
        return list(self._models.values())

    async def run(self, max_sleep_s: float = 1.0) -> None:
        """Optional ticker for the devcluster: keeps every model advanced even when nobody asks, sleeping
        until the next event (at most ``max_sleep_s`` wall seconds, so speed changes are picked up).
        Reads advance the models anyway; this only makes history timestamps appear without a read."""
        while True:
            next_event = self.advance()
            delay = max_sleep_s if next_event is None else min(max_sleep_s, self.clock.wall_delay(next_event))
            await asyncio.sleep(max(0.001, delay))

    def advance(self) -> float | None:
        """Advance every model to now; returns the earliest next event time (for a ticker)."""
        times = []
        for model in self._models.values():
            model.advance_to()
            t = model.next_event_time()
            if t is not None:
                times.append(t)
        return min(times) if times else None
