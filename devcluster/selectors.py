"""Label and field selectors, parsed and matched the way kube-apiserver does it.

Pure functions and immutable values; no I/O.

Label selectors (``?labelSelector=``) follow ``k8s.io/apimachinery/pkg/labels/selector.go``: the
same byte-level lexer and recursive-descent parser, the same requirement validation, the same
error text. Grammar::

    <selector>    ::= <requirement> | <requirement> "," <selector>
    <requirement> ::= [!] KEY [ <set-based> | <exact-match> | <ordering> ]
    <set-based>   ::= ("in" | "notin") "(" VALUE { "," VALUE } ")"
    <exact-match> ::= ("=" | "==" | "!=") VALUE
    <ordering>    ::= (">" | "<") INTEGER            (accepted by the parser, as upstream)

KEY is a label key (``[prefix/]name``), VALUE a label value (may be empty: ``a=``, ``a in ()``,
``a in (x,)``). Whitespace (space, tab, CR, LF) separates tokens anywhere. ``!=`` and ``notin``
match objects that lack the key; ``!k`` matches objects without ``k``; an empty selector matches
everything. A parse failure raises a 400 ``BadRequest`` whose message is the upstream error, e.g.
``unable to parse requirement: found '', expected: '('`` -- kube-apiserver returns it unwrapped.

Field selectors (``?fieldSelector=``) follow ``k8s.io/apimachinery/pkg/fields/selector.go`` for the
syntax (``=``, ``==``, ``!=`` joined by ``,``; ``\\``, ``\\,`` and ``\\=`` escape a value; no
whitespace trimming) and the per-kind *field label conversion functions* of kube-apiserver for
what may be selected. A field the kind does not support is a 400 ``BadRequest`` with that kind's
own message -- they differ:

* most built-ins (no conversion registered): ``"spec.foo" is not a known field selector: only
  "metadata.name", "metadata.namespace"``;
* pods, nodes, events, namespaces, secrets, services, replicationcontrollers, CSRs, and custom
  resources: ``field label not supported: spec.foo``;
* batch/v1 jobs: ``field label "spec.foo" not supported for batchv1.Job``.

Matching compares the object's *selectable field set* (what the registry's ``GetAttrs`` exposes);
a field that is absent or unset compares as ``""`` (so ``spec.nodeName=`` selects unscheduled pods).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from devcluster.errors import bad_request
from devcluster.validation import go_json, go_quote, is_label_key, is_label_value

__all__ = [
    "BUILTIN_GROUPS",
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOT_EQUALS",
    "NOT_IN",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "parse_label_selector",
]

# selection.Operator values (their string forms matter: they appear in error messages).
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``: optional sign, decimal digits, int64 range; else None."""
    if not _INT64_RE.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


class _RequirementError(Exception):
    """A Go ``error`` produced while building or parsing a requirement (its text is the message)."""


