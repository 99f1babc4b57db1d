"""Assembles a running devcluster: API server, bootstrap objects, simulated controllers, kubeconfig.

``DevCluster`` runs on the caller's asyncio loop (the CLI). ``DevClusterThread`` runs one on a private
loop in a background thread, for synchronous callers such as tests using the official ``kubernetes``
client; use ``call()`` to touch its internals (fault injection, kubelet hooks) on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from aiohttp import web

from devcluster.api import ApiServer
from devcluster.faults import FaultInjector
from devcluster.server import DevServer
from devcluster.store import Store

if TYPE_CHECKING:
    from devcluster.kafka.runtime import KafkaRuntime

log = logging.getLogger("devcluster")
T = TypeVar("T")

CONTEXT = "ballast-dev"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class DevClusterConfig:
    port: int = 0
    kubeconfig: Path | None = None
    watch_window: int = 10_000
    bookmark_interval: float = 5.0
    nodes: int = 3
    zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c")
    # Seconds a pod spends between scheduling and Running, and between Running and Ready (per image
    # substring or label key=value overrides live on the kubelet; these are the defaults).
    pod_start_delay: float = 0.2
    pod_ready_delay: float = 0.3
    pvc_resize_delay: float = 0.3
    controllers: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def kubeconfig_dict(server: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {"token": "devcluster"}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


class DevCluster:
    def __init__(self, config: DevClusterConfig | None = None) -> None:
        self.config = config or DevClusterConfig()
        self.api = ApiServer(Store(window=self.config.watch_window))
        self.faults = FaultInjector()
        self.faults.store = self.api.store
        self.api.faults = self.faults
        self.server = DevServer(self.api, bookmark_interval=self.config.bookmark_interval)
        self.controllers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def kafka(self) -> KafkaRuntime:
        """The simulated Kafka clusters (``devcluster.kafka.runtime.KafkaRuntime``): models, clock, controls."""
        from devcluster.kafka.runtime import KafkaRuntime

        return KafkaRuntime.of(self)

    async def start(self) -> None:
        from devcluster import bootstrap

        bootstrap.install_strategies(self.api)
        bootstrap.seed(self.api, self.config)
        self.kafka.install_routes(self.server.app)  # devcluster-only /devcluster/kafka control endpoints
        self._runner = web.AppRunner(self.server.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.config.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        self.server.server_address = f"127.0.0.1:{self.port}"
        if self.config.controllers:
            self.controllers = bootstrap.make_controllers(self)
            for ctl in self.controllers:
                self._tasks.append(asyncio.create_task(self._supervise(ctl), name=type(ctl).__name__))
        if self.config.kubeconfig is not None:
            self.write_kubeconfig(self.config.kubeconfig)
        log.info("devcluster serving on %s", self.url)

    async def _supervise(self, controller: Any) -> None:
        """Run a controller forever; a crash is logged and the controller restarted, like a pod would be."""
        while True:
            try:
                await controller.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller %s crashed; restarting", type(controller).__name__)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        for ctl in self.controllers:
            stop = getattr(ctl, "stop", None)
            if stop is not None:
                with contextlib.suppress(Exception):
                    await stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.api.store.close_subscriptions()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(yaml.safe_dump(kubeconfig_dict(self.url), sort_keys=False))
        os.replace(tmp, path)
        return path


class DevClusterThread:
    """A devcluster on its own event loop in a daemon thread."""

    def __init__(self, config: DevClusterConfig | None = None) -> None:
        self.config = config or DevClusterConfig()
        self.loop = asyncio.new_event_loop()
        self.cluster: DevCluster | None = None
        self._thread = threading.Thread(target=self._run, name="devcluster", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.stuck_tasks: list[str] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.cluster = DevCluster(self.config)
            self.loop.run_until_complete(self.cluster.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self, timeout: float = 30) -> DevClusterThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("devcluster did not start")
        if self._error is not None:
            raise RuntimeError("devcluster failed to start") from self._error
        return self

    @property
    def url(self) -> str:
        assert self.cluster is not None
        return self.cluster.url

    def call(self, fn: Callable[[DevCluster], T | Awaitable[T]], timeout: float = 30) -> T:
        """Run ``fn(cluster)`` on the cluster's loop and return its result (awaiting it if needed)."""
        assert self.cluster is not None
        cluster = self.cluster

        async def runner() -> T:
            result = fn(cluster)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result  # type: ignore[no-any-return]
            return result  # type: ignore[return-value]

        fut: Future[T] = asyncio.run_coroutine_threadsafe(runner(), self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        if self.cluster is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self.cluster.stop(), self.loop).result(15)
            except Exception:
                # A controller that ignores cancellation would hang every test's teardown: say which.
                self.stuck_tasks = [f"{t.get_name()}: {t.get_coro()}" for t in asyncio.all_tasks(self.loop)]
                log.error("devcluster did not stop cleanly; still running: %s", self.stuck_tasks)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
