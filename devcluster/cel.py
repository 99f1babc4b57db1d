"""CEL for CRD ``x-kubernetes-validations`` rules, evaluated the way kube-apiserver evaluates them.

Rules are parsed with cel-python's grammar (``celpy``) and the parse tree is compiled once into Python
closures over plain JSON-like values (``int``/``float``/``str``/``bool``/``None``/``list``/``dict`` plus
``datetime``/``timedelta``/``bytes``/:class:`UInt`). celpy's own interpreter costs ~100-200 µs per
evaluation; the compiled closures cost a few µs, which keeps CR validation well under a millisecond.

What mirrors cel-go + the Kubernetes CEL environment:

* a light static check against the schema-derived :class:`Decl` of ``self``: undeclared identifiers and
  functions, ``undefined field`` on schema objects, obviously mismatched operand types and a rule that
  cannot evaluate to ``bool`` are compile errors, formatted like cel-go's issues
  (``ERROR: <input>:1:5: undefined field 'replcas'`` + source line + caret);
* runtime semantics: int64 overflow checks, truncating integer division, Go's ``%`` sign rule,
  heterogeneous numeric equality, commutative error handling for ``&&``/``||`` and the ``all``/``exists``
  macros, ``no such key: x`` for missing fields, list-type ``set``/``map`` equality ignoring order;
* property-name escaping (``foo-bar`` is ``self.foo__dash__bar``, ``namespace`` is ``self.__namespace__``);
* the Kubernetes quantity library (``quantity``, ``isQuantity``, ``sign`` and the ``kubernetes.Quantity``
  methods) over the exact :mod:`devcluster.quantity` model of ``resource.Quantity``;
* the standard library and macros (``has``, ``all``, ``exists``, ``exists_one``, ``map``, ``filter``,
  two-variable ``all``/``exists``/``existsOne``/``transformList``/``transformMap``) plus the Kubernetes
  string/list/set/regex extensions (``lowerAscii``, ``split``, ``join``, ``isSorted``, ``sum``,
  ``distinct``, ``sets.contains``, ``find``, ...).

Not implemented: the URL, IP/CIDR, semver and ``format`` libraries and string ``format``.
Rules calling them compile (kube-apiserver accepts them) and are skipped at runtime
(:attr:`Program.unsupported`); the ``.?`` optional-field syntax is not in celpy's grammar and fails to parse.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import operator
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import lark
from celpy.celparser import CELParseError, CELParser

from devcluster import quantity as _q

try:  # Kubernetes evaluates regexes with RE2; google-re2 is installed alongside cel-python.
    import re2 as _re2
except ImportError:  # pragma: no cover - fallback keeps the module importable
    _re2 = None

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

Env = dict[str, Any]
Fn = Callable[[Env], Any]


class CelCompileError(ValueError):
    """A rule that kube-apiserver would refuse when the CRD is written.

    ``str()`` is cel-go's issue text (``ERROR: <input>:1:5: undefined field 'x'`` + source + caret);
    ``wrong_result_type`` is set when the expression compiles but cannot produce the expected type.
    """

    def __init__(self, message: str, wrong_result_type: bool = False) -> None:
        super().__init__(message)
        self.wrong_result_type = wrong_result_type


class CelEvalError(Exception):
    """A runtime evaluation error; ``str()`` is the cel-go message (e.g. ``no such key: replicas``)."""


class UInt(int):
    """CEL ``uint`` (only produced by ``1u`` literals and ``uint()``)."""


class CelType(str):
    """A CEL type value (``type(x) == string``)."""


class Optional:
    """CEL ``optional`` (``oldSelf`` of rules with ``optionalOldSelf: true``)."""

    __slots__ = ("present", "value")

    def __init__(self, value: Any = None, present: bool = False) -> None:
        self.value, self.present = value, present

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Optional) and self.present == other.present
                and (not self.present or values_equal(self.value, other.value)))

    __hash__ = None  # type: ignore[assignment]


class SetList(list[Any]):
    """A list with ``x-kubernetes-list-type: set``: equality ignores order."""


class MapList(list[Any]):
    """A list with ``x-kubernetes-list-type: map``: equality ignores order."""


# ------------------------------------------------------------------------------------------------
# Schema-derived declarations
# ------------------------------------------------------------------------------------------------

_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
                       "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
                       "void", "while"})
_ESCAPE_RE = re.compile(r"__|[-./]|[^a-zA-Z0-9\-./_]")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


def escape_name(name: str) -> str | None:
    """Kubernetes' CEL escaping of a property name, or None if the property is not accessible."""
    if not name or name[0].isdigit():
        return None
    if name in _RESERVED:
        return f"__{name}__"
    out: list[str] = []
    pos = 0
    for m in _ESCAPE_RE.finditer(name):
        rep = _ESCAPES.get(m.group())
        if rep is None:
            return None
        out.append(name[pos:m.start()])
        out.append(rep)
        pos = m.end()
    out.append(name[pos:])
    return "".join(out)


class Decl:
    """The CEL type of a schema node, and how to turn JSON data of that node into CEL values.

    ``kind`` is one of ``dyn int double string bool bytes timestamp duration list map object``.
    Objects carry ``fields`` (escaped name -> (JSON name, Decl)); lists and maps carry ``elem``.
    """

    __slots__ = ("elem", "fields", "kind", "list_type")

    def __init__(self, kind: str, elem: Decl | None = None,
                 fields: dict[str, tuple[str, Decl]] | None = None, list_type: str = "") -> None:
        self.kind, self.elem, self.fields, self.list_type = kind, elem, fields, list_type

    def convert(self, value: Any) -> Any:
        """JSON value -> CEL value (numbers as the schema says, formats parsed, properties escaped)."""
        if value is None:
            return None
        kind = self.kind
        if kind == "object":
            if not isinstance(value, dict):
                return value
            assert self.fields is not None
            return {esc: d.convert(value[raw]) for esc, (raw, d) in self.fields.items() if raw in value}
        if kind == "map":
            if not isinstance(value, dict):
                return value
            assert self.elem is not None
            conv = self.elem.convert
            return {k: conv(v) for k, v in value.items()}
        if kind == "list":
            if not isinstance(value, list):
                return value
            assert self.elem is not None
            conv = self.elem.convert
            items = [conv(v) for v in value]
            if self.list_type == "set":
                return SetList(items)
            if self.list_type == "map":
                return MapList(items)
            return items
        if kind == "double" and type(value) is int:
            return float(value)
        if kind == "int" and type(value) is float and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                if kind == "timestamp":
                    return parse_timestamp(value)
                if kind == "duration":
                    return parse_duration(value, extended=True)
                if kind == "bytes":
                    return base64.b64decode(value, validate=True)
            except ValueError as exc:
                raise CelEvalError(f"invalid data, {exc}") from None
        return value


DYN = Decl("dyn")
QUANTITY = "kubernetes.Quantity"  # the CEL type name cel-go prints in overload errors
_SCALARS = {k: Decl(k) for k in ("int", "uint", "double", "string", "bool", "bytes", "null",
                                 "timestamp", "duration", "type", QUANTITY)}
_NUMERIC = frozenset({"int", "uint", "double"})


def _kind(d: Decl | None) -> str:
    return d.kind if d is not None else "dyn"


# ------------------------------------------------------------------------------------------------
# Time helpers (Go semantics)
# ------------------------------------------------------------------------------------------------

_GO_DURATION_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_EXT_DURATION_RE = re.compile(r"(\d+)\s*([A-Za-zµ]+)")
_EXT_UNITS = (("ns", "nano"), ("us", "µs", "micro"), ("ms", "milli"), ("s", "sec"), ("m", "min"),
              ("h", "hr", "hour"), ("d", "day"), ("w", "wk", "week"))
_EXT_SECONDS = (1e-9, 1e-6, 1e-3, 1, 60, 3600, 86400, 604800)


