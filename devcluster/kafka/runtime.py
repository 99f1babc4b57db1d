"""devcluster's Kafka runtime: the per-devcluster home of the simulated Kafka clusters.

``KafkaRuntime.of(cluster)`` (also ``DevCluster.kafka``) holds

- the :class:`~devcluster.kafka.model.ClusterDirectory` of cluster models keyed by cluster id (the one
  :func:`devcluster.kafka.directory_for` returns) and its shared :class:`~devcluster.kafka.simclock.SimClock`;
- the node-id claims of running processes (one live process per node id and cluster);
- a ticker (its ``run()``, supervised like a controller) that advances every model to the clock's time,
  sleeping until the next scheduled event (at most ``TICK_MAX_SLEEP_S``); models also advance on every read,
  so the ticker only makes history appear without readers;
- the kubelet hook: ``run()`` installs :func:`devcluster.kafka.process.make_factory` into the kubelet;
- the control surface for tests and the demo, which the operator never sees: :meth:`control` (Python) and the
  devcluster-only HTTP endpoints ``GET /devcluster/kafka`` (status) and ``POST /devcluster/kafka/<action>``
  with a JSON body, used by ``ballast devcluster kafka ...``. Actions and their parameters:

  ========================  =========================================================================
  ``speed``                 ``speed``: simulated seconds per wall second (every cluster of the devcluster)
  ``load``                  ``topic``, ``bytes_per_sec`` (number or ``"20MiB"``): producers' ingest rate
  ``skew``                  ``topic`` and ``weights`` (``{partition: share}``) and/or ``partition`` +
                            ``add_bytes``: make partitions grow unevenly / inflate one at once
  ``slow-broker``           ``node_id``, ``factor``: the broker catches up at ``factor`` x the normal
                            replication rate (0.1 = ten times slower; 1 restores it)
  ``replication-rate``      ``bytes_per_sec``: every follower broker's catch-up bandwidth
  ``fail-disk``             ``node_id``, optional ``path`` (required if the broker has several log dirs)
  ``restore-disk``          ``node_id``, optional ``path``, ``wiped`` (a new, empty disk)
  ``status``                a JSON summary of each cluster
  ========================  =========================================================================

  Every action but ``speed`` takes ``cluster`` (a cluster id); it may be omitted when the devcluster runs
  exactly one Kafka cluster. Errors are HTTP 400 ``{"error": "..."}`` (``ValueError`` in Python).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devcluster.kafka import directory_for
from devcluster.kafka.control import KafkaControl, parse_bytes
from devcluster.kafka.errors import KafkaError
from devcluster.kafka.handlers import default_registry
from devcluster.kafka.model import ClusterDirectory, KafkaClusterModel
from devcluster.kafka.simclock import SimClock

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster
    from devcluster.kafka.process import SimKafkaProcess

log = logging.getLogger("devcluster.kafka")

HTTP_PREFIX = "/devcluster/kafka"
TICK_MAX_SLEEP_S = 1.0
_ATTR = "_kafka_runtime"


class KafkaRuntime:
    """See the module docstring. One per DevCluster: ``KafkaRuntime.of(cluster)``."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.api = cluster.api
        self.directory: ClusterDirectory = directory_for(cluster)
        self.registry = default_registry()
        self._claims: dict[tuple[str, int], SimKafkaProcess] = {}
        self._installed = False
        self._actions: dict[str, Callable[..., Any]] = {
            "speed": self._speed, "load": self._load, "skew": self._skew, "slow-broker": self._slow_broker,
            "replication-rate": self._replication_rate, "fail-disk": self._fail_disk,
            "restore-disk": self._restore_disk, "status": self._status,
        }

    @classmethod
    def of(cls, cluster: DevCluster) -> KafkaRuntime:
        runtime = getattr(cluster, _ATTR, None)
        if runtime is None:
            runtime = cls(cluster)
            setattr(cluster, _ATTR, runtime)
        return runtime

    @property
    def clock(self) -> SimClock:
        return self.directory.clock

    # -- controller protocol ------------------------------------------------------------------------
    async def run(self) -> None:
        self.install_process_factory()
        await self.directory.run(max_sleep_s=TICK_MAX_SLEEP_S)

    async def stop(self) -> None:
        """Nothing to release: the kubelet stops the processes when the devcluster stops."""

    def install_process_factory(self) -> None:
        if self._installed:
            return
        from devcluster.controllers.kubelet import Kubelet
        from devcluster.kafka.process import make_factory

        with contextlib.suppress(LookupError):  # no kubelet when controllers are disabled
            Kubelet.of(self.cluster).process_factories.append(make_factory(self))
            self._installed = True

    # -- node-id claims -----------------------------------------------------------------------------
    def claim(self, key: tuple[str, int], process: SimKafkaProcess) -> bool:
        holder = self._claims.get(key)
        if holder is None or holder is process:
            self._claims[key] = process
            return True
        return False

    def release(self, key: tuple[str, int], process: SimKafkaProcess) -> None:
        if self._claims.get(key) is process:
            del self._claims[key]

    def processes(self) -> list[SimKafkaProcess]:
        """Processes holding a node id, by cluster id and node id."""
        return [self._claims[k] for k in sorted(self._claims)]

    # -- models -------------------------------------------------------------------------------------
    def models(self) -> list[KafkaClusterModel]:
        return self.directory.models()

    def model(self, cluster: str | None = None) -> KafkaClusterModel:
        """The model of ``cluster``; without an id, the only one (ValueError if there are none or several)."""
        if cluster is not None:
            model = self.directory.get(cluster)
            if model is None:
                known = ", ".join(m.cluster_id for m in self.models()) or "none"
                raise ValueError(f"no simulated Kafka cluster {cluster!r} (running: {known})")
            return model
        models = self.models()
        if len(models) != 1:
            known = ", ".join(m.cluster_id for m in models) or "none"
            raise ValueError(f"name the Kafka cluster (cluster=...); running: {known}")
        return models[0]

    def controls(self, cluster: str | None = None) -> KafkaControl:
        """The object-style control surface of one cluster (see :mod:`devcluster.kafka.control`)."""
        return KafkaControl(self.model(cluster))

    # -- actions ------------------------------------------------------------------------------------
    def control(self, action: str, **params: Any) -> dict[str, Any]:
        """Run a control action (table in the module docstring); returns a JSON-friendly result.

        Call on the devcluster's loop (``DevClusterThread.call(lambda c: c.kafka.control(...))``).
        Raises ValueError for unknown actions, missing/invalid parameters and model refusals.
        """
        handler = self._actions.get(action)
        if handler is None:
            raise ValueError(f"unknown action {action!r}; choose one of {', '.join(sorted(self._actions))}")
        try:
            result = handler(**params)
        except TypeError as err:
            raise ValueError(f"{action}: {err}") from None
        except KafkaError as err:
            raise ValueError(f"{action}: {err.message or err.code.name}") from None
        except KeyError as err:
            raise ValueError(f"{action}: {err.args[0] if err.args else err}") from None
        return result if isinstance(result, dict) else {"ok": True}

    def _speed(self, speed: float) -> dict[str, Any]:
        value = float(speed)
        if value < 0 or not math.isfinite(value):
            raise ValueError("speed must be a finite number >= 0")
        self.directory.advance()  # rates so far apply up to now
        self.clock.set_speed(value)
        return {"speed": self.clock.speed}

    def _load(self, topic: str, bytes_per_sec: str | float, cluster: str | None = None) -> dict[str, Any]:
        control = self.controls(cluster)
        control.set_ingest_rate(topic, bytes_per_sec)
        return {"topic": topic, "bytes_per_sec": control.model.ingest_rate(topic)}

    def _skew(self, topic: str, weights: dict[Any, float] | None = None, partition: int | None = None,
              add_bytes: str | float | None = None, cluster: str | None = None) -> dict[str, Any]:
        control = self.controls(cluster)
        if weights is None and add_bytes is None:
            raise ValueError("skew needs weights and/or partition + add_bytes")
        if weights is not None:
            control.skew(topic, {int(k): float(v) for k, v in weights.items()})
        if add_bytes is not None:
            if partition is None:
                raise ValueError("add_bytes needs a partition")
            control.inflate(topic, int(partition), add_bytes)
        return {"topic": topic, "sizes": control.partition_sizes(topic)}

    def _slow_broker(self, node_id: int, factor: float, cluster: str | None = None) -> dict[str, Any]:
        value = float(factor)
        if value <= 0 or not math.isfinite(value):
            raise ValueError("factor must be a finite number > 0 (0.1 = ten times slower)")
        model = self.model(cluster)
        if model.broker(int(node_id)) is None:
            raise ValueError(f"node {node_id} is not a broker of cluster {model.cluster_id}")
        self.controls(cluster).slow_broker(int(node_id), 1.0 / value)
        return {"node_id": int(node_id), "factor": value}

    def _replication_rate(self, bytes_per_sec: str | float, cluster: str | None = None) -> dict[str, Any]:
        self.controls(cluster).set_replication_rate(bytes_per_sec)
        return {"bytes_per_sec": parse_bytes(bytes_per_sec)}

    def _disk_path(self, model: KafkaClusterModel, node_id: int, path: str | None) -> str:
        node = model.broker(node_id)
        if node is None:
            raise ValueError(f"node {node_id} is not a broker of cluster {model.cluster_id}")
        paths = [d.path for d in node.log_dirs]
        if path is None:
            if len(paths) != 1:
                raise ValueError(f"broker {node_id} has log dirs {paths}: name one with path")
            return paths[0]
        if path not in paths:
            raise ValueError(f"broker {node_id} has no log dir {path!r} (it has {paths})")
        return path

    def _fail_disk(self, node_id: int, path: str | None = None, cluster: str | None = None) -> dict[str, Any]:
        model = self.model(cluster)
        target = self._disk_path(model, int(node_id), path)
        model.fail_log_dir(int(node_id), target)
        return {"node_id": int(node_id), "path": target, "failed": True}

    def _restore_disk(self, node_id: int, path: str | None = None, wiped: bool = False,
                      cluster: str | None = None) -> dict[str, Any]:
        model = self.model(cluster)
        target = self._disk_path(model, int(node_id), path)
        model.restore_log_dir(int(node_id), target, wiped=bool(wiped))
        return {"node_id": int(node_id), "path": target, "failed": False}

    def _status(self, cluster: str | None = None) -> dict[str, Any]:
        models = [self.model(cluster)] if cluster is not None else self.models()
        return {"speed": self.clock.speed, "clusters": [KafkaControl(m).status() for m in models]}

    # -- HTTP ---------------------------------------------------------------------------------------
    def install_routes(self, app: web.Application) -> None:
        """Add the devcluster-only control endpoints (call before the app starts)."""
        app.router.add_get(HTTP_PREFIX, self._http_status)
        app.router.add_post(HTTP_PREFIX + "/{action}", self._http_action)

    async def _http_status(self, request: web.Request) -> web.Response:
        return self._http(lambda: self.control("status", **dict(request.query)))

    async def _http_action(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        action = request.match_info["action"]
        return self._http(lambda: self.control(action, **body))

    @staticmethod
    def _http(fn: Callable[[], dict[str, Any]]) -> web.Response:
        try:
            return web.json_response(fn())
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=400)
