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

import heapq
import math
import random
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from devcluster.kafka import flow, placement
from devcluster.kafka.configs import (
    FOLLOWER_THROTTLED_RATE,
    FOLLOWER_THROTTLED_REPLICAS,
    LEADER_THROTTLED_RATE,
    LEADER_THROTTLED_REPLICAS,
    ConfigState,
    parse_throttled_replicas,
)
from devcluster.kafka.errors import ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.partitions import (
    EPSILON_BYTES,
    Change,
    Election,
    Mode,
    PartitionState,
    ReplicaState,
    TopicState,
    plan_change,
    reassignment_target,
    revert_reassignment,
)
from devcluster.kafka.quorum import Quorum
from devcluster.kafka.simclock import SimClock
from devcluster.kafka.types import (
    BROKER,
    CONTROLLER,
    AlterConfigOp,
    ConfigEntryView,
    ConfigResourceType,
    CreateTopicResult,
    ElectionResult,
    ElectionType,
    Endpoint,
    HistoryEvent,
    LogDirSpec,
    LogDirView,
    MinIsrViolation,
    NodeView,
    QuorumView,
    ReassignmentView,
    ReplicaDirView,
)

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

_MESSAGES = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "This server does not host this topic-partition.",
    ErrorCode.UNKNOWN_TOPIC_ID: "This server does not host this topic ID.",
    ErrorCode.ELECTION_NOT_NEEDED: "Leader election not needed for topic partition.",
    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE: "The preferred leader was not available.",
    ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE: "Eligible topic partition leaders are not available.",
    ErrorCode.NO_REASSIGNMENT_IN_PROGRESS: "No partition reassignment is in progress.",
}


@dataclass
class Tuning:
    """Simulation parameters that are not Kafka configs (rates per simulated second)."""

    replication_rate: float = 100 * 2**20  # a follower broker's total catch-up fetch bandwidth, bytes/s
    broker_unfence_delay_s: float = 0.5  # registration -> unfenced (metadata catch-up + heartbeat)
    graceful_election_delay_s: float = 0.2  # a resigning quorum leader's successor takes over
    acks_all: bool = True  # producers use acks=all: no writes while ISR < min.insync.replicas
    record_size_bytes: int = 1024  # bytes per record, to express byte lags as offset lags
    seed: int | None = None  # RNG seed; default derived from the cluster id


@dataclass
class _Dir:
    path: str
    capacity: int
    directory_id: uuid.UUID
    failed: bool = False


@dataclass
class _Node:
    node_id: int
    roles: frozenset[str]
    rack: str | None
    endpoints: tuple[Endpoint, ...]
    dirs: dict[str, _Dir]
    incarnation: uuid.UUID
    running: bool = True
    registered: bool = False
    fenced: bool = True
    registered_incarnation: uuid.UUID | None = None
    slowness: float = 1.0
    session_deadline: float = math.inf  # when the controller fences a silent (crashed) registration
    metadata_dir_id: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=0))

    @property
    def is_broker(self) -> bool:
        return BROKER in self.roles

    @property
    def active(self) -> bool:
        """KRaft's ClusterControlManager.isActive: registered and unfenced (a crashed broker stays
        active until its session times out)."""
        return self.registered and not self.fenced

    def view(self) -> NodeView:
        return NodeView(
            node_id=self.node_id,
            roles=self.roles,
            rack=self.rack,
            endpoints=self.endpoints,
            log_dirs=tuple(LogDirSpec(d.path, d.capacity) for d in self.dirs.values()),
            running=self.running,
            registered=self.registered,
            fenced=self.fenced,
            incarnation_id=self.incarnation,
            directory_ids=tuple(d.directory_id for d in self.dirs.values()),
        )


