"""ballast.manifests: structural assertions on the rendered objects, hash behaviour, helpers, and proof that
every object is a real Kubernetes API shape (a lossless round trip through the official client's models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client import ApiClient

from ballast.manifests import (
    CONFIG_HASH_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    RenderInput,
    Role,
    bootstrap_address,
    broker_pod_names,
    broker_selector,
    cluster_selector,
    config_hash,
    controller_pod_names,
    controller_selector,
    node_id_for_pod,
    pod_name_for_node,
    render_cluster,
    render_role,
    role_of_node,
)
from ballast.manifests.config import (
    broker_properties,
    controller_properties,
    env_problem,
    env_to_property,
    property_to_env,
    role_properties,
)
from ballast.manifests.hashing import content_hash, spec_hash
from ballast.manifests.metadata import owner_reference
from ballast.spec import SUPPORTED_KAFKA_VERSIONS, KafkaClusterSpec

JSON = dict[str, Any]
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
UID = "6f1c3c1e-3b57-4d43-9a55-0c8f7f7b2f10"
DNS = "cluster.local"


def make_input(spec: JSON | None = None, *, name: str = "demo", namespace: str = "kafka",
               domain: str = DNS) -> RenderInput:
    return RenderInput(name=name, namespace=namespace, uid=UID, cluster_id=CLUSTER_ID, cluster_domain=domain,
                       spec=KafkaClusterSpec.model_validate(spec or {}))


def by_name(objects: list[JSON], kind: str, name: str) -> JSON:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def container(sts: JSON) -> JSON:
    [only] = sts["spec"]["template"]["spec"]["containers"]
    return only


def env_of(sts: JSON) -> dict[str, JSON]:
    return {e["name"]: e for e in container(sts)["env"]}


# -- the objects ---------------------------------------------------------------------------------------------

def test_render_order_kinds_and_names() -> None:
    objects = render_cluster(make_input())
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", "demo-controller-config"),
        ("Service", "demo-controllers"),
        ("PodDisruptionBudget", "demo-controller"),
        ("StatefulSet", "demo-controller"),
        ("ConfigMap", "demo-broker-config"),
        ("Service", "demo-brokers"),
        ("Service", "demo-kafka-bootstrap"),
        ("PodDisruptionBudget", "demo-broker"),
        ("StatefulSet", "demo-broker"),
    ]
    assert render_role(make_input(), Role.CONTROLLER) == objects[:4]
    assert render_role(make_input(), Role.BROKER) == objects[4:]


def test_statefulsets_own_restarts_and_keep_claims() -> None:
    inp = make_input({"controllers": {"replicas": 5, "storage": {"size": "2Gi", "storageClassName": "fast"}},
                      "brokers": {"replicas": 4, "storage": {"size": "50Gi"}}})
    objects = render_cluster(inp)
    ctl = by_name(objects, "StatefulSet", "demo-controller")
    brk = by_name(objects, "StatefulSet", "demo-broker")
    for sts, replicas, service in ((ctl, 5, "demo-controllers"), (brk, 4, "demo-brokers")):
        spec = sts["spec"]
        assert spec["replicas"] == replicas
        assert spec["serviceName"] == service
        assert spec["podManagementPolicy"] == "OrderedReady"
        assert spec["updateStrategy"] == {"type": "OnDelete"}
        assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/instance": "demo",
                                                   "app.kubernetes.io/component": sts["metadata"]["name"][5:]}
        # The selector must select the pod template (the API server rejects the set otherwise).
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        [claim] = spec["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "data"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert container(sts)["volumeMounts"] == [
            {"name": "data", "mountPath": "/var/lib/kafka/data", "subPath": "kafka"}]
        pod = spec["template"]["spec"]
        assert pod["enableServiceLinks"] is False  # KAFKA_* service-link variables would become properties
        assert pod["securityContext"]["fsGroup"] == 1000  # the image's appuser must write the claim
    assert ctl["spec"]["ordinals"] == {"start": 1000}
    assert "ordinals" not in brk["spec"]
    ctl_claim = ctl["spec"]["volumeClaimTemplates"][0]["spec"]
    assert ctl_claim["resources"] == {"requests": {"storage": "2Gi"}}
    assert ctl_claim["storageClassName"] == "fast"
    brk_claim = brk["spec"]["volumeClaimTemplates"][0]["spec"]
    assert brk_claim["resources"] == {"requests": {"storage": "50Gi"}}
    assert "storageClassName" not in brk_claim  # empty = the cluster's default StorageClass
    assert brk["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    assert "terminationGracePeriodSeconds" not in ctl["spec"]["template"]["spec"]


def test_container_image_ports_probes_and_resources() -> None:
    inp = make_input({"version": "4.0.0",
                      "brokers": {"resources": {"requests": {"memory": "2Gi", "cpu": "1"}, "limits": {"memory": "2Gi"}}},
                      "listeners": [{"name": "internal", "port": 9092}, {"name": "apps", "port": 9094}]})
    objects = render_cluster(inp)
    ctl = container(by_name(objects, "StatefulSet", "demo-controller"))
    brk = container(by_name(objects, "StatefulSet", "demo-broker"))
    assert ctl["image"] == brk["image"] == "apache/kafka:4.0.0"
    assert ctl["ports"] == [{"name": "controller", "containerPort": 9093, "protocol": "TCP"}]
    assert brk["ports"] == [{"name": "internal", "containerPort": 9092, "protocol": "TCP"},
                            {"name": "apps", "containerPort": 9094, "protocol": "TCP"}]
    assert ctl["readinessProbe"]["tcpSocket"] == {"port": "controller"}
    assert brk["readinessProbe"]["tcpSocket"] == {"port": "internal"}
    assert brk["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    assert "resources" not in ctl
    custom = render_cluster(make_input({"image": "registry.example/kafka:3.9.1-patched"}))
    assert container(by_name(custom, "StatefulSet", "demo-broker"))["image"] == "registry.example/kafka:3.9.1-patched"


def test_env_wiring_node_id_pod_name_and_advertised_listeners() -> None:
    objects = render_cluster(make_input({"listeners": [{"name": "internal", "port": 9092},
                                                        {"name": "apps", "port": 9094}]}))
    for role in ("controller", "broker"):
        sts = by_name(objects, "StatefulSet", f"demo-{role}")
        assert container(sts)["envFrom"] == [{"configMapRef": {"name": f"demo-{role}-config"}}]
        env = env_of(sts)
        assert env["POD_NAME"] == {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        assert env["KAFKA_NODE_ID"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    broker = by_name(objects, "StatefulSet", "demo-broker")
    names = [e["name"] for e in container(broker)["env"]]
    # $(POD_NAME) only expands when POD_NAME is defined earlier in the list.
    assert names.index("POD_NAME") < names.index("KAFKA_ADVERTISED_LISTENERS")
    assert env_of(broker)["KAFKA_ADVERTISED_LISTENERS"]["value"] == (
        "INTERNAL://$(POD_NAME).demo-brokers.kafka.svc.cluster.local:9092,"
        "APPS://$(POD_NAME).demo-brokers.kafka.svc.cluster.local:9094")
    assert "KAFKA_BROKER_RACK" not in env_of(broker)
    # The image exits when a controller has advertised listeners.
    controller = by_name(objects, "StatefulSet", "demo-controller")
    controller_cm = by_name(objects, "ConfigMap", "demo-controller-config")
    assert "KAFKA_ADVERTISED_LISTENERS" not in env_of(controller)
    assert "KAFKA_ADVERTISED_LISTENERS" not in controller_cm["data"]


def test_rack_awareness_reads_the_pod_topology_label_and_spreads_brokers() -> None:
    objects = render_cluster(make_input({"brokers": {"rackAwareness": {"topologyKey": "topology.kubernetes.io/region"}}}))
    broker = by_name(objects, "StatefulSet", "demo-broker")
    assert env_of(broker)["KAFKA_BROKER_RACK"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['topology.kubernetes.io/region']"}}
    [spread] = broker["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/region"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert "KAFKA_BROKER_RACK" not in env_of(by_name(objects, "StatefulSet", "demo-controller"))


def test_quorum_voters_are_static_and_shared_by_both_roles() -> None:
    objects = render_cluster(make_input(namespace="prod", domain="k8s.example"))
    voters = ("1000@demo-controller-1000.demo-controllers.prod.svc.k8s.example:9093,"
              "1001@demo-controller-1001.demo-controllers.prod.svc.k8s.example:9093,"
              "1002@demo-controller-1002.demo-controllers.prod.svc.k8s.example:9093")
    for role in ("controller", "broker"):
        data = by_name(objects, "ConfigMap", f"demo-{role}-config")["data"]
        assert data["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert data["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
        assert data["KAFKA_PROCESS_ROLES"] == role
        assert data["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
        assert data["CLUSTER_ID"] == CLUSTER_ID
    single = render_cluster(make_input({"controllers": {"replicas": 1}}))
    assert by_name(single, "ConfigMap", "demo-broker-config")["data"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        "1000@demo-controller-1000.demo-controllers.kafka.svc.cluster.local:9093")


def test_listener_configuration() -> None:
    inp = make_input({"listeners": [{"name": "internal", "port": 9092}, {"name": "apps", "port": 9094}]})
    ctl = controller_properties(inp)
    assert ctl["listeners"] == "CONTROLLER://:9093"
    assert ctl["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT"
    assert "inter.broker.listener.name" not in ctl
    brk = broker_properties(inp)
    assert brk["listeners"] == "INTERNAL://:9092,APPS://:9094"
    assert brk["listener.security.protocol.map"] == "INTERNAL:PLAINTEXT,APPS:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert brk["inter.broker.listener.name"] == "INTERNAL"
    renamed = broker_properties(make_input({"listeners": [{"name": "plain", "port": 19092}]}))
    assert renamed["inter.broker.listener.name"] == "PLAIN"
    assert renamed["listeners"] == "PLAIN://:19092"


@pytest.mark.parametrize(("replicas", "rf", "isr"), [(1, "1", "1"), (2, "2", "1"), (3, "3", "2"), (7, "3", "2")])
def test_broker_defaults_follow_the_broker_count(replicas: int, rf: str, isr: str) -> None:
    props = broker_properties(make_input({"brokers": {"replicas": replicas}}))
    assert props["default.replication.factor"] == rf
    assert props["min.insync.replicas"] == isr
    assert props["offsets.topic.replication.factor"] == rf
    assert props["transaction.state.log.replication.factor"] == rf
    assert props["transaction.state.log.min.isr"] == isr
    assert props["auto.create.topics.enable"] == "false"
    assert "share.coordinator.state.topic.replication.factor" not in props  # 3.9.1: no share groups


def test_share_group_state_topic_defaults_from_kafka_4() -> None:
    props = broker_properties(make_input({"version": "4.1.0", "brokers": {"replicas": 2}}))
    assert props["share.coordinator.state.topic.replication.factor"] == "2"
    assert props["share.coordinator.state.topic.min.isr"] == "1"


def test_user_config_overrides_defaults_but_never_operator_keys() -> None:
    props = broker_properties(make_input({"brokers": {"replicas": 5, "config": {
        "default.replication.factor": "5",
        "auto.create.topics.enable": "true",
        "num.partitions": "12",
        "node.id": "7",
        "process.roles": "broker,controller",
        "log.dirs": "/tmp",
        "a.b.c": "unpassable",
        "sasl.jaas.config": "x=y",
    }}}))
    assert props["default.replication.factor"] == "5"
    assert props["min.insync.replicas"] == "2"  # from the user's replication factor: min(2, 5 - 1)
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "12"
    assert "node.id" not in props  # per pod, from the ordinal
    assert props["process.roles"] == "broker"
    assert props["log.dirs"] == "/var/lib/kafka/data"
    assert "a.b.c" not in props and "sasl.jaas.config" not in props
    # Broker config never reaches the controllers.
    assert "num.partitions" not in controller_properties(make_input({"brokers": {"config": {"num.partitions": "12"}}}))


# -- the image's environment rule ----------------------------------------------------------------------------

@pytest.mark.parametrize(("prop", "env"), [
    ("abc.def", "KAFKA_ABC_DEF"),           # the examples of apache/kafka docker/examples/README.md
    ("abc-def", "KAFKA_ABC___DEF"),
    ("abc_def", "KAFKA_ABC__DEF"),
    ("min.insync.replicas", "KAFKA_MIN_INSYNC_REPLICAS"),
    ("listener.name.internal.ssl.keystore_type", "KAFKA_LISTENER_NAME_INTERNAL_SSL_KEYSTORE__TYPE"),
    ("log.cleaner.io.buffer.load.factor", "KAFKA_LOG_CLEANER_IO_BUFFER_LOAD_FACTOR"),
])
def test_property_env_round_trip(prop: str, env: str) -> None:
    assert property_to_env(prop) == env
    assert env_to_property(env) == prop
    assert env_problem(prop) is None


def test_env_rule_quirks_are_reported() -> None:
    # The image's converter misses a single underscore right after a replaced one: a.b.c arrives as a.b_c.
    assert env_to_property("KAFKA_A_B_C") == "a.b_c"
    assert env_problem("a.b.c") is not None
    assert env_problem("heap.opts") is not None  # KAFKA_HEAP_OPTS sizes the JVM
    assert env_problem("opts") is not None  # KAFKA_OPTS is excluded by the image
    assert env_problem("Min.Insync.Replicas") is not None
    assert env_to_property("KAFKA_OPTS") is None
    assert env_to_property("POD_NAME") is None


@pytest.mark.parametrize("role", list(Role))
def test_config_map_is_what_the_image_turns_into_server_properties(role: Role) -> None:
    inp = make_input({"brokers": {"config": {"num.partitions": "6", "log.retention.hours": "48"},
                                  "rackAwareness": {}}})
    data = by_name(render_cluster(inp), "ConfigMap", f"demo-{role.value}-config")["data"]
    # Simulate the image: every KAFKA* variable (minus excluded) becomes a property.
    rendered = {env_to_property(k): v for k, v in data.items() if env_to_property(k) is not None}
    assert rendered == role_properties(inp, role)
    assert set(data) - {property_to_env(k) for k in rendered} == {"CLUSTER_ID"}
    assert list(data) == sorted(data)


# -- services and disruption budgets -------------------------------------------------------------------------

def test_services() -> None:
    objects = render_cluster(make_input({"listeners": [{"name": "internal", "port": 9092},
                                                        {"name": "apps", "port": 9094}]}))
    for name, component, ports in (
        ("demo-controllers", "controller", [{"name": "controller", "port": 9093, "targetPort": "controller",
                                             "protocol": "TCP"}]),
        ("demo-brokers", "broker", [{"name": "internal", "port": 9092, "targetPort": "internal", "protocol": "TCP"},
                                    {"name": "apps", "port": 9094, "targetPort": "apps", "protocol": "TCP"}]),
    ):
        svc = by_name(objects, "Service", name)["spec"]
        assert svc["clusterIP"] == "None"
        assert svc["publishNotReadyAddresses"] is True
        assert svc["selector"] == {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": component}
        assert svc["ports"] == ports
    bootstrap = by_name(objects, "Service", "demo-kafka-bootstrap")["spec"]
    assert bootstrap["type"] == "ClusterIP"
    assert "clusterIP" not in bootstrap and "publishNotReadyAddresses" not in bootstrap
    assert bootstrap["selector"] == {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "broker"}
    assert [p["port"] for p in bootstrap["ports"]] == [9092, 9094]


def test_pod_disruption_budgets() -> None:
    objects = render_cluster(make_input())
    for role in ("controller", "broker"):
        pdb = by_name(objects, "PodDisruptionBudget", f"demo-{role}")
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {
            "app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": role}}}


def test_every_object_is_owned_labelled_and_hashed() -> None:
    for obj in render_cluster(make_input()):
        meta = obj["metadata"]
        assert meta["namespace"] == "kafka"
        assert meta["ownerReferences"] == [{
            "apiVersion": "kafka.ballast.dev/v1alpha1", "kind": "KafkaCluster", "name": "demo", "uid": UID,
            "controller": True, "blockOwnerDeletion": True}]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "kafka"
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert labels["app.kubernetes.io/managed-by"] == "ballast"
        assert labels["kafka.ballast.dev/cluster"] == "demo"
        assert labels["app.kubernetes.io/component"] in ("broker", "controller")
        assert spec_hash(obj) == content_hash(obj)


# -- hashes --------------------------------------------------------------------------------------------------

def _template_hash(inp: RenderInput, role: str) -> str:
    sts = by_name(render_cluster(inp), "StatefulSet", f"demo-{role}")
    value: str = sts["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    return value


def _spec_hashes(inp: RenderInput) -> dict[tuple[str, str], str]:
    return {(o["kind"], o["metadata"]["name"]): o["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
            for o in render_cluster(inp)}


def test_config_hash_on_the_pod_template_matches_config_hash() -> None:
    inp = make_input()
    assert _template_hash(inp, "broker") == config_hash(inp, Role.BROKER)
    assert _template_hash(inp, "controller") == config_hash(inp, Role.CONTROLLER)
    assert config_hash(inp, Role.BROKER) != config_hash(inp, Role.CONTROLLER)


@pytest.mark.parametrize(("change", "broker_restart", "controller_restart"), [
    ({"brokers": {"config": {"num.partitions": "6"}}}, True, False),
    ({"brokers": {"resources": {"limits": {"memory": "4Gi"}}}}, True, False),
    ({"brokers": {"rackAwareness": {}}}, True, False),
    ({"listeners": [{"name": "internal", "port": 19092}]}, True, False),
    ({"controllers": {"resources": {"requests": {"cpu": "500m"}}}}, False, True),
    ({"controllers": {"replicas": 5}}, True, True),  # the static voters change for everyone
    ({"version": "4.0.0"}, True, True),
    ({"brokers": {"storage": {"size": "20Gi"}}}, False, False),  # volume expansion needs no restart
])
def test_config_hash_changes_exactly_for_the_roles_that_need_a_restart(
        change: JSON, broker_restart: bool, controller_restart: bool) -> None:
    base = make_input({"brokers": {"replicas": 3}})
    merged: JSON = {"brokers": {"replicas": 3}}
    for key, value in change.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    changed = make_input(merged)
    assert (_template_hash(changed, "broker") != _template_hash(base, "broker")) is broker_restart
    assert (_template_hash(changed, "controller") != _template_hash(base, "controller")) is controller_restart


def test_scaling_brokers_needs_a_restart_only_when_the_defaults_change() -> None:
    three = make_input({"brokers": {"replicas": 3}})
    # 3 -> 5 brokers keeps every replication default (capped at 3): scaling out restarts nobody...
    assert _template_hash(make_input({"brokers": {"replicas": 5}}), "broker") == _template_hash(three, "broker")
    # ...while 1 -> 3 raises them, and brokers read them at start-up.
    assert _template_hash(make_input({"brokers": {"replicas": 1}}), "broker") != _template_hash(three, "broker")
    assert _template_hash(make_input({"brokers": {"replicas": 1}}), "controller") == _template_hash(three, "controller")


def test_spec_hash_tracks_each_objects_content() -> None:
    base = _spec_hashes(make_input())
    assert base == _spec_hashes(make_input())
    grown = _spec_hashes(make_input({"brokers": {"storage": {"size": "20Gi"}}}))
    assert {k for k in base if base[k] != grown[k]} == {("StatefulSet", "demo-broker")}
    scaled = _spec_hashes(make_input({"brokers": {"replicas": 4}}))
    assert {k for k in base if base[k] != scaled[k]} == {("StatefulSet", "demo-broker")}
    tuned = _spec_hashes(make_input({"brokers": {"config": {"num.partitions": "6"}}}))
    assert {k for k in base if base[k] != tuned[k]} == {("ConfigMap", "demo-broker-config"),
                                                        ("StatefulSet", "demo-broker")}
    assert len(set(base.values())) == len(base)


def test_hashes_are_stable_across_processes() -> None:
    """No dict/set ordering or per-process randomness leaks into a hash (PYTHONHASHSEED differs)."""
    script = (
        "import json, sys\n"
        "from tests.unit.test_manifests import make_input\n"
        "from ballast.manifests import render_cluster\n"
        "inp = make_input({'brokers': {'config': {'b.x': '1', 'a.y': '2', 'num.partitions': '3'}, 'rackAwareness': {}}})\n"
        "print(json.dumps([o['metadata']['annotations'] for o in render_cluster(inp)]))\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, cwd=os.getcwd())
        outputs.add(proc.stdout)
    local = make_input({"brokers": {"config": {"b.x": "1", "a.y": "2", "num.partitions": "3"}, "rackAwareness": {}}})
    outputs.add(json.dumps([o["metadata"]["annotations"] for o in render_cluster(local)]) + "\n")
    assert len(outputs) == 1


# -- helpers -------------------------------------------------------------------------------------------------

def test_pod_names_node_ids_and_addresses() -> None:
    assert broker_pod_names("demo", 3) == ["demo-broker-0", "demo-broker-1", "demo-broker-2"]
    assert controller_pod_names("demo", 3) == ["demo-controller-1000", "demo-controller-1001",
                                               "demo-controller-1002"]
    assert pod_name_for_node("demo", 2) == "demo-broker-2"
    assert pod_name_for_node("demo", 1001) == "demo-controller-1001"
    assert role_of_node(999) is Role.BROKER and role_of_node(1000) is Role.CONTROLLER
    assert node_id_for_pod("demo", "demo-broker-17") == 17
    assert node_id_for_pod("demo", "demo-controller-1002") == 1002
    for other in ("demo-broker-", "demo-broker-01", "demo-broker-x", "demo-controller-3", "demo-broker-1000",
                  "other-broker-1", "demo-broker-1-debug"):
        assert node_id_for_pod("demo", other) is None, other
    for node_id in (0, 5, 999, 1000, 1004):
        assert node_id_for_pod("demo", pod_name_for_node("demo", node_id)) == node_id
    with pytest.raises(ValueError):
        role_of_node(-1)
    assert bootstrap_address("demo", "kafka", "cluster.local", 9092) == (
        "demo-kafka-bootstrap.kafka.svc.cluster.local:9092")
    assert broker_selector("demo") == "app.kubernetes.io/component=broker,app.kubernetes.io/instance=demo"
    assert controller_selector("demo") == "app.kubernetes.io/component=controller,app.kubernetes.io/instance=demo"
    assert cluster_selector("demo") == "kafka.ballast.dev/cluster=demo"


def test_render_input_rejects_a_malformed_cluster_id() -> None:
    with pytest.raises(ValueError, match="cluster_id"):
        RenderInput(name="demo", namespace="kafka", uid=UID, spec=KafkaClusterSpec(), cluster_id="not-an-id")


# -- real API shapes -----------------------------------------------------------------------------------------

MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
}


@pytest.fixture(scope="module")
def api_client() -> Iterator[ApiClient]:
    with ApiClient() as api:
        yield api


def assert_real_api_shape(api: ApiClient, obj: JSON) -> None:
    """Deserialize through the official client's model (which keeps only fields the API defines and checks
    required ones) and serialize back: anything misspelled, misplaced or mistyped would not survive."""
    model = api._ApiClient__deserialize(obj, MODELS[(obj["apiVersion"], obj["kind"])])  # type: ignore[attr-defined]
    assert api.sanitize_for_serialization(model) == obj


def test_rendered_objects_are_real_kubernetes_api_objects(api_client: ApiClient) -> None:
    rich = make_input({
        "controllers": {"replicas": 5, "storage": {"size": "2Gi", "storageClassName": "fast"},
                        "resources": {"requests": {"cpu": "250m"}}},
        "brokers": {"replicas": 6, "resources": {"limits": {"memory": "8Gi"}}, "rackAwareness": {},
                    "config": {"num.partitions": "12"}},
        "listeners": [{"name": "internal", "port": 9092}, {"name": "apps", "port": 9094}],
    })
    for inp in (make_input(), rich):
        for obj in render_cluster(inp):
            assert_real_api_shape(api_client, obj)


def test_a_misplaced_field_fails_the_shape_check(api_client: ApiClient) -> None:
    sts = by_name(render_cluster(make_input()), "StatefulSet", "demo-broker")
    sts["spec"]["template"]["spec"]["containers"][0]["envfrom"] = []  # wrong case: not an API field
    with pytest.raises(AssertionError):
        assert_real_api_shape(api_client, sts)


# -- property: deterministic, owned, labelled, real ----------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6})?", fullmatch=True)
_listeners = st.lists(
    st.tuples(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), st.integers(1024, 65535)),
    min_size=1, max_size=3, unique_by=(lambda t: t[0], lambda t: t[1]),
).filter(lambda ls: all(name != "controller" for name, _ in ls))
_config = st.dictionaries(
    st.sampled_from(["num.partitions", "log.retention.ms", "node.id", "compression.type", "a.b.c",
                     "message.max.bytes", "listeners"]),
    st.text(st.characters(codec="ascii", exclude_characters="\r\n\x00"), max_size=8),
    max_size=4,
)
_specs = st.fixed_dictionaries({
    "version": st.sampled_from(SUPPORTED_KAFKA_VERSIONS),
    "controllers": st.fixed_dictionaries({"replicas": st.sampled_from([1, 3, 5])}),
    "brokers": st.fixed_dictionaries(
        {"replicas": st.integers(1, 12), "config": _config,
         "storage": st.fixed_dictionaries({"size": st.sampled_from(["1Gi", "500M", "2.5Ti"])},
                                          optional={"storageClassName": st.sampled_from(["fast", "standard"])})},
        optional={"rackAwareness": st.just({}), "resources": st.just({"requests": {"cpu": "1"}})}),
    "listeners": _listeners.map(lambda ls: [{"name": n, "port": p} for n, p in ls]),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_specs, name=_names, namespace=_names)
def test_rendering_is_deterministic_owned_labelled_and_real(
        api_client: ApiClient, spec: JSON, name: str, namespace: str) -> None:
    inp = make_input(spec, name=name, namespace=namespace)
    objects = render_cluster(inp)
    # Same input (even rebuilt from its JSON form) -> identical objects.
    again = RenderInput.model_validate_json(inp.model_dump_json(by_alias=True))
    assert render_cluster(again) == objects
    assert len({(o["kind"], o["metadata"]["name"]) for o in objects}) == len(objects) == 9
    for obj in objects:
        meta = obj["metadata"]
        assert meta["ownerReferences"] == [owner_reference(name, UID)]
        assert meta["labels"]["app.kubernetes.io/instance"] == name
        assert meta["labels"]["kafka.ballast.dev/cluster"] == name
        assert meta["namespace"] == namespace
        assert spec_hash(obj) == content_hash(obj)
        assert_real_api_shape(api_client, obj)
    broker = by_name(objects, "StatefulSet", f"{name}-broker")
    # Operator-owned keys never leak from user config into the broker ConfigMap.
    data = by_name(objects, "ConfigMap", f"{name}-broker-config")["data"]
    assert data["KAFKA_PROCESS_ROLES"] == "broker"
    assert "KAFKA_NODE_ID" not in data
    assert data["KAFKA_LISTENERS"] == ",".join(f"{lst['name'].upper()}://:{lst['port']}" for lst in spec["listeners"])
    assert broker["spec"]["replicas"] == spec["brokers"]["replicas"]
