"""Simulated worker Nodes: registration, heartbeats and the cordon taint.

On start the controller registers ``config.nodes`` Nodes named ``devcluster-worker-1`` ... with the
labels, capacity, conditions, addresses and ``nodeInfo`` a kubelet 1.36 on containerd reports, spread
round-robin over ``config.zones``. Afterwards it behaves like the kubelet's node-status loop and the
node lifecycle controller, cheaply:

- each node's Lease in ``kube-node-lease`` is renewed every ``LEASE_RENEW_SECONDS`` (kubelet: 10 s);
- the conditions' ``lastHeartbeatTime`` is refreshed every ``STATUS_REPORT_SECONDS`` (kubelet's
  ``nodeStatusReportFrequency``, 5 min), as a real kubelet only posts an unchanged status that often;
- ``spec.unschedulable`` (``kubectl cordon``) gets the ``node.kubernetes.io/unschedulable:NoSchedule``
  taint added or removed, as the node lifecycle controller does.

``NodeInfo``/``node_catalog`` give the other controllers (scheduler, kubelet) each node's IPs.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import platform
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devcluster import clock
from devcluster.errors import ApiError
from devcluster.store import Obj

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

log = logging.getLogger("devcluster.nodes")

KUBELET_VERSION = "v1.36.0"
CONTAINER_RUNTIME = "containerd://2.1.4"
REGION = "devcluster"
LEASE_RENEW_SECONDS = 10.0
LEASE_DURATION_SECONDS = 40
STATUS_REPORT_SECONDS = 300.0
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

# What each simulated node offers (a modest 8-core, 32 GiB worker). Allocatable subtracts the
# kubelet's default hard eviction threshold for memory (100Mi), as on a node without reservations.
CAPACITY = {"cpu": "8", "ephemeral-storage": "102626232Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
            "memory": "33554432Ki", "pods": "110"}
ALLOCATABLE = {**CAPACITY, "ephemeral-storage": "94580335255", "memory": "33452032Ki"}


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    index: int
    zone: str
    internal_ip: str
    pod_cidr: str

    def pod_ip(self, n: int) -> str:
        """The ``n``-th pod address of this node's /24 (``n`` from 0), skipping .0/.1 like a CNI bridge."""
        base = self.pod_cidr.rsplit(".", 1)[0]
        return f"{base}.{2 + n % 253}"


def node_catalog(count: int, zones: tuple[str, ...]) -> list[NodeInfo]:
    zones = zones or ("zone-a",)
    return [NodeInfo(f"devcluster-worker-{i + 1}", i, zones[i % len(zones)], f"127.0.0.{10 + i}",
                     f"10.244.{i + 1}.0/24") for i in range(count)]


