"""The environment of the roll benchmarks (``roll_bench.py``, ``roll_chaos.py``): a Temporal dev server (its own
process), devcluster with simulated KRaft pods (a thread of this process) and ``ballast operator`` as its own
process, which a benchmark may SIGKILL and restart. What the roll did is recorded by
:class:`tests.e2e.rolls.PodTimeline` (devcluster's store) and the Kafka model's history, as in the e2e tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka.admin import NewTopic
from kubernetes import client as k8s
from kubernetes import config as kube_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ballast.config import OperatorSettings  # noqa: E402
from ballast.demo import install_crd  # noqa: E402
from ballast.devserver import DevServer, start_dev_server  # noqa: E402
from ballast.messages import RollRequest, RollRequestAccepted  # noqa: E402
from ballast.roll_cli import request_roll  # noqa: E402
from ballast.spec import GROUP, PLURAL, VERSION  # noqa: E402
from devcluster.cluster import DevClusterConfig, DevClusterThread  # noqa: E402
from tests.e2e.rolls import (  # noqa: E402
    PodTimeline,
    kafka_admin_of,
    kafka_cluster,
    kafka_control,
    pod_uids,
    pods_rolled,
    under_replicated,
)

NS = "default"
TASK_QUEUE = "ballast-bench"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy (the conditions are in other processes/threads; no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class RollEnv:
    workdir: Path
    temporal: DevServer
    dc: DevClusterThread
    api: k8s.ApiClient
    operator: subprocess.Popen[bytes] | None = None
    starts: int = 0
    timelines: dict[str, PodTimeline] = field(default_factory=dict)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api)

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.workdir / "kubeconfig"),
                "TEMPORAL_ADDRESS": self.temporal.address, "BALLAST_TASK_QUEUE": TASK_QUEUE,
                "BALLAST_KAFKA_ADDRESSING": "devcluster", "BALLAST_LEADER_ELECTION": "false"}

    # -- the operator process ----------------------------------------------------------------------------

    def start_operator(self) -> None:
        self.starts += 1
        log = (self.workdir / f"operator-{self.starts}.log").open("wb")
        self.operator = subprocess.Popen([str(Path(sys.executable).parent / "ballast"), "operator"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)

    def kill_operator(self) -> None:
        assert self.operator is not None
        self.operator.send_signal(signal.SIGKILL)
        self.operator.wait(10)

    def stop_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.terminate()
            try:
                self.operator.wait(10)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait(5)

    def operator_logs(self, tail: int = 6000) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("operator-*.log")))[-tail:]

    # -- the Kafka cluster ---------------------------------------------------------------------------------

    def create_cluster(self, name: str, spec: dict[str, Any], timeout: float = 180) -> str:
        """Create the KafkaCluster (its pods recorded from the start), wait until Ready; returns its cluster id."""
        timeline = self.timelines[name] = PodTimeline(name).install(self.dc)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": name}, "spec": spec}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

        def ready() -> bool:
            status = kafka_cluster(self.custom, name).get("status") or {}
            return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])

        wait_until(ready, timeout, f"KafkaCluster {name} Ready", interval=0.2)
        cluster_id: str = kafka_cluster(self.custom, name)["status"]["clusterId"]
        timeline.cluster_id = cluster_id
        return cluster_id

    def topic_with_ingest(self, name: str, cluster_id: str, topic: str, partitions: int, rate: str) -> None:
        with kafka_admin_of(self.core, name) as admin:
            admin.create_topics([NewTopic(topic, partitions, 3)])
        kafka_control(self.dc, cluster_id, "load", topic=topic, bytes_per_sec=rate)
        wait_until(lambda: not under_replicated(self.core, name), 60, f"{topic} fully replicated")

    def request_roll(self, name: str, brokers: list[int] | None, reason: str) -> RollRequestAccepted:
        settings = OperatorSettings.from_env(self.env)
        return asyncio.run(request_roll(settings, NS, name, RollRequest(reason=reason, brokers=brokers)))

    def wait_rolled(self, name: str, old: dict[str, str], timeout: float) -> float:
        """Until every pod of ``old`` is replaced, Ready and on its update revision, and the roll is reported
        done (no ``currentOperation``); returns the time.time() it was seen done."""
        wait_until(pods_rolled(self.core, self.apps, name, old), timeout, f"{sorted(old)} rolled", interval=0.05)
        wait_until(lambda: not (kafka_cluster(self.custom, name).get("status") or {}).get("currentOperation"),
                   60, "the roll reported done", interval=0.05)
        return time.time()

    def uids(self, name: str) -> dict[str, str]:
        return pod_uids(self.core, name)


@contextlib.contextmanager
def roll_env(config: DevClusterConfig | None = None, prefix: str = "roll-bench-") -> Iterator[RollEnv]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        temporal = start_dev_server(workdir / "temporal", ui=False)
        dc: DevClusterThread | None = None
        env: RollEnv | None = None
        try:
            cfg = config or DevClusterConfig()
            cfg.kubeconfig = workdir / "kubeconfig"
            dc = DevClusterThread(cfg).start()
            api = kube_config.new_client_from_config(str(workdir / "kubeconfig"))  # type: ignore[no-untyped-call]
            install_crd(api)
            env = RollEnv(workdir, temporal, dc, api)
            env.start_operator()
            yield env
        finally:
            if env is not None:
                env.stop_operator()
            if dc is not None:
                dc.stop()
            temporal.stop()
