"""The StatefulSet controller of kube-controller-manager (``pkg/controller/statefulset``, Kubernetes 1.36).

Contract, as a client observes it through the API:

* Pods are named ``<set>-<ordinal>`` for ordinals ``[spec.ordinals.start, start + replicas)``. Each carries the
  template's labels, annotations and finalizers plus ``controller-revision-hash`` (the name of the
  ControllerRevision it was built from), ``statefulset.kubernetes.io/pod-name`` and
  ``apps.kubernetes.io/pod-index``; a controller ownerReference to the set; ``spec.hostname`` = its name and
  ``spec.subdomain`` = ``spec.serviceName``; ``generateName`` = ``<set>-`` (as ``GetPodFromTemplate`` sets it).
* For every ``volumeClaimTemplates`` entry a PVC ``<claim>-<set>-<ordinal>`` is created *before* its pod
  (template labels plus the selector's ``matchLabels``), and the pod gets a ``persistentVolumeClaim`` volume
  named after the template. PVC ownerReferences follow ``persistentVolumeClaimRetentionPolicy``: whenDeleted=Delete
  makes the set the PVC's controller; whenScaled=Delete makes the pod the controller once the pod is scaled
  down (and blocks re-creating a pod while its PVC still points at a previous pod of that name).
* ControllerRevisions ``<set>-<hash>`` hold the strategic-merge patch ``{"spec":{"template":{..., "$patch":
  "replace"}}}``; ``<hash>`` is FNV-32 of that JSON (Go encoding: sorted keys, compact, HTML-escaped) plus the
  collision count, rendered through ``rand.SafeEncodeString`` -- the same algorithm as ``pkg/controller/history``.
  Reverting the template re-uses (and re-numbers) the old revision; history beyond ``revisionHistoryLimit``
  that no pod uses is deleted, oldest first.
* OrderedReady: one pod created per step, only when all lower ordinals are Running, Ready and available
  (``minReadySeconds``); scale-down from the highest ordinal, one at a time, each gone before the next.
  Parallel: everything at once. Failed or Succeeded pods are deleted and re-created.
* RollingUpdate: pods at ordinal index >= ``partition`` whose revision differs from the update revision are
  deleted from the highest ordinal down, at most ``maxUnavailable`` (default 1; int or percent) unavailable at a
  time (the MaxUnavailableStatefulSet path, beta and on by default since 1.35). OnDelete never deletes for an
  update; a pod deleted by someone comes back at the update revision.
* Status (observedGeneration, replicas, readyReplicas, currentReplicas, updatedReplicas, availableReplicas,
  currentRevision, updateRevision, collisionCount; Go ``omitempty`` rules) is written through ``/status`` only
  when one of them other than collisionCount differs (upstream's ``inconsistentStatus``). currentRevision
  becomes updateRevision once every replica is updated and ready (for both strategies: the 1.36 fix of
  kubernetes#73492).
* Events (core/v1, ``source.component`` = ``reportingComponent`` = ``statefulset-controller``) use the upstream
  reasons and texts, e.g. ``SuccessfulCreate`` "create Pod web-0 in StatefulSet web successful" and
  "create Claim data-web-0 Pod web-0 in StatefulSet web success"; written by the shared legacy-API
  ``EventRecorder``, so a repeat of an identical event bumps the stored event's ``count`` and ``lastTimestamp``.

The controller is event driven: it subscribes to StatefulSets, Pods and PVCs in the store and syncs only the
sets an event concerns; a slow resync timer is the backstop. Failed syncs are retried with exponential backoff.
Every write goes through ``ApiServer`` so watchers see exactly what a client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import logging
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devcluster import clock
from devcluster.controllers.recorder import EventRecorder
from devcluster.errors import ApiError
from devcluster.store import Obj, Subscription, WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster
    from devcluster.selectors import LabelSelector

log = logging.getLogger("devcluster.statefulset")

COMPONENT = "statefulset-controller"
REVISION_LABEL = "controller-revision-hash"  # apps.StatefulSetRevisionLabel
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_HASH_LABEL = "controller.kubernetes.io/hash"  # history.ControllerRevisionHashLabel

_ORDINAL_RE = re.compile(r"^(.*)-([0-9]+)$")
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_INT32_MAX = 2**31 - 1


# -- pure helpers: names, hashing, pod state ----------------------------------------------------------------
def go_json_sorted(value: Any) -> str:
    """``encoding/json.Marshal`` of a ``map[string]interface{}``: sorted keys, compact, HTML-escaped."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def fnv32(data: bytes) -> int:
    """FNV-1 32-bit (Go's ``hash/fnv.New32``; not the 1a variant)."""
    h = 0x811C9DC5
    for byte in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= byte
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: map each byte onto an alphabet without vowels (no accidental words)."""
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in text.encode())


def revision_hash(data: Obj, collision_count: int | None) -> str:
    """``history.HashControllerRevision`` of a revision whose ``data`` is ``data``."""
    raw = go_json_sorted(data).encode()
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32(raw)))


def revision_name(set_name: str, hash_: str) -> str:
    return f"{set_name[:223]}-{hash_}"


def parent_and_ordinal(name: str) -> tuple[str, int]:
    """``getParentNameAndOrdinal``: ``("web", 2)`` for ``web-2``; ``("", -1)`` when the name has no ordinal."""
    m = _ORDINAL_RE.match(name)
    if not m:
        return "", -1
    ordinal = int(m.group(2))
    return m.group(1), ordinal if ordinal <= _INT32_MAX else -1


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod["metadata"]["name"])[1]


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def ready_condition(pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def is_created(pod: Obj) -> bool:
    """A pod the API server has stored has a phase; a placeholder built by the controller has none."""
    return phase(pod) != ""


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    cond = ready_condition(pod)
    return phase(pod) == "Running" and cond is not None and cond.get("status") == "True"


def is_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    """``podutil.IsPodAvailable``: Ready, and Ready for longer than ``minReadySeconds``."""
    if not is_running_and_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = (ready_condition(pod) or {}).get("lastTransitionTime")
    return bool(since) and clock.parse(since) + dt.timedelta(seconds=min_ready_seconds) < now


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def is_unavailable(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    return not is_healthy(pod) or not is_available(pod, min_ready_seconds, now)


def pod_revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))


def controller_ref(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def new_controller_ref(owner: Obj) -> Obj:
    """``metav1.NewControllerRef``."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def scaled_value(value: Any, total: int) -> int:
    """``intstr.GetScaledValueFromIntOrPercent`` rounding down, at least 1 (``getStatefulSetMaxUnavailable``)."""
    if value is None:
        return 1
    if isinstance(value, str) and value.endswith("%"):
        try:
            n = math.floor(int(value[:-1]) * total / 100)
        except ValueError:
            n = 1
    else:
        try:
            n = int(value)
        except (TypeError, ValueError):
            n = 1
    return max(1, n)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# -- one sync of one StatefulSet ------------------------------------------------------------------------------
