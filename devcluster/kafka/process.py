"""Simulated Kafka processes: what the kubelet runs for containers of the Kafka images.

:func:`make_factory` gives the kubelet a process factory (``Kubelet.process_factories``) that matches the
images of :func:`devcluster.kafka.config.image_flavor` and returns

- a :class:`StorageFormatProcess` for ``kafka-storage.sh format ...`` (typically an init container): it
  writes ``meta.properties`` into the log dirs that live on a volume and exits 0 (1 on errors, e.g. a dir
  already formatted without ``--ignore-formatted``);
- ``None`` for any other init container of a Kafka image (devcluster cannot run its script; the kubelet
  lets an init container without a program complete);
- a :class:`SimKafkaProcess` for a main container.

Lifecycle of a :class:`SimKafkaProcess` (one KRaft node of the shared cluster model):

- ``start()``: builds the effective config (:mod:`devcluster.kafka.config`), formats / reads the log dirs'
  ``meta.properties`` (cluster id and node id must match what is stored, as Kafka checks), then listens on a
  loopback port for every ``listeners`` entry (``ports()``: listener port -> loopback port, published by
  the kubelet in the pod's loopback annotation) and starts the node in the model of its cluster id.
  A configuration error does not fail the start: the process exits 1 right away (``wait()``), as a JVM
  that logs the error and exits, and the kubelet restarts it with back-off.
- Node ids are exclusive per cluster: a second process with a live node's id waits until it is free (a
  real one keeps failing its broker registration).
- ``ready()``: without a readinessProbe the container is Ready once started (Kubernetes semantics); a
  ``tcpSocket`` probe passes once that port listens (Kafka binds its ports early in startup); any other
  probe (``exec`` such as ``kafka-broker-api-versions.sh``, ``httpGet``, ``grpc``) is taken to mean "Kafka
  serves": a broker is registered and unfenced (caught up with the metadata log), a controller sees a
  quorum leader. Probe timings are not simulated.
- ``stop(graceful=True)`` (pod deletion, SIGTERM): controlled shutdown - the broker's leaderships move and it
  leaves the ISRs before the process ends with exit code 143; without an active controller it cannot
  complete and waits, so the kubelet kills it after the grace period. ``stop(graceful=False)`` (SIGKILL,
  crash): the node just stops (137); the controller fences it after ``broker.session.timeout.ms``.
- The process exits 1 on its own when the model shuts the broker down because all its log dirs failed.
  At start, a broker whose log dirs have all failed (``fail-disk``, not yet ``restore-disk``) exits 1
  before it listens or starts its node in the model, so it never registers with the controller: Kafka's
  LogManager validates the log dirs early in broker start-up and halts when none is usable.

Log dir capacity: the ``status.capacity.storage`` of the PVC mounted at (or above) the log dir, else the
``sizeLimit`` of an emptyDir, else the node's allocatable ephemeral storage. It is read at process start and
then every ``WATCH_INTERVAL_S`` while the process runs, so an online PVC expansion shows in DescribeLogDirs'
``total_bytes`` once the kubelet has grown the filesystem (``status.capacity``), without a restart - a real
broker asks the filesystem on every DescribeLogDirs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import posixpath
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devcluster.builtins import parse_quantity
from devcluster.controllers.nodes import ALLOCATABLE
from devcluster.controllers.runtime import PodContext, ProcessFactory, SimProcess
from devcluster.kafka.addressing import CLUSTER_DOMAIN, ClusterDns
from devcluster.kafka.config import (
    KafkaConfigError,
    LaunchPlan,
    NodeConfig,
    container_argv,
    image_flavor,
    launch_plan,
    node_config,
    parse_properties,
    parse_storage_format,
    render_meta_properties,
)
from devcluster.kafka.errors import ErrorCode
from devcluster.kafka.handlers import NodeService
from devcluster.kafka.model import KafkaClusterModel
from devcluster.kafka.server import KafkaServer
from devcluster.kafka.types import Endpoint, LogDirSpec

if TYPE_CHECKING:
    from devcluster.kafka.runtime import KafkaRuntime

log = logging.getLogger("devcluster.kafka")

EXIT_CONFIG_ERROR = 1
EXIT_SIGTERM = 143
EXIT_SIGKILL = 137
WATCH_INTERVAL_S = 0.2
META_PROPERTIES = "meta.properties"


def make_factory(runtime: KafkaRuntime) -> ProcessFactory:
    """The kubelet process factory for Kafka images (see the module docstring)."""

    def factory(ctx: PodContext) -> SimProcess | None:
        flavor = image_flavor(str(ctx.container.get("image", "")))
        if flavor is None:
            return None
        argv = container_argv(flavor, ctx.command, ctx.args)
        try:
            fmt = parse_storage_format(argv)
        except KafkaConfigError as err:
            return StorageFormatProcess(ctx, None, str(err))
        if fmt is not None:
            return StorageFormatProcess(ctx, fmt, None)
        if _is_init(ctx):
            return None
        return SimKafkaProcess(runtime, ctx, flavor)

    return factory


def _is_init(ctx: PodContext) -> bool:
    name = ctx.container.get("name")
    return any(c.get("name") == name for c in (ctx.pod.get("spec") or {}).get("initContainers") or [])


def canonical_host(ctx: PodContext) -> str:
    """``getCanonicalHostName()`` in the pod: the FQDN kubelet writes to /etc/hosts when the pod has a
    subdomain, else the hostname."""
    spec = ctx.pod.get("spec") or {}
    subdomain = spec.get("subdomain")
    if subdomain:
        namespace = (ctx.pod.get("metadata") or {}).get("namespace", "default")
        return f"{ctx.hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}"
    return ctx.hostname


# ---------------------------------------------------------------------------------------- storage
def _mount_for(ctx: PodContext, path: str) -> dict[str, Any] | None:
    """The container's volumeMount that holds ``path`` (the longest mountPath prefix)."""
    best: dict[str, Any] | None = None
    for mount in ctx.container.get("volumeMounts") or []:
        mount_path = posixpath.normpath(str(mount.get("mountPath", "/")))
        covers = path == mount_path or path.startswith(mount_path.rstrip("/") + "/")
        if covers and (best is None or len(mount_path) > len(posixpath.normpath(str(best.get("mountPath"))))):
            best = mount
    return best


