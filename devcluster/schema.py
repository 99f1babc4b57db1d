"""CustomResourceDefinition structural schemas, applied the way kube-apiserver's apiextensions does.

For every custom-resource write the server runs, in this order::

    decode -> CompiledSchema.prune -> CompiledSchema.default -> CompiledSchema.validate

``prune`` (upstream ``pruning.Prune`` + ``PruneNonNullableNullsWithoutDefaults`` + ObjectMeta coercion)
  drops fields the schema does not specify. ``x-kubernetes-preserve-unknown-fields`` keeps unknown
  fields (known ones are still pruned below it); ``apiVersion``/``kind``/``metadata`` are never pruned at
  the root or inside ``x-kubernetes-embedded-resource`` objects, but those ``metadata`` objects are
  round-tripped through ObjectMeta (unknown keys and empty values dropped). Non-nullable ``null``
  values without a default are removed.
``default`` (upstream ``defaulting.Default``)
  fills missing (or non-nullable ``null``) properties from ``default``, recursing into defaulted values,
  ``additionalProperties`` and array items.
``validate`` (kube-openapi validation + embedded ObjectMeta/TypeMeta + list-type set/map uniqueness + CEL)
  returns :class:`~devcluster.errors.Cause` s worded exactly like kube-apiserver 1.35+. CEL rules are
  skipped (with upstream's ``<nil>: Invalid value: null: some validation rules were not checked ...``)
  when a type/required/enum/maxLength/maxItems error is present. With ``old`` (an update), errors on
  values unchanged from ``old`` are ratcheted away (``CRDValidationRatcheting``, GA) and transition rules
  (those using ``oldSelf``) run against the correlated old value.

``prune`` and ``default`` mutate their argument and return it. :func:`validate_crd_schema_structural` holds
the checks kube-apiserver applies to ``openAPIV3Schema`` when a CRD is written; ``CompiledSchema.compile``
runs them and raises :class:`SchemaError` (a ``ValueError`` carrying the causes).
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from devcluster import cel
from devcluster.cel import CelCompileError, CelEvalError, Decl, format_go_float
from devcluster.errors import Cause

__all__ = ["CompiledSchema", "SchemaError", "validate_crd_schema_structural"]

# ------------------------------------------------------------------------------------------------
# field.Error rendering (k8s.io/apimachinery/pkg/util/validation/field)
# ------------------------------------------------------------------------------------------------

INVALID, TYPE_INVALID, REQUIRED = "FieldValueInvalid", "FieldValueTypeInvalid", "FieldValueRequired"
NOT_SUPPORTED, FORBIDDEN, DUPLICATE = "FieldValueNotSupported", "FieldValueForbidden", "FieldValueDuplicate"
TOO_LONG, TOO_MANY, INTERNAL = "FieldValueTooLong", "FieldValueTooMany", "InternalError"
_TYPE_TEXT = {INVALID: "Invalid value", TYPE_INVALID: "Invalid value", REQUIRED: "Required value",
              NOT_SUPPORTED: "Unsupported value", FORBIDDEN: "Forbidden", DUPLICATE: "Duplicate value",
              TOO_LONG: "Too long", TOO_MANY: "Too many", INTERNAL: "Internal error"}
_NO_VALUE_TYPES = frozenset({REQUIRED, FORBIDDEN, TOO_LONG, INTERNAL})
# Error types that stop CEL rules from running (customResourceStrategy.hasBlockingErr).
_BLOCKING = frozenset({NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID})
OMIT = object()  # field.OmitValueType: "Invalid value: <detail>" without a value


def go_quote(s: str) -> str:
    """Go ``strconv.Quote`` (what ``%q`` prints)."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _go_json_float(f: float) -> str:
    """``encoding/json`` float64: shortest digits, fixed notation unless < 1e-6 or >= 1e21."""
    if math.isnan(f) or math.isinf(f):
        return "null"  # Go refuses to marshal these; never produced by JSON input
    if f == 0:
        return "0"
    sign, digit_tuple, exp = Decimal(repr(f)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exp)
    prefix = "-" if sign else ""
    if 1e-6 <= abs(f) < 1e21:
        if point <= 0:
            return f"{prefix}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return prefix + digits + "0" * (point - len(digits))
        return f"{prefix}{digits[:point]}.{digits[point:]}"
    x = point - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{prefix}{mant}e{'+' if x >= 0 else '-'}{abs(x):02d}".replace("e-0", "e-")


class GoStruct(dict):  # type: ignore[type-arg]
    """A dict that :func:`go_json` renders in insertion order, like a Go struct (maps are sorted)."""


def go_json(v: Any) -> str:
    """Go ``encoding/json.Marshal`` of a JSON value (sorted map keys, HTML-safe escaping)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_json_float(v)
    if isinstance(v, str):
        text = json.dumps(v, ensure_ascii=False)
        for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                        ("\u2029", "\\u2029")):
            text = text.replace(ch, esc)
        return text
    if isinstance(v, dict):
        keys = list(v) if isinstance(v, GoStruct) else sorted(v)
        return "{" + ",".join(f"{go_json(str(k))}:{go_json(v[k])}" for k in keys) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    return go_json(str(v))


def _render(v: Any) -> str:
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_go_float(v)
    if isinstance(v, str):
        return go_quote(v)
    return go_json(v)


class _E:
    """One ``field.Error``: ``field`` is the path string, or None for a nil path (rendered ``<nil>``)."""

    __slots__ = ("detail", "field", "type", "value")

    def __init__(self, type_: str, field: str | None, value: Any = "", detail: str = "") -> None:
        self.type, self.field, self.value, self.detail = type_, field, value, detail

    def body(self) -> str:
        text = _TYPE_TEXT[self.type]
        if self.type not in _NO_VALUE_TYPES and self.value is not OMIT:
            text = f"{text}: {_render(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def cause(self) -> Cause:
        return Cause(self.type, self.body(), "<nil>" if self.field is None else self.field)


def _causes(errs: Iterable[_E]) -> list[Cause]:
    out: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for e in errs:
        c = e.cause()
        if (c.field, c.message) not in seen:  # ErrorList.ToAggregate de-duplicates identical errors
            seen.add((c.field, c.message))
            out.append(c)
    return out


def _child(path: str | None, name: str) -> str:
    return name if path is None else f"{path}.{name}"


def _key(path: str | None, key: Any) -> str:
    return f"{path or ''}[{key}]"


def _openapi_field(prefix: str | None, name: str) -> str | None:
    """Field of a kube-openapi error named ``name`` (``kubeOpenAPIResultToFieldErrors``)."""
    if not name or name == ".":
        return prefix
    return _child(prefix, name.removeprefix("."))


# ------------------------------------------------------------------------------------------------
# JSON helpers
# ------------------------------------------------------------------------------------------------

def _json_equal(a: Any, b: Any) -> bool:
    """``reflect.DeepEqual`` on decoded JSON (1 and 1.0, true and 1 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _scalar_key(v: Any) -> Any:
    return (type(v).__name__, v)


def _hashable(v: Any) -> Any:
    """A key for Go's uniqueness maps: scalars by (type, value), compound values by their JSON."""
    if isinstance(v, dict | list):
        return ("json", go_json(v))
    return _scalar_key(v)


def _is_json_integer(f: float) -> bool:
    """go-openapi ``swag.IsFloat64AJSONInteger``."""
    if math.isnan(f) or math.isinf(f) or abs(f) > 2.0**53:
        return False
    g = float(math.trunc(f))
    if f == g:
        return True
    diff = abs(f - g)
    if g == 0:
        return False
    return diff / (abs(f) + abs(g)) < 1e-9


def _json_kind(v: Any) -> str:
    if v is True or v is False:
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


# ------------------------------------------------------------------------------------------------
# String formats (kube-openapi strfmt, as far as CRDs may use them)
# ------------------------------------------------------------------------------------------------

def _rx(pattern: str, flags: int = 0) -> Callable[[str], bool]:
    compiled = re.compile(pattern, flags)
    return lambda s: compiled.search(s) is not None


def _hostname(s: str) -> bool:
    label = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
    if len(s) > 255 or not re.fullmatch(rf"{label}(?:\.{label})*\.?|[^\W_]", s):
        return False
    return all(len(p) <= 63 for p in s.split("."))


def _ip(s: str, version: int) -> bool:
    try:
        addr = ipaddress.ip_address(re.sub(r"(?<![\d])0+(\d)", r"\1", s) if version == 4 else s)
    except ValueError:
        return False
    return addr.version == version


def _cidr(s: str) -> bool:
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False
    return "/" in s


def _base64(s: str) -> bool:
    try:
        base64.b64decode(s, validate=True)
    except ValueError:
        return False
    return True


def _date(s: str) -> bool:
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", s)
    if not m:
        return False
    import datetime

    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _datetime(s: str) -> bool:
    if len(s) < 4:
        return False
    parts = s.lower().split("t")
    if len(parts) < 2 or not _date(parts[0]):
        return False
    m = re.match(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$", parts[1])
    return m is not None and m[1] <= "23" and m[2] <= "59" and m[3] <= "59"


def _duration(s: str) -> bool:
    try:
        cel.parse_duration(s, extended=True)
    except ValueError:
        return False
    return True


def _luhn(s: str) -> bool:
    digits = [int(c) for c in re.sub(r"\D", "", s)]
    if not 12 <= len(digits) <= 19:
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def _isbn10(s: str) -> bool:
    s = re.sub(r"[\s-]", "", s)
    if not re.fullmatch(r"\d{9}[\dX]", s):
        return False
    return sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(s)) % 11 == 0


def _isbn13(s: str) -> bool:
    s = re.sub(r"[\s-]", "", s)
    return bool(re.fullmatch(r"\d{13}", s)) and sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(s)) % 10 == 0


