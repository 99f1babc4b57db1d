"""What a scale-out, scale-in, storage rebalance or volume expansion did, as Kafka and devcluster saw it: shared by
the end-to-end rebalance tests (``tests/e2e/test_rebalance_e2e.py``) and ``bench/rebalance_bench.py``.

Everything here looks from outside the operator: kafka-python against the simulated brokers (Metadata,
DescribeLogDirs, DescribeConfigs, DescribeCluster) and the simulated cluster's own history (reassignments, ISR
changes, unregistrations), never the operator's status or plan. History times are *simulated* seconds
(:func:`sim_now`): at the default speed 1 they track the wall clock, but compare them only with each other.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kubernetes import client

from ballast.spec import GROUP, PLURAL, VERSION
from devcluster.cluster import DevClusterThread
from devcluster.kafka.types import HistoryEvent
from tests.e2e.rolls import kafka_admin_of, kafka_cluster, kafka_control

NS = "default"
MiB = 2**20
THROTTLE_CONFIGS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")
THROTTLE_RATES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")

Key = tuple[str, int]


def cluster_spec(brokers: int, *, controllers: int = 1, storage: str = "2Gi", throttle: int = 32 * MiB,
                 min_isr: int = 2, **rebalance: Any) -> dict[str, Any]:
    """A KafkaCluster spec: ``brokers`` brokers with ``storage`` each, min.insync.replicas ``min_isr``, and
    ``spec.rebalance`` with the throttle plus ``rebalance`` (camelCase keys, e.g. ``checkInterval="5s"``)."""
    return {"controllers": {"replicas": controllers, "storage": {"size": "1Gi"}},
            "brokers": {"replicas": brokers, "storage": {"size": storage},
                        "config": {"min.insync.replicas": str(min_isr)}},
            "rebalance": {"throttleBytesPerSec": throttle, **rebalance}}


def create_cluster(custom: client.CustomObjectsApi, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": name}, "spec": spec}
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)


def patch_cluster(custom: client.CustomObjectsApi, name: str, body: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, body)


def status_of(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kafka_cluster(custom, name).get("status") or {}
    return status


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The condition ``kind`` of ``status`` ({} when absent)."""
    return next((dict(c) for c in status.get("conditions") or [] if c.get("type") == kind), {})


def is_ready(status: Mapping[str, Any]) -> bool:
    """Phase Ready with the Ready condition True and nothing in progress."""
    return (status.get("phase") == "Ready" and condition(status, "Ready").get("status") == "True"
            and not status.get("currentOperation"))


def rebalance_done(custom: client.CustomObjectsApi, name: str, workflow_prefix: str = "",
                   not_id: str = "") -> dict[str, Any]:
    """``status.rebalance`` once it reached an end state (Succeeded/Failed/Cancelled) for a rebalance whose
    workflow id starts with ``workflow_prefix`` and is not ``not_id`` (one that ended earlier), and the cluster is
    Ready again; {} before."""
    status = status_of(custom, name)
    rebalance = status.get("rebalance") or {}
    if rebalance.get("state") not in ("Succeeded", "Failed", "Cancelled"):
        return {}
    workflow_id = str(rebalance.get("workflowId", ""))
    if not workflow_id.startswith(workflow_prefix) or (not_id and workflow_id == not_id):
        return {}
    if rebalance.get("state") == "Succeeded" and not is_ready(status):
        return {}
    return dict(rebalance)


# -- data -----------------------------------------------------------------------------------------------------


def sim_now(dc: DevClusterThread, cluster_id: str) -> float:
    """The simulated cluster's clock (the time base of its history)."""
    return float(dc.call(lambda c: c.kafka.model(cluster_id).clock.now()))


def history(dc: DevClusterThread, cluster_id: str, since: float = 0.0) -> list[HistoryEvent]:
    events: list[HistoryEvent] = dc.call(lambda c: c.kafka.model(cluster_id).history())
    return [e for e in events if e.time >= since]


def create_topics(core: client.CoreV1Api, name: str, topics: Mapping[str, tuple[int, int]]) -> None:
    """``topics``: name -> (partitions, replication factor)."""
    with kafka_admin_of(core, name) as admin:
        admin.create_topics([NewTopic(t, p, rf) for t, (p, rf) in topics.items()])


