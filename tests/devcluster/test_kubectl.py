"""The real kubectl (the pinned 1.37 from the venv) against devcluster.

Objects are set up with the official ``kubernetes`` client where that is shorter; everything asserted is
what kubectl prints or what the server holds afterwards. Pod statuses are driven through ``/status``
on pods bound to a node no kubelet serves, so no simulated controller interferes.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.conftest import Kubectl, wait_for

NS = "default"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.dev.ballast.io"},
    "spec": {
        "group": "dev.ballast.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas"}},
            "additionalPrinterColumns": [
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                {"name": "Size", "type": "string", "jsonPath": ".spec.size", "priority": 1},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"}, "size": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}}}},
                "status": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "conditions": {"type": "array", "items": {"type": "object", "properties": {
                        "type": {"type": "string"}, "status": {"type": "string"},
                        "reason": {"type": "string"}, "message": {"type": "string"}}}}}},
            }}},
        }],
    },
}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "dev.ballast.io/v1", "kind": "Widget", "metadata": {"name": name, "labels": {"app": name}},
            "spec": spec}


def write(tmp_path: Path, name: str, *docs: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def _columns(line: str) -> list[tuple[int, int]]:
    """Start/end offsets of kubectl's aligned columns (titles are separated by at least two spaces)."""
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", line)]
    return [(start, starts[i + 1] if i + 1 < len(starts) else 10**6) for i, start in enumerate(starts)]


def header(output: str) -> list[str]:
    """Column titles of kubectl's table output."""
    first = output.splitlines()[0]
    return [first[a:b].strip() for a, b in _columns(first)]


def rows(output: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell, cut at the header's column offsets (empty cells kept)."""
    lines = output.splitlines()
    spans = _columns(lines[0])
    out = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in spans]
        if cells and cells[0]:
            out[cells[0]] = cells
    return out


