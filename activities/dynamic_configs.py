"""Dynamic broker configuration through the brokers' admin API: DescribeConfigs, then IncrementalAlterConfigs
for what differs.

Resources: ``BROKER`` named ``""`` is the cluster-wide default (any broker answers; in KRaft the change goes
through the controller), ``BROKER`` named ``"<id>"`` is one broker's dynamic override (Kafka requires that
broker to handle the request, so it is sent to that node). kafka-python's public ``describe_configs`` /
``alter_configs`` insist on integer broker names, so the requests are built with its protocol classes and
sent on the admin client's connections (the only use of its connection manager here).

Only what differs from the current dynamic value is sent, so applying the same settings twice changes nothing
(no metadata record, no config reload on the brokers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

from activities.clients import KafkaUnreachable

CLUSTER_DEFAULT = ""
_DYNAMIC_SOURCES = {
    CLUSTER_DEFAULT: {3},  # DYNAMIC_DEFAULT_BROKER_CONFIG
    "broker": {2},  # DYNAMIC_BROKER_CONFIG
}
# Errors that mean "this setting cannot be applied like that" (unknown, read-only, malformed value):
# retrying cannot help.
REJECTED = {kafka_errors.InvalidConfigurationError.errno, kafka_errors.InvalidRequestError.errno,
            kafka_errors.PolicyViolationError.errno}


class ConfigRejected(Exception):
    """Kafka refused a configuration change (the message names the resource, the keys and Kafka's reason)."""


@dataclass
class Applied:
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _label(resource: str) -> str:
    return "cluster default" if resource == CLUSTER_DEFAULT else f"broker {resource}"


def _send(admin: KafkaAdminClient, request: Any, node_id: int | None) -> Any:
    manager = admin._manager  # see the module docstring

    async def send() -> Any:
        return await manager.send(request, node_id=node_id)

    try:
        return manager.run(send)
    except kafka_errors.KafkaError as err:
        raise KafkaUnreachable(f"{type(request).__name__} failed: {err}") from err
    except OSError as err:
        raise KafkaUnreachable(f"{type(request).__name__} failed: {err}") from err


def dynamic_values(admin: KafkaAdminClient, resource: str, node_id: int | None) -> dict[str, str | None]:
    """The dynamic settings set on ``resource`` itself (``""`` or a broker id), as DescribeConfigs reports them."""
    request = KafkaAdminClient._describe_configs_request(
        [ConfigResource(ConfigResourceType.BROKER, resource)], include_synonyms=False)
    response = _send(admin, request, node_id)
    out: dict[str, str | None] = {}
    for result in response.results:
        if result.error_code:
            error = kafka_errors.for_code(result.error_code).__name__
            raise KafkaUnreachable(f"DescribeConfigs {_label(resource)}: {result.error_message or error}")
        wanted = _DYNAMIC_SOURCES[CLUSTER_DEFAULT if resource == CLUSTER_DEFAULT else "broker"]
        for entry in result.configs:
            if getattr(entry, "config_source", None) in wanted:
                out[entry.name] = entry.value
    return out


def _alter(admin: KafkaAdminClient, resource: str, node_id: int | None,
           ops: Mapping[str, tuple[AlterConfigOp, str | None]]) -> None:
    request = KafkaAdminClient._alter_configs_request(
        [ConfigResource(ConfigResourceType.BROKER, resource, dict(ops))], incremental=True)
    response = _send(admin, request, node_id)
    for result in response.responses:
        if not result.error_code:
            continue
        error = kafka_errors.for_code(result.error_code)
        what = f"IncrementalAlterConfigs {_label(resource)} ({', '.join(sorted(ops))})"
        detail = result.error_message or error.__name__
        if result.error_code in REJECTED:
            raise ConfigRejected(f"{what}: {detail}")
        raise KafkaUnreachable(f"{what}: {detail}")


def apply(admin: KafkaAdminClient, cluster_wide: Mapping[str, str | None], per_broker: Mapping[str, str | None],
          brokers: list[int]) -> Applied:
    """Set (or, for None, delete) ``cluster_wide`` on the cluster default and ``per_broker`` on each broker
    of ``brokers``, sending only what differs. Returns what was set and deleted, as ``'<resource>: key=value'``
    / ``'<resource>: key'`` (resource ``cluster`` or ``broker/<id>``)."""
    done = Applied()
    targets: list[tuple[str, int | None, Mapping[str, str | None]]] = []
    if cluster_wide:
        targets.append((CLUSTER_DEFAULT, None, cluster_wide))
    if per_broker:
        targets.extend((str(b), b, per_broker) for b in brokers)
    for resource, node_id, desired in targets:
        current = dynamic_values(admin, resource, node_id)
        ops: dict[str, tuple[AlterConfigOp, str | None]] = {}
        for key, value in sorted(desired.items()):
            if value is None and key in current:
                ops[key] = (AlterConfigOp.DELETE, None)
            elif value is not None and current.get(key) != value:
                ops[key] = (AlterConfigOp.SET, value)
        if not ops:
            continue
        _alter(admin, resource, node_id, ops)
        name = "cluster" if resource == CLUSTER_DEFAULT else f"broker/{resource}"
        for key, (op, value) in ops.items():
            if op is AlterConfigOp.DELETE:
                done.deleted.append(f"{name}: {key}")
            else:
                done.applied.append(f"{name}: {key}={value}")
    return done
