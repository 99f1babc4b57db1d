"""The Kafka wire protocol as a real broker/controller speaks it: framing, headers, version gating.

A request frame is a 4-byte big-endian length followed by that many bytes: a request header then the
request body. The header version follows from the API key and version (v1 for non-flexible versions,
v2 — with tagged fields — for flexible ones); the response header is v0 for non-flexible versions and
for ApiVersions (always), v1 otherwise. Message types and their (de)serialisation come from ``kio``.

What a real server does with bad input, and so what :func:`parse_request` does:

- a frame longer than ``socket.request.max.bytes`` (100 MiB) or with a negative length: the
  connection is closed (``InvalidReceiveException``);
- an unknown API key, an API not served on this listener (e.g. Metadata on a controller listener) or
  a version outside the advertised range: the connection is closed (``SocketServer.parseRequestHeader``
  throws ``InvalidRequestException``). ApiVersions is the exception: any version is accepted and an
  unsupported one is answered with ApiVersions v0 carrying UNSUPPORTED_VERSION and the ApiVersions
  range (KIP-511);
- a header or body that does not decode: the connection is closed.

:func:`build` constructs a response of any version from one set of field values written for the
newest version: fields the version lacks are dropped and fields not given get the schema default,
like the setters of Kafka's generated message classes.
"""

from __future__ import annotations

import datetime
import io
import re
import struct
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from functools import cache
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.serial import entity_reader, entity_writer

Listener = Literal["broker", "controller"]
"""The listener type a request arrived on; each API is served on one or both (the schema's
``listeners``)."""

MAX_REQUEST_BYTES = 104_857_600
"""``socket.request.max.bytes`` default: a larger frame closes the connection."""

API_VERSIONS_KEY = 18
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42

# ApiVersionsRequest v3+ client software name/version must match this (ApiVersionsRequest.isValid).
_SOFTWARE_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")

_HEAD = struct.Struct(">hhi")
_LEN = struct.Struct(">i")


class InvalidRequest(Exception):
    """The request cannot be served; a real server logs it and closes the connection."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The decoded request header (both header versions have these fields)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a handler gets besides the request body: the header, the listener and the server's state.

    ``server`` is the object the server was started with (for devcluster: the node's view of the
    cluster model); handlers know its type, the protocol layer does not.
    """

    header: RequestHeader
    listener: Listener
    server: Any
    registry: ApiRegistry

    @property
    def version(self) -> int:
        return self.header.api_version

    def response(self, **values: Any) -> Any:
        """The response entity of this request's API and version built from ``values`` (see :func:`build`)."""
        return build(response_type(self.header.api_key, self.header.api_version), values)


