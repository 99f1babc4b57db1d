"""Structural decisions: how many brokers the StatefulSet should have now, and which rebalance is due.

Pure and deterministic, like :mod:`ballast.planner`. The rule that keeps scale-in safe: the operator never
renders fewer brokers than run today until a scale-in workflow has drained the brokers being removed and Kafka
confirmed they hold nothing. StatefulSets remove the highest ordinals first, so a scale-in from 6 to 4 removes
brokers 4 and 5 (node id = ordinal), and those are the ones drained.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ballast.manifests.names import Role, node_ids
from ballast.observed import ObservedCluster
from ballast.spec import KafkaClusterSpec, quantity_bytes


@dataclass(frozen=True)
class ScaleIn:
    """Shrink the brokers from ``current`` to ``target``: ``remove`` are the node ids that go."""

    current: int
    target: int

    @property
    def remove(self) -> list[int]:
        return [n for n in node_ids(Role.BROKER, self.current) if n >= self.target]


def current_broker_replicas(observed: ObservedCluster) -> int | None:
    """``spec.replicas`` of the live broker StatefulSet; None before it exists."""
    sts = observed.brokers
    return sts.replicas if sts is not None and sts.exists else None


def effective_broker_replicas(spec: KafkaClusterSpec, observed: ObservedCluster, drained_target: int | None) -> int:
    """The broker count to render now: the spec's, except that a smaller one waits until its scale-in drained
    the brokers it removes (``drained_target`` = the target of the last drain that succeeded)."""
    current = current_broker_replicas(observed)
    wanted = spec.brokers.replicas
    if current is None or wanted >= current or drained_target == wanted:
        return wanted
    return current


def pending_scale_in(spec: KafkaClusterSpec, observed: ObservedCluster) -> ScaleIn | None:
    current = current_broker_replicas(observed)
    if current is None or spec.brokers.replicas >= current:
        return None
    return ScaleIn(current=current, target=spec.brokers.replicas)


def with_broker_replicas(spec: KafkaClusterSpec, raw: dict[str, Any], replicas: int) -> tuple[KafkaClusterSpec,
                                                                                                dict[str, Any]]:
    """``spec`` and its raw form with ``brokers.replicas`` replaced (unchanged objects when it is the same)."""
    if spec.brokers.replicas == replicas:
        return spec, raw
    brokers = spec.brokers.model_copy(update={"replicas": replicas})
    out = copy.deepcopy(raw)
    out.setdefault("brokers", {})["replicas"] = replicas
    return spec.model_copy(update={"brokers": brokers}), out


def added_brokers(before: int | None, after: int) -> list[int]:
    """Node ids a scale-out from ``before`` to ``after`` brokers adds (none for a new cluster)."""
    if before is None or after <= before:
        return []
    return [n for n in node_ids(Role.BROKER, after) if n >= before]


def storage_grew(spec_size: str, applied_size: str | None) -> bool:
    """The spec asks for more storage than was last expanded to (None: unknown, check once)."""
    return applied_size is None or quantity_bytes(spec_size) > quantity_bytes(applied_size)


def skewed(disk_spread_percent: float, threshold_percent: int) -> bool:
    """Disk usage drifted apart more than ``spec.rebalance.skewThresholdPercent`` allows."""
    return disk_spread_percent > threshold_percent
