"""Kubernetes manifests of a Kafka cluster, rendered from its spec: pure functions, no I/O, no client calls.

``render_cluster(RenderInput(...))`` returns every object in apply order; the modules hold one concept each:
``names`` (object names, ports, node ids, DNS), ``labels`` (labels, selectors, annotation keys), ``config``
(Kafka configuration as the apache/kafka image's environment), ``configmaps``, ``statefulsets``, ``services``,
``pdb``, ``hashing`` (config-hash / spec-hash) and ``render``.
"""

from ballast.manifests.hashing import spec_hash, stable_hash
from ballast.manifests.inputs import RenderInput
from ballast.manifests.labels import (
    CONFIG_HASH_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    broker_selector,
    cluster_selector,
    controller_selector,
    labels,
    selector_labels,
)
from ballast.manifests.names import (
    CONTROLLER_ORDINAL_START,
    CONTROLLER_PORT,
    Role,
    bootstrap_address,
    broker_pod_names,
    controller_pod_names,
    node_id_for_pod,
    pod_name_for_node,
    quorum_voters,
    role_of_node,
)
from ballast.manifests.render import render_cluster, render_role
from ballast.manifests.statefulsets import config_hash

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "CONTROLLER_ORDINAL_START",
    "CONTROLLER_PORT",
    "SPEC_HASH_ANNOTATION",
    "RenderInput",
    "Role",
    "bootstrap_address",
    "broker_pod_names",
    "broker_selector",
    "cluster_selector",
    "config_hash",
    "controller_pod_names",
    "controller_selector",
    "labels",
    "node_id_for_pod",
    "pod_name_for_node",
    "quorum_voters",
    "render_cluster",
    "render_role",
    "role_of_node",
    "selector_labels",
    "spec_hash",
    "stable_hash",
]