def host_dir(ctx: PodContext, path: str) -> Path | None:
    """The host directory behind ``path`` when it lives on a PVC, emptyDir or hostPath volume."""
    path = posixpath.normpath(path)
    best = ""
    for mount_path in ctx.volume_paths:
        mp = posixpath.normpath(mount_path)
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best = mp
    if not best:
        return None
    base = next(v for k, v in ctx.volume_paths.items() if posixpath.normpath(k) == best)
    rel = posixpath.relpath(path, best)
    return base if rel == "." else base / rel


def log_dir_capacity(ctx: PodContext, api: Any, path: str) -> int:
    """Bytes of the volume behind ``path`` (see the module docstring)."""
    mount = _mount_for(ctx, posixpath.normpath(path))
    volumes = {v.get("name"): v for v in (ctx.pod.get("spec") or {}).get("volumes") or []}
    volume = volumes.get((mount or {}).get("name")) or {}
    if volume.get("persistentVolumeClaim"):
        claim = volume["persistentVolumeClaim"].get("claimName", "")
        namespace = (ctx.pod.get("metadata") or {}).get("namespace", "default")
        pvc = api.store.get(api.lookup("", "v1", "persistentvolumeclaims").key, namespace, claim)
        size = (((pvc or {}).get("status") or {}).get("capacity") or {}).get("storage")
        if size:
            return int(parse_quantity(size))
    if "emptyDir" in volume and (volume.get("emptyDir") or {}).get("sizeLimit"):
        return int(parse_quantity(volume["emptyDir"]["sizeLimit"]))
    return int(parse_quantity(ALLOCATABLE["ephemeral-storage"]))


def read_meta(directory: Path | None) -> dict[str, str] | None:
    if directory is None:
        return None
    try:
        return parse_properties((directory / META_PROPERTIES).read_text())
    except OSError:
        return None


