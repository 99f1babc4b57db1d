"""The operator process: a Temporal worker (workflows + activities) and the Kubernetes watchers.

``ballast operator`` runs both in one process; ``ballast worker`` and ``ballast watch`` run one each, so
they can be scaled separately (several watcher replicas elect a leader through a Lease; any number of
workers may poll the task queue). Everything is configured by ``OperatorSettings`` (environment, with
flags on top).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.clients import kube_api_client
from activities.cluster import ClusterActivities
from ballast import messages
from ballast.config import OperatorSettings
from ballast.observability import tracing_interceptor
from watchers.runner import Watchers, WatcherSettings
from workflows.kafkacluster import KafkaClusterWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.roll import RollWorkflow

log = logging.getLogger("ballast.operator")

# A workflow task waits on the sticky queue of the worker that ran the workflow's previous task for at most this
# long, then goes to the task queue (any worker; replaying the history). The SDK's 10 s default holds every
# workflow of a crashed worker that long even when a restarted or second worker polls already; a live worker
# takes its sticky tasks in milliseconds.
STICKY_QUEUE_TIMEOUT = timedelta(seconds=1)

# Search attributes the cluster workflow upserts: registered on start-up when missing, so a fresh Temporal
# server needs no manual step.
SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    messages.SA_CLUSTER_NAME: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    messages.SA_CLUSTER_NAMESPACE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    messages.SA_CLUSTER_PHASE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


def _tls(settings: OperatorSettings) -> TLSConfig | bool:
    tls = settings.temporal_tls
    if not tls.enabled:
        return False

    def read(path: str | None) -> bytes | None:
        if path is None:
            return None
        with open(path, "rb") as fh:
            return fh.read()

    return TLSConfig(server_root_ca_cert=read(tls.ca_path), client_cert=read(tls.cert_path),
                     client_private_key=read(tls.key_path), domain=tls.server_name)


async def connect_temporal(settings: OperatorSettings, runtime: Runtime | None = None) -> Client:
    """A client with the pydantic data converter and tracing, for the configured server and namespace."""
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                tls=_tls(settings), data_converter=pydantic_data_converter,
                                interceptors=[tracing_interceptor()], runtime=runtime)


async def ensure_search_attributes(temporal: Client, namespace: str) -> list[str]:
    """Register the cluster workflow's search attributes that the server does not know yet."""
    existing = await temporal.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {name: kind for name, kind in SEARCH_ATTRIBUTES.items() if name not in known}
    if missing:
        await temporal.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
        log.info("registered search attributes %s", sorted(missing))
    return sorted(missing)


def build_worker(temporal: Client, settings: OperatorSettings, activities: ClusterActivities,
                 executor: ThreadPoolExecutor) -> Worker:
    # The activities use the synchronous kubernetes and kafka-python clients: they run on a thread pool.
    return Worker(temporal, task_queue=settings.task_queue, workflows=[KafkaClusterWorkflow, RollWorkflow, RebalanceWorkflow],
                  activities=activities.all(), activity_executor=executor,
                  max_concurrent_activities=executor._max_workers,
                  sticky_queue_schedule_to_start_timeout=STICKY_QUEUE_TIMEOUT)


def watcher_settings(settings: OperatorSettings, **overrides: Any) -> WatcherSettings:
    base = WatcherSettings.from_env()
    fields: dict[str, Any] = {"namespaces": settings.namespaces or None, "task_queue": settings.task_queue,
                              "leader_election": base.leader_election, "lease_namespace": base.lease_namespace,
                              "identity": base.identity}
    fields.update(overrides)
    return WatcherSettings(**fields)


async def run(settings: OperatorSettings, *, worker: bool = True, watch: bool = True,
              runtime: Runtime | None = None, ready: asyncio.Event | None = None,
              watcher_overrides: dict[str, Any] | None = None) -> None:
    """Run the chosen parts until cancelled."""
    temporal = await connect_temporal(settings, runtime)
    tasks: list[asyncio.Task[Any]] = []
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="activity") as executor:
        api_client = kube_api_client(settings)
        try:
            if worker:
                await ensure_search_attributes(temporal, settings.temporal_namespace)
                activities = ClusterActivities.from_settings(settings)
                tasks.append(asyncio.create_task(build_worker(temporal, settings, activities, executor).run(),
                                                 name="worker"))
            if watch:
                watchers = Watchers(api_client, temporal, watcher_settings(settings, **(watcher_overrides or {})))
                tasks.append(asyncio.create_task(watchers.run(), name="watchers"))
            if ready is not None:
                ready.set()
            log.info("operator running (worker=%s, watchers=%s, task queue %s, temporal %s)", worker, watch,
                     settings.task_queue, settings.temporal_address)
            await _wait_first_failure(tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            api_client.close()  # type: ignore[no-untyped-call]


async def _wait_first_failure(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Return when any part stops; re-raise its error (a part never stops on its own otherwise)."""
    if not tasks:
        return
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
