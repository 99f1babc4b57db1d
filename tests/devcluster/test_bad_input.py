"""Bad input on built-in kinds gets kube-apiserver's 400/422 ``Status`` -- never a 500, never a silent write.

Requests are sent raw (``urllib``), since the typed client refuses to build most of these bodies; what is
stored is read back through the official ``kubernetes`` client. One cluster (no controllers, so nothing
else writes) serves the whole module: every case asserts that the global resourceVersion did not move,
i.e. nothing at all was written, and that the seeded objects read back unchanged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from devcluster.cluster import DevClusterConfig, DevClusterThread

NS = "default"
CM = f"/api/v1/namespaces/{NS}/configmaps"
STS = f"/apis/apps/v1/namespaces/{NS}/statefulsets"
PODS = f"/api/v1/namespaces/{NS}/pods"


def _sts(**spec: Any) -> dict[str, Any]:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web2"},
            "spec": {"serviceName": "web", "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}, **spec}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevClusterThread]:
    kubeconfig = Path(tmp_path_factory.mktemp("bad-input")) / "kubeconfig"
    thread = DevClusterThread(DevClusterConfig(kubeconfig=kubeconfig, controllers=False)).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def clients(cluster: DevClusterThread) -> Iterator[tuple[client.CoreV1Api, client.AppsV1Api]]:
    cfg = client.Configuration()
    kube_config.load_kube_config(config_file=str(cluster.config.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespaced_config_map(NS, {"metadata": {"name": "keep"}, "data": {"a": "1"}})
        sts = _sts(replicas=1)
        sts["metadata"]["name"] = "web"
        apps.create_namespaced_stateful_set(NS, sts)
        core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "main", "image": "busybox:1.36"}],
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}]}})
        yield core, apps


@pytest.fixture(autouse=True)
def _remove_strays(clients: tuple[client.CoreV1Api, client.AppsV1Api]) -> Iterator[None]:
    """If a case wrongly stored an object, remove it so that only that case fails, not every later one."""
    yield
    core, apps = clients
    core.delete_collection_namespaced_config_map(NS, field_selector="metadata.name!=keep")
    core.delete_collection_namespaced_pod(NS, field_selector="metadata.name!=p", grace_period_seconds=0)
    apps.delete_collection_namespaced_stateful_set(NS, field_selector="metadata.name!=web")


def _send(cluster: DevClusterThread, method: str, path: str, body: Any = None,
          content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": content_type} if data is not None else {}
    request = urllib.request.Request(cluster.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


DEEP = b"[" * 100_000 + b"]" * 100_000

# (id, method, path, body, content type, code, reason, message or message start)
CASES: list[tuple[str, str, str, Any, str, int, str, str]] = [
    # query parameters: apimachinery's conversion errors (400) and option validation (422)
    ("limit", "GET", f"{CM}?limit=abc", None, "", 400, "BadRequest",
     'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("list-timeout", "GET", f"{CM}?timeoutSeconds=1.5", None, "", 400, "BadRequest",
     'strconv.ParseInt: parsing "1.5": invalid syntax'),
    ("watch-timeout", "GET", f"{CM}?watch=true&timeoutSeconds=abc", None, "", 400, "BadRequest",
     'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("grace-query", "DELETE", f"{CM}/keep?gracePeriodSeconds=abc", None, "", 400, "BadRequest",
     'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("grace-body", "DELETE", f"{CM}/keep", {"gracePeriodSeconds": "30"}, "application/json", 400, "BadRequest",
     "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64"),
    ("propagation-query", "DELETE", f"{CM}/keep?propagationPolicy=Bogus", None, "", 422, "Invalid",
     'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Bogus": supported values: '
     '"Foreground", "Background", "Orphan", "nil"'),
    ("propagation-body", "DELETE", f"{STS}/web", {"propagationPolicy": "background"}, "application/json", 422,
     "Invalid", 'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "background"'),
    ("propagation-and-orphan", "DELETE", f"{CM}/keep", {"propagationPolicy": "Orphan", "orphanDependents": True},
     "application/json", 422, "Invalid", 'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid '
     'value: "Orphan": orphanDependents and deletionPropagation cannot be both set'),
    ("dry-run", "POST", f"{CM}?dryRun=true", {"metadata": {"name": "new"}}, "application/json", 422, "Invalid",
     'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"true"}: supported values: "All"'),
    ("list-match", "GET", f"{CM}?resourceVersion=1&resourceVersionMatch=Bogus", None, "", 422, "Invalid",
     'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported value: "Bogus": supported values: '
     '"Exact", "NotOlderThan", ""'),
    ("list-match-without-rv", "GET", f"{CM}?resourceVersionMatch=Exact", None, "", 422, "Invalid",
     'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden '
     "unless resourceVersion is provided"),
    ("list-rv", "GET", f"{CM}?resourceVersion=abc", None, "", 400, "BadRequest",
     'resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax'),
    # wrong JSON types in fields devcluster reads: Go's decoder fails before any validation (400)
    ("labels-string", "POST", CM, {"metadata": {"name": "new", "labels": "x"}}, "application/json", 400,
     "BadRequest", 'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal string into '
     "Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    ("configmap-data-number", "POST", CM, {"metadata": {"name": "new"}, "data": {"a": 1}}, "application/json", 400,
     "BadRequest", 'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number into '
     "Go struct field ConfigMap.data of type string"),
    ("replicas-string", "POST", STS, _sts(replicas="three"), "application/json", 400, "BadRequest",
     'StatefulSet in version "v1" cannot be handled as a StatefulSet: json: cannot unmarshal string into Go struct '
     "field StatefulSetSpec.spec.replicas of type int32"),
    ("replicas-fraction", "POST", STS, _sts(replicas=1.5), "application/json", 400, "BadRequest",
     'StatefulSet in version "v1" cannot be handled as a StatefulSet: json: cannot unmarshal number 1.5 into Go '
     "struct field StatefulSetSpec.spec.replicas of type int32"),
    ("replicas-huge", "POST", STS, _sts(replicas=1e30), "application/json", 400, "BadRequest",
     'StatefulSet in version "v1" cannot be handled as a StatefulSet: json: cannot unmarshal number 1e30 into Go '
     "struct field StatefulSetSpec.spec.replicas of type int32"),
    ("replicas-int32-overflow", "PUT", f"{STS}/web", {**_sts(replicas=2**31), "metadata": {"name": "web"}},
     "application/json", 400, "BadRequest", 'StatefulSet in version "v1" cannot be handled as a StatefulSet: json: '
     "cannot unmarshal number 2147483648 into Go struct field StatefulSetSpec.spec.replicas of type int32"),
    ("containers-string", "POST", PODS, {"metadata": {"name": "new"}, "spec": {"containers": "x"}},
     "application/json", 400, "BadRequest", 'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal '
     "string into Go struct field PodSpec.spec.containers of type []v1.Container"),
    ("container-port-string", "POST", PODS, {"metadata": {"name": "new"}, "spec": {"containers": [
        {"name": "c", "image": "i", "ports": [{"containerPort": "80"}]}]}}, "application/json", 400, "BadRequest",
     'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field '
     "ContainerPort.spec.containers.ports.containerPort of type int32"),
    ("update-labels-list", "PUT", f"{CM}/keep", {"metadata": {"name": "keep", "labels": ["a"]}, "data": {"a": "2"}},
     "application/json", 400, "BadRequest", 'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: '
     "cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    # a body whose kind is not the URL's resource
    ("kind-mismatch", "POST", CM, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "new"}},
     "application/json", 400, "BadRequest",
     'Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): '
     "unknown conversion"),
    ("kind-unknown", "PUT", f"{CM}/keep", {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "keep"}},
     "application/json", 400, "BadRequest", 'Widget in version "v1" cannot be handled as a ConfigMap: no kind '
     '"Widget" is registered for version "v1"'),
    # patches: the patched object fails to decode, a 422 on "patch"
    ("patch-merge", "PATCH", f"{CM}/keep", {"data": {"a": 1}}, "application/merge-patch+json", 422, "Invalid",
     'ConfigMap.data of type string'),
    ("patch-strategic", "PATCH", f"{STS}/web", {"spec": {"replicas": "3"}}, "application/strategic-merge-patch+json",
     422, "Invalid", 'StatefulSetSpec.spec.replicas of type int32'),
    ("patch-json", "PATCH", f"{PODS}/p", [{"op": "replace", "path": "/spec/containers", "value": "x"}],
     "application/json-patch+json", 422, "Invalid", "PodSpec.spec.containers of type []v1.Container"),
    # subresources decode their own types
    ("scale-put", "PUT", f"{STS}/web/scale", {"kind": "Scale", "apiVersion": "autoscaling/v1",
                                              "metadata": {"name": "web"}, "spec": "3"}, "application/json", 400,
     "BadRequest", 'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal string into Go struct '
     "field Scale.spec of type v1.ScaleSpec"),
    ("scale-patch", "PATCH", f"{STS}/web/scale", {"spec": {"replicas": "3"}}, "application/merge-patch+json", 422,
     "Invalid", "ScaleSpec.spec.replicas of type int32"),
    ("binding-target", "POST", f"{PODS}/p/binding", {"metadata": {"name": "p"}, "target": "node-1"},
     "application/json", 400, "BadRequest", 'Binding in version "v1" cannot be handled as a Binding: json: cannot '
     "unmarshal string into Go struct field Binding.target of type v1.ObjectReference"),
    # deeply nested JSON
    ("deep-create", "POST", CM, DEEP, "application/json", 400, "BadRequest", "json: exceeded max depth"),
    ("deep-patch", "PATCH", f"{CM}/keep", DEEP, "application/merge-patch+json", 400, "BadRequest",
     "json: exceeded max depth"),
]


@pytest.mark.parametrize(("method", "path", "body", "content_type", "code", "reason", "message"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_bad_input_is_rejected_and_nothing_changes(
        cluster: DevClusterThread, clients: tuple[client.CoreV1Api, client.AppsV1Api], method: str, path: str,
        body: Any, content_type: str, code: int, reason: str, message: str) -> None:
    core, apps = clients
    before = core.list_namespaced_config_map(NS).metadata.resource_version
    status, answer = _send(cluster, method, path, body, content_type)
    assert (status, answer["kind"], answer["status"], answer["reason"], answer["code"]) == \
        (code, "Status", "Failure", reason, code), answer
    if code == 422 and method == "PATCH":
        assert answer["details"]["causes"][0]["field"] == "patch"
        assert message in answer["message"]
    else:
        assert answer["message"].startswith(message), answer["message"]
    # Nothing was written anywhere (one global revision), and the seeded objects are intact.
    assert core.list_namespaced_config_map(NS).metadata.resource_version == before
    assert core.read_namespaced_config_map("keep", NS).data == {"a": "1"}
    assert apps.read_namespaced_stateful_set("web", NS).spec.replicas == 1
    pod = core.read_namespaced_pod("p", NS)
    assert pod.spec.containers[0].name == "main" and pod.spec.node_name is None
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ["keep"]
    assert [s.metadata.name for s in apps.list_namespaced_stateful_set(NS).items] == ["web"]


def test_valid_values_of_the_checked_types_still_pass(
        cluster: DevClusterThread, clients: tuple[client.CoreV1Api, client.AppsV1Api]) -> None:
    """The type check is not stricter than Go: null anywhere, a Quantity given as a number, a lenient bool
    query parameter and an int64 at its limit are all accepted."""
    core, _ = clients
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typed", "labels": None}, "spec": {
        "activeDeadlineSeconds": 2**63 - 1, "containers": [{"name": "c", "image": "i", "resources": {
            "limits": {"cpu": 1, "memory": "64Mi"}}, "ports": None}]}}
    status, answer = _send(cluster, "POST", f"{PODS}?dryRun=All", pod)
    assert status == 201, answer
    assert answer["spec"]["containers"][0]["resources"]["limits"] == {"cpu": 1, "memory": "64Mi"}
    # ?watch=yes is a watch (apimachinery reads any value but "0"/"false" as true).
    with urllib.request.urlopen(f"{cluster.url}{CM}?watch=yes&timeoutSeconds=1") as resp:
        events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "keep")]
    assert core.list_namespaced_pod(NS).items[0].metadata.name == "p"  # the dry run stored nothing


def test_custom_resource_body_of_another_type(
        cluster: DevClusterThread, clients: tuple[client.CoreV1Api, client.AppsV1Api]) -> None:
    """A custom resource body naming another kind is a 422 (``ValidateTypeMeta``), another group a 400."""
    from tests.conftest import wait_for

    ext = client.ApiextensionsV1Api(clients[0].api_client)
    ext.create_custom_resource_definition({
        "metadata": {"name": "gadgets.bad.example.com"},
        "spec": {"group": "bad.example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    wait_for(lambda: any(c.type == "Established" and c.status == "True" for c in
                         ext.read_custom_resource_definition("gadgets.bad.example.com").status.conditions or []),
             message="CRD Established")
    path = f"/apis/bad.example.com/v1/namespaces/{NS}/gadgets"
    status, answer = _send(cluster, "POST", path, {"apiVersion": "bad.example.com/v1", "kind": "Widget",
                                                   "metadata": {"name": "g"}})
    assert (status, answer["reason"]) == (422, "Invalid")
    assert answer["message"] == 'Gadget.bad.example.com "g" is invalid: kind: Invalid value: "Widget": must be Gadget'
    status, answer = _send(cluster, "POST", path, {"apiVersion": "other.example.com/v1", "kind": "Gadget",
                                                   "metadata": {"name": "g"}})
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert answer["message"] == ("the API version in the data (other.example.com/v1) does not match the expected "
                                 "API version (bad.example.com/v1)")
    custom = client.CustomObjectsApi(clients[0].api_client)
    assert custom.list_namespaced_custom_object("bad.example.com", "v1", NS, "gadgets")["items"] == []
