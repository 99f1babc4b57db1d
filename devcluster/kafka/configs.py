"""Broker and topic configuration semantics of Kafka 3.9 (KRaft): DescribeConfigs, AlterConfigs and
IncrementalAlterConfigs, with the sources, read-only flags, synonyms and error texts a real cluster returns.

The model owns one :class:`ConfigState` per cluster. Metadata-log placement (who may write) and resource
existence are the model's business; this module only computes values and validates changes.

Fidelity notes (observed in Kafka's ConfigHelper / ConfigAdminManager / ControllerConfigurationValidator):
- Broker-resource changes are validated by the broker that receives the request: non-dynamic keys,
  per-broker keys at the cluster default and malformed values give INVALID_REQUEST (KAFKA-13609), while
  unknown keys are accepted as custom properties.
- Topic-resource changes are validated by the controller: unknown keys and bad values give INVALID_CONFIG.
- The replication throttle rates (``leader.replication.throttled.rate`` etc.) are dynamic broker configs
  that are not KafkaConfig keys: DescribeConfigs lists them only once set, and reports them read-only.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from devcluster.kafka import configdefs
from devcluster.kafka.errors import ErrorCode, KafkaError
from devcluster.kafka.types import (
    AlterConfigOp,
    ConfigEntryView,
    ConfigSource,
    ConfigSynonym,
    ConfigType,
    Dynamic,
)

LONG_MAX = 9223372036854775807

LEADER_THROTTLED_RATE = "leader.replication.throttled.rate"
FOLLOWER_THROTTLED_RATE = "follower.replication.throttled.rate"
ALTER_LOG_DIRS_RATE = "replica.alter.log.dirs.io.max.bytes.per.second"
LEADER_THROTTLED_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_THROTTLED_REPLICAS = "follower.replication.throttled.replicas"

# DynamicConfig.Broker's quota configs: dynamic (per broker or cluster default) but not KafkaConfig keys.
QUOTA_CONFIGS = (LEADER_THROTTLED_RATE, FOLLOWER_THROTTLED_RATE, ALTER_LOG_DIRS_RATE)

# SslConfigs.RECONFIGURABLE_CONFIGS: dynamic only with a listener prefix.
_SECURITY_CONFIGS = frozenset({
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password",
    "ssl.keystore.key", "ssl.keystore.certificate.chain", "ssl.truststore.certificates",
})
_LISTENER_PREFIX = re.compile(r"^listener\.name\.[^.]*\.(.*)$")
_CLUSTER_LEVEL_LISTENER_CONFIGS = frozenset({"max.connections", "max.connection.creation.rate", "num.network.threads"})


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: str | None
    mode: Dynamic
    valid: str


def _mode(code: str) -> Dynamic:
    return {"R": Dynamic.READ_ONLY, "B": Dynamic.PER_BROKER, "C": Dynamic.CLUSTER_WIDE}[code]


BROKER_DEFS: dict[str, ConfigDef] = {
    name: ConfigDef(name, ConfigType[t], default, _mode(mode), valid)
    for name, (t, default, mode, valid) in configdefs.BROKER.items()
}
# Missing from the generated table (rendered differently there).
BROKER_DEFS["ssl.client.auth"] = ConfigDef("ssl.client.auth", ConfigType.STRING, "none", Dynamic.PER_BROKER,
                                           "[required, requested, none]")
QUOTA_DEFS: dict[str, ConfigDef] = {
    name: ConfigDef(name, ConfigType.LONG, str(LONG_MAX), Dynamic.CLUSTER_WIDE, "[0,...]") for name in QUOTA_CONFIGS
}

TOPIC_DEFS: dict[str, ConfigDef] = {
    name: ConfigDef(name, ConfigType[t], default, Dynamic.CLUSTER_WIDE, valid)
    for name, (t, default, _server, valid) in configdefs.TOPIC.items()
}
# Topic config -> the broker config that supplies its default (ServerTopicConfigSynonyms).
TOPIC_SERVER_DEFAULT: dict[str, str] = {
    name: server for name, (_t, _d, server, _v) in configdefs.TOPIC.items() if server is not None
}

_TIME_SYNONYMS: dict[str, tuple[str, ...]] = {
    "log.roll.ms": ("log.roll.ms", "log.roll.hours"),
    "log.roll.hours": ("log.roll.ms", "log.roll.hours"),
    "log.roll.jitter.ms": ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    "log.roll.jitter.hours": ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    "log.flush.interval.ms": ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
    "log.retention.ms": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    "log.retention.minutes": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    "log.retention.hours": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
}
_UNIT_MS = {"ms": 1, "minutes": 60_000, "hours": 3_600_000, "interval.ms": 1}


def broker_synonyms(name: str) -> tuple[str, ...]:
    """DynamicBrokerConfig.brokerConfigSynonyms (listener overrides included)."""
    if name in _TIME_SYNONYMS:
        return _TIME_SYNONYMS[name]
    match = _LISTENER_PREFIX.match(name)
    if match:
        return (name, match.group(1))
    return (name,)


def broker_def(name: str) -> ConfigDef | None:
    definition = BROKER_DEFS.get(name) or QUOTA_DEFS.get(name)
    if definition is None:
        match = _LISTENER_PREFIX.match(name)
        if match:
            return BROKER_DEFS.get(match.group(1))
    return definition


def is_dynamic(name: str) -> bool:
    """Whether Kafka's DynamicBrokerConfig.AllDynamicConfigs contains ``name`` (what DescribeConfigs'
    read_only reflects; the quota configs are alterable yet absent from that set)."""
    definition = BROKER_DEFS.get(name)
    return definition is not None and definition.mode is not Dynamic.READ_ONLY


# ----------------------------------------------------------------------------- value parsing
_RANGE = re.compile(r"^\[(-?[0-9.E]+)?,\.\.\.(?:,(-?[0-9.E]+))?\]$")
_CHOICES = re.compile(r"^\[([^\]]*)\]$")


def _config_error(name: str, value: object, message: str | None) -> str:
    return f"Invalid value {value} for configuration {name}" + (f": {message}" if message else "")


class ConfigValueError(ValueError):
    """Kafka's ConfigException: ``str(exc)`` is the exact message."""


