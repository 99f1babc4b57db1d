"""Assemble the watchers of one process: leader election, then the KafkaCluster and owned-object watchers.

``ballast watch`` / ``ballast operator`` call :func:`run_watchers` with a Kubernetes ``ApiClient`` and a
Temporal ``Client`` (connected with temporalio's pydantic data converter and the tracing interceptor from
``ballast.observability``). Settings come from flags with environment fallbacks (:meth:`WatcherSettings.from_env`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes import client as k8s
from opentelemetry import trace
from temporalio.client import Client

from ballast.messages import DEFAULT_TASK_QUEUE
from ballast.observability import LEADER
from watchers.kafkaclusters import KafkaClusterWatcher
from watchers.leader import LEASE_NAME, LeaderElector, LeaseConfig, default_identity
from watchers.owned import OwnedWatcher

_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _own_namespace(env: Mapping[str, str]) -> str:
    """Where the Lease lives: ``BALLAST_LEASE_NAMESPACE``, else ``POD_NAMESPACE`` (downward API), else the
    in-cluster service account's namespace, else ``default``."""
    for var in ("BALLAST_LEASE_NAMESPACE", "POD_NAMESPACE"):
        if env.get(var):
            return env[var]
    try:
        with open(_SA_NAMESPACE) as fh:
            return fh.read().strip() or "default"
    except OSError:
        return "default"


@dataclass(frozen=True)
class WatcherSettings:
    """``namespaces``: watched namespaces (``None`` = all; ``BALLAST_NAMESPACES``, comma-separated).
    ``task_queue``: where cluster workflows run (``BALLAST_TASK_QUEUE``). ``leader_election``
    (``BALLAST_LEADER_ELECTION``, default on) and the Lease's namespace/name/identity."""

    namespaces: tuple[str, ...] | None = None
    task_queue: str = DEFAULT_TASK_QUEUE
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = LEASE_NAME
    identity: str = field(default_factory=default_identity)
    debounce_seconds: float = 1.0
    watch_timeout_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WatcherSettings:
        env = os.environ if env is None else env
        namespaces = tuple(ns.strip() for ns in (env.get("BALLAST_NAMESPACES") or "").split(",") if ns.strip())
        return cls(
            namespaces=namespaces or None,
            task_queue=env.get("BALLAST_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
            leader_election=(env.get("BALLAST_LEADER_ELECTION") or "true").lower() not in ("0", "false", "no"),
            lease_namespace=_own_namespace(env),
            identity=env.get("BALLAST_IDENTITY") or default_identity(),
        )


class Watchers:
    """The watchers of one process; :meth:`run` until cancelled."""

    def __init__(self, api_client: k8s.ApiClient, temporal: Client, settings: WatcherSettings, *,
                 lease: LeaseConfig | None = None, tracer: trace.Tracer | None = None) -> None:
        self.settings = settings
        self.elector: LeaderElector | None = None
        if settings.leader_election:
            self.elector = LeaderElector(api_client, lease or LeaseConfig(
                namespace=settings.lease_namespace, name=settings.lease_name, identity=settings.identity))
        self._api_client = api_client
        self._temporal = temporal
        self._tracer = tracer
        self.clusters: KafkaClusterWatcher | None = None
        self.owned: OwnedWatcher | None = None

    def may_signal(self) -> bool:
        return self.elector is None or self.elector.is_leader

    async def _watch(self) -> None:
        # Fresh watchers for every term of leadership: the new term lists everything again and signals
        # every cluster once, whatever an earlier term (or another replica) did.
        s = self.settings
        self.clusters = KafkaClusterWatcher(self._api_client, self._temporal, task_queue=s.task_queue,
                                            namespaces=s.namespaces, timeout_seconds=s.watch_timeout_seconds,
                                            may_signal=self.may_signal, tracer=self._tracer)
        self.owned = OwnedWatcher(self._api_client, self._temporal, namespaces=s.namespaces,
                                  debounce=s.debounce_seconds, timeout_seconds=s.watch_timeout_seconds,
                                  may_signal=self.may_signal, is_deleting=self.clusters.is_deleting,
                                  tracer=self._tracer)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.clusters.run())
            tg.create_task(self.owned.run())

    async def run(self) -> None:
        if self.elector is None:
            # The only watcher of its operator: it leads for its whole life, and the gauge says so.
            LEADER.set(1)
            try:
                await self._watch()
            finally:
                LEADER.set(0)
        else:
            await self.elector.run(self._watch)


async def run_watchers(api_client: k8s.ApiClient, temporal: Client, settings: WatcherSettings | None = None) -> None:
    """Run the watchers (with leader election unless disabled) until cancelled."""
    await Watchers(api_client, temporal, settings or WatcherSettings.from_env()).run()