def install_crd(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.run("apply", "-f", write(tmp_path, "crd.yaml", CRD))
    kubectl.run("wait", "--for=condition=Established", "crd/widgets.dev.ballast.io", "--timeout=10s")


def sts_manifest(image: str = "nginx:1.25", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"serviceName": "web", "replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                     "name": "nginx", "image": image, "ports": [{"name": "http", "containerPort": 80}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}},
    }


# -- discovery, version --------------------------------------------------------------------------------
def test_version_and_api_resources(kubectl: Kubectl, tmp_path: Path) -> None:
    version = json.loads(kubectl.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["clientVersion"]["minor"] == "37"

    out = kubectl.run("api-resources").stdout
    assert header(out) == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert rows(out)["statefulsets"] == ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"]
    install_crd(kubectl, tmp_path)
    out = kubectl.run("api-resources", "--api-group=dev.ballast.io").stdout
    assert rows(out)["widgets"] == ["widgets", "wd", "dev.ballast.io/v1", "true", "Widget"]


# -- get: tables -----------------------------------------------------------------------------------
def test_get_tables_for_builtin_kinds(kubectl: Kubectl, core: client.CoreV1Api, tmp_path: Path) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "cfg", "labels": {"tier": "a"}},
                                           "data": {"x": "1", "y": "2"}, "binaryData": {"z": "AA=="}})
    core.create_namespaced_secret(NS, {"metadata": {"name": "creds"}, "data": {"u": "eA==", "p": "eA=="}})
    core.create_namespaced_service(NS, {"metadata": {"name": "svc", "labels": {"tier": "b"}}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 9092, "protocol": "TCP"}]}})
    core.create_namespaced_persistent_volume_claim(NS, {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})

    out = kubectl.run("get", "configmaps").stdout
    assert header(out) == ["NAME", "DATA", "AGE"]
    assert rows(out)["cfg"][1] == "3"  # data + binaryData
    out = kubectl.run("get", "secret", "creds").stdout
    assert header(out) == ["NAME", "TYPE", "DATA", "AGE"]
    assert rows(out)["creds"][1:3] == ["Opaque", "2"]
    out = kubectl.run("get", "svc", "-o", "wide").stdout
    assert header(out) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    svc = rows(out)["svc"]
    assert svc[1] == "ClusterIP" and svc[3] == "<none>" and svc[4] == "80/TCP,9092/TCP" and svc[6] == "app=web"
    assert svc[2] == core.read_namespaced_service("svc", NS).spec.cluster_ip
    out = kubectl.run("get", "namespaces").stdout
    assert header(out) == ["NAME", "STATUS", "AGE"] and rows(out)["kube-system"][1] == "Active"
    out = kubectl.run("get", "pvc").stdout
    assert header(out) == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                           "VOLUMEATTRIBUTESCLASS", "AGE"]
    out = kubectl.run("get", "storageclasses").stdout
    assert header(out) == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
                           "AGE"]
    assert "standard (default)" in rows(out)
    core.create_node({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
                      "spec": {"unschedulable": True}})
    core.patch_node_status("n1", {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                                             "nodeInfo": {"kubeletVersion": "v1.36.0", "machineID": "",
                                                          "systemUUID": "", "bootID": "", "kernelVersion": "",
                                                          "osImage": "", "containerRuntimeVersion": "",
                                                          "kubeProxyVersion": "", "operatingSystem": "linux",
                                                          "architecture": "amd64"}}})
    out = kubectl.run("get", "node", "n1").stdout
    assert header(out) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows(out)["n1"][1:3] == ["Ready,SchedulingDisabled", "control-plane"] and rows(out)["n1"][4] == "v1.36.0"
    client.CoordinationV1Api(core.api_client).create_namespaced_lease(NS, {
        "metadata": {"name": "leader"}, "spec": {"holderIdentity": "pod-a"}})
    out = kubectl.run("get", "leases").stdout
    assert header(out) == ["NAME", "HOLDER", "AGE"] and rows(out)["leader"][1] == "pod-a"
    client.PolicyV1Api(core.api_client).create_namespaced_pod_disruption_budget(NS, {
        "metadata": {"name": "pdb"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "x"}}}})
    out = kubectl.run("get", "pdb").stdout
    assert header(out) == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    assert rows(out)["pdb"][1:3] == ["N/A", "1"]

    install_crd(kubectl, tmp_path)
    out = kubectl.run("get", "crd").stdout
    assert header(out) == ["NAME", "CREATED AT"]
    assert rows(out)["widgets.dev.ballast.io"][1].endswith("Z")

    # -A adds the NAMESPACE column; -l filters on the server.
    out = kubectl.run("get", "cm,svc", "-A", "-l", "tier").stdout
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    names = {line.split()[1] for line in lines if line and not line.startswith("NAMESPACE")}
    assert names == {"configmap/cfg", "service/svc"}
    out = kubectl.run("get", "cm", "-l", "tier=a,tier!=b", "-o", "name").stdout
    assert out.split() == ["configmap/cfg"]


def test_get_output_formats(kubectl: Kubectl, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    as_json = json.loads(kubectl.run("get", "cm", "cfg", "-o", "json").stdout)
    assert as_json["kind"] == "ConfigMap" and as_json["data"] == {"k": "v"}
    as_yaml = yaml.safe_load(kubectl.run("get", "cm", "cfg", "-o", "yaml").stdout)
    assert as_yaml["metadata"]["uid"] == as_json["metadata"]["uid"]
    listed = json.loads(kubectl.run("get", "cm", "-o", "json").stdout)
    assert listed["kind"] == "List" and "cfg" in {i["metadata"]["name"] for i in listed["items"]}
    assert kubectl.run("get", "cm", "cfg", "-o", "jsonpath={.data.k}").stdout == "v"
    out = kubectl.run("get", "cm", "cfg", "-o", "custom-columns=N:.metadata.name,K:.data.k").stdout
    assert rows(out)["cfg"] == ["cfg", "v"]
    out = kubectl.run("get", "cm", "cfg", "--show-labels").stdout
    assert header(out) == ["NAME", "DATA", "AGE", "LABELS"]


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"nodeName": "nowhere", "containers": [
        {"name": "main", "image": "busybox:1.36"}], **spec}}


def _running(name: str = "main", ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "image": "busybox:1.36", "imageID": "",
            "started": True, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}


