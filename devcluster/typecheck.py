"""JSON type checks for built-in kinds: what Go's ``encoding/json`` rejects when kube-apiserver decodes a body.

kube-apiserver decodes every request body into a typed Go struct. A value of the wrong JSON type
(``metadata.labels: "x"``, ``spec.replicas: "three"`` or ``1.5``, ``data: {"a": 1}`` in a ConfigMap) never
reaches validation: the decoder fails with an ``UnmarshalTypeError`` and the request gets a 400 (POST/PUT)
or a 422 on ``patch`` (PATCH). devcluster's strategies and controllers read these fields as Python values,
so checking them up front is also what keeps a bad body from crashing a controller later.

The field types come from the official ``kubernetes`` client's generated models (``openapi_types`` and
``attribute_map``, the same models :mod:`devcluster.openapi` uses for unknown fields), so every built-in
kind is covered without a per-kind table. What the client models do not say, and is filled in here:

* whether an integer is ``int32`` or ``int64`` (the models say ``int``): ``int32`` unless the field is in
  :data:`INT64_FIELDS`; the range is checked as Go does (``1e30`` or ``2147483648`` for an ``int32`` fails);
* which string fields are ``resource.Quantity`` (a Quantity also accepts a JSON number):
  :data:`QUANTITY_FIELDS`;
* Go type names in the message (``[]v1.Container``, ``map[string]string``); named string types such as
  ``v1.Protocol`` are reported as ``string``.

The first error in document order is reported, as ``encoding/json`` does. ``null`` is accepted everywhere
(Go decodes it to the zero value). Unknown fields are not looked at here (``fieldValidation`` handles them).
"""

from __future__ import annotations

import math
import re
from typing import Any

from devcluster import errors
from devcluster.validation import go_quote

# JSON field names whose Go type is int64 (everything else the client models call ``int`` is int32).
INT64_FIELDS = frozenset({
    "activeDeadlineSeconds", "deletionGracePeriodSeconds", "expirationSeconds", "fsGroup", "generation",
    "gracePeriodSeconds", "maxItems", "maxLength", "maxProperties", "minItems", "minLength", "minProperties",
    "observedGeneration", "remainingItemCount", "revision", "runAsGroup", "runAsUser", "supplementalGroups",
    "terminationGracePeriodSeconds", "tolerationSeconds",
})

# JSON field names whose Go type is resource.Quantity or a ResourceList (map of Quantity): a number is fine.
QUANTITY_FIELDS = frozenset({
    "allocatable", "allocatedResources", "capacity", "default", "defaultRequest", "divisor", "hard", "limits",
    "max", "maxLimitRequestRatio", "min", "overhead", "requests", "sizeLimit", "used",
})

_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_MODELS: Any = None


class TypeMismatch(Exception):
    """One ``json: cannot unmarshal ...`` error, worded as Go's ``UnmarshalTypeError``."""

    def __init__(self, value_desc: str, struct: str, path: str, go_type: str) -> None:
        self.value_desc, self.struct, self.path, self.go_type = value_desc, struct, path, go_type
        if struct:
            text = f"json: cannot unmarshal {value_desc} into Go struct field {struct}.{path} of type {go_type}"
        else:
            text = f"json: cannot unmarshal {value_desc} into Go value of type {go_type}"
        super().__init__(text)


def _models() -> Any:
    global _MODELS
    if _MODELS is None:
        import kubernetes.client.models as models

        _MODELS = models
    return _MODELS


def model_class(group: str, version: str, kind: str) -> Any:
    """The client model for a built-in kind (``V1ConfigMap``, ``CoreV1Event``), or None."""
    models = _models()
    ver = version[:1].upper() + version[1:]
    candidates = [f"{ver}{kind}", f"Core{ver}{kind}" if not group else f"{group.split('.')[0].capitalize()}{ver}{kind}"]
    for name in candidates:
        cls = getattr(models, name, None)
        if cls is not None and getattr(cls, "attribute_map", None):
            return cls
    return None


def _go_struct(model_name: str) -> str:
    """``V1StatefulSetSpec`` -> ``StatefulSetSpec``; ``CoreV1EndpointPort`` -> ``EndpointPort``."""
    i = 0
    while i < len(model_name) and not (model_name[i] == "V" and model_name[i + 1:i + 2].isdigit()):
        i += 1
    if i == len(model_name):
        return model_name
    j = i + 1
    while j < len(model_name) and (model_name[j].isdigit() or model_name[j].islower()):
        j += 1  # the version: V1, V1beta1, V2alpha1
    return model_name[j:]


def _go_type(type_name: str, json_key: str) -> str:
    if type_name.startswith("List["):
        return "[]" + _go_type(type_name[5:-1], json_key)
    if type_name.startswith("Dict["):
        return "map[string]" + _go_type(type_name[5:-1].split(",", 1)[1].strip(), json_key)
    if type_name == "int":
        return "int64" if json_key in INT64_FIELDS else "int32"
    if type_name == "str":
        return "resource.Quantity" if json_key in QUANTITY_FIELDS else "string"
    simple = {"bool": "bool", "float": "float64", "bytes": "[]uint8", "datetime": "v1.Time", "object": "interface {}"}
    return simple.get(type_name) or f"v1.{_go_struct(type_name)}"


