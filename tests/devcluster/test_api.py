"""API-semantics conformance of devcluster, exercised through the official kubernetes client."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from devcluster.cluster import DevClusterConfig, DevClusterThread


def _body(exc: ApiException) -> dict:
    return json.loads(exc.body)


def _cm(name: str, **data: str) -> dict:
    return {"metadata": {"name": name}, "data": dict(data)}


# -- create / read / update / delete -----------------------------------------------------------------
def test_configmap_crud_round_trip(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", _cm("a", x="1"))
    assert isinstance(created.metadata.resource_version, str)
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    got = core.read_namespaced_config_map("a", "default")
    assert got.data == {"x": "1"} and got.metadata.resource_version == created.metadata.resource_version
    got.data["x"] = "2"
    updated = core.replace_namespaced_config_map("a", "default", got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    status = core.delete_namespaced_config_map("a", "default")
    assert status["status"] == "Success" and status["details"]["name"] == "a"
    assert status["details"]["kind"] == "configmaps"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("a", "default")
    assert err.value.status == 404
    assert _body(err.value)["message"] == 'configmaps "a" not found'
    assert _body(err.value)["reason"] == "NotFound"


def test_resource_version_is_one_counter_across_kinds(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    rvs = [int(core.create_namespaced_config_map("default", _cm(f"c{i}")).metadata.resource_version)
           for i in range(3)]
    secret = core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    rvs.append(int(secret.metadata.resource_version))
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    listed = core.list_namespaced_config_map("default")
    assert int(listed.metadata.resource_version) >= rvs[-1]


def test_stale_update_conflicts_with_the_real_message(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", _cm("a", x="1"))
    fresh = core.read_namespaced_config_map("a", "default")
    fresh.data["x"] = "2"
    core.replace_namespaced_config_map("a", "default", fresh)
    first.data["x"] = "3"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("a", "default", first)
    assert err.value.status == 409
    body = _body(err.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "a": the object has been modified; '
                               "please apply your changes to the latest version and try again")


def test_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", _cm("a"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", _cm("a"))
    assert err.value.status == 409 and _body(err.value)["reason"] == "AlreadyExists"
    assert _body(err.value)["message"] == 'configmaps "a" already exists'


def test_generate_name(core: client.CoreV1Api) -> None:
    obj = core.create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}})
    assert obj.metadata.name.startswith("job-") and len(obj.metadata.name) == len("job-") + 5


def test_create_in_missing_namespace_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nope", _cm("a"))
    assert err.value.status == 404 and _body(err.value)["message"] == 'namespaces "nope" not found'


def test_invalid_name_is_422_with_causes(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", _cm("Not_Valid"))
    body = _body(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid"')
    assert body["details"]["causes"][0]["field"] == "metadata.name"


# -- no-op writes and generation ---------------------------------------------------------------------
def test_noop_write_persists_nothing(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", _cm("a", x="1"))
    again = core.replace_namespaced_config_map("a", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version
    patched = core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    assert patched.metadata.resource_version == created.metadata.resource_version
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                       resource_version=created.metadata.resource_version, timeout_seconds=1))
    assert events == []


def _sts(name: str, replicas: int = 0) -> dict:
    labels = {"app": name}
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}}


def test_generation_tracks_spec_only(apps: client.AppsV1Api) -> None:
    sts = apps.create_namespaced_stateful_set("default", _sts("web"))
    assert sts.metadata.generation == 1
    sts = apps.patch_namespaced_stateful_set("web", "default", {"metadata": {"labels": {"tier": "x"}}})
    assert sts.metadata.generation == 1
    sts = apps.patch_namespaced_stateful_set("web", "default", {"spec": {"replicas": 0, "minReadySeconds": 5}})
    assert sts.metadata.generation == 2
    status_patch = {"status": {"replicas": 0, "observedGeneration": 2}}
    sts = apps.patch_namespaced_stateful_set_status("web", "default", status_patch)
    assert sts.metadata.generation == 2 and sts.status.observed_generation == 2


def test_statefulset_defaults_match_a_real_server(apps: client.AppsV1Api) -> None:
    sts = apps.create_namespaced_stateful_set("default", _sts("web"))
    assert sts.spec.pod_management_policy == "OrderedReady"
    assert sts.spec.update_strategy.type == "RollingUpdate"
    assert sts.spec.update_strategy.rolling_update.partition == 0
    assert sts.spec.revision_history_limit == 10
    retention = sts.spec.persistent_volume_claim_retention_policy
    assert (retention.when_deleted, retention.when_scaled) == ("Retain", "Retain")
    container = sts.spec.template.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert sts.spec.template.spec.restart_policy == "Always"


def test_statefulset_forbidden_update_is_422(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_stateful_set("default", _sts("web"))
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set("web", "default", {"spec": {"serviceName": "other"}})
    body = _body(err.value)
    assert err.value.status == 422
    # The 1.33+ wording and set (kubernetes#130263 made revisionHistoryLimit mutable).
    assert body["message"] == (
        'StatefulSet.apps "web" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
        "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")


def test_statefulset_revision_history_limit_is_mutable(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_stateful_set("default", _sts("web"))
    assert created.spec.revision_history_limit == 10
    updated = apps.patch_namespaced_stateful_set("web", "default", {"spec": {"revisionHistoryLimit": 3}})
    assert updated.spec.revision_history_limit == 3
    assert updated.metadata.generation == created.metadata.generation + 1
    assert apps.read_namespaced_stateful_set("web", "default").spec.revision_history_limit == 3


def test_statefulset_names_and_service_names_are_dns_labels(apps: client.AppsV1Api) -> None:
    """The name becomes pod hostnames (DNS label since 1.26), serviceName their subdomain (checked since 1.33)."""
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_stateful_set("default", _sts("a.b"))
    assert err.value.status == 422
    assert _body(err.value)["message"] == \
        'StatefulSet.apps "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots'
    bad_service = _sts("web")
    bad_service["spec"]["serviceName"] = "Kafka_svc"
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_stateful_set("default", bad_service)
    assert err.value.status == 422
    assert _body(err.value)["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.serviceName",
        "message": 'Invalid value: "Kafka_svc": a lowercase RFC 1123 label must consist of lower case alphanumeric '
                   "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
                   "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"}]
    assert apps.list_namespaced_stateful_set("default").items == []


# -- patches -----------------------------------------------------------------------------------------
def test_patch_content_types(core: client.CoreV1Api, api_client: client.ApiClient) -> None:
    core.create_namespaced_config_map("default", _cm("a", x="1", y="2"))
    merged = core.patch_namespaced_config_map("a", "default", {"data": {"y": None, "z": "3"}})
    assert merged.data == {"x": "1", "z": "3"}
    jp = core.patch_namespaced_config_map("a", "default", [{"op": "replace", "path": "/data/x", "value": "9"}])
    assert jp.data["x"] == "9"


def test_resource_version_in_patch_is_a_precondition(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", _cm("a", x="1"))
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "2"}})
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("a", "default", {"metadata": {"resourceVersion":
                                                                       created.metadata.resource_version},
                                                          "data": {"x": "3"}})
    assert err.value.status == 409


def test_strategic_merge_on_pod_containers(core: client.CoreV1Api) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": "busybox:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "b", "image": "busybox:1"}]}}
    core.create_namespaced_pod("default", pod)
    patched = core.patch_namespaced_pod("p", "default", {"spec": {"containers": [{"name": "b",
                                                                                  "image": "busybox:2"}]}})
    images = {c.name: c.image for c in patched.spec.containers}
    assert images == {"a": "busybox:1", "b": "busybox:2"}
    assert patched.spec.containers[0].env[0].name == "A"


# -- delete, finalizers ------------------------------------------------------------------------------
def test_delete_response_bodies_follow_the_kind(core: client.CoreV1Api) -> None:
    core.create_namespaced_service("default", {"metadata": {"name": "svc"},
                                               "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}})
    svc = core.delete_namespaced_service("svc", "default")
    assert svc.metadata.name == "svc" and svc.spec.ports[0].port == 80
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    status = core.delete_namespaced_secret("s", "default")
    assert status["kind"] == "Status" and status["status"] == "Success"


def test_finalizers_hold_deletion_until_removed(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "a",
                                                                         "finalizers": ["example.com/hold"]}})
    stream = watch.Watch().stream(core.list_namespaced_config_map, "default",
                                  resource_version=created.metadata.resource_version, timeout_seconds=2)
    core.delete_namespaced_config_map("a", "default")
    held = core.read_namespaced_config_map("a", "default")
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": ["example.com/hold",
                                                                                      "example.com/new"]}})
    assert err.value.status == 422 and "no new finalizers can be added" in _body(err.value)["message"]
    core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("a", "default")
    types = [e["type"] for e in stream]
    assert types == ["MODIFIED", "DELETED"]


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", _cm("a"))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("a", "default", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="not-the-uid")))
    assert err.value.status == 409 and "Precondition failed: UID in precondition" in _body(err.value)["message"]


# -- list --------------------------------------------------------------------------------------------
def test_list_sorted_and_paged(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "b-ns"}})
    for name in ("c", "a", "b"):
        core.create_namespaced_config_map("default", _cm(name))
        core.create_namespaced_config_map("b-ns", _cm(name))
    everything = core.list_config_map_for_all_namespaces()
    keys = [(o.metadata.namespace, o.metadata.name) for o in everything.items]
    assert keys == sorted(keys)
    page1 = core.list_namespaced_config_map("default", limit=2)
    assert [o.metadata.name for o in page1.items] == ["a", "b"]
    assert page1.metadata._continue and page1.metadata.remaining_item_count == 1
    page2 = core.list_namespaced_config_map("default", limit=2, _continue=page1.metadata._continue)
    assert [o.metadata.name for o in page2.items] == ["c"] and not page2.metadata._continue


def test_list_resource_version_semantics(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    """resourceVersionMatch=Exact reads the past (410 once compacted), NotOlderThan the present, a future
    revision is 504, and pages of one list all show the first page's revision."""
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map("default", _cm(name, x="1"))
    rv0 = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "2"}})
    core.delete_namespaced_config_map("b", "default")
    core.create_namespaced_config_map("default", _cm("d", x="1"))

    then = core.list_namespaced_config_map("default", resource_version=rv0, resource_version_match="Exact")
    assert then.metadata.resource_version == rv0
    assert [(o.metadata.name, o.data["x"]) for o in then.items] == [("a", "1"), ("b", "1"), ("c", "1")]
    now = core.list_namespaced_config_map("default", resource_version=rv0, resource_version_match="NotOlderThan")
    assert [(o.metadata.name, o.data["x"]) for o in now.items] == [("a", "2"), ("c", "1"), ("d", "1")]
    assert int(now.metadata.resource_version) > int(rv0)
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", resource_version=str(int(now.metadata.resource_version) + 1000))
    assert err.value.status == 504 and _body(err.value)["reason"] == "Timeout"
    assert _body(err.value)["details"]["causes"] == [{"reason": "ResourceVersionTooLarge",
                                                      "message": "Too large resource version"}]

    # Paging: later pages show the objects as of the first page, whatever happened in between.
    page1 = core.list_namespaced_config_map("default", limit=2)
    assert [o.metadata.name for o in page1.items] == ["a", "c"]
    core.delete_namespaced_config_map("d", "default")
    core.create_namespaced_config_map("default", _cm("e"))
    page2 = core.list_namespaced_config_map("default", limit=2, _continue=page1.metadata._continue)
    assert [o.metadata.name for o in page2.items] == ["d"]
    assert page2.metadata.resource_version == page1.metadata.resource_version
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", limit=2, _continue=page1.metadata._continue, resource_version=rv0)
    assert err.value.status == 400
    assert _body(err.value)["message"] == "specifying resource version is not allowed when using continue"

    # After compaction (etcd's, here the fault injector's) the past is gone: 410 Expired.
    first = core.list_namespaced_config_map("default", limit=1)
    core.create_namespaced_config_map("default", _cm("b"))  # the list moves on after its first page
    dc.call(lambda c: c.faults.expire())
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", resource_version=rv0, resource_version_match="Exact")
    assert err.value.status == 410 and _body(err.value)["reason"] == "Expired"
    assert _body(err.value)["message"] == "The resourceVersion for the provided list is too old."
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", limit=1, _continue=first.metadata._continue)
    expired = _body(err.value)
    assert err.value.status == 410 and expired["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result.")
    # The 410 carries a token that continues (inconsistently) at the current revision.
    rest = core.list_namespaced_config_map("default", _continue=expired["metadata"]["continue"])
    assert [o.metadata.name for o in rest.items] == ["b", "c", "e"]


