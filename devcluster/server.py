"""The HTTP face of devcluster: kube-apiserver's REST paths, verbs and content types over aiohttp.

Paths handled:
  /version, /healthz, /livez, /readyz, /openapi/v2, /openapi/v3[/...]
  /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>
  <base>/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]   (<base> = /api/v1 or /apis/<g>/<v>)
  <base>/watch/...                                               (legacy watch paths)
Every failure is a ``Status`` body with the real code and reason; an unexpected exception becomes a
500 ``InternalError`` and never takes the server down or touches stored objects.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from devcluster import discovery, errors, typecheck
from devcluster.api import ApiServer, DeleteOptions
from devcluster.errors import ApiError
from devcluster.registry import ResourceType
from devcluster.store import ExpiredError, Obj
from devcluster.tables import Target
from devcluster.typecheck import (
    TypeMismatch,
    check_dry_run,
    model_class,
    nesting_exceeds,
    query_bool,
    query_int,
)
from devcluster.validation import go_quote
from devcluster.watch import WatchParams, serve_watch

log = logging.getLogger("devcluster.server")

JSON = "application/json"
# Go's encoding/json stops at 10000 levels; devcluster's own code (deepcopy, schema walks) recurses per
# level, so it stops far earlier -- still deeper than any real manifest (a CRD schema is ~20 levels).
MAX_NESTING = 100
_SUBRESOURCES = ("status", "scale", "finalize", "binding")


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type=JSON, headers=headers)


def _with_warnings(response: web.Response, warnings: list[str]) -> web.Response:
    """RFC 7234 ``Warning: 299 - "text"`` headers, which client-go and kubectl print as warnings."""
    for text in warnings:
        response.headers.add("Warning", "299 - " + json.dumps(text))
    return response


def error_response(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after_seconds is not None:
        headers["Retry-After"] = str(err.retry_after_seconds)
    return _json_response(err.to_status(), status=err.code, headers=headers)


def _decode(raw: bytes, content_type: str) -> Any:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in ("application/yaml", "application/apply-patch+yaml"):
        import yaml

        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}") from None
        except RecursionError:
            raise errors.bad_request("error converting YAML to JSON: exceeded max depth") from None
        if nesting_exceeds(value, MAX_NESTING):
            raise errors.bad_request(f"error converting YAML to JSON: exceeded max depth (nesting deeper than "
                                     f"{MAX_NESTING} levels)")
        return value
    if ctype == "application/vnd.kubernetes.protobuf":
        from devcluster import protobuf  # kubectl's typed generators (create namespace/configmap/secret/...)

        return protobuf.decode(raw)
    if ctype not in ("", JSON, "*/*", "application/json-patch+json", "application/merge-patch+json",
                     "application/strategic-merge-patch+json"):
        raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - accepted '
                       'media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf')
    try:
        value = json.loads(raw or b"null")
    except ValueError as exc:
        raise errors.bad_request(f"json: cannot unmarshal request body: {exc}") from None
    except RecursionError:
        value = None
        too_deep = True
    else:
        too_deep = nesting_exceeds(value, MAX_NESTING)
    if too_deep:
        raise errors.bad_request(f"json: exceeded max depth (nesting deeper than {MAX_NESTING} levels)")
    return value


def _check_patch_depth(raw: bytes, ctype: str) -> None:
    """A JSON patch body nested too deeply is a 400 before it is applied (malformed ones are left to the
    patcher, which words that error itself)."""
    if ctype.split(";")[0].strip().lower() == "application/apply-patch+yaml":
        return
    try:
        value = json.loads(raw or b"null")
    except ValueError:
        return
    except RecursionError:
        value, too_deep = None, True
    else:
        too_deep = nesting_exceeds(value, MAX_NESTING)
    if too_deep:
        raise errors.bad_request(f"json: exceeded max depth (nesting deeper than {MAX_NESTING} levels)")


def _patched_text(raw: bytes, ctype: str, patched: Any) -> str:
    """How kube-apiserver shows a failed patch in its 422: the patch map (``%+v``) for a strategic merge
    patch, otherwise the patched object's JSON."""
    from devcluster.tables import go_text

    if ctype.split(";")[0].strip().lower() == "application/strategic-merge-patch+json":
        return str(go_text(_decode(raw, ctype)))
    return json.dumps(patched, separators=(",", ":"), sort_keys=True)


