"""The activities of a rolling restart: observe a gate's facts, restart one pod exactly once, wait until it is
back for real, move leadership back to it.

``RollActivities`` is a mixin of :class:`activities.cluster.ClusterActivities` (it uses that class's clients),
so the worker registers these with the rest through ``ClusterActivities.all()``. The decisions (may this
broker restart now? in which order?) are pure code in ``ballast.roll``; these activities only gather facts
and act.

* ``observe_roll_gate`` never fails because Kafka does not answer: that is a fact (``reachable=False``) the
  gate decides on. Every Kafka request is bounded by ``settings.kafka_timeout_seconds``.
* ``restart_pod`` deletes the pod with ``preconditions.uid``: the API server itself refuses (409) to delete a
  pod that is not the one the workflow recorded, so a retried or replayed restart never restarts the
  replacement. This is what keeps "each pod restarts once per roll" true across worker crashes.
* ``wait_pod_rolled`` is done only when Kafka has the node back (brokers: registered, unfenced and in the ISR
  of every partition it replicates; controllers: caught up with the quorum leader), not merely when the pod
  is Ready. It heartbeats every poll and resumes from its heartbeat details after a retry.
* ``apply_dynamic_configs`` changes the broker settings that need no restart (IncrementalAlterConfigs).

The roll workflow gives these activities a heartbeat timeout of a few seconds, so that a worker lost mid-call
is noticed (and the call retried on a live worker) within seconds. ``observe_roll_gate``, ``restart_pod`` and
``elect_preferred_leaders`` heartbeat every ``KEEPALIVE_SECONDS`` from a keep-alive thread while they run, and
``wait_pod_rolled``'s details are re-sent while a poll is slow, so a call that is merely slow -- several Kafka
requests, each bounded by the Kafka timeout -- is not taken for a lost worker.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import clients, dynamic_configs, partitions
from activities.clients import KafkaUnreachable, QuorumInfo
from activities.contracts import (
    APPLY_DYNAMIC_CONFIGS,
    ELECT_PREFERRED_LEADERS,
    OBSERVE_ROLL_GATE,
    RESTART_POD,
    WAIT_POD_ROLLED,
    DynamicConfigsInput,
    DynamicConfigsResult,
    ElectLeadersInput,
    ElectLeadersResult,
    GateObservation,
    GateObservationInput,
    RestartPodInput,
    RestartPodResult,
    VoterFacts,
    WaitPodRolledInput,
    WaitPodRolledResult,
)
from activities.kube import JSON, KindApi, api_message, load, retryable
from ballast.config import OperatorSettings
from ballast.manifests import Role
from ballast.manifests.names import (
    CONTROLLER_PORT,
    bootstrap_service_name,
    headless_service_name,
    pod_name,
    statefulset_name,
)
from ballast.messages import ClusterRef
from ballast.spec import GROUP, KIND, PLURAL, VERSION, KafkaClusterSpec

REVISION_LABEL = "controller-revision-hash"
KAFKA_UNREACHABLE = "KafkaUnreachable"
# Once a restarted pod is Ready, wait_pod_rolled polls this many times as often as poll_seconds (not below
# MIN_POLL_SECONDS): what remains (registration, ISR or quorum catch-up) is near and cheap to watch.
CATCH_UP_POLL_DIVISOR = 4
MIN_POLL_SECONDS = 0.1
# The roll workflow's heartbeat timeout for these activities is a few seconds (workflows.roll.HEARTBEAT). The short
# ones heartbeat every KEEPALIVE_SECONDS while they run; wait_pod_rolled heartbeats every poll, and its details
# are sent again whenever a poll takes longer than POLL_QUIET_SECONDS (slow Kafka answers).
KEEPALIVE_SECONDS = 1.0
POLL_QUIET_SECONDS = 2.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _waiting_reason(pod: JSON) -> str:
    """Why the pod's containers are not running (CrashLoopBackOff, ImagePullBackOff, ...), or why it is
    Pending (Unschedulable); "" for a pod that is running or starting normally."""
    status = pod.get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            return str(reason)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
            return str(cond["reason"])
    return ""


class _Heartbeat:
    """An activity's heartbeats while the ``with`` block runs: :meth:`beat` sends details from the activity, and
    a keep-alive thread re-sends the latest ones (``initial`` at first) whenever ``quiet`` seconds passed
    without a beat. That tells the server the worker is alive, not that the call progresses (its own timeouts bound
    that), so a slow Kafka or API answer is not taken for a lost worker. One heartbeat at a time, in order."""

    def __init__(self, quiet: float, *initial: Any) -> None:
        self._quiet = quiet
        self._details: tuple[Any, ...] = initial
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The activity's context lives in context variables: the thread runs in a copy of them.
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._keep_alive,),
                                        daemon=True, name=f"heartbeat-{activity.info().activity_type}")

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self, *details: Any) -> None:
        with self._lock:
            self._details, self._last = details, time.monotonic()
            activity.heartbeat(*details)

    def _keep_alive(self) -> None:
        while True:
            with self._lock:
                wait = self._last + self._quiet - time.monotonic()
                if wait <= 0:
                    self._last = time.monotonic()
                    activity.heartbeat(*self._details)
                    continue
            if self._stop.wait(wait):
                return


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _kept_alive(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """The activity ``fn`` heartbeating every ``KEEPALIVE_SECONDS`` while it runs (see :class:`_Heartbeat`)."""

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _Heartbeat(KEEPALIVE_SECONDS):
            return fn(*args, **kwargs)

    return run


def _is_ready(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass
class _Watch:
    """The state of one ``wait_pod_rolled`` attempt: the admin client kept while the broker catches up, and
    the topics still lagging at the last poll (None: not asked yet, ask about all)."""

    inp: WaitPodRolledInput
    role: Role
    pod_ready: bool = False
    admin: Any = None
    lagging_topics: list[str] | None = None
    total: int = 0

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()
        self.admin, self.lagging_topics = None, None


class RollActivities:
    """Mixin: the roll activities. The host class provides the clients below (see ``ClusterActivities``)."""

    settings: OperatorSettings
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi
    kinds: dict[str, KindApi]

    def roll_activities(self) -> list[Callable[..., Any]]:
        return [self.observe_roll_gate, self.restart_pod, self.wait_pod_rolled, self.elect_preferred_leaders,
                self.apply_dynamic_configs]

    # -- Kubernetes facts -------------------------------------------------------------------------------

    def _read_pod(self, namespace: str, name: str) -> JSON | None:
        try:
            return self.kinds["Pod"].read(namespace, name)
        except ApiException as err:
            raise retryable(err, f"Pod/{name}") from err

    def _update_revision(self, ref: ClusterRef, role: Role) -> str:
        name = statefulset_name(ref.name, role)
        try:
            sts = self.kinds["StatefulSet"].read(ref.namespace, name)
        except ApiException as err:
            raise retryable(err, f"StatefulSet/{name}") from err
        return str(((sts or {}).get("status") or {}).get("updateRevision") or "")

    def _client_port(self, ref: ClusterRef) -> int:
        """The brokers' client port: the first listener of the KafkaCluster's spec (the default when the
        cluster is gone or its spec does not parse: the Service then answers for the default port)."""
        try:
            kc = load(self.custom.get_namespaced_custom_object(GROUP, VERSION, ref.namespace, PLURAL,
                                                               ref.name, _preload_content=False))
        except ApiException as err:
            if err.status != 404:
                raise retryable(err, f"{KIND}/{ref.name}") from err
            kc = {}
        try:
            spec = KafkaClusterSpec.model_validate(kc.get("spec") or {})
        except ValidationError:
            spec = KafkaClusterSpec()
        return spec.listeners[0].port

    # -- Kafka ------------------------------------------------------------------------------------------

    def _service(self, ref: ClusterRef, service: str, port: int) -> str:
        try:
            return clients.service_address(self.core, ref.namespace, service, port,
                                           self.settings.kafka_addressing)
        except ApiException as err:
            raise KafkaUnreachable(f"reading Service {service}: {api_message(err)}") from err

    def _admin(self, ref: ClusterRef) -> Any:
        address = self._service(ref, bootstrap_service_name(ref.name), self._client_port(ref))
        return clients.kafka_admin_client(address, self.settings.kafka_timeout_seconds)

    def _quorum(self, ref: ClusterRef) -> QuorumInfo:
        """The quorum as its leader reports it: asked of the controllers, else through a broker (which
        forwards DescribeQuorum to the active controller)."""
        try:
            address = self._service(ref, headless_service_name(ref.name, Role.CONTROLLER), CONTROLLER_PORT)
            return clients.describe_quorum_via_controllers(address, self.settings.kafka_timeout_seconds)
        except KafkaUnreachable as first:
            try:
                admin = self._admin(ref)
            except KafkaUnreachable:
                raise first from None
            try:
                return clients.describe_quorum_via_brokers(admin)
            finally:
                admin.close()

    # -- observe_roll_gate ------------------------------------------------------------------------------

    @activity.defn(name=OBSERVE_ROLL_GATE)
    @_kept_alive
    def observe_roll_gate(self, inp: GateObservationInput) -> GateObservation:
        """The facts a can-roll gate decides on (see ``GateObservation``). Kafka not answering is
        ``reachable=False`` with the reason; Kubernetes API errors are retried."""
        role = Role(inp.role)
        pod = self._read_pod(inp.ref.namespace, pod_name(inp.ref.name, role, inp.node_id))
        obs = GateObservation(update_revision=self._update_revision(inp.ref, role))
        if pod is not None:
            obs.pod_uid = str(pod["metadata"].get("uid") or "")
            obs.pod_ready = _is_ready(pod) and not pod["metadata"].get("deletionTimestamp")
            obs.pod_revision = str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL) or "")
            obs.waiting_reason = _waiting_reason(pod)
        try:
            if role is Role.BROKER:
                admin = self._admin(inp.ref)
                try:
                    obs.partitions = partitions.partitions_with_replica_on(admin, inp.node_id)
                finally:
                    admin.close()
            else:
                quorum = self._quorum(inp.ref)
                obs.quorum_leader_id = quorum.leader_id if quorum.leader_id is not None else -1
                obs.quorum_high_watermark = quorum.high_watermark
                obs.voters = [VoterFacts(node_id=v.node_id, log_end_offset=v.log_end_offset,
                                         last_caught_up_ms=v.last_caught_up_ms, last_fetch_ms=v.last_fetch_ms)
                              for v in quorum.voter_states]
        except KafkaUnreachable as err:
            obs.reachable, obs.error = False, str(err)
        obs.now_ms = _now_ms()
        return obs

    # -- restart_pod ------------------------------------------------------------------------------------

    @activity.defn(name=RESTART_POD)
    @_kept_alive
    def restart_pod(self, inp: RestartPodInput) -> RestartPodResult:
        """Delete ``inp.pod`` if, and only if, it is still the pod ``inp.expected_uid`` (the API server checks
        the uid precondition atomically). A pod already replaced (409) or gone (404) is not deleted again:
        ``deleted=False``. A pod with that uid already terminating counts as deleted (a retry of a delete
        that landed) and is not asked again. The pod's own grace period applies (a controlled shutdown)."""
        if not inp.expected_uid:
            raise ApplicationError("expected_uid: required (the uid of the pod to restart)",
                                   type="InvalidInput", non_retryable=True)
        live = self._read_pod(inp.ref.namespace, inp.pod)
        if live is None or live["metadata"].get("uid") != inp.expected_uid:
            return RestartPodResult(deleted=False)
        if live["metadata"].get("deletionTimestamp"):
            return RestartPodResult(deleted=True, previous_uid=inp.expected_uid)
        options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=inp.expected_uid))
        try:
            self.core.delete_namespaced_pod(inp.pod, inp.ref.namespace, body=options, _preload_content=False)
        except ApiException as err:
            if err.status in (404, 409):  # gone, or replaced between our read and the delete
                return RestartPodResult(deleted=False)
            raise retryable(err, f"Pod/{inp.pod}") from err
        return RestartPodResult(deleted=True, previous_uid=inp.expected_uid)

    # -- wait_pod_rolled --------------------------------------------------------------------------------

    @activity.defn(name=WAIT_POD_ROLLED)
    def wait_pod_rolled(self, inp: WaitPodRolledInput) -> WaitPodRolledResult:
        """Poll until the pod has a uid other than ``old_uid``, is Ready, and Kafka has the node back:
        a broker registered, unfenced and in the ISR of every partition it replicates; a controller a voter
        whose log has reached the leader's high watermark. Heartbeats ``{startedAt, polls, newUid, detail}``
        every poll (a retried attempt continues that count), sent again while a poll takes longer than
        ``POLL_QUIET_SECONDS``, and runs until done, cancelled or timed out by the workflow (which owns
        ``readyTimeout``).

        Polls every ``poll_seconds`` until the new pod is Ready; from then on the end is near and cheap to
        watch, so it polls ``CATCH_UP_POLL_DIVISOR`` times as often (what the roll waits for after a broker is
        back is this poll's latency), through one admin client, asking only about the topics still lagging
        (and all of them once more before saying done)."""
        info = activity.info()
        previous: dict[str, Any] = {}
        if info.heartbeat_details and isinstance(info.heartbeat_details[-1], dict):
            previous = dict(info.heartbeat_details[-1])
        progress: dict[str, Any] = {"startedAt": previous.get("startedAt") or _now_ms(),
                                    "polls": int(previous.get("polls") or 0), "newUid": "", "detail": ""}
        watch = _Watch(inp, Role(inp.role))
        with _Heartbeat(POLL_QUIET_SECONDS, dict(progress)) as heart:
            try:
                while True:
                    progress["polls"] += 1
                    new_uid, done, detail = self._rolled(watch)
                    progress.update(newUid=new_uid, detail=detail)
                    heart.beat(dict(progress))
                    if done:
                        waited = (_now_ms() - int(progress["startedAt"])) / 1000
                        return WaitPodRolledResult(new_uid=new_uid, detail=f"{detail} (after {waited:.1f}s, "
                                                                           f"{progress['polls']} polls)")
                    interval = inp.poll_seconds
                    if watch.pod_ready:
                        interval = max(MIN_POLL_SECONDS, inp.poll_seconds / CATCH_UP_POLL_DIVISOR)
                    activity.wait_for_cancelled_sync(interval)
                    if activity.is_cancelled():
                        raise CancelledError("wait cancelled")
            finally:
                watch.close()

    def _rolled(self, watch: _Watch) -> tuple[str, bool, str]:
        """(new uid or "", done, what we are waiting for)."""
        inp = watch.inp
        watch.pod_ready = False
        pod = self._read_pod(inp.ref.namespace, inp.pod)
        if pod is None:
            return "", False, f"{inp.pod}: not recreated yet"
        uid = str(pod["metadata"].get("uid") or "")
        if uid == inp.old_uid:
            state = "terminating" if pod["metadata"].get("deletionTimestamp") else "there"
            return "", False, f"{inp.pod}: the old pod is still {state}"
        if not _is_ready(pod) or pod["metadata"].get("deletionTimestamp"):
            reason = _waiting_reason(pod) or str((pod.get("status") or {}).get("phase") or "starting")
            return uid, False, f"{inp.pod}: not Ready ({reason})"
        watch.pod_ready = True
        try:
            return (uid, *(self._broker_back(watch) if watch.role is Role.BROKER else self._controller_back(inp)))
        except KafkaUnreachable as err:
            watch.close()  # the next poll starts over with a fresh client (and fresh broker addresses)
            return uid, False, f"{inp.pod}: Ready; Kafka: {err}"

    def _broker_back(self, watch: _Watch) -> tuple[bool, str]:
        inp = watch.inp
        if watch.admin is None:
            admin = self._admin(inp.ref)
            try:
                state = partitions.registration(admin, inp.node_id)
            except BaseException:
                admin.close()
                raise
            if state != "registered":
                # Not kept: once the broker registers, a new client's metadata has its (new) address.
                admin.close()
                what = "fenced" if state == "fenced" else "not registered"
                return False, f"{inp.pod}: Ready; broker {inp.node_id} {what}"
            watch.admin = admin
        lagging, total = partitions.isr_lagging(watch.admin, inp.node_id, watch.lagging_topics)
        if not lagging and watch.lagging_topics is not None:
            lagging, total = partitions.isr_lagging(watch.admin, inp.node_id)  # all of them, once more
        if watch.lagging_topics is None or not lagging:
            watch.total = total
        watch.lagging_topics = sorted({name.rsplit("-", 1)[0] for name in lagging})
        if lagging:
            shown = ", ".join(lagging[:5]) + (f" and {len(lagging) - 5} more" if len(lagging) > 5 else "")
            return False, (f"{inp.pod}: broker {inp.node_id} registered; {watch.total - len(lagging)}/"
                           f"{watch.total} partitions have it in the ISR (catching up: {shown})")
        return True, f"{inp.pod}: broker {inp.node_id} registered and in the ISR of all {total} partitions"

    def _controller_back(self, inp: WaitPodRolledInput) -> tuple[bool, str]:
        quorum = self._quorum(inp.ref)
        if quorum.leader_id is None:
            return False, f"{inp.pod}: Ready; the quorum has no leader"
        voter = next((v for v in quorum.voter_states if v.node_id == inp.node_id), None)
        if voter is None:
            return False, f"{inp.pod}: Ready; {inp.node_id} is not a voter (voters {quorum.voters})"
        if quorum.leader_id == inp.node_id:
            return True, f"{inp.pod}: controller {inp.node_id} leads the quorum"
        if voter.log_end_offset < 0 or voter.log_end_offset < quorum.high_watermark:
            return False, (f"{inp.pod}: Ready; controller {inp.node_id} catching up (log end offset "
                           f"{voter.log_end_offset}, high watermark {quorum.high_watermark})")
        return True, (f"{inp.pod}: controller {inp.node_id} caught up with leader {quorum.leader_id} "
                      f"(offset {voter.log_end_offset})")

    # -- elect_preferred_leaders ------------------------------------------------------------------------

    @activity.defn(name=ELECT_PREFERRED_LEADERS)
    @_kept_alive
    def elect_preferred_leaders(self, inp: ElectLeadersInput) -> ElectLeadersResult:
        """Move leadership back to broker ``node_id`` for the partitions it is the preferred (first) replica
        of. Per-partition failures are reported in the result; Kafka not answering is a retryable error."""
        try:
            admin = self._admin(inp.ref)
            try:
                elected, not_needed, failed = partitions.elect_preferred_leaders(admin, inp.node_id)
            finally:
                admin.close()
        except KafkaUnreachable as err:
            raise ApplicationError(f"preferred leader election for broker {inp.node_id}: {err}",
                                   type=KAFKA_UNREACHABLE) from err
        return ElectLeadersResult(elected=elected, not_needed=not_needed, failed=failed)

    # -- apply_dynamic_configs --------------------------------------------------------------------------

    @activity.defn(name=APPLY_DYNAMIC_CONFIGS)
    def apply_dynamic_configs(self, inp: DynamicConfigsInput) -> DynamicConfigsResult:
        """IncrementalAlterConfigs of the settings that need no restart: ``cluster_wide`` on the cluster default
        resource, ``per_broker`` on each of ``brokers``; only values that differ are sent. A setting Kafka
        refuses (unknown, read-only, bad value) is a non-retryable ``ConfigRejected`` naming the keys and
        Kafka's reason; Kafka not answering is retryable."""
        try:
            admin = self._admin(inp.ref)
            try:
                done = dynamic_configs.apply(admin, inp.cluster_wide, inp.per_broker, sorted(set(inp.brokers)))
            finally:
                admin.close()
        except dynamic_configs.ConfigRejected as err:
            raise ApplicationError(str(err), type="ConfigRejected", non_retryable=True) from err
        except KafkaUnreachable as err:
            raise ApplicationError(f"dynamic broker configs: {err}", type=KAFKA_UNREACHABLE) from err
        return DynamicConfigsResult(applied=done.applied, deleted=done.deleted)
