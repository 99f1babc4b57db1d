"""The kubelets of the simulated nodes: one object runs a ``PodWorker`` per pod bound to any of them.

Contract (see ``podworker`` for the per-pod lifecycle and ``podstatus`` for the status it reports):

- Pods whose ``spec.nodeName`` is one of the simulated nodes are run; status goes through
  ``ApiServer.update(..., subresource="status")``, deletion ends with ``ApiServer.delete`` and
  ``gracePeriodSeconds=0``, like the real kubelet. Pod IPs are unique, from each node's ``10.244.<n>.0/24``.
- Timing: a pod starts (sandbox, podIP, containers running) ``config.pod_start_delay`` after it reaches the
  kubelet and each container becomes Ready ``config.pod_ready_delay`` after starting (the stand-in for a
  readiness probe's first success); ``set_image_delays`` and ``set_behavior`` override both.
- Test hooks (call on the cluster's loop, e.g. ``dc.call(lambda c: Kubelet.of(c).set_behavior(...))``):
  ``set_behavior(selector, behavior)`` where ``selector`` is ``"namespace/name"``, a label selector string,
  a ``LabelSelector`` or a predicate on the pod dict, and ``behavior`` a ``runtime.Behavior`` or one of
  ``"normal" | "fail" | "crashloop" | "never_ready"``; the latest matching setting wins and applies to
  running pods at once (a running container told to ``fail`` exits; ``never_ready`` flips Ready off).
  ``set_image_delays(image_substring, start, ready)``; ``container_env``/``container_context`` expose what a
  container was started with; ``process(namespace, name, container)`` its simulated process.
- Process launch hook: ``process_factories`` (tried in order; the first non-``None`` result is the
  container's ``SimProcess``). See ``runtime`` for the protocol and the loopback port annotation.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devcluster import podenv
from devcluster.controllers.nodes import ALLOCATABLE, NodeInfo, node_catalog
from devcluster.controllers.podworker import PodWorker
from devcluster.controllers.recorder import EventRecorder
from devcluster.controllers.runtime import Behavior, PodContext, ProcessFactory, SimProcess
from devcluster.selectors import LabelSelector
from devcluster.store import Obj, WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

__all__ = ["Behavior", "Kubelet", "PodContext", "ProcessFactory", "SimProcess"]

log = logging.getLogger("devcluster.kubelet")

PodMatcher = Callable[[Obj], bool]
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")


def pod_matcher(selector: str | LabelSelector | PodMatcher) -> PodMatcher:
    if callable(selector) and not isinstance(selector, (str, LabelSelector)):
        return selector
    if isinstance(selector, str) and _NAME.match(selector):
        namespace, name = selector.split("/", 1)
        return lambda pod: pod["metadata"].get("namespace") == namespace and pod["metadata"].get("name") == name
    parsed = selector if isinstance(selector, LabelSelector) else LabelSelector.parse(selector)
    return lambda pod: parsed.matches(pod["metadata"].get("labels") or {})


class Kubelet:
    def __init__(self, cluster: DevCluster) -> None:
        self.api = cluster.api
        self.config = cluster.config
        self.nodes = {info.name: info for info in node_catalog(cluster.config.nodes, tuple(cluster.config.zones))}
        self.process_factories: list[ProcessFactory] = []
        self.backoff_scale = 0.05  # 10 s of real back-off last 0.5 s here
        self.workers: dict[str, PodWorker] = {}
        self.rt_pods = self.api.lookup("", "v1", "pods")
        self.rt_pvcs = self.api.lookup("", "v1", "persistentvolumeclaims")
        self.rt_configmaps = self.api.lookup("", "v1", "configmaps")
        self.rt_secrets = self.api.lookup("", "v1", "secrets")
        self.rt_services = self.api.lookup("", "v1", "services")
        self._behaviors: list[tuple[PodMatcher, Behavior]] = []
        self._image_delays: list[tuple[str, float | None, float | None]] = []
        self._ips: dict[str, dict[str, int]] = {}  # node -> pod uid -> address index
        self._images: dict[str, set[str]] = {}
        self._recorders: dict[str, EventRecorder] = {}
        self._root: Path | None = None

    @classmethod
    def of(cls, cluster: DevCluster) -> Kubelet:
        for ctl in cluster.controllers:
            if isinstance(ctl, cls):
                return ctl
        raise LookupError("this devcluster runs no kubelet (controllers disabled?)")

    # -- loop ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        self.api.store.listeners.append(self._on_event)
        try:
            for pod in self.api.store.list(self.rt_pods.key):
                self._intake(pod, "ADDED")
            await asyncio.Event().wait()
        finally:
            self.api.store.listeners.remove(self._on_event)

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.key == self.rt_pods.key:
            self._intake(ev.obj, ev.type)
        elif ev.key in (self.rt_configmaps.key, self.rt_secrets.key, self.rt_pvcs.key):
            namespace = ev.obj["metadata"].get("namespace")
            for worker in self.workers.values():
                if worker.namespace == namespace:
                    worker.poke()

    def _intake(self, pod: Obj, type_: str) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.nodes:
            return
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if type_ == "DELETED":
            # A pod removed behind the worker's back (force deletion): kill what runs. The worker's own
            # final delete arrives here too, after it finished its work.
            if worker is not None and worker.task is not None and not worker.terminal:
                worker.task.cancel()
            return
        if worker is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return  # finished before this kubelet saw it: nothing to run
            worker = PodWorker(self, pod, self.nodes[node])
            self.workers[uid] = worker
            worker.start()
        else:
            worker.update(pod)

    def worker_done(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]
        self._ips.get(worker.node.name, {}).pop(worker.uid, None)
        if self._root is not None:
            shutil.rmtree(self._root / worker.uid, ignore_errors=True)

    # -- node resources -----------------------------------------------------------------------------
    def recorder(self, node: str) -> EventRecorder:
        if node not in self._recorders:
            self._recorders[node] = EventRecorder(self.api, "kubelet", node)
        return self._recorders[node]

    def allocate_ip(self, node: NodeInfo, uid: str) -> str:
        used = self._ips.setdefault(node.name, {})
        if uid not in used:
            taken = set(used.values())
            used[uid] = next(i for i in range(len(taken) + 1) if i not in taken)
        return node.pod_ip(used[uid])

    def node_allocatable(self) -> dict[str, str]:
        return dict(ALLOCATABLE)

    def image_present(self, node: str, image: str) -> bool:
        images = self._images.setdefault(node, set())
        present = image in images
        images.add(image)
        return present

    def volume_paths(self, pod: Obj, container: Obj, env: Mapping[str, str] | None = None) -> dict[str, Path]:
        """Host directories behind the container's PVC, emptyDir and hostPath mounts; ``subPath`` (or
        ``subPathExpr``, expanded with the container's ``env``) selects a directory of the volume."""
        volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
        out: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            vol = volumes.get(mount.get("name")) or {}
            base: Path | None = None
            if vol.get("persistentVolumeClaim"):
                pvc = self.api.try_get(self.rt_pvcs, pod["metadata"]["namespace"],
                                       vol["persistentVolumeClaim"].get("claimName", ""))
                pv = self.api.try_get(self.api.lookup("", "v1", "persistentvolumes"), None,
                                      ((pvc or {}).get("spec") or {}).get("volumeName", "")) if pvc else None
                path = (((pv or {}).get("spec") or {}).get("hostPath") or {}).get("path")
                base = Path(path) if path else None
            elif "emptyDir" in vol:
                if self._root is None:
                    self._root = Path(tempfile.mkdtemp(prefix="devcluster-kubelet-"))
                base = self._root / pod["metadata"]["uid"] / str(vol.get("name"))
                base.mkdir(parents=True, exist_ok=True)
            elif vol.get("hostPath"):
                base = Path(vol["hostPath"].get("path", "/"))
            if base is not None:
                sub = mount.get("subPath") or ""
                if not sub and mount.get("subPathExpr"):
                    sub = podenv.expand(str(mount["subPathExpr"]), env or {})
                out[str(mount.get("mountPath"))] = base / sub.strip("/") if sub.strip("/") else base
        return out

    def make_process(self, ctx: PodContext) -> SimProcess | None:
        for factory in self.process_factories:
            process = factory(ctx)
            if process is not None:
                return process
        return None

    # -- behaviour ----------------------------------------------------------------------------------
    def behavior_for(self, pod: Obj, container: Obj) -> Behavior:
        behavior = next((b for match, b in reversed(self._behaviors) if match(pod)), Behavior())
        start, ready = self.config.pod_start_delay, self.config.pod_ready_delay
        image = str(container.get("image", ""))
        for substring, s, r in self._image_delays:
            if substring in image:
                start, ready = (s if s is not None else start), (r if r is not None else ready)
        return behavior.with_delays(start, ready)

    def start_delay(self, pod: Obj) -> float:
        spec = pod.get("spec") or {}
        return max((self.behavior_for(pod, c).start_delay or 0.0
                    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]), default=0.0)

    def set_behavior(self, selector: str | LabelSelector | PodMatcher, behavior: Behavior | str) -> None:
        self._behaviors.append((pod_matcher(selector), Behavior.parse(behavior)))
        self._poke_all()

    def clear_behaviors(self) -> None:
        self._behaviors.clear()
        self._image_delays.clear()
        self._poke_all()

    def set_image_delays(self, image_substring: str, start: float | None, ready: float | None) -> None:
        self._image_delays.append((image_substring, start, ready))
        self._poke_all()

    def _poke_all(self) -> None:
        for worker in self.workers.values():
            worker.poke()

    # -- introspection ------------------------------------------------------------------------------
    def worker(self, namespace: str, name: str) -> PodWorker | None:
        return next((w for w in self.workers.values() if w.namespace == namespace and w.name == name), None)

    def container_context(self, namespace: str, name: str, container: str) -> PodContext | None:
        worker = self.worker(namespace, name)
        return worker.contexts.get(container) if worker is not None else None

    def container_env(self, namespace: str, name: str, container: str) -> dict[str, str] | None:
        ctx = self.container_context(namespace, name, container)
        return dict(ctx.env) if ctx is not None else None

    def process(self, namespace: str, name: str, container: str) -> Any:
        worker = self.worker(namespace, name)
        return worker.processes.get(container) if worker is not None else None