class _Status:
    """``apps.StatefulSetStatus`` under construction."""

    def __init__(self, generation: int, current: str, update: str, collision_count: int) -> None:
        self.observed_generation = generation
        self.current_revision = current
        self.update_revision = update
        self.collision_count = collision_count
        self.replicas = self.ready = self.available = self.current = self.updated = 0

    def count(self, pods: list[Obj], min_ready_seconds: int, now: dt.datetime) -> None:
        """``updateStatus``: recount every replica field from ``pods``."""
        self.replicas = self.ready = self.available = self.current = self.updated = 0
        for pod in pods:
            created = is_created(pod)
            self.replicas += created
            if is_running_and_ready(pod):
                self.ready += 1
                self.available += is_available(pod, min_ready_seconds, now)
            if created and not is_terminating(pod):
                self.current += pod_revision(pod) == self.current_revision
                self.updated += pod_revision(pod) == self.update_revision

    def render(self) -> Obj:
        """The wire form, with ``omitempty`` where the Go type has it."""
        out: Obj = {}
        if self.observed_generation:
            out["observedGeneration"] = self.observed_generation
        out["replicas"] = self.replicas
        for key, value in (("readyReplicas", self.ready), ("currentReplicas", self.current),
                           ("updatedReplicas", self.updated), ("currentRevision", self.current_revision),
                           ("updateRevision", self.update_revision)):
            if value:
                out[key] = value
        out["collisionCount"] = self.collision_count
        out["availableReplicas"] = self.available
        return out

    def differs_from(self, stored: Obj) -> bool:
        """``inconsistentStatus`` (collisionCount alone does not warrant a write, as upstream)."""
        return (self.observed_generation > _int(stored.get("observedGeneration"))
                or self.replicas != _int(stored.get("replicas"))
                or self.current != _int(stored.get("currentReplicas"))
                or self.ready != _int(stored.get("readyReplicas"))
                or self.updated != _int(stored.get("updatedReplicas"))
                or self.current_revision != (stored.get("currentRevision") or "")
                or self.available != _int(stored.get("availableReplicas"))
                or self.update_revision != (stored.get("updateRevision") or ""))


