"""The desired state of a Kafka cluster: the ``spec`` of a ``KafkaCluster`` (kafka.ballast.dev/v1alpha1).

These pydantic models are the single source of truth for the CRD schema (``ballast.crd`` renders them
into ``deploy/crds/``) and for every decision the operator makes. Field names are camelCase on the wire,
as Kubernetes users expect; Python code uses snake_case.

Validation happens twice: the API server enforces the CRD schema (types, ranges, enums, CEL rules) so
most mistakes never reach the operator; ``validate_spec`` repeats the cross-field rules and adds the
ones only the operator can judge, so an invalid spec becomes an ``Invalid`` condition, never a crash.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

GROUP = "kafka.ballast.dev"
VERSION = "v1alpha1"
KIND = "KafkaCluster"
PLURAL = "kafkaclusters"
API_VERSION = f"{GROUP}/{VERSION}"

# Kafka versions whose KRaft-only images this operator knows how to configure.
SUPPORTED_KAFKA_VERSIONS = ("3.7.2", "3.8.1", "3.9.0", "3.9.1", "4.0.0", "4.1.0")
DEFAULT_KAFKA_VERSION = "3.9.1"

_QUANTITY = r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def quantity_bytes(value: str) -> int:
    """Bytes in a Kubernetes storage quantity such as ``10Gi`` or ``500M``."""
    match = re.match(_QUANTITY, value)
    if match is None:
        raise ValueError(f"{value!r} is not a storage quantity (e.g. 10Gi)")
    number, _, suffix = match.groups()
    factor = _BINARY.get(suffix or "", 0) or _DECIMAL.get(suffix or "", 1)
    return int(float(number) * factor)


# Kubernetes-style durations (Go's time.ParseDuration without ns/us): "10s", "1m30s", "1.5h", "500ms", "0".
_DURATION = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": timedelta(milliseconds=1), "s": timedelta(seconds=1), "m": timedelta(minutes=1),
                   "h": timedelta(hours=1)}


def parse_duration(value: str) -> timedelta:
    """A Kubernetes-style duration (``10s``, ``1m30s``, ``1.5h``, ``500ms``, ``0``) as a ``timedelta``.

    Raises ``ValueError`` naming the value and the expected form, so a bad ``rollPolicy`` entry reads well in an
    ``Invalid`` condition."""
    if not isinstance(value, str) or re.fullmatch(_DURATION, value) is None:
        raise ValueError(f"{value!r} is not a duration: use a number with a unit (ms, s, m, h), "
                         "e.g. 10s, 1m30s or 1.5h")
    total = timedelta()
    for number, unit in _DURATION_PART.findall(value):
        total += _DURATION_UNITS[unit] * float(number)
    return total


def format_duration(value: timedelta) -> str:
    """``timedelta`` back to the short form (``90s`` -> ``1m30s``), for messages."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


class Model(BaseModel):
    """Base for spec/status models: camelCase aliases, unknown fields rejected, populate by name too."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              validate_assignment=True)


Quantity = Annotated[str, Field(pattern=_QUANTITY, description="A Kubernetes quantity, e.g. 10Gi.")]


class ResourceRequirements(Model):
    """Container resources, as in a Pod spec (``cpu``, ``memory``)."""

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)


class StorageSpec(Model):
    """One PersistentVolumeClaim per pod, from the StatefulSet's volumeClaimTemplates."""

    size: Quantity = Field(description="Requested capacity; may grow (volume expansion), never shrink.")
    storage_class_name: str | None = Field(default=None, description="StorageClass; empty = cluster default.")
    delete_claim: bool = Field(default=False, description="Delete the PVCs when the cluster or a broker is "
                                                          "removed; false keeps them (the data survives).")

    @field_validator("size")
    @classmethod
    def _positive(cls, value: str) -> str:
        if quantity_bytes(value) <= 0:
            raise ValueError("must be greater than zero")
        return value


class ControllersSpec(Model):
    """The KRaft controller quorum (dedicated controller nodes)."""

    replicas: Literal[1, 3, 5] = Field(default=3, description="Quorum size: 1, 3 or 5 voters.")
    storage: StorageSpec = Field(default_factory=lambda: StorageSpec(size="1Gi"))
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class RackAwareness(Model):
    """Spread replicas across failure domains: ``broker.rack`` comes from this node label."""

    topology_key: str = Field(default="topology.kubernetes.io/zone", min_length=1)


class BrokersSpec(Model):
    replicas: int = Field(default=3, ge=1, le=1000, description="Number of brokers (the scale subresource).")
    storage: StorageSpec = Field(default_factory=lambda: StorageSpec(size="10Gi"))
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    config: dict[str, str] = Field(default_factory=dict, description="server.properties overrides for every "
                                                                      "broker (e.g. min.insync.replicas).")
    rack_awareness: RackAwareness | None = Field(default=None, description="Set to make brokers rack-aware.")


