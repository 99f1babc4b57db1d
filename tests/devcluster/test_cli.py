"""``ballast devcluster`` as a developer runs it: a foreground process, found through its kubeconfig by
the pinned kubectl, stopped by SIGTERM with exit status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Kubectl, _kubectl_binary, wait_for


def _ballast() -> list[str]:
    script = Path(sys.executable).parent / "ballast"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ballast.cli"]


def test_devcluster_command_serves_kubectl_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc" / "config"  # the directory does not exist yet: the command creates it
    out, err = (tmp_path / "stdout").open("w+"), (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen([*_ballast(), "devcluster", "--port", "0", "--kubeconfig", str(kubeconfig)],
                            stdout=out, stderr=err, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: kubeconfig.exists() or proc.poll() is not None, timeout=60, message="the kubeconfig")
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        home = tmp_path / "kubectl-home"
        home.mkdir()
        kubectl = Kubectl(_kubectl_binary(), kubeconfig, home)
        assert kubectl.run("config", "current-context").stdout.strip() == "ballast-dev"
        # The server the kubeconfig names is on the port the OS picked, and kubectl lists the nodes there.
        server = kubectl.run("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        assert server.startswith("http://127.0.0.1:") and not server.endswith(":0")
        nodes = wait_for(lambda: kubectl.run("get", "nodes", "-o", "name").stdout.split(), message="nodes")
        assert nodes == [f"node/devcluster-worker-{i}" for i in (1, 2, 3)]
        assert f"serving the Kubernetes API on {server}" in (tmp_path / "stdout").read_text()

        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, (tmp_path / "stderr").read_text()
        assert time.monotonic() - stopping < 5, "SIGTERM should stop devcluster promptly"
        # Stopped means stopped: the port no longer answers.
        refused = kubectl.run("get", "nodes", "--request-timeout=3s", check=False)
        assert refused.returncode != 0
        assert f"The connection to the server {server.removeprefix('http://')} was refused" in refused.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
