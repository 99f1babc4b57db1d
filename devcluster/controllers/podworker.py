"""One pod's life on a simulated node: kubelet's pod worker.

Stages, each visible in the pod's status as on a real node:

1. accepted: status Pending, containers ``waiting: ContainerCreating`` (``PodInitializing`` behind init
   containers), PodScheduled/Initialized conditions, hostIP, startTime;
2. volumes: waits for the claims to be Bound; ConfigMap/Secret/projected/downwardAPI volumes must resolve
   (else a ``FailedMount`` event, retried); a pending filesystem expansion of a claim completes here;
3. sandbox (after the start delay): podIP, PodReadyToStartContainers=True;
4. init containers one by one, then all containers: env/command/files resolved (a missing ConfigMap/Secret
   or key leaves the container ``waiting: CreateContainerConfigError``), events Pulled/Created/Started, the
   simulated process (if a factory makes one) started, ``running`` state; Ready after the ready delay or
   when the process says so;
5. exits (behaviour or process): ``terminated`` with exit code; restart per ``restartPolicy`` with kubelet's
   crash-loop back-off (10 s doubling to 5 min, compressed by ``Kubelet.backoff_scale``; the first restart is
   immediate), ``waiting: CrashLoopBackOff`` meanwhile;
6. deletion (``deletionTimestamp``): ``Killing`` events, processes stopped gracefully within the grace
   period (killed with 137 beyond it), containers terminated, terminal phase written, then the pod is deleted
   with ``gracePeriodSeconds=0`` (kubelet's final delete).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from devcluster import clock, podenv
from devcluster.api import DeleteOptions
from devcluster.controllers import volumes
from devcluster.controllers.podstatus import ContainerRun, build_status
from devcluster.controllers.runtime import LOOPBACK_ANNOTATION, PodContext, SimProcess, container_id
from devcluster.errors import ApiError
from devcluster.store import Obj

if TYPE_CHECKING:
    from devcluster.controllers.kubelet import Kubelet
    from devcluster.controllers.nodes import NodeInfo

log = logging.getLogger("devcluster.kubelet")

BACKOFF_INITIAL, BACKOFF_MAX = 10.0, 300.0
RETRY_SECONDS = 0.5
INIT_RUN_SECONDS = 0.05


class _Terminate(Exception):
    """The pod is being deleted: leave the current stage."""


class ApiLookup:
    def __init__(self, kubelet: Kubelet, namespace: str) -> None:
        self.k, self.namespace = kubelet, namespace

    def configmap(self, name: str) -> Obj | None:
        return self.k.api.try_get(self.k.rt_configmaps, self.namespace, name)

    def secret(self, name: str) -> Obj | None:
        return self.k.api.try_get(self.k.rt_secrets, self.namespace, name)


def _go_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: Obj, node: NodeInfo) -> None:
        self.k, self.api, self.node = kubelet, kubelet.api, node
        meta = pod["metadata"]
        self.pod, self.uid, self.namespace, self.name = pod, meta["uid"], meta["namespace"], meta["name"]
        self.events = kubelet.recorder(node.name)
        spec = pod.get("spec") or {}
        self.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers") or []]
        reason = "PodInitializing" if self.inits else "ContainerCreating"
        self.containers = [ContainerRun(c, state={"waiting": {"reason": reason}}) for c in spec.get("containers") or []]
        self.processes: dict[str, SimProcess] = {}
        self.contexts: dict[str, PodContext] = {}
        self.sandbox_ready = False
        self.pod_ip: str | None = None
        self.start_time = clock.rfc3339()
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.terminal = False
        self._failures: dict[str, int] = {}
        self._backoff: dict[str, float | None] = {}
        self._mount_files: dict[str, dict[str, bytes]] = {}
        self._respec: set[str] = set()
        self._event = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.task: asyncio.Task[None] | None = None

    # -- plumbing -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._main(), name=f"pod {self.namespace}/{self.name}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.terminating:
            self.terminating = True
        self.poke()

    def poke(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def _wait(self, timeout: float) -> None:
        if self.terminating:
            raise _Terminate
        event = self._event
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation racing the event.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                await event.wait()
        if self.terminating:
            raise _Terminate

    async def _sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            await self._wait(left)
        if self.terminating:
            raise _Terminate

    def publish(self) -> None:
        """Write the status kubelet would report now (nothing if it is unchanged)."""
        current = self.api.try_get(self.k.rt_pods, self.namespace, self.name)
        if current is None or current["metadata"].get("uid") != self.uid:
            return
        status = build_status(current, inits=self.inits, containers=self.containers,
                              sandbox_ready=self.sandbox_ready, host_ip=self.node.internal_ip, pod_ip=self.pod_ip,
                              start_time=self.start_time, terminal=self.terminal)
        if status == current.get("status"):
            return
        new = copy.deepcopy(current)
        new["status"] = status
        try:
            self.pod = self.api.update(self.k.rt_pods, self.namespace, self.name, new, subresource="status")
        except ApiError as err:  # injected fault or race: the status manager retries
            log.debug("status update of %s failed: %s", self.name, err)
            asyncio.get_running_loop().call_later(0.2, self.publish)

    def _spec_of(self, c: ContainerRun) -> Obj | None:
        key = "initContainers" if c.init else "containers"
        return next((x for x in (self.pod.get("spec") or {}).get(key) or [] if x.get("name") == c.name), None)

    def _event_for(self, c: ContainerRun, type_: str, reason: str, message: str) -> None:
        kind = "initContainers" if c.init else "containers"
        self.events.event(self.pod, type_, reason, message, field_path=f"spec.{kind}{{{c.name}}}")

    # -- lifecycle ----------------------------------------------------------------------------------
    async def _main(self) -> None:
        try:
            with contextlib.suppress(_Terminate):
                if not self.terminating:
                    await self._lifecycle()
                while True:
                    await self._wait(3600)
            await self._terminate()
        except asyncio.CancelledError:
            await self._cleanup()
            raise
        finally:
            self.k.worker_done(self)

    async def _lifecycle(self) -> None:
        self.publish()
        await self._mount()
        await self._sleep(self.k.start_delay(self.pod))
        self.pod_ip = self.k.allocate_ip(self.node, self.uid)
        self.sandbox_ready = True
        self.publish()
        for c in self.inits:
            self._tasks = [asyncio.get_running_loop().create_task(self._run_container(c))]
            if not await self._tasks[0]:
                self.publish()
                return  # a failed init container under restartPolicy Never: the pod failed
        for c in self.containers:
            c.state = {"waiting": {"reason": "ContainerCreating"}}
        self._tasks = [asyncio.get_running_loop().create_task(self._run_container(c)) for c in self.containers]
        await asyncio.gather(*self._tasks)
        self.publish()  # every container finished for good: a terminal phase

    async def _mount(self) -> None:
        lookup = ApiLookup(self.k, self.namespace)
        net = podenv.PodNetwork((), (self.node.internal_ip,), self.k.node_allocatable())
        while True:
            ready = True
            for claim in volumes.claim_names(self.pod):
                pvc = self.api.try_get(self.k.rt_pvcs, self.namespace, claim)
                ready = ready and pvc is not None and (pvc.get("status") or {}).get("phase") == "Bound"
            try:
                for c in [*self.inits, *self.containers]:
                    self._mount_files[c.name] = podenv.mounted_files(self.pod, c.spec, lookup, net)
            except podenv.VolumeMountError as err:
                ready = False
                self.events.event(self.pod, "Warning", "FailedMount",
                                  f'MountVolume.SetUp failed for volume "{err.volume}" : {err}')
            if ready:
                break
            await self._wait(RETRY_SECONDS)
        for claim in volumes.claim_names(self.pod):
            pvc = self.api.try_get(self.k.rt_pvcs, self.namespace, claim)
            if pvc is not None:
                volumes.node_expand(self.api, pvc, self.pod, self.events)

    def _prepare(self, c: ContainerRun) -> PodContext:
        lookup = ApiLookup(self.k, self.namespace)
        net = podenv.PodNetwork((self.pod_ip or "",), (self.node.internal_ip,), self.k.node_allocatable())
        env = podenv.resolve_env(self.pod, c.spec, lookup, net, self.api.store.list(self.k.rt_services.key))
        command, args = podenv.resolve_command(c.spec, env)
        try:
            files = podenv.mounted_files(self.pod, c.spec, lookup, net, env)
        except podenv.VolumeMountError:
            files = self._mount_files.get(c.name, {})  # already mounted: the source went away later
        spec = self.pod.get("spec") or {}
        hostname = (spec.get("hostname") or self.name)[:63].rstrip("-.")
        return PodContext(self.pod, c.spec, env, command, args, files, hostname, self.node.name, self.pod_ip or "",
                          self.k.volume_paths(self.pod, c.spec, env))

    async def _run_container(self, c: ContainerRun) -> bool:
        """Run (and restart) one container; True once it completed successfully for good."""
        loop = asyncio.get_running_loop()
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        while True:
            c.spec = self._spec_of(c) or c.spec  # a restart picks up an updated image
            try:
                ctx = self._prepare(c)
            except podenv.ContainerConfigError as err:
                if (c.state.get("waiting") or {}).get("message") != str(err):
                    c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
                    self.publish()
                self._event_for(c, "Warning", "Failed", f"Error: {err}")
                await self._wait(RETRY_SECONDS)
                continue
            self.contexts[c.name] = ctx
            self._pull_events(c)
            c.container_id, c.ran = container_id(f"{self.uid}/{c.name}/{c.restart_count}/{uuid.uuid4()}"), True
            self._event_for(c, "Normal", "Created", "Container created")
            started_at = clock.rfc3339()
            process = None
            try:
                process = self.k.make_process(ctx)
                if process is not None:
                    await process.start()
                    self.processes[c.name] = process
                code, reason = None, None
            except Exception as err:  # the runtime could not start it (StartError)
                log.warning("starting %s/%s failed: %s", self.name, c.name, err)
                self._event_for(c, "Warning", "Failed", f"Error: {err}")
                code, reason = 128, "StartError"
            if code is None:
                self._event_for(c, "Normal", "Started", "Container started")
                c.state, c.started = {"running": {"startedAt": started_at}}, True
                self.publish()
                self._sync_ports()
                code = await self._supervise(c, process, loop.time())
            c.ready = c.started = False
            self.processes.pop(c.name, None)
            self._sync_ports()
            term = {"containerID": c.container_id, "exitCode": code, "finishedAt": clock.rfc3339(),
                    "reason": reason or ("Completed" if code == 0 else "Error"), "startedAt": started_at}
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if c.init:
                restart = code != 0 and policy != "Never"
            respec = c.name in self._respec
            self._respec.discard(c.name)
            if not (restart or respec):
                c.state = {"terminated": term}
                self.publish()
                return code == 0
            c.last_state = {"terminated": term}
            delay = 0.0 if respec else self._next_backoff(c.name)
            if delay > 0:
                pod_ref = f"{self.name}_{self.namespace}({self.uid})"
                c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {_go_duration(delay)} "
                                       f"restarting failed container={c.name} pod={pod_ref}"}}
                self._event_for(c, "Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod {pod_ref}")
                self.publish()
                await self._sleep(delay * self.k.backoff_scale)
            c.restart_count += 1

    def _next_backoff(self, name: str) -> float:
        current = self._backoff.get(name)
        self._backoff[name] = BACKOFF_INITIAL if current is None else min(current * 2, BACKOFF_MAX)
        return 0.0 if current is None else current

    def _pull_events(self, c: ContainerRun) -> None:
        image = str(c.spec.get("image", ""))
        if c.spec.get("imagePullPolicy") == "Always" or not self.k.image_present(self.node.name, image):
            self._event_for(c, "Normal", "Pulling", f'Pulling image "{image}"')
            self._event_for(c, "Normal", "Pulled", f'Successfully pulled image "{image}" in 12ms (12ms including '
                            "waiting). Image size: 28127385 bytes.")
        else:
            self._event_for(c, "Normal", "Pulled",
                            f'Container image "{image}" already present on machine and can be accessed by the pod')

    async def _supervise(self, c: ContainerRun, process: SimProcess | None, start: float) -> int:
        """Watch a running container until it exits; returns its exit code."""
        loop = asyncio.get_running_loop()
        waiter = getattr(process, "wait", None)
        wait_task = loop.create_task(waiter()) if waiter is not None else None
        if wait_task is not None:
            wait_task.add_done_callback(lambda _t: self.poke())
        warned = False
        try:
            while True:
                wanted = self._spec_of(c)
                if wanted is not None and wanted.get("image") != c.spec.get("image"):
                    # kubelet restarts a container whose spec (image) changed, whatever the restart policy.
                    self._event_for(c, "Normal", "Killing", f"Container {c.name} definition changed, will be restarted")
                    grace = int((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                    code = await self._kill(c, process, grace)
                    c.spec = wanted
                    self._respec.add(c.name)
                    return code
                b = self.k.behavior_for(self.pod, c.spec)
                now = loop.time()
                failing = b.kind in ("fail", "crashloop") and (b.times is None or self._failures.get(c.name, 0) < b.times)
                if failing and (b.kind == "fail" or now - start >= b.run_for):
                    self._failures[c.name] = self._failures.get(c.name, 0) + 1
                    if process is not None:
                        with contextlib.suppress(Exception):
                            await process.stop(False)
                    return b.exit_code
                if wait_task is not None and wait_task.done():
                    try:
                        return int(wait_task.result() or 0)
                    except Exception:
                        return 1
                if c.init and wait_task is None:
                    # An init container without a program of its own does its job and exits.
                    if now - start >= INIT_RUN_SECONDS:
                        return 0
                    await self._wait(start + INIT_RUN_SECONDS - now)
                    continue
                probe = getattr(process, "ready", None)
                if b.kind == "never_ready":
                    ready = False
                elif probe is not None:
                    ready = bool(probe())
                else:
                    ready = now - start >= (b.ready_delay or 0.0)
                if ready != c.ready:
                    c.ready = ready
                    self.publish()
                if b.kind == "never_ready" and c.spec.get("readinessProbe") and not warned:
                    warned = True
                    self._event_for(c, "Warning", "Unhealthy", "Readiness probe failed: ")
                timeouts = [1.0]
                if not ready and probe is None and b.kind == "normal":
                    timeouts.append(start + (b.ready_delay or 0.0) - now)
                if probe is not None:
                    timeouts.append(0.05)
                if failing:
                    timeouts.append(start + b.run_for - now)
                await self._wait(max(0.001, min(timeouts)))
        finally:
            if wait_task is not None and not wait_task.done():
                wait_task.cancel()

    def _sync_ports(self) -> None:
        mapping: dict[str, str] = {}
        for proc in self.processes.values():
            ports = getattr(proc, "ports", None)
            for port, local in (ports() if ports is not None else {}).items():
                mapping[str(port)] = f"127.0.0.1:{local}"
        current = self.api.try_get(self.k.rt_pods, self.namespace, self.name)
        if current is None or current["metadata"].get("uid") != self.uid:
            return
        annotations = current["metadata"].get("annotations") or {}
        text = json.dumps(mapping, sort_keys=True) if mapping else None
        if annotations.get(LOOPBACK_ANNOTATION) == text:
            return
        new = copy.deepcopy(current)
        if text is None:
            new["metadata"]["annotations"].pop(LOOPBACK_ANNOTATION, None)
        else:
            new["metadata"].setdefault("annotations", {})[LOOPBACK_ANNOTATION] = text
        try:
            self.pod = self.api.update(self.k.rt_pods, self.namespace, self.name, new)
        except ApiError as err:
            log.debug("loopback annotation of %s failed: %s", self.name, err)
            asyncio.get_running_loop().call_later(0.2, self._sync_ports)

    # -- termination --------------------------------------------------------------------------------
    async def _terminate(self) -> None:
        await self._cancel_tasks()
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        grace = int(spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace)
        await asyncio.gather(*(self._stop_container(c, grace) for c in [*self.inits, *self.containers]))
        self.sandbox_ready, self.terminal = False, True
        self.publish()
        for _ in range(50):  # the status manager retries the final delete until the API server takes it
            try:
                self.api.delete(self.k.rt_pods, self.namespace, self.name,
                                DeleteOptions(grace_period_seconds=0, precondition_uid=self.uid))
                return
            except ApiError as err:
                if err.code in (404, 409):  # gone already, or a new pod of the same name
                    return
                await asyncio.sleep(0.2)

    async def _stop_container(self, c: ContainerRun, grace: int) -> None:
        if not c.running():
            return
        self._event_for(c, "Normal", "Killing", f"Stopping container {c.name}")
        process = self.processes.pop(c.name, None)
        code = await self._kill(c, process, grace)
        c.state = {"terminated": {"containerID": c.container_id, "exitCode": code, "finishedAt": clock.rfc3339(),
                                  "reason": "Completed" if code == 0 else "Error",
                                  "startedAt": c.state["running"]["startedAt"]}}
        c.ready = c.started = False

    async def _kill(self, c: ContainerRun, process: SimProcess | None, grace: int) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if process is None:
            delay = self.k.behavior_for(self.pod, c.spec).stop_delay
            await asyncio.sleep(min(delay, grace))
            return 0 if delay <= grace else 137
        try:
            async with asyncio.timeout(grace):
                return await process.stop(True) or 0
        except TimeoutError:
            with contextlib.suppress(Exception):
                await process.stop(False)
            return 137
        except Exception:
            return 137

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        # gather(return_exceptions=True) collects the children's endings but lets our own cancellation through.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _cleanup(self) -> None:
        """The pod vanished (force deletion) or the cluster stops: kill what still runs."""
        for task in self._tasks:
            task.cancel()
        for process in list(self.processes.values()):
            with contextlib.suppress(Exception):
                await process.stop(False)
        self.processes.clear()
