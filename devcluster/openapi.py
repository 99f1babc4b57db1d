"""``/openapi/v2`` and ``/openapi/v3`` documents, and the unknown-field checks behind ``fieldValidation``.

What kubectl needs, and what is served:

* ``/openapi/v3`` — the index (``{"paths": {"apis/<g>/<v>": {"serverRelativeURL": ...?hash=H}}}``) with
  ``H`` the SHA-512 of the group-version document, so kubectl's disk cache never serves a stale one.
* ``/openapi/v3/<api|apis/g>/<v>`` — one OpenAPI 3.0 document per group-version with every resource
  path and its operations tagged with ``x-kubernetes-group-version-kind`` / ``x-kubernetes-action``.
  PATCH and POST/PUT advertise the ``fieldValidation`` query parameter, so ``kubectl apply``/``create``
  send ``fieldValidation=Strict`` and leave validation to the server (see :func:`unknown_fields`).
  Custom resources carry their CRD version's ``openAPIV3Schema`` as a component schema (named
  like kube-apiserver's, ``<reversed group>.<version>.<Kind>``) plus ``apiVersion``/``kind``/``metadata``.
* ``/openapi/v2`` — a minimal Swagger 2.0 document (JSON, or the gnostic protobuf kubectl asks for)
  without definitions.

Deliberate gaps (documented choices, not accidents):

* Built-in kinds get paths but no component schemas. kubectl's client-side ``apply`` then computes its
  strategic merge patch from the types compiled into kubectl (``x-kubernetes-patch-merge-key`` and
  friends are not available here; a schema *without* them would make kubectl replace lists instead of
  merging them). Consequence: ``kubectl explain`` works for custom resources only.
* The v2 document has no definitions: with the v3 documents present kubectl never needs them.

Field validation (``fieldValidation=Ignore|Warn|Strict``, default ``Warn``): unknown fields of built-in
kinds are found with the ``kubernetes`` Python client's models (the same API version the project
targets); those of custom resources are the fields the CRD's structural schema prunes. Duplicate JSON
keys are not detected.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devcluster import discovery, errors
from devcluster.errors import ApiError
from devcluster.registry import ResourceType
from devcluster.store import Obj

if TYPE_CHECKING:
    from devcluster.api import ApiServer

# What clients put in Accept (the legacy gnostic name, with an ``@``) and what kube-openapi answers in
# Content-Type: Go's mime.ParseMediaType rejects the ``@``, so the response uses the dotted form.
PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF_V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"

_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                    "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
                    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
                    "api-conventions.md#resources")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer this "
             "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
             "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")
_METADATA_DOC = ("Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/"
                 "sig-architecture/api-conventions.md#metadata")
_FIELD_VALIDATION_DOC = (
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently "
    "dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This "
    "is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response "
    "header for each unknown field that is dropped from the object, and for each duplicate field that is "
    "encountered. The request will still succeed if there are no other errors, and will only persist the last of "
    "any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest "
    "error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The "
    "error returned from the server will contain all unknown and duplicate fields encountered.")


# -- documents -------------------------------------------------------------------------------------
def _gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _gvk(rt: ResourceType, kind: str | None = None) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": kind or rt.kind}


def schema_name(rt: ResourceType, kind: str | None = None) -> str:
    """kube-apiserver's component name for a custom resource: reversed group, version, kind."""
    reversed_group = ".".join(reversed(rt.group.split(".")))
    return f"{reversed_group}.{rt.version}.{kind or rt.kind}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": type_, "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. An invalid or "
                  "unrecognized dryRun directive will result in an error response and no further processing of "
                  "the request. Valid values are: - All: all dry run stages will be processed")
_FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or entity that is "
                        "making these changes.")
_FIELD_VALIDATION = _query("fieldValidation", _FIELD_VALIDATION_DOC)
_FORCE = _query("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting "
                "fields owned by other people.", "boolean")


def _list_params() -> list[dict[str, Any]]:
    return [_query(n, n, t) for n, t in (
        ("allowWatchBookmarks", "boolean"), ("continue", "string"), ("fieldSelector", "string"),
        ("labelSelector", "string"), ("limit", "integer"), ("resourceVersion", "string"),
        ("resourceVersionMatch", "string"), ("sendInitialEvents", "boolean"), ("timeoutSeconds", "integer"),
        ("watch", "boolean"))]


def _body(schema: dict[str, Any], content_types: tuple[str, ...] = ("*/*",)) -> dict[str, Any]:
    return {"content": {ct: {"schema": schema} for ct in content_types}, "required": True}


