"""The namespace controller of kube-controller-manager: purge a terminating namespace, then finalize it.

Contract (as in ``pkg/controller/namespace/deletion``): once a namespace has a ``deletionTimestamp``
(``ApiServer.delete`` also sets ``status.phase: Terminating``) and still carries the ``kubernetes``
spec finalizer, every object of every namespaced type served at that moment (custom resources
included) is deleted with propagation ``Background``. Each pass writes the five deletion conditions
to the namespace status with kube-controller-manager's reasons and messages: ``NamespaceContentRemaining``
/ ``NamespaceFinalizersRemaining`` while objects (e.g. held by finalizers) remain, and
``NamespaceDeletionContentFailure`` when deletes fail or objects without finalizers linger past the pods'
grace period estimate. When nothing is left, the ``kubernetes`` finalizer is removed through the
``/finalize`` subresource (``ApiServer.finalize_namespace``), which deletes the namespace unless other
finalizers remain.

Passes are triggered by events on the namespace and on any object inside a terminating namespace,
with retries on failure and a periodic resync backstop.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devcluster import clock
from devcluster.api import ApiServer, DeleteOptions
from devcluster.controllers.gc import resource_types
from devcluster.controllers.workqueue import WorkQueue, run_queue
from devcluster.errors import ApiError
from devcluster.registry import ResourceType
from devcluster.store import WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

log = logging.getLogger("devcluster.namespaces")

FINALIZER_TOKEN = "kubernetes"
# The failure/ok variants written by the real deleter (status_condition_utils.go), in its order.
CONDITION_TYPES = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)
OK = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}
# The real deleter assumes finalizers need this long before it looks again.
FINALIZER_ESTIMATE_SECONDS = 15


@dataclass
class _Pass:
    """What one deletion pass over a namespace found."""

    estimate: int = 0
    errors: list[str] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)  # "<resource>.<group>" -> count
    finalizers: dict[str, int] = field(default_factory=dict)  # finalizer -> count


def _gvr(rt: ResourceType) -> str:
    """``schema.GroupVersionResource.String()``: ``/v1, Resource=pods``."""
    return f"{rt.group}/{rt.version}, Resource={rt.plural}"


class NamespaceController:
    def __init__(self, api: ApiServer, resync_seconds: float = 10.0) -> None:
        self.api = api
        self.resync_seconds = resync_seconds
        self.queue: WorkQueue[str] = WorkQueue()
        self._terminating: set[str] = set()

    @classmethod
    def for_cluster(cls, cluster: DevCluster) -> NamespaceController:
        return cls(cluster.api, float(cluster.config.extra.get("namespace_resync_seconds", 10.0)))

    async def run(self) -> None:
        self.api.store.listeners.append(self._on_event)
        try:
            self._resync()
            await run_queue(self.queue, self._sync, self._resync, self.resync_seconds, "namespace")
        finally:
            with contextlib.suppress(ValueError):
                self.api.store.listeners.remove(self._on_event)
            self.queue.close()

    def _resync(self) -> None:
        self._terminating.clear()
        for ns in self.api.store.list("/namespaces"):
            if ns["metadata"].get("deletionTimestamp"):
                self._terminating.add(ns["metadata"]["name"])
                self.queue.add(ns["metadata"]["name"])

    def _on_event(self, event: WatchEvent) -> None:
        meta = event.obj["metadata"]
        if event.key == "/namespaces":
            name = meta["name"]
            if event.type == "DELETED":
                self._terminating.discard(name)
            elif meta.get("deletionTimestamp"):
                self._terminating.add(name)
                self.queue.add(name)
            return
        # Content of a terminating namespace changed: another pass may finish the job.
        namespace = meta.get("namespace", "")
        if namespace in self._terminating:
            self.queue.add(namespace)

    # -- one pass ------------------------------------------------------------------------------------
    def _sync(self, name: str) -> None:
        ns_rt = self.api.lookup("", "v1", "namespaces")
        ns = self.api.store.get(ns_rt.key, "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        spec_finalizers = list((ns.get("spec") or {}).get("finalizers") or [])
        if FINALIZER_TOKEN not in spec_finalizers:
            return
        result = self._delete_all_content(name, clock.parse(ns["metadata"]["deletionTimestamp"]))
        self._update_conditions(ns_rt, name, result)
        if result.errors:
            raise ApiError(500, "InternalError", f"namespace {name}: " + "; ".join(result.errors))
        if result.estimate > 0:
            # Content remains; events on it will bring us back, the timer covers graceful pods.
            self.queue.add_after(name, max(1.0, result.estimate / 2))
            return
        with contextlib.suppress(ApiError):
            # Another finalize or deletion may have won the race; the next event tells.
            self.api.finalize_namespace(name, [f for f in spec_finalizers if f != FINALIZER_TOKEN])

    def _delete_all_content(self, namespace: str, deleted_at: Any) -> _Pass:
        result = _Pass()
        for rt in resource_types(self.api):
            if not rt.namespaced:
                continue
            estimate = self._estimate(rt, namespace, deleted_at)
            error: str | None = None
            for obj in self.api.store.list(rt.key, namespace):
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.api.delete(rt, namespace, obj["metadata"]["name"],
                                    DeleteOptions(propagation_policy="Background"))
                except ApiError as err:
                    if err.code not in (404, 405):
                        error = err.message
            if error is not None:
                # As in the real deleter, a failed type reports its error and no remaining counts.
                result.errors.append(error)
                result.estimate = max(result.estimate, estimate)
                continue
            remaining = self.api.store.list(rt.key, namespace)
            if remaining:
                with_finalizers = 0
                for obj in remaining:
                    fins = obj["metadata"].get("finalizers") or []
                    with_finalizers += bool(fins)
                    for fin in fins:
                        result.finalizers[fin] = result.finalizers.get(fin, 0) + 1
                if estimate:
                    result.estimate = max(result.estimate, estimate)
                elif with_finalizers:
                    result.estimate = max(result.estimate, FINALIZER_ESTIMATE_SECONDS)
                else:
                    result.errors.append(f"unexpected items still remain in namespace: {namespace} for gvr: "
                                         f"{_gvr(rt)}")
                result.remaining[f"{rt.plural}.{rt.group}"] = len(remaining)
        return result

    def _estimate(self, rt: ResourceType, namespace: str, deleted_at: Any) -> int:
        """Pods may take their grace period to go; past it, lingering pods count as a failure."""
        if rt.key != "/pods":
            return 0
        estimate = 0
        for pod in self.api.store.list(rt.key, namespace):
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            estimate = max(estimate, int((pod.get("spec") or {}).get("terminationGracePeriodSeconds") or 0))
        elapsed = (clock.now() - deleted_at).total_seconds()
        return 0 if elapsed >= estimate else estimate

    def _update_conditions(self, ns_rt: ResourceType, name: str, result: _Pass) -> None:
        failing: dict[str, tuple[str, str]] = {}
        if result.errors:
            msgs = sorted(result.errors)
            failing["NamespaceDeletionContentFailure"] = (
                "ContentDeletionFailed", f"Failed to delete all resource types, {len(msgs)} remaining: "
                                         + ", ".join(msgs))
        if result.remaining:
            parts = sorted(f"{res} has {n} resource instances" for res, n in result.remaining.items())
            failing["NamespaceContentRemaining"] = ("SomeResourcesRemain",
                                                    "Some resources are remaining: " + ", ".join(parts))
        if result.finalizers:
            parts = sorted(f"{fin} in {n} resource instances" for fin, n in result.finalizers.items())
            failing["NamespaceFinalizersRemaining"] = (
                "SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: " + ", ".join(parts))
        ns = self.api.store.get(ns_rt.key, "", name)
        if ns is None:
            return
        status = copy.deepcopy(ns.get("status") or {})
        conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
        now = clock.rfc3339()
        for ctype in CONDITION_TYPES:
            state, (reason, message) = ("True", failing[ctype]) if ctype in failing else ("False", OK[ctype])
            old = next((c for c in conditions if c.get("type") == ctype), None)
            if old is None:
                conditions.append({"type": ctype, "status": state, "lastTransitionTime": now, "reason": reason,
                                   "message": message})
            elif (old.get("status"), old.get("reason"), old.get("message")) != (state, reason, message):
                if old.get("status") != state:
                    old["lastTransitionTime"] = now
                old.update(status=state, reason=reason, message=message)
        if status != ns.get("status"):
            updated = copy.deepcopy(ns)
            updated["status"] = status
            try:
                self.api.update(ns_rt, None, name, updated, subresource="status")
            except ApiError as err:
                log.debug("namespace %s: status update failed: %s", name, err)
