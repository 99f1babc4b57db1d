"""How a simulated Kafka container builds its configuration (the images' rules) and how advertised pod
DNS names resolve to loopback addresses. Pure functions and a bare store: no devcluster is started."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from devcluster.api import ApiServer
from devcluster.kafka.addressing import ClusterDns
from devcluster.kafka.config import (
    APACHE_DEFAULT_CLUSTER_ID,
    KafkaConfigError,
    Listener,
    apache_env_key,
    confluent_env_key,
    container_argv,
    image_flavor,
    launch_plan,
    node_config,
    parse_properties,
    parse_storage_format,
)
from devcluster.kafka.types import Endpoint, NodeView
from devcluster.store import Store

HOST = "kafka-1.kafka.ns.svc.cluster.local"


@pytest.mark.parametrize(("image", "flavor"), [
    ("apache/kafka:3.9.1", "apache"),
    ("apache/kafka", "apache"),
    ("docker.io/apache/kafka:3.9.1", "apache"),
    ("registry.local:5000/mirror/apache/kafka-native@sha256:" + "0" * 64, "apache"),
    ("confluentinc/cp-kafka:7.7.1", "confluent"),
    ("quay.io/confluentinc/cp-server:7.7.1", "confluent"),
    ("bitnami/kafka:3.9", None),
    ("myapache/kafka:3.9.1", None),
    ("apache/kafka-ui:latest", None),
])
def test_image_flavors(image: str, flavor: str | None) -> None:
    assert image_flavor(image) == flavor


def test_argv_follows_the_runtime_rules() -> None:
    assert container_argv("apache", [], []) == ["/etc/kafka/docker/run"]
    assert container_argv("confluent", [], []) == ["/etc/confluent/docker/run"]
    assert container_argv("apache", [], ["/opt/kafka/bin/kafka-server-start.sh", "f"]) == [
        "/opt/kafka/bin/kafka-server-start.sh", "f"]
    assert container_argv("apache", ["/etc/kafka/docker/run"], ["X=1"]) == ["/etc/kafka/docker/run", "X=1"]


@pytest.mark.parametrize(("name", "prop"), [
    ("KAFKA_LOG_DIRS", "log.dirs"),
    ("KAFKA_NODE_ID", "node.id"),
    ("KAFKA_FOO__BAR", "foo_bar"),
    ("KAFKA_FOO___BAR", "foo-bar"),
    ("KAFKA_LISTENER_NAME_INTERNAL_SSL_KEY_PASSWORD", "listener.name.internal.ssl.key.password"),
    ("KAFKA_SASL_KAFKA_SERVER_X", "sasl.server.x"),  # the wrapper drops every "KAFKA_", not just the prefix
])
def test_apache_env_names(name: str, prop: str) -> None:
    assert apache_env_key(name) == prop


def test_confluent_env_names() -> None:
    assert confluent_env_key("LOG_DIRS") == "log.dirs"
    assert confluent_env_key("FOO__BAR") == "foo_bar"
    assert confluent_env_key("FOO___BAR") == "foo-bar"
    assert confluent_env_key("CONFLUENT_SUPPORT_METRICS_ENABLE") == "confluent.support.metrics.enable"


def test_java_properties_syntax() -> None:
    text = "\n".join([
        "# a comment",
        "! another",
        "a=1",
        "b : 2",
        "c 3",
        "  d=spaced value  ",
        "e=line one \\",
        "   continued",
        "f=C:\\\\path\\tx\\u0041",
        "g",
        "a=later wins",
        "key\\=with\\:seps=v",
    ])
    props = parse_properties(text)
    assert props == {"a": "later wins", "b": "2", "c": "3", "d": "spaced value  ", "e": "line one continued",
                     "f": "C:\\path\txA", "g": "", "key=with:seps": "v"}


# ---------------------------------------------------------------------------------- launch plans
BROKER_ENV = {
    "CLUSTER_ID": "abc",
    "KAFKA_NODE_ID": "4",
    "KAFKA_PROCESS_ROLES": "broker",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@c-1:9093",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{HOST}:9092",
    "KAFKA_HEAP_OPTS": "-Xmx1G",
    "KAFKA_OPTS": "-Dx=y",
    "KAFKA_VERSION": "3.9.1",
    "PATH": "/usr/bin",
}


def test_apache_env_only_config() -> None:
    plan = launch_plan("apache", ["/etc/kafka/docker/run"], BROKER_ENV, {})
    assert plan.cluster_id == "abc" and plan.source == "env"
    props = plan.props
    assert props["node.id"] == "4" and props["process.roles"] == "broker"
    # configure derives listeners from advertised.listeners with the hosts replaced by 0.0.0.0.
    assert props["listeners"] == "PLAINTEXT://0.0.0.0:9092"
    assert "opts" not in props and "version" not in props and "path" not in props
    assert props["heap.opts"] == "-Xmx1G"  # the wrapper's exclusion list says KAFKA_HEAP_OPT (sic)
    cfg = node_config(props, "pod-0")
    assert cfg.node_id == 4 and cfg.roles == {"broker"} and cfg.voters == (1,)
    assert cfg.endpoints() == (Listener("PLAINTEXT", HOST, 9092, "PLAINTEXT"),)
    assert cfg.inter_broker_listener_name == "PLAINTEXT" and cfg.log_dirs == ("/tmp/kafka-logs",)


def test_apache_file_input_is_overridden_by_env_and_args() -> None:
    mounted = b"node.id=9\nnum.partitions=6\nlog.dirs=/data\n"
    plan = launch_plan("apache", ["/etc/kafka/docker/run", "KAFKA_NUM_PARTITIONS=12"], BROKER_ENV,
                       {"/mnt/shared/config/server.properties": mounted})
    assert plan.source == "file+env"
    assert plan.props["node.id"] == "4" and plan.props["num.partitions"] == "12" and plan.props["log.dirs"] == "/data"


def test_apache_image_defaults_without_any_input() -> None:
    plan = launch_plan("apache", ["/etc/kafka/docker/run"], {"PATH": "/bin"}, {})
    assert plan.source == "image default" and plan.cluster_id == APACHE_DEFAULT_CLUSTER_ID
    cfg = node_config(plan.props, "kafka-0")
    assert cfg.node_id == 1 and cfg.roles == {"broker", "controller"}
    assert [(e.name, e.host, e.port) for e in cfg.endpoints()] == [
        ("PLAINTEXT", "localhost", 9092), ("CONTROLLER", "localhost", 9093)]


def test_the_image_refuses_advertised_listeners_on_a_controller() -> None:
    env = {"KAFKA_PROCESS_ROLES": "controller", "KAFKA_ADVERTISED_LISTENERS": "CONTROLLER://x:9093"}
    with pytest.raises(KafkaConfigError, match="not supported on a KRaft controller"):
        launch_plan("apache", ["/etc/kafka/docker/run"], env, {})


def test_confluent_needs_a_cluster_id_in_kraft_mode() -> None:
    with pytest.raises(KafkaConfigError, match="CLUSTER_ID"):
        launch_plan("confluent", ["/etc/confluent/docker/run"], {"KAFKA_PROCESS_ROLES": "broker"}, {})
    plan = launch_plan("confluent", ["/etc/confluent/docker/run"], BROKER_ENV, {})
    assert plan.props["log.dirs"] == "/var/lib/kafka/data" and plan.props["node.id"] == "4"


def test_kafka_server_start_reads_the_mounted_file_and_overrides() -> None:
    files = {"/etc/kafka/server.properties": b"process.roles=broker\nnode.id=1\n"}
    argv = ["/opt/kafka/bin/kafka-server-start.sh", "/etc/kafka/server.properties", "--override", "node.id=7"]
    plan = launch_plan("apache", argv, {"KAFKA_NODE_ID": "3"}, files)
    assert plan.props == {"process.roles": "broker", "node.id": "7"}  # the script does not map the env
    assert plan.cluster_id is None  # the log dirs must be formatted already
    with pytest.raises(KafkaConfigError, match="No such file"):
        launch_plan("apache", ["kafka-server-start.sh", "/nope.properties"], {}, files)


def test_shell_scripts_are_not_run() -> None:
    with pytest.raises(KafkaConfigError, match="cannot run"):
        launch_plan("apache", ["bash", "-c", "exec /etc/kafka/docker/run"], {}, {})


def test_storage_format_arguments() -> None:
    fmt = parse_storage_format(["/opt/kafka/bin/kafka-storage.sh", "format", "-t", "abc", "--config=/c.properties",
                                "--ignore-formatted"])
    assert fmt is not None and (fmt.cluster_id, fmt.config_path, fmt.ignore_formatted) == ("abc", "/c.properties", True)
    assert parse_storage_format(["kafka-server-start.sh", "x"]) is None
    with pytest.raises(KafkaConfigError, match="cluster-id"):
        parse_storage_format(["kafka-storage.sh", "format", "-c", "/c.properties"])


# ----------------------------------------------------------------------------------- validation
BASE = {"process.roles": "broker", "node.id": "4", "controller.quorum.voters": "1@c:9093",
        "controller.listener.names": "CONTROLLER", "listeners": "PLAINTEXT://:9092"}


@pytest.mark.parametrize(("change", "message"), [
    ({"process.roles": None}, "zookeeper.connect"),
    ({"process.roles": "broker,admin"}, "Unknown process role"),
    ({"node.id": None}, "node.id"),
    ({"node.id": "four"}, "Not a number"),
    ({"controller.quorum.voters": None}, "controller.quorum.bootstrap.servers"),
    ({"controller.listener.names": None}, "controller.listener.names"),
    ({"listeners": "PLAINTEXT://:9092,CONTROLLER://:9093"}, "just the broker role"),
    ({"listeners": "PLAINTEXT://:9092,OTHER://:9092"}, "No security protocol defined for listener OTHER"),
    ({"listeners": "PLAINTEXT://0.0.0.0:9092"}, "nonroutable meta-address"),
    ({"inter.broker.listener.name": "INTERNAL"}, "inter.broker.listener.name must be a listener name"),
    ({"process.roles": "controller", "node.id": "2"}, "must be included in the set of voters"),
    ({"process.roles": "controller", "node.id": "1"}, "at least one value appearing in the 'listeners'"),
])
def test_kafka_config_validation(change: dict[str, str | None], message: str) -> None:
    props = {**BASE, **change}
    with pytest.raises(KafkaConfigError, match=message):
        node_config({k: v for k, v in props.items() if v is not None}, "pod")


def test_a_combined_node_registers_broker_and_controller_endpoints() -> None:
    props = {**BASE, "process.roles": "broker,controller", "node.id": "1",
             "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093", "broker.rack": "zone-a",
             "log.dirs": "/a,/b", "metadata.log.dir": "/m"}
    cfg = node_config(props, "kafka-1.kafka.ns.svc.cluster.local")
    assert [(e.name, e.host) for e in cfg.endpoints()] == [("PLAINTEXT", HOST), ("CONTROLLER", HOST)]
    assert cfg.rack == "zone-a" and cfg.log_dirs == ("/a", "/b") and cfg.metadata_log_dir == "/m"


# ------------------------------------------------------------------------------------ addressing
def _store_with(objects: list[tuple[str, dict[str, Any]]]) -> ApiServer:
    api = ApiServer(Store())
    for plural, obj in objects:
        api.store.commit(api.lookup("", "v1", plural).key, obj, "ADDED", None)
    return api


def _pod(name: str, ready: bool, port: int = 9092) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "labels": {"app": "kafka"},
                         "annotations": {"devcluster.ballast.dev/loopback": json.dumps({str(port): "127.0.0.1:40001"})}},
            "spec": {"hostname": name, "subdomain": "kafka"},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _service(name: str, headless: bool, publish: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": "kafka"}, "ports": [{"port": 9092}],
                            "publishNotReadyAddresses": publish}
    if headless:
        spec["clusterIP"] = "None"
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if not headless:
        meta["annotations"] = {"devcluster.ballast.dev/loopback": json.dumps({"9092": "127.0.0.1:40009"})}
    return {"metadata": meta, "spec": spec}


def _node() -> NodeView:
    return NodeView(1, frozenset({"broker"}), None, (), (), True, True, False, uuid.uuid4(), ())


def test_pod_dns_names_resolve_to_the_pods_loopback_port() -> None:
    api = _store_with([("services", _service("kafka", headless=True)), ("pods", _pod("kafka-1", ready=True)),
                       ("services", _service("bootstrap", headless=False))])
    dns = ClusterDns(api, "ns")
    for host in (HOST, "kafka-1.kafka.ns.svc", "kafka-1.kafka.ns", "kafka-1.kafka", HOST + "."):
        assert dns.resolve(host, 9092) == ("127.0.0.1", 40001), host
    assert dns.resolve(HOST, 9093) is None  # nothing listens there
    assert dns.resolve("bootstrap.ns.svc.cluster.local", 9092) == ("127.0.0.1", 40009)
    assert dns.resolve("bootstrap", 9092) == ("127.0.0.1", 40009)
    for host in ("10.0.0.1", "localhost", "kafka-9.kafka.ns.svc.cluster.local", "kafka.example.com"):
        assert dns.resolve(host, 9092) is None
    # Unresolvable names are advertised unchanged.
    assert dns(_node(), Endpoint("PLAINTEXT", "kafka.example.com", 9092)) == ("kafka.example.com", 9092)


def test_not_ready_pods_resolve_only_with_publish_not_ready_addresses() -> None:
    pod = _pod("kafka-1", ready=False)
    hidden = ClusterDns(_store_with([("services", _service("kafka", headless=True)), ("pods", pod)]), "ns")
    assert hidden.resolve(HOST, 9092) is None
    published = ClusterDns(_store_with([("services", _service("kafka", headless=True, publish=True)),
                                        ("pods", pod)]), "ns")
    assert published.resolve(HOST, 9092) == ("127.0.0.1", 40001)
    # A pod hostname record needs a headless Service of that name.
    plain = ClusterDns(_store_with([("services", _service("kafka", headless=False)), ("pods", pod)]), "ns")
    assert plain.resolve(HOST, 9092) is None
