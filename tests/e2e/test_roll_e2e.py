"""Rolling restarts end to end: Temporal dev server + devcluster (simulated KRaft, ingest running) + the
``ballast operator`` process.

What a roll did is judged from outside the operator: devcluster's record of pod writes (:class:`PodTimeline`:
which pods were deleted, how often, in which order, how many were unavailable at once) and the simulated
Kafka cluster's own ISR history (never below min.insync.replicas), plus what kafka-python reports at the end
(no under-replicated partition).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import NewTopic
from kubernetes import client

from ballast.messages import ROLL_ANNOTATION
from ballast.spec import GROUP, PLURAL, VERSION
from devcluster.cluster import DevClusterThread
from tests.conftest import Kubectl, wait_for
from tests.e2e.conftest import OperatorProcess
from tests.e2e.rolls import (
    PodEvent,
    PodTimeline,
    RollMonitor,
    kafka_admin_of,
    kafka_cluster,
    kafka_control,
    min_isr_violations,
    once_each,
    pod_uids,
    pods_rolled,
    under_replicated,
)

NS = "default"
BIG = {"controllers": {"replicas": 3, "storage": {"size": "1Gi"}},
       "brokers": {"replicas": 6, "storage": {"size": "2Gi"}, "config": {"min.insync.replicas": "2"}}}
SMALL = {"controllers": {"replicas": 1, "storage": {"size": "1Gi"}},
         "brokers": {"replicas": 3, "storage": {"size": "2Gi"}, "config": {"min.insync.replicas": "2"}}}


@pytest.fixture(autouse=True)
def _quiet_kafka_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="kafka")


def _create(custom: client.CustomObjectsApi, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": name}, "spec": spec}
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)


def _patch(custom: client.CustomObjectsApi, name: str, body: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, body)


def _wait_ready(kubectl: Kubectl, name: str, operator: OperatorProcess, timeout: int = 120) -> None:
    proc = kubectl.run("wait", "--for=condition=Ready", f"kc/{name}", f"--timeout={timeout}s", check=False,
                       timeout=timeout + 30)
    assert proc.returncode == 0, f"{proc.stderr}\n--- operator logs ---\n{operator.logs()[-6000:]}"


def _up_with_ingest(custom: client.CustomObjectsApi, core: client.CoreV1Api, kubectl: Kubectl,
                    operator: OperatorProcess, dc: DevClusterThread, name: str, spec: dict[str, Any],
                    partitions: int = 12) -> tuple[PodTimeline, str]:
    """The cluster Ready, topic ``orders`` at RF 3 (min.insync.replicas 2 from the brokers' config) with
    producers writing 4 MiB/s, fully replicated; recording its pods from before they exist."""
    timeline = PodTimeline(name).install(dc)
    _create(custom, name, spec)
    _wait_ready(kubectl, name, operator)
    cluster_id = kafka_cluster(custom, name)["status"]["clusterId"]
    timeline.cluster_id = cluster_id
    with kafka_admin_of(core, name) as admin:
        admin.create_topics([NewTopic("orders", partitions, 3)])
    kafka_control(dc, cluster_id, "load", topic="orders", bytes_per_sec="4MiB")
    wait_for(lambda: not under_replicated(core, name), timeout=30, message="orders fully replicated")
    return timeline, cluster_id


def _node(pod: str) -> int:
    return int(pod.rsplit("-", 1)[1])


def _role(pod: str) -> str:
    return "controller" if "-controller-" in pod else "broker"


def _wait_rolled(core: client.CoreV1Api, apps: client.AppsV1Api, custom: client.CustomObjectsApi, name: str,
                 old: dict[str, str], operator: OperatorProcess, timeout: float = 150) -> None:
    try:
        wait_for(pods_rolled(core, apps, name, old), timeout=timeout, interval=0.2, message=f"{sorted(old)} rolled")
        # A worker killed during the last steps: the roll ends once Temporal retried their activities elsewhere.
        wait_for(lambda: not (kafka_cluster(custom, name).get("status") or {}).get("currentOperation"),
                 timeout=90, interval=0.2, message="the roll to finish")
    except AssertionError as err:
        raise AssertionError(f"{err}\nstatus: {kafka_cluster(custom, name).get('status')}\n--- operator logs ---\n"
                             f"{operator.logs()[-8000:]}") from None


def _assert_invariants(timeline: PodTimeline, dc: DevClusterThread, cluster_id: str, core: client.CoreV1Api,
                       rolled: list[str], since: float, max_unavailable: int = 1) -> list[PodEvent]:
    """Each pod of ``rolled`` deleted exactly once (nothing else deleted), controllers before brokers, at most
    ``max_unavailable`` brokers and one controller unavailable at once, no ISR below min.insync.replicas, and
    no under-replicated partition left. Returns the deletions in order."""
    deletions = timeline.deletions(since=since)
    assert once_each(deletions) == Counter({pod: 1 for pod in rolled}), [(e.pod, e.uid) for e in deletions]
    roles = [_role(e.pod) for e in deletions]
    assert roles == sorted(roles, key=lambda r: r != "controller"), roles
    brokers = [p for p in rolled if _role(p) == "broker"]
    controllers = [p for p in rolled if _role(p) == "controller"]
    assert timeline.max_unavailable(brokers, since=since) <= max_unavailable
    assert timeline.max_unavailable(controllers, since=since) <= 1
    assert min_isr_violations(dc, cluster_id, since=since) == []
    assert under_replicated(core, timeline.name) == []
    return deletions


def test_image_change_rolls_controllers_then_brokers_with_ingest_running(
        operator: OperatorProcess, kubectl: Kubectl, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        apps: client.AppsV1Api, dc: DevClusterThread) -> None:
    timeline, cluster_id = _up_with_ingest(custom, core, kubectl, operator, dc, "omega", BIG)
    old = pod_uids(core, "omega")
    assert len(old) == 9
    since = time.time()
    _patch(custom, "omega", {"spec": {"image": "docker.io/apache/kafka:3.9.1"}})
    _wait_rolled(core, apps, custom, "omega", old, operator)

    deletions = _assert_invariants(timeline, dc, cluster_id, core, sorted(old), since)
    controllers = [e for e in deletions if _role(e.pod) == "controller"]
    # The active controller goes last among the controllers (followers first: one election, not three).
    assert [e.active_controller == _node(e.pod) for e in controllers] == [False, False, True], controllers
    status = kafka_cluster(custom, "omega")["status"]
    assert status["phase"] == "Ready" and status["lastOperation"]["result"] == "Succeeded", status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert {c.image for p in core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/instance=omega").items
            for c in p.spec.containers} == {"docker.io/apache/kafka:3.9.1"}


def _ballast_roll(operator: OperatorProcess, *args: str) -> str:
    done = subprocess.run([str(Path(sys.executable).parent / "ballast"), "roll", *args], env=operator.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_roll_annotation_and_ballast_roll_trigger_rolls(
        operator: OperatorProcess, kubectl: Kubectl, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        apps: client.AppsV1Api, dc: DevClusterThread) -> None:
    timeline, cluster_id = _up_with_ingest(custom, core, kubectl, operator, dc, "sigma", SMALL, partitions=6)

    # A new annotation token rolls the whole cluster once.
    old = pod_uids(core, "sigma")
    since = time.time()
    _patch(custom, "sigma", {"metadata": {"annotations": {ROLL_ANNOTATION: "t1"}}})
    _wait_rolled(core, apps, custom, "sigma", old, operator)
    _assert_invariants(timeline, dc, cluster_id, core, sorted(old), since)

    # `ballast roll --brokers 1`: that broker only.
    old = pod_uids(core, "sigma")
    since = time.time()
    out = _ballast_roll(operator, "sigma", "--brokers", "1", "--reason", "e2e")
    assert out.startswith("roll requested on kafkacluster/default/sigma")
    _wait_rolled(core, apps, custom, "sigma", {"sigma-broker-1": old["sigma-broker-1"]}, operator)
    _assert_invariants(timeline, dc, cluster_id, core, ["sigma-broker-1"], since)
    assert pod_uids(core, "sigma") == {**old, "sigma-broker-1": pod_uids(core, "sigma")["sigma-broker-1"]}

    # The same token again is not a new request: nothing restarts (checked after a later spec change is done,
    # so the annotation's signal was certainly processed).
    since = time.time()
    _patch(custom, "sigma", {"metadata": {"annotations": {ROLL_ANNOTATION: "t1"}},
                             "spec": {"brokers": {"config": {"min.insync.replicas": "2", "log.retention.ms": "3600000"}}}})
    wait_for(lambda: kafka_cluster(custom, "sigma")["status"].get("observedGeneration") == 2, timeout=60,
             message="generation 2 reconciled")
    assert timeline.deletions(since=since) == []


def test_a_broker_slow_to_catch_up_holds_the_roll_without_failing_it(
        operator: OperatorProcess, kubectl: Kubectl, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        apps: client.AppsV1Api, dc: DevClusterThread) -> None:
    timeline, cluster_id = _up_with_ingest(custom, core, kubectl, operator, dc, "tau", SMALL, partitions=6)
    # Every broker catches up 1000x slower than normal: the first one restarted stays out of some ISRs.
    for broker in range(3):
        kafka_control(dc, cluster_id, "slow-broker", node_id=broker, factor=0.001)
    old = pod_uids(core, "tau")
    brokers = {p: u for p, u in old.items() if _role(p) == "broker"}
    since = time.time()
    _ballast_roll(operator, "tau", "--brokers", "0,1,2", "--reason", "slow catch-up")

    wait_for(lambda: len(timeline.deletions(since=since)) == 1, timeout=60, message="the first broker restarted")
    [first] = timeline.deletions(since=since)
    wait_for(lambda: under_replicated(core, "tau"), timeout=30, message="the restarted broker out of some ISR")
    # It stays there: the roll holds (no second restart), says which broker it waits for, and does not give up.
    hold_until = time.time() + 6
    while time.time() < hold_until:
        assert len(timeline.deletions(since=since)) == 1
        status = kafka_cluster(custom, "tau")["status"]
        operation = status.get("currentOperation") or {}
        assert operation.get("type") == "Roll" and operation.get("workflowId", "").startswith("roll/default/tau/")
        assert not any(c["type"] == "Degraded" and c["status"] == "True" for c in status.get("conditions") or [])
        time.sleep(0.5)
    assert f"broker {_node(first.pod)} ({first.pod}) in flight" in operation["step"], operation
    assert operation["progress"].startswith("0/3 pods done"), operation
    assert under_replicated(core, "tau")

    for broker in range(3):
        kafka_control(dc, cluster_id, "slow-broker", node_id=broker, factor=1)
    _wait_rolled(core, apps, custom, "tau", brokers, operator)
    deletions = _assert_invariants(timeline, dc, cluster_id, core, sorted(brokers), since)
    assert deletions[0] == first
    assert kafka_cluster(custom, "tau")["status"]["lastOperation"]["result"] == "Succeeded"


# The figure: 20 operator SIGKILLs during one roll, in 5 bursts of 4. A kill holds the roll for ~15 s:
# Temporal retries the activity the killed worker was running once its heartbeat timeout (5 s) expires, and a
# workflow task sent to the killed worker's sticky queue within 10 s of its last poll then waits out the
# worker's sticky schedule-to-start timeout (10 s, the SDK default) before another worker takes it. So 20 kills
# each after the roll moved on would take 5 minutes; a burst's later kills land in that recovery instead.
CHAOS_KILLS = 20
CHAOS_BURST = 4


@dataclass(frozen=True)
class _Kill:
    at: float  # seconds into the roll
    deleted: int  # pods deleted by then
    in_flight: tuple[str, ...]  # the roll's activities in flight when it was killed


def test_operator_sigkilled_at_20_random_moments_during_a_roll(
        operator: OperatorProcess, kubectl: Kubectl, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        apps: client.AppsV1Api, dc: DevClusterThread) -> None:
    timeline, cluster_id = _up_with_ingest(custom, core, kubectl, operator, dc, "kappa", BIG)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    old = pod_uids(core, "kappa")
    since = time.time()
    _patch(custom, "kappa", {"spec": {"image": "docker.io/apache/kafka:3.9.1"}})
    rolled = pods_rolled(core, apps, "kappa", old)
    with RollMonitor(custom, timeline, operator.env["TEMPORAL_ADDRESS"]) as monitor:

        def ended() -> bool:  # kills until the roll workflow ends: the last pod Ready is not the end of the roll
            return rolled() and not monitor.running()

        kills: list[_Kill] = []
        bursts = CHAOS_KILLS // CHAOS_BURST
        for burst in range(bursts):
            # Burst b starts at a random moment of a pod step spread over the plan from the first pod to the one
            # before last (controllers and brokers, the active controller included) -- a pod the previous burst did
            # not see restarting, if the roll got ahead -- within 1.5 s of that pod's deletion: while it restarts,
            # rejoins the ISR, gets its leaders back or the next gate is checked. Its other kills hit the operator
            # restarted after the previous one, at random moments of its start-up and of the recovery (replay, the
            # lost activity's retry).
            step = max(round(burst * (len(old) - 2) / (bursts - 1)), kills[-1].deleted if kills else 0)
            wait_for(lambda step=step: len(timeline.deletions(since=since)) > step or ended(), timeout=120,
                     interval=0.05, message=f"pod {step + 1} of the roll restarting")
            for i in range(CHAOS_BURST):
                time.sleep(rng.uniform(0.0, 1.5) if i == 0 else rng.uniform(0.5, 3.0))
                if ended():
                    break
                in_flight = tuple(monitor.in_flight())
                operator.kill()
                kills.append(_Kill(round(time.time() - since, 1), len(timeline.deletions(since=since)), in_flight))
                operator.start()
        _wait_rolled(core, apps, custom, "kappa", old, operator, timeout=240)
    context = f"seed {seed}, roll took {time.time() - since:.0f}s, kills (s, pods deleted, in flight): " \
              f"{[(k.at, k.deleted, k.in_flight) for k in kills]}"
    try:
        deletions = _assert_invariants(timeline, dc, cluster_id, core, sorted(old), since)
    except AssertionError as err:
        raise AssertionError(f"{err} ({context})") from None
    controllers = [e for e in deletions if _role(e.pod) == "controller"]
    assert [e.active_controller == _node(e.pod) for e in controllers] == [False, False, True], context
    assert len(kills) == CHAOS_KILLS, f"the roll ended before {CHAOS_KILLS} kills ({context})"
    # Spread: kills during the restarts of different pods, controllers and brokers, some with an activity in flight.
    assert len({k.deleted for k in kills}) >= bursts and kills[-1].deleted > len(old) // 2, context
    assert any(k.in_flight for k in kills), context
    assert kafka_cluster(custom, "kappa")["status"]["lastOperation"]["result"] == "Succeeded", context
