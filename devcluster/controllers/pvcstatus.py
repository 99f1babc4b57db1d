"""PVC status transitions of volume expansion (external-resizer's and kubelet's), as pure functions.

Each function returns a new ``status`` dict for the claim; conditions are merged like
``MergeResizeConditionsOfPVC``: non-resize conditions are kept, a resize condition of unchanged status keeps
its ``lastTransitionTime``, resize conditions not asked for are dropped.
"""

from __future__ import annotations

import copy

from devcluster import clock
from devcluster.store import Obj

CONTROLLER_IN_PROGRESS = "ControllerResizeInProgress"
NODE_PENDING = "NodeResizePending"
NODE_IN_PROGRESS = "NodeResizeInProgress"
RESIZING = "Resizing"
FS_RESIZE_PENDING = "FileSystemResizePending"
FS_RESIZE_MESSAGE = "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
_RESIZE_CONDITIONS = frozenset({RESIZING, FS_RESIZE_PENDING, "ControllerResizeError", "NodeResizeError"})


def resize_status(pvc: Obj) -> str | None:
    return ((pvc.get("status") or {}).get("allocatedResourceStatuses") or {}).get("storage")


def mounts(pod: Obj) -> bool:
    """Has kubelet this pod's volumes mounted? (scheduled, not terminating, sandbox ready)."""
    if not (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    return any(c.get("type") == "PodReadyToStartContainers" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _merge(old: list[Obj], wanted: list[Obj]) -> list[Obj]:
    by_type = {c["type"]: c for c in wanted}
    out: list[Obj] = []
    for cond in old:
        if cond.get("type") not in _RESIZE_CONDITIONS:
            out.append(cond)
        elif cond["type"] in by_type:
            new = by_type.pop(cond["type"])
            out.append(new if new["status"] != cond.get("status") else cond)
    out.extend(by_type.values())
    return out


def _status(pvc: Obj, conditions: list[Obj], step: str | None) -> Obj:
    status = copy.deepcopy(pvc.get("status") or {})
    merged = _merge(status.get("conditions") or [], conditions)
    if merged:
        status["conditions"] = merged
    else:
        status.pop("conditions", None)
    statuses = dict(status.get("allocatedResourceStatuses") or {})
    if step is None:
        statuses.pop("storage", None)
    else:
        statuses["storage"] = step
    if statuses:
        status["allocatedResourceStatuses"] = statuses
    else:
        status.pop("allocatedResourceStatuses", None)
    return status


def _condition(type_: str, message: str | None = None) -> Obj:
    cond: Obj = {"type": type_, "status": "True", "lastProbeTime": None, "lastTransitionTime": clock.rfc3339()}
    if message:
        cond["message"] = message
    return cond


def controller_resize_started(pvc: Obj, size: str) -> Obj:
    status = _status(pvc, [_condition(RESIZING)], CONTROLLER_IN_PROGRESS)
    status["allocatedResources"] = {**(status.get("allocatedResources") or {}), "storage": size}
    return status


def node_resize_pending(pvc: Obj) -> Obj:
    return _status(pvc, [_condition(FS_RESIZE_PENDING, FS_RESIZE_MESSAGE)], NODE_PENDING)


def with_resize_status(pvc: Obj, step: str) -> Obj:
    status = copy.deepcopy(pvc.get("status") or {})
    status["allocatedResourceStatuses"] = {**(status.get("allocatedResourceStatuses") or {}), "storage": step}
    return status


def resize_finished(pvc: Obj) -> Obj:
    """Kubelet's markFSResizeFinished: capacity = allocated size, resize conditions and status cleared."""
    status = _status(pvc, [], None)
    size = (status.get("allocatedResources") or {}).get("storage")
    if size:
        status["capacity"] = {**(status.get("capacity") or {}), "storage": size}
    return status
