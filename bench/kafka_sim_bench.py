"""devcluster's simulated Kafka at scale: 12 brokers, 20,000 partitions.

A devcluster runs in this process (its own thread and event loop, ``DevClusterThread``) with a KRaft cluster
made of plain StatefulSets of the apache/kafka image: 3 controllers and 12 brokers. 40 topics of 500
partitions (replication factor 3) are created through kafka-python; producers write to every topic and 200
partitions are being reassigned (throttled), so the simulation has growth and copies in flight. Then:

- Metadata latency: a full Metadata request (all topics, v12) over a raw socket, time to the last byte of the
  response; and kafka-python's ``describe_topics()`` end to end (includes its Python decoding);
- DescribeLogDirs latency: all partitions of one broker (v4), raw and through ``describe_log_dirs``;
- simulation overhead at 1x speed: CPU time of the devcluster thread (``time.thread_time`` on its loop:
  model ticker, reads triggered by kubelet readiness polls, every controller) over a fixed wall interval,
  as a percentage of one core, with no client connected;
- simulation step cost: the wall time of one ``KafkaClusterModel.advance_to()`` (what the ticker and every
  read run first), measured on a model of the same shape (3 controllers, 12 brokers, 40 x 500 partitions,
  RF 3, the same ingest and 200 reassignments in flight) driven by a manual clock in this thread, so each
  step is timed alone, without the ticker or requests interleaving:

  * steady step: one simulated second of ingest and copies with no event due;
  * a broker crash (SIGKILL; ``stop_node(graceful=False)``) and the step in which its session times out
    and it is fenced: ~5,000 replicas leave their ISRs, ~1,700 leaderships move;
  * its restart (``start_node``) and the step in which it is unfenced: ~5,000 replicas start copying and
    the bandwidth is re-shared among them and the 200 reassignment copies;
  * the catch-up: the step(s) in which those replicas finish copying and rejoin their ISRs.

  Each is the median over ``--runs`` crash/restart cycles of different brokers; the worst step is the
  largest of these medians.

Latencies are the median of ``--runs`` requests after a warm-up. Targets: Metadata < 200 ms and simulation
overhead < 10 % of one core (issue 3); a steady step < 10 ms (the ticker steps about once per wall second
at 1x, so this keeps steps at most 1 % of a core); the worst step < 200 ms (a request arriving during it
waits for it, so it gets the budget of a full Metadata response).

    .venv/bin/python bench/kafka_sim_bench.py [--runs 7] [--interval 10]
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.structs import TopicPartition
from kio.serial import entity_writer
from kubernetes import client
from kubernetes import config as kube_config
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devcluster.cluster import DevClusterConfig, DevClusterThread
from devcluster.kafka.model import ClusterDirectory, KafkaClusterModel
from devcluster.kafka.protocol import build, request_type
from devcluster.kafka.simclock import SimClock
from devcluster.kafka.types import Endpoint, LogDirSpec

NS = "bench"
CLUSTER_ID = "YmVuY2gta2Fma2EtY2x1c3Q"
CONTROLLERS = 3
BROKERS = 12
BROKER_BASE = 100
TOPICS = 40
PARTITIONS = 500
REASSIGNING = 200
LOOPBACK = "devcluster.ballast.dev/loopback"
METADATA_TARGET_S = 0.200
CPU_TARGET = 0.10
STEADY_STEP_TARGET_S = 0.010
WORST_STEP_TARGET_S = 0.200
SESSION_TIMEOUT_S = 9.0  # broker.session.timeout.ms default


def statefulset(name: str, replicas: int, start: int, env: dict[str, str], port: int, probe: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    env_list = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KAFKA_NODE_ID",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
        *({"name": k, "value": v} for k, v in env.items()),
    ]
    return {
        "metadata": {"name": name},
        "spec": {
            "serviceName": name, "replicas": replicas, "ordinals": {"start": start},
            "podManagementPolicy": "Parallel", "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "kafka", "image": "apache/kafka:3.9.1", "env": env_list,
                "ports": [{"containerPort": port}], "readinessProbe": probe,
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/kafka/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Ti"}}}}],
        },
    }


def deploy(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    core.create_namespace({"metadata": {"name": NS}})
    voters = ",".join(f"{n}@kafka-controller-{n}.kafka-controller.{NS}.svc.cluster.local:9093"
                      for n in range(CONTROLLERS))
    common = {
        "CLUSTER_ID": CLUSTER_ID, "KAFKA_CONTROLLER_QUORUM_VOTERS": voters,
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data", "KAFKA_MIN_INSYNC_REPLICAS": "2",
        "KAFKA_AUTO_LEADER_REBALANCE_ENABLE": "false",
    }
    for name, port in (("kafka-controller", 9093), ("kafka-broker", 9092)):
        core.create_namespaced_service(NS, {"metadata": {"name": name}, "spec": {
            "clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app": name},
            "ports": [{"port": port}]}})
    apps.create_namespaced_stateful_set(NS, statefulset(
        "kafka-controller", CONTROLLERS, 0,
        {**common, "KAFKA_PROCESS_ROLES": "controller", "KAFKA_LISTENERS": "CONTROLLER://:9093"},
        9093, {"tcpSocket": {"port": 9093}}))
    apps.create_namespaced_stateful_set(NS, statefulset(
        "kafka-broker", BROKERS, BROKER_BASE,
        {**common, "KAFKA_PROCESS_ROLES": "broker",
         "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://$(POD_NAME).kafka-broker.{NS}.svc.cluster.local:9092"},
        9092, {"exec": {"command": ["kafka-broker-api-versions.sh", "--bootstrap-server", "localhost:9092"]}}))


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        pod = core.read_namespaced_pod(name, NS)
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def loopback(core: client.CoreV1Api, pod: str, port: int) -> tuple[str, int]:
    raw = core.read_namespaced_pod(pod, NS).metadata.annotations[LOOPBACK]
    host, _, local = json.loads(raw)[str(port)].rpartition(":")
    return host, int(local)


class Raw:
    """One connection speaking the framing by hand; times a request to the last byte of its response."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=30)
        self.correlation = 0

    def frame(self, api_key: int, version: int, values: dict[str, Any]) -> bytes:
        self.correlation += 1
        req_type = request_type(api_key, version)
        buf = io.BytesIO()
        entity_writer(req_type.__header_schema__)(buf, build(req_type.__header_schema__, {
            "request_api_key": api_key, "request_api_version": version, "correlation_id": self.correlation,
            "client_id": "bench"}))
        entity_writer(req_type)(buf, build(req_type, values))
        payload = buf.getvalue()
        return struct.pack(">i", len(payload)) + payload

    def timed(self, api_key: int, version: int, values: dict[str, Any]) -> tuple[float, int]:
        data = self.frame(api_key, version, values)
        start = time.perf_counter()
        self.sock.sendall(data)
        size = struct.unpack(">i", self._read(4))[0]
        self._read(size)
        return time.perf_counter() - start, size

    def _read(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(1 << 20, n - got))
            if not chunk:
                raise ConnectionError("closed")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