def parse_duration(text: str, extended: bool = False) -> _dt.timedelta:
    """Go ``time.ParseDuration``; with ``extended`` also go-openapi's ``strfmt.ParseDuration`` forms."""
    s = text
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return _dt.timedelta(0)
    pos, total, ok = 0, 0.0, bool(s)
    while pos < len(s):
        m = _GO_DURATION_RE.match(s, pos)
        if not m or m.group(1) in ("", "."):
            ok = False
            break
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if ok:
        return _dt.timedelta(seconds=sign * total)
    if extended:
        total, found = 0.0, False
        for num, unit in _EXT_DURATION_RE.findall(text):
            unit = unit.strip().lower()
            for variants, secs in zip(_EXT_UNITS, _EXT_SECONDS, strict=True):
                for i, variant in enumerate(variants):
                    if (i == len(variants) - 1 and unit.startswith(variant)) or variant == unit:
                        found = True
                        total += int(num) * secs
        if found:
            return _dt.timedelta(seconds=total)
    raise ValueError(f'time: invalid duration "{text}"')


_TS_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?)?$")


def parse_timestamp(text: str) -> _dt.datetime:
    """RFC 3339 timestamp (or a full-date, for ``format: date``) as an aware UTC datetime."""
    m = _TS_RE.match(text)
    if not m:
        raise ValueError(f'parsing time "{text}" as RFC3339: cannot parse')
    date, clock, frac, zone = m.groups()
    iso = f"{date}T{clock or '00:00:00'}{(frac or '')[:7]}{'+00:00' if zone in (None, 'Z', 'z') else zone}"
    try:
        return _dt.datetime.fromisoformat(iso).astimezone(_dt.UTC)
    except ValueError as exc:
        raise ValueError(f'parsing time "{text}": {exc}') from None


def format_go_float(f: float) -> str:
    """Go's ``%v`` / ``strconv.FormatFloat(f, 'g', -1, 64)`` rendering (``5``, ``0.5``, ``1e+06``)."""
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    point = len(ds) + int(exp)  # position of the decimal point relative to the digit string
    x = point - 1
    prefix = "-" if sign else ""
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{prefix}{mant}e{'+' if x >= 0 else '-'}{abs(x):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{ds}"
    if point >= len(ds):
        return prefix + ds + "0" * (point - len(ds))
    return f"{prefix}{ds[:point]}.{ds[point:]}"


# ------------------------------------------------------------------------------------------------
# Runtime operations
# ------------------------------------------------------------------------------------------------

def _overload() -> CelEvalError:
    return CelEvalError("no such overload")


def _check_int(v: int) -> int:
    if v < INT64_MIN or v > INT64_MAX:
        raise CelEvalError("integer overflow")
    return v


def _check_uint(v: int) -> UInt:
    if v < 0 or v > UINT64_MAX:
        raise CelEvalError("unsigned integer overflow")
    return UInt(v)


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float or t is UInt


def values_equal(a: Any, b: Any) -> bool:
    """CEL runtime equality (heterogeneous: numbers compare by value, other mismatched types are unequal)."""
    ta, tb = type(a), type(b)
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if ta is _q.Quantity:
        return _q.cel_equal(a, b)  # cel-go calls the left operand's Equal; see cel_equal for the asymmetry
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        if isinstance(a, SetList | MapList) or isinstance(b, SetList | MapList):
            rest = list(b)
            for x in a:
                for i, y in enumerate(rest):
                    if values_equal(x, y):
                        del rest[i]
                        break
                else:
                    return False
            return True
        return all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(v, b[k]) for k, v in a.items())
    if ta is not tb:
        return False
    return bool(a == b)


def _add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a + b)
    if ta is float and tb is float:
        return a + b
    if ta is UInt and tb is UInt:
        return _check_uint(a + b)
    if (ta is str and tb is str) or (ta is bytes and tb is bytes):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return [*a, *b]
    if ta is _dt.timedelta and tb in (_dt.timedelta, _dt.datetime):
        return a + b
    if ta is _dt.datetime and tb is _dt.timedelta:
        return a + b
    raise _overload()


def _sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a - b)
    if ta is float and tb is float:
        return a - b
    if ta is UInt and tb is UInt:
        return _check_uint(a - b)
    if ta is _dt.datetime and tb in (_dt.datetime, _dt.timedelta):
        return a - b
    if ta is _dt.timedelta and tb is _dt.timedelta:
        return a - b
    raise _overload()


def _mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a * b)
    if ta is float and tb is float:
        return a * b
    if ta is UInt and tb is UInt:
        return _check_uint(a * b)
    raise _overload()


def _div(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int and tb is int) or (ta is UInt and tb is UInt):
        if b == 0:
            raise CelEvalError("division by zero")
        q = abs(a) // abs(b)
        q = -q if (a < 0) != (b < 0) else q
        return _check_int(q) if ta is int else UInt(q)
    if ta is float and tb is float:
        if b == 0:
            return math.copysign(math.inf, a) * math.copysign(1, b) if a else math.nan
        return a / b
    raise _overload()


def _mod(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int and tb is int) or (ta is UInt and tb is UInt):
        if b == 0:
            raise CelEvalError("modulus by zero")
        r = abs(a) % abs(b)
        r = -r if a < 0 else r
        return r if ta is int else UInt(r)
    raise _overload()


_ORDERED = (str, bytes, bool, _dt.datetime, _dt.timedelta)


def _cmp(op: str) -> Callable[[Any, Any], bool]:
    fn = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

    def compare(a: Any, b: Any) -> bool:
        if _is_num(a) and _is_num(b):
            return bool(fn(a, b))
        if type(a) is type(b) and isinstance(a, _ORDERED):
            return bool(fn(a, b))
        raise _overload()

    return compare


def _in(a: Any, coll: Any) -> bool:
    if isinstance(coll, list):
        return any(values_equal(a, x) for x in coll)
    if isinstance(coll, dict):
        if isinstance(a, str | int | bool):
            return a in coll
        return False
    raise _overload()


def _index(coll: Any, key: Any) -> Any:
    if isinstance(coll, list):
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) not in (int, UInt):
            raise _overload()
        if key < 0 or key >= len(coll):
            raise CelEvalError(f"index out of bounds: {key}")
        return coll[key]
    if isinstance(coll, dict):
        if isinstance(key, str | int | bool) and key in coll:
            return coll[key]
        raise CelEvalError(f"no such key: {key}")
    if isinstance(coll, Optional):
        raise _overload()
    raise _overload()


