"""PATCH bodies applied the way kube-apiserver 1.3x applies them (pure functions, no I/O).

``apply_patch`` dispatches on the request's Content-Type and reproduces the server's status codes and
messages; ``json_merge_patch`` and ``strategic_merge_patch`` are the two merge algorithms. Reference
behaviour: ``k8s.io/apiserver/pkg/endpoints/handlers/patch.go`` (error mapping, default fieldValidation
"Warn"), ``k8s.io/apimachinery/pkg/util/strategicpatch`` and ``gopkg.in/evanphx/json-patch.v4``. Failures raise
``ApiError`` where and as the real server answers:

* malformed JSON -> 400 ``error decoding patch: <Go encoding/json error>`` (strategic: just the Go error);
* a JSON Patch operation that fails (``test`` mismatch, missing path, unknown op) -> 422 ``Invalid`` with the
  generic "the server rejected our request due to an error in our request" (the server drops the detail);
* strategic merge patch: 400 for malformed ``$retainKeys``/``$setElementOrder``/``$deleteFromPrimitiveList``,
  422 for lists of lists, and 500 with an empty reason (the server's path for errors that are not a Status)
  for e.g. a list item without its merge key or ``$patch: merge``;
* unknown Content-Type -> 415: go-restful's "415: Unsupported Media Type" for built-in kinds, the CRD
  handler's accepted-types message for custom resources (which also reject strategic merge patch).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import jsonpointer
import yaml

from devcluster.errors import ApiError, Cause, bad_request, unsupported_media_type

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

Obj = dict[str, Any]
Table = dict[str, tuple[str, str]]

_MAX_JSON_PATCH_OPS = 10000
_DELETE_PREFIX = "$deleteFromPrimitiveList"
_ORDER_PREFIX = "$setElementOrder"

# --------------------------------------------------------------------------------------------------
# patchStrategy / patchMergeKey struct tags of k8s.io/api, keyed by JSON path within each kind ("[]" =
# every element of a list). Lists not listed are atomic (replaced): e.g. tolerations, readinessGates,
# status.containerStatuses, StatefulSet spec.volumeClaimTemplates, CRD status.conditions. An empty merge key
# is a list of primitives (set union). "retainKeys" only shapes client-made patches; "replace" on a map
# (PDB spec.selector) makes the patch value replace the whole map.


def _object_meta(prefix: str) -> Table:
    return {f"{prefix}metadata.ownerReferences": ("merge", "uid"), f"{prefix}metadata.finalizers": ("merge", "")}


def _pod_spec(prefix: str) -> Table:
    table = {f"{prefix}volumes": ("merge,retainKeys", "name"), f"{prefix}imagePullSecrets": ("merge", "name"),
             f"{prefix}hostAliases": ("merge", "ip"), f"{prefix}topologySpreadConstraints": ("merge", "topologyKey"),
             f"{prefix}schedulingGates": ("merge", "name"), f"{prefix}resourceClaims": ("merge,retainKeys", "name")}
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        table[f"{prefix}{containers}"] = ("merge", "name")
        for field, key in (("ports", "containerPort"), ("env", "name"), ("volumeMounts", "mountPath"),
                           ("volumeDevices", "devicePath")):
            table[f"{prefix}{containers}[].{field}"] = ("merge", key)
    return table


def _pod_template(prefix: str) -> Table:
    return {**_object_meta(prefix), **_pod_spec(f"{prefix}spec.")}


_CONDITIONS = {"status.conditions": ("merge", "type")}
_WORKLOAD = {**_pod_template("spec.template."), **_CONDITIONS}
_WEBHOOKS = {"webhooks": ("merge", "name"), "webhooks[].matchConditions": ("merge", "name")}
_KIND_FIELDS: dict[str, Table] = {
    "Pod": {**_pod_spec("spec."), **_CONDITIONS, "status.podIPs": ("merge", "ip"), "status.hostIPs": ("merge", "ip"),
            "status.resourceClaimStatuses": ("merge,retainKeys", "name")},
    "PodTemplate": _pod_template("template."),
    "ReplicationController": _WORKLOAD, "ReplicaSet": _WORKLOAD, "StatefulSet": _WORKLOAD,
    "DaemonSet": _WORKLOAD, "Job": _WORKLOAD, "Deployment": {**_WORKLOAD, "spec.strategy": ("retainKeys", "")},
    "CronJob": {**_object_meta("spec.jobTemplate."), **_pod_template("spec.jobTemplate.spec.template.")},
    "Service": {"spec.ports": ("merge", "port"), **_CONDITIONS},
    "ServiceAccount": {"secrets": ("merge", "name")},
    "Node": {"spec.podCIDRs": ("merge", ""), **_CONDITIONS, "status.addresses": ("merge", "type")},
    "Namespace": _CONDITIONS, "PersistentVolumeClaim": _CONDITIONS, "HorizontalPodAutoscaler": _CONDITIONS,
    "FlowSchema": _CONDITIONS, "PriorityLevelConfiguration": _CONDITIONS, "ServiceCIDR": _CONDITIONS,
    "ComponentStatus": {"conditions": ("merge", "type")},
    "PodDisruptionBudget": {"spec.selector": ("replace", ""), **_CONDITIONS},
    "ValidatingWebhookConfiguration": _WEBHOOKS, "MutatingWebhookConfiguration": _WEBHOOKS,
    "ValidatingAdmissionPolicy": {"spec.matchConditions": ("merge", "name"), "spec.variables": ("merge", "name")},
    "MutatingAdmissionPolicy": {"spec.matchConditions": ("merge", "name")},
    "CSINode": {"spec.drivers": ("merge", "name")},
}
#: kind -> {JSON path: (patchStrategy, patchMergeKey)}; other kinds only have ObjectMeta's two merge lists.
PATCH_STRATEGIES: dict[str, Table] = {kind: {**_object_meta(""), **fields} for kind, fields in _KIND_FIELDS.items()}


# --------------------------------------------------------------------------------------------------
# Public API


def apply_patch(original: Obj, body: bytes, content_type: str, kind: str | None) -> Obj:
    """Return a new object: ``original`` with the PATCH ``body`` applied (``original`` is not modified).

    ``kind`` is the built-in kind (strategic merge patch looks up its strategy table) or None for a custom
    resource. Parameters after ``;`` in ``content_type`` are ignored, as on the server. Raises ``ApiError``.
    Server-side apply (``application/apply-patch+yaml``) is only approximated, without field ownership: the
    YAML configuration is merged like a strategic merge patch (built-in kinds) or a merge patch (custom
    resources), so fields it omits are kept rather than removed, and managedFields are not maintained.
    """
    media = content_type.split(";", 1)[0].strip()
    if kind is None:
        if media not in (JSON_PATCH, MERGE_PATCH, APPLY_PATCH):
            raise unsupported_media_type(media)
    elif media not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        raise ApiError(415, "UnsupportedMediaType", "415: Unsupported Media Type")  # go-restful's answer
    if media == JSON_PATCH:
        return _apply_json_patch(original, body)
    if media == MERGE_PATCH:
        patch = _decode_object(body, "error decoding patch: ")
        if patch is None:
            raise bad_request("Invalid JSON Patch")
        return json_merge_patch(original, patch)  # type: ignore[no-any-return]
    config = _decode_object(body, "") if media == STRATEGIC_MERGE_PATCH else _decode_apply_config(body)
    if kind is None:
        return json_merge_patch(original, config)  # type: ignore[no-any-return]
    return strategic_merge_patch(original, config or {}, kind)


def json_merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 merge patch as evanphx/json-patch (so kube-apiserver) applies it; inputs are not modified.

    ``null`` deletes a key, objects merge recursively, anything else (arrays too) replaces. Like evanphx, a
    value stored in place of a non-object loses its null object members, even inside arrays.
    """
    if not isinstance(patch, dict) or not isinstance(original, dict):
        return _prune_nulls(copy.deepcopy(patch))
    result = copy.deepcopy(original)
    _merge_docs(result, patch)
    return result


