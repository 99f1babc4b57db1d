"""Nodes, scheduler and kubelet of devcluster, observed through the official kubernetes client."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from devcluster.cluster import DevClusterThread
from devcluster.controllers.kubelet import Behavior, Kubelet, PodContext
from tests.conftest import wait_for

NS = "default"


def pod_body(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "app", "image": "nginx:1.27"}])
    return {"metadata": {"name": name, "labels": labels or {"app": name}}, "spec": {"containers": containers, **spec}}


def conditions(pod: client.V1Pod) -> dict[str, client.V1PodCondition]:
    return {c.type: c for c in pod.status.conditions or []}


def is_ready(pod: client.V1Pod) -> bool:
    cond = conditions(pod).get("Ready")
    return cond is not None and cond.status == "True"


def get_pod(core: client.CoreV1Api, name: str) -> client.V1Pod | None:
    try:
        return core.read_namespaced_pod(name, NS)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def watch_pod(core: client.CoreV1Api, name: str, until: Any, timeout: int = 10) -> list[tuple[str, client.V1Pod]]:
    """Every event of pod ``name`` from its creation on, until ``until(type, pod)`` holds."""
    seen = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, NS, field_selector=f"metadata.name={name}", timeout_seconds=timeout):
        seen.append((ev["type"], ev["object"]))
        if until(ev["type"], ev["object"]):
            w.stop()
            return seen
    raise AssertionError(f"watch of {name} ended before the condition held: {[t for t, _ in seen]}")


def events_for(core: client.CoreV1Api, name: str) -> list[client.CoreV1Event]:
    return [e for e in core.list_namespaced_event(NS).items if e.involved_object.name == name]


def kubelet_call(dc: DevClusterThread, fn: Any) -> Any:
    return dc.call(lambda cluster: fn(Kubelet.of(cluster)))


# -- nodes --------------------------------------------------------------------------------------------
def test_nodes_register_with_labels_conditions_and_leases(core: client.CoreV1Api,
                                                          custom: client.CustomObjectsApi) -> None:
    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == [f"devcluster-worker-{i}" for i in (1, 2, 3)]
    assert [n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes] == ["zone-a", "zone-b", "zone-c"]
    for node in nodes:
        labels = node.metadata.labels
        assert labels["kubernetes.io/hostname"] == node.metadata.name and labels["kubernetes.io/os"] == "linux"
        assert labels["kubernetes.io/arch"] and labels["topology.kubernetes.io/region"]
        conds = {c.type: c for c in node.status.conditions}
        assert conds["Ready"].status == "True" and conds["Ready"].reason == "KubeletReady"
        assert all(conds[t].status == "False" for t in ("MemoryPressure", "DiskPressure", "PIDPressure"))
        assert conds["Ready"].last_heartbeat_time is not None
        assert node.status.capacity["pods"] == "110" and node.status.allocatable["cpu"] == "8"
        assert node.status.node_info.kubelet_version == "v1.36.0"
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
        addresses = {a.type: a.address for a in node.status.addresses}
        assert addresses["Hostname"] == node.metadata.name and addresses["InternalIP"].startswith("127.0.0.")
    coordination = client.CoordinationV1Api(core.api_client)
    leases = wait_for(lambda: coordination.list_namespaced_lease("kube-node-lease").items, message="node leases")
    assert sorted(lease.spec.holder_identity for lease in leases) == [n.metadata.name for n in nodes]
    assert all(lease.spec.renew_time is not None for lease in leases)


def test_cordon_taints_the_node_and_keeps_pods_off(core: client.CoreV1Api) -> None:
    for node in ("devcluster-worker-1", "devcluster-worker-2"):
        core.patch_node(node, {"spec": {"unschedulable": True}})
    taint = wait_for(lambda: core.read_node("devcluster-worker-1").spec.taints, message="cordon taint")
    assert [(t.key, t.effect) for t in taint] == [("node.kubernetes.io/unschedulable", "NoSchedule")]
    core.create_namespaced_pod(NS, pod_body("p"))
    pod = wait_for(lambda: (p := get_pod(core, "p")) and p.spec.node_name and p, message="scheduled")
    assert pod.spec.node_name == "devcluster-worker-3"
    core.patch_node("devcluster-worker-1", {"spec": {"unschedulable": False}})
    wait_for(lambda: not core.read_node("devcluster-worker-1").spec.taints, message="taint removed")


# -- pod lifecycle ------------------------------------------------------------------------------------
def test_pod_goes_pending_running_ready_with_kubelet_status(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod_body("web", containers=[
        {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
         "resources": {"requests": {"cpu": "100m"}}}]))
    seen = watch_pod(core, "web", lambda _t, p: is_ready(p))
    phases = [p.status.phase for _, p in seen]
    assert phases[0] == "Pending" and phases[-1] == "Running"
    # Running but not yet Ready was reported before Ready (the readiness delay).
    assert any(p.status.phase == "Running" and not is_ready(p) for _, p in seen)
    pod = seen[-1][1]
    assert [c.type for c in pod.status.conditions] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c.status == "True" and c.observed_generation == 1 for c in pod.status.conditions)
    node = core.read_node(pod.spec.node_name)
    assert pod.status.host_ip == next(a.address for a in node.status.addresses if a.type == "InternalIP")
    # PodTopologyLabelsAdmission: binding copied the node's zone and region labels onto the pod.
    for key in ("topology.kubernetes.io/zone", "topology.kubernetes.io/region"):
        assert pod.metadata.labels[key] == node.metadata.labels[key]
    assert pod.status.pod_ip.startswith("10.244.") and pod.status.pod_ips[0].ip == pod.status.pod_ip
    assert pod.status.start_time is not None and pod.status.qos_class == "Burstable"
    (cs,) = pod.status.container_statuses
    assert cs.name == "app" and cs.ready and cs.started and cs.restart_count == 0
    assert cs.image == "docker.io/library/nginx:1.27" and cs.image_id.startswith("docker.io/library/nginx@sha256:")
    assert cs.container_id.startswith("containerd://") and cs.state.running.started_at is not None
    # Ready's transition time is when it became True; PodScheduled's was kept from the scheduler.
    first_running = next(p for _, p in seen if p.status.phase == "Running")
    assert conditions(pod)["PodScheduled"].last_transition_time <= conditions(first_running)["Ready"].last_transition_time
    # No loopback annotation: nothing listens in a container without a simulated process.
    assert "devcluster.ballast.dev/loopback" not in (pod.metadata.annotations or {})
    events = {e.reason: e for e in events_for(core, "web")}
    assert events["Scheduled"].message == f"Successfully assigned default/web to {pod.spec.node_name}"
    assert events["Scheduled"].reporting_component == "default-scheduler" and events["Scheduled"].action == "Binding"
    for reason, message in (("Created", "Container created"), ("Started", "Container started")):
        assert events[reason].message == message
        assert events[reason].source.component == "kubelet" and events[reason].source.host == pod.spec.node_name
        assert events[reason].involved_object.field_path == "spec.containers{app}"
    assert "Pulled" in events


def test_pod_ips_are_unique(core: client.CoreV1Api) -> None:
    for i in range(6):
        core.create_namespaced_pod(NS, pod_body(f"p{i}"))
    pods = wait_for(lambda: (items := core.list_namespaced_pod(NS).items) and all(p.status.pod_ip for p in items)
                    and len(items) == 6 and items, message="six pod IPs")
    assert len({p.status.pod_ip for p in pods}) == 6


def test_env_resolution_and_config_error_until_the_configmap_exists(dc: DevClusterThread,
                                                                    core: client.CoreV1Api) -> None:
    core.create_namespaced_secret(NS, {"metadata": {"name": "creds"}, "stringData": {"password": "pw"},
                                       "data": {"password": "cHc="}})
    core.create_namespaced_pod(NS, pod_body("envy", containers=[{
        "name": "app", "image": "busybox:1.36", "command": ["run", "--level=$(LEVEL)"],
        "env": [{"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "GREETING", "value": "level-$(LEVEL)"}]}]))
    pod = wait_for(lambda: (p := get_pod(core, "envy")) and p.status.container_statuses and
                   p.status.container_statuses[0].state.waiting and
                   p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError" and p,
                   message="CreateContainerConfigError")
    assert pod.status.container_statuses[0].state.waiting.message == 'configmap "settings" not found'
    assert pod.status.phase == "Pending"
    failed = wait_for(lambda: [e for e in events_for(core, "envy") if e.reason == "Failed"], message="Failed event")
    assert failed[0].message == 'Error: configmap "settings" not found' and failed[0].type == "Warning"
    core.create_namespaced_config_map(NS, {"metadata": {"name": "settings"}, "data": {"level": "7"}})
    pod = wait_for(lambda: (p := get_pod(core, "envy")) and is_ready(p) and p, message="envy ready")
    env = kubelet_call(dc, lambda k: k.container_env(NS, "envy", "app"))
    assert env["LEVEL"] == "7" and env["PASSWORD"] == "pw" and env["MY_IP"] == pod.status.pod_ip
    assert env["GREETING"] == "level-7" and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    ctx = kubelet_call(dc, lambda k: k.container_context(NS, "envy", "app"))
    assert ctx.command == ["run", "--level=7"]


def test_graceful_delete_stops_containers_then_kubelet_deletes(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod_body("bye"))
    wait_for(lambda: (p := get_pod(core, "bye")) and is_ready(p), message="ready")
    started = time.monotonic()
    core.delete_namespaced_pod("bye", NS)
    seen = watch_pod(core, "bye", lambda t, _p: t == "DELETED")
    assert time.monotonic() - started < 5  # well inside the 30 s grace period: the container stopped at once
    terminating = [p for t, p in seen if t == "MODIFIED" and p.metadata.deletion_timestamp]
    assert terminating and terminating[0].metadata.deletion_grace_period_seconds == 30
    final = seen[-2][1]
    state = final.status.container_statuses[0].state.terminated
    assert state is not None and state.exit_code == 0 and state.reason == "Completed"
    assert final.status.phase == "Succeeded" and not is_ready(final)
    assert conditions(final)["Ready"].reason == "PodCompleted"
    assert conditions(final)["PodReadyToStartContainers"].status == "False"
    killing = [e for e in events_for(core, "bye") if e.reason == "Killing"]
    assert killing[0].message == "Stopping container app"


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(dc: DevClusterThread,
                                                                   core: client.CoreV1Api) -> None:
    kubelet_call(dc, lambda k: k.set_behavior("app=stubborn", Behavior(stop_delay=60)))
    core.create_namespaced_pod(NS, pod_body("stubborn", terminationGracePeriodSeconds=1))
    wait_for(lambda: (p := get_pod(core, "stubborn")) and p.status.phase == "Running", message="running")
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", NS)
    seen = watch_pod(core, "stubborn", lambda t, _p: t == "DELETED")
    assert 0.9 <= time.monotonic() - started < 5
    assert seen[-2][1].status.container_statuses[0].state.terminated.exit_code == 137
    assert seen[-2][1].status.phase == "Failed"


def test_failing_container_crash_loops(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    kubelet_call(dc, lambda k: k.set_behavior(f"{NS}/crashy", "fail"))
    core.create_namespaced_pod(NS, pod_body("crashy"))
    pod = wait_for(lambda: (p := get_pod(core, "crashy")) and p.status.container_statuses and
                   p.status.container_statuses[0].restart_count >= 2 and
                   p.status.container_statuses[0].state.waiting and p, timeout=15, message="crash loop")
    cs = pod.status.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.state.waiting.message.startswith("back-off ") and "restarting failed container=app pod=crashy_default(" \
        in cs.state.waiting.message
    assert cs.last_state.terminated.exit_code == 1 and cs.last_state.terminated.reason == "Error"
    assert not cs.ready and pod.status.phase == "Running"
    assert conditions(pod)["Ready"].status == "False" and conditions(pod)["Ready"].reason == "ContainersNotReady"
    assert conditions(pod)["Ready"].message == "containers with unready status: [app]"
    backoff = [e for e in events_for(core, "crashy") if e.reason == "BackOff"]
    assert backoff and backoff[0].message.startswith("Back-off restarting failed container app in pod crashy_default(")
    # The fault clears: the next restart stays up.
    kubelet_call(dc, lambda k: k.set_behavior(f"{NS}/crashy", "normal"))
    pod = wait_for(lambda: (p := get_pod(core, "crashy")) and is_ready(p) and p, timeout=15, message="recovered")
    assert pod.status.container_statuses[0].restart_count >= 3


def test_failure_under_restart_policy_never_fails_the_pod(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    kubelet_call(dc, lambda k: k.set_behavior("app=once", Behavior.fail(exit_code=3)))
    core.create_namespaced_pod(NS, pod_body("once", restartPolicy="Never"))
    pod = wait_for(lambda: (p := get_pod(core, "once")) and p.status.phase == "Failed" and p, message="Failed")
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 3 and term.reason == "Error" and pod.status.container_statuses[0].restart_count == 0
    assert conditions(pod)["Ready"].reason == "PodCompleted"


def test_never_ready_then_ready_and_image_delays(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    kubelet_call(dc, lambda k: k.set_behavior("app=shy", "never_ready"))
    kubelet_call(dc, lambda k: k.set_image_delays("slowimage", 0.0, 0.0))
    core.create_namespaced_pod(NS, pod_body("shy"))
    core.create_namespaced_pod(NS, pod_body("quick", containers=[{"name": "app", "image": "example.com/slowimage:1"}]))
    wait_for(lambda: (p := get_pod(core, "quick")) and is_ready(p), message="quick ready")
    pod = wait_for(lambda: (p := get_pod(core, "shy")) and p.status.phase == "Running" and p, message="shy running")
    assert not is_ready(pod)
    kubelet_call(dc, lambda k: k.set_behavior("app=shy", "normal"))
    wait_for(lambda: (p := get_pod(core, "shy")) and is_ready(p), message="shy ready")


def test_slow_pods_and_image_delays_hold_running_and_ready_back(dc: DevClusterThread,
                                                                 core: client.CoreV1Api) -> None:
    """Per-label (``Behavior.slow``) and per-image delays, from the pods' own watch events.

    Each delay is a lower bound measured from before the pods were created; the order of milestones
    across pods is asserted where the delays differ by at least half a second.
    """
    kubelet_call(dc, lambda k: k.set_behavior("app=slow", Behavior.slow(2.0, 1.0)))
    kubelet_call(dc, lambda k: k.set_image_delays("slowimg", 0.7, 0.7))
    start = core.list_namespaced_pod(NS).metadata.resource_version
    slow_image = [{"name": "app", "image": "registry.example/slowimg:1"}]
    t0 = time.monotonic()
    core.create_namespaced_pod(NS, pod_body("fast", labels={"app": "fast", "suite": "delays"}))
    core.create_namespaced_pod(NS, pod_body("img", labels={"app": "img", "suite": "delays"}, containers=slow_image))
    core.create_namespaced_pod(NS, pod_body("slow", labels={"app": "slow", "suite": "delays"}))
    # A label behaviour's delays win over the image's.
    core.create_namespaced_pod(NS, pod_body("both", labels={"app": "slow", "suite": "delays"}, containers=slow_image))
    milestones: list[tuple[str, str]] = []  # (pod, "Running" | "Ready") in the order the watch delivered them
    at: dict[tuple[str, str], float] = {}
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, NS, label_selector="suite=delays", resource_version=start,
                       timeout_seconds=20):
        pod = ev["object"]
        for reached, holds in (("Running", pod.status.phase == "Running"), ("Ready", is_ready(pod))):
            key = (pod.metadata.name, reached)
            if holds and key not in at:
                at[key] = time.monotonic() - t0
                milestones.append(key)
        if all((name, "Ready") in at for name in ("fast", "img", "slow", "both")):
            w.stop()
    assert len(at) == 8, f"not every pod became Running and Ready: {milestones}"
    # Lower bounds: nothing became Running before its start delay, or Ready before start + ready delay.
    for name, start_delay, ready_delay in (("img", 0.7, 0.7), ("slow", 2.0, 1.0), ("both", 2.0, 1.0)):
        assert at[(name, "Running")] >= start_delay, (name, at)
        assert at[(name, "Ready")] >= start_delay + ready_delay, (name, at)
    # Running strictly before Ready, for each pod, in the stream itself.
    for name in ("fast", "img", "slow", "both"):
        assert milestones.index((name, "Running")) < milestones.index((name, "Ready"))
    # Default pods (0.2 s + 0.3 s) are Ready before the slow image's (1.4 s), which are Ready before the
    # slow label's pods (2 s) even run.
    order = [milestones.index(m) for m in (("fast", "Ready"), ("img", "Ready"), ("slow", "Running"),
                                           ("slow", "Ready"))]
    assert order == sorted(order), milestones
    assert milestones.index(("img", "Ready")) < milestones.index(("both", "Running")), milestones


def test_image_update_restarts_the_container(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod_body("upd"))
    wait_for(lambda: (p := get_pod(core, "upd")) and is_ready(p), message="ready")
    core.patch_namespaced_pod("upd", NS, {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}})
    pod = wait_for(lambda: (p := get_pod(core, "upd")) and is_ready(p) and
                   p.status.container_statuses[0].image == "docker.io/library/nginx:1.28" and p, message="restarted")
    cs = pod.status.container_statuses[0]
    assert cs.restart_count == 1 and cs.last_state.terminated.exit_code == 0
    killing = [e.message for e in events_for(core, "upd") if e.reason == "Killing"]
    assert killing == ["Container app definition changed, will be restarted"]


def test_init_containers_run_first(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod_body("inited", initContainers=[{"name": "setup", "image": "busybox:1.36"}]))
    seen = watch_pod(core, "inited", lambda _t, p: is_ready(p))
    early = next(p for _, p in seen if p.status.container_statuses)
    assert early.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert conditions(early)["Initialized"].status == "False"
    assert conditions(early)["Initialized"].message == "containers with incomplete status: [setup]"
    init = seen[-1][1].status.init_container_statuses[0]
    assert init.state.terminated.exit_code == 0 and init.state.terminated.reason == "Completed"


# -- simulated processes ------------------------------------------------------------------------------
class GreeterProcess:
    """A tiny TCP service standing in for a container's program."""

    def __init__(self, ctx: PodContext) -> None:
        self.ctx = ctx
        self.port = ctx.allocate_port()
        self.server: asyncio.Server | None = None
        self.stopped: list[bool] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"hello from {self.ctx.hostname}: {self.ctx.files['/etc/greeter/greeting'].decode()}".encode())
        await writer.drain()
        writer.close()

    def ready(self) -> bool:
        return self.server is not None

    def ports(self) -> dict[int, int]:
        return {8080: self.port}

    async def stop(self, graceful: bool) -> int | None:
        self.stopped.append(graceful)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        return 0