_SHORT_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_FORMATS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": _rx(r"^[0-9a-fA-F]{24}$"),
    "uri": _rx(r"^(/|[a-zA-Z][a-zA-Z0-9+.-]*:)\S*$"),
    "email": _rx(r"^[^@\s<>]+@[^@\s<>]+$"),
    "hostname": _hostname,
    "ipv4": lambda s: "." in s and _ip(s, 4),
    "ipv6": lambda s: ":" in s and _ip(s, 6),
    "cidr": _cidr,
    "mac": _rx(r"^(?:[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){7}"
               r"|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){19}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2,9})$"),
    "uuid": _rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid3": _rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid4": _rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
    "uuid5": _rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
    "isbn": lambda s: _isbn10(s) or _isbn13(s),
    "isbn10": _isbn10,
    "isbn13": _isbn13,
    "creditcard": _luhn,
    "ssn": _rx(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"),
    "hexcolor": _rx(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"),
    "rgbcolor": _rx(r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])"
                    r"\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$"),
    "byte": _base64,
    "password": lambda s: True,
    "date": _date,
    "duration": _duration,
    "datetime": _datetime,
    "k8sshortname": lambda s: len(s) <= 63 and re.fullmatch(_SHORT_NAME, s) is not None,
    "k8slongname": lambda s: len(s) <= 253 and re.fullmatch(rf"{_SHORT_NAME}(\.{_SHORT_NAME})*", s) is not None,
}


def _effective_format(fmt: str, types: tuple[str, ...]) -> str:
    """``StripUnsupportedFormatsPostProcessor``: formats kube-apiserver does not support are ignored."""
    if not fmt:
        return ""
    single = types[0] if len(types) == 1 else ""
    if single in ("", "string"):
        return fmt if fmt.replace("-", "") in _FORMATS else ""
    if single == "integer":
        return fmt if fmt in ("int32", "int64") else ""
    if single == "number":
        return fmt if fmt in ("float", "double") else ""
    return ""


_compile_pattern = cel.compile_regex


# ------------------------------------------------------------------------------------------------
# Compiled schema nodes
# ------------------------------------------------------------------------------------------------

class _Rule:
    __slots__ = ("field_path", "message", "message_expression", "optional_old_self", "program", "reason",
                 "text")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.text = str(raw.get("rule") or "")
        self.message = str(raw.get("message") or "").strip()
        self.reason = raw.get("reason")
        self.field_path: str | None = None
        self.optional_old_self = bool(raw.get("optionalOldSelf"))
        self.program: cel.Program | None = None
        self.message_expression: cel.Program | None = None

    def error_string(self) -> str:  # ruleErrorString
        return self.message or self.text.strip()


