"""CreateTopics (key 19) and DeleteTopics (key 20), as the KRaft controller answers them (a broker
forwards both to the active controller and relays the answer).

CreateTopics: duplicate names in one request get INVALID_REQUEST "Duplicate topic name.",
``__cluster_metadata`` is refused; v5+ results carry the partition count, replication factor and the
topic's configs. DeleteTopics: by name (all versions) or id (v6+); naming both, neither or the same
topic twice is an INVALID_REQUEST for that entry.
"""

from __future__ import annotations

import uuid
from typing import Any

from devcluster.kafka.errors import ErrorCode, KafkaError
from devcluster.kafka.handlers.common import CLUSTER_METADATA_TOPIC
from devcluster.kafka.handlers.context import error_of, require_active_controller, service
from devcluster.kafka.protocol import ApiSpec, RequestContext

CREATE_TOPICS_KEY = 19
DELETE_TOPICS_KEY = 20

_UUID_ZERO = uuid.UUID(int=0)


async def handle_create_topics(ctx: RequestContext, request: Any) -> Any:
    model = service(ctx).model
    try:
        require_active_controller(ctx)
    except KafkaError as exc:
        code, message = error_of(ctx, exc)
        return ctx.response(
            throttle_time=0,
            topics=[{"name": t.name, "error_code": code, "error_message": message} for t in request.topics],
        )

    counts: dict[str, int] = {}
    for t in request.topics:
        counts[t.name] = counts.get(t.name, 0) + 1

    results: list[dict[str, Any]] = []
    trailing: list[dict[str, Any]] = []
    for t in request.topics:
        name = t.name
        if counts[name] > 1:
            continue
        if name == CLUSTER_METADATA_TOPIC:
            trailing.append(
                {
                    "name": name,
                    "error_code": ErrorCode.INVALID_REQUEST,
                    "error_message": f"Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited.",
                }
            )
            continue
        assignment = {a.partition_index: tuple(a.broker_ids) for a in t.assignments} or None
        configs = {c.name: c.value for c in t.configs}
        try:
            created = model.create_topic(
                name,
                num_partitions=t.num_partitions,
                replication_factor=t.replication_factor,
                assignment=assignment,
                configs=configs,
                validate_only=request.validate_only,
            )
        except KafkaError as exc:
            code, message = error_of(ctx, exc)
            results.append({"name": name, "error_code": code, "error_message": message})
            continue
        results.append(
            {
                "name": name,
                "topic_id": created.topic_id,
                "error_code": 0,
                "error_message": None,
                "num_partitions": created.num_partitions,
                "replication_factor": created.replication_factor,
                "configs": [
                    {
                        "name": c.name,
                        "value": c.value,
                        "read_only": c.read_only,
                        "config_source": int(c.source),
                        "is_sensitive": c.is_sensitive,
                    }
                    for c in created.configs
                ],
            }
        )
    duplicates = [n for n, c in counts.items() if c > 1]
    results += [
        {"name": n, "error_code": ErrorCode.INVALID_REQUEST, "error_message": "Duplicate topic name."}
        for n in duplicates
    ]
    return ctx.response(throttle_time=0, topics=results + trailing)


async def handle_delete_topics(ctx: RequestContext, request: Any) -> Any:
    model = service(ctx).model
    version = ctx.version
    # v0-v5 name topics in ``topic_names``; v6 in ``topics`` (name or id).
    entries: list[tuple[str | None, uuid.UUID]] = (
        [(t.name, t.topic_id or _UUID_ZERO) for t in request.topics]
        if version >= 6
        else [(name, _UUID_ZERO) for name in request.topic_names]
    )
    try:
        require_active_controller(ctx)
    except KafkaError as exc:
        code, message = error_of(ctx, exc)
        return ctx.response(
            throttle_time=0,
            responses=[
                {"name": n, "topic_id": i, "error_code": code, "error_message": message} for n, i in entries
            ],
        )

    responses: list[dict[str, Any]] = []

    def reply(name: str | None, topic_id: uuid.UUID, code: int, message: str | None = None) -> None:
        responses.append({"name": name, "topic_id": topic_id, "error_code": code, "error_message": message})

    name_counts: dict[str, int] = {}
    id_counts: dict[uuid.UUID, int] = {}
    for name, topic_id in entries:
        if name is not None and topic_id == _UUID_ZERO:
            name_counts[name] = name_counts.get(name, 0) + 1
        elif name is None and topic_id != _UUID_ZERO:
            id_counts[topic_id] = id_counts.get(topic_id, 0) + 1

    targets: list[tuple[str | None, uuid.UUID]] = []
    for name, topic_id in entries:
        if name is None and topic_id == _UUID_ZERO:
            reply(None, _UUID_ZERO, ErrorCode.INVALID_REQUEST, "Neither topic name nor id were specified.")
        elif name is not None and topic_id != _UUID_ZERO:
            reply(
                name, topic_id, ErrorCode.INVALID_REQUEST, "You may not specify both topic name and topic id."
            )
        elif name is not None:
            if name_counts[name] == 1:
                targets.append((name, topic_id))
        elif id_counts[topic_id] == 1:
            targets.append((None, topic_id))
    for name in (n for n, c in name_counts.items() if c > 1):
        reply(name, _UUID_ZERO, ErrorCode.INVALID_REQUEST, "Duplicate topic name.")
    for topic_id in (i for i, c in id_counts.items() if c > 1):
        reply(None, topic_id, ErrorCode.INVALID_REQUEST, "Duplicate topic id.")

    # A name that resolves to an id also given by id is one topic named twice.
    by_id = {i for n, i in targets if n is None}
    for name, topic_id in targets:
        if name is not None:
            topic = model.topic(name)
            if topic is not None and topic.topic_id in by_id:
                reply(
                    name,
                    topic.topic_id,
                    ErrorCode.INVALID_REQUEST,
                    "The provided topic name maps to an ID that was already supplied.",
                )
                continue
        try:
            deleted_name, deleted_id = model.delete_topic(
                name=name, topic_id=None if name is not None else topic_id
            )
        except KafkaError as exc:
            code, message = error_of(ctx, exc)
            if code == ErrorCode.TOPIC_DELETION_DISABLED and version < 3:
                code, message = ErrorCode.INVALID_REQUEST, "Topic deletion is disabled."
            reply(name, _UUID_ZERO if name is not None else topic_id, code, message)
            continue
        reply(deleted_name, deleted_id, ErrorCode.NONE)
    return ctx.response(throttle_time=0, responses=responses)


SPECS = [
    ApiSpec(CREATE_TOPICS_KEY, 2, 7, frozenset({"broker", "controller"}), handle_create_topics),
    ApiSpec(DELETE_TOPICS_KEY, 1, 6, frozenset({"broker", "controller"}), handle_delete_topics),
]
