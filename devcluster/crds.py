"""CustomResourceDefinitions: validation, run-time registration in discovery, status and cleanup.

A CRD that is created or updated registers one ``ResourceType`` per served version (with its compiled
schema, subresources and printer columns) and gets the ``NamesAccepted`` and ``Established``
conditions. Deleting it deletes every custom resource of that type first (the
``customresourcecleanup.apiextensions.k8s.io`` finalizer), as kube-apiserver does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

from devcluster import clock
from devcluster.api import ApiServer, DeleteOptions, Strategy
from devcluster.errors import ApiError, Cause
from devcluster.registry import ResourceType, ScaleSpec
from devcluster.store import Obj, WatchEvent

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _condition(type_: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": type_, "status": "True", "lastTransitionTime": clock.rfc3339(), "reason": reason,
            "message": message}


class CrdStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        self._defaults(obj)
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CLEANUP_FINALIZER)
        obj["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "conditions": [], "storedVersions": []}

    def prepare_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> None:
        self._defaults(new)

    @staticmethod
    def _defaults(obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        names = spec.setdefault("names", {})
        if names.get("kind"):
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        spec.setdefault("conversion", {"strategy": "None"})

    def validate_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> list[Cause]:
        return self._validate(api, obj, None)

    def validate_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
        causes = self._validate(api, new, old)
        for key in ("group", "scope"):
            if old["spec"].get(key) != new["spec"].get(key):
                causes.append(Cause("FieldValueInvalid", f'Invalid value: "{new["spec"].get(key)}": field is '
                                    "immutable", f"spec.{key}"))
        return causes

    def _validate(self, api: ApiServer, obj: Obj, old: Obj | None) -> list[Cause]:
        from devcluster.schema import CompiledSchema

        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        causes: list[Cause] = []
        group, plural = spec.get("group", ""), names.get("plural", "")
        if not group:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.group"))
        if not plural:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.names.plural"))
        if not names.get("kind"):
            causes.append(Cause("FieldValueRequired", "Required value", "spec.names.kind"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{spec.get("scope", "")}": supported '
                                'values: "Cluster", "Namespaced"', "spec.scope"))
        name = obj["metadata"]["name"]
        if group and plural and name != f"{plural}.{group}":
            causes.append(Cause("FieldValueInvalid", f'Invalid value: "{name}": must be spec.names.plural+"."+'
                                "spec.group", "metadata.name"))
        versions = spec.get("versions") or []
        if not versions:
            causes.append(Cause("FieldValueInvalid", "Invalid value: []apiextensions.CustomResourceDefinitionVersion"
                                "(nil): must have exactly one version marked as storage version", "spec.versions"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(Cause("FieldValueInvalid", "Invalid value: []apiextensions.CustomResourceDefinitionVersion"
                                "{...}: must have exactly one version marked as storage version", "spec.versions"))
        for i, version in enumerate(versions):
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                causes.append(Cause("FieldValueRequired", "Required value: schemas are required",
                                    f"spec.versions[{i}].schema.openAPIV3Schema"))
                continue
            try:
                CompiledSchema.compile(schema)
            except ValueError as exc:
                causes.append(Cause("FieldValueInvalid", f"Invalid value: {exc}",
                                    f"spec.versions[{i}].schema.openAPIV3Schema"))
        # Another CRD must not already claim these names in the group.
        crd_rt = api.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for other in api.store.list(crd_rt.key):
            if other["metadata"]["name"] == name:
                continue
            ospec = other.get("spec") or {}
            if ospec.get("group") == group and (ospec.get("names") or {}).get("kind") == names.get("kind"):
                causes.append(Cause("FieldValueInvalid", f'Invalid value: "{names.get("kind")}": kind is already '
                                    "in use", "spec.names.kind"))
        return causes

    def after_commit(self, api: ApiServer, rt: ResourceType, old: Obj | None, new: Obj, event: str) -> None:
        if event == "DELETED":
            unregister(api, new)
            return
        if new["metadata"].get("deletionTimestamp"):
            begin_cleanup(api, new)
            return
        register(api, new)
        self._mark_established(api, rt, new)

    @staticmethod
    def _mark_established(api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        spec = obj["spec"]
        names = spec["names"]
        status = copy.deepcopy(obj.get("status") or {})
        accepted = {k: names[k] for k in ("plural", "singular", "shortNames", "kind", "listKind", "categories")
                    if k in names}
        existing = {c["type"]: c for c in status.get("conditions") or []}
        conditions = [existing.get("NamesAccepted") or _condition("NamesAccepted", "NoConflicts",
                                                                  "no conflicts found"),
                      existing.get("Established") or _condition("Established", "InitialNamesAccepted",
                                                                "the initial names have been accepted")]
        stored = list(status.get("storedVersions") or [])
        for v in spec["versions"]:
            if v.get("storage") and v["name"] not in stored:
                stored.append(v["name"])
        new_status = {"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored}
        if new_status != obj.get("status"):
            updated = copy.deepcopy(obj)
            updated["status"] = new_status
            api.update(rt, None, obj["metadata"]["name"], updated, subresource="status")


def resource_types_for(crd: Obj) -> list[ResourceType]:
    from devcluster.schema import CompiledSchema

    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subs = version.get("subresources") or {}
        scale_def = subs.get("scale")
        scale = None
        if isinstance(scale_def, dict):
            scale = ScaleSpec(scale_def.get("specReplicasPath", ".spec.replicas").lstrip("."),
                              scale_def.get("statusReplicasPath", ".status.replicas").lstrip("."),
                              (scale_def.get("labelSelectorPath") or "").lstrip(".") or None)
        schema = CompiledSchema.compile(version["schema"]["openAPIV3Schema"])
        out.append(ResourceType(
            group=spec["group"], version=version["name"], kind=names["kind"], plural=names["plural"],
            singular=names.get("singular", names["kind"].lower()), namespaced=spec["scope"] == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            status_subresource="status" in subs, scale=scale, builtin=False, tracks_generation=True,
            returns_deleted_object=True, allow_unconditional_update=False, schema=schema,
            printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
        ))
    return out


def register(api: ApiServer, crd: Obj) -> None:
    spec = crd["spec"]
    api.registry.remove_group_resource(spec["group"], spec["names"]["plural"])
    for rt in resource_types_for(crd):
        api.registry.add(rt)


def unregister(api: ApiServer, crd: Obj) -> None:
    spec = crd["spec"]
    key = f"{spec['group']}/{spec['names']['plural']}"
    api.registry.remove_group_resource(spec["group"], spec["names"]["plural"])
    api.store.close_subscriptions(key)
    api.store.drop_bucket(key)


def _custom_type(api: ApiServer, crd: Obj) -> ResourceType | None:
    spec = crd["spec"]
    for rt in api.registry:
        if rt.group == spec["group"] and rt.plural == spec["names"]["plural"]:
            return rt
    return None


def begin_cleanup(api: ApiServer, crd: Obj) -> None:
    """Delete every instance; the finalizer goes once none is left (re-checked as instances vanish)."""
    rt = _custom_type(api, crd)
    if rt is not None:
        for obj in list(api.store.list(rt.key)):
            if not obj["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(ApiError):
                    api.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"], DeleteOptions())
    _finish_cleanup_if_empty(api, crd["metadata"]["name"])


def _finish_cleanup_if_empty(api: ApiServer, crd_name: str) -> None:
    crd_rt = api.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    crd = api.store.get(crd_rt.key, "", crd_name)
    if crd is None or not crd["metadata"].get("deletionTimestamp"):
        return
    rt = _custom_type(api, crd)
    if rt is not None and api.store.list(rt.key):
        return
    finalizers = [f for f in crd["metadata"].get("finalizers") or [] if f != CLEANUP_FINALIZER]
    if finalizers != (crd["metadata"].get("finalizers") or []):
        updated = copy.deepcopy(crd)
        updated["metadata"]["finalizers"] = finalizers
        api.update(crd_rt, None, crd_name, updated)


def install_cleanup_listener(api: ApiServer) -> None:
    """When the last instance of a terminating CRD goes, release the CRD (deferred: not inside a commit)."""

    def on_event(event: WatchEvent) -> None:
        if event.type != "DELETED" or event.key.startswith(("/", "apps/", "apiextensions.k8s.io/")):
            return
        crd_rt = api.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        group, _, plural = event.key.partition("/")
        crd = api.store.get(crd_rt.key, "", f"{plural}.{group}")
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            try:
                asyncio.get_running_loop().call_soon(_finish_cleanup_if_empty, api, crd["metadata"]["name"])
            except RuntimeError:
                _finish_cleanup_if_empty(api, crd["metadata"]["name"])

    api.store.listeners.append(on_event)