def _java_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(items) + "]"


def parse_value(definition: ConfigDef, raw: str) -> object:
    """Parse and validate ``raw`` as Kafka's ConfigDef would; returns the parsed value or raises
    ConfigValueError with Kafka's message."""
    name, kind, trimmed = definition.name, definition.type, raw.strip()
    try:
        if kind is ConfigType.BOOLEAN:
            if trimmed.lower() not in ("true", "false"):
                raise ConfigValueError(_config_error(name, raw, "Expected value to be either true or false"))
            value: object = trimmed.lower() == "true"
        elif kind in (ConfigType.INT, ConfigType.SHORT, ConfigType.LONG):
            if not re.fullmatch(r"[+-]?[0-9]+", trimmed):
                raise ValueError
            value = int(trimmed)
            bits = {ConfigType.INT: 31, ConfigType.SHORT: 15, ConfigType.LONG: 63}[kind]
            if not -(2**bits) <= value < 2**bits:
                raise ValueError
        elif kind is ConfigType.DOUBLE:
            value = float(trimmed)
        elif kind is ConfigType.LIST:
            value = [] if not trimmed else [part.strip() for part in trimmed.split(",")]
        else:
            value = raw
    except ValueError:
        raise ConfigValueError(_config_error(name, raw, f"Not a number of type {kind.name}")) from None
    _check_valid(definition, value)
    return value


def _check_valid(definition: ConfigDef, value: object) -> None:
    name, valid = definition.name, definition.valid
    if name in (LEADER_THROTTLED_REPLICAS, FOLLOWER_THROTTLED_REPLICAS):
        items = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if not (all(re.fullmatch(r"([0-9]+:[0-9]+)?", s) for s in items) or "".join(items) == "*"):
            raise ConfigValueError(_config_error(
                name, _java_list(items),
                f"{name} must be the literal '*' or a list of replicas in the following format: "
                "[partitionId]:[brokerId],[partitionId]:[brokerId],..."))
        return
    if not valid or value is None:
        return
    match = _RANGE.match(valid.replace(" ", ""))
    if match and isinstance(value, int | float) and not isinstance(value, bool):
        low, high = match.group(1), match.group(2)
        if low is not None and value < float(low):
            raise ConfigValueError(_config_error(name, _render(value), f"Value must be at least {low}"))
        if high is not None and value > float(high):
            raise ConfigValueError(_config_error(name, _render(value), f"Value must be no more than {high}"))
        return
    match = _CHOICES.match(valid)
    if match and "..." not in valid and definition.type in (ConfigType.STRING, ConfigType.LIST):
        choices = [c.strip() for c in match.group(1).split(",")]
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item not in choices:
                raise ConfigValueError(_config_error(name, item, "String must be one of: " + ", ".join(choices)))


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