def _type_check_body(cls: Any, body: Obj, prefix: str) -> None:
    """400 ``<prefix>: json: cannot unmarshal ...`` if ``body`` does not decode into the Go type of ``cls``."""
    if cls is None:
        return
    try:
        typecheck.check(cls, body)
    except TypeMismatch as exc:
        raise errors.bad_request(f"{prefix}: {exc}") from None


def _strip_type(rt: ResourceType, obj: Obj) -> Obj:
    """Built-in list items carry no kind/apiVersion; custom resources keep theirs (as on a real server)."""
    if not rt.builtin:
        return obj
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _encode_continue(rv: int, ns: str, name: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{ns}/{name}\x00"}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_resource_version(value: str) -> int:
    """A resourceVersion parameter as the storage layer parses it (a uint64; else 400 Invalid value)."""
    if not value.isdigit() or not value.isascii():
        raise errors.bad_request(f"resourceVersion: Invalid value: {go_quote(value)}: strconv.ParseUint: parsing "
                                 f"{go_quote(value)}: invalid syntax")
    return int(value)


_INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list.")


def _decode_continue(token: str) -> tuple[int, str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = data["start"].rstrip("\x00").partition("/")
        return int(data["rv"]), ns, name
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                 "(version meta.k8s.io/v1)") from None


class DevServer:
    """Routes HTTP requests to an ``ApiServer``."""

    def __init__(self, api: ApiServer, *, bookmark_interval: float = 5.0) -> None:
        self.api = api
        self.bookmark_interval = bookmark_interval
        self.server_address = "127.0.0.1:0"
        self.app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[self._errors])
        self.app.router.add_get("/version", self._version)
        self.app.router.add_get("/version/", self._version)
        for probe in ("/healthz", "/livez", "/readyz"):
            self.app.router.add_get(probe, self._ok)
        self.app.router.add_route("*", "/openapi/{tail:.*}", self._openapi)
        self.app.router.add_route("*", "/api", self._core_root)
        self.app.router.add_route("*", "/api/", self._core_root)
        self.app.router.add_route("*", "/apis", self._apis_root)
        self.app.router.add_route("*", "/apis/", self._apis_root)
        self.app.router.add_route("*", "/api/{version}{tail:(/.*)?}", self._core)
        self.app.router.add_route("*", "/apis/{group}{tail:(/.*)?}", self._grouped)

    # -- middleware & simple endpoints -------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as err:
            return error_response(err)
        except web.HTTPException:
            raise
        except Exception as exc:  # never crash on input: report it like kube-apiserver would
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    async def _version(self, request: web.Request) -> web.Response:
        return _json_response(discovery.SERVER_VERSION)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _openapi(self, request: web.Request) -> web.Response:
        from devcluster import openapi

        return openapi.serve(request, self.api)

    async def _core_root(self, request: web.Request) -> web.Response:
        return _json_response(discovery.api_versions(self.server_address))

    async def _apis_root(self, request: web.Request) -> web.Response:
        return _json_response(discovery.api_group_list(self.api.registry))

    async def _core(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        return await self._dispatch(request, "", version, request.match_info.get("tail", ""))

    async def _grouped(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info["group"]
        tail = request.match_info.get("tail", "")
        segs = [s for s in tail.split("/") if s]
        if not segs:
            doc = discovery.api_group(self.api.registry, group)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json_response(doc)
        return await self._dispatch(request, group, segs[0], "/" + "/".join(segs[1:]))

    # -- resource paths ----------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request, group: str, version: str, tail: str) -> web.StreamResponse:
        segs = [s for s in tail.split("/") if s]
        if not segs:
            doc = discovery.api_resource_list(self.api.registry, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json_response(doc)
        watch = False
        if segs[0] == "watch":
            watch, segs = True, segs[1:]
        namespace: str | None = None
        if len(segs) >= 3 and segs[0] == "namespaces" and segs[2] not in _SUBRESOURCES:
            namespace, segs = segs[1], segs[2:]
        if not segs or len(segs) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural = segs[0]
        name = segs[1] if len(segs) > 1 else None
        sub = segs[2] if len(segs) > 2 else None
        rt = self.api.registry.lookup(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced is False and namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None and not self._has_subresource(rt, sub):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        q = request.query
        method = request.method
        if watch or (method == "GET" and name is None and query_bool(q, "watch")):
            if name is not None:
                return await self._watch(request, rt, namespace, f"metadata.name={name}")
            return await self._watch(request, rt, namespace, q.get("fieldSelector", ""))
        if name is None:
            if method == "GET":
                return self._list(request, rt, namespace)
            if method == "POST":
                dry_run = check_dry_run(q.getall("dryRun", []), "CreateOptions")
                body = _decode(await request.read(), request.headers.get("Content-Type", ""))
                self._require_object(body)
                self._check_body(rt, body)
                body, warnings = self._check_fields(request, rt, body, "CreateOptions")
                obj = self.api.create(rt, namespace, body, dry_run=dry_run)
                return _with_warnings(_json_response(obj, status=201), warnings)
            if method == "DELETE":
                return await self._delete_collection(request, rt, namespace)
            raise errors.method_not_allowed()
        if sub == "binding":
            return await self._bind(request, namespace or "", name)
        if sub == "scale":
            return await self._scale(request, rt, namespace, name)
        if method == "GET":
            obj = self.api.get(rt, namespace, name)
            return self._render_object(request, rt, obj)
        if method == "PUT":
            dry_run = check_dry_run(q.getall("dryRun", []), "UpdateOptions")
            body = _decode(await request.read(), request.headers.get("Content-Type", ""))
            self._require_object(body)
            self._check_body(rt, body)
            if sub == "finalize":
                return _json_response(self.api.finalize_namespace(name, list((body.get("spec") or {}).get("finalizers") or [])))
            body, warnings = self._check_fields(request, rt, body, "UpdateOptions")
            obj = self.api.update(rt, namespace, name, body, subresource=sub, dry_run=dry_run)
            return _with_warnings(_json_response(obj), warnings)
        if method == "PATCH":
            return await self._patch(request, rt, namespace, name, sub)
        if method == "DELETE":
            opts = await self._delete_options(request)
            obj, gone = self.api.delete(rt, namespace, name, opts)
            if rt.returns_deleted_object or not gone:
                return _json_response(obj)
            return _json_response(self._success_status(rt, obj))
        raise errors.method_not_allowed()

    def _check_body(self, rt: ResourceType, body: Obj) -> None:
        """What kube-apiserver's decoder rejects before any strategy runs (POST/PUT bodies).

        Built-in kinds: a ``kind``/``apiVersion`` naming another type is a 400 (the decoder cannot
        convert it into the URL's type), and a value of the wrong JSON type is a 400 with Go's
        ``json: cannot unmarshal ...`` text (see :mod:`devcluster.typecheck`). Custom resources: an
        ``apiVersion`` of another group is a 400, another ``kind`` a 422 (``ValidateTypeMeta``).
        """
        kind, api_version = body.get("kind"), body.get("apiVersion")
        for field_name, value in (("apiVersion", api_version), ("kind", kind)):
            if value is not None and not isinstance(value, str):
                what = "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else \
                    {bool: "bool", dict: "object", list: "array"}.get(type(value), "value")
                raise errors.bad_request(f"the object provided is unrecognized (must be of type {rt.kind}): couldn't "
                                         f"get version/kind; json parse error: json: cannot unmarshal {what} into Go "
                                         f"struct field .{field_name} of type string")
        kind = kind or rt.kind
        api_version = api_version or rt.api_version
        group, _, version = api_version.rpartition("/")
        if not rt.builtin:
            if group != rt.group:
                raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                         f"API version ({rt.api_version})")
            if kind != rt.kind:
                name = (body.get("metadata") or {}).get("name") if isinstance(body.get("metadata"), dict) else ""
                raise errors.invalid(rt.kind, rt.group, str(name or ""), [errors.Cause(
                    "FieldValueInvalid", f'Invalid value: "{kind}": must be {rt.kind}', "kind")])
            return
        prefix = f'{kind} in version "{version}" cannot be handled as a {rt.kind}'
        if kind != rt.kind or group != rt.group:
            known = self.api.registry.by_kind(api_version, kind)
            if known is not None and known.builtin:
                internal = rt.group.split(".")[0] or "core"
                raise errors.bad_request(f"{prefix}: converting ({known.version}.{known.kind}) to "
                                         f"({internal}.{rt.kind}): unknown conversion")
            raise errors.bad_request(f'{prefix}: no kind "{kind}" is registered for version "{api_version}" in '
                                     'scheme "pkg/api/legacyscheme/scheme.go:30"')
        if version != rt.version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                     f"API version ({rt.api_version})")
        _type_check_body(model_class(rt.group, rt.version, rt.kind), body, prefix)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        """DeleteOptions from the body (type-checked) or, without one, from the query parameters."""
        raw = await request.read()
        body = _decode(raw, request.headers.get("Content-Type", "")) if raw.strip() else None
        if body is not None:
            self._require_object(body)
            try:
                typecheck.check(typecheck.model_class("meta.k8s.io", "v1", "DeleteOptions"), body)
            except TypeMismatch as exc:
                raise errors.bad_request(str(exc)) from None
        return DeleteOptions.from_body(body, request.query)

    def _check_fields(self, request: web.Request, rt: ResourceType, body: Obj,
                      options_kind: str) -> tuple[Obj, list[str]]:
        """``fieldValidation`` for POST/PUT: Strict fails on unknown fields (400), Warn reports them as
        warnings, and both Warn and Ignore drop them, as a lenient decode would."""
        from devcluster import openapi

        directive = openapi.field_validation(request.query, options_kind)
        unknown = openapi.unknown_fields(rt, body)
        if not unknown:
            return body, []
        if directive == "Strict":
            kind = body.get("kind") or rt.kind
            version = str(body.get("apiVersion") or rt.api_version).rpartition("/")[2]
            raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {rt.kind}: '
                                     f"{openapi.strict_decoding_message(unknown)}")
        warnings = [f'unknown field "{f}"' for f in unknown] if directive == "Warn" else []
        return openapi.drop_fields(body, unknown), warnings

    async def _patch(self, request: web.Request, rt: ResourceType, namespace: str | None, name: str,
                     sub: str | None) -> web.Response:
        """PATCH with ``fieldValidation``: unknown fields the patch introduces are checked on the patched
        object (Strict: 422 on ``patch``, as kube-apiserver's patcher reports it; Warn: warnings)."""
        import copy

        from devcluster import openapi
        from devcluster.patch import apply_patch

        q = request.query
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        dry_run = check_dry_run(q.getall("dryRun", []), "PatchOptions")
        _check_patch_depth(raw, ctype)
        directive = openapi.field_validation(q, "PatchOptions")
        if directive == "Ignore" and not rt.builtin:
            return _json_response(self.api.patch(rt, namespace, name, raw, ctype, subresource=sub, dry_run=dry_run))
        old = self.api.try_get(rt, namespace, name)
        if old is None:  # let the registry answer (404 with its wording, fault injection)
            return _json_response(self.api.patch(rt, namespace, name, raw, ctype, subresource=sub, dry_run=dry_run))
        patched = apply_patch(copy.deepcopy(old), raw, ctype, rt.kind if rt.builtin else None)
        if rt.builtin and isinstance(patched, dict):
            cls = model_class(rt.group, rt.version, rt.kind)
            try:
                if cls is not None:
                    typecheck.check(cls, patched)
            except TypeMismatch as exc:
                # kube-apiserver decodes the patched JSON into the Go type; failing that is a 422 on "patch".
                raise errors.invalid("", "", "", [errors.Cause(
                    "FieldValueInvalid", f"Invalid value: {json.dumps(_patched_text(raw, ctype, patched))}: {exc}",
                    "patch")]) from None
        before = set(openapi.unknown_fields(rt, old))
        unknown = [f for f in openapi.unknown_fields(rt, patched) if f not in before]
        if not unknown:
            return _json_response(self.api.patch(rt, namespace, name, raw, ctype, subresource=sub, dry_run=dry_run))
        if directive == "Strict":
            message = (f"Invalid value: {json.dumps(_patched_text(raw, ctype, patched))}: "
                       f"{openapi.strict_decoding_message(unknown)}")
            raise errors.invalid("", "", "", [errors.Cause("FieldValueInvalid", message, "patch")])
        warnings = [f'unknown field "{f}"' for f in unknown] if directive == "Warn" else []
        if not rt.builtin:  # the CRD schema prunes them on the way in
            obj = self.api.patch(rt, namespace, name, raw, ctype, subresource=sub, dry_run=dry_run)
        else:
            obj = self.api.update(rt, namespace, name, openapi.drop_fields(patched, unknown), subresource=sub,
                                  dry_run=dry_run, require_rv=False)
        return _with_warnings(_json_response(obj), warnings)

    @staticmethod
    def _require_object(body: Any) -> None:
        if not isinstance(body, dict):
            raise errors.bad_request("Object 'Kind' is missing in the request body: expected a JSON object")

    def _has_subresource(self, rt: ResourceType, sub: str) -> bool:
        return (sub == "status" and rt.status_subresource) or (sub == "scale" and rt.scale is not None) \
            or sub in rt.extra_subresources

    @staticmethod
    def _success_status(rt: ResourceType, obj: Obj) -> Obj:
        details: dict[str, Any] = {"name": obj["metadata"]["name"]}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
        details["uid"] = obj["metadata"]["uid"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    @staticmethod
    def _target(request: web.Request) -> Target:
        """Accept negotiation: plain JSON, a Table or PartialObjectMetadata (406 if none fits)."""
        return Target.negotiate(request.headers.get("Accept"))

    def _render_object(self, request: web.Request, rt: ResourceType, obj: Obj) -> web.Response:
        return _json_response(self._target(request).render_object(rt, obj, request.query))

    def _matcher(self, rt: ResourceType, label_selector: str, field_selector: str) -> Callable[[Obj], bool] | None:
        from devcluster.selectors import FieldSelector, LabelSelector

        preds: list[Callable[[Obj], bool]] = []
        if label_selector:
            ls = LabelSelector.parse(label_selector)
            if not ls.is_empty():
                preds.append(lambda o: ls.matches(o["metadata"].get("labels")))
        if field_selector:
            fs = FieldSelector.parse(field_selector, rt.plural, rt.group, custom=not rt.builtin,
                                     namespaced=rt.namespaced)
            preds.append(fs.matches)
        if not preds:
            return None
        return lambda o: all(p(o) for p in preds)

    def _list(self, request: web.Request, rt: ResourceType, namespace: str | None) -> web.Response:
        """LIST with kube-apiserver's resourceVersion semantics (see ``_list_options``).

        Pages are consistent: every page of one paged list shows the objects as of the first page's
        revision (rebuilt from the event log); a ``continue`` token whose revision left the log is a 410
        carrying a token that continues at the current revision instead, as etcd compaction causes.
        """
        q = request.query
        target = self._target(request)
        limit, rv_param, match, token = self._list_options(q)
        matcher = self._matcher(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        items, current = self.api.list(rt, namespace, matcher)
        list_rv = current
        if token:
            token_rv, start_ns, start_name = _decode_continue(token)
            if 0 < token_rv < current:
                try:
                    items = self.api.list_at(rt, namespace, token_rv, matcher)
                except ExpiredError:
                    status = errors.gone(_INCONSISTENT_CONTINUE).to_status()
                    status["metadata"]["continue"] = _encode_continue(-1, start_ns, start_name)
                    return _json_response(status, status=410)
            if token_rv > 0:
                list_rv = token_rv
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"])
                     > (start_ns, start_name)]
        elif rv_param not in ("", "0"):
            wanted = _parse_resource_version(rv_param)
            if wanted > current:
                raise ApiError(504, "Timeout", f"Timeout: Too large resource version: {wanted}, current: {current}",
                               causes=[errors.Cause("ResourceVersionTooLarge", "Too large resource version")],
                               retry_after_seconds=1)
            if match == "Exact":
                try:
                    items = self.api.list_at(rt, namespace, wanted, matcher)
                except ExpiredError:
                    raise errors.gone("The resourceVersion for the provided list is too old.") from None
                list_rv = wanted
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = _encode_continue(list_rv, last.get("namespace", ""), last["name"])
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return _json_response(target.render_list(rt, items, meta, q, lambda: {
            "kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
            "items": [_strip_type(rt, o) for o in items]}))

    @staticmethod
    def _list_options(q: Any) -> tuple[int, str, str, str]:
        """``limit``, ``resourceVersion``, ``resourceVersionMatch`` and ``continue`` of a LIST, checked as
        kube-apiserver's ListOptions decoding (400) and ``ValidateListOptions`` (422) check them."""
        limit = query_int(q, "limit") or 0
        query_int(q, "timeoutSeconds")
        rv_param, match, token = q.get("resourceVersion", ""), q.get("resourceVersionMatch", ""), q.get("continue", "")
        causes = []
        if match:
            if not rv_param:
                causes.append(errors.Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is forbidden unless "
                                           "resourceVersion is provided", "resourceVersionMatch"))
            if token:
                causes.append(errors.Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is forbidden when "
                                           "continue is provided", "resourceVersionMatch"))
            if match not in ("Exact", "NotOlderThan"):
                causes.append(errors.Cause("FieldValueNotSupported", f"Unsupported value: {go_quote(match)}: "
                                           'supported values: "Exact", "NotOlderThan", ""', "resourceVersionMatch"))
            if match == "Exact" and rv_param == "0":
                causes.append(errors.Cause("FieldValueForbidden", 'Forbidden: resourceVersionMatch "exact" is '
                                           'forbidden for resourceVersion "0"', "resourceVersionMatch"))
        if "sendInitialEvents" in q:
            causes.append(errors.Cause("FieldValueForbidden", "Forbidden: sendInitialEvents is forbidden for list",
                                       "sendInitialEvents"))
        if causes:
            raise errors.invalid("ListOptions", "meta.k8s.io", "", causes)
        if token and rv_param not in ("", "0"):
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        return limit, rv_param, match, token

    async def _watch(self, request: web.Request, rt: ResourceType, namespace: str | None,
                     field_selector: str) -> web.StreamResponse:
        q = request.query
        transform = self._target(request).watch_transform(rt, q)
        query_int(q, "timeoutSeconds")
        params = WatchParams.from_query(q)
        params.validate(q.get("resourceVersionMatch"))
        matcher = self._matcher(rt, q.get("labelSelector", ""), field_selector) or (lambda o: True)
        if self.api.faults is not None:
            self.api.faults.check("watch", rt, namespace or "", "")
        return await serve_watch(request, self.api.store, rt, namespace if rt.namespaced else None, matcher,
                                 params, bookmark_interval=self.bookmark_interval, faults=self.api.faults,
                                 transform=transform)

    async def _delete_collection(self, request: web.Request, rt: ResourceType,
                                 namespace: str | None) -> web.Response:
        q = request.query
        opts = await self._delete_options(request)
        matcher = self._matcher(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        items, _ = self.api.list(rt, namespace, matcher)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                result, _gone = self.api.delete(rt, meta.get("namespace"), meta["name"], opts)
            except ApiError as err:
                if err.code != 404:
                    raise
                continue
            deleted.append(_strip_type(rt, result))
        return _json_response({"kind": rt.list_kind, "apiVersion": rt.api_version,
                               "metadata": {"resourceVersion": str(self.api.store.current_rv)}, "items": deleted})

    async def _bind(self, request: web.Request, namespace: str, name: str) -> web.Response:
        """``POST pods/<name>/binding`` (what a scheduler calls): assign the pod to ``target.name``."""
        if request.method != "POST":
            raise errors.method_not_allowed()
        body = _decode(await request.read(), request.headers.get("Content-Type", ""))
        self._require_object(body)
        _type_check_body(model_class("", "v1", "Binding"), body,
                         'Binding in version "v1" cannot be handled as a Binding')
        target = body.get("target") or {}
        if not target.get("name"):
            raise errors.invalid("Binding", "", name, [errors.Cause("FieldValueRequired", "Required value",
                                                                    "target.name")])
        self.api.bind_pod(namespace, name, target["name"], (body.get("metadata") or {}).get("annotations"))
        return _json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                               "code": 201}, status=201)

    # -- scale subresource -------------------------------------------------------------------------
    async def _scale(self, request: web.Request, rt: ResourceType, namespace: str | None, name: str) -> web.Response:
        from devcluster.scale import apply_scale, scale_of

        method = request.method
        if method == "GET":
            return _json_response(scale_of(rt, self.api.get(rt, namespace, name)))
        scale_model = model_class("autoscaling", "v1", "Scale")
        if method == "PUT":
            body = _decode(await request.read(), request.headers.get("Content-Type", ""))
            self._require_object(body)
            _type_check_body(scale_model, body, 'Scale in version "v1" cannot be handled as a Scale')
        elif method == "PATCH":
            from devcluster.patch import apply_patch

            raw, ctype = await request.read(), request.headers.get("Content-Type", "")
            _check_patch_depth(raw, ctype)
            current = scale_of(rt, self.api.get(rt, namespace, name))
            body = apply_patch(current, raw, ctype, "Scale")
            if not isinstance(body, dict):
                self._require_object(body)
            try:
                typecheck.check(scale_model, body)
            except TypeMismatch as exc:
                raise errors.invalid("", "", "", [errors.Cause(
                    "FieldValueInvalid", f"Invalid value: {json.dumps(_patched_text(raw, ctype, body))}: {exc}",
                    "patch")]) from None
        else:
            raise errors.method_not_allowed()
        obj = apply_scale(self.api, rt, namespace, name, body)
        return _json_response(scale_of(rt, obj))
