"""Volume expansion: grow the PersistentVolumeClaims of a role, then wait until the storage has grown or tells
which pods must restart to finish it.

``VolumeActivities`` is a mixin of :class:`activities.cluster.ClusterActivities` (it uses that class's clients),
registered with the rest through ``ClusterActivities.all()``.

How a claim grows on Kubernetes (external-resizer and kubelet, with ``RecoverVolumeExpansionFailure``, GA in
1.34): the API server accepts a larger ``spec.resources.requests.storage`` only for a bound claim whose
StorageClass has ``allowVolumeExpansion`` (else 403) and never a smaller one (422). The resizer expands the
volume (condition ``Resizing``, ``allocatedResourceStatuses.storage: ControllerResizeInProgress``), then the
file system is grown on the node: right away while a pod has it mounted when the driver supports online
expansion (``NodeResizeInProgress``), else the claim keeps ``FileSystemResizePending`` until a pod using it
(re)starts. Done: ``status.capacity.storage`` reaches the request. A driver that cannot do it says
``ControllerResizeInfeasible`` (or ``NodeResizeInfeasible``) with a ``ControllerResizeError`` /
``NodeResizeError`` condition.

Which claims: ``data-<statefulset>-<ordinal>`` for the ordinals the role's StatefulSet runs (its
``spec.replicas``; the KafkaCluster's spec while the StatefulSet is being re-created), among those that exist.
Claims of ordinals the StatefulSet no longer runs (kept after a scale-in) are left alone: no pod mounts them,
they would wait for a restart forever.

The StatefulSet's ``volumeClaimTemplates`` (what new pods' claims get) cannot be changed in place; the
operator's apply path re-creates the StatefulSet orphaning its pods (see ``ClusterActivities._apply_one``),
so ``apply_manifests`` with the new size must run first: ``expand_volumes`` refuses (non-retryable
``TemplateNotExpanded``) while the live template asks for less, which keeps "new pods get ``size``" true
without a second, crash-unsafe re-create here (a crash between its delete and create would lose the body).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import (
    EXPAND_VOLUMES,
    WAIT_VOLUMES_RESIZED,
    ExpandVolumesInput,
    ExpandVolumesResult,
    WaitVolumesResizedInput,
    WaitVolumesResizedResult,
)
from activities.kube import CONFLICT_RETRIES, JSON, KindApi, api_message, load, retryable, write_error
from activities.scale_in import claim_name
from ballast.config import OperatorSettings
from ballast.manifests import Role
from ballast.manifests.labels import selector_string
from ballast.manifests.names import DATA_VOLUME, node_ids, statefulset_name
from ballast.messages import ClusterRef
from ballast.spec import GROUP, KIND, PLURAL, VERSION, KafkaClusterSpec, quantity_bytes

FS_RESIZE_PENDING = "FileSystemResizePending"
NODE_RESIZE_IN_PROGRESS = "NodeResizeInProgress"
INFEASIBLE = ("ControllerResizeInfeasible", "NodeResizeInfeasible")
RESIZE_ERRORS = ("ControllerResizeError", "NodeResizeError")
INVALID_INPUT = "InvalidInput"
VOLUME_EXPANSION_NOT_ALLOWED = "VolumeExpansionNotAllowed"
VOLUME_RESIZE_INFEASIBLE = "VolumeResizeInfeasible"
TEMPLATE_NOT_EXPANDED = "TemplateNotExpanded"
NOT_EXPANDED = "VolumeNotExpanded"


def _size(value: str, what: str) -> int:
    try:
        return quantity_bytes(value)
    except ValueError as err:
        raise ApplicationError(f"{what}: {err}", type=INVALID_INPUT, non_retryable=True) from err


def _requested(pvc: JSON) -> str:
    return str((((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage") or "0")


def _capacity(pvc: JSON) -> str:
    return str(((pvc.get("status") or {}).get("capacity") or {}).get("storage") or "0")


def _condition(pvc: JSON, kind: str) -> JSON | None:
    for cond in (pvc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def _resize_status(pvc: JSON) -> str:
    return str(((pvc.get("status") or {}).get("allocatedResourceStatuses") or {}).get("storage") or "")


def _template_size(sts: JSON) -> str | None:
    """The storage the StatefulSet's ``data`` claim template asks for (None: no such template)."""
    for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        if (template.get("metadata") or {}).get("name") == DATA_VOLUME:
            return _requested(template)
    return None


