"""Node lifecycle and the KRaft control plane of the simulated cluster: processes starting and stopping,
broker registration / unfencing / fencing (controlled shutdown or session timeout), and the metadata
quorum's elections. Mixed into :class:`~devcluster.kafka.model.KafkaClusterModel`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from devcluster.kafka.errors import ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.partitions import (
    pkey,
)
from devcluster.kafka.types import (
    BROKER,
    CONTROLLER,
    Endpoint,
    HistoryEvent,
    LogDirSpec,
    NodeView,
    QuorumView,
)


@dataclass
class _Dir:
    path: str
    capacity: int
    directory_id: uuid.UUID
    failed: bool = False
    replicas: int = 0  # replicas placed in this dir (for placing new ones)


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


class LifecycleMixin:
    """Nodes and the quorum (state lives on the model; see KafkaClusterModel.__init__)."""

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

    def _try_register(self, node: _Node) -> None:
        if not node.running or not node.is_broker or not self._controller_active():
            return
        if node.registered_incarnation == node.incarnation:
            # Registered already, or this very process was unregistered (UnregisterBroker): its heartbeats
            # fail with STALE_BROKER_EPOCH until it restarts, it does not register again.
            return
        if node.active:
            # The previous incarnation's session is still valid: DuplicateBrokerRegistration until it expires.
            return
        node.registered = True
        node.fenced = True
        node.registered_incarnation = node.incarnation
        self._metadata_write(1)
        self._record(HistoryEvent(self._now, "broker_registered", node=node.node_id))
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
        for p in sorted(self._replicas_on.get(node_id, ()), key=pkey):
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
        for p in sorted(self._replicas_on.get(node_id, ()), key=pkey):
            isr = [r for r in p.isr if r != node_id]
            if not (node_id in p.isr and self._change(p, isr=isr, acceptable=self._acceptor(p, remove=node_id))):
                self._refresh(p)
        if node.running and node.incarnation != node.registered_incarnation:
            self._try_register(node)  # a restarted broker waiting for the old session to expire

    def _configure_quorum(self, node: _Node, static: Mapping[str, str]) -> None:
        q = self._quorum
        voters_cfg = static.get("controller.quorum.voters", "").strip()
        if voters_cfg and not q.static_voters:
            # id@host:port entries; the endpoints are what DescribeQuorum v2 reports for static voters,
            # under the first of controller.listener.names.
            listener = (static.get("controller.listener.names") or "CONTROLLER").split(",")[0].strip()
            endpoints: dict[int, tuple[Endpoint, ...]] = {}
            for entry in voters_cfg.split(","):
                node_part, _, address = entry.strip().partition("@")
                host, _, port = address.rpartition(":")
                if node_part.strip().isdigit():
                    endpoints[int(node_part)] = (
                        (Endpoint(listener, host.strip("[]"), int(port)),) if port.isdigit() else ())
            if endpoints:
                q.voters = tuple(sorted(endpoints))
                q.static_voters = True
                self._voter_endpoints = endpoints
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
        for replica in sorted(self._pending_isr, key=lambda r: (pkey(r.partition), r.broker)):
            self._join_isr(replica)
        self._maybe_schedule_rebalance()

    def quorum_state(self) -> QuorumView:
        """DescribeQuorum data for __cluster_metadata-0 as the current leader sees it (leader_id -1 when
        the quorum has no leader: a real controller then answers NOT_LEADER_OR_FOLLOWER)."""
        self._sync()
        q, t = self._quorum, self._now
        if q.static_voters:
            endpoints = {v: self._voter_endpoints.get(v, ()) for v in q.voters}
        else:
            endpoints = {v: self._nodes[v].endpoints for v in q.voters if v in self._nodes}
        return QuorumView(q.leader, q.epoch, q.high_watermark(t), q.voter_views(t), q.observer_views(t), endpoints)
