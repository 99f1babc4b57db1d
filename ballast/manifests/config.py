"""Kafka server configuration for each role, expressed the way the official ``apache/kafka`` image takes it.

How the image turns its environment into ``server.properties`` (``docker/resources/common-scripts`` and the
``utility``/``ub`` Go tool of apache/kafka, documented in ``docker/examples/README.md``):

* every variable whose name starts with ``KAFKA`` -- except the JVM/log4j ones in ``EXCLUDED_ENV`` -- becomes
  a property: drop ``KAFKA_``, then a single ``_`` means ``.``, ``__`` means ``_`` and ``___`` means ``-``,
  and lower-case the rest (``property_to_env`` / ``env_to_property``; the image's converter only sees a
  single underscore between two non-underscore characters, so a property with a one-character segment such as
  ``a.b.c`` cannot be expressed, nor a key whose variable the start scripts read themselves, such as
  ``KAFKA_HEAP_OPTS`` (``SCRIPT_ENV``): ``env_problem`` reports both);
* ``CLUSTER_ID`` is required once ``KAFKA_PROCESS_ROLES`` is set (``kafka-storage.sh format`` uses it on the
  first start of an empty log dir, and an already formatted one is left alone);
* the environment is split at ``=`` and an entry with more than one ``=`` is silently dropped, so a value
  containing ``=`` never reaches Kafka (``value_problem``);
* ``KAFKA_ADVERTISED_LISTENERS`` on a ``process.roles=controller`` node makes the image exit
  ("not supported on a KRaft controller"), so controllers never get one.

Shared settings go into a ConfigMap per role consumed with ``envFrom``; the per-pod ones -- ``node.id``,
``advertised.listeners`` (brokers) and ``broker.rack`` -- are container ``env`` entries built by
``ballast.manifests.statefulsets`` from the downward API.

Which keys a user may set in ``spec.brokers.config`` is data: ``OPERATOR_OWNED`` maps each key the operator
decides to the reason (``validate_spec`` reports a user value for one as an error); ``broker_defaults`` are
the operator's defaults that a user value replaces. Rendering never fails on a bad spec: entries with a
``config_entry_problem`` (which ``validate_spec`` reports) are left out of the rendered configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from ballast.kafka_configs import is_dynamic
from ballast.manifests.inputs import RenderInput
from ballast.manifests.names import (
    CONTROLLER_LISTENER,
    CONTROLLER_PORT,
    DATA_DIR,
    Role,
    headless_service_name,
    quorum_voters,
    service_host,
)
from ballast.spec import KafkaClusterSpec, ListenerSpec

# -- the image's environment <-> property rule ---------------------------------------------------------------

ENV_PREFIX: Final = "KAFKA_"
CLUSTER_ID_ENV: Final = "CLUSTER_ID"
# Never turned into properties by the image (kafka-propertiesSpec.json "excludes"; HEAP_OPT is spelled so there).
EXCLUDED_ENV: Final = frozenset({
    "KAFKA_VERSION", "KAFKA_HEAP_OPT", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
})
# Read by the image's launch script or Kafka's start scripts themselves (JVM heap, debugger, JMX); as
# properties they would also change how the JVM starts, so no user key may map to one of them.
SCRIPT_ENV: Final = EXCLUDED_ENV | {"KAFKA_HEAP_OPTS", "KAFKA_DEBUG", "KAFKA_JMX_PORT", "KAFKA_JMX_HOSTNAME"}
_SINGLE_UNDERSCORE = re.compile(r"[^_]_[^_]")
_PROPERTY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def property_to_env(key: str) -> str:
    """The environment variable that carries property ``key``: ``min.insync.replicas`` ->
    ``KAFKA_MIN_INSYNC_REPLICAS``, ``a_b`` -> ``KAFKA_A__B``, ``a-b`` -> ``KAFKA_A___B``."""
    return ENV_PREFIX + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def env_to_property(env: str) -> str | None:
    """The property the image makes of variable ``env`` (its ``ConvertKey``, quirks included), or None when
    the image ignores the variable."""
    if not env.startswith("KAFKA") or env in EXCLUDED_ENV:
        return None
    key = env[len("KAFKA") + 1:]
    # Leftmost, non-overlapping matches, exactly as Go's regexp.ReplaceAllStringFunc does.
    key = _SINGLE_UNDERSCORE.sub(lambda m: m.group(0).replace("_", "."), key)
    return key.replace("___", "-").replace("__", "_").lower()


def env_problem(key: str) -> str | None:
    """Why property ``key`` cannot be passed to the image as an environment variable, or None if it can."""
    if not _PROPERTY_NAME.match(key):
        return "is not a Kafka property name (lower-case letters, digits, '.', '_' and '-')"
    env = property_to_env(key)
    if env in SCRIPT_ENV:
        return f"cannot be set: the apache/kafka image reads {env} as a start-up setting, not a property"
    arrives_as = env_to_property(env)
    if arrives_as != key:
        return (f"cannot be passed to the apache/kafka image: {env} would reach Kafka as {arrives_as!r}")
    return None


def value_problem(value: str) -> str | None:
    """Why ``value`` would not reach Kafka intact through the image's environment, or None if it would."""
    if "=" in value:
        return "values containing '=' are dropped by the apache/kafka image's configuration script"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "must be a single line without control characters"
    return None


