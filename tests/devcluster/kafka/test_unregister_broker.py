"""UnregisterBroker (API key 64) on devcluster's simulated KRaft nodes, sent with the operator's kafka-python
message classes (``activities.kafka_schemas``) over a plain socket: a stopped broker's registration goes, an
unknown id is BROKER_ID_NOT_REGISTERED, a live broker is unregistered as Kafka 3.9 does (it stays out until it
restarts), only the active controller accepts it on a controller listener, and ApiVersions advertises it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.protocol.metadata import ApiVersionsRequest
from kafka.protocol.parser import KafkaProtocol

from activities.kafka_schemas import UnregisterBrokerRequest, UnregisterBrokerResponse
from tests.devcluster.kafka.test_protocol import ServedCluster, unique

NONE, NOT_CONTROLLER, BROKER_ID_NOT_REGISTERED = 0, 41, 102


def send(port: int, request: Any) -> Any:
    """One request on a fresh connection to 127.0.0.1:``port``; the decoded response."""
    proto = KafkaProtocol(client_id="unregister-test")
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        proto.send_request(request)
        sock.sendall(proto.send_bytes())
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            responses = proto.receive_bytes(data)
            if responses:
                return responses[0][1]
    finally:
        sock.close()


def unregister(port: int, broker_id: int) -> Any:
    response = send(port, UnregisterBrokerRequest(version=0, broker_id=broker_id))
    assert isinstance(response, UnregisterBrokerResponse)
    assert response.throttle_time_ms == 0 and response.error_message is None  # the controller sends only a code
    return response.error_code


@pytest.fixture
def served() -> Iterator[ServedCluster]:
    cluster = ServedCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def brokers(served: ServedCluster) -> dict[int, bool]:
    """broker id -> fenced, as DescribeCluster (v2: fenced brokers included) reports them."""
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{served.port(1)}", request_timeout_ms=10_000)
    try:
        return {b["broker_id"]: b["is_fenced"] for b in admin.describe_cluster()["brokers"]}
    finally:
        admin.close()


def test_api_versions_advertises_unregister_broker_on_both_listeners(served: ServedCluster) -> None:
    for listener in ("PLAINTEXT", "CONTROLLER"):
        response = send(served.port(1, listener), ApiVersionsRequest(version=3, client_software_name="test",
                                                                     client_software_version="1"))
        ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        assert ranges[UnregisterBrokerRequest.API_KEY] == (0, 0)


def test_a_stopped_broker_is_unregistered_and_an_unknown_id_is_not_registered(served: ServedCluster) -> None:
    topic = unique("drained")
    served.call(lambda: served.model.create_topic(topic, num_partitions=2, replication_factor=3))
    served.call(lambda: served.model.stop_node(3, graceful=True))
    assert brokers(served) == {1: False, 2: False, 3: True}

    assert unregister(served.port(1), 3) == NONE
    assert brokers(served) == {1: False, 2: False}  # gone, not merely fenced
    assert [e.node for e in served.call(served.model.history) if e.kind == "broker_unregistered"] == [3]
    # Again (an operator retrying), and ids that never were brokers: BROKER_ID_NOT_REGISTERED.
    assert unregister(served.port(2), 3) == BROKER_ID_NOT_REGISTERED
    assert unregister(served.port(1), 42) == BROKER_ID_NOT_REGISTERED
    # Its replicas stay assigned (offline): unregistering does not reassign anything.
    state = served.call(lambda: served.model.topic(topic))
    assert state is not None and all(3 in p.replicas for p in state.partitions)
    assert all(3 not in p.isr for p in state.partitions)

    # Restarted, the node registers anew.
    def restart() -> None:
        view = served.model.node(3)
        served.model.start_node(3, roles=view.roles, rack=view.rack, endpoints=view.endpoints,
                                log_dirs=view.log_dirs, static_config=served.model._configs.static[3])
        served.clock.advance(5)
        served.model.advance_to()

    served.call(restart)
    assert brokers(served) == {1: False, 2: False, 3: False}


def test_a_live_broker_is_unregistered_and_stays_out_until_it_restarts(served: ServedCluster) -> None:
    topic = unique("live")
    served.call(lambda: served.model.create_topic(topic, num_partitions=3, replication_factor=3))
    assert unregister(served.port(1), 2) == NONE
    assert brokers(served) == {1: False, 3: False}
    state = served.call(lambda: served.model.topic(topic))
    assert state is not None
    for p in state.partitions:
        assert 2 not in p.isr and p.leader in (1, 3) and sorted(p.replicas) == [1, 2, 3]  # assignments kept

    # Its process keeps running, but its heartbeats fail (stale epoch): it does not register again...
    def later() -> None:
        served.clock.advance(60)
        served.model.advance_to()

    served.call(later)
    view = served.call(lambda: served.model.node(2))
    assert view.running and not view.registered
    assert brokers(served) == {1: False, 3: False}
    assert unregister(served.port(3), 2) == BROKER_ID_NOT_REGISTERED


def test_controller_listener_only_the_active_controller_accepts_it(served: ServedCluster) -> None:
    leader = served.call(served.model.active_controller_id)
    follower = next(n for n in (1, 2, 3) if n != leader)
    assert unregister(served.port(follower, "CONTROLLER"), 42) == NOT_CONTROLLER
    assert unregister(served.port(leader, "CONTROLLER"), 42) == BROKER_ID_NOT_REGISTERED