def strategic_merge_patch(original: Obj, patch: Obj, kind: str) -> Obj:
    """Kubernetes strategic merge patch of ``patch`` into ``original`` for the built-in ``kind``.

    Lists tagged ``patchStrategy: merge`` (``PATCH_STRATEGIES``) merge element-wise by merge key, or as a set
    for primitives; other lists and scalars are replaced; ``null`` deletes. Directives: ``$patch: replace``
    and ``$patch: delete`` (maps and merge-list items), ``$retainKeys``, ``$deleteFromPrimitiveList/<f>``,
    ``$setElementOrder/<f>``; ``$patch: merge`` is an error upstream and here. Element order follows upstream:
    patched items in patch order, server-only items interleaved by their live position, so a new item lands
    before the server-only items after it (adding ``c`` to ``[a, b]`` gives ``[c, a, b]``). Values the patch
    adds lose nulls and ``$`` keys, as the server's typed round trip drops them. Custom resources get 415.
    """
    if kind is None:
        raise unsupported_media_type(STRATEGIC_MERGE_PATCH)
    table = PATCH_STRATEGIES.get(kind) or _object_meta("")
    try:
        return _merge_map(copy.deepcopy(original), copy.deepcopy(patch), "", table)
    except _Reject as exc:
        raise exc.api_error() from None