def _select(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        raise CelEvalError(f"no such key: {name}")
    raise _overload()


def _truthy(v: Any) -> bool:
    if v is True or v is False:
        return v
    raise _overload()


def _size(v: Any) -> int:
    if isinstance(v, str | bytes | list | dict):
        return len(v)
    raise _overload()


def _type_of(v: Any) -> CelType:
    if v is None:
        return CelType("null_type")
    for py, name in ((bool, "bool"), (UInt, "uint"), (int, "int"), (float, "double"), (str, "string"),
                     (bytes, "bytes"), (list, "list"), (dict, "map"), (_dt.datetime, "google.protobuf.Timestamp"),
                     (_dt.timedelta, "google.protobuf.Duration"), (CelType, "type"), (Optional, "optional_type"),
                     (_q.Quantity, QUANTITY)):
        if isinstance(v, py):
            return CelType(name)
    return CelType("dyn")


_REGEX_CACHE: dict[str, Any] = {}


def compile_regex(pattern: str) -> Any:
    """Compile with RE2 (Go's ``regexp`` syntax, as Kubernetes uses); ValueError if invalid."""
    rx = _REGEX_CACHE.get(pattern)
    if rx is None:
        try:
            rx = _re2.compile(pattern) if _re2 is not None else re.compile(pattern)
        except Exception as exc:
            raise ValueError(f"error parsing regexp: {exc}") from None
        if len(_REGEX_CACHE) > 4096:  # patterns can come from data (``a.matches(b)``): keep it bounded
            _REGEX_CACHE.clear()
        _REGEX_CACHE[pattern] = rx
    return rx


def _regex(pattern: str) -> Any:
    try:
        return compile_regex(pattern)
    except ValueError as exc:
        raise CelEvalError(str(exc)) from None


def _str_index(s: str, i: Any) -> int:
    if type(i) is not int:
        raise _overload()
    if i < 0 or i > len(s):
        raise CelEvalError(f"index out of range: {i}")
    return i


# --- conversions ---------------------------------------------------------------------------------

def _to_int(v: Any) -> int:
    t = type(v)
    if t is int:
        return int(v)
    if t is UInt:
        return _check_int(int(v))
    if t is float:
        if math.isnan(v) or not (INT64_MIN <= v < 2.0**63):
            raise CelEvalError("integer overflow")
        return int(v)
    if t is str:
        try:
            return _check_int(int(v, 10))
        except ValueError:
            raise CelEvalError(f'strconv.ParseInt: parsing "{v}": invalid syntax') from None
    if t is _dt.datetime:
        return int(v.timestamp())
    raise _overload()


def _to_uint(v: Any) -> UInt:
    t = type(v)
    if t in (int, UInt):
        return _check_uint(int(v))
    if t is float:
        if math.isnan(v) or not (0 <= v < 2.0**64):
            raise CelEvalError("unsigned integer overflow")
        return UInt(int(v))
    if t is str:
        try:
            return _check_uint(int(v, 10))
        except ValueError:
            raise CelEvalError(f'strconv.ParseUint: parsing "{v}": invalid syntax') from None
    raise _overload()


def _to_double(v: Any) -> float:
    t = type(v)
    if t in (int, UInt, float):
        return float(v)
    if t is str:
        try:
            return float(v)
        except ValueError:
            raise CelEvalError(f'strconv.ParseFloat: parsing "{v}": invalid syntax') from None
    raise _overload()


def _to_string(v: Any) -> str:
    t = type(v)
    if t is str:
        return str(v)
    if t is bool:
        return "true" if v else "false"
    if t in (int, UInt):
        return str(int(v))
    if t is float:
        return format_go_float(v)
    if t is bytes:
        try:
            return str(v.decode("utf-8"))
        except UnicodeDecodeError:
            raise CelEvalError("invalid UTF-8 in bytes, cannot convert to string") from None
    if t is _dt.datetime:
        return str(v.astimezone(_dt.UTC).isoformat()).replace("+00:00", "Z")
    if t is _dt.timedelta:
        return format_go_float(v.total_seconds()) + "s"
    if t is CelType:
        return str(v)
    raise _overload()


def _to_bool(v: Any) -> bool:
    if type(v) is bool:
        return v
    if type(v) is str:
        if v in ("1", "t", "T", "true", "TRUE", "True"):
            return True
        if v in ("0", "f", "F", "false", "FALSE", "False"):
            return False
        raise CelEvalError("type conversion error from 'string' to 'bool'")
    raise _overload()


def _to_bytes(v: Any) -> bytes:
    if type(v) is bytes:
        return v
    if type(v) is str:
        return v.encode("utf-8")
    raise _overload()


def _to_duration(v: Any) -> _dt.timedelta:
    if type(v) is _dt.timedelta:
        return v
    if type(v) is str:
        try:
            return parse_duration(v)
        except ValueError as exc:
            raise CelEvalError(str(exc)) from None
    raise _overload()


def _to_timestamp(v: Any) -> _dt.datetime:
    if type(v) is _dt.datetime:
        return v
    if type(v) is str:
        try:
            return parse_timestamp(v)
        except ValueError as exc:
            raise CelEvalError(str(exc)) from None
    if type(v) is int:
        return _dt.datetime.fromtimestamp(v, _dt.UTC)
    raise _overload()


# --- string / list / regex library ----------------------------------------------------------------

def _s(v: Any) -> str:
    if type(v) is not str:
        raise _overload()
    return str(v)


def _l(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise _overload()
    return v


def _index_of(s: Any, sub: Any, offset: Any = 0) -> int:
    text = _s(s)
    return text.find(_s(sub), _str_index(text, offset))


def _last_index_of(s: Any, sub: Any, offset: Any = None) -> int:
    text, needle = _s(s), _s(sub)
    if offset is None:
        return text.rfind(needle)
    end = _str_index(text, offset)
    return text.rfind(needle, 0, end + len(needle))


def _split(s: Any, sep: Any, n: Any = -1) -> list[str]:
    text, separator = _s(s), _s(sep)
    if type(n) is not int:
        raise _overload()
    if n == 0:
        return []
    if separator == "":
        chars = list(text)
        return chars if n < 0 or n >= len(chars) else [*chars[:n - 1], "".join(chars[n - 1:])]
    return text.split(separator) if n < 0 else text.split(separator, n - 1)


def _substring(s: Any, start: Any, end: Any = None) -> str:
    text = _s(s)
    i = _str_index(text, start)
    j = len(text) if end is None else _str_index(text, end)
    if j < i:
        raise CelEvalError(f"invalid substring range. start: {i}, end: {j}")
    return text[i:j]


def _char_at(s: Any, i: Any) -> str:
    text = _s(s)
    index = _str_index(text, i)
    return text[index:index + 1]


def _replace(s: Any, old: Any, new: Any, n: Any = -1) -> str:
    if type(n) is not int:
        raise _overload()
    return _s(s).replace(_s(old), _s(new), n if n >= 0 else -1)


def _join(lst: Any, sep: Any = "") -> str:
    items = _l(lst)
    if not all(type(x) is str for x in items):
        raise _overload()
    return _s(sep).join(items)


def _lower_ascii(s: Any) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in _s(s))


def _upper_ascii(s: Any) -> str:
    return "".join(c.upper() if "a" <= c <= "z" else c for c in _s(s))


def _is_sorted(lst: Any) -> bool:
    items = _l(lst)
    lt = _cmp("<")
    return all(not lt(items[i + 1], items[i]) for i in range(len(items) - 1))


def _sum(lst: Any) -> Any:
    items = _l(lst)
    total: Any = 0
    if items and type(items[0]) is float:
        total = 0.0
    elif items and type(items[0]) is UInt:
        total = UInt(0)
    elif items and type(items[0]) is _dt.timedelta:
        total = _dt.timedelta(0)
    for x in items:
        total = _add(total, x)
    return total


def _extreme(name: str, pick_lt: bool) -> Callable[[Any], Any]:
    lt = _cmp("<")

    def fn(lst: Any) -> Any:
        items = _l(lst)
        if not items:
            raise CelEvalError(f"{name} called on empty list")
        best = items[0]
        for x in items[1:]:
            if (lt(x, best) if pick_lt else lt(best, x)):
                best = x
        return best

    return fn


def _list_index_of(lst: Any, v: Any) -> int:
    for i, x in enumerate(_l(lst)):
        if values_equal(x, v):
            return i
    return -1


def _list_last_index_of(lst: Any, v: Any) -> int:
    items = _l(lst)
    for i in range(len(items) - 1, -1, -1):
        if values_equal(items[i], v):
            return i
    return -1


def _matches(s: Any, pattern: Any) -> bool:
    return _regex(_s(pattern)).search(_s(s)) is not None


def _find(s: Any, pattern: Any) -> str:
    m = _regex(_s(pattern)).search(_s(s))
    return m.group(0) if m else ""


def _find_all(s: Any, pattern: Any, n: Any = -1) -> list[str]:
    out = [m.group(0) for m in _regex(_s(pattern)).finditer(_s(s))]
    return out if n < 0 else out[:n]


def _opt_value(o: Any) -> Any:
    if not isinstance(o, Optional):
        raise _overload()
    if not o.present:
        raise CelEvalError("optional.none() dereference")
    return o.value


def _opt_or_value(o: Any, default: Any) -> Any:
    if not isinstance(o, Optional):
        raise _overload()
    return o.value if o.present else default


def _ts_part(part: Callable[[_dt.datetime], int]) -> Callable[[Any], int]:
    def fn(ts: Any) -> int:
        if type(ts) is not _dt.datetime:
            raise _overload()
        return part(ts.astimezone(_dt.UTC))

    return fn


# name -> (implementation, static result kind, arities accepted incl. the receiver)
_Builtin = tuple[Callable[..., Any], str, tuple[int, ...]]
_METHODS: dict[str, _Builtin] = {
    "size": (_size, "int", (1,)),
    "contains": (lambda s, sub: _s(sub) in _s(s), "bool", (2,)),
    "startsWith": (lambda s, p: _s(s).startswith(_s(p)), "bool", (2,)),
    "endsWith": (lambda s, p: _s(s).endswith(_s(p)), "bool", (2,)),
    "matches": (_matches, "bool", (2,)),
    "lowerAscii": (_lower_ascii, "string", (1,)),
    "upperAscii": (_upper_ascii, "string", (1,)),
    "trim": (lambda s: _s(s).strip(), "string", (1,)),
    "split": (_split, "list", (2, 3)),
    "join": (_join, "string", (1, 2)),
    "replace": (_replace, "string", (3, 4)),
    "indexOf": (lambda r, *a: _list_index_of(r, *a) if isinstance(r, list) else _index_of(r, *a), "int", (2, 3)),
    "lastIndexOf": (lambda r, *a: (_list_last_index_of(r, *a) if isinstance(r, list)
                                   else _last_index_of(r, *a)), "int", (2, 3)),
    "substring": (_substring, "string", (2, 3)),
    "charAt": (_char_at, "string", (2,)),
    "isSorted": (_is_sorted, "bool", (1,)),
    "sum": (_sum, "dyn", (1,)),
    "min": (_extreme("min", True), "dyn", (1,)),
    "max": (_extreme("max", False), "dyn", (1,)),
    "find": (_find, "string", (2,)),
    "findAll": (_find_all, "list", (2, 3)),
    "hasValue": (lambda o: isinstance(o, Optional) and o.present, "bool", (1,)),
    "value": (_opt_value, "dyn", (1,)),
    "orValue": (_opt_or_value, "dyn", (2,)),
    "getFullYear": (_ts_part(lambda t: t.year), "int", (1,)),
    "getMonth": (_ts_part(lambda t: t.month - 1), "int", (1,)),
    "getDayOfMonth": (_ts_part(lambda t: t.day - 1), "int", (1,)),
    "getDate": (_ts_part(lambda t: t.day), "int", (1,)),
    "getDayOfWeek": (_ts_part(lambda t: t.isoweekday() % 7), "int", (1,)),
    "getHours": (_ts_part(lambda t: t.hour), "int", (1,)),
    "getMinutes": (_ts_part(lambda t: t.minute), "int", (1,)),
    "getSeconds": (_ts_part(lambda t: t.second), "int", (1,)),
}
_FUNCTIONS: dict[str, _Builtin] = {
    "size": (_size, "int", (1,)),
    "matches": (_matches, "bool", (2,)),
    "int": (_to_int, "int", (1,)),
    "uint": (_to_uint, "uint", (1,)),
    "double": (_to_double, "double", (1,)),
    "string": (_to_string, "string", (1,)),
    "bool": (_to_bool, "bool", (1,)),
    "bytes": (_to_bytes, "bytes", (1,)),
    "duration": (_to_duration, "duration", (1,)),
    "timestamp": (_to_timestamp, "timestamp", (1,)),
    "dyn": (lambda v: v, "dyn", (1,)),
    "type": (_type_of, "type", (1,)),
}
_TYPE_NAMES = frozenset({"int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type",
                         "type", "dyn"})


def _distinct(lst: Any) -> list[Any]:
    out: list[Any] = []
    for x in _l(lst):
        if not any(values_equal(x, y) for y in out):
            out.append(x)
    return out


def _flatten(lst: Any, depth: Any = 1) -> list[Any]:
    out: list[Any] = []
    for x in _l(lst):
        if isinstance(x, list) and depth > 0:
            out.extend(_flatten(x, depth - 1))
        else:
            out.append(x)
    return out


def _slice(lst: Any, start: Any, end: Any) -> list[Any]:
    items = _l(lst)
    if type(start) is not int or type(end) is not int:
        raise _overload()
    if start < 0 or end < start or end > len(items):
        raise CelEvalError(f"cannot slice({start}, {end}), list is length {len(items)}")
    return items[start:end]


def _sort(lst: Any) -> list[Any]:
    items = list(_l(lst))
    lt = _cmp("<")
    for i in range(1, len(items)):  # insertion sort with CEL ordering (mixed types raise no-overload)
        j = i
        while j > 0 and lt(items[j], items[j - 1]):
            items[j - 1], items[j] = items[j], items[j - 1]
            j -= 1
    return items


def _sets_contains(a: Any, b: Any) -> bool:
    return all(any(values_equal(x, y) for y in _l(a)) for x in _l(b))


def _sets_intersects(a: Any, b: Any) -> bool:
    return any(any(values_equal(x, y) for y in _l(a)) for x in _l(b))


def _lists_range(n: Any) -> list[int]:
    if type(n) is not int:
        raise _overload()
    return list(range(n))


_METHODS.update({
    "distinct": (_distinct, "list", (1,)),
    "flatten": (_flatten, "list", (1, 2)),
    "reverse": (lambda v: _l(v)[::-1] if isinstance(v, list) else _s(v)[::-1], "dyn", (1,)),
    "slice": (_slice, "list", (3,)),
    "sort": (_sort, "list", (1,)),
    "includes": (lambda lst, v: any(values_equal(x, v) for x in _l(lst)), "bool", (2,)),
})
# Namespaced functions (``sets.contains(a, b)``).
_NAMESPACED: dict[str, _Builtin] = {
    "sets.contains": (_sets_contains, "bool", (2,)),
    "sets.intersects": (_sets_intersects, "bool", (2,)),
    "sets.equivalent": (lambda a, b: _sets_contains(a, b) and _sets_contains(b, a), "bool", (2,)),
    "lists.range": (_lists_range, "list", (1,)),
}


# --- Kubernetes quantity library (k8s.io/apiserver/pkg/cel/library/quantity.go) -------------------------

def _quantity(s: Any) -> _q.Quantity:
    try:
        return _q.parse_quantity(_s(s))
    except ValueError as exc:
        raise CelEvalError(str(exc)) from None
    except _q.QuantityTooLarge as exc:
        raise CelEvalError(str(exc)) from None


def _qv(v: Any) -> _q.Quantity:
    if type(v) is not _q.Quantity:
        raise _overload()
    return v


def _q_operand(v: Any) -> _q.Quantity:
    """The right operand of ``add``/``sub``: a Quantity, or an int as ``NewQuantity(n, DecimalExponent)``."""
    if type(v) is int:
        return _q.from_int(v)
    return _qv(v)


def _q_arith(op: Callable[[_q.Quantity, _q.Quantity], _q.Quantity]) -> Callable[[Any, Any], _q.Quantity]:
    def fn(a: Any, b: Any) -> _q.Quantity:
        try:
            return op(_qv(a), _q_operand(b))
        except _q.QuantityTooLarge as exc:
            raise CelEvalError(str(exc)) from None

    return fn


def _q_cmp(a: Any, b: Any) -> int:
    try:
        return _qv(a).cmp(_qv(b))
    except _q.QuantityTooLarge as exc:  # only for operands written with more than MAX_ALIGN_DIGITS digits
        raise CelEvalError(str(exc)) from None


def _q_as_integer(q: Any) -> int:
    value = _qv(q).as_int64()
    if value is None:
        raise CelEvalError("cannot convert value to integer")
    return value


# name -> (implementation, overloads as parameter kinds (a method's include the receiver), result kind)
_QuantityFn = tuple[Callable[..., Any], tuple[tuple[str, ...], ...], str]
# ``sign`` is declared with cel.Overload, not cel.MemberOverload: ``sign(q)`` compiles, ``q.sign()`` does not.
_QUANTITY_FUNCTIONS: dict[str, _QuantityFn] = {
    "quantity": (_quantity, (("string",),), QUANTITY),
    "isQuantity": (lambda s: _q.is_quantity(_s(s)), (("string",),), "bool"),
    "sign": (lambda q: _qv(q).sign(), ((QUANTITY,),), "int"),
}
_QUANTITY_METHODS: dict[str, _QuantityFn] = {
    "isInteger": (lambda q: _qv(q).as_int64() is not None, ((QUANTITY,),), "bool"),
    "asInteger": (_q_as_integer, ((QUANTITY,),), "int"),
    "asApproximateFloat": (lambda q: _qv(q).as_approximate_float(), ((QUANTITY,),), "double"),
    "add": (_q_arith(_q.Quantity.add), ((QUANTITY, QUANTITY), (QUANTITY, "int")), QUANTITY),
    "sub": (_q_arith(_q.Quantity.sub), ((QUANTITY, QUANTITY), (QUANTITY, "int")), QUANTITY),
    "isGreaterThan": (lambda a, b: _q_cmp(a, b) == 1, ((QUANTITY, QUANTITY),), "bool"),
    "isLessThan": (lambda a, b: _q_cmp(a, b) == -1, ((QUANTITY, QUANTITY),), "bool"),
    "compareTo": (_q_cmp, ((QUANTITY, QUANTITY),), "int"),
}

# Kubernetes CEL libraries this module does not implement (URL, IP/CIDR, semver, format, string
# formatting). Rules using them compile, since kube-apiserver accepts them, but are not evaluated
# (they always pass) rather than failing valid objects. Semver's compareTo/isGreaterThan/isLessThan share
# the quantity methods' names: on a semver receiver (dyn here) the rule is skipped like any semver call.
_UNSUPPORTED_FUNCTIONS = frozenset({"url", "isURL", "ip", "isIP", "cidr", "isCIDR", "semver", "isSemver"})
_UNSUPPORTED_METHODS = frozenset({
    "getEscapedPath", "getHost", "getHostname", "getPort", "getQuery", "getScheme", "family",
    "isGlobalUnicast", "isLinkLocalMulticast", "isLinkLocalUnicast", "isLoopback", "isUnspecified",
    "containsCIDR", "containsIP", "masked", "prefixLength", "major", "minor", "patch", "format", "quote",
    "validate", "sortBy", "first", "last"})
_UNSUPPORTED_NAMESPACES = frozenset({"format", "ip", "strings", "optional", "base64", "math"})
_MACROS = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter", "transformList",
                     "transformMap"})