class _Node:
    """One schema node, pre-digested for the hot paths."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.type: str = raw.get("type") or ""
        self.int_or_string = bool(raw.get("x-kubernetes-int-or-string"))
        self.types: tuple[str, ...] = ("integer", "string") if self.int_or_string else (
            (self.type,) if self.type else ())
        self.nullable = bool(raw.get("nullable"))
        self.format = _effective_format(str(raw.get("format") or ""), self.types)
        self.raw_format = str(raw.get("format") or "")
        self.enum: list[Any] | None = raw.get("enum")
        self.required: list[str] = list(raw.get("required") or ())
        self.maximum, self.minimum = raw.get("maximum"), raw.get("minimum")
        self.exclusive_maximum = bool(raw.get("exclusiveMaximum"))
        self.exclusive_minimum = bool(raw.get("exclusiveMinimum"))
        self.multiple_of = raw.get("multipleOf")
        self.max_length, self.min_length = raw.get("maxLength"), raw.get("minLength")
        self.pattern_text: str = raw.get("pattern") or ""
        self.pattern = _compile_pattern(self.pattern_text) if self.pattern_text else None
        self.max_items, self.min_items = raw.get("maxItems"), raw.get("minItems")
        self.unique_items = bool(raw.get("uniqueItems"))
        self.max_properties, self.min_properties = raw.get("maxProperties"), raw.get("minProperties")
        self.properties: dict[str, _Node] = {k: _Node(v) for k, v in (raw.get("properties") or {}).items()}
        ap = raw.get("additionalProperties")
        self.has_additional = ap is not None
        self.additional_allows = ap is not False
        self.additional: _Node | None = _Node(ap) if isinstance(ap, dict) else None
        items = raw.get("items")
        self.items: _Node | None = _Node(items) if isinstance(items, dict) else None
        self.all_of = [_Node(s) for s in raw.get("allOf") or ()]
        self.any_of = [_Node(s) for s in raw.get("anyOf") or ()]
        self.one_of = [_Node(s) for s in raw.get("oneOf") or ()]
        self.not_: _Node | None = _Node(raw["not"]) if isinstance(raw.get("not"), dict) else None
        self.preserve_unknown = raw.get("x-kubernetes-preserve-unknown-fields") is True
        self.embedded = bool(raw.get("x-kubernetes-embedded-resource"))
        self.list_type: str = raw.get("x-kubernetes-list-type") or ""
        self.list_map_keys: list[str] = list(raw.get("x-kubernetes-list-map-keys") or ())
        self.has_default = raw.get("default") is not None
        self.default = raw.get("default")
        self.rules: list[_Rule] = []
        self.rule_errors: list[_E] = []
        self._decls: dict[bool, Decl] = {}
        # Summaries of the subtree, so the walks below skip what cannot matter.
        children = [*self.properties.values(), *(c for c in (self.additional, self.items) if c)]
        self.any_defaults: bool = self.has_default or any(c.any_defaults for c in children)
        self.any_embedded: bool = self.embedded or any(c.any_embedded for c in children)
        self.any_list_types: bool = self.list_type in ("set", "map") or any(c.any_list_types for c in children)
        self.any_rules: bool = bool(raw.get("x-kubernetes-validations")) or any(c.any_rules for c in children)
        self.rule_properties = {k: p for k, p in self.properties.items() if p.any_rules}

    def child(self, key: str) -> _Node | None:
        """Schema of ``key`` of an object (``properties`` first, then ``additionalProperties``)."""
        prop = self.properties.get(key)
        return prop if prop is not None else self.additional

    # -- CEL ------------------------------------------------------------------------------------
    def decl(self, resource_root: bool) -> Decl:
        """The CEL type of this node (``SchemaDeclType``), computed once."""
        cached = self._decls.get(resource_root)
        if cached is None:
            cached = self._decls[resource_root] = self._make_decl(resource_root)
        return cached

    def _make_decl(self, resource_root: bool) -> Decl:
        if self.int_or_string or (not self.type and not resource_root):
            return cel.DYN
        if resource_root or self.type == "object":
            if self.additional is not None and not resource_root:
                return Decl("map", self.additional.decl(self.additional.embedded))
            fields: dict[str, tuple[str, Decl]] = {}
            for name, prop in self.properties.items():
                esc = cel.escape_name(name)
                if esc is not None:
                    fields[esc] = (name, prop.decl(prop.embedded))
            if resource_root:
                fields.setdefault("apiVersion", ("apiVersion", Decl("string")))
                fields.setdefault("kind", ("kind", Decl("string")))
                meta = Decl("object", fields={"name": ("name", Decl("string")),
                                              "generateName": ("generateName", Decl("string"))})
                fields["metadata"] = ("metadata", meta)
            return Decl("object", fields=fields)
        if self.type == "array":
            elem = self.items.decl(self.items.embedded) if self.items is not None else cel.DYN
            return Decl("list", elem, list_type=self.list_type)
        if self.type == "string":
            return Decl({"byte": "bytes", "duration": "duration", "date": "timestamp",
                         "date-time": "timestamp"}.get(self.raw_format, "string"))
        return Decl({"boolean": "bool", "number": "double", "integer": "int"}.get(self.type, "dyn"))

    def compile_rules(self, path: str, resource_root: bool, uncorrelatable: str | None = None) -> None:
        """Compile ``x-kubernetes-validations``; errors are kept for :func:`validate_crd_schema_structural`.

        ``uncorrelatable`` is the path of the nearest enclosing list whose items cannot be matched to
        their old values (any list but ``x-kubernetes-list-type: map``): ``oldSelf`` is refused there.
        """
        raw_rules = self.raw.get("x-kubernetes-validations") or []
        if raw_rules:
            decl = self.decl(resource_root)
            for i, raw in enumerate(raw_rules):
                self.rules.append(self._compile_rule(raw if isinstance(raw, dict) else {}, decl,
                                                     f"{path}.x-kubernetes-validations[{i}]", uncorrelatable))
        for name, prop in self.properties.items():
            if prop.any_rules:
                prop.compile_rules(f"{path}.properties[{name}]", prop.embedded, uncorrelatable)
        if self.additional is not None and self.additional.any_rules:
            self.additional.compile_rules(f"{path}.additionalProperties", self.additional.embedded, uncorrelatable)
        if self.items is not None and self.items.any_rules:
            items_uncorrelatable = uncorrelatable or (path if self.list_type != "map" else None)
            self.items.compile_rules(f"{path}.items", self.items.embedded, items_uncorrelatable)

    def _compile_rule(self, raw: dict[str, Any], decl: Decl, path: str, uncorrelatable: str | None) -> _Rule:
        rule = _Rule(raw)
        if not rule.text.strip():
            return rule
        try:
            rule.program = cel.compile_expression(rule.text, decl, optional_old_self=rule.optional_old_self)
        except CelCompileError as exc:
            detail = "cel expression must evaluate to a bool" if exc.wrong_result_type else (
                f"compilation failed: {exc}")
            self.rule_errors.append(_E(INVALID, f"{path}.rule", _rule_value(raw), detail))
        message_expression = str(raw.get("messageExpression") or "")
        if message_expression.strip():
            try:
                rule.message_expression = cel.compile_expression(
                    message_expression, decl, expect="string", optional_old_self=rule.optional_old_self)
            except CelCompileError as exc:
                detail = "messageExpression must evaluate to a string" if exc.wrong_result_type else (
                    f"messageExpression compilation failed: {exc}")
                self.rule_errors.append(_E(INVALID, f"{path}.messageExpression", _rule_value(raw), detail))
        if str(raw.get("fieldPath") or "").strip():
            rule.field_path = _normalize_field_path(str(raw["fieldPath"]), self)
            if rule.field_path is None:
                self.rule_errors.append(_E(INVALID, f"{path}.fieldPath", raw["fieldPath"], "must be a valid path"))
        if rule.program is None:
            return rule
        if rule.program.uses_old_self and uncorrelatable is not None:
            self.rule_errors.append(_E(INVALID, f"{path}.rule", rule.text,
                                       f"oldSelf cannot be used on the uncorrelatable portion of the schema "
                                       f"within {uncorrelatable}"))
        elif not rule.program.uses_old_self and raw.get("optionalOldSelf") is not None:
            self.rule_errors.append(_E(INVALID, f"{path}.optionalOldSelf", raw.get("optionalOldSelf"),
                                       "may not be set if oldSelf is not used in rule"))
        return rule


def _rule_value(raw: dict[str, Any]) -> dict[str, Any]:
    """How kube-apiserver prints a ValidationRule in an error (the internal Go struct, JSON-encoded)."""
    return GoStruct(Rule=raw.get("rule", ""), Message=raw.get("message", ""),
                    MessageExpression=raw.get("messageExpression", ""), Reason=raw.get("reason"),
                    FieldPath=raw.get("fieldPath", ""), OptionalOldSelf=raw.get("optionalOldSelf"))


_FIELD_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]")


def _normalize_field_path(path: str, node: _Node) -> str | None:
    """``ValidFieldPath``: ``.spec.a['b.c']`` -> ``spec.a.b.c``-style field path, or None if invalid."""
    out: str | None = None
    pos, current = 0, node
    while pos < len(path):
        m = _FIELD_PATH_TOKEN.match(path, pos)
        if m is None:
            return None
        name = m.group(1) if m.group(1) is not None else re.sub(r"\\(.)", r"\1", m.group(2))
        if current.properties:
            prop = current.properties.get(name)
            if prop is None:
                return None
            out, current = _child(out, name), prop
        elif current.additional is not None:
            out, current = _key(out, name), current.additional
        else:
            return None
        pos = m.end()
    return out


# ------------------------------------------------------------------------------------------------
# Pruning, ObjectMeta coercion, defaulting
# ------------------------------------------------------------------------------------------------

_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


class _Unknown:
    """Collects the paths of pruned fields (``spec.foo``, ``spec.items[0].bar``) when asked to."""

    __slots__ = ("paths",)

    def __init__(self, paths: list[str] | None) -> None:
        self.paths = paths

    def record(self, parent: str, key: str) -> None:
        if self.paths is not None:
            self.paths.append(f"{parent}.{key}" if parent else key)


_NOT_TRACKED = _Unknown(None)


def _prune(x: Any, s: _Node | None, resource_root: bool = False, unknown: _Unknown = _NOT_TRACKED,
           path: str = "") -> None:
    """``pruning.Prune``: remove what ``s`` does not specify (``path`` is only used for ``unknown``)."""
    if s is not None and s.preserve_unknown:
        _skip_prune(x, s, resource_root, unknown, path)
        return
    if isinstance(x, dict):
        if s is None:
            for k in x:
                unknown.record(path, k)
            x.clear()
            return
        meta_ok = resource_root or s.embedded
        for k in list(x):
            if meta_ok and k in _META_FIELDS:
                continue
            child_path = f"{path}.{k}" if path else k
            prop = s.properties.get(k)
            if prop is not None:
                _prune(x[k], prop, prop.embedded, unknown, child_path)
            elif s.has_additional:
                additional = s.additional
                _prune(x[k], additional, additional is not None and additional.embedded, unknown, child_path)
            else:
                unknown.record(path, k)
                del x[k]
    elif isinstance(x, list):
        items = s.items if s is not None else None
        for i, v in enumerate(x):
            _prune(v, items, items is not None and items.embedded, unknown, f"{path}[{i}]")


def _skip_prune(x: Any, s: _Node | None, resource_root: bool, unknown: _Unknown, path: str) -> None:
    """Pruning below ``x-kubernetes-preserve-unknown-fields``: only specified fields are descended into."""
    if s is None:
        return
    if isinstance(x, dict):
        meta_ok = resource_root or s.embedded
        for k, v in x.items():
            if meta_ok and k in _META_FIELDS:
                continue
            child_path = f"{path}.{k}" if path else k
            prop = s.properties.get(k)
            if prop is not None:
                _prune(v, prop, prop.embedded, unknown, child_path)
            elif s.has_additional:
                additional = s.additional
                _prune(v, additional, additional is not None and additional.embedded, unknown, child_path)
    elif isinstance(x, list):
        items = s.items
        for i, v in enumerate(x):
            _skip_prune(v, items, items is not None and items.embedded, unknown, f"{path}[{i}]")


def _prune_nulls(x: Any, s: _Node | None) -> None:
    """``PruneNonNullableNullsWithoutDefaults``."""
    if isinstance(x, dict):
        for k in list(x):
            child = s.child(k) if s is not None else None
            if x[k] is None and child is not None and not child.nullable and not child.has_default:
                del x[k]
            else:
                _prune_nulls(x[k], child)
    elif isinstance(x, list):
        items = s.items if s is not None else None
        for v in x:
            _prune_nulls(v, items)


_META_STRINGS = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
                 "creationTimestamp", "deletionTimestamp")
_OWNER_REF_FIELDS = ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
_MANAGED_FIELDS = ("manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource")


_OBJECT_META_FIELDS = (*_META_STRINGS, "generation", "deletionGracePeriodSeconds", "labels", "annotations",
                       "ownerReferences", "finalizers", "managedFields")


def _coerce_object_meta(meta: Any, unknown: _Unknown = _NOT_TRACKED, path: str = "metadata") -> Any:
    """Round-trip ``metadata`` through ``metav1.ObjectMeta``: unknown keys and empty values disappear.

    Known fields of the wrong type are left alone (upstream fails the decode; the server's own metadata
    validation reports them).
    """
    if not isinstance(meta, dict):
        return meta
    for k in meta:
        if k not in _OBJECT_META_FIELDS:
            unknown.record(path, k)
    out: dict[str, Any] = {}
    for k in _OBJECT_META_FIELDS:
        if k not in meta:
            continue
        v = meta[k]
        empty = v == "" or v == {} or v == [] or (type(v) is int and v == 0)
        if v is None or (empty and k != "deletionGracePeriodSeconds"):
            continue  # omitempty
        if k in ("ownerReferences", "managedFields") and isinstance(v, list):
            v = [_coerce_list_entry(k, entry, unknown, f"{path}.{k}[{i}]") for i, entry in enumerate(v)]
        out[k] = v
    return out


def _coerce_list_entry(kind: str, entry: Any, unknown: _Unknown, path: str) -> Any:
    if not isinstance(entry, dict):
        return entry
    known = _OWNER_REF_FIELDS if kind == "ownerReferences" else _MANAGED_FIELDS
    for k in entry:
        if k not in known:
            unknown.record(path, k)
    if kind == "ownerReferences":  # apiVersion/kind/name/uid are always serialized
        return {f: entry.get(f, "") for f in known[:4]} | {f: entry[f] for f in known[4:] if entry.get(f) is not None}
    return {f: entry[f] for f in known if entry.get(f) not in (None, "")}


def _coerce_embedded(x: Any, s: _Node | None, unknown: _Unknown = _NOT_TRACKED, path: str = "") -> None:
    """``objectmeta.Coerce``: ``metadata`` of embedded resources becomes a clean ObjectMeta."""
    if s is None:
        return
    if isinstance(x, dict):
        if s.embedded and "metadata" in x:
            x["metadata"] = _coerce_object_meta(x["metadata"], unknown, f"{path}.metadata" if path else "metadata")
        for k, v in x.items():
            child = s.child(k)
            if child is not None and child.any_embedded:
                _coerce_embedded(v, child, unknown, f"{path}.{k}" if path else k)
    elif isinstance(x, list) and s.items is not None and s.items.any_embedded:
        for i, v in enumerate(x):
            _coerce_embedded(v, s.items, unknown, f"{path}[{i}]")


def _default(x: Any, s: _Node | None) -> None:
    """``defaulting.Default``."""
    if s is None or not s.any_defaults:
        return
    if isinstance(x, dict):
        for k, prop in s.properties.items():
            if prop.has_default and (k not in x or (x[k] is None and not prop.nullable)):
                x[k] = copy.deepcopy(prop.default)
        for k, v in x.items():
            known = s.properties.get(k)
            if known is not None:
                _default(v, known)
            elif s.additional is not None:
                additional = s.additional
                if v is None and not additional.nullable and additional.has_default:
                    x[k] = v = copy.deepcopy(additional.default)
                _default(v, additional)
    elif isinstance(x, list) and s.items is not None:
        for i, v in enumerate(x):
            if v is None and not s.items.nullable and s.items.has_default:
                x[i] = v = copy.deepcopy(s.items.default)
            _default(v, s.items)


# ------------------------------------------------------------------------------------------------
# Ratcheting: correlating new and old values (apiserver/pkg/cel/common.CorrelatedObject)
# ------------------------------------------------------------------------------------------------

_NO_OLD: Any = object()  # "no correlated old value" (distinct from an old value of null)


class _Corr:
    __slots__ = ("_children", "_equal", "_old_by_key", "new", "node", "old")

    def __init__(self, new: Any, old: Any, node: _Node) -> None:
        self.new, self.old, self.node = new, old, node
        self._equal: bool | None = None
        self._children: dict[Any, _Corr | None] = {}
        self._old_by_key: dict[Any, Any] | None = None

    def key(self, field: str) -> _Corr | None:
        if field in self._children:
            return self._children[field]
        child = None
        if isinstance(self.new, dict) and isinstance(self.old, dict) and field in self.new and field in self.old:
            schema = self.node.child(field)
            if schema is not None:
                child = _Corr(self.new[field], self.old[field], schema)
        self._children[field] = child
        return child

    def index(self, i: int) -> _Corr | None:
        if i in self._children:
            return self._children[i]
        child = None
        if (self.node.list_type == "map" and self.node.items is not None and isinstance(self.new, list)
                and isinstance(self.old, list) and i < len(self.new)):
            if self._old_by_key is None:
                self._old_by_key = _map_list_index(self.old, self.node.list_map_keys)
            old = self._old_by_key.get(_map_list_key(self.new[i], self.node.list_map_keys))
            if old is not None:
                child = _Corr(self.new[i], old, self.node.items)
        self._children[i] = child
        return child

    def equal(self) -> bool:
        """``CachedDeepEqual``: equal, comparing only what the schema can correlate."""
        if self._equal is None:
            self._equal = self._compute_equal()
        return self._equal

    def _compute_equal(self) -> bool:
        new, old = self.new, self.old
        if new is None or old is None:
            return new is None and old is None
        if isinstance(new, list) and isinstance(old, list):
            if len(new) != len(old):
                return False
            for i in range(len(new)):
                child = self.index(i)
                if child is None:
                    return self.node.list_type != "map" and _json_equal(old, new)
                if not child.equal():
                    return False
            return True
        if isinstance(new, dict) and isinstance(old, dict):
            if len(new) != len(old):
                return False
            for k in new:
                child = self.key(k)
                if child is None or not child.equal():
                    return False
            return True
        return _json_equal(new, old)


def _map_list_key(item: Any, keys: list[str]) -> Any:
    if not isinstance(item, dict):
        return None
    return tuple(_hashable(item[k]) if k in item else ("<unset>",) for k in keys)


def _map_list_index(items: list[Any], keys: list[str]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for item in items:
        key = _map_list_key(item, keys)
        if key is not None:
            out.setdefault(key, item)
    return out


class _CelRatchet:
    """``ratchetingOptions`` of the CEL validator: the node's correlation and its nearest correlated parent."""

    __slots__ = ("current", "parent")

    def __init__(self, current: _Corr | None, parent: _Corr | None) -> None:
        self.current, self.parent = current, parent

    def key(self, field: str) -> _CelRatchet:
        if self.current is None:
            return self
        if self.parent is None and field in ("apiVersion", "kind"):
            return _NO_RATCHET
        return _CelRatchet(self.current.key(field), self.current)

    def index(self, i: int) -> _CelRatchet:
        if self.current is None:
            return self
        return _CelRatchet(self.current.index(i), self.current)

    def should_ratchet(self) -> bool:
        if self.current is not None:
            return self.current.equal()
        return self.parent is not None and self.parent.equal()