def write_meta(directory: Path, cluster_id: str, node_id: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    directory_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    (directory / META_PROPERTIES).write_text(render_meta_properties(cluster_id, node_id, directory_id))


def ensure_formatted(ctx: PodContext, cfg: NodeConfig, plan: LaunchPlan) -> str:
    """The cluster id of the node's log dirs: formats the unformatted ones with ``plan.cluster_id`` (the
    images' launch step) and checks what is stored, as Kafka's MetaPropertiesEnsemble does."""
    dirs = list(dict.fromkeys([*cfg.log_dirs, cfg.metadata_log_dir]))
    stored = {d: read_meta(host_dir(ctx, d)) for d in dirs}
    for meta in stored.values():
        if meta is None:
            continue
        node = meta.get("node.id")
        if node is not None and node.strip() != str(cfg.node_id):
            raise KafkaConfigError(f"Stored node id {node.strip()} doesn't match previous node id {cfg.node_id}. "
                                   f"If you moved your data, make sure your configured node id matches. If you "
                                   f"intend to create a new node, you should remove all data in your data "
                                   f"directories.")
    missing = [d for d, meta in stored.items() if meta is None]
    if missing:
        if plan.cluster_id is None:
            raise KafkaConfigError(f"No `meta.properties` found in {missing[0]} (have you run `kafka-storage.sh` "
                                   "to format the directory?)")
        for d in missing:
            directory = host_dir(ctx, d)
            if directory is not None:
                with contextlib.suppress(OSError):
                    write_meta(directory, plan.cluster_id, cfg.node_id)
            stored[d] = {"cluster.id": plan.cluster_id}
    expected: str | None = None
    for d, meta in stored.items():
        found = (meta or {}).get("cluster.id", "")
        if expected is None:
            expected = found
        elif found != expected:
            raise KafkaConfigError(f"Invalid cluster.id in: {d}/{META_PROPERTIES}. Expected {expected}, "
                                   f"but read {found}")
    if not expected:
        raise KafkaConfigError(f"No cluster.id in {dirs[0]}/{META_PROPERTIES}")
    return expected


# ------------------------------------------------------------------------------------ processes
class StorageFormatProcess:
    """``kafka-storage.sh format``: writes meta.properties into the log dirs on volumes, then exits."""

    def __init__(self, ctx: PodContext, fmt: Any, error: str | None) -> None:
        self.ctx, self.fmt, self.error = ctx, fmt, error
        self.code = 0

    async def start(self) -> None:
        try:
            if self.error is not None:
                raise KafkaConfigError(self.error)
            self._format()
        except KafkaConfigError as err:
            log.warning("%s/%s: kafka-storage.sh format failed: %s", _ns(self.ctx), self.ctx.pod["metadata"]["name"],
                        err)
            self.code = 1

    def _format(self) -> None:
        data = self.ctx.files.get(self.fmt.config_path)
        if data is None:
            raise KafkaConfigError(f"{self.fmt.config_path} (No such file or directory)")
        cfg = node_config(parse_properties(data.decode("utf-8", errors="replace")), canonical_host(self.ctx))
        for d in dict.fromkeys([*cfg.log_dirs, cfg.metadata_log_dir]):
            directory = host_dir(self.ctx, d)
            if read_meta(directory) is not None:
                if self.fmt.ignore_formatted:
                    continue
                raise KafkaConfigError(f"Log directory {d} is already formatted. Use --ignore-formatted to "
                                       "ignore this directory and format the others.")
            if directory is not None:
                try:
                    write_meta(directory, self.fmt.cluster_id, cfg.node_id)
                except OSError as err:
                    raise KafkaConfigError(f"Error while writing meta.properties file {d}: {err}") from None

    async def wait(self) -> int:
        return self.code

    async def stop(self, graceful: bool) -> int | None:
        return self.code


def _ns(ctx: PodContext) -> str:
    return str((ctx.pod.get("metadata") or {}).get("namespace", ""))


class SimKafkaProcess:
    """One simulated KRaft node (broker, controller or both) in a container; see the module docstring."""

    def __init__(self, runtime: KafkaRuntime, ctx: PodContext, flavor: str) -> None:
        self.runtime = runtime
        self.ctx = ctx
        self.flavor = flavor
        self.name = f"{_ns(ctx)}/{ctx.pod['metadata']['name']}/{ctx.container.get('name')}"
        self.config: NodeConfig | None = None
        self.plan: LaunchPlan | None = None
        self.cluster_id: str | None = None
        self.model: KafkaClusterModel | None = None
        self.servers: dict[str, KafkaServer] = {}
        self.exit_reason: str | None = None
        self._registered = False
        self._incarnation: uuid.UUID | None = None
        self._exit: asyncio.Future[int] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- SimProcess ---------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._exit = loop.create_future()
        try:
            argv = container_argv(self.flavor, self.ctx.command, self.ctx.args)
            self.plan = launch_plan(self.flavor, argv, self.ctx.env, self.ctx.files)
            self.config = node_config(self.plan.props, canonical_host(self.ctx))
            self.cluster_id = ensure_formatted(self.ctx, self.config, self.plan)
        except KafkaConfigError as err:
            self._finish(EXIT_CONFIG_ERROR, str(err))
            return
        self.model = self.runtime.directory.get_or_create(self.cluster_id)
        if self._no_usable_log_dir():
            self._finish(EXIT_CONFIG_ERROR, self._no_usable_log_dir_message())
            return
        dns = ClusterDns(self.runtime.api, _ns(self.ctx))
        try:
            for listener in self.config.listeners:
                svc = NodeService(self.model, self.config.node_id, listener_name=listener.name,
                                  advertised_address=dns,
                                  controller_listener_names=self.config.controller_listener_names)
                kind = "controller" if listener.name in self.config.controller_listener_names else "broker"
                server = KafkaServer(svc, self.runtime.registry, listener=kind)  # type: ignore[arg-type]
                await server.start()
                self.servers[listener.name] = server
        except OSError:
            await self._stop_servers()
            raise  # the runtime could not start it: the kubelet reports a StartError
        log.info("%s: kafka node %d (%s) of cluster %s from %s config, listeners %s", self.name,
                 self.config.node_id, ",".join(sorted(self.config.roles)), self.cluster_id, self.plan.source,
                 self.ports())
        self._task = loop.create_task(self._main(), name=f"kafka-{self.name}")

    def ports(self) -> dict[int, int]:
        if self.config is None:
            return {}
        by_name = {e.name: e.port for e in self.config.listeners}
        return {by_name[name]: server.port for name, server in self.servers.items() if server.running}

    def ready(self) -> bool:
        if self._exit is None or self._exit.done():
            return False
        probe = self.ctx.container.get("readinessProbe")
        if not probe:
            return True
        if probe.get("tcpSocket") is not None:
            return self._probe_port(probe["tcpSocket"].get("port")) in self.ports()
        return self.kafka_ready()

    async def wait(self) -> int:
        assert self._exit is not None
        return await asyncio.shield(self._exit)

    async def stop(self, graceful: bool) -> int | None:
        if self._exit is not None and self._exit.done():
            return self._exit.result()
        model, cfg = self.model, self.config
        if graceful and self._registered and model is not None and cfg is not None and cfg.is_broker:
            # Controlled shutdown needs the active controller; without one it never completes (the kubelet
            # kills the container when the grace period ends).
            while model.active_controller_id() < 0:
                await asyncio.sleep(0.05)
        code = EXIT_SIGTERM if graceful else EXIT_SIGKILL
        self._finish(code, "SIGTERM: controlled shutdown" if graceful else "SIGKILL", graceful=graceful)
        await self._stop_servers()
        return code

    # -- state --------------------------------------------------------------------------------------
    def kafka_ready(self) -> bool:
        """Registered and unfenced (brokers); a quorum leader is known (controllers)."""
        model, cfg = self.model, self.config
        if not self._registered or model is None or cfg is None:
            return False
        if cfg.is_broker:
            view = model.node(cfg.node_id)
            if not (view.running and view.registered and not view.fenced and view.incarnation_id == self._incarnation):
                return False
        return not (cfg.is_controller and model.active_controller_id() < 0)

    def _probe_port(self, port: Any) -> int | None:
        if isinstance(port, int):
            return port
        for p in self.ctx.container.get("ports") or []:
            if p.get("name") == port:
                return int(p.get("containerPort", 0))
        return int(port) if isinstance(port, str) and port.isdigit() else None

    async def _main(self) -> None:
        model, cfg = self.model, self.config
        assert model is not None and cfg is not None and self.cluster_id is not None
        key = (self.cluster_id, cfg.node_id)
        while not self.runtime.claim(key, self):
            await asyncio.sleep(WATCH_INTERVAL_S)
        if self._no_usable_log_dir():
            # A disk failed while this process waited for its node id: still before registration.
            self._finish(EXIT_CONFIG_ERROR, self._no_usable_log_dir_message())
            await self._stop_servers()
            return
        try:
            log_dirs = cfg.log_dirs if cfg.is_broker else (cfg.metadata_log_dir,)
            view = model.start_node(
                cfg.node_id,
                roles=cfg.roles,
                rack=cfg.rack,
                endpoints=[Endpoint(e.name, e.host, e.port, e.security_protocol) for e in cfg.endpoints()],
                log_dirs=[LogDirSpec(d, log_dir_capacity(self.ctx, self.runtime.api, d)) for d in log_dirs],
                static_config={k: v for k, v in cfg.props.items() if k != "cluster.id"},
            )
        except Exception as err:  # the model refused the node: a real one logs and exits
            self.runtime.release(key, self)
            self._finish(EXIT_CONFIG_ERROR, f"startup failed: {err}")
            await self._stop_servers()
            return
        self._registered, self._incarnation = True, view.incarnation_id
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            current = model.node(cfg.node_id)
            if current.running and current.incarnation_id == self._incarnation:
                self._refresh_capacities(current.log_dirs)
                continue
            # The model stopped this node (all its log dirs failed): the JVM halts.
            self._registered = False
            self._finish(EXIT_CONFIG_ERROR, f"Shutdown broker because all log dirs in {','.join(cfg.log_dirs)} "
                                            "have failed")
            await self._stop_servers()
            return

    def _refresh_capacities(self, log_dirs: tuple[LogDirSpec, ...]) -> None:
        """Push a changed volume size (online PVC expansion) into the model."""
        assert self.model is not None and self.config is not None
        for spec in log_dirs:
            capacity = log_dir_capacity(self.ctx, self.runtime.api, spec.path)
            if capacity != spec.capacity_bytes:
                self.model.set_log_dir_capacity(self.config.node_id, spec.path, capacity)

    def _no_usable_log_dir(self) -> bool:
        """A broker whose configured log dirs have all failed in the model (the disks stay failed across
        restarts until ``restore-disk``): LogManager finds none usable at start-up. A dir the model does
        not know yet (a new path) is usable."""
        model, cfg = self.model, self.config
        if model is None or cfg is None or not cfg.is_broker or not cfg.log_dirs:
            return False
        failed = {d.path for d in model.describe_log_dirs(cfg.node_id, {})
                  if d.error == ErrorCode.KAFKA_STORAGE_ERROR}
        return all(path in failed for path in cfg.log_dirs)

    def _no_usable_log_dir_message(self) -> str:
        """LogManager.createAndValidateLogDirs' fatal message before ``Exit.halt(1)``."""
        assert self.config is not None
        return (f"Shutdown broker because none of the specified log dirs from {', '.join(self.config.log_dirs)} "
                "can be created or validated")

    def _finish(self, code: int, reason: str, *, graceful: bool | None = None) -> None:
        """Record the exit; stop the node in the model (``graceful`` None: it already stopped there)."""
        if self._exit is None or self._exit.done():
            return
        self.exit_reason = reason
        if code == EXIT_CONFIG_ERROR:
            log.warning("%s: kafka exits with %d: %s", self.name, code, reason)
        model, cfg = self.model, self.config
        if graceful is not None and self._registered and model is not None and cfg is not None:
            model.stop_node(cfg.node_id, graceful=graceful)
        self._registered = False
        if model is not None and cfg is not None and self.cluster_id is not None:
            self.runtime.release((self.cluster_id, cfg.node_id), self)
        task, current = self._task, asyncio.current_task()
        if task is not None and task is not current and not task.done():
            task.cancel()
        self._exit.set_result(code)

    async def _stop_servers(self) -> None:
        servers = list(self.servers.values())
        for server in servers:
            with contextlib.suppress(Exception):
                await server.stop()
