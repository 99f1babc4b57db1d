"""Elastic scaling and rebalancing end to end: Temporal dev server + devcluster (simulated KRaft brokers, ingest
running) + the ``ballast operator`` process.

What an operation did is judged from outside the operator: kafka-python (Metadata, DescribeLogDirs,
DescribeConfigs, DescribeCluster) for where the replicas and bytes ended and which throttles are left, the
simulated Kafka cluster's own history for what happened meanwhile (every reassignment started, every ISR change,
every unregistration) and the Kubernetes API for pods, claims and StatefulSets. The operator's status is only
read to know when it says it is done.

Data movement is sized to take a few seconds: partitions are filled at once to known sizes (the simulation's
``inflate``), producers keep writing, and ``rebalance.throttleBytesPerSec`` bounds every moving replica as
devcluster's simulated replication honours it (per broker, leader and follower side).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from kubernetes import client
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import contracts as act
from ballast.devserver import DevServer
from ballast.messages import REBALANCE_QUERY_PLAN
from devcluster.cluster import DevClusterThread
from tests.conftest import wait_for
from tests.e2e.conftest import OperatorProcess
from tests.e2e.rebalances import (
    MiB,
    balance_problems,
    cluster_spec,
    condition,
    create_cluster,
    create_topics,
    fill,
    history,
    ingest,
    is_ready,
    loads,
    min_isr_violations,
    moves_received,
    patch_cluster,
    rebalance_done,
    registered_brokers,
    replicas_on_after,
    sim_now,
    started_moves,
    status_of,
    throttles_left,
    unregistered,
)
from tests.e2e.rolls import PodTimeline, kafka_admin_of, kafka_cluster, once_each, pod_uids, pods_rolled

NS = "default"
TOLERANCE = 5
# Three topics, 36 partitions at RF 3, of three sizes: 168 MiB of partition data, 504 MiB on the brokers' disks.
TOPICS = {"orders": (12, 3), "payments": (12, 3), "audit": (12, 3)}
SIZES = {"orders": 8 * MiB, "payments": 4 * MiB, "audit": 2 * MiB}


@pytest.fixture(autouse=True)
def _quiet_kafka_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="kafka")


def _diagnostics(custom: client.CustomObjectsApi, name: str, operator: OperatorProcess) -> str:
    return f"\nstatus: {status_of(custom, name)}\n--- operator logs ---\n{operator.logs()[-8000:]}"


def _up(custom: client.CustomObjectsApi, core: client.CoreV1Api, operator: OperatorProcess, dc: DevClusterThread,
        name: str, spec: dict[str, Any], topics: dict[str, tuple[int, int]], sizes: dict[str, int],
        rate: str = "1MiB") -> str:
    """The cluster Ready, ``topics`` created, each partition filled with ``sizes[topic]`` bytes and producers
    writing ``rate`` per topic; returns the cluster id."""
    create_cluster(custom, name, spec)
    try:
        wait_for(lambda: is_ready(status_of(custom, name)), timeout=90, interval=0.1, message=f"{name} Ready")
    except AssertionError as err:
        raise AssertionError(f"{err}{_diagnostics(custom, name, operator)}") from None
    cluster_id: str = kafka_cluster(custom, name)["status"]["clusterId"]
    create_topics(core, name, topics)
    fill(dc, cluster_id, {(t, p): sizes[t] for t, (n, _) in topics.items() for p in range(n)})
    ingest(dc, cluster_id, topics, rate)
    return cluster_id


def _wait_rebalanced(custom: client.CustomObjectsApi, name: str, operator: OperatorProcess, prefix: str = "",
                     timeout: float = 90, not_id: str = "") -> dict[str, Any]:
    try:
        done = wait_for(lambda: rebalance_done(custom, name, prefix, not_id), timeout=timeout, interval=0.1,
                        message=f"a rebalance of {name} to end")
    except AssertionError as err:
        raise AssertionError(f"{err}{_diagnostics(custom, name, operator)}") from None
    assert isinstance(done, dict)
    return done


def test_scale_out_3_to_6_under_ingest_ends_balanced(
        operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        apps: client.AppsV1Api, dc: DevClusterThread) -> None:
    name = "grow"
    cluster_id = _up(custom, core, operator, dc, name, cluster_spec(3, throttle=48 * MiB), TOPICS, SIZES)
    since = sim_now(dc, cluster_id)
    started = time.monotonic()
    patch_cluster(custom, name, {"spec": {"brokers": {"replicas": 6}}})
    done = _wait_rebalanced(custom, name, operator, prefix=f"rebalance/{NS}/{name}/")
    took = time.monotonic() - started

    assert done["state"] == "Succeeded", done
    got = loads(core, name)
    assert sorted(got.replicas) == [0, 1, 2, 3, 4, 5], got.summary()
    assert balance_problems(got, TOLERANCE) == [], got.summary()
    assert throttles_left(core, name) == {}
    events = history(dc, cluster_id, since)
    assert min_isr_violations(events) == []
    moves = started_moves(events)
    assert moves and max(moves.values()) == 1, moves
    # The throttle held the copies back: the moves took at least what the busiest new broker receives at 48 MiB/s.
    received = moves_received(events, {(t, p): SIZES[t] for t, (n, _) in TOPICS.items() for p in range(n)})
    assert sorted(received) == [3, 4, 5], received
    moving = [e.time for e in events if e.kind in ("reassignment_started", "reassignment_completed")]
    floor = max(received.values()) / (48 * MiB)
    assert max(moving) - min(moving) >= 0.95 * floor, (max(moving) - min(moving), floor)
    assert apps.read_namespaced_stateful_set(f"{name}-broker", NS).spec.replicas == 6
    status = status_of(custom, name)
    assert is_ready(status), status
    print(f"scale-out 3 -> 6: {len(moves)} moves, {done.get('bytesMoved', 0) / MiB:.0f} MiB in {took:.1f}s (copies "
          f"{max(moving) - min(moving):.1f}s, throttle floor {floor:.1f}s); {got.summary()}")


def _pvc_names(core: client.CoreV1Api, name: str) -> list[str]:
    return sorted(c.metadata.name for c in core.list_namespaced_persistent_volume_claim(
        NS, label_selector=f"app.kubernetes.io/instance={name}").items if c.metadata.deletion_timestamp is None)


def test_scale_in_6_to_4_drains_and_removes_then_an_impossible_scale_in_is_refused(
        operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        apps: client.AppsV1Api, dc: DevClusterThread) -> None:
    name = "shrink"
    spec = cluster_spec(6, throttle=48 * MiB)
    spec["brokers"]["storage"]["deleteClaim"] = True
    timeline = PodTimeline(name).install(dc)
    cluster_id = _up(custom, core, operator, dc, name, spec, TOPICS, SIZES)
    before = loads(core, name)
    assert before.replicas[4] and before.replicas[5], before.summary()
    since = sim_now(dc, cluster_id)
    patch_cluster(custom, name, {"spec": {"brokers": {"replicas": 4}}})
    try:
        wait_for(lambda: is_ready(status_of(custom, name)) and registered_brokers(core, name) == [0, 1, 2, 3]
                 and not {f"data-{name}-broker-4", f"data-{name}-broker-5"} & set(_pvc_names(core, name)),
                 timeout=90, interval=0.1, message="the scale-in to finish")
    except AssertionError as err:
        raise AssertionError(f"{err}{_diagnostics(custom, name, operator)}") from None

    status = status_of(custom, name)
    assert (status.get("rebalance") or {}).get("state") == "Succeeded", status
    assert apps.read_namespaced_stateful_set(f"{name}-broker", NS).spec.replicas == 4
    assert sorted(pod_uids(core, name)) == sorted(
        [f"{name}-controller-1000"] + [f"{name}-broker-{i}" for i in range(4)])
    assert _pvc_names(core, name) == sorted(
        [f"data-{name}-controller-1000"] + [f"data-{name}-broker-{i}" for i in range(4)])
    # Drained before they went: from the first of their pods' deletion on, Kafka assigned them nothing.
    gone = [e for e in timeline.deletions() if e.pod in (f"{name}-broker-4", f"{name}-broker-5")]
    assert sorted(e.pod for e in gone) == [f"{name}-broker-4", f"{name}-broker-5"], gone
    offset = sim_now(dc, cluster_id) - time.time()  # history times are simulated (speed 1: the wall clock)
    events = history(dc, cluster_id)
    assert replicas_on_after(events, {4, 5}, since), "the check sees the replicas they held before the drain"
    assert replicas_on_after(events, {4, 5}, min(e.t for e in gone) + offset) == []
    assert unregistered(events) == [4, 5]
    after = loads(core, name)
    assert sorted(after.replicas) == [0, 1, 2, 3], after.summary()
    assert balance_problems(after, TOLERANCE) == [], after.summary()
    assert throttles_left(core, name) == {}
    assert min_isr_violations(history(dc, cluster_id, since)) == []

    # A topic at RF 4 cannot live on 3 brokers: the scale-in is refused and nothing moves.
    create_topics(core, name, {"wide": (4, 4)})
    refused_at = sim_now(dc, cluster_id)
    uids = pod_uids(core, name)
    patch_cluster(custom, name, {"spec": {"brokers": {"replicas": 3}}})
    try:
        wait_for(lambda: condition(status_of(custom, name), "Invalid").get("reason") == "ScaleInRefused",
                 timeout=60, interval=0.1, message="the scale-in refused")
    except AssertionError as err:
        raise AssertionError(f"{err}{_diagnostics(custom, name, operator)}") from None
    status = status_of(custom, name)
    assert condition(status, "Invalid")["status"] == "True", status
    assert "wide" in condition(status, "Invalid")["message"], status
    assert status["observedGeneration"] == kafka_cluster(custom, name)["metadata"]["generation"]
    assert [e for e in history(dc, cluster_id, refused_at) if e.kind.startswith("reassignment")] == []
    assert apps.read_namespaced_stateful_set(f"{name}-broker", NS).spec.replicas == 4
    assert pod_uids(core, name) == uids
    assert registered_brokers(core, name) == [0, 1, 2, 3]
    assert throttles_left(core, name) == {}


def test_a_skewed_cluster_is_rebalanced_on_its_own(
        operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        dc: DevClusterThread) -> None:
    name = "skew"
    spec = cluster_spec(4, throttle=48 * MiB, checkInterval="5s", skewThresholdPercent=10,
                        tolerancePercent=TOLERANCE)
    # 16 partitions at RF 2 on 4 brokers: 8 replicas each, 2 MiB per partition to begin with.
    cluster_id = _up(custom, core, operator, dc, name, spec, {"logs": (16, 2)}, {"logs": 2 * MiB}, rate="512KiB")
    # Every partition broker 0 holds grows by 8 MiB at once: broker 0's disk is far above the others'.
    heavy = [key for key, replicas in loads(core, name).assignment.items() if 0 in replicas]
    since = sim_now(dc, cluster_id)
    earlier = str((status_of(custom, name).get("rebalance") or {}).get("workflowId", ""))  # a check before the skew
    fill(dc, cluster_id, dict.fromkeys(heavy, 8 * MiB))
    skewed = loads(core, name)
    assert skewed.spread("bytes") > 10, skewed.summary()

    done = _wait_rebalanced(custom, name, operator, prefix=f"rebalance/{NS}/{name}/", not_id=earlier)
    assert done["state"] == "Succeeded", done
    assert done["reason"].startswith("disk usage spread"), done  # started by the periodic skew check
    events = history(dc, cluster_id, since)
    assert started_moves(events), "the rebalance moved replicas"
    got = loads(core, name)
    assert balance_problems(got, TOLERANCE) == [], got.summary()
    assert throttles_left(core, name) == {}
    assert min_isr_violations(events) == []
    print(f"skew: disk spread {skewed.spread('bytes'):.1f}% -> {got.spread('bytes'):.1f}%; {got.summary()}")


def test_volume_expansion_rolls_only_the_brokers(
        operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        apps: client.AppsV1Api, dc: DevClusterThread, api_client: client.ApiClient) -> None:
    name = "expand"
    client.StorageV1Api(api_client).create_storage_class(client.V1StorageClass(
        metadata=client.V1ObjectMeta(name="offline-expand"), provisioner="devcluster.ballast.dev/hostpath",
        allow_volume_expansion=True, parameters={"devcluster.ballast.dev/expansion-mode": "offline"}))
    spec = cluster_spec(3)
    spec["brokers"]["storage"]["storageClassName"] = "offline-expand"
    timeline = PodTimeline(name).install(dc)
    cluster_id = _up(custom, core, operator, dc, name, spec, {"orders": (6, 3)}, {"orders": 4 * MiB})
    before = pod_uids(core, name)
    since = sim_now(dc, cluster_id)
    wall_since = time.time()
    patch_cluster(custom, name, {"spec": {"brokers": {"storage": {"size": "3Gi"}}}})
    brokers = {p: u for p, u in before.items() if "-broker-" in p}

    def expanded() -> bool:
        claims = {c.metadata.name: c for c in core.list_namespaced_persistent_volume_claim(NS).items}
        return all((claims[f"data-{p}"].status.capacity or {}).get("storage") == "3Gi" for p in brokers)

    try:
        wait_for(pods_rolled(core, apps, name, brokers), timeout=90, interval=0.1, message="the brokers rolled")
        wait_for(lambda: expanded() and is_ready(status_of(custom, name)), timeout=60, interval=0.1,
                 message="claims at 3Gi and the cluster Ready")
    except AssertionError as err:
        raise AssertionError(f"{err}{_diagnostics(custom, name, operator)}") from None

    after = pod_uids(core, name)
    assert after[f"{name}-controller-1000"] == before[f"{name}-controller-1000"]
    assert all(after[p] != u for p, u in brokers.items()), (before, after)
    assert once_each(timeline.deletions(since=wall_since)) == dict.fromkeys(brokers, 1)
    claims = {c.metadata.name: c for c in core.list_namespaced_persistent_volume_claim(NS).items}
    assert claims[f"data-{name}-controller-1000"].status.capacity["storage"] == "1Gi"
    template = apps.read_namespaced_stateful_set(f"{name}-broker", NS).spec.volume_claim_templates[0]
    assert template.spec.resources.requests["storage"] == "3Gi"
    with kafka_admin_of(core, name) as admin:
        capacities = {int(a["broker"]): sum(d["total_bytes"] for d in a["log_dirs"])
                      for a in admin.describe_log_dirs(brokers=[0, 1, 2])}
    assert capacities == dict.fromkeys([0, 1, 2], 3 * 2**30)
    assert min_isr_violations(history(dc, cluster_id, since)) == []


CHAOS_KILLS = 10


def _planned_moves(address: str, workflow_id: str) -> list[act.MoveSpec]:
    """Every move of the rebalance's plan (its ``plan`` query, answered from the workflow's history)."""

    async def query() -> list[act.MoveSpec]:
        temporal = await Client.connect(address, data_converter=pydantic_data_converter)
        plan = await temporal.get_workflow_handle(workflow_id).query(
            REBALANCE_QUERY_PLAN, result_type=act.PlanRebalanceResult)
        assert plan is not None
        return [m for batch in plan.batches for m in batch]

    return asyncio.run(query())


def test_operator_sigkilled_ten_times_during_a_rebalance(
        operator: OperatorProcess, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        dc: DevClusterThread, temporal_server: DevServer) -> None:
    name = "chaos"
    # One move per batch: many batch boundaries (submit, wait, elect, report) for the kills to land in.
    spec = cluster_spec(3, throttle=32 * MiB, maxMovesPerBatch=1)
    cluster_id = _up(custom, core, operator, dc, name, spec, TOPICS, SIZES)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    since = sim_now(dc, cluster_id)
    started = time.monotonic()
    patch_cluster(custom, name, {"spec": {"brokers": {"replicas": 6}}})
    kills: list[tuple[float, int]] = []  # (seconds into the scale-out, reassignments started by then)

    def moves_started() -> int:
        return sum(started_moves(history(dc, cluster_id, since)).values())

    for _ in range(CHAOS_KILLS):
        # Each kill after the restarted operator moved the rebalance on (a new batch submitted), at a random
        # moment of that batch: its submit, the wait for it, the election, the progress reports.
        seen = kills[-1][1] if kills else 0
        wait_for(lambda seen=seen: moves_started() > seen or rebalance_done(custom, name), timeout=90,
                 interval=0.05, message=f"the rebalance moving on after kill {len(kills)} (seed {seed})")
        if rebalance_done(custom, name):
            break
        time.sleep(rng.uniform(0.0, 1.5))
        operator.kill()
        kills.append((round(time.monotonic() - started, 1), moves_started()))
        operator.start()
    context = f"seed {seed}, kills {kills}"
    done = _wait_rebalanced(custom, name, operator, prefix=f"rebalance/{NS}/{name}/", timeout=180)
    context += f", scale-out took {time.monotonic() - started:.0f}s"
    assert len(kills) == CHAOS_KILLS, f"the rebalance ended before all kills ({context})"
    assert done["state"] == "Succeeded", f"{done} ({context})"

    events = history(dc, cluster_id, since)
    moves = started_moves(events)
    planned = _planned_moves(temporal_server.address, done["workflowId"])
    copies = {(m.topic, m.partition, tuple(m.target)) for m in planned if set(m.target) != set(m.source)}
    # Every planned move that copies data started exactly once: no batch lost, none submitted twice. (A move that
    # only reorders the replicas completes at once, without a reassignment: it shows in the final assignment.)
    assert moves == dict.fromkeys(copies, 1), f"{moves} vs plan {sorted(copies)} ({context})"
    got = loads(core, name)
    assert all(got.assignment[(m.topic, m.partition)] == tuple(m.target) for m in planned), context
    assert throttles_left(core, name) == {}, context
    assert min_isr_violations(events) == [], context
    assert balance_problems(got, TOLERANCE) == [], f"{got.summary()} ({context})"
    assert is_ready(status_of(custom, name)), context
    print(f"chaos: {context}")
