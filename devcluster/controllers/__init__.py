"""Simulated controllers: each is an object with ``async run()`` (and optional ``async stop()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster


def all_controllers(cluster: DevCluster) -> list[Any]:
    return []
