"""Which Kafka broker settings can change without a restart, per Kafka version: data, not code.

Kafka documents each broker config with a *Dynamic Update Mode* (the broker-config table of the Kafka
documentation; the source of truth is ``DynamicBrokerConfig.AllDynamicConfigs`` in Kafka's code):

* ``read-only``: read once at start-up; a change needs a broker restart (a rolling restart);
* ``per-broker``: may be altered for one broker at a time (``IncrementalAlterConfigs`` on resource
  ``BROKER`` named ``<node id>``), no restart;
* ``cluster-wide``: may be altered as the cluster-wide default (resource ``BROKER`` with an empty name) -- or
  per broker -- no restart.

``MODES`` lists the dynamic ones with the Kafka version that made them dynamic (``since``) and, where Kafka
removed a setting, the version that removed it (``until``, exclusive). Everything not listed is read-only.
When unsure from which version a setting is dynamic, the table names the later version: an unneeded restart
costs minutes, a missed one leaves a broker running with a stale setting.

Notable details that the table encodes:

* of a setting with several names only the first synonym is dynamic: ``log.retention.ms`` is, while
  ``log.retention.hours`` and ``log.retention.minutes`` are read-only (likewise ``log.roll.ms`` vs
  ``log.roll.hours``, ``log.flush.interval.ms`` vs ``log.flush.scheduler.interval.ms``);
* SSL keystore/truststore settings are dynamic only with a listener prefix
  (``listener.name.<listener>.ssl.keystore.location``), and then per broker; ``max.connections``,
  ``max.connection.creation.rate`` and ``num.network.threads`` stay cluster-wide with a listener prefix too;
* ``listeners`` and ``listener.security.protocol.map`` are per-broker dynamic in Kafka, but the operator owns
  them (``ballast.manifests.config.OPERATOR_OWNED``) and restarts brokers to change them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

UpdateMode = Literal["read-only", "per-broker", "cluster-wide"]
KafkaVersion = tuple[int, ...]

READ_ONLY: Final = "read-only"
PER_BROKER: Final = "per-broker"
CLUSTER_WIDE: Final = "cluster-wide"


@dataclass(frozen=True)
class DynamicConfig:
    """A broker setting that is dynamic from Kafka ``since`` until (before) ``until``."""

    key: str
    mode: UpdateMode
    since: KafkaVersion = (3, 7)
    until: KafkaVersion | None = None

    def applies_to(self, version: KafkaVersion) -> bool:
        return version >= self.since and (self.until is None or version < self.until)


def _cluster(*keys: str, since: KafkaVersion = (3, 7), until: KafkaVersion | None = None) -> list[DynamicConfig]:
    return [DynamicConfig(key, CLUSTER_WIDE, since, until) for key in keys]


def _per_broker(*keys: str, since: KafkaVersion = (3, 7)) -> list[DynamicConfig]:
    return [DynamicConfig(key, PER_BROKER, since) for key in keys]


MODES: Final[tuple[DynamicConfig, ...]] = tuple([
    # Log defaults: the broker names of topic configs (DynamicLogConfig; first synonym only).
    *_cluster("log.segment.bytes", "log.roll.ms", "log.roll.jitter.ms", "log.index.size.max.bytes",
              "log.flush.interval.messages", "log.flush.interval.ms", "log.retention.bytes", "log.retention.ms",
              "message.max.bytes", "log.index.interval.bytes", "log.cleaner.delete.retention.ms",
              "log.cleaner.min.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", "log.segment.delete.delay.ms",
              "log.cleaner.min.cleanable.ratio", "log.cleanup.policy", "unclean.leader.election.enable",
              "min.insync.replicas", "compression.type", "log.preallocate", "log.message.timestamp.type",
              "log.message.timestamp.before.max.ms", "log.message.timestamp.after.max.ms",
              "log.local.retention.ms", "log.local.retention.bytes"),
    *_cluster("compression.gzip.level", "compression.lz4.level", "compression.zstd.level", since=(3, 8)),
    # Removed in Kafka 4.0 (message formats v0/v1 and down-conversion are gone).
    *_cluster("log.message.format.version", "log.message.timestamp.difference.max.ms",
              "log.message.downconversion.enable", until=(4, 0)),
    # The log cleaner (LogCleaner.ReconfigurableConfigs).
    *_cluster("log.cleaner.threads", "log.cleaner.dedupe.buffer.size", "log.cleaner.io.buffer.load.factor",
              "log.cleaner.io.buffer.size", "log.cleaner.io.max.bytes.per.second", "log.cleaner.backoff.ms"),
    # Thread pools (DynamicThreadPool) and the network layer (SocketServer, DynamicListenerConfig).
    *_cluster("num.io.threads", "num.replica.fetchers", "num.recovery.threads.per.data.dir", "background.threads",
              "num.network.threads", "max.connections", "max.connection.creation.rate", "max.connections.per.ip",
              "max.connections.per.ip.overrides", "metric.reporters"),
    # Producer state (DynamicProducerStateManagerConfig).
    *_cluster("producer.id.expiration.ms", "transaction.partition.verification.enable"),
    # Tiered storage (DynamicRemoteLogConfig).
    *_cluster("remote.log.index.file.cache.total.size.bytes"),
    *_cluster("remote.log.manager.copy.max.bytes.per.second", "remote.log.manager.fetch.max.bytes.per.second",
              "remote.fetch.max.wait.ms", since=(3, 9)),
    *_cluster("remote.list.offsets.request.timeout.ms", "remote.log.manager.copier.thread.pool.size",
              "remote.log.manager.expiration.thread.pool.size", "remote.log.reader.threads",
              "follower.fetch.last.tiered.offset.enable", since=(4, 0)),
    *_cluster("remote.log.manager.follower.thread.pool.size", since=(4, 1)),
    # Replication throttles (per-broker dynamic configs, the ones reassignments use).
    *_per_broker("leader.replication.throttled.rate", "follower.replication.throttled.rate",
                 "replica.alter.log.dirs.io.max.bytes.per.second"),
    # Listener and SASL settings (DynamicListenerConfig): per broker.
    *_per_broker("listeners", "listener.security.protocol.map", "principal.builder.class",
                 "sasl.mechanism.inter.broker.protocol", "sasl.jaas.config", "sasl.enabled.mechanisms",
                 "sasl.kerberos.service.name", "sasl.kerberos.kinit.cmd", "sasl.kerberos.ticket.renew.window.factor",
                 "sasl.kerberos.ticket.renew.jitter", "sasl.kerberos.min.time.before.relogin",
                 "sasl.kerberos.principal.to.local.rules", "sasl.login.refresh.window.factor",
                 "sasl.login.refresh.window.jitter", "sasl.login.refresh.min.period.seconds",
                 "sasl.login.refresh.buffer.seconds"),
])

# Settings dynamic only behind a listener prefix (``listener.name.<l>.<key>``), then per broker
# (SslConfigs.RECONFIGURABLE_CONFIGS plus the other SSL settings of DynamicListenerConfig).
LISTENER_ONLY: Final = frozenset({
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password", "ssl.keystore.certificate.chain",
    "ssl.keystore.key", "ssl.truststore.certificates", "ssl.protocol", "ssl.provider", "ssl.cipher.suites",
    "ssl.enabled.protocols", "ssl.keymanager.algorithm", "ssl.trustmanager.algorithm",
    "ssl.endpoint.identification.algorithm", "ssl.secure.random.implementation", "ssl.client.auth",
    "ssl.engine.factory.class",
})
# Listener-prefixed settings that stay cluster-wide (DynamicBrokerConfig.ClusterLevelListenerConfigs).
CLUSTER_LEVEL_LISTENER: Final = frozenset({"max.connections", "max.connection.creation.rate", "num.network.threads"})

_LISTENER_PREFIXED = re.compile(r"^listener\.name\.[^.]+\.(.+)$")
# SASL mechanism settings are written listener.name.<l>.<mechanism>.<key>: match them by their ending.
_MECHANISM_KEYS = ("sasl.jaas.config", "sasl.login.callback.handler.class", "sasl.login.class",
                   "sasl.server.callback.handler.class", "connections.max.reauth.ms")


def parse_version(version: str) -> KafkaVersion:
    """``"3.9.1"`` -> ``(3, 9, 1)``; parts that are not numbers count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def update_mode(key: str, version: str | KafkaVersion) -> UpdateMode:
    """The Dynamic Update Mode of broker setting ``key`` in Kafka ``version``; unknown keys are read-only."""
    ver = parse_version(version) if isinstance(version, str) else version
    prefixed = _LISTENER_PREFIXED.match(key)
    if prefixed is not None:
        base = prefixed.group(1)
        if base in CLUSTER_LEVEL_LISTENER:
            return CLUSTER_WIDE
        if base in LISTENER_ONLY or base.endswith(_MECHANISM_KEYS):
            return PER_BROKER
        mode = _table_mode(base, ver)
        return PER_BROKER if mode == PER_BROKER else READ_ONLY
    if key in LISTENER_ONLY:
        return READ_ONLY
    return _table_mode(key, ver)


def _table_mode(key: str, version: KafkaVersion) -> UpdateMode:
    for entry in MODES:
        if entry.key == key and entry.applies_to(version):
            return entry.mode
    return READ_ONLY


def is_dynamic(key: str, version: str | KafkaVersion) -> bool:
    return update_mode(key, version) != READ_ONLY
