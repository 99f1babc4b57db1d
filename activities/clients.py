"""The clients the activities use: the Kubernetes API and a Kafka cluster's admin interfaces.

Kubernetes: one ``kubernetes.client.ApiClient`` per worker, from the kubeconfig named in the settings
(``KUBECONFIG``) or the in-cluster service account.

Kafka has two faces and the operator needs both:

* the **brokers** (bootstrap Service ``<name>-kafka-bootstrap``, client listener): a kafka-python
  ``KafkaAdminClient`` (``describe_cluster`` for the registered brokers, ``describe_metadata_quorum``
  forwarded to the active controller);
* the **controllers** (headless Service ``<name>-controllers``, listener ``CONTROLLER``), needed while a
  new cluster has no broker yet. A controller listener does not serve Metadata, so ``KafkaAdminClient``
  (which bootstraps with a Metadata request and has no ``bootstrap.controllers`` option) cannot talk to
  it; :func:`describe_quorum_via_controllers` does what the Java admin client does with
  ``bootstrap.controllers`` (KIP-919) using kafka-python's protocol classes over a plain socket:
  DescribeCluster with endpoint type *controller* to find the active controller, then DescribeQuorum to it.

Addresses: in the default ``cluster-dns`` mode a Service is reached at ``<svc>.<ns>.svc:<port>``. In
``devcluster`` mode (a local stand-in cluster without a pod network) the Service's
``devcluster.ballast.dev/loopback`` annotation maps the service port to a 127.0.0.1 address; reading that
annotation is the only thing the product knows about devcluster.

Every Kafka connection and request is bounded by ``timeout`` seconds: an unreachable cluster must make
``observe_cluster`` report "unreachable" quickly, not hang an activity.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kafka.errors as kafka_errors
import yaml
from kafka import KafkaAdminClient
from kafka.net.compat import KafkaNetClient
from kafka.protocol.admin import DescribeClusterRequest, DescribeQuorumRequest
from kafka.protocol.broker_version_data import BrokerVersionData
from kafka.protocol.metadata import ApiVersionsRequest
from kafka.protocol.parser import KafkaProtocol
from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from ballast.config import KafkaAddressing, OperatorSettings

LOOPBACK_ANNOTATION = "devcluster.ballast.dev/loopback"
CLIENT_ID = "ballast-operator"
CLUSTER_METADATA_TOPIC = "__cluster_metadata"
ENDPOINT_TYPE_CONTROLLER = 2  # DescribeCluster v1+: 1 = brokers, 2 = controllers (KIP-919)
_NOT_LEADER_OR_FOLLOWER = 6


class KafkaUnreachable(Exception):
    """Kafka could not be asked (no address, connection refused or reset, timeout, protocol error)."""


def ask_kafka(what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, with every client-side failure turned into :class:`KafkaUnreachable`."""
    try:
        return call(*args, **kwargs)
    except (kafka_errors.KafkaError, OSError) as err:
        raise KafkaUnreachable(f"{what} failed: {err}") from err


def kubeconfig_files(value: str) -> tuple[list[str], str | None]:
    """The files of a ``KUBECONFIG`` value and the current context, merged as kubectl merges them.

    ``value`` is one path or several separated by ``os.pathsep`` (``:``). As kubectl does, files that do not
    exist or are empty are skipped, and the first file that sets ``current-context`` decides it. (The
    kubernetes client skips missing files and keeps the first cluster/user/context of each name, as kubectl
    does, but lets the *last* file's ``current-context`` win and fails on an empty file.)

    Raises ``ValueError`` when none of the files holds a configuration.
    """
    files: list[str] = []
    context: str | None = None
    for raw in value.split(os.pathsep):
        path = os.path.expanduser(raw.strip())
        if not path or not os.path.isfile(path):
            continue
        with open(path) as fh:
            loaded = yaml.safe_load(fh)
        if not isinstance(loaded, dict) or not loaded:
            continue
        files.append(path)
        if context is None and loaded.get("current-context"):
            context = str(loaded["current-context"])
    if not files:
        raise ValueError(f"no kubeconfig found in {value!r}")
    return files, context


def kube_api_client(settings: OperatorSettings) -> k8s.ApiClient:
    """An ``ApiClient`` for the kubeconfig in ``settings`` (one file or a ``KUBECONFIG``-style list, merged as
    kubectl does: :func:`kubeconfig_files`), at its current context; else the in-cluster configuration."""
    cfg = k8s.Configuration()
    if settings.kubeconfig:
        files, context = kubeconfig_files(settings.kubeconfig)
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.pathsep.join(files), context=context, client_configuration=cfg)
    else:
        kube_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return k8s.ApiClient(cfg)


