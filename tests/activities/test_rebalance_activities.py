"""The rebalance activities, run for real (temporalio's ActivityEnvironment) against devcluster's simulated KRaft
brokers: plan onto a new broker, throttle exactly the moving replicas, follow the copy at the throttled rate,
clear throttles, resubmit as a no-op, cancel mid-flight, drain a broker and check it empty, elect leaders."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cluster import ClusterActivities
from activities.contracts import (
    CancelReassignmentsInput,
    ClearThrottlesInput,
    ClearThrottlesResult,
    ElectPartitionsInput,
    MoveSpec,
    PlanRebalanceInput,
    RestartPodInput,
    SubmitReassignmentsInput,
    VerifyBrokersEmptyInput,
    WaitInput,
    WaitPodRolledInput,
    WaitReassignmentsInput,
    WaitReassignmentsResult,
)
from ballast.messages import ClusterRef
from ballast.spec import GROUP, PLURAL, VERSION
from devcluster.cluster import DevClusterThread
from tests.activities.test_activities import NS
from tests.activities.test_roll_activities import _control, _up

MiB = 2**20
TOPIC_THROTTLES = ["follower.replication.throttled.replicas", "leader.replication.throttled.replicas"]
BROKER_THROTTLES = ["follower.replication.throttled.rate", "leader.replication.throttled.rate"]


def _replicas(kafka: KafkaAdminClient, topics: list[str]) -> dict[str, list[int]]:
    return {f"{t['name']}-{p['partition_index']}": list(p["replica_nodes"])
            for t in kafka.describe_topics(topics) for p in t["partitions"]}


def _leaders(kafka: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    return {f"{t['name']}-{p['partition_index']}": int(p["leader_id"])
            for t in kafka.describe_topics(topics) for p in t["partitions"]}


def _topic_throttles(kafka: KafkaAdminClient, topics: list[str]) -> dict[str, dict[str, set[str]]]:
    """The throttled-replica configs set on each topic, as sets of 'partition:broker'."""
    got = kafka.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t, TOPIC_THROTTLES) for t in topics])
    out = {t: {k: set(v["value"].split(",")) for k, v in configs.items() if v["value"]}
           for t, configs in got.get("topic", {}).items()}
    return {t: values for t, values in out.items() if values}


def _broker_throttles(kafka: KafkaAdminClient, brokers: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for broker in brokers:
        got = kafka.describe_configs([ConfigResource(ConfigResourceType.BROKER, broker, BROKER_THROTTLES)])
        values = {k: v["value"] for k, v in got["broker"][str(broker)].items()
                  if k in BROKER_THROTTLES and v["value"]}
        if values:
            out[broker] = values
    return out


def _wait_done(env: ActivityEnvironment, acts: ClusterActivities, inp: WaitReassignmentsInput,
               timeout: float = 20) -> WaitReassignmentsResult:
    """Call wait_reassignments again while it reports progress, as the workflow does."""
    deadline = time.monotonic() + timeout
    while True:
        result = env.run(acts.wait_reassignments, inp)
        if result.done:
            return result
        assert time.monotonic() < deadline, result.detail


def _scale_brokers(custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment,
                   ref: ClusterRef, kc: dict[str, Any], replicas: int) -> None:
    from tests.activities.test_activities import apply_input

    kc = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, ref.name,
                                               {"spec": {"brokers": {"replicas": replicas}}})
    env.run(acts.apply_manifests, apply_input(kc, ["brokers"]))
    env.run(acts.wait_brokers_registered, WaitInput(ref=ref, spec=kc["spec"], expected=replicas, poll_seconds=0.1))


SPEC = {"controllers": {"replicas": 1}, "brokers": {"replicas": 3, "rackAwareness": {}}}


def test_scale_out_plan_throttled_submit_wait_clear_elect(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        dc: DevClusterThread, admin: Callable[[], KafkaAdminClient]) -> None:
    kc = _up(custom, acts, env, ref, SPEC)
    kafka = admin()
    kafka.create_topics([NewTopic("orders", 6, 2), NewTopic("idle", 2, 2)])
    for p in range(6):
        _control(dc, "skew", topic="orders", partition=p, add_bytes="4MiB")
    _scale_brokers(custom, acts, env, ref, kc, 4)
    kafka = admin()  # a client whose metadata knows broker 3
    racks = {b["broker_id"]: b["rack"] for b in kafka.describe_cluster()["brokers"]}
    before = _replicas(kafka, ["orders", "idle"])
    assert not any(3 in r for r in before.values())

    # A broker the plan needs that is not there: retryable (the workflow waits for it to register).
    with pytest.raises(ApplicationError) as missing:
        env.run(acts.plan_rebalance, PlanRebalanceInput(ref=ref, require_brokers=[3, 7]))
    assert missing.value.type == "BrokersNotRegistered" and not missing.value.non_retryable
    assert "[7]" in missing.value.message

    plan = env.run(acts.plan_rebalance, PlanRebalanceInput(ref=ref, require_brokers=[3], max_moves_per_batch=50,
                                                           capacity_fallback_bytes=MiB))
    assert not plan.infeasible and not plan.truncated and plan.partitions == 8 and plan.in_flight == []
    moves = [m for batch in plan.batches for m in batch]
    assert moves and all(len(b) <= 50 for b in plan.batches) and plan.moves == len(moves)
    assert all(3 in m.target and 3 not in m.source for m in moves if m.adding)
    assert plan.bytes_to_move == sum(m.bytes_to_move for m in moves) > 0
    assert all(m.source == before[m.key] for m in moves)
    assert all(m.size_bytes == (4 * MiB if m.topic == "orders" else 0) for m in moves)
    by_id = {b.id: b for b in plan.brokers}
    assert sorted(by_id) == [0, 1, 2, 3] and all(by_id[b].rack == racks[b] for b in by_id)
    # The disk size DescribeLogDirs (v4+) reports, the brokers' 10Gi volumes, not the fallback.
    assert all(b.capacity_bytes == 10 * 2**30 for b in plan.brokers)
    assert by_id[3].replicas_before == 0 < by_id[3].replicas_after
    assert by_id[3].bytes_before == 0 < by_id[3].bytes_after
    assert sum(b.replicas_before for b in plan.brokers) == sum(b.replicas_after for b in plan.brokers) == 16
    assert plan.replicas_after.max_deviation_percent < plan.replicas_before.max_deviation_percent

    # A plan larger than max_moves comes back cut, the first moves of the same plan.
    cut = env.run(acts.plan_rebalance, PlanRebalanceInput(ref=ref, max_moves=2, max_moves_per_batch=1))
    assert cut.truncated and cut.moves == 2 and [len(b) for b in cut.batches] == [1, 1]
    assert cut.bytes_to_move == sum(m.bytes_to_move for b in cut.batches for m in b)
    assert sum(b.replicas_after for b in cut.brokers) == 16

    # Submit with a throttle: exactly the moving replicas are throttled.
    rate = 5 * MiB
    moving = [m for m in moves if m.adding]
    started = time.monotonic()
    sub = env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=moves, throttle_bytes_per_sec=rate))
    assert sub.submitted == sorted(m.key for m in moves) and not sub.skipped
    assert not sub.already_done and not sub.already_in_flight
    leader_expected: dict[str, set[str]] = {}
    follower_expected: dict[str, set[str]] = {}
    involved: set[int] = set()
    for m in moving:
        leader_expected.setdefault(m.topic, set()).update(f"{m.partition}:{b}" for b in m.source)
        follower_expected.setdefault(m.topic, set()).update(f"{m.partition}:{b}" for b in m.adding)
        involved.update(m.source + m.adding)
    assert sub.throttled_topics == sorted(leader_expected)
    assert sub.throttled_brokers == sorted(involved)
    assert _topic_throttles(kafka, ["orders", "idle"]) == {
        t: {"leader.replication.throttled.replicas": leader_expected[t],
            "follower.replication.throttled.replicas": follower_expected[t]} for t in leader_expected}
    assert _broker_throttles(kafka, [0, 1, 2, 3]) == {b: dict.fromkeys(BROKER_THROTTLES, str(rate))
                                                       for b in involved}

    # The copy runs at the throttled rate: broker 3 receives at most `rate` bytes per second.
    wait = WaitReassignmentsInput(ref=ref, moves=moves, report_after_seconds=0.5, poll_seconds=0.1)
    beats: list[dict[str, Any]] = []
    env.on_heartbeat = lambda *details: beats.extend(details[:1])
    first = env.run(acts.wait_reassignments, wait)
    elapsed = time.monotonic() - started
    assert not first.done and first.in_flight and first.bytes_total == plan.bytes_to_move
    assert 0 < first.bytes_moved <= rate * elapsed * 1.1 + MiB, (first.bytes_moved, elapsed)
    polls = [b["polls"] for b in beats]
    assert polls == sorted(polls) and sorted(set(polls)) == list(range(1, polls[-1] + 1)) and polls[-1] >= 3
    assert beats[-1]["bytesMoved"] == first.bytes_moved and "moves done" in first.detail

    # A retried attempt continues from its heartbeat details (plain dicts).
    env.info = dataclasses.replace(env.info, heartbeat_details=[{"startedAt": beats[-1]["startedAt"], "polls": 40}])
    resumed = env.run(acts.wait_reassignments, wait.model_copy(update={"report_after_seconds": 0.0}))
    assert "41 polls" in resumed.detail
    env.info = dataclasses.replace(env.info, heartbeat_details=[])

    done = _wait_done(env, acts, wait)
    took = time.monotonic() - started
    broker3_bytes = sum(m.size_bytes for m in moving if 3 in m.adding)
    assert took >= broker3_bytes / rate * 0.9, (took, broker3_bytes)  # unthrottled it would take ~0.1 s
    assert done.completed == sorted(m.key for m in moves) and not done.in_flight and not done.not_at_target
    assert done.bytes_moved == done.bytes_total == plan.bytes_to_move
    after = _replicas(kafka, ["orders", "idle"])
    assert all(after[m.key] == m.target for m in moves)

    # Throttles come off everywhere (and a second call finds nothing to do).
    cleared = env.run(acts.clear_throttles, ClearThrottlesInput(ref=ref))
    assert cleared.topics == sorted(leader_expected) and cleared.brokers == sorted(involved)
    assert _topic_throttles(kafka, ["orders", "idle"]) == {} and _broker_throttles(kafka, [0, 1, 2, 3]) == {}
    assert env.run(acts.clear_throttles, ClearThrottlesInput(ref=ref)) == ClearThrottlesResult()

    # Resubmitting the same batch is a no-op: nothing submitted, nothing throttled.
    again = env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=moves,
                                                                        throttle_bytes_per_sec=rate))
    assert again.already_done == sorted(m.key for m in moves) and not again.submitted and not again.skipped
    assert again.throttled_topics == [] and again.throttled_brokers == []
    assert _topic_throttles(kafka, ["orders", "idle"]) == {} and _broker_throttles(kafka, [0, 1, 2, 3]) == {}
    # A move planned from replicas that changed since is skipped with the reason.
    stale = MoveSpec(topic="idle", partition=0, source=[7, 8], target=[8, 9])
    odd = env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=[
        stale, MoveSpec(topic="gone", partition=0, source=[0], target=[1])]))
    assert odd.skipped == {"gone-0": "the topic or partition is gone",
                           "idle-0": f"its replicas are {after['idle-0']}, neither the planned source [7, 8] nor "
                                     "the target [8, 9]"}
    # Bad input is not retried.
    with pytest.raises(ApplicationError) as bad:
        env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=[
            MoveSpec(topic="idle", partition=0, source=[0], target=[1, 1])]))
    assert bad.value.non_retryable and bad.value.type == "InvalidInput" and "distinct" in bad.value.message

    # Preferred leaders for the moved partitions (their new first replica leads afterwards).
    keys = sorted(m.key for m in moves)
    elected = env.run(acts.elect_leaders_for_partitions,
                      ElectPartitionsInput(ref=ref, partitions=[*keys, "nope-0"]))
    assert elected.failed == {"nope-0": "UnknownTopicOrPartitionError"}
    assert len(elected.elected) + elected.not_needed == len(keys) and set(elected.elected) <= set(keys)
    leaders = _leaders(kafka, ["orders", "idle"])
    assert all(leaders[m.key] == m.target[0] for m in moves)
    again_elected = env.run(acts.elect_leaders_for_partitions, ElectPartitionsInput(ref=ref, partitions=keys))
    assert again_elected.elected == [] and again_elected.not_needed == len(keys)
    with pytest.raises(ApplicationError) as malformed:
        env.run(acts.elect_leaders_for_partitions, ElectPartitionsInput(ref=ref, partitions=["orders"]))
    assert malformed.value.non_retryable and "'orders' is not a 'topic-partition' name" in malformed.value.message


def test_cancel_mid_flight_then_drain_a_broker(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api, dc: DevClusterThread, admin: Callable[[], KafkaAdminClient]) -> None:
    _up(custom, acts, env, ref, {"controllers": {"replicas": 1}, "brokers": {"replicas": 3}})
    kafka = admin()
    kafka.create_topics([NewTopic("big", -1, replica_assignments={0: [0, 1]}), NewTopic("small", 3, 2)])
    _control(dc, "skew", topic="big", partition=0, add_bytes="1GiB")

    # A slow move in flight: 1 GiB at 4 MiB/s.
    move = MoveSpec(topic="big", partition=0, source=[0, 1], target=[2, 1], size_bytes=2**30)
    sub = env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=[move],
                                                                      throttle_bytes_per_sec=4 * MiB))
    assert sub.submitted == ["big-0"] and sub.throttled_brokers == [0, 1, 2] and sub.throttled_topics == ["big"]
    # Resubmitting while it is in flight sends nothing; another target is not forced over it.
    again = env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=[move]))
    assert again.already_in_flight == ["big-0"] and not again.submitted
    other = env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=[
        move.model_copy(update={"target": [0, 2]})]))
    assert other.skipped == {"big-0": "a reassignment to [2, 1] is in flight (not this plan's [0, 2])"}

    wait = WaitReassignmentsInput(ref=ref, moves=[move], report_after_seconds=0.3, poll_seconds=0.1)
    beats: list[dict[str, Any]] = []
    env.on_heartbeat = lambda *details: beats.extend(details[:1])
    progress = env.run(acts.wait_reassignments, wait)
    assert not progress.done and progress.in_flight == ["big-0"] and progress.bytes_total == 2**30
    assert 0 < progress.bytes_moved < progress.bytes_total // 4
    assert beats[-1]["copied"] == {"big-0": {"2": progress.bytes_moved}}

    # The destination broker restarting meanwhile is waited out, not failed; a retried wait reports the copy
    # as last seen while the broker does not answer, and the copy goes on once it is back.
    old_uid = core.read_namespaced_pod("demo-broker-2", NS).metadata.uid
    assert env.run(acts.restart_pod, RestartPodInput(ref=ref, pod="demo-broker-2", expected_uid=old_uid)).deleted
    env.info = dataclasses.replace(env.info, heartbeat_details=[beats[-1]])
    beats.clear()
    during = env.run(acts.wait_reassignments, wait.model_copy(update={"report_after_seconds": 1.0}))
    env.info = dataclasses.replace(env.info, heartbeat_details=[])
    assert not during.done and during.in_flight == ["big-0"] and during.bytes_moved >= progress.bytes_moved
    assert any("brokers [2] not answering (their copies as last seen)" in b["detail"] for b in beats)
    env.run(acts.wait_pod_rolled, WaitPodRolledInput(ref=ref, role="broker", pod="demo-broker-2", node_id=2,
                                                     old_uid=old_uid, poll_seconds=0.1))
    back = env.run(acts.wait_reassignments, wait)
    assert not back.done and back.bytes_moved > during.bytes_moved and "not answering" not in back.detail
    kafka = admin()  # a client that knows the restarted broker's new address

    # Planning around a reassignment in flight: that partition is left out and listed.
    plan = env.run(acts.plan_rebalance, PlanRebalanceInput(ref=ref))
    assert plan.in_flight == ["big-0"] and plan.partitions == 4
    assert all(m.key != "big-0" for batch in plan.batches for m in batch)

    # Kafka out of reach (here: no such cluster) is waited out and reported, never raised.
    ghost = env.run(acts.wait_reassignments, wait.model_copy(update={"ref": ClusterRef(namespace=NS, name="ghost")}))
    assert not ghost.done and "Kafka: " in ghost.detail and "ghost-kafka-bootstrap" in ghost.detail

    cancelled = env.run(acts.cancel_reassignments, CancelReassignmentsInput(ref=ref, partitions=["big-0", "small-1"]))
    assert cancelled.cancelled == ["big-0"] and cancelled.not_in_flight == ["small-1"]
    # Back on the original replicas (in the order Kafka keeps them while reassigning: target first).
    reverted = _replicas(kafka, ["big"])["big-0"]
    assert sorted(reverted) == [0, 1]
    ended = env.run(acts.wait_reassignments, wait)
    assert ended.done and ended.not_at_target == {"big-0": str(reverted)} and not ended.completed
    assert env.run(acts.cancel_reassignments, CancelReassignmentsInput(ref=ref)).cancelled == []
    # Only the topics/brokers named, when named.
    cleared = env.run(acts.clear_throttles, ClearThrottlesInput(ref=ref, topics=["big", "small"], brokers=[2]))
    assert cleared.topics == ["big"] and cleared.brokers == [2]
    assert sorted(_broker_throttles(kafka, [0, 1, 2])) == [0, 1]
    assert env.run(acts.clear_throttles, ClearThrottlesInput(ref=ref)).brokers == [0, 1]

    # Drain broker 2 (the big topic goes first: its copy would take the test's time).
    kafka.delete_topics(["big"])
    holding = env.run(acts.verify_brokers_empty, VerifyBrokersEmptyInput(ref=ref, brokers=[2, 9]))
    on_2 = sorted(k for k, r in _replicas(kafka, ["small"]).items() if 2 in r)
    assert not holding.empty and holding.holders == {2: on_2}
    drain = env.run(acts.plan_rebalance, PlanRebalanceInput(ref=ref, remove=[2]))
    moves = [m for batch in drain.batches for m in batch]
    assert not drain.infeasible and {m.key for m in moves} >= set(on_2)
    assert all(2 not in m.target for m in moves)
    assert {b.id: b.replicas_after for b in drain.brokers}[2] == 0
    assert env.run(acts.submit_reassignments, SubmitReassignmentsInput(ref=ref, moves=moves)).submitted
    _wait_done(env, acts, WaitReassignmentsInput(ref=ref, moves=moves, poll_seconds=0.05))
    assert env.run(acts.verify_brokers_empty, VerifyBrokersEmptyInput(ref=ref, brokers=[2])).empty
    still = env.run(acts.verify_brokers_empty, VerifyBrokersEmptyInput(ref=ref, brokers=[0, 1, 2]))
    assert sorted(still.holders) == [0, 1] and sum(map(len, still.holders.values())) == 6