def test_label_and_field_selectors(core: client.CoreV1Api) -> None:
    for name, tier in (("a", "web"), ("b", "db"), ("c", None)):
        meta: dict = {"name": name}
        if tier:
            meta["labels"] = {"tier": tier}
        core.create_namespaced_config_map("default", {"metadata": meta})
    names = lambda **kw: [o.metadata.name for o in core.list_namespaced_config_map("default", **kw).items]  # noqa: E731
    assert names(label_selector="tier=web") == ["a"]
    assert names(label_selector="tier!=web") == ["b", "c"]
    assert names(label_selector="tier in (web,db)") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", field_selector="data.x=1")
    assert err.value.status == 400


# -- watch -------------------------------------------------------------------------------------------
def test_watch_resumes_from_a_resource_version(core: client.CoreV1Api) -> None:
    start = core.create_namespaced_config_map("default", _cm("a", x="1"))
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "2"}})
    core.create_namespaced_config_map("default", _cm("b"))
    core.delete_namespaced_config_map("a", "default")
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=start.metadata.resource_version,
        timeout_seconds=1)]
    assert events == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]


def test_watch_without_resource_version_starts_with_current_state(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", _cm("a"))
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", timeout_seconds=1)]
    assert events == [("ADDED", "a")]


def test_watch_sees_live_events_and_selector_transitions(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        for e in watch.Watch().stream(core.list_namespaced_config_map, "default", label_selector="team=kafka",
                                      resource_version=start, timeout_seconds=2):
            seen.append((e["type"], e["object"].metadata.name))

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"team": "kafka"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"team": "kafka"}}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"team": "other"}}})
    t.join()
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


