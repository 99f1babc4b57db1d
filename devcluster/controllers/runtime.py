"""The simulated container runtime's vocabulary: behaviours, simulated processes and their launch context.

A container is simulated by the kubelet; what it *does* is decided by

- a ``Behavior`` (test hook ``Kubelet.set_behavior``): how long it takes to start and to become ready,
  whether its process exits (and with which code), whether it ever passes readiness;
- optionally a ``SimProcess`` produced by one of ``Kubelet.process_factories`` from a ``PodContext``
  (the pod, the container spec, its resolved environment, command, args and mounted files, the host
  directories behind its persistent volumes, and a loopback port allocator). A process that defines
  ``ready()`` gates the container's readiness; its ``ports()`` (container port -> 127.0.0.1 port) are
  published in the pod annotation ``devcluster.ballast.dev/loopback``; an optional ``wait()`` coroutine
  returning an exit code lets the process die on its own (the kubelet restarts it per restartPolicy).

Containers without a process listen on nothing: no loopback port is allocated, so connections to their
declared ports are refused, as with a container whose program does not listen.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

Obj = dict[str, Any]

LOOPBACK_ANNOTATION = "devcluster.ballast.dev/loopback"


@runtime_checkable
class SimProcess(Protocol):
    """A simulated container process. ``ready()``, ``ports()`` and ``wait()`` are optional."""

    async def start(self) -> None: ...

    async def stop(self, graceful: bool) -> int | None:
        """Stop the process; return its exit code (``None`` means 0 after a graceful stop)."""


def allocate_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks; the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PodContext:
    pod: Obj
    container: Obj
    env: dict[str, str]
    command: list[str]
    args: list[str]
    files: dict[str, bytes]
    hostname: str
    node_name: str
    pod_ip: str
    volume_paths: dict[str, Path] = field(default_factory=dict)  # mountPath -> host dir (PVCs, emptyDirs)
    allocate_port: Callable[[], int] = allocate_port


ProcessFactory = Callable[[PodContext], "SimProcess | None"]


@dataclass(frozen=True)
class Behavior:
    """What matching containers do. ``None`` delays mean the cluster/image defaults.

    kind: ``normal``; ``fail`` (the process exits with ``exit_code`` right after starting);
    ``crashloop`` (it runs ``run_for`` seconds, then exits with ``exit_code``); ``never_ready`` (runs but
    never passes readiness). ``times`` limits how many starts fail (``None``: every start).
    ``stop_delay`` is how long the process takes to exit on SIGTERM (beyond the grace period it is killed).
    """

    kind: str = "normal"
    start_delay: float | None = None
    ready_delay: float | None = None
    exit_code: int = 1
    run_for: float = 0.2
    times: int | None = None
    stop_delay: float = 0.05

    KINDS = ("normal", "fail", "crashloop", "never_ready")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown behavior {self.kind!r}; choose one of {self.KINDS}")

    @classmethod
    def parse(cls, value: Behavior | str) -> Behavior:
        return value if isinstance(value, Behavior) else cls(kind=value)

    @classmethod
    def normal(cls) -> Behavior:
        return cls()

    @classmethod
    def slow(cls, start_delay: float, ready_delay: float) -> Behavior:
        return cls(start_delay=start_delay, ready_delay=ready_delay)

    @classmethod
    def fail(cls, exit_code: int = 1, times: int | None = None) -> Behavior:
        return cls(kind="fail", exit_code=exit_code, times=times)

    @classmethod
    def crashloop(cls, run_for: float = 0.2, exit_code: int = 1) -> Behavior:
        return cls(kind="crashloop", run_for=run_for, exit_code=exit_code)

    @classmethod
    def never_ready(cls) -> Behavior:
        return cls(kind="never_ready")

    def with_delays(self, start: float | None, ready: float | None) -> Behavior:
        return replace(self, start_delay=start if self.start_delay is None else self.start_delay,
                       ready_delay=ready if self.ready_delay is None else self.ready_delay)


# -- names the runtime reports ------------------------------------------------------------------------
def normalized_image(image: str) -> str:
    """containerd's fully qualified reference: ``nginx`` -> ``docker.io/library/nginx:latest``."""
    name, _, digest = image.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    if digest:
        return f"{name}@{digest}"
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def image_id(image: str) -> str:
    """``<repository>@sha256:<digest>``; the digest is derived from the reference, stable per image."""
    ref = normalized_image(image)
    if "@" in ref:
        return ref
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def container_id(seed: str) -> str:
    return "containerd://" + hashlib.sha256(seed.encode()).hexdigest()
