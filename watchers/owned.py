"""Watch what the operator owns and tell the owning cluster's workflow when observed state drifts.

Watched (label ``app.kubernetes.io/managed-by=ballast``): Pods, StatefulSets, Services, ConfigMaps. The
owning cluster comes from the ``kafka.ballast.dev/cluster`` label, else from an ownerReference to a
KafkaCluster. Drift (:func:`drift_reason`):

- Pod: Ready turned False (``PodNotReady``) or True again (``PodReady``), phase turned ``Failed``
  (``PodFailed``), deleted (``PodDeleted``);
- StatefulSet: deleted (``StatefulSetDeleted``), or its spec changed (new generation) while its
  ``kafka.ballast.dev/spec-hash`` annotation did not, i.e. someone edited it by hand
  (``StatefulSetModified``): the operator's own writes always carry a new hash;
- Service / ConfigMap: deleted (``ServiceDeleted`` / ``ConfigMapDeleted``).

First sightings (a new pod, a relist at start-up) are not drift: the workflow observes the whole cluster
whenever it reconciles. ``ObservedChanged`` is sent with a plain signal, never signal-with-start: drift of
a cluster without a running workflow is not a reason to start one, so "workflow not found" is ignored.
Signals are debounced per cluster (``debounce`` seconds after the first change, one signal per changed
object, latest reason wins), so a rolling restart or a cascade delete is a handful of signals, not a
storm; drift of a cluster that is being deleted is not signalled at all.
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
from temporalio.service import RPCError, RPCStatusCode

from ballast.messages import SIGNAL_OBSERVED_CHANGED, ObservedChanged, cluster_workflow_id
from ballast.observability import SIGNALS, inject_trace_context, log_context
from ballast.spec import GROUP, KIND
from watchers.reflector import Backoff, Obj, ObjectEvent, ObjectKey, Reflector

log = logging.getLogger(__name__)

MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=ballast"
CLUSTER_LABEL = f"{GROUP}/cluster"
SPEC_HASH_ANNOTATION = f"{GROUP}/spec-hash"
MAX_ATTEMPTS = 5  # drift signals are hints: give up after this many failed sends (the next drift resends)


def owning_cluster(obj: Obj) -> ObjectKey | None:
    """``(namespace, name)`` of the KafkaCluster that owns ``obj``, if any."""
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    label = (meta.get("labels") or {}).get(CLUSTER_LABEL)
    if label:
        return namespace, str(label)
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return namespace, str(ref.get("name"))
    return None


def _pod_ready(pod: Obj | None) -> bool:
    for cond in ((pod or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _phase(pod: Obj | None) -> str:
    return str(((pod or {}).get("status") or {}).get("phase") or "")


def drift_reason(kind: str, event: ObjectEvent) -> str | None:
    """Why ``event`` on an owned object of ``kind`` is drift the workflow should hear about, or ``None``."""
    if event.type == "DELETED":
        return f"{kind}Deleted"
    old, new = event.old, event.obj
    if old is None:
        return None  # a first sighting is not a change
    if kind == "Pod":
        if _phase(new) == "Failed" and _phase(old) != "Failed":
            return "PodFailed"
        if _pod_ready(old) and not _pod_ready(new):
            return "PodNotReady"
        if not _pod_ready(old) and _pod_ready(new):
            return "PodReady"
        return None
    if kind == "StatefulSet":
        old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
        hand_edit = (old_meta.get("generation") != new_meta.get("generation")
                     and (old_meta.get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
                     == (new_meta.get("annotations") or {}).get(SPEC_HASH_ANNOTATION))
        return "StatefulSetModified" if hand_edit else None
    return None


@dataclass
class _Pending:
    change: ObservedChanged
    context: Context
    attempts: int = 0


class OwnedWatcher:
    """Watch owned objects (all namespaces, or each of ``namespaces``) and signal drift, debounced.

    ``is_deleting(namespace, name)`` (from the KafkaCluster watcher) mutes clusters being deleted;
    ``may_signal`` is the leadership check made before every send.
    """

    KINDS = ("Pod", "StatefulSet", "Service", "ConfigMap")

    def __init__(self, api_client: k8s.ApiClient, temporal: Client, *,
                 namespaces: tuple[str, ...] | None = None, debounce: float = 1.0, timeout_seconds: int = 300,
                 may_signal: Callable[[], bool] | None = None,
                 is_deleting: Callable[[str, str], bool] | None = None,
                 tracer: trace.Tracer | None = None) -> None:
        self.temporal = temporal
        self.debounce = debounce
        self.may_signal = may_signal or (lambda: True)
        self.is_deleting = is_deleting or (lambda _ns, _name: False)
        self.tracer = tracer or trace.get_tracer(__name__)
        core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
        collections: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "Pod": (core.list_pod_for_all_namespaces, core.list_namespaced_pod),
            "StatefulSet": (apps.list_stateful_set_for_all_namespaces, apps.list_namespaced_stateful_set),
            "Service": (core.list_service_for_all_namespaces, core.list_namespaced_service),
            "ConfigMap": (core.list_config_map_for_all_namespaces, core.list_namespaced_config_map),
        }
        self.reflectors: list[tuple[str, Reflector]] = []
        for kind, (all_ns, one_ns) in collections.items():
            resource = kind.lower() + "s"
            if namespaces:
                self.reflectors += [(kind, Reflector(resource, one_ns, ns, label_selector=MANAGED_BY_SELECTOR,
                                                     timeout_seconds=timeout_seconds)) for ns in namespaces]
            else:
                self.reflectors.append((kind, Reflector(resource, all_ns, label_selector=MANAGED_BY_SELECTOR,
                                                        timeout_seconds=timeout_seconds)))
        self._buffers: dict[ObjectKey, dict[tuple[str, str], _Pending]] = {}
        self._timers: dict[ObjectKey, asyncio.Task[None]] = {}
        self._backoff = Backoff(initial=0.5, maximum=10.0)

    async def run(self) -> None:
        """Watch and signal until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                for kind, reflector in self.reflectors:
                    tg.create_task(reflector.run(self._handler(kind)))
        finally:
            for timer in self._timers.values():
                timer.cancel()

    def _handler(self, kind: str) -> Callable[[ObjectEvent], Any]:
        async def handle(event: ObjectEvent) -> None:
            self.handle(kind, event)
        return handle

    def handle(self, kind: str, event: ObjectEvent) -> None:
        """Buffer drift of one object for its cluster's next debounced signal."""
        cluster = owning_cluster(event.obj)
        if cluster is None:
            return
        reason = drift_reason(kind, event)
        if reason is None or self.is_deleting(*cluster):
            return
        namespace, name = event.key
        workflow_id = cluster_workflow_id(*cluster)
        attributes: dict[str, Any] = {"k8s.namespace.name": namespace, "k8s.object.kind": kind,
                                      "k8s.object.name": name, "ballast.reason": reason,
                                      "kafkacluster.name": cluster[1], "temporalWorkflowID": workflow_id}
        with self.tracer.start_as_current_span(f"{kind} {reason}", attributes=attributes), \
                log_context(cluster=f"{cluster[0]}/{cluster[1]}", workflow_id=workflow_id):
            change = ObservedChanged(kind=kind, name=name, reason=reason,
                                     resource_version=str((event.obj.get("metadata") or {}).get("resourceVersion")
                                                          or ""),
                                     trace_context=inject_trace_context())
            log.info("%s %s/%s: %s", kind, namespace, name, reason)
            self._buffers.setdefault(cluster, {})[(kind, name)] = _Pending(change,
                                                                             opentelemetry.context.get_current())
        self._arm(cluster, self.debounce)

    def _arm(self, cluster: ObjectKey, delay: float) -> None:
        if cluster not in self._timers:
            self._timers[cluster] = asyncio.create_task(self._flush_after(cluster, delay))

    async def _flush_after(self, cluster: ObjectKey, delay: float) -> None:
        await asyncio.sleep(delay)
        del self._timers[cluster]
        batch = self._buffers.pop(cluster, {})
        retry: dict[tuple[str, str], _Pending] = {}
        for key, pending in batch.items():
            if not self.may_signal() or self.is_deleting(*cluster):
                break
            if not await self._send(cluster, pending):
                pending.attempts += 1
                if pending.attempts < MAX_ATTEMPTS:
                    retry[key] = pending
        if retry:
            buffer = self._buffers.setdefault(cluster, {})
            for key, pending in retry.items():
                buffer.setdefault(key, pending)  # a newer change of the same object wins
            self._arm(cluster, self._backoff.next())
        else:
            self._backoff.reset()

    async def _send(self, cluster: ObjectKey, pending: _Pending) -> bool:
        workflow_id = cluster_workflow_id(*cluster)
        token = opentelemetry.context.attach(pending.context)
        try:
            await self.temporal.get_workflow_handle(workflow_id).signal(SIGNAL_OBSERVED_CHANGED, pending.change)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                SIGNALS.labels(signal=SIGNAL_OBSERVED_CHANGED, result="not_found").inc()
                return True  # no running workflow for this cluster: nothing to tell
            SIGNALS.labels(signal=SIGNAL_OBSERVED_CHANGED, result="error").inc()
            log.warning("signalling %s to %s failed: %s", pending.change.reason, workflow_id, err)
            return False
        except Exception as err:
            SIGNALS.labels(signal=SIGNAL_OBSERVED_CHANGED, result="error").inc()
            log.warning("signalling %s to %s failed: %s: %s", pending.change.reason, workflow_id,
                        type(err).__name__, err)
            return False
        finally:
            opentelemetry.context.detach(token)
        SIGNALS.labels(signal=SIGNAL_OBSERVED_CHANGED, result="sent").inc()
        return True
