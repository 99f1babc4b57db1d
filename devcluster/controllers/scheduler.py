"""kube-scheduler for devcluster: binds pending pods of ``default-scheduler`` to the simulated nodes.

Contract:

- Candidates: pods with no ``spec.nodeName``, ``schedulerName: default-scheduler``, not being deleted, not
  terminal. A pod with ``schedulingGates`` gets PodScheduled=False/SchedulingGated and waits.
- VolumeBinding PreFilter: a missing claim (``persistentvolumeclaim "x" not found``), a claim being
  deleted, or an unbound claim of an ``Immediate`` class (``pod has unbound immediate
  PersistentVolumeClaims``) makes the pod unschedulable on every node; so a pod never starts before its
  claims are Bound. Unbound ``WaitForFirstConsumer`` claims get ``volume.kubernetes.io/selected-node``
  once a node is chosen, and the pod is bound only when they are Bound (PreBind).
- Filters and scores: ``devcluster.controllers.placement``. Binding uses ``ApiServer.bind_pod`` (the
  ``pods/binding`` subresource: nodeName and PodScheduled=True in one write) and records the events.k8s.io
  style event ``Scheduled`` "Successfully assigned <ns>/<pod> to <node>".
- Failure: PodScheduled=False, reason Unschedulable, with kube-scheduler's FitError message, and a
  Warning ``FailedScheduling`` event (repeats become an event series). The pod is retried when something
  that could make it fit changes (nodes, claims, pods appearing/leaving or relabelled) after a per-pod
  backoff, and at the latest every ``FLUSH_SECONDS``.

Timing is compressed: backoff 0.1 s doubling to 1 s (kube-scheduler: 1 s to 10 s), flush 30 s (5 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devcluster import clock
from devcluster.controllers import placement
from devcluster.controllers.recorder import EventRecorder
from devcluster.errors import ApiError
from devcluster.store import Obj, WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

log = logging.getLogger("devcluster.scheduler")

SCHEDULER_NAME = "default-scheduler"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
BACKOFF_INITIAL, BACKOFF_MAX, FLUSH_SECONDS = 0.1, 1.0, 30.0
_TRIGGER_KEYS = frozenset({"/nodes", "/persistentvolumeclaims", "/persistentvolumes", "/namespaces",
                           "storage.k8s.io/storageclasses"})


@dataclass
class _Entry:
    namespace: str
    name: str
    attempts: int = 0
    not_before: float = 0.0
    unschedulable: bool = False


class Scheduler:
    def __init__(self, cluster: DevCluster) -> None:
        self.api = cluster.api
        self._pods = self.api.lookup("", "v1", "pods")
        self._pvcs = self.api.lookup("", "v1", "persistentvolumeclaims")
        self._classes = self.api.lookup("storage.k8s.io", "v1", "storageclasses")
        self.recorder = EventRecorder(self.api, SCHEDULER_NAME, "devcluster-control-plane", new_api=True)
        self._queue: dict[str, _Entry] = {}  # pod uid -> entry
        self._wake: asyncio.Event | None = None

    # -- event intake -------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _requeue_unschedulable(self) -> None:
        for entry in self._queue.values():
            entry.unschedulable = False
        self._kick()

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.key in _TRIGGER_KEYS:
            self._requeue_unschedulable()
            return
        if ev.key != self._pods.key:
            return
        pod, old = ev.obj, ev.old
        uid = pod["metadata"].get("uid", "")
        if ev.type == "DELETED":
            self._queue.pop(uid, None)
            if placement.is_active(pod):
                self._requeue_unschedulable()
            return
        if self._wants(pod):
            entry = self._queue.get(uid)
            if entry is None:
                self._queue[uid] = _Entry(pod["metadata"]["namespace"], pod["metadata"]["name"])
                self._kick()
            elif old is not None and (old.get("spec") != pod.get("spec") or placement.labels(old) != placement.labels(pod)):
                entry.unschedulable = False
                self._kick()
            return
        self._queue.pop(uid, None)
        # An assigned pod matters to others when it appears, leaves its node or changes labels.
        if old is None or not (old.get("spec") or {}).get("nodeName") or \
                placement.is_active(old) != placement.is_active(pod) or placement.labels(old) != placement.labels(pod):
            self._requeue_unschedulable()

    @staticmethod
    def _wants(pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (not spec.get("nodeName") and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
                and not pod["metadata"].get("deletionTimestamp")
                and (pod.get("status") or {}).get("phase", "Pending") not in ("Succeeded", "Failed"))

    # -- main loop ----------------------------------------------------------------------------------
    async def run(self) -> None:
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self.api.store.listeners.append(self._on_event)
        try:
            for pod in self.api.store.list(self._pods.key):
                if self._wants(pod):
                    self._queue.setdefault(pod["metadata"]["uid"],
                                           _Entry(pod["metadata"]["namespace"], pod["metadata"]["name"]))
            last_flush = loop.time()
            while True:
                now = loop.time()
                if now - last_flush >= FLUSH_SECONDS:
                    self._requeue_unschedulable()
                    last_flush = now
                self._wake.clear()
                due = [uid for uid, e in self._queue.items() if not e.unschedulable and e.not_before <= now]
                for uid in due:
                    self._attempt(uid, loop.time())
                    await asyncio.sleep(0)  # let the API serve clients between attempts
                if due:
                    continue
                waits = [e.not_before for e in self._queue.values() if not e.unschedulable]
                deadline = min(waits) if waits else last_flush + FLUSH_SECONDS
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.005, deadline - loop.time())):
                        await self._wake.wait()
        finally:
            self.api.store.listeners.remove(self._on_event)

    def _attempt(self, uid: str, now: float) -> None:
        entry = self._queue.get(uid)
        pod = self.api.try_get(self._pods, entry.namespace, entry.name) if entry is not None else None
        if entry is None or pod is None or pod["metadata"].get("uid") != uid or not self._wants(pod):
            self._queue.pop(uid, None)
            return
        try:
            bound = self._schedule(pod)
        except ApiError as err:  # an API fault: retry after the backoff
            log.debug("scheduling %s failed: %s", pod["metadata"]["name"], err)
            bound = False
        if bound:
            self._queue.pop(uid, None)
            return
        entry.attempts += 1
        entry.unschedulable = True
        entry.not_before = now + min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (entry.attempts - 1))

    # -- one scheduling cycle -----------------------------------------------------------------------
    def _schedule(self, pod: Obj) -> bool:
        """Returns True when the pod was bound; False when it stays pending (status/event written)."""
        gates = (pod.get("spec") or {}).get("schedulingGates")
        if gates:
            self._set_condition(pod, "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")
            return False
        nodes = {n["metadata"]["name"]: n for n in self.api.store.list("/nodes")}
        if not nodes:
            return self._unschedulable(pod, "no nodes available to schedule pods")
        view = placement.ClusterView(
            nodes, [p for p in self.api.store.list(self._pods.key) if placement.is_active(p)],
            {n["metadata"]["name"]: n for n in self.api.store.list("/namespaces")})
        prefilter, delayed = self._volume_prefilter(pod)
        rejections: dict[str, placement.Rejection] = {}
        feasible: list[Obj] = []
        if prefilter is None:
            for name, node in sorted(nodes.items()):
                rejection = placement.filter_node(pod, node, view)
                if rejection is None:
                    feasible.append(node)
                else:
                    rejections[name] = rejection
        else:
            rejections = {name: placement.Rejection((prefilter,), False) for name in nodes}
        if not feasible:
            message = placement.fit_error(len(nodes), rejections, prefilter,
                                          (pod.get("spec") or {}).get("preemptionPolicy"))
            return self._unschedulable(pod, message)
        # A node picked earlier for WaitForFirstConsumer claims (now bound) is kept.
        selected = {(c.get("metadata", {}).get("annotations") or {}).get(SELECTED_NODE) for c in self._claims(pod)}
        chosen = min(feasible, key=lambda n: (n["metadata"]["name"] not in selected,
                                              *placement.score(pod, n, view), n["metadata"]["name"]))
        node_name = chosen["metadata"]["name"]
        if delayed and not self._prebind_claims(pod, delayed, node_name):
            return False
        self.api.bind_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], node_name)
        self.recorder.event(pod, "Normal", "Scheduled",
                            f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} "
                            f"to {node_name}", action="Binding")
        return True

    def _claims(self, pod: Obj) -> list[Obj]:
        out = []
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            pvc = self.api.try_get(self._pvcs, pod["metadata"]["namespace"], claim) if claim else None
            if pvc is not None:
                out.append(pvc)
        return out

    def _volume_prefilter(self, pod: Obj) -> tuple[str | None, list[Obj]]:
        """(PreFilter rejection message, unbound WaitForFirstConsumer claims)."""
        namespace = pod["metadata"]["namespace"]
        delayed: list[Obj] = []
        unbound_immediate = False
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.api.try_get(self._pvcs, namespace, claim)
            if pvc is None:
                return f'persistentvolumeclaim "{claim}" not found', []
            if pvc["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{claim}" is being deleted', []
            if (pvc.get("status") or {}).get("phase") == "Lost":
                volume = (pvc.get("spec") or {}).get("volumeName", "")
                return f'persistentvolumeclaim "{claim}" bound to non-existent persistentvolume "{volume}"', []
            if (pvc.get("status") or {}).get("phase") == "Bound" and (pvc.get("spec") or {}).get("volumeName"):
                continue
            sc_name = (pvc.get("spec") or {}).get("storageClassName") or ""
            sc = self.api.try_get(self._classes, None, sc_name) if sc_name else None
            if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                delayed.append(pvc)
            else:
                unbound_immediate = True
        if unbound_immediate:
            return "pod has unbound immediate PersistentVolumeClaims", []
        return None, delayed

    def _prebind_claims(self, pod: Obj, claims: list[Obj], node_name: str) -> bool:
        """Ask the provisioner for volumes on ``node_name``; True once every claim is Bound."""
        for pvc in claims:
            annotations = pvc["metadata"].get("annotations") or {}
            if annotations.get(SELECTED_NODE) != node_name:
                new = copy.deepcopy(pvc)
                new["metadata"].setdefault("annotations", {})[SELECTED_NODE] = node_name
                self.api.update(self._pvcs, pvc["metadata"]["namespace"], pvc["metadata"]["name"], new)
        # The claims' binding (a PVC event) re-queues the pod; binding happens on that attempt.
        return False

    def _unschedulable(self, pod: Obj, message: str) -> bool:
        self._set_condition(pod, "Unschedulable", message)
        self.recorder.event(pod, "Warning", "FailedScheduling", message, action="Scheduling")
        return False

    def _set_condition(self, pod: Obj, reason: str, message: str) -> None:
        new = copy.deepcopy(pod)
        conditions = new.setdefault("status", {}).setdefault("conditions", [])
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current is None:
            current = {"type": "PodScheduled"}
            conditions.append(current)
        if current.get("status") != "False":
            current["lastTransitionTime"] = clock.rfc3339()
        current.update({"status": "False", "reason": reason, "message": message, "lastProbeTime": None,
                        "observedGeneration": pod["metadata"].get("generation", 1)})
        self.api.update(self._pods, pod["metadata"]["namespace"], pod["metadata"]["name"], new,
                        subresource="status")
