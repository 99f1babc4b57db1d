"""The Endpoints controller of kube-controller-manager.

Contract (as in ``pkg/controller/endpoint``): for every Service with a non-empty ``spec.selector``
(and not of type ExternalName) an Endpoints object of the same name lists the selected pods that
have an IP and are not terminal: ready pods under ``addresses``, others under ``notReadyAddresses``
(``publishNotReadyAddresses`` lists all as ready and keeps terminating pods). Each service port maps to
an endpoint port through ``targetPort``: a number is taken as is, a name is looked up among the pod's
container ports (same protocol); a pod without that port is left out of that port's subset. Headless
services without ports list bare addresses. Subsets are repacked (addresses grouped by the set of
ports they serve) and sorted deterministically. Labels mirror the service's labels plus
``service.kubernetes.io/headless`` for headless services. Deleting a Service deletes its Endpoints.
Services without a selector are left to their owners.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from devcluster.api import ApiServer, DeleteOptions
from devcluster.controllers.workqueue import WorkQueue, run_queue
from devcluster.errors import ApiError
from devcluster.store import Obj, WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

log = logging.getLogger("devcluster.endpoints")

HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

_Port = tuple[str, int, str, str]  # (name, port, protocol, appProtocol); port -1: a port-less subset


def selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service selector (a plain map) selects pods carrying all its pairs; empty selects nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    if status.get("podIP"):
        return str(status["podIP"])
    ips = status.get("podIPs") or []
    return str(ips[0].get("ip", "")) if ips else ""


def find_port(pod: Obj, service_port: Mapping[str, Any]) -> int | None:
    """``podutil.FindPort``: resolve a service port's targetPort against the pod's containers."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    spec = pod.get("spec") or {}
    # Regular containers, then restartable (sidecar) init containers.
    containers = list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    protocol = service_port.get("protocol", "TCP")
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def _address(pod: Obj, service: Obj) -> dict[str, Any]:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    addr: dict[str, Any] = {"ip": pod_ip(pod)}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        addr["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
    return addr


def _addr_key(addr: Mapping[str, Any]) -> tuple[str, str]:
    return str(addr.get("ip", "")), str((addr.get("targetRef") or {}).get("uid", ""))


def _port_dict(port: _Port) -> dict[str, Any]:
    name, number, protocol, app_protocol = port
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    out["port"] = number
    out["protocol"] = protocol
    if app_protocol:
        out["appProtocol"] = app_protocol
    return out


def compute_subsets(service: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    """The Endpoints subsets for ``service`` over ``pods`` (already filtered by the selector)."""
    spec = service.get("spec") or {}
    tolerate_unready = bool(spec.get("publishNotReadyAddresses"))
    headless = spec.get("clusterIP") == "None"
    ports = spec.get("ports") or []
    # port -> address key -> (address, ready): the first half of RepackSubsets.
    by_port: dict[_Port, dict[tuple[str, str], tuple[dict[str, Any], bool]]] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or not pod_ip(pod):
            continue
        if pod["metadata"].get("deletionTimestamp") and not tolerate_unready:
            continue
        addr = _address(pod, service)
        ready = tolerate_unready or pod_ready(pod)
        if not ports:
            if headless:
                by_port.setdefault(("", -1, "", ""), {})[_addr_key(addr)] = (addr, ready)
            continue
        for sp in ports:
            number = find_port(pod, sp)
            if number is None:
                continue
            key: _Port = (str(sp.get("name") or ""), number, str(sp.get("protocol", "TCP")),
                          str(sp.get("appProtocol") or ""))
            by_port.setdefault(key, {})[_addr_key(addr)] = (addr, ready)
    # Group ports by the exact set of (address, readiness) serving them.
    groups: dict[frozenset[tuple[tuple[str, str], bool]], tuple[dict[tuple[str, str], tuple[dict[str, Any], bool]],
                                                           list[_Port]]] = {}
    for port, addrs in by_port.items():
        signature = frozenset((k, ready) for k, (_, ready) in addrs.items())
        entry = groups.setdefault(signature, (addrs, []))
        if port[1] >= 0:
            entry[1].append(port)
    subsets = []
    for addrs, port_list in groups.values():
        ordered = [addrs[k] for k in sorted(addrs)]
        subset: dict[str, Any] = {}
        ready_addrs = [a for a, ready in ordered if ready]
        not_ready = [a for a, ready in ordered if not ready]
        if ready_addrs:
            subset["addresses"] = ready_addrs
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if port_list:
            subset["ports"] = [_port_dict(p) for p in sorted(port_list)]
        subsets.append(subset)
    subsets.sort(key=lambda s: ([_addr_key(a) for a in s.get("addresses", []) + s.get("notReadyAddresses", [])],
                                [(p.get("name", ""), p["port"]) for p in s.get("ports", [])]))
    return subsets


class EndpointsController:
    def __init__(self, api: ApiServer, resync_seconds: float = 30.0) -> None:
        self.api = api
        self.resync_seconds = resync_seconds
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue()

    @classmethod
    def for_cluster(cls, cluster: DevCluster) -> EndpointsController:
        return cls(cluster.api, float(cluster.config.extra.get("endpoints_resync_seconds", 30.0)))

    async def run(self) -> None:
        self.api.store.listeners.append(self._on_event)
        try:
            self._delete_leftovers()
            self._resync()
            await run_queue(self.queue, self._sync, self._resync, self.resync_seconds, "endpoints")
        finally:
            with contextlib.suppress(ValueError):
                self.api.store.listeners.remove(self._on_event)
            self.queue.close()

    def _resync(self) -> None:
        for svc in self.api.store.list("/services"):
            self.queue.add((svc["metadata"]["namespace"], svc["metadata"]["name"]))

    def _delete_leftovers(self) -> None:
        """At start, Endpoints without a Service go (``checkLeftoverEndpoints``), leader locks excepted."""
        for ep in self.api.store.list("/endpoints"):
            meta = ep["metadata"]
            if LEADER_ANNOTATION in (meta.get("annotations") or {}):
                continue
            if self.api.store.get("/services", meta["namespace"], meta["name"]) is None:
                self.queue.add((meta["namespace"], meta["name"]))

    def _on_event(self, event: WatchEvent) -> None:
        meta = event.obj["metadata"]
        if event.key in ("/services", "/endpoints"):
            if event.key == "/endpoints" and event.type != "DELETED" and \
                    self.api.store.get("/services", meta["namespace"], meta["name"]) is None:
                return  # hand-made Endpoints of no Service: not ours
            self.queue.add((meta["namespace"], meta["name"]))
        elif event.key == "/pods":
            old_labels = (event.old or {}).get("metadata", {}).get("labels") if event.old else None
            for svc in self.api.store.list("/services", meta["namespace"]):
                selector = (svc.get("spec") or {}).get("selector")
                if selector_matches(selector, meta.get("labels")) or selector_matches(selector, old_labels):
                    self.queue.add((meta["namespace"], svc["metadata"]["name"]))

    def _sync(self, key: tuple[str, str]) -> None:
        namespace, name = key
        ep_rt = self.api.lookup("", "v1", "endpoints")
        service = self.api.store.get("/services", namespace, name)
        if service is None:
            with contextlib.suppress(ApiError):
                if self.api.store.get(ep_rt.key, namespace, name) is not None:
                    self.api.delete(ep_rt, namespace, name, DeleteOptions())
            return
        spec = service.get("spec") or {}
        selector = spec.get("selector")
        if not selector or spec.get("type") == "ExternalName":
            return
        pods = [p for p in self.api.store.list("/pods", namespace)
                if selector_matches(selector, p["metadata"].get("labels"))]
        subsets = compute_subsets(service, pods)
        labels = dict(service["metadata"].get("labels") or {})
        if spec.get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        current = self.api.store.get(ep_rt.key, namespace, name)
        if current is not None and (current.get("subsets") or []) == subsets and \
                (current["metadata"].get("labels") or {}) == labels:
            return
        body = copy.deepcopy(current) if current is not None else \
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}}
        meta = body["metadata"]
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        trigger = _trigger_time(service, pods)
        annotations = dict(meta.get("annotations") or {})
        annotations[TRIGGER_TIME] = trigger
        meta["annotations"] = annotations
        if subsets:
            body["subsets"] = subsets
        else:
            body.pop("subsets", None)
        try:
            if current is None:
                self.api.create(ep_rt, namespace, body)
            else:
                self.api.update(ep_rt, namespace, name, body)
        except ApiError as err:
            if err.code == 403 and err.causes and err.causes[0].reason == "NamespaceTerminating":
                return  # the namespace is going away; nothing to publish
            raise


def _trigger_time(service: Obj, pods: list[Obj]) -> str:
    """The newest change that triggered this write: the service's creation or a pod's Ready transition.

    kube-controller-manager tracks this per sync (``TriggerTimeTracker``); both sources are second
    precision, so RFC 3339 with ``Z`` is what ``time.RFC3339Nano`` prints for them.
    """
    times = [service["metadata"].get("creationTimestamp") or ""]
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
                times.append(str(cond["lastTransitionTime"]))
    return max(times)
