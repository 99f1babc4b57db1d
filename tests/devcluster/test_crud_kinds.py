"""Create / read / list / replace / delete through the typed kubernetes client for the kinds the
operator uses that other tests only read (ServiceAccount, ControllerRevision, PodDisruptionBudget,
Lease), and writes whose request carries no Content-Type (the server takes JSON, as kube-apiserver).

Each response is deserialised into the client's models, so a field of the wrong type or shape fails here.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from devcluster.cluster import DevClusterConfig, DevClusterThread

NS = "default"
MODIFIED_TEXT = "the object has been modified; please apply your changes to the latest version and try again"


@pytest.fixture
def devcluster_config() -> DevClusterConfig:
    return DevClusterConfig(bookmark_interval=0.5, controllers=False)


@dataclass
class Kind:
    """How the typed client spells CRUD for one kind, a body, and a change to make to it."""

    api: Callable[[client.ApiClient], Any]
    suffix: str  # delete_namespaced_<suffix>, ...
    qualified: str  # how the server names the resource in messages
    model: type
    body: dict[str, Any]
    change: Callable[[Any], None]  # mutate the typed object for a replace
    changed: Callable[[Any], bool]  # the change is in the server's answer
    returns_object_on_delete: bool = False

    def call(self, api: Any, verb: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(api, f"{verb}_namespaced_{self.suffix}")(*args, **kwargs)


def _set_lease_holder(lease: client.V1Lease) -> None:
    lease.spec.holder_identity = "replica-b"
    lease.spec.lease_transitions = 1
    lease.spec.renew_time = dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


KINDS = {
    "serviceaccount": Kind(
        client.CoreV1Api, "service_account", "serviceaccounts", client.V1ServiceAccount,
        {"metadata": {"name": "x"}, "automountServiceAccountToken": False},
        lambda o: setattr(o, "image_pull_secrets", [client.V1LocalObjectReference(name="registry")]),
        lambda o: [s.name for s in o.image_pull_secrets or []] == ["registry"] and o.automount_service_account_token
        is False, returns_object_on_delete=True),
    "controllerrevision": Kind(
        client.AppsV1Api, "controller_revision", "controllerrevisions.apps", client.V1ControllerRevision,
        {"metadata": {"name": "x", "labels": {"app": "web"}}, "revision": 1,
         "data": {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}},
        lambda o: setattr(o, "revision", 2),
        lambda o: o.revision == 2 and o.data == {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}),
    "poddisruptionbudget": Kind(
        client.PolicyV1Api, "pod_disruption_budget", "poddisruptionbudgets.policy", client.V1PodDisruptionBudget,
        {"metadata": {"name": "x"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "kafka"}}}},
        lambda o: setattr(o.spec, "max_unavailable", "25%"),
        lambda o: o.spec.max_unavailable == "25%" and o.spec.selector.match_labels == {"app": "kafka"}
        and o.metadata.generation == 2),
    "lease": Kind(
        client.CoordinationV1Api, "lease", "leases.coordination.k8s.io", client.V1Lease,
        {"metadata": {"name": "x"}, "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15,
                                             "acquireTime": "2030-01-01T00:00:00.000000Z",
                                             "renewTime": "2030-01-01T00:00:00.000000Z"}},
        _set_lease_holder,
        lambda o: o.spec.holder_identity == "replica-b" and o.spec.lease_transitions == 1
        and o.spec.renew_time == dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
        and o.spec.lease_duration_seconds == 15),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_crud_through_the_typed_client(api_client: client.ApiClient, kind: str) -> None:
    k = KINDS[kind]
    api = k.api(api_client)
    created = k.call(api, "create", NS, k.body)
    assert isinstance(created, k.model) and created.metadata.name == "x" and created.metadata.uid
    read = k.call(api, "read", "x", NS)
    assert isinstance(read, k.model) and read.metadata.resource_version == created.metadata.resource_version
    listed = k.call(api, "list", NS)
    assert [i.metadata.name for i in listed.items] == ["x"]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)

    k.change(read)
    replaced = k.call(api, "replace", "x", NS, read)
    assert isinstance(replaced, k.model) and k.changed(replaced), replaced
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert k.changed(k.call(api, "read", "x", NS))

    # Replacing from the stale copy loses the race, with the real message.
    k.change(created)
    with pytest.raises(ApiException) as err:
        k.call(api, "replace", "x", NS, created)
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == f'Operation cannot be fulfilled on {k.qualified} "x": {MODIFIED_TEXT}'

    gone = k.call(api, "delete", "x", NS)
    if k.returns_object_on_delete:  # ServiceAccount's registry returns the deleted object
        assert isinstance(gone, k.model) and gone.metadata.name == "x"
    else:
        # The others answer a Status naming what went (details.kind is the resource, as upstream sets it).
        resource, _, group = k.qualified.partition(".")
        assert gone["kind"] == "Status" and gone["status"] == "Success"
        assert gone["details"] == {"name": "x", "group": group, "kind": resource, "uid": created.metadata.uid}
    with pytest.raises(ApiException) as err:
        k.call(api, "read", "x", NS)
    assert err.value.status == 404 and json.loads(err.value.body)["message"] == f'{k.qualified} "x" not found'
    assert k.call(api, "list", NS).items == []


def _raw(dc: DevClusterThread, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One request with exactly these headers: http.client adds Content-Length, never Content-Type."""
    url = urlparse(dc.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body).encode(), headers={"Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_writes_without_content_type_are_json(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    path = f"/api/v1/namespaces/{NS}/configmaps"
    code, created = _raw(dc, "POST", path, {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "plain"}, "data": {"k": "1"}})
    assert code == 201 and created["metadata"]["name"] == "plain"
    created["data"] = {"k": "2"}
    code, replaced = _raw(dc, "PUT", f"{path}/plain", created)
    assert code == 200 and replaced["data"] == {"k": "2"}
    assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert core.read_namespaced_config_map("plain", NS).data == {"k": "2"}