def _responses(schema: dict[str, Any] | None, *codes: str) -> dict[str, Any]:
    content = {"application/json": {"schema": schema}, "application/yaml": {"schema": schema},
               "application/vnd.kubernetes.protobuf": {"schema": schema}} if schema is not None else None
    out: dict[str, Any] = {}
    for code in codes:
        out[code] = {"description": {"200": "OK", "201": "Created", "202": "Accepted"}[code]}
        if content is not None:
            out[code]["content"] = content
    out["401"] = {"description": "Unauthorized"}
    return out


def _operation_id(verb: str, rt: ResourceType, namespaced: bool, suffix: str = "") -> str:
    group = "".join(p.capitalize() for p in rt.group.replace("-", ".").split(".")) if rt.group else "Core"
    scope = "Namespaced" if namespaced else ""
    return f"{verb}{group}{rt.version.capitalize()}{scope}{rt.kind}{suffix}"


def _op(rt: ResourceType, action: str, verb: str, description: str, namespaced: bool,
        response: dict[str, Any] | None, codes: tuple[str, ...], *, kind: str | None = None,
        params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        suffix: str = "") -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [_gv_key(rt.group, rt.version).replace("/", "_")],
        "description": description,
        "operationId": _operation_id(verb, rt, namespaced, suffix),
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    op["responses"] = _responses(response, *codes)
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = _gvk(rt, kind)
    return op


def _patch_types(rt: ResourceType) -> tuple[str, ...]:
    base = ("application/json-patch+json", "application/merge-patch+json")
    # Strategic merge patch exists for built-in kinds only (a custom resource answers 415).
    return (*base, "application/strategic-merge-patch+json", "application/apply-patch+yaml") if rt.builtin \
        else (*base, "application/apply-patch+yaml")


def _resource_paths(rt: ResourceType, has_schema: bool) -> dict[str, Any]:
    """Every REST path of one resource, with its operations."""
    obj_schema = _ref(schema_name(rt)) if has_schema else None
    list_schema = _ref(schema_name(rt, rt.list_kind)) if has_schema else None
    body = _body(obj_schema or {"type": "object"})
    base = rt.base_path
    ns_param = {"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams "
                "and projects", "required": True, "schema": {"type": "string", "uniqueItems": True}}
    name_param = {"name": "name", "in": "path", "description": f"name of the {rt.kind}", "required": True,
                  "schema": {"type": "string", "uniqueItems": True}}
    pretty = _query("pretty", "If 'true', then the output is pretty printed.")
    prefix = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    scope_params = [ns_param, pretty] if rt.namespaced else [pretty]
    ns = rt.namespaced
    paths: dict[str, Any] = {
        prefix: {
            "get": _op(rt, "list", "list", f"list or watch objects of kind {rt.kind}", ns, list_schema, ("200",),
                       kind=rt.kind, params=_list_params()),
            "post": _op(rt, "post", "create", f"create a {rt.kind}", ns, obj_schema, ("200", "201", "202"),
                        params=[_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], body=body),
            "delete": _op(rt, "deletecollection", "deletecollection", f"delete collection of {rt.kind}", ns,
                          _ref(STATUS), ("200",), params=_list_params(), suffix="Collection"),
            "parameters": scope_params,
        },
        f"{prefix}/{{name}}": {
            "get": _op(rt, "get", "read", f"read the specified {rt.kind}", ns, obj_schema, ("200",)),
            "put": _op(rt, "put", "replace", f"replace the specified {rt.kind}", ns, obj_schema, ("200", "201"),
                       params=[_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], body=body),
            "patch": _op(rt, "patch", "patch", f"partially update the specified {rt.kind}", ns, obj_schema,
                         ("200", "201"), params=[_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE],
                         body=_body(_ref(PATCH), _patch_types(rt))),
            "delete": _op(rt, "delete", "delete", f"delete a {rt.kind}", ns, _ref(STATUS), ("200", "202"),
                          params=[_DRY_RUN, _query("gracePeriodSeconds", "duration in seconds", "integer"),
                                  _query("propagationPolicy", "Whether and how garbage collection will be "
                                         "performed.")],
                          body={"content": {"*/*": {"schema": _ref(DELETE_OPTIONS)}}}),
            "parameters": [name_param, *scope_params],
        },
    }
    if rt.namespaced:
        paths[f"{base}/{rt.plural}"] = {
            "get": _op(rt, "list", "list", f"list or watch objects of kind {rt.kind}", False, list_schema,
                       ("200",), params=_list_params(), suffix="ForAllNamespaces"),
            "parameters": [pretty],
        }
    subresources = [s for s, on in (("status", rt.status_subresource), ("scale", rt.scale is not None)) if on]
    for sub in subresources:
        sub_schema = obj_schema if sub == "status" else {"$ref": "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"}
        kind = None if sub == "status" else "Scale"
        sub_rt = rt if sub == "status" else ResourceType("autoscaling", "v1", "Scale", rt.plural, "", rt.namespaced)
        suffix = sub.capitalize()
        paths[f"{prefix}/{{name}}/{sub}"] = {
            "get": _op(sub_rt, "get", "read", f"read {sub} of the specified {rt.kind}", ns, sub_schema, ("200",),
                       kind=kind, suffix=suffix),
            "put": _op(sub_rt, "put", "replace", f"replace {sub} of the specified {rt.kind}", ns, sub_schema,
                       ("200", "201"), kind=kind, params=[_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION],
                       body=_body(sub_schema or {"type": "object"}), suffix=suffix),
            "patch": _op(sub_rt, "patch", "patch", f"partially update {sub} of the specified {rt.kind}", ns,
                         sub_schema, ("200", "201"), kind=kind,
                         params=[_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE],
                         body=_body(_ref(PATCH), _patch_types(rt)), suffix=suffix),
            "parameters": [name_param, *scope_params],
        }
    return paths