class _Unsupported(Exception):
    """Raised when evaluation reaches a function of an unimplemented Kubernetes CEL library."""


def _unsupported_call(env: Env) -> Any:
    raise _Unsupported()


# ------------------------------------------------------------------------------------------------
# Compiler
# ------------------------------------------------------------------------------------------------

_OP_NAMES = {"relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
             "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in", "addition_add": "_+_",
             "addition_sub": "_-_", "multiplication_mul": "_*_", "multiplication_div": "_/_",
             "multiplication_mod": "_%_"}
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "_<_": _cmp("<"), "_<=_": _cmp("<="), "_>_": _cmp(">"), "_>=_": _cmp(">="),
    "_==_": values_equal, "_!=_": lambda a, b: not values_equal(a, b), "@in": _in,
    "_+_": _add, "_-_": _sub, "_*_": _mul, "_/_": _div, "_%_": _mod,
}


def _binary_result(op: str, left: str, right: str) -> str | None:
    """Static result kind of ``left op right``; None if cel-go's checker would reject the operands."""
    if "dyn" in (left, right):
        return "bool" if op in ("_<_", "_<=_", "_>_", "_>=_", "_==_", "_!=_", "@in") else "dyn"
    if op in ("_==_", "_!=_"):
        ok = left == right or "null" in (left, right) or {left, right} <= {"object", "map"}
        return "bool" if ok else None
    if op == "@in":
        return "bool" if right in ("list", "map") else None
    if op in ("_<_", "_<=_", "_>_", "_>=_"):
        ok = (left in _NUMERIC and right in _NUMERIC) or (
            left == right and left in ("string", "bytes", "bool", "timestamp", "duration"))
        return "bool" if ok else None
    if op == "_+_":
        if left == right and left in ("int", "uint", "double", "string", "bytes", "list", "duration"):
            return left
        if {left, right} == {"timestamp", "duration"}:
            return "timestamp"
        return None
    if op == "_-_":
        if left == right and left in ("int", "uint", "double", "duration"):
            return left
        if left == "timestamp" and right in ("timestamp", "duration"):
            return "duration" if right == "timestamp" else "timestamp"
        return None
    if op in ("_*_", "_/_"):
        return left if left == right and left in _NUMERIC else None
    if op == "_%_":
        return left if left == right and left in ("int", "uint") else None
    return "dyn"  # pragma: no cover


