"""Metadata (key 3) and DescribeCluster (key 60), answered like a KRaft broker's metadata cache.

- Brokers: the registered, unfenced brokers that have an endpoint on this server's listener, at the
  address the resolver gives for that endpoint (clients connect to what Metadata advertises).
- ``controller_id``: KRaft brokers report a *random alive broker* (KIP-590: clients send "controller"
  requests to any broker, which forwards them); a controller listener reports the quorum leader.
- Partitions: LEADER_NOT_AVAILABLE with leader -1 when offline; LISTENER_NOT_FOUND (v6+) when the
  leader has no endpoint on this listener; v0 drops unavailable replicas and flags
  REPLICA_NOT_AVAILABLE. Offline replicas come from the model.
- Unknown topics: UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for illegal names), unless the
  client allows auto-creation and ``auto.create.topics.enable`` is true: then the topic is created with
  the broker defaults and reported as LEADER_NOT_AVAILABLE, as AutoTopicCreationManager does.

The partition loop is the hot path (a 20,000-partition cluster answers every client's full Metadata
request), so responses are written by :mod:`.metadata_encoding` straight from the model's partitions.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from devcluster.kafka.errors import ErrorCode, KafkaError
from devcluster.kafka.handlers.common import (
    AUTHORIZED_OPERATIONS_OMITTED,
    CLUSTER_AUTHORIZED_OPERATIONS,
    INTERNAL_TOPICS,
    TOPIC_AUTHORIZED_OPERATIONS,
    topic_name_is_valid,
)
from devcluster.kafka.handlers.context import NodeService, service
from devcluster.kafka.handlers.metadata_encoding import metadata_writer
from devcluster.kafka.protocol import ApiSpec, EncodedResponse, RequestContext
from devcluster.kafka.types import ConfigResourceType, NodeView

METADATA_KEY = 3
DESCRIBE_CLUSTER_KEY = 60

ENDPOINT_BROKER = 1
ENDPOINT_CONTROLLER = 2
_ENDPOINT_NAMES = {ENDPOINT_BROKER: "BROKER", ENDPOINT_CONTROLLER: "CONTROLLER"}

_UUID_ZERO = uuid.UUID(int=0)

Row = tuple[int, int, int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]
"""(error, partition index, leader, leader epoch, replicas, isr, offline replicas)."""


# ------------------------------------------------------------------------------------------- Metadata


def _listener_brokers(svc: NodeService, nodes: list[NodeView]) -> list[tuple[NodeView, str, int]]:
    out = []
    for node in nodes:
        ep = svc.endpoint(node)
        if ep is not None:
            host, port = svc.address(node, ep)
            out.append((node, host, port))
    return out


async def handle_metadata(ctx: RequestContext, request: Any) -> Any:
    svc = service(ctx)
    model = svc.model
    version = ctx.version
    requested = request.topics
    all_topics = requested is None or (version == 0 and not requested)

    if not all_topics and version < 12:
        for t in requested:
            # Topic ids in requests are only supported from v12 (KafkaApis throws InvalidRequest,
            # answered with getErrorResponse).
            if getattr(t, "name", None) is None or getattr(t, "topic_id", None) not in (None, _UUID_ZERO):
                return _metadata_error_response(ctx, request, ErrorCode.INVALID_REQUEST)

    alive = model.alive_brokers()
    listed = _listener_brokers(svc, alive)
    brokers = [{"node_id": n.node_id, "host": host, "port": port, "rack": n.rack} for n, host, port in listed]
    # A random alive broker stands in for the controller (KRaftMetadataCache.getRandomAliveBrokerId).
    controller_id = model.metadata_controller_id()

    include_topic_ops = bool(getattr(request, "include_topic_authorized_operations", False)) and version >= 8
    topic_ops = TOPIC_AUTHORIZED_OPERATIONS if include_topic_ops else AUTHORIZED_OPERATIONS_OMITTED
    cluster_ops = AUTHORIZED_OPERATIONS_OMITTED
    if 8 <= version <= 10 and getattr(request, "include_cluster_authorized_operations", False):
        cluster_ops = CLUSTER_AUTHORIZED_OPERATIONS

    writer = metadata_writer(version)
    rows = _PartitionRows(svc, version, alive)

    def existing(topic: Any) -> dict[str, Any]:
        parts = topic.partitions
        return {
            "error_code": 0,
            "name": topic.name,
            "topic_id": topic.topic_id,
            "is_internal": topic.is_internal,
            "partitions": writer.partitions(rows.rows(parts), len(parts)),
            "topic_authorized_operations": topic_ops,
        }

    def missing(error: int, name: str | None, topic_id: uuid.UUID) -> dict[str, Any]:
        return {
            "error_code": error,
            "name": name,
            "topic_id": topic_id,
            "is_internal": name in INTERNAL_TOPICS,
            "partitions": (),
            "topic_authorized_operations": topic_ops,
        }

    topics_out: list[dict[str, Any]] = []
    if all_topics:
        topics_out = [existing(topic) for topic in model.topics()]
    else:
        names: list[str] = []
        seen: set[str] = set()
        for t in requested:
            topic_id = getattr(t, "topic_id", None)
            if t.name is None and topic_id not in (None, _UUID_ZERO):
                topic = model.topic_by_id(topic_id)
                if topic is None:
                    topics_out.append(missing(ErrorCode.UNKNOWN_TOPIC_ID, None, topic_id))
                    continue
                name = topic.name
            else:
                name = t.name
            if name not in seen:
                seen.add(name)
                names.append(name)
        auto_create = (
            version >= 4
            and bool(getattr(request, "allow_auto_topic_creation", False))
            and _auto_create_enabled(svc)
        )
        for name in names:
            topic = model.topic(name)
            if topic is not None:
                topics_out.append(existing(topic))
                continue
            if not topic_name_is_valid(name):
                error = ErrorCode.INVALID_TOPIC_EXCEPTION
            elif auto_create:
                error = ErrorCode.LEADER_NOT_AVAILABLE
                with contextlib.suppress(KafkaError):  # AutoTopicCreationManager only logs a failure
                    model.create_topic(name)
            else:
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            topics_out.append(missing(error, name, _UUID_ZERO))

    body = writer.body(
        {
            "throttle_time": 0,
            "brokers": brokers,
            "cluster_id": model.cluster_id,
            "controller_id": controller_id,
            "topics": topics_out,
            "cluster_authorized_operations": cluster_ops,
            "error_code": 0,
        }
    )
    return EncodedResponse(writer.response_cls, body)


def _metadata_error_response(ctx: RequestContext, request: Any, error: int) -> Any:
    # MetadataRequest.getErrorResponse: every requested topic carries the error, no brokers.
    return ctx.response(
        throttle_time=0,
        brokers=(),
        topics=[
            {
                "error_code": error,
                "name": t.name or "",
                "topic_id": getattr(t, "topic_id", None) or _UUID_ZERO,
                "is_internal": False,
                "partitions": (),
            }
            for t in request.topics or ()
        ],
    )


def _auto_create_enabled(svc: NodeService) -> bool:
    try:
        entries = svc.model.describe_configs(
            ConfigResourceType.BROKER,
            str(svc.node_id),
            ["auto.create.topics.enable"],
            handling_node=svc.node_id,
        )
    except KafkaError:
        return False
    return any(e.name == "auto.create.topics.enable" and (e.value or "").lower() == "true" for e in entries)


class _PartitionRows:
    """Turns model partitions into wire rows the way KRaftMetadataCache.getPartitionMetadata does."""

    def __init__(self, svc: NodeService, version: int, alive: list[NodeView]) -> None:
        self.version = version
        registered = [n for n in svc.model.nodes() if n.registered and "broker" in n.roles]
        self.known = {n.node_id for n in registered}
        self.on_listener = {n.node_id for n in registered if svc.endpoint(n) is not None}
        # v0 only lists replicas on live brokers (errorUnavailableEndpoints).
        self.available = {n.node_id for n in alive if svc.endpoint(n) is not None}
        self.missing_listener = (
            ErrorCode.LISTENER_NOT_FOUND if version >= 6 else ErrorCode.LEADER_NOT_AVAILABLE
        )

    def rows(self, partitions: list[Any]) -> Iterator[Row]:
        if self.version == 0:
            yield from map(self._v0, partitions)
            return
        on_listener, known, missing_listener = self.on_listener, self.known, self.missing_listener
        for p in partitions:
            leader = p.leader
            if leader in on_listener:
                yield 0, p.index, leader, p.leader_epoch, p.replicas, p.isr, p.offline_replicas
            else:
                error = ErrorCode.LEADER_NOT_AVAILABLE if leader not in known else missing_listener
                yield error, p.index, -1, p.leader_epoch, p.replicas, p.isr, p.offline_replicas

    def _v0(self, p: Any) -> Row:
        available = self.available
        replicas = tuple(r for r in p.replicas if r in available)
        isr = tuple(r for r in p.isr if r in available)
        leader = p.leader
        if leader not in self.on_listener:
            error, leader = ErrorCode.LEADER_NOT_AVAILABLE, -1
        elif len(replicas) < len(p.replicas) or len(isr) < len(p.isr):
            error = ErrorCode.REPLICA_NOT_AVAILABLE
        else:
            error = ErrorCode.NONE
        return error, p.index, leader, p.leader_epoch, replicas, isr, ()


# ------------------------------------------------------------------------------------ DescribeCluster


async def handle_describe_cluster(ctx: RequestContext, request: Any) -> Any:
    svc = service(ctx)
    model = svc.model
    version = ctx.version
    expected = ENDPOINT_CONTROLLER if ctx.listener == "controller" else ENDPOINT_BROKER
    requested = int(getattr(request, "endpoint_type", ENDPOINT_BROKER))
    if requested not in _ENDPOINT_NAMES:
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.INVALID_REQUEST if version == 0 else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"Unsupported endpoint type {requested}",
        )
    if requested != expected:
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.INVALID_REQUEST if version == 0 else ErrorCode.MISMATCHED_ENDPOINT_TYPE,
            error_message=(
                f"The request was sent to an endpoint of type {_ENDPOINT_NAMES[expected]}, "
                f"but we wanted an endpoint of type {_ENDPOINT_NAMES[requested]}"
            ),
        )

    if expected == ENDPOINT_BROKER:
        alive = model.alive_brokers()
        nodes = list(alive)
        if getattr(request, "include_fenced_brokers", False):
            alive_ids = {n.node_id for n in alive}
            nodes += [
                n
                for n in model.nodes()
                if "broker" in n.roles and n.registered and n.fenced and n.node_id not in alive_ids
            ]
            nodes.sort(key=lambda n: n.node_id)
        controller_id = model.metadata_controller_id()
    else:
        nodes = model.controllers()
        controller_id = model.active_controller_id()
    listed = _listener_brokers(svc, nodes)
    if controller_id not in {n.node_id for n, _, _ in listed}:
        controller_id = -1  # AuthHelper.computeDescribeClusterResponse: never name an unlisted node
    cluster_ops = (
        CLUSTER_AUTHORIZED_OPERATIONS
        if request.include_cluster_authorized_operations
        else AUTHORIZED_OPERATIONS_OMITTED
    )
    return ctx.response(
        throttle_time=0,
        error_code=0,
        error_message=None,
        endpoint_type=expected,
        cluster_id=model.cluster_id,
        controller_id=controller_id,
        brokers=[
            {"broker_id": n.node_id, "host": host, "port": port, "rack": n.rack, "is_fenced": n.fenced}
            for n, host, port in listed
        ],
        cluster_authorized_operations=cluster_ops,
    )


SPECS = [
    ApiSpec(METADATA_KEY, 0, 13, frozenset({"broker"}), handle_metadata),
    ApiSpec(DESCRIBE_CLUSTER_KEY, 0, 2, frozenset({"broker", "controller"}), handle_describe_cluster),
]