Handler = Callable[[RequestContext, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """One API a server implements: the version range it advertises and handles, the listeners that
    serve it, and its handler (``async (ctx, request) -> response entity``)."""

    api_key: int
    min_version: int
    max_version: int
    listeners: frozenset[str]
    handler: Handler

    def __post_init__(self) -> None:
        # Advertise only versions kio can actually encode and decode: a range kio lacks would make the
        # server close connections for versions it claimed to support.
        for version in range(self.min_version, self.max_version + 1):
            request_type(self.api_key, version)
            response_type(self.api_key, version)


class ApiRegistry:
    """The APIs served by a node, keyed by API key."""

    def __init__(self, specs: Iterable[ApiSpec]) -> None:
        self._specs: dict[int, ApiSpec] = {}
        for spec in specs:
            if spec.api_key in self._specs:
                raise ValueError(f"API key {spec.api_key} registered twice")
            self._specs[spec.api_key] = spec

    def get(self, api_key: int, listener: str) -> ApiSpec | None:
        """The spec serving ``api_key`` on ``listener``, or None (the API is "not enabled" there)."""
        spec = self._specs.get(api_key)
        if spec is None or listener not in spec.listeners:
            return None
        return spec

    def advertised(self, listener: str) -> list[tuple[int, int, int]]:
        """``(api_key, min_version, max_version)`` for every API served on ``listener``, by key."""
        return [
            (s.api_key, s.min_version, s.max_version)
            for s in sorted(self._specs.values(), key=lambda s: s.api_key)
            if listener in s.listeners
        ]


@cache
def request_type(api_key: int, version: int) -> type:
    return load_request_schema(api_key, version)


@cache
def response_type(api_key: int, version: int) -> type:
    return load_response_schema(api_key, version)


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A request ready for its handler, or (``spec is None``) an ApiVersions request of a version this
    server does not support, to be answered with :func:`unsupported_api_versions_response`."""

    header: RequestHeader
    spec: ApiSpec | None
    body: Any


def parse_request(payload: bytes, registry: ApiRegistry, listener: str) -> ParsedRequest:
    """Decode one frame's payload (the bytes after the length). Raises :class:`InvalidRequest` for
    anything a real server would answer by closing the connection."""
    if len(payload) < _HEAD.size:
        raise InvalidRequest(f"request of {len(payload)} bytes is shorter than a request header")
    api_key, api_version, _ = _HEAD.unpack_from(payload, 0)
    spec = registry.get(api_key, listener)
    if spec is None:
        raise InvalidRequest(f"Received request api key {api_key} which is not enabled on this listener")
    supported = spec.min_version <= api_version <= spec.max_version
    if not supported and api_key != API_VERSIONS_KEY:
        raise InvalidRequest(
            f"Received request api key {api_key} with version {api_version} which is not enabled"
        )
    # An unsupported ApiVersions version is still read with the header its version number implies
    # (v2 from v3 on); the body is not parsed, the client will retry with a version we advertise.
    schema_version = api_version if supported else (spec.max_version if api_version > spec.max_version else 0)
    req_type = request_type(api_key, schema_version)
    try:
        header, offset = _read_header(req_type.__header_schema__, payload)
        body = None
        if supported:
            body, _ = entity_reader(req_type)(payload, offset)
    except Exception as exc:  # kio raises assorted errors for truncated/garbled input
        raise InvalidRequest(
            f"Error reading request api key {api_key} version {api_version}: {exc!r}"
        ) from exc
    return ParsedRequest(header=header, spec=spec if supported else None, body=body)


def _read_header(header_type: type, payload: bytes) -> tuple[RequestHeader, int]:
    raw, size = entity_reader(header_type)(payload, 0)
    header = RequestHeader(
        api_key=int(raw.request_api_key),
        api_version=int(raw.request_api_version),
        correlation_id=int(raw.correlation_id),
        client_id=raw.client_id,
    )
    return header, size


def api_versions_request_is_valid(body: Any) -> bool:
    """ApiVersionsRequest.isValid: from v3 the client software name and version must be well formed."""
    if getattr(type(body), "__version__", 0) < 3:
        return True
    return bool(
        _SOFTWARE_RE.fullmatch(body.client_software_name)
        and _SOFTWARE_RE.fullmatch(body.client_software_version)
    )


def unsupported_api_versions_response(spec_for_api_versions: tuple[int, int]) -> Any:
    """ApiVersions v0 with UNSUPPORTED_VERSION and only the ApiVersions range (KIP-511), which is what
    a real broker sends to a client that asked with a version it does not know."""
    low, high = spec_for_api_versions
    return build(
        response_type(API_VERSIONS_KEY, 0),
        {
            "error_code": UNSUPPORTED_VERSION,
            "api_keys": [{"api_key": API_VERSIONS_KEY, "min_version": low, "max_version": high}],
        },
    )


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    """A response body a handler serialised itself (the Metadata hot path); ``response_type`` is the
    kio class it is an encoding of, which decides the response header version."""

    response_type: type
    body: bytes


def encode_response(correlation_id: int, response: Any) -> bytes:
    """The complete response frame (length prefix, response header, body) for ``response`` (a kio
    entity or an :class:`EncodedResponse`)."""
    buf = io.BytesIO()
    buf.write(b"\0\0\0\0")
    encoded = isinstance(response, EncodedResponse)
    header_type = (response.response_type if encoded else type(response)).__header_schema__
    entity_writer(header_type)(buf, header_type(correlation_id=correlation_id))
    if encoded:
        buf.write(response.body)
    else:
        entity_writer(type(response))(buf, response)
    frame = buf.getbuffer()
    _LEN.pack_into(frame, 0, len(frame) - 4)
    del frame
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# Version-agnostic construction of kio entities.

_PRIMITIVE, _ENTITY, _ENTITY_TUPLE = 0, 1, 2
_UUID_ZERO = uuid.UUID(int=0)
_EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    kind: int
    inner: type | None
    convert: Callable[[Any], Any] | None
    default: Callable[[], Any] | None  # None when the field has a dataclass default


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (UnionType, Union):
        args = [a for a in get_args(tp) if a is not NoneType]
        return args[0], True
    return tp, False


def _to_error_code(value: Any) -> KioErrorCode:
    return value if type(value) is KioErrorCode else KioErrorCode(int(value))


def _to_timedelta(value: Any) -> datetime.timedelta:
    return value if isinstance(value, datetime.timedelta) else datetime.timedelta(milliseconds=int(value))


def _to_datetime(value: Any) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromtimestamp(int(value) / 1000, tz=datetime.UTC)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "error_code": _to_error_code,
    "timedelta_i32": _to_timedelta,
    "timedelta_i64": _to_timedelta,
    "datetime_i64": _to_datetime,
}


def _implicit_default(kafka_type: str | None, tp: Any, optional: bool, kind: int, inner: type | None) -> Any:
    # The value Kafka's generated classes hold for a field that was never set (its schema default).
    if kind == _ENTITY_TUPLE or get_origin(tp) is tuple:
        return lambda: ()
    if optional:
        return lambda: None
    if kind == _ENTITY:
        assert inner is not None
        return lambda: build(inner, {})
    zero: Any = {
        "error_code": KioErrorCode.none,
        "timedelta_i32": datetime.timedelta(0),
        "timedelta_i64": datetime.timedelta(0),
        "datetime_i64": _EPOCH,
        "string": "",
        "bytes": b"",
        "records": b"",
        "bool": False,
        "uuid": _UUID_ZERO,
        "float64": 0.0,
    }.get(kafka_type or "", 0)
    return lambda: zero


@cache
def _plan(cls: type) -> tuple[_FieldPlan, ...]:
    plans = []
    for f in fields(cls):
        tp, optional = _unwrap_optional(f.type)
        kafka_type = f.metadata.get("kafka_type")
        kind, inner = _PRIMITIVE, None
        if get_origin(tp) is tuple:
            item = get_args(tp)[0]
            if hasattr(item, "__dataclass_fields__"):
                kind, inner = _ENTITY_TUPLE, item
        elif hasattr(tp, "__dataclass_fields__"):
            kind, inner = _ENTITY, tp
        convert = _CONVERTERS.get(kafka_type or "") if kind == _PRIMITIVE else None
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        default = None if has_default else _implicit_default(kafka_type, tp, optional, kind, inner)
        plans.append(_FieldPlan(f.name, kind, inner, convert, default))
    return tuple(plans)


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of kio entity ``cls`` from ``values``: keys the class lacks are ignored, nested
    entities may be given as mappings (or sequences of mappings) and are built with the nested class
    of the same version, error codes / durations / timestamps may be plain ints (milliseconds), and
    fields not given take their schema default."""
    kwargs: dict[str, Any] = {}
    for p in _plan(cls):
        if p.name in values:
            value = values[p.name]
            if p.kind == _ENTITY_TUPLE:
                inner = p.inner
                # Already-built entity tuples (the Metadata hot path) are taken as they are.
                if value is not None and not (
                    type(value) is tuple and (not value or type(value[0]) is inner)
                ):
                    value = tuple(v if type(v) is inner else build(inner, v) for v in value)  # type: ignore[arg-type]
            elif p.kind == _ENTITY:
                if value is not None and not isinstance(value, p.inner):  # type: ignore[arg-type]
                    value = build(p.inner, value)  # type: ignore[arg-type]
            elif p.convert is not None:
                value = p.convert(value)
            kwargs[p.name] = value
        elif p.default is not None:
            kwargs[p.name] = p.default()
    return cls(**kwargs)