class VolumeActivities:
    """Mixin: the volume expansion activities. The host class provides the clients below (``ClusterActivities``)."""

    settings: OperatorSettings
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi
    kinds: dict[str, KindApi]

    def volume_activities(self) -> list[Callable[..., Any]]:
        return [self.expand_volumes, self.wait_volumes_resized]

    # -- which claims -------------------------------------------------------------------------------------

    def _role_statefulset(self, ref: ClusterRef, role: Role) -> JSON | None:
        name = statefulset_name(ref.name, role)
        try:
            sts = self.kinds["StatefulSet"].read(ref.namespace, name)
        except ApiException as err:
            raise retryable(err, f"StatefulSet/{name}") from err
        return None if sts is None or sts["metadata"].get("deletionTimestamp") else sts

    def _spec_replicas(self, ref: ClusterRef, role: Role) -> int:
        """The role's replicas in the KafkaCluster's spec (0 when the cluster is gone or its spec is invalid)."""
        try:
            kc = load(self.custom.get_namespaced_custom_object(GROUP, VERSION, ref.namespace, PLURAL, ref.name,
                                                               _preload_content=False))
        except ApiException as err:
            if err.status == 404:
                return 0
            raise retryable(err, f"{KIND}/{ref.name}") from err
        try:
            spec = KafkaClusterSpec.model_validate(kc.get("spec") or {})
        except ValidationError:
            return 0
        return spec.brokers.replicas if role is Role.BROKER else spec.controllers.replicas

    def _claims(self, ref: ClusterRef, role: Role, sts: JSON | None) -> list[tuple[int, JSON]]:
        """(node id, claim) of the role's running ordinals whose claim exists and is not being deleted."""
        replicas = int((sts.get("spec") or {}).get("replicas") or 0) if sts is not None \
            else self._spec_replicas(ref, role)
        wanted = {claim_name(ref.name, role, node): node for node in node_ids(role, replicas)}
        try:
            items = self.kinds["PersistentVolumeClaim"].list(ref.namespace, selector_string(ref.name, role))
        except ApiException as err:
            raise retryable(err, f"{role.value} claims of {ref.name}") from err
        claims = [(wanted[c["metadata"]["name"]], c) for c in items
                  if c["metadata"]["name"] in wanted and not c["metadata"].get("deletionTimestamp")]
        return sorted(claims, key=lambda item: item[0])

    # -- expand_volumes -----------------------------------------------------------------------------------

    @activity.defn(name=EXPAND_VOLUMES)
    def expand_volumes(self, inp: ExpandVolumesInput) -> ExpandVolumesResult:
        """Raise ``spec.resources.requests.storage`` to ``size`` on every claim of ``role`` that asks for less
        (compared as quantities; a claim asking for as much or more is ``already``: never shrunk).

        The StatefulSet's claim template must already ask for ``size`` (``apply_manifests`` with the new spec
        re-creates the StatefulSet, orphaning its pods): else non-retryable ``TemplateNotExpanded``. A claim
        whose StorageClass does not allow expansion (403) is non-retryable ``VolumeExpansionNotAllowed``; a
        write the API server finds invalid (422) is non-retryable ``InvalidManifest``; other API errors retry.
        Each write carries the claim's resourceVersion (409: re-read, so a concurrent larger request is kept)."""
        role = Role(inp.role)
        size = _size(inp.size, "size")
        sts = self._role_statefulset(inp.ref, role)
        if sts is not None:
            template = _template_size(sts)
            if template is not None and _size(template, f"StatefulSet/{sts['metadata']['name']} template") < size:
                raise ApplicationError(
                    f"StatefulSet/{sts['metadata']['name']}: its volume claim template asks for {template}, not "
                    f"{inp.size}; apply the manifests with the new size first (the StatefulSet is re-created, "
                    "orphaning its pods), so that new pods get it too", type=TEMPLATE_NOT_EXPANDED,
                    non_retryable=True)
        result = ExpandVolumesResult()
        for _, claim in self._claims(inp.ref, role, sts):
            name = claim["metadata"]["name"]
            outcome = self._expand_claim(inp.ref.namespace, claim, inp.size, size)
            getattr(result, outcome).append(name)
            activity.heartbeat({"claim": name, "outcome": outcome})
        return result

    def _expand_claim(self, namespace: str, claim: JSON, size_text: str, size: int) -> str:
        """``expanded`` or ``already``."""
        name = claim["metadata"]["name"]
        what = f"PersistentVolumeClaim/{name}"
        api = self.kinds["PersistentVolumeClaim"]
        for _ in range(CONFLICT_RETRIES):
            if _size(_requested(claim), f"{what} request") >= size:
                return "already"
            # Merge patch with the resourceVersion as a precondition (409 when the claim changed meanwhile).
            body = {"metadata": {"resourceVersion": claim["metadata"]["resourceVersion"]},
                    "spec": {"resources": {"requests": {"storage": size_text}}}}
            try:
                self.core.patch_namespaced_persistent_volume_claim(name, namespace, body, _preload_content=False)
                return "expanded"
            except ApiException as err:
                if err.status == 403 and "resize" in api_message(err):
                    raise ApplicationError(f"{what}: {api_message(err)}", type=VOLUME_EXPANSION_NOT_ALLOWED,
                                           non_retryable=True) from err
                if err.status != 409:
                    raise write_error(err, what) from err
            try:
                live = api.read(namespace, name)
            except ApiException as err:
                raise retryable(err, what) from err
            if live is None:
                raise ApplicationError(f"{what} disappeared while it was being expanded", type="ClaimGone")
            claim = live
        raise ApplicationError(f"{what}: kept changing under us (409 {CONFLICT_RETRIES} times)", type="Conflict")

    # -- wait_volumes_resized -----------------------------------------------------------------------------

    @activity.defn(name=WAIT_VOLUMES_RESIZED)
    def wait_volumes_resized(self, inp: WaitVolumesResizedInput) -> WaitVolumesResizedResult:
        """Poll until every claim of ``role`` either has ``status.capacity.storage >= size`` (``resized``) or
        waits for its pod to restart (``restart_needed``: claim -> node id, the claim's ordinal). Waiting for a
        restart means ``FileSystemResizePending`` seen on two consecutive polls while the kubelet is not
        expanding it online (``NodeResizeInProgress``): a file system the kubelet grows by itself a moment
        later is not a reason to restart a broker.

        Fails non-retryably when the resize cannot happen: ``VolumeResizeInfeasible`` (the driver said
        Controller/NodeResizeInfeasible; its message), ``VolumeExpansionNotAllowed`` (a claim asks for more
        than it has, nothing resizes it and its StorageClass does not allow expansion) or
        ``VolumeNotExpanded`` (a claim still asks for less than ``size``: ``expand_volumes`` did not run).
        Heartbeats ``{startedAt, polls, pending, fsPending}`` every poll and continues from them after a retry."""
        role = Role(inp.role)
        size = _size(inp.size, "size")
        info = activity.info()
        previous: dict[str, Any] = {}
        if info.heartbeat_details and isinstance(info.heartbeat_details[-1], dict):
            previous = dict(info.heartbeat_details[-1])
        started = float(previous.get("startedAt") or time.time())
        progress: dict[str, Any] = {"startedAt": started, "polls": int(previous.get("polls") or 0),
                                    "fsPending": list(previous.get("fsPending") or [])}
        while True:
            progress["polls"] += 1
            result, pending, fs_pending = self._resize_state(inp.ref, role, size,
                                                             set(progress["fsPending"]))
            progress.update(pending=pending, fsPending=sorted(fs_pending))
            activity.heartbeat(dict(progress))
            if not pending:
                return result
            activity.wait_for_cancelled_sync(inp.poll_seconds)
            if activity.is_cancelled():
                raise CancelledError("wait cancelled")

    def _resize_state(self, ref: ClusterRef, role: Role, size: int,
                      fs_seen: set[str]) -> tuple[WaitVolumesResizedResult, dict[str, str], set[str]]:
        """(result so far, claim -> what it waits for, claims seen waiting for a restart at this poll)."""
        result = WaitVolumesResizedResult()
        pending: dict[str, str] = {}
        fs_now: set[str] = set()
        for node, claim in self._claims(ref, role, self._role_statefulset(ref, role)):
            name = claim["metadata"]["name"]
            what = f"PersistentVolumeClaim/{name}"
            if _size(_capacity(claim), f"{what} capacity") >= size:
                result.resized.append(name)
                continue
            status = _resize_status(claim)
            if status in INFEASIBLE:
                error = next((c for c in (_condition(claim, k) for k in RESIZE_ERRORS) if c), None)
                message = (error or {}).get("message") or "the storage driver cannot resize it"
                raise ApplicationError(f"{what}: {status}: {message}", type=VOLUME_RESIZE_INFEASIBLE,
                                       non_retryable=True)
            if _size(_requested(claim), f"{what} request") < size:
                raise ApplicationError(f"{what} asks for {_requested(claim)}, less than the size waited for; "
                                       "expand the volumes first", type=NOT_EXPANDED, non_retryable=True)
            if _condition(claim, FS_RESIZE_PENDING) is not None and status != NODE_RESIZE_IN_PROGRESS:
                fs_now.add(name)
                if name in fs_seen:
                    result.restart_needed[name] = node
                    continue
                pending[name] = FS_RESIZE_PENDING
                continue
            if not status and not (claim.get("status") or {}).get("conditions"):
                self._check_expandable(claim, what)
            error = next((c for c in (_condition(claim, k) for k in RESIZE_ERRORS) if c), None)
            pending[name] = status or "waiting for the resizer" + (f" ({error.get('message')})" if error else "")
        return result, pending, fs_now

    def _check_expandable(self, claim: JSON, what: str) -> None:
        """A claim asking for more than it has that nothing resizes: fail if its StorageClass forbids
        expansion (a class may be changed after the claim grew). Not knowing the class (no class, not
        allowed to read StorageClasses) is not a failure: the wait goes on."""
        name = (claim.get("spec") or {}).get("storageClassName")
        if not name:
            return
        try:
            response = k8s.StorageV1Api(self.core.api_client).read_storage_class(name, _preload_content=False)
        except ApiException as err:
            if err.status in (403, 404):
                return
            raise retryable(err, f"StorageClass/{name}") from err
        if not load(response).get("allowVolumeExpansion"):
            raise ApplicationError(f"{what} asks for {_requested(claim)} but has {_capacity(claim)}, and its "
                                   f"StorageClass {name} does not allow volume expansion",
                                   type=VOLUME_EXPANSION_NOT_ALLOWED, non_retryable=True)
