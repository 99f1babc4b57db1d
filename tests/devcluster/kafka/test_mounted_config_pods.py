"""Kafka pods started from a mounted ``server.properties``: ``kafka-server-start.sh <file> [--override k=v]``.

The second start form of ``devcluster/kafka/config.py``, written as a user would write it for the real
``apache/kafka`` image (no operator, no ``KAFKA_*`` environment, no ``CLUSTER_ID``): a ConfigMap holding one
properties file per pod, a controller StatefulSet (1 pod) and a broker StatefulSet (2 pods, ordinals from 1),
each pod mounting its own file through ``subPathExpr: $(POD_NAME).properties``; a ``kafka-storage.sh format``
init container writes ``meta.properties`` into the PVC-backed log dir, so the cluster id exists only in the
format step's ``-t``. The brokers' files say ``min.insync.replicas=1``; their command line overrides it
with ``--override min.insync.replicas=2``.

Everything is then checked through kafka-python's KafkaAdminClient bootstrapped through a ClusterIP Service.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from tests.conftest import wait_for
from tests.devcluster.kafka.tools import bootstrap_address, headless, kafka_devcluster, pod_ready

NS = "kafka"
CLUSTER_ID = "TW91bnRlZC1jb25maWctMQ"  # only in the format init container's -t
BROKERS = {1: "zone-a", 2: "zone-b"}  # node id (= pod ordinal) -> broker.rack
CONTROLLER = 0
CONFIG = "/etc/kafka/server.properties"
LOG_DIR = "/var/lib/kafka/data/logs"  # a directory inside the PVC mount, not the mount itself
KAFKA_IMAGE = "apache/kafka:3.9.1"


def fqdn(pod: str, service: str) -> str:
    return f"{pod}.{service}.{NS}.svc.cluster.local"


def properties(**props: str | int) -> str:
    return "".join(f"{key.replace('_', '.')}={value}\n" for key, value in props.items())


def config_files() -> dict[str, str]:
    """The ConfigMap's data: ``<pod name>.properties`` for every pod."""
    common = {"controller_quorum_voters": f"{CONTROLLER}@{fqdn('kafka-controller-0', 'kafka-controller')}:9093",
              "controller_listener_names": "CONTROLLER",
              "listener_security_protocol_map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
              "log_dirs": LOG_DIR}
    files = {"kafka-controller-0.properties": properties(
        process_roles="controller", node_id=CONTROLLER, listeners="CONTROLLER://:9093", **common)}
    for node, rack in BROKERS.items():
        pod = f"kafka-broker-{node}"
        files[f"{pod}.properties"] = "# per-pod broker config\n" + properties(
            process_roles="broker", node_id=node, broker_rack=rack, listeners="PLAINTEXT://:9092",
            advertised_listeners=f"PLAINTEXT://{fqdn(pod, 'kafka-broker')}:9092",
            inter_broker_listener_name="PLAINTEXT", num_partitions=2, min_insync_replicas=1, **common)
    return files


def statefulset(name: str, replicas: int, start: int, port: int, extra_args: list[str],
                probe: dict[str, object]) -> dict[str, object]:
    labels = {"app": name}
    pod_name = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    mounts = [{"name": "config", "mountPath": CONFIG, "subPathExpr": "$(POD_NAME).properties"},
              {"name": "data", "mountPath": "/var/lib/kafka/data"}]
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceName": name, "replicas": replicas, "ordinals": {"start": start},
            "podManagementPolicy": "Parallel", "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "volumes": [{"name": "config", "configMap": {"name": "kafka-files"}}],
                "initContainers": [{
                    "name": "format", "image": KAFKA_IMAGE, "env": [pod_name], "volumeMounts": mounts,
                    "command": ["/opt/kafka/bin/kafka-storage.sh", "format", "-t", CLUSTER_ID, "-c", CONFIG,
                                "--ignore-formatted"],
                }],
                "containers": [{
                    "name": "kafka", "image": KAFKA_IMAGE, "env": [pod_name], "volumeMounts": mounts,
                    "command": ["/opt/kafka/bin/kafka-server-start.sh", CONFIG, *extra_args],
                    "ports": [{"name": "kafka", "containerPort": port}],
                    "readinessProbe": probe,
                }],
            }},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}],
        },
    }


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaAdminClient]:
    """The cluster above, Ready, and an admin client on its bootstrap Service."""
    kubeconfig: Path = tmp_path_factory.mktemp("kafka-mounted") / "kubeconfig"
    with kafka_devcluster(kubeconfig) as (_dc, core, apps):
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_config_map(NS, {"metadata": {"name": "kafka-files"}, "data": config_files()})
        core.create_namespaced_service(NS, headless("kafka-controller", 9093))
        core.create_namespaced_service(NS, headless("kafka-broker", 9092))
        core.create_namespaced_service(NS, {"metadata": {"name": "kafka-bootstrap"}, "spec": {
            "selector": {"app": "kafka-broker"}, "ports": [{"name": "kafka", "port": 9092}]}})
        apps.create_namespaced_stateful_set(NS, statefulset(
            "kafka-controller", 1, CONTROLLER, 9093, [], {"tcpSocket": {"port": 9093}}))
        # Ready = registered and unfenced (any probe but tcpSocket means "Kafka serves").
        apps.create_namespaced_stateful_set(NS, statefulset(
            "kafka-broker", len(BROKERS), min(BROKERS), 9092, ["--override", "min.insync.replicas=2"],
            {"exec": {"command": ["/opt/kafka/bin/kafka-broker-api-versions.sh", "--bootstrap-server",
                                  "localhost:9092"]}}))
        for name in ["kafka-controller-0", *(f"kafka-broker-{n}" for n in BROKERS)]:
            wait_for(lambda name=name: pod_ready(core, name, NS), timeout=15, message=f"{name} Ready")

        address = wait_for(lambda: bootstrap_address(core, NS), message="the bootstrap Service's loopback port")
        admin = KafkaAdminClient(bootstrap_servers=str(address), request_timeout_ms=10_000)
        try:
            yield admin
        finally:
            admin.close()


def test_a_cluster_started_from_mounted_properties_files(admin: KafkaAdminClient) -> None:
    # The cluster id is the one the format init container wrote to meta.properties (no CLUSTER_ID anywhere).
    info = admin.describe_cluster()
    assert info["cluster_id"] == CLUSTER_ID
    assert {b["broker_id"]: b["rack"] for b in info["brokers"]} == BROKERS
    assert info["controller_id"] in BROKERS  # brokers forward: clients are told a broker, as Kafka does

    # Per-pod file values (node.id, broker.rack via subPathExpr) and the --override (it wins over the file's
    # min.insync.replicas=1), all static broker configs.
    resources = [ConfigResource("BROKER", str(n)) for n in BROKERS]
    described = admin.describe_configs(resources, config_filter="all")["broker"]
    for node, rack in BROKERS.items():
        configs = described[str(node)]
        for name, value in (("broker.rack", rack), ("num.partitions", "2"), ("min.insync.replicas", "2"),
                            ("log.dirs", LOG_DIR)):
            assert (configs[name]["value"], configs[name]["config_source"]) == (value, "STATIC_BROKER_CONFIG"), name

    # The log dir named in the file, on the 2Gi claim mounted above it.
    dirs = {d["broker"]: d["log_dirs"] for d in admin.describe_log_dirs()}
    assert set(dirs) == set(BROKERS)
    for log_dirs in dirs.values():
        [log_dir] = log_dirs
        assert (log_dir["log_dir"], log_dir["error_code"], log_dir["total_bytes"]) == (LOG_DIR, 0, 2 << 30)
