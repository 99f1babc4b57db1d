"""DescribeLogDirs (key 35): this broker's log directories with per-replica sizes and lags.

``topics`` null means every partition the broker hosts; otherwise only the listed partitions (a topic
with an empty partition list contributes none). A failed directory reports KAFKA_STORAGE_ERROR and
no replicas; v4+ carries the volume's total and usable bytes.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.errors import KafkaError
from devcluster.kafka.handlers.context import error_of, service
from devcluster.kafka.protocol import ApiSpec, RequestContext

DESCRIBE_LOG_DIRS_KEY = 35


async def handle_describe_log_dirs(ctx: RequestContext, request: Any) -> Any:
    svc = service(ctx)
    wanted: dict[str, list[int]] | None = None
    if request.topics is not None:
        wanted = {}
        for t in request.topics:
            wanted.setdefault(t.topic, []).extend(t.partitions)
    try:
        dirs = svc.model.describe_log_dirs(svc.node_id, wanted)
    except KafkaError as exc:
        code, _ = error_of(ctx, exc)
        return ctx.response(throttle_time=0, error_code=code, results=())
    results = []
    for d in dirs:
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for r in d.replicas:
            by_topic.setdefault(r.topic, []).append(
                {
                    "partition_index": r.partition,
                    "partition_size": r.size_bytes,
                    "offset_lag": r.offset_lag,
                    "is_future_key": r.is_future,
                }
            )
        results.append(
            {
                "error_code": int(d.error),
                "log_dir": d.path,
                "topics": [{"name": name, "partitions": parts} for name, parts in by_topic.items()],
                "total_bytes": d.total_bytes,
                "usable_bytes": d.usable_bytes,
                "is_cordoned": False,
            }
        )
    return ctx.response(throttle_time=0, error_code=0, results=results)


SPECS = [ApiSpec(DESCRIBE_LOG_DIRS_KEY, 1, 5, frozenset({"broker"}), handle_describe_log_dirs)]
