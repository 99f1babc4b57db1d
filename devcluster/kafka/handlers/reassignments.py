"""AlterPartitionReassignments (key 45) and ListPartitionReassignments (key 46), answered as the KRaft
controller does (brokers forward both).

Alter: one result per requested partition, in request order; ``replicas`` null cancels. v1's
``allow_replication_factor_change=false`` rejects a target whose size differs from the partition's
current (or in-flight target) replication factor with INVALID_REPLICATION_FACTOR. Without a quorum
leader the whole request fails with a top-level error. List: ``topics`` null lists every in-flight
reassignment; requested partitions that are unknown or not reassigning are left out.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.errors import ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.handlers.context import DEFAULT_MESSAGES, error_of, require_active_controller, service
from devcluster.kafka.protocol import ApiSpec, RequestContext

ALTER_KEY = 45
LIST_KEY = 46


def _rf_change_error(model: Any, topic: str, partition: int, target: list[int]) -> KafkaError | None:
    state = model.topic(topic)
    if state is None or not 0 <= partition < len(state.partitions):
        return None  # the model reports the unknown partition
    p = state.partitions[partition]
    current = len(p.replicas) - len(p.removing_replicas)
    if current == len(target):
        return None
    return KafkaError(
        ErrorCode.INVALID_REPLICATION_FACTOR,
        f"The replication factor is changed from {current} to {len(target)}",
    )


async def handle_alter(ctx: RequestContext, request: Any) -> Any:
    model = service(ctx).model
    allow_rf_change = bool(getattr(request, "allow_replication_factor_change", True))

    def whole_request_error(exc: KafkaError) -> Any:
        code, message = error_of(ctx, exc)
        message = message or DEFAULT_MESSAGES.get(code)
        return ctx.response(
            throttle_time=0,
            allow_replication_factor_change=allow_rf_change,
            error_code=code,
            error_message=message,
            responses=[
                {
                    "name": t.name,
                    "partitions": [
                        {"partition_index": p.partition_index, "error_code": code, "error_message": message}
                        for p in t.partitions
                    ],
                }
                for t in request.topics
            ],
        )

    try:
        require_active_controller(ctx)
    except KafkaError as exc:
        return whole_request_error(exc)
    responses = []
    for t in request.topics:
        partitions = []
        for p in t.partitions:
            target = list(p.replicas) if p.replicas is not None else None
            try:
                if target is not None and not allow_rf_change:
                    err = _rf_change_error(model, t.name, p.partition_index, target)
                    if err is not None:
                        raise err
                model.alter_reassignment(t.name, p.partition_index, target)
            except NoActiveController as exc:
                return whole_request_error(exc)
            except KafkaError as exc:
                code, message = error_of(ctx, exc)
                partitions.append(
                    {"partition_index": p.partition_index, "error_code": code, "error_message": message}
                )
                continue
            partitions.append({"partition_index": p.partition_index, "error_code": 0, "error_message": None})
        responses.append({"name": t.name, "partitions": partitions})
    return ctx.response(
        throttle_time=0,
        allow_replication_factor_change=allow_rf_change,
        error_code=0,
        error_message=None,
        responses=responses,
    )


async def handle_list(ctx: RequestContext, request: Any) -> Any:
    model = service(ctx).model
    wanted: dict[str, list[int]] | None = None
    if request.topics is not None:
        wanted = {}
        for t in request.topics:
            wanted.setdefault(t.name, []).extend(t.partition_indexes)
    try:
        require_active_controller(ctx)
        views = model.list_reassignments(wanted)
    except KafkaError as exc:
        code, message = error_of(ctx, exc)
        return ctx.response(
            throttle_time=0, error_code=code, error_message=message or DEFAULT_MESSAGES.get(code), topics=()
        )
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for v in views:
        by_topic.setdefault(v.topic, []).append(
            {
                "partition_index": v.partition,
                "replicas": v.replicas,
                "adding_replicas": v.adding_replicas,
                "removing_replicas": v.removing_replicas,
            }
        )
    return ctx.response(
        throttle_time=0,
        error_code=0,
        error_message=None,
        topics=[{"name": name, "partitions": parts} for name, parts in by_topic.items()],
    )


SPECS = [
    ApiSpec(ALTER_KEY, 0, 1, frozenset({"broker", "controller"}), handle_alter),
    ApiSpec(LIST_KEY, 0, 0, frozenset({"broker", "controller"}), handle_list),
]