class _Issue(Exception):
    def __init__(self, message: str, node: Any) -> None:
        super().__init__(message)
        self.message, self.node = message, node


def _position(node: Any) -> tuple[int, int]:
    if isinstance(node, tuple):
        return node
    if isinstance(node, lark.Token):
        return node.line or 1, node.column or 1
    meta = getattr(node, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return meta.line, meta.column
    for child in getattr(node, "children", ()):
        pos = _position(child)
        if pos != (1, 0):
            return pos
    return 1, 0


def _format_issue(source: str, message: str, line: int, column: int) -> str:
    lines = source.splitlines() or [""]
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    col = max(column, 1)
    return f"ERROR: <input>:{line}:{col}: {message}\n | {text}\n | {'.' * (col - 1)}^"


_ESCAPE_CHARS = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                 '"': '"', "'": "'", "\\": "\\", "`": "`", "?": "?"}
_STRING_ESCAPE_RE = re.compile(r"\\(?:([abfnrtv\"'\\`?])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})"
                               r"|([0-3][0-7]{2}))")


def _unquote(token: str) -> tuple[str, bool]:
    """A CEL string literal's value; returns (text, is_bytes)."""
    is_bytes = token[:1] in "bB"
    if is_bytes:
        token = token[1:]
    raw = token[:1] in "rR"
    if raw:
        token = token[1:]
    quote = token[:3] if token[:3] in ('"""', "'''") else token[:1]
    body = token[len(quote):-len(quote)]
    if raw:
        return body, is_bytes

    def repl(m: re.Match[str]) -> str:
        simple, hx, u4, u8, octal = m.groups()
        if simple:
            return _ESCAPE_CHARS[simple]
        code = int(hx or u4 or u8 or "0", 16) if not octal else int(octal, 8)
        return chr(code)

    return _STRING_ESCAPE_RE.sub(repl, body), is_bytes


