"""Object metadata shared by every rendered object: name, namespace, labels and the owner reference.

Every object is owned by its ``KafkaCluster`` (``controller: true``, ``blockOwnerDeletion: true``), so the
garbage collector removes them when the cluster is deleted and watchers can map any of them back to the cluster
through ``metadata.ownerReferences``. PersistentVolumeClaims are the exception: the StatefulSets create them
with a Retain/Retain policy and no owner, and the operator deletes them itself per ``storage.deleteClaim``.
"""

from __future__ import annotations

from typing import Any

from ballast.manifests.inputs import RenderInput
from ballast.manifests.labels import labels
from ballast.manifests.names import Role
from ballast.spec import API_VERSION, KIND

JSON = dict[str, Any]


def owner_reference(name: str, uid: str) -> JSON:
    """The controller ownerReference to KafkaCluster ``name``/``uid``."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(inp: RenderInput, name: str, role: Role) -> JSON:
    """``metadata`` of an object named ``name`` belonging to ``role`` of the cluster ``inp`` describes."""
    return {
        "name": name,
        "namespace": inp.namespace,
        "labels": labels(inp.name, role),
        "ownerReferences": [owner_reference(inp.name, inp.uid)],
    }