def node_object(info: NodeInfo) -> Obj:
    now = clock.rfc3339()
    arch = _arch()
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return {
        "metadata": {
            "name": info.name,
            "labels": {
                "beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "kubernetes.io/hostname": info.name, "kubernetes.io/os": "linux",
                "topology.kubernetes.io/region": REGION, "topology.kubernetes.io/zone": info.zone,
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": info.pod_cidr, "podCIDRs": [info.pod_cidr],
                 "providerID": f"devcluster://{info.name}"},
        "status": {
            "capacity": dict(CAPACITY),
            "allocatable": dict(ALLOCATABLE),
            "conditions": [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now,
                            "lastTransitionTime": now} for t, s, r, m in conditions],
            "addresses": [{"type": "InternalIP", "address": info.internal_ip},
                          {"type": "Hostname", "address": info.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": arch, "bootID": str(uuid.uuid4()), "containerRuntimeVersion": CONTAINER_RUNTIME,
                "kernelVersion": platform.release(), "kubeProxyVersion": "", "kubeletVersion": KUBELET_VERSION,
                "machineID": uuid.uuid4().hex, "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": str(uuid.uuid4()),
            },
            "runtimeHandlers": [{"name": "runc", "features": {"recursiveReadOnlyMounts": True,
                                                              "userNamespaces": True}},
                                {"name": "", "features": {"recursiveReadOnlyMounts": True,
                                                          "userNamespaces": True}}],
            "features": {"supplementalGroupsPolicy": True},
        },
    }


class NodeController:
    """Registers the simulated nodes and keeps their leases and heartbeats fresh."""

    def __init__(self, cluster: DevCluster) -> None:
        self.api = cluster.api
        self.infos = node_catalog(cluster.config.nodes, tuple(cluster.config.zones))
        self._nodes = self.api.lookup("", "v1", "nodes")
        self._leases = self.api.lookup("coordination.k8s.io", "v1", "leases")
        self._last_report = 0.0

    def register(self) -> None:
        """Create missing Nodes (idempotent); runs before the scheduler needs them."""
        for info in self.infos:
            if self.api.try_get(self._nodes, None, info.name) is None:
                # kubelet registers its Node with the status already filled in.
                self.api.create(self._nodes, None, node_object(info))

    async def run(self) -> None:
        self.register()
        sub = self.api.store.subscribe(self._nodes.key, None)
        loop = asyncio.get_running_loop()
        self._last_report = loop.time()
        try:
            for node in self.api.store.list(self._nodes.key):
                self._sync_taints(node)
            next_lease = 0.0
            while True:
                now = loop.time()
                if now >= next_lease:
                    self._renew_leases()
                    next_lease = now + LEASE_RENEW_SECONDS
                if now - self._last_report >= STATUS_REPORT_SECONDS:
                    self._heartbeat()
                    self._last_report = now
                try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    async with asyncio.timeout(max(0.05, next_lease - loop.time())):
                        ev = await sub.queue.get()
                except TimeoutError:
                    continue
                if ev is None:  # subscriptions closed (cluster stopping or a fault): resubscribe
                    self.api.store.unsubscribe(sub)
                    sub = self.api.store.subscribe(self._nodes.key, None)
                    continue
                if ev.type != "DELETED":
                    self._sync_taints(ev.obj)
        finally:
            self.api.store.unsubscribe(sub)

    # -- leases and heartbeats ----------------------------------------------------------------------
    def _renew_leases(self) -> None:
        for info in self.infos:
            node = self.api.try_get(self._nodes, None, info.name)
            if node is None:
                continue
            try:
                lease = self.api.try_get(self._leases, "kube-node-lease", info.name)
                if lease is None:
                    self.api.create(self._leases, "kube-node-lease", {
                        "metadata": {"name": info.name, "namespace": "kube-node-lease", "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": info.name,
                             "uid": node["metadata"]["uid"]}]},
                        "spec": {"holderIdentity": info.name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                                 "renewTime": clock.micro_time()}})
                else:
                    new = copy.deepcopy(lease)
                    new["spec"]["renewTime"] = clock.micro_time()
                    self.api.update(self._leases, "kube-node-lease", info.name, new)
            except ApiError as err:
                log.debug("lease renewal for %s failed: %s", info.name, err)

    def _heartbeat(self) -> None:
        now = clock.rfc3339()
        for info in self.infos:
            node = self.api.try_get(self._nodes, None, info.name)
            if node is None:
                continue
            new = copy.deepcopy(node)
            for cond in new.get("status", {}).get("conditions") or []:
                cond["lastHeartbeatTime"] = now
            try:
                self.api.update(self._nodes, None, info.name, new, subresource="status")
            except ApiError as err:
                log.debug("heartbeat for %s failed: %s", info.name, err)

    # -- cordon -------------------------------------------------------------------------------------
    def _sync_taints(self, node: Obj) -> None:
        spec = node.get("spec") or {}
        taints: list[dict[str, Any]] = list(spec.get("taints") or [])
        has = any(t.get("key") == UNSCHEDULABLE_TAINT and t.get("effect") == "NoSchedule" for t in taints)
        want = bool(spec.get("unschedulable"))
        if has == want:
            return
        if want:
            taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": clock.rfc3339()})
        else:
            taints = [t for t in taints if not (t.get("key") == UNSCHEDULABLE_TAINT and t.get("effect") == "NoSchedule")]
        new = copy.deepcopy(node)
        if taints:
            new["spec"]["taints"] = taints
        else:
            new["spec"].pop("taints", None)
        try:
            self.api.update(self._nodes, None, node["metadata"]["name"], new)
        except ApiError as err:
            log.debug("taint update for %s failed: %s", node["metadata"]["name"], err)
