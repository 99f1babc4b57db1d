"""Labels, selectors and annotation keys of everything the operator renders.

Every object carries the recommended ``app.kubernetes.io/*`` labels plus ``kafka.ballast.dev/cluster``:

* ``app.kubernetes.io/name=kafka``, ``app.kubernetes.io/instance=<cluster>``,
  ``app.kubernetes.io/component=broker|controller``, ``app.kubernetes.io/managed-by=ballast``,
  ``kafka.ballast.dev/cluster=<cluster>``.

Selectors (StatefulSets, Services, PodDisruptionBudgets, the scale subresource's ``status.selector``) use only
the stable subset ``instance`` + ``component``: a StatefulSet's selector is immutable, so it must never contain
a label whose value could change in a later operator version.
"""

from __future__ import annotations

from typing import Final

from ballast.manifests.names import Role
from ballast.spec import GROUP

NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
CLUSTER_LABEL: Final = f"{GROUP}/cluster"

# Node labels the PodTopologyLabels admission plugin (KEP-4742) copies onto pods at binding; only these can
# reach a container through the downward API (broker.rack).
POD_TOPOLOGY_LABELS: Final = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region")

APP_NAME: Final = "kafka"
MANAGER: Final = "ballast"

# On each pod template: hash of everything that needs a restart of that role's pods to take effect.
CONFIG_HASH_ANNOTATION: Final = f"{GROUP}/config-hash"
# On every rendered object: hash of its desired content, so an apply can skip unchanged objects.
SPEC_HASH_ANNOTATION: Final = f"{GROUP}/spec-hash"


def labels(name: str, role: Role) -> dict[str, str]:
    """All labels of an object (or pod) of cluster ``name`` belonging to ``role``."""
    return {
        NAME_LABEL: APP_NAME,
        INSTANCE_LABEL: name,
        COMPONENT_LABEL: role.value,
        MANAGED_BY_LABEL: MANAGER,
        CLUSTER_LABEL: name,
    }


def selector_labels(name: str, role: Role) -> dict[str, str]:
    """The immutable selector subset: ``matchLabels`` of the StatefulSet, Service and PDB of ``role``."""
    return {INSTANCE_LABEL: name, COMPONENT_LABEL: role.value}


def selector_string(name: str, role: Role) -> str:
    """``selector_labels`` as a label selector string, keys sorted as Kubernetes prints them
    (``labels.SelectorFromSet(...).String()``); e.g. the KafkaCluster scale subresource's ``status.selector``."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(name, role).items()))


def broker_selector(name: str) -> str:
    return selector_string(name, Role.BROKER)


def controller_selector(name: str) -> str:
    return selector_string(name, Role.CONTROLLER)


def cluster_selector(name: str) -> str:
    """Selects every object (and pod) of cluster ``name``, both roles; the operator-specific label, so
    another application's ``app.kubernetes.io/instance`` of the same name never matches."""
    return f"{CLUSTER_LABEL}={name}"