@pytest.fixture
def small_window_cluster(tmp_path):
    thread = DevClusterThread(DevClusterConfig(watch_window=5, kubeconfig=tmp_path / "kc",
                                               controllers=False)).start()
    yield thread
    thread.stop()


def test_expired_resource_version_gets_410(small_window_cluster: DevClusterThread) -> None:
    from kubernetes import config as kube_config

    cfg = client.Configuration()
    kube_config.load_kube_config(config_file=str(small_window_cluster.config.kubeconfig),
                                 client_configuration=cfg)
    core = client.CoreV1Api(client.ApiClient(cfg))
    first = core.create_namespaced_config_map("default", _cm("a"))
    for i in range(10):
        core.create_namespaced_config_map("default", _cm(f"x{i}"))
    # The client's Watch retries a 410 once with the same resourceVersion, then raises.
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                  resource_version=first.metadata.resource_version, timeout_seconds=1))
    assert err.value.status == 410
    assert "too old resource version" in err.value.reason


def test_bookmarks_carry_the_latest_revision(core: client.CoreV1Api, api_client: client.ApiClient) -> None:
    cm = core.create_namespaced_config_map("default", _cm("a"))
    core.create_namespaced_secret("default", {"metadata": {"name": "unrelated"}})
    w = watch.Watch()
    events = list(w.stream(core.list_namespaced_config_map, "default", resource_version=cm.metadata.resource_version,
                           allow_watch_bookmarks=True, timeout_seconds=1))
    assert [e["type"] for e in events] and all(e["type"] == "BOOKMARK" for e in events)
    assert int(w.resource_version) > int(cm.metadata.resource_version)