def fill(dc: DevClusterThread, cluster_id: str, sizes: Mapping[Key, int]) -> None:
    """Grow each partition's log by ``sizes[key]`` bytes at once (every in-sync replica gets them)."""

    def grow(c: Any) -> None:
        for (topic, partition), size in sizes.items():
            c.kafka.controls(cluster_id).inflate(topic, partition, size)

    dc.call(grow)


def ingest(dc: DevClusterThread, cluster_id: str, topics: Iterable[str], bytes_per_sec: str) -> None:
    for topic in topics:
        kafka_control(dc, cluster_id, "load", topic=topic, bytes_per_sec=bytes_per_sec)


@dataclass
class Loads:
    """What Kafka reports per broker: replicas (Metadata) and bytes of replica logs (DescribeLogDirs)."""

    replicas: dict[int, int] = field(default_factory=dict)
    bytes: dict[int, int] = field(default_factory=dict)
    leaders: dict[int, int] = field(default_factory=dict)
    assignment: dict[Key, tuple[int, ...]] = field(default_factory=dict)

    def spread(self, what: str) -> float:
        """Largest deviation from the mean over the brokers, in percent of the mean."""
        values = list(getattr(self, what).values())
        mean = sum(values) / len(values) if values else 0.0
        return max(abs(v - mean) for v in values) / mean * 100 if mean else 0.0

    def summary(self) -> str:
        return (f"replicas {dict(sorted(self.replicas.items()))}, MiB "
                f"{ {b: round(n / MiB, 1) for b, n in sorted(self.bytes.items())} }, "
                f"leaders {dict(sorted(self.leaders.items()))}")


def loads(core: client.CoreV1Api, name: str) -> Loads:
    """Per registered broker, through kafka-python: replica and leader counts from Metadata, bytes from
    DescribeLogDirs (the sum of its replica logs)."""
    out = Loads()
    with kafka_admin_of(core, name) as admin:
        brokers = sorted(int(b["broker_id"]) for b in admin.describe_cluster()["brokers"])
        out.replicas = dict.fromkeys(brokers, 0)
        out.leaders = dict.fromkeys(brokers, 0)
        for topic in admin.describe_topics():
            for part in topic["partitions"]:
                replicas = tuple(int(r) for r in part["replica_nodes"])
                out.assignment[(topic["name"], int(part["partition_index"]))] = replicas
                for r in replicas:
                    out.replicas[r] = out.replicas.get(r, 0) + 1
                leader = int(part["leader_id"])
                if leader >= 0:
                    out.leaders[leader] = out.leaders.get(leader, 0) + 1
        for answer in admin.describe_log_dirs(brokers=brokers):
            out.bytes[int(answer["broker"])] = sum(
                int(p["partition_size"]) for d in answer["log_dirs"] for t in d["topics"] for p in t["partitions"])
    return out


def count_band(total: int, brokers: int, tolerance_percent: float) -> tuple[int, int]:
    """The replica counts the planner calls balanced: ``mean * (1 +- tolerance)`` rounded inwards, never narrower
    than ``floor(mean)..ceil(mean)`` (see ``ballast.rebalance.planner``)."""
    mean = total / brokers
    t = tolerance_percent / 100
    return (min(math.floor(mean), math.ceil(mean * (1 - t) - 1e-9)),
            max(math.ceil(mean), math.floor(mean * (1 + t) + 1e-9)))


def balance_problems(got: Loads, tolerance_percent: float) -> list[str]:
    """Why ``got`` is not balanced within ``tolerance_percent`` (replica counts per the planner's band, disk bytes
    within the tolerance of the mean); [] when it is."""
    problems: list[str] = []
    low, high = count_band(sum(got.replicas.values()), len(got.replicas), tolerance_percent)
    off = {b: n for b, n in got.replicas.items() if not low <= n <= high}
    if off:
        problems.append(f"replica counts outside {low}..{high}: {off}")
    if got.spread("bytes") > tolerance_percent:
        problems.append(f"disk spread {got.spread('bytes'):.1f}% > {tolerance_percent}%")
    return problems


