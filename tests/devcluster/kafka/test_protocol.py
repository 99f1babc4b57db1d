"""devcluster's simulated Kafka nodes speak the real wire protocol: driven by kafka-python's
KafkaAdminClient, by librdkafka (kcat) and by raw sockets sending what real clients never should.

One KRaft cluster of three combined broker+controller nodes is served for the whole module, each node
on two loopback listeners (PLAINTEXT for clients, CONTROLLER for the quorum). The nodes advertise pod
DNS names, as in Kubernetes; the address resolver maps them to the loopback ports, which is what
clients must be told in Metadata/DescribeCluster/DescribeQuorum.
"""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource
from kafka.errors import (
    InvalidReplicationFactorError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from kafka.structs import TopicPartition
from kio.serial import entity_reader, entity_writer

from devcluster.kafka.handlers import NodeService, default_registry
from devcluster.kafka.handlers.metadata_encoding import metadata_writer
from devcluster.kafka.model import KafkaClusterModel
from devcluster.kafka.protocol import build, request_type, response_type
from devcluster.kafka.server import KafkaServer
from devcluster.kafka.simclock import SimClock
from devcluster.kafka.types import Endpoint, LogDirSpec, NodeView
from tests.devcluster.kafka.tools import kcat_binary

T = TypeVar("T")

GIB = 1 << 30
NODES = (1, 2, 3)
NAMESPACE = "kafka-proto"
CLUSTER_ID = "ZGV2Y2x1c3Rlci1wcm90bw"


def pod_host(node_id: int) -> str:
    return f"kafka-{node_id}.kafka-headless.{NAMESPACE}.svc.cluster.local"


class ServedCluster:
    """A model plus one KafkaServer per (node, listener), all on an asyncio loop in a thread."""

    def __init__(self, **static_config: str) -> None:
        self.static_overrides = static_config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kafka-proto", daemon=True)
        self.thread.start()
        self.clock = SimClock(manual=True)
        self.model = KafkaClusterModel(CLUSTER_ID, self.clock)
        self.registry = default_registry()
        self.servers: dict[tuple[int, str], KafkaServer] = {}

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the cluster's loop (the model is only touched from there)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def resolve(self, node: NodeView, endpoint: Endpoint) -> tuple[str, int]:
        server = self.servers.get((node.node_id, endpoint.name))
        return ("127.0.0.1", server.port) if server else (endpoint.host, endpoint.port)

    def start(self) -> None:
        async def start_servers() -> None:
            for node_id in NODES:
                for name, listener in (("PLAINTEXT", "broker"), ("CONTROLLER", "controller")):
                    svc = NodeService(
                        self.model, node_id, listener_name=name, advertised_address=self.resolve
                    )
                    server = KafkaServer(svc, self.registry, listener=listener)  # type: ignore[arg-type]
                    await server.start()
                    self.servers[(node_id, name)] = server

        asyncio.run_coroutine_threadsafe(start_servers(), self.loop).result(timeout=30)
        voters = ",".join(f"{n}@{pod_host(n)}:9093" for n in NODES)

        def start_nodes() -> None:
            for node_id in NODES:
                self.model.start_node(
                    node_id,
                    roles=("broker", "controller"),
                    rack=f"zone-{node_id}",
                    endpoints=(
                        Endpoint("PLAINTEXT", pod_host(node_id), 9092),
                        Endpoint("CONTROLLER", pod_host(node_id), 9093),
                    ),
                    log_dirs=(LogDirSpec("/var/lib/kafka/data", 10 * GIB),),
                    static_config={
                        "controller.quorum.voters": voters,
                        "node.id": str(node_id),
                        "process.roles": "broker,controller",
                        "auto.create.topics.enable": "false",
                        "num.partitions": "1",
                        "default.replication.factor": "3",
                        "min.insync.replicas": "2",
                        **self.static_overrides,
                    },
                )
            # Let the quorum elect a leader and the brokers register and unfence.
            self.clock.advance(30)
            self.model.advance_to()

        self.call(start_nodes)

    def run(self, coro_fn: Callable[[], Any]) -> Any:
        """Await ``coro_fn()`` on the cluster's loop (server start/stop)."""
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout=30)

    def port(self, node_id: int = 1, listener: str = "PLAINTEXT") -> int:
        return self.servers[(node_id, listener)].port

    def stop(self) -> None:
        async def stop_servers() -> None:
            await asyncio.gather(*(s.stop() for s in self.servers.values()))

        asyncio.run_coroutine_threadsafe(stop_servers(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[ServedCluster]:
    served = ServedCluster()
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def admin(cluster: ServedCluster) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(
        bootstrap_servers=f"127.0.0.1:{cluster.port()}",
        request_timeout_ms=10_000,
        client_id="ballast-protocol-test",
    )
    try:
        yield client
    finally:
        client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------------- a raw client


class RawConnection:
    """A bare TCP connection speaking the framing by hand (kio for the messages)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def frame(api_key: int, version: int, values: dict[str, Any], correlation_id: int) -> bytes:
        req_type = request_type(api_key, version)
        header_type = req_type.__header_schema__
        buf = io.BytesIO()
        entity_writer(header_type)(
            buf,
            build(
                header_type,
                {
                    "request_api_key": api_key,
                    "request_api_version": version,
                    "correlation_id": correlation_id,
                    "client_id": "raw-test",
                },
            ),
        )
        entity_writer(req_type)(buf, build(req_type, values))
        payload = buf.getvalue()
        return struct.pack(">i", len(payload)) + payload

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read(4))[0]
        return self._read(size)

    def read_response(self, api_key: int, version: int) -> tuple[int, Any]:
        payload = self.read_frame()
        resp_type = response_type(api_key, version)
        header, offset = entity_reader(resp_type.__header_schema__)(payload, 0)
        body, size = entity_reader(resp_type)(payload, offset)
        assert offset + size == len(payload)
        return header.correlation_id, body

    def request(self, api_key: int, version: int, values: dict[str, Any], correlation_id: int = 7) -> Any:
        self.send(self.frame(api_key, version, values, correlation_id))
        got_id, body = self.read_response(api_key, version)
        assert got_id == correlation_id
        return body

    def closed_by_server(self) -> bool:
        """True when the server closed (or reset) the connection instead of answering."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed by server")
            data += chunk
        return data


def api_versions_v3() -> dict[str, Any]:
    return {"client_software_name": "raw-test", "client_software_version": "1.0"}


def assert_server_still_serves(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port())
    try:
        resp = conn.request(18, 3, api_versions_v3())
        assert resp.error_code == 0
    finally:
        conn.close()


# ------------------------------------------------------------------------------ cluster metadata


def test_describe_cluster_advertises_loopback_addresses_of_pod_endpoints(
    cluster: ServedCluster, admin: KafkaAdminClient
) -> None:
    info = admin.describe_cluster()
    assert info["cluster_id"] == CLUSTER_ID
    brokers = {b["broker_id"]: b for b in info["brokers"]}
    assert set(brokers) == set(NODES)
    for node_id, b in brokers.items():
        # Pod DNS names do not resolve outside a cluster: clients get the loopback listener.
        assert (b["host"], b["port"]) == ("127.0.0.1", cluster.port(node_id))
        assert b["rack"] == f"zone-{node_id}"
        assert b["is_fenced"] is False
    assert info["controller_id"] in brokers
    # kafka-python decided from ApiVersions that this is a current (4.x) broker.
    assert admin._manager.broker_version >= (4, 0)


def test_kraft_brokers_report_a_random_alive_broker_as_controller(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port())
    try:
        seen = {conn.request(3, 12, {"topics": []}).controller_id for _ in range(40)}
    finally:
        conn.close()
    # KIP-590: "controller" requests go to any broker; each answer names a random one of them.
    assert seen <= set(NODES) and len(seen) > 1


def test_controller_listener_describes_the_quorum_controllers(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port(2, "CONTROLLER"))
    try:
        resp = conn.request(
            60,
            2,
            {
                "include_cluster_authorized_operations": False,
                "endpoint_type": 2,
                "include_fenced_brokers": False,
            },
        )
        leader = cluster.call(cluster.model.active_controller_id)
        assert resp.error_code == 0 and resp.endpoint_type == 2
        assert resp.controller_id == leader
        assert {(b.broker_id, b.port) for b in resp.brokers} == {
            (n, cluster.port(n, "CONTROLLER")) for n in NODES
        }
        # Asking a controller endpoint for brokers is a mismatch.
        wrong = conn.request(
            60,
            2,
            {
                "include_cluster_authorized_operations": False,
                "endpoint_type": 1,
                "include_fenced_brokers": False,
            },
        )
        assert wrong.error_code == 114  # MISMATCHED_ENDPOINT_TYPE
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------ topics


def test_create_describe_list_and_delete_topics(admin: KafkaAdminClient) -> None:
    name = unique("orders")
    result = admin.create_topics(
        {name: {"num_partitions": 6, "replication_factor": 3, "configs": {"retention.ms": "3600000"}}}
    )
    created = result["topics"][0]
    assert (
        created["name"],
        created["error_code"],
        created["num_partitions"],
        created["replication_factor"],
    ) == (name, 0, 6, 3)
    assert created["configs"]["retention.ms"]["value"] == "3600000"

    [topic] = admin.describe_topics([name])
    assert topic["error_code"] == 0 and len(topic["partitions"]) == 6
    for p in topic["partitions"]:
        assert p["error_code"] == 0
        assert sorted(p["replica_nodes"]) == list(NODES)
        assert p["leader_id"] in p["isr_nodes"]
    assert name in admin.list_topics()

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([name])
    with pytest.raises(InvalidReplicationFactorError):
        admin.create_topics({unique("too-wide"): {"num_partitions": 1, "replication_factor": 5}})

    # Broker defaults (num.partitions=1, default.replication.factor=3) apply to -1.
    defaulted = unique("defaults")
    admin.create_topics([defaulted])
    [d] = admin.describe_topics([defaulted])
    assert len(d["partitions"]) == 1 and len(d["partitions"][0]["replica_nodes"]) == 3

    deleted = admin.delete_topics([name, defaulted])
    assert {t["name"]: t["error_code"] for t in deleted["topics"]} == {name: 0, defaulted: 0}
    assert name not in admin.list_topics()
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([name])


def test_metadata_for_unknown_and_invalid_topics(admin: KafkaAdminClient) -> None:
    topics = {t["name"]: t for t in admin.describe_topics(["no-such-topic", "bad/name"])}
    assert topics["no-such-topic"]["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert topics["bad/name"]["error_code"] == 17  # INVALID_TOPIC_EXCEPTION


def test_create_topics_rejects_duplicates_and_the_metadata_topic(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port())
    try:
        name = unique("dup")
        topic = {"name": name, "num_partitions": 1, "replication_factor": 1, "assignments": (), "configs": ()}
        meta = {**topic, "name": "__cluster_metadata"}
        resp = conn.request(19, 7, {"topics": [topic, topic, meta], "timeout": 5000, "validate_only": False})
        errors = {t.name: (int(t.error_code), t.error_message) for t in resp.topics}
        assert errors[name] == (42, "Duplicate topic name.")
        assert errors["__cluster_metadata"] == (
            42,
            "Creation of internal topic __cluster_metadata is prohibited.",
        )
    finally:
        conn.close()


def test_auto_topic_creation_when_the_broker_allows_it() -> None:
    served = ServedCluster(**{"auto.create.topics.enable": "true"})
    try:
        served.start()
        conn = RawConnection(served.port())
        try:
            name = unique("auto")
            ask = {"topics": [{"name": name, "topic_id": None}], "allow_auto_topic_creation": True}
            [first] = conn.request(3, 12, ask).topics
            # AutoTopicCreationManager creates it and answers LEADER_NOT_AVAILABLE meanwhile.
            assert (first.name, first.error_code) == (name, 5)
            [second] = conn.request(3, 12, ask).topics
            assert second.error_code == 0 and len(second.partitions) == 1
            not_allowed = unique("manual")
            [third] = conn.request(
                3,
                12,
                {"topics": [{"name": not_allowed, "topic_id": None}], "allow_auto_topic_creation": False},
            ).topics
            assert third.error_code == 3
        finally:
            conn.close()
    finally:
        served.stop()


# ----------------------------------------------------------------------------------------- configs


def test_describe_and_alter_topic_and_broker_configs(admin: KafkaAdminClient) -> None:
    name = unique("configs")
    admin.create_topics({name: {"num_partitions": 1, "replication_factor": 3}})

    described = admin.describe_configs([ConfigResource("TOPIC", name)], config_filter="all")
    entries = described["topic"][name]
    assert entries["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"

    assert admin.alter_configs([ConfigResource("TOPIC", name, {"retention.ms": "60000"})]) == {
        "topic": {name: "OK"}
    }
    modified = admin.describe_configs([ConfigResource("TOPIC", name)])["topic"][name]
    assert modified["retention.ms"]["value"] == "60000"
    assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

    # A dynamic broker config, sent to that broker as kafka-python does. Unset throttle rates are not
    # listed by DescribeConfigs (as on a real broker), so kafka-python's pre-check must be skipped.
    assert admin.alter_configs(
        [ConfigResource("BROKER", "2", {"leader.replication.throttled.rate": "1048576"})],
        raise_on_unknown=False,
    ) == {"broker": {"2": "OK"}}
    broker = admin.describe_configs([ConfigResource("BROKER", "2")], config_filter="all")["broker"]["2"]
    assert broker["leader.replication.throttled.rate"]["value"] == "1048576"
    assert broker["leader.replication.throttled.rate"]["config_source"] == "DYNAMIC_BROKER_CONFIG"
    assert broker["process.roles"]["read_only"] is True
    assert broker["process.roles"]["config_source"] == "STATIC_BROKER_CONFIG"

    # Legacy AlterConfigs (key 33) REPLACES the resource's dynamic configs with the ones sent. kafka-python
    # knows this: it reads the current DYNAMIC_TOPIC_CONFIG entries and re-sends them with the change.
    assert admin.alter_configs([ConfigResource("TOPIC", name, {"cleanup.policy": "compact"})],
                               incremental=False) == {"topic": {name: "OK"}}
    both = admin.describe_configs([ConfigResource("TOPIC", name)])["topic"][name]
    assert {k: (both[k]["value"], both[k]["config_source"]) for k in ("cleanup.policy", "retention.ms")} == {
        "cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG"), "retention.ms": ("60000", "DYNAMIC_TOPIC_CONFIG")}
    # A legacy partial reset sends only the keys to keep: what is not sent goes back to its default.
    admin.reset_configs([ConfigResource("TOPIC", name, {"cleanup.policy": None})], incremental=False)
    kept = admin.describe_configs([ConfigResource("TOPIC", name)], config_filter="all")["topic"][name]
    assert (kept["cleanup.policy"]["value"], kept["cleanup.policy"]["config_source"]) == ("delete", "DEFAULT_CONFIG")
    assert (kept["retention.ms"]["value"], kept["retention.ms"]["config_source"]) == ("60000", "DYNAMIC_TOPIC_CONFIG")
    # And an AlterConfigs with no entries at all clears every override.
    admin.reset_configs([ConfigResource("TOPIC", name)], incremental=False)
    cleared = admin.describe_configs([ConfigResource("TOPIC", name)], config_filter="all")["topic"][name]
    assert (cleared["retention.ms"]["value"], cleared["retention.ms"]["config_source"]) == (
        "604800000", "DEFAULT_CONFIG")  # log.retention.hours=168

    # kafka-python ignores per-resource errors here; the wire carries UNKNOWN_TOPIC_OR_PARTITION.
    absent = unique("absent")
    assert admin.describe_configs([ConfigResource("TOPIC", absent)]) == {"topic": {absent: {}}}
    admin.delete_topics([name])


def test_describe_configs_errors_per_resource(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port(1))
    try:
        resp = conn.request(
            32,
            4,
            {
                "resources": [
                    {"resource_type": 2, "resource_name": unique("absent"), "configuration_keys": None},
                    {"resource_type": 4, "resource_name": "1", "configuration_keys": ["process.roles"]},
                ]
            },
        )
        absent, broker = resp.results
        assert absent.error_code == 3 and absent.configs == ()
        assert broker.error_code == 0
        assert [(c.name, c.value, c.read_only) for c in broker.configs] == [
            ("process.roles", "broker,controller", True)
        ]
    finally:
        conn.close()


def test_alter_configs_preprocessing_errors(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port())
    try:
        resource = {
            "resource_type": 2,
            "resource_name": unique("t"),
            "configs": [{"name": "retention.ms", "config_operation": 0, "value": None}],
        }
        dup = {"resource_type": 2, "resource_name": "same", "configs": ()}
        resp = conn.request(44, 1, {"resources": [resource, dup, dup], "validate_only": True})
        errors = [(int(r.error_code), r.error_message) for r in resp.responses]
        assert errors[0] == (42, "Null value not supported for : retention.ms")
        assert errors[1] == errors[2] == (42, "Each resource must appear at most once.")
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------- log dirs


def test_describe_log_dirs_reports_every_broker_with_capacity(admin: KafkaAdminClient) -> None:
    name = unique("logdirs")
    admin.create_topics({name: {"num_partitions": 2, "replication_factor": 3}})
    dirs = admin.describe_log_dirs()
    assert {d["broker"] for d in dirs} == set(NODES)
    for d in dirs:
        [log_dir] = d["log_dirs"]
        assert log_dir["error_code"] == 0 and log_dir["log_dir"] == "/var/lib/kafka/data"
        assert log_dir["total_bytes"] == 10 * GIB and 0 <= log_dir["usable_bytes"] <= 10 * GIB
        parts = {(t["name"], p["partition_index"]) for t in log_dir["topics"] for p in t["partitions"]}
        assert {(name, 0), (name, 1)} <= parts
    admin.delete_topics([name])


# ------------------------------------------------------------------------ reassignment and leaders


def test_reassignment_in_flight_is_listed_and_can_be_cancelled(
    cluster: ServedCluster, admin: KafkaAdminClient
) -> None:
    name = unique("moving")
    admin.create_topics({name: {"assignments": {0: [1]}}})
    # Give the partition data so the copy to the new replica takes (simulated) time; the clock is manual.
    cluster.call(lambda: cluster.model.inflate_partition(name, 0, 5 * GIB))
    tp = TopicPartition(name, 0)

    assert admin.alter_partition_reassignments({tp: [2, 3]}) == {tp: None}
    listed = admin.list_partition_reassignments()
    assert listed[tp]["adding_replicas"] == [2, 3]
    assert listed[tp]["removing_replicas"] == [1]
    assert set(listed[tp]["replicas"]) == {1, 2, 3}
    assert admin.list_partition_reassignments([tp]) == {tp: listed[tp]}

    assert admin.alter_partition_reassignments({tp: None}) == {tp: None}
    assert admin.list_partition_reassignments() == {}
    [topic] = admin.describe_topics([name])
    assert topic["partitions"][0]["replica_nodes"] == [1]

    errors = admin.alter_partition_reassignments({tp: None, TopicPartition(unique("none"), 0): [1]})
    assert errors[tp].__name__ == "NoReassignmentInProgressError"
    admin.delete_topics([name])


def test_preferred_leader_election(admin: KafkaAdminClient) -> None:
    name = unique("elect")
    admin.create_topics({name: {"num_partitions": 2, "replication_factor": 3}})
    response = admin.elect_leaders(0, {name: [0, 1]})
    results = {
        p.partition_id: p.error_code for r in response.replica_election_results for p in r.partition_result
    }
    assert results == {0: 84, 1: 84}  # ELECTION_NOT_NEEDED: leaders are already preferred
    missing = admin.elect_leaders(0, {unique("nope"): [0]}, raise_errors=False)
    assert missing.replica_election_results[0].partition_result[0].error_code == 3
    admin.delete_topics([name])


def test_describe_metadata_quorum_from_a_broker(cluster: ServedCluster, admin: KafkaAdminClient) -> None:
    quorum = admin.describe_metadata_quorum()
    [topic] = quorum["topics"]
    assert topic["topic_name"] == "__cluster_metadata"
    [partition] = topic["partitions"]
    assert partition["error"] is None
    assert partition["leader_id"] in NODES and partition["leader_epoch"] >= 1
    assert {v["replica_id"] for v in partition["current_voters"]} == set(NODES)
    assert partition["high_watermark"] >= 0
    nodes = {n["node_id"]: n["listeners"] for n in quorum["nodes"]}
    assert nodes[2] == [{"name": "CONTROLLER", "host": "127.0.0.1", "port": cluster.port(2, "CONTROLLER")}]


def test_describe_quorum_on_a_follower_controller_and_for_a_wrong_partition(cluster: ServedCluster) -> None:
    leader = cluster.call(cluster.model.active_controller_id)
    follower = next(n for n in NODES if n != leader)
    conn = RawConnection(cluster.port(follower, "CONTROLLER"))
    try:
        topics = [{"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]
        resp = conn.request(55, 2, {"topics": topics})
        assert resp.topics[0].partitions[0].error_code == 6  # NOT_LEADER_OR_FOLLOWER
        wrong = conn.request(
            55, 2, {"topics": [{"topic_name": "orders", "partitions": [{"partition_index": 0}]}]}
        )
        assert wrong.topics[0].partitions[0].error_code == 3
    finally:
        conn.close()


def test_a_stopped_broker_is_fenced_and_its_replicas_reported_offline() -> None:
    served = ServedCluster()
    try:
        served.start()
        name = unique("failover")
        served.call(lambda: served.model.create_topic(name, num_partitions=3, replication_factor=3))
        lonely = unique("lonely")  # its only replica is on node 3: offline once node 3 is fenced
        served.call(lambda: served.model.create_topic(lonely, assignment={0: [3]}))

        # Node 3's process dies: its listeners go away with it, then the controller fences it.
        async def kill_listeners() -> None:
            await asyncio.gather(*(served.servers[(3, n)].stop() for n in ("PLAINTEXT", "CONTROLLER")))

        served.run(kill_listeners)

        def crash() -> None:
            served.model.stop_node(3, graceful=False)
            served.clock.advance(60)  # past broker.session.timeout.ms
            served.model.advance_to()

        served.call(crash)
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{served.port(1)}", request_timeout_ms=10_000)
        try:
            brokers = {b["broker_id"]: b["is_fenced"] for b in admin.describe_cluster()["brokers"]}
            # kafka-python asks for fenced brokers too (DescribeCluster v2, KIP-1073).
            assert brokers == {1: False, 2: False, 3: True}
            [topic] = admin.describe_topics([name])
            for p in topic["partitions"]:
                assert p["error_code"] == 0 and p["leader_id"] in (1, 2)
                assert p["offline_replicas"] == [3] and 3 not in p["isr_nodes"]
                assert sorted(p["replica_nodes"]) == [1, 2, 3]
            # Unclean election is off: the last ISR member stays in the ISR and the partition has no leader.
            [offline] = admin.describe_topics([lonely])
            [p] = offline["partitions"]
            assert p["error_code"] == 5  # LEADER_NOT_AVAILABLE
            assert p["leader_id"] == -1 and p["isr_nodes"] == [3] and p["offline_replicas"] == [3]
            election = admin.elect_leaders(0, {lonely: [0]}, raise_errors=False)
            [result] = [r for t in election.replica_election_results for r in t.partition_result]
            assert (result.partition_id, result.error_code) == (0, 80)  # PREFERRED_LEADER_NOT_AVAILABLE
        finally:
            admin.close()
        conn = RawConnection(served.port(1))
        try:
            listed = conn.request(3, 12, {"topics": None})
            assert sorted(b.node_id for b in listed.brokers) == [1, 2]
        finally:
            conn.close()
    finally:
        served.stop()


# ------------------------------------------------------------------------------ framing and abuse


def test_api_versions_advertises_what_each_listener_serves(cluster: ServedCluster) -> None:
    def ranges(port: int) -> dict[int, tuple[int, int]]:
        conn = RawConnection(port)
        try:
            resp = conn.request(18, 4, api_versions_v3())
        finally:
            conn.close()
        assert resp.error_code == 0
        return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}

    broker = ranges(cluster.port())
    assert broker[3] == (0, 13) and broker[18] == (0, 4) and broker[35] == (1, 5) and broker[55] == (0, 2)
    controller = ranges(cluster.port(1, "CONTROLLER"))
    assert 3 not in controller and 35 not in controller  # Metadata and DescribeLogDirs are broker-only
    assert controller[55] == (0, 2)


def test_unsupported_api_versions_version_gets_v0_with_the_supported_range(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port())
    try:
        # A future client: ApiVersions v9 with a flexible (v2) header and a body we cannot know.
        header = struct.pack(">hhi", 18, 9, 41) + struct.pack(">h", 3) + b"fut" + b"\x00"
        payload = header + b"\x05hello\x02x\x00"
        conn.send(struct.pack(">i", len(payload)) + payload)
        cid, resp = conn.read_response(18, 0)
        assert cid == 41
        assert resp.error_code == 35  # UNSUPPORTED_VERSION
        assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [(18, 0, 4)]
        # The connection stays usable: the client retries with a version we advertise.
        assert conn.request(18, 3, api_versions_v3()).error_code == 0
        bad_name = conn.request(18, 3, {"client_software_name": "-bad-", "client_software_version": "1"})
        assert bad_name.error_code == 42  # INVALID_REQUEST
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("absurd length", struct.pack(">i", 2_000_000_000)),
        ("negative length", struct.pack(">i", -5)),
        ("shorter than a header", struct.pack(">i", 3) + b"\x00\x03\x00"),
        (
            "unknown api key",
            struct.pack(">i", 12) + struct.pack(">hhi", 9999, 0, 1) + b"\xff\xff" + b"\x00" * 2,
        ),
        (
            "unsupported metadata version",
            RawConnection.frame(3, 12, {"topics": None}, 1)[:6]
            + b"\x00\x63"
            + RawConnection.frame(3, 12, {"topics": None}, 1)[8:],
        ),
        (
            "truncated body",
            (lambda f: struct.pack(">i", len(f) - 7) + f[4:-3])(
                RawConnection.frame(
                    19,
                    7,
                    {
                        "topics": [
                            {
                                "name": "x" * 40,
                                "num_partitions": 1,
                                "replication_factor": 1,
                                "assignments": (),
                                "configs": (),
                            }
                        ],
                        "timeout": 1,
                    },
                    1,
                )
            ),
        ),
        ("garbage", struct.pack(">i", 64) + bytes(range(64))),
    ],
)
def test_malformed_input_closes_only_that_connection(cluster: ServedCluster, case: str, data: bytes) -> None:
    bystander = RawConnection(cluster.port())
    conn = RawConnection(cluster.port())
    try:
        conn.send(data)
        assert conn.closed_by_server(), case
        # Other connections and new clients are unaffected.
        assert bystander.request(18, 3, api_versions_v3()).error_code == 0
        assert_server_still_serves(cluster)
    finally:
        conn.close()
        bystander.close()


def test_metadata_is_not_served_on_a_controller_listener(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port(1, "CONTROLLER"))
    try:
        conn.send(RawConnection.frame(3, 12, {"topics": None}, 1))
        assert conn.closed_by_server()
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(cluster: ServedCluster) -> None:
    conn = RawConnection(cluster.port())
    try:
        conn.send(
            RawConnection.frame(18, 3, api_versions_v3(), 101)
            + RawConnection.frame(3, 12, {"topics": None}, 102)
            + RawConnection.frame(60, 1, {"include_cluster_authorized_operations": True}, 103)
            + RawConnection.frame(3, 1, {"topics": None}, 104)
        )
        ids = [
            conn.read_response(18, 3)[0],
            conn.read_response(3, 12)[0],
            conn.read_response(60, 1)[0],
            conn.read_response(3, 1)[0],
        ]
        assert ids == [101, 102, 103, 104]
    finally:
        conn.close()


def test_many_concurrent_clients(cluster: ServedCluster) -> None:
    def one(i: int) -> int:
        conn = RawConnection(cluster.port(NODES[i % len(NODES)]))
        try:
            for j in range(5):
                assert conn.request(3, 12, {"topics": None}, correlation_id=j).cluster_id == CLUSTER_ID
            return i
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert sorted(pool.map(one, range(32))) == list(range(32))


def test_stop_resets_connections_and_restart_keeps_the_port(cluster: ServedCluster) -> None:
    node, listener = 3, "PLAINTEXT"
    server = cluster.servers[(node, listener)]
    port = server.port
    conn = RawConnection(port)
    try:
        assert conn.request(18, 3, api_versions_v3()).error_code == 0
        asyncio.run_coroutine_threadsafe(server.stop(), cluster.loop).result(timeout=10)
        assert conn.closed_by_server()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        conn.close()
        asyncio.run_coroutine_threadsafe(server.start(), cluster.loop).result(timeout=10)
    assert server.port == port
    again = RawConnection(port)
    try:
        assert again.request(18, 3, api_versions_v3()).error_code == 0
    finally:
        again.close()


# -------------------------------------------------------------------------------------- librdkafka


def test_kcat_lists_brokers_and_topics(cluster: ServedCluster, admin: KafkaAdminClient) -> None:
    kcat = kcat_binary()
    name = unique("kcat")
    admin.create_topics({name: {"num_partitions": 3, "replication_factor": 2}})
    out = subprocess.run(
        [kcat, "-L", "-b", f"127.0.0.1:{cluster.port(2)}", "-m", "10"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "3 brokers:" in out
    for node in NODES:
        assert f"broker {node} at 127.0.0.1:{cluster.port(node)}" in out
    assert f'topic "{name}" with 3 partitions:' in out
    admin.delete_topics([name])


# ------------------------------------------------------------------------------------- performance


def test_metadata_encoding_matches_kio_for_every_version() -> None:
    rows = [
        (0, 0, 1, 5, (1, 2, 3), (1, 2), (3,)),
        (5, 1, -1, 2, (2,), (), (2,)),
        (0, 2, 2, 7, tuple(range(130)), tuple(range(127)), ()),
    ]
    topic_id = uuid.uuid4()
    for version in range(14):
        writer = metadata_writer(version)
        version_rows = rows if version else [(*r[:6], ()) for r in rows]
        values: dict[str, Any] = {
            "throttle_time": 7,
            "cluster_id": "cid",
            "controller_id": 2,
            "cluster_authorized_operations": 123,
            "error_code": 0,
            "brokers": [
                {"node_id": 1, "host": "h", "port": 9, "rack": "r"},
                {"node_id": 2, "host": "hé", "port": 10, "rack": None},
            ],
            "topics": [
                {
                    "error_code": 0,
                    "name": "t",
                    "topic_id": topic_id,
                    "is_internal": True,
                    "topic_authorized_operations": 5,
                    "partitions": writer.partitions(iter(version_rows), 3),
                },
                {"error_code": 3, "name": "u", "topic_id": uuid.UUID(int=0), "partitions": ()},
            ],
        }
        fast = writer.body(values)
        values["topics"][0] = {
            **values["topics"][0],
            "partitions": [
                {
                    "error_code": e,
                    "partition_index": i,
                    "leader_id": leader,
                    "leader_epoch": epoch,
                    "replica_nodes": r,
                    "isr_nodes": isr,
                    "offline_replicas": off,
                }
                for e, i, leader, epoch, r, isr, off in version_rows
            ],
        }
        reference = io.BytesIO()
        entity = build(response_type(3, version), values)
        entity_writer(type(entity))(reference, entity)
        assert fast == reference.getvalue(), f"v{version}"


def test_full_metadata_for_20000_partitions_is_fast() -> None:
    served = ServedCluster()
    try:
        served.start()

        def populate() -> None:
            for t in range(20):
                served.model.create_topic(f"bulk-{t:02d}", num_partitions=1000, replication_factor=3)

        served.call(populate)
        conn = RawConnection(served.port())
        try:
            conn.request(3, 12, {"topics": None})  # warm up
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                resp = conn.request(3, 12, {"topics": None})
                best = min(best, time.perf_counter() - start)
        finally:
            conn.close()
        assert sum(len(t.partitions) for t in resp.topics) == 20_000
        # Round trip includes kio decoding the 1 MB response here (the server side is ~10 ms).
        assert best < 0.2, f"full Metadata for 20,000 partitions took {best * 1000:.0f} ms"
    finally:
        served.stop()
