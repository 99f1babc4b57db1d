"""Stable content hashes: the ``config-hash`` pod-template annotation and the ``spec-hash`` object annotation.

``stable_hash`` is SHA-256 over canonical JSON (sorted keys, no whitespace, UTF-8), truncated to 128 bits
(32 hex characters): equal values always hash equal, across processes and Python versions, and a collision is
not a practical concern.

* ``config-hash`` (on each pod template): everything that only takes effect when that role's pods restart --
  its ConfigMap data and its pod template (image, resources, per-pod env, ...). StatefulSets use ``OnDelete``,
  so a pod whose annotation differs from its StatefulSet's template is one the operator still has to restart.
* ``spec-hash`` (on every object): the object's whole desired content except this annotation, so the apply
  activity compares one annotation instead of diffing against server-defaulted objects.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from ballast.manifests.labels import SPEC_HASH_ANNOTATION

JSON = dict[str, Any]


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def stable_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()[:32]


def content_hash(obj: JSON) -> str:
    """The ``spec-hash`` of ``obj``: its content without the ``spec-hash`` annotation itself."""
    body = copy.deepcopy(obj)
    annotations = body.get("metadata", {}).get("annotations", {})
    annotations.pop(SPEC_HASH_ANNOTATION, None)
    if not annotations:
        body.get("metadata", {}).pop("annotations", None)
    return stable_hash(body)


def with_spec_hash(obj: JSON) -> JSON:
    """A copy of ``obj`` annotated with its ``spec-hash``."""
    out = copy.deepcopy(obj)
    out.setdefault("metadata", {}).setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = content_hash(obj)
    return out


def spec_hash(obj: JSON) -> str | None:
    """The ``spec-hash`` annotation of ``obj`` (e.g. a live object read from the API), if any."""
    value = (obj.get("metadata", {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
    return value if isinstance(value, str) else None
