"""devcluster's simulated Kafka: a pure-Python model of a KRaft cluster (no sockets here).

Entry points: :func:`directory_for` (the per-devcluster :class:`ClusterDirectory` of models),
:class:`KafkaClusterModel`, :class:`SimClock`, and :mod:`devcluster.kafka.control` for tests and the demo.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.errors import ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.model import ClusterDirectory, KafkaClusterModel, PartitionState, TopicState
from devcluster.kafka.simclock import SimClock

__all__ = [
    "ClusterDirectory",
    "ErrorCode",
    "KafkaClusterModel",
    "KafkaError",
    "NoActiveController",
    "PartitionState",
    "SimClock",
    "TopicState",
    "directory_for",
]

_ATTR = "_kafka_directory"


def directory_for(owner: Any) -> ClusterDirectory:
    """The ClusterDirectory hung off ``owner`` (normally the DevCluster), created on first use.

    One directory per devcluster instance: two devclusters (two tests) never share Kafka state.
    """
    directory = getattr(owner, _ATTR, None)
    if directory is None:
        directory = ClusterDirectory()
        setattr(owner, _ATTR, directory)
    return directory