def throttles_left(core: client.CoreV1Api, name: str) -> dict[str, dict[str, str]]:
    """Every replication throttle still set (DescribeConfigs on every topic and every registered broker):
    ``{"topic:<t>" | "broker:<id>": {config: value}}``; {} when none is."""
    left: dict[str, dict[str, str]] = {}
    with kafka_admin_of(core, name) as admin:
        topics = admin.list_topics()
        brokers = [int(b["broker_id"]) for b in admin.describe_cluster()["brokers"]]
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        resources += [ConfigResource(ConfigResourceType.BROKER, str(b)) for b in brokers]
        described = admin.describe_configs(resources, config_filter="modified")
    for kind, keys in (("topic", THROTTLE_CONFIGS), ("broker", THROTTLE_RATES)):
        for resource, configs in (described.get(kind) or {}).items():
            found = {k: str(v.get("value")) for k, v in configs.items() if k in keys and v.get("value")}
            if found:
                left[f"{kind}:{resource}"] = found
    return left


def registered_brokers(core: client.CoreV1Api, name: str) -> list[int]:
    with kafka_admin_of(core, name) as admin:
        return sorted(int(b["broker_id"]) for b in admin.describe_cluster()["brokers"])


# -- the Kafka model's history ------------------------------------------------------------------------------


def started_moves(events: Iterable[HistoryEvent]) -> Counter[tuple[str, int, tuple[int, ...]]]:
    """``reassignment_started`` per (topic, partition, target replicas): a batch lost shows as a missing move, a
    batch repeated as a count of 2 (a resubmission of a move in flight records nothing, as in Kafka)."""
    out: Counter[tuple[str, int, tuple[int, ...]]] = Counter()
    for e in events:
        if e.kind == "reassignment_started" and e.topic is not None and e.partition is not None:
            target = tuple(r for r in e.replicas if r not in e.removing)
            out[(e.topic, e.partition, target)] += 1
    return out


def replicas_on_after(events: Iterable[HistoryEvent], brokers: set[int], after: float,
                      start: Mapping[Key, tuple[int, ...]] | None = None) -> list[str]:
    """Replicas assigned to any of ``brokers`` at or after simulated time ``after``: the partition's replica set
    (``isr`` events carry it; reassignment events the full in-flight set) replayed from ``start``, checked at
    ``after`` and at every change after it. Returns ``"topic-partition on [..] at t"`` per offence."""
    current: dict[Key, tuple[int, ...]] = dict(start or {})
    offences: list[str] = []
    checked = False

    def check(t: float) -> None:
        for (topic, partition), replicas in sorted(current.items()):
            on = sorted(brokers.intersection(replicas))
            if on:
                offences.append(f"{topic}-{partition} on {on} at {t:.3f}")

    for e in events:
        if e.time >= after and not checked:
            check(after)
            checked = True
        if e.kind in ("isr", "reassignment_started", "reassignment_completed", "reassignment_cancelled") \
                and e.topic is not None and e.partition is not None and e.replicas:
            key = (e.topic, e.partition)
            if current.get(key) != e.replicas:
                current[key] = e.replicas
                if e.time >= after:
                    check(e.time)
        elif e.kind == "topic_deleted" and e.topic is not None:
            for key in [k for k in current if k[0] == e.topic]:
                del current[key]
    if not checked:
        check(after)
    return offences


def unregistered(events: Iterable[HistoryEvent]) -> list[int]:
    return sorted(e.node for e in events if e.kind == "broker_unregistered" and e.node is not None)


def min_isr_violations(events: Iterable[HistoryEvent]) -> list[str]:
    """ISR changes in ``events`` that left a partition below its min.insync.replicas."""
    return [f"{e.topic}-{e.partition} isr {list(e.isr)} < {e.min_isr} at {e.time:.3f}" for e in events
            if e.kind == "isr" and len(e.isr) < (e.min_isr or 1)]


def moves_received(events: Iterable[HistoryEvent], sizes: Mapping[Key, int]) -> dict[int, int]:
    """Bytes each broker receives through the reassignments started in ``events``: the partition's size (from
    ``sizes``) per replica added."""
    out: dict[int, int] = {}
    for e in events:
        if e.kind == "reassignment_started" and e.topic is not None and e.partition is not None:
            for broker in e.adding:
                out[broker] = out.get(broker, 0) + sizes.get((e.topic, e.partition), 0)
    return out
