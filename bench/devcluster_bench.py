"""devcluster throughput, watch latency and memory.

Runs devcluster as its own process (``ballast devcluster``), so the load generator does not share its
interpreter, and drives it over HTTP like any client would:

- watch latency: 1,000 ConfigMaps created at a steady 500 writes/s (the throughput target), each
  carrying its send time, while 10 watches on the namespace are open; every watch records when the
  ADDED event arrives; p50/p99 over all (event, watcher) pairs. (At saturation, latency measures the
  server's request backlog instead, so it is taken at the target rate.)
- writes: then 1,000 more ConfigMaps and 200 Pods created by 16 concurrent clients as fast as they go,
  the 10 watches still open; writes/s = created objects / wall time;
- memory: the server's RSS after 10,000 stored objects.

Each measurement is the median of ``--runs`` runs (a fresh server per run). Targets (issue #2):
>= 500 writes/s, watch p99 < 20 ms, RSS < 300 MB at 10,000 objects.

    .venv/bin/python bench/devcluster_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from rich.console import Console
from rich.table import Table

CONFIGMAPS = 1_000
PODS = 200
WATCHES = 10
CONCURRENCY = 16
PACED_RATE = 500.0  # writes/s during the latency phase: the throughput target
MEMORY_OBJECTS = 10_000
NS = "bench"
SENT_MARK = b'"bench/sent-at":"'


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = workdir / "kubeconfig"
    ballast = Path(sys.executable).parent / "ballast"
    proc = subprocess.Popen([str(ballast), "devcluster", "--port", "0", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("devcluster did not start")
        time.sleep(0.05)
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    return proc, server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _create_many(session: aiohttp.ClientSession, url: str, bodies: list[dict]) -> None:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            if "annotations" in body["metadata"]:
                body["metadata"]["annotations"]["bench/sent-at"] = repr(time.time())
            async with session.post(url, json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"create failed: {resp.status} {await resp.text()}")
                await resp.read()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _create_paced(session: aiohttp.ClientSession, url: str, bodies: list[dict], rate: float) -> None:
    """Issue creates on a fixed schedule (``rate`` per second), not waiting for earlier responses."""

    async def post(body: dict) -> None:
        body["metadata"]["annotations"]["bench/sent-at"] = repr(time.time())
        async with session.post(url, json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"create failed: {resp.status} {await resp.text()}")
            await resp.read()

    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i, body in enumerate(bodies):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the load generator, not waiting for a condition
        tasks.append(asyncio.create_task(post(body)))
    await asyncio.gather(*tasks)


async def _watch(session: aiohttp.ClientSession, server: str, rv: str, latencies: list[float],
                 expected: int, ready: asyncio.Event) -> None:
    url = f"{server}/api/v1/namespaces/{NS}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=120"
    seen = 0
    async with session.get(url) as resp:
        ready.set()
        async for line in resp.content:
            now = time.time()
            # Find the stamp without a full JSON parse: the consumer must not be the bottleneck.
            at = line.find(SENT_MARK)
            if line.startswith(b'{"type":"ADDED"') and at >= 0:
                start = at + len(SENT_MARK)
                sent = float(line[start:line.index(b'"', start)])
                latencies.append((now - sent) * 1000)
                seen += 1
                if seen >= expected:
                    return


def _watch_process(server: str, rv: str, conn: multiprocessing.connection.Connection) -> None:
    """Runs in a child process so the watchers' event loop is not starved by the writers'."""

    async def run() -> list[float]:
        latencies: list[float] = []
        readies = [asyncio.Event() for _ in range(WATCHES)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WATCHES + 2)) as session:
            tasks = [asyncio.create_task(_watch(session, server, rv, latencies, CONFIGMAPS, ev)) for ev in readies]
            await asyncio.gather(*(ev.wait() for ev in readies))
            conn.send("ready")
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        return latencies

    conn.send(asyncio.run(run()))


async def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, server = start_server(Path(tmp))
        try:
            conn = aiohttp.TCPConnector(limit=CONCURRENCY + 4)
            async with aiohttp.ClientSession(connector=conn) as session:
                async with session.post(f"{server}/api/v1/namespaces", json={"metadata": {"name": NS}}) as r:
                    assert r.status == 201, await r.text()
                async with session.get(f"{server}/api/v1/namespaces/{NS}/configmaps") as r:
                    rv = (await r.json())["metadata"]["resourceVersion"]
                parent, child = multiprocessing.Pipe()
                watcher = multiprocessing.get_context("spawn").Process(target=_watch_process,
                                                                       args=(server, rv, child))
                watcher.start()
                if not parent.poll(60) or parent.recv() != "ready":
                    raise RuntimeError("watchers did not start")
                # Latency phase: ConfigMaps at the target write rate, watched by every watcher.
                paced = [{"metadata": {"name": f"cm-{i}", "annotations": {}}, "data": {"k": "v" * 64}}
                         for i in range(CONFIGMAPS)]
                await _create_paced(session, f"{server}/api/v1/namespaces/{NS}/configmaps", paced, PACED_RATE)
                if not await asyncio.to_thread(parent.poll, 120):
                    raise RuntimeError("watchers did not see every event")
                # Throughput phase: ConfigMaps and Pods as fast as 16 clients can, watches still open.
                cms = [{"metadata": {"name": f"burst-{i}"}, "data": {"k": "v" * 64}} for i in range(CONFIGMAPS)]
                pods = [{"metadata": {"name": f"pod-{i}", "labels": {"app": "bench"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}} for i in range(PODS)]
                t0 = time.perf_counter()
                await asyncio.gather(
                    _create_many(session, f"{server}/api/v1/namespaces/{NS}/configmaps", cms),
                    _create_many(session, f"{server}/api/v1/namespaces/{NS}/pods", pods),
                )
                elapsed = time.perf_counter() - t0
                latencies: list[float] = parent.recv()
                watcher.join(10)
                # Fill up to MEMORY_OBJECTS stored objects for the memory figure.
                more = [{"metadata": {"name": f"fill-{i}"}, "data": {"k": "v" * 64}}
                        for i in range(MEMORY_OBJECTS - 2 * CONFIGMAPS - PODS)]
                await _create_many(session, f"{server}/api/v1/namespaces/{NS}/configmaps", more)
                memory = rss_mb(proc.pid)
            latencies.sort()
            assert len(latencies) == CONFIGMAPS * WATCHES, len(latencies)
            return {
                "writes_per_s": (CONFIGMAPS + PODS) / elapsed,
                "watch_p50_ms": latencies[len(latencies) // 2],
                "watch_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
                "rss_mb": memory,
            }
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [asyncio.run(one_run()) for _ in range(args.runs)]
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    targets = {"writes_per_s": (500, ">="), "watch_p50_ms": (None, ""), "watch_p99_ms": (20, "<"),
               "rss_mb": (300, "<")}
    table = Table(title=f"devcluster: {CONFIGMAPS} ConfigMaps at {PACED_RATE:.0f}/s, then {CONFIGMAPS} ConfigMaps + {PODS} "
                        f"Pods at full speed, {WATCHES} watches "
                        f"(median of {args.runs} runs, cores={os.cpu_count()})")
    table.add_column("metric")
    table.add_column("median", justify="right")
    table.add_column("runs", justify="right")
    table.add_column("target", justify="right")
    table.add_column("ratio to target", justify="right")
    for key, value in median.items():
        target, op = targets[key]
        ratio = "" if target is None else f"{value / target:.2f}"
        table.add_row(key, f"{value:.1f}", " / ".join(f"{r[key]:.1f}" for r in runs),
                      "" if target is None else f"{op} {target}", ratio)
    Console().print(table)


if __name__ == "__main__":
    main()
