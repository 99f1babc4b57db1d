"""A devcluster with a configured node count and zones (``DevClusterConfig.nodes`` / ``zones``)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from devcluster.cluster import DevClusterConfig
from tests.conftest import wait_for

NS = "default"
NODES = [f"devcluster-worker-{i}" for i in range(1, 6)]


@pytest.fixture
def devcluster_config() -> DevClusterConfig:
    return DevClusterConfig(bookmark_interval=0.5, nodes=5, zones=("x", "y"))


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec}}


def test_node_count_and_zones_are_configurable(core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == NODES
    # Zones are dealt round-robin, so a zone-spread set has somewhere to go in each zone.
    assert [n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes] == ["x", "y", "x", "y", "x"]
    assert all(c.status == "True" for n in nodes for c in n.status.conditions if c.type == "Ready")
    coordination = client.CoordinationV1Api(core.api_client)
    leases = wait_for(lambda: len(items := coordination.list_namespaced_lease("kube-node-lease").items) == 5 and items,
                      message="a lease per node")
    assert sorted(lease.spec.holder_identity for lease in leases) == NODES  # type: ignore[union-attr]

    # The scheduler places by these zones: a pod pinned to zone y lands on a y node and carries its zone.
    core.create_namespaced_pod(NS, _pod("in-y", nodeSelector={"topology.kubernetes.io/zone": "y"}))
    pod = wait_for(lambda: (p := core.read_namespaced_pod("in-y", NS)).spec.node_name and p, message="scheduled")
    assert pod.spec.node_name in ("devcluster-worker-2", "devcluster-worker-4")  # type: ignore[union-attr]
    assert pod.metadata.labels["topology.kubernetes.io/zone"] == "y"  # type: ignore[union-attr]

    # The default zones do not exist here: the scheduler counts all five nodes out.
    core.create_namespaced_pod(NS, _pod("in-a", nodeSelector={"topology.kubernetes.io/zone": "zone-a"}))

    def refused() -> str | None:
        conds = {c.type: c for c in core.read_namespaced_pod("in-a", NS).status.conditions or []}
        return conds["PodScheduled"].message if "PodScheduled" in conds else None

    assert wait_for(refused, message="in-a refused") == (
        "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector. no new claims to "
        "deallocate, preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.")
