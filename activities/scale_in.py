"""The tail of a scale-in: wait until the removed broker pods are gone, unregister their ids from the KRaft
metadata, delete their PersistentVolumeClaims (with ``deleteClaim``).

``ScaleInActivities`` is a mixin of :class:`activities.cluster.ClusterActivities` (it uses that class's
clients), registered with the rest through ``ClusterActivities.all()``. The drain itself (moving every replica
off the brokers and checking through Kafka that they hold nothing) happens before, in the rebalance
activities; these only remove what is left once the StatefulSet has been shrunk.

* ``wait_broker_pods_gone`` heartbeats every poll and resumes its count after a retry.
* ``unregister_brokers`` sends UnregisterBroker (API key 64; kafka-python has no method for it, the message
  classes are :mod:`activities.kafka_schemas`) to the brokers' bootstrap Service: any broker forwards it to
  the active controller. An id the controller does not know (BROKER_ID_NOT_REGISTERED) is already done.
* Both refuse to act on a broker whose pod still exists: Kafka would happily unregister a running broker
  (it then runs outside the cluster until it restarts), and deleting a claim under a running pod loses its
  data when the pod restarts. A pod that is still running is a non-retryable ``BrokerPodExists`` (the
  workflow waits for the pods to go first); one already terminating is retried until it is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kafka.errors as kafka_errors
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import clients
from activities.clients import KafkaUnreachable
from activities.contracts import (
    DELETE_BROKER_CLAIMS,
    UNREGISTER_BROKERS,
    WAIT_BROKER_PODS_GONE,
    DeleteBrokerClaimsInput,
    DeleteBrokerClaimsResult,
    UnregisterBrokersInput,
    UnregisterBrokersResult,
    WaitBrokerPodsGoneInput,
    WaitResult,
)
from activities.kafka_schemas import UnregisterBrokerRequest, UnregisterBrokerResponse
from activities.kube import JSON, KindApi, api_message, load, retryable
from ballast.config import OperatorSettings
from ballast.manifests import Role, broker_selector, node_id_for_pod
from ballast.manifests.names import (
    DATA_VOLUME,
    POD_INDEX_LABEL,
    bootstrap_service_name,
    pod_name,
    statefulset_name,
)
from ballast.messages import ClusterRef
from ballast.spec import GROUP, KIND, PLURAL, VERSION, KafkaClusterSpec

BROKER_POD_EXISTS = "BrokerPodExists"
CLAIM_STILL_WANTED = "ClaimStillWanted"
KAFKA_UNREACHABLE = "KafkaUnreachable"
UNREGISTER_REFUSED = "UnregisterRefused"
_BROKER_ID_NOT_REGISTERED = 102


def _transient(error: type[kafka_errors.KafkaError]) -> bool:
    """Kafka errors that retrying the same request can get past: the ones Kafka marks retriable (the controller
    moving, a forwarded request timing out, ...) and an unexpected server error. Anything else (authorization,
    an invalid request) will not change by itself."""
    return bool(error.retriable) or error is kafka_errors.UnknownError


def claim_name(cluster: str, role: Role, ordinal: int) -> str:
    """The PVC the StatefulSet made for ``ordinal`` from the ``data`` claim template:
    ``<template>-<statefulset>-<ordinal>``."""
    return f"{DATA_VOLUME}-{statefulset_name(cluster, role)}-{ordinal}"


def _ordinal(pod: JSON, cluster: str) -> int | None:
    meta = pod["metadata"]
    index = (meta.get("labels") or {}).get(POD_INDEX_LABEL)
    if isinstance(index, str) and index.isdigit():
        return int(index)
    return node_id_for_pod(cluster, str(meta.get("name") or ""))


def unregister_broker(bootstrap: str, broker_id: int, timeout: float) -> int:
    """Send UnregisterBroker for ``broker_id`` to the broker at ``bootstrap``; returns the response's error code.

    Raises :class:`KafkaUnreachable` when no answer comes within ``timeout`` seconds, and
    ``kafka.errors.IncompatibleBrokerVersion`` when the broker does not serve the API (ZooKeeper mode, or a
    Kafka older than 3.0).
    """
    response = clients.listener_request(bootstrap, UnregisterBrokerRequest, timeout, broker_id=broker_id)
    if not isinstance(response, UnregisterBrokerResponse):
        raise KafkaUnreachable(f"{bootstrap}: unexpected answer {type(response).__name__} to UnregisterBroker")
    return int(response.error_code)


class ScaleInActivities:
    """Mixin: the scale-in tail activities. The host class provides the clients below (``ClusterActivities``)."""

    settings: OperatorSettings
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi
    kinds: dict[str, KindApi]

    def scale_in_activities(self) -> list[Callable[..., Any]]:
        return [self.wait_broker_pods_gone, self.unregister_brokers, self.delete_broker_claims]

    # -- helpers ------------------------------------------------------------------------------------------

    def _broker_pod(self, ref: ClusterRef, ordinal: int) -> JSON | None:
        name = pod_name(ref.name, Role.BROKER, ordinal)
        try:
            return self.kinds["Pod"].read(ref.namespace, name)
        except ApiException as err:
            raise retryable(err, f"Pod/{name}") from err

    def _refuse_if_pod_exists(self, ref: ClusterRef, ordinal: int, action: str) -> None:
        """Non-retryable while broker ``ordinal``'s pod runs; retryable while it terminates."""
        pod = self._broker_pod(ref, ordinal)
        if pod is None:
            return
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            raise ApplicationError(f"{action} broker {ordinal}: Pod/{name} is still terminating",
                                   type="BrokerPodTerminating")
        raise ApplicationError(f"refusing to {action} broker {ordinal}: Pod/{name} still exists (shrink the "
                               "StatefulSet and wait until the pod is gone first)",
                               type=BROKER_POD_EXISTS, non_retryable=True)

    def _bootstrap(self, ref: ClusterRef) -> str:
        """Where this process reaches the brokers' client listener (the bootstrap Service, first listener)."""
        try:
            kc = load(self.custom.get_namespaced_custom_object(GROUP, VERSION, ref.namespace, PLURAL, ref.name,
                                                               _preload_content=False))
        except ApiException as err:
            if err.status != 404:
                raise retryable(err, f"{KIND}/{ref.name}") from err
            kc = {}
        try:
            spec = KafkaClusterSpec.model_validate(kc.get("spec") or {})
        except ValidationError:
            spec = KafkaClusterSpec()
        service = bootstrap_service_name(ref.name)
        try:
            return clients.service_address(self.core, ref.namespace, service, spec.listeners[0].port,
                                           self.settings.kafka_addressing)
        except ApiException as err:
            raise KafkaUnreachable(f"reading Service {service}: {api_message(err)}") from err

    # -- wait_broker_pods_gone ----------------------------------------------------------------------------

    @activity.defn(name=WAIT_BROKER_PODS_GONE)
    def wait_broker_pods_gone(self, inp: WaitBrokerPodsGoneInput) -> WaitResult:
        """Poll until no broker pod with ordinal >= ``replicas`` exists (terminating ones count as existing).
        Heartbeats ``{startedAt, polls, remaining}`` every poll; a retried attempt continues the count. Runs
        until done, cancelled or timed out by the workflow. ``WaitResult.ready`` = the broker pods left (all
        below ``replicas``)."""
        info = activity.info()
        previous: dict[str, Any] = {}
        if info.heartbeat_details and isinstance(info.heartbeat_details[-1], dict):
            previous = dict(info.heartbeat_details[-1])
        started = float(previous.get("startedAt") or time.time())
        progress: dict[str, Any] = {"startedAt": started, "polls": int(previous.get("polls") or 0)}
        while True:
            progress["polls"] += 1
            try:
                pods = self.kinds["Pod"].list(inp.ref.namespace, broker_selector(inp.ref.name))
            except ApiException as err:
                raise retryable(err, f"broker pods of {inp.ref.name}") from err
            ordinals = [(o, p) for p in pods if (o := _ordinal(p, inp.ref.name)) is not None]
            remaining = sorted(p["metadata"]["name"] for o, p in ordinals if o >= inp.replicas)
            progress["remaining"] = remaining
            activity.heartbeat(dict(progress))
            if not remaining:
                kept = sum(1 for o, _ in ordinals if o < inp.replicas)
                return WaitResult(ready=kept, detail=(f"no broker pod with ordinal >= {inp.replicas} left "
                                                      f"(after {time.time() - started:.1f}s, "
                                                      f"{progress['polls']} polls)"))
            activity.wait_for_cancelled_sync(inp.poll_seconds)
            if activity.is_cancelled():
                raise CancelledError("wait cancelled")

    # -- unregister_brokers -------------------------------------------------------------------------------

    @activity.defn(name=UNREGISTER_BROKERS)
    def unregister_brokers(self, inp: UnregisterBrokersInput) -> UnregisterBrokersResult:
        """UnregisterBroker for each id, through the bootstrap Service (a broker forwards it to the active
        controller). BROKER_ID_NOT_REGISTERED is ``not_registered`` (done already, e.g. by an earlier attempt).
        Refused (non-retryable ``BrokerPodExists``) for an id whose pod still runs -- checked for every id
        before any is unregistered. Kafka unreachable or the controller moving: retryable; a broker that does
        not serve the API, or any other Kafka error: non-retryable ``UnregisterRefused``."""
        ids = sorted(set(inp.brokers))
        if any(b < 0 for b in ids):
            raise ApplicationError(f"brokers: ids are never negative: {ids}", type="InvalidInput",
                                   non_retryable=True)
        for broker in ids:
            self._refuse_if_pod_exists(inp.ref, broker, "unregister")
        result = UnregisterBrokersResult()
        if not ids:
            return result
        try:
            bootstrap = self._bootstrap(inp.ref)
            for broker in ids:
                code = unregister_broker(bootstrap, broker, self.settings.kafka_timeout_seconds)
                activity.heartbeat({"broker": broker, "errorCode": code})
                if code == 0:
                    result.unregistered.append(broker)
                elif code == _BROKER_ID_NOT_REGISTERED:
                    result.not_registered.append(broker)
                else:
                    error = kafka_errors.for_code(code)
                    what = f"UnregisterBroker {broker}: {error.__name__} (error {code})"
                    if _transient(error):
                        raise ApplicationError(what, type=KAFKA_UNREACHABLE)
                    raise ApplicationError(what, type=UNREGISTER_REFUSED, non_retryable=True)
        except kafka_errors.IncompatibleBrokerVersion as err:
            raise ApplicationError(f"UnregisterBroker: the brokers do not serve it (KRaft mode, Kafka 3.0+ "
                                   f"needed): {err}", type=UNREGISTER_REFUSED, non_retryable=True) from err
        except KafkaUnreachable as err:
            raise ApplicationError(f"UnregisterBroker: {err}", type=KAFKA_UNREACHABLE) from err
        return result

    # -- delete_broker_claims -----------------------------------------------------------------------------

    @activity.defn(name=DELETE_BROKER_CLAIMS)
    def delete_broker_claims(self, inp: DeleteBrokerClaimsInput) -> DeleteBrokerClaimsResult:
        """Delete ``data-<name>-broker-<ordinal>`` for each ordinal; one already gone is ``absent``, one
        already being deleted counts as deleted (a retry). Refused (non-retryable) for an ordinal whose pod
        still runs or that the broker StatefulSet still wants (ordinal < its replicas): the StatefulSet
        would start that pod again on a fresh, empty claim. Every ordinal is checked before anything is
        deleted."""
        ordinals = sorted(set(inp.ordinals))
        if any(o < 0 for o in ordinals):
            raise ApplicationError(f"ordinals: never negative: {ordinals}", type="InvalidInput",
                                   non_retryable=True)
        sts_name = statefulset_name(inp.ref.name, Role.BROKER)
        try:
            sts = self.kinds["StatefulSet"].read(inp.ref.namespace, sts_name)
        except ApiException as err:
            raise retryable(err, f"StatefulSet/{sts_name}") from err
        wanted = int(((sts or {}).get("spec") or {}).get("replicas") or 0) \
            if sts is not None and not sts["metadata"].get("deletionTimestamp") else 0
        for ordinal in ordinals:
            if ordinal < wanted:
                raise ApplicationError(f"refusing to delete the claim of broker {ordinal}: StatefulSet/{sts_name} "
                                       f"still has {wanted} replicas", type=CLAIM_STILL_WANTED,
                                       non_retryable=True)
            self._refuse_if_pod_exists(inp.ref, ordinal, "delete the claim of")
        result = DeleteBrokerClaimsResult()
        claims = self.kinds["PersistentVolumeClaim"]
        for ordinal in ordinals:
            name = claim_name(inp.ref.name, Role.BROKER, ordinal)
            try:
                live = claims.read(inp.ref.namespace, name)
                if live is None:
                    result.absent.append(name)
                elif live["metadata"].get("deletionTimestamp") or claims.delete(inp.ref.namespace, name):
                    result.deleted.append(name)
                else:
                    result.absent.append(name)  # gone between the read and the delete
            except ApiException as err:
                raise retryable(err, f"PersistentVolumeClaim/{name}") from err
        return result
