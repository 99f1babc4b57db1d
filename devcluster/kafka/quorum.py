"""The KRaft metadata quorum (``__cluster_metadata``-0) as DescribeQuorum shows it.

The leader's log grows by the records of every metadata change plus a NoOpRecord each
``metadata.max.idle.interval.ms`` (500 ms) while idle, so a stopped voter visibly falls behind.
Running replicas fetch continuously: they are caught up (log end offset = the leader's) except for a short
catch-up period after a restart. Replica state is reported *as the current leader knows it*: after a
leader change, replicas that have not fetched from the new leader (stopped ones) show -1.

Elections are decided by the model (it owns timing); :meth:`Quorum.elect` picks the running voter with the
longest log (ties: lowest id), as Raft's up-to-date check would, and needs a majority of voters running.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

from devcluster.kafka.types import QuorumReplicaView

OBSERVER_SESSION_TIMEOUT_S = 300.0  # LeaderState drops observers that have not fetched for 5 minutes.
ZERO_UUID = uuid.UUID(int=0)


@dataclass(slots=True)
class _Replica:
    node_id: int
    directory_id: uuid.UUID
    running: bool = False
    known: bool = False  # has fetched from the current leader
    leo: int = 0  # frozen log end offset (while stopped, catching up or leaderless)
    last_fetch: float = -1.0
    last_caught_up: float = -1.0
    catch_up_until: float | None = None


@dataclass
class Quorum:
    """Quorum state; all times are simulated seconds."""

    noop_interval_s: float = 0.5
    catch_up_base_s: float = 0.2
    catch_up_records_per_s: float = 20_000.0
    voters: tuple[int, ...] = ()
    static_voters: bool = False
    leader: int = -1
    epoch: int = 0
    _base: int = 0  # log end offset at _t0
    _t0: float = 0.0
    _hw: int = 0
    _replicas: dict[int, _Replica] = field(default_factory=dict)

    # ------------------------------------------------------------------ log
    def log_end(self, t: float) -> int:
        if self.leader < 0:
            return self._base
        idle = max(0.0, t - self._t0)
        return self._base + (int(idle / self.noop_interval_s) if self.noop_interval_s > 0 else 0)

    def append(self, t: float, records: int) -> None:
        """A metadata write of ``records`` records committed at ``t`` (requires a leader)."""
        self._base = self.log_end(t) + records
        self._t0 = t

    def has_majority(self) -> bool:
        running = sum(1 for v in self.voters if self._replica(v).running)
        return bool(self.voters) and running * 2 > len(self.voters)

    def has_majority_after(self, stopping: int) -> bool:
        """Whether a majority of voters would still run once ``stopping`` stops."""
        running = sum(1 for v in self.voters if v != stopping and self._replica(v).running)
        return bool(self.voters) and running * 2 > len(self.voters)

    def resign(self, t: float) -> None:
        """The leader gives up (it lost contact with a majority); the quorum is leaderless."""
        if self.leader >= 0:
            self._lose_leader(t)

    # ------------------------------------------------------------ replicas
    def _replica(self, node_id: int, directory_id: uuid.UUID | None = None) -> _Replica:
        replica = self._replicas.get(node_id)
        if replica is None:
            replica = self._replicas[node_id] = _Replica(node_id, directory_id or ZERO_UUID)
        elif directory_id is not None:
            replica.directory_id = directory_id
        return replica

    def replica_leo(self, node_id: int, t: float) -> int:
        """The node's own log end offset (what it would campaign with)."""
        replica = self._replica(node_id)
        if node_id == self.leader:
            return self.log_end(t)
        caught_up = replica.catch_up_until is None or t >= replica.catch_up_until
        if self.leader >= 0 and replica.running and replica.known and caught_up:
            return self.log_end(t)
        return replica.leo

    def node_started(self, node_id: int, t: float, directory_id: uuid.UUID) -> None:
        replica = self._replica(node_id, directory_id)
        replica.running = True
        if self.leader >= 0:
            self._start_fetching(replica, t)

    def _start_fetching(self, replica: _Replica, t: float) -> None:
        lag = max(0, self.log_end(t) - replica.leo)
        replica.known = True
        replica.last_fetch = t
        replica.catch_up_until = t + self.catch_up_base_s + lag / self.catch_up_records_per_s

    def node_stopped(self, node_id: int, t: float) -> bool:
        """Returns True if the stopped node was the leader (the quorum is now leaderless)."""
        replica = self._replica(node_id)
        self._freeze(replica, t)
        replica.running = False
        if node_id == self.leader:
            self._lose_leader(t)
            return True
        return False

    def _freeze(self, replica: _Replica, t: float) -> None:
        if not replica.running:
            return
        replica.leo = self.replica_leo(replica.node_id, t)
        if self.leader >= 0 and replica.known:
            replica.last_fetch = t
            if replica.catch_up_until is None or t >= replica.catch_up_until:
                replica.last_caught_up = t
        replica.catch_up_until = None

    def _lose_leader(self, t: float) -> None:
        self._hw = self.high_watermark(t)
        for replica in self._replicas.values():
            if replica.node_id != self.leader:
                self._freeze(replica, t)
        leader = self._replicas.get(self.leader)
        if leader is not None:
            leader.leo = self.log_end(t)
        self._base = self.log_end(t)
        self.leader = -1

    def elect(self, t: float) -> int:
        """Elect a leader among running voters if a majority runs; returns the leader id or -1."""
        if self.leader >= 0 or not self.has_majority():
            return self.leader
        candidates = [v for v in self.voters if self._replica(v).running]
        winner = min(candidates, key=lambda v: (-self._replica(v).leo, v))
        self.epoch += 1
        self.leader = winner
        self._base = self._replica(winner).leo + 1  # the new leader's LeaderChangeMessage
        self._t0 = t
        for replica in self._replicas.values():
            replica.known = False
            replica.catch_up_until = None
            if replica.node_id == winner:
                replica.known = True
                replica.last_fetch = replica.last_caught_up = t
            elif replica.running:
                self._start_fetching(replica, t)
            else:
                replica.last_fetch = replica.last_caught_up = -1.0
        return winner

    # --------------------------------------------------------------- views
    def _view(self, replica: _Replica, t: float) -> QuorumReplicaView:
        # A static voter set (controller.quorum.voters) carries no directory ids: Kafka reports zero.
        directory_id = ZERO_UUID if self.static_voters and replica.node_id in self.voters else replica.directory_id
        if not replica.known:
            return QuorumReplicaView(replica.node_id, directory_id, -1, -1, -1)
        if replica.node_id == self.leader:
            last_fetch = last_caught_up = t
        elif replica.running:
            last_fetch = t
            caught_up = replica.catch_up_until is None or t >= replica.catch_up_until
            last_caught_up = t if caught_up else replica.last_caught_up
        else:
            last_fetch, last_caught_up = replica.last_fetch, replica.last_caught_up
        return QuorumReplicaView(
            replica.node_id,
            directory_id,
            self.replica_leo(replica.node_id, t),
            _ms(last_fetch),
            _ms(last_caught_up),
        )

    def high_watermark(self, t: float) -> int:
        if self.leader < 0 or not self.voters:
            return self._hw
        offsets = sorted(
            (self.replica_leo(v, t) if self._replica(v).known else -1 for v in self.voters), reverse=True
        )
        return max(self._hw, offsets[len(self.voters) // 2])

    def voter_views(self, t: float) -> tuple[QuorumReplicaView, ...]:
        return tuple(self._view(self._replica(v), t) for v in self.voters)

    def observer_views(self, t: float) -> tuple[QuorumReplicaView, ...]:
        views = []
        for node_id in sorted(self._replicas):
            replica = self._replicas[node_id]
            if node_id in self.voters or not replica.known:
                continue
            if not replica.running and t - replica.last_fetch > OBSERVER_SESSION_TIMEOUT_S:
                continue
            views.append(self._view(replica, t))
        return tuple(views)

    def next_catch_up(self) -> float | None:
        """Earliest pending end of a catch-up (only informative: catch-ups need no event)."""
        times = [r.catch_up_until for r in self._replicas.values() if r.running and r.catch_up_until is not None]
        return min(times) if times else None


def _ms(t: float) -> int:
    return -1 if t < 0 or not math.isfinite(t) else int(t * 1000)