class _Compiler:
    """Turns a celpy parse tree into a closure ``fn(env) -> value`` plus a static result Decl."""

    def __init__(self, source: str, variables: dict[str, Decl]) -> None:
        self.lines = source.splitlines() or [""]
        self.scope: list[dict[str, Decl]] = [variables]
        self.referenced: set[str] = set()
        self.unsupported = False

    def op_position(self, left: Any) -> Any:
        """Where cel-go reports a binary operator: the operator token after the left operand."""
        meta = getattr(left, "meta", None)
        if meta is None or getattr(meta, "empty", True):
            return left
        line, col = meta.end_line, meta.end_column  # end_column is 1-based, exclusive
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        while col - 1 < len(text) and text[col - 1].isspace():
            col += 1
        return (line, col)

    @staticmethod
    def dot_position(ident: Any) -> Any:
        """cel-go locates a field selection at its ``.``."""
        return (ident.line, max(1, ident.column - 1))

    # -- helpers --------------------------------------------------------------------------------
    def lookup(self, name: str) -> Decl | None:
        for frame in reversed(self.scope):
            if name in frame:
                return frame[name]
        return None

    def compile(self, tree: Any) -> tuple[Fn, Decl]:
        handler: Callable[[Any], tuple[Fn, Decl]] | None = getattr(self, "c_" + tree.data, None)
        if handler is None:
            raise _Issue(f"unsupported syntax: {tree.data}", tree)
        return handler(tree)

    def passthrough(self, tree: Any) -> tuple[Fn, Decl]:
        return self.compile(tree.children[0])

    def args(self, exprlist: Any) -> list[Any]:
        return [] if exprlist is None else list(exprlist.children)

    # -- grammar rules --------------------------------------------------------------------------
    def c_expr(self, tree: Any) -> tuple[Fn, Decl]:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        cond, cond_t = self.compile(tree.children[0])
        yes, yes_t = self.compile(tree.children[1])
        no, no_t = self.compile(tree.children[2])
        if _kind(cond_t) not in ("bool", "dyn"):
            raise _Issue(f"found no matching overload for '_?_:_' applied to "
                         f"'({_kind(cond_t)}, {_kind(yes_t)}, {_kind(no_t)})'", tree)

        def ternary(env: Env) -> Any:
            return yes(env) if _truthy(cond(env)) else no(env)

        return ternary, (yes_t if _kind(yes_t) == _kind(no_t) else DYN)

    def _logical(self, tree: Any, is_and: bool) -> tuple[Fn, Decl]:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        left, lt = self.compile(tree.children[0])
        right, rt = self.compile(tree.children[1])
        for t in (lt, rt):
            if _kind(t) not in ("bool", "dyn"):
                name = "_&&_" if is_and else "_||_"
                raise _Issue(f"found no matching overload for '{name}' applied to '({_kind(lt)}, {_kind(rt)})'",
                             self.op_position(tree.children[0]))
        short: bool = not is_and  # the value that decides the result on its own
        other: bool = is_and

        def logical(env: Env) -> bool:
            err: CelEvalError | None = None
            try:
                a = left(env)
                if a is short:
                    return not is_and
                if a is not other:
                    err = _overload()
            except CelEvalError as exc:
                err = exc
            b = right(env)
            if b is short:
                return not is_and
            if b is not other:
                raise _overload()
            if err is not None:
                raise err
            return is_and

        return logical, _SCALARS["bool"]

    def c_conditionalor(self, tree: Any) -> tuple[Fn, Decl]:
        return self._logical(tree, is_and=False)

    def c_conditionaland(self, tree: Any) -> tuple[Fn, Decl]:
        return self._logical(tree, is_and=True)

    def _binary(self, tree: Any) -> tuple[Fn, Decl]:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_node, right_node = tree.children
        op = _OP_NAMES[op_node.data]
        left, lt = self.compile(op_node.children[0])
        right, rt = self.compile(right_node)
        result = _binary_result(op, _kind(lt), _kind(rt))
        if result is None:
            raise _Issue(f"found no matching overload for '{op}' applied to '({_kind(lt)}, {_kind(rt)})'",
                         self.op_position(op_node.children[0]))
        impl = _BINARY[op]

        def binary(env: Env) -> Any:
            return impl(left(env), right(env))

        rdecl = lt if result == _kind(lt) and result in ("list",) else _SCALARS.get(result, DYN)
        return binary, rdecl

    c_relation = c_addition = c_multiplication = _binary

    def c_unary(self, tree: Any) -> tuple[Fn, Decl]:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op, operand = tree.children
        fn, t = self.compile(operand)
        if op.data == "unary_not":
            if _kind(t) not in ("bool", "dyn"):
                raise _Issue(f"found no matching overload for '!_' applied to '({_kind(t)})'", tree)
            return (lambda env: not _truthy(fn(env))), _SCALARS["bool"]
        if _kind(t) not in ("int", "double", "duration", "dyn"):
            raise _Issue(f"found no matching overload for '-_' applied to '({_kind(t)})'", tree)

        def negate(env: Env) -> Any:
            v = fn(env)
            if type(v) is int:
                return _check_int(-v)
            if type(v) in (float, _dt.timedelta):
                return -v
            raise _overload()

        return negate, t

    c_member = c_primary = passthrough

    def c_paren_expr(self, tree: Any) -> tuple[Fn, Decl]:
        return self.compile(tree.children[0])

    def c_member_dot(self, tree: Any) -> tuple[Fn, Decl]:
        target_node, ident = tree.children
        target, t = self.compile(target_node)
        name = str(ident)
        field_t = self.field_type(t, name, self.dot_position(ident))

        def select(env: Env) -> Any:
            return _select(target(env), name)

        return select, field_t

    def field_type(self, t: Decl | None, name: str, where: Any) -> Decl:
        kind = _kind(t)
        if kind == "object":
            assert t is not None and t.fields is not None
            if name not in t.fields:
                raise _Issue(f"undefined field '{name}'", where)
            return t.fields[name][1]
        if kind == "map":
            assert t is not None
            return t.elem or DYN
        if kind == "dyn":
            return DYN
        raise _Issue(f"type '{kind}' does not support field selection", where)

    def c_member_index(self, tree: Any) -> tuple[Fn, Decl]:
        target, t = self.compile(tree.children[0])
        key, kt = self.compile(tree.children[1])
        kind = _kind(t)
        if kind == "list":
            if _kind(kt) not in ("int", "uint", "dyn"):
                raise _Issue(f"found no matching overload for '_[_]' applied to '(list, {_kind(kt)})'", tree)
            rt = (t.elem if t is not None else None) or DYN
        elif kind == "map":
            rt = (t.elem if t is not None else None) or DYN
        elif kind in ("dyn", "object"):
            rt = DYN
        else:
            raise _Issue(f"found no matching overload for '_[_]' applied to '({kind}, {_kind(kt)})'", tree)

        def index(env: Env) -> Any:
            return _index(target(env), key(env))

        return index, rt

    def c_member_object(self, tree: Any) -> tuple[Fn, Decl]:
        raise _Issue("message construction is not supported", tree)

    def c_member_dot_arg(self, tree: Any) -> tuple[Fn, Decl]:
        target_node, ident, *rest = tree.children
        name = str(ident)
        args = self.args(rest[0] if rest else None)
        if name in _MACROS and len(args) in (2, 3, 4):
            return self.macro(name, target_node, args, tree)
        paren = (ident.line, ident.column + len(name))
        namespace = self.namespace(target_node)
        if namespace is not None:
            return self.namespaced_call(f"{namespace}.{name}", args, paren)
        if name in _QUANTITY_METHODS:
            return self.quantity_call(name, target_node, args, paren)
        if name in _QUANTITY_FUNCTIONS:  # global overloads only: not callable receiver-style
            raise _Issue(f"found no matching overload for '{name}' applied to "
                         f"'{self.describe_call(target_node, args)}'", paren)
        spec = _METHODS.get(name)
        if spec is None and name in _UNSUPPORTED_METHODS:
            self.unsupported = True
            return _unsupported_call, DYN
        if spec is None:
            raise _Issue(f"undeclared reference to '{name}' (in container '')", paren)
        impl, result, arities = spec
        if len(args) + 1 not in arities:
            raise _Issue(f"found no matching overload for '{name}' applied to "
                         f"'{self.describe_call(target_node, args)}'", paren)
        target, _ = self.compile(target_node)
        fns = [self.compile(a)[0] for a in args]
        return self.call(impl, [target, *fns]), _SCALARS.get(result, DYN)

    def namespace(self, node: Any) -> str | None:
        """``sets`` in ``sets.contains(...)``: a bare identifier that is not a variable."""
        node = self.unwrap(node)
        if isinstance(node, lark.Tree) and node.data == "ident":
            name = str(node.children[0])
            if self.lookup(name) is None and (name in ("sets", "lists") or name in _UNSUPPORTED_NAMESPACES):
                return name
        return None

    def namespaced_call(self, name: str, args: list[Any], where: Any) -> tuple[Fn, Decl]:
        spec = _NAMESPACED.get(name)
        if spec is None:
            if name.split(".")[0] in _UNSUPPORTED_NAMESPACES:
                self.unsupported = True
                return _unsupported_call, DYN
            raise _Issue(f"undeclared reference to '{name}' (in container '')", where)
        impl, result, arities = spec
        if len(args) not in arities:
            raise _Issue(f"found no matching overload for '{name}'", where)
        return self.call(impl, [self.compile(a)[0] for a in args]), _SCALARS.get(result, DYN)

    def quantity_call(self, name: str, target_node: Any, args: list[Any], where: Any) -> tuple[Fn, Decl]:
        """A quantity-library call, type-checked against its overloads like cel-go's checker (dyn matches
        any parameter; a semver receiver is dyn here, and its rule is skipped as unsupported)."""
        impl, overloads, result = (_QUANTITY_METHODS if target_node is not None else _QUANTITY_FUNCTIONS)[name]
        nodes = [target_node, *args] if target_node is not None else args
        compiled = [self.compile(n) for n in nodes]
        kinds = [_kind(t) for _, t in compiled]
        if not any(len(params) == len(kinds) and all(k in (p, "dyn") for k, p in zip(kinds, params, strict=True))
                   for params in overloads):
            shown = f"{kinds[0]}.({', '.join(kinds[1:])})" if target_node is not None else f"({', '.join(kinds)})"
            raise _Issue(f"found no matching overload for '{name}' applied to '{shown}'", where)
        return self.call(impl, [fn for fn, _ in compiled]), _SCALARS.get(result, DYN)

    def describe_call(self, target: Any, args: list[Any]) -> str:
        kinds = [_kind(self.compile(a)[1]) for a in args]
        return f"{_kind(self.compile(target)[1])}.({', '.join(kinds)})"

    @staticmethod
    def call(impl: Callable[..., Any], fns: list[Fn]) -> Fn:
        def invoke(env: Env) -> Any:
            values = [f(env) for f in fns]
            try:
                return impl(*values)
            except CelEvalError:
                raise
            except (TypeError, AttributeError, ValueError, OverflowError):
                raise _overload() from None

        return invoke

    def c_ident_arg(self, tree: Any) -> tuple[Fn, Decl]:
        ident, *rest = tree.children
        name = str(ident)
        args = self.args(rest[0] if rest else None)
        if name == "has":
            return self.has_macro(args, tree)
        if name in _QUANTITY_FUNCTIONS:
            return self.quantity_call(name, None, args, ident)
        if name in _QUANTITY_METHODS:  # member overloads only: not callable as a global function
            kinds = ", ".join(_kind(self.compile(a)[1]) for a in args)
            raise _Issue(f"found no matching overload for '{name}' applied to '({kinds})'", ident)
        spec = _FUNCTIONS.get(name)
        if spec is None and name in _UNSUPPORTED_FUNCTIONS:
            self.unsupported = True
            return _unsupported_call, DYN
        if spec is None:
            raise _Issue(f"undeclared reference to '{name}' (in container '')", ident)
        impl, result, arities = spec
        if len(args) not in arities:
            raise _Issue(f"found no matching overload for '{name}' applied to "
                         f"'({', '.join(_kind(self.compile(a)[1]) for a in args)})'", ident)
        compiled = [self.compile(a) for a in args]
        if name == "size" and _kind(compiled[0][1]) not in ("string", "bytes", "list", "map", "dyn"):
            raise _Issue(f"found no matching overload for 'size' applied to '({_kind(compiled[0][1])})'", ident)
        return self.call(impl, [fn for fn, _ in compiled]), _SCALARS.get(result, DYN)

    c_dot_ident_arg = c_ident_arg

    def has_macro(self, args: list[Any], tree: Any) -> tuple[Fn, Decl]:
        select = self.unwrap(args[0]) if len(args) == 1 else None
        if select is None or select.data != "member_dot":
            raise _Issue("invalid argument to has() macro", tree)
        target_node, ident = select.children
        name = str(ident)
        target, t = self.compile(target_node)
        self.field_type(t, name, ident)

        def has(env: Env) -> bool:
            obj = target(env)
            if isinstance(obj, dict):
                return name in obj
            raise _overload()

        return has, _SCALARS["bool"]

    @staticmethod
    def unwrap(node: Any) -> Any:
        """Descend through single-child precedence levels to the interesting node."""
        while isinstance(node, lark.Tree) and len(node.children) == 1 and node.data in (
                "expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
                "unary", "member", "primary"):
            node = node.children[0]
        return node

    def macro(self, name: str, target_node: Any, args: list[Any], tree: Any) -> tuple[Fn, Decl]:
        """Comprehension macros: ``all exists exists_one map filter`` over one variable, and the
        two-variable forms (``all(i, v, p)``, ``existsOne``, ``transformList``, ``transformMap``)."""
        two_vars = name in ("transformList", "transformMap") or (
            name in ("all", "exists", "exists_one", "existsOne") and len(args) == 3)
        if (name == "filter" and len(args) != 2) or (name in ("all", "exists") and len(args) not in (2, 3)) or (
                name in ("transformList", "transformMap") and len(args) not in (3, 4)):
            raise _Issue(f"found no matching overload for '{name}'", tree)
        var_nodes = args[:2] if two_vars else args[:1]
        names = []
        for node in var_nodes:
            var_node = self.unwrap(node)
            if not (isinstance(var_node, lark.Tree) and var_node.data == "ident"):
                raise _Issue("argument must be a simple name", node)
            names.append(str(var_node.children[0]))
        target, t = self.compile(target_node)
        kind = _kind(t)
        if kind == "list":
            first, second = _SCALARS["int"], (t.elem if t is not None else None) or DYN
        elif kind == "map":
            first, second = _SCALARS["string"], (t.elem if t is not None else None) or DYN
        elif kind == "dyn":
            first, second = DYN, DYN
        else:
            raise _Issue(f"expression of type '{kind}' cannot be range of a comprehension "
                         "(must be list, map, or dynamic)", target_node)
        frame = {names[0]: first, names[1]: second} if two_vars else {names[0]: second if kind == "list" else first}
        self.scope.append(frame)
        try:
            body = [self.compile(a) for a in args[len(names):]]
        finally:
            self.scope.pop()
        has_filter = name in ("all", "exists", "exists_one", "existsOne", "filter") or len(body) == 2
        if has_filter and _kind(body[0][1]) not in ("bool", "dyn"):
            raise _Issue(f"found no matching overload for '_&&_' applied to '(bool, {_kind(body[0][1])})'",
                         args[len(names)])
        fns = [fn for fn, _ in body]
        if name in ("all", "exists", "exists_one", "existsOne"):
            result: Decl = _SCALARS["bool"]
        elif name == "transformMap":
            result = Decl("map", body[-1][1])
        else:
            result = Decl("list", body[-1][1] if name != "filter" else second)
        return _comprehension(name, names, target, fns), result

    def c_ident(self, tree: Any) -> tuple[Fn, Decl]:
        name = str(tree.children[0])
        decl = self.lookup(name)
        if decl is None:
            if name in _TYPE_NAMES:
                value = CelType(name)
                return (lambda env: value), _SCALARS["type"]
            raise _Issue(f"undeclared reference to '{name}' (in container '')", tree.children[0])
        self.referenced.add(name)

        def variable(env: Env) -> Any:
            return env[name]

        return variable, decl

    c_dot_ident = c_ident

    def c_list_lit(self, tree: Any) -> tuple[Fn, Decl]:
        compiled = [self.compile(a) for a in self.args(tree.children[0] if tree.children else None)]
        fns = [fn for fn, _ in compiled]
        kinds = {_kind(t) for _, t in compiled}
        elem = compiled[0][1] if len(kinds) == 1 else DYN
        return (lambda env: [f(env) for f in fns]), Decl("list", elem)

    def c_map_lit(self, tree: Any) -> tuple[Fn, Decl]:
        items = list(tree.children[0].children) if tree.children else []
        pairs = [(self.compile(items[i])[0], self.compile(items[i + 1])[0]) for i in range(0, len(items), 2)]

        def make_map(env: Env) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for kf, vf in pairs:
                k = kf(env)
                if not isinstance(k, str | int | bool):
                    raise CelEvalError("unsupported key type")
                if k in out:
                    raise CelEvalError(f"Failed with repeated key: {k}")
                out[k] = vf(env)
            return out

        return make_map, Decl("map", DYN)

    def c_literal(self, tree: Any) -> tuple[Fn, Decl]:
        token = tree.children[0]
        text, kind = str(token), token.type
        value: Any
        if kind == "INT_LIT":
            value = int(text, 0) if "x" not in text.lower() else int(text.replace("0x", "").replace("0X", ""), 16)
            if value < INT64_MIN or value > INT64_MAX:
                raise _Issue("invalid int literal", token)
            decl = _SCALARS["int"]
        elif kind == "UINT_LIT":
            digits = text[:-1]
            value = UInt(int(digits, 16) if digits.lower().startswith("0x") else int(digits))
            decl = _SCALARS["uint"]
        elif kind == "FLOAT_LIT":
            value, decl = float(text), _SCALARS["double"]
        elif kind in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
            s, is_bytes = _unquote(text)
            if is_bytes:
                value, decl = s.encode("utf-8", "surrogatepass"), _SCALARS["bytes"]
            else:
                value, decl = s, _SCALARS["string"]
        elif kind == "BOOL_LIT":
            value, decl = text == "true", _SCALARS["bool"]
        elif kind == "NULL_LIT":
            value, decl = None, _SCALARS["null"]
        else:  # pragma: no cover - grammar has no other literal kinds
            raise _Issue(f"unsupported literal {text}", token)
        return (lambda env: value), decl


