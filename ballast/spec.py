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


class KafkaClusterSpec(Model):
    version: str = Field(default=DEFAULT_KAFKA_VERSION, description="Apache Kafka version.")
    image: str | None = Field(default=None, description="Container image; default apache/kafka:<version>.")
    controllers: ControllersSpec = Field(default_factory=ControllersSpec)
    brokers: BrokersSpec = Field(default_factory=BrokersSpec)
    listeners: list[ListenerSpec] = Field(default_factory=lambda: [ListenerSpec()], min_length=1, max_length=4)