def test_watch_list_sends_initial_events_then_marked_bookmark(dc: DevClusterThread,
                                                              core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", _cm("a"))
    core.create_namespaced_config_map("default", _cm("b"))
    import urllib.request

    query = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true" \
            "&timeoutSeconds=1"
    with urllib.request.urlopen(f"{dc.url}/api/v1/namespaces/default/configmaps?{query}") as resp:
        raw = resp.read()
    lines = [json.loads(x) for x in raw.splitlines() if x.strip()]
    assert [(ln["type"], ln["object"]["metadata"].get("name")) for ln in lines[:2]] == [("ADDED", "a"), ("ADDED", "b")]
    marker = lines[2]
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# -- bad input ---------------------------------------------------------------------------------------
def test_malformed_json_is_400_and_nothing_is_lost(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    import urllib.request

    core.create_namespaced_config_map("default", _cm("keep", x="1"))
    req = urllib.request.Request(f"{dc.url}/api/v1/namespaces/default/configmaps", data=b"{not json",
                                 method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    body = json.loads(err.value.read())
    assert err.value.code == 400 and body["kind"] == "Status" and body["reason"] == "BadRequest"
    assert core.read_namespaced_config_map("keep", "default").data == {"x": "1"}


def test_unknown_resource_is_404(dc: DevClusterThread) -> None:
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{dc.url}/apis/example.com/v1/namespaces/default/widgets")
    assert err.value.code == 404 and json.loads(err.value.read())["reason"] == "NotFound"


# -- discovery and fault injection -------------------------------------------------------------------
def test_discovery_lists_subresources(api_client: client.ApiClient) -> None:
    resources = client.AppsV1Api(api_client).get_api_resources()
    names = {r.name: r for r in resources.resources}
    assert "statefulsets/status" in names and "statefulsets/scale" in names
    assert names["statefulsets/scale"].kind == "Scale" and names["statefulsets/scale"].group == "autoscaling"
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "policy", "coordination.k8s.io", "apiextensions.k8s.io"} <= groups


def test_injected_faults_hit_the_next_matching_requests(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    dc.call(lambda c: c.faults.fail_next(2, 500, verb="create", resource="configmaps"))
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_config_map("default", _cm("a"))
        assert err.value.status == 500
    assert core.create_namespaced_config_map("default", _cm("a")).metadata.name == "a"
    # urllib3 honours Retry-After on 429 and retries a few times, as it would against a real server.
    dc.call(lambda c: c.faults.fail_next(1, 429, verb="get"))
    assert core.read_namespaced_config_map("a", "default").metadata.name == "a"
    assert dc.call(lambda c: c.faults.injected[-1]) == ("get", "configmaps", "a", 429)
    dc.call(lambda c: c.faults.fail_next(20, 429, verb="get"))
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("a", "default")
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "1"
    dc.call(lambda c: c.faults.clear())


def test_scale_subresource_for_statefulsets(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_stateful_set("default", _sts("web"))
    scale = apps.read_namespaced_stateful_set_scale("web", "default")
    assert scale.spec.replicas == 0 and scale.status.selector == "app=web"
    apps.patch_namespaced_stateful_set_scale("web", "default", {"spec": {"replicas": 2}})
    assert apps.read_namespaced_stateful_set("web", "default").spec.replicas == 2


def test_secret_string_data_is_folded_into_data(core: client.CoreV1Api) -> None:
    import base64

    created = core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "type": "",
                                                        "stringData": {"password": "hunter2"}})
    assert created.type == "Opaque" and created.string_data is None
    assert base64.b64decode(created.data["password"]) == b"hunter2"


def test_pods_binding_subresource_assigns_the_node(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    # A scheduler nobody runs, so only this test's binding places the pod.
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {
        "schedulerName": "test-scheduler", "containers": [{"name": "c", "image": "busybox:1"}]}})
    node = core.list_node().items[0]
    # spec.nodeName is set through pods/binding only; an update may not set it.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod("p", "default", {"spec": {"nodeName": node.metadata.name}})
    assert err.value.status == 422
    assert _body(err.value)["details"]["causes"][0]["field"] == "spec"
    assert _body(err.value)["message"].startswith('Pod "p" is invalid: spec: Forbidden: pod updates may not change '
                                                  "fields other than `spec.containers[*].image`")
    assert core.read_namespaced_pod("p", "default").spec.node_name is None
    # kube-apiserver answers a binding with a Status, which the Python client cannot read as a V1Binding
    # (kubernetes-client/python#547), hence the raw response.
    resp = core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"}, "target": {
        "kind": "Node", "name": node.metadata.name}}, _preload_content=False)
    assert resp.status == 201 and json.loads(resp.data)["status"] == "Success"
    pod = core.read_namespaced_pod("p", "default")
    assert pod.spec.node_name == node.metadata.name
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert scheduled.status == "True"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"},
                                                            "target": {"kind": "Node", "name": "other"}},
                                           _preload_content=False)
    assert err.value.status == 409 and "is already assigned to node" in _body(err.value)["message"]


