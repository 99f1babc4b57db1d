"""DescribeQuorum (key 55): the KRaft quorum of ``__cluster_metadata``-0 as its leader sees it.

Controllers answer it themselves (a controller that is not the leader answers NOT_LEADER_OR_FOLLOWER);
brokers forward it to the active controller (Kafka 3.7+), which here means answering from the model,
or REQUEST_TIMED_OUT when there is no leader to forward to. Asking for any other topic-partition, or
for more than one, gets UNKNOWN_TOPIC_OR_PARTITION on each requested partition.
"""

from __future__ import annotations

from typing import Any

from devcluster.kafka.errors import ErrorCode, KafkaError
from devcluster.kafka.handlers.common import CLUSTER_METADATA_TOPIC
from devcluster.kafka.handlers.context import DEFAULT_MESSAGES, service
from devcluster.kafka.protocol import ApiSpec, RequestContext

DESCRIBE_QUORUM_KEY = 55


def _replica(r: Any) -> dict[str, Any]:
    return {
        "replica_id": r.replica_id,
        "replica_directory_id": r.replica_directory_id,
        "log_end_offset": r.log_end_offset,
        "last_fetch_timestamp": r.last_fetch_timestamp_ms,
        "last_caught_up_timestamp": r.last_caught_up_timestamp_ms,
    }


async def handle(ctx: RequestContext, request: Any) -> Any:
    svc = service(ctx)
    model = svc.model
    topics = request.topics
    valid = (
        len(topics) == 1
        and topics[0].topic_name == CLUSTER_METADATA_TOPIC
        and len(topics[0].partitions) == 1
        and topics[0].partitions[0].partition_index == 0
    )
    if not valid:
        code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ctx.response(
            error_code=0,
            topics=[
                {
                    "topic_name": t.topic_name,
                    "partitions": [
                        {
                            "partition_index": p.partition_index,
                            "error_code": code,
                            "error_message": DEFAULT_MESSAGES[code],
                        }
                        for p in t.partitions
                    ],
                }
                for t in topics
            ],
        )

    leader = model.active_controller_id()
    if ctx.listener == "controller" and leader != svc.node_id:
        code = ErrorCode.NOT_LEADER_OR_FOLLOWER
        return ctx.response(
            error_code=0,
            topics=[
                {
                    "topic_name": CLUSTER_METADATA_TOPIC,
                    "partitions": [
                        {"partition_index": 0, "error_code": code, "error_message": DEFAULT_MESSAGES[code]}
                    ],
                }
            ],
        )
    if leader < 0:
        # The broker's forwarded request found no controller to answer it.
        code = ErrorCode.REQUEST_TIMED_OUT
        return ctx.response(error_code=code, error_message=DEFAULT_MESSAGES[code], topics=())

    try:
        q = model.quorum_state()
    except KafkaError as exc:
        code = int(exc.code)
        return ctx.response(
            error_code=code, error_message=exc.message or DEFAULT_MESSAGES.get(code), topics=()
        )
    nodes = []
    for voter in q.voters:
        endpoints = q.voter_endpoints.get(voter.replica_id, ())
        # A voter is reached on its controller listener(s) only, not on its broker listeners.
        endpoints = tuple(ep for ep in endpoints if ep.name in svc.controller_listener_names) or endpoints
        listeners = []
        try:
            node = model.node(voter.replica_id)
        except KafkaError:
            node = None
        for ep in endpoints:
            host, port = svc.address(node, ep) if node is not None else (ep.host, ep.port)
            listeners.append({"name": ep.name, "host": host, "port": port})
        nodes.append({"node_id": voter.replica_id, "listeners": listeners})
    return ctx.response(
        error_code=0,
        error_message=None,
        topics=[
            {
                "topic_name": CLUSTER_METADATA_TOPIC,
                "partitions": [
                    {
                        "partition_index": 0,
                        "error_code": 0,
                        "error_message": None,
                        "leader_id": q.leader_id,
                        "leader_epoch": q.leader_epoch,
                        "high_watermark": q.high_watermark,
                        "current_voters": [_replica(r) for r in q.voters],
                        "observers": [_replica(r) for r in q.observers],
                    }
                ],
            }
        ],
        nodes=nodes,
    )


SPECS = [ApiSpec(DESCRIBE_QUORUM_KEY, 0, 2, frozenset({"broker", "controller"}), handle)]
