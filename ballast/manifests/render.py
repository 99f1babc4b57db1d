"""``render_cluster``: every object of a ``KafkaCluster``, in the order to apply them.

Controllers come first (ConfigMap, headless Service, PodDisruptionBudget, StatefulSet), then brokers (ConfigMap,
headless Service, bootstrap Service, PodDisruptionBudget, StatefulSet): within a role, what a pod consumes
exists before the StatefulSet creates pods, and the brokers follow the quorum they need. ``render_role`` gives
one role's objects, for a provisioning step that waits for the quorum before the brokers.

The result is plain JSON-ready dicts, each annotated with its ``kafka.ballast.dev/spec-hash``; rendering is
pure and deterministic (no clock, no randomness, no I/O).
"""

from __future__ import annotations

from ballast.manifests.configmaps import config_map
from ballast.manifests.hashing import with_spec_hash
from ballast.manifests.inputs import RenderInput
from ballast.manifests.metadata import JSON
from ballast.manifests.names import Role
from ballast.manifests.pdb import pod_disruption_budget
from ballast.manifests.services import bootstrap_service, headless_service
from ballast.manifests.statefulsets import statefulset

APPLY_ORDER = (Role.CONTROLLER, Role.BROKER)


def render_role(inp: RenderInput, role: Role) -> list[JSON]:
    """The objects of one role, in apply order, with their spec-hash annotations."""
    objects = [config_map(inp, role), headless_service(inp, role)]
    if role is Role.BROKER:
        objects.append(bootstrap_service(inp))
    objects += [pod_disruption_budget(inp, role), statefulset(inp, role)]
    return [with_spec_hash(obj) for obj in objects]


def render_cluster(inp: RenderInput) -> list[JSON]:
    """Every object of the cluster, controllers' first, in apply order."""
    return [obj for role in APPLY_ORDER for obj in render_role(inp, role)]
