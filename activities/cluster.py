"""The activities of the per-cluster workflow: every side effect on Kubernetes and every question to Kafka.

``ClusterActivities`` holds the clients (one Kubernetes ``ApiClient`` per worker) and exposes each activity
as a method, registered under the names of :mod:`activities.contracts`::

    acts = ClusterActivities.from_settings(OperatorSettings.from_env())
    Worker(client, task_queue=..., activities=acts.all(),
           activity_executor=ThreadPoolExecutor(max_workers=16), ...)

The activities are **synchronous** (plain ``def``) because both clients block (the official ``kubernetes``
client and kafka-python); Temporal runs them in the worker's ``activity_executor`` thread pool, so a slow API
call never stalls the worker's event loop. The wait activities sleep with
``activity.wait_for_cancelled_sync`` so a cancellation ends them promptly.

Every activity is idempotent: creating what exists is skipped (compared by spec-hash), deleting what is
gone is success, status and finalizer writes are read-modify-write with the resourceVersion as precondition
(409 -> re-read and retry). See :mod:`activities.kube` for how errors are classified.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import clients
from activities.clients import KafkaUnreachable, QuorumInfo
from activities.contracts import (
    APPLY_MANIFESTS,
    CLEANUP_CLUSTER,
    ENSURE_FINALIZER,
    OBSERVE_CLUSTER,
    RECORD_EVENT,
    REMOVE_FINALIZER,
    UPDATE_STATUS,
    WAIT_BROKERS_REGISTERED,
    WAIT_CONTROLLERS_READY,
    ApplyManifestsInput,
    ApplyManifestsResult,
    CleanupInput,
    Component,
    EventInput,
    StatusUpdate,
    WaitInput,
    WaitResult,
)
from activities.kube import (
    CONFLICT_RETRIES,
    INVALID_MANIFEST,
    JSON,
    OWNERSHIP_CONFLICT,
    KindApi,
    api_message,
    kind_apis,
    load,
    retryable,
    write_error,
)
from activities.rebalance import RebalanceActivities
from activities.roll import REVISION_LABEL, RollActivities
from activities.scale_in import ScaleInActivities
from activities.volumes import VolumeActivities
from ballast.config import OperatorSettings
from ballast.manifests import (
    CONFIG_HASH_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    RenderInput,
    Role,
    broker_selector,
    cluster_selector,
    node_id_for_pod,
    render_cluster,
)
from ballast.manifests.inputs import CLUSTER_ID_PATTERN
from ballast.manifests.labels import COMPONENT_LABEL, selector_string
from ballast.manifests.names import (
    CONTROLLER_PORT,
    POD_INDEX_LABEL,
    bootstrap_service_name,
    broker_pod_names,
    controller_pod_names,
    headless_service_name,
    node_ids,
    statefulset_name,
)
from ballast.messages import ClusterRef
from ballast.observability import record_reconcile_outcome
from ballast.observed import KafkaState, ObjectState, ObservedCluster, PodState, StatefulSetState
from ballast.planner import FINALIZER
from ballast.spec import GROUP, KIND, PLURAL, VERSION, KafkaClusterSpec, quantity_bytes
from ballast.status import Condition, LastOperation, OperationStatus, RebalanceStatus, set_condition

COMPONENT = "ballast-operator"
# An identical Event (same object, type, reason, message, source) seen this recently is counted again
# instead of being created anew, like client-go's EventCorrelator (its aggregation interval is 10 minutes).
EVENT_AGGREGATION_WINDOW = dt.timedelta(minutes=10)
# Names never depend on the cluster id, so observing a cluster whose id is not generated yet renders with this.
_PLACEHOLDER_CLUSTER_ID = "A" * 22
_ROLE_OF: dict[Component, Role] = {"controllers": Role.CONTROLLER, "brokers": Role.BROKER}
# A StatefulSet whose volumeClaimTemplates change is deleted orphaning its pods and created anew; this bounds
# the wait for the garbage collector to release the pods (drop their ownerReferences) and let the old one go.
ORPHAN_DELETE_TIMEOUT_SECONDS = 60.0
ORPHAN_DELETE_POLL_SECONDS = 0.1


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _timestamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _invalid_spec(err: ValidationError, where: str) -> ApplicationError:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    return ApplicationError(f"{where}.{path}: {first['msg']}" if path else f"{where}: {first['msg']}",
                            type=INVALID_MANIFEST, non_retryable=True)


def _parse_spec(spec: dict[str, Any]) -> KafkaClusterSpec:
    try:
        return KafkaClusterSpec.model_validate(spec)
    except ValidationError as err:
        raise _invalid_spec(err, "spec") from err


def _is_owned(obj: JSON, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def _pod_state(pod: JSON, cluster: str, rack_label: str = "") -> PodState:
    """The pod as the planners see it; ``rack_label`` is the brokers' rackAwareness topologyKey (the pod carries
    its node's topology labels, so the rack is the pod's own label)."""
    meta = pod["metadata"]
    status = pod.get("status") or {}
    index = (meta.get("labels") or {}).get(POD_INDEX_LABEL)
    node_id = int(index) if isinstance(index, str) and index.isdigit() else node_id_for_pod(cluster, meta["name"])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    waiting = ""
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            waiting = str(reason)
            break
    return PodState(
        name=meta["name"],
        node_id=node_id if node_id is not None else -1,
        ready=ready,
        phase=str(status.get("phase") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        uid=str(meta.get("uid") or ""),
        config_hash=str((meta.get("annotations") or {}).get(CONFIG_HASH_ANNOTATION) or ""),
        waiting_reason=waiting,
        revision=str((meta.get("labels") or {}).get(REVISION_LABEL) or ""),
        unschedulable=any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                          and c.get("reason") == "Unschedulable" for c in status.get("conditions") or []),
        rack=str((meta.get("labels") or {}).get(rack_label) or "") if rack_label else "",
    )


def _statefulset_state(name: str, sts: JSON | None) -> StatefulSetState:
    if sts is None:
        return StatefulSetState(name=name, exists=False)
    status = sts.get("status") or {}
    return StatefulSetState(
        name=name,
        exists=True,
        replicas=int((sts.get("spec") or {}).get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        generation=int(sts["metadata"].get("generation") or 0),
        update_revision=str(status.get("updateRevision") or ""),
        current_revision=str(status.get("currentRevision") or ""),
    )


def _merge_for_update(live: JSON, desired: JSON) -> JSON:
    """The body that replaces ``live`` with ``desired``, keeping what others legitimately added.

    The desired content wins; labels and annotations set by others (tools, admission) are kept, as are
    finalizers, non-controller ownerReferences and a Service's allocated cluster IPs.
    """
    body = copy.deepcopy(desired)
    meta = body["metadata"]
    live_meta = live["metadata"]
    meta["resourceVersion"] = live_meta["resourceVersion"]
    for key in ("labels", "annotations"):
        merged = {**(live_meta.get(key) or {}), **(meta.get(key) or {})}
        if merged:
            meta[key] = merged
    ours = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
    others = [ref for ref in live_meta.get("ownerReferences") or []
              if ref.get("uid") not in ours and not ref.get("controller")]
    if others:
        meta["ownerReferences"] = [*(meta.get("ownerReferences") or []), *others]
    if live_meta.get("finalizers"):
        meta["finalizers"] = live_meta["finalizers"]
    if body.get("kind") == "Service":
        spec, live_spec = body.setdefault("spec", {}), live.get("spec") or {}
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key not in spec and key in live_spec:
                spec[key] = live_spec[key]
    return body


def _claim_template_key(template: JSON) -> tuple[Any, ...]:
    """What of a volumeClaimTemplate matters when comparing the live one with the desired one: the API server
    fills in defaults (``volumeMode``, ``status``, ``apiVersion``/``kind``) and may print a quantity
    differently (``1024Mi`` for ``1Gi``), neither of which is a difference."""
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    storage = str((((spec.get("resources") or {}).get("requests")) or {}).get("storage") or "")
    try:
        size: int | str = quantity_bytes(storage)
    except ValueError:
        size = storage
    return (meta.get("name"), sorted((meta.get("labels") or {}).items()),
            sorted((meta.get("annotations") or {}).items()), sorted(spec.get("accessModes") or []),
            spec.get("storageClassName") or None, spec.get("volumeMode") or "Filesystem", size)


def _claim_templates_differ(live: JSON, desired: JSON) -> bool:
    def keys(sts: JSON) -> list[tuple[Any, ...]]:
        return sorted((_claim_template_key(t) for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or []),
                      key=repr)

    return keys(live) != keys(desired)


def _kafka_port(spec: KafkaClusterSpec) -> int:
    """The client port the operator speaks on: the first listener (the inter-broker one)."""
    return spec.listeners[0].port


class ClusterActivities(RollActivities, RebalanceActivities, ScaleInActivities, VolumeActivities):
    """Activities for ``KafkaCluster`` objects, bound to one Kubernetes API client and the operator settings
    (the rolling-restart, rebalance, scale-in and volume ones come from the mixins of :mod:`activities.roll`,
    :mod:`activities.rebalance`, :mod:`activities.scale_in` and :mod:`activities.volumes`)."""

    def __init__(self, api_client: k8s.ApiClient, settings: OperatorSettings,
                 reporting_instance: str | None = None) -> None:
        self.api_client = api_client
        self.settings = settings
        self.core = k8s.CoreV1Api(api_client)
        self.custom = k8s.CustomObjectsApi(api_client)
        self.kinds = kind_apis(api_client)
        self.reporting_instance = reporting_instance or socket.gethostname()

    @classmethod
    def from_settings(cls, settings: OperatorSettings) -> ClusterActivities:
        return cls(clients.kube_api_client(settings), settings)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for ``Worker(activities=...)``."""
        return [self.observe_cluster, self.ensure_finalizer, self.remove_finalizer, self.apply_manifests,
                self.wait_controllers_ready, self.wait_brokers_registered, self.update_status,
                self.record_event, self.cleanup_cluster, *self.roll_activities(),
                *self.rebalance_activities(), *self.scale_in_activities(), *self.volume_activities()]

    # -- KafkaCluster access -------------------------------------------------------------------------------

    def _get_cluster(self, ref: ClusterRef) -> JSON | None:
        try:
            return load(self.custom.get_namespaced_custom_object(GROUP, VERSION, ref.namespace, PLURAL, ref.name,
                                                                 _preload_content=False))
        except ApiException as err:
            if err.status == 404:
                return None
            raise retryable(err, f"{KIND}/{ref.name}") from err

    def _kind(self, kind: str) -> KindApi:
        api = self.kinds.get(kind)
        if api is None:
            raise ApplicationError(f"{kind}: the operator has no API for this kind", type=INVALID_MANIFEST,
                                   non_retryable=True)
        return api

    # -- observe -------------------------------------------------------------------------------------------

    @activity.defn(name=OBSERVE_CLUSTER)
    def observe_cluster(self, ref: ClusterRef) -> ObservedCluster:
        """The KafkaCluster, the objects it owns, its pods and what Kafka says. A cluster that is gone is
        ``found=False``; Kafka not answering is ``kafka.reachable=False`` with the reason (both normal)."""
        kc = self._get_cluster(ref)
        if kc is None:
            return ObservedCluster(namespace=ref.namespace, name=ref.name, found=False)
        meta = kc["metadata"]
        raw_spec: dict[str, Any] = kc.get("spec") or {}
        status = kc.get("status") or {}
        try:
            spec = KafkaClusterSpec.model_validate(raw_spec)
        except ValidationError:
            # The planner reports the invalid spec; the names of the objects do not depend on it.
            spec = KafkaClusterSpec()
        cluster_id = status.get("clusterId")
        render_id = _PLACEHOLDER_CLUSTER_ID
        if isinstance(cluster_id, str) and re.fullmatch(CLUSTER_ID_PATTERN, cluster_id):
            render_id = cluster_id
        try:
            desired = render_cluster(RenderInput(name=ref.name, namespace=ref.namespace, uid=meta["uid"], spec=spec,
                                                 cluster_id=render_id))
        except ValidationError:
            desired = render_cluster(RenderInput(name=ref.name, namespace=ref.namespace, uid=meta["uid"],
                                                 spec=KafkaClusterSpec(), cluster_id=_PLACEHOLDER_CLUSTER_ID))
        objects: list[ObjectState] = []
        live_sets: dict[str, JSON | None] = {}
        for obj in desired:
            kind, name = obj["kind"], obj["metadata"]["name"]
            live = self._read(kind, ref.namespace, name)
            if kind == "StatefulSet":
                live_sets[name] = live
            owned_hash = ""
            if live is not None and _is_owned(live, meta["uid"]):
                owned_hash = str((live["metadata"].get("annotations") or {}).get(SPEC_HASH_ANNOTATION) or "")
            objects.append(ObjectState(kind=kind, name=name, exists=live is not None, spec_hash=owned_hash))
        rack_awareness = spec.brokers.rack_awareness
        pods = self._pods(ref, rack_awareness.topology_key if rack_awareness is not None else "")
        controller_pods = [p for p in pods if p[0] is Role.CONTROLLER]
        broker_pods = [p for p in pods if p[0] is Role.BROKER]
        sts_name = {role: statefulset_name(ref.name, role) for role in Role}
        kafka = self._kafka_state(ref, spec, controllers=bool(controller_pods), brokers=bool(broker_pods))
        return ObservedCluster(
            namespace=ref.namespace,
            name=ref.name,
            found=True,
            uid=meta["uid"],
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion") or ""),
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=list(meta.get("finalizers") or []),
            annotations=dict(meta.get("annotations") or {}),
            spec=raw_spec,
            cluster_id=cluster_id if isinstance(cluster_id, str) else None,
            objects=objects,
            controllers=_statefulset_state(sts_name[Role.CONTROLLER], live_sets.get(sts_name[Role.CONTROLLER])),
            brokers=_statefulset_state(sts_name[Role.BROKER], live_sets.get(sts_name[Role.BROKER])),
            controller_pods=[p for _, p in controller_pods],
            broker_pods=[p for _, p in broker_pods],
            kafka=kafka,
        )

    def _read(self, kind: str, namespace: str, name: str) -> JSON | None:
        try:
            return self._kind(kind).read(namespace, name)
        except ApiException as err:
            raise retryable(err, f"{kind}/{name}") from err

    def _pods(self, ref: ClusterRef, rack_label: str = "") -> list[tuple[Role, PodState]]:
        """The cluster's pods by role, sorted by node id (brokers with their rack when ``rack_label``)."""
        try:
            items = self.kinds["Pod"].list(ref.namespace, cluster_selector(ref.name))
        except ApiException as err:
            raise retryable(err, f"pods of {ref.name}") from err
        out: list[tuple[Role, PodState]] = []
        for pod in items:
            component = (pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL)
            if component in (Role.CONTROLLER.value, Role.BROKER.value):
                role = Role(component)
                out.append((role, _pod_state(pod, ref.name, rack_label if role is Role.BROKER else "")))
        return sorted(out, key=lambda item: (item[0].value, item[1].node_id))

    # -- Kafka -----------------------------------------------------------------------------------------------

    def _address(self, ref: ClusterRef, service: str, port: int) -> str:
        try:
            return clients.service_address(self.core, ref.namespace, service, port, self.settings.kafka_addressing)
        except ApiException as err:
            raise KafkaUnreachable(f"reading Service {service}: {api_message(err)}") from err

    def _controller_quorum(self, ref: ClusterRef) -> QuorumInfo:
        address = self._address(ref, headless_service_name(ref.name, Role.CONTROLLER), CONTROLLER_PORT)
        return clients.describe_quorum_via_controllers(address, self.settings.kafka_timeout_seconds)

    def _broker_view(self, ref: ClusterRef, spec: KafkaClusterSpec,
                     with_quorum: bool) -> tuple[clients.ClusterBrokers, QuorumInfo | None]:
        address = self._address(ref, bootstrap_service_name(ref.name), _kafka_port(spec))
        admin = clients.kafka_admin_client(address, self.settings.kafka_timeout_seconds)
        try:
            brokers = clients.describe_brokers(admin)
            quorum = clients.describe_quorum_via_brokers(admin) if with_quorum else None
        finally:
            admin.close()
        return brokers, quorum

    def _kafka_state(self, ref: ClusterRef, spec: KafkaClusterSpec, *, controllers: bool,
                     brokers: bool) -> KafkaState:
        """Ask the controllers (quorum) and the brokers (registrations) at once; each answer is bounded by
        the Kafka timeout. A role without any pod is not asked: there is nobody to answer.

        ``reachable`` is True when either side answered; ``error`` then names the side that did not (e.g.
        brokers still starting while the quorum is up). Without a controller answer, the quorum comes from
        a broker, which forwards DescribeQuorum to the active controller."""
        errors: list[str] = []
        quorum: QuorumInfo | None = None
        registered: clients.ClusterBrokers | None = None
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="observe-kafka") as pool:
            quorum_f = pool.submit(self._controller_quorum, ref) if controllers else None
            brokers_f = pool.submit(self._broker_view, ref, spec, not controllers) if brokers else None
            if quorum_f is None:
                errors.append("controllers: no controller pods")
            else:
                try:
                    quorum = quorum_f.result()
                except KafkaUnreachable as err:
                    errors.append(f"controllers: {err}")
            if brokers_f is None:
                errors.append("brokers: no broker pods")
            else:
                try:
                    registered, forwarded = brokers_f.result()
                    quorum = quorum or forwarded
                except KafkaUnreachable as err:
                    errors.append(f"brokers: {err}")
        if quorum is None and registered is None:
            return KafkaState(reachable=False, error="; ".join(errors))
        return KafkaState(
            reachable=True,
            error="; ".join(errors),
            cluster_id=(registered.cluster_id if registered else None) or (quorum.cluster_id if quorum else None),
            quorum_leader_id=quorum.leader_id if quorum else None,
            quorum_voters=quorum.voters if quorum else [],
            registered_brokers=registered.brokers if registered else [],
        )

    # -- finalizer -------------------------------------------------------------------------------------------

    def _set_finalizer(self, ref: ClusterRef, present: bool) -> bool:
        for _ in range(CONFLICT_RETRIES):
            kc = self._get_cluster(ref)
            if kc is None:
                return False
            meta = kc["metadata"]
            finalizers: list[str] = list(meta.get("finalizers") or [])
            if (FINALIZER in finalizers) == present:
                return present
            if present and meta.get("deletionTimestamp"):
                # The API server forbids new finalizers on an object being deleted; nothing to protect anymore.
                return False
            finalizers = [*finalizers, FINALIZER] if present else [f for f in finalizers if f != FINALIZER]
            # Merge patch replaces the whole list; the resourceVersion makes it a precondition (409 if stale).
            body = {"metadata": {"resourceVersion": meta["resourceVersion"], "finalizers": finalizers or None}}
            try:
                self.custom.patch_namespaced_custom_object(GROUP, VERSION, ref.namespace, PLURAL, ref.name, body)
            except ApiException as err:
                if err.status == 409:
                    continue
                if err.status == 404:
                    return False
                raise write_error(err, f"{KIND}/{ref.name} finalizers") from err
            if not present and meta.get("deletionTimestamp"):
                record_reconcile_outcome("deleted")  # the deletion's last step: the API server deletes it now
            return present
        raise ApplicationError(f"{KIND}/{ref.name}: finalizers kept changing (409 {CONFLICT_RETRIES} times)",
                               type="Conflict")

    @activity.defn(name=ENSURE_FINALIZER)
    def ensure_finalizer(self, ref: ClusterRef) -> bool:
        """Add ``kafka.ballast.dev/cleanup`` to the KafkaCluster. Returns whether it is there afterwards
        (False when the cluster is gone or already being deleted)."""
        return self._set_finalizer(ref, True)

    @activity.defn(name=REMOVE_FINALIZER)
    def remove_finalizer(self, ref: ClusterRef) -> None:
        """Remove ``kafka.ballast.dev/cleanup`` (the API server then deletes a cluster being deleted); a
        cluster that is already gone is success too."""
        self._set_finalizer(ref, False)

    # -- apply -----------------------------------------------------------------------------------------------

    @activity.defn(name=APPLY_MANIFESTS)
    def apply_manifests(self, inp: ApplyManifestsInput) -> ApplyManifestsResult:
        """Render the objects of ``inp.components`` and create or update each one, in apply order.

        An object whose ``spec-hash`` annotation equals the desired one is left alone; any other is replaced
        with the live resourceVersion (re-read and retried on 409). An object of the same name not owned by
        this KafkaCluster is never touched: a non-retryable ``OwnershipConflict``.
        """
        spec = _parse_spec(inp.spec)
        try:
            render_input = RenderInput(name=inp.ref.name, namespace=inp.ref.namespace, uid=inp.uid, spec=spec,
                                       cluster_id=inp.cluster_id)
        except ValidationError as err:
            raise _invalid_spec(err, "input") from err
        roles = {_ROLE_OF[c].value for c in inp.components}
        result = ApplyManifestsResult()
        for obj in render_cluster(render_input):
            if (obj["metadata"].get("labels") or {}).get(COMPONENT_LABEL) not in roles:
                continue
            outcome = self._apply_one(inp, obj)
            what = f"{obj['kind']}/{obj['metadata']['name']}"
            getattr(result, outcome).append(what)
            activity.heartbeat({"applied": len(result.created) + len(result.updated) + len(result.unchanged)})
        return result

    def _apply_one(self, inp: ApplyManifestsInput, desired: JSON) -> str:
        """Create or update one object; returns ``created``, ``updated`` or ``unchanged``.

        A StatefulSet's ``volumeClaimTemplates`` cannot be changed in place (the API server refuses), so a
        StatefulSet whose templates differ from the desired ones (a larger ``storage.size``) is re-created:
        deleted with ``propagationPolicy: Orphan`` (precondition: the uid just read), then created once the
        old one is gone. Its pods and claims keep running untouched (``OnDelete``: nothing restarts) and the
        new StatefulSet adopts them by its selector. A StatefulSet found being deleted (this activity crashed
        mid-way before) is waited out and created."""
        kind, name = desired["kind"], desired["metadata"]["name"]
        what = f"{kind}/{name}"
        api = self._kind(kind)
        desired_hash = desired["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        for _ in range(CONFLICT_RETRIES):
            live = self._read(kind, inp.ref.namespace, name)
            try:
                if live is None:
                    api.create(inp.ref.namespace, desired)
                    return "created"
                self._check_owner(inp, live, what)
                if kind == "StatefulSet" and live["metadata"].get("deletionTimestamp"):
                    self._wait_statefulset_gone(inp.ref.namespace, name, live["metadata"]["uid"])
                    continue
                if (live["metadata"].get("annotations") or {}).get(SPEC_HASH_ANNOTATION) == desired_hash:
                    return "unchanged"
                if kind == "StatefulSet" and _claim_templates_differ(live, desired):
                    self._recreate_statefulset(inp.ref.namespace, live, desired)
                    return "updated"
                api.replace(inp.ref.namespace, name, _merge_for_update(live, desired))
                return "updated"
            except ApiException as err:
                if err.status == 409:  # AlreadyExists after our read, or a stale resourceVersion
                    continue
                raise write_error(err, what) from err
        raise ApplicationError(f"{what}: kept changing under us (409 {CONFLICT_RETRIES} times)", type="Conflict")

    def _recreate_statefulset(self, namespace: str, live: JSON, desired: JSON) -> None:
        """Delete ``live`` orphaning its pods (only if it still has its uid), wait until it is gone, create
        ``desired`` (with what others added to ``live``: labels, annotations, non-controller owners). Raises
        ``ApiException`` 409 when someone else replaced or re-created it meanwhile: the caller re-reads."""
        name, uid = live["metadata"]["name"], live["metadata"]["uid"]
        options = k8s.V1DeleteOptions(propagation_policy="Orphan", preconditions=k8s.V1Preconditions(uid=uid))
        try:
            self.kinds["StatefulSet"].api.delete_namespaced_stateful_set(name, namespace, body=options,
                                                                         _preload_content=False)
        except ApiException as err:
            if err.status != 404:
                raise
        self._wait_statefulset_gone(namespace, name, uid)
        body = _merge_for_update(live, desired)
        body["metadata"].pop("resourceVersion", None)
        body["metadata"].pop("finalizers", None)  # those were the old object's business
        self.kinds["StatefulSet"].create(namespace, body)

    def _wait_statefulset_gone(self, namespace: str, name: str, uid: str) -> None:
        """Until StatefulSet ``name`` with ``uid`` no longer exists (heartbeating); a retryable error after
        ``ORPHAN_DELETE_TIMEOUT_SECONDS`` (a finalizer someone else put on it holds it)."""
        deadline = time.monotonic() + ORPHAN_DELETE_TIMEOUT_SECONDS
        while True:
            live = self._read("StatefulSet", namespace, name)
            if live is None or live["metadata"].get("uid") != uid:
                return
            activity.heartbeat({"waitingFor": f"StatefulSet/{name} to be deleted (orphaning its pods)"})
            if time.monotonic() > deadline:
                finalizers = ", ".join(live["metadata"].get("finalizers") or []) or "none"
                raise ApplicationError(f"StatefulSet/{name} is still being deleted after "
                                       f"{ORPHAN_DELETE_TIMEOUT_SECONDS:.0f}s (finalizers: {finalizers})",
                                       type="StatefulSetStillDeleting")
            activity.wait_for_cancelled_sync(ORPHAN_DELETE_POLL_SECONDS)
            if activity.is_cancelled():
                raise CancelledError("apply cancelled")

    @staticmethod
    def _check_owner(inp: ApplyManifestsInput, live: JSON, what: str) -> None:
        if _is_owned(live, inp.uid):
            return
        refs = live["metadata"].get("ownerReferences") or []
        if any(r.get("kind") == KIND and r.get("name") == inp.ref.name for r in refs):
            # Left over from an earlier KafkaCluster of the same name: the garbage collector is removing it.
            raise ApplicationError(f"{what} still belongs to a deleted {KIND} named {inp.ref.name}; waiting for "
                                   "garbage collection", type="StaleOwner")
        owners = ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in refs) or "no owner"
        raise ApplicationError(
            f"{what} already exists in namespace {inp.ref.namespace} and is not owned by {KIND} {inp.ref.name} "
            f"({owners}); the operator will not modify it. Delete or rename it, or choose another cluster name.",
            type=OWNERSHIP_CONFLICT, non_retryable=True)

    # -- waits -----------------------------------------------------------------------------------------------

    def _role_pods_ready(self, ref: ClusterRef, role: Role, expected: int) -> tuple[set[int], list[str]]:
        """Node ids of the expected pods of ``role`` that are Ready, and the names of those that are not."""
        names = (controller_pod_names if role is Role.CONTROLLER else broker_pod_names)(ref.name, expected)
        ready = {p.name: p.node_id for r, p in self._pods(ref) if r is role and p.ready and not p.deleting}
        return {ready[n] for n in names if n in ready}, [n for n in names if n not in ready]

    def _wait(self, inp: WaitInput, check: Callable[[dict[str, Any]], tuple[int, bool, str]]) -> WaitResult:
        """Poll ``check(progress)`` until it reports done, heartbeating the progress after every poll.

        The progress dict is the heartbeat payload; a retried attempt starts from the last one it recorded
        (``startedAt`` and the poll count survive retries, so the detail tells how long the wait has run).
        """
        info = activity.info()
        previous: dict[str, Any] = {}
        if info.heartbeat_details and isinstance(info.heartbeat_details[-1], dict):
            previous = dict(info.heartbeat_details[-1])
        progress: dict[str, Any] = {"startedAt": previous.get("startedAt") or _timestamp(_now()),
                                    "polls": int(previous.get("polls") or 0)}
        while True:
            progress["polls"] += 1
            ready, done, detail = check(progress)
            progress.update(ready=ready, expected=inp.expected, detail=detail)
            activity.heartbeat(dict(progress))
            if done:
                return WaitResult(ready=ready, detail=f"{detail} (since {progress['startedAt']}, "
                                                      f"{progress['polls']} polls)")
            activity.wait_for_cancelled_sync(inp.poll_seconds)
            if activity.is_cancelled():
                raise CancelledError("wait cancelled")

    @activity.defn(name=WAIT_CONTROLLERS_READY)
    def wait_controllers_ready(self, inp: WaitInput) -> WaitResult:
        """Until all ``expected`` controller pods are Ready and DescribeQuorum names a leader with
        ``expected`` voters. Heartbeats every poll; runs until done or the activity's timeout."""

        def check(progress: dict[str, Any]) -> tuple[int, bool, str]:
            ready_ids, missing = self._role_pods_ready(inp.ref, Role.CONTROLLER, inp.expected)
            ready = len(ready_ids)
            try:
                quorum = self._controller_quorum(inp.ref) if ready else None
            except KafkaUnreachable as err:
                return ready, False, f"{ready}/{inp.expected} controllers Ready; quorum: {err}"
            if quorum is None:
                return ready, False, f"{ready}/{inp.expected} controllers Ready; waiting for {', '.join(missing)}"
            progress.update(leader=quorum.leader_id, voters=quorum.voters)
            done = not missing and quorum.leader_id is not None and len(quorum.voters) == inp.expected
            leader = "no leader" if quorum.leader_id is None else f"leader {quorum.leader_id}"
            return ready, done, (f"{ready}/{inp.expected} controllers Ready, {leader}, "
                                 f"voters {quorum.voters}")

        return self._wait(inp, check)

    @activity.defn(name=WAIT_BROKERS_REGISTERED)
    def wait_brokers_registered(self, inp: WaitInput) -> WaitResult:
        """Until all ``expected`` broker pods are Ready and their ``expected`` node ids are registered (and
        unfenced) in the cluster metadata, as DescribeCluster through the bootstrap Service reports."""
        spec = _parse_spec(inp.spec)
        wanted = set(node_ids(Role.BROKER, inp.expected))

        def check(progress: dict[str, Any]) -> tuple[int, bool, str]:
            ready_ids, missing = self._role_pods_ready(inp.ref, Role.BROKER, inp.expected)
            if not ready_ids:
                return 0, False, f"0/{inp.expected} brokers Ready"
            try:
                brokers, _ = self._broker_view(inp.ref, spec, with_quorum=False)
            except KafkaUnreachable as err:
                return 0, False, f"{len(ready_ids)}/{inp.expected} brokers Ready; brokers: {err}"
            registered = sorted(wanted & set(brokers.brokers))
            progress.update(registered=registered)
            # "ready" = Ready pod and registered broker both.
            ready = len(ready_ids & set(registered))
            return ready, ready == inp.expected and not missing, (
                f"{len(ready_ids)}/{inp.expected} brokers Ready, registered {registered}")

        return self._wait(inp, check)

    # -- status ----------------------------------------------------------------------------------------------

    @activity.defn(name=UPDATE_STATUS)
    def update_status(self, inp: StatusUpdate) -> bool:
        """Read-modify-write ``status`` through the /status subresource. Conditions are merged by type
        (``lastTransitionTime`` changes only with ``status``). Returns whether anything was written: an
        update that changes nothing, or a cluster that is gone, writes nothing.

        ``inp.outcome`` (a reconcile outcome the workflow reports with this write) is counted in
        ``ballast_reconcile_outcomes_total`` once the status holds it -- written now or already -- and not for
        a cluster that is gone."""
        for _ in range(CONFLICT_RETRIES):
            kc = self._get_cluster(inp.ref)
            if kc is None:
                return False
            live_status: JSON = kc.get("status") or {}
            status = self._next_status(inp, live_status)
            if status == live_status:
                self._count_outcome(inp)
                return False
            body = {"apiVersion": kc["apiVersion"], "kind": kc["kind"], "metadata": kc["metadata"],
                    "spec": kc.get("spec") or {}, "status": status}
            try:
                self.custom.replace_namespaced_custom_object_status(GROUP, VERSION, inp.ref.namespace, PLURAL,
                                                                    inp.ref.name, body)
            except ApiException as err:
                if err.status == 409:
                    continue
                if err.status == 404:
                    return False
                raise write_error(err, f"{KIND}/{inp.ref.name} status") from err
            self._count_outcome(inp)
            return True
        raise ApplicationError(f"{KIND}/{inp.ref.name}: status kept changing (409 {CONFLICT_RETRIES} times)",
                               type="Conflict")

    @staticmethod
    def _count_outcome(inp: StatusUpdate) -> None:
        # A metric is a side effect, so it is counted here and never in workflow code.
        if inp.outcome:
            record_reconcile_outcome(inp.outcome)

    def _next_status(self, inp: StatusUpdate, live: JSON) -> JSON:
        status = copy.deepcopy(live)
        if inp.observed_generation is not None:
            status["observedGeneration"] = inp.observed_generation
        if inp.phase is not None:
            status["phase"] = inp.phase
        if inp.cluster_id is not None:
            status["clusterId"] = inp.cluster_id
        for key, desired, ready in (("brokers", inp.brokers_desired, inp.brokers_ready),
                                    ("controllers", inp.controllers_desired, inp.controllers_ready)):
            counts = dict(status.get(key) or {})
            if desired is not None:
                counts["desired"] = desired
            if ready is not None:
                counts["ready"] = ready
            if counts:
                counts.setdefault("desired", 0)
                counts.setdefault("ready", 0)
                status[key] = counts
        brokers = status.get("brokers") or {"ready": 0, "desired": 0}
        status["readyBrokers"] = f"{brokers['ready']}/{brokers['desired']}"
        status["brokerSelector"] = broker_selector(inp.ref.name)
        for key, value, model in (("currentOperation", inp.current_operation, OperationStatus),
                                  ("lastOperation", inp.last_operation, LastOperation),
                                  ("rebalance", inp.rebalance, RebalanceStatus)):
            if value is None:
                continue
            if not value:
                status.pop(key, None)
                continue
            # Through the model, so the stored form (the API server fills in schema defaults) is compared.
            try:
                status[key] = model.model_validate(value).model_dump(mode="json", by_alias=True, exclude_none=True)
            except ValidationError as err:
                raise _invalid_spec(err, f"status.{key}") from err
        if inp.conditions:
            status["conditions"] = self._merge_conditions(inp, status)
        return status

    @staticmethod
    def _merge_conditions(inp: StatusUpdate, status: JSON) -> list[JSON]:
        raw = status.get("conditions") or []
        conditions: list[Condition] = []
        for item in raw:
            try:
                conditions.append(Condition.model_validate(item))
            except ValidationError:
                continue  # a malformed condition (hand-edited) is dropped rather than blocking every update
        generation = inp.observed_generation if inp.observed_generation is not None else \
            int(status.get("observedGeneration") or 0)
        now = _timestamp(_now())
        for update in inp.conditions:
            conditions = set_condition(conditions, Condition(
                type=update.type, status=update.status, reason=update.reason, message=update.message,
                observed_generation=generation, last_transition_time=now))
        return [c.model_dump(mode="json", by_alias=True) for c in conditions]

    # -- events ----------------------------------------------------------------------------------------------

    @activity.defn(name=RECORD_EVENT)
    def record_event(self, inp: EventInput) -> str:
        """Record a core/v1 Event on the KafkaCluster; an identical one from the last 10 minutes gets its
        ``count`` bumped instead. Returns the Event's name ("" when the cluster is gone)."""
        kc = self._get_cluster(inp.ref)
        if kc is None:
            return ""
        uid = kc["metadata"]["uid"]
        events = self.kinds["Event"]
        selector = f"involvedObject.uid={uid},reason={inp.reason},type={inp.type}"
        for _ in range(CONFLICT_RETRIES):
            now = _now()
            try:
                listed = self.core.list_namespaced_event(inp.ref.namespace, field_selector=selector,
                                                         _preload_content=False)
            except ApiException as err:
                raise retryable(err, "events") from err
            same = self._aggregate_target(listed, inp, now)
            try:
                if same is not None:
                    body = copy.deepcopy(same)
                    body["count"] = int(same.get("count") or 1) + 1
                    body["lastTimestamp"] = _timestamp(now)
                    events.replace(inp.ref.namespace, same["metadata"]["name"], body)
                    return str(same["metadata"]["name"])
                name = f"{inp.ref.name}.{time.time_ns():x}"
                events.create(inp.ref.namespace, self._event(kc, inp, name, now))
                return name
            except ApiException as err:
                if err.status in (404, 409):  # the aggregated event expired or changed meanwhile
                    continue
                raise write_error(err, f"Event {inp.reason}") from err
        raise ApplicationError(f"Event {inp.reason}: kept conflicting", type="Conflict")

    @staticmethod
    def _aggregate_target(listed: Any, inp: EventInput, now: dt.datetime) -> JSON | None:
        best: JSON | None = None
        for ev in load(listed).get("items") or []:
            if ev.get("message") != inp.message or (ev.get("source") or {}).get("component") != COMPONENT:
                continue
            last = _parse_timestamp(ev.get("lastTimestamp"))
            if last is None or now - last > EVENT_AGGREGATION_WINDOW:
                continue
            best_last = _parse_timestamp(best.get("lastTimestamp")) if best is not None else None
            if best_last is None or last >= best_last:
                best = ev
        return best

    def _event(self, kc: JSON, inp: EventInput, name: str, now: dt.datetime) -> JSON:
        meta = kc["metadata"]
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": inp.ref.namespace},
            "involvedObject": {"apiVersion": kc["apiVersion"], "kind": kc["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"],
                               "resourceVersion": meta["resourceVersion"]},
            "reason": inp.reason,
            "message": inp.message,
            "type": inp.type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.reporting_instance,
            "firstTimestamp": _timestamp(now),
            "lastTimestamp": _timestamp(now),
            "count": 1,
        }

    # -- cleanup ---------------------------------------------------------------------------------------------

    @activity.defn(name=CLEANUP_CLUSTER)
    def cleanup_cluster(self, inp: CleanupInput) -> list[str]:
        """What the garbage collector does not do on deletion. Owned objects go with the KafkaCluster through
        their ownerReferences; the PersistentVolumeClaims are not owned (retention policy Retain) and are
        deleted here only for the roles whose ``deleteClaim`` is true. Then the StatefulSets are deleted first,
        so no pod (and no claim) is recreated while the claims go; a claim in use is removed once its pod is
        gone (pvc-protection). Returns the names of the claims whose deletion was requested."""
        roles = [role for role in Role if inp.deletes(role.value)]
        if not roles:
            return []
        kc = self._get_cluster(inp.ref)
        if kc is not None and not kc["metadata"].get("deletionTimestamp"):
            # Deleting the claims of a live cluster would destroy its data: only ever do it on deletion.
            raise ApplicationError(f"{KIND}/{inp.ref.name} is not being deleted; its claims are kept",
                                   type="NotDeleting", non_retryable=True)
        try:
            for role in Role:
                self.kinds["StatefulSet"].delete(inp.ref.namespace, statefulset_name(inp.ref.name, role))
            claims = [claim for role in roles for claim in self.kinds["PersistentVolumeClaim"].list(
                inp.ref.namespace, selector_string(inp.ref.name, role))]
            deleted: list[str] = []
            for claim in claims:
                name = claim["metadata"]["name"]
                # One already being deleted counts: this activity may be a retry of one that requested it.
                if claim["metadata"].get("deletionTimestamp") or \
                        self.kinds["PersistentVolumeClaim"].delete(inp.ref.namespace, name):
                    deleted.append(name)
        except ApiException as err:
            raise retryable(err, f"cleanup of {inp.ref.name}") from err
        return sorted(deleted)

