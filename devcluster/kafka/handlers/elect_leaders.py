"""ElectLeaders (key 43), answered as the KRaft controller does (brokers forward it).

``topic_partitions`` null elects every partition and reports only those whose election was needed;
otherwise every requested partition gets a result (ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
UNKNOWN_TOPIC_OR_PARTITION, ...). v0 has no election type (preferred) and no top-level error code.
An unknown election type, or no quorum leader, fails the whole request.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.errors import ErrorCode, KafkaError
from devcluster.kafka.handlers.context import DEFAULT_MESSAGES, error_of, require_active_controller, service
from devcluster.kafka.protocol import ApiSpec, RequestContext
from devcluster.kafka.types import ElectionType

ELECT_LEADERS_KEY = 43


async def handle(ctx: RequestContext, request: Any) -> Any:
    model = service(ctx).model
    raw_type = int(getattr(request, "election_type", ElectionType.PREFERRED))
    wanted: dict[str, list[int]] | None = None
    if request.topic_partitions is not None:
        wanted = {}
        for t in request.topic_partitions:
            wanted.setdefault(t.topic, []).extend(t.partitions)

    def whole_request_error(code: int, message: str | None) -> Any:
        # ElectLeadersRequest.getErrorResponse: the error at the top and on every requested partition.
        return ctx.response(
            throttle_time=0,
            error_code=code,
            replica_election_results=[
                {
                    "topic": topic,
                    "partition_result": [
                        {"partition_id": p, "error_code": code, "error_message": message} for p in parts
                    ],
                }
                for topic, parts in (wanted or {}).items()
            ],
        )

    if raw_type not in set(ElectionType):
        return whole_request_error(ErrorCode.INVALID_REQUEST, f"Unknown election type {raw_type}")
    try:
        require_active_controller(ctx)
        results = model.elect_leaders(ElectionType(raw_type), wanted)
    except KafkaError as exc:
        code, message = error_of(ctx, exc)
        return whole_request_error(code, message or DEFAULT_MESSAGES.get(code))

    by_topic: dict[str, list[dict[str, Any]]] = {topic: [] for topic in wanted} if wanted is not None else {}
    for r in results:
        by_topic.setdefault(r.topic, []).append(
            {"partition_id": r.partition, "error_code": int(r.error), "error_message": r.message}
        )
    return ctx.response(
        throttle_time=0,
        error_code=0,
        replica_election_results=[
            {"topic": topic, "partition_result": parts}
            for topic, parts in by_topic.items()
            if parts or wanted is not None
        ],
    )


SPECS = [ApiSpec(ELECT_LEADERS_KEY, 0, 2, frozenset({"broker", "controller"}), handle)]
