"""The ``ballast`` command line.

Subcommands grow with the product; ``ballast devcluster`` runs the local stand-in cluster used by the
demo and the tests. It is imported lazily so the product never depends on the emulator.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from ballast.config import OperatorSettings, TemporalTLS


def _add_devcluster(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devcluster", help="run devcluster, a local Kubernetes API server with simulated "
                                          "controllers, until SIGINT/SIGTERM")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    p.add_argument("--kubeconfig", type=Path, default=Path(".devcluster/kubeconfig"),
                   help="where to write the kubeconfig (context ballast-dev)")
    p.add_argument("--nodes", type=int, default=3, help="number of simulated nodes")
    p.add_argument("--zones", default="zone-a,zone-b,zone-c",
                   help="comma-separated topology.kubernetes.io/zone values, assigned round-robin")
    p.add_argument("--watch-window", type=int, default=10_000,
                   help="events kept for watch resumption; older resourceVersions get 410 Expired")
    p.add_argument("-v", "--verbose", action="store_true", help="log every controller action")
    from ballast.devcluster_cmd import add_kafka_commands

    add_kafka_commands(p.add_subparsers(dest="devcluster_command", metavar="{kafka}"))


def _add_temporal_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temporal-address", help="Temporal frontend host:port (TEMPORAL_ADDRESS)")
    p.add_argument("--temporal-namespace", help="Temporal namespace (TEMPORAL_NAMESPACE)")
    p.add_argument("--temporal-tls", action=argparse.BooleanOptionalAction, default=None,
                   help="TLS to the Temporal frontend (TEMPORAL_TLS); on by default when any --temporal-tls-* "
                        "option is given")
    p.add_argument("--temporal-tls-cert", help="client certificate, PEM, for mTLS (TEMPORAL_TLS_CERT)")
    p.add_argument("--temporal-tls-key", help="client private key, PEM, for mTLS (TEMPORAL_TLS_KEY)")
    p.add_argument("--temporal-tls-ca", help="CA bundle that signed the server certificate (TEMPORAL_TLS_CA)")
    p.add_argument("--temporal-tls-server-name",
                   help="name to check on the server certificate (TEMPORAL_TLS_SERVER_NAME)")


def _add_operator_flags(p: argparse.ArgumentParser) -> None:
    """Flags override the environment (``OperatorSettings.from_env``), which overrides the defaults."""
    _add_temporal_flags(p)
    p.add_argument("--task-queue", help="task queue of the cluster workflows (BALLAST_TASK_QUEUE)")
    p.add_argument("--kubeconfig", help="kubeconfig file, or several separated by ':' (KUBECONFIG); default "
                                        "in-cluster configuration")
    p.add_argument("--namespaces", help="comma-separated namespaces to watch (BALLAST_NAMESPACES); default all")
    p.add_argument("--kafka-addressing", choices=["cluster-dns", "devcluster"],
                   help="how to reach Kafka listeners (BALLAST_KAFKA_ADDRESSING)")


def _add_operator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, text in (("operator", "run the watchers and a Temporal worker in one process"),
                       ("worker", "run only a Temporal worker (cluster workflows and their activities)"),
                       ("watch", "run only the Kubernetes watchers that signal the cluster workflows")):
        _add_operator_flags(sub.add_parser(name, help=text))
    demo = sub.add_parser("demo", help="start a Temporal dev server, devcluster and the operator; apply "
                                       "examples/kafkacluster.yaml and follow it until Ready")
    demo.add_argument("--exit", action="store_true", help="exit 0 once Ready (non-zero on failure)")
    demo.add_argument("--workdir", type=Path, default=Path(".devcluster"),
                      help="where the kubeconfig and server logs go")
    demo.add_argument("--manifest", type=Path, default=Path("examples/kafkacluster.yaml"))
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for Ready")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ballast", description="Apache Kafka on Kubernetes, driven by Temporal")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_operator(sub)
    from ballast.roll_cli import add_roll_command

    add_roll_command(sub, _add_temporal_flags)
    from ballast.rebalance_cli import add_rebalance_command

    add_rebalance_command(sub, _add_temporal_flags)
    _add_devcluster(sub)
    return parser


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> OperatorSettings:
    """The settings for ``args``: each flag given wins over its environment variable (``env``, default
    ``os.environ``), which wins over the default. The TLS flags are one group: any of them replaces the
    environment's TLS choice (a file flag alone turns TLS on), and each file not given as a flag still falls
    back to its variable."""
    settings = OperatorSettings.from_env(env)
    updates: dict[str, object] = {}
    tls_flags = {field: getattr(args, f"temporal_tls_{flag}", None) for field, flag in (
        ("cert_path", "cert"), ("key_path", "key"), ("ca_path", "ca"), ("server_name", "server_name"))}
    toggle: bool | None = getattr(args, "temporal_tls", None)
    if toggle is not None or any(tls_flags.values()):
        base = settings.temporal_tls
        files = {field: value or getattr(base, field) for field, value in tls_flags.items()}
        try:
            updates["temporal_tls"] = TemporalTLS.resolve(True if toggle is None else toggle, **files)
        except ValidationError as err:
            message = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ValueError(f"--temporal-tls-cert/--temporal-tls-key: {message}") from err
    for flag, field in (("temporal_address", "temporal_address"), ("temporal_namespace", "temporal_namespace"),
                        ("task_queue", "task_queue"), ("kubeconfig", "kubeconfig"),
                        ("kafka_addressing", "kafka_addressing")):
        value = getattr(args, flag, None)
        if value:
            updates[field] = value
    if getattr(args, "namespaces", None):
        updates["namespaces"] = tuple(n.strip() for n in args.namespaces.split(",") if n.strip())
    return OperatorSettings.model_validate({**settings.model_dump(), **updates})


def _settings(args: argparse.Namespace) -> OperatorSettings:
    """``settings_from_args``, with a bad value reported as one line naming the flag or variable."""
    try:
        return settings_from_args(args)
    except ValueError as err:
        raise SystemExit(f"ballast {args.command}: {err}") from None


def _run_operator(args: argparse.Namespace) -> int:
    import asyncio

    from ballast import observability, operator

    settings = _settings(args)
    obs = observability.setup()
    parts = {"operator": (True, True), "worker": (True, False), "watch": (False, True)}[args.command]
    try:
        asyncio.run(operator.run(settings, worker=parts[0], watch=parts[1], runtime=obs.runtime))
    except KeyboardInterrupt:
        pass
    finally:
        obs.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("operator", "worker", "watch"):
        return _run_operator(args)
    if args.command == "roll":
        from ballast.roll_cli import main_roll

        main_roll(args, _settings(args))
    if args.command == "rebalance":
        from ballast.rebalance_cli import main_rebalance

        main_rebalance(args, _settings(args))
    if args.command == "demo":
        from ballast.demo import run_demo

        return run_demo(args)
    if args.command == "devcluster":
        from ballast.devcluster_cmd import run_devcluster, run_kafka_control

        if getattr(args, "devcluster_command", None) == "kafka":
            return run_kafka_control(args)
        return run_devcluster(args)
    raise SystemExit(f"unknown command {args.command}")  # argparse already rejects this


if __name__ == "__main__":
    sys.exit(main())