def test_pod_status_column(kubectl: Kubectl, core: client.CoreV1Api) -> None:
    """READY/STATUS/RESTARTS are computed like the server's pod printer, from the pod's status."""
    statuses: dict[str, dict[str, Any]] = {
        "pending": {"phase": "Pending"},
        "creating": {"phase": "Pending", "containerStatuses": [{
            "name": "main", "ready": False, "restartCount": 0, "image": "busybox:1.36", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]},
        "running": {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                    "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [_running()]},
        "crashing": {"phase": "Running", "containerStatuses": [{
            "name": "main", "ready": False, "restartCount": 4, "image": "busybox:1.36", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                         "finishedAt": "2020-01-01T00:00:00Z"}}}]},
        "done": {"phase": "Succeeded", "containerStatuses": [{
            "name": "main", "ready": False, "restartCount": 0, "image": "busybox:1.36", "imageID": "",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]},
        "initing": {"phase": "Pending", "initContainerStatuses": [{
            "name": "init", "ready": False, "restartCount": 0, "image": "busybox:1.36", "imageID": "",
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
    }
    for name, status in statuses.items():
        extra = {"initContainers": [{"name": "init", "image": "busybox:1.36"}]} if name == "initing" else {}
        core.create_namespaced_pod(NS, _pod(name, **extra))
        core.patch_namespaced_pod_status(name, NS, {"status": status})
    core.create_namespaced_pod(NS, _pod("leaving"))
    core.patch_namespaced_pod_status("leaving", NS, {"status": statuses["running"]})
    core.delete_namespaced_pod("leaving", NS)  # bound and running: graceful, stays Terminating

    out = kubectl.run("get", "pods").stdout
    assert header(out) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    got = rows(out)
    assert got["pending"][1:4] == ["0/1", "Pending", "0"]
    assert got["creating"][1:4] == ["0/1", "ContainerCreating", "0"]
    assert got["running"][1:4] == ["1/1", "Running", "0"]
    assert got["crashing"][1:3] == ["0/1", "CrashLoopBackOff"] and got["crashing"][3].startswith("4 (")
    assert got["crashing"][3].endswith(" ago)")
    assert got["done"][1:4] == ["0/1", "Completed", "0"]
    assert got["initing"][2] == "Init:0/1"
    assert got["leaving"][2] == "Terminating"

    out = kubectl.run("get", "pod", "running", "-o", "wide").stdout
    assert header(out) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                           "READINESS GATES"]
    assert rows(out)["running"][5:] == ["10.244.0.5", "nowhere", "<none>", "<none>"]


def test_statefulset_columns_and_describe(kubectl: Kubectl, apps: client.AppsV1Api, tmp_path: Path) -> None:
    kubectl.run("apply", "-f", write(tmp_path, "sts.yaml", sts_manifest()))
    out = kubectl.run("get", "sts", "-o", "wide").stdout
    assert header(out) == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
    assert rows(out)["web"][1] == "0/2" and rows(out)["web"][3:] == ["nginx", "nginx:1.25"]
    wait_for(lambda: kubectl.run("get", "events", "--field-selector", "involvedObject.name=web").stdout.strip(),
             message="an event about the StatefulSet")
    out = kubectl.run("get", "events").stdout
    assert header(out) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(r[3] == "statefulset/web" for r in rows(out).values())

    described = kubectl.run("describe", "sts", "web").stdout
    assert "Name:               web" in described or described.startswith("Name:")
    assert "Replicas:" in described and "nginx:1.25" in described
    assert "Events:" in described and "SuccessfulCreate" in described
    out = kubectl.run("get", "controllerrevisions").stdout
    assert header(out) == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert all(r[1] == "statefulset.apps/web" for r in rows(out).values())


# -- apply -------------------------------------------------------------------------------------------
def test_apply_builtins_twice_merges_like_a_real_server(kubectl: Kubectl, core: client.CoreV1Api,
                                                        apps: client.AppsV1Api, tmp_path: Path) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "labels": {"v": "1"}},
           "spec": {"nodeName": "nowhere", "containers": [{"name": "main", "image": "busybox:1.36",
                                                          "env": [{"name": "X", "value": "1"}]}]}}
    path = write(tmp_path, "all.yaml", cm, svc, pod, sts_manifest())
    out = kubectl.run("apply", "-f", path).stdout
    assert "configmap/settings created" in out and "statefulset.apps/web created" in out

    # Someone else adds a key the manifest never mentions: a three-way merge keeps it.
    core.patch_namespaced_config_map("settings", NS, {"data": {"extra": "keep"}})
    cm["data"] = {"a": "10"}
    svc["spec"]["ports"] = [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]
    pod["metadata"]["labels"] = {"v": "2"}
    pod["spec"]["containers"][0]["image"] = "busybox:1.37"
    sts = sts_manifest(image="nginx:1.26", replicas=3)
    sts["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "3"
    out = kubectl.run("apply", "-f", write(tmp_path, "all.yaml", cm, svc, pod, sts)).stdout
    assert "configmap/settings configured" in out and "statefulset.apps/web configured" in out

    assert core.read_namespaced_config_map("settings", NS).data == {"a": "10", "extra": "keep"}
    ports = core.read_namespaced_service("web", NS).spec.ports
    assert [(p.name, p.port, p.protocol) for p in ports] == [("http", 80, "TCP"), ("metrics", 9090, "TCP")]
    live_pod = core.read_namespaced_pod("solo", NS)
    assert live_pod.metadata.labels == {"v": "2"} and live_pod.spec.containers[0].image == "busybox:1.37"
    # Server-defaulted tolerations survive the strategic merge (a replace would have dropped them).
    assert {t.key for t in live_pod.spec.tolerations} >= {"node.kubernetes.io/not-ready"}
    live = apps.read_namespaced_stateful_set("web", NS)
    container = live.spec.template.spec.containers[0]
    assert live.spec.replicas == 3 and container.image == "nginx:1.26"
    assert [(e.name, e.value) for e in container.env] == [("A", "1"), ("B", "3")]
    assert container.termination_message_path == "/dev/termination-log"  # defaults kept by the merge
    assert "kubectl.kubernetes.io/last-applied-configuration" in live.metadata.annotations
    assert "unchanged" in kubectl.run("apply", "-f", str(tmp_path / "all.yaml")).stdout


def test_apply_crd_and_custom_resource(kubectl: Kubectl, custom: client.CustomObjectsApi, tmp_path: Path) -> None:
    path = write(tmp_path, "w.yaml", widget("w1", replicas=2, size="small", tags=["a", "b"]))
    # Before its CRD exists (and for a kind no group serves) kubectl falls back from OpenAPI v3 to v2
    # (protobuf) and then reports the missing mapping, as against a real server.
    early = kubectl.run("apply", "-f", path, check=False)
    assert early.returncode == 1
    assert 'no matches for kind "Widget" in version "dev.ballast.io/v1"' in early.stderr
    assert "failed to download openapi" not in early.stderr
    unknown = write(tmp_path, "unknown.yaml", {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "x"}})
    proc = kubectl.run("apply", "-f", unknown, check=False)
    assert proc.returncode == 1 and 'no matches for kind "Widget" in version "v1"' in proc.stderr

    install_crd(kubectl, tmp_path)
    assert kubectl.run("apply", "-f", path).stdout.strip() == "widget.dev.ballast.io/w1 created"
    out = kubectl.run("get", "wd").stdout
    assert header(out) == ["NAME", "REPLICAS", "READY", "AGE"]
    assert rows(out)["w1"][1] == "2"
    out = kubectl.run("get", "widgets", "-o", "wide").stdout
    assert header(out) == ["NAME", "REPLICAS", "READY", "SIZE", "AGE"]
    assert rows(out)["w1"][3] == "small"

    custom.patch_namespaced_custom_object_status("dev.ballast.io", "v1", NS, "widgets", "w1", {
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert rows(kubectl.run("get", "wd").stdout)["w1"][2] == "True"

    path = write(tmp_path, "w.yaml", widget("w1", replicas=3, size="large"))
    assert kubectl.run("apply", "-f", path).stdout.strip() == "widget.dev.ballast.io/w1 configured"
    live = custom.get_namespaced_custom_object("dev.ballast.io", "v1", NS, "widgets", "w1")
    assert live["spec"] == {"replicas": 3, "size": "large"}  # "tags" removed: it left the manifest
    assert live["metadata"]["generation"] == 2
    assert live["status"]["conditions"][0]["status"] == "True"


def test_apply_validates_fields_on_the_server(kubectl: Kubectl, core: client.CoreV1Api, tmp_path: Path) -> None:
    install_crd(kubectl, tmp_path)
    bad = widget("w2", replicas=1, bogus=True)
    proc = kubectl.run("apply", "-f", write(tmp_path, "bad.yaml", bad), check=False)
    assert proc.returncode == 1
    assert ('Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field '
            '"spec.bogus"') in proc.stderr
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}, "datta": {}}
    proc = kubectl.run("apply", "-f", write(tmp_path, "cm.yaml", cm), check=False)
    assert 'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field ' \
           '"datta"' in proc.stderr
    # --validate=warn: the server drops the field and says so.
    proc = kubectl.run("apply", "--validate=warn", "-f", str(tmp_path / "cm.yaml"))
    assert 'Warning: unknown field "datta"' in proc.stderr
    assert core.read_namespaced_config_map("c", NS).data == {"a": "1"}
    # A patch introducing an unknown field is refused by the patcher, as on a real server.
    cm["spec"] = {"x": 1}
    proc = kubectl.run("apply", "-f", write(tmp_path, "cm.yaml", cm), check=False)
    assert "The request is invalid: patch: Invalid value:" in proc.stderr
    assert 'strict decoding error: unknown field "datta", unknown field "spec"' in proc.stderr


# -- watch, wait ---------------------------------------------------------------------------------------
class LineReader:
    """Reads a subprocess's stdout on a thread so the test can wait for lines with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, predicate: Any, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no matching line within {timeout}s; saw {seen}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_get_watch_streams_table_rows(kubectl: Kubectl, custom: client.CustomObjectsApi, tmp_path: Path) -> None:
    install_crd(kubectl, tmp_path)
    kubectl.run("apply", "-f", write(tmp_path, "w.yaml", widget("w1", replicas=1)))
    watcher = LineReader(kubectl.popen("get", "widgets", "-w"))
    try:
        assert watcher.expect(lambda line: line.startswith("NAME")).split() == ["NAME", "REPLICAS", "READY", "AGE"]
        assert watcher.expect(lambda line: line.startswith("w1")).split()[1] == "1"
        kubectl.run("patch", "wd", "w1", "--type", "merge", "-p", '{"spec":{"replicas":5}}')
        assert watcher.expect(lambda line: line.startswith("w1")).split()[1] == "5"
        custom.create_namespaced_custom_object("dev.ballast.io", "v1", NS, "widgets", widget("w2", replicas=7))
        assert watcher.expect(lambda line: line.startswith("w2")).split()[1] == "7"
    finally:
        watcher.close()

    events = LineReader(kubectl.popen("get", "wd", "-w", "--output-watch-events", "--watch-only"))
    try:
        # --watch-only prints nothing until a change, so keep changing w1 until the stream shows it is open.
        n = 10
        while True:
            n += 1
            kubectl.run("patch", "wd", "w1", "--type", "merge", "-p", json.dumps({"spec": {"replicas": n}}))
            try:
                events.expect(lambda line: line.startswith("MODIFIED"), timeout=0.5)
                break
            except AssertionError:
                if n > 40:
                    raise
        kubectl.run("delete", "wd", "w2", "--wait=false")
        assert events.expect(lambda line: line.startswith("DELETED")).split()[1] == "w2"
    finally:
        events.close()


def test_wait_for_condition_on_custom_resource(kubectl: Kubectl, custom: client.CustomObjectsApi,
                                               tmp_path: Path) -> None:
    install_crd(kubectl, tmp_path)
    kubectl.run("apply", "-f", write(tmp_path, "w.yaml", widget("w1", replicas=1)))
    waiter = kubectl.popen("wait", "--for=condition=Ready", "wd/w1", "--timeout=20s")
    try:
        # Not met yet: the waiter is still running (it uses a watch-list with sendInitialEvents).
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(0.5)
        custom.patch_namespaced_custom_object_status("dev.ballast.io", "v1", NS, "widgets", "w1", {
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Up"}]}})
        out, err = waiter.communicate(timeout=15)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert out.strip() == "widget.dev.ballast.io/w1 condition met"
    # Already true: returns at once; a condition that stays false times out.
    assert kubectl.run("wait", "--for=condition=Ready=True", "wd/w1", "--timeout=5s").returncode == 0
    proc = kubectl.run("wait", "--for=condition=Degraded", "wd/w1", "--timeout=1s", check=False)
    assert proc.returncode != 0 and "timed out waiting for the condition" in proc.stderr
    assert kubectl.run("wait", "--for=jsonpath={.spec.replicas}=1", "wd/w1", "--timeout=5s").returncode == 0


def test_wait_for_delete_and_delete_flavours(kubectl: Kubectl, core: client.CoreV1Api,
                                             custom: client.CustomObjectsApi, tmp_path: Path) -> None:
    install_crd(kubectl, tmp_path)
    kubectl.run("apply", "-f", write(tmp_path, "w.yaml", widget("w1", replicas=1), widget("w2", replicas=1)))
    custom.patch_namespaced_custom_object("dev.ballast.io", "v1", NS, "widgets", "w1",
                                          {"metadata": {"finalizers": ["dev.ballast.io/hold"]}})
    kubectl.run("delete", "wd", "w1", "--wait=false")
    waiter = kubectl.popen("wait", "--for=delete", "wd/w1", "--timeout=20s")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(0.5)
        custom.patch_namespaced_custom_object("dev.ballast.io", "v1", NS, "widgets", "w1",
                                              {"metadata": {"finalizers": None}})
        out, err = waiter.communicate(timeout=15)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert "w1 condition met" in out

    out = kubectl.run("delete", "wd", "w2").stdout  # --wait is the default
    assert out.strip().startswith('widget.dev.ballast.io "w2" deleted')
    assert kubectl.run("get", "wd", "-o", "name").stdout.strip() == ""

    # Foreground cascade: the owner goes once the garbage collector removed its dependents.
    owner = core.create_namespaced_config_map(NS, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
        "blockOwnerDeletion": True}]}})
    kubectl.run("delete", "cm", "owner", "--cascade=foreground", timeout=30)
    names = kubectl.run("get", "cm", "-o", "name").stdout.split()
    assert "configmap/owner" not in names and "configmap/dependent" not in names


# -- scale, patch ----------------------------------------------------------------------------------------
def test_scale_statefulset_and_custom_resource(kubectl: Kubectl, apps: client.AppsV1Api,
                                               custom: client.CustomObjectsApi, tmp_path: Path) -> None:
    kubectl.run("apply", "-f", write(tmp_path, "sts.yaml", sts_manifest(replicas=1)))
    assert kubectl.run("scale", "sts", "web", "--replicas=3").stdout.strip() == "statefulset.apps/web scaled"
    assert apps.read_namespaced_stateful_set("web", NS).spec.replicas == 3
    proc = kubectl.run("scale", "sts", "web", "--replicas=4", "--current-replicas=2", check=False)
    assert proc.returncode != 0 and "Expected replicas to be 2, was 3" in proc.stderr

    install_crd(kubectl, tmp_path)
    kubectl.run("apply", "-f", write(tmp_path, "w.yaml", widget("w1", replicas=1)))
    assert kubectl.run("scale", "wd/w1", "--replicas=6").stdout.strip() == "widget.dev.ballast.io/w1 scaled"
    live = custom.get_namespaced_custom_object("dev.ballast.io", "v1", NS, "widgets", "w1")
    assert live["spec"]["replicas"] == 6 and live["metadata"]["generation"] == 2


def test_patch_types(kubectl: Kubectl, core: client.CoreV1Api, apps: client.AppsV1Api, tmp_path: Path) -> None:
    kubectl.run("apply", "-f", write(tmp_path, "sts.yaml", sts_manifest(replicas=1)))
    # Default (strategic): containers merge by name, env by name.
    kubectl.run("patch", "sts", "web", "-p", json.dumps({"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "env": [{"name": "C", "value": "9"}]}]}}}}))
    env = apps.read_namespaced_stateful_set("web", NS).spec.template.spec.containers[0].env
    assert [(e.name, e.value) for e in env] == [("C", "9"), ("A", "1"), ("B", "2")]
    kubectl.run("patch", "sts", "web", "--type", "merge", "-p", '{"metadata":{"labels":{"team":"kafka"}}}')
    kubectl.run("patch", "sts", "web", "--type", "json", "-p",
                '[{"op":"replace","path":"/spec/replicas","value":2}]')
    live = apps.read_namespaced_stateful_set("web", NS)
    assert live.metadata.labels == {"team": "kafka"} and live.spec.replicas == 2

    install_crd(kubectl, tmp_path)
    kubectl.run("apply", "-f", write(tmp_path, "w.yaml", widget("w1", replicas=1, tags=["a"])))
    kubectl.run("patch", "wd", "w1", "--type", "merge", "-p", '{"spec":{"size":"xl"}}')
    kubectl.run("patch", "wd", "w1", "--type", "json", "-p", '[{"op":"add","path":"/spec/tags/-","value":"b"}]')
    out = kubectl.run("get", "wd", "w1", "-o", "jsonpath={.spec.size} {.spec.tags}").stdout
    assert out == 'xl ["a","b"]'
    proc = kubectl.run("patch", "wd", "w1", "-p", '{"spec":{"size":"s"}}', check=False)  # strategic
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        "error: application/strategic-merge-patch+json is not supported by dev.ballast.io/v1, Kind=Widget: the "
        "body of the request was in an unknown format - accepted media types include: application/json-patch+json, "
        "application/merge-patch+json, application/apply-patch+yaml")


def test_describe_pod_and_custom_resource(kubectl: Kubectl, core: client.CoreV1Api, tmp_path: Path) -> None:
    core.create_namespaced_pod(NS, _pod("solo"))
    core.create_namespaced_event(NS, {
        "metadata": {"name": "solo.1"}, "type": "Warning", "reason": "BackOff", "message": "Back-off restarting",
        "involvedObject": {"kind": "Pod", "namespace": NS, "name": "solo",
                           "uid": core.read_namespaced_pod("solo", NS).metadata.uid, "apiVersion": "v1"},
        "source": {"component": "kubelet"}, "count": 3,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"})
    described = kubectl.run("describe", "pod", "solo").stdout
    assert "Name:" in described and "solo" in described and "busybox:1.36" in described
    assert "Node:" in described and "nowhere" in described
    assert "Warning  BackOff" in described and "Back-off restarting" in described

    install_crd(kubectl, tmp_path)
    kubectl.run("apply", "-f", write(tmp_path, "w.yaml", widget("w1", replicas=2, size="m")))
    described = kubectl.run("describe", "wd", "w1").stdout
    assert "API Version:  dev.ballast.io/v1" in described and "Kind:         Widget" in described
    assert "Replicas:  2" in described and "Events:" in described


# -- the wire protocol kubectl relies on ------------------------------------------------------------------
def _http(url: str, accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers={"Accept": accept}), timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io," \
        "application/json"


def test_table_negotiation_include_object_and_watch_tables(dc: Any, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    base = f"{dc.url}/api/v1/namespaces/{NS}/configmaps"
    status, _, body = _http(base, TABLE)
    table = json.loads(body)
    assert status == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    row = table["rows"][0]
    assert row["cells"][:2] == ["a", 1]
    assert row["object"]["kind"] == "PartialObjectMetadata" and "data" not in row["object"]  # default Metadata
    full = json.loads(_http(base + "?includeObject=Object", TABLE)[2])["rows"][0]["object"]
    assert full["kind"] == "ConfigMap" and full["data"] == {"k": "v"}
    assert "object" not in json.loads(_http(base + "?includeObject=None", TABLE)[2])["rows"][0]
    assert _http(base + "?includeObject=Everything", TABLE)[0] == 400
    assert json.loads(_http(f"{base}/a", "application/json;as=Table;v=v1beta1;g=meta.k8s.io")[2])["apiVersion"] \
        == "meta.k8s.io/v1beta1"
    partial = json.loads(_http(base, "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")[2])
    assert partial["kind"] == "PartialObjectMetadataList" and partial["items"][0]["metadata"]["name"] == "a"
    status, _, body = _http(base, "application/json;as=Foo;v=v1;g=meta.k8s.io")
    assert status == 406 and json.loads(body)["reason"] == "NotAcceptable"

    # A Table watch: one single-row Table per event, column definitions on the first event only.
    import urllib.request

    rv = table["metadata"]["resourceVersion"]
    core.create_namespaced_config_map(NS, {"metadata": {"name": "b"}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "c"}})
    request = urllib.request.Request(f"{base}?watch=true&resourceVersion={rv}&timeoutSeconds=1",
                                     headers={"Accept": TABLE})
    with urllib.request.urlopen(request, timeout=10) as resp:
        events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert [(e["type"], e["object"]["rows"][0]["cells"][0]) for e in events] == [("ADDED", "b"), ("ADDED", "c")]
    assert events[0]["object"]["columnDefinitions"][0]["name"] == "Name"
    assert events[1]["object"]["columnDefinitions"] is None
    assert events[1]["object"]["metadata"]["resourceVersion"] == \
        events[1]["object"]["rows"][0]["object"]["metadata"]["resourceVersion"]


def test_openapi_documents(dc: Any, kubectl: Kubectl, tmp_path: Path) -> None:
    install_crd(kubectl, tmp_path)
    index = json.loads(_http(f"{dc.url}/openapi/v3")[2])["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/dev.ballast.io/v1"} <= set(index)
    url = index["apis/dev.ballast.io/v1"]["serverRelativeURL"]
    status, headers, body = _http(dc.url + url)
    assert status == 200 and "immutable" in headers["Cache-Control"]
    doc = json.loads(body)
    widget_schema = doc["components"]["schemas"]["io.ballast.dev.v1.Widget"]
    assert widget_schema["x-kubernetes-group-version-kind"] == [
        {"group": "dev.ballast.io", "version": "v1", "kind": "Widget"}]
    assert widget_schema["properties"]["spec"]["properties"]["replicas"] == {"type": "integer"}
    patch = doc["paths"]["/apis/dev.ballast.io/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    # A stale hash is redirected to the current document.
    stale = _http(f"{dc.url}/openapi/v3/apis/dev.ballast.io/v1?hash=0")
    assert stale[0] == 301 and stale[1]["Location"].endswith(url.split("?")[1])
    assert json.loads(_http(f"{dc.url}/openapi/v2")[2])["swagger"] == "2.0"
    # kube-openapi's protobuf content type has a dot where clients' Accept has an "@" (Go's mime parser
    # rejects the "@").
    _, v2_headers, _ = _http(f"{dc.url}/openapi/v2",
                             accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert v2_headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    explained = kubectl.run("explain", "widgets.spec").stdout
    assert "replicas\t<integer>" in explained


def test_create_generators_send_protobuf(kubectl: Kubectl, core: client.CoreV1Api) -> None:
    """``kubectl create <kind>`` posts protobuf bodies; the objects arrive intact."""
    kubectl.run("create", "namespace", "team-a")
    kubectl.run("create", "configmap", "settings", "-n", "team-a", "--from-literal=a=1", "--from-literal=b=2")
    kubectl.run("create", "secret", "generic", "creds", "-n", "team-a", "--from-literal=user=kafka")
    kubectl.run("create", "serviceaccount", "operator", "-n", "team-a")
    assert core.read_namespace("team-a").status.phase == "Active"
    assert core.read_namespaced_config_map("settings", "team-a").data == {"a": "1", "b": "2"}
    secret = core.read_namespaced_secret("creds", "team-a")
    assert secret.type == "Opaque" and secret.data == {"user": "a2Fma2E="}
    assert core.read_namespaced_service_account("operator", "team-a").metadata.name == "operator"