def _meta_schemas() -> dict[str, Any]:
    string_map = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    owner_ref = {"type": "object", "required": ["apiVersion", "kind", "name", "uid"], "properties": {
        "apiVersion": {"type": "string", "default": ""}, "blockOwnerDeletion": {"type": "boolean"},
        "controller": {"type": "boolean"}, "kind": {"type": "string", "default": ""},
        "name": {"type": "string", "default": ""}, "uid": {"type": "string", "default": ""}},
        "x-kubernetes-map-type": "atomic"}
    managed = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "fieldsType": {"type": "string"}, "fieldsV1": {"type": "object"},
        "manager": {"type": "string"}, "operation": {"type": "string"}, "subresource": {"type": "string"},
        "time": {"type": "string", "format": "date-time"}}}
    return {
        OBJECT_META: {
            "description": "ObjectMeta is metadata that all persisted resources must have, which includes all "
                           "objects users must create.",
            "type": "object",
            "properties": {
                "annotations": string_map, "creationTimestamp": {"type": "string", "format": "date-time"},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "deletionTimestamp": {"type": "string", "format": "date-time"},
                "finalizers": {"type": "array", "items": {"type": "string", "default": ""},
                               "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
                "generateName": {"type": "string"}, "generation": {"type": "integer", "format": "int64"},
                "labels": string_map,
                "managedFields": {"type": "array", "items": managed, "x-kubernetes-list-type": "atomic"},
                "name": {"type": "string"}, "namespace": {"type": "string"},
                "ownerReferences": {"type": "array", "items": owner_ref, "x-kubernetes-list-map-keys": ["uid"],
                                    "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "uid",
                                    "x-kubernetes-patch-strategy": "merge"},
                "resourceVersion": {"type": "string"}, "selfLink": {"type": "string"},
                "uid": {"type": "string"},
            },
        },
        LIST_META: {"type": "object", "properties": {
            "continue": {"type": "string"}, "remainingItemCount": {"type": "integer", "format": "int64"},
            "resourceVersion": {"type": "string"}, "selfLink": {"type": "string"}}},
        PATCH: {"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH "
                               "request body.", "type": "object"},
        STATUS: {"description": "Status is a return value for calls that don't return other objects.",
                 "type": "object", "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status",
                                                                        "version": "v1"}]},
        DELETE_OPTIONS: {"description": "DeleteOptions may be provided when deleting an API object.",
                         "type": "object"},
        "io.k8s.api.autoscaling.v1.Scale": {
            "description": "Scale represents a scaling request for a resource.", "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
                "kind": {"type": "string", "description": _KIND_DOC},
                "metadata": {"allOf": [_ref(OBJECT_META)], "default": {}, "description": _METADATA_DOC},
                "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "format": "int32"}}},
                "status": {"type": "object", "required": ["replicas"], "properties": {
                    "replicas": {"type": "integer", "format": "int32", "default": 0},
                    "selector": {"type": "string"}}},
            },
            "x-kubernetes-group-version-kind": [{"group": "autoscaling", "kind": "Scale", "version": "v1"}],
        },
    }