class KafkaClusterModel:
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
        self._configs = ConfigState()
        self._topics: dict[str, TopicState] = {}
        self._topics_by_id: dict[uuid.UUID, TopicState] = {}
        self._replicas_on: dict[int, set[PartitionState]] = {}
        self._copying: set[ReplicaState] = set()
        self._pending_isr: set[ReplicaState] = set()
        self._imbalanced: set[PartitionState] = set()
        self._rates_dirty = False
        self._timers: list[tuple[float, int, str, tuple[object, ...]]] = []
        self._timer_seq = 0
        self._election_at: float | None = None
        self._rebalance_at: float | None = None
        self._ingest: dict[str, float] = {}
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
            next_done, done = self._next_completion()
            step = min(next_timer, next_done)
            if step > target:
                break
            self._now = max(self._now, step)
            if next_done <= next_timer and done is not None:
                self._complete_copy(done)
            else:
                _, _, kind, args = heapq.heappop(self._timers)
                self._fire(kind, args)
        self._now = max(self._now, target)

    def next_event_time(self) -> float | None:
        """Simulated time of the next scheduled state change (catch-up done, election, fencing, ...),
        or None if nothing is pending. A ticker may sleep ``clock.wall_delay(t)`` until then."""
        self._update_rates()
        candidates = [self._next_completion()[0]]
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

    # ====================================================== lifecycle: nodes
    def start_node(
        self,
        node_id: int,
        *,
        roles: Iterable[str],
        rack: str | None = None,
        endpoints: Sequence[Endpoint] = (),
        log_dirs: Sequence[LogDirSpec] = (),
        static_config: Mapping[str, str] | None = None,
    ) -> NodeView:
        """A process with ``process.roles`` = ``roles`` (``broker``/``controller``) started.

        ``static_config`` is its server.properties (after env-to-property mapping); keys the model uses:
        ``controller.quorum.voters`` (``id@host:port,...``; fixes the voter set the first time it is seen),
        ``broker.session.timeout.ms``, ``controller.quorum.election.timeout.ms``,
        ``controller.quorum.fetch.timeout.ms``, ``num.partitions``, ``default.replication.factor``,
        ``min.insync.replicas`` and every other broker config (reported as STATIC_BROKER_CONFIG).
        Starting a running node again is a restart (a crash, then a start). A broker registers with the
        controller once the quorum has a leader (and a crashed previous incarnation's session expired)
        and is unfenced ``Tuning.broker_unfence_delay_s`` later; its replicas then catch up.
        Raises KafkaError(INCONSISTENT_CLUSTER_ID) if ``static_config['cluster.id']`` differs.
        """
        self._sync()
        static = {k: str(v) for k, v in (static_config or {}).items()}
        if static.get("cluster.id") not in (None, "", self.cluster_id):
            raise KafkaError(ErrorCode.INCONSISTENT_CLUSTER_ID,
                             f"Expected cluster ID {self.cluster_id}, but got cluster ID {static['cluster.id']}")
        role_set = frozenset(r.strip() for r in roles if r.strip())
        if not role_set or not role_set <= {BROKER, CONTROLLER}:
            raise ValueError(f"process.roles must be broker and/or controller, got {sorted(role_set)}")
        existing = self._nodes.get(node_id)
        if existing is not None and existing.running:
            self.stop_node(node_id, graceful=False)
        t = self._now
        dirs: dict[str, _Dir] = {}
        for spec in log_dirs:
            old = existing.dirs.get(spec.path) if existing else None
            dirs[spec.path] = _Dir(spec.path, int(spec.capacity_bytes),
                                   old.directory_id if old else self._uuid(), failed=old.failed if old else False)
        if existing is None:
            node = _Node(node_id, role_set, rack, tuple(endpoints), dirs, self._uuid())
            node.metadata_dir_id = next(iter(dirs.values())).directory_id if dirs else self._uuid()
            self._nodes[node_id] = node
        else:
            node = existing
            node.roles, node.rack, node.endpoints, node.dirs = role_set, rack, tuple(endpoints), dirs
            node.incarnation = self._uuid()
            node.running = True
        self._configs.static[node_id] = static
        self._record(HistoryEvent(t, "node_start", node=node_id))
        self._configure_quorum(node, static)
        self._quorum.node_started(node_id, t, node.metadata_dir_id)
        if node.is_broker:
            self._try_register(node)
            for p in list(self._replicas_on.get(node_id, ())):
                self._refresh(p)
        if CONTROLLER in role_set and self._quorum.leader < 0:
            self._schedule_election(t + self._controller_ms("controller.quorum.election.timeout.ms", 1000))
        return node.view()

    def stop_node(self, node_id: int, *, graceful: bool = True) -> None:
        """The process stopped. Graceful: controlled shutdown (leaders move and the broker leaves ISRs
        immediately if the quorum has a leader). Not graceful (SIGKILL/crash): the controller notices only
        after ``broker.session.timeout.ms``. A stopped controller voter stops fetching the metadata log;
        if it led the quorum, a new leader is elected among the remaining voters (if they are a majority)."""
        self._sync()
        node = self._nodes.get(node_id)
        if node is None or not node.running:
            return
        t = self._now
        if node.is_broker and node.active and self._controller_active():
            if graceful:
                self._fence(node, "controlled_shutdown")
            else:
                self._expire_session_later(node)
        node.running = False
        self._record(HistoryEvent(t, "node_stop", node=node_id, graceful=graceful))
        if self._controller_active() and not self._quorum.has_majority_after(node_id):
            # A leader that cannot reach a majority resigns after controller.quorum.fetch.timeout.ms.
            self._schedule(t + self._controller_ms("controller.quorum.fetch.timeout.ms", 2000), "resign",
                           self._quorum.epoch)
        if self._quorum.node_stopped(node_id, t):
            self._record(HistoryEvent(t, "quorum_leader", leader=-1, epoch=self._quorum.epoch))
            delay = (self.tuning.graceful_election_delay_s if graceful
                     else self._controller_ms("controller.quorum.fetch.timeout.ms", 2000))
            self._schedule_election(t + delay)
        for p in list(self._replicas_on.get(node_id, ())):
            self._refresh(p)
        self._pending_isr = {r for r in self._pending_isr if r.broker != node_id}

    def node(self, node_id: int) -> NodeView:
        """Raises KafkaError(BROKER_NOT_AVAILABLE) for an unknown node id."""
        self._sync()
        node = self._nodes.get(node_id)
        if node is None:
            raise KafkaError(ErrorCode.BROKER_NOT_AVAILABLE, f"Node {node_id} is not known to the cluster.")
        return node.view()

    def nodes(self) -> list[NodeView]:
        self._sync()
        return [self._nodes[n].view() for n in sorted(self._nodes)]

    def alive_brokers(self) -> list[NodeView]:
        """Registered, unfenced brokers, by node id: the Metadata / DescribeCluster broker list."""
        self._sync()
        return [self._nodes[n].view() for n in sorted(self._nodes) if self._nodes[n].is_broker and self._nodes[n].active]

    def broker(self, node_id: int) -> NodeView | None:
        """The node if it has the broker role, else None."""
        self._sync()
        node = self._nodes.get(node_id)
        return node.view() if node is not None and node.is_broker else None

    def controllers(self) -> list[NodeView]:
        """Running nodes with the controller role (DescribeCluster endpointType=controller)."""
        self._sync()
        return [self._nodes[n].view() for n in sorted(self._nodes)
                if CONTROLLER in self._nodes[n].roles and self._nodes[n].running]

    def active_controller_id(self) -> int:
        """The KRaft quorum leader, or -1 (DescribeCluster ``controller_id`` for controller endpoints)."""
        self._sync()
        return self._quorum.leader

    def metadata_controller_id(self) -> int:
        """What a KRaft *broker* puts in Metadata / DescribeCluster ``controller_id``: a random alive
        broker (clients cannot reach controllers; brokers forward), or -1 if none."""
        alive = [b.node_id for b in self.alive_brokers()]
        return self._metadata_rng.choice(alive) if alive else -1

    # ------------------------------------------------------- registration
    def _try_register(self, node: _Node) -> None:
        if not node.running or not node.is_broker or not self._controller_active():
            return
        if node.registered and node.registered_incarnation == node.incarnation:
            return
        if node.active:
            # The previous incarnation's session is still valid: DuplicateBrokerRegistration until it expires.
            return
        node.registered = True
        node.fenced = True
        node.registered_incarnation = node.incarnation
        self._metadata_write(1)
        self._schedule(self._now + self.tuning.broker_unfence_delay_s, "unfence", node.node_id, node.incarnation)

    def _unfence(self, node_id: int, incarnation: uuid.UUID) -> None:
        node = self._nodes[node_id]
        if not (node.running and node.registered and node.fenced and node.incarnation == incarnation):
            return
        if not self._controller_active():
            return  # re-scheduled when a controller is elected
        node.fenced = False
        self._metadata_write(1)
        self._record(HistoryEvent(self._now, "broker_unfenced", node=node_id))
        for p in sorted(self._replicas_on.get(node_id, ()), key=_pkey):
            if not (p.leader < 0 and self._change(p, acceptable=self._acceptor(p, add=node_id))):
                self._refresh(p)

    def _expire_session_later(self, node: _Node) -> None:
        node.session_deadline = self._now + self._session_timeout()
        self._schedule(node.session_deadline, "fence", node.node_id, node.registered_incarnation)

    def _fence_if_stale(self, node_id: int, incarnation: object) -> None:
        node = self._nodes[node_id]
        if not node.active or node.registered_incarnation != incarnation or self._now < node.session_deadline:
            return
        if node.running and node.incarnation == incarnation:
            return  # it is alive after all
        if not self._controller_active():
            return
        self._fence(node, "session_timeout")

    def _fence(self, node: _Node, reason: str) -> None:
        """handleBrokerFenced / handleBrokerInControlledShutdown: leave every ISR, lose leaderships."""
        node_id = node.node_id
        node.fenced = True
        self._metadata_write(1)
        self._record(HistoryEvent(self._now, "broker_fenced", node=node_id, reason=reason))
        for p in sorted(self._replicas_on.get(node_id, ()), key=_pkey):
            isr = [r for r in p.isr if r != node_id]
            if not (node_id in p.isr and self._change(p, isr=isr, acceptable=self._acceptor(p, remove=node_id))):
                self._refresh(p)
        if node.running and node.incarnation != node.registered_incarnation:
            self._try_register(node)  # a restarted broker waiting for the old session to expire

    # ============================================================= quorum
    def _configure_quorum(self, node: _Node, static: Mapping[str, str]) -> None:
        q = self._quorum
        voters_cfg = static.get("controller.quorum.voters", "").strip()
        if voters_cfg and not q.static_voters:
            ids = []
            for entry in voters_cfg.split(","):
                node_part = entry.strip().split("@", 1)[0]
                if node_part.strip().isdigit():
                    ids.append(int(node_part))
            if ids:
                q.voters = tuple(sorted(set(ids)))
                q.static_voters = True
        if not q.static_voters and CONTROLLER in node.roles and node.node_id not in q.voters:
            q.voters = tuple(sorted((*q.voters, node.node_id)))
        q.noop_interval_s = self._controller_ms("metadata.max.idle.interval.ms", 500)

    def _controller_ms(self, name: str, default_ms: int) -> float:
        for node_id in self._quorum.voters or sorted(self._nodes):
            if name in self._configs.static.get(node_id, {}):
                return self._configs.broker_int(node_id, name, default_ms) / 1000.0
        return default_ms / 1000.0

    def _controller_node(self) -> int | None:
        """The node whose static config stands for "the controller's config"."""
        if self._quorum.leader >= 0:
            return self._quorum.leader
        return next(iter(self._quorum.voters), None)

    def _session_timeout(self) -> float:
        return self._controller_ms("broker.session.timeout.ms", 9000)

    def _schedule_election(self, at: float) -> None:
        if self._election_at is not None and self._election_at <= at:
            return
        self._election_at = at
        self._schedule(at, "elect")

    def _controller_active(self) -> bool:
        return self._quorum.leader >= 0

    def _require_controller(self) -> None:
        if not self._controller_active():
            raise NoActiveController()

    def _metadata_write(self, records: int) -> None:
        if self._controller_active():
            self._quorum.append(self._now, records)

    def _try_elect(self) -> None:
        if self._controller_active():
            return
        leader = self._quorum.elect(self._now)
        if leader < 0:
            return
        self._record(HistoryEvent(self._now, "quorum_leader", leader=leader, epoch=self._quorum.epoch))
        # A new active controller: fresh broker sessions, then everything that waited for a controller.
        t = self._now
        for node in sorted(self._nodes.values(), key=lambda n: n.node_id):
            if not node.is_broker:
                continue
            if node.active and not (node.running and node.incarnation == node.registered_incarnation):
                self._expire_session_later(node)
            elif node.running and node.registered and node.fenced and node.incarnation == node.registered_incarnation:
                self._schedule(t + self.tuning.broker_unfence_delay_s, "unfence", node.node_id, node.incarnation)
            else:
                self._try_register(node)
        for node in self._nodes.values():
            for d in node.dirs.values():
                if d.failed:
                    self._offline_dir_changes(node, d)
        for replica in sorted(self._pending_isr, key=lambda r: (_pkey(r.partition), r.broker)):
            self._join_isr(replica)
        self._maybe_schedule_rebalance()

    def quorum_state(self) -> QuorumView:
        """DescribeQuorum data for __cluster_metadata-0 as the current leader sees it (leader_id -1 when
        the quorum has no leader: a real controller then answers NOT_LEADER_OR_FOLLOWER)."""
        self._sync()
        q, t = self._quorum, self._now
        endpoints = {v: self._nodes[v].endpoints for v in q.voters if v in self._nodes}
        return QuorumView(q.leader, q.epoch, q.high_watermark(t), q.voter_views(t), q.observer_views(t), endpoints)

    # ============================================================= topics
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
        p.replica_states[broker] = replica
        self._replicas_on.setdefault(broker, set()).add(p)
        return replica

    def _remove_replica(self, p: PartitionState, broker: int) -> None:
        replica = p.replica_states.pop(broker, None)
        if replica is not None:
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
        counts = dict.fromkeys(node.dirs, 0)
        for p in self._replicas_on.get(broker, ()):
            replica = p.replica_states.get(broker)
            if replica is not None and replica.path in counts:
                counts[replica.path] += 1
        online = [d for d in node.dirs.values() if not d.failed] or list(node.dirs.values())
        return min(online, key=lambda d: counts[d.path]).path

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
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, _MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
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
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, _MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
        else:
            topic = self._topics_by_id.get(topic_id) if topic_id is not None else None
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID, _MESSAGES[ErrorCode.UNKNOWN_TOPIC_ID])
        for p in topic.partitions:
            for broker in list(p.replica_states):
                self._remove_replica(p, broker)
            self._imbalanced.discard(p)
        del self._topics[topic.name]
        del self._topics_by_id[topic.topic_id]
        self._configs.topic.pop(topic.name, None)
        self._ingest.pop(topic.name, None)
        self._metadata_write(1)
        self._record(HistoryEvent(self._now, "topic_deleted", topic=topic.name))
        return topic.name, topic.topic_id

    def replica_size(self, partition: PartitionState, broker_id: int) -> int:
        """Bytes of ``partition``'s log on ``broker_id`` now (0 if not a replica there)."""
        self._sync()
        replica = partition.replica_states.get(broker_id)
        return int(replica.size_at(self._now)) if replica is not None else 0

    # ============================================================ configs
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

    # =========================================================== log dirs
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
        for p in sorted(self._replicas_on.get(broker_id, ()), key=_pkey):
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
        for p in sorted(self._replicas_on.get(node.node_id, ()), key=_pkey):
            replica = p.replica_states.get(node.node_id)
            if replica is None or replica.path != d.path:
                continue
            if node.node_id in p.isr or p.leader == node.node_id:
                isr = [r for r in p.isr if r != node.node_id]
                self._change(p, isr=isr, acceptable=self._acceptor(p, remove=node.node_id))

    def restore_log_dir(self, broker_id: int, path: str, *, wiped: bool = False) -> None:
        """The dir is usable again (in Kafka this takes a broker restart); ``wiped`` = a new empty disk."""
        self._sync()
        node = self._nodes[broker_id]
        d = node.dirs[path]
        d.failed = False
        self._record(HistoryEvent(self._now, "log_dir_restored", node=broker_id, path=path))
        for p in list(self._replicas_on.get(broker_id, ())):
            replica = p.replica_states.get(broker_id)
            if replica is not None and replica.path == path and wiped:
                replica.size, replica.t = 0.0, self._now
            if not (p.leader < 0 and self._controller_active() and self._change(p)):
                self._refresh(p)

    # ======================================================= reassignment
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
                raise KafkaError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, _MESSAGES[ErrorCode.NO_REASSIGNMENT_IN_PROGRESS])
            replicas, isr, unclean = revert_reassignment(p)
            if unclean and not self._unclean_enabled(p.topic):
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"Unable to revert partition assignment for {topic}:{partition} because it would "
                                 "require an unclean leader election.")
            dropped = [r for r in p.replicas if r not in replicas]
            self._record(HistoryEvent(self._now, "reassignment_cancelled", topic=topic, partition=partition,
                                      replicas=tuple(replicas), adding=p.adding_replicas,
                                      removing=p.removing_replicas))
            self._change(p, isr=isr, replicas=replicas, adding=[], removing=[],
                         election=Election.UNCLEAN if self._unclean_enabled(p.topic) else Election.ONLINE)
            for broker in dropped:
                if broker not in p.replicas:
                    self._remove_replica(p, broker)
            self._refresh(p)
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

    # ========================================================== elections
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
            return ElectionResult(topic, index, code, _MESSAGES[code])
        election = Election.PREFERRED if kind is ElectionType.PREFERRED else Election.UNCLEAN
        if not self._change(p, election=election):
            code = (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE if kind is ElectionType.PREFERRED
                    else ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE)
            return ElectionResult(topic, index, code, _MESSAGES[code])
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
        for p in sorted(self._imbalanced, key=_pkey):
            self._change(p, election=Election.PREFERRED)
        self._maybe_schedule_rebalance()

    # ===================================================== partition changes
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
            self._drop_unassigned(p)
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
        if replica.broker in p.isr:
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

    # --------------------------------------------------------- replication
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
            for replica in [r for r in self._pending_isr if r.partition is p]:
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
            topic = self._topics.get(p.topic)
            total = sum(x.weight for x in topic.partitions) if topic else 0.0
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
        copying = sorted(self._copying, key=lambda r: (_pkey(r.partition), r.broker))
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
        for replica, rate in zip(copying, rates, strict=True):
            replica.rate = rate if math.isfinite(rate) else self.tuning.replication_rate
            replica.done_at = replica.completion_time(t)

    def _next_completion(self) -> tuple[float, ReplicaState | None]:
        best, best_replica = math.inf, None
        for replica in self._copying:
            if replica.done_at < best or (replica.done_at == best and best_replica is not None
                                          and (_pkey(replica.partition), replica.broker)
                                          < (_pkey(best_replica.partition), best_replica.broker)):
                best, best_replica = replica.done_at, replica
        return best, best_replica

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
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, _MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
        if bytes_per_s < 0 or not math.isfinite(bytes_per_s):
            raise ValueError("the ingest rate must be a finite number >= 0")
        if weights is not None and (
                len(weights) != len(state.partitions) or any(w < 0 or not math.isfinite(w) for w in weights)):
            raise ValueError(f"need {len(state.partitions)} finite weights >= 0")
        self._ingest[topic] = float(bytes_per_s)
        for p in state.partitions:
            p.rebase_log(self._now)
            p.weight = 1.0 if weights is None else float(weights[p.index])
        for p in state.partitions:
            self._refresh_growth(p)

    def _reweigh(self, topic: TopicState) -> None:
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
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, _MESSAGES[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION])
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


def _pkey(p: PartitionState) -> tuple[str, int]:
    return (p.topic, p.index)


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

    def advance(self) -> float | None:
        """Advance every model to now; returns the earliest next event time (for a ticker)."""
        times = []
        for model in self._models.values():
            model.advance_to()
            t = model.next_event_time()
            if t is not None:
                times.append(t)
        return min(times) if times else None
