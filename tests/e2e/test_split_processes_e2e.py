"""The operator split in two: ``ballast worker`` and ``ballast watch`` as separate processes, one configured by
flags and the other by the environment, still bring a cluster to Ready; and the worker's start-up step that
registers the search attributes on a fresh Temporal server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from kubernetes import client
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from ballast.devserver import DevServer, start_dev_server
from ballast.operator import SEARCH_ATTRIBUTES, ensure_search_attributes
from ballast.spec import GROUP, PLURAL, VERSION
from tests.conftest import Kubectl
from tests.e2e.conftest import OperatorProcess

# Variables the processes would otherwise inherit from whoever runs the tests.
_OURS = ("TEMPORAL_", "BALLAST_", "KUBECONFIG")


class Part(OperatorProcess):
    """One part of the operator (``ballast worker`` / ``ballast watch``) with its own arguments."""

    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        super().__init__(env, log_dir)
        self.argv = argv

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"operator-{self.argv[0]}-{self.starts}.log").open("wb")
        ballast = Path(sys.executable).parent / "ballast"
        self.proc = subprocess.Popen([str(ballast), *self.argv], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)


def test_worker_and_watch_as_two_processes_reach_ready(
        kubeconfig: Path, temporal_server: DevServer, task_queue: str, kafka_crd: None, kubectl: Kubectl,
        custom: client.CustomObjectsApi, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    clean |= {"BALLAST_LOG_FORMAT": "text", "BALLAST_LOG_LEVEL": "INFO"}
    logs = tmp_path / "logs"
    logs.mkdir()
    # The worker from flags only, the watchers (with leader election, as deployed) from the environment only.
    worker = Part(["worker", "--temporal-address", temporal_server.address, "--task-queue", task_queue,
                   "--kubeconfig", str(kubeconfig), "--kafka-addressing", "devcluster"], clean, logs)
    watch = Part(["watch"], {**clean, "TEMPORAL_ADDRESS": temporal_server.address,
                             "BALLAST_TASK_QUEUE": task_queue, "KUBECONFIG": str(kubeconfig)}, logs)
    worker.start()
    watch.start()
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": "split"},
            "spec": {"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}})
        proc = kubectl.run("wait", "--for=condition=Ready", "kc/split", "--timeout=90s", check=False, timeout=120)
        assert proc.returncode == 0, f"{proc.stderr}\n--- logs ---\n{worker.logs()[-6000:]}"
        assert worker.proc is not None and worker.proc.poll() is None
        assert watch.proc is not None and watch.proc.poll() is None
    finally:
        watch.stop()
        worker.stop()
    worker_log = (logs / "operator-worker-1.log").read_text()
    watch_log = (logs / "operator-watch-1.log").read_text()
    assert f"operator running (worker=True, watchers=False, task queue {task_queue}" in worker_log
    assert f"operator running (worker=False, watchers=True, task queue {task_queue}" in watch_log
    lease = client.CoordinationV1Api(custom.api_client).read_namespaced_lease("ballast-watchers", "default")
    assert lease.spec.holder_identity  # the watch process led through the Lease


async def test_ensure_search_attributes_registers_only_what_is_missing(tmp_path: Path) -> None:
    server = start_dev_server(tmp_path, ui=False)  # fresh: no custom search attribute yet
    try:
        temporal = await Client.connect(server.address)
        assert await ensure_search_attributes(temporal, "default") == sorted(SEARCH_ATTRIBUTES)
        assert await ensure_search_attributes(temporal, "default") == []
        listed = await temporal.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default"))
        assert {name: listed.custom_attributes[name] for name in SEARCH_ATTRIBUTES} == {
            name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTES}
    finally:
        await asyncio.to_thread(server.stop)
