"""Deeper validation of a ``KafkaCluster``: what the CRD schema cannot judge, as errors naming the field.

The API server already enforces types, ranges and the CEL rules of ``ballast.crd``; ``validate_spec`` repeats
the cross-field rules (so a spec that slipped past an older CRD still becomes an ``Invalid`` condition instead
of a broken cluster) and adds the ones only the operator knows:

* ``spec.version`` must be one the operator knows how to configure;
* ``spec.brokers.config`` may not set operator-owned keys (``ballast.manifests.config.OPERATOR_OWNED``), and
  every key and value must survive the apache/kafka image's environment-to-properties conversion;
* replication settings are positive integers, replication factors do not exceed ``spec.brokers.replicas``
  and each explicitly set min-ISR is below the replication factor in effect (``min.insync.replicas <
  default.replication.factor <= brokers.replicas``);
* storage sizes parse as positive quantities;
* listener names are unique, usable as Service port names and not the operator's ``controller``; ports unique;
* ``rackAwareness.topologyKey`` is a label pods actually receive from their node (zone or region).

An empty list means valid. Paths use the wire (camelCase) names, e.g. ``spec.brokers.config[node.id]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ballast.manifests.config import (
    MIN_INSYNC_REPLICAS,
    REPLICATION_PAIRS,
    config_entry_problem,
    default_replication_factor,
    positive_int,
)
from ballast.manifests.labels import POD_TOPOLOGY_LABELS
from ballast.manifests.names import CONTROLLER_PORT_NAME, MAX_CLUSTER_NAME_LENGTH
from ballast.spec import SUPPORTED_KAFKA_VERSIONS, KafkaClusterSpec, quantity_bytes

_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class FieldError(BaseModel):
    """One problem with one field: ``path`` (e.g. ``spec.brokers.replicas``) and a message saying what's wrong."""

    model_config = ConfigDict(frozen=True)

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _config_path(key: str) -> str:
    return f"spec.brokers.config[{key}]"


def _version_errors(spec: KafkaClusterSpec) -> list[FieldError]:
    if spec.version in SUPPORTED_KAFKA_VERSIONS:
        return []
    return [FieldError(path="spec.version", message=f"unsupported Kafka version {spec.version!r} "
                                                     f"(supported: {', '.join(SUPPORTED_KAFKA_VERSIONS)})")]


def _storage_errors(spec: KafkaClusterSpec) -> list[FieldError]:
    errors = []
    for role, storage in (("brokers", spec.brokers.storage), ("controllers", spec.controllers.storage)):
        path = f"spec.{role}.storage.size"
        try:
            size = quantity_bytes(storage.size)
        except ValueError:
            errors.append(FieldError(path=path, message=f"{storage.size!r} is not a quantity such as 10Gi"))
            continue
        if size <= 0:
            errors.append(FieldError(path=path, message="must be greater than zero"))
    return errors


def _listener_errors(spec: KafkaClusterSpec) -> list[FieldError]:
    errors = []
    names: set[str] = set()
    ports: set[int] = set()
    for index, listener in enumerate(spec.listeners):
        path = f"spec.listeners[{index}]"
        if listener.name in names:
            errors.append(FieldError(path=f"{path}.name", message=f"duplicate listener name {listener.name!r}"))
        if listener.port in ports:
            errors.append(FieldError(path=f"{path}.port", message=f"duplicate listener port {listener.port}"))
        names.add(listener.name)
        ports.add(listener.port)
        if listener.name == CONTROLLER_PORT_NAME:
            errors.append(FieldError(path=f"{path}.name",
                                     message="'controller' is reserved for the KRaft controller listener"))
        # The name is also a container and Service port name (IANA_SVC_NAME).
        elif "--" in listener.name or listener.name.endswith("-"):
            errors.append(FieldError(path=f"{path}.name", message="must not contain '--' or end with '-' "
                                                                   "(it names the Service port)"))
    return errors


def _config_entry_errors(spec: KafkaClusterSpec) -> list[FieldError]:
    return [FieldError(path=_config_path(key), message=problem)
            for key, value in sorted(spec.brokers.config.items())
            if (problem := config_entry_problem(key, value)) is not None]


def _replication_errors(spec: KafkaClusterSpec) -> list[FieldError]:
    config = spec.brokers.config
    replicas = spec.brokers.replicas
    errors = []
    for rf_key, isr_key in REPLICATION_PAIRS:
        if any(key is not None and key in config and config_entry_problem(key, config[key]) is not None
               for key in (rf_key, isr_key)):
            continue  # already reported on its own
        rf = positive_int(config.get(rf_key))
        if rf is not None and rf > replicas:
            errors.append(FieldError(path=_config_path(rf_key),
                                     message=f"{rf} exceeds spec.brokers.replicas ({replicas})"))
        isr = positive_int(config.get(isr_key)) if isr_key is not None else None
        if isr_key is not None and isr is not None:
            effective_rf = rf or default_replication_factor(replicas)
            if isr >= effective_rf:
                source = "" if rf is not None else ", the default for this many brokers"
                errors.append(FieldError(
                    path=_config_path(isr_key),
                    message=f"{isr} must be less than {rf_key} ({effective_rf}{source})"
                            + (": with that many in-sync replicas required, one broker down blocks acks=all "
                               "writes" if isr_key == MIN_INSYNC_REPLICAS else "")))
    return errors


def _rack_errors(spec: KafkaClusterSpec) -> list[FieldError]:
    rack = spec.brokers.rack_awareness
    if rack is None or rack.topology_key in POD_TOPOLOGY_LABELS:
        return []
    return [FieldError(
        path="spec.brokers.rackAwareness.topologyKey",
        message=f"pods only receive the node labels {' and '.join(POD_TOPOLOGY_LABELS)} (PodTopologyLabels "
                f"admission); {rack.topology_key!r} would leave broker.rack empty")]


def validate_spec(spec: KafkaClusterSpec) -> list[FieldError]:
    """Every problem with ``spec`` the operator can find; empty when it is valid."""
    return [
        *_version_errors(spec),
        *_storage_errors(spec),
        *_listener_errors(spec),
        *_config_entry_errors(spec),
        *_replication_errors(spec),
        *_rack_errors(spec),
    ]


def validate_name(name: str) -> list[FieldError]:
    """The cluster name must make valid object names: Service names are DNS-1035 labels and the longest
    StatefulSet name plus its revision hash must fit a 63-character label value."""
    errors = []
    if len(name) > MAX_CLUSTER_NAME_LENGTH:
        errors.append(FieldError(path="metadata.name",
                                 message=f"must be no more than {MAX_CLUSTER_NAME_LENGTH} characters"))
    if not _DNS1035_LABEL.match(name):
        errors.append(FieldError(path="metadata.name",
                                 message="must consist of lower case alphanumeric characters or '-', start with "
                                         "a letter and end with an alphanumeric character"))
    return errors


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_spec(raw: Mapping[str, Any]) -> tuple[KafkaClusterSpec | None, list[FieldError]]:
    """Parse a KafkaCluster's ``spec`` as read from the API and validate it: ``(spec, [])`` when valid,
    ``(spec, errors)`` when it parses but ``validate_spec`` objects, ``(None, errors)`` when it does not parse."""
    try:
        spec = KafkaClusterSpec.model_validate(raw)
    except ValidationError as exc:
        return None, [FieldError(path=_loc_path(tuple(err["loc"])), message=err["msg"]) for err in exc.errors()]
    return spec, validate_spec(spec)
