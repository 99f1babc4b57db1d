"""The effective ``server.properties`` of a simulated Kafka container, built the way the real images build it.

A simulated Kafka process reads only what a real container reads: its environment (as the kubelet resolved
it, fieldRefs and ``$(VAR)`` expansion included), its command line and the files its volumes mount. Nothing
else (no operator state, no devcluster hints).

Images (any registry prefix, tag or digest): ``apache/kafka`` and ``apache/kafka-native`` (flavour
``apache``), ``confluentinc/cp-kafka`` and ``confluentinc/cp-server`` (flavour ``confluent``).

What runs is the container's argv, as a container runtime builds it: ``command + args`` when ``command`` is
set, else ``args`` alone, else the image's CMD (``/etc/kafka/docker/run`` resp. ``/etc/confluent/docker/run``;
neither image has an ENTRYPOINT that matters here). Supported argv forms:

1. **The image's start script** (``/etc/kafka/docker/run`` or ``/etc/confluent/docker/run``, or no command):
   - apache: extra arguments ``NAME=value`` are exported into the environment first (``run`` does
     ``export "$var"``). ``CLUSTER_ID`` defaults to ``5L6g3nShT-eMCtK--X86sw`` (``configureDefaults``).
     ``configure``: with ``KAFKA_PROCESS_ROLES=controller``, setting ``KAFKA_ADVERTISED_LISTENERS`` is an
     error (exit 1); when ``KAFKA_LISTENERS`` is unset on a non-controller, it is derived from
     ``KAFKA_ADVERTISED_LISTENERS`` with every host replaced by ``0.0.0.0``.
     ``KafkaDockerWrapper`` then writes server.properties: a mounted ``/mnt/shared/config/server.properties``
     (file input) followed by one line per ``KAFKA_*`` variable, so variables override the file; if both are
     empty, the image's default (single-node, ``localhost``) properties are used. Variable names map exactly
     as the wrapper does it: drop every ``KAFKA_``, lower-case, ``_`` -> ``.``, then ``...`` -> ``-`` and
     ``..`` -> ``_`` (so ``KAFKA_LOG_DIRS`` -> ``log.dirs``, ``KAFKA_FOO__BAR`` -> ``foo_bar``,
     ``KAFKA_FOO___BAR`` -> ``foo-bar``); excluded: ``KAFKA_VERSION``, ``KAFKA_HEAP_OPT`` (sic),
     ``KAFKA_LOG4J_OPTS``, ``KAFKA_OPTS``, ``KAFKA_JMX_OPTS``, ``KAFKA_JVM_PERFORMANCE_OPTS``,
     ``KAFKA_GC_LOG_OPTS``, ``KAFKA_LOG4J_ROOT_LOGLEVEL``, ``KAFKA_LOG4J_LOGGERS``,
     ``KAFKA_TOOLS_LOG4J_LOGLEVEL``, ``KAFKA_JMX_HOSTNAME``.
   - confluent: properties come from the environment only (``ub render-properties``): ``KAFKA_*`` without
     the prefix and ``CONFLUENT_*`` with it, converted by ub's ``ConvertKey`` (a ``_`` between two
     non-underscores -> ``.``, then ``___`` -> ``-``, ``__`` -> ``_``, lower-case); ``CLUSTER_ID`` is required
     in KRaft mode; ``log.dirs`` defaults to ``/var/lib/kafka/data``.
   The log dirs are formatted with ``CLUSTER_ID`` unless already formatted (the images' ``launch``).
2. **``kafka-server-start.sh <file> [--override name=value ...]``** (any directory): the properties file must
   be mounted (a ConfigMap/Secret volume); the environment is *not* mapped (the script does not read it).
   The log dirs must be formatted, as with a real Kafka: by a ``kafka-storage.sh format`` init container
   (simulated, see :func:`parse_storage_format`) writing ``meta.properties`` to a persistent volume, or -
   standing in for a format step devcluster cannot run (a shell script) - ``CLUSTER_ID`` or
   ``KAFKA_CLUSTER_ID`` in the environment.
3. Anything else (e.g. ``bash -c '<script>'``): devcluster cannot run shell scripts; the process exits 1
   with a message naming the supported forms.

Node identity: ``node.id`` from the effective properties - e.g. ``KAFKA_NODE_ID`` set from the
``apps.kubernetes.io/pod-index`` label through a fieldRef (combine with ``spec.ordinals.start`` to give
two StatefulSets disjoint ids), ``node.id`` in the properties file (per pod: a ConfigMap key selected with
``subPathExpr: $(POD_NAME).properties``), or ``--override node.id=N``.

Validation follows ``KafkaConfig`` for what the simulation uses (messages as Kafka words them):
``process.roles`` (ZooKeeper mode is not simulated), ``node.id``, ``controller.quorum.voters`` /
``controller.quorum.bootstrap.servers``, ``controller.listener.names``, ``listeners``,
``advertised.listeners`` (defaults to the non-controller ``listeners``; an empty host means the canonical
host name - the pod's FQDN when it has a subdomain; ``0.0.0.0`` cannot be advertised),
``listener.security.protocol.map``, ``inter.broker.listener.name``, ``broker.rack``, ``log.dirs`` /
``log.dir``, ``metadata.log.dir``. Every property (``min.insync.replicas``, ``default.replication.factor``,
``num.partitions``, ``auto.create.topics.enable``, ...) is handed to the cluster model as the node's static
config. The replication throttle rates are dynamic-only broker configs in Kafka (a static value is ignored);
set them with IncrementalAlterConfigs. Only PLAINTEXT listeners can be spoken to (no TLS/SASL).

The KRaft voter set: ``controller.quorum.voters`` (a static quorum) is modelled exactly - the set named by
the first node that starts, fixed for the cluster's life. ``controller.quorum.bootstrap.servers`` without
voters (KIP-853's dynamic quorum) is accepted but **approximated**: the simulation has no
``kafka-storage.sh format --standalone`` / ``--initial-controllers`` step recording the initial voters and
no AddRaftVoter/RemoveRaftVoter, so every node with the ``controller`` role that starts joins the voter
set (and never leaves it), with the directory id of its metadata log dir; brokers are observers. A quorum
whose controllers all start together therefore looks like one formatted with ``--initial-controllers``
naming them, but a controller added later becomes a voter without ``kafka-metadata-quorum.sh add-controller``
and a removed one stays a (stopped) voter. The bootstrap addresses themselves are not used.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devcluster.kafka.types import BROKER, CONTROLLER

APACHE = "apache"
CONFLUENT = "confluent"

_IMAGES = {
    "apache/kafka": APACHE,
    "apache/kafka-native": APACHE,
    "confluentinc/cp-kafka": CONFLUENT,
    "confluentinc/cp-server": CONFLUENT,
}

APACHE_RUN = "/etc/kafka/docker/run"
CONFLUENT_RUN = "/etc/confluent/docker/run"
APACHE_MOUNTED_CONFIG = "/mnt/shared/config/server.properties"
APACHE_DEFAULT_CLUSTER_ID = "5L6g3nShT-eMCtK--X86sw"

_APACHE_EXCLUDED = frozenset({
    "KAFKA_VERSION", "KAFKA_HEAP_OPT", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_JMX_HOSTNAME",
})
_CONFLUENT_EXCLUDED = frozenset({
    "KAFKA_VERSION", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_JMX_PORT",
    "KAFKA_JMX_HOSTNAME", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL",
})

# config/kraft/server.properties of Kafka 3.9, which the apache image falls back to without any input.
APACHE_DEFAULT_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""

# KafkaConfig's default listener.security.protocol.map.
_DEFAULT_PROTOCOL_MAP = {"PLAINTEXT": "PLAINTEXT", "SSL": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT",
                         "SASL_SSL": "SASL_SSL"}
_ENDPOINT = re.compile(r"^(.*)://\[?([0-9a-zA-Z\-%._:]*)\]?:(-?[0-9]+)$")
_FORMAT_HINT = ("supported: the image's own start script (no command, or /etc/kafka/docker/run), "
                "'kafka-server-start.sh <properties file> [--override k=v ...]', "
                "'kafka-storage.sh format ...' in an init container")


class KafkaConfigError(Exception):
    """The process cannot start with this configuration; a real one logs this and exits 1."""


# ------------------------------------------------------------------------------------------- images
def image_flavor(image: str) -> str | None:
    """``apache``/``confluent`` for the Kafka images (any registry prefix, tag or digest), else None."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for repo, flavor in _IMAGES.items():
        if name == repo or name.endswith("/" + repo):
            return flavor
    return None