def test_pod_tolerations_may_only_be_added(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {
        "schedulerName": "test-scheduler", "containers": [{"name": "c", "image": "busybox:1"}]}})
    defaults = core.read_namespaced_pod("p", "default").spec.tolerations
    assert [t.key for t in defaults] == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    extra = {"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}
    # Adding one (JSON patch append) and changing an existing one's tolerationSeconds are allowed.
    core.patch_namespaced_pod("p", "default", [{"op": "add", "path": "/spec/tolerations/-", "value": extra},
                                               {"op": "replace", "path": "/spec/tolerations/0/tolerationSeconds",
                                                "value": 60}])
    tolerations = core.read_namespaced_pod("p", "default").spec.tolerations
    assert [(t.key, t.toleration_seconds) for t in tolerations] == [
        ("node.kubernetes.io/not-ready", 60), ("node.kubernetes.io/unreachable", 300), ("dedicated", None)]
    # Removing or changing one is not (a strategic merge patch replaces the whole list).
    for patch in ({"spec": {"tolerations": [extra]}},
                  [{"op": "replace", "path": "/spec/tolerations/2/value", "value": "zookeeper"}]):
        with pytest.raises(ApiException) as err:
            core.patch_namespaced_pod("p", "default", patch)
        assert err.value.status == 422
        assert _body(err.value)["message"] == ('Pod "p" is invalid: spec.tolerations: Forbidden: existing toleration '
                                               "can not be modified except its tolerationSeconds")
    assert len(core.read_namespaced_pod("p", "default").spec.tolerations) == 3


def test_status_writes_are_a_separate_fault_target(dc: DevClusterThread, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_stateful_set("default", _sts("web"))
    dc.call(lambda c: c.faults.fail_next(1, 500, verb="patch", resource="statefulsets"))
    apps.patch_namespaced_stateful_set_status("web", "default", {"status": {"replicas": 0}})
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set("web", "default", {"metadata": {"labels": {"a": "b"}}})
    assert err.value.status == 500
