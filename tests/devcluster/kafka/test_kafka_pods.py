"""Kafka pods in devcluster: plain StatefulSets of the apache/kafka image become a simulated KRaft cluster.

The cluster is written here, as a user would write it for the real image (no operator): a ConfigMap of
shared ``KAFKA_*`` settings, three controllers and four brokers as StatefulSets with headless Services,
node ids from the ``apps.kubernetes.io/pod-index`` label (the brokers' set starts its ordinals at 100),
advertised listeners naming the pods' DNS names. Everything after that goes through real clients:
kafka-python's KafkaAdminClient bootstrapping through a ClusterIP Service's loopback port, kcat, the
``kubernetes`` client and the ``ballast devcluster kafka`` CLI.

Later tests change the cluster the way operations do: a broker pod killed (grace 0) and one deleted, the
active controller's pod deleted while the nodes are cordoned, a claim expanded online, a fifth broker with
two log dirs whose disks fail and come back (driven by the CLI), and last a second cluster of combined-mode
``confluentinc/cp-kafka`` pods.

One devcluster serves the whole module; the simulation clock runs 20x faster than the wall clock (100x
while a reassignment copies), so simulated minutes take seconds.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource
from kafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, UnknownBrokerIdError
from kafka.structs import TopicPartition
from kubernetes import client

from devcluster.cluster import DevClusterThread
from tests.conftest import wait_for
from tests.devcluster.kafka.tools import (
    LOOPBACK,
    bootstrap_address,
    headless,
    kafka_devcluster,
    kcat_binary,
    pod_ready,
)

T = TypeVar("T")
NS = "kafka"
CLUSTER_ID = "Zm9vYmFyLWRldmNsdXN0ZXI"
CONTROLLERS = (0, 1, 2)
BROKERS = (100, 101, 102, 103)
GIB = 1 << 30
MIB = 1 << 20
SPEED = 20.0


def voters() -> str:
    return ",".join(f"{n}@kafka-controller-{n}.kafka-controller.{NS}.svc.cluster.local:9093" for n in CONTROLLERS)


def statefulset(name: str, replicas: int, start: int, env: list[dict[str, Any]], port: int, storage: str,
                probe: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "ordinals": {"start": start},
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "kafka",
                        "image": "apache/kafka:3.9.1",
                        "envFrom": [{"configMapRef": {"name": "kafka-common"}}],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "KAFKA_NODE_ID", "valueFrom": {"fieldRef": {
                                "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
                            *env,
                        ],
                        "ports": [{"name": "kafka", "containerPort": port}],
                        "readinessProbe": probe,
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/kafka/data"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
            }],
        },
    }


@dataclass
class KafkaEnv:
    dc: DevClusterThread
    core: client.CoreV1Api
    apps: client.AppsV1Api
    kubeconfig: Path
    admin: KafkaAdminClient

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        return self.dc.call(lambda c: c.kafka.control(action, **params))

    def on_loop(self, fn: Any) -> Any:
        """Run ``fn(model)`` on the devcluster's loop (the model lives there)."""
        return self.dc.call(lambda c: fn(c.kafka.model(CLUSTER_ID)))

    def pod_loopback(self, name: str) -> dict[str, str]:
        pod = self.core.read_namespaced_pod(name, NS)
        return json.loads((pod.metadata.annotations or {}).get(LOOPBACK, "{}"))

    def retry(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` retried while the client's view of the brokers is stale: kafka-python does not retry a
        request whose connection a stopping broker broke, nor one for a broker its cached metadata does
        not list yet (a client of a real cluster sees the same)."""
        result: list[T] = []

        def attempt() -> bool:
            try:
                result.append(fn())
            except (KafkaConnectionError, NodeNotReadyError, UnknownBrokerIdError):
                return False
            return True

        wait_for(attempt, timeout=10, message=what)
        return result[0]

    def topic(self, name: str) -> dict[str, Any]:
        [topic] = self.retry(lambda: self.admin.describe_topics([name]), f"describe_topics({name})")
        return topic


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaEnv]:
    kubeconfig = tmp_path_factory.mktemp("kafka-pods") / "kubeconfig"
    with kafka_devcluster(kubeconfig) as (dc, core, apps):
        dc.call(lambda c: c.kafka.control("speed", speed=SPEED))
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_config_map(NS, {"metadata": {"name": "kafka-common"}, "data": {
            "CLUSTER_ID": CLUSTER_ID,
            "KAFKA_CONTROLLER_QUORUM_VOTERS": voters(),
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
            "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
            "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
            "KAFKA_MIN_INSYNC_REPLICAS": "2",
            "KAFKA_NUM_PARTITIONS": "3",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
            "KAFKA_AUTO_LEADER_REBALANCE_ENABLE": "false",
        }})
        core.create_namespaced_service(NS, headless("kafka-controller", 9093))
        core.create_namespaced_service(NS, headless("kafka-broker", 9092))
        core.create_namespaced_service(NS, {"metadata": {"name": "kafka-bootstrap"}, "spec": {
            "selector": {"app": "kafka-broker"}, "ports": [{"name": "kafka", "port": 9092}]}})
        apps.create_namespaced_stateful_set(NS, statefulset(
            "kafka-controller", 3, 0,
            [{"name": "KAFKA_PROCESS_ROLES", "value": "controller"},
             {"name": "KAFKA_LISTENERS", "value": "CONTROLLER://:9093"}],
            9093, "1Gi", {"tcpSocket": {"port": 9093}}))
        apps.create_namespaced_stateful_set(NS, statefulset(
            "kafka-broker", 4, 100,
            [{"name": "KAFKA_PROCESS_ROLES", "value": "broker"},
             {"name": "KAFKA_ADVERTISED_LISTENERS",
              "value": f"PLAINTEXT://$(POD_NAME).kafka-broker.{NS}.svc.cluster.local:9092"}],
            9092, "10Gi",
            {"exec": {"command": ["/opt/kafka/bin/kafka-broker-api-versions.sh", "--bootstrap-server",
                                  "localhost:9092"]}}))
        for name in [*(f"kafka-controller-{n}" for n in CONTROLLERS), *(f"kafka-broker-{n}" for n in BROKERS)]:
            wait_for(lambda name=name: pod_ready(core, name), timeout=20, message=f"{name} Ready")

        address = wait_for(lambda: bootstrap_address(core, NS), message="the bootstrap Service's loopback port")
        # A short metadata max age: the client notices brokers that come back within the test's time.
        admin = KafkaAdminClient(bootstrap_servers=str(address), request_timeout_ms=10_000, metadata_max_age_ms=500)
        try:
            yield KafkaEnv(dc, core, apps, kubeconfig, admin)
        finally:
            admin.close()


# ----------------------------------------------------------------------------------------- cluster


def test_describe_cluster_lists_the_brokers_at_their_pods_loopback_addresses(env: KafkaEnv) -> None:
    info = env.admin.describe_cluster()
    assert info["cluster_id"] == CLUSTER_ID
    brokers = {b["broker_id"]: (b["host"], b["port"]) for b in info["brokers"]}
    assert set(brokers) == set(BROKERS)
    for node in BROKERS:
        # Advertised as kafka-broker-<n>.kafka-broker.kafka.svc.cluster.local:9092; clients get the
        # loopback port devcluster published for that pod's port 9092.
        host, port = env.pod_loopback(f"kafka-broker-{node}")["9092"].split(":")
        assert brokers[node] == (host, int(port))
    assert info["controller_id"] in brokers


def test_describe_metadata_quorum_has_three_voters_and_a_leader(env: KafkaEnv) -> None:
    quorum = env.admin.describe_metadata_quorum()
    [partition] = quorum["topics"][0]["partitions"]
    assert partition["error"] is None
    assert {v["replica_id"] for v in partition["current_voters"]} == set(CONTROLLERS)
    assert partition["leader_id"] in CONTROLLERS
    nodes = {n["node_id"]: n["listeners"] for n in quorum["nodes"]}
    for node in CONTROLLERS:
        [listener] = nodes[node]
        host, port = env.pod_loopback(f"kafka-controller-{node}")["9093"].split(":")
        assert (listener["name"], listener["host"], listener["port"]) == ("CONTROLLER", host, int(port))


def test_create_and_describe_topics_with_the_brokers_defaults(env: KafkaEnv) -> None:
    env.admin.create_topics(["orders"])  # num.partitions=3, default.replication.factor=3 from the env
    topic = env.topic("orders")
    assert len(topic["partitions"]) == 3
    for p in topic["partitions"]:
        assert len(p["replica_nodes"]) == 3 and set(p["replica_nodes"]) <= set(BROKERS)
        assert sorted(p["isr_nodes"]) == sorted(p["replica_nodes"])
        assert p["leader_id"] == p["replica_nodes"][0]
    configs = env.admin.describe_configs([ConfigResource("BROKER", "101")], config_filter="all")["broker"]["101"]
    assert configs["min.insync.replicas"]["value"] == "2"
    assert configs["min.insync.replicas"]["config_source"] == "STATIC_BROKER_CONFIG"


def test_describe_log_dirs_reports_the_pvc_capacity(env: KafkaEnv) -> None:
    pvc = env.core.read_namespaced_persistent_volume_claim("data-kafka-broker-102", NS)
    assert pvc.status.capacity["storage"] == "10Gi"
    dirs = {d["broker"]: d["log_dirs"] for d in env.admin.describe_log_dirs()}
    assert set(dirs) == set(BROKERS)
    for log_dirs in dirs.values():
        [log_dir] = log_dirs
        assert log_dir["log_dir"] == "/var/lib/kafka/data" and log_dir["error_code"] == 0
        assert log_dir["total_bytes"] == 10 * GIB


# ------------------------------------------------------------------------------------ reassignment


def test_throttled_reassignment_runs_to_completion(env: KafkaEnv) -> None:
    tp = TopicPartition("moving", 0)
    env.admin.create_topics({"moving": {"assignments": {0: [100, 101]}}})
    env.control("skew", cluster=CLUSTER_ID, topic="moving", partition=0, add_bytes="2GiB")
    # The follower brokers' throttle, as kafka-reassign-partitions.sh --throttle sets it. (The rate is not
    # listed by DescribeConfigs until set - true of a real broker too - so kafka-python's pre-check must
    # be skipped: raise_on_unknown=False.)
    throttle = 50 * MIB
    env.admin.alter_configs(
        [ConfigResource("BROKER", str(b), {"follower.replication.throttled.rate": str(throttle)}) for b in (102, 103)]
        + [ConfigResource("TOPIC", "moving", {"follower.replication.throttled.replicas": "0:102,0:103"})],
        incremental=True, raise_on_unknown=False)

    assert env.admin.alter_partition_reassignments({tp: [102, 103]}) == {tp: None}
    listed = env.admin.list_partition_reassignments()[tp]
    assert listed["adding_replicas"] == [102, 103] and listed["removing_replicas"] == [100, 101]
    assert set(listed["replicas"]) == {100, 101, 102, 103}
    env.control("speed", speed=100)
    try:
        wait_for(lambda: not env.admin.list_partition_reassignments(), timeout=10, message="reassignment done")
    finally:
        env.control("speed", speed=SPEED)
    [p] = env.topic("moving")["partitions"]
    assert p["replica_nodes"] == [102, 103] and sorted(p["isr_nodes"]) == [102, 103]
    history = env.on_loop(lambda m: [e for e in m.history() if e.topic == "moving"])
    started = next(e.time for e in history if e.kind == "reassignment_started")
    completed = next(e.time for e in history if e.kind == "reassignment_completed")
    # 2 GiB at 50 MiB/s per follower: the throttle, not the 100 MiB/s replication rate, bounds the copy.
    assert 2 * GIB / throttle <= completed - started <= 1.5 * 2 * GIB / throttle


def test_elect_leaders_when_the_preferred_replicas_lead_already(env: KafkaEnv) -> None:
    env.admin.create_topics({"elect": {"assignments": {0: [101, 102, 103]}}})
    response = env.admin.elect_leaders(0, {"elect": [0]}, raise_errors=False)
    [result] = [p for r in response.replica_election_results for p in r.partition_result]
    assert result.error_code == 84  # ELECTION_NOT_NEEDED


# ------------------------------------------------------------------------------ broker restart


def test_deleting_a_broker_pod_shrinks_isrs_and_it_rejoins_after_catching_up(env: KafkaEnv) -> None:
    env.admin.create_topics({"busy": {"assignments": {0: [101, 100, 102], 1: [101, 102, 103], 2: [101, 103, 100]}}})
    env.control("load", cluster=CLUSTER_ID, topic="busy", bytes_per_sec="30MiB")
    old_uid = env.core.read_namespaced_pod("kafka-broker-101", NS).metadata.uid

    env.core.delete_namespaced_pod("kafka-broker-101", NS)  # graceful: controlled shutdown

    def moved() -> bool:
        parts = env.topic("busy")["partitions"]
        return all(101 not in p["isr_nodes"] and p["leader_id"] not in (101, -1) for p in parts)

    wait_for(moved, timeout=10, message="broker 101 out of every ISR, leaders moved")
    assert all(len(p["isr_nodes"]) == 2 for p in env.topic("busy")["partitions"])  # >= min.insync.replicas
    # Hold the restarted broker's catch-up (it copies at a thousandth of the replication rate) so the
    # state between "registered" and "caught up" can be looked at.
    env.control("slow-broker", cluster=CLUSTER_ID, node_id=101, factor=0.001)

    def recreated_and_ready() -> bool:
        try:
            pod = env.core.read_namespaced_pod("kafka-broker-101", NS)
        except client.ApiException:
            return False
        return pod.metadata.uid != old_uid and pod_ready(env.core, "kafka-broker-101")

    wait_for(recreated_and_ready, timeout=15, message="kafka-broker-101 recreated by the StatefulSet and Ready")
    # Registered and unfenced (its readiness probe passes, Metadata lists it) but lagging: not in any ISR.
    assert 101 in {b["broker_id"] for b in env.admin.describe_cluster()["brokers"]}
    assert all(101 not in p["isr_nodes"] for p in env.topic("busy")["partitions"])
    [mine] = env.retry(lambda: env.admin.describe_log_dirs(brokers=[101]), "describe_log_dirs of broker 101")
    lags = {p["partition_index"]: p["offset_lag"] for d in mine["log_dirs"] for t in d["topics"]
            if t["name"] == "busy" for p in t["partitions"]}
    assert set(lags) == {0, 1, 2} and all(lag > 0 for lag in lags.values())

    released = env.on_loop(lambda m: m.now)
    env.control("slow-broker", cluster=CLUSTER_ID, node_id=101, factor=1)
    wait_for(lambda: all(101 in p["isr_nodes"] for p in env.topic("busy")["partitions"]), timeout=15,
             message="broker 101 back in every ISR")
    env.control("load", cluster=CLUSTER_ID, topic="busy", bytes_per_sec=0)

    history = env.on_loop(lambda m: m.history())
    stop = next(e for e in history if e.kind == "node_stop" and e.node == 101)
    assert stop.graceful is True
    fenced = next(e for e in history if e.kind == "broker_fenced" and e.node == 101)
    assert fenced.reason == "controlled_shutdown" and fenced.time == stop.time
    rejoined = [e for e in history if e.kind == "isr" and e.topic == "busy" and 101 in e.isr and e.time > stop.time]
    assert len({e.partition for e in rejoined}) == 3
    assert all(e.time >= released for e in rejoined)
    assert [v for v in env.on_loop(lambda m: m.min_isr_violations()) if v.topic == "busy"] == []

    # Leadership stayed on the other replicas; a preferred election gives it back to broker 101.
    assert all(p["leader_id"] != 101 for p in env.topic("busy")["partitions"])
    env.admin.elect_leaders(0, {"busy": [0, 1, 2]})
    assert [p["leader_id"] for p in sorted(env.topic("busy")["partitions"], key=lambda p: p["partition_index"])] \
        == [101, 101, 101]


# ------------------------------------------------------------------------------------- other tools


def test_kcat_lists_all_brokers_and_topics(env: KafkaEnv) -> None:
    kcat = kcat_binary()
    address = env.pod_loopback("kafka-broker-103")["9092"]
    out = subprocess.run([kcat, "-L", "-b", address, "-m", "10"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert f"{len(BROKERS)} brokers:" in out
    for node in BROKERS:
        assert f"broker {node} at {env.pod_loopback(f'kafka-broker-{node}')['9092']}" in out
    assert 'topic "orders" with 3 partitions:' in out


def test_cli_sets_the_ingest_rate_through_the_devcluster_endpoint(env: KafkaEnv) -> None:
    env.admin.create_topics({"cli": {"num_partitions": 2, "replication_factor": 2}})
    ballast = [sys.executable, "-m", "ballast.cli", "devcluster", "kafka"]
    done = subprocess.run([*ballast, "load", "--kubeconfig", str(env.kubeconfig), "--cluster", CLUSTER_ID,
                           "--topic", "cli", "--bytes-per-sec", "5MiB"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"topic": "cli", "bytes_per_sec": 5 * MIB}
    assert env.on_loop(lambda m: m.ingest_rate("cli")) == 5 * MIB
    bad = subprocess.run([*ballast, "load", "--kubeconfig", str(env.kubeconfig), "--topic", "nope",
                          "--bytes-per-sec", "1"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "no topic 'nope'" in bad.stderr
    env.control("load", cluster=CLUSTER_ID, topic="cli", bytes_per_sec=0)


def test_a_misconfigured_controller_exits_1_and_is_restarted(env: KafkaEnv) -> None:
    # The image refuses advertised listeners on a controller-only node (its configure script exits 1).
    env.core.create_namespaced_pod(NS, {"metadata": {"name": "bad-controller"}, "spec": {"containers": [{
        "name": "kafka", "image": "docker.io/apache/kafka:3.9.1",
        "env": [{"name": "KAFKA_PROCESS_ROLES", "value": "controller"},
                {"name": "KAFKA_ADVERTISED_LISTENERS", "value": "CONTROLLER://x:9093"}]}]}})

    def crashed() -> bool:
        status = env.core.read_namespaced_pod("bad-controller", NS).status.container_statuses or []
        last = status[0].last_state.terminated if status and status[0].last_state else None
        return bool(last and last.exit_code == 1 and status[0].restart_count >= 1)
    wait_for(crashed, timeout=10, message="bad-controller exited 1 and was restarted")
    env.core.delete_namespaced_pod("bad-controller", NS, grace_period_seconds=0)


# --------------------------------------------------------------------------- crashes and failover


def history_since(env: KafkaEnv, since: float) -> list[Any]:
    return env.on_loop(lambda m: [e for e in m.history() if e.time >= since])


def recreated_and_ready(env: KafkaEnv, name: str, old_uid: str) -> bool:
    try:
        pod = env.core.read_namespaced_pod(name, NS)
    except client.ApiException:
        return False
    return pod.metadata.uid != old_uid and pod_ready(env.core, name)


def test_killing_a_broker_pod_fences_it_only_after_the_session_timeout(env: KafkaEnv) -> None:
    env.admin.create_topics({"crash": {"assignments": {0: [103, 100, 102]}}})
    old_uid = env.core.read_namespaced_pod("kafka-broker-103", NS).metadata.uid
    since = env.on_loop(lambda m: m.now)

    env.core.delete_namespaced_pod("kafka-broker-103", NS, grace_period_seconds=0)  # SIGKILL, no shutdown

    def fenced() -> Any:
        return next((e for e in history_since(env, since) if e.kind == "broker_fenced" and e.node == 103), None)

    fence = wait_for(fenced, timeout=10, message="broker 103 fenced")
    history = history_since(env, since)
    stop = next(e for e in history if e.kind == "node_stop" and e.node == 103)
    assert stop.graceful is False
    # The controller notices the silence only when broker.session.timeout.ms (9 s) has passed: the ISR
    # and the leadership change then, not at the kill.
    assert fence.reason == "session_timeout"
    assert fence.time - stop.time == pytest.approx(9.0, abs=1e-6)
    [shrunk] = [e for e in history if e.kind == "isr" and e.topic == "crash" and 103 not in e.isr][:1]
    assert shrunk.time == fence.time and shrunk.leader == 100
    wait_for(lambda: recreated_and_ready(env, "kafka-broker-103", old_uid), timeout=15,
             message="kafka-broker-103 recreated and Ready")
    wait_for(lambda: 103 in env.topic("crash")["partitions"][0]["isr_nodes"], timeout=10,
             message="broker 103 back in the ISR")


def quorum_partition(env: KafkaEnv) -> dict[str, Any] | None:
    """DescribeQuorum's partition, or None while the quorum has no leader (the broker that forwards the
    request answers REQUEST_TIMED_OUT then, as a real one does after its forwarding timeout)."""
    try:
        [partition] = env.retry(env.admin.describe_metadata_quorum, "describe_metadata_quorum")["topics"][0][
            "partitions"]
    except RequestTimedOutError:
        return None
    return partition


def set_nodes_schedulable(env: KafkaEnv, schedulable: bool) -> None:
    for node in env.core.list_node().items:
        env.core.patch_node(node.metadata.name, {"spec": {"unschedulable": not schedulable}})


def test_deleting_the_active_controller_pod_elects_a_new_leader_and_it_catches_up(env: KafkaEnv) -> None:
    before = quorum_partition(env)
    assert before is not None
    old_leader, old_epoch = before["leader_id"], before["leader_epoch"]
    name = f"kafka-controller-{old_leader}"
    old_uid = env.core.read_namespaced_pod(name, NS).metadata.uid
    # Cordon every node so the StatefulSet's replacement pod stays Pending while the quorum is looked at.
    set_nodes_schedulable(env, False)
    try:
        env.core.delete_namespaced_pod(name, NS)

        def stale_voter() -> tuple[dict[str, Any], dict[str, Any]] | None:
            q = quorum_partition(env)
            if q is None:
                return None
            voters = {v["replica_id"]: v for v in q["current_voters"]}
            if q["leader_id"] in (-1, old_leader) or voters[old_leader]["log_end_offset"] >= q["high_watermark"]:
                return None
            return q, voters

        after, voters = wait_for(stale_voter, timeout=10, message="a new quorum leader; the old one behind")
        assert after["leader_epoch"] > old_epoch
        assert {v["replica_id"] for v in after["current_voters"]} == set(CONTROLLERS)  # still a voter
        others = [v for n, v in voters.items() if n != old_leader]
        stale = voters[old_leader]
        assert stale["log_end_offset"] < min(v["log_end_offset"] for v in others)
        assert stale["last_caught_up_timestamp"] < min(v["last_caught_up_timestamp"] for v in others)
        assert env.core.read_namespaced_pod(name, NS).status.phase == "Pending"
    finally:
        set_nodes_schedulable(env, True)
    wait_for(lambda: recreated_and_ready(env, name, old_uid), timeout=15, message=f"{name} recreated and Ready")

    def caught_up() -> bool:
        q = quorum_partition(env)
        if q is None:
            return False
        voter = next(v for v in q["current_voters"] if v["replica_id"] == old_leader)
        return voter["log_end_offset"] >= q["high_watermark"] > after["high_watermark"]

    wait_for(caught_up, timeout=10, message=f"controller {old_leader} caught up with the metadata log")


# ------------------------------------------------------------------------------------ volumes


def test_an_online_pvc_expansion_shows_in_describe_log_dirs_without_a_restart(env: KafkaEnv) -> None:
    pod = env.core.read_namespaced_pod("kafka-broker-102", NS)
    restarts = pod.status.container_statuses[0].restart_count
    env.core.patch_namespaced_persistent_volume_claim(
        "data-kafka-broker-102", NS, {"spec": {"resources": {"requests": {"storage": "20Gi"}}}})
    wait_for(lambda: (env.core.read_namespaced_persistent_volume_claim("data-kafka-broker-102", NS)
                      .status.capacity or {}).get("storage") == "20Gi", timeout=10,
             message="the claim expanded online (status.capacity 20Gi)")

    def total() -> int:
        [mine] = env.retry(lambda: env.admin.describe_log_dirs(brokers=[102]), "describe_log_dirs of broker 102")
        return int(mine["log_dirs"][0]["total_bytes"])

    wait_for(lambda: total() == 20 * GIB, timeout=5, message="DescribeLogDirs reports 20 GiB")
    same = env.core.read_namespaced_pod("kafka-broker-102", NS)
    assert same.metadata.uid == pod.metadata.uid
    assert same.status.container_statuses[0].restart_count == restarts


# --------------------------------------------------------------------- the control CLI and disks


def ballast_kafka(env: KafkaEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ballast.cli", "devcluster", "kafka", args[0],
                           "--kubeconfig", str(env.kubeconfig), "--cluster", CLUSTER_ID, *args[1:]],
                          capture_output=True, text=True, timeout=30)


def cli_json(env: KafkaEnv, *args: str) -> Any:
    done = ballast_kafka(env, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def two_dir_broker() -> dict[str, Any]:
    """Broker 104 with two log dirs, each on its own claim."""
    sts = statefulset(
        "kafka-broker-2dir", 1, 104,
        [{"name": "KAFKA_PROCESS_ROLES", "value": "broker"},
         {"name": "KAFKA_LOG_DIRS", "value": "/var/lib/kafka/a,/var/lib/kafka/b"},
         {"name": "KAFKA_ADVERTISED_LISTENERS",
          "value": f"PLAINTEXT://$(POD_NAME).kafka-broker-2dir.{NS}.svc.cluster.local:9092"}],
        9092, "1Gi", {"exec": {"command": ["kafka-broker-api-versions.sh", "--bootstrap-server", "localhost:9092"]}})
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "a", "mountPath": "/var/lib/kafka/a"},
                                 {"name": "b", "mountPath": "/var/lib/kafka/b"}]
    claim = sts["spec"]["volumeClaimTemplates"][0]
    sts["spec"]["volumeClaimTemplates"] = [{**claim, "metadata": {"name": "a"}}, {**claim, "metadata": {"name": "b"}}]
    return sts


def test_cli_actions_and_failing_disks_of_a_broker_with_two_log_dirs(env: KafkaEnv,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    env.core.create_namespaced_service(NS, headless("kafka-broker-2dir", 9092))
    env.apps.create_namespaced_stateful_set(NS, two_dir_broker())
    wait_for(lambda: pod_ready(env.core, "kafka-broker-2dir-104"), timeout=15, message="broker 104 Ready")
    env.admin.create_topics({"disks": {"assignments": {i: [104, 100 + i % 2, 102 + i % 2] for i in range(4)}}})

    # The knobs, each through the CLI, checked in the model.
    assert cli_json(env, "speed", str(SPEED)) == {"speed": SPEED}
    env.control("load", cluster=CLUSTER_ID, topic="disks", bytes_per_sec="4MiB")
    skewed = cli_json(env, "skew", "--topic", "disks", "--weights", "0=5,3=0")
    assert set(skewed["sizes"]) == {"0", "1", "2", "3"}
    assert env.on_loop(lambda m: [p.weight for p in m.topic("disks").partitions]) == [5.0, 1.0, 1.0, 0.0]
    inflated = cli_json(env, "skew", "--topic", "disks", "--partition", "2", "--add-bytes", "64MiB")
    # Partitions 1 and 2 grow alike (same weight, up to rounding); 2 is now 64 MiB ahead.
    assert inflated["sizes"]["2"] - inflated["sizes"]["1"] == pytest.approx(64 * MIB, abs=4096)
    assert cli_json(env, "slow-broker", "--node-id", "104", "--factor", "0.5") == {"node_id": 104, "factor": 0.5}
    assert env.on_loop(lambda m: m._nodes[104].slowness) == 2.0
    assert cli_json(env, "replication-rate", "80MiB") == {"bytes_per_sec": 80 * MIB}
    assert env.on_loop(lambda m: m.tuning.replication_rate) == 80 * MIB
    status = cli_json(env, "status")
    [cluster] = status["clusters"]
    assert cluster["cluster_id"] == CLUSTER_ID and status["speed"] == SPEED
    assert {"id": 104, "running": True, "fenced": False, "rack": None} in cluster["brokers"]
    assert cluster["topics"]["disks"]["ingest_bytes_per_s"] == 4 * MIB
    cli_json(env, "slow-broker", "--node-id", "104", "--factor", "1")
    cli_json(env, "replication-rate", "100MiB")
    env.control("load", cluster=CLUSTER_ID, topic="disks", bytes_per_sec=0)

    # Which partitions live in which dir (new replicas go to the dir with the fewest).
    def dirs_of_104() -> dict[str, dict[str, Any]]:
        [mine] = env.retry(lambda: env.admin.describe_log_dirs(brokers=[104]), "describe_log_dirs of broker 104")
        return {d["log_dir"]: d for d in mine["log_dirs"]}

    hosted = {path: {p["partition_index"] for t in d["topics"] if t["name"] == "disks" for p in t["partitions"]}
              for path, d in dirs_of_104().items()}
    in_a, in_b = hosted["/var/lib/kafka/a"], hosted["/var/lib/kafka/b"]
    assert in_a and in_b and in_a | in_b == {0, 1, 2, 3}

    ambiguous = ballast_kafka(env, "fail-disk", "--node-id", "104")
    assert ambiguous.returncode == 1 and "name one with path" in ambiguous.stderr
    assert cli_json(env, "fail-disk", "--node-id", "104", "--path", "/var/lib/kafka/a") == {
        "node_id": 104, "path": "/var/lib/kafka/a", "failed": True}
    dirs = dirs_of_104()
    assert (dirs["/var/lib/kafka/a"]["error_code"], dirs["/var/lib/kafka/a"]["total_bytes"]) == (56, -1)
    assert (dirs["/var/lib/kafka/b"]["error_code"], dirs["/var/lib/kafka/b"]["total_bytes"]) == (0, GIB)
    partitions = {p["partition_index"]: p for p in env.topic("disks")["partitions"]}
    for index in in_a:  # KAFKA_STORAGE_ERROR: out of the ISR, leadership moved to the next replica
        assert 104 not in partitions[index]["isr_nodes"] and partitions[index]["leader_id"] != 104
    for index in in_b:  # the broker keeps serving from its other dir
        assert 104 in partitions[index]["isr_nodes"] and partitions[index]["leader_id"] == 104
    assert pod_ready(env.core, "kafka-broker-2dir-104")

    # Its last dir fails: the broker shuts down (exit 1) and keeps failing at start while the dirs are bad.
    # History positions, not times: the model's clock only advances on reads, the history is append-only.
    failed_at = env.on_loop(lambda m: len(m.history()))
    caplog.set_level(logging.WARNING, logger="devcluster.kafka")
    cli_json(env, "fail-disk", "--node-id", "104", "--path", "/var/lib/kafka/b")

    def crashed(restarts: int) -> Callable[[], bool]:
        def check() -> bool:
            [status] = env.core.read_namespaced_pod("kafka-broker-2dir-104", NS).status.container_statuses or [None]
            last = status.last_state.terminated if status and status.last_state else None
            return bool(last and last.exit_code == 1 and status.restart_count >= restarts)
        return check

    # Restart 1 is immediate; its process exiting 1 makes restart 2 (after 0.5 s of compressed back-off).
    wait_for(crashed(2), timeout=10, message="broker 104's restarted process exited 1 and was restarted again")
    # The JVM halts without a controlled shutdown: the controller fences it when its session times out
    # (kafka-python's DescribeCluster v2 lists fenced brokers too, KIP-1073).
    def fenced() -> bool:
        brokers = env.retry(env.admin.describe_cluster, "describe_cluster")["brokers"]
        return all(b["is_fenced"] for b in brokers if b["broker_id"] == 104)

    wait_for(fenced, timeout=10, message="broker 104 fenced")
    # The restarted processes halted in LogManager's start-up check, before the node started: they never
    # registered with the controller (not even fenced), although its session had expired meanwhile.
    restored_at = env.on_loop(lambda m: len(m.history()))
    while_failed = env.on_loop(lambda m: [(e.kind, e.graceful) for e in m.history()[failed_at:restored_at]
                                          if e.node == 104 and e.kind.startswith(("node_", "broker_"))])
    assert while_failed == [("node_stop", False), ("broker_fenced", None)]
    halted = [r.getMessage() for r in caplog.records if "kafka-broker-2dir-104" in r.getMessage()
              and "none of the specified log dirs" in r.getMessage()]
    assert halted and all("exits with 1: Shutdown broker because none of the specified log dirs from "
                          "/var/lib/kafka/a, /var/lib/kafka/b can be created or validated" in m for m in halted)
    for path in ("/var/lib/kafka/a", "/var/lib/kafka/b"):
        assert cli_json(env, "restore-disk", "--node-id", "104", "--path", path) == {
            "node_id": 104, "path": path, "failed": False}
    wait_for(lambda: pod_ready(env.core, "kafka-broker-2dir-104"), timeout=15, message="broker 104 Ready again")
    # With its disks back the next start registers normally: started, registered fenced, then unfenced.
    after = env.on_loop(lambda m: [e.kind for e in m.history()[restored_at:]
                                   if e.node == 104 and e.kind.startswith(("node_", "broker_"))])
    assert after == ["node_start", "broker_registered", "broker_unfenced"]
    wait_for(lambda: all(104 in p["isr_nodes"] for p in env.topic("disks")["partitions"]), timeout=10,
             message="broker 104 back in every ISR of disks")


# ------------------------------------------------------------------------------ combined mode


def test_a_combined_mode_cp_kafka_statefulset_is_its_own_cluster(env: KafkaEnv) -> None:
    """process.roles=broker,controller with the confluentinc/cp-kafka image: a second Kafka cluster in the
    same devcluster (last in this module: control calls must name their cluster from here on)."""
    combined_id = "Y29tYmluZWQtY3Av-S2Fma2E"
    ids = (10, 11, 12)
    voters_cfg = ",".join(f"{n}@kafka-combined-{n}.kafka-combined.{NS}.svc.cluster.local:9093" for n in ids)
    sts = statefulset(
        "kafka-combined", 3, 10,
        [{"name": "CLUSTER_ID", "value": combined_id},
         {"name": "KAFKA_PROCESS_ROLES", "value": "broker,controller"},
         {"name": "KAFKA_CONTROLLER_QUORUM_VOTERS", "value": voters_cfg},
         {"name": "KAFKA_LISTENERS", "value": "PLAINTEXT://:9092,CONTROLLER://:9093"},
         {"name": "KAFKA_ADVERTISED_LISTENERS",
          "value": f"PLAINTEXT://$(POD_NAME).kafka-combined.{NS}.svc.cluster.local:9092"},
         {"name": "KAFKA_CONTROLLER_LISTENER_NAMES", "value": "CONTROLLER"},
         {"name": "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "value": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"},
         {"name": "KAFKA_INTER_BROKER_LISTENER_NAME", "value": "PLAINTEXT"}],
        9092, "1Gi", {"tcpSocket": {"port": 9092}})
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "confluentinc/cp-kafka:7.9.0"
    container["ports"] = [{"name": "kafka", "containerPort": 9092}, {"name": "controller", "containerPort": 9093}]
    del container["envFrom"]
    env.core.create_namespaced_service(NS, {"metadata": {"name": "kafka-combined"}, "spec": {
        "clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app": "kafka-combined"},
        "ports": [{"name": "kafka", "port": 9092}, {"name": "controller", "port": 9093}]}})
    env.apps.create_namespaced_stateful_set(NS, sts)
    for n in ids:
        wait_for(lambda n=n: pod_ready(env.core, f"kafka-combined-{n}"), timeout=15, message=f"kafka-combined-{n}")
    loopbacks = {n: env.pod_loopback(f"kafka-combined-{n}") for n in ids}
    assert all(set(ports) == {"9092", "9093"} for ports in loopbacks.values())  # one port per listener
    admin = KafkaAdminClient(bootstrap_servers=loopbacks[10]["9092"], request_timeout_ms=10_000)
    try:
        def quorum() -> dict[str, Any]:
            [partition] = admin.describe_metadata_quorum()["topics"][0]["partitions"]
            return partition

        info = wait_for(lambda: (lambda i: i if len(i["brokers"]) == 3 else None)(admin.describe_cluster()),
                        timeout=10, message="three brokers registered")
        assert info["cluster_id"] == combined_id
        assert {b["broker_id"]: f"{b['host']}:{b['port']}" for b in info["brokers"]} == {
            n: loopbacks[n]["9092"] for n in ids}
        before = quorum()
        assert {v["replica_id"] for v in before["current_voters"]} == set(ids)
        assert before["observers"] == []  # combined nodes are voters, not observers
        leader = before["leader_id"]
        assert leader in ids
        assert env.dc.call(lambda c: c.kafka.model(combined_id).node(leader).roles) == {"broker", "controller"}

        env.core.delete_namespaced_pod(f"kafka-combined-{leader}", NS)

        def moved() -> dict[str, Any] | None:
            try:
                q = quorum()
            except (KafkaConnectionError, NodeNotReadyError, UnknownBrokerIdError, RequestTimedOutError):
                return None
            return q if q["leader_id"] not in (-1, leader) and q["leader_epoch"] > before["leader_epoch"] else None

        assert wait_for(moved, timeout=10, message="another combined node leads the quorum")["leader_id"] in ids
    finally:
        admin.close()
