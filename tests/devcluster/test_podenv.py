"""Container environment, command line and mounted files, resolved as kubelet does (devcluster.podenv)."""

from __future__ import annotations

import base64
import json

import pytest

from devcluster.podenv import (
    ContainerConfigError,
    DictLookup,
    PodNetwork,
    VolumeMountError,
    expand,
    mounted_files,
    resolve_command,
    resolve_env,
    service_env,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


NET = PodNetwork(("10.244.1.7",), ("127.0.0.10",), {"cpu": "8", "memory": "32Gi"})
LOOKUP = DictLookup(
    configmaps={"cfg": {"data": {"mode": "fast", "level": "3", "bad-key.x": "v"},
                        "binaryData": {"blob.bin": b64("\x00\x01")}}},
    secrets={"creds": {"data": {"user": b64("admin"), "password": b64("s3cret")}}})


def pod(containers: list[dict], **spec: object) -> dict:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1", "labels": {"app": "web", "tier": "fe"},
                         "annotations": {"team": "a"}},
            "spec": {"nodeName": "devcluster-worker-2", "serviceAccountName": "runner", "containers": containers,
                     **spec}}


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)-$(B)", "alpha-beta"),
    ("$$(A)", "$(A)"),
    ("$(MISSING)", "$(MISSING)"),
    ("cost: $5 and $$", "cost: $5 and $"),
    ("open $(A", "open $(A"),
    ("trailing $", "trailing $"),
    ("$(A)$(A)", "alphaalpha"),
])
def test_expand_follows_kubernetes_expansion_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "alpha", "B": "beta"}) == expected


def test_env_precedence_expansion_and_sources() -> None:
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "creds"}, "prefix": "DB_"},
                    {"configMapRef": {"name": "absent", "optional": True}}],
        "env": [
            {"name": "mode", "value": "slow"},  # env overrides envFrom
            {"name": "URL", "value": "http://$(DB_user):$(PORT)/$(mode)"},  # PORT is defined later
            {"name": "PORT", "value": "8080"},
            {"name": "ESCAPED", "value": "$$(PORT)"},
            {"name": "EMPTY"},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": True}}},
            {"name": "OPT2", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}},
        ]}
    env = resolve_env(pod([container]), container, LOOKUP, NET)
    assert env["mode"] == "slow"
    assert env["level"] == "3" and env["bad-key.x"] == "v"  # envFrom keeps keys as they are
    assert env["DB_user"] == "admin" and env["DB_password"] == "s3cret"
    assert env["URL"] == "http://admin:$(PORT)/slow"
    assert env["ESCAPED"] == "$(PORT)"
    assert env["EMPTY"] == ""
    assert env["LEVEL"] == "3" and env["PASS"] == "s3cret"
    assert "OPT" not in env and "OPT2" not in env


def test_field_and_resource_refs() -> None:
    container = {
        "name": "app",
        "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"memory": "256Mi"}},
        "env": [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in [
            ("NAME", "metadata.name"), ("NS", "metadata.namespace"), ("UID", "metadata.uid"),
            ("APP", "metadata.labels['app']"), ("TEAM", "metadata.annotations['team']"),
            ("NODE", "spec.nodeName"), ("SA", "spec.serviceAccountName"), ("IP", "status.podIP"),
            ("IPS", "status.podIPs"), ("HOST", "status.hostIP")]] + [
            {"name": n, "valueFrom": {"resourceFieldRef": r}} for n, r in [
                ("CPU", {"resource": "limits.cpu"}), ("MCPU", {"resource": "limits.cpu", "divisor": "1m"}),
                ("MEM_MI", {"resource": "limits.memory", "divisor": "1Mi"}),
                ("REQ_MEM", {"resource": "requests.memory"}),
                ("REQ_CPU", {"resource": "requests.cpu", "divisor": "1m"}),  # defaults to the limit
            ]]}
    env = resolve_env(pod([container]), container, LOOKUP, NET)
    assert {k: env[k] for k in ("NAME", "NS", "UID", "APP", "TEAM", "NODE", "SA", "IP", "IPS", "HOST")} == {
        "NAME": "web-0", "NS": "shop", "UID": "u-1", "APP": "web", "TEAM": "a", "NODE": "devcluster-worker-2",
        "SA": "runner", "IP": "10.244.1.7", "IPS": "10.244.1.7", "HOST": "127.0.0.10"}
    assert env["CPU"] == "1" and env["MCPU"] == "500" and env["MEM_MI"] == "1024"
    assert env["REQ_MEM"] == str(256 * 2**20) and env["REQ_CPU"] == "500"