# --------------------------------------------------------------------------------------------------
# Decoding, with the Go encoding/json wording clients see


class _Reject(Exception):
    """A patch failure, turned into the Status the real server sends (see the module docstring)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def api_error(self) -> ApiError:
        if self.code == 400:
            return bad_request(self.message)
        if self.code == 422:
            return ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
        return ApiError(500, "", self.message)


def _go_type(value: Any, json_names: bool = False) -> str:
    """Go's name for a decoded JSON value's type (``json_names``: as in ``cannot unmarshal <type>``)."""
    if isinstance(value, bool):
        return "bool"
    names: dict[type, str] = ({dict: "object", list: "array", str: "string", int: "number", float: "number"}
                              if json_names else {dict: "map[string]interface {}", list: "[]interface {}",
                                                  str: "string", int: "int64", float: "float64"})
    return names.get(type(value), "<nil>")


def _go_quote_char(c: str) -> str:
    """Go's ``quoteChar`` of the first byte of ``c``."""
    b = c.encode("utf-8", "replace")[0]
    named = {"'": "\\'", "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b",
             "\f": "\\f", "\v": "\\v"}
    if chr(b) in named:
        return f"'{named[chr(b)]}'"
    return f"'\\x{b:02x}'" if b < 0x20 or b == 0x7F else f"'\\u{b:04x}'" if 0x80 <= b < 0xA0 else f"'{chr(b)}'"


