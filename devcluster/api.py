"""The generic registry semantics of kube-apiserver, independent of HTTP.

``ApiServer`` implements create/get/list/update/patch/delete for every served type with the
behaviour clients rely on: optimistic concurrency, generation tracking, status subresource
isolation, finalizers and graceful deletion, namespace lifecycle, CRD schema handling and no-op
detection. The HTTP layer (``devcluster.server``) and the simulated controllers both go through it,
so a controller's write is observed exactly like a client's.
"""

from __future__ import annotations

import copy
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from devcluster import clock, errors
from devcluster.errors import ApiError, Cause
from devcluster.registry import Registry, ResourceType
from devcluster.store import Obj, Store
from devcluster.validation import go_quote

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
TOPOLOGY_LABELS = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region")
_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds",
                "selfLink")


PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")


@dataclass
class DeleteOptions:
    propagation_policy: str | None = None  # Background | Foreground | Orphan
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any] | None, query: Any) -> DeleteOptions:
        """The options of one DELETE, validated as kube-apiserver does.

        As in kube-apiserver's delete handler, a request body (already type-checked against
        ``DeleteOptions``) is the only source when present; otherwise the query parameters are read
        (a non-integer ``gracePeriodSeconds`` is a 400). Then ``ValidateDeleteOptions``: a
        ``propagationPolicy`` other than Foreground/Background/Orphan, or one set together with
        ``orphanDependents``, or a ``dryRun`` other than ``All`` is a 422 on ``DeleteOptions``.
        """
        from devcluster.typecheck import check_dry_run, query_bool, query_int

        orphan: bool | None
        if body is not None:
            pre = body.get("preconditions") or {}
            policy = body.get("propagationPolicy")
            orphan = body.get("orphanDependents")
            grace = body.get("gracePeriodSeconds")
            dry_values = list(body.get("dryRun") or [])
        else:
            pre = {}
            policy = query.get("propagationPolicy")
            orphan = query_bool(query, "orphanDependents")
            grace = query_int(query, "gracePeriodSeconds")
            getall = getattr(query, "getall", None)
            dry_values = list(getall("dryRun", [])) if getall else ([query["dryRun"]] if "dryRun" in query else [])
        causes = []
        if orphan is not None and policy is not None:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_quote(policy)}: orphanDependents and "
                                "deletionPropagation cannot be both set", "propagationPolicy"))
        if policy is not None and policy not in PROPAGATION_POLICIES:
            causes.append(Cause("FieldValueNotSupported", f"Unsupported value: {go_quote(policy)}: supported values: "
                                '"Foreground", "Background", "Orphan", "nil"', "propagationPolicy"))
        if causes:
            raise errors.invalid("DeleteOptions", "meta.k8s.io", "", causes)
        dry = check_dry_run(dry_values, "DeleteOptions")
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        return cls(policy, grace, pre.get("uid"), pre.get("resourceVersion"), dry)


class Strategy:
    """Per-kind hooks (kube-apiserver's RESTCreateStrategy/RESTUpdateStrategy). Default: no-ops."""

    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        """Defaulting and server-set fields on create (mutates ``obj``)."""

    def validate_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> list[Cause]:
        return []

    def prepare_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> None:
        """Defaulting on update (mutates ``new``)."""

    def validate_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
        return []

    def after_commit(self, api: ApiServer, rt: ResourceType, old: Obj | None, new: Obj, event: str) -> None:
        """Side effects that kube-apiserver performs in-process (e.g. CRD registration)."""


def _spec_part(obj: Obj, status_subresource: bool) -> Obj:
    """What counts for metadata.generation: everything but metadata (and status, if a subresource)."""
    skip = {"metadata", "status"} if status_subresource else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


def _comparable(obj: Obj) -> Obj:
    out = dict(obj)
    meta = dict(out.get("metadata", {}))
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


