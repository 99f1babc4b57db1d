"""Operator reaction time and idle memory (issue 4, "Performance").

Everything is real: a Temporal dev server (its own process), devcluster (the stand-in Kubernetes cluster, on
a thread of this process, with simulated KRaft pods) and the operator as its own process, so its CPU and
memory are its own.

**Reaction** (``ballast operator``, one 3-controller/3-broker KafkaCluster provisioned to Ready first): each
of ``--updates`` updates is a merge-PATCH of ``spec.brokers.config[log.retention.ms]`` to a new value, so
every update is a new generation the operator must write out (broker ConfigMap, StatefulSet config hash,
status). Measured from the moment the client's PATCH returns (``time.time()`` here) to

- *signal*: the ``WorkflowExecutionSignaled`` event of ``spec_changed`` for that generation in the cluster
  workflow's history (every run of the chain, continue-as-new included); its ``event_time`` comes from the
  Temporal server's clock on this machine;
- *first write*: the first write the operator commits to the cluster in response (any of the kinds it writes:
  the KafkaCluster or its status, Events, ConfigMaps, StatefulSets, Services, PDBs), as seen by a listener on
  devcluster's store, timestamped with ``time.time()`` on the devcluster thread at commit;
- *config written* and *reconciled* (for information): the broker ConfigMap write carrying the new value,
  and the status write reporting Ready for the generation.

Updates are sent one at a time from a quiet state: before each, the previous generation is reconciled and
the workflow is idle (no pending activity or workflow task), so every write is attributable to exactly one
update. Targets: p99 < 200 ms (signal), p99 < 500 ms (first write). Up to ``--runs`` batches of
``--updates`` updates each (same operator and cluster), as many as fit in ``--budget`` seconds (a full
reconcile takes a few hundred ms, so one batch takes a minute or more on a loaded 2-core machine); the table
gives the median over the batches of each batch's p50/p95/p99, and each batch's p99.

**Idle memory** (fresh dev server and devcluster; ``ballast worker`` and ``ballast watch`` as two processes
so the worker's RSS is the workflows' alone): ``--idle`` KafkaClusters are created whose spec passes the
CRD schema but fails the operator's deeper validation (``spec.brokers.config[node.id]`` is operator-owned).
The watcher signal-with-starts one workflow per cluster; each observes, reports ``Invalid`` (status and a
Warning Event) and then stays alive, idle, waiting for the next generation -- a living, cached workflow that
does nothing, which is what most clusters' workflows are most of the time. (A cluster that is gone would end
its workflow; provisioning 1,000 simulated Kafka clusters is not feasible here.) The worker's RSS is sampled
with 0 workflows, after the first 10 % and after all are idle and cached (Temporal's
``temporal_sticky_cache_size`` gauge confirms the count). Memory per cluster = (RSS at N - RSS at 0) / N;
target < 1 MiB. The marginal cost (between 10 % and N) is shown too: it leaves out one-time warm-up. Note
that an invalid cluster's workflow holds a smaller last observation than a Ready one's (no pods or
objects), a few KB less per cluster.

The worker's sticky cache (``max_cached_workflows``, 1,000 by default and not changed by the operator)
bounds how many workflows stay in memory: beyond it, workflows are evicted and replayed from history on
their next signal, trading memory for replay latency.

    .venv/bin/python bench/reaction_bench.py [--runs 3] [--updates 200] [--budget 150] [--idle 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as kube_config
from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ballast.demo import install_crd  # noqa: E402
from ballast.devserver import DevServer, free_port, start_dev_server  # noqa: E402
from ballast.messages import SIGNAL_SPEC_CHANGED, cluster_workflow_id  # noqa: E402
from ballast.spec import GROUP, PLURAL, VERSION  # noqa: E402
from devcluster.cluster import DevCluster, DevClusterConfig, DevClusterThread  # noqa: E402

console = Console(width=max(Console().width, 120))

REACTION_NS = "bench"
CLUSTER = "reaction"
IDLE_NS = "idle"
CONFIG_KEY = "log.retention.ms"
SPEC: dict[str, Any] = {"controllers": {"replicas": 3, "storage": {"size": "1Gi"}},
                        "brokers": {"replicas": 3, "storage": {"size": "2Gi"},
                                    "config": {"min.insync.replicas": "2"}}}
# Passes the CRD schema, fails ballast.validation: node.id is set by the operator per pod.
INVALID_SPEC: dict[str, Any] = {**SPEC, "brokers": {**SPEC["brokers"], "config": {"node.id": "7"}}}
# Store keys of the kinds the operator writes (what counts as "a write by the operator").
OPERATOR_KEYS = {f"{GROUP}/{PLURAL}", "/events", "/configmaps", "apps/statefulsets", "/services",
                 "policy/poddisruptionbudgets"}
SIGNAL_TARGET_MS = 200.0
WRITE_TARGET_MS = 500.0
MEMORY_TARGET_MIB = 1.0


# --- devcluster's own record of writes -----------------------------------------------------------------

@dataclass(frozen=True)
class Write:
    at: float  # time.time() on the devcluster thread, at commit
    type: str
    key: str
    namespace: str
    name: str
    rv: int
    obj: dict[str, Any]  # the stored object (immutable by the store's contract; only read here)


class WriteLog:
    """Every write committed in ``namespaces``, from a listener on devcluster's store; waitable."""

    def __init__(self, namespaces: set[str]) -> None:
        self.namespaces = namespaces
        self.writes: list[Write] = []
        self._cond = threading.Condition()

    def install(self, dc: DevClusterThread) -> None:
        def add(cluster: DevCluster) -> None:
            cluster.api.store.listeners.append(self._listener)

        dc.call(add)

    def _listener(self, event: Any) -> None:
        # Runs on the devcluster loop inside the commit: keep it cheap.
        at = time.time()
        meta = event.obj.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        if namespace not in self.namespaces:
            return
        with self._cond:
            self.writes.append(Write(at, event.type, event.key, namespace, meta.get("name", ""), event.rv,
                                     event.obj))
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.writes)

    def wait_for(self, predicate: Callable[[list[Write]], Any], timeout: float, what: str) -> Any:
        """Block until ``predicate(writes)`` is truthy (re-checked on every write); return its value."""
        with self._cond:
            result = self._cond.wait_for(lambda: predicate(self.writes), timeout)
        if not result:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        return result


