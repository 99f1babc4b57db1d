"""End-to-end fixtures: a real Temporal dev server, devcluster, and the operator as its own process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ballast.devserver import DevServer, start_dev_server
from devcluster.cluster import DevClusterThread

CRD_FILE = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "kafkaclusters.kafka.ballast.dev.yaml"


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_dev_server(tmp_path_factory.mktemp("temporal"), ui=False)
    yield server
    server.stop()


@pytest.fixture
def kafka_crd(kafkaclusters: client.CustomObjectsApi) -> None:
    """The KafkaCluster CRD is installed (the shared ``kafkaclusters`` fixture)."""


class OperatorProcess:
    """``ballast operator`` in a subprocess, so a test can SIGKILL it like a crashed pod."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        ballast = Path(sys.executable).parent / "ballast"
        self.proc = subprocess.Popen([str(ballast), "operator"], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


@pytest.fixture
def task_queue() -> str:
    return f"ballast-e2e-{uuid.uuid4().hex[:8]}"


def free_loopback_addresses(count: int) -> list[str]:
    """``count`` distinct ``127.0.0.1:<port>`` addresses the OS reported free a moment ago (all sockets are
    held open until every port is picked, so the OS cannot hand out one port twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in socks]


@pytest.fixture
def operator(dc: DevClusterThread, kubeconfig: Path, temporal_server: DevServer, task_queue: str,
             kafka_crd: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator process; it serves its own metrics and the Temporal SDK's on free loopback ports
    (``env["BALLAST_METRICS_ADDRESS"]`` / ``env["BALLAST_TEMPORAL_METRICS_ADDRESS"]``)."""
    metrics, temporal_metrics = free_loopback_addresses(2)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TEMPORAL_ADDRESS": temporal_server.address,
           "BALLAST_TASK_QUEUE": task_queue, "BALLAST_KAFKA_ADDRESSING": "devcluster",
           "BALLAST_LEADER_ELECTION": "false", "BALLAST_LOG_FORMAT": "text", "BALLAST_LOG_LEVEL": "INFO",
           "BALLAST_METRICS_ADDRESS": metrics, "BALLAST_TEMPORAL_METRICS_ADDRESS": temporal_metrics}
    logs = tmp_path / "operator-logs"
    logs.mkdir()
    proc = OperatorProcess(env, logs)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def record_writes(dc: DevClusterThread) -> Callable[[], list[tuple[str, str, str]]]:
    """Every committed write as (event type, resource key, namespace/name), from devcluster's own store."""
    seen: list[tuple[str, str, str]] = []

    def install(cluster: object) -> None:
        def listener(event: object) -> None:
            meta = event.obj["metadata"]  # type: ignore[attr-defined]
            seen.append((event.type, event.key, f"{meta.get('namespace', '')}/{meta['name']}"))  # type: ignore[attr-defined]

        cluster.api.store.listeners.append(listener)  # type: ignore[attr-defined]

    dc.call(install)
    return lambda: list(seen)