def _comprehension(name: str, names: list[str], target: Fn, body: list[Fn]) -> Fn:
    """A macro over a list (index, element) or a map (key, value), binding ``names`` for ``body``.

    With one variable it is bound to a list's elements or a map's keys, as in CEL.
    """
    pred = body[0]
    decisive = name == "exists"  # exists stops at the first true, all at the first false
    two_vars = len(names) == 2

    def bind(env: Env, item: tuple[Any, Any]) -> None:
        if two_vars:
            env[names[0]], env[names[1]] = item
        else:
            env[names[0]] = item[1]

    def all_or_exists(items: list[tuple[Any, Any]], env: Env) -> bool:
        err: CelEvalError | None = None
        for item in items:
            bind(env, item)
            try:
                r = pred(env)
            except CelEvalError as exc:  # an error only matters if no element decides the result
                err = err or exc
                continue
            if r is decisive:
                return bool(decisive)
            if r is not (not decisive):
                err = err or _overload()
        if err is not None:
            raise err
        return not decisive

    def exists_one(items: list[tuple[Any, Any]], env: Env) -> bool:
        count = 0
        for item in items:
            bind(env, item)
            if _truthy(pred(env)):
                count += 1
        return count == 1

    def filter_items(items: list[tuple[Any, Any]], env: Env) -> list[Any]:
        out = []
        for item in items:
            bind(env, item)
            if _truthy(pred(env)):
                out.append(item[1])
        return out

    transform = body[-1]
    keep = body[0] if len(body) == 2 else None

    def map_items(items: list[tuple[Any, Any]], env: Env) -> list[Any]:
        out = []
        for item in items:
            bind(env, item)
            if keep is None or _truthy(keep(env)):
                out.append(transform(env))
        return out

    def transform_map(items: list[tuple[Any, Any]], env: Env) -> dict[Any, Any]:
        out = {}
        for item in items:
            bind(env, item)
            if keep is None or _truthy(keep(env)):
                out[item[0]] = transform(env)
        return out

    loop: Callable[[list[tuple[Any, Any]], Env], Any] = {
        "all": all_or_exists, "exists": all_or_exists, "exists_one": exists_one, "existsOne": exists_one,
        "filter": filter_items, "transformMap": transform_map,
    }.get(name, map_items)

    def run(env: Env) -> Any:
        coll = target(env)
        if isinstance(coll, list):
            items = list(enumerate(coll))
        elif isinstance(coll, dict):
            items = list(coll.items()) if two_vars else [(k, k) for k in coll]
        else:
            raise _overload()
        saved = [env.get(n, _MISSING) for n in names]
        try:
            return loop(items, env)
        finally:
            for n, old in zip(names, saved, strict=True):
                if old is _MISSING:
                    env.pop(n, None)
                else:
                    env[n] = old

    return run