def container_argv(flavor: str, command: Sequence[str], args: Sequence[str]) -> list[str]:
    """What the runtime executes: command + args, args alone, or the image's CMD."""
    if command:
        return [*command, *args]
    if args:
        return list(args)
    return [APACHE_RUN if flavor == APACHE else CONFLUENT_RUN]


# ------------------------------------------------------------------------------- java.util.Properties
def parse_properties(text: str) -> dict[str, str]:
    """``java.util.Properties.load``: comments (``#``/``!``), ``=``/``:``/blank separators, backslash line
    continuations and escapes (``\\t``, ``\\n``, ``\\uXXXX``, ``\\x`` -> ``x``). Later keys win."""
    props: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        # A logical line continues while it ends with an odd number of backslashes.
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):
            line = line[:-1]
        key_end, value_start = _split_key(line)
        props[_unescape(line[:key_end])] = _unescape(line[value_start:])
    return props


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_key(line: str) -> tuple[int, int]:
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t\f":
            break
        i += 1
    key_end = min(i, n)
    j = key_end
    while j < n and line[j] in " \t\f":
        j += 1
    if j < n and line[j] in "=:":
        j += 1
        while j < n and line[j] in " \t\f":
            j += 1
    return key_end, j


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2:i + 6] or ""):
            out.append(chr(int(s[i + 2:i + 6], 16)))
            i += 6
            continue
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
        i += 2
    return "".join(out)