def _describe(value: Any) -> str:
    """Go's ``UnmarshalTypeError.Value`` for a JSON value of the wrong kind."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "number"


def _number_text(value: float | int) -> str:
    """A number as JSON text (Go quotes the literal; ``1e+30`` is how Python spells ``1e30``)."""
    return repr(value).replace("e+", "e") if isinstance(value, float) else str(value)


class _Checker:
    def __init__(self) -> None:
        self.models = _models()

    def value(self, value: Any, type_name: str, struct: str, path: str, key: str) -> None:
        if value is None:
            return
        if type_name == "object":
            return
        if type_name.startswith("List["):
            if not isinstance(value, list):
                raise TypeMismatch(_describe(value), struct, path, _go_type(type_name, key))
            inner = type_name[5:-1]
            for item in value:
                self.value(item, inner, struct, path, key)
            return
        if type_name.startswith("Dict["):
            if not isinstance(value, dict):
                raise TypeMismatch(_describe(value), struct, path, _go_type(type_name, key))
            inner = type_name[5:-1].split(",", 1)[1].strip()
            for item in value.values():
                self.value(item, inner, struct, path, key)
            return
        if type_name == "str":
            if isinstance(value, str):
                return
            if key in QUANTITY_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
                return
            raise TypeMismatch(_describe(value), struct, path, _go_type(type_name, key))
        if type_name == "int":
            go = _go_type(type_name, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeMismatch(_describe(value), struct, path, go)
            low, high = _INT_RANGE[go]
            if isinstance(value, float) or not low <= value <= high:
                raise TypeMismatch(f"number {_number_text(value)}", struct, path, go)
            return
        if type_name == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (isinstance(value, float) and not math.isfinite(value)):
                raise TypeMismatch(_describe(value), struct, path, "float64")
            return
        if type_name == "bool":
            if not isinstance(value, bool):
                raise TypeMismatch(_describe(value), struct, path, "bool")
            return
        if type_name in ("bytes", "datetime"):
            if not isinstance(value, str):
                # metav1.Time's UnmarshalJSON decodes a Go string, and the error gets this field's context.
                raise TypeMismatch(_describe(value), struct, path, "string" if type_name == "datetime" else "[]uint8")
            return
        cls = getattr(self.models, type_name, None)
        if cls is None:
            return
        if not isinstance(value, dict):
            raise TypeMismatch(_describe(value), struct, path, _go_type(type_name, key))
        self.model(value, cls, path)

    def model(self, value: dict[str, Any], cls: Any, path: str) -> None:
        struct = _go_struct(cls.__name__)
        by_key = _fields(cls)
        for key, item in value.items():
            field_type = by_key.get(key)
            if field_type is None:
                continue  # unknown: fieldValidation decides
            self.value(item, field_type, struct, f"{path}.{key}" if path else key, key)


_FIELDS: dict[Any, dict[str, str]] = {}


def _fields(cls: Any) -> dict[str, str]:
    """JSON key -> client type name, cached per model class."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = {json_key: cls.openapi_types[attr] for attr, json_key in cls.attribute_map.items()}
        _FIELDS[cls] = fields
    return fields


def check(cls: Any, body: Any) -> None:
    """Raise :class:`TypeMismatch` for the first value in ``body`` that the Go struct behind ``cls`` rejects."""
    if not isinstance(body, dict):
        raise TypeMismatch(_describe(body), "", "", f"v1.{_go_struct(cls.__name__)}")
    _Checker().model(body, cls, "")


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/objects deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


# -- query parameters --------------------------------------------------------------------------------
# kube-apiserver converts query parameters into ListOptions/DeleteOptions/... with apimachinery's
# conversion functions; a failure is a 400 whose message is the strconv error.
_GO_INT = re.compile(r"[+-]?[0-9]+")


def query_int(query: Any, name: str) -> int | None:
    """An int64 query parameter (``limit``, ``timeoutSeconds``, ``gracePeriodSeconds``); None if absent.

    Raises a 400 with Go's ``strconv.ParseInt`` text for anything else (``abc``, ``1.5``, ``1e3``, out of range).
    """
    raw = query.get(name)
    if raw is None:
        return None
    if not _GO_INT.fullmatch(raw):
        raise errors.bad_request(f'strconv.ParseInt: parsing {go_quote(raw)}: invalid syntax')
    value = int(raw)
    if not _INT_RANGE["int64"][0] <= value <= _INT_RANGE["int64"][1]:
        raise errors.bad_request(f'strconv.ParseInt: parsing {go_quote(raw)}: value out of range')
    return value


def query_bool(query: Any, name: str) -> bool | None:
    """A boolean query parameter as apimachinery reads it: present and not ``0``/``false`` (any case) is true."""
    raw = query.get(name)
    if raw is None:
        return None
    return not (raw == "0" or raw.lower() == "false")


def check_dry_run(values: list[str], options_kind: str) -> bool:
    """``dryRun`` may only be ``All`` (``ValidateDryRun``); returns whether this is a dry run."""
    if any(v != "All" for v in values):
        shown = "[]string{" + ", ".join(go_quote(v) for v in values) + "}"
        raise errors.invalid(options_kind, "meta.k8s.io", "", [errors.Cause(
            "FieldValueNotSupported", f'Unsupported value: {shown}: supported values: "All"', "dryRun")])
    return bool(values)
