"""Simulated controllers: each is an object with ``async run()`` (and optional ``async stop()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster


def all_controllers(cluster: DevCluster) -> list[Any]:
    from devcluster.controllers.endpoints import EndpointsController
    from devcluster.controllers.gc import GarbageCollector
    from devcluster.controllers.kubelet import Kubelet
    from devcluster.controllers.namespaces import NamespaceController
    from devcluster.controllers.nodes import NodeController
    from devcluster.controllers.proxy import LoopbackProxy
    from devcluster.controllers.scheduler import Scheduler
    from devcluster.controllers.statefulset import StatefulSetController
    from devcluster.controllers.volumes import VolumeController
    from devcluster.kafka.runtime import KafkaRuntime

    # Node side first: nodes registered, then scheduling, storage and the kubelets that run pods.
    node_side = [NodeController(cluster), Scheduler(cluster), VolumeController(cluster), Kubelet(cluster)]
    return [*node_side, StatefulSetController(cluster), GarbageCollector.for_cluster(cluster),
            NamespaceController.for_cluster(cluster), EndpointsController.for_cluster(cluster),
            LoopbackProxy.for_cluster(cluster), KafkaRuntime.of(cluster)]