def _crd_schemas(api: ApiServer) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``openAPIV3Schema`` of every served custom resource version, by (group, version, plural)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    crd_rt = api.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    if crd_rt is None:
        return out
    for crd in api.store.list(crd_rt.key):
        spec = crd.get("spec") or {}
        plural = (spec.get("names") or {}).get("plural", "")
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(schema, dict):
                out[(spec.get("group", ""), version.get("name", ""), plural)] = schema
    return out


def _custom_schema(rt: ResourceType, raw: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(raw)
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": _KIND_DOC}
    props["metadata"] = {"allOf": [_ref(OBJECT_META)], "description": _METADATA_DOC}
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    return schema


def _custom_list_schema(rt: ResourceType) -> dict[str, Any]:
    return {
        "description": f"{rt.kind}List is a list of {rt.kind}", "type": "object", "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
            "items": {"type": "array", "description": f"List of {rt.plural}. More info: https://git.k8s.io/"
                      "community/contributors/devel/sig-architecture/api-conventions.md", "items":
                      _ref(schema_name(rt))},
            "kind": {"type": "string", "description": _KIND_DOC},
            "metadata": {"allOf": [_ref(LIST_META)], "description": "Standard list metadata. More info: "
                         "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
                         "#types-kinds"},
        },
        "x-kubernetes-group-version-kind": [_gvk(rt, rt.list_kind)],
    }


def group_version_document(api: ApiServer, group: str, version: str) -> dict[str, Any] | None:
    types = api.registry.resources_in(group, version)
    if not types:
        return None
    raw_schemas = _crd_schemas(api)
    paths: dict[str, Any] = {}
    schemas = _meta_schemas()
    for rt in types:
        raw = None if rt.builtin else raw_schemas.get((rt.group, rt.version, rt.plural))
        if raw is not None:
            schemas[schema_name(rt)] = _custom_schema(rt, raw)
            schemas[schema_name(rt, rt.list_kind)] = _custom_list_schema(rt)
        paths.update(_resource_paths(rt, raw is not None))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": discovery.SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _hash(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()


def _index(api: ApiServer) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for group, versions in api.registry.group_versions().items():
        for version in versions:
            doc = group_version_document(api, group, version)
            if doc is not None:
                key = _gv_key(group, version)
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(_encode(doc))}"}
    return {"paths": dict(sorted(paths.items()))}


# -- Swagger 2.0 ---------------------------------------------------------------------------------------
def _pb_string(field: int, value: str) -> bytes:
    data = value.encode()
    return _pb_key(field) + _varint(len(data)) + data


def _pb_key(field: int) -> bytes:
    return _varint(field << 3 | 2)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _v2_protobuf() -> bytes:
    """A gnostic ``openapi_v2.Document``: swagger (1), info (2: title 1, version 2), empty paths (8)."""
    info = _pb_string(1, "Kubernetes") + _pb_string(2, discovery.SERVER_VERSION["gitVersion"])
    return _pb_string(1, "2.0") + _pb_key(2) + _varint(len(info)) + info + _pb_key(8) + _varint(0)


def _v2_json() -> dict[str, Any]:
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": discovery.SERVER_VERSION["gitVersion"]},
            "paths": {}, "definitions": {}}


