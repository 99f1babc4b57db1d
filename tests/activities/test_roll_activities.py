"""The rolling-restart activities, run for real (temporalio's ActivityEnvironment) against devcluster's
simulated KRaft pods: gate facts, the uid-guarded pod restart, waiting for the ISR, preferred leaders."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.structs import TopicPartition
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cluster import ClusterActivities
from activities.contracts import (
    DynamicConfigsInput,
    DynamicConfigsResult,
    ElectLeadersInput,
    GateObservationInput,
    RestartPodInput,
    WaitInput,
    WaitPodRolledInput,
    WaitPodRolledResult,
)
from ballast.messages import ClusterRef
from devcluster.cluster import DevClusterThread
from tests.activities.test_activities import CLUSTER_ID, NS, apply_input, create_cluster
from tests.conftest import wait_for

SPEC = {"controllers": {"replicas": 3}, "brokers": {"replicas": 3, "config": {"min.insync.replicas": "2"}}}


def _up(custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    kc = create_cluster(custom, spec)
    env.run(acts.apply_manifests, apply_input(kc))
    replicas = spec["controllers"]["replicas"], spec["brokers"]["replicas"]
    env.run(acts.wait_controllers_ready, WaitInput(ref=ref, spec=kc["spec"], expected=replicas[0], poll_seconds=0.1))
    env.run(acts.wait_brokers_registered, WaitInput(ref=ref, spec=kc["spec"], expected=replicas[1], poll_seconds=0.1))
    return kc


def _control(dc: DevClusterThread, action: str, **params: Any) -> dict[str, Any]:
    return dc.call(lambda c: c.kafka.control(action, cluster=CLUSTER_ID, **params))


def _pod_uid(core: client.CoreV1Api, name: str) -> str:
    return str(core.read_namespaced_pod(name, NS).metadata.uid)


def test_gate_facts_for_brokers_and_controllers(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                               env: ActivityEnvironment, ref: ClusterRef, core: client.CoreV1Api,
                                               apps: client.AppsV1Api, dc: DevClusterThread,
                                               admin: Callable[[], KafkaAdminClient]) -> None:
    _up(custom, acts, env, ref, {**SPEC, "brokers": {**SPEC["brokers"], "rackAwareness": {}}})
    kafka = admin()
    kafka.create_topics([NewTopic("orders", 6, 3), NewTopic("relaxed", 2, 3, topic_configs={"min.insync.replicas": "1"}),
                         NewTopic("elsewhere", -1, replica_assignments={0: [2]})])
    # A reassignment in flight that adds a replica on broker 0 (slow: the partition is big).
    _control(dc, "skew", topic="elsewhere", partition=0, add_bytes="50GiB")
    kafka.alter_partition_reassignments({TopicPartition("elsewhere", 0): [2, 0]})

    obs = env.run(acts.observe_roll_gate, GateObservationInput(ref=ref, role="broker", node_id=0))
    assert obs.reachable and obs.error == "" and obs.now_ms > 0
    pod = core.read_namespaced_pod("demo-broker-0", NS)
    assert obs.pod_uid == pod.metadata.uid and obs.pod_ready and obs.waiting_reason == ""
    sts = apps.read_namespaced_stateful_set("demo-broker", NS)
    assert obs.pod_revision == pod.metadata.labels["controller-revision-hash"] == sts.status.update_revision
    assert obs.update_revision == sts.status.update_revision
    by_topic: dict[str, list[Any]] = {}
    for p in obs.partitions:
        by_topic.setdefault(p.topic, []).append(p)
    assert sorted(by_topic) == ["elsewhere", "orders", "relaxed"]
    assert [p.partition for p in by_topic["orders"]] == list(range(6))
    assert all(sorted(p.replicas) == [0, 1, 2] and sorted(p.isr) == [0, 1, 2] and p.min_isr == 2
               and p.leader in p.replicas and not p.adding for p in by_topic["orders"])
    assert all(p.min_isr == 1 for p in by_topic["relaxed"])
    [moving] = by_topic["elsewhere"]
    assert (moving.adding, moving.removing, moving.isr) == ([0], [], [2]) and set(moving.replicas) == {0, 2}
    # The other brokers' facts do not include a partition without a replica there.
    obs1 = env.run(acts.observe_roll_gate, GateObservationInput(ref=ref, role="broker", node_id=1))
    assert {p.topic for p in obs1.partitions} == {"orders", "relaxed"}

    # A template change: the StatefulSet's updateRevision moves on, the pods keep theirs (OnDelete).
    apps.patch_namespaced_stateful_set("demo-broker", NS, {"spec": {"template": {"metadata": {
        "annotations": {"example.com/restart": "1"}}}}})
    wait_for(lambda: apps.read_namespaced_stateful_set("demo-broker", NS).status.update_revision
             != sts.status.update_revision, message="a new updateRevision")
    obs = env.run(acts.observe_roll_gate, GateObservationInput(ref=ref, role="broker", node_id=0))
    assert obs.update_revision != obs.pod_revision == sts.status.update_revision
    # observe_cluster reports the same revisions (what plans a roll), and each broker's rack.
    observed = env.run(acts.observe_cluster, ref)
    assert observed.brokers is not None and observed.brokers.update_revision == obs.update_revision
    assert observed.brokers.current_revision == sts.status.update_revision
    assert {p.revision for p in observed.broker_pods} == {sts.status.update_revision}
    assert all(not p.unschedulable for p in observed.broker_pods)
    racks = {p.node_id: p.rack for p in observed.broker_pods}
    assert set(racks.values()) <= {"zone-a", "zone-b", "zone-c"} and all(racks.values())
    assert {p.rack for p in observed.controller_pods} == {""}

    # Controllers: the quorum as its leader reports it.
    ctl = env.run(acts.observe_roll_gate, GateObservationInput(ref=ref, role="controller", node_id=1001))
    assert ctl.reachable and ctl.quorum_leader_id in (1000, 1001, 1002) and ctl.quorum_high_watermark > 0
    assert [v.node_id for v in ctl.voters] == [1000, 1001, 1002]
    assert all(v.log_end_offset >= 0 and v.last_caught_up_ms > 0 and v.last_fetch_ms > 0 for v in ctl.voters)
    assert ctl.pod_uid == _pod_uid(core, "demo-controller-1001") and ctl.pod_ready and not ctl.partitions

    # A follower controller restarted: back once it is a voter caught up with the leader.
    follower = next(v.node_id for v in ctl.voters if v.node_id != ctl.quorum_leader_id)
    name = f"demo-controller-{follower}"
    old = _pod_uid(core, name)
    assert env.run(acts.restart_pod, RestartPodInput(ref=ref, pod=name, expected_uid=old)).deleted
    done = env.run(acts.wait_pod_rolled, WaitPodRolledInput(ref=ref, role="controller", pod=name, node_id=follower,
                                                            old_uid=old, poll_seconds=0.1))
    assert done.new_uid == _pod_uid(core, name) != old
    assert f"controller {follower} caught up with leader" in done.detail

    # A cluster whose Kafka cannot be reached is a fact, not a failure.
    ghost = env.run(acts.observe_roll_gate, GateObservationInput(ref=ClusterRef(namespace=NS, name="ghost"),
                                                                 role="broker", node_id=0))
    assert not ghost.reachable and "ghost-kafka-bootstrap does not exist" in ghost.error
    assert ghost.pod_uid == "" and not ghost.pod_ready and ghost.update_revision == ""


def test_restart_pod_deletes_only_the_pod_it_was_given(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                                      env: ActivityEnvironment, ref: ClusterRef,
                                                      core: client.CoreV1Api, dc: DevClusterThread) -> None:
    kc = create_cluster(custom, {"controllers": {"replicas": 1}, "brokers": {"replicas": 1}})
    env.run(acts.apply_manifests, apply_input(kc, ["controllers"]))
    name = "demo-controller-1000"
    wait_for(lambda: core.read_namespaced_pod(name, NS).status.phase == "Running" if core.list_namespaced_pod(
        NS, field_selector=f"metadata.name={name}").items else False, timeout=15, message="controller pod running")
    deletions: list[str] = []

    def install(cluster: Any) -> None:
        def listener(event: Any) -> None:
            meta = event.obj["metadata"]
            if event.key == "/pods" and meta["name"] == name and meta.get("deletionTimestamp") and not (
                    (event.old or {}).get("metadata") or {}).get("deletionTimestamp"):
                deletions.append(meta["uid"])

        cluster.api.store.listeners.append(listener)

    dc.call(install)
    old = _pod_uid(core, name)

    with pytest.raises(ApplicationError) as err:
        env.run(acts.restart_pod, RestartPodInput(ref=ref, pod=name, expected_uid=""))
    assert err.value.non_retryable and "expected_uid" in err.value.message
    assert not env.run(acts.restart_pod, RestartPodInput(ref=ref, pod=name, expected_uid="not-this-pod")).deleted
    assert not env.run(acts.restart_pod, RestartPodInput(ref=ref, pod="demo-controller-7", expected_uid=old)).deleted

    first = env.run(acts.restart_pod, RestartPodInput(ref=ref, pod=name, expected_uid=old))
    assert first.deleted and first.previous_uid == old
    # A retry (the worker died before recording the result) deletes nothing more, whether the old pod is
    # still terminating or already replaced.
    env.run(acts.restart_pod, RestartPodInput(ref=ref, pod=name, expected_uid=old))
    wait_for(lambda: _pod_uid(core, name) != old if core.list_namespaced_pod(
        NS, field_selector=f"metadata.name={name}").items else False, timeout=15, message="replacement pod")
    new = _pod_uid(core, name)
    again = env.run(acts.restart_pod, RestartPodInput(ref=ref, pod=name, expected_uid=old))
    assert not again.deleted
    assert deletions == [old]
    pod = core.read_namespaced_pod(name, NS)
    assert pod.metadata.uid == new and pod.metadata.deletion_timestamp is None

    # The API server's own check: a uid precondition that does not match is refused (what makes the
    # restart safe even when the pod is replaced between the activity's read and its delete).
    with pytest.raises(client.ApiException) as refused:
        core.delete_namespaced_pod(name, NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(
            uid=old)))
    assert refused.value.status == 409


def test_wait_pod_rolled_waits_for_the_isr_then_leaders_move_back(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api, dc: DevClusterThread, admin: Callable[[], KafkaAdminClient]) -> None:
    _up(custom, acts, env, ref)
    kafka = admin()
    kafka.create_topics([NewTopic("orders", 6, 3)])
    _control(dc, "load", topic="orders", bytes_per_sec="20MiB")
    # Broker 0 catches up 1000x slower than the others: it stays out of the ISR after its restart.
    _control(dc, "slow-broker", node_id=0, factor=0.001)
    name, old = "demo-broker-0", _pod_uid(core, "demo-broker-0")
    preferred = sorted(f"orders-{p['partition_index']}" for t in kafka.describe_topics(["orders"])
                       for p in t["partitions"] if p["replica_nodes"][0] == 0)
    assert preferred

    beats: list[dict[str, Any]] = []
    catching_up = threading.Event()
    catch_up_beats: list[float] = []

    def on_heartbeat(*details: Any) -> None:
        beats.append(details[0])
        if "catching up" in details[0]["detail"]:
            catch_up_beats.append(time.monotonic())
            catching_up.set()

    env.on_heartbeat = on_heartbeat
    assert env.run(acts.restart_pod, RestartPodInput(ref=ref, pod=name, expected_uid=old)).deleted
    result: list[WaitPodRolledResult | BaseException] = []

    def wait() -> None:
        try:
            result.append(env.run(acts.wait_pod_rolled, WaitPodRolledInput(
                ref=ref, role="broker", pod=name, node_id=0, old_uid=old, poll_seconds=0.4)))
        except BaseException as err:  # the test inspects it
            result.append(err)

    thread = threading.Thread(target=wait)
    thread.start()
    assert catching_up.wait(30), beats[-3:]
    # Ready and registered is not enough: the wait holds while the broker is out of some ISR.
    pod = core.read_namespaced_pod(name, NS)
    assert pod.metadata.uid != old and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
    time.sleep(0.6)  # several polls while the broker is still catching up
    assert thread.is_alive() and not result
    # Once the new pod is Ready the wait polls 4x as often (0.1 s here instead of poll_seconds 0.4).
    gaps = [b - a for a, b in itertools.pairwise(catch_up_beats)]
    assert len(gaps) >= 3 and sorted(gaps)[len(gaps) // 2] < 0.3, gaps
    _control(dc, "slow-broker", node_id=0, factor=1)
    thread.join(30)
    [done] = result
    assert isinstance(done, WaitPodRolledResult), done
    assert done.new_uid == _pod_uid(core, name) != old
    assert "registered and in the ISR of all 6 partitions" in done.detail
    assert all(0 in p["isr_nodes"] for t in kafka.describe_topics(["orders"]) for p in t["partitions"])
    # Every heartbeat carries the progress a retried attempt resumes from.
    assert [b["polls"] for b in beats] == list(range(1, len(beats) + 1))
    assert len({b["startedAt"] for b in beats}) == 1 and beats[-1]["newUid"] == done.new_uid
    phases = [b["detail"] for b in beats]
    assert any("old pod is still" in d or "not recreated" in d or "not Ready" in d for d in phases)

    # A retried attempt continues from the heartbeat details it is given back (plain dicts).
    env.info = dataclasses.replace(env.info, heartbeat_details=[{"startedAt": beats[-1]["startedAt"], "polls": 41}])
    resumed = env.run(acts.wait_pod_rolled, WaitPodRolledInput(ref=ref, role="broker", pod=name, node_id=0,
                                                               old_uid=old, poll_seconds=0.1))
    assert "42 polls" in resumed.detail

    # Leadership went to the others while broker 0 was down; the election gives it back.
    led = {f"orders-{p['partition_index']}" for t in kafka.describe_topics(["orders"]) for p in t["partitions"]
           if p["leader_id"] == 0}
    assert not led & set(preferred)
    elected = env.run(acts.elect_preferred_leaders, ElectLeadersInput(ref=ref, node_id=0))
    assert elected.elected == preferred and not elected.failed
    leaders = {f"orders-{p['partition_index']}": p["leader_id"] for t in kafka.describe_topics(["orders"])
               for p in t["partitions"]}
    assert all(leaders[p] == 0 for p in preferred)
    again = env.run(acts.elect_preferred_leaders, ElectLeadersInput(ref=ref, node_id=0))
    assert again.elected == [] and again.not_needed >= len(preferred)


def test_apply_dynamic_configs_sends_only_what_differs(custom: client.CustomObjectsApi, acts: ClusterActivities,
                                                       env: ActivityEnvironment, ref: ClusterRef,
                                                       admin: Callable[[], KafkaAdminClient]) -> None:
    _up(custom, acts, env, ref, {"controllers": {"replicas": 1}, "brokers": {"replicas": 2}})
    inp = DynamicConfigsInput(ref=ref, cluster_wide={"log.retention.ms": "3600000", "message.max.bytes": "2000000"},
                              per_broker={"follower.replication.throttled.rate": "1000000"}, brokers=[1, 0])
    done = env.run(acts.apply_dynamic_configs, inp)
    assert done.applied == ["cluster: log.retention.ms=3600000", "cluster: message.max.bytes=2000000",
                            "broker/0: follower.replication.throttled.rate=1000000",
                            "broker/1: follower.replication.throttled.rate=1000000"] and done.deleted == []

    kafka = admin()

    def effective(broker: str) -> dict[str, tuple[str, str]]:
        keys = ["log.retention.ms", "message.max.bytes", "follower.replication.throttled.rate"]
        got = kafka.describe_configs([ConfigResource(ConfigResourceType.BROKER, broker, keys)], config_filter="all")
        return {k: (v["value"], v["config_source"]) for k, v in got["broker"][broker].items()}

    for broker in ("0", "1"):
        assert effective(broker) == {
            "log.retention.ms": ("3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
            "message.max.bytes": ("2000000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
            "follower.replication.throttled.rate": ("1000000", "DYNAMIC_BROKER_CONFIG")}

    # The same settings again: nothing to send.
    assert env.run(acts.apply_dynamic_configs, inp) == DynamicConfigsResult()
    # None deletes an override (once); the broker falls back to its static value or Kafka's default.
    unset = DynamicConfigsInput(ref=ref, cluster_wide={"message.max.bytes": None})
    assert env.run(acts.apply_dynamic_configs, unset).deleted == ["cluster: message.max.bytes"]
    assert env.run(acts.apply_dynamic_configs, unset) == DynamicConfigsResult()
    assert effective("0")["message.max.bytes"] == ("1048588", "DEFAULT_CONFIG")

    # A read-only setting is refused by Kafka: not retryable, and the message says which and why.
    with pytest.raises(ApplicationError) as err:
        env.run(acts.apply_dynamic_configs, DynamicConfigsInput(ref=ref, cluster_wide={"log.retention.hours": "1"}))
    assert err.value.type == "ConfigRejected" and err.value.non_retryable
    assert "cluster default (log.retention.hours)" in err.value.message
    assert "Cannot update these configs dynamically" in err.value.message