def _innermost_bracket(doc: str, pos: int) -> str:
    """The innermost ``{`` or ``[`` still open at ``pos`` (to word a missing-comma error like Go)."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in doc[:pos]:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    doc, pos, msg = exc.doc, exc.pos, exc.msg
    if pos >= len(doc) or msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    char = doc[pos]
    if msg == "Expecting value" and char in "tfn":  # a misspelt true/false/null
        literal = {"t": "true", "f": "false", "n": "null"}[char]
        for i, want in enumerate(literal):
            if pos + i >= len(doc):
                return "unexpected end of JSON input"
            if doc[pos + i] != want:
                return (f"invalid character {_go_quote_char(doc[pos + i])} in literal {literal} "
                        f"(expecting {_go_quote_char(want)})")
    comma = "after object key:value pair" if _innermost_bracket(doc, pos) == "{" else "after array element"
    where = {"Expecting value": "looking for beginning of value", "Expecting ',' delimiter": comma,
             "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
             "Expecting ':' delimiter": "after object key", "Extra data": "after top-level value"}.get(msg)
    if where is None and "BOM" in msg:
        where, char = "looking for beginning of value", "\ufeff"
    elif where is None:
        where = "in string literal" if msg.startswith("Invalid control") else "in string escape code"
    return f"invalid character {_go_quote_char(char)} {where}"


def _reject_constant(name: str) -> Any:
    raise ValueError("invalid character 'I' in numeric literal" if name.startswith("-")
                     else f"invalid character {_go_quote_char(name)} looking for beginning of value")


def _decode_json(body: bytes, prefix: str) -> Any:
    try:
        return json.loads(body.decode("utf-8", "replace"), parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise bad_request(prefix + _go_syntax_error(exc)) from None
    except ValueError as exc:  # NaN / Infinity, which Go rejects
        raise bad_request(prefix + str(exc)) from None


def _decode_object(body: bytes, prefix: str) -> Obj | None:
    """Decode a merge or strategic patch: a JSON object, or ``null``."""
    value = _decode_json(body, prefix)
    if value is not None and not isinstance(value, dict):
        raise bad_request(f"{prefix}json: cannot unmarshal {_go_type(value, True)} into Go value of type "
                          "map[string]interface {}")
    return value


class _NoTimestampLoader(yaml.SafeLoader):
    """YAML 1.1 as go-yaml reads it, but timestamps stay strings (sigs.k8s.io/yaml goes through JSON)."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _decode_apply_config(body: bytes) -> Obj:
    try:
        config = yaml.load(body.decode("utf-8", "replace"), Loader=_NoTimestampLoader)  # a SafeLoader
        config = json.loads(json.dumps(config, default=str))  # JSON keys and values only
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise bad_request(f"error decoding YAML: error converting YAML to JSON: yaml: {where}{problem}") from None
    if config is not None and not isinstance(config, dict):
        raise bad_request(f"error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot "
                          f"unmarshal {_go_type(config, True)} into Go value of type map[string]interface {{}}")
    return _clean(config or {})[0] or {}


# --------------------------------------------------------------------------------------------------
# JSON Patch (RFC 6902) and JSON merge patch (RFC 7386)


def _apply_json_patch(original: Obj, body: bytes) -> Obj:
    ops = _decode_json(body, "error decoding patch: ")
    ops = [] if ops is None else ops
    cannot = "error decoding patch: json: cannot unmarshal"
    if not isinstance(ops, list):
        raise bad_request(f"{cannot} {_go_type(ops, True)} into Go value of type []handlers.jsonPatchOp")
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise bad_request(f"{cannot} {_go_type(op, True)} into Go value of type handlers.jsonPatchOp")
        for field in ("op", "path", "from"):
            if op and op.get(field) is not None and not isinstance(op[field], str):
                raise bad_request(f"{cannot} {_go_type(op[field], True)} into Go struct field "
                                  f"jsonPatchOp.{field} of type string")
    if len(ops) > _MAX_JSON_PATCH_OPS:
        raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: The allowed maximum operations in "
                       f"a JSON patch is {_MAX_JSON_PATCH_OPS}, got {len(ops)}")
    try:
        result = jsonpatch.JsonPatch([op or {} for op in ops]).apply(original, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, LookupError, TypeError, ValueError,
            AttributeError):
        raise _Reject(422, "a JSON patch operation failed").api_error() from None
    if not isinstance(result, dict):  # the server cannot decode the result into an object
        detail = (f"Invalid value: {json.dumps(json.dumps(result, separators=(',', ':')))}: couldn't get "
                  f"version/kind; json parse error: json: cannot unmarshal {_go_type(result, True)} into Go value "
                  'of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
                  '"json:\\"kind,omitempty\\"" }')
        raise ApiError(422, "Invalid", f' "" is invalid: patch: {detail}',
                       causes=[Cause("FieldValueInvalid", detail, "patch")])
    return result


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _merge_docs(doc: Obj, patch: Obj) -> None:
    for key, value in patch.items():
        current = doc.get(key)
        if value is None:
            doc.pop(key, None)
        elif isinstance(current, dict) and isinstance(value, dict):
            _merge_docs(current, value)
        else:  # evanphx prunes nulls from the new value unless it replaces an object
            doc[key] = copy.deepcopy(value) if isinstance(current, dict) else _prune_nulls(copy.deepcopy(value))


# --------------------------------------------------------------------------------------------------
# Strategic merge patch: k8s.io/apimachinery/pkg/util/strategicpatch as the server runs it
# (MergeParallelList and IgnoreUnmatchedNulls on)


