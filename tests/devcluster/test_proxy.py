"""Endpoints contents and the loopback kube-proxy, through the kubernetes client and real TCP connections.

Pods here are never scheduled (``schedulerName`` names no scheduler), so no kubelet touches them: each test
plays the kubelet itself, giving pods an IP, a Ready condition (through ``/status``) and, for the proxy, the
``devcluster.ballast.dev/loopback`` annotation pointing at an echo server the test runs.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.cluster import DevCluster, DevClusterThread
from devcluster.controllers.proxy import LOOPBACK_ANNOTATION
from tests.conftest import wait_for

NS = "default"


def _pod(core: client.CoreV1Api, name: str, labels: dict[str, str], ports: list[dict[str, Any]],
         **spec: Any) -> Any:
    body = {"metadata": {"name": name, "labels": labels},
            "spec": {"schedulerName": "devcluster-test-manual", **spec,
                     "containers": [{"name": "main", "image": "busybox:1.36", "ports": ports}]}}
    return core.create_namespaced_pod(NS, body)


def _set_status(core: client.CoreV1Api, name: str, ip: str | None, ready: bool) -> None:
    status: dict[str, Any] = {"phase": "Running",
                              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    core.patch_namespaced_pod_status(name, NS, {"status": status})


def _annotate(core: client.CoreV1Api, name: str, loopback: dict[int, int]) -> None:
    value = json.dumps({str(k): f"127.0.0.1:{v}" for k, v in loopback.items()})
    core.patch_namespaced_pod(name, NS, {"metadata": {"annotations": {LOOPBACK_ANNOTATION: value}}})


def _endpoints(core: client.CoreV1Api, name: str) -> dict[str, Any] | None:
    try:
        return core.api_client.sanitize_for_serialization(core.read_namespaced_endpoints(name, NS))
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _addr(pod: Any, ip: str, **extra: Any) -> dict[str, Any]:
    return {"ip": ip, **extra,
            "targetRef": {"kind": "Pod", "namespace": NS, "name": pod.metadata.name, "uid": pod.metadata.uid}}


# -- Endpoints ------------------------------------------------------------------------------------------
def test_endpoints_list_ready_and_not_ready_pods_per_target_port(core: client.CoreV1Api) -> None:
    core.create_namespaced_service(NS, {
        "metadata": {"name": "kafka", "labels": {"team": "data"}},
        "spec": {"selector": {"app": "kafka"},
                 "ports": [{"name": "client", "port": 9092, "targetPort": "client"},
                           {"name": "metrics", "port": 9404, "targetPort": 9404}]}})
    p0 = _pod(core, "kafka-0", {"app": "kafka"}, [{"name": "client", "containerPort": 19092}],
              hostname="kafka-0", subdomain="kafka")
    p1 = _pod(core, "kafka-1", {"app": "kafka"}, [])  # no "client" port: only in the metrics subset
    _pod(core, "kafka-2", {"app": "kafka"}, [{"name": "client", "containerPort": 19092}])  # no IP yet
    _pod(core, "other", {"app": "other"}, [{"name": "client", "containerPort": 19092}])
    _set_status(core, "kafka-0", "10.244.0.10", ready=True)
    _set_status(core, "kafka-1", "10.244.0.11", ready=False)
    _set_status(core, "kafka-2", None, ready=False)
    _set_status(core, "other", "10.244.0.12", ready=True)

    expected = [
        {"addresses": [_addr(p0, "10.244.0.10", hostname="kafka-0")],
         "ports": [{"name": "client", "port": 19092, "protocol": "TCP"}]},
        {"addresses": [_addr(p0, "10.244.0.10", hostname="kafka-0")],
         "notReadyAddresses": [_addr(p1, "10.244.0.11")],
         "ports": [{"name": "metrics", "port": 9404, "protocol": "TCP"}]},
    ]
    ep = wait_for(lambda: (e := _endpoints(core, "kafka")) and e.get("subsets") == expected and e,
                  message="endpoints with both subsets")
    assert ep["metadata"]["labels"] == {"team": "data"}
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]

    _set_status(core, "kafka-1", "10.244.0.11", ready=True)
    wait_for(lambda: _endpoints(core, "kafka")["subsets"][1]["addresses"] == [
        _addr(p0, "10.244.0.10", hostname="kafka-0"), _addr(p1, "10.244.0.11")], message="kafka-1 ready")

    core.delete_namespaced_pod("kafka-0", NS)
    wait_for(lambda: _endpoints(core, "kafka")["subsets"] == [
        {"addresses": [_addr(p1, "10.244.0.11")], "ports": [{"name": "metrics", "port": 9404, "protocol": "TCP"}]}],
        message="kafka-0 removed")

    core.delete_namespaced_service("kafka", NS)
    wait_for(lambda: _endpoints(core, "kafka") is None, message="endpoints deleted with the service")


def test_headless_service_publishing_not_ready_addresses(core: client.CoreV1Api) -> None:
    core.create_namespaced_service(NS, {
        "metadata": {"name": "brokers"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app": "b"},
                 "ports": [{"name": "peer", "port": 9093}]}})
    core.create_namespaced_service(NS, {
        "metadata": {"name": "bare"}, "spec": {"clusterIP": "None", "selector": {"app": "b"}}})
    pod = _pod(core, "b-0", {"app": "b"}, [])
    _set_status(core, "b-0", "10.244.1.5", ready=False)

    ep = wait_for(lambda: (e := _endpoints(core, "brokers")) and e.get("subsets") and e, message="endpoints")
    assert ep["subsets"] == [{"addresses": [_addr(pod, "10.244.1.5")],
                              "ports": [{"name": "peer", "port": 9093, "protocol": "TCP"}]}]
    assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    bare = wait_for(lambda: (e := _endpoints(core, "bare")) and e.get("subsets") and e, message="bare endpoints")
    assert bare["subsets"] == [{"notReadyAddresses": [_addr(pod, "10.244.1.5")]}]


def test_services_without_selector_keep_their_own_endpoints(core: client.CoreV1Api) -> None:
    core.create_namespaced_service(NS, {"metadata": {"name": "external"}, "spec": {"ports": [{"port": 5432}]}})
    core.create_namespaced_endpoints(NS, {"metadata": {"name": "external"},
                                          "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"port": 5432}]}]})
    _pod(core, "stray", {"app": "stray"}, [])
    _set_status(core, "stray", "10.244.2.2", ready=True)
    # A change that would make the controller rewrite managed Endpoints; these ones stay as written.
    core.patch_namespaced_service("external", NS, {"metadata": {"labels": {"touched": "yes"}}})
    ep = _endpoints(core, "external")
    assert ep["subsets"] == [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"port": 5432, "protocol": "TCP"}]}]
    assert "labels" not in ep["metadata"]


def test_hand_made_loopback_endpoints_are_proxied(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    """A selector-less Service can front a process on the host: its Endpoints name a 127.0.0.1 address."""
    server, local = _start_echo(dc, b"host")
    core.create_namespaced_service(NS, {"metadata": {"name": "host-db"}, "spec": {"ports": [{"port": 5432}]}})
    core.create_namespaced_endpoints(NS, {"metadata": {"name": "host-db"},
                                          "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": local}]}]})
    mapping = wait_for(lambda: _service_port(core, "host-db"), message="loopback annotation")
    assert _exchange(int(mapping["5432"].rpartition(":")[2])) == b"host|ping"
    dc.call(lambda _: server.close())


# -- loopback kube-proxy ----------------------------------------------------------------------------------
def _start_echo(dc: DevClusterThread, tag: bytes) -> tuple[asyncio.Server, int]:
    """An echo server standing in for a pod's process: it names itself, then echoes until EOF."""

    async def start(_: DevCluster) -> tuple[asyncio.Server, int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(tag + b"|")
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    return dc.call(start)


def _exchange(port: int, payload: bytes = b"ping") -> bytes | None:
    """Send ``payload``, half-close, read to EOF. None when the connection is refused or reset."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            return data
    except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
        return None


def _service_port(core: client.CoreV1Api, name: str) -> dict[str, str]:
    annotations = core.read_namespaced_service(name, NS).metadata.annotations or {}
    return json.loads(annotations.get(LOOPBACK_ANNOTATION, "{}"))


def test_loopback_proxy_forwards_round_robin_and_fails_over(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    core.create_namespaced_service(NS, {"metadata": {"name": "echo"},
                                        "spec": {"selector": {"app": "echo"},
                                                 "ports": [{"name": "tcp", "port": 80, "targetPort": "echo"}]}})
    mapping = wait_for(lambda: _service_port(core, "echo"), message="loopback annotation on the service")
    assert list(mapping) == ["80"] and mapping["80"].startswith("127.0.0.1:")
    port = int(mapping["80"].rpartition(":")[2])
    assert _exchange(port) in (None, b"")  # no endpoint yet: rejected at once

    servers = {}
    for i, tag in enumerate((b"a", b"b")):
        name = f"echo-{tag.decode()}"
        _pod(core, name, {"app": "echo"}, [{"name": "echo", "containerPort": 7000}])
        servers[tag], local = _start_echo(dc, tag)
        _annotate(core, name, {7000: local})
        _set_status(core, name, f"10.244.3.{i + 1}", ready=True)
    # A ready pod the kubelet never gave a loopback address is listed but not dialled.
    _pod(core, "echo-c", {"app": "echo"}, [{"name": "echo", "containerPort": 7000}])
    _set_status(core, "echo-c", "10.244.3.3", ready=True)
    wait_for(lambda: len((_endpoints(core, "echo") or {}).get("subsets", [{}])[0].get("addresses", [])) == 3,
             message="three ready endpoints")

    replies = [_exchange(port, b"hello") for _ in range(4)]
    assert sorted(replies) == [b"a|hello", b"a|hello", b"b|hello", b"b|hello"]
    assert replies[0] != replies[1]  # round-robin alternates

    # The process behind echo-a dies while its pod still counts as ready: connections fail over to echo-b.
    dc.call(lambda _: servers[b"a"].close())
    assert [_exchange(port) for _ in range(3)] == [b"b|ping"] * 3

    # echo-b turns unready: only the dead echo-a is left, so connections are rejected.
    _set_status(core, "echo-b", "10.244.3.2", ready=False)
    wait_for(lambda: len(_endpoints(core, "echo")["subsets"][0]["addresses"]) == 2, message="echo-b unready")
    assert _exchange(port) in (None, b"")

    # A large payload crosses intact once echo-b is back.
    _set_status(core, "echo-b", "10.244.3.2", ready=True)
    wait_for(lambda: len(_endpoints(core, "echo")["subsets"][0]["addresses"]) == 3, message="echo-b ready")
    blob = bytes(range(256)) * 4096
    assert _exchange(port, blob) == b"b|" + blob

    # The loopback port is stable across service updates and closes with the service.
    core.patch_namespaced_service("echo", NS, {"metadata": {"labels": {"v": "2"}}})
    assert _service_port(core, "echo") == mapping
    core.delete_namespaced_service("echo", NS)
    wait_for(lambda: _refused(port), message="listener closed")
    dc.call(lambda _: servers[b"b"].close())


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # A connect racing the listener's close lands in its backlog and is reset: still closing, ask again.
        return False
    return False


def test_service_ports_get_their_own_listeners(core: client.CoreV1Api, dc: DevClusterThread) -> None:
    core.create_namespaced_service(NS, {"metadata": {"name": "multi"},
                                        "spec": {"selector": {"app": "m"},
                                                 "ports": [{"name": "a", "port": 1000, "targetPort": 7001},
                                                           {"name": "b", "port": 2000, "targetPort": 7002}]}})
    mapping = wait_for(lambda: len(_service_port(core, "multi")) == 2 and _service_port(core, "multi"),
                       message="two loopback ports")
    server_a, local_a = _start_echo(dc, b"port-a")
    server_b, local_b = _start_echo(dc, b"port-b")
    _pod(core, "m-0", {"app": "m"}, [])
    _annotate(core, "m-0", {7001: local_a, 7002: local_b})
    _set_status(core, "m-0", "10.244.4.1", ready=True)
    wait_for(lambda: (_endpoints(core, "multi") or {}).get("subsets"), message="endpoints")
    assert _exchange(int(mapping["1000"].rpartition(":")[2])) == b"port-a|ping"
    assert _exchange(int(mapping["2000"].rpartition(":")[2])) == b"port-b|ping"

    # Dropping a port closes its listener and rewrites the annotation; the other port keeps its number.
    svc = core.read_namespaced_service("multi", NS)
    svc.spec.ports = [p for p in svc.spec.ports if p.name == "a"]
    core.replace_namespaced_service("multi", NS, svc)
    wait_for(lambda: list(_service_port(core, "multi")) == ["1000"], message="annotation rewritten")
    assert _service_port(core, "multi")["1000"] == mapping["1000"]
    wait_for(lambda: _refused(int(mapping["2000"].rpartition(":")[2])), message="port 2000 listener closed")
    dc.call(lambda _: (server_a.close(), server_b.close()))
