"""Watch KafkaClusters and signal-with-start one workflow per cluster when a change matters.

What matters (:func:`decide`), compared with what was last signalled for that cluster:

- a new object (or a new uid under the same name), or a new ``metadata.generation`` (spec edits; status
  and label/other-annotation edits do not bump it);
- deletion: ``deletionTimestamp`` appears (the workflow must clean up and remove its finalizer), or the
  object is gone (``DELETED``);
- a change of a manual ``kafka.ballast.dev/*`` annotation (e.g. ``kafka.ballast.dev/roll``), which asks for an
  action without a spec change.

A change that matters becomes ``SpecChanged`` sent with signal-with-start (workflow id
``kafkacluster/<ns>/<name>``, conflict policy USE_EXISTING), so a cluster whose workflow is not running
gets one. A ``DELETED`` object is signalled without start: there is nothing left for a new workflow to do.
Signals carry generation/resourceVersion, so duplicates (a relist, another replica) are harmless; the
per-cluster memo only avoids needless ones. Sends are coalesced per cluster and retried with backoff
when Temporal is unreachable, so the watch never blocks on Temporal.

The watcher never writes to the cluster. Each event is handled in a span whose context travels with
the signal (temporalio's TracingInterceptor puts it in the request headers) and, as a W3C
``traceparent``, in ``SpecChanged.trace_context``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import opentelemetry.context
from kubernetes import client as k8s
from opentelemetry import trace
from opentelemetry.context import Context
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from ballast.messages import (
    DEFAULT_TASK_QUEUE,
    SIGNAL_SPEC_CHANGED,
    KafkaClusterWorkflowInput,
    SpecChanged,
    cluster_workflow_id,
)
from ballast.observability import SIGNALS, inject_trace_context, log_context
from ballast.spec import GROUP, PLURAL, VERSION
from watchers.reflector import Backoff, Obj, ObjectEvent, ObjectKey, Reflector

log = logging.getLogger(__name__)

WORKFLOW_TYPE = "KafkaClusterWorkflow"
ANNOTATION_PREFIX = f"{GROUP}/"
RESOURCE = "kafkaclusters"


@dataclass(frozen=True)
class ClusterState:
    """What a signal told the workflow about one cluster; the memo compares against it."""

    uid: str
    generation: int
    deleting: bool
    annotations: tuple[tuple[str, str], ...]


def ballast_annotations(obj: Obj) -> dict[str, str]:
    """The ``kafka.ballast.dev/*`` annotations: manual requests such as ``kafka.ballast.dev/roll``."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {k: str(v) for k, v in sorted(annotations.items()) if k.startswith(ANNOTATION_PREFIX)}


def state_of(obj: Obj, *, gone: bool = False) -> ClusterState:
    meta = obj.get("metadata") or {}
    return ClusterState(
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        deleting=gone or bool(meta.get("deletionTimestamp")),
        annotations=tuple(ballast_annotations(obj).items()),
    )


@dataclass(frozen=True)
class Decision:
    """Signal ``state`` for this object; ``start`` = signal-with-start (False: plain signal, no start)."""

    state: ClusterState
    start: bool
    reason: str


def decide(event: ObjectEvent, last: ClusterState | None) -> Decision | None:
    """Whether ``event`` is a change that matters given what was last signalled (``None``: nothing yet)."""
    if event.type == "DELETED":
        state = state_of(event.obj, gone=True)
        if last is not None and last.deleting and last.uid == state.uid:
            return None  # the workflow already knows it is being deleted
        return Decision(state, start=False, reason="deleted")
    state = state_of(event.obj)
    if last is None or last.uid != state.uid:
        return Decision(state, start=True, reason="new")
    if state.deleting and not last.deleting:
        return Decision(state, start=True, reason="deleting")
    if state.generation != last.generation:
        return Decision(state, start=True, reason="generation")
    if state.annotations != last.annotations:
        return Decision(state, start=True, reason="annotation")
    return None


@dataclass
class _Pending:
    namespace: str
    name: str
    signal: SpecChanged
    start: bool
    context: Context


class KafkaClusterWatcher:
    """List+watch KafkaClusters (all namespaces, or each of ``namespaces``) and signal their workflows.

    ``may_signal`` is checked before every send: leader election points it at "am I still the leader",
    so a replica that lost its Lease stops signalling even before its tasks are cancelled.
    """

    def __init__(self, api_client: k8s.ApiClient, temporal: Client, *, task_queue: str = DEFAULT_TASK_QUEUE,
                 namespaces: tuple[str, ...] | None = None, timeout_seconds: int = 300,
                 may_signal: Callable[[], bool] | None = None,
                 tracer: trace.Tracer | None = None) -> None:
        self.temporal = temporal
        self.task_queue = task_queue
        self.may_signal = may_signal or (lambda: True)
        self.tracer = tracer or trace.get_tracer(__name__)
        custom = k8s.CustomObjectsApi(api_client)
        if namespaces:
            self.reflectors = [Reflector(RESOURCE, custom.list_namespaced_custom_object, GROUP, VERSION, ns,
                                         PLURAL, timeout_seconds=timeout_seconds) for ns in namespaces]
        else:
            self.reflectors = [Reflector(RESOURCE, custom.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                                         timeout_seconds=timeout_seconds)]
        self._memo: dict[ObjectKey, ClusterState] = {}
        self._pending: dict[ObjectKey, _Pending] = {}
        self._wake = asyncio.Event()
        self._backoff = Backoff(initial=0.2, maximum=10.0)

    def is_deleting(self, namespace: str, name: str) -> bool:
        """Whether the last signal for this cluster said it is being deleted (owned.py mutes drift then)."""
        state = self._memo.get((namespace, name))
        return state is not None and state.deleting

    async def run(self) -> None:
        """Watch and signal until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send_loop())
            for reflector in self.reflectors:
                tg.create_task(reflector.run(self.handle))

    async def handle(self, event: ObjectEvent) -> None:
        """Decide about one event; a change that matters is queued for sending within the event's span."""
        namespace, name = event.key
        decision = decide(event, self._memo.get(event.key))
        if decision is None:
            return
        meta = event.obj.get("metadata") or {}
        workflow_id = cluster_workflow_id(namespace, name)
        attributes: dict[str, Any] = {
            "k8s.namespace.name": namespace, "kafkacluster.name": name, "k8s.event.type": event.type,
            "kafkacluster.generation": decision.state.generation, "ballast.reason": decision.reason,
            "ballast.relisted": event.relisted, "temporalWorkflowID": workflow_id,
        }
        with self.tracer.start_as_current_span(f"KafkaCluster {event.type}", attributes=attributes), \
                log_context(cluster=f"{namespace}/{name}", workflow_id=workflow_id):
            signal = SpecChanged(
                generation=decision.state.generation,
                resource_version=str(meta.get("resourceVersion") or ""),
                deleting=decision.state.deleting,
                annotations=dict(decision.state.annotations),
                uid=decision.state.uid,
                trace_context=inject_trace_context(),
            )
            log.info("KafkaCluster %s/%s: %s (generation %d); signalling %s", namespace, name, decision.reason,
                     signal.generation, workflow_id)
            self._pending[event.key] = _Pending(namespace, name, signal, decision.start,
                                                opentelemetry.context.get_current())
        if event.type == "DELETED":
            self._memo.pop(event.key, None)
        else:
            self._memo[event.key] = decision.state
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            failed = False
            for key in list(self._pending):
                pending = self._pending.pop(key)
                if not self.may_signal():
                    continue  # not the leader (any more): the next leader relists and signals
                if not await self._send(pending):
                    # Requeue unless a newer change for the same cluster arrived meanwhile.
                    self._pending.setdefault(key, pending)
                    failed = True
            if failed:
                self._wake.set()
                await asyncio.sleep(self._backoff.next())
            else:
                self._backoff.reset()

    async def _send(self, p: _Pending) -> bool:
        workflow_id = cluster_workflow_id(p.namespace, p.name)
        token = opentelemetry.context.attach(p.context)
        try:
            with log_context(cluster=f"{p.namespace}/{p.name}", workflow_id=workflow_id):
                try:
                    if p.start:
                        await self.temporal.start_workflow(
                            WORKFLOW_TYPE, KafkaClusterWorkflowInput(namespace=p.namespace, name=p.name),
                            id=workflow_id, task_queue=self.task_queue,
                            start_signal=SIGNAL_SPEC_CHANGED, start_signal_args=[p.signal],
                            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                            static_summary=f"KafkaCluster {p.namespace}/{p.name}")
                    else:
                        await self.temporal.get_workflow_handle(workflow_id).signal(SIGNAL_SPEC_CHANGED,
                                                                                    p.signal)
                except RPCError as err:
                    if not p.start and err.status == RPCStatusCode.NOT_FOUND:
                        SIGNALS.labels(signal=SIGNAL_SPEC_CHANGED, result="not_found").inc()
                        return True  # no workflow to tell that the cluster is gone: fine
                    SIGNALS.labels(signal=SIGNAL_SPEC_CHANGED, result="error").inc()
                    log.warning("signalling %s failed: %s; will retry", workflow_id, err)
                    return False
                except Exception as err:
                    SIGNALS.labels(signal=SIGNAL_SPEC_CHANGED, result="error").inc()
                    log.warning("signalling %s failed: %s: %s; will retry", workflow_id, type(err).__name__,
                                err)
                    return False
                SIGNALS.labels(signal=SIGNAL_SPEC_CHANGED, result="sent").inc()
                return True
        finally:
            opentelemetry.context.detach(token)
