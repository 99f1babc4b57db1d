"""Name, label and annotation validation with kube-apiserver's exact wording.

Everything here is pure (no I/O) and mirrors, message for message, the Go functions kube-apiserver
runs on ``metadata`` at create/update time:

* ``k8s.io/apimachinery/pkg/util/validation`` (``IsDNS1123Subdomain``, ``IsDNS1123Label``,
  ``IsDNS1035Label``): the rules for object names;
* ``k8s.io/apimachinery/pkg/api/validate/content`` (``IsLabelKey``, ``IsLabelValue``,
  ``IsPathSegmentName``): the rules for label keys/values, annotation keys and path segments;
* ``k8s.io/apimachinery/pkg/api/validation`` (``ValidateObjectMetaAccessor``, ``NameIsDNSSubdomain``
  and friends, ``ValidateAnnotations``) and ``.../apis/meta/v1/validation.ValidateLabels``: how those
  rules become ``field.Error`` values.

The wording tracks kube-apiserver 1.35+, where length errors on names say "characters" but on
label keys/values say "bytes", and a label key with two slashes is called "a valid label key"
(1.34 and older said "a qualified name" and "characters" everywhere). Lengths are measured in
UTF-8 bytes, as Go's ``len`` does.

A problem is reported as a :class:`~devcluster.errors.Cause` whose ``field`` is the field path
(``metadata.name``) and whose ``message`` is the Go ``field.Error.ErrorBody()`` -- the text
*without* the field prefix, e.g. ``Invalid value: "Foo": a lowercase RFC 1123 subdomain ...``.
That is exactly what kube-apiserver puts into ``Status.details.causes``; ``errors.invalid`` joins
field and message for the top-level ``Status.message``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping

from devcluster.errors import Cause

__all__ = [
    "NAME_RULES",
    "TOTAL_ANNOTATION_SIZE_LIMIT_BYTES",
    "go_quote",
    "invalid_cause",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_label_key",
    "is_label_value",
    "is_path_segment_name",
    "is_path_segment_prefix",
    "required_cause",
    "validate_annotations",
    "validate_labels",
    "validate_object_name",
]

# --------------------------------------------------------------------------------------------------
# Go formatting helpers (the messages embed values the way Go's fmt / encoding/json print them)
# --------------------------------------------------------------------------------------------------

_GO_SIMPLE_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    '"': r"\"",
    "\\": r"\\",
}


def go_quote(value: str) -> str:
    """``strconv.Quote`` / ``fmt.Sprintf("%q", value)``: a double-quoted Go string literal."""
    out = ['"']
    for ch in value:
        if ch in _GO_SIMPLE_ESCAPES:
            out.append(_GO_SIMPLE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            cp = ord(ch)
            if cp < 0x20 or cp == 0x7F:
                out.append(f"\\x{cp:02x}")
            elif cp < 0x10000:
                out.append(f"\\u{cp:04x}")
            else:
                out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def go_json(value: object) -> str:
    """``encoding/json.Marshal`` output (compact, HTML-escaped) for plain JSON-able values."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def byte_len(value: str) -> int:
    """Go's ``len(string)``: the UTF-8 byte length."""
    return len(value.encode("utf-8", "surrogatepass"))


def regex_error(msg: str, regex: str, *examples: str) -> str:
    """``validation.RegexError`` -- including its famous double space before ``or``."""
    if not examples:
        return f"{msg} (regex used for validation is '{regex}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{regex}')"


def max_len_error(length: int, unit: str) -> str:
    """``MaxLenError``: util/validation says ``characters``, api/validate/content says ``bytes``."""
    return f"must be no more than {length} {unit}"


EMPTY_ERROR = "must be non-empty"

# --------------------------------------------------------------------------------------------------
# String-format predicates. Each returns the list of problems (empty when valid), like the Go ones.
# --------------------------------------------------------------------------------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_LABEL_VALUE_FMT = "(" + _LABEL_KEY_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)

