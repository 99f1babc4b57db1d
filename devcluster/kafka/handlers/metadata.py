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
request), so it builds kio entities directly instead of going through :func:`protocol.build`.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from dataclasses import fields
from typing import Any

from kio.schema.errors import ErrorCode as Wire

from devcluster.kafka.errors import ErrorCode, KafkaError
from devcluster.kafka.handlers.common import (
    AUTHORIZED_OPERATIONS_OMITTED,
    CLUSTER_AUTHORIZED_OPERATIONS,
    INTERNAL_TOPICS,
    TOPIC_AUTHORIZED_OPERATIONS,
    topic_name_is_valid,
)
from devcluster.kafka.handlers.context import NodeService, service
from devcluster.kafka.protocol import ApiSpec, RequestContext, build, response_type
from devcluster.kafka.types import ConfigResourceType, NodeView

METADATA_KEY = 3
DESCRIBE_CLUSTER_KEY = 60

ENDPOINT_BROKER = 1
ENDPOINT_CONTROLLER = 2
_ENDPOINT_NAMES = {ENDPOINT_BROKER: "BROKER", ENDPOINT_CONTROLLER: "CONTROLLER"}

_UUID_ZERO = uuid.UUID(int=0)


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
    controller_id = random.choice(alive).node_id if alive else -1

    include_topic_ops = bool(getattr(request, "include_topic_authorized_operations", False)) and version >= 8
    topic_ops = TOPIC_AUTHORIZED_OPERATIONS if include_topic_ops else AUTHORIZED_OPERATIONS_OMITTED
    cluster_ops = AUTHORIZED_OPERATIONS_OMITTED
    if 8 <= version <= 10 and getattr(request, "include_cluster_authorized_operations", False):
        cluster_ops = CLUSTER_AUTHORIZED_OPERATIONS

    resp_type = response_type(METADATA_KEY, version)
    topic_type = _nested(resp_type, "topics")
    encoder = _PartitionEncoder(svc, version, _nested(topic_type, "partitions"), alive)

    topics_out: list[Any] = []
    if all_topics:
        for topic in model.topics():
            topics_out.append(_topic_entry(topic_type, topic, encoder, topic_ops))
    else:
        names: list[str] = []
        seen: set[str] = set()
        for t in requested:
            topic_id = getattr(t, "topic_id", None)
            if t.name is None and topic_id not in (None, _UUID_ZERO):
                topic = model.topic_by_id(topic_id)
                if topic is None:
                    topics_out.append(
                        build(
                            topic_type,
                            {
                                "error_code": ErrorCode.UNKNOWN_TOPIC_ID,
                                "name": None,
                                "topic_id": topic_id,
                                "partitions": (),
                                "topic_authorized_operations": topic_ops,
                            },
                        )
                    )
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
                topics_out.append(_topic_entry(topic_type, topic, encoder, topic_ops))
                continue
            if not topic_name_is_valid(name):
                error = ErrorCode.INVALID_TOPIC_EXCEPTION
            elif auto_create:
                error = ErrorCode.LEADER_NOT_AVAILABLE
                with contextlib.suppress(KafkaError):  # AutoTopicCreationManager only logs a failure
                    model.create_topic(name)
            else:
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            topics_out.append(
                build(
                    topic_type,
                    {
                        "error_code": error,
                        "name": name,
                        "topic_id": _UUID_ZERO,
                        "is_internal": name in INTERNAL_TOPICS,
                        "partitions": (),
                        "topic_authorized_operations": topic_ops,
                    },
                )
            )

    return build(
        resp_type,
        {
            "throttle_time": 0,
            "brokers": brokers,
            "cluster_id": model.cluster_id,
            "controller_id": controller_id,
            "topics": topics_out,
            "cluster_authorized_operations": cluster_ops,
            "error_code": 0,
        },
    )


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


