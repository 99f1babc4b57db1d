"""Names, ports, node ids and DNS addresses of a Kafka cluster's Kubernetes objects: the one place they live.

Every object of a ``KafkaCluster`` named ``<name>`` is named from it:

========================  ==================================  =============================================
object                    name                                note
========================  ==================================  =============================================
StatefulSet (roles)       ``<name>-controller``,              pods ``<name>-controller-1000..``,
                          ``<name>-broker``                   ``<name>-broker-0..``
headless Service          ``<name>-controllers``,             the StatefulSets' ``serviceName``: pod DNS
                          ``<name>-brokers``                  ``<pod>.<svc>.<ns>.svc.<domain>``
bootstrap Service         ``<name>-kafka-bootstrap``          ClusterIP over the brokers' client ports
ConfigMap                 ``<name>-controller-config``,       shared ``KAFKA_*`` settings (``envFrom``)
                          ``<name>-broker-config``
PodDisruptionBudget       ``<name>-controller``,              named after the StatefulSet it guards
                          ``<name>-broker``
PVC (by the StatefulSet)  ``data-<statefulset>-<ordinal>``    from the ``data`` volumeClaimTemplate
========================  ==================================  =============================================

Node ids are StatefulSet ordinals, so the id of a pod never needs to be stored anywhere: brokers use ordinals
``0..replicas-1`` and controllers use ``spec.ordinals.start`` = ``CONTROLLER_ORDINAL_START`` (1000; the
``StatefulSetStartOrdinal`` feature is GA since Kubernetes 1.31), so controllers are ``<name>-controller-1000``,
``-1001``, ``-1002`` and broker and controller ids never collide (``spec.brokers.replicas`` is at most 1000).
The container learns its id from the pod label ``apps.kubernetes.io/pod-index`` (set by the StatefulSet
controller since 1.28, GA in 1.32), read through the downward API.

The cluster name is limited to ``MAX_CLUSTER_NAME_LENGTH`` characters: the StatefulSet controller labels each
pod ``controller-revision-hash=<statefulset>-<10-char hash>``, a label value of at most 63 characters, so the
longest StatefulSet name (``<name>-controller``) must stay within 52.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    """A KRaft process role; also the ``app.kubernetes.io/component`` label value."""

    CONTROLLER = "controller"
    BROKER = "broker"


# KRaft controllers listen here (listener CONTROLLER); brokers reach the quorum on this port.
CONTROLLER_PORT: Final = 9093
CONTROLLER_LISTENER: Final = "CONTROLLER"
CONTROLLER_PORT_NAME: Final = "controller"

# Controller pods are <name>-controller-1000.. and their node.id is the ordinal.
CONTROLLER_ORDINAL_START: Final = 1000
# Upper bound of spec.brokers.replicas; broker ids 0..999 never reach the controller ids.
MAX_BROKERS: Final = 1000
assert MAX_BROKERS <= CONTROLLER_ORDINAL_START

# Set by the StatefulSet controller on every pod: the pod's ordinal (including spec.ordinals.start).
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"

# Where the PVC is mounted and Kafka keeps its logs (log.dirs) and metadata log.
DATA_VOLUME: Final = "data"
DATA_DIR: Final = "/var/lib/kafka/data"
# The log dir is a sub-directory of the volume (mounted with subPath): a fresh ext4 volume's root holds
# lost+found, which Kafka refuses as "not in the form of topic-partition" and stops.
DATA_SUBPATH: Final = "kafka"

CONTAINER_NAME: Final = "kafka"
DEFAULT_CLUSTER_DOMAIN: Final = "cluster.local"

# See the module docstring: <name>-controller + "-" + 10-char revision hash <= 63.
MAX_CLUSTER_NAME_LENGTH: Final = 63 - len("-controller") - 11


def statefulset_name(name: str, role: Role) -> str:
    return f"{name}-{role.value}"


def headless_service_name(name: str, role: Role) -> str:
    """``<name>-brokers`` / ``<name>-controllers``: per-pod DNS for the role's pods."""
    return f"{name}-{role.value}s"


def bootstrap_service_name(name: str) -> str:
    return f"{name}-kafka-bootstrap"


def config_map_name(name: str, role: Role) -> str:
    return f"{name}-{role.value}-config"


def pdb_name(name: str, role: Role) -> str:
    return statefulset_name(name, role)


def ordinal_start(role: Role) -> int:
    return CONTROLLER_ORDINAL_START if role is Role.CONTROLLER else 0


def pod_name(name: str, role: Role, node_id: int) -> str:
    """The pod that runs ``node_id`` (node ids are ordinals)."""
    return f"{statefulset_name(name, role)}-{node_id}"


def node_ids(role: Role, replicas: int) -> list[int]:
    start = ordinal_start(role)
    return list(range(start, start + replicas))


def broker_pod_names(name: str, replicas: int) -> list[str]:
    return [pod_name(name, Role.BROKER, i) for i in node_ids(Role.BROKER, replicas)]


def controller_pod_names(name: str, replicas: int) -> list[str]:
    return [pod_name(name, Role.CONTROLLER, i) for i in node_ids(Role.CONTROLLER, replicas)]


def role_of_node(node_id: int) -> Role:
    """Which role a node id belongs to (controllers start at ``CONTROLLER_ORDINAL_START``)."""
    if node_id < 0:
        raise ValueError(f"node ids are never negative: {node_id}")
    return Role.CONTROLLER if node_id >= CONTROLLER_ORDINAL_START else Role.BROKER


def pod_name_for_node(name: str, node_id: int) -> str:
    """The pod of cluster ``name`` that runs Kafka node ``node_id``."""
    return pod_name(name, role_of_node(node_id), node_id)


def node_id_for_pod(name: str, pod: str) -> int | None:
    """The node id of pod ``pod`` of cluster ``name``; None if the name is not one of the cluster's pods."""
    for role in Role:
        prefix = f"{statefulset_name(name, role)}-"
        if not pod.startswith(prefix):
            continue
        suffix = pod[len(prefix):]
        # Ordinals are rendered without sign or leading zeros; anything else is some other pod.
        if not suffix.isdigit() or (suffix != "0" and suffix.startswith("0")):
            continue
        node_id = int(suffix)
        if role_of_node(node_id) is role:
            return node_id
    return None


def service_host(service: str, namespace: str, domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    return f"{service}.{namespace}.svc.{domain}"


def pod_host(name: str, role: Role, node_id: int, namespace: str, domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """The stable DNS name of a pod: ``<pod>.<headless service>.<ns>.svc.<domain>``."""
    return f"{pod_name(name, role, node_id)}.{service_host(headless_service_name(name, role), namespace, domain)}"


def bootstrap_address(name: str, namespace: str, domain: str = DEFAULT_CLUSTER_DOMAIN, port: int = 9092) -> str:
    """``host:port`` of the bootstrap Service, what in-cluster clients put in ``bootstrap.servers``."""
    return f"{service_host(bootstrap_service_name(name), namespace, domain)}:{port}"


def quorum_voters(name: str, namespace: str, replicas: int, domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """The static ``controller.quorum.voters``: ``<id>@<controller pod host>:9093,...`` in id order."""
    return ",".join(
        f"{node_id}@{pod_host(name, Role.CONTROLLER, node_id, namespace, domain)}:{CONTROLLER_PORT}"
        for node_id in node_ids(Role.CONTROLLER, replicas)
    )
