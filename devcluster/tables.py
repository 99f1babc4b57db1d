"""``meta.k8s.io/v1`` Table rendering for ``kubectl get`` (columns per kind, CRD printer columns)."""

from __future__ import annotations

from typing import Any

from devcluster import clock
from devcluster.registry import ResourceType
from devcluster.store import Obj


def _age(obj: Obj) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return "<unknown>"
    seconds = int((clock.now() - clock.parse(created)).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 2:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def to_table(rt: ResourceType, objects: list[Obj], list_meta: dict[str, Any], include_object: str) -> dict[str, Any]:
    columns = [
        {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
        {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0},
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [obj["metadata"]["name"], _age(obj)]}
        if include_object != "None":
            meta = obj if include_object == "Object" else {"metadata": obj["metadata"]}
            row["object"] = {"kind": rt.kind if include_object == "Object" else "PartialObjectMetadata",
                             "apiVersion": rt.api_version if include_object == "Object" else "meta.k8s.io/v1",
                             **{k: v for k, v in meta.items() if k not in ("kind", "apiVersion")}}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns,
            "rows": rows}