class StepModel:
    """The benchmark cluster's shape as a bare model on a manual clock (see the module docstring)."""

    def __init__(self) -> None:
        self.clock = SimClock(manual=True, start=1_700_000_000.0)
        self.model: KafkaClusterModel = ClusterDirectory(self.clock).get_or_create(CLUSTER_ID)
        voters = ",".join(f"{n}@kafka-controller-{n}:9093" for n in range(CONTROLLERS))
        self.static = {"controller.quorum.voters": voters, "min.insync.replicas": "2",
                       "auto.leader.rebalance.enable": "false"}
        for n in range(CONTROLLERS):
            self.model.start_node(n, roles={"controller"}, static_config=self.static,
                                  endpoints=[Endpoint("CONTROLLER", f"kafka-controller-{n}", 9093)])
        self.brokers = [BROKER_BASE + n for n in range(BROKERS)]
        for broker in self.brokers:
            self.start(broker)
        self.step(5)
        for t in range(TOPICS):
            self.model.create_topic(f"bench-{t:02d}", num_partitions=PARTITIONS, replication_factor=3)
            self.model.set_ingest_rate(f"bench-{t:02d}", 5 * 2**20)
        topic = self.model.topic("bench-00")
        assert topic is not None
        for p in topic.partitions[:REASSIGNING]:
            spare = next(b for b in self.brokers if b not in p.replicas)
            self.model.inflate_partition("bench-00", p.index, 50 * 2**30)
            self.model.alter_reassignment("bench-00", p.index, [*p.replicas[:2], spare])
        self.step(1)

    def start(self, broker: int) -> None:
        self.model.start_node(broker, roles={"broker"}, rack=f"zone-{broker % 3}",
                              static_config={**self.static, "node.id": str(broker), "process.roles": "broker"},
                              endpoints=[Endpoint("PLAINTEXT", f"kafka-broker-{broker}", 9092)],
                              log_dirs=[LogDirSpec("/var/lib/kafka/data", 2**40)])

    def step(self, seconds: float) -> float:
        """Advance the clock by ``seconds`` and time the model's step to it."""
        self.clock.advance(seconds)
        start = time.perf_counter()
        self.model.advance_to()
        return time.perf_counter() - start

    def lagging(self, broker: int) -> int:
        return sum(1 for t in self.model.topics() for p in t.partitions if broker in p.replicas and broker not in p.isr)


