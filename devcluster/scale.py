"""The ``/scale`` subresource (autoscaling/v1 ``Scale``) for StatefulSets and CRDs that declare it."""

from __future__ import annotations

import copy
from typing import Any

from devcluster import errors
from devcluster.api import ApiServer
from devcluster.errors import Cause
from devcluster.registry import ResourceType
from devcluster.store import Obj


def get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def _selector_string(rt: ResourceType, obj: Obj) -> str | None:
    assert rt.scale is not None
    if rt.builtin and rt.kind == "StatefulSet":
        sel = (obj.get("spec") or {}).get("selector") or {}
        labels = sel.get("matchLabels") or {}
        parts = [f"{k}={v}" for k, v in sorted(labels.items())]
        for expr in sel.get("matchExpressions") or []:
            op, key, values = expr.get("operator"), expr.get("key"), ",".join(expr.get("values") or [])
            parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                          "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key))
        return ",".join(parts)
    if rt.scale.label_selector_path:
        value = get_path(obj, rt.scale.label_selector_path)
        return value if isinstance(value, str) else None
    return None


def scale_of(rt: ResourceType, obj: Obj) -> Obj:
    assert rt.scale is not None
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": int(get_path(obj, rt.scale.status_replicas_path) or 0)}
    selector = _selector_string(rt, obj)
    if selector:
        status["selector"] = selector
    out_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": out_meta,
            "spec": {"replicas": int(get_path(obj, rt.scale.spec_replicas_path) or 0)}, "status": status}


def apply_scale(api: ApiServer, rt: ResourceType, namespace: str | None, name: str, scale: Obj) -> Obj:
    assert rt.scale is not None
    current = api.get(rt, namespace, name)
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("Scale", "autoscaling", name, [
            Cause("FieldValueInvalid", f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                  "spec.replicas")])
    updated = copy.deepcopy(current)
    set_path(updated, rt.scale.spec_replicas_path, replicas)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    updated["metadata"]["resourceVersion"] = rv if rv else current["metadata"]["resourceVersion"]
    # As its own subresource, so fault rules can target ``<plural>/scale`` writes apart from the main resource.
    return api.update(rt, namespace, name, updated, subresource="scale")