# -- who owns which key --------------------------------------------------------------------------------------

# Keys the operator decides, with the reason; a user value for one is an error (validate_spec).
OPERATOR_OWNED: Final[Mapping[str, str]] = {
    "node.id": "derived from the pod ordinal",
    "broker.id": "KRaft uses node.id, derived from the pod ordinal",
    "process.roles": "set per StatefulSet (controller or broker)",
    "listeners": "rendered from spec.listeners",
    "advertised.listeners": "rendered from spec.listeners and the pod's DNS name",
    "listener.security.protocol.map": "rendered from spec.listeners",
    "inter.broker.listener.name": "the first of spec.listeners",
    "security.inter.broker.protocol": "the first of spec.listeners is the inter-broker listener",
    "controller.listener.names": "the operator's CONTROLLER listener",
    "controller.quorum.voters": "rendered from spec.controllers",
    "controller.quorum.bootstrap.servers": "the quorum is static, from spec.controllers",
    "early.start.listeners": "the operator's CONTROLLER listener",
    "log.dirs": "the data volume",
    "log.dir": "the data volume",
    "metadata.log.dir": "the data volume",
    "broker.rack": "set from spec.brokers.rackAwareness",
    "zookeeper.connect": "clusters run in KRaft mode",
    "zookeeper.metadata.migration.enable": "clusters run in KRaft mode",
}

# Replication settings the operator defaults from the broker count and validate_spec checks against it.
DEFAULT_REPLICATION_FACTOR: Final = "default.replication.factor"
MIN_INSYNC_REPLICAS: Final = "min.insync.replicas"
OFFSETS_RF: Final = "offsets.topic.replication.factor"
TXN_RF: Final = "transaction.state.log.replication.factor"
TXN_MIN_ISR: Final = "transaction.state.log.min.isr"
SHARE_RF: Final = "share.coordinator.state.topic.replication.factor"
SHARE_MIN_ISR: Final = "share.coordinator.state.topic.min.isr"
# (replication factor key, its min-ISR key) pairs.
REPLICATION_PAIRS: Final = (
    (DEFAULT_REPLICATION_FACTOR, MIN_INSYNC_REPLICAS),
    (OFFSETS_RF, None),
    (TXN_RF, TXN_MIN_ISR),
    (SHARE_RF, SHARE_MIN_ISR),
)
REPLICATION_KEYS: Final = frozenset(key for pair in REPLICATION_PAIRS for key in pair if key is not None)
# The share-group state topic (KIP-932) exists from Kafka 4.0.
_SHARE_GROUPS_SINCE: Final = (4, 0)


def is_operator_owned(key: str) -> bool:
    return key in OPERATOR_OWNED


def positive_int(value: str | None) -> int | None:
    """``value`` as a positive integer, None when absent or not one."""
    if value is None or not value.strip().isdigit():
        return None
    number = int(value)
    return number if number > 0 else None


def default_replication_factor(replicas: int) -> int:
    return min(3, replicas)


def default_min_isr(replication_factor: int) -> int:
    """One less than the replication factor, at most 2, at least 1: acks=all writes survive one broker down
    (with a replication factor of 1 nothing better exists)."""
    return max(1, min(2, replication_factor - 1))


