"""Helpers shared by the simulated-Kafka tests."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


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