def step_costs(runs: int) -> dict[str, float]:
    """Medians of the step costs (seconds) described in the module docstring, plus ``replicas``."""
    sim = StepModel()
    steady = statistics.median(sim.step(1.0) for _ in range(max(3, runs)))
    crash, fence, restart, unfence, catch_up, replicas = [], [], [], [], [], []
    for broker in [sim.brokers[(3 * i) % BROKERS] for i in range(runs)]:
        replicas.append(sum(1 for t in sim.model.topics() for p in t.partitions if broker in p.replicas))
        start = time.perf_counter()
        sim.model.stop_node(broker, graceful=False)
        crash.append(time.perf_counter() - start)
        sim.step(SESSION_TIMEOUT_S - 0.1)  # quiet: the session has not expired yet
        fence.append(sim.step(0.2))
        assert sim.lagging(broker) >= replicas[-1] - REASSIGNING, "the crashed broker was not fenced"
        start = time.perf_counter()
        sim.start(broker)
        restart.append(time.perf_counter() - start)
        unfence.append(sim.step(1.0))  # registered, unfenced 0.5 s later: its replicas start copying
        # Catch-up: 10 simulated seconds of its ingest at the replication rate take well under a minute.
        catch_up.append(sum(sim.step(1.0) for _ in range(60)))
        assert sim.lagging(broker) <= REASSIGNING, "the restarted broker did not catch up"
    return {"steady": steady, "crash": statistics.median(crash), "fence": statistics.median(fence),
            "restart": statistics.median(restart), "unfence": statistics.median(unfence),
            "catch_up": statistics.median(catch_up), "replicas": statistics.median(replicas)}


