"""ballast.validation: every error names its field; rendering leaves out exactly the config it rejects."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.manifests import RenderInput, render_cluster
from ballast.manifests.config import OPERATOR_OWNED, REPLICATION_KEYS, config_entry_problem, user_config
from ballast.spec import KafkaClusterSpec, StorageSpec
from ballast.validation import FieldError, parse_spec, validate_name, validate_spec


def spec(raw: dict[str, Any] | None = None) -> KafkaClusterSpec:
    return KafkaClusterSpec.model_validate(raw or {})


def errors(raw: dict[str, Any]) -> list[str]:
    return [str(e) for e in validate_spec(spec(raw))]


def config_errors(config: dict[str, str], replicas: int = 3) -> list[str]:
    return errors({"brokers": {"replicas": replicas, "config": config}})


def test_defaults_are_valid() -> None:
    assert validate_spec(spec()) == []
    assert validate_spec(spec({"brokers": {"replicas": 1}, "controllers": {"replicas": 1}})) == []


def test_field_error_names_the_field() -> None:
    error = FieldError(path="spec.brokers.replicas", message="must be at least 1")
    assert str(error) == "spec.brokers.replicas: must be at least 1"


@pytest.mark.parametrize("key", sorted(OPERATOR_OWNED))
def test_operator_owned_keys_are_rejected(key: str) -> None:
    [error] = config_errors({key: "1"})
    assert error.startswith(f"spec.brokers.config[{key}]: owned by the operator (")


def test_node_id_message() -> None:
    assert config_errors({"node.id": "3"}) == [
        "spec.brokers.config[node.id]: owned by the operator (derived from the pod ordinal)"]


@pytest.mark.parametrize(("config", "expected"), [
    ({"a.b.c": "1"}, "spec.brokers.config[a.b.c]: cannot be passed to the apache/kafka image: KAFKA_A_B_C "
                     "would reach Kafka as 'a.b_c'"),
    ({"heap.opts": "-Xmx1g"}, "spec.brokers.config[heap.opts]: cannot be set: the apache/kafka image reads "
                              "KAFKA_HEAP_OPTS as a start-up setting, not a property"),
    ({"Num.Partitions": "3"}, "spec.brokers.config[Num.Partitions]: is not a Kafka property name (lower-case "
                              "letters, digits, '.', '_' and '-')"),
    ({"sasl.jaas.config": "x required user=\"a\";"},
     "spec.brokers.config[sasl.jaas.config]: values containing '=' are dropped by the apache/kafka image's "
     "configuration script"),
    ({"log.retention.ms": "1\nnode.id"}, "spec.brokers.config[log.retention.ms]: must be a single line without "
                                         "control characters"),
])
def test_config_that_cannot_reach_kafka_is_rejected(config: dict[str, str], expected: str) -> None:
    assert config_errors(config) == [expected]


@pytest.mark.parametrize(("config", "replicas", "expected"), [
    ({"default.replication.factor": "3", "min.insync.replicas": "2"}, 3, []),
    ({"default.replication.factor": "2"}, 3, []),  # the default min ISR follows: 1
    ({"min.insync.replicas": "2"}, 3, []),
    ({"default.replication.factor": "4"}, 3,
     ["spec.brokers.config[default.replication.factor]: 4 exceeds spec.brokers.replicas (3)"]),
    ({"default.replication.factor": "3", "min.insync.replicas": "3"}, 5,
     ["spec.brokers.config[min.insync.replicas]: 3 must be less than default.replication.factor (3): with that "
      "many in-sync replicas required, one broker down blocks acks=all writes"]),
    ({"min.insync.replicas": "2"}, 2,
     ["spec.brokers.config[min.insync.replicas]: 2 must be less than default.replication.factor (2, the default "
      "for this many brokers): with that many in-sync replicas required, one broker down blocks acks=all writes"]),
    ({"min.insync.replicas": "two"}, 3,
     ["spec.brokers.config[min.insync.replicas]: must be a positive integer, got 'two'"]),
    ({"default.replication.factor": "0"}, 3,
     ["spec.brokers.config[default.replication.factor]: must be a positive integer, got '0'"]),
    ({"offsets.topic.replication.factor": "5"}, 3,
     ["spec.brokers.config[offsets.topic.replication.factor]: 5 exceeds spec.brokers.replicas (3)"]),
    ({"transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "3"}, 3,
     ["spec.brokers.config[transaction.state.log.min.isr]: 3 must be less than "
      "transaction.state.log.replication.factor (3)"]),
])
def test_replication_rules(config: dict[str, str], replicas: int, expected: list[str]) -> None:
    assert config_errors(config, replicas) == expected


def test_storage_size_must_parse() -> None:
    # The models refuse such sizes; a spec built without validation must still be caught.
    good = spec()
    bad = good.model_copy(update={
        "brokers": good.brokers.model_copy(update={"storage": StorageSpec.model_construct(size="10Gb")}),
        "controllers": good.controllers.model_copy(update={"storage": StorageSpec.model_construct(size="0")}),
    })
    assert [str(e) for e in validate_spec(bad)] == [
        "spec.brokers.storage.size: '10Gb' is not a quantity such as 10Gi",
        "spec.controllers.storage.size: must be greater than zero",
    ]


def test_parse_spec_reports_schema_errors_with_wire_paths() -> None:
    parsed, problems = parse_spec({"brokers": {"storage": {"size": "10Gb"}}, "listeners": [{"port": 80}]})
    assert parsed is None
    assert [p.path for p in problems] == ["spec.brokers.storage.size", "spec.listeners[0].port"]
    parsed, problems = parse_spec({"brokers": {"config": {"node.id": "1"}}})
    assert parsed is not None
    assert [p.path for p in problems] == ["spec.brokers.config[node.id]"]
    parsed, problems = parse_spec({"brokers": {"replicas": 5}})
    assert parsed is not None and parsed.brokers.replicas == 5 and problems == []


def test_listeners() -> None:
    assert errors({"listeners": [{"name": "internal", "port": 9092}, {"name": "internal", "port": 9094},
                                 {"name": "apps", "port": 9094}]}) == [
        "spec.listeners[1].name: duplicate listener name 'internal'",
        "spec.listeners[2].port: duplicate listener port 9094",
    ]
    assert errors({"listeners": [{"name": "controller"}]}) == [
        "spec.listeners[0].name: 'controller' is reserved for the KRaft controller listener"]
    assert errors({"listeners": [{"name": "a--b"}]}) == [
        "spec.listeners[0].name: must not contain '--' or end with '-' (it names the Service port)"]


def test_rack_awareness_needs_a_label_pods_receive() -> None:
    assert errors({"brokers": {"rackAwareness": {}}}) == []
    assert errors({"brokers": {"rackAwareness": {"topologyKey": "topology.kubernetes.io/region"}}}) == []
    assert errors({"brokers": {"rackAwareness": {"topologyKey": "example.com/rack"}}}) == [
        "spec.brokers.rackAwareness.topologyKey: pods only receive the node labels topology.kubernetes.io/zone "
        "and topology.kubernetes.io/region (PodTopologyLabels admission); 'example.com/rack' would leave "
        "broker.rack empty"]


def test_version_must_be_supported() -> None:
    assert errors({"version": "2.8.1"}) == [
        "spec.version: unsupported Kafka version '2.8.1' (supported: 3.7.2, 3.8.1, 3.9.0, 3.9.1, 4.0.0, 4.1.0)"]


def test_cluster_name() -> None:
    assert validate_name("demo") == []
    assert validate_name("a" * 41) == []
    assert [str(e) for e in validate_name("a" * 42)] == ["metadata.name: must be no more than 41 characters"]
    assert [e.path for e in validate_name("my.cluster")] == ["metadata.name"]
    assert [e.path for e in validate_name("1st")] == ["metadata.name"]


_keys = st.one_of(
    st.sampled_from([*OPERATOR_OWNED, *REPLICATION_KEYS, "num.partitions", "a.b.c", "heap.opts", "x_y.z-w"]),
    st.from_regex(r"[a-zA-Z0-9._-]{1,12}", fullmatch=True),
)
_values = st.one_of(st.text(st.characters(codec="ascii"), max_size=6), st.integers(0, 6).map(str))


@settings(max_examples=60, deadline=None)
@given(config=st.dictionaries(_keys, _values, max_size=6), replicas=st.integers(1, 5))
def test_rendering_leaves_out_exactly_the_entries_validation_rejects(config: dict[str, str], replicas: int) -> None:
    parsed = spec({"brokers": {"replicas": replicas, "config": config}})
    reported = {(e.path, e.message) for e in validate_spec(parsed)}
    rendered = user_config(parsed)
    for key, value in config.items():
        problem = config_entry_problem(key, value)
        assert (key in rendered) == (problem is None), key
        if problem is not None:
            assert (f"spec.brokers.config[{key}]", problem) in reported
    # Rendering never fails, whatever the config.
    inp = RenderInput(name="c", namespace="n", uid="u", spec=parsed, cluster_id="A" * 22)
    assert len(render_cluster(inp)) == 9