def service_address(core: k8s.CoreV1Api, namespace: str, service: str, port: int,
                    addressing: KafkaAddressing) -> str:
    """``host:port`` where this process reaches ``port`` of Service ``namespace/service``.

    Raises :class:`KafkaUnreachable` when the address cannot be known (devcluster mode: the Service or its
    loopback annotation is missing, e.g. the Service was just created).
    """
    if addressing is KafkaAddressing.CLUSTER_DNS:
        return f"{service}.{namespace}.svc:{port}"
    try:
        response: Any = core.read_namespaced_service(service, namespace, _preload_content=False)
        svc = json.loads(response.data)
    except ApiException as err:
        if err.status == 404:
            raise KafkaUnreachable(f"Service {namespace}/{service} does not exist") from err
        raise
    raw = (svc["metadata"].get("annotations") or {}).get(LOOPBACK_ANNOTATION)
    try:
        mapping = json.loads(raw) if raw else {}
    except ValueError:
        mapping = {}
    address = mapping.get(str(port)) if isinstance(mapping, dict) else None
    if not isinstance(address, str) or not address:
        raise KafkaUnreachable(f"Service {namespace}/{service} has no {LOOPBACK_ANNOTATION} address for port {port}")
    return address


def kafka_admin_client(bootstrap: str, timeout: float) -> KafkaAdminClient:
    """A ``KafkaAdminClient`` bootstrapped from ``bootstrap``; the caller closes it.

    Raises :class:`KafkaUnreachable` when the bootstrap does not complete within ``timeout`` seconds.
    """
    ms = max(1, int(timeout * 1000))
    created: list[Any] = []

    def net_client(**configs: Any) -> Any:
        net = KafkaNetClient(**configs)
        created.append(net)
        return net

    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=CLIENT_ID,
            request_timeout_ms=ms,
            bootstrap_timeout_ms=ms,
            reconnect_backoff_ms=50,
            reconnect_backoff_max_ms=min(ms, 1000),
            # The client's background refresh is not needed for one-shot questions.
            metadata_max_age_ms=300_000,
            kafka_client=net_client,
        )
    except kafka_errors.KafkaError as err:
        # kafka-python starts its IO thread before bootstrapping and does not stop it when the bootstrap
        # fails; stop it as KafkaAdminClient.close() would, or every failed attempt leaks a thread.
        for net in created:
            net.close()
            net._manager._net.stop()
        raise KafkaUnreachable(f"cannot bootstrap from {bootstrap}: {err}") from err


@dataclass
class ClusterBrokers:
    """DescribeCluster through the brokers: the cluster id and the registered brokers."""

    cluster_id: str | None
    brokers: list[int] = field(default_factory=list)
    fenced: list[int] = field(default_factory=list)


def describe_brokers(admin: KafkaAdminClient) -> ClusterBrokers:
    """``describe_cluster`` (fenced brokers included where the broker supports it, DescribeCluster v2)."""
    try:
        meta: dict[str, Any] = admin.describe_cluster()
    except kafka_errors.KafkaError as err:
        raise KafkaUnreachable(f"DescribeCluster failed: {err}") from err
    registered: list[int] = []
    fenced: list[int] = []
    for broker in meta.get("brokers") or []:
        node = int(broker["broker_id"])
        (fenced if broker.get("is_fenced") else registered).append(node)
    return ClusterBrokers(cluster_id=meta.get("cluster_id"), brokers=sorted(registered), fenced=sorted(fenced))


@dataclass
class VoterState:
    """One voter's replication state as the quorum leader reports it (timestamps in the leader's ms clock;
    -1 when the leader has not heard from the voter since it took over)."""

    node_id: int
    log_end_offset: int = -1
    last_fetch_ms: int = -1
    last_caught_up_ms: int = -1


@dataclass
class QuorumInfo:
    """The KRaft quorum of ``__cluster_metadata``-0 as its leader reports it."""

    cluster_id: str | None = None
    leader_id: int | None = None
    voters: list[int] = field(default_factory=list)
    high_watermark: int = -1
    voter_states: list[VoterState] = field(default_factory=list)


def _int(value: Any) -> int:
    """An int field of a response that older versions lack (None there): -1, as Kafka reports "unknown"."""
    return int(value) if value is not None else -1