# ------------------------------------------------------------------------------ env -> properties
def apache_env_key(name: str) -> str:
    """KafkaDockerWrapper.getServerConfigsFromEnv's key conversion (every ``KAFKA_`` is removed, as it does)."""
    return name.replace("KAFKA_", "").lower().replace("_", ".").replace("...", "-").replace("..", "_")


def confluent_env_key(name: str) -> str:
    """ub's ConvertKey on a name whose prefix was already handled."""
    single = re.sub(r"[^_]_[^_]", lambda m: m.group(0).replace("_", "."), name)
    return single.replace("___", "-").replace("__", "_").lower()


def env_properties(flavor: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (property, value) pairs the image derives from ``env``, in environment order."""
    out: list[tuple[str, str]] = []
    for name, value in env.items():
        if flavor == APACHE:
            if name.startswith("KAFKA_") and name not in _APACHE_EXCLUDED:
                out.append((apache_env_key(name), value))
        elif name not in _CONFLUENT_EXCLUDED:
            if name.startswith("KAFKA"):
                out.append((confluent_env_key(name[len("KAFKA") + 1:]), value))
            elif name.startswith("CONFLUENT"):
                out.append((confluent_env_key(name), value))
    return out


# ---------------------------------------------------------------------------------- launch plans
@dataclass(frozen=True)
class LaunchPlan:
    """What the container's start command amounts to.

    ``props``: the effective server.properties. ``cluster_id``: the id the log dirs get formatted with if
    they are not formatted yet (None: they must already be formatted). ``source`` says how props were built.
    """

    props: dict[str, str]
    cluster_id: str | None
    source: str
    argv: tuple[str, ...] = ()


def launch_plan(flavor: str, argv: Sequence[str], env: Mapping[str, str], files: Mapping[str, bytes]) -> LaunchPlan:
    """Interpret the container's argv (see the module docstring); raises KafkaConfigError."""
    if not argv:
        raise KafkaConfigError("no command to run; " + _FORMAT_HINT)
    program = argv[0]
    if program in (APACHE_RUN, CONFLUENT_RUN):
        if (program == APACHE_RUN) != (flavor == APACHE):
            raise KafkaConfigError(f"{program}: No such file or directory")
        return _apache_run(argv, env, files) if flavor == APACHE else _confluent_run(argv, env)
    if program.rsplit("/", 1)[-1] == "kafka-server-start.sh":
        return _server_start(argv, env, files)
    raise KafkaConfigError(f"devcluster cannot run {shlex.join(argv)!r}; " + _FORMAT_HINT)


def _apache_run(argv: Sequence[str], env: Mapping[str, str], files: Mapping[str, bytes]) -> LaunchPlan:
    env = dict(env)
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            env[name] = value
    if not env.get("CLUSTER_ID"):
        env["CLUSTER_ID"] = APACHE_DEFAULT_CLUSTER_ID
    roles = env.get("KAFKA_PROCESS_ROLES")
    if roles == "controller":
        if env.get("KAFKA_ADVERTISED_LISTENERS"):
            raise KafkaConfigError("KAFKA_ADVERTISED_LISTENERS is not supported on a KRaft controller.")
        env.pop("KAFKA_ADVERTISED_LISTENERS", None)
    if not env.get("KAFKA_LISTENERS") and roles != "controller" and env.get("KAFKA_ADVERTISED_LISTENERS"):
        env["KAFKA_LISTENERS"] = re.sub(r"://[^:]*:", "://0.0.0.0:", env["KAFKA_ADVERTISED_LISTENERS"])
    lines = "\n".join(f"{key}={value}" for key, value in env_properties(APACHE, env))
    mounted = files.get(APACHE_MOUNTED_CONFIG)
    text = (mounted.decode("utf-8", errors="replace") if mounted is not None else "") + ("\n" + lines if lines else "")
    source = "file+env" if mounted is not None else "env"
    if not text.strip():
        text, source = APACHE_DEFAULT_PROPERTIES, "image default"
    return LaunchPlan(parse_properties(text), env["CLUSTER_ID"], source, tuple(argv))


def _confluent_run(argv: Sequence[str], env: Mapping[str, str]) -> LaunchPlan:
    if env.get("KAFKA_PROCESS_ROLES") and not env.get("CLUSTER_ID"):
        raise KafkaConfigError("CLUSTER_ID environment variable not set")
    if env.get("KAFKA_PROCESS_ROLES") == "controller" and env.get("KAFKA_ADVERTISED_LISTENERS"):
        raise KafkaConfigError("KAFKA_ADVERTISED_LISTENERS is not supported on a KRaft controller.")
    props = {"log.dirs": "/var/lib/kafka/data"}
    env = dict(env)
    if not env.get("KAFKA_LISTENERS") and env.get("KAFKA_PROCESS_ROLES") != "controller" \
            and env.get("KAFKA_ADVERTISED_LISTENERS"):
        env["KAFKA_LISTENERS"] = re.sub(r"://[^:]*:", "://0.0.0.0:", env["KAFKA_ADVERTISED_LISTENERS"])
    props.update(env_properties(CONFLUENT, env))
    return LaunchPlan(props, env.get("CLUSTER_ID"), "env", tuple(argv))


def _server_start(argv: Sequence[str], env: Mapping[str, str], files: Mapping[str, bytes]) -> LaunchPlan:
    rest = list(argv[1:])
    if rest and rest[0] == "-daemon":
        rest.pop(0)
    if not rest:
        raise KafkaConfigError("USAGE: kafka-server-start.sh [-daemon] server.properties [--override property=value]*")
    path = rest.pop(0)
    data = files.get(path)
    if data is None:
        raise KafkaConfigError(f"{path} (No such file or directory)")
    props = parse_properties(data.decode("utf-8", errors="replace"))
    while rest:
        flag = rest.pop(0)
        if flag != "--override" or not rest:
            raise KafkaConfigError(f"Found non argument parameters: {flag}")
        name, eq, value = rest.pop(0).partition("=")
        if not eq:
            raise KafkaConfigError(f"Invalid command line properties: {name}")
        props[name] = value
    cluster_id = env.get("CLUSTER_ID") or env.get("KAFKA_CLUSTER_ID") or None
    return LaunchPlan(props, cluster_id, "file", tuple(argv))


@dataclass(frozen=True)
class StorageFormat:
    """A parsed ``kafka-storage.sh format`` invocation."""

    cluster_id: str
    config_path: str
    ignore_formatted: bool


def parse_storage_format(argv: Sequence[str]) -> StorageFormat | None:
    """``kafka-storage.sh format -t ID -c FILE [--ignore-formatted]`` (long forms and ``--x=v`` too), or
    None when argv is not a storage format command. Raises KafkaConfigError for a malformed one."""
    if not argv or argv[0].rsplit("/", 1)[-1] != "kafka-storage.sh" or len(argv) < 2 or argv[1] != "format":
        return None
    opts: dict[str, str] = {}
    ignore = False
    rest = list(argv[2:])
    while rest:
        item = rest.pop(0)
        name, eq, value = item.partition("=")
        if name in ("-g", "--ignore-formatted"):
            ignore = True
            continue
        if name in ("--standalone", "-s", "--no-initial-controllers", "-N"):
            continue
        if not eq:
            if not rest:
                raise KafkaConfigError(f"argument {name}: expected one argument")
            value = rest.pop(0)
        opts[name] = value
    cluster_id = opts.get("-t") or opts.get("--cluster-id")
    config_path = opts.get("-c") or opts.get("--config")
    if not config_path:
        raise KafkaConfigError("argument --config/-c is required")
    if not cluster_id:
        raise KafkaConfigError("argument --cluster-id/-t is required")
    return StorageFormat(cluster_id, config_path, ignore)


# ------------------------------------------------------------------------------------ node config
@dataclass(frozen=True)
class Listener:
    """One ``listeners`` / ``advertised.listeners`` entry (name upper-cased, as ListenerName normalises it)."""

    name: str
    host: str
    port: int
    security_protocol: str


@dataclass(frozen=True)
class NodeConfig:
    """What the simulated process needs from the effective properties (validated like KafkaConfig)."""

    props: dict[str, str]
    node_id: int
    roles: frozenset[str]
    listeners: tuple[Listener, ...]
    advertised: tuple[Listener, ...]
    controller_listener_names: tuple[str, ...]
    inter_broker_listener_name: str | None
    rack: str | None
    log_dirs: tuple[str, ...]
    metadata_log_dir: str
    voters: tuple[int, ...] = field(default=())

    @property
    def is_broker(self) -> bool:
        return BROKER in self.roles

    @property
    def is_controller(self) -> bool:
        return CONTROLLER in self.roles

    def endpoints(self) -> tuple[Listener, ...]:
        """What the node registers: advertised broker listeners, then its controller listeners."""
        out = [e for e in self.advertised if e.name not in self.controller_listener_names]
        if self.is_controller:
            advertised = {e.name: e for e in self.advertised}
            for e in self.listeners:
                if e.name in self.controller_listener_names:
                    out.append(advertised.get(e.name, e))
        return tuple(out)


def _int(props: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = props.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise KafkaConfigError(f"Invalid value {raw} for configuration {name}: Not a number of type INT") from None


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _protocol_map(props: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    raw = props.get("listener.security.protocol.map")
    if raw is None or not raw.strip():
        return dict(_DEFAULT_PROTOCOL_MAP), False
    out = {}
    for item in _list(raw):
        name, sep, proto = item.partition(":")
        if not sep or not name.strip() or not proto.strip():
            raise KafkaConfigError(f"Invalid value {raw} for configuration listener.security.protocol.map: "
                                   "Map entry should be of form <key>:<value>")
        out[name.strip().upper()] = proto.strip().upper()
    return out, True


def parse_listeners(value: str | None, protocols: Mapping[str, str], config_name: str) -> tuple[Listener, ...]:
    """``NAME://host:port,...`` as ``CoreUtils.listenerListToEndPoints`` parses it."""
    out: list[Listener] = []
    for item in _list(value):
        match = _ENDPOINT.match(item)
        if match is None:
            raise KafkaConfigError(f"Unable to parse {item} to a broker endpoint")
        name = match.group(1).upper()
        if name not in protocols:
            raise KafkaConfigError(f"No security protocol defined for listener {name}")
        out.append(Listener(name, match.group(2), int(match.group(3)), protocols[name]))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise KafkaConfigError(f"Each listener must have a different name, {config_name}: {value}")
    return tuple(out)


def parse_voters(value: str | None) -> tuple[int, ...]:
    ids = []
    for entry in _list(value):
        node, at, address = entry.partition("@")
        if not at or not node.strip().isdigit() or ":" not in address:
            raise KafkaConfigError(f"Invalid value {value} for configuration controller.quorum.voters: "
                                   f"Unable to parse {entry}")
        ids.append(int(node))
    return tuple(ids)


def node_config(props: Mapping[str, str], canonical_host: str) -> NodeConfig:
    """Validate ``props`` for a KRaft node and derive its identity and endpoints.

    ``canonical_host`` is what ``InetAddress.getLocalHost().getCanonicalHostName()`` gives in the pod: the
    advertised host of a listener declared without one.
    """
    props = dict(props)
    roles_raw = props.get("process.roles")
    if roles_raw is None or not roles_raw.strip():
        if props.get("zookeeper.connect"):
            raise KafkaConfigError("ZooKeeper mode is not simulated by devcluster: set process.roles (KRaft)")
        raise KafkaConfigError('Missing required configuration "zookeeper.connect" which has no default value.')
    roles_list = _list(roles_raw)
    bad = [r for r in roles_list if r not in (BROKER, CONTROLLER)]
    if bad or len(set(roles_list)) != len(roles_list):
        raise KafkaConfigError(f"Invalid value {roles_raw} for configuration process.roles: "
                               f"Unknown process role '{bad[0] if bad else roles_raw}' (only 'broker' and "
                               "'controller' are allowed roles)")
    roles = frozenset(roles_list)
    node_id = _int(props, "node.id", _int(props, "broker.id", -1))
    if node_id is None or node_id < 0:
        raise KafkaConfigError("Missing required configuration `node.id` which has no default value.")
    voters = parse_voters(props.get("controller.quorum.voters"))
    bootstrap = _list(props.get("controller.quorum.bootstrap.servers"))
    if not voters and not bootstrap:
        raise KafkaConfigError("If using process.roles, either controller.quorum.bootstrap.servers must contain the "
                               "set of bootstrap controllers or controller.quorum.voters must contain a parseable "
                               "set of controllers.")
    if CONTROLLER in roles and voters and node_id not in voters:
        raise KafkaConfigError(f"If process.roles contains the 'controller' role, the node id {node_id} must be "
                               f"included in the set of voters controller.quorum.voters={sorted(set(voters))}")
    controller_names = tuple(n.upper() for n in _list(props.get("controller.listener.names")))
    if not controller_names:
        raise KafkaConfigError("controller.listener.names must contain at least one value when running KRaft "
                               "with just the broker role" if roles == {BROKER} else
                               "controller.listener.names must not be empty when running in KRaft mode")
    protocols, explicit = _protocol_map(props)
    if not explicit:
        # KafkaConfig maps controller listeners missing from a defaulted map to PLAINTEXT.
        for name in controller_names:
            protocols.setdefault(name, "PLAINTEXT")
    listeners = parse_listeners(props.get("listeners", "PLAINTEXT://:9092"), protocols, "listeners")
    ports = [e.port for e in listeners]
    if len(set(ports)) != len(ports):
        raise KafkaConfigError(f"Each listener must have a different port, listeners: {props.get('listeners')}")
    listener_names = {e.name for e in listeners}
    if roles == {BROKER} and listener_names & set(controller_names):
        raise KafkaConfigError("controller.listener.names must not contain a value appearing in the 'listeners' "
                               "configuration when running KRaft with just the broker role")
    if CONTROLLER in roles and not listener_names & set(controller_names):
        raise KafkaConfigError("controller.listener.names must contain at least one value appearing in the "
                               "'listeners' configuration when running the KRaft controller role")
    if roles == {CONTROLLER} and listener_names - set(controller_names):
        raise KafkaConfigError("The listeners config must only contain KRaft controller listeners from "
                               "controller.listener.names when process.roles=controller")
    if props.get("advertised.listeners", "").strip():
        advertised = parse_listeners(props["advertised.listeners"], protocols, "advertised.listeners")
    else:
        advertised = listeners
    resolved = []
    for e in advertised:
        host = e.host
        if e.name in controller_names:
            host = canonical_host if host in ("", "0.0.0.0") else host
        elif host == "0.0.0.0":
            raise KafkaConfigError("advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. "
                                   "Use a routable IP address.")
        resolved.append(Listener(e.name, host or canonical_host, e.port, e.security_protocol))
    advertised = tuple(resolved)
    listeners = tuple(Listener(e.name, canonical_host, e.port, e.security_protocol)
                      if e.name in controller_names and e.host in ("", "0.0.0.0") else e for e in listeners)
    inter_broker = None
    if BROKER in roles:
        inter_broker = (props.get("inter.broker.listener.name") or "").strip().upper() or None
        if inter_broker is None:
            # Without a name, the listener named after security.inter.broker.protocol (PLAINTEXT).
            inter_broker = (props.get("security.inter.broker.protocol") or "PLAINTEXT").strip().upper()
        broker_advertised = {e.name for e in advertised if e.name not in controller_names}
        if inter_broker not in broker_advertised:
            raise KafkaConfigError(
                "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid "
                f"options based on currently configured listeners are {','.join(sorted(broker_advertised))}")
    log_dirs = tuple(_list(props.get("log.dirs")) or _list(props.get("log.dir")) or ["/tmp/kafka-logs"])
    metadata_dir = (props.get("metadata.log.dir") or "").strip() or log_dirs[0]
    rack = (props.get("broker.rack") or "").strip() or None
    return NodeConfig(props, node_id, roles, listeners, advertised, controller_names, inter_broker, rack,
                      log_dirs, metadata_dir, voters)


# ------------------------------------------------------------------------------- meta.properties
def render_meta_properties(cluster_id: str, node_id: int, directory_id: str) -> str:
    return (f"#\n#Written by devcluster's simulated kafka-storage.sh\n"
            f"node.id={node_id}\ndirectory.id={directory_id}\nversion=1\ncluster.id={cluster_id}\n")
