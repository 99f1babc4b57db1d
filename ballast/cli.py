"""The ``ballast`` command line.

Subcommands grow with the product; ``ballast devcluster`` runs the local stand-in cluster used by the
demo and the tests. It is imported lazily so the product never depends on the emulator.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ballast", description="Apache Kafka on Kubernetes, driven by Temporal")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_devcluster(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "devcluster":
        from ballast.devcluster_cmd import run_devcluster, run_kafka_control

        if getattr(args, "devcluster_command", None) == "kafka":
            return run_kafka_control(args)
        return run_devcluster(args)
    raise SystemExit(f"unknown command {args.command}")  # argparse already rejects this


if __name__ == "__main__":
    sys.exit(main())
