"""A loopback kube-proxy: every TCP Service port gets a 127.0.0.1 listener that forwards to a ready endpoint.

devcluster has no pod network, so a Service's clusterIP cannot be reached. Instead:

- for each TCP port of each Service (not ExternalName) an asyncio server listens on ``127.0.0.1:<p>``;
  the port is stable for the Service's lifetime (same uid) and the listener closes when the Service
  (or that port) goes away;
- the Service carries ``devcluster.ballast.dev/loopback``: JSON mapping each service port number (as a
  string) to ``"127.0.0.1:<p>"``; it is written once the listeners are up and restored if removed;
- a connection is forwarded, like kube-proxy, to one of the Service's *ready* endpoints (the
  ``addresses`` of its Endpoints subsets whose port has the service port's name), round-robin. An
  endpoint backed by a pod is reached at the pod's loopback address for that port, read from the pod
  annotation ``devcluster.ballast.dev/loopback`` (container port number as a string -> ``host:port``,
  written by the simulated kubelet); a pod without it, or without that port, is not usable. An
  endpoint address on 127.0.0.0/8 without a pod (hand-made Endpoints) is dialled directly.
- a connection with no usable endpoint is reset at once (like a REJECT rule); if the chosen endpoint
  refuses the connection the next one is tried (as the userspace proxier did).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import json
import logging
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devcluster.api import ApiServer
from devcluster.controllers.workqueue import WorkQueue, run_queue
from devcluster.errors import ApiError
from devcluster.store import Obj, WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

log = logging.getLogger("devcluster.proxy")

LOOPBACK_ANNOTATION = "devcluster.ballast.dev/loopback"
CONNECT_TIMEOUT = 2.0


@dataclass
class _ServiceListeners:
    uid: str
    servers: dict[int, asyncio.Server] = field(default_factory=dict)  # service port -> listener
    loopback: dict[int, int] = field(default_factory=dict)  # service port -> local port


def _loopback_map(obj: Obj) -> dict[str, str]:
    raw = (obj["metadata"].get("annotations") or {}).get(LOOPBACK_ANNOTATION)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _split_hostport(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        return None


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class LoopbackProxy:
    def __init__(self, api: ApiServer, resync_seconds: float = 30.0) -> None:
        self.api = api
        self.resync_seconds = resync_seconds
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue()
        self._services: dict[tuple[str, str], _ServiceListeners] = {}
        self._next: dict[tuple[str, int], int] = {}  # (service uid, port) -> round-robin counter
        self._connections: set[asyncio.Task[None]] = set()
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._dirty: set[tuple[str, str]] = set()

    @classmethod
    def for_cluster(cls, cluster: DevCluster) -> LoopbackProxy:
        return cls(cluster.api, float(cluster.config.extra.get("proxy_resync_seconds", 30.0)))

    # -- lifecycle -----------------------------------------------------------------------------------
    async def run(self) -> None:
        self.api.store.listeners.append(self._on_event)
        try:
            self._resync()
            await run_queue(self.queue, self._sync_soon, self._resync, self.resync_seconds, "proxy")
        finally:
            with contextlib.suppress(ValueError):
                self.api.store.listeners.remove(self._on_event)
            self.queue.close()

    async def stop(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        for key in list(self._services):
            self._close(key)
        for task in list(self._connections):
            task.cancel()

    def loopback_port(self, namespace: str, name: str, port: int) -> int | None:
        """The local port serving ``port`` of Service ``namespace/name`` (for in-process callers)."""
        entry = self._services.get((namespace, name))
        return entry.loopback.get(port) if entry is not None else None

    def _resync(self) -> None:
        for key in list(self._services):
            self.queue.add(key)
        for svc in self.api.store.list("/services"):
            self.queue.add((svc["metadata"]["namespace"], svc["metadata"]["name"]))

    def _on_event(self, event: WatchEvent) -> None:
        if event.key == "/services":
            meta = event.obj["metadata"]
            self.queue.add((meta["namespace"], meta["name"]))

    # -- listeners -----------------------------------------------------------------------------------
    def _sync_soon(self, key: tuple[str, str]) -> None:
        """Queue processing is synchronous; opening sockets is not, so it runs as a task (one per key)."""
        if key in self._inflight:
            self._dirty.add(key)
            return
        task = asyncio.get_running_loop().create_task(self._sync(key))
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._sync_done(key, t))

    def _sync_done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        self._inflight.pop(key, None)
        if key in self._dirty:
            self._dirty.discard(key)
            self.queue.add(key)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if not isinstance(exc, ApiError):
                log.warning("proxy: syncing %s/%s failed: %r", *key, exc)
            self.queue.retry(key)
        else:
            self.queue.forget(key)

    async def _sync(self, key: tuple[str, str]) -> None:
        namespace, name = key
        svc = self.api.store.get("/services", namespace, name)
        entry = self._services.get(key)
        if entry is not None and (svc is None or svc["metadata"]["uid"] != entry.uid):
            self._close(key)
            entry = None
        if svc is None:
            return
        spec = svc.get("spec") or {}
        wanted = [] if spec.get("type") == "ExternalName" else \
            [int(p["port"]) for p in spec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        if entry is None:
            entry = self._services[key] = _ServiceListeners(svc["metadata"]["uid"])
        for port in [p for p in entry.servers if p not in wanted]:
            entry.servers.pop(port).close()
            entry.loopback.pop(port, None)
        for port in wanted:
            if port not in entry.servers:
                server = await asyncio.start_server(
                    lambda r, w, k=key, uid=entry.uid, p=port: self._accept(r, w, k, uid, p), "127.0.0.1", 0)
                entry.servers[port] = server
                entry.loopback[port] = server.sockets[0].getsockname()[1]
        # The service may have changed while the listeners opened: write against what is stored now.
        svc = self.api.store.get("/services", namespace, name)
        if svc is None or svc["metadata"]["uid"] != entry.uid:
            self.queue.add(key)
            return
        desired = {str(p): f"127.0.0.1:{lp}" for p, lp in sorted(entry.loopback.items())}
        if _loopback_map(svc) != desired:
            body = copy.deepcopy(svc)
            annotations = body["metadata"].setdefault("annotations", {})
            if desired:
                annotations[LOOPBACK_ANNOTATION] = json.dumps(desired, sort_keys=True, separators=(",", ":"))
            else:
                annotations.pop(LOOPBACK_ANNOTATION, None)
            try:
                self.api.update(self.api.lookup("", "v1", "services"), namespace, name, body)
            except ApiError as err:
                if err.code != 404:
                    raise

    def _close(self, key: tuple[str, str]) -> None:
        entry = self._services.pop(key, None)
        if entry is None:
            return
        for server in entry.servers.values():
            server.close()
        for port in entry.servers:
            self._next.pop((entry.uid, port), None)

    # -- forwarding ----------------------------------------------------------------------------------
    def endpoints_for(self, namespace: str, name: str, uid: str, port: int) -> list[tuple[str, int]]:
        """Usable loopback targets of a service port, in a stable order (the round-robin ring)."""
        svc = self.api.store.get("/services", namespace, name)
        if svc is None or svc["metadata"]["uid"] != uid:
            return []
        spec_port = next((p for p in (svc.get("spec") or {}).get("ports") or [] if int(p["port"]) == port), None)
        if spec_port is None:
            return []
        port_name = str(spec_port.get("name") or "")
        ep = self.api.store.get("/endpoints", namespace, name)
        targets: list[tuple[str, int]] = []
        for subset in (ep or {}).get("subsets") or []:
            for ep_port in subset.get("ports") or []:
                if str(ep_port.get("name") or "") != port_name or ep_port.get("protocol", "TCP") != "TCP":
                    continue
                for addr in subset.get("addresses") or []:
                    target = self._resolve(namespace, addr, int(ep_port["port"]))
                    if target is not None and target not in targets:
                        targets.append(target)
        return sorted(targets)

    def _resolve(self, namespace: str, addr: dict[str, Any], port: int) -> tuple[str, int] | None:
        ref = addr.get("targetRef") or {}
        if ref.get("kind") == "Pod":
            pod = self.api.store.get("/pods", ref.get("namespace") or namespace, str(ref.get("name", "")))
            if pod is None or (ref.get("uid") and pod["metadata"]["uid"] != ref["uid"]):
                return None
            hostport = _loopback_map(pod).get(str(port))
            return _split_hostport(hostport) if hostport else None
        ip = str(addr.get("ip", ""))
        return (ip, port) if _is_loopback(ip) else None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: tuple[str, str],
                uid: str, port: int) -> None:
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer, key, uid, port))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: tuple[str, str],
                       uid: str, port: int) -> None:
        targets = self.endpoints_for(key[0], key[1], uid, port)
        start = self._next.get((uid, port), 0)
        self._next[(uid, port)] = start + 1
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for i in range(len(targets)):
            host, target_port = targets[(start + i) % len(targets)]
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(host, target_port), CONNECT_TIMEOUT)
                break
            except (OSError, TimeoutError):
                continue
        if upstream is None:
            _reset(writer)
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            _reset(writer)
            _reset(up_writer)
            raise
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close; a reset on either side aborts both directions."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a rejected or broken TCP connection ends."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
