"""The control surface of the simulated Kafka clusters, for tests and the demo (never the operator).

    control = KafkaControl(model)                 # or KafkaControl.for_cluster(dc, "cluster-id")
    control.set_speed(100)                        # 100 simulated seconds per wall second
    control.set_ingest_rate("orders", "20MiB")    # per simulated second, spread over the partitions
    control.skew("orders", {3: 10})               # partition 3 gets 10x the share of the others
    control.inflate("orders", 0, "5GiB")          # partition 0 is suddenly 5 GiB bigger
    control.set_replication_rate("50MiB")         # a follower broker's catch-up bandwidth
    control.slow_broker(2, 10)                    # broker 2 catches up 10x slower
    control.fail_disk(2, "/var/lib/kafka/data")   # KAFKA_STORAGE_ERROR for that dir's replicas

The model lives on the devcluster's event loop: from another thread, call these through
``DevClusterThread.call(lambda dc: ...)`` so they run on that loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from devcluster.kafka.model import KafkaClusterModel

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]i?B?|[kmgtp]|B)?\s*(?:/s)?\s*$")
_FACTORS = {
    None: 1, "B": 1,
    "K": 1000, "KB": 1000, "k": 1000, "M": 10**6, "MB": 10**6, "m": 10**6, "G": 10**9, "GB": 10**9, "g": 10**9,
    "T": 10**12, "TB": 10**12, "t": 10**12, "P": 10**15, "PB": 10**15, "p": 10**15,
    "Ki": 2**10, "KiB": 2**10, "Mi": 2**20, "MiB": 2**20, "Gi": 2**30, "GiB": 2**30,
    "Ti": 2**40, "TiB": 2**40, "Pi": 2**50, "PiB": 2**50,
}


def parse_bytes(value: str | float) -> float:
    """``"20MiB"``, ``"1.5GB"``, ``"10Mi/s"``, ``"512"`` or a number -> bytes (decimal vs binary units
    as written)."""
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a size must be >= 0, got {value}")
        return float(value)
    match = _SIZE.match(value)
    if match is None or match.group(2) not in _FACTORS:
        raise ValueError(f"not a size: {value!r} (examples: 512, 20MiB, 1.5GB, 10Mi/s)")
    return float(match.group(1)) * _FACTORS[match.group(2)]


class KafkaControl:
    """Test/demo controls over one simulated cluster (see the module docstring)."""

    def __init__(self, model: KafkaClusterModel) -> None:
        self.model = model

    @classmethod
    def for_cluster(cls, owner: Any, cluster_id: str) -> KafkaControl:
        """Controls for cluster ``cluster_id`` of the devcluster ``owner`` (created if not running yet)."""
        from devcluster.kafka import directory_for

        return cls(directory_for(owner).get_or_create(cluster_id))

    # ------------------------------------------------------------- load
    def set_ingest_rate(self, topic: str, rate: str | float) -> None:
        """Producers write ``rate`` bytes per simulated second to ``topic`` (current skew kept)."""
        state = self._topic(topic)
        weights = [p.weight for p in state.partitions]
        self.model.set_ingest_rate(topic, parse_bytes(rate), weights)

    def skew(self, topic: str, weights: Mapping[int, float]) -> None:
        """Relative ingest shares per partition (unlisted partitions: 1)."""
        state = self._topic(topic)
        shares = [float(weights.get(p.index, 1.0)) for p in state.partitions]
        self.model.set_ingest_rate(topic, self.model.ingest_rate(topic), shares)

    def inflate(self, topic: str, partition: int, size: str | float) -> None:
        """Make one partition ``size`` bytes bigger at once (a size skew)."""
        self.model.inflate_partition(topic, partition, int(parse_bytes(size)))

    def partition_sizes(self, topic: str) -> dict[int, int]:
        """Leader log size per partition (0 for an offline partition with no replica data)."""
        state = self._topic(topic)
        return {p.index: self.model.replica_size(p, p.leader if p.leader >= 0 else p.isr[0]) for p in state.partitions}

    # ------------------------------------------------------ replication
    def set_replication_rate(self, rate: str | float) -> None:
        self.model.set_replication_rate(parse_bytes(rate))

    def slow_broker(self, broker: int, factor: float) -> None:
        """``broker`` catches up ``factor`` times slower (1 restores normal speed)."""
        self.model.set_broker_slowness(broker, factor)

    # ------------------------------------------------------------ disks
    def fail_disk(self, broker: int, path: str) -> None:
        self.model.fail_log_dir(broker, path)

    def restore_disk(self, broker: int, path: str, *, wiped: bool = False) -> None:
        self.model.restore_log_dir(broker, path, wiped=wiped)

    # ------------------------------------------------------------- time
    def set_speed(self, speed: float) -> None:
        """Simulated seconds per wall second for every simulated cluster of this devcluster."""
        self.model.advance_to()
        self.model.clock.set_speed(speed)

    def status(self) -> dict[str, Any]:
        """A JSON-friendly summary (for the CLI and the demo)."""
        model = self.model
        quorum = model.quorum_state()
        topics = {}
        for state in model.topics():
            topics[state.name] = {
                "ingest_bytes_per_s": model.ingest_rate(state.name),
                "partitions": [
                    {"partition": p.index, "leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isr),
                     "adding": list(p.adding_replicas), "removing": list(p.removing_replicas),
                     "size_bytes": {str(b): model.replica_size(p, b) for b in p.replicas}}
                    for p in state.partitions
                ],
            }
        return {
            "cluster_id": model.cluster_id,
            "sim_time": model.now,
            "speed": model.clock.speed,
            "controller": quorum.leader_id,
            "brokers": [
                {"id": n.node_id, "running": n.running, "fenced": n.fenced, "rack": n.rack}
                for n in model.nodes() if "broker" in n.roles
            ],
            "topics": topics,
        }

    def _topic(self, topic: str):
        state = self.model.topic(topic)
        if state is None:
            raise KeyError(f"no topic {topic!r} in cluster {self.model.cluster_id}")
        return state