class ApiServer:
    def __init__(self, store: Store | None = None, registry: Registry | None = None) -> None:
        self.store = store or Store()
        self.registry = registry or Registry()
        self.strategies: dict[str, Strategy] = {}
        self.faults: Any = None  # devcluster.faults.FaultInjector, set by the cluster
        self._random = random.Random()

    # -- helpers -----------------------------------------------------------------------------------
    def strategy(self, rt: ResourceType) -> Strategy:
        return self.strategies.get(rt.key) or self.strategies.get("*custom*" if not rt.builtin else "") or Strategy()

    def type_for(self, api_version: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')
        return rt

    def _ns(self, rt: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if rt.namespaced else ""

    def _require(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(rt.key, self._ns(rt, namespace), name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def _invalid(self, rt: ResourceType, name: str, causes: list[Cause]) -> ApiError:
        return errors.invalid(rt.kind, rt.group, name, causes)

    def _schema_pipeline(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        if rt.schema is None:
            return obj
        obj = rt.schema.prune(obj)
        obj = rt.schema.default(obj)
        causes = rt.schema.validate(obj, old)
        if causes:
            raise self._invalid(rt, obj["metadata"].get("name", ""), causes)
        return obj

    def _check_names(self, rt: ResourceType, obj: Obj) -> None:
        from devcluster.validation import validate_labels, validate_object_name

        meta = obj["metadata"]
        causes = validate_object_name(rt.kind, rt.group, meta.get("name"), meta.get("generateName"), rt.name_rule)
        causes += validate_labels(meta.get("labels"))
        if causes:
            raise self._invalid(rt, meta.get("name") or meta.get("generateName") or "", causes)

    def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get("/namespaces", "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            err = errors.forbidden(
                f'{errors.qualified(rt.plural, rt.group)} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                name=name, group=rt.group, kind=rt.plural)
            err.causes = [Cause("NamespaceTerminating",
                                f"namespace {namespace} is being terminated", "metadata.namespace")]
            raise err

    @staticmethod
    def _sub(rt: ResourceType, subresource: str | None) -> ResourceType:
        """The type as fault rules see it: ``pods/status`` writes are not ``pods`` writes."""
        return rt if subresource is None else replace(rt, plural=f"{rt.plural}/{subresource}")

    def _fault(self, verb: str, rt: ResourceType, namespace: str, name: str) -> None:
        if self.faults is not None:
            self.faults.check(verb, rt, namespace, name)

    # -- reads -------------------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        self._fault("get", rt, self._ns(rt, namespace), name)
        return self._require(rt, namespace, name)

    def list(self, rt: ResourceType, namespace: str | None,
             predicate: Callable[[Obj], bool] | None = None) -> tuple[list[Obj], int]:
        """Matching objects sorted by namespace then name, and the list resourceVersion."""
        self._fault("list", rt, namespace or "", "")
        items = self.store.list(rt.key, namespace if rt.namespaced else None)
        if predicate is not None:
            items = [o for o in items if predicate(o)]
        return items, self.store.current_rv

    def list_at(self, rt: ResourceType, namespace: str | None, rv: int,
                predicate: Callable[[Obj], bool] | None = None) -> list[Obj]:
        """Matching objects as they were at revision ``rv`` (<= the current one), sorted like ``list``.

        Rebuilt from the current objects by undoing the logged events after ``rv`` (what etcd's MVCC
        read at a revision gives); raises ``store.ExpiredError`` once the log no longer reaches back to
        ``rv`` (etcd: compacted).
        """
        from devcluster.store import object_key

        ns = namespace if rt.namespaced else None
        events = self.store.events_since(rv, rt.key, ns)
        state = {object_key(o): o for o in self.store.list(rt.key, ns)}
        for event in reversed(events):
            key = object_key(event.obj)
            if event.type == "ADDED" or event.old is None:
                state.pop(key, None)
            else:  # MODIFIED / DELETED: the object as it was before this event
                state[key] = event.old
        items = [state[k] for k in sorted(state)]
        return [o for o in items if predicate(o)] if predicate is not None else items

    # -- create ------------------------------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str | None, body: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(body)
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        meta = obj["metadata"]
        ns = self._ns(rt, namespace or meta.get("namespace"))
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        body_version = obj.get("apiVersion")
        if body_version and body_version != rt.api_version and body_version.rpartition("/")[0] == rt.group:
            raise errors.bad_request(f"the API version in the data ({body_version}) does not match the expected "
                                     f"API version ({rt.api_version})")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(self._random.choice(_GENERATE_ALPHABET) for _ in range(5))
        self._check_names(rt, obj)
        name = meta["name"]
        self._fault("create", rt, ns, name)
        self._check_namespace(rt, ns, name)
        if self.store.get(rt.key, ns, name) is not None:
            raise errors.already_exists(rt.plural, rt.group, name)
        for key in (*_SERVER_META, "resourceVersion"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = clock.rfc3339()
        if rt.tracks_generation:
            meta["generation"] = 1
        if rt.status_subresource and not rt.builtin:
            obj.pop("status", None)
        strategy = self.strategy(rt)
        strategy.prepare_create(self, rt, obj)
        obj = self._schema_pipeline(rt, obj, None)
        causes = strategy.validate_create(self, rt, obj)
        if causes:
            raise self._invalid(rt, name, causes)
        if dry_run:
            return obj
        committed = self.store.commit(rt.key, obj, "ADDED", None)
        strategy.after_commit(self, rt, None, committed, "ADDED")
        return committed

    # -- update ------------------------------------------------------------------------------------
    def update(self, rt: ResourceType, namespace: str | None, name: str, body: Obj, *,
               subresource: str | None = None, dry_run: bool = False, require_rv: bool = True) -> Obj:
        """PUT semantics. ``require_rv`` is False for PATCH, whose precondition is checked by ``patch``."""
        ns = self._ns(rt, namespace)
        self._fault("update", self._sub(rt, subresource), ns, name)
        old = self._require(rt, ns, name)
        new = copy.deepcopy(body)
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        meta = new["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request("the name of the object ({}) does not match the name on the URL ({})".format(meta["name"], name))
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                     "on the request")
        sent_rv = meta.get("resourceVersion")
        if sent_rv:
            if str(sent_rv) != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, name)
        elif require_rv and not rt.allow_unconditional_update:
            raise self._invalid(rt, name, [Cause("FieldValueInvalid", "Invalid value: 0x0: must be specified for "
                                                 "an update", "metadata.resourceVersion")])
        return self._commit_update(rt, old, new, subresource=subresource, dry_run=dry_run)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, body: bytes, content_type: str, *,
              subresource: str | None = None, dry_run: bool = False) -> Obj:
        from devcluster.patch import apply_patch

        ns = self._ns(rt, namespace)
        self._fault("patch", self._sub(rt, subresource), ns, name)
        old = self._require(rt, ns, name)
        patched = apply_patch(copy.deepcopy(old), body, content_type, rt.kind if rt.builtin else None)
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise self._invalid(rt, name, [Cause("FieldValueRequired", "Required value", "metadata")])
        # A resourceVersion written by the patch is a precondition; otherwise the patch applies to `old`.
        rv = patched["metadata"].get("resourceVersion")
        if rv is not None and str(rv) != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        return self.update(rt, ns, name, patched, subresource=subresource, dry_run=dry_run, require_rv=False)

    def _commit_update(self, rt: ResourceType, old: Obj, new: Obj, *, subresource: str | None,
                       dry_run: bool) -> Obj:
        name = old["metadata"]["name"]
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        if subresource == "status":
            # Only status may change through /status; metadata and spec stay as stored.
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta, old_meta = new["metadata"], old["metadata"]
        for key in _SERVER_META:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = old_meta["namespace"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if subresource != "status":
            self._check_names(rt, new)
        strategy = self.strategy(rt)
        strategy.prepare_update(self, rt, old, new)
        new = self._schema_pipeline(rt, new, old)
        meta = new["metadata"]  # pruning may have replaced the metadata dict (ObjectMeta round-trip)
        causes = strategy.validate_update(self, rt, old, new)
        if old_meta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                quoted = ", ".join(f'"{f}"' for f in added)
                causes.append(Cause("FieldValueForbidden", "Forbidden: no new finalizers can be added if the "
                                    f"object is being deleted, found new finalizers []string{{{quoted}}}",
                                    "metadata.finalizers"))
        if causes:
            raise self._invalid(rt, name, causes)
        if rt.tracks_generation and _spec_part(new, rt.status_subresource) != _spec_part(old, rt.status_subresource):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if _comparable(new) == _comparable(old):
            return old  # a write that changes nothing persists nothing and emits no event
        if dry_run:
            return new
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
            if meta.get("deletionTimestamp") and self._deletion_complete(rt, new):
                committed = self.store.commit(rt.key, new, "DELETED", old)
                strategy.after_commit(self, rt, old, committed, "DELETED")
                return committed
        committed = self.store.commit(rt.key, new, "MODIFIED", old)
        strategy.after_commit(self, rt, old, committed, "MODIFIED")
        return committed

    def _deletion_complete(self, rt: ResourceType, obj: Obj) -> bool:
        """Finalizers are gone; namespaces also wait for their spec.finalizers, pods for the kubelet."""
        if rt.key == "/namespaces":
            return not (obj.get("spec") or {}).get("finalizers")
        if rt.key == "/pods":
            return obj["metadata"].get("deletionGracePeriodSeconds", 0) == 0
        return True

    # -- delete ------------------------------------------------------------------------------------
    def delete(self, rt: ResourceType, namespace: str | None, name: str,
               options: DeleteOptions | None = None) -> tuple[Obj, bool]:
        """Returns the object as the response shows it and whether it is gone from storage."""
        opts = options or DeleteOptions()
        ns = self._ns(rt, namespace)
        self._fault("delete", rt, ns, name)
        old = self._require(rt, ns, name)
        meta = old["metadata"]
        if opts.precondition_uid and opts.precondition_uid != meta["uid"]:
            raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {errors.qualified(rt.plural, rt.group)}"
                           f' "{name}": Precondition failed: UID in precondition: {opts.precondition_uid}, UID in '
                           f"object meta: {meta['uid']}", name=name, group=rt.group, kind=rt.plural)
        if opts.precondition_rv and opts.precondition_rv != meta["resourceVersion"]:
            raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {errors.qualified(rt.plural, rt.group)}"
                           f' "{name}": Precondition failed: ResourceVersion in precondition: {opts.precondition_rv}, '
                           f"ResourceVersion in object meta: {meta['resourceVersion']}",
                           name=name, group=rt.group, kind=rt.plural)
        new = copy.deepcopy(old)
        new_meta = new["metadata"]
        finalizers = list(new_meta.get("finalizers") or [])
        policy = opts.propagation_policy
        if policy == "Foreground" and "foregroundDeletion" not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append("orphan")
        graceful = self._grace_seconds(rt, old, opts)
        waits_for_namespace = rt.key == "/namespaces" and bool((old.get("spec") or {}).get("finalizers"))
        if not finalizers and graceful == 0 and not waits_for_namespace:
            if opts.dry_run:
                return old, True
            committed = self.store.commit(rt.key, new, "DELETED", old)
            self.strategy(rt).after_commit(self, rt, old, committed, "DELETED")
            return committed, True
        if meta.get("deletionTimestamp"):
            # Already being deleted: a pod's grace period may only get shorter.
            current = meta.get("deletionGracePeriodSeconds")
            if rt.key == "/pods" and current is not None and graceful < current:
                new_meta["deletionGracePeriodSeconds"] = graceful
                if not opts.dry_run:
                    if graceful == 0 and not finalizers:
                        return self.store.commit(rt.key, new, "DELETED", old), True
                    return self.store.commit(rt.key, new, "MODIFIED", old), False
            return old, False
        if finalizers:
            new_meta["finalizers"] = finalizers
        new_meta["deletionTimestamp"] = clock.rfc3339(clock.now() + _seconds(graceful))
        new_meta["deletionGracePeriodSeconds"] = graceful
        if rt.tracks_generation:
            new_meta["generation"] = int(meta.get("generation", 1)) + 1
        if rt.key == "/namespaces":
            new.setdefault("status", {})["phase"] = "Terminating"
        if opts.dry_run:
            return new, False
        committed = self.store.commit(rt.key, new, "MODIFIED", old)
        self.strategy(rt).after_commit(self, rt, old, committed, "MODIFIED")
        return committed, False

    def _grace_seconds(self, rt: ResourceType, obj: Obj, opts: DeleteOptions) -> int:
        if rt.key != "/pods":
            return 0
        # An unscheduled pod (or a pod whose kubelet never ran it) goes at once, as in kube-apiserver.
        if not (obj.get("spec") or {}).get("nodeName"):
            return 0
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if opts.grace_period_seconds is not None:
            return max(0, opts.grace_period_seconds)
        return int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    def finalize_namespace(self, name: str, spec_finalizers: list[str]) -> Obj:
        """The ``/finalize`` subresource: set ``spec.finalizers`` (the namespace controller's last step)."""
        rt = self.registry.lookup("", "v1", "namespaces")
        assert rt is not None
        old = self._require(rt, None, name)
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["finalizers"] = spec_finalizers
        if not spec_finalizers:
            new["spec"].pop("finalizers")
        if _comparable(new) == _comparable(old):
            return old
        if old["metadata"].get("deletionTimestamp") and not spec_finalizers and not new["metadata"].get("finalizers"):
            return self.store.commit(rt.key, new, "DELETED", old)
        return self.store.commit(rt.key, new, "MODIFIED", old)

    def bind_pod(self, namespace: str, name: str, node_name: str,
                 annotations: dict[str, str] | None = None) -> Obj:
        """The ``pods/binding`` subresource: one write that sets ``spec.nodeName`` and PodScheduled=True."""
        rt = self.lookup("", "v1", "pods")
        # A create on the pods/binding subresource: faults armed for "pods" do not hit it.
        self._fault("create", replace(rt, plural="pods/binding"), namespace, name)
        old = self._require(rt, namespace, name)
        conflict = None
        if old["metadata"].get("deletionTimestamp"):
            conflict = f"pod {name} is being deleted, cannot be assigned to a host"
        elif (old.get("spec") or {}).get("nodeName"):
            conflict = f'pod {name} is already assigned to node "{old["spec"]["nodeName"]}"'
        if conflict:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": {conflict}',
                           name=name, kind="pods/binding")
        new = copy.deepcopy(old)
        new["spec"]["nodeName"] = node_name
        # PodTopologyLabelsAdmission (KEP-4742, on by default since 1.35): binding copies the node's zone and
        # region labels onto the pod, so the downward API can expose them (e.g. as broker.rack).
        node = self.store.get("/nodes", "", node_name)
        node_labels = (node or {}).get("metadata", {}).get("labels") or {}
        for key in TOPOLOGY_LABELS:
            if key in node_labels:
                new["metadata"].setdefault("labels", {})[key] = node_labels[key]
        if annotations:
            new["metadata"].setdefault("annotations", {}).update(annotations)
        conditions = new.setdefault("status", {}).setdefault("conditions", [])
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current is None:
            current = {"type": "PodScheduled"}
            conditions.append(current)
        if current.get("status") != "True":
            current["lastTransitionTime"] = clock.rfc3339()
        current.update({"status": "True", "lastProbeTime": None,
                        "observedGeneration": old["metadata"].get("generation", 1)})
        current.pop("reason", None)
        current.pop("message", None)
        return self.store.commit(rt.key, new, "MODIFIED", old)

    # -- convenience for in-process controllers ----------------------------------------------------
    def lookup(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.lookup(group, version, plural)
        if rt is None:
            raise KeyError(f"{group}/{version}/{plural} is not served")
        return rt

    def try_get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self.store.get(rt.key, self._ns(rt, namespace), name)


def _seconds(n: int) -> Any:
    import datetime as dt

    return dt.timedelta(seconds=n)


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(string.ascii_lowercase) for _ in range(n))
