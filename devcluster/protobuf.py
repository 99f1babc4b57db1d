"""Decoding ``application/vnd.kubernetes.protobuf`` request bodies for the kinds kubectl's generators send.

``kubectl create namespace|configmap|secret|serviceaccount`` post typed objects as protobuf: the magic
``k8s\\x00`` followed by a ``runtime.Unknown`` envelope (``typeMeta`` 1, ``raw`` 2) whose ``raw`` is the
object's generated protobuf message. Only those kinds' messages are described here (field numbers of
``k8s.io/api`` ``generated.proto``); any other protobuf body is answered with 415 as before.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from devcluster.errors import ApiError

MAGIC = b"k8s\x00"

# message description: field number -> (json name, kind); kind is "string", "bytes", "int", "bool",
# a message name, "map:<value kind>" or "repeated:<kind>".
Schema = dict[int, tuple[str, str]]
_MESSAGES: dict[str, Schema] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   4: ("selfLink", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string"),
                   7: ("generation", "int"), 8: ("creationTimestamp", "Time"), 9: ("deletionTimestamp", "Time"),
                   10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", "map:string"),
                   12: ("annotations", "map:string"), 13: ("ownerReferences", "repeated:OwnerReference"),
                   14: ("finalizers", "repeated:string")},
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                       5: ("apiVersion", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:string"), 3: ("binaryData", "map:bytes"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "string"),
               4: ("stringData", "map:string"), 5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", "repeated:string")},
    "NamespaceStatus": {1: ("phase", "string")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "repeated:ObjectReference"),
                       3: ("imagePullSecrets", "repeated:LocalObjectReference"),
                       4: ("automountServiceAccountToken", "bool")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"),
                        4: ("uid", "string"), 5: ("apiVersion", "string"), 6: ("resourceVersion", "string"),
                        7: ("fieldPath", "string")},
    "LocalObjectReference": {1: ("name", "string")},
}
_TOP_LEVEL = {("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), ("v1", "ServiceAccount")}


def _unsupported() -> ApiError:
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media "
                    "types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _unsupported()
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) in order; length-delimited values stay bytes."""
    out = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise _unsupported()
        out.append((number, wire, value))
    return out


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        return value.decode()
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return value - (1 << 64) if value >= 1 << 63 else value
    return _message(kind, value)


def _message(name: str, data: bytes) -> Any:
    schema = _MESSAGES[name]
    if name == "Time":
        parts = {schema[n][0]: v for n, _, v in _fields(data) if n in schema}
        moment = dt.datetime.fromtimestamp(parts.get("seconds", 0), dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if parts.get("seconds") else None
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        if number not in schema:
            continue
        field, kind = schema[number]
        if kind.startswith("map:"):
            entry = {n: v for n, _, v in _fields(value)}
            out.setdefault(field, {})[entry.get(1, b"").decode()] = _scalar(kind[4:], entry.get(2, b""))
        elif kind.startswith("repeated:"):
            out.setdefault(field, []).append(_scalar(kind[9:], value))
        else:
            decoded = _scalar(kind, value)
            # Generated messages carry every scalar; JSON (omitempty) has no empty ones.
            if decoded not in ("", 0, False, None, {}):
                out[field] = decoded
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; 415 for kinds not described here."""
    if not body.startswith(MAGIC):
        raise _unsupported()
    envelope = _message("Unknown", body[len(MAGIC):])
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if (api_version, kind) not in _TOP_LEVEL:
        raise _unsupported()
    raw = base64.b64decode(envelope.get("raw", ""))
    obj = _message(kind, raw)
    obj.setdefault("metadata", {})
    return {"apiVersion": api_version, "kind": kind, **obj}
