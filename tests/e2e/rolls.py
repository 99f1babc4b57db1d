"""What a rolling restart did, as devcluster and its simulated Kafka saw it: shared by the end-to-end roll
tests and the roll benchmarks (``bench/roll_bench.py``, ``bench/roll_chaos.py``).

:class:`PodTimeline` is a listener on devcluster's store: every write to one KafkaCluster's pods becomes a
:class:`PodEvent` (created / ready / unready / deleting / deleted, with the wall time of the commit and the
simulated cluster's active controller at that moment). From it come the roll's invariants: which pods were
deleted and how often, in which order, and how many pods of a role were unavailable at once. The ISR side
(no partition below min.insync.replicas) comes from the Kafka model's own history. :class:`RollMonitor` follows
a running roll from Temporal's side (how far its history got, which activities it has in flight), for chaos
tests that kill the operator at moments spread over the roll.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient
from kubernetes import client
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client
from temporalio.service import RPCError

from activities import clients
from ballast.config import KafkaAddressing
from ballast.spec import GROUP, PLURAL, VERSION
from devcluster.cluster import DevClusterThread

REVISION_LABEL = "controller-revision-hash"


@dataclass(frozen=True)
class PodEvent:
    t: float
    pod: str
    uid: str
    what: str  # created | ready | unready | deleting | deleted
    active_controller: int = -1


@dataclass
class _PodState:
    uid: str
    ready: bool = False
    deleting: bool = False


@dataclass
class PodTimeline:
    """Install with :meth:`install` before creating the cluster; set ``cluster_id`` once it is known (the
    simulated cluster's model is looked up by it to record who led the quorum when a pod was deleted)."""

    name: str
    namespace: str = "default"
    cluster_id: str = ""
    events: list[PodEvent] = field(default_factory=list)
    _pods: dict[str, _PodState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runtime: Any = None

    def install(self, dc: DevClusterThread) -> PodTimeline:
        """Start recording (before the cluster's pods exist, so every pod's whole life is seen)."""

        def add(cluster: Any) -> None:
            self._runtime = cluster.kafka
            cluster.api.store.listeners.append(self._on_event)

        dc.call(add)
        return self

    # -- recording (devcluster's loop) -------------------------------------------------------------------

    def _active_controller(self) -> int:
        try:
            model = self._runtime.directory.get(self.cluster_id) if self._runtime is not None else None
            return int(model.active_controller_id()) if model is not None else -1
        except Exception:  # the model may be mid-update; the moment is recorded without it
            return -1

    def _on_event(self, event: Any) -> None:
        if event.key != "/pods":
            return
        meta = event.obj["metadata"]
        if meta.get("namespace") != self.namespace or \
                (meta.get("labels") or {}).get("app.kubernetes.io/instance") != self.name:
            return
        now = time.time()
        name, uid = meta["name"], meta["uid"]
        out: list[str] = []
        with self._lock:
            state = self._pods.get(name)
            if state is None or state.uid != uid:
                if state is not None and not state.deleting:
                    out.append("deleted")  # the old pod went without a graceful deletion we saw
                state = self._pods[name] = _PodState(uid=uid)
                out.append("created")
            if event.type == "DELETED":
                if not state.deleting:
                    out.append("deleting")
                out.append("deleted")
                del self._pods[name]
            else:
                deleting = bool(meta.get("deletionTimestamp"))
                if deleting and not state.deleting:
                    state.deleting = True
                    out.append("deleting")
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (event.obj.get("status") or {}).get("conditions") or [])
                if ready != state.ready:
                    state.ready = ready
                    out.append("ready" if ready else "unready")
            active = self._active_controller() if "deleting" in out else -1
            self.events.extend(PodEvent(now, name, uid, what, active) for what in out)

    # -- questions (any thread) -----------------------------------------------------------------------------

    def snapshot(self) -> list[PodEvent]:
        with self._lock:
            return list(self.events)

    def deletions(self, since: float = 0.0, until: float = float("inf")) -> list[PodEvent]:
        """Each pod deletion (the moment it began) in the window, in order."""
        return [e for e in self.snapshot() if e.what == "deleting" and since <= e.t <= until]

    def max_unavailable(self, pods: Iterable[str], since: float = 0.0, until: float = float("inf")) -> int:
        """The most of ``pods`` that were at once missing, not Ready or being deleted, within the window."""
        wanted = set(pods)
        state: dict[str, tuple[bool, bool]] = {}  # pod -> (ready, deleting); absent = missing
        worst = 0

        def unavailable() -> int:
            return sum(1 for p in wanted if p not in state or not state[p][0] or state[p][1])

        for e in self.snapshot():
            if e.pod not in wanted:
                continue
            ready, deleting = state.get(e.pod, (False, False))
            if e.what == "created":
                state[e.pod] = (False, False)
            elif e.what == "ready":
                state[e.pod] = (True, deleting)
            elif e.what == "unready":
                state[e.pod] = (False, deleting)
            elif e.what == "deleting":
                state[e.pod] = (ready, True)
            elif e.what == "deleted":
                state.pop(e.pod, None)
            if since <= e.t <= until:
                worst = max(worst, unavailable())
        return worst


def kafka_admin(core: client.CoreV1Api, name: str, namespace: str = "default", port: int = 9092) -> KafkaAdminClient:
    address = clients.service_address(core, namespace, f"{name}-kafka-bootstrap", port, KafkaAddressing.DEVCLUSTER)
    return clients.kafka_admin_client(address, 5.0)


@contextlib.contextmanager
def kafka_admin_of(core: client.CoreV1Api, name: str, namespace: str = "default") -> Iterator[KafkaAdminClient]:
    """A fresh admin client for one question. Not one kept across restarts: a restarted simulated broker listens
    on a new loopback port, and kafka-python fails a request sent to a broker's old address instead of trying
    another (a real broker's DNS name survives its restart)."""
    admin = kafka_admin(core, name, namespace)
    try:
        yield admin
    finally:
        admin.close()


def under_replicated(core: client.CoreV1Api, name: str, namespace: str = "default") -> list[str]:
    """Partitions whose ISR is not their full replica set (URP), as ``topic-partition``."""
    with kafka_admin_of(core, name, namespace) as admin:
        return sorted(f"{t['name']}-{p['partition_index']}" for t in admin.describe_topics()
                      for p in t["partitions"] if set(p["isr_nodes"]) != set(p["replica_nodes"]))


def min_isr_violations(dc: DevClusterThread, cluster_id: str, since: float = 0.0) -> list[Any]:
    """The Kafka model's ISR history entries that left a partition below its min.insync.replicas."""
    return dc.call(lambda c: [v for v in c.kafka.model(cluster_id).min_isr_violations() if v.time >= since])


def kafka_control(dc: DevClusterThread, cluster_id: str, action: str, **params: Any) -> dict[str, Any]:
    return dc.call(lambda c: c.kafka.control(action, cluster=cluster_id, **params))


def kafka_cluster(custom: client.CustomObjectsApi, name: str, namespace: str = "default") -> dict[str, Any]:
    got: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return got


def pods_rolled(core: client.CoreV1Api, apps: client.AppsV1Api, name: str, old_uids: dict[str, str],
                namespace: str = "default") -> Callable[[], bool]:
    """A predicate: every pod in ``old_uids`` was replaced, is Ready and runs its StatefulSet's update
    revision."""

    def check() -> bool:
        revisions = {s.metadata.name: s.status.update_revision
                     for s in apps.list_namespaced_stateful_set(namespace).items}
        pods = {p.metadata.name: p for p in core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={name}").items}
        for pod_name, old in old_uids.items():
            pod = pods.get(pod_name)
            if pod is None or pod.metadata.uid == old or pod.metadata.deletion_timestamp is not None:
                return False
            if not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                return False
            owner = pod_name.rsplit("-", 1)[0]
            if pod.metadata.labels.get(REVISION_LABEL) != revisions.get(owner):
                return False
        return True

    return check


def pod_uids(core: client.CoreV1Api, name: str, namespace: str = "default") -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={name}").items}


def once_each(deletions: list[PodEvent]) -> Counter[str]:
    return Counter(e.pod for e in deletions)


@dataclass
class RollMonitor:
    """A KafkaCluster's running roll as seen from outside the operator: :meth:`progress` counts the pod events
    ``timeline`` recorded plus the events in the roll workflow's history (every activity, timer, signal and
    workflow task adds some), so it grows whenever the roll does anything; :meth:`in_flight` names the
    activities the roll workflow has started and not finished (as Temporal describes it)."""

    custom: client.CustomObjectsApi
    timeline: PodTimeline
    temporal_address: str
    workflow_id: str = ""
    # One loop and one client for every question: a client per call (hundreds while a test polls) piles up
    # connections in the process-wide Temporal runtime that later tests share.
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop, repr=False)
    _client: Client | None = field(default=None, repr=False)

    def close(self) -> None:
        self._client = None
        self._loop.close()

    def __enter__(self) -> RollMonitor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _workflow(self) -> str:
        if not self.workflow_id:
            status = kafka_cluster(self.custom, self.timeline.name, self.timeline.namespace).get("status") or {}
            found = str((status.get("currentOperation") or {}).get("workflowId") or "")
            self.workflow_id = found if found.startswith("roll/") else ""
        return self.workflow_id

    def _describe(self) -> tuple[int, list[str], bool]:
        """(history length, pending activity types, running); (0, [], False) before the workflow is known."""
        workflow_id = self._workflow()
        if not workflow_id:
            return 0, [], False

        async def describe() -> tuple[int, list[str], bool]:
            if self._client is None:
                self._client = await Client.connect(self.temporal_address)
            try:
                raw = (await self._client.get_workflow_handle(workflow_id).describe()).raw_description
            except RPCError:
                return 0, [], False
            info = raw.workflow_execution_info
            return (int(info.history_length), sorted(a.activity_type.name for a in raw.pending_activities),
                    info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING)

        return self._loop.run_until_complete(describe())

    def progress(self) -> int:
        return len(self.timeline.snapshot()) + self._describe()[0]

    def in_flight(self) -> list[str]:
        return self._describe()[1]

    def running(self) -> bool:
        """The roll workflow is known and has not ended."""
        return self._describe()[2]