class ListenerSpec(Model):
    """A listener clients connect to. Only ``internal`` (in-cluster, plaintext) exists today; TLS and
    SASL will be further fields of this object, so the list shape does not change when they come."""

    name: str = Field(default="internal", pattern=r"^[a-z][a-z0-9-]{0,14}$")
    port: int = Field(default=9092, ge=1024, le=65535)
    type: Literal["internal"] = "internal"


Duration = Annotated[str, Field(pattern=_DURATION, description="A duration such as 10s, 5m or 1h30m.")]


class RollPolicy(Model):
    """How rolling restarts proceed (see the README's "Rolling restarts")."""

    max_unavailable: int = Field(default=1, ge=1, le=1000, description=(
        "Brokers restarted at once. Above 1, a batch restarts together only when the can-roll gate allows all "
        "of its brokers down together; controllers always restart one at a time."))
    rack_aware: bool = Field(default=False, description=(
        "Batch brokers of one rack together (up to maxUnavailable), and only when every partition keeps "
        "min.insync.replicas outside that rack."))
    delay_between_restarts: Duration = Field(default="0s", description="Pause after each restarted pod is back.")
    ready_timeout: Duration = Field(default="10m", description=(
        "How long one restarted pod may take to be Ready, registered and back in every ISR before the roll "
        "reports it as slow (it keeps waiting up to gateBudget more, then stops)."))
    gate_budget: Duration = Field(default="30m", description=(
        "How long to wait for the can-roll gate of one step (re-checked with backoff) before the roll stops "
        "with a Degraded condition instead of forcing the restart."))

    @field_validator("delay_between_restarts", "ready_timeout", "gate_budget", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        # Before the pattern check, so the message says what a duration looks like instead of quoting a regex.
        if isinstance(value, str):
            parse_duration(value)
        return value

    @field_validator("ready_timeout", "gate_budget")
    @classmethod
    def _positive_duration(cls, value: str) -> str:
        if parse_duration(value) <= timedelta():
            raise ValueError("must be greater than zero")
        return value

    @property
    def delay(self) -> timedelta:
        return parse_duration(self.delay_between_restarts)

    @property
    def ready(self) -> timedelta:
        return parse_duration(self.ready_timeout)

    @property
    def budget(self) -> timedelta:
        return parse_duration(self.gate_budget)


class RebalanceSpec(Model):
    """How replicas are moved between brokers: after a scale-out, before a scale-in, and when disks drift apart
    (see the README's "Scaling and rebalancing")."""

    mode: Literal["auto", "approval", "off"] = Field(default="auto", description=(
        "auto: plan and run rebalances on their own; approval: publish the plan (status, the plan query, "
        "ballast rebalance plan) and run it only once approved; off: never move replicas on their own (a "
        "scale-in still drains the brokers it removes, and ballast rebalance still works)."))
    throttle_bytes_per_sec: int = Field(default=50 * 2**20, ge=0, description=(
        "Replication throttle for the moving replicas only, per broker, in bytes/s; 0 = no throttle."))
    skew_threshold_percent: int = Field(default=20, ge=1, le=100, description=(
        "Start a storage rebalance when a broker's disk usage differs from the mean by more than this "
        "(percent of the mean)."))
    tolerance_percent: int = Field(default=5, ge=1, le=50, description=(
        "A plan is balanced when every broker's replica count and disk bytes are within this of the mean."))
    capacity_threshold_percent: int = Field(default=85, ge=10, le=100, description=(
        "No plan puts more than this share of a broker's disk in use."))
    check_interval: Duration = Field(default="10m", description="How often disk skew is checked.")
    max_moves_per_batch: int = Field(default=20, ge=1, le=10000, description=(
        "Partition moves submitted together; the next batch starts when the previous one is complete."))

    @field_validator("check_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            parse_duration(value)
        return value

    @field_validator("check_interval")
    @classmethod
    def _positive_duration(cls, value: str) -> str:
        if parse_duration(value) <= timedelta():
            raise ValueError("must be greater than zero")
        return value

    @property
    def interval(self) -> timedelta:
        return parse_duration(self.check_interval)


class KafkaClusterSpec(Model):
    version: str = Field(default=DEFAULT_KAFKA_VERSION, description="Apache Kafka version.")
    image: str | None = Field(default=None, description="Container image; default apache/kafka:<version>.")
    controllers: ControllersSpec = Field(default_factory=ControllersSpec)
    brokers: BrokersSpec = Field(default_factory=BrokersSpec)
    listeners: list[ListenerSpec] = Field(default_factory=lambda: [ListenerSpec()], min_length=1, max_length=4)
    roll_policy: RollPolicy = Field(default_factory=RollPolicy, description="How rolling restarts proceed.")
    rebalance: RebalanceSpec = Field(default_factory=RebalanceSpec, description=(
        "How replicas move between brokers (scale-out, scale-in, disk skew)."))
