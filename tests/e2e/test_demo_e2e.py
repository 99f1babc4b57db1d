"""``ballast demo --exit`` as a script runs it: its own Temporal dev server (with the UI), devcluster and the
operator; exit 0 once the example cluster is Ready with the kubeconfig path and the UI URL printed, and a
non-zero exit soon after an invalid manifest is reported (not after the timeout)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120  # the demo's own --timeout; a failure must come long before it


def run_demo(workdir: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    ballast = Path(sys.executable).parent / "ballast"
    started = time.monotonic()
    proc = subprocess.run([str(ballast), "demo", "--exit", "--workdir", str(workdir), "--timeout", str(TIMEOUT),
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT + 60)
    return proc, time.monotonic() - started


def test_demo_exit_reaches_ready_and_prints_where_to_look(tmp_path: Path) -> None:
    # A deep work directory: the printed path must survive the 80 columns of a non-terminal output.
    workdir = tmp_path / "a-work-directory-with-a-long-name" / "for-the-demo"
    proc, _ = run_demo(workdir)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "KafkaCluster default/demo is Ready." in proc.stdout
    assert f"export KUBECONFIG={workdir / 'kubeconfig'}\n" in proc.stdout
    kubeconfig = yaml.safe_load((workdir / "kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("http://127.0.0.1:")
    ui = re.search(r"Temporal UI: +(http://127\.0\.0\.1:\d+)/namespaces/default/workflows\n", proc.stdout)
    assert ui is not None, proc.stdout[-2000:]
    assert "--workflow-id kafkacluster/default/demo" in proc.stdout


def test_demo_exit_fails_fast_on_an_invalid_manifest(tmp_path: Path) -> None:
    manifest = yaml.safe_load((REPO / "examples" / "kafkacluster.yaml").read_text())
    manifest["spec"]["brokers"]["config"]["node.id"] = "7"  # passes the schema; the operator owns node.id
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(manifest))
    proc, elapsed = run_demo(tmp_path / "work", "--manifest", str(bad))
    assert proc.returncode == 1, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert elapsed < TIMEOUT / 4, f"took {elapsed:.0f}s: waited for the timeout instead of the Invalid condition"
    assert "demo failed: the KafkaCluster is invalid: spec.brokers.config[node.id]" in proc.stdout
    assert "is Ready" not in proc.stdout
