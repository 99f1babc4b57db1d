"""``ballast devcluster``: run the emulator in the foreground (a developer tool, not product code)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any


def run_devcluster(args: argparse.Namespace) -> int:
    # Imported here: the emulator is a development dependency of the CLI only.
    from devcluster.cluster import DevCluster, DevClusterConfig

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    zones = tuple(z for z in args.zones.split(",") if z)
    config = DevClusterConfig(port=args.port, kubeconfig=args.kubeconfig.resolve(), nodes=args.nodes,
                              zones=zones or ("zone-a",), watch_window=args.watch_window)

    async def serve() -> None:
        cluster = DevCluster(config)
        await cluster.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        kubeconfig = config.kubeconfig
        print(f"devcluster is serving the Kubernetes API on {cluster.url}", flush=True)
        print(f"kubeconfig (context ballast-dev): {kubeconfig}", flush=True)
        print(f"  export KUBECONFIG={kubeconfig}", flush=True)
        print("  kubectl get nodes", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
        await cluster.stop()

    asyncio.run(serve())
    return 0


# -- ballast devcluster kafka ...: controls of the simulated Kafka clusters ------------------------------
KAFKA_ACTIONS = ("speed", "load", "skew", "slow-broker", "replication-rate", "fail-disk", "restore-disk", "status")


def add_kafka_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ballast devcluster kafka <action>``: talk to a running devcluster's devcluster-only control endpoint
    (``/devcluster/kafka``); the operator never uses it."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", dest="control_kubeconfig", type=Path, default=None,
                        help="kubeconfig of the running devcluster (default: .devcluster/kubeconfig)")
    common.add_argument("--server", default=None, help="devcluster URL (default: from the kubeconfig)")
    common.add_argument("--cluster", default=None, help="Kafka cluster id (needed when several run)")
    kafka = sub.add_parser("kafka", help="control devcluster's simulated Kafka clusters (tests and demos)")
    actions = kafka.add_subparsers(dest="kafka_action", required=True)
    p = actions.add_parser("speed", parents=[common], help="simulated seconds per wall second (e.g. 100)")
    p.add_argument("speed", type=float)
    p = actions.add_parser("load", parents=[common], help="producers' ingest rate into a topic")
    p.add_argument("--topic", required=True)
    p.add_argument("--bytes-per-sec", required=True, help="bytes per simulated second: 1048576, 20MiB, 1.5GB")
    p = actions.add_parser("skew", parents=[common], help="uneven partition growth or an inflated partition")
    p.add_argument("--topic", required=True)
    p.add_argument("--weights", default=None, help="ingest shares per partition, e.g. 0=5,3=10 (others 1)")
    p.add_argument("--partition", type=int, default=None, help="with --add-bytes: the partition to inflate")
    p.add_argument("--add-bytes", default=None, help="bytes added to --partition at once, e.g. 5GiB")
    p = actions.add_parser("slow-broker", parents=[common], help="make a broker catch up slower")
    p.add_argument("--node-id", type=int, required=True)
    p.add_argument("--factor", type=float, required=True,
                   help="fraction of the normal replication rate (0.1 = ten times slower, 1 = normal)")
    p = actions.add_parser("replication-rate", parents=[common], help="every follower's catch-up bandwidth")
    p.add_argument("bytes_per_sec", help="bytes per simulated second, e.g. 50MiB")
    for name, text in (("fail-disk", "fail a broker's log dir (KAFKA_STORAGE_ERROR)"),
                       ("restore-disk", "make a failed log dir usable again")):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("--node-id", type=int, required=True)
        p.add_argument("--path", default=None, help="the log dir (needed when the broker has several)")
        if name == "restore-disk":
            p.add_argument("--wiped", action="store_true", help="the disk comes back empty")
    actions.add_parser("status", parents=[common], help="print each simulated cluster's state as JSON")


def kafka_request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The action and JSON body ``args`` ask for."""
    action: str = args.kafka_action
    body: dict[str, Any] = {}
    if action == "speed":
        body["speed"] = args.speed
    elif action == "load":
        body.update(topic=args.topic, bytes_per_sec=args.bytes_per_sec)
    elif action == "skew":
        body["topic"] = args.topic
        if args.weights:
            weights: dict[str, float] = {}
            for item in args.weights.split(","):
                partition, _, weight = item.partition("=")
                weights[partition.strip()] = float(weight)
            body["weights"] = weights
        if args.add_bytes is not None:
            body.update(partition=args.partition, add_bytes=args.add_bytes)
    elif action == "slow-broker":
        body.update(node_id=args.node_id, factor=args.factor)
    elif action == "replication-rate":
        body["bytes_per_sec"] = args.bytes_per_sec
    elif action in ("fail-disk", "restore-disk"):
        body["node_id"] = args.node_id
        if args.path is not None:
            body["path"] = args.path
        if action == "restore-disk" and args.wiped:
            body["wiped"] = True
    if args.cluster is not None and action != "speed":
        body["cluster"] = args.cluster
    return action, body


def devcluster_url(kubeconfig: Path) -> str:
    """The server of the kubeconfig's current context (devcluster writes one context, ballast-dev)."""
    import yaml

    doc = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster") or {} for c in doc.get("clusters") or []}
    context = contexts.get(doc.get("current-context")) or {}
    server = (clusters.get(context.get("cluster")) or {}).get("server")
    if not isinstance(server, str) or not server:
        raise SystemExit(f"no server for the current context in {kubeconfig}")
    return server.rstrip("/")


def run_kafka_control(args: argparse.Namespace) -> int:
    import contextlib
    import json
    import sys
    import urllib.error
    import urllib.request

    kubeconfig: Path = args.control_kubeconfig or args.kubeconfig
    url = args.server.rstrip("/") if args.server else devcluster_url(kubeconfig)
    action, body = kafka_request(args)
    if action == "status":
        query = f"?cluster={args.cluster}" if args.cluster else ""
        request = urllib.request.Request(f"{url}/devcluster/kafka{query}")
    else:
        request = urllib.request.Request(f"{url}/devcluster/kafka/{action}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            result = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            detail = json.loads(detail).get("error", detail)
        print(f"ballast devcluster kafka {action}: {detail}", file=sys.stderr)
        return 1
    except urllib.error.URLError as err:
        print(f"ballast devcluster kafka {action}: cannot reach devcluster at {url}: {err.reason}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