def median_of(runs: int, fn: Any) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="requests per latency measurement (median)")
    parser.add_argument("--interval", type=float, default=10.0, help="wall seconds of the CPU measurement")
    args = parser.parse_args()
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="kafka-bench-"))
    kubeconfig = workdir / "kubeconfig"
    dc = DevClusterThread(DevClusterConfig(kubeconfig=kubeconfig, pod_start_delay=0.02, pod_ready_delay=0.02)).start()
    try:
        cfg = client.Configuration()
        kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        api = client.ApiClient(cfg)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        dc.call(lambda c: c.kafka.control("speed", speed=20))  # elections and unfencing in wall milliseconds
        t0 = time.perf_counter()
        deploy(core, apps)
        pods = [f"kafka-controller-{n}" for n in range(CONTROLLERS)]
        pods += [f"kafka-broker-{BROKER_BASE + n}" for n in range(BROKERS)]
        for pod in pods:
            wait(lambda pod=pod: ready(core, pod), 60, f"{pod} Ready")
        started = time.perf_counter() - t0
        broker = loopback(core, f"kafka-broker-{BROKER_BASE}", 9092)
        admin = KafkaAdminClient(bootstrap_servers=f"{broker[0]}:{broker[1]}", request_timeout_ms=120_000)
        t0 = time.perf_counter()
        for batch in range(0, TOPICS, 10):
            admin.create_topics({f"bench-{t:02d}": {"num_partitions": PARTITIONS, "replication_factor": 3}
                                 for t in range(batch, min(TOPICS, batch + 10))})
        created = time.perf_counter() - t0

        def load(c: Any) -> None:
            for t in range(TOPICS):
                c.kafka.control("load", topic=f"bench-{t:02d}", bytes_per_sec="5MiB")

        dc.call(load)
        # A throttled reassignment in flight: 200 partitions of one topic move one replica each.
        described = {p["partition_index"]: p["replica_nodes"] for p in admin.describe_topics(["bench-00"])[0]["partitions"]}
        targets = {}
        for index in range(REASSIGNING):
            replicas = described[index]
            spare = next(b for b in range(BROKER_BASE, BROKER_BASE + BROKERS) if b not in replicas)
            targets[TopicPartition("bench-00", index)] = [*replicas[:2], spare]
        dc.call(lambda c: [c.kafka.control("skew", topic="bench-00", partition=i, add_bytes="50GiB")
                           for i in range(REASSIGNING)])
        admin.alter_partition_reassignments(targets)
        dc.call(lambda c: c.kafka.control("speed", speed=1))

        raw = Raw(broker)
        metadata_raw = median_of(args.runs, lambda: raw.timed(3, 12, {"topics": None})[0])
        metadata_size = raw.timed(3, 12, {"topics": None})[1]
        logdirs_raw = median_of(args.runs, lambda: raw.timed(35, 4, {"topics": None})[0])
        raw.close()

        def timed(fn: Any) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        metadata_client = median_of(args.runs, lambda: timed(lambda: admin.describe_topics()))
        logdirs_client = median_of(args.runs, lambda: timed(lambda: admin.describe_log_dirs(brokers=[BROKER_BASE])))
        in_flight = len(admin.list_partition_reassignments())
        admin.close()

        # Simulation overhead at 1x with nothing connected: the devcluster thread's CPU over a wall interval.
        cpu0, wall0 = dc.call(lambda c: time.thread_time()), time.perf_counter()
        time.sleep(args.interval)
        cpu1, wall1 = dc.call(lambda c: time.thread_time()), time.perf_counter()
        cpu_share = (cpu1 - cpu0) / (wall1 - wall0)
        partitions = dc.call(lambda c: sum(len(t.partitions) for t in c.kafka.model(CLUSTER_ID).topics()))
    finally:
        dc.stop()
    steps = step_costs(args.runs)
    worst = max(steps[k] for k in ("crash", "fence", "restart", "unfence"))

    table = Table(title=f"simulated Kafka: {BROKERS} brokers, {partitions:,} partitions "
                        f"(cluster up in {started:.1f} s, topics created in {created:.1f} s, "
                        f"{in_flight} reassignments in flight)")
    for column in ("measurement", "value", "target", "ratio"):
        table.add_column(column, justify="left" if column == "measurement" else "right")

    def ms(seconds: float) -> str:
        return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1000:.1f} ms"

    table.add_row(f"Metadata, all topics, raw (median of {args.runs}; {metadata_size / 2**20:.1f} MiB)",
                  ms(metadata_raw), ms(METADATA_TARGET_S), f"{metadata_raw / METADATA_TARGET_S:.2f}")
    table.add_row("Metadata via kafka-python describe_topics() (incl. client decoding)", ms(metadata_client), "", "")
    table.add_row("DescribeLogDirs, one broker, raw", ms(logdirs_raw), "", "")
    table.add_row("DescribeLogDirs via kafka-python describe_log_dirs()", ms(logdirs_client), "", "")
    table.add_row(f"simulation overhead at 1x (devcluster thread CPU over {args.interval:.0f} s)",
                  f"{cpu_share * 100:.1f} %", f"{CPU_TARGET * 100:.0f} %", f"{cpu_share / CPU_TARGET:.2f}")
    n = int(steps["replicas"])
    table.add_row("step: steady, 1 s of ingest + 200 copies in flight, no event due", ms(steps["steady"]),
                  ms(STEADY_STEP_TARGET_S), f"{steps['steady'] / STEADY_STEP_TARGET_S:.2f}")
    table.add_row(f"step: broker crash (SIGKILL), {n:,} replicas", ms(steps["crash"]), "", "")
    table.add_row(f"step: its session times out, fenced: {n:,} replicas leave ISRs", ms(steps["fence"]), "", "")
    table.add_row("step: its restart (start_node)", ms(steps["restart"]), "", "")
    table.add_row(f"step: unfenced, {n:,} replicas start copying (bandwidth re-shared)", ms(steps["unfence"]), "", "")
    table.add_row(f"steps: its {n:,} replicas catch up and rejoin ISRs (60 steps of 1 s, total)",
                  ms(steps["catch_up"]), "", "")
    table.add_row(f"worst single step (median of {args.runs} cycles)", ms(worst), ms(WORST_STEP_TARGET_S),
                  f"{worst / WORST_STEP_TARGET_S:.2f}")
    console.print(table)
    met = (metadata_raw < METADATA_TARGET_S and cpu_share < CPU_TARGET and steps["steady"] < STEADY_STEP_TARGET_S
           and worst < WORST_STEP_TARGET_S)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
