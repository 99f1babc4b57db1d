"""Watch edge cases of devcluster as kube-apiserver's watch cache serves them, seen through real clients.

- an object leaving a watcher's selector arrives as DELETED carrying its previous state (the one that
  matched) stamped with the event's resourceVersion (the cacher sends ``PrevObject``);
- a plain watch from a revision the server has not reached yet is accepted and sends only later events;
- a watch-list (``sendInitialEvents``) from such a revision waits a bounded time for it, then fails with
  one ERROR event: 504 Timeout ``Too large resource version``.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.watch.watch import iter_resp_lines

import devcluster.watch as dc_watch
from devcluster.cluster import DevClusterConfig, DevClusterThread
from tests.conftest import wait_for

NS = "default"


@pytest.fixture
def devcluster_config() -> DevClusterConfig:
    """No controllers: nothing but the test writes, so revisions are predictable (no lease renewals)."""
    return DevClusterConfig(bookmark_interval=0.5, controllers=False)


def _cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


def test_leaving_the_selector_is_deleted_with_the_previous_object(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, _cm("a", team="kafka", tier="1"))
    w = watch.Watch()
    seen: list[tuple[str, dict[str, Any]]] = []
    moved = None
    # The ADDED comes from the event log; the DELETED is live (written once the ADDED was seen).
    for ev in w.stream(core.list_namespaced_config_map, NS, label_selector="team=kafka", resource_version=start,
                       timeout_seconds=10):
        seen.append((ev["type"], ev["raw_object"]))
        if ev["type"] == "ADDED":
            moved = core.patch_namespaced_config_map("a", NS, {"metadata": {"labels": {"team": "other"}},
                                                               "data": {"k": "v"}})
        else:
            w.stop()
    assert moved is not None and [t for t, _ in seen] == ["ADDED", "DELETED"]
    gone = seen[1][1]
    # The state the watcher last saw matching, not the new one it can no longer see ...
    assert gone["metadata"]["labels"] == {"team": "kafka", "tier": "1"} and "data" not in gone
    # ... at the revision of the change, so resuming from it does not replay the change.
    assert gone["metadata"]["resourceVersion"] == moved.metadata.resource_version
    assert w.resource_version == moved.metadata.resource_version
    assert gone["kind"] == "ConfigMap" and gone["apiVersion"] == "v1"
    # The object itself was not rewritten: a watcher without the selector sees the new state.
    unfiltered = [(e["type"], e["object"].metadata.labels) for e in watch.Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=1)]
    assert unfiltered == [("ADDED", {"team": "kafka", "tier": "1"}), ("MODIFIED", {"team": "other", "tier": "1"})]


def test_resuming_a_selector_watch_replays_the_previous_object(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, _cm("b", team="kafka"))
    moved = core.patch_namespaced_config_map("b", NS, {"metadata": {"labels": {"team": "other"}}})
    events = [(e["type"], e["raw_object"]) for e in watch.Watch().stream(
        core.list_namespaced_config_map, NS, label_selector="team=kafka", resource_version=start, timeout_seconds=1)]
    assert [t for t, _ in events] == ["ADDED", "DELETED"]
    assert events[1][1]["metadata"]["labels"] == {"team": "kafka"}
    assert events[1][1]["metadata"]["resourceVersion"] == moved.metadata.resource_version


def test_watch_from_a_future_revision_sends_only_later_events(core: client.CoreV1Api) -> None:
    current = int(core.list_namespaced_config_map(NS).metadata.resource_version)
    resp = core.list_namespaced_config_map(NS, watch=True, resource_version=str(current + 2), timeout_seconds=10,
                                           _preload_content=False)
    try:
        # The stream is open (headers sent): these three writes are live events at current+1..+3.
        made = [core.create_namespaced_config_map(NS, _cm(f"f{i}")) for i in (1, 2, 3)]
        assert [int(m.metadata.resource_version) for m in made] == [current + 1, current + 2, current + 3]
        first = json.loads(next(iter_resp_lines(resp)))
    finally:
        resp.close()
        resp.release_conn()
    # Only what happened after the requested revision, as the cacher's watchers filter.
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "f3"


def _watch_list(dc: DevClusterThread, rv: int) -> list[dict[str, Any]]:
    query = (f"watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
             f"&resourceVersion={rv}&timeoutSeconds=1")
    with urllib.request.urlopen(f"{dc.url}/api/v1/namespaces/{NS}/configmaps?{query}", timeout=20) as resp:
        assert resp.status == 200
        return [json.loads(x) for x in resp.read().splitlines() if x.strip()]


def test_watch_list_from_a_revision_never_reached_is_504_too_large(
        dc: DevClusterThread, core: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dc_watch, "TOO_LARGE_RV_WAIT", 0.3)  # kube-apiserver waits 3 s
    current = int(core.list_namespaced_config_map(NS).metadata.resource_version)
    lines = _watch_list(dc, current + 100)
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    status = lines[0]["object"]
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert (status["code"], status["reason"]) == (504, "Timeout")
    assert status["message"] == f"Timeout: Too large resource version: {current + 100}, current: {current}"
    assert status["details"] == {"causes": [{"reason": "ResourceVersionTooLarge",
                                             "message": "Too large resource version"}], "retryAfterSeconds": 1}


def _configmap_watchers(dc: DevClusterThread) -> int:
    return dc.call(lambda c: len(c.api.store._subs.get("/configmaps", ())))


def test_watch_list_waits_for_a_revision_reached_soon(dc: DevClusterThread, core: client.CoreV1Api) -> None:
    current = int(core.list_namespaced_config_map(NS).metadata.resource_version)
    before = _configmap_watchers(dc)
    result: list[list[dict[str, Any]]] = []
    reader = threading.Thread(target=lambda: result.append(_watch_list(dc, current + 1)))
    reader.start()
    try:
        # Once the request is subscribed (and so waiting), the revision it asked for is written.
        wait_for(lambda: _configmap_watchers(dc) > before, message="the watch-list request is waiting")
        made = core.create_namespaced_config_map(NS, _cm("late"))
    finally:
        reader.join(20)
    lines = result[0]
    assert [(ln["type"], ln["object"]["metadata"].get("name")) for ln in lines[:2]] == [
        ("ADDED", "late"), ("BOOKMARK", None)]
    marker = lines[1]["object"]["metadata"]
    assert marker["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(marker["resourceVersion"]) >= int(made.metadata.resource_version) == current + 1
