"""DescribeConfigs (key 32), AlterConfigs (key 33) and IncrementalAlterConfigs (key 44).

The checks a broker makes before forwarding an alter request to the controller
(ConfigAdminManager.preprocess) are made here: a resource named twice, a config key named twice, a
null value for anything but DELETE, an unknown resource type or operation all fail that resource with
INVALID_REQUEST and Kafka's message. Everything else (which configs exist, are read-only, valid, and
which broker a BROKER resource may name) is the model's call, made with ``handling_node`` set to this
node as a real broker applies its own id.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.errors import ErrorCode, KafkaError
from devcluster.kafka.handlers.context import error_of, require_active_controller, service
from devcluster.kafka.protocol import ApiSpec, RequestContext
from devcluster.kafka.types import AlterConfigOp, ConfigResourceType

DESCRIBE_CONFIGS_KEY = 32
ALTER_CONFIGS_KEY = 33
INCREMENTAL_ALTER_CONFIGS_KEY = 44

_KNOWN_TYPES = {int(t) for t in ConfigResourceType if t != ConfigResourceType.UNKNOWN}


async def handle_describe_configs(ctx: RequestContext, request: Any) -> Any:
    svc = service(ctx)
    include_synonyms = bool(getattr(request, "include_synonyms", False))
    include_documentation = bool(getattr(request, "include_documentation", False))
    unknown = next((r for r in request.resources if r.resource_type not in _KNOWN_TYPES), None)
    if unknown is not None:
        # The authorization step throws for an unknown type, failing the whole request.
        message = f"Unexpected resource type UNKNOWN for resource {unknown.resource_name}"
        return ctx.response(
            throttle_time=0,
            results=[
                {
                    "error_code": ErrorCode.INVALID_REQUEST,
                    "error_message": message,
                    "resource_type": r.resource_type,
                    "resource_name": r.resource_name,
                    "configs": (),
                }
                for r in request.resources
            ],
        )
    results = []
    for r in request.resources:
        keys = list(r.configuration_keys) if r.configuration_keys else None  # null or empty: all configs
        try:
            entries = svc.model.describe_configs(
                ConfigResourceType(r.resource_type),
                r.resource_name,
                keys,
                include_synonyms=include_synonyms,
                include_documentation=include_documentation,
                handling_node=svc.node_id,
            )
        except KafkaError as exc:
            code, message = error_of(ctx, exc)
            results.append(
                {
                    "error_code": code,
                    "error_message": message,
                    "resource_type": r.resource_type,
                    "resource_name": r.resource_name,
                    "configs": (),
                }
            )
            continue
        results.append(
            {
                "error_code": 0,
                "error_message": None,
                "resource_type": r.resource_type,
                "resource_name": r.resource_name,
                "configs": [
                    {
                        "name": e.name,
                        "value": e.value,
                        "read_only": e.read_only,
                        "config_source": int(e.source),
                        "is_sensitive": e.is_sensitive,
                        "synonyms": [
                            {"name": s.name, "value": s.value, "source": int(s.source)} for s in e.synonyms
                        ]
                        if include_synonyms
                        else (),
                        "config_type": int(e.config_type),
                        "documentation": e.documentation if include_documentation else None,
                    }
                    for e in entries
                ],
            }
        )
    return ctx.response(throttle_time=0, results=results)


def _preprocess(resources: Any, *, incremental: bool) -> dict[int, tuple[int, str]]:
    """ConfigAdminManager.preprocess: index of a rejected resource -> (code, message)."""
    rejected: dict[int, tuple[int, str]] = {}
    first_seen: dict[tuple[int, str], int] = {}
    for i, r in enumerate(resources):
        key = (r.resource_type, r.resource_name)
        if key in first_seen:
            for j in (first_seen[key], i):
                rejected[j] = (ErrorCode.INVALID_REQUEST, "Each resource must appear at most once.")
        else:
            first_seen[key] = i
    for i, r in enumerate(resources):
        if i in rejected:
            continue
        names = [c.name for c in r.configs]
        if len(set(names)) != len(names):
            rejected[i] = (ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
            continue
        nulls = [
            c.name
            for c in r.configs
            if c.value is None and not (incremental and c.config_operation == AlterConfigOp.DELETE)
        ]
        if nulls:
            rejected[i] = (ErrorCode.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls))
            continue
        allowed = _KNOWN_TYPES if incremental else _KNOWN_TYPES - {int(ConfigResourceType.BROKER_LOGGER)}
        if r.resource_type not in allowed:
            rejected[i] = (ErrorCode.INVALID_REQUEST, f"Unknown resource type {r.resource_type}")
            continue
        if incremental:
            bad = next(
                (c.config_operation for c in r.configs if c.config_operation not in set(AlterConfigOp)), None
            )
            if bad is not None:
                rejected[i] = (ErrorCode.INVALID_REQUEST, f"Unknown operations type {bad}")
    return rejected


async def _alter(ctx: RequestContext, request: Any, *, incremental: bool) -> Any:
    svc = service(ctx)
    rejected = _preprocess(request.resources, incremental=incremental)
    responses = []
    for i, r in enumerate(request.resources):
        base = {"resource_type": r.resource_type, "resource_name": r.resource_name}
        if i in rejected:
            code, message = rejected[i]
            responses.append({**base, "error_code": code, "error_message": message})
            continue
        try:
            require_active_controller(ctx)
            if incremental:
                svc.model.incremental_alter_configs(
                    ConfigResourceType(r.resource_type),
                    r.resource_name,
                    [(c.name, AlterConfigOp(c.config_operation), c.value) for c in r.configs],
                    validate_only=request.validate_only,
                    handling_node=svc.node_id,
                )
            else:
                svc.model.alter_configs(
                    ConfigResourceType(r.resource_type),
                    r.resource_name,
                    {c.name: c.value for c in r.configs},
                    validate_only=request.validate_only,
                    handling_node=svc.node_id,
                )
        except KafkaError as exc:
            code, message = error_of(ctx, exc)
            responses.append({**base, "error_code": code, "error_message": message})
            continue
        responses.append({**base, "error_code": 0, "error_message": None})
    return ctx.response(throttle_time=0, responses=responses)


async def handle_alter_configs(ctx: RequestContext, request: Any) -> Any:
    return await _alter(ctx, request, incremental=False)


async def handle_incremental_alter_configs(ctx: RequestContext, request: Any) -> Any:
    return await _alter(ctx, request, incremental=True)


SPECS = [
    ApiSpec(DESCRIBE_CONFIGS_KEY, 1, 4, frozenset({"broker", "controller"}), handle_describe_configs),
    ApiSpec(ALTER_CONFIGS_KEY, 0, 2, frozenset({"broker", "controller"}), handle_alter_configs),
    ApiSpec(
        INCREMENTAL_ALTER_CONFIGS_KEY,
        0,
        1,
        frozenset({"broker", "controller"}),
        handle_incremental_alter_configs,
    ),
]