_NO_RATCHET = _CelRatchet(None, None)


# ------------------------------------------------------------------------------------------------
# kube-openapi schema validation
# ------------------------------------------------------------------------------------------------

class _OpenAPI:
    """One validation run (``SchemaValidator.Validate`` + ``kubeOpenAPIResultToFieldErrors``)."""

    def __init__(self, prefix: str | None) -> None:
        self.prefix = prefix
        self.errs: list[_E] = []

    # -- error constructors --------------------------------------------------------------------
    def fail(self, type_: str, name: str, value: Any, detail: str) -> None:
        self.errs.append(_E(type_, _openapi_field(self.prefix, name), value, detail))

    def plain(self, detail: str) -> None:
        """A non-``Validation`` error: reported on the prefix path with an empty value."""
        self.errs.append(_E(INVALID, self.prefix, "", detail))

    def type_error(self, name: str, type_name: str, value: str) -> None:
        self.fail(TYPE_INVALID, name, value, f"{name} in body must be of type {type_name}: {go_quote(value)}")

    # -- traversal -------------------------------------------------------------------------------
    def validate(self, v: Any, s: _Node, name: str, old: Any = _NO_OLD) -> None:
        """Validate ``v``; ``old`` is its correlated old value on update (``_NO_OLD`` if there is none)."""
        start = len(self.errs)
        self._validate(v, s, name, old)
        if old is not _NO_OLD and len(self.errs) > start and _Corr(v, old, s).equal():
            del self.errs[start:]  # ratcheting: unchanged values keep their (pre-existing) errors

    def _validate(self, v: Any, s: _Node, name: str, old: Any) -> None:
        if v is None:
            if s.types and not s.nullable:
                self.type_error(name, ",".join(s.types), "null")
            self.enum(v, s, name)
            return
        kind = _json_kind(v)
        self.check_type(v, kind, s, name)
        if s.all_of or s.any_of or s.one_of or s.not_ is not None:
            self.schema_props(v, s, name, old)
        if kind == "string":
            self.string(v, s, name)
            if s.format and s.format.replace("-", "") in _FORMATS and not _FORMATS[s.format.replace("-", "")](v):
                self.fail(TYPE_INVALID, name, v, f"{name} in body must be of type {s.format}: {go_quote(v)}")
        elif kind in ("integer", "number"):
            self.number(v, s, name)
        elif kind == "array":
            self.array(v, s, name, old)
        if s.enum:
            self.enum(v, s, name)
        if kind == "object":
            self.object(v, s, name, old)

    def check_type(self, v: Any, kind: str, s: _Node, name: str) -> None:
        types, fmt = s.types, s.format
        if not fmt and (not types or kind in types):
            return
        go_format = {"integer": "int64", "number": "float64"}.get(kind, "")
        is_float_int = kind == "number" and _is_json_integer(v) and "integer" in types
        is_int_float = kind == "integer" and "number" in types
        if kind not in ("string", "array") and fmt and not (
                kind in types or go_format == fmt or is_float_int or is_int_float):
            self.type_error(name, fmt, go_format)
            return
        if "number" not in types and "integer" not in types and fmt and kind in ("string", "array"):
            return
        if not (kind in types or is_float_int or is_int_float):
            self.type_error(name, ",".join(types), kind)

    def string(self, v: str, s: _Node, name: str) -> None:
        if s.max_length is not None and len(v) > s.max_length:
            unit = "byte" if s.max_length == 1 else "bytes"
            self.fail(TOO_LONG, name, "", f"may not be more than {s.max_length} {unit}")
        elif s.min_length is not None and len(v) < s.min_length:
            self.fail(INVALID, name, v, f"{name} in body should be at least {s.min_length} chars long")
        elif s.pattern is not None and s.pattern.search(v) is None:
            self.fail(INVALID, name, v, f"{name} in body should match '{s.pattern_text}'")

    def number(self, v: int | float, s: _Node, name: str) -> None:
        type_name = s.types[0] if len(s.types) == 1 and s.types[0] in ("integer", "number") else ""
        fmt = s.format if type_name else ""
        if (err := _range_error(v, type_name, fmt, "Checked", name)) is not None:
            self.plain(err)
        native = isinstance(v, int)
        if s.multiple_of is not None:
            factor = s.multiple_of
            range_err = _range_error(factor, type_name, fmt, "MultipleOf", name)
            if range_err is not None:
                self.plain(range_err)
            if native and range_err is None:
                f = int(factor)
                if f <= 0:
                    self.fail(INVALID, name, f, f"factor MultipleOf declared for {name} must be positive: {f}")
                elif v % f:
                    self.fail(INVALID, name, v, f"{name} in body should be a multiple of {f}")
            elif factor <= 0:
                self.fail(INVALID, name, float(factor),
                          f"factor MultipleOf declared for {name} must be positive: {format_go_float(factor)}")
            else:
                mult = (1 / factor * v) if factor < 1 else (v / factor)
                if not _is_json_integer(mult):
                    self.fail(INVALID, name, v, f"{name} in body should be a multiple of {format_go_float(factor)}")
        for bound, exclusive, word, is_max in ((s.minimum, s.exclusive_minimum, "Minimum boundary", False),
                                               (s.maximum, s.exclusive_maximum, "Maximum boundary", True)):
            if bound is None:
                continue
            range_err = _range_error(bound, type_name, fmt, word, name)
            if range_err is not None:
                self.plain(range_err)
            limit: int | float = int(bound) if native and range_err is None else float(bound)
            value = v if native and range_err is None else float(v)
            if is_max:
                failed = value >= limit if exclusive else value > limit
                text = "less than" if exclusive else "less than or equal to"
            else:
                failed = value <= limit if exclusive else value < limit
                text = "greater than" if exclusive else "greater than or equal to"
            if failed:
                shown = str(limit) if isinstance(limit, int) else format_go_float(limit)
                self.fail(INVALID, name, v, f"{name} in body should be {text} {shown}")

    def array(self, v: list[Any], s: _Node, name: str, old: Any) -> None:
        if s.items is not None:
            # only items of x-kubernetes-list-type=map lists correlate with old items (by their keys)
            old_items: dict[Any, Any] = {}
            if old is not _NO_OLD and s.list_type == "map" and isinstance(old, list):
                old_items = _map_list_index(old, s.list_map_keys)
            for i, item in enumerate(v):
                old_item = old_items.get(_map_list_key(item, s.list_map_keys), _NO_OLD) if old_items else _NO_OLD
                self.validate(item, s.items, f"{name}[{i}]", old_item)
        if s.min_items is not None and len(v) < s.min_items:
            self.fail(INVALID, name, len(v), f"{name} in body should have at least {s.min_items} items")
        if s.max_items is not None and len(v) > s.max_items:
            self.fail(TOO_MANY, name, len(v), f"must have at most {s.max_items} item{'' if s.max_items == 1 else 's'}")
        if s.unique_items:
            seen: list[Any] = []
            for item in v:
                if any(_json_equal(item, x) for x in seen):
                    self.fail(INVALID, name, "", f"{name} in body shouldn't contain duplicates")
                    break
                seen.append(item)

    def enum(self, v: Any, s: _Node, name: str) -> None:
        if not s.enum or any(_enum_match(v, e) for e in s.enum):
            return
        values = [e if isinstance(e, str) else go_json(e) for e in s.enum]
        self.fail(NOT_SUPPORTED, name, v, "supported values: " + ", ".join(go_quote(x) for x in values))

    def object(self, v: dict[str, Any], s: _Node, name: str, old: Any) -> None:
        n = len(v)
        if s.min_properties is not None and n < s.min_properties:
            self.fail(INVALID, name, n, f"{name} in body should have at least {s.min_properties} properties")
        if s.max_properties is not None and n > s.max_properties:
            self.fail(TOO_MANY, name, n,
                      f"must have at most {s.max_properties} item{'' if s.max_properties == 1 else 's'}")
        is_root = name == ""
        old_map = old if isinstance(old, dict) else None  # _NO_OLD is not a dict
        if s.has_additional and not s.additional_allows:
            for k in v:
                if k not in s.properties:
                    self.fail(INVALID, name, k, f"{name}.{k} in body is a forbidden property")
        elif s.additional is not None:
            for k, item in v.items():
                if k not in s.properties:
                    child_old = old_map.get(k, _NO_OLD) if old_map is not None else _NO_OLD
                    self.validate(item, s.additional, f"{name}.{k}", child_old)
        for k, prop in s.properties.items():
            if k in v:
                child_old = _NO_OLD
                if old_map is not None and not (is_root and k in ("apiVersion", "kind")):
                    child_old = old_map.get(k, _NO_OLD)
                self.validate(v[k], prop, k if is_root else f"{name}.{k}", child_old)
        for k in s.required:
            if k not in v:
                self.fail(REQUIRED, f"{name}.{k}", "", "")

    def schema_props(self, v: Any, s: _Node, name: str, old: Any) -> None:
        """allOf / anyOf / oneOf / not (composite errors land on the prefix path with an empty value)."""
        quoted = go_quote(name)

        def run(sub: _Node) -> list[_E]:
            inner = _OpenAPI(self.prefix)
            inner._validate(v, sub, name, old)
            return inner.errs

        def fewest(results: list[list[_E]]) -> list[_E]:  # approximates go-openapi's "best" failure
            return sorted(results, key=len)[0]

        if s.any_of:
            results = [run(sub) for sub in s.any_of]
            if all(results):
                self.plain(f"{quoted} must validate at least one schema (anyOf)")
                self.errs.extend(fewest(results))
        if s.one_of:
            results = [run(sub) for sub in s.one_of]
            valid = sum(1 for r in results if not r)
            if valid != 1:
                extra = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self.plain(f"{quoted} must validate one and only one schema (oneOf). {extra}")
                if valid == 0:
                    self.errs.extend(fewest(results))
        if s.all_of:
            results = [run(sub) for sub in s.all_of]
            for r in results:
                self.errs.extend(r)
            valid = sum(1 for r in results if not r)
            if valid != len(results):
                extra = ". None validated" if valid == 0 else ""
                self.plain(f"{quoted} must validate all the schemas (allOf){extra}")
        if s.not_ is not None and not run(s.not_):
            self.plain(f"{quoted} must not validate the schema (not)")


