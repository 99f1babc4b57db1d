"""Helpers shared by the simulated-Kafka tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from devcluster.cluster import DevClusterConfig, DevClusterThread


def kcat_binary() -> str:
    """kcat, installed with apt when missing and this session may (root, apt-get present); else a skip
    naming the reason (the issue allows a skip only when apt is unavailable)."""
    found = shutil.which("kcat")
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("kcat is missing and cannot be installed here (needs root and apt-get: apt-get install -y kcat)")
    done = subprocess.run([apt, "install", "-y", "-q", "kcat"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("kcat")
    if found is None:
        pytest.skip(f"kcat is missing and apt-get could not install it: {done.stderr.strip()[-300:]}")
    return found


LOOPBACK = "devcluster.ballast.dev/loopback"
"""The annotation where devcluster publishes a pod's (or Service's) loopback address per port."""


def headless(name: str, port: int) -> dict[str, Any]:
    """A headless Service named ``name`` for the pods labelled ``app=name`` (their DNS names resolve before
    they are Ready: Kafka nodes must find each other while they start)."""
    return {"metadata": {"name": name}, "spec": {
        "clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app": name},
        "ports": [{"name": "kafka", "port": port}]}}


def pod_ready(core: client.CoreV1Api, name: str, namespace: str = "kafka") -> bool:
    """Whether pod ``name`` exists and its Ready condition is True."""
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


@contextmanager
def kafka_devcluster(kubeconfig: Path) -> Iterator[tuple[DevClusterThread, client.CoreV1Api, client.AppsV1Api]]:
    """A devcluster of its own (fast pods, short bookmarks) for a module of Kafka pod tests, with clients on its
    kubeconfig; stopped when the block ends."""
    dc = DevClusterThread(DevClusterConfig(kubeconfig=kubeconfig, pod_start_delay=0.02, pod_ready_delay=0.02,
                                           bookmark_interval=0.5)).start()
    try:
        cfg = client.Configuration()
        kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        api = client.ApiClient(cfg)
        yield dc, client.CoreV1Api(api), client.AppsV1Api(api)
    finally:
        dc.stop()


def bootstrap_address(core: client.CoreV1Api, namespace: str, service: str = "kafka-bootstrap",
                      port: int = 9092) -> str | None:
    """The loopback address devcluster publishes for a Service port (None until it is published)."""
    svc = core.read_namespaced_service(service, namespace)
    mapping: dict[str, str] = json.loads((svc.metadata.annotations or {}).get(LOOPBACK, "{}"))
    return mapping.get(str(port))