# --- the environment -------------------------------------------------------------------------------------

@dataclass
class Environment:
    """A Temporal dev server, devcluster with the KafkaCluster CRD, and operator processes started on it."""

    workdir: Path
    temporal: DevServer
    dc: DevClusterThread
    api: k8s.ApiClient
    log: WriteLog
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def start(self, command: str, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """``ballast <command>`` as its own process (production settings: INFO logs, JSON)."""
        full = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "TEMPORAL_ADDRESS": self.temporal.address,
                "BALLAST_KAFKA_ADDRESSING": "devcluster", "BALLAST_LEADER_ELECTION": "false", **env}
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen([str(Path(sys.executable).parent / "ballast"), command], env=full, stdout=log,
                                stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def logs(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextlib.contextmanager
def environment(namespaces: set[str]) -> Iterator[Environment]:
    with tempfile.TemporaryDirectory(prefix="reaction-bench-") as tmp:
        workdir = Path(tmp)
        temporal = start_dev_server(workdir / "temporal", ui=False)
        dc: DevClusterThread | None = None
        env: Environment | None = None
        try:
            dc = DevClusterThread(DevClusterConfig(kubeconfig=workdir / "kubeconfig")).start()
            log = WriteLog(namespaces)
            log.install(dc)
            api = kube_config.new_client_from_config(str(workdir / "kubeconfig"))  # type: ignore[no-untyped-call]
            install_crd(api)
            core = k8s.CoreV1Api(api)
            for ns in namespaces:
                core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
            env = Environment(workdir, temporal, dc, api, log)
            yield env
        finally:
            for proc in env.processes if env is not None else []:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
            if dc is not None:
                dc.stop()
            temporal.stop()


def _cluster_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": name}, "spec": spec}


def _is_status_of(w: Write, name: str, generation: int, phase: str) -> bool:
    if w.key != f"{GROUP}/{PLURAL}" or w.name != name:
        return False
    status = w.obj.get("status") or {}
    return status.get("observedGeneration") == generation and status.get("phase") == phase


async def _wait_idle(temporal: Client, workflow_id: str, timeout: float = 30.0) -> None:
    """Poll until the cluster workflow has no pending activity and no pending workflow task."""
    handle = temporal.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = (await handle.describe()).raw_description
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            return
        await asyncio.sleep(0.01)  # polling interval of a condition check with a deadline
    raise TimeoutError(f"{workflow_id} did not become idle within {timeout:.0f}s")


# --- reaction --------------------------------------------------------------------------------------------

@dataclass
class Update:
    generation: int
    value: str
    patched_at: float  # time.time() when the PATCH returned
    first_write_ms: float = float("nan")
    first_write_key: str = ""
    config_ms: float = float("nan")
    reconciled_ms: float = float("nan")
    signal_ms: float = float("nan")


async def _signal_times(temporal: Client, workflow_id: str, wanted: set[int]) -> dict[int, float]:
    """generation -> earliest WorkflowExecutionSignaled(spec_changed) event time, for the ``wanted``
    generations, walking the chain of runs backwards from the latest (continue-as-new links each run to the
    one before it in its WorkflowExecutionStarted event)."""
    times: dict[int, float] = {}
    run_id: str | None = None
    while True:
        history = await temporal.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        previous = ""
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                previous = event.workflow_execution_started_event_attributes.continued_execution_run_id
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                continue
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name != SIGNAL_SPEC_CHANGED or not attrs.input.payloads:
                continue
            generation = int(json.loads(attrs.input.payloads[0].data)["generation"])
            at = event.event_time.seconds + event.event_time.nanos / 1e9
            times[generation] = min(at, times.get(generation, at))
        if wanted <= times.keys() or not previous:
            return times
        run_id = previous


async def _one_update(env: Environment, temporal: Client, objects: k8s.CustomObjectsApi, index: int) -> Update:
    workflow_id = cluster_workflow_id(REACTION_NS, CLUSTER)
    await _wait_idle(temporal, workflow_id)
    mark = env.log.mark()
    value = str(604_800_000 + index)  # a new, unique value: the operator must write it out
    patched: Any = await asyncio.to_thread(
        objects.patch_namespaced_custom_object, GROUP, VERSION, REACTION_NS, PLURAL, CLUSTER,
        {"spec": {"brokers": {"config": {**SPEC["brokers"]["config"], CONFIG_KEY: value}}}})
    at = time.time()
    generation = int(patched["metadata"]["generation"])
    patch_rv = int(patched["metadata"]["resourceVersion"])
    update = Update(generation, value, at)

    def reconciled(writes: list[Write]) -> Write | None:
        return next((w for w in writes[mark:] if _is_status_of(w, CLUSTER, generation, "Ready")), None)

    done: Write = await asyncio.to_thread(env.log.wait_for, reconciled, 60.0,
                                          f"generation {generation} reconciled")
    later = [w for w in env.log.writes[mark:] if w.rv > patch_rv and w.namespace == REACTION_NS]
    first = next((w for w in later if w.key in OPERATOR_KEYS), None)
    config = next((w for w in later if w.key == "/configmaps" and value in json.dumps(w.obj.get("data"))), None)
    if first is not None:
        update.first_write_ms, update.first_write_key = (first.at - at) * 1000, first.key
    if config is not None:
        update.config_ms = (config.at - at) * 1000
    update.reconciled_ms = (done.at - at) * 1000
    return update


async def reaction(env: Environment, runs: int, updates: int, budget: float) -> list[list[Update]]:
    operator = env.start("operator", "operator", {"BALLAST_TASK_QUEUE": "reaction-bench"})
    objects = k8s.CustomObjectsApi(env.api)
    temporal = await Client.connect(env.temporal.address)
    started = time.monotonic()
    await asyncio.to_thread(objects.create_namespaced_custom_object, GROUP, VERSION, REACTION_NS, PLURAL,
                            _cluster_body(CLUSTER, SPEC))
    try:
        await asyncio.to_thread(env.log.wait_for, lambda ws: any(_is_status_of(w, CLUSTER, 1, "Ready") for w in ws),
                                180.0, "the cluster to be Ready")
    except TimeoutError:
        console.print(env.logs("operator"))
        raise
    console.print(f"cluster {REACTION_NS}/{CLUSTER} Ready after {time.monotonic() - started:.1f}s "
                  f"(operator pid {operator.pid})")
    batches: list[list[Update]] = []
    index = 0
    budget_end = time.monotonic() + budget
    for run in range(runs):
        batch: list[Update] = []
        started = time.monotonic()
        for _ in range(updates):
            batch.append(await _one_update(env, temporal, objects, index))
            index += 1
        signals = await _signal_times(temporal, cluster_workflow_id(REACTION_NS, CLUSTER),
                                      {u.generation for u in batch})
        for update in batch:
            if update.generation in signals:
                update.signal_ms = (signals[update.generation] - update.patched_at) * 1000
        took = time.monotonic() - started
        console.print(f"reaction run {run + 1}/{runs}: {updates} updates in {took:.1f}s")
        batches.append(batch)
        if run + 1 < runs and time.monotonic() + took > budget_end:
            console.print(f"stopping after {run + 1} run(s): another would exceed the {budget:.0f}s budget")
            break
    if operator.poll() is not None:
        raise RuntimeError(f"the operator exited with {operator.returncode}:\n{env.logs('operator')}")
    return batches


# --- idle memory ----------------------------------------------------------------------------------------

def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def sampled_rss(pid: int, samples: int = 5) -> float:
    """Median of a few samples a tenth of a second apart (RSS moves a little as allocators settle)."""
    values = []
    for i in range(samples):
        if i:
            time.sleep(0.1)  # spacing between samples of a measurement, not a wait for a condition
        values.append(rss_mib(pid))
    return statistics.median(values)


def sticky_cache_size(metrics_url: str) -> int | None:
    with contextlib.suppress(OSError), urllib.request.urlopen(metrics_url, timeout=2) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("temporal_sticky_cache_size"):
                return int(float(line.rsplit(" ", 1)[1]))
    return None


async def _wait_sticky_cache(metrics_url: str, count: int, timeout: float = 60.0) -> int | None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = await asyncio.to_thread(sticky_cache_size, metrics_url)
        if seen == count:
            return seen
        await asyncio.sleep(0.2)  # polling interval of a condition check with a deadline
    return seen


async def _wait_poller(temporal: Client, task_queue: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    request = DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    while time.monotonic() < deadline:
        if (await temporal.workflow_service.describe_task_queue(request)).pollers:
            return
        await asyncio.sleep(0.1)  # polling interval of a condition check with a deadline
    raise TimeoutError(f"no worker polled {task_queue} within {timeout:.0f}s")


@dataclass
class IdleResult:
    count: int
    checkpoint: int
    worker_rss: dict[int, float]
    watcher_rss: dict[int, float]
    cached: dict[int, int | None]
    settle_s: float

    def per_cluster_kib(self, rss: dict[int, float], low: int = 0) -> float:
        return (rss[self.count] - rss[low]) * 1024 / (self.count - low)


def _create_clusters(api: k8s.ApiClient, names: list[str]) -> None:
    objects = k8s.CustomObjectsApi(api)

    def create(name: str) -> None:
        objects.create_namespaced_custom_object(GROUP, VERSION, IDLE_NS, PLURAL, _cluster_body(name, INVALID_SPEC))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, names))


async def idle_memory(env: Environment, count: int) -> IdleResult:
    task_queue = "idle-bench"
    metrics = f"127.0.0.1:{free_port()}"
    worker = env.start("worker", "worker", {"BALLAST_TASK_QUEUE": task_queue,
                                            "BALLAST_TEMPORAL_METRICS_ADDRESS": metrics})
    watcher = env.start("watch", "watch", {"BALLAST_TASK_QUEUE": task_queue, "BALLAST_NAMESPACES": IDLE_NS})
    temporal = await Client.connect(env.temporal.address)
    await _wait_poller(temporal, task_queue)
    metrics_url = f"http://{metrics}/metrics"
    checkpoint = max(1, count // 10)
    result = IdleResult(count, checkpoint, {0: sampled_rss(worker.pid)}, {0: sampled_rss(watcher.pid)},
                        {0: sticky_cache_size(metrics_url)}, 0.0)
    started = time.monotonic()
    created = 0
    for target in (checkpoint, count):
        names = [f"idle-{i:04d}" for i in range(created, target)]
        await asyncio.to_thread(_create_clusters, env.api, names)
        created = target

        def reported(writes: list[Write], target: int = target) -> bool:
            # The Warning Event is the last thing an invalid cluster's workflow does before it waits.
            named = {(w.obj.get("involvedObject") or {}).get("name") for w in writes
                     if w.key == "/events" and w.obj.get("reason") == "InvalidSpec"}
            return len(named) >= target

        try:
            await asyncio.to_thread(env.log.wait_for, reported, 300.0, f"{target} clusters reported Invalid")
        except TimeoutError:
            console.print(env.logs("worker"))
            raise
        result.cached[target] = await _wait_sticky_cache(metrics_url, target)
        result.worker_rss[target] = sampled_rss(worker.pid)
        result.watcher_rss[target] = sampled_rss(watcher.pid)
        console.print(f"{target} idle cluster workflows after {time.monotonic() - started:.1f}s: worker RSS "
                      f"{result.worker_rss[target]:.0f} MiB, sticky cache {result.cached[target]}")
    result.settle_s = time.monotonic() - started
    for proc, name in ((worker, "worker"), (watcher, "watch")):
        if proc.poll() is not None:
            raise RuntimeError(f"ballast {name} exited with {proc.returncode}:\n{env.logs(name)}")
    return result


# --- report ----------------------------------------------------------------------------------------------

def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[94], cuts[98]


def report(batches: list[list[Update]], idle: IdleResult | None) -> None:
    cache_default = inspect.signature(Worker.__init__).parameters["max_cached_workflows"].default
    if batches:
        updates = len(batches[0])
        table = Table(title=f"Operator reaction: {len(batches)} run(s) of {updates} KafkaCluster updates, one at a "
                            f"time (cores={os.cpu_count()})")
        for column in ("from PATCH returned to", "p50 ms", "p95 ms", "p99 ms", "p99 per run", "target",
                       "p99 / target"):
            table.add_column(column, justify="left" if column.startswith("from") else "right")
        rows = (("workflow got spec_changed (history)", "signal_ms", SIGNAL_TARGET_MS),
                ("first operator write (devcluster store)", "first_write_ms", WRITE_TARGET_MS),
                ("broker ConfigMap with the new value", "config_ms", None),
                ("status Ready for the generation", "reconciled_ms", None))
        for label, attr, target in rows:
            per_run = []
            for batch in batches:
                values = [getattr(u, attr) for u in batch]
                missing = sum(1 for v in values if v != v)
                if missing:
                    raise RuntimeError(f"{label}: {missing} of {len(values)} updates have no measurement")
                per_run.append(percentiles(values))
            p50, p95, p99 = (statistics.median(p[i] for p in per_run) for i in range(3))
            table.add_row(label, f"{p50:.1f}", f"{p95:.1f}", f"{p99:.1f}",
                          " / ".join(f"{p[2]:.0f}" for p in per_run),
                          f"< {target:.0f} ms" if target else "", f"{p99 / target:.2f}" if target else "")
        console.print(table)
        kinds = Counter(u.first_write_key for batch in batches for u in batch)
        console.print("first write, by kind: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    if idle is not None:
        table = Table(title=f"{idle.count:,} idle KafkaClusterWorkflows (Invalid spec, waiting for the next "
                            f"generation) on one worker")
        for column in ("measurement", "value", "target", "ratio"):
            table.add_column(column, justify="left" if column == "measurement" else "right")
        per = idle.per_cluster_kib(idle.worker_rss)
        table.add_row("worker RSS, 0 workflows", f"{idle.worker_rss[0]:.0f} MiB", "", "")
        table.add_row(f"worker RSS, {idle.checkpoint:,} workflows cached", f"{idle.worker_rss[idle.checkpoint]:.0f} MiB",
                      "", "")
        table.add_row(f"worker RSS, {idle.count:,} workflows cached", f"{idle.worker_rss[idle.count]:.0f} MiB", "", "")
        table.add_row(f"memory per cluster (RSS delta 0 -> {idle.count:,}) / {idle.count:,}", f"{per:.0f} KiB",
                      f"< {MEMORY_TARGET_MIB * 1024:.0f} KiB", f"{per / (MEMORY_TARGET_MIB * 1024):.2f}")
        table.add_row(f"marginal per cluster ({idle.checkpoint:,} -> {idle.count:,})",
                      f"{idle.per_cluster_kib(idle.worker_rss, idle.checkpoint):.0f} KiB", "", "")
        table.add_row("watcher process (ballast watch), per cluster",
                      f"{idle.per_cluster_kib(idle.watcher_rss):.0f} KiB", "", "")
        table.add_row("sticky cache size (temporal_sticky_cache_size) at 0 / "
                      f"{idle.checkpoint:,} / {idle.count:,}",
                      " / ".join("n/a" if idle.cached[k] is None else str(idle.cached[k])
                                 for k in (0, idle.checkpoint, idle.count)), "", "")
        table.add_row("worker max_cached_workflows (SDK default; the operator keeps it)", str(cache_default), "", "")
        table.add_row(f"time to start and settle {idle.count:,} workflows", f"{idle.settle_s:.0f} s", "", "")
        console.print(table)


async def main_async(args: argparse.Namespace) -> None:
    batches: list[list[Update]] = []
    idle = None
    if args.runs > 0 and args.updates > 0:
        with environment({REACTION_NS}) as env:
            batches = await reaction(env, args.runs, args.updates, args.budget)
    if args.idle > 0:
        with environment({IDLE_NS}) as env:
            idle = await idle_memory(env, args.idle)
    report(batches, idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="batches of updates (0 = skip the reaction part)")
    parser.add_argument("--updates", type=int, default=200, help="updates per batch")
    parser.add_argument("--budget", type=float, default=150.0,
                        help="seconds for the update batches: no further batch starts if it would overrun")
    parser.add_argument("--idle", type=int, default=1000, help="idle cluster workflows (0 = skip)")
    args = parser.parse_args()
    if args.updates and args.updates < 2:
        parser.error("--updates must be at least 2 (percentiles)")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