def _range_error(v: int | float, type_name: str, fmt: str, what: str, name: str) -> str | None:
    """``IsValueValidAgainstRange``: a bound or value not representable in the schema's numeric format."""
    ok = True
    if type_name == "integer":
        integral = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
        lo, hi = (-(2**31), 2**31 - 1) if fmt == "int32" else (-(2**63), 2**63 - 1)
        ok = integral and lo <= int(v) <= hi
    elif type_name == "number" and fmt == "float":
        ok = abs(float(v)) <= 3.4028234663852886e38
    if ok:
        return None
    if fmt:
        return f"{what} value must be of type {type_name} with format {fmt} in {name}"
    return f"{what} value must be of type {type_name} (default format) in {name}"


def _enum_match(data: Any, e: Any) -> bool:
    """Go's enum check: ``reflect.DeepEqual`` after converting to the enum value's type."""
    if data is None:
        return False
    if _json_equal(data, e):
        return True
    numeric = (int, float)
    if isinstance(data, numeric) and isinstance(e, numeric) and not isinstance(data, bool) and not isinstance(e, bool):
        return (int(data) if isinstance(e, int) else float(data)) == e
    return False


# ------------------------------------------------------------------------------------------------
# Embedded resources and list types
# ------------------------------------------------------------------------------------------------

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _embedded_errors(x: Any, s: _Node | None, path: str | None, out: list[_E]) -> None:
    """``objectmeta.Validate`` (not at the root): TypeMeta of ``x-kubernetes-embedded-resource`` objects."""
    if s is None or not s.any_embedded:
        return
    if isinstance(x, dict):
        if s.embedded:
            for k in ("apiVersion", "kind"):
                if k not in x:
                    out.append(_E(REQUIRED, _child(path, k)))
            for k, v in x.items():
                if k not in ("apiVersion", "kind"):
                    continue
                if not isinstance(v, str):
                    out.append(_E(INVALID, _child(path, k), v, "must be a string"))
                elif not v:
                    out.append(_E(INVALID, _child(path, k), v, "must not be empty"))
                elif k == "apiVersion" and v != "/" and v.count("/") > 1:
                    out.append(_E(INVALID, _child(path, k), v, f"unexpected GroupVersion string: {v}"))
                elif k == "kind":
                    problems = []
                    if len(v) > 63:
                        problems.append("must be no more than 63 characters")
                    if not _DNS1035.match(v.lower()):
                        problems.append(
                            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                            "with an alphabetic character, and end with an alphanumeric character (e.g. "
                            "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
                    if problems:
                        out.append(_E(INVALID, _child(path, k), v,
                                      "may have mixed case, but should otherwise match: " + ",".join(problems)))
        for k, v in x.items():
            prop = s.properties.get(k)
            if prop is not None:
                _embedded_errors(v, prop, _child(path, k), out)
            elif s.additional is not None:
                _embedded_errors(v, s.additional, _key(path, k), out)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _embedded_errors(v, s.items, _key(path, i), out)


def _list_type_errors(x: Any, s: _Node | None, path: str | None, out: list[_E]) -> None:
    """``listtype.ValidateListSetsAndMaps``."""
    if s is None or not s.any_list_types:
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if s.additional is not None:
                _list_type_errors(v, s.additional, _key(path, k), out)
            prop = s.properties.get(k)
            if prop is not None:
                _list_type_errors(v, prop, _child(path, k), out)
    elif isinstance(x, list):
        if s.list_type == "set":
            for i in _duplicates([_hashable(v) for v in x]):
                out.append(_E(DUPLICATE, _key(path, i), x[i]))
        elif s.list_type == "map":
            _list_map_errors(x, s, path, out)
        if s.items is not None:
            for i, v in enumerate(x):
                _list_type_errors(v, s.items, _key(path, i), out)


def _duplicates(keys: list[Any]) -> list[int]:
    """Indices of the second occurrence of each repeated key."""
    counts: dict[Any, int] = {}
    out = []
    for i, k in enumerate(keys):
        counts[k] = counts.get(k, 0) + 1
        if counts[k] == 2:
            out.append(i)
    return out


def _list_map_errors(x: list[Any], s: _Node, path: str | None, out: list[_E]) -> None:
    for i, item in enumerate(x):
        if item is not None and not isinstance(item, dict):
            out.append(_E(INVALID, _key(path, i), item, "must be an object for an array of list-type map"))
            return
    keys = s.list_map_keys
    identities = []
    for item in x:
        present = {k: item[k] for k in keys if isinstance(item, dict) and k in item}
        identities.append(present)
    for i in _duplicates([tuple((k, _hashable(v)) for k, v in ident.items()) for ident in identities]):
        out.append(_E(DUPLICATE, _key(path, i), identities[i]))


# ------------------------------------------------------------------------------------------------
# CEL rules (apiextensions-apiserver/pkg/apiserver/schema/cel.Validator)
# ------------------------------------------------------------------------------------------------

_MAX_MESSAGE_EXPRESSION_BYTES = 5 * 1024


def _cel_errors(v: Any, old: Any, s: _Node, path: str | None, ratchet: _CelRatchet, resource_root: bool,
                out: list[_E]) -> None:
    if v is None or not s.any_rules:
        return
    if s.rules:
        _cel_node(v, old, s, path, ratchet, resource_root, out)
    if isinstance(v, dict):
        old_map = old if isinstance(old, dict) else {}
        if s.additional is not None and s.additional.any_rules:
            for k, item in v.items():
                _cel_errors(item, old_map.get(k), s.additional, _key(path, k), ratchet.key(k),
                            s.additional.embedded, out)
        rule_properties = s.rule_properties
        if rule_properties:
            for k, item in v.items():
                prop = rule_properties.get(k)
                if prop is not None:
                    _cel_errors(item, old_map.get(k), prop, _child(path, k), ratchet.key(k), prop.embedded, out)
    elif isinstance(v, list) and s.items is not None:
        old_by_key: dict[Any, Any] = {}
        if s.list_type == "map" and isinstance(old, list):
            old_by_key = _map_list_index(old, s.list_map_keys)
        for i, item in enumerate(v):
            old_item = old_by_key.get(_map_list_key(item, s.list_map_keys)) if old_by_key else None
            _cel_errors(item, old_item, s.items, _key(path, i), ratchet.index(i), s.items.embedded, out)


def _cel_node(v: Any, old: Any, s: _Node, path: str | None, ratchet: _CelRatchet, resource_root: bool,
              out: list[_E]) -> None:
    type_name = "object" if resource_root else s.type
    decl = s.decl(resource_root)
    try:
        self_val = decl.convert(v)
        old_val = decl.convert(old) if old is not None else None
    except CelEvalError as exc:
        out.append(_E(INVALID, path, type_name, str(exc)))
        return
    for rule in s.rules:
        if rule.program is None or rule.program.unsupported:
            continue  # empty rule, or one needing a CEL library devcluster does not implement
        uses_old = rule.program.uses_old_self
        if uses_old and old is None and not rule.optional_old_self:
            continue  # transition rules only run when there is an old value to compare with
        old_binding: Any = old_val
        if rule.optional_old_self:
            old_binding = cel.Optional(old_val, old is not None)
        env = {"self": self_val, "oldSelf": old_binding}
        try:
            result = rule.program.evaluate(env)
        except CelEvalError as exc:
            msg = str(exc)
            if msg.startswith("no such overload"):
                detail = (f"'{msg}': call arguments did not match a supported operator, function or macro "
                          f"signature for rule: {rule.error_string()}")
            else:
                detail = f"{msg} evaluating rule: {rule.error_string()}"
            out.append(_E(INVALID, path, type_name, detail))
            continue
        if result is True:
            continue
        err_path = _child(path, rule.field_path) if rule.field_path else path
        detail = _evaluate_message(rule, env) or (rule.message or f"failed rule: {rule.text.strip()}")
        value = OMIT if s.type in ("object", "array") or resource_root else v
        if rule.reason == "FieldValueForbidden":
            err = _E(FORBIDDEN, err_path, "", detail)
        elif rule.reason == "FieldValueRequired":
            err = _E(REQUIRED, err_path, "", detail)
        elif rule.reason == "FieldValueDuplicate":
            err = _E(DUPLICATE, err_path, value)
        else:
            err = _E(INVALID, err_path, value, detail)
        if not uses_old and ratchet.should_ratchet():
            continue  # ratcheted: upstream turns this into a warning
        out.append(err)


def _evaluate_message(rule: _Rule, env: dict[str, Any]) -> str | None:
    if rule.message_expression is None:
        return None
    try:
        text = rule.message_expression.evaluate(env)
    except CelEvalError:
        return None
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text or "\n" in text or len(text.encode()) > _MAX_MESSAGE_EXPRESSION_BYTES:
        return None
    return text


# ------------------------------------------------------------------------------------------------
# CRD-time schema checks
# ------------------------------------------------------------------------------------------------

_OPENAPI_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
_GENERIC_FORBIDDEN = (("type", "must be empty to be structural"), ("default", "must be undefined to be structural"),
                      ("title", "must be empty to be structural"),
                      ("description", "must be empty to be structural"),
                      ("nullable", "must be false to be structural"),
                      ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
                      ("x-kubernetes-embedded-resource", "must be false to be structural"),
                      ("x-kubernetes-int-or-string", "must be false to be structural"),
                      ("x-kubernetes-list-map-keys", "must be empty to be structural"),
                      ("x-kubernetes-list-type", "must be undefined to be structural"),
                      ("x-kubernetes-map-type", "must be undefined to be structural"),
                      ("x-kubernetes-validations", "must be empty to be structural"))


def _structural_errors(s: dict[str, Any], level: str, path: str, out: list[_E]) -> None:
    """``validateStructuralInvariants`` (level is ``root``, ``item`` or ``field``)."""
    stype = s.get("type") or ""
    items = s.get("items")
    if stype == "array" and items is None:
        out.append(_E(REQUIRED, f"{path}.items", "", "must be specified"))
    if isinstance(items, dict):
        _structural_errors(items, "item", f"{path}.items", out)
    for k, v in (s.get("properties") or {}).items():
        if isinstance(v, dict):
            _structural_errors(v, "field", f"{path}.properties[{k}]", out)
    ap = s.get("additionalProperties")
    if ap is not None:
        if level == "root":
            out.append(_E(FORBIDDEN, f"{path}.additionalProperties", "", "must not be used at the root"))
        if isinstance(ap, dict):
            _structural_errors(ap, "field", f"{path}.additionalProperties", out)
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = bool(s.get("x-kubernetes-int-or-string"))
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    if int_or_string and preserve:
        out.append(_E(INVALID, f"{path}.x-kubernetes-preserve-unknown-fields", True,
                      "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        out.append(_E(INVALID, f"{path}.x-kubernetes-embedded-resource", True,
                      "must be false if x-kubernetes-int-or-string is true"))
    skip_any_of = s.get("anyOf") == _INT_OR_STRING_ANY_OF
    all_of = s.get("allOf") or []
    skip_first_all_of = bool(all_of) and isinstance(all_of[0], dict) and all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    _value_validation_errors(s, skip_any_of, skip_first_all_of, path, out)
    if embedded and stype != "object":
        if not stype:
            out.append(_E(REQUIRED, f"{path}.type", "", "must be object if x-kubernetes-embedded-resource is true"))
        else:
            out.append(_E(INVALID, f"{path}.type", stype, "must be object if x-kubernetes-embedded-resource is true"))
    elif not stype and not int_or_string and not preserve:
        detail = {"root": "must not be empty at the root", "item": "must not be empty for specified array items",
                  "field": "must not be empty for specified object fields"}[level]
        out.append(_E(REQUIRED, f"{path}.type", "", detail))
    if embedded and ap is not None:
        out.append(_E(FORBIDDEN, f"{path}.additionalProperties", "",
                      "must not be used if x-kubernetes-embedded-resource is set"))
    if level == "root" and stype and stype != "object":
        out.append(_E(INVALID, f"{path}.type", stype, "must be object at the root"))
    props = s.get("properties") or {}
    check_meta = level == "root" or embedded
    for k in ("kind", "apiVersion"):
        if check_meta and isinstance(props.get(k), dict) and props[k].get("type", "") != "string":
            out.append(_E(INVALID, f"{path}.properties[{k}].type", props[k].get("type", ""), "must be string"))
    meta = props.get("metadata")
    if isinstance(meta, dict):
        if check_meta and meta.get("type", "") != "object":
            out.append(_E(INVALID, f"{path}.properties[metadata].type", meta.get("type", ""), "must be object"))
        if level == "root":
            extra = {k: v for k, v in meta.items() if k not in ("type", "default")}
            if set(extra.pop("properties", None) or {}) - {"name", "generateName"} or extra:
                out.append(_E(FORBIDDEN, f"{path}.properties[metadata]", "",
                              "must not specify anything other than name and generateName, but metadata is "
                              "implicitly specified"))
    if embedded and not preserve and not props:
        out.append(_E(REQUIRED, f"{path}.properties", "",
                      "must not be empty if x-kubernetes-embedded-resource is true without "
                      "x-kubernetes-preserve-unknown-fields"))


def _value_validation_errors(s: dict[str, Any], skip_any_of: bool, skip_first_all_of: bool, path: str,
                             out: list[_E]) -> None:
    junctors = [("allOf", i, sub, skip_first_all_of and i == 0) for i, sub in enumerate(s.get("allOf") or [])]
    if not skip_any_of:
        junctors += [("anyOf", i, sub, False) for i, sub in enumerate(s.get("anyOf") or [])]
    junctors += [("oneOf", i, sub, False) for i, sub in enumerate(s.get("oneOf") or [])]
    for key, i, sub, skip in junctors:
        if isinstance(sub, dict):
            _nested_errors(sub, skip, f"{path}.{key}[{i}]", out)
    if isinstance(s.get("not"), dict):
        _nested_errors(s["not"], False, f"{path}.not", out)
    if s.get("pattern"):
        try:
            _compile_pattern(s["pattern"])
        except ValueError as exc:
            out.append(_E(INVALID, f"{path}.pattern", s["pattern"],
                          f"must be a valid regular expression, but isn't: {exc}"))


def _nested_errors(v: dict[str, Any], skip_any_of: bool, path: str, out: list[_E]) -> None:
    """``validateNestedValueValidation``: logic junctors may only restrict values, not define structure."""
    _value_validation_errors(v, skip_any_of, False, path, out)
    if isinstance(v.get("items"), dict):
        _nested_errors(v["items"], False, f"{path}.items", out)
    for k, sub in (v.get("properties") or {}).items():
        if isinstance(sub, dict):
            _nested_errors(sub, False, f"{path}.properties[{k}]", out)
    for key, detail in _GENERIC_FORBIDDEN:
        if v.get(key) not in (None, False, "", []):
            out.append(_E(FORBIDDEN, f"{path}.{key}", "", detail))
    if v.get("additionalProperties") is not None:
        out.append(_E(FORBIDDEN, f"{path}.additionalProperties", "", "must be undefined to be structural"))
    if "metadata" in (v.get("properties") or {}):
        out.append(_E(FORBIDDEN, f"{path}.properties[metadata]", "", "must not be specified in a nested context"))


def _openapi_schema_errors(s: dict[str, Any], path: str, is_root: bool, ctx: dict[str, Any],
                           out: list[_E]) -> None:
    """The parts of ``ValidateCustomResourceDefinitionOpenAPISchema`` that concern a schema node."""
    stype = s.get("type") or ""
    if stype and stype not in _OPENAPI_TYPES:
        out.append(_E(NOT_SUPPORTED, f"{path}.type", stype,
                      "supported values: " + ", ".join(go_quote(t) for t in _OPENAPI_TYPES)))
    if s.get("default") is not None and ctx.get("forbid_defaults"):
        out.append(_E(FORBIDDEN, f"{path}.default", "", "must not be set " + ctx["forbid_defaults"]))
    for key, detail in (("id", "id is not supported"), ("additionalItems", "additionalItems is not supported"),
                        ("patternProperties", "patternProperties is not supported"),
                        ("definitions", "definitions is not supported"),
                        ("dependencies", "dependencies is not supported"), ("$ref", "$ref is not supported")):
        if s.get(key) not in (None, "", {}):
            out.append(_E(FORBIDDEN, f"{path}.{key}", "", detail))
    if stype == "null":
        out.append(_E(FORBIDDEN, f"{path}.type", "", "type cannot be set to null, use nullable as an alternative"))
    if isinstance(s.get("items"), list):
        out.append(_E(FORBIDDEN, f"{path}.items", "", "items must be a schema object and not an array"))
    if ctx.get("inside_meta") and s.get("x-kubernetes-embedded-resource"):
        out.append(_E(FORBIDDEN, f"{path}.x-kubernetes-embedded-resource", "", "must not be used inside of resource meta"))
    if s.get("uniqueItems"):
        out.append(_E(FORBIDDEN, f"{path}.uniqueItems", "",
                      "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    ap = s.get("additionalProperties")
    props = s.get("properties") or {}
    if ap is not None:
        if props and (ap is False or isinstance(ap, dict)):
            out.append(_E(FORBIDDEN, f"{path}.additionalProperties", "",
                          "additionalProperties and properties are mutual exclusive"))
        if isinstance(ap, dict):
            sub_ctx = dict(ctx)
            if ctx.get("inside_meta"):
                sub_ctx["forbid_defaults"] = "inside additionalProperties applying to object metadata"
            _openapi_schema_errors(ap, f"{path}.additionalProperties", False, sub_ctx, out)
    for k, sub in props.items():
        if not isinstance(sub, dict):
            continue
        sub_ctx = dict(ctx)
        if (is_root or s.get("x-kubernetes-embedded-resource")) and k in _META_FIELDS:
            sub_ctx["inside_meta"] = True
            if is_root:
                sub_ctx["forbid_defaults"] = f"in top-level {k}"
        _openapi_schema_errors(sub, f"{path}.properties[{k}]", False, sub_ctx, out)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(key) or []):
            if isinstance(sub, dict):
                _openapi_schema_errors(sub, f"{path}.{key}[{i}]", False, ctx, out)
    if isinstance(s.get("not"), dict):
        _openapi_schema_errors(s["not"], f"{path}.not", False, ctx, out)
    if isinstance(s.get("items"), dict):
        _openapi_schema_errors(s["items"], f"{path}.items", False, ctx, out)
    _extension_errors(s, path, out)


def _extension_errors(s: dict[str, Any], path: str, out: list[_E]) -> None:
    stype = s.get("type") or ""
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        out.append(_E(INVALID, f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"))
    map_type, list_type, keys = s.get("x-kubernetes-map-type"), s.get("x-kubernetes-list-type"), s.get(
        "x-kubernetes-list-map-keys") or []
    if map_type is not None and stype != "object":
        if stype:
            out.append(_E(INVALID, f"{path}.type", stype, "must be object if x-kubernetes-map-type is specified"))
        else:
            out.append(_E(REQUIRED, f"{path}.type", "", "must be object if x-kubernetes-map-type is specified"))
    if map_type is not None and map_type not in ("atomic", "granular"):
        out.append(_E(NOT_SUPPORTED, f"{path}.x-kubernetes-map-type", map_type,
                      'supported values: "atomic", "granular"'))
    if list_type is not None and stype != "array":
        if stype:
            out.append(_E(INVALID, f"{path}.type", stype, "must be array if x-kubernetes-list-type is specified"))
        else:
            out.append(_E(REQUIRED, f"{path}.type", "", "must be array if x-kubernetes-list-type is specified"))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        out.append(_E(NOT_SUPPORTED, f"{path}.x-kubernetes-list-type", list_type,
                      'supported values: "atomic", "set", "map"'))
    if keys and list_type != "map":
        if list_type is None:
            out.append(_E(REQUIRED, f"{path}.x-kubernetes-list-type", "",
                          "must be map if x-kubernetes-list-map-keys is non-empty"))
        else:
            out.append(_E(INVALID, f"{path}.x-kubernetes-list-type", list_type,
                          "must be map if x-kubernetes-list-map-keys is non-empty"))
    if list_type == "map":
        items = s.get("items")
        if not keys:
            out.append(_E(REQUIRED, f"{path}.x-kubernetes-list-map-keys", "",
                          "must not be empty if x-kubernetes-list-type is map"))
        if items is None:
            out.append(_E(REQUIRED, f"{path}.items", "", "must have a schema if x-kubernetes-list-type is map"))
        elif isinstance(items, dict) and items.get("type") != "object":
            out.append(_E(INVALID, f"{path}.items.type", items.get("type", ""),
                          "must be object if parent array's x-kubernetes-list-type is map"))
        elif isinstance(items, dict):
            item_props = items.get("properties") or {}
            for k in keys:
                if k not in item_props:
                    out.append(_E(INVALID, f"{path}.x-kubernetes-list-map-keys", keys,
                                  "entries must all be names of item properties"))
                elif item_props[k].get("type") in ("array", "object"):
                    out.append(_E(INVALID, f"{path}.items.properties[{k}].type", items.get("type"),
                                  "must be a scalar type if parent array's x-kubernetes-list-type is map"))
            if len(set(keys)) != len(keys):
                out.append(_E(INVALID, f"{path}.x-kubernetes-list-map-keys", keys, "must not contain duplicate entries"))
    for i, rule in enumerate(s.get("x-kubernetes-validations") or []):
        _rule_errors(rule if isinstance(rule, dict) else {}, f"{path}.x-kubernetes-validations[{i}]", out)


_REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")


def _rule_errors(rule: dict[str, Any], path: str, out: list[_E]) -> None:
    text, msg = str(rule.get("rule") or ""), str(rule.get("message") or "")
    if not text.strip():
        out.append(_E(REQUIRED, f"{path}.rule", "", "rule is not specified"))
    elif msg and not msg.strip():
        out.append(_E(INVALID, f"{path}.message", msg, "must be non-empty if specified"))
    elif "\n" in msg.strip():
        out.append(_E(INVALID, f"{path}.message", msg, "must not contain line breaks"))
    elif "\n" in text.strip() and not msg.strip():
        out.append(_E(REQUIRED, f"{path}.message", "", "message must be specified if rule contains line breaks"))
    expr = str(rule.get("messageExpression") or "")
    if expr and not expr.strip():
        out.append(_E(REQUIRED, f"{path}.messageExpression", "", "messageExpression must be non-empty if specified"))
    reason = rule.get("reason")
    if reason is not None and reason not in _REASONS:
        out.append(_E(NOT_SUPPORTED, f"{path}.reason", reason,
                      "supported values: " + ", ".join(go_quote(r) for r in _REASONS)))
    fp = str(rule.get("fieldPath") or "")
    if fp and not fp.strip():
        out.append(_E(INVALID, f"{path}.fieldPath", fp, "must be non-empty if specified"))
    if "\n" in fp:
        out.append(_E(INVALID, f"{path}.fieldPath", fp, "must not contain line breaks"))


def _default_errors(node: _Node, path: str, inside_meta: bool, out: list[_E], resource_root: bool = False) -> None:
    """``defaulting.ValidateDefaults``: every default must be pruned and valid against its own schema.

    Defaults inside TypeMeta/ObjectMeta (forbidden at the root anyway) are not checked here.
    """
    if node.has_default and not inside_meta:
        pruned = copy.deepcopy(node.default)
        _prune(pruned, node, node.embedded)
        if not _json_equal(pruned, node.default):
            out.append(_E(INVALID, f"{path}.default", node.default, "must not have unknown fields"))
        else:
            validator = _OpenAPI(f"{path}.default")
            validator.validate(node.default, node, "", None)
            if validator.errs:
                out.extend(validator.errs)
            elif node.any_rules:
                _cel_errors(node.default, node.default, node, f"{path}.default", _NO_RATCHET, node.embedded, out)
    if node.items is not None:
        _default_errors(node.items, f"{path}.items", inside_meta, out)
    meta_parent = resource_root or node.embedded
    for k, prop in node.properties.items():
        _default_errors(prop, f"{path}.properties[{k}]", inside_meta or (meta_parent and k in _META_FIELDS), out)


def _collect_rule_errors(node: _Node, out: list[_E]) -> None:
    out.extend(node.rule_errors)
    for child in (*node.properties.values(), node.additional, node.items):
        if child is not None:
            _collect_rule_errors(child, out)


def _check(schema: dict[str, Any], path: str) -> tuple[list[_E], _Node | None]:
    """All CRD-time errors for ``schema`` and, when it is usable, its compiled tree."""
    if not isinstance(schema, dict):
        return [_E(REQUIRED, path, "", "")], None
    errs: list[_E] = []
    if schema.get("nullable"):
        errs.append(_E(FORBIDDEN, f"{path}.nullable", "", "nullable cannot be true at the root"))
    structural: list[_E] = []
    _structural_errors(schema, "root", path, structural)
    # validateStructuralCompleteness: junctors at the root may only mention properties that exist
    junctors: list[tuple[str, Any]] = [(f"{path}.not", schema.get("not"))]
    for key in ("allOf", "anyOf", "oneOf"):
        junctors += [(f"{path}.{key}[{i}]", sub) for i, sub in enumerate(schema.get(key) or [])]
    for where, sub in junctors:
        for k in (sub.get("properties") or {}) if isinstance(sub, dict) else ():
            if k not in (schema.get("properties") or {}):
                structural.append(_E(REQUIRED, f"{path}.properties[{k}]", "",
                                     f"because it is defined in {where}.properties[{k}]"))
    structural.sort(key=lambda e: f"{e.field}: {e.body()}")
    errs.extend(structural)
    schema_errs: list[_E] = []
    _openapi_schema_errors(schema, path, True, {}, schema_errs)
    try:
        root = _Node(schema)
    except (TypeError, ValueError, AttributeError) as exc:
        return [*errs, *schema_errs, _E(INVALID, path, "", str(exc))], None
    if not structural:
        root.compile_rules(path, True)
        defaults: list[_E] = []
        _default_errors(root, path, False, defaults, resource_root=True)
        errs.extend(defaults)
        if not defaults and not schema_errs:
            _collect_rule_errors(root, schema_errs)
    errs.extend(schema_errs)
    return errs, (root if not errs else None)


def validate_crd_schema_structural(openapi_v3_schema: dict[str, Any], path: str = "openAPIV3Schema") -> list[Cause]:
    """The causes kube-apiserver reports for a CRD version's ``openAPIV3Schema``.

    ``path`` prefixes every field (pass ``spec.versions[0].schema.openAPIV3Schema``). Covers structural
    invariants (types everywhere unless preserve-unknown-fields / int-or-string, ``items`` for arrays,
    metadata restrictions, nothing structural inside allOf/anyOf/oneOf/not), unsupported keywords,
    ``uniqueItems``, ``additionalProperties`` next to ``properties``, list/map-type extensions,
    ``x-kubernetes-validations`` (including CEL compilation) and invalid or unpruned defaults.
    """
    errs, _ = _check(openapi_v3_schema, path)
    return _causes(errs)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------

class SchemaError(ValueError):
    """A schema kube-apiserver would reject; ``causes`` are the upstream field errors."""

    def __init__(self, causes: list[Cause]) -> None:
        super().__init__("; ".join(f"{c.field}: {c.message}" for c in causes))
        self.causes = causes


class CompiledSchema:
    """One CRD version's ``openAPIV3Schema``, compiled once (CEL programs included)."""

    def __init__(self, root: _Node) -> None:
        self._root = root

    @classmethod
    def compile(cls, openapi_v3_schema: dict[str, Any], *, path: str = "openAPIV3Schema") -> CompiledSchema:
        """Compile a schema; raise :class:`SchemaError` (a ``ValueError``) if kube-apiserver would refuse it."""
        errs, root = _check(openapi_v3_schema, path)
        if errs or root is None:
            raise SchemaError(_causes(errs))
        return cls(root)

    def prune(self, obj: dict[str, Any], unknown_fields: list[str] | None = None) -> dict[str, Any]:
        """Drop fields the schema does not know (in place); returns ``obj``.

        If ``unknown_fields`` is given, the paths of dropped fields are appended to it in upstream's
        order (root ``metadata.*`` first, then sorted schema paths, then embedded metadata); with
        ``fieldValidation=Strict`` kube-apiserver rejects the request with
        ``strict decoding error: unknown field "<path>", ...``.
        """
        meta_unknown, pruned, embedded = (_Unknown([] if unknown_fields is not None else None) for _ in range(3))
        if "metadata" in obj:
            obj["metadata"] = _coerce_object_meta(obj["metadata"], meta_unknown)
        _prune(obj, self._root, True, pruned)
        _prune_nulls(obj, self._root)
        if self._root.any_embedded:
            _coerce_embedded(obj, self._root, embedded)
        if unknown_fields is not None:
            for part in (meta_unknown, pruned, embedded):
                assert part.paths is not None
                unknown_fields.extend(part.paths if part is meta_unknown else sorted(part.paths))
        return obj

    def default(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Apply schema defaults (in place); returns ``obj``."""
        _default(obj, self._root)
        return obj

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None, *,
                 subresource: str | None = None) -> list[Cause]:
        """Validate ``obj`` (``old`` is the stored object on update); returns kube-apiserver's causes.

        With ``subresource="status"`` (a write to ``/status``; ``obj`` is the old object with the new
        status) only ``.status`` is schema-checked, against the status schema, as upstream's
        ``statusStrategy`` does; list types and CEL rules still cover the whole object.
        """
        root = self._root
        if subresource == "status":
            status_schema = root.properties.get("status")
            openapi = _OpenAPI("status")
            if "status" in obj and status_schema is not None:
                old_status = old["status"] if old is not None and "status" in old else _NO_OLD
                openapi.validate(obj["status"], status_schema, "", old_status)
            errs = openapi.errs
        else:
            openapi = _OpenAPI(None)
            openapi.validate(obj, root, "", old if old is not None else _NO_OLD)
            errs = openapi.errs
            _embedded_errors(obj, root, None, errs)
        if root.any_list_types:
            old_list_errs: list[_E] = []
            if old is not None:
                _list_type_errors(old, root, None, old_list_errs)
            if not old_list_errs:
                _list_type_errors(obj, root, None, errs)
        if root.any_rules:
            if any(e.type in _BLOCKING for e in errs):
                errs.append(_E(INVALID, None, None, "some validation rules were not checked because the object "
                                                    "was invalid; correct the existing errors to complete validation"))
            else:
                ratchet = _CelRatchet(_Corr(obj, old, root), None) if old is not None else _NO_RATCHET
                _cel_errors(obj, old, root, None, ratchet, True, errs)
        return _causes(errs)