def _nested(entity_type: type, field_name: str) -> type:
    for f in fields(entity_type):
        if f.name == field_name:
            tp = f.type
            args = getattr(tp, "__args__", ())
            if args and args[0] is not type(None) and hasattr(args[0], "__dataclass_fields__"):
                return args[0]
            for a in args:  # Optional[tuple[X, ...]]
                inner = getattr(a, "__args__", ())
                if inner and hasattr(inner[0], "__dataclass_fields__"):
                    return inner[0]
    raise LookupError(f"{entity_type.__name__} has no entity field {field_name}")


def _topic_entry(topic_type: type, topic: Any, encoder: _PartitionEncoder, topic_ops: int) -> Any:
    return build(
        topic_type,
        {
            "error_code": Wire.none,
            "name": topic.name,
            "topic_id": topic.topic_id,
            "is_internal": topic.is_internal,
            "partitions": encoder.partitions(topic.partitions),
            "topic_authorized_operations": topic_ops,
        },
    )


class _PartitionEncoder:
    """Builds MetadataResponsePartition entities of one version with as little per-partition work as
    possible (this runs once per partition per Metadata request)."""

    def __init__(self, svc: NodeService, version: int, partition_type: type, alive: list[NodeView]) -> None:
        self.cls = partition_type
        names = {f.name for f in fields(partition_type)}
        self.with_epoch = "leader_epoch" in names
        self.with_offline = "offline_replicas" in names
        self.version = version
        registered = [n for n in svc.model.nodes() if n.registered and "broker" in n.roles]
        self.known = {n.node_id for n in registered}
        self.on_listener = {n.node_id for n in registered if svc.endpoint(n) is not None}
        # v0 only lists replicas on live brokers (errorUnavailableEndpoints).
        self.available = {n.node_id for n in alive if svc.endpoint(n) is not None}
        self.missing_listener = Wire.listener_not_found if version >= 6 else Wire.leader_not_available

    def partitions(self, partitions: list[Any]) -> tuple[Any, ...]:
        cls = self.cls
        on_listener = self.on_listener
        none = Wire.none
        out = []
        append = out.append
        if self.version == 0:
            return tuple(self._v0(p) for p in partitions)
        with_epoch, with_offline = self.with_epoch, self.with_offline
        for p in partitions:
            leader = p.leader
            if leader in on_listener:
                error = none
            else:
                error = Wire.leader_not_available if leader not in self.known else self.missing_listener
                leader = -1
            if with_offline:
                append(
                    cls(
                        error_code=error,
                        partition_index=p.index,
                        leader_id=leader,
                        leader_epoch=p.leader_epoch,
                        replica_nodes=p.replicas,
                        isr_nodes=p.isr,
                        offline_replicas=p.offline_replicas,
                    )
                )
            elif with_epoch:
                append(
                    cls(
                        error_code=error,
                        partition_index=p.index,
                        leader_id=leader,
                        leader_epoch=p.leader_epoch,
                        replica_nodes=p.replicas,
                        isr_nodes=p.isr,
                    )
                )
            else:
                append(
                    cls(
                        error_code=error,
                        partition_index=p.index,
                        leader_id=leader,
                        replica_nodes=p.replicas,
                        isr_nodes=p.isr,
                    )
                )
        return tuple(out)

    def _v0(self, p: Any) -> Any:
        available = self.available
        replicas = tuple(r for r in p.replicas if r in available)
        isr = tuple(r for r in p.isr if r in available)
        leader = p.leader
        if leader not in self.on_listener:
            error = Wire.leader_not_available
            leader = -1
        elif len(replicas) < len(p.replicas) or len(isr) < len(p.isr):
            error = Wire.replica_not_available
        else:
            error = Wire.none
        return self.cls(
            error_code=error, partition_index=p.index, leader_id=leader, replica_nodes=replicas, isr_nodes=isr
        )


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
        controller_id = random.choice(alive).node_id if alive else -1
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