# Go's regexp "$" is end-of-text (no trailing-newline leniency), hence fullmatch with ASCII classes.
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_MAX_LENGTH = 63
LABEL_KEY_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
TOTAL_ANNOTATION_SIZE_LIMIT_BYTES = 256 * 1024


def is_dns1123_label(value: str) -> list[str]:
    """``validation.IsDNS1123Label`` (namespace names)."""
    errs: list[str] = []
    if byte_len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH, "characters"))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            # A valid subdomain but not a label: since length was checked, it must be the dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str, *, length_unit: str = "characters") -> list[str]:
    """``validation.IsDNS1123Subdomain`` (most object names).

    ``length_unit`` is ``"bytes"`` for the copy in ``api/validate/content`` that label-key prefixes use.
    """
    errs: list[str] = []
    if byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH, length_unit))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """``validation.IsDNS1035Label`` (service names)."""
    errs: list[str] = []
    if byte_len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH, "characters"))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_label_key(value: str) -> list[str]:
    """``content.IsLabelKey`` (a.k.a. ``IsQualifiedName``): ``[prefix/]name``.

    Used for label keys, annotation keys (lower-cased first) and selector keys.
    """
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix, length_unit="bytes"))
    else:
        return [
            "a valid label key "
            + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif byte_len(name) > LABEL_KEY_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(LABEL_KEY_NAME_MAX_LENGTH, "bytes"))
    if not _LABEL_KEY_RE.fullmatch(name):
        errs.append(
            "name part " + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_label_value(value: str) -> list[str]:
    """``content.IsLabelValue``: at most 63 bytes of ``[A-Za-z0-9._-]``, alphanumeric ends, may be empty."""
    errs: list[str] = []
    if byte_len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH, "bytes"))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_path_segment_prefix(name: str) -> list[str]:
    """``content.IsPathSegmentPrefix``: no ``/`` or ``%`` (empty and long values are not checked)."""
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def is_path_segment_name(name: str) -> list[str]:
    """``content.IsPathSegmentName``: a prefix that is also not ``.`` or ``..``."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return is_path_segment_prefix(name)


# --------------------------------------------------------------------------------------------------
# Name rules (apimachinery/pkg/api/validation ValidateNameFunc): (name, prefix) -> problems
# --------------------------------------------------------------------------------------------------


def _mask_trailing_dash(name: str) -> str:
    """``maskTrailingDash``, verbatim: a trailing dash of a generateName prefix (len > 1) is masked.

    Upstream replaces the last *two* characters by ``a`` (``name[:len(name)-2] + "a"``); kept as is.
    """
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def _name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def _name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def _name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def _name_is_path_segment(name: str, prefix: bool) -> list[str]:
    return is_path_segment_prefix(name) if prefix else is_path_segment_name(name)


NAME_RULES: Mapping[str, Callable[[str, bool], list[str]]] = {
    # NameIsDNSSubdomain: configmaps, secrets, pods, statefulsets, nodes, leases, custom resources, ...
    "dns1123-subdomain": _name_is_dns_subdomain,
    # NameIsDNSLabel: namespaces.
    "dns1123-label": _name_is_dns_label,
    # NameIsDNS1035Label: services.
    "dns1035-label": _name_is_dns1035_label,
    # ValidatePathSegmentName: RBAC objects, and the generic registry's check for everything else
    # (core/v1 events get only this one).
    "path-segment": _name_is_path_segment,
}

# --------------------------------------------------------------------------------------------------
# field.Error -> Cause
# --------------------------------------------------------------------------------------------------


def invalid_cause(field_path: str, value: object, detail: str) -> Cause:
    """``field.Invalid(path, value, detail)`` as a status cause (strings print with ``%q``)."""
    shown = go_quote(value) if isinstance(value, str) else go_json(value)
    body = f"Invalid value: {shown}"
    if detail:
        body += f": {detail}"
    return Cause(reason="FieldValueInvalid", message=body, field=field_path)


def required_cause(field_path: str, detail: str = "") -> Cause:
    """``field.Required(path, detail)`` as a status cause."""
    body = "Required value" + (f": {detail}" if detail else "")
    return Cause(reason="FieldValueRequired", message=body, field=field_path)


def too_long_cause(field_path: str, max_length: int) -> Cause:
    """``field.TooLong(path, _, maxLength)`` (1.33+ wording) as a status cause."""
    unit = "byte" if max_length == 1 else "bytes"
    return Cause(
        reason="FieldValueTooLong",
        message=f"Too long: may not be more than {max_length} {unit}",
        field=field_path,
    )


# --------------------------------------------------------------------------------------------------
# ObjectMeta checks
# --------------------------------------------------------------------------------------------------


def validate_object_name(
    kind: str, group: str, name: str | None, generate_name: str | None, rule: str
) -> list[Cause]:
    """The name part of ``ValidateObjectMetaAccessor``.

    ``rule`` is a key of :data:`NAME_RULES`. ``kind``/``group`` do not change the wording (upstream
    messages never name the kind); they are accepted so callers can pass the resource identity.

    As in kube-apiserver, name generation happens *before* validation: pass the generated name in
    ``name`` together with the ``generateName`` it came from. ``generateName`` is validated as a
    prefix (a trailing ``-`` is allowed); an empty ``name`` yields
    ``metadata.name: Required value: name or generateName is required``.
    """
    del kind, group  # identity only; the upstream messages do not depend on it
    try:
        name_fn = NAME_RULES[rule]
    except KeyError:
        raise ValueError(f"unknown name rule {rule!r}; expected one of {sorted(NAME_RULES)}") from None
    causes: list[Cause] = []
    if generate_name:
        causes.extend(
            invalid_cause("metadata.generateName", generate_name, msg) for msg in name_fn(generate_name, True)
        )
    if not name:
        causes.append(required_cause("metadata.name", "name or generateName is required"))
    else:
        causes.extend(invalid_cause("metadata.name", name, msg) for msg in name_fn(name, False))
    return causes


def validate_labels(labels: Mapping[str, str] | None, field_path: str = "metadata.labels") -> list[Cause]:
    """``metav1validation.ValidateLabels``: every key a label key, every value a label value.

    Each problem is reported on ``field_path`` itself (not ``field_path[key]``), with the offending
    key or value as the bad value -- exactly as upstream. Keys are visited in sorted order (Go's map
    order is random, so any order is faithful; sorted keeps messages deterministic).
    """
    causes: list[Cause] = []
    for key in sorted(labels or {}):
        value = (labels or {})[key]
        causes.extend(invalid_cause(field_path, key, msg) for msg in is_label_key(key))
        causes.extend(invalid_cause(field_path, value, msg) for msg in is_label_value(value))
    return causes


def validate_annotations(
    annotations: Mapping[str, str] | None, field_path: str = "metadata.annotations"
) -> list[Cause]:
    """``ValidateAnnotations``: keys are label keys compared case-insensitively; total size <= 256 KiB.

    The size is the sum of UTF-8 byte lengths of all keys and values; exceeding it adds one
    ``FieldValueTooLong`` cause (``Too long: may not be more than 262144 bytes``).
    """
    causes: list[Cause] = []
    annotations = annotations or {}
    for key in sorted(annotations):
        causes.extend(invalid_cause(field_path, key, msg) for msg in is_label_key(key.lower()))
    if annotations_size(annotations.items()) > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES:
        causes.append(too_long_cause(field_path, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES))
    return causes


def annotations_size(items: Iterable[tuple[str, str]]) -> int:
    """``ValidateAnnotationsSize``'s measure: sum of ``len(key) + len(value)`` in bytes."""
    return sum(byte_len(k) + byte_len(v) for k, v in items)