def test_process_factory_runs_a_simulated_program(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    processes: list[GreeterProcess] = []

    def factory(ctx: PodContext) -> GreeterProcess | None:
        if "greeter" not in ctx.container["image"]:
            return None
        processes.append(GreeterProcess(ctx))
        return processes[-1]

    kubelet_call(dc, lambda k: k.process_factories.append(factory))
    core.create_namespaced_config_map(NS, {"metadata": {"name": "greet"}, "data": {"greeting": "hi"}})
    core.create_namespaced_pod(NS, pod_body("greeter", containers=[{
        "name": "app", "image": "example.com/greeter:1", "ports": [{"containerPort": 8080}],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/greeter"},
                         {"name": "scratch", "mountPath": "/var/scratch"},
                         {"name": "scratch", "mountPath": "/var/own", "subPathExpr": "$(POD_NAME)/data"}]}],
        volumes=[{"name": "cfg", "configMap": {"name": "greet"}}, {"name": "scratch", "emptyDir": {}}]))
    pod = wait_for(lambda: (p := get_pod(core, "greeter")) and is_ready(p) and
                   (p.metadata.annotations or {}).get("devcluster.ballast.dev/loopback") and p, message="greeter up")
    mapping = json.loads(pod.metadata.annotations["devcluster.ballast.dev/loopback"])
    host, port = mapping["8080"].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        assert conn.recv(100) == b"hello from greeter: hi"
    # The program's view of its volumes: subPathExpr selects a directory of the volume, as a kubelet mounts it.
    paths = processes[0].ctx.volume_paths
    assert paths["/var/own"] == paths["/var/scratch"] / "greeter" / "data"
    core.delete_namespaced_pod("greeter", NS)
    wait_for(lambda: get_pod(core, "greeter") is None, message="greeter gone")
    assert processes[0].stopped == [True]