@functools.lru_cache(maxsize=4096)
def normalize(definition: ConfigDef | None, raw: str) -> str:
    """The string Kafka reports for a stored value (parsed and re-rendered; lists lose blanks).

    Pure, so cached: the ISR rules read min.insync.replicas / unclean.leader.election.enable for every
    partition a fencing touches (thousands in one step)."""
    if definition is None or definition.type in (ConfigType.STRING, ConfigType.PASSWORD, ConfigType.CLASS):
        return raw
    try:
        return _render(parse_value(definition, raw))
    except ConfigValueError:
        return raw


# ------------------------------------------------------------------------------- the state
class ConfigState:
    """Static (per node), dynamic broker (per node and cluster default) and topic configs of a cluster."""

    def __init__(self) -> None:
        self.static: dict[int, dict[str, str]] = {}
        self.dynamic_default: dict[str, str] = {}
        self.dynamic_broker: dict[int, dict[str, str]] = {}
        self.topic: dict[str, dict[str, str]] = {}

    # ---------------------------------------------------------------- effective values
    def broker_value(self, node: int | None, name: str) -> str | None:
        """Effective value of broker config ``name`` on ``node`` (dynamic per-broker > dynamic default >
        static > default), or None."""
        for layer in self._layers(node):
            if name in layer:
                return layer[name]
        definition = broker_def(name)
        return definition.default if definition else None

    def _layers(self, node: int | None) -> list[Mapping[str, str]]:
        if node is None:
            return [self.dynamic_default]
        return [self.dynamic_broker.get(node, {}), self.dynamic_default, self.static.get(node, {})]

    def broker_int(self, node: int | None, name: str, fallback: int) -> int:
        value = self.broker_value(node, name)
        try:
            return int(str(value).strip()) if value is not None else fallback
        except ValueError:
            return fallback

    def broker_bool(self, node: int | None, name: str, fallback: bool) -> bool:
        value = self.broker_value(node, name)
        return fallback if value is None else value.strip().lower() == "true"

    def throttle_rate(self, node: int, name: str) -> float:
        """A replication throttle in bytes/s, or inf if unset. Like ReplicationQuotaManager, only the
        broker's own (per-broker) dynamic value applies."""
        raw = self.dynamic_broker.get(node, {}).get(name)
        if raw is None:
            return math.inf
        try:
            value = int(raw.strip())
        except ValueError:
            return math.inf
        return math.inf if value >= LONG_MAX else float(max(0, value))

    def _broker_ms(self, node: int | None, names: Sequence[str]) -> str | None:
        """Effective value of a time config given as ms/minutes/hours synonyms, in ms."""
        for layer in self._layers(node):
            for name in names:
                if name in layer:
                    return str(int(layer[name].strip()) * _unit(name))
        for name in names:
            definition = broker_def(name)
            if definition and definition.default is not None:
                return str(int(definition.default) * _unit(name))
        return None

    def topic_value(self, topic: str, name: str, node: int | None = None) -> str | None:
        """Effective value of topic config ``name``: the topic's override, else the broker default."""
        override = self.topic.get(topic, {}).get(name)
        if override is not None:
            return normalize(TOPIC_DEFS.get(name), override)
        return self._topic_default(name, node)

    def _topic_default(self, name: str, node: int | None) -> str | None:
        server = TOPIC_SERVER_DEFAULT.get(name)
        definition = TOPIC_DEFS[name]
        if server is None:
            return definition.default
        if server in _TIME_SYNONYMS and server.endswith(("ms", "minutes", "hours")):
            try:
                value = self._broker_ms(node, _TIME_SYNONYMS[server])
            except ValueError:
                value = None
            return definition.default if value is None else value
        value = self.broker_value(node, server)
        return definition.default if value is None else normalize(definition, value)

    def min_insync_replicas(self, topic: str, node: int | None) -> int:
        value = self.topic_value(topic, "min.insync.replicas", node)
        try:
            return max(1, int(value)) if value is not None else 1
        except ValueError:
            return 1

    # ------------------------------------------------------------------------ describe
    def describe_broker(
        self, node: int | None, keys: Sequence[str] | None, include_synonyms: bool
    ) -> list[ConfigEntryView]:
        """BROKER resource ``str(node)``, or the cluster default when ``node`` is None."""
        if node is None:
            names: Iterable[str] = self.dynamic_default.keys()
        else:
            names = (set(BROKER_DEFS) | set(self.static.get(node, {})) | set(self.dynamic_default)
                     | set(self.dynamic_broker.get(node, {})))
        wanted = set(keys) if keys else None
        entries = []
        for name in sorted(names):
            if wanted is not None and name not in wanted:
                continue
            entries.append(self._broker_entry(node, name, include_synonyms))
        return entries

    def _broker_entry(self, node: int | None, name: str, include_synonyms: bool) -> ConfigEntryView:
        definition = broker_def(name)
        kind = definition.type if definition else None
        sensitive = kind is None or kind is ConfigType.PASSWORD
        synonyms = self._synonyms(node, name, broker_synonyms(name), sensitive)
        if node is None:
            synonyms = [s for s in synonyms if s.source is ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG]
        source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
        value = None
        if not sensitive:
            layers = [self.dynamic_default] if node is None else self._layers(node)
            raw = next((layer[name] for layer in layers if name in layer), None)
            if raw is None and node is not None and definition is not None:
                raw = definition.default
            value = None if raw is None else normalize(definition, raw)
        return ConfigEntryView(
            name=name,
            value=value,
            read_only=not is_dynamic(name),
            is_default=source is ConfigSource.DEFAULT_CONFIG,
            source=source,
            is_sensitive=sensitive,
            config_type=kind or ConfigType.UNKNOWN,
            synonyms=tuple(synonyms) if include_synonyms else (),
        )

    def _synonyms(self, node: int | None, name: str, names: Sequence[str], sensitive: bool) -> list[ConfigSynonym]:
        found: list[ConfigSynonym] = []
        sources: list[tuple[Mapping[str, str], ConfigSource]] = [
            (self.dynamic_broker.get(node, {}) if node is not None else {}, ConfigSource.DYNAMIC_BROKER_CONFIG),
            (self.dynamic_default, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
            (self.static.get(node, {}) if node is not None else {}, ConfigSource.STATIC_BROKER_CONFIG),
            (_STATIC_DEFAULTS, ConfigSource.DEFAULT_CONFIG),
        ]
        for layer, source in sources:
            for synonym in names:
                if synonym in layer:
                    raw = layer[synonym]
                    value = None if sensitive else normalize(broker_def(synonym), raw)
                    found.append(ConfigSynonym(synonym, value, source))
        # Kafka drops leading synonyms that are not the described name (e.g. listener overrides).
        while found and found[0].name != name:
            found.pop(0)
        return found

    def describe_topic(
        self, topic: str, keys: Sequence[str] | None, include_synonyms: bool, node: int | None
    ) -> list[ConfigEntryView]:
        overrides = self.topic.get(topic, {})
        wanted = set(keys) if keys else None
        entries = []
        for name in sorted(TOPIC_DEFS):
            if wanted is not None and name not in wanted:
                continue
            definition = TOPIC_DEFS[name]
            sensitive = definition.type is ConfigType.PASSWORD
            server = TOPIC_SERVER_DEFAULT.get(name)
            synonyms = self._synonyms(node, server, broker_synonyms(server), sensitive) if server else []
            value = None if sensitive else self.topic_value(topic, name, node)
            if name in overrides:
                synonyms.insert(0, ConfigSynonym(name, value, ConfigSource.DYNAMIC_TOPIC_CONFIG))
            source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
            entries.append(ConfigEntryView(
                name=name,
                value=value,
                read_only=False,
                is_default=source is ConfigSource.DEFAULT_CONFIG,
                source=source,
                is_sensitive=sensitive,
                config_type=definition.type,
                synonyms=tuple(synonyms) if include_synonyms else (),
            ))
        return entries

    # --------------------------------------------------------------------------- alter
    @staticmethod
    def check_request(ops: Sequence[tuple[str, AlterConfigOp, str | None]]) -> None:
        """The broker's preprocessing of every resource (ConfigAdminManager.preprocess)."""
        names = [name for name, _, _ in ops]
        if len(set(names)) != len(names):
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
        nulls = [name for name, op, value in ops if op is not AlterConfigOp.DELETE and value is None]
        if nulls:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls))

    def apply_broker_ops(
        self, node: int | None, ops: Sequence[tuple[str, AlterConfigOp, str | None]]
    ) -> dict[str, str]:
        """Validate incremental ops on a broker resource (as the receiving broker does) and return the
        resulting dynamic config map of that resource (not stored)."""
        current = dict(self.dynamic_default if node is None else self.dynamic_broker.get(node, {}))
        for name, op, value in ops:
            if op is AlterConfigOp.SET:
                current[name] = value or ""
            elif op is AlterConfigOp.DELETE:
                current.pop(name, None)
            else:
                definition = broker_def(name)
                if definition is None:
                    raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, f"key not found: {name}")
                verb = "append" if op is AlterConfigOp.APPEND else "subtract"
                if definition.type is not ConfigType.LIST:
                    raise KafkaError(ErrorCode.INVALID_CONFIG,
                                     f"Config value {verb} is not allowed for config key: {name}")
                current[name] = _list_op(current.get(name, definition.default), op, value or "")
        self.validate_broker(node, current)
        return current

    def validate_broker(self, node: int | None, props: Mapping[str, str]) -> None:
        """DynamicBrokerConfig.validate: errors are INVALID_REQUEST with ConfigException's message."""
        non_dynamic = [n for n in props if n in BROKER_DEFS and BROKER_DEFS[n].mode is Dynamic.READ_ONLY]
        if non_dynamic:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Cannot update these configs dynamically: {_scala_set(non_dynamic)}")
        security = [n for n in props if n in _SECURITY_CONFIGS]
        if security:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             "These security configs can be dynamically updated only per-listener using the "
                             f"listener prefix: {_scala_set(security)}")
        for name, raw in props.items():
            definition = broker_def(name)
            if definition is not None:
                try:
                    parse_value(definition, raw)
                except ConfigValueError as exc:
                    raise KafkaError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        if node is None:
            per_broker = [n for n in props if _is_per_broker(n)]
            if per_broker:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 "Cannot update these configs at default cluster level, broker id must be "
                                 f"specified: {_scala_set(per_broker)}")

    def apply_topic_ops(self, topic: str, ops: Sequence[tuple[str, AlterConfigOp, str | None]]) -> dict[str, str]:
        """Validate incremental ops on a topic (as the controller does); returns the new override map."""
        current = dict(self.topic.get(topic, {}))
        for name, op, value in ops:
            if op is AlterConfigOp.SET:
                current[name] = value or ""
            elif op is AlterConfigOp.DELETE:
                current.pop(name, None)
            else:
                definition = TOPIC_DEFS.get(name)
                if definition is None or definition.type is not ConfigType.LIST:
                    raise KafkaError(ErrorCode.INVALID_CONFIG,
                                     f"Can't {op.name} to key {name} because its type is not LIST.")
                default = self._topic_default(name, None)
                current[name] = _list_op(current.get(name, default), op, value or "")
        self.validate_topic(current)
        return current

    @staticmethod
    def validate_topic(props: Mapping[str, str | None]) -> None:
        """LogConfig.validate as run by the controller: INVALID_CONFIG with Kafka's messages."""
        nulls = [name for name, value in props.items() if value is None]
        if nulls:
            raise KafkaError(ErrorCode.INVALID_CONFIG, "Null value not supported for topic configs: " + ",".join(nulls))
        for name in props:
            if name not in TOPIC_DEFS:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
        for name, raw in props.items():
            try:
                parse_value(TOPIC_DEFS[name], raw or "")
            except ConfigValueError as exc:
                raise KafkaError(ErrorCode.INVALID_CONFIG, str(exc)) from None


