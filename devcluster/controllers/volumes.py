"""Persistent storage: the PV controller, a CSI-style provisioner/resizer, and the PVC/PV protection controllers.

Provisioning and binding (``devcluster.ballast.dev/hostpath``, the seeded ``standard`` class):

- A Pending claim first binds to a matching ``Available`` PV (same class, enough capacity, access modes
  covered; the smallest wins) or to the PV named in ``spec.volumeName``. Otherwise, for a class of this
  provisioner, a PV ``pvc-<claim uid>`` is created (capacity = request, ``claimRef``, class, reclaim policy
  and mount options of the class, ``hostPath`` under a private temp dir, no node affinity) -- for a
  ``WaitForFirstConsumer`` class only once the scheduler set ``volume.kubernetes.io/selected-node``.
- Binding writes, in the PV controller's order: PV ``status.phase: Bound``; claim ``spec.volumeName`` with
  the ``pv.kubernetes.io/bind-completed``/``bound-by-controller`` annotations; claim status Bound with the
  PV's access modes and capacity. Events: ``Provisioning``, ``ProvisioningSucceeded`` (external
  provisioner), ``ExternalProvisioning``/``WaitForFirstConsumer``/``FailedBinding`` (PV controller).
- A deleted claim's PV becomes ``Released``; with reclaim policy ``Delete`` a provisioned PV is deleted
  (its directory removed, then the provisioner's and ``kubernetes.io/pv-protection`` finalizers dropped);
  with ``Retain`` it stays Released. A Bound claim whose PV disappears becomes ``Lost``.
- ``kubernetes.io/pvc-protection`` is removed from a deleted claim only when no scheduled, non-terminal pod
  references it; ``kubernetes.io/pv-protection`` from a deleted PV only when it is not Bound.

Expansion (kube-apiserver already refuses shrinking, 422, and classes without ``allowVolumeExpansion``, 403).
When a Bound claim asks for more than ``status.capacity``, the flow of external-resizer with
``RecoverVolumeExpansionFailure`` (GA in 1.34) is reproduced:

1. claim condition ``Resizing``, ``status.allocatedResources.storage`` = new size,
   ``allocatedResourceStatuses.storage: ControllerResizeInProgress``; events ``ExternalExpanding``, ``Resizing``;
2. after ``config.pvc_resize_delay`` (the controller-side expansion) the PV's capacity grows and the claim
   gets ``FileSystemResizePending`` ("Waiting for user to (re-)start a pod to finish file system resize of
   volume on node.") with ``NodeResizePending``; event ``FileSystemResizeRequired``;
3. the node side (kubelet's NodeExpandVolume) finishes it: ``status.capacity`` = new size, resize conditions
   and the ``storage`` entry of ``allocatedResourceStatuses`` removed, ``FileSystemResizeSuccessful`` events.

When step 3 happens depends on the class parameter ``devcluster.ballast.dev/expansion-mode``:

- ``online`` (default, like current CSI drivers: kubelet expands mounted volumes since 1.24): while a pod
  has the claim mounted (scheduled, not terminating, PodReadyToStartContainers=True) the kubelet expands it
  ``pvc_resize_delay`` later (``NodeResizeInProgress`` meanwhile); a claim no pod mounts stays
  ``FileSystemResizePending`` until the next pod using it starts;
- ``offline`` (a driver without online node expansion, or the classic in-tree behaviour): the condition
  stays while pods run and is completed only when a pod using the claim is (re)started -- so
  ``FileSystemResizePending`` tells which pods must be rolled.

In both modes a starting pod completes a pending expansion before its containers start (kubelet expands
during MountVolume); the kubelet calls ``node_expand``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devcluster import clock
from devcluster.api import DeleteOptions
from devcluster.bootstrap import PROVISIONER
from devcluster.builtins import PV_PROTECTION, PVC_PROTECTION, parse_quantity
from devcluster.controllers import pvcstatus
from devcluster.controllers.recorder import EventRecorder
from devcluster.errors import ApiError
from devcluster.store import Obj, WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

log = logging.getLogger("devcluster.volumes")

PROVISIONER_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
EXPANSION_MODE = "devcluster.ballast.dev/expansion-mode"
_WATCHED = frozenset({"/persistentvolumeclaims", "/persistentvolumes", "storage.k8s.io/storageclasses"})
_HOST = "devcluster-control-plane"


def claim_names(pod: Obj) -> list[str]:
    return [v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


class VolumeController:
    def __init__(self, cluster: DevCluster) -> None:
        self.api = cluster.api
        self.resize_delay = float(cluster.config.pvc_resize_delay)
        self._pvcs = self.api.lookup("", "v1", "persistentvolumeclaims")
        self._pvs = self.api.lookup("", "v1", "persistentvolumes")
        self._pods = self.api.lookup("", "v1", "pods")
        self._classes = self.api.lookup("storage.k8s.io", "v1", "storageclasses")
        self._root: Path | None = None
        self._wake: asyncio.Event | None = None
        self._due: dict[str, float] = {}  # claim uid -> when the pending resize step completes
        self._noted: set[tuple[str, str]] = set()  # (claim uid, reason) of one-shot events
        self.pv_events = EventRecorder(self.api, "persistentvolume-controller")
        self.provisioner_events = EventRecorder(self.api, f"{PROVISIONER}_{_HOST}_{uuid.uuid4()}")
        self.resizer_events = EventRecorder(self.api, f"external-resizer {PROVISIONER}")
        self.expand_events = EventRecorder(self.api, "volume_expand")

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="devcluster-pv-"))
        return self._root

    # -- loop ---------------------------------------------------------------------------------------
    def _on_event(self, ev: WatchEvent) -> None:
        if self._wake is None:
            return
        if ev.key in _WATCHED:
            self._wake.set()
        elif ev.key == self._pods.key and claim_names(ev.obj):
            old, new = ev.old, ev.obj
            # Pods matter for protection and online expansion: when they appear, go, or (un)mount.
            if old is None or ev.type == "DELETED" or pvcstatus.mounts(old) != pvcstatus.mounts(new) \
                    or (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName") \
                    or (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase"):
                self._wake.set()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self.api.store.listeners.append(self._on_event)
        try:
            while True:
                self._wake.clear()
                try:
                    self.sync_all(loop.time())
                except ApiError as err:  # an injected fault: try again shortly
                    log.debug("volume sync failed: %s", err)
                    self._due["__retry__"] = loop.time() + 0.2
                timeout = min(self._due.values(), default=loop.time() + 30.0) - loop.time()
                self._due.pop("__retry__", None)
                with contextlib.suppress(TimeoutError):  # not wait_for: it can swallow a cancellation on 3.11
                    async with asyncio.timeout(max(0.005, timeout)):
                        await self._wake.wait()
        finally:
            self.api.store.listeners.remove(self._on_event)

    async def stop(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def sync_all(self, now: float) -> None:
        for pv in self.api.store.list(self._pvs.key):
            self._sync_pv(pv)
        for pvc in self.api.store.list(self._pvcs.key):
            current = self.api.try_get(self._pvcs, pvc["metadata"]["namespace"], pvc["metadata"]["name"])
            if current is not None:
                self._sync_pvc(current, now)

    # -- helpers ------------------------------------------------------------------------------------
    def _class(self, pvc: Obj) -> Obj | None:
        name = (pvc.get("spec") or {}).get("storageClassName") or ""
        return self.api.try_get(self._classes, None, name) if name else None

    def _once(self, pvc: Obj, recorder: EventRecorder, type_: str, reason: str, message: str) -> None:
        key = (pvc["metadata"]["uid"], reason)
        if key not in self._noted:
            self._noted.add(key)
            recorder.event(pvc, type_, reason, message)

    def _in_use(self, pvc: Obj) -> bool:
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        return any((p.get("spec") or {}).get("nodeName") and (p.get("status") or {}).get("phase") not in
                   ("Succeeded", "Failed") and name in claim_names(p) for p in self.api.store.list(self._pods.key, ns))

    def _update_status(self, rt: Any, obj: Obj, status: Obj) -> Obj:
        new = copy.deepcopy(obj)
        new["status"] = status
        return self.api.update(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"], new,
                               subresource="status")

    # -- claims -------------------------------------------------------------------------------------
    def _sync_pvc(self, pvc: Obj, now: float) -> None:
        meta, spec, status = pvc["metadata"], pvc.get("spec") or {}, pvc.get("status") or {}
        if meta.get("deletionTimestamp"):
            if PVC_PROTECTION in (meta.get("finalizers") or []) and not self._in_use(pvc):
                new = copy.deepcopy(pvc)
                new["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != PVC_PROTECTION]
                self.api.update(self._pvcs, meta["namespace"], meta["name"], new)
            return
        if status.get("phase") == "Bound":
            pv = self.api.try_get(self._pvs, None, spec.get("volumeName", ""))
            if pv is None:
                self._update_status(self._pvcs, pvc, {**status, "phase": "Lost"})
                self.pv_events.event(pvc, "Warning", "ClaimLost",
                                     "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
                return
            self._sync_resize(pvc, pv, now)
            return
        if status.get("phase") == "Lost":
            return
        if spec.get("volumeName"):
            pv = self.api.try_get(self._pvs, None, spec["volumeName"])
            ref = ((pv or {}).get("spec") or {}).get("claimRef") or {}
            if pv is not None and (not ref or ref.get("uid") in (None, meta["uid"])):
                self._bind(pvc, pv)
            return
        pv = self._matching_pv(pvc)
        if pv is not None:
            self._bind(pvc, pv)
            return
        sc = self._class(pvc)
        if sc is None:
            self._once(pvc, self.pv_events, "Normal", "FailedBinding",
                       "no persistent volumes available for this claim and no storage class is set")
            return
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and \
                not (meta.get("annotations") or {}).get("volume.kubernetes.io/selected-node"):
            self._once(pvc, self.pv_events, "Normal", "WaitForFirstConsumer",
                       "waiting for first consumer to be created before binding")
            return
        if sc.get("provisioner") != PROVISIONER:
            self._once(pvc, self.pv_events, "Normal", "ExternalProvisioning",
                       f"Waiting for a volume to be created either by the external provisioner '{sc.get('provisioner')}' "
                       "or manually by the system administrator. If volume creation is delayed, please verify that "
                       "the provisioner is running and correctly registered.")
            return
        self._provision(pvc, sc)

    def _matching_pv(self, pvc: Obj) -> Obj | None:
        spec = pvc.get("spec") or {}
        want = parse_quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage", 0))
        modes = set(spec.get("accessModes") or [])
        best: Obj | None = None
        for pv in self.api.store.list(self._pvs.key):
            pspec = pv.get("spec") or {}
            ref = pspec.get("claimRef")
            if (pv.get("status") or {}).get("phase") != "Available" or pv["metadata"].get("deletionTimestamp"):
                continue
            if ref and (ref.get("name") != pvc["metadata"]["name"] or ref.get("namespace") != pvc["metadata"]["namespace"]):
                continue
            if (pspec.get("storageClassName") or "") != (spec.get("storageClassName") or "") or \
                    not modes <= set(pspec.get("accessModes") or []) or \
                    pspec.get("volumeMode", "Filesystem") != spec.get("volumeMode", "Filesystem"):
                continue
            size = parse_quantity((pspec.get("capacity") or {}).get("storage", 0))
            if size >= want and (best is None or size < parse_quantity(best["spec"]["capacity"]["storage"])):
                best = pv
        return best

    def _provision(self, pvc: Obj, sc: Obj) -> None:
        meta = pvc["metadata"]
        annotations = meta.get("annotations") or {}
        if annotations.get("volume.kubernetes.io/storage-provisioner") != PROVISIONER:
            new = copy.deepcopy(pvc)
            new["metadata"].setdefault("annotations", {}).update({
                "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER,
                "volume.kubernetes.io/storage-provisioner": PROVISIONER})
            pvc = self.api.update(self._pvcs, meta["namespace"], meta["name"], new)
        self._once(pvc, self.pv_events, "Normal", "ExternalProvisioning",
                   f"Waiting for a volume to be created either by the external provisioner '{PROVISIONER}' or "
                   "manually by the system administrator. If volume creation is delayed, please verify that the "
                   "provisioner is running and correctly registered.")
        self.provisioner_events.event(pvc, "Normal", "Provisioning", "External provisioner is provisioning volume "
                                      f'for claim "{meta["namespace"]}/{meta["name"]}"')
        name = f"pvc-{meta['uid']}"
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        policy = sc.get("reclaimPolicy") or "Delete"
        spec = pvc.get("spec") or {}
        body: Obj = {
            "metadata": {"name": name, "annotations": {
                "pv.kubernetes.io/provisioned-by": PROVISIONER,
                "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""},
                "finalizers": [PV_PROTECTION] + ([PROVISIONER_FINALIZER] if policy == "Delete" else [])},
            "spec": {
                "accessModes": list(spec.get("accessModes") or []),
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": meta["name"],
                             "namespace": meta["namespace"], "uid": meta["uid"],
                             "resourceVersion": pvc["metadata"]["resourceVersion"]},
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "persistentVolumeReclaimPolicy": policy,
                "storageClassName": spec.get("storageClassName"),
                "volumeMode": spec.get("volumeMode", "Filesystem"),
            }}
        if sc.get("mountOptions"):
            body["spec"]["mountOptions"] = list(sc["mountOptions"])
        try:
            pv = self.api.create(self._pvs, None, body)
        except ApiError as err:
            if err.code != 409:
                raise
            pv = self.api.try_get(self._pvs, None, name) or body
        self.provisioner_events.event(pvc, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}")
        self._bind(pvc, pv)

    def _bind(self, pvc: Obj, pv: Obj) -> None:
        meta = pvc["metadata"]
        if not ((pv.get("spec") or {}).get("claimRef") or {}).get("uid"):
            new_pv = copy.deepcopy(pv)
            new_pv["spec"]["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": meta["name"],
                                          "namespace": meta["namespace"], "uid": meta["uid"],
                                          "resourceVersion": meta["resourceVersion"]}
            new_pv["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bound-by-controller"] = "yes"
            pv = self.api.update(self._pvs, None, pv["metadata"]["name"], new_pv)
        if (pv.get("status") or {}).get("phase") != "Bound":
            pv = self._update_status(self._pvs, pv, {"phase": "Bound", "lastPhaseTransitionTime": clock.rfc3339()})
        new = copy.deepcopy(pvc)
        annotations = new["metadata"].setdefault("annotations", {})
        if not new["spec"].get("volumeName"):
            new["spec"]["volumeName"] = pv["metadata"]["name"]
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
        annotations["pv.kubernetes.io/bind-completed"] = "yes"
        pvc = self.api.update(self._pvcs, meta["namespace"], meta["name"], new)
        self._update_status(self._pvcs, pvc, {"phase": "Bound", "accessModes": list(pv["spec"].get("accessModes") or []),
                                              "capacity": dict(pv["spec"].get("capacity") or {})})

    # -- expansion ----------------------------------------------------------------------------------
    def _sync_resize(self, pvc: Obj, pv: Obj, now: float) -> None:
        uid = pvc["metadata"]["uid"]
        step = pvcstatus.resize_status(pvc)
        if step == pvcstatus.CONTROLLER_IN_PROGRESS:
            due = self._due.setdefault(uid, now + self.resize_delay)
            if now >= due:
                del self._due[uid]
                self._finish_controller_resize(pvc, pv)
            return
        if step in (pvcstatus.NODE_PENDING, pvcstatus.NODE_IN_PROGRESS):
            self._online_expansion(pvc, pv, step, now)
            return
        wanted = ((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage", "0")
        have = ((pvc.get("status") or {}).get("capacity") or {}).get("storage", "0")
        sc = self._class(pvc)
        if parse_quantity(wanted) <= parse_quantity(have) or sc is None or not sc.get("allowVolumeExpansion") \
                or sc.get("provisioner") != PROVISIONER:
            return
        self.expand_events.event(pvc, "Normal", "ExternalExpanding",
                                 "waiting for an external controller to expand this PVC")
        pvc = self._update_status(self._pvcs, pvc, pvcstatus.controller_resize_started(pvc, wanted))
        self.resizer_events.event(pvc, "Normal", "Resizing",
                                  f"External resizer is resizing volume {pv['metadata']['name']}")
        self._due[uid] = now + self.resize_delay

    def _finish_controller_resize(self, pvc: Obj, pv: Obj) -> None:
        size = (pvc["status"].get("allocatedResources") or {}).get("storage")
        if size and (pv["spec"].get("capacity") or {}).get("storage") != size:
            new_pv = copy.deepcopy(pv)
            new_pv["spec"].setdefault("capacity", {})["storage"] = size
            self.api.update(self._pvs, None, pv["metadata"]["name"], new_pv)
        pvc = self._update_status(self._pvcs, pvc, pvcstatus.node_resize_pending(pvc))
        self.resizer_events.event(pvc, "Normal", "FileSystemResizeRequired", "Require file system resize of volume on node")

    def _online_expansion(self, pvc: Obj, pv: Obj, step: str, now: float) -> None:
        """Kubelet's online NodeExpandVolume for a claim some running pod has mounted."""
        sc = self._class(pvc) or {}
        if (sc.get("parameters") or {}).get(EXPANSION_MODE, "online") != "online":
            return
        uid = pvc["metadata"]["uid"]
        pod = next((p for p in self.api.store.list(self._pods.key, pvc["metadata"]["namespace"])
                    if pvc["metadata"]["name"] in claim_names(p) and pvcstatus.mounts(p)), None)
        if pod is None:
            self._due.pop(uid, None)
            if step == pvcstatus.NODE_IN_PROGRESS:
                self._update_status(self._pvcs, pvc, pvcstatus.with_resize_status(pvc, pvcstatus.NODE_PENDING))
            return
        if step == pvcstatus.NODE_PENDING:
            self._update_status(self._pvcs, pvc, pvcstatus.with_resize_status(pvc, pvcstatus.NODE_IN_PROGRESS))
            self._due[uid] = now + self.resize_delay
            return
        due = self._due.setdefault(uid, now + self.resize_delay)
        if now >= due:
            del self._due[uid]
            current = self.api.try_get(self._pvcs, pvc["metadata"]["namespace"], pvc["metadata"]["name"])
            if current is not None:
                node_expand(self.api, current, pod, EventRecorder(self.api, "kubelet", pod["spec"]["nodeName"]))

    # -- volumes ------------------------------------------------------------------------------------
    def _sync_pv(self, pv: Obj) -> None:
        meta, spec, status = pv["metadata"], pv.get("spec") or {}, pv.get("status") or {}
        name = meta["name"]
        if meta.get("deletionTimestamp"):
            finalizers = list(meta.get("finalizers") or [])
            keep = [f for f in finalizers if not (
                (f == PROVISIONER_FINALIZER and status.get("phase") != "Bound")
                or (f == PV_PROTECTION and status.get("phase") != "Bound"))]
            if PROVISIONER_FINALIZER in finalizers and PROVISIONER_FINALIZER not in keep:
                path = (spec.get("hostPath") or {}).get("path")
                if path and self._root is not None and Path(path).parent == self._root:
                    shutil.rmtree(path, ignore_errors=True)
            if keep != finalizers:
                new = copy.deepcopy(pv)
                new["metadata"]["finalizers"] = keep
                self.api.update(self._pvs, None, name, new)
            return
        ref = spec.get("claimRef")
        phase = status.get("phase")
        claim = self.api.try_get(self._pvcs, ref.get("namespace"), ref.get("name", "")) if ref else None
        claim_gone = bool(ref and ref.get("uid")) and (claim is None or claim["metadata"]["uid"] != ref.get("uid"))
        if phase == "Pending" and not claim_gone:
            # Unclaimed, or pre-bound by name: available to (that) claim.
            self._update_status(self._pvs, pv, {"phase": "Available", "lastPhaseTransitionTime": clock.rfc3339()})
            return
        if phase in ("Pending", "Bound") and claim_gone:
            pv = self._update_status(self._pvs, pv, {"phase": "Released", "lastPhaseTransitionTime": clock.rfc3339()})
            phase = "Released"
        if phase == "Released" and spec.get("persistentVolumeReclaimPolicy") == "Delete":
            if (meta.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER:
                self.api.delete(self._pvs, None, name, DeleteOptions())
            else:
                self._update_status(self._pvs, pv, {
                    "phase": "Failed", "lastPhaseTransitionTime": clock.rfc3339(),
                    "message": f'error getting deleter volume plugin for volume "{name}": no deletable volume plugin matched'})


def node_expand(api: Any, pvc: Obj, pod: Obj, kubelet_events: EventRecorder) -> bool:
    """Kubelet's NodeExpandVolume for ``pvc`` on ``pod``'s node; False when no node expansion is pending."""
    if pvcstatus.resize_status(pvc) not in (pvcstatus.NODE_PENDING, pvcstatus.NODE_IN_PROGRESS):
        return False
    rt = api.lookup("", "v1", "persistentvolumeclaims")
    new = copy.deepcopy(pvc)
    new["status"] = pvcstatus.resize_finished(pvc)
    pvc = api.update(rt, pvc["metadata"]["namespace"], pvc["metadata"]["name"], new, subresource="status")
    message = (f'MountVolume.NodeExpandVolume succeeded for volume "{pvc["spec"].get("volumeName", "")}" '
               f'{pod["spec"].get("nodeName", "")}')
    kubelet_events.event(pvc, "Normal", "FileSystemResizeSuccessful", message)
    kubelet_events.event(pod, "Normal", "FileSystemResizeSuccessful", message)
    return True