def _go_fmt(value: Any) -> str:
    """Go's ``%v`` of decoded JSON, for upstream's error messages."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_fmt(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_fmt(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "<nil>", True: "true", False: "false"}[value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _clean(value: Any) -> tuple[Any, bool]:
    """A value the patch adds, and whether to keep it: maps with ``$patch`` go, as do ``$`` keys and nulls."""
    if isinstance(value, dict):
        if "$patch" in value:
            return None, False
        kept = {k: _clean(v) for k, v in value.items() if v is not None and not k.startswith("$")}
        return {k: v for k, (v, keep) in kept.items() if keep}, True
    if isinstance(value, list):
        return [v for v, keep in map(_clean, value) if keep], True
    return value, True


def _same(a: Any, b: Any) -> bool:
    """Go's interface equality: same dynamic type and value (so 1, 1.0 and true all differ)."""
    return type(a) is type(b) and a == b


def _merge_key_value(item: Any, key: str) -> Any:
    if not isinstance(item, dict):
        raise _Reject(500, f"expected a map[string]interface {{}}, but received a {_go_type(item)}")
    if key not in item:
        raise _Reject(500, f"map: {_go_fmt(item)} does not contain declared merge key: {key}")
    return item[key]


def _element_type(*lists: list[Any]) -> str:
    """The Go type all elements share; upstream rejects lists of lists (422) and mixed lists."""
    elements = [v for items in lists for v in items]
    if not elements:
        raise _Reject(500, "no elements in any of the given slices")
    first = _go_type(elements[0])
    if first == "[]interface {}":
        raise _Reject(422, "lists of lists are not supported")
    if any(_go_type(v) != first for v in elements):
        raise _Reject(500, f"list element types are not identical: {_go_fmt(list(lists))}")
    return first


def _index(items: list[Any], item: Any, key: str) -> int:
    """Position of ``item`` in ``items``, matched by merge key (or by value for primitives); -1 if absent."""
    ident = item.get(key) if key and isinstance(item, dict) else item
    return next((i for i, v in enumerate(items)
                 if _same(v.get(key) if key and isinstance(v, dict) else v, ident)), -1)


def _normalize_order(merged: list[Any], by: list[Any], server: list[Any], key: str) -> list[Any]:
    """Upstream's order: items in ``by`` in its order, the rest in ``server`` order, interleaved."""
    for item in [*merged, *by] if key else []:
        _merge_key_value(item, key)
    ordered = sorted((v for v in merged if _index(by, v, key) >= 0), key=lambda v: _index(by, v, key))
    rest = sorted((v for v in merged if _index(by, v, key) < 0), key=lambda v: _index(server, v, key))
    out: list[Any] = []
    while ordered and rest:  # a server-only item goes first only if it precedes the next one on the server
        left, right = _index(server, rest[0], key), _index(server, ordered[0], key)
        out.append(rest.pop(0) if 0 <= left < right else ordered.pop(0))
    return out + rest + ordered


