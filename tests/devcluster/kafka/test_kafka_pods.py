"""Kafka pods in devcluster: plain StatefulSets of the apache/kafka image become a simulated KRaft cluster.

The cluster is written here, as a user would write it for the real image (no operator): a ConfigMap of
shared ``KAFKA_*`` settings, three controllers and four brokers as StatefulSets with headless Services,
node ids from the ``apps.kubernetes.io/pod-index`` label (the brokers' set starts its ordinals at 100),
advertised listeners naming the pods' DNS names. Everything after that goes through real clients:
kafka-python's KafkaAdminClient bootstrapping through a ClusterIP Service's loopback port, kcat, the
``kubernetes`` client and the ``ballast devcluster kafka`` CLI.

One devcluster serves the whole module; the simulation clock runs 20x faster than the wall clock (100x
while a reassignment copies), so simulated minutes take seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource
from kafka.errors import KafkaConnectionError, NodeNotReadyError, UnknownBrokerIdError
from kafka.structs import TopicPartition
from kubernetes import client
from kubernetes import config as kube_config

from devcluster.cluster import DevClusterConfig, DevClusterThread
from tests.conftest import wait_for
from tests.devcluster.kafka.tools import kcat_binary

T = TypeVar("T")
NS = "kafka"
CLUSTER_ID = "Zm9vYmFyLWRldmNsdXN0ZXI"
CONTROLLERS = (0, 1, 2)
BROKERS = (100, 101, 102, 103)
GIB = 1 << 30
MIB = 1 << 20
SPEED = 20.0
LOOPBACK = "devcluster.ballast.dev/loopback"


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


def headless(name: str, port: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app": name},
        "ports": [{"name": "kafka", "port": port}]}}


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


def pod_ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        pod = core.read_namespaced_pod(name, NS)
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaEnv]:
    kubeconfig = tmp_path_factory.mktemp("kafka-pods") / "kubeconfig"
    dc = DevClusterThread(DevClusterConfig(kubeconfig=kubeconfig, pod_start_delay=0.02, pod_ready_delay=0.02,
                                           bookmark_interval=0.5)).start()
    try:
        cfg = client.Configuration()
        kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        api = client.ApiClient(cfg)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
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

        def bootstrap() -> str | None:
            svc = core.read_namespaced_service("kafka-bootstrap", NS)
            return json.loads((svc.metadata.annotations or {}).get(LOOPBACK, "{}")).get("9092")

        address = wait_for(bootstrap, message="the bootstrap Service's loopback port")
        # A short metadata max age: the client notices brokers that come back within the test's time.
        admin = KafkaAdminClient(bootstrap_servers=str(address), request_timeout_ms=10_000, metadata_max_age_ms=500)
        try:
            yield KafkaEnv(dc, core, apps, kubeconfig, admin)
        finally:
            admin.close()
    finally:
        dc.stop()


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
