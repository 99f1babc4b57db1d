"""Where a client outside the cluster reaches an advertised Kafka endpoint: devcluster plays cluster DNS.

Pod DNS names do not resolve on the host, so Metadata / DescribeCluster / DescribeQuorum answers carry, for
every advertised ``host:port``, the loopback address that the name would lead to inside the cluster:

- ``<hostname>.<subdomain>[.<ns>[.svc[.cluster.local]]]`` (a pod behind a headless Service, the
  StatefulSet form): the pod's loopback port for ``port``, from its ``devcluster.ballast.dev/loopback``
  annotation. As with CoreDNS, the name exists only if a headless Service named ``<subdomain>`` exists in
  the namespace, its selector matches the pod, and the pod is Ready or the Service sets
  ``publishNotReadyAddresses``. A short name is resolved with the search path of a pod in the advertising
  process's namespace (``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``).
- ``<service>[.<ns>[.svc[.cluster.local]]]``: the Service's loopback port (devcluster's kube-proxy).
- Anything else (an IP address, ``localhost``, an external name), or a name that does not resolve, or a
  port nothing listens on: advertised unchanged, so the client fails to connect as it would with a real
  cluster that advertises an unreachable address.

Reads go to the devcluster's store (immutable objects; a dict lookup per name), so answers always reflect
the current pods.
"""

from __future__ import annotations

import json
from typing import Any

from devcluster.controllers.runtime import LOOPBACK_ANNOTATION
from devcluster.kafka.types import Endpoint, NodeView

CLUSTER_DOMAIN = "cluster.local"


class ClusterDns:
    """Resolves advertised endpoints for processes in ``namespace`` (see the module docstring)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.store = api.store
        self.namespace = namespace
        self._pods = api.lookup("", "v1", "pods").key
        self._services = api.lookup("", "v1", "services").key

    def __call__(self, node: NodeView, endpoint: Endpoint) -> tuple[str, int]:
        found = self.resolve(endpoint.host, endpoint.port)
        return found if found is not None else (endpoint.host, endpoint.port)

    def resolve(self, host: str, port: int) -> tuple[str, int] | None:
        """The loopback ``(host, port)`` behind ``host:port``, or None."""
        name = host.lower().rstrip(".")
        if not name or name == "localhost" or name.replace(".", "").isdigit() or ":" in name:
            return None
        for fqdn in self._candidates(name):
            target = self._lookup(fqdn)
            if target is not None:
                return _loopback(target, port)
        return None

    def _candidates(self, name: str) -> list[str]:
        suffix = "." + CLUSTER_DOMAIN
        if name.endswith(suffix):
            return [name]
        # resolv.conf of a pod: ndots:5 and search <ns>.svc.<domain> svc.<domain> <domain>.
        return [f"{name}.{self.namespace}.svc{suffix}", f"{name}.svc{suffix}", f"{name}{suffix}", name]

    def _lookup(self, fqdn: str) -> dict[str, Any] | None:
        suffix = ".svc." + CLUSTER_DOMAIN
        if not fqdn.endswith(suffix):
            return None
        parts = fqdn[: -len(suffix)].split(".")
        if len(parts) == 2:  # <service>.<ns>
            return self.store.get(self._services, parts[1], parts[0])
        if len(parts) == 3:  # <hostname>.<subdomain>.<ns>
            return self._pod_record(parts[2], parts[1], parts[0])
        return None

    def _pod_record(self, namespace: str, subdomain: str, hostname: str) -> dict[str, Any] | None:
        service = self.store.get(self._services, namespace, subdomain)
        spec = (service or {}).get("spec") or {}
        if service is None or spec.get("clusterIP") != "None":
            return None
        pod = self.store.get(self._pods, namespace, hostname)
        if pod is None or not _pod_matches(pod, hostname, subdomain):
            pod = next((p for p in self.store.list(self._pods, namespace) if _pod_matches(p, hostname, subdomain)),
                       None)
        if pod is None:
            return None
        selector = spec.get("selector") or {}
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            return None
        if not (spec.get("publishNotReadyAddresses") or _ready(pod)):
            return None
        return pod


def _pod_matches(pod: dict[str, Any], hostname: str, subdomain: str) -> bool:
    spec = pod.get("spec") or {}
    return spec.get("hostname") == hostname and spec.get("subdomain") == subdomain


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _loopback(obj: dict[str, Any], port: int) -> tuple[str, int] | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(LOOPBACK_ANNOTATION)
    if not raw:
        return None
    try:
        address = json.loads(raw).get(str(port))
    except (ValueError, AttributeError):
        return None
    if not isinstance(address, str) or ":" not in address:
        return None
    host, _, local = address.rpartition(":")
    return (host, int(local)) if local.isdigit() else None