def _merge_list(original: list[Any], patch: list[Any], key: str, path: str, table: Table,
                delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    if _element_type(original, patch) != "map[string]interface {}":
        if delete_list:
            return [v for v in original if not any(_same(v, d) for d in patch)]
        both = original + patch
        return _normalize_order([v for i, v in enumerate(both) if _index(both, v, "") == i], patch, original, "")
    if not key:
        raise _Reject(500, "cannot merge lists without merge key for struct")
    items, replace = [], False
    for item in patch:
        directive = item.get("$patch")
        if "$patch" not in item:
            items.append(item)
        elif directive == "delete":
            value = _merge_key_value(item, key)
            original = [v for v in original if not _same(_merge_key_value(v, key), value)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _Reject(500, "merging lists cannot yet be specified in the patch")
        else:
            raise _Reject(500, f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(item)}")
    if replace:  # the remaining patch items are the whole list
        original, items = [_clean(v)[0] for v in items], []
    merged = list(original)
    for item in items:
        at = _index(merged, {key: _merge_key_value(item, key)}, key)
        if at < 0:
            merged.append(_clean(item)[0])
        else:
            merged[at] = _merge_map(merged[at], item, path + "[]", table)
    return _normalize_order(merged, items, original, key)


def _directive_target(directive_key: str, prefix: str, error: str) -> str:
    """``$setElementOrder/env`` -> ``env``; a malformed directive key is a 400."""
    head, slash, field = directive_key.partition("/")
    if head != prefix or not slash:
        raise _Reject(400, error)
    return field


def _merge_map(original: Obj, patch: Obj, path: str, table: Table) -> Obj:
    if "$patch" in patch:
        directive = patch["$patch"]
        if directive == "replace":
            return _clean({k: v for k, v in patch.items() if k != "$patch"})[0]  # type: ignore[no-any-return]
        if directive == "delete":
            return {}
        raise _Reject(500, f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(patch)}")
    if "$retainKeys" in patch:
        retain = patch.pop("$retainKeys")
        if not isinstance(retain, list) or any(
                value is not None and not key.startswith((_DELETE_PREFIX, _ORDER_PREFIX)) and key not in retain
                for key, value in patch.items()):
            raise _Reject(400, "invalid patch format of retainKeys")
        for key in [k for k in original if k not in retain]:
            del original[key]
    for order_key in [k for k in patch if k.startswith(_ORDER_PREFIX)]:
        _set_element_order(original, patch, order_key, path, table)
    for key, value in patch.items():
        delete_list = key.startswith(_DELETE_PREFIX)
        if delete_list:
            key = _directive_target(key, _DELETE_PREFIX, "invalid patch format of primitive list")
        elif key.startswith("$"):
            continue  # an unknown field to the real server
        if value is None:
            original.pop(key, None)
            continue
        field_path = f"{path}.{key}" if path else key
        strategy, merge_key = table.get(field_path, ("", ""))
        current = original.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            replace = "replace" in strategy.split(",")
            original[key] = _clean(value)[0] if replace else _merge_map(current, value, field_path, table)
        elif isinstance(current, list) and isinstance(value, list):
            if delete_list or "merge" in strategy.split(","):
                original[key] = _merge_list(current, value, merge_key, field_path, table, delete_list)
            else:
                original[key] = _clean(value)[0]
        elif not delete_list:  # absent, scalar or of another type: the patch value wins
            cleaned, keep = _clean(value)
            if keep:
                original[key] = cleaned
            else:
                original.pop(key, None)
    return original


def _set_element_order(original: Obj, patch: Obj, order_key: str, path: str, table: Table) -> None:
    """``$setElementOrder/<field>``: merge the field's list, then order it as the directive lists."""
    order = patch.pop(order_key)
    if not isinstance(order, list):
        raise _Reject(500, f"expected a []interface {{}}, but received a {_go_type(order)}")
    field = _directive_target(order_key, _ORDER_PREFIX, "invalid patch format of setElementOrder list")
    current: list[Any] | None = original.get(field)
    update: list[Any] | None = patch.pop(field, None)
    for value in (current, update):
        if value is not None and not isinstance(value, list):
            raise _Reject(500, f"expected a []interface {{}}, but received a {_go_type(value)}")
    field_path = f"{path}.{field}" if path else field
    strategy, key = table.get(field_path, ("", ""))
    # The patch list (directive items aside) must be a subsequence of the order list.
    pending = [v for v in update or [] if not (key and isinstance(v, dict) and "$patch" in v)]
    for item in order if pending else []:
        if pending and (_same(_merge_key_value(pending[0], key), _merge_key_value(item, key)) if key
                        else _same(pending[0], item)):
            pending.pop(0)
    if order and pending:
        raise _Reject(500, f"The order in patch list:\n{_go_fmt(update)}\n doesn't match {_ORDER_PREFIX} "
                      f"list:\n{_go_fmt(order)}\n")
    merged: list[Any]
    if update is None:
        if current is None:
            return
        merged = current
    elif current is None:
        merged = _clean(update)[0]
    elif "merge" in strategy.split(","):
        merged = _merge_list(current, update, key, field_path, table, False)
    else:
        merged = _clean(update)[0]
    _element_type(current or [], update or [])
    original[field] = _normalize_order(merged, order, current or [], key)
