"""Protocol handlers of devcluster's simulated Kafka nodes, one module per API or group of APIs.

Each module exposes ``SPECS`` (its :class:`~devcluster.kafka.protocol.ApiSpec` s); handlers read and
change the cluster model through the :class:`~devcluster.kafka.handlers.context.NodeService` a server
is started with.
"""

from __future__ import annotations

from devcluster.kafka.handlers import (
    api_versions,
    configs,
    describe_quorum,
    elect_leaders,
    log_dirs,
    metadata,
    reassignments,
    topics,
    unregister_broker,
)
from devcluster.kafka.handlers.context import AddressResolver, NodeService, own_address
from devcluster.kafka.protocol import ApiRegistry

__all__ = ["AddressResolver", "NodeService", "default_registry", "own_address"]

_MODULES = (api_versions, metadata, topics, configs, log_dirs, reassignments, elect_leaders, describe_quorum,
            unregister_broker)


def default_registry() -> ApiRegistry:
    """Every API the simulated nodes implement, with the version ranges they advertise."""
    return ApiRegistry(spec for module in _MODULES for spec in module.SPECS)