def _is_per_broker(name: str) -> bool:
    match = _LISTENER_PREFIX.match(name)
    if match:
        return match.group(1) not in _CLUSTER_LEVEL_LISTENER_CONFIGS
    definition = BROKER_DEFS.get(name)
    return definition is not None and definition.mode is Dynamic.PER_BROKER


def _list_op(current: str | None, op: AlterConfigOp, value: str) -> str:
    parts = [p for p in (current or "").split(",") if p]
    for item in value.split(","):
        if op is AlterConfigOp.APPEND:
            if item not in parts:
                parts.append(item)
        elif item in parts:
            parts.remove(item)
    return ",".join(parts)


def _unit(name: str) -> int:
    for suffix, factor in (("minutes", 60_000), ("hours", 3_600_000)):
        if name.endswith(suffix):
            return factor
    return 1


def _scala_set(names: Iterable[str]) -> str:
    return "Set(" + ", ".join(names) + ")"


# KafkaConfig's defaults that are not null (DynamicBrokerConfig.staticDefaultConfigs).
_STATIC_DEFAULTS: dict[str, str] = {
    name: definition.default for name, definition in BROKER_DEFS.items() if definition.default is not None
}


def parse_throttled_replicas(value: str | None) -> tuple[bool, frozenset[tuple[int, int]]]:
    """``*`` -> (True, {}); ``"0:1,1:2"`` -> (False, {(0, 1), (1, 2)}); invalid entries are ignored."""
    if not value:
        return False, frozenset()
    if value.strip() == "*":
        return True, frozenset()
    pairs = set()
    for item in value.split(","):
        partition, _, broker = item.strip().partition(":")
        if partition.isdigit() and broker.isdigit():
            pairs.add((int(partition), int(broker)))
    return False, frozenset(pairs)