# -- HTTP ----------------------------------------------------------------------------------------------
def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def serve(request: web.Request, api: ApiServer) -> web.Response:
    """Answer ``/openapi/...``; ``request.match_info['tail']`` is the part after ``/openapi/``."""
    if request.method not in ("GET", "HEAD"):
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    tail = request.match_info.get("tail", "").strip("/")
    if tail == "v2":
        accept = request.headers.get("Accept", "")
        if PROTOBUF_V2 in accept or PROTOBUF_V2_CONTENT_TYPE in accept:
            return web.Response(body=_v2_protobuf(), content_type=PROTOBUF_V2_CONTENT_TYPE)
        return web.Response(body=_encode(_v2_json()), content_type="application/json")
    if tail == "v3":
        return web.Response(body=_encode(_index(api)), content_type="application/json")
    if not tail.startswith("v3/"):
        raise _not_found()
    parts = tail.removeprefix("v3/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        raise _not_found()
    doc = group_version_document(api, group, version)
    if doc is None:
        raise _not_found()
    body = _encode(doc)
    etag = _hash(body)
    requested = request.query.get("hash")
    if requested and requested != etag:
        # kube-openapi redirects a stale hash to the current document.
        raise web.HTTPMovedPermanently(location=f"{request.path}?hash={etag}")
    headers = {"ETag": f'"{etag}"', "Vary": "Accept"}
    if requested:
        headers["Cache-Control"] = "public, immutable"
        headers["Expires"] = "Thu, 31 Dec 2099 23:59:59 GMT"
    else:
        headers["Cache-Control"] = "no-cache, private"
    return web.Response(body=body, content_type="application/json", headers=headers)


# -- field validation -------------------------------------------------------------------------------
FIELD_VALIDATION_VALUES = ("Ignore", "Warn", "Strict")
_MODELS: Any = None


def _models() -> Any:
    global _MODELS
    if _MODELS is None:
        import kubernetes.client.models as models

        _MODELS = models
    return _MODELS


def _model_for(rt: ResourceType) -> Any:
    from devcluster.typecheck import model_class

    return model_class(rt.group, rt.version, rt.kind)


def _walk_model(value: Any, type_name: str, path: str, out: list[str]) -> None:
    """Append the paths of keys that the client model ``type_name`` does not declare."""
    if value is None:
        return
    if type_name.startswith("List[") and isinstance(value, list):
        inner = type_name[5:-1]
        for i, item in enumerate(value):
            _walk_model(item, inner, f"{path}[{i}]", out)
        return
    if type_name.startswith("Dict[") and isinstance(value, dict):
        inner = type_name[5:-1].split(",", 1)[1].strip()
        for key, item in value.items():
            _walk_model(item, inner, f"{path}[{key}]", out)
        return
    cls = getattr(_models(), type_name, None)
    if cls is None or not isinstance(value, dict):
        return  # a scalar, ``object`` (free-form, IntOrString, Quantity) or a type error reported elsewhere
    known = {json_key: cls.openapi_types[attr] for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        child = f"{path}.{key}" if path else key
        if key not in known:
            out.append(child)
        else:
            _walk_model(item, known[key], child, out)


def _pruned_paths(before: Any, after: Any, path: str, out: list[str]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            child = f"{path}.{key}" if path else key
            if key not in after:
                if value is not None:
                    out.append(child)
            else:
                _pruned_paths(value, after[key], child, out)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            _pruned_paths(b, a, f"{path}[{i}]", out)


def unknown_fields(rt: ResourceType, obj: Obj) -> list[str]:
    """Paths (``spec.containers[0].foo``) of fields kube-apiserver would drop as unknown, in document order."""
    if not isinstance(obj, dict):
        return []
    out: list[str] = []
    if rt.builtin:
        cls = _model_for(rt)
        if cls is not None:
            _walk_model(obj, cls.__name__, "", out)
        return out
    if isinstance(obj.get("metadata"), dict):
        _walk_model(obj["metadata"], "V1ObjectMeta", "metadata", out)
    if rt.schema is not None:
        body = {k: v for k, v in obj.items() if k != "metadata"}
        pruned = rt.schema.prune(copy.deepcopy(body))
        _pruned_paths(body, pruned, "", out)
    return out


def drop_fields(obj: Obj, paths: list[str]) -> Obj:
    """A copy of ``obj`` without the given unknown-field paths (what a lenient decode keeps)."""
    import re

    out = copy.deepcopy(obj)
    for path in sorted(paths, key=len, reverse=True):
        tokens = re.findall(r"[^.\[\]]+|\[[^\]]*\]", path)
        node: Any = out
        for token in tokens[:-1]:
            key: Any = token[1:-1] if token.startswith("[") else token
            if isinstance(node, list):
                node = node[int(key)] if key.isdigit() and int(key) < len(node) else None
            elif isinstance(node, dict):
                node = node.get(key)
            if node is None:
                break
        last = tokens[-1]
        last_key = last[1:-1] if last.startswith("[") else last
        if isinstance(node, dict):
            node.pop(last_key, None)
    return out


def field_validation(query: Any, options_kind: str) -> str:
    """The request's ``fieldValidation`` directive (default ``Warn``).

    ``options_kind`` (``CreateOptions``, ``UpdateOptions``, ``PatchOptions``) names the options object in
    the 422 an unsupported value gets, as kube-apiserver words it.
    """
    value = query.get("fieldValidation") or "Warn"
    if value not in FIELD_VALIDATION_VALUES:
        raise errors.invalid(options_kind, "meta.k8s.io", "", [errors.Cause(
            "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: "Ignore", "Strict", "Warn"',
            "fieldValidation")])
    return value


def strict_decoding_message(fields: list[str]) -> str:
    return "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in fields)