class _SetSync:
    """One pass of ``syncStatefulSet`` for one set; raises ``ApiError`` when the pass should be retried."""

    def __init__(self, ctl: StatefulSetController, sts: Obj, selector: LabelSelector) -> None:
        self.ctl = ctl
        self.api = ctl.api
        self.sts = sts
        self.selector = selector
        meta = sts["metadata"]
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.spec: Obj = sts.get("spec") or {}
        self.now = clock.now()
        self.min_ready = _int(self.spec.get("minReadySeconds"))
        self.start = _int((self.spec.get("ordinals") or {}).get("start"))
        self.replica_count = _int(self.spec.get("replicas"), 1)
        policy = self.spec.get("persistentVolumeClaimRetentionPolicy") or {}
        self.when_deleted = policy.get("whenDeleted") or "Retain"
        self.when_scaled = policy.get("whenScaled") or "Retain"
        self.deleting = bool(meta.get("deletionTimestamp"))

    # -- entry point ----------------------------------------------------------------------------------
    def run(self) -> float | None:
        """Reconcile; returns seconds after which the set must be looked at again (availability), or None."""
        pods = self.claim_pods()
        revisions = self.claim_revisions()
        current, update, collision_count = self.resolve_revisions(revisions)
        status, err = self.update_set(current, update, collision_count, pods)
        self.write_status(status)
        self.truncate_history(pods, revisions, current, update)
        if err is not None:
            raise err
        return self.availability_recheck(pods, status)

    # -- pods and revisions this set owns (ControllerRefManager) ----------------------------------------
    def _matches(self, obj: Obj) -> bool:
        return bool(self.selector.matches(obj["metadata"].get("labels") or {}))

    def claim_pods(self) -> list[Obj]:
        """``ClaimPods`` with the ``isMemberOf`` filter: adopt matching orphans, release non-matching pods."""
        owned = []
        for pod in self.api.store.list(self.ctl.pods.key, self.ns):
            ref = controller_ref(pod)
            match = self._matches(pod) and parent_and_ordinal(pod["metadata"]["name"])[0] == self.name
            if ref is not None:
                if ref.get("uid") != self.uid:
                    continue
                if match:
                    owned.append(pod)
                elif not self.deleting:
                    self._set_owner_refs(self.ctl.pods, pod, [r for r in pod["metadata"]["ownerReferences"]
                                                              if r.get("uid") != self.uid])
                continue
            if not match or self.deleting or is_terminating(pod):
                continue
            adopted = self._set_owner_refs(self.ctl.pods, pod, [*(pod["metadata"].get("ownerReferences") or []),
                                                                new_controller_ref(self.sts)])
            if adopted is not None:
                owned.append(adopted)
        return owned

    def _set_owner_refs(self, rt: Any, obj: Obj, refs: list[Obj]) -> Obj | None:
        body = copy.deepcopy(obj)
        if refs:
            body["metadata"]["ownerReferences"] = refs
        else:
            body["metadata"].pop("ownerReferences", None)
        try:
            return self.api.update(rt, self.ns, obj["metadata"]["name"], body)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def claim_revisions(self) -> list[Obj]:
        """``ListRevisions`` + ``AdoptOrphanRevisions``, sorted by revision, creation time, name."""
        out = []
        for rev in self.api.store.list(self.ctl.revisions.key, self.ns):
            if not self._matches(rev):
                continue
            ref = controller_ref(rev)
            if ref is None and not self.deleting:
                adopted = self._set_owner_refs(self.ctl.revisions, rev,
                                               [*(rev["metadata"].get("ownerReferences") or []),
                                                new_controller_ref(self.sts)])
                if adopted is not None:
                    out.append(adopted)
            elif ref is not None and ref.get("uid") == self.uid:
                out.append(rev)
        out.sort(key=lambda r: (_int(r.get("revision")), r["metadata"].get("creationTimestamp") or "",
                                r["metadata"]["name"]))
        return out

    # -- ControllerRevisions -------------------------------------------------------------------------
    def _template_patch(self) -> Obj:
        """``getPatch``: the strategic merge patch that restores this set's pod template."""
        template = copy.deepcopy(self.spec.get("template") or {})
        meta = template.get("metadata")
        if isinstance(meta, dict) and meta.get("creationTimestamp", "") is None:
            # Go (1.34+, omitzero) does not encode a zero creationTimestamp; leaving the null in would
            # give every revision a different name than a real cluster's for the same template.
            del meta["creationTimestamp"]
        template["$patch"] = "replace"
        return {"spec": {"template": template}}

    @staticmethod
    def _same_data(a: Obj, b: Obj) -> bool:
        return go_json_sorted(a.get("data")) == go_json_sorted(b.get("data"))

    def resolve_revisions(self, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """``getStatefulSetRevisions``: find or create the update revision; find the current one."""
        collision_count = _int((self.sts.get("status") or {}).get("collisionCount"))
        data = self._template_patch()
        hash_ = revision_hash(data, collision_count)
        next_number = _int(revisions[-1].get("revision")) + 1 if revisions else 1
        labels = dict(((self.spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
        labels[REVISION_HASH_LABEL] = hash_
        candidate: Obj = {
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": revision_name(self.name, hash_), "namespace": self.ns, "labels": labels,
                         "ownerReferences": [new_controller_ref(self.sts)]},
            "data": data, "revision": next_number,
        }
        if self.sts["metadata"].get("annotations"):
            candidate["metadata"]["annotations"] = dict(self.sts["metadata"]["annotations"])
        equal = [r for r in revisions if self._same_data(r, candidate)]
        if equal and self._same_data(revisions[-1], equal[-1]):
            update = revisions[-1]  # the template did not change
        elif equal:
            # A rollback to an earlier template: that revision becomes the newest again.
            body = copy.deepcopy(equal[-1])
            body["revision"] = next_number
            update = self.api.update(self.ctl.revisions, self.ns, body["metadata"]["name"], body)
        else:
            update, collision_count = self._create_revision(candidate, data, collision_count)
        current_name = (self.sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == current_name), update)
        return current, update, collision_count

    def _create_revision(self, candidate: Obj, data: Obj, collision_count: int) -> tuple[Obj, int]:
        """``CreateControllerRevision``: on a name clash with different data, bump the collision count."""
        while True:
            candidate["metadata"]["name"] = revision_name(self.name, revision_hash(data, collision_count))
            try:
                return self.api.create(self.ctl.revisions, self.ns, candidate), collision_count
            except ApiError as err:
                if err.code != 409 or err.reason != "AlreadyExists":
                    raise
                existing = self.api.try_get(self.ctl.revisions, self.ns, candidate["metadata"]["name"])
                if existing is not None and self._same_data(existing, candidate):
                    return existing, collision_count
                collision_count += 1

    def truncate_history(self, pods: list[Obj], revisions: list[Obj], current: Obj, update: Obj) -> None:
        """``truncateHistory``: delete the oldest revisions no pod uses beyond ``revisionHistoryLimit``."""
        live = {current["metadata"]["name"], update["metadata"]["name"], *(pod_revision(p) for p in pods)}
        history = [r for r in revisions if r["metadata"]["name"] not in live]
        limit = _int(self.spec.get("revisionHistoryLimit"), 10)
        for rev in history[: max(0, len(history) - limit)]:
            with contextlib.suppress(ApiError):
                self.api.delete(self.ctl.revisions, self.ns, rev["metadata"]["name"])

    # -- building pods and claims ---------------------------------------------------------------------
    def _claims_for(self, ordinal: int) -> list[tuple[str, Obj]]:
        """``getPersistentVolumeClaims``: (template name, claim) per volumeClaimTemplate, in spec order."""
        match_labels = (self.spec.get("selector") or {}).get("matchLabels") or {}
        out = []
        for template in self.spec.get("volumeClaimTemplates") or []:
            claim = copy.deepcopy(template)
            claim.pop("status", None)
            meta = claim.setdefault("metadata", {})
            tname = meta.get("name", "")
            meta["name"] = f"{tname}-{self.name}-{ordinal}"
            meta["namespace"] = self.ns
            meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
            claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
            out.append((tname, claim))
        return out

    def new_pod(self, template: Obj, revision: str, ordinal: int) -> Obj:
        """``newVersionedStatefulSetPod`` for one revision: a placeholder pod (no status) ready to create."""
        tmeta = template.get("metadata") or {}
        name = f"{self.name}-{ordinal}"
        meta: Obj = {"name": name, "generateName": f"{self.name}-", "namespace": self.ns,
                     "labels": {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                                REVISION_LABEL: revision},
                     "ownerReferences": [new_controller_ref(self.sts)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        spec = copy.deepcopy(template.get("spec") or {})
        spec["hostname"] = name
        if self.spec.get("serviceName"):
            spec["subdomain"] = self.spec["serviceName"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        self._update_storage(pod)
        return pod

    def _update_storage(self, pod: Obj) -> None:
        """``updateStorage``: one PVC volume per claim template, replacing same-named volumes."""
        claims = self._claims_for(ordinal_of(pod))
        names = {tname for tname, _ in claims}
        volumes = [{"name": tname, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
                   for tname, claim in claims]
        volumes += [v for v in pod["spec"].get("volumes") or [] if v.get("name") not in names]
        if volumes:
            pod["spec"]["volumes"] = volumes

    def _identity_matches(self, pod: Obj) -> bool:
        meta = pod["metadata"]
        parent, ordinal = parent_and_ordinal(meta["name"])
        return (ordinal >= 0 and parent == self.name and meta.get("namespace") == self.ns
                and (meta.get("labels") or {}).get(POD_NAME_LABEL) == meta["name"])

    def _storage_matches(self, pod: Obj) -> bool:
        if ordinal_of(pod) < 0:
            return False
        volumes = {v.get("name"): v for v in pod["spec"].get("volumes") or []}
        for tname, claim in self._claims_for(ordinal_of(pod)):
            source = (volumes.get(tname) or {}).get("persistentVolumeClaim") or {}
            if source.get("claimName") != claim["metadata"]["name"]:
                return False
        return True

    # -- pod and claim writes (StatefulPodControl) -----------------------------------------------------
    def _pod_event(self, verb: str, pod: Obj, err: ApiError | None) -> None:
        name = pod["metadata"]["name"]
        if err is None:
            self.ctl.recorder.event(self.sts, "Normal", f"Successful{verb.title()}",
                                    f"{verb} Pod {name} in StatefulSet {self.name} successful")
        else:
            self.ctl.recorder.event(self.sts, "Warning", f"Failed{verb.title()}",
                                    f"{verb} Pod {name} in StatefulSet {self.name} failed error: {err.message}")

    def _claim_event(self, pod: Obj, claim: str, err: ApiError | None) -> None:
        pname = pod["metadata"]["name"]
        if err is None:
            self.ctl.recorder.event(self.sts, "Normal", "SuccessfulCreate",
                                    f"create Claim {claim} Pod {pname} in StatefulSet {self.name} success")
        else:
            self.ctl.recorder.event(self.sts, "Warning", "FailedCreate",
                                    f"create Claim {claim} for Pod {pname} in StatefulSet {self.name} failed "
                                    f"error: {err.message}")

    def _create_claims(self, pod: Obj) -> None:
        """``createPersistentVolumeClaims``: create the missing ones; a claim being deleted is an error."""
        errors: list[ApiError] = []
        for _, claim in self._claims_for(ordinal_of(pod)):
            cname = claim["metadata"]["name"]
            existing = self.api.try_get(self.ctl.pvcs, self.ns, cname)
            if existing is None:
                try:
                    self.api.create(self.ctl.pvcs, self.ns, claim)
                    self._claim_event(pod, cname, None)
                except ApiError as err:
                    errors.append(ApiError(err.code, err.reason, f"failed to create PVC {cname}: {err.message}"))
                    if err.reason != "AlreadyExists":
                        self._claim_event(pod, cname, err)
            elif is_terminating(existing):
                errors.append(ApiError(409, "Conflict", f"pvc {cname} is being deleted"))
        if errors:
            raise errors[0] if len(errors) == 1 else ApiError(
                errors[0].code, errors[0].reason, "[" + ", ".join(e.message for e in errors) + "]")

    def create_pod(self, pod: Obj) -> None:
        """``CreateStatefulPod``: claims first, then the pod, then claim ownership per retention policy."""
        try:
            self._create_claims(pod)
        except ApiError as err:
            self._pod_event("create", pod, err)
            raise
        try:
            self.api.create(self.ctl.pods, self.ns, pod)
        except ApiError as err:
            if err.reason != "AlreadyExists":
                self._pod_event("create", pod, err)
            raise
        try:
            self.update_claims_for_retention(pod)
        except ApiError as err:
            self._pod_event("update", pod, err)
            raise
        self._pod_event("create", pod, None)

    def delete_pod(self, pod: Obj) -> None:
        """``DeleteStatefulPod`` (NotFound is reported but harmless to the caller's progress)."""
        try:
            self.api.delete(self.ctl.pods, self.ns, pod["metadata"]["name"])
        except ApiError as err:
            self._pod_event("delete", pod, err)
            raise
        self._pod_event("delete", pod, None)

    def update_pod(self, pod: Obj) -> None:
        """``UpdateStatefulPod``: restore identity labels, storage volumes and claim ownership."""
        body = copy.deepcopy(pod)
        consistent = True
        if not self._identity_matches(body):
            labels = body["metadata"].setdefault("labels", {})
            labels[POD_NAME_LABEL] = body["metadata"]["name"]
            labels[POD_INDEX_LABEL] = str(ordinal_of(body))
            consistent = False
        try:
            if not self._storage_matches(body):
                self._update_storage(body)
                consistent = False
                self._create_claims(body)
            if not self.claims_match_retention(body):
                self.update_claims_for_retention(body)
                consistent = False
            if consistent:
                return
            self.api.update(self.ctl.pods, self.ns, body["metadata"]["name"], body)
        except ApiError as err:
            self._pod_event("update", pod, err)
            raise
        self._pod_event("update", pod, None)

    # -- PVC retention policy (stateful_set_utils.go) ------------------------------------------------------
    def _in_range(self, pod: Obj) -> bool:
        return self.start <= ordinal_of(pod) < self.start + self.replica_count

    @staticmethod
    def _refers_to(ref: Obj, owner_api_version: str, kind: str, name: str) -> bool:
        return bool(ref.get("apiVersion") == owner_api_version and ref.get("kind") == kind
                    and ref.get("name") == name)

    def _is_set_ref(self, ref: Obj) -> bool:
        return self._refers_to(ref, "apps/v1", "StatefulSet", self.name)

    @staticmethod
    def _is_pod_ref(ref: Obj, pod: Obj) -> bool:
        return _SetSync._refers_to(ref, "v1", "Pod", pod["metadata"]["name"])

    def _has_unexpected_controller(self, claim: Obj, pod: Obj) -> bool:
        if self.when_scaled == "Retain" and self.when_deleted == "Retain":
            return False
        pod_uid = pod["metadata"].get("uid", "")
        for ref in claim["metadata"].get("ownerReferences") or []:
            if self._is_set_ref(ref):
                if ref.get("uid") != self.uid:
                    return True
                continue
            if self._is_pod_ref(ref, pod):
                if ref.get("uid") != pod_uid:
                    return True
                continue
            if ref.get("controller"):
                return True
        return False

    def _has_stale_ref(self, claim: Obj, is_ref: Callable[[Obj], bool], uid: str) -> bool:
        for ref in claim["metadata"].get("ownerReferences") or []:
            if is_ref(ref):
                return bool(ref.get("uid") != uid)
        return False

    @staticmethod
    def _has_owner(claim: Obj, uid: str) -> bool:
        return any(ref.get("uid") == uid for ref in claim["metadata"].get("ownerReferences") or [])

    def _claim_owner_up_to_date(self, claim: Obj, pod: Obj) -> bool:
        """``isClaimOwnerUpToDate``."""
        pod_uid = pod["metadata"].get("uid", "")
        if (self._has_stale_ref(claim, self._is_set_ref, self.uid)
                or self._has_stale_ref(claim, lambda r: self._is_pod_ref(r, pod), pod_uid)):
            return True  # managed by an earlier incarnation: leave it alone
        set_owned, pod_owned = self._has_owner(claim, self.uid), bool(pod_uid) and self._has_owner(claim, pod_uid)
        if self._has_unexpected_controller(claim, pod):
            return not (set_owned or pod_owned)
        for ref in claim["metadata"].get("ownerReferences") or []:
            if ref.get("uid") in (self.uid, pod_uid) and ref.get("uid") and not ref.get("controller"):
                return False
        scaled_down = not self._in_range(pod)
        want_set = self.when_deleted == "Delete" and not (self.when_scaled == "Delete" and scaled_down)
        want_pod = self.when_scaled == "Delete" and scaled_down
        return set_owned == want_set and pod_owned == want_pod

    def _claims_of(self, pod: Obj) -> list[Obj]:
        out = []
        for _, claim in self._claims_for(ordinal_of(pod)):
            existing = self.api.try_get(self.ctl.pvcs, self.ns, claim["metadata"]["name"])
            if existing is not None:
                out.append(existing)
        return out

    def claims_match_retention(self, pod: Obj) -> bool:
        return all(self._claim_owner_up_to_date(c, pod) for c in self._claims_of(pod))

    def update_claims_for_retention(self, pod: Obj) -> None:
        """``UpdatePodClaimForRetentionPolicy``: rewrite our ownerReferences on the pod's claims."""
        for claim in self._claims_of(pod):
            if self._has_unexpected_controller(claim, pod):
                self.ctl.recorder.event(self.sts, "Warning", "ConflictingController",
                                        f"PersistentVolumeClaim {claim['metadata']['name']} has a conflicting "
                                        "OwnerReference that acts as a manging controller, the retention policy "
                                        "is ignored for this claim")
            if self._claim_owner_up_to_date(claim, pod):
                continue
            unexpected = self._has_unexpected_controller(claim, pod)
            refs = [r for r in claim["metadata"].get("ownerReferences") or []
                    if not (self._is_set_ref(r) or self._is_pod_ref(r, pod))]
            if not unexpected:
                scaled_down = not self._in_range(pod)
                if self.when_deleted == "Delete" and not (self.when_scaled == "Delete" and scaled_down):
                    refs.append(new_controller_ref(self.sts))
                if self.when_scaled == "Delete" and scaled_down and pod["metadata"].get("uid"):
                    refs.append(new_controller_ref(pod))
            self._set_owner_refs(self.ctl.pvcs, claim, refs)

    def claim_is_stale(self, pod: Obj) -> bool:
        """``PodClaimIsStale``: a claim still owned by an earlier pod of this name blocks re-creation."""
        if self.when_scaled == "Retain":
            return False
        uid = pod["metadata"].get("uid", "")
        return any(self._has_stale_ref(c, lambda r: self._is_pod_ref(r, pod), uid) for c in self._claims_of(pod))

    # -- the update algorithm (stateful_set_control.go) ------------------------------------------------------
    @staticmethod
    def _template_of(revision: Obj) -> Obj:
        """``ApplyRevision``: the patch replaces the whole template."""
        template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
        template.pop("$patch", None)
        return template

    def update_set(self, current: Obj, update: Obj, collision_count: int,
                   pods: list[Obj]) -> tuple[_Status, ApiError | None]:
        """``updateStatefulSet``: create, fix and delete pods; returns the status and the first write error."""
        cur_name, upd_name = current["metadata"]["name"], update["metadata"]["name"]
        status = _Status(_int(self.sts["metadata"].get("generation"), 1), cur_name, upd_name, collision_count)
        status.count(pods, self.min_ready, self.now)
        replicas: list[Obj | None] = [None] * self.replica_count
        condemned: list[Obj] = []
        for pod in pods:
            ordinal = ordinal_of(pod)
            if self._in_range(pod):
                replicas[ordinal - self.start] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        strategy = self.spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
        current_template, update_template = self._template_of(current), self._template_of(update)
        stored_current = _int((self.sts.get("status") or {}).get("currentReplicas"))
        rolling_update = strategy.get("rollingUpdate")
        for idx, pod in enumerate(replicas):
            if pod is None:
                # Below the partition a missing pod comes back at the current revision (the same
                # condition, precedence included, as newVersionedStatefulSetPod).
                if ((rolling and rolling_update is None and idx < stored_current)
                        or (rolling_update is not None and idx < partition)):
                    replicas[idx] = self.new_pod(current_template, cur_name, self.start + idx)
                else:
                    replicas[idx] = self.new_pod(update_template, upd_name, self.start + idx)
        live: list[Obj] = [p for p in replicas if p is not None]
        condemned.sort(key=ordinal_of, reverse=True)
        first_unhealthy = next((p for p in live if not is_healthy(p)), None)
        if first_unhealthy is None:
            first_unhealthy = next((p for p in reversed(condemned) if not is_healthy(p)), None)
        if self.deleting:
            return status, None
        monotonic = self.spec.get("podManagementPolicy") != "Parallel"
        try:
            if self._run_for_all(live, lambda i: self.process_replica(live, i, monotonic), monotonic):
                status.count(live + condemned, self.min_ready, self.now)
                return status, None
            for pod in condemned:
                if not self.claims_match_retention(pod):
                    self.update_claims_for_retention(pod)
            if self._run_for_all(condemned, lambda i: self.process_condemned(condemned[i], first_unhealthy,
                                                                                monotonic), monotonic):
                status.count(live + condemned, self.min_ready, self.now)
                return status, None
            status.count(live + condemned, self.min_ready, self.now)
            if rolling:
                self.rolling_update(live, upd_name, partition, strategy, status)
        except ApiError as err:
            status.count(live + condemned, self.min_ready, self.now)
            return status, err
        return status, None

    @staticmethod
    def _run_for_all(items: list[Obj], fn: Callable[[int], bool], monotonic: bool) -> bool:
        """``runForAll``: in order, stopping at the first blocker (monotonic), or all of them (burst)."""
        # any() short-circuits on the first blocker only when monotonic; in burst mode every fn runs.
        return any(fn(i) and monotonic for i in range(len(items)))

    def process_replica(self, replicas: list[Obj], i: int, monotonic: bool) -> bool:
        """``processReplica``: returns True when a monotonic set must stop here for this sync."""
        pod = replicas[i]
        if phase(pod) in ("Failed", "Succeeded"):
            if not is_terminating(pod):
                self.delete_pod(pod)
            return True  # the replacement is created once the old pod is gone
        if not is_created(pod):
            if self.claim_is_stale(pod):
                return True
            self.create_pod(pod)
            # Monotonic: stop until the new pod is Ready. Burst: just created, nothing more to check.
            return monotonic
        if phase(pod) == "Pending":
            self._create_claims(pod)
            self.update_claims_for_retention(pod)
        if monotonic and (is_terminating(pod) or not is_running_and_ready(pod)
                          or not is_available(pod, self.min_ready, self.now)):
            return True
        if self._identity_matches(pod) and self._storage_matches(pod) and self.claims_match_retention(pod):
            return False
        self.update_pod(pod)
        return False

    def process_condemned(self, pod: Obj, first_unhealthy: Obj | None, monotonic: bool) -> bool:
        """``processCondemned``: delete one pod beyond the replica range (monotonic: the highest, healthy)."""
        if is_terminating(pod):
            return monotonic
        if monotonic and pod is not first_unhealthy and (
                not is_running_and_ready(pod) or not is_available(pod, self.min_ready, self.now)):
            return True
        self.delete_pod(pod)
        return True

    def rolling_update(self, replicas: list[Obj], update_revision: str, partition: int, strategy: Obj,
                       status: _Status) -> None:
        """``updateStatefulSetAfterInvariantEstablished`` (MaxUnavailableStatefulSet path)."""
        max_unavailable = scaled_value((strategy.get("rollingUpdate") or {}).get("maxUnavailable"),
                                       self.replica_count)
        unavailable = sum(is_unavailable(p, self.min_ready, self.now) for p in replicas)
        if unavailable >= max_unavailable:
            return
        budget = max_unavailable - unavailable
        for target in range(len(replicas) - 1, partition - 1, -1):
            if budget <= 0:
                break
            pod = replicas[target]
            if pod_revision(pod) != update_revision and not is_terminating(pod):
                try:
                    self.delete_pod(pod)
                except ApiError as err:
                    if err.code != 404:
                        raise
                budget -= 1
                status.current -= 1

    # -- status ------------------------------------------------------------------------------------
    def write_status(self, status: _Status) -> None:
        """``updateStatefulSetStatus``: complete a finished rollout; write only when something changed."""
        if (status.updated == self.replica_count and status.ready == self.replica_count
                and status.replicas == self.replica_count):
            status.current = status.updated
            status.current_revision = status.update_revision
        if not status.differs_from(self.sts.get("status") or {}):
            return
        latest = self.api.try_get(self.ctl.sets, self.ns, self.name)
        if latest is None or latest["metadata"]["uid"] != self.uid:
            return
        body = copy.deepcopy(latest)
        body["status"] = status.render()
        self.api.update(self.ctl.sets, self.ns, self.name, body, subresource="status")

    def availability_recheck(self, pods: list[Obj], status: _Status) -> float | None:
        """When a Ready pod will have been Ready for ``minReadySeconds`` (nothing else would wake us then)."""
        if self.min_ready <= 0 or status.available == self.replica_count:
            return None
        waits = []
        for pod in pods:
            if is_running_and_ready(pod) and not is_available(pod, self.min_ready, self.now):
                since = (ready_condition(pod) or {}).get("lastTransitionTime")
                if not since:
                    waits.append(float(self.min_ready))
                    continue
                due = clock.parse(since) + dt.timedelta(seconds=self.min_ready)
                waits.append((due - self.now).total_seconds())
        # Availability is strictly "after" the due time, so look a moment later.
        return max(0.0, min(waits)) + 0.05 if waits else None


# -- the controller: watch, queue, sync ----------------------------------------------------------------------
class StatefulSetController:
    """Runs on the cluster's loop. ``run()`` subscribes to StatefulSets, Pods and PVCs and syncs affected sets."""

    RESYNC_SECONDS = 10.0  # backstop only: every change that matters arrives as a store event
    BACKOFF_BASE = 0.005
    BACKOFF_MAX = 2.0

    def __init__(self, cluster: DevCluster) -> None:
        self.api = cluster.api
        self.sets = self.api.lookup("apps", "v1", "statefulsets")
        self.pods = self.api.lookup("", "v1", "pods")
        self.pvcs = self.api.lookup("", "v1", "persistentvolumeclaims")
        self.revisions = self.api.lookup("apps", "v1", "controllerrevisions")
        self.recorder = EventRecorder(self.api, COMPONENT)
        self._queue: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._subs: list[Subscription] = []
        self._timers: dict[tuple[str, str], tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._syncing = False

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self) -> None:
        store = self.api.store
        self._subs = [store.subscribe(rt.key, None) for rt in (self.sets, self.pods, self.pvcs)]
        pumps = [asyncio.create_task(self._pump(sub), name=f"statefulset-pump-{sub.key}") for sub in self._subs]
        try:
            self._enqueue_all()
            while True:
                if not self._queue:
                    self._wake.clear()
                    try:
                        # asyncio.timeout, not wait_for: wait_for can swallow cancellation on Python 3.11.
                        async with asyncio.timeout(self.RESYNC_SECONDS):
                            await self._wake.wait()
                    except TimeoutError:
                        self._enqueue_all()
                while self._queue:
                    key = next(iter(self._queue))
                    del self._queue[key]
                    self._sync(key)
                    await asyncio.sleep(0)  # let the HTTP server and other controllers run between sets
        finally:
            for task in pumps:
                task.cancel()
            for sub in self._subs:
                store.unsubscribe(sub)
            self._subs = []
            for _, handle in self._timers.values():
                handle.cancel()
            self._timers.clear()

    async def stop(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once every received event has been handled and no set is queued (a test hook)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue or self._syncing or any(not s.queue.empty() for s in self._subs):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("statefulset controller did not go idle")
            await asyncio.sleep(0.005)

    # -- queueing ----------------------------------------------------------------------------------
    def enqueue(self, namespace: str, name: str) -> None:
        self._queue[(namespace, name)] = None
        self._wake.set()

    def _enqueue_after(self, key: tuple[str, str], delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.enqueue(*key)

        self._timers[key] = (due, loop.call_at(due, fire))

    def _enqueue_all(self) -> None:
        for sts in self.api.store.list(self.sets.key):
            self.enqueue(sts["metadata"]["namespace"], sts["metadata"]["name"])

    async def _pump(self, sub: Subscription) -> None:
        while True:
            event = await sub.queue.get()
            if event is None:
                # The feed was cut (an injected watch drop ends every stream of the key). An informer would
                # re-list and watch again; the subscription itself stays registered, so nothing is lost:
                # look at every set again, as after a re-list.
                self._enqueue_all()
                continue
            try:
                for key in self._keys_for(event):
                    self.enqueue(*key)
            except Exception:  # a malformed object must not stop the feed
                log.exception("statefulset controller could not map %s event", event.key)

    def _keys_for(self, event: WatchEvent) -> set[tuple[str, str]]:
        """Which sets an event concerns: the set itself, a pod's or claim's owner, or a set that may adopt."""
        ns = event.obj["metadata"].get("namespace", "")
        if event.key == self.sets.key:
            return {(ns, event.obj["metadata"]["name"])}
        keys: set[tuple[str, str]] = set()
        for obj in (event.obj, event.old):
            if obj is None:
                continue
            if event.key == self.pods.key:
                keys |= self._sets_for_pod(ns, obj)
            else:
                keys |= self._sets_for_claim(ns, obj)
        return keys

    def _sets_for_pod(self, ns: str, pod: Obj) -> set[tuple[str, str]]:
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") == "StatefulSet" and str(ref.get("apiVersion", "")).startswith("apps/"):
                return {(ns, ref["name"])}
            return set()
        from devcluster.selectors import LabelSelector

        labels = pod["metadata"].get("labels") or {}
        out = set()
        for sts in self.api.store.list(self.sets.key, ns):
            try:
                if LabelSelector.from_label_selector_object((sts.get("spec") or {}).get("selector")).matches(labels):
                    out.add((ns, sts["metadata"]["name"]))
            except ApiError:
                continue
        return out

    def _sets_for_claim(self, ns: str, claim: Obj) -> set[tuple[str, str]]:
        name = claim["metadata"]["name"]
        out = set()
        for sts in self.api.store.list(self.sets.key, ns):
            sname = sts["metadata"]["name"]
            for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
                prefix = f"{(template.get('metadata') or {}).get('name', '')}-{sname}-"
                if name.startswith(prefix) and name[len(prefix):].isdigit():
                    out.add((ns, sname))
        return out

    # -- sync --------------------------------------------------------------------------------------
    def _sync(self, key: tuple[str, str]) -> None:
        from devcluster.selectors import LabelSelector

        ns, name = key
        sts = self.api.store.get(self.sets.key, ns, name)
        if sts is None:
            self._failures.pop(key, None)
            return
        self._syncing = True
        try:
            selector = LabelSelector.from_label_selector_object((sts.get("spec") or {}).get("selector"))
            recheck = _SetSync(self, sts, selector).run()
        except ApiError as err:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = min(self.BACKOFF_MAX, self.BACKOFF_BASE * 2**failures)
            log.debug("statefulset %s/%s sync failed (%s); retrying in %.3fs", ns, name, err, delay)
            self._enqueue_after(key, delay)
            return
        except Exception:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            log.exception("statefulset %s/%s sync crashed", ns, name)
            self._enqueue_after(key, min(self.BACKOFF_MAX, self.BACKOFF_BASE * 2**failures))
            return
        finally:
            self._syncing = False
        self._failures.pop(key, None)
        if recheck is not None:
            self._enqueue_after(key, recheck)