_MISSING = object()


class Program:
    """A compiled CEL expression. ``evaluate`` raises :class:`CelEvalError` on runtime errors."""

    __slots__ = ("_fn", "result_kind", "source", "unsupported", "uses_old_self")

    def __init__(self, source: str, fn: Fn, result_kind: str, uses_old_self: bool, unsupported: bool) -> None:
        self.source, self._fn, self.result_kind, self.uses_old_self = source, fn, result_kind, uses_old_self
        self.unsupported = unsupported  # uses a Kubernetes CEL library this module does not implement

    def evaluate(self, activation: Env) -> Any:
        """The expression's value; None if evaluation needed an unimplemented library function."""
        try:
            return self._fn(dict(activation))
        except _Unsupported:
            return None
        except RecursionError:
            raise CelEvalError("expression nesting too deep") from None


_parser: CELParser | None = None


def _parse(source: str) -> Any:
    global _parser
    if _parser is None:
        _parser = CELParser()
    try:
        return _parser.parse(source)
    except CELParseError as exc:
        cause = exc.__context__
        line = getattr(cause, "line", None) or getattr(exc, "line", None) or 1
        column = getattr(cause, "column", None) or getattr(exc, "column", None) or 1
        at_end = isinstance(cause, lark.UnexpectedToken) and cause.token.type == "$END"
        if isinstance(cause, lark.UnexpectedToken):
            tok = "<EOF>" if at_end else str(cause.token)
            detail = f"Syntax error: mismatched input '{tok}'"
        elif isinstance(cause, lark.UnexpectedCharacters):
            pos = cause.pos_in_stream or 0
            detail = f"Syntax error: token recognition error at: '{source[pos:pos + 1]}'"
        else:
            detail = "Syntax error: " + str(exc).splitlines()[0]
        if at_end or line < 1 or column < 1:  # cel-go points just past the last character
            lines = source.splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
        raise CelCompileError(_format_issue(source, detail, line, column)) from None


def compile_expression(source: str, self_decl: Decl, *, expect: str = "bool",
                       optional_old_self: bool = False) -> Program:
    """Compile a rule (``expect="bool"``) or a messageExpression (``expect="string"``).

    ``self`` and ``oldSelf`` have the type ``self_decl``. Raises :class:`CelCompileError` with the
    detail kube-apiserver puts in the CRD validation error (``compilation failed: ...`` etc.).
    """
    tree = _parse(source)
    old_decl = Decl("dyn") if optional_old_self else self_decl
    compiler = _Compiler(source, {"self": self_decl, "oldSelf": old_decl})
    try:
        fn, decl = compiler.compile(tree)
    except _Issue as issue:
        line, column = _position(issue.node)
        raise CelCompileError(_format_issue(source, issue.message, line, column)) from None
    except RecursionError:
        raise CelCompileError("expression nesting too deep") from None
    kind = _kind(decl)
    if kind not in (expect, "dyn"):
        raise CelCompileError(f"must evaluate to a {expect}", wrong_result_type=True)
    return Program(source, fn, kind, "oldSelf" in compiler.referenced, compiler.unsupported)
