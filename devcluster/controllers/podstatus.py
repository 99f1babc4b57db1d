"""Pod status as kubelet's ``generateAPIPodStatus`` computes it, from the simulated runtime's state.

Pure functions: ``ContainerRun`` is what the runtime knows about one container; ``build_status`` turns the
pod's containers, sandbox and addresses into ``status`` with

- ``phase`` by kubelet's ``getPhase`` (waiting -> Pending; running -> Running; all stopped -> Running under
  ``restartPolicy: Always`` unless the pod is terminal, else Succeeded/Failed by exit codes);
- conditions in kubelet's order (PodReadyToStartContainers, Initialized, Ready, ContainersReady,
  PodScheduled), each ``lastTransitionTime`` kept from the previous status while its status is unchanged,
  ``observedGeneration`` = the pod's generation; Ready honours ``readinessGates``;
- ``containerStatuses``/``initContainerStatuses`` with image, imageID, containerID, state, lastState,
  ready, started, restartCount, volumeMounts; ``hostIP(s)``, ``podIP(s)``, ``startTime``, ``qosClass``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devcluster import clock
from devcluster.controllers.runtime import image_id, normalized_image

Obj = dict[str, Any]


@dataclass
class ContainerRun:
    spec: Obj
    init: bool = False
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str | None = None
    ran: bool = False  # has any instance been created (image/imageID become the runtime's)

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    def running(self) -> bool:
        return "running" in self.state

    def exit_code(self) -> int | None:
        term = self.state.get("terminated") or (self.last_state.get("terminated") if "waiting" in self.state else None)
        return None if term is None else int(term.get("exitCode", 0))

    def to_api(self) -> Obj:
        image = str(self.spec.get("image", ""))
        out: Obj = {"image": normalized_image(image) if self.ran else image,
                    "imageID": image_id(image) if self.ran else "",
                    "lastState": self.last_state, "name": self.name, "ready": self.ready,
                    "restartCount": self.restart_count, "started": self.started, "state": self.state}
        if self.container_id:
            out["containerID"] = self.container_id
        resources = self.spec.get("resources") or {}
        if resources.get("requests"):
            out["allocatedResources"] = dict(resources["requests"])
        if resources.get("requests") or resources.get("limits"):
            out["resources"] = {k: dict(v) for k, v in resources.items() if k in ("requests", "limits") and v}
        mounts = []
        for m in self.spec.get("volumeMounts") or []:
            entry = {"name": m.get("name"), "mountPath": m.get("mountPath")}
            if m.get("readOnly"):
                entry.update({"readOnly": True, "recursiveReadOnly": "Disabled"})
            mounts.append(entry)
        if mounts:
            out["volumeMounts"] = mounts
        return out


def phase(restart_policy: str, inits: list[ContainerRun], containers: list[ContainerRun], terminal: bool) -> str:
    """kubelet's getPhase for regular init containers and containers."""
    pending = failed = 0
    for c in inits:
        term, last = c.state.get("terminated"), c.last_state.get("terminated")
        if c.running():
            pending += 1
        elif term is not None:
            failed += int(term.get("exitCode", 0)) != 0
        elif last is not None:
            failed += int(last.get("exitCode", 0)) != 0
        else:
            pending += 1
    if failed and restart_policy == "Never":
        return "Failed"
    if pending:
        return "Pending"
    running = stopped = succeeded = waiting = 0
    for c in containers:
        if c.running():
            running += 1
        elif "terminated" in c.state or c.last_state.get("terminated"):
            stopped += 1
            if c.exit_code() == 0:
                succeeded += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if terminal:
        return "Succeeded" if stopped == succeeded else "Failed"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if restart_policy == "Never" else "Running"


def _condition(old: dict[str, Obj], type_: str, ok: bool, generation: int, reason: str | None = None,
               message: str | None = None) -> Obj:
    status = "True" if ok else "False"
    previous = old.get(type_)
    cond: Obj = {"lastProbeTime": None,
                 "lastTransitionTime": previous.get("lastTransitionTime") if previous and previous.get(
                     "status") == status else clock.rfc3339(),
                 "observedGeneration": generation, "status": status, "type": type_}
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def _gate_problem(pod: Obj, conditions: list[Obj]) -> str | None:
    by_type = {c.get("type"): c for c in conditions}
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        t = gate.get("conditionType", "")
        cond = by_type.get(t)
        if cond is None:
            return f'corresponding condition of pod readiness gate "{t}" does not exist.'
        if cond.get("status") != "True":
            return f'the status of pod readiness gate "{t}" is not "True", but {cond.get("status")}'
    return None


def build_status(pod: Obj, *, inits: list[ContainerRun], containers: list[ContainerRun], sandbox_ready: bool,
                 host_ip: str, pod_ip: str | None, start_time: str, terminal: bool) -> Obj:
    old = pod.get("status") or {}
    spec = pod.get("spec") or {}
    generation = int(pod["metadata"].get("generation", 1))
    old_phase = old.get("phase")
    new_phase = phase(spec.get("restartPolicy", "Always"), inits, containers, terminal)
    if old_phase in ("Succeeded", "Failed"):
        new_phase = old_phase  # terminal phases never change
    completed = new_phase in ("Succeeded", "Failed")
    old_conds = {c.get("type"): c for c in old.get("conditions") or []}
    foreign = [c for c in old.get("conditions") or [] if c.get("type") not in
               ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")]
    pending_init = [c.name for c in inits if (c.state.get("terminated") or {}).get("exitCode", 1) != 0
                    or "terminated" not in c.state]
    unready = [c.name for c in containers if not c.ready]
    conditions = list(foreign)
    conditions.append(_condition(old_conds, "PodReadyToStartContainers", sandbox_ready and not completed, generation))
    conditions.append(_condition(old_conds, "Initialized", not pending_init, generation, "ContainersNotInitialized",
                                 f"containers with incomplete status: [{' '.join(pending_init)}]"))
    if completed:
        ready_reason, ready_msg = "PodCompleted", None
    else:
        ready_reason, ready_msg = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    containers_ready = not unready and not completed
    gate = _gate_problem(pod, foreign) if containers_ready else None
    conditions.append(_condition(old_conds, "Ready", containers_ready and gate is None, generation,
                                 "ReadinessGatesNotReady" if gate else ready_reason, gate or ready_msg))
    conditions.append(_condition(old_conds, "ContainersReady", containers_ready, generation, ready_reason,
                                 ready_msg))
    conditions.append(_condition(old_conds, "PodScheduled", True, generation))
    status: Obj = {"conditions": conditions, "containerStatuses": [c.to_api() for c in containers],
                   "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "observedGeneration": generation,
                   "phase": new_phase, "qosClass": old.get("qosClass", "BestEffort"), "startTime": start_time}
    if inits:
        status["initContainerStatuses"] = [c.to_api() for c in inits]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    for key in ("reason", "message", "nominatedNodeName"):
        if key in old:
            status[key] = old[key]
    return status