def _quorum_from_response(response: dict[str, Any]) -> QuorumInfo:
    for topic in response.get("topics") or []:
        if topic.get("topic_name") != CLUSTER_METADATA_TOPIC:
            continue
        for part in topic.get("partitions") or []:
            if part.get("partition_index") != 0:
                continue
            if part.get("error_code", 0) or part.get("error"):
                raise KafkaUnreachable(f"DescribeQuorum: {part.get('error_message') or part.get('error')}")
            leader = int(part.get("leader_id", -1))
            states = sorted((VoterState(node_id=int(v["replica_id"]),
                                        log_end_offset=_int(v.get("log_end_offset")),
                                        last_fetch_ms=_int(v.get("last_fetch_timestamp")),
                                        last_caught_up_ms=_int(v.get("last_caught_up_timestamp")))
                             for v in part.get("current_voters") or []), key=lambda v: v.node_id)
            return QuorumInfo(leader_id=leader if leader >= 0 else None, voters=[v.node_id for v in states],
                              high_watermark=_int(part.get("high_watermark")), voter_states=states)
    raise KafkaUnreachable("DescribeQuorum: no answer for __cluster_metadata-0")


def describe_quorum_via_brokers(admin: KafkaAdminClient) -> QuorumInfo:
    """DescribeQuorum through a broker, which forwards it to the active controller (Kafka 3.7+)."""
    try:
        return _quorum_from_response(admin.describe_metadata_quorum())
    except kafka_errors.KafkaError as err:
        raise KafkaUnreachable(f"DescribeQuorum failed: {err}") from err


class _ControllerConnection:
    """One blocking connection to a Kafka listener, speaking through kafka-python's ``KafkaProtocol``.

    Every socket operation has ``timeout`` and the whole conversation ends by ``deadline``.
    """

    def __init__(self, address: str, timeout: float, deadline: float) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self.deadline = deadline
        self.timeout = timeout
        try:
            self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=self._remaining())
        except (OSError, ValueError) as err:
            raise KafkaUnreachable(f"cannot connect to {address}: {err}") from err
        self.proto = KafkaProtocol(client_id=CLIENT_ID)
        self.versions = self._api_versions()

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise KafkaUnreachable(f"{self.address}: timed out")
        return min(left, self.timeout)

    def close(self) -> None:
        self.sock.close()

    def request(self, request: Any) -> Any:
        self.proto.send_request(request)
        try:
            self.sock.settimeout(self._remaining())
            self.sock.sendall(self.proto.send_bytes())
            while True:
                self.sock.settimeout(self._remaining())
                data = self.sock.recv(65536)
                if not data:
                    raise KafkaUnreachable(f"{self.address}: connection closed by the server")
                responses = self.proto.receive_bytes(data)
                if responses:
                    return responses[0][1]
        except OSError as err:
            raise KafkaUnreachable(f"{self.address}: {err}") from err
        except kafka_errors.KafkaError as err:
            raise KafkaUnreachable(f"{self.address}: {err}") from err

    def _api_versions(self) -> BrokerVersionData:
        version = ApiVersionsRequest.max_version
        for _ in range(3):
            response = self.request(ApiVersionsRequest(version=version, client_software_name="ballast",
                                                       client_software_version="1"))
            error = kafka_errors.for_code(response.error_code)
            if error is kafka_errors.NoError:
                ranges = {v.api_key: (v.min_version, v.max_version) for v in response.api_keys}
                return BrokerVersionData(api_versions=ranges)
            if error is not kafka_errors.UnsupportedVersionError:
                raise KafkaUnreachable(f"{self.address}: ApiVersions failed: {error.__name__}")
            # The server answered with the versions it supports (as a v0 response): retry within them.
            offered = [v.max_version for v in response.api_keys if v.api_key == ApiVersionsRequest.API_KEY]
            version = min([version - 1, *offered]) if offered else 0
        raise KafkaUnreachable(f"{self.address}: no common ApiVersions version")

    def version_of(self, request_class: Any) -> int:
        try:
            return int(self.versions.api_version(request_class))
        except kafka_errors.IncompatibleBrokerVersion as err:
            raise KafkaUnreachable(f"{self.address} does not serve {request_class.__name__}") from err

    def describe_quorum(self) -> dict[str, Any]:
        version = self.version_of(DescribeQuorumRequest)
        topic = DescribeQuorumRequest.TopicData
        request = DescribeQuorumRequest(version=version, topics=[
            topic(topic_name=CLUSTER_METADATA_TOPIC, partitions=[topic.PartitionData(partition_index=0)])])
        response = self.request(request)
        if response.error_code:
            message = getattr(response, "error_message", None) or kafka_errors.for_code(response.error_code).__name__
            raise KafkaUnreachable(f"DescribeQuorum: {message}")
        result: dict[str, Any] = response.to_dict()
        return result

    def describe_controllers(self) -> dict[str, Any]:
        version = self.version_of(DescribeClusterRequest)
        if version < 1:
            raise KafkaUnreachable(f"{self.address} cannot describe controllers (DescribeCluster v{version})")
        response = self.request(DescribeClusterRequest(version=version, include_cluster_authorized_operations=False,
                                                       endpoint_type=ENDPOINT_TYPE_CONTROLLER))
        if response.error_code:
            raise KafkaUnreachable(f"DescribeCluster: {response.error_message or response.error_code}")
        result: dict[str, Any] = response.to_dict()
        return result


