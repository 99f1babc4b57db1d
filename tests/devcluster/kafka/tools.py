"""Helpers shared by the simulated-Kafka tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
from kubernetes import client


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
