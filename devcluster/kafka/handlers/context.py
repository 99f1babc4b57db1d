"""What a handler knows about the node it runs in: the shared cluster model, its node id, the listener
it serves and how to turn advertised endpoints into addresses a client can reach."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devcluster.kafka.errors import ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.model import KafkaClusterModel
from devcluster.kafka.protocol import RequestContext
from devcluster.kafka.types import Endpoint, NodeView

AddressResolver = Callable[[NodeView, Endpoint], tuple[str, int]]
"""``(node, endpoint) -> (host, port)``: where a client reaches ``node``'s advertised ``endpoint``.

devcluster passes one that maps a pod DNS name to that pod's loopback port; the default
(:func:`own_address`) returns the advertised host and port unchanged."""


def own_address(node: NodeView, endpoint: Endpoint) -> tuple[str, int]:
    return endpoint.host, endpoint.port


# Errors.java default messages, for the places where Kafka sends ``error.message()``.
DEFAULT_MESSAGES: dict[int, str] = {
    ErrorCode.UNKNOWN_SERVER_ERROR: "The server experienced an unexpected error when processing the request.",
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "This server does not host this topic-partition.",
    ErrorCode.NOT_LEADER_OR_FOLLOWER: (
        "For requests intended only for the leader, this error indicates that the broker is not the "
        "current leader. For requests intended for any replica, this error indicates that the broker "
        "is not a replica of the topic partition."
    ),
    ErrorCode.REQUEST_TIMED_OUT: "The request timed out.",
    ErrorCode.NOT_CONTROLLER: "This is not the correct controller for this cluster.",
}


@dataclass
class NodeService:
    """The state a :class:`~devcluster.kafka.server.KafkaServer` hands its handlers (``ctx.server``).

    ``listener_name`` is the advertised listener this server is (e.g. ``PLAINTEXT``, ``CONTROLLER``):
    Metadata and DescribeCluster list each broker's endpoint of that name, as a real broker answers
    with the endpoints of the listener the request arrived on. ``advertised_address`` maps an
    advertised endpoint to where clients reach it (see :data:`AddressResolver`).
    """

    model: KafkaClusterModel
    node_id: int
    listener_name: str = "PLAINTEXT"
    advertised_address: AddressResolver = own_address
    controller_listener_names: tuple[str, ...] = ("CONTROLLER",)
    """``controller.listener.names``: the endpoints a voter is reached on (DescribeQuorum v2 ``nodes``)."""

    def endpoint(self, node: NodeView, listener_name: str | None = None) -> Endpoint | None:
        name = listener_name or self.listener_name
        for ep in node.endpoints:
            if ep.name == name:
                return ep
        return None

    def address(self, node: NodeView, endpoint: Endpoint) -> tuple[str, int]:
        return self.advertised_address(node, endpoint)


def service(ctx: RequestContext) -> NodeService:
    svc = ctx.server
    assert isinstance(svc, NodeService), f"handlers need a NodeService, got {type(svc).__name__}"
    return svc


def error_of(ctx: RequestContext, exc: KafkaError) -> tuple[int, str | None]:
    """The (code, message) to put on the wire for a model failure.

    The model reports a missing quorum leader as REQUEST_TIMED_OUT (what a broker answers when its
    forwarded request times out); a controller endpoint answers NOT_CONTROLLER instead.
    """
    if isinstance(exc, NoActiveController) and ctx.listener == "controller":
        return ErrorCode.NOT_CONTROLLER, None
    return int(exc.code), exc.message


def require_active_controller(ctx: RequestContext) -> None:
    """On a controller listener, metadata writes are only accepted by the active controller (an
    inactive one answers NOT_CONTROLLER and the client looks for the leader). Brokers forward, so
    this is a no-op on broker listeners."""
    if ctx.listener != "controller":
        return
    svc = service(ctx)
    if svc.model.active_controller_id() != svc.node_id:
        raise KafkaError(ErrorCode.NOT_CONTROLLER, None)