def _aggregate(messages: list[str]) -> str:
    """``field.ErrorList.ToAggregate().Error()``: dedupe; one -> itself; several -> ``[a, b]``."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _field_invalid(path: str, value: object, detail: str) -> str:
    """``field.Invalid(path, value, detail).Error()`` -- with the field prefix."""
    shown = go_quote(value) if isinstance(value, str) else go_json(value)
    return f"{path}: Invalid value: {shown}: {detail}"


# ==================================================================================================
# Label selectors
# ==================================================================================================


@dataclass(frozen=True)
class Requirement:
    """One ``key <op> values`` term. ``values`` is sorted and de-duplicated, as upstream stores it."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def new(cls, key: str, operator: str, values: Iterable[str], path: str | None = None) -> Requirement:
        """``labels.NewRequirement``: validate and build, raising ``_RequirementError`` with Go's text.

        ``path`` is the optional field path prefix (``None`` as in the query-string parser).
        """
        vals = list(values)
        errs: list[str] = []
        key_path = f"{path}.key" if path else "key"
        values_path = f"{path}.values" if path else "values"
        key_problems = is_label_key(key)
        if key_problems:
            errs.append(_field_invalid(key_path, key, "; ".join(key_problems)))
        if operator in (IN, NOT_IN):
            if not vals:
                errs.append(
                    _field_invalid(
                        values_path, None, "for 'in', 'notin' operators, values set can't be empty"
                    )
                )
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(vals) != 1:
                errs.append(
                    _field_invalid(
                        values_path, vals or None, "exact-match compatibility requires one single value"
                    )
                )
        elif operator in (EXISTS, DOES_NOT_EXIST):
            if vals:
                errs.append(
                    _field_invalid(
                        values_path, vals, "values set must be empty for exists and does not exist"
                    )
                )
        elif operator in (GREATER_THAN, LESS_THAN):
            if len(vals) != 1:
                errs.append(
                    _field_invalid(
                        values_path, vals or None, "for 'Gt', 'Lt' operators, exactly one value is required"
                    )
                )
            for i, v in enumerate(vals):
                if _parse_int64(v) is None:
                    errs.append(
                        _field_invalid(
                            f"{values_path}[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer"
                        )
                    )
        else:
            supported = ", ".join(go_quote(op) for op in (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST))
            op_path = f"{path}.operator" if path else "operator"
            errs.append(f"{op_path}: Unsupported value: {go_quote(operator)}: supported values: {supported}")
        for i, v in enumerate(vals):
            problems = is_label_value(v)
            if problems:
                errs.append(_field_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(problems)))
        if errs:
            raise _RequirementError(_aggregate(errs))
        return cls(key, operator, tuple(sorted(set(vals))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """``Requirement.Matches``: note ``!=``/``notin`` are true when the key is absent."""
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator == EXISTS:
            return self.key
        joined = ",".join(self.values)
        if self.operator == IN:
            return f"{self.key} in ({joined})"
        if self.operator == NOT_IN:
            return f"{self.key} notin ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{joined}"


# ---- lexer ---------------------------------------------------------------------------------------

(
    _T_ERROR,
    _T_EOS,
    _T_CLOSE,
    _T_COMMA,
    _T_NOT,
    _T_DEQ,
    _T_EQ,
    _T_GT,
    _T_ID,
    _T_IN,
    _T_LT,
    _T_NEQ,
    _T_NOTIN,
    _T_OPEN,
) = range(14)
_STRING_TO_TOKEN = {
    ")": _T_CLOSE,
    ",": _T_COMMA,
    "!": _T_NOT,
    "==": _T_DEQ,
    "=": _T_EQ,
    ">": _T_GT,
    "in": _T_IN,
    "<": _T_LT,
    "!=": _T_NEQ,
    "notin": _T_NOTIN,
    "(": _T_OPEN,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_NUL = "\0"


def _lex(text: str) -> list[tuple[int, str]]:
    """Tokenise like ``labels.Lexer`` (a NUL character ends the input, as Go's ``read`` returns 0)."""
    pos = 0
    n = len(text)
    items: list[tuple[int, str]] = []

    def read() -> str:
        nonlocal pos
        if pos < n:
            pos += 1
            return text[pos - 1]
        return _NUL

    while True:
        ch = read()
        while ch in _WHITESPACE:
            ch = read()
        if ch == _NUL:
            items.append((_T_EOS, ""))
            return items
        pos -= 1  # unread
        buf = ""
        if ch in _SPECIAL:
            last: tuple[int, str] | None = None
            while True:
                c = read()
                if c == _NUL:
                    break
                if c not in _SPECIAL:
                    pos -= 1
                    break
                buf += c
                if buf in _STRING_TO_TOKEN:
                    last = (_STRING_TO_TOKEN[buf], buf)
                elif last is not None:
                    pos -= 1
                    break
            # Every single special character is a token, so ``last`` is always set here.
            items.append(last if last is not None else (_T_ERROR, f"error expected: keyword found '{buf}'"))
        else:
            while True:
                c = read()
                if c == _NUL:
                    break
                if c in _SPECIAL or c in _WHITESPACE:
                    pos -= 1
                    break
                buf += c
            tok = _STRING_TO_TOKEN.get(buf)
            items.append((tok, buf) if tok in (_T_IN, _T_NOTIN) else (_T_ID, buf))


# ---- parser --------------------------------------------------------------------------------------

_KEY_AND_OPERATOR, _VALUES = 0, 1


class _Parser:
    """Port of ``labels.Parser``; errors are raised as ``_RequirementError`` carrying Go's text."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.position = 0

    def _item(self, index: int) -> tuple[int, str]:
        return self.items[index] if index < len(self.items) else (_T_EOS, "")

    def lookahead(self, context: int) -> tuple[int, str]:
        tok, lit = self._item(self.position)
        if context == _VALUES and tok in (_T_IN, _T_NOTIN):
            tok = _T_ID
        return tok, lit

    def consume(self, context: int) -> tuple[int, str]:
        tok, lit = self.lookahead(context)
        self.position += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(_VALUES)
            if tok in (_T_ID, _T_NOT):
                try:
                    requirements.append(self.parse_requirement())
                except _RequirementError as e:
                    raise _RequirementError(f"unable to parse requirement: {e}") from None
                t, lit2 = self.consume(_VALUES)
                if t == _T_EOS:
                    return requirements
                if t == _T_COMMA:
                    t2, lit3 = self.lookahead(_VALUES)
                    if t2 not in (_T_ID, _T_NOT):
                        raise _RequirementError(f"found '{lit3}', expected: identifier after ','")
                else:
                    raise _RequirementError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == _T_EOS:
                return requirements
            else:
                raise _RequirementError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def parse_requirement(self) -> Requirement:
        key, operator = self.parse_key_and_infer_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return Requirement.new(key, operator, [])
        operator = self.parse_operator()
        values = self.parse_values() if operator in (IN, NOT_IN) else self.parse_exact_value()
        return Requirement.new(key, operator, sorted(values))

    def parse_key_and_infer_operator(self) -> tuple[str, str]:
        operator = ""
        tok, literal = self.consume(_VALUES)
        if tok == _T_NOT:
            operator = DOES_NOT_EXIST
            tok, literal = self.consume(_VALUES)
        if tok != _T_ID:
            raise _RequirementError(f"found '{literal}', expected: identifier")
        problems = is_label_key(literal)
        if problems:
            # validateLabelKey(literal, p.path) with a nil path: the field prints as "<nil>".
            raise _RequirementError(_field_invalid("<nil>", literal, "; ".join(problems)))
        if self.lookahead(_VALUES)[0] in (_T_EOS, _T_COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return literal, operator

    def parse_operator(self) -> str:
        tok, lit = self.consume(_KEY_AND_OPERATOR)
        operator = {
            _T_IN: IN,
            _T_EQ: EQUALS,
            _T_DEQ: DOUBLE_EQUALS,
            _T_GT: GREATER_THAN,
            _T_LT: LESS_THAN,
            _T_NOTIN: NOT_IN,
            _T_NEQ: NOT_EQUALS,
        }.get(tok)
        if operator is None:
            raise _RequirementError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return operator

    def parse_values(self) -> set[str]:
        tok, lit = self.consume(_VALUES)
        if tok != _T_OPEN:
            raise _RequirementError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(_VALUES)
        if tok in (_T_ID, _T_COMMA):
            values = self.parse_identifiers_list()
            if self.consume(_VALUES)[0] != _T_CLOSE:
                raise _RequirementError(f"found '{lit}', expected: ')'")
            return values
        if tok == _T_CLOSE:  # "()" means the single empty value
            self.consume(_VALUES)
            return {""}
        raise _RequirementError(f"found '{lit}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume(_VALUES)
            if tok == _T_ID:
                values.add(lit)
                tok2, lit2 = self.lookahead(_VALUES)
                if tok2 == _T_COMMA:
                    continue
                if tok2 == _T_CLOSE:
                    return values
                raise _RequirementError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _T_COMMA:  # "(," / ",," / ",)" each contribute the empty value
                if not values:
                    values.add("")
                tok2, _ = self.lookahead(_VALUES)
                if tok2 == _T_CLOSE:
                    values.add("")
                    return values
                if tok2 == _T_COMMA:
                    values.add("")
                continue
            raise _RequirementError(f"found '{lit}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        tok, _ = self.lookahead(_VALUES)
        if tok in (_T_EOS, _T_COMMA):  # "a=" selects the empty value
            return {""}
        tok, lit = self.consume(_VALUES)
        if tok == _T_ID:
            return {lit}
        raise _RequirementError(f"found '{lit}', expected: identifier")


_LABEL_SELECTOR_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector: the conjunction of ``requirements`` (sorted by key).

    ``LabelSelector()`` is *everything* (matches all label sets); ``LabelSelector.nothing()`` -- what
    a ``null`` ``metav1.LabelSelector`` converts to -- matches no label set.
    """

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls((), matches_nothing=True)

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the query-string syntax (``labels.Parse``); bad syntax -> ``ApiError`` 400 BadRequest."""
        try:
            requirements = _Parser(text).parse()
        except _RequirementError as e:
            raise bad_request(str(e)) from None
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    @classmethod
    def from_label_selector_object(cls, sel: Mapping[str, Any] | None) -> LabelSelector:
        """Convert a ``metav1.LabelSelector`` dict (``metav1.LabelSelectorAsSelector``).

        ``None`` selects nothing; ``{}`` (no matchLabels, no matchExpressions) selects everything.
        Operators are ``In``/``NotIn`` (values required), ``Exists``/``DoesNotExist`` (no values).
        An invalid selector raises ``ApiError`` 400 BadRequest carrying the upstream conversion error
        (e.g. ``"Foo" is not a valid label selector operator``); callers validating an object spec
        may prefer to re-wrap it as a 422.
        """
        if sel is None:
            return cls.nothing()
        match_labels = sel.get("matchLabels") or {}
        match_expressions = sel.get("matchExpressions") or []
        if not match_labels and not match_expressions:
            return cls.everything()
        requirements: list[Requirement] = []
        try:
            for key in sorted(match_labels):
                requirements.append(Requirement.new(key, EQUALS, [match_labels[key]]))
            for expr in match_expressions:
                operator = expr.get("operator", "")
                op = _LABEL_SELECTOR_OPERATORS.get(operator)
                if op is None:
                    raise _RequirementError(
                        f"{go_quote(str(operator))} is not a valid label selector operator"
                    )
                requirements.append(Requirement.new(expr.get("key", ""), op, list(expr.get("values") or [])))
        except _RequirementError as e:
            raise bad_request(str(e)) from None
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """True when every requirement holds for ``labels`` (``None`` is treated as no labels)."""
        if self.matches_nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def is_empty(self) -> bool:
        """True when the selector does not restrict anything (upstream ``Selector.Empty()``)."""
        return not self.requirements and not self.matches_nothing

    def __str__(self) -> str:
        """The canonical string form, which :meth:`parse` reads back to an equal selector."""
        return ",".join(str(r) for r in self.requirements)


# ==================================================================================================
# Field selectors
# ==================================================================================================


@dataclass(frozen=True)
class FieldRequirement:
    """One field term; ``operator`` is ``=`` (``==`` is normalised to it) or ``!=``."""

    field: str
    operator: str
    value: str

    def matches(self, actual: str) -> bool:
        return (actual == self.value) if self.operator == EQUALS else (actual != self.value)

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_field_value(self.value)}"


def _escape_field_value(value: str) -> str:
    """``fields.EscapeValue``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    """``fields.UnescapeValue``; raises ``_RequirementError`` with Go's messages."""
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise _RequirementError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # UnescapedRune prints the rune with %v, i.e. as its code point number.
            raise _RequirementError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise _RequirementError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """``fields.splitTerms``: split on commas not preceded by a backslash escape."""
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """``fields.splitTerm``: the first ``!=``, ``==`` or ``=`` (checked in that order) splits the term."""
    for i in range(len(term)):
        for op in (NOT_EQUALS, DOUBLE_EQUALS, EQUALS):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


# ---- what each kind lets you select --------------------------------------------------------------

_Extractor = Callable[[Mapping[str, Any]], str]


def _get(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _go_float(value: float) -> str:
    """``fmt.Sprint(float64)``: shortest repr, exponent form when exp < -4 or exp >= 21."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits_t, exp = Decimal(repr(value)).as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    exp += len("".join(map(str, digits_t))) - len(digits)  # account for stripped zeros
    point = exp + len(digits)  # value = 0.digits * 10**point
    x = point - 1
    prefix = "-" if sign else ""
    if x < -4 or x >= 21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _go_sprint(value: Any) -> str:
    """``fmt.Sprint`` for the scalar JSON values a selectable field can hold (``None`` -> ``""``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    return go_json(value)  # not reachable for valid CRDs (selectable fields are scalars)


def _string(path: str) -> _Extractor:
    def extract(obj: Mapping[str, Any]) -> str:
        value = _get(obj, path)
        return value if isinstance(value, str) else _go_sprint(value)

    return extract


def _bool(path: str) -> _Extractor:
    return lambda obj: "true" if _get(obj, path) is True else "false"


def _int(path: str) -> _Extractor:
    def extract(obj: Mapping[str, Any]) -> str:
        value = _get(obj, path)
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else "0"

    return extract


def _first_of(*extractors: _Extractor) -> _Extractor:
    def extract(obj: Mapping[str, Any]) -> str:
        for ex in extractors:
            value = ex(obj)
            if value:
                return value
        return ""

    return extract


def _pod_ip(obj: Mapping[str, Any]) -> str:
    ips = _get(obj, "status.podIPs")
    if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
        return str(ips[0].get("ip") or "")
    return _string("status.podIP")(obj)


_NAME = _string("metadata.name")
_NAMESPACE = _string("metadata.namespace")
_META: dict[str, _Extractor] = {"metadata.name": _NAME, "metadata.namespace": _NAMESPACE}


def _not_supported(label: str) -> str:
    return f"field label not supported: {label}"


def _not_known(label: str) -> str:
    """``runtime.DefaultMetaV1FieldSelectorConversion``'s error (built-ins without a conversion)."""
    return f'{go_quote(label)} is not a known field selector: only "metadata.name", "metadata.namespace"'


@dataclass(frozen=True)
class _FieldSpec:
    """A kind's field label conversion (``accepts``: label -> canonical label) and its field set."""

    accepts: Mapping[str, str]
    fields: Mapping[str, _Extractor]
    error: Callable[[str], str] = _not_supported


def _accept(*labels: str, **renames: str) -> dict[str, str]:
    return {**{label: label for label in labels}, **renames}


# Event field set (core/v1 and events.k8s.io/v1 share one storage). Reads either object shape.
_EVENT_FIELDS: dict[str, _Extractor] = {
    **_META,
    **{
        f"involvedObject.{k}": _first_of(_string(f"involvedObject.{k}"), _string(f"regarding.{k}"))
        for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    },
    "reason": _string("reason"),
    "reportingComponent": _first_of(_string("reportingComponent"), _string("reportingController")),
    "source": _first_of(
        _string("source.component"),
        _string("deprecatedSource.component"),
        _string("reportingComponent"),
        _string("reportingController"),
    ),
    "type": _string("type"),
}

_BUILTIN_SPECS: dict[tuple[str, str], _FieldSpec] = {
    ("", "pods"): _FieldSpec(
        _accept(
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
            # Old v1 clients send spec.host; it is renamed to spec.nodeName.
            **{"spec.host": "spec.nodeName"},
        ),
        {
            **_META,
            "spec.nodeName": _string("spec.nodeName"),
            "spec.restartPolicy": _string("spec.restartPolicy"),
            "spec.schedulerName": _string("spec.schedulerName"),
            "spec.serviceAccountName": _first_of(
                _string("spec.serviceAccountName"), _string("spec.serviceAccount")
            ),
            "spec.hostNetwork": _bool("spec.hostNetwork"),
            "status.phase": _string("status.phase"),
            "status.podIP": _pod_ip,
            # status.podIPs is accepted but never part of the pod's field set: it always compares as "".
            "status.nominatedNodeName": _string("status.nominatedNodeName"),
        },
    ),
    ("", "nodes"): _FieldSpec(
        _accept("metadata.name", "spec.unschedulable"),
        {"metadata.name": _NAME, "spec.unschedulable": _bool("spec.unschedulable")},
    ),
    ("", "replicationcontrollers"): _FieldSpec(
        _accept("metadata.name", "metadata.namespace", "status.replicas"),
        {**_META, "status.replicas": _int("status.replicas")},
    ),
    ("", "events"): _FieldSpec(_accept(*_EVENT_FIELDS), _EVENT_FIELDS),
    ("events.k8s.io", "events"): _FieldSpec(
        {
            "reason": "reason",
            "type": "type",
            "source": "source",
            "reportingController": "reportingComponent",
            "metadata.namespace": "metadata.namespace",
            "metadata.name": "metadata.name",
            **{
                f"regarding.{k}": f"involvedObject.{k}"
                for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
            },
        },
        _EVENT_FIELDS,
    ),
    ("", "namespaces"): _FieldSpec(
        _accept("status.phase", "metadata.name"),
        {"metadata.name": _NAME, "status.phase": _string("status.phase")},
    ),
    ("", "secrets"): _FieldSpec(
        _accept("type", "metadata.namespace", "metadata.name"), {**_META, "type": _string("type")}
    ),
    ("", "services"): _FieldSpec(
        _accept("metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"),
        {**_META, "spec.clusterIP": _string("spec.clusterIP"), "spec.type": _string("spec.type")},
    ),
    ("batch", "jobs"): _FieldSpec(
        _accept("metadata.name", "metadata.namespace", "status.successful"),
        {**_META, "status.successful": _int("status.succeeded")},
        error=lambda label: f"field label {go_quote(label)} not supported for batchv1.Job",
    ),
    ("certificates.k8s.io", "certificatesigningrequests"): _FieldSpec(
        _accept("metadata.name", "spec.signerName"),
        {"metadata.name": _NAME, "spec.signerName": _string("spec.signerName")},
    ),
}

# Every built-in kind without its own conversion function: only the two metadata fields.
_DEFAULT_SPEC = _FieldSpec(_accept("metadata.name", "metadata.namespace"), _META, error=_not_known)

# API groups served by kube-apiserver itself (anything else is assumed to be a custom resource).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "extensions",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)

_JSONPATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(?:'([^']*)'|\"([^\"]*)\")\]")


def _jsonpath_extractor(json_path: str) -> _Extractor:
    """Read a CRD ``selectableFields[].jsonPath`` (``.spec.color``, ``.metadata.labels['k']``)."""
    steps = [
        m.group(1) or m.group(2) or m.group(3) or ""
        for m in _JSONPATH_STEP.finditer("." + json_path.lstrip("."))
    ]

    def extract(obj: Mapping[str, Any]) -> str:
        cur: Any = obj
        for step in steps:
            if not isinstance(cur, Mapping):
                return ""
            cur = cur.get(step)
        return _go_sprint(cur)

    return extract


def _custom_spec(namespaced: bool, selectable_fields: Iterable[str]) -> _FieldSpec:
    """``crConverter.ConvertFieldLabel`` + the custom resource strategy's field set."""
    fields: dict[str, _Extractor] = {"metadata.name": _NAME}
    if namespaced:
        fields["metadata.namespace"] = _NAMESPACE
    for json_path in selectable_fields:
        label = json_path[1:] if json_path.startswith(".") else json_path
        fields.setdefault(label, _jsonpath_extractor(json_path))
    return _FieldSpec(_accept(*fields), fields)


def _no_fields(obj: Mapping[str, Any]) -> str:
    return ""


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector for one resource: a conjunction of :class:`FieldRequirement`.

    Field names are stored in their *canonical* form (``spec.host`` becomes ``spec.nodeName``,
    events.k8s.io's ``regarding.kind`` becomes ``involvedObject.kind``).
    """

    requirements: tuple[FieldRequirement, ...] = ()
    _extractors: Mapping[str, _Extractor] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(
        cls,
        text: str,
        resource: str,
        group: str,
        *,
        custom: bool | None = None,
        namespaced: bool = True,
        selectable_fields: Iterable[str] = (),
    ) -> FieldSelector:
        """Parse ``text`` for ``resource`` (plural) in ``group``; errors -> ``ApiError`` 400 BadRequest.

        ``custom`` says whether the resource is a custom resource (default: its group is not one of
        :data:`BUILTIN_GROUPS`). For custom resources, ``namespaced`` (``metadata.namespace`` is not
        selectable on cluster-scoped ones) and the CRD version's ``selectableFields`` JSON paths
        (``.spec.color``) decide what may be selected; both are ignored for built-ins.
        """
        if custom is None:
            custom = group not in BUILTIN_GROUPS
        spec = (
            _custom_spec(namespaced, selectable_fields)
            if custom
            else _BUILTIN_SPECS.get((group, resource), _DEFAULT_SPEC)
        )
        try:
            parsed: list[tuple[str, str, str]] = []
            for part in sorted(_split_terms(text)):  # upstream sorts the terms before parsing
                if not part:
                    continue
                split = _split_term(part)
                if split is None:
                    raise _RequirementError(f"invalid selector: '{text}'; can't understand '{part}'")
                lhs, op, rhs = split
                parsed.append((lhs, EQUALS if op == DOUBLE_EQUALS else op, _unescape_field_value(rhs)))
            requirements: list[FieldRequirement] = []
            for lhs, op, value in parsed:  # Selector.Transform: the kind's field label conversion
                canonical = spec.accepts.get(lhs)
                if canonical is None:
                    raise _RequirementError(spec.error(lhs))
                requirements.append(FieldRequirement(canonical, op, value))
        except _RequirementError as e:
            raise bad_request(str(e)) from None
        return cls(tuple(requirements), {r.field: spec.fields.get(r.field, _no_fields) for r in requirements})

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """True when every term holds for ``obj`` (a full API object dict)."""
        return all(r.matches(self._extractors.get(r.field, _no_fields)(obj)) for r in self.requirements)

    def is_empty(self) -> bool:
        return not self.requirements

    def requires_exact_match(self, field_name: str) -> str | None:
        """The value a ``field=value`` term pins ``field_name`` to, if any (``RequiresExactMatch``)."""
        for r in self.requirements:
            if r.field == field_name and r.operator == EQUALS:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def parse_label_selector(text: str | None) -> LabelSelector:
    """Convenience: ``None``/empty -> everything, else :meth:`LabelSelector.parse`."""
    return LabelSelector.parse(text) if text else LabelSelector.everything()