def _partition_error(response: dict[str, Any]) -> int:
    for topic in response.get("topics") or []:
        for part in topic.get("partitions") or []:
            return int(part.get("error_code", 0))
    return 0


def describe_quorum_via_controllers(bootstrap: str, timeout: float) -> QuorumInfo:
    """The quorum as the active controller reports it, starting from any controller at ``bootstrap``.

    Raises :class:`KafkaUnreachable` when no controller answers within ``timeout`` seconds (in total, not
    per step). A quorum that answers but has no leader yet is reported with ``leader_id=None`` and no voters.
    """
    deadline = time.monotonic() + timeout
    conn = _ControllerConnection(bootstrap, timeout, deadline)
    try:
        described = conn.describe_controllers()
        cluster_id = described.get("cluster_id")
        raw = conn.describe_quorum()
        if _partition_error(raw) != _NOT_LEADER_OR_FOLLOWER:
            info = _quorum_from_response(raw)
            info.cluster_id = cluster_id
            return info
    finally:
        conn.close()
    # The controller we reached is a follower: ask the active one, as DescribeCluster names it.
    active = int(described.get("controller_id", -1))
    if active < 0:
        return QuorumInfo(cluster_id=cluster_id)
    node = next((n for n in described.get("brokers") or [] if int(n["broker_id"]) == active), None)
    if node is None:
        return QuorumInfo(cluster_id=cluster_id)
    leader_conn = _ControllerConnection(f"{node['host']}:{node['port']}", timeout, deadline)
    try:
        raw = leader_conn.describe_quorum()
    finally:
        leader_conn.close()
    if _partition_error(raw) == _NOT_LEADER_OR_FOLLOWER:
        # Leadership moved between the two questions: report "no known leader"; the next poll asks again.
        return QuorumInfo(cluster_id=cluster_id)
    info = _quorum_from_response(raw)
    info.cluster_id = cluster_id
    return info


def admin_request(admin: KafkaAdminClient, request: Any, node_id: int | None = None) -> Any:
    """Send one protocol ``request`` on the admin client's connections (to broker ``node_id``, else the least
    loaded one) and return the response; for requests kafka-python's public methods do not offer as needed
    (e.g. DescribeLogDirs with a null topic list: every replica log a broker has).

    Raises :class:`KafkaUnreachable` when the request fails on the client side (connection, timeout, a node
    the client does not know); errors inside the response are the caller's to read.
    """
    manager = admin._manager

    async def send() -> Any:
        return await manager.send(request, node_id=node_id)

    try:
        return manager.run(send)
    except (kafka_errors.KafkaError, OSError) as err:
        where = f" to broker {node_id}" if node_id is not None else ""
        raise KafkaUnreachable(f"{type(request).__name__}{where} failed: {err}") from err


def listener_request(address: str, request_class: Any, timeout: float, **fields: Any) -> Any:
    """Send one ``request_class(**fields)`` to the Kafka listener at ``address`` on a fresh connection, at the
    highest version both kafka-python's class and the listener support (ApiVersions first), and return the
    decoded response; errors inside it are the caller's to read. For requests with no ``KafkaAdminClient``
    method, e.g. UnregisterBroker (:mod:`activities.kafka_schemas`) to a broker, which forwards it.

    Raises :class:`KafkaUnreachable` when there is no answer within ``timeout`` seconds (in total), and
    ``kafka.errors.IncompatibleBrokerVersion`` when the listener does not serve the API.
    """
    conn = _ControllerConnection(address, timeout, time.monotonic() + timeout)
    try:
        version = conn.versions.api_version(request_class)
        return conn.request(request_class(version=version, **fields))
    finally:
        conn.close()
