"""devcluster's fault injection (``cluster.faults``), observed through the official kubernetes client.

A cluster without controllers: nothing but the test talks to the server, so an armed rule or watch
fault is consumed by the test's own request and by nothing else.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from devcluster.cluster import DevClusterConfig, DevClusterThread

NS = "default"
MODIFIED_TEXT = "the object has been modified; please apply your changes to the latest version and try again"


@pytest.fixture
def devcluster_config() -> DevClusterConfig:
    return DevClusterConfig(bookmark_interval=0.5, controllers=False)


def _sts(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"metadata": {"name": name}, "spec": {
        "replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def _status(err: ApiException) -> dict[str, Any]:
    return json.loads(err.body)  # type: ignore[no-any-return]


def test_injected_conflict_reads_like_a_lost_update_race(dc: DevClusterThread, core: client.CoreV1Api,
                                                         apps: client.AppsV1Api) -> None:
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}, "data": {"x": "1"}})
    dc.call(lambda c: c.faults.fail_next(1, 409, verb="update", resource="configmaps"))
    cm.data = {"x": "2"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("a", NS, cm)
    status = _status(err.value)
    assert (err.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == f'Operation cannot be fulfilled on configmaps "a": {MODIFIED_TEXT}'
    assert status["details"] == {"name": "a", "kind": "configmaps"}
    assert core.read_namespaced_config_map("a", NS).data == {"x": "1"}, "a failed write changed nothing"
    assert core.replace_namespaced_config_map("a", NS, cm).data == {"x": "2"}, "the rule hit once"

    # A subresource write is named after its main resource (group-qualified), as upstream's registry does.
    apps.create_namespaced_stateful_set(NS, _sts("web"))
    dc.call(lambda c: c.faults.fail_next(1, 409, verb="patch", resource="statefulsets/status"))
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set_status("web", NS, {"status": {"availableReplicas": 0}})
    status = _status(err.value)
    assert status["message"] == f'Operation cannot be fulfilled on statefulsets.apps "web": {MODIFIED_TEXT}'
    assert status["details"] == {"name": "web", "group": "apps", "kind": "statefulsets"}


def test_scale_writes_are_their_own_fault_target(dc: DevClusterThread, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_stateful_set(NS, _sts("web"))
    dc.call(lambda c: c.faults.fail_next(1, 409, resource="statefulsets/scale"))
    # A write of the main resource is not a /scale write: the rule stays armed.
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": 3}})
    assert err.value.status == 409
    assert _status(err.value)["message"] == f'Operation cannot be fulfilled on statefulsets.apps "web": {MODIFIED_TEXT}'
    assert dc.call(lambda c: c.faults.injected[-1]) == ("update", "statefulsets/scale", "web", 409)
    assert apps.read_namespaced_stateful_set("web", NS).spec.replicas == 2
    assert apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": 3}}).spec.replicas == 3

    # And a rule for the main resource does not hit /scale writes (as with /status).
    dc.call(lambda c: c.faults.fail_next(1, 500, verb="update", resource="statefulsets"))
    scale = apps.read_namespaced_stateful_set_scale("web", NS)
    scale.spec.replicas = 4
    assert apps.replace_namespaced_stateful_set_scale("web", NS, scale).spec.replicas == 4
    sts = apps.read_namespaced_stateful_set("web", NS)
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_stateful_set("web", NS, sts)
    assert err.value.status == 500 and _status(err.value)["message"] == "Internal error occurred: injected fault"


def test_dropping_the_next_watch_event_ends_the_stream_before_it(dc: DevClusterThread,
                                                                 core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    resp = core.list_namespaced_config_map(NS, watch=True, resource_version=start, timeout_seconds=10,
                                           _preload_content=False)
    try:
        dc.call(lambda c: c.faults.drop_next_watch_events(1))
        core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
        # The stream ends where the event was due, without sending it.
        assert list(iter_resp_lines(resp)) == []
    finally:
        resp.close()
        resp.release_conn()
    # Nothing is lost: resuming from the last revision the client saw replays the event, and the
    # fault was used up, so the next live event flows.
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 1:
            core.create_namespaced_config_map(NS, {"metadata": {"name": "b"}})
        else:
            w.stop()
    assert seen == [("ADDED", "a"), ("ADDED", "b")]


def test_expired_revisions_and_dropped_watches_make_the_client_watch_raise_410(
        dc: DevClusterThread, core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    w = watch.Watch()
    seen = []
    # No timeout_seconds: the client's Watch resumes a stream that ends from its last resourceVersion.
    with pytest.raises(ApiException) as err:
        for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=start, _request_timeout=10):
            seen.append((ev["type"], ev["object"].metadata.name))
            # Another kind moves the revision past what this watcher saw; then history is compacted
            # up to it and the stream is cut, as after an apiserver restart with a compacted etcd.
            core.create_namespaced_secret(NS, {"metadata": {"name": "elsewhere"}})
            dc.call(lambda c: c.faults.expire())
            dc.call(lambda c: c.faults.drop_watches())
    assert seen == [("ADDED", "a")]
    # The client retried once from its revision, got 410 again, and gave up with the server's Status.
    assert err.value.status == 410
    assert err.value.reason.startswith("Expired: too old resource version: ")
    assert w.resource_version == core.read_namespaced_config_map("a", NS).metadata.resource_version