def kafka_version(spec: KafkaClusterSpec) -> tuple[int, ...]:
    """``spec.version`` as a tuple of ints (``3.9.1`` -> ``(3, 9, 1)``); unknown parts count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in spec.version.split("."))


def broker_defaults(spec: KafkaClusterSpec) -> dict[str, str]:
    """The operator's broker defaults (a user value in ``spec.brokers.config`` replaces each).

    Replication factors are ``min(3, brokers)``; each min-ISR default follows the replication factor actually
    in effect (the user's, if set), so overriding only a replication factor keeps the pair consistent.
    Topics are never created implicitly (``auto.create.topics.enable=false``).
    """
    config = spec.brokers.config
    rf = default_replication_factor(spec.brokers.replicas)
    defaults = {"auto.create.topics.enable": "false"}
    for rf_key, isr_key in REPLICATION_PAIRS:
        if rf_key == SHARE_RF and kafka_version(spec) < _SHARE_GROUPS_SINCE:
            continue
        defaults[rf_key] = str(rf)
        if isr_key is not None:
            effective_rf = positive_int(config.get(rf_key)) or rf
            defaults[isr_key] = str(default_min_isr(effective_rf))
    return defaults


def config_entry_problem(key: str, value: str) -> str | None:
    """What is wrong with the entry ``key: value`` of ``spec.brokers.config`` on its own, or None.

    Owned keys, keys or values the image cannot carry, and replication settings that are not positive
    integers. (Rules relating entries to each other or to the broker count are ``validate_spec``'s.)
    """
    if is_operator_owned(key):
        return f"owned by the operator ({OPERATOR_OWNED[key]})"
    problem = env_problem(key) or value_problem(value)
    if problem is None and key in REPLICATION_KEYS and positive_int(value) is None:
        problem = f"must be a positive integer, got {value!r}"
    return problem


def user_config(spec: KafkaClusterSpec) -> dict[str, str]:
    """The user's ``spec.brokers.config`` minus every entry with a ``config_entry_problem``."""
    return {key: value for key, value in spec.brokers.config.items() if config_entry_problem(key, value) is None}


# -- listeners -----------------------------------------------------------------------------------------------

def listener_name(listener: ListenerSpec) -> str:
    """The Kafka listener name of ``listener`` (``internal`` -> ``INTERNAL``)."""
    return listener.name.upper()


def inter_broker_listener(spec: KafkaClusterSpec) -> ListenerSpec:
    """Brokers talk to each other over the first listener."""
    return spec.listeners[0]


def advertised_listeners(inp: RenderInput) -> str:
    """Per-pod ``advertised.listeners``, with ``$(POD_NAME)`` for the kubelet to expand:
    ``INTERNAL://$(POD_NAME).<name>-brokers.<ns>.svc.<domain>:9092,...``."""
    host = service_host(headless_service_name(inp.name, Role.BROKER), inp.namespace, inp.cluster_domain)
    return ",".join(f"{listener_name(lst)}://$(POD_NAME).{host}:{lst.port}" for lst in inp.spec.listeners)


# -- the properties of each role -----------------------------------------------------------------------------

def _quorum(inp: RenderInput) -> dict[str, str]:
    return {
        "controller.listener.names": CONTROLLER_LISTENER,
        "controller.quorum.voters": quorum_voters(inp.name, inp.namespace, inp.spec.controllers.replicas,
                                                  inp.cluster_domain),
        "log.dirs": DATA_DIR,
    }


def controller_properties(inp: RenderInput) -> dict[str, str]:
    """Shared ``server.properties`` of the controllers (``node.id`` comes per pod)."""
    return {
        "process.roles": Role.CONTROLLER.value,
        "listeners": f"{CONTROLLER_LISTENER}://:{CONTROLLER_PORT}",
        "listener.security.protocol.map": f"{CONTROLLER_LISTENER}:PLAINTEXT",
        **_quorum(inp),
    }


def broker_properties(inp: RenderInput) -> dict[str, str]:
    """Shared ``server.properties`` of the brokers: defaults, then the user's config, then the operator-owned
    keys (``node.id``, ``advertised.listeners`` and ``broker.rack`` come per pod)."""
    spec = inp.spec
    names = [listener_name(lst) for lst in spec.listeners]
    owned = {
        "process.roles": Role.BROKER.value,
        "listeners": ",".join(f"{listener_name(lst)}://:{lst.port}" for lst in spec.listeners),
        # Every listener is plaintext today; TLS/SASL listeners will map to their own protocols.
        "listener.security.protocol.map": ",".join(f"{n}:PLAINTEXT" for n in [*names, CONTROLLER_LISTENER]),
        "inter.broker.listener.name": listener_name(inter_broker_listener(spec)),
        **_quorum(inp),
    }
    return {**broker_defaults(spec), **user_config(spec), **owned}


def role_properties(inp: RenderInput, role: Role) -> dict[str, str]:
    return controller_properties(inp) if role is Role.CONTROLLER else broker_properties(inp)


def environment(inp: RenderInput, role: Role) -> dict[str, str]:
    """The ConfigMap data of ``role``: ``CLUSTER_ID`` plus one ``KAFKA_*`` variable per property, sorted."""
    env = {property_to_env(key): value for key, value in role_properties(inp, role).items()}
    env[CLUSTER_ID_ENV] = inp.cluster_id
    return dict(sorted(env.items()))


def broker_tunables(spec: KafkaClusterSpec) -> dict[str, str]:
    """The brokers' settings a user may tune: the operator's defaults overlaid with ``spec.brokers.config``
    (never an operator-owned key)."""
    return {**broker_defaults(spec), **user_config(spec)}


def dynamic_tunables(spec: KafkaClusterSpec) -> frozenset[str]:
    """The keys of ``broker_tunables`` that Kafka ``spec.version`` can change without a restart
    (``ballast.kafka_configs``): the operator applies those with IncrementalAlterConfigs instead of rolling."""
    return frozenset(key for key in broker_tunables(spec) if is_dynamic(key, spec.version))


def restart_environment(inp: RenderInput, role: Role) -> dict[str, str]:
    """``environment`` minus the brokers' dynamic tunables: the part of the ConfigMap whose change needs a
    restart, i.e. what the pod template's ``config-hash`` covers. A dynamic value still reaches the ConfigMap
    (a restarted or new broker starts with it) but changes no pod template, so it rolls nobody."""
    env = environment(inp, role)
    if role is Role.BROKER:
        for key in dynamic_tunables(inp.spec):
            env.pop(property_to_env(key), None)
    return env