def test_unset_limits_fall_back_to_node_allocatable() -> None:
    container = {"name": "app", "env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                                        {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                                            "resource": "limits.memory", "divisor": "1Gi"}}}]}
    env = resolve_env(pod([container]), container, LOOKUP, NET)
    assert env["CPU"] == "8" and env["MEM"] == "32"


@pytest.mark.parametrize(("var", "message"), [
    ({"configMapKeyRef": {"name": "gone", "key": "k"}}, 'configmap "gone" not found'),
    ({"configMapKeyRef": {"name": "cfg", "key": "nope"}}, "couldn't find key nope in ConfigMap shop/cfg"),
    ({"secretKeyRef": {"name": "gone", "key": "k"}}, 'secret "gone" not found'),
    ({"secretKeyRef": {"name": "creds", "key": "nope"}}, "couldn't find key nope in Secret shop/creds"),
])
def test_missing_required_source_is_a_container_config_error(var: dict, message: str) -> None:
    container = {"name": "app", "env": [{"name": "X", "valueFrom": var}]}
    with pytest.raises(ContainerConfigError) as err:
        resolve_env(pod([container]), container, LOOKUP, NET)
    assert str(err.value) == message


def test_env_from_missing_required_configmap() -> None:
    container = {"name": "app", "envFrom": [{"configMapRef": {"name": "absent"}}]}
    with pytest.raises(ContainerConfigError, match=r'^configmap "absent" not found$'):
        resolve_env(pod([container]), container, LOOKUP, NET)


def test_service_links() -> None:
    services = [
        {"metadata": {"name": "kubernetes", "namespace": "default"},
         "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}},
        {"metadata": {"name": "my-db", "namespace": "shop"},
         "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]}},
        {"metadata": {"name": "headless", "namespace": "shop"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}},
        {"metadata": {"name": "other", "namespace": "elsewhere"}, "spec": {"clusterIP": "10.96.0.30",
                                                                           "ports": [{"port": 80}]}},
    ]
    env = service_env(services, "shop")
    assert env["MY_DB_SERVICE_HOST"] == "10.96.0.20" and env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_SERVICE_PORT_SQL"] == "5432" and env["MY_DB_PORT"] == "tcp://10.96.0.20:5432"
    assert env["MY_DB_PORT_5432_TCP_ADDR"] == "10.96.0.20" and env["MY_DB_PORT_5432_TCP_PROTO"] == "tcp"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not any(k.startswith(("HEADLESS_", "OTHER_")) for k in env)
    linkless = service_env(services, "shop", enable_service_links=False)
    assert "MY_DB_SERVICE_HOST" not in linkless and linkless["KUBERNETES_SERVICE_PORT"] == "443"
    # A declared variable wins over a service variable of the same name.
    container = {"name": "app", "env": [{"name": "MY_DB_SERVICE_HOST", "value": "db.local"}]}
    assert resolve_env(pod([container]), container, LOOKUP, NET, services)["MY_DB_SERVICE_HOST"] == "db.local"


def test_command_and_args_expansion() -> None:
    container = {"name": "app", "command": ["/bin/$(TOOL)"], "args": ["--port=$(PORT)", "--x=$(NOPE)", "$$(PORT)"],
                 "env": [{"name": "PORT", "value": "9092"}, {"name": "TOOL", "value": "kafka"}]}
    env = resolve_env(pod([container]), container, LOOKUP, NET)
    assert resolve_command(container, env) == (["/bin/kafka"], ["--port=9092", "--x=$(NOPE)", "$(PORT)"])


def test_mounted_files_from_configmap_secret_projected_and_downward_api() -> None:
    volumes = [
        {"name": "all", "configMap": {"name": "cfg"}},
        {"name": "picked", "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "conf/mode.txt"}]}},
        {"name": "sec", "secret": {"secretName": "creds"}},
        {"name": "proj", "projected": {"sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "level", "path": "level"}]}},
            {"secret": {"name": "creds", "items": [{"key": "user", "path": "user"}]}},
            {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}},
        {"name": "down", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                                                   {"path": "mem", "resourceFieldRef": {
                                                       "containerName": "app", "resource": "limits.memory",
                                                       "divisor": "1Mi"}}]}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
    ]
    container = {"name": "app", "resources": {"limits": {"memory": "512Mi"}}, "volumeMounts": [
        {"name": "all", "mountPath": "/etc/all"},
        {"name": "picked", "mountPath": "/etc/picked"},
        {"name": "all", "mountPath": "/etc/app/mode", "subPath": "mode"},
        {"name": "sec", "mountPath": "/secrets", "readOnly": True},
        {"name": "proj", "mountPath": "/var/run/proj"},
        {"name": "down", "mountPath": "/etc/podinfo"},
        {"name": "data", "mountPath": "/var/lib/kafka"},
    ]}
    files = mounted_files(pod([container], volumes=volumes), container, LOOKUP, NET)
    assert files["/etc/all/mode"] == b"fast" and files["/etc/all/blob.bin"] == b"\x00\x01"
    assert files["/etc/picked/conf/mode.txt"] == b"fast" and "/etc/picked/mode" not in files
    assert files["/etc/app/mode"] == b"fast"
    assert files["/secrets/password"] == b"s3cret"
    assert files["/var/run/proj/level"] == b"3" and files["/var/run/proj/user"] == b"admin"
    assert files["/var/run/proj/labels"] == b'app="web"\ntier="fe"'
    claims = json.loads(base64.urlsafe_b64decode(files["/var/run/proj/token"].split(b".")[1] + b"=="))
    assert claims["sub"] == "system:serviceaccount:shop:runner"
    assert files["/etc/podinfo/name"] == b"web-0" and files["/etc/podinfo/mem"] == b"512"
    assert not any(path.startswith("/var/lib/kafka") for path in files)


def test_sub_path_expr_selects_a_directory() -> None:
    volumes = [{"name": "all", "configMap": {"name": "cfg", "items": [
        {"key": "mode", "path": "web-0/mode"}, {"key": "level", "path": "web-1/level"}]}}]
    container = {"name": "app", "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "volumeMounts": [{"name": "all", "mountPath": "/cfg", "subPathExpr": "$(POD)"}]}
    p = pod([container], volumes=volumes)
    env = resolve_env(p, container, LOOKUP, NET)
    assert mounted_files(p, container, LOOKUP, NET, env) == {"/cfg/mode": b"fast"}


@pytest.mark.parametrize(("volume", "message"), [
    ({"configMap": {"name": "gone"}}, 'configmap "gone" not found'),
    ({"secret": {"secretName": "gone"}}, 'secret "gone" not found'),
    ({"configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}},
     "configmap references non-existent config key: nope"),
    ({"secret": {"secretName": "creds", "items": [{"key": "nope", "path": "x"}]}},
     "references non-existent secret key: nope"),
])
def test_missing_volume_sources_fail_the_mount(volume: dict, message: str) -> None:
    container = {"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}
    with pytest.raises(VolumeMountError) as err:
        mounted_files(pod([container], volumes=[{"name": "v", **volume}]), container, LOOKUP, NET)
    assert str(err.value) == message and err.value.volume == "v"


def test_optional_missing_volume_sources_mount_empty() -> None:
    container = {"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/v"}, {"name": "w", "mountPath": "/w"}]}
    volumes = [{"name": "v", "configMap": {"name": "gone", "optional": True}},
               {"name": "w", "secret": {"secretName": "creds", "optional": True,
                                        "items": [{"key": "nope", "path": "x"}, {"key": "user", "path": "u"}]}}]
    assert mounted_files(pod([container], volumes=volumes), container, LOOKUP, NET) == {"/w/u": b"admin"}
