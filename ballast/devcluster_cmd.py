"""``ballast devcluster``: run the emulator in the foreground (a developer tool, not product code)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal


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