# -- scheduling ---------------------------------------------------------------------------------------
def test_unschedulable_pod_reports_the_scheduler_message(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod_body("picky", nodeSelector={"disk": "ssd"}))
    pod = wait_for(lambda: (p := get_pod(core, "picky")) and "PodScheduled" in conditions(p) and p,
                   message="PodScheduled condition")
    cond = conditions(pod)["PodScheduled"]
    expected = ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. no new claims to "
                "deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", expected)
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    failed = wait_for(lambda: [e for e in events_for(core, "picky") if e.reason == "FailedScheduling"],
                      message="FailedScheduling")
    assert failed[0].type == "Warning" and failed[0].message == expected
    assert failed[0].reporting_component == "default-scheduler"
    core.patch_node("devcluster-worker-2", {"metadata": {"labels": {"disk": "ssd"}}})
    pod = wait_for(lambda: (p := get_pod(core, "picky")) and is_ready(p) and p, message="scheduled after relabel")
    assert pod.spec.node_name == "devcluster-worker-2"
    assert conditions(pod)["PodScheduled"].status == "True"


def test_resource_requests_and_mixed_reasons(core: client.CoreV1Api) -> None:
    core.patch_node("devcluster-worker-1", {"spec": {"taints": [{"key": "dedicated", "value": "kafka",
                                                                 "effect": "NoSchedule"}]}})
    core.create_namespaced_pod(NS, pod_body("hungry", containers=[
        {"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "6", "memory": "1Gi"}}}]))
    wait_for(lambda: (p := get_pod(core, "hungry")) and p.spec.node_name, message="hungry scheduled")
    core.create_namespaced_pod(NS, pod_body("greedy", containers=[
        {"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "7"}}}]))
    pod = wait_for(lambda: (p := get_pod(core, "greedy")) and (p.spec.node_name or "PodScheduled" in conditions(p))
                   and p, message="greedy placed or refused")
    hungry_node = core.read_namespaced_pod("hungry", NS).spec.node_name
    assert hungry_node != "devcluster-worker-1"
    # One node tainted, one full, one free: greedy fits on the free one.
    assert pod.spec.node_name not in (None, "devcluster-worker-1", hungry_node)
    core.create_namespaced_pod(NS, pod_body("huge", containers=[
        {"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "7"}}}]))
    pod = wait_for(lambda: (p := get_pod(core, "huge")) and "PodScheduled" in conditions(p) and p, message="refused")
    assert conditions(pod)["PodScheduled"].message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu. no new claims to "
        "deallocate, preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.")


def test_anti_affinity_and_topology_spread(core: client.CoreV1Api) -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "broker"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(4):
        core.create_namespaced_pod(NS, pod_body(f"broker-{i}", labels={"app": "broker"}, affinity=anti))
        wait_for(lambda i=i: (p := get_pod(core, f"broker-{i}")) and (p.spec.node_name or "PodScheduled" in
                                                                      conditions(p)), message=f"broker-{i} decided")
    placed = [core.read_namespaced_pod(f"broker-{i}", NS) for i in range(4)]
    assert len({p.spec.node_name for p in placed[:3]}) == 3
    assert placed[3].spec.node_name is None
    assert conditions(placed[3])["PodScheduled"].message.startswith(
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "zk"}}}]
    for i in range(6):
        core.create_namespaced_pod(NS, pod_body(f"zk-{i}", labels={"app": "zk"}, topologySpreadConstraints=spread))
        wait_for(lambda i=i: (p := get_pod(core, f"zk-{i}")) and p.spec.node_name, message=f"zk-{i} scheduled")
    zones = [core.read_node(core.read_namespaced_pod(f"zk-{i}", NS).spec.node_name).metadata.labels[
        "topology.kubernetes.io/zone"] for i in range(6)]
    assert sorted(zones) == ["zone-a", "zone-a", "zone-b", "zone-b", "zone-c", "zone-c"]


@pytest.mark.parametrize("gates", [[{"name": "example.com/hold"}]])
def test_scheduling_gates_hold_the_pod(core: client.CoreV1Api, gates: list[dict[str, str]]) -> None:
    core.create_namespaced_pod(NS, pod_body("gated", schedulingGates=gates))
    pod = wait_for(lambda: (p := get_pod(core, "gated")) and "PodScheduled" in conditions(p) and p, message="gated")
    assert conditions(pod)["PodScheduled"].reason == "SchedulingGated"
    assert pod.spec.node_name is None
