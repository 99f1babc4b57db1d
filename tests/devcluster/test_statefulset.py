"""The StatefulSet controller, observed only through the official ``kubernetes`` client.

When a pod becomes Ready is the test's decision (``Readiness``): through the simulated kubelet's test hook
every pod of the set is held unready until the test releases it; without a kubelet the test writes the
status a kubelet would through ``/status``. Ordering claims ("web-1 is created only after web-0 is Ready",
"web-1 is deleted only once web-2 is gone") are checked on a watch log of every pod and claim event with its
resourceVersion, and "nothing happens while ..." claims after the controller has handled every event.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from devcluster.cluster import DevClusterConfig, DevClusterThread
from devcluster.controllers.kubelet import Kubelet
from tests.conftest import wait_for

NS = "default"


# -- objects ------------------------------------------------------------------------------------------------
def sts_body(replicas: int = 3, *, name: str = "web", policy: str = "OrderedReady",
             update_strategy: dict[str, Any] | None = None, claims: bool = True,
             retention: dict[str, str] | None = None, start: int | None = None,
             min_ready_seconds: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name, "tier": "db"}},
                     "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]}},
    }
    if claims:
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": "data", "labels": {"kind": "data"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }]
    if update_strategy is not None:
        spec["updateStrategy"] = update_strategy
    if retention is not None:
        spec["persistentVolumeClaimRetentionPolicy"] = retention
    if start is not None:
        spec["ordinals"] = {"start": start}
    if min_ready_seconds is not None:
        spec["minReadySeconds"] = min_ready_seconds
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": spec}


def update_sts(apps: client.AppsV1Api, mutate: Callable[[client.V1StatefulSet], None],
               name: str = "web") -> client.V1StatefulSet:
    """Read-modify-replace, retrying the conflicts the controller's own status writes cause."""
    for _ in range(50):
        sts = apps.read_namespaced_stateful_set(name, NS)
        mutate(sts)
        try:
            return apps.replace_namespaced_stateful_set(name, NS, sts)
        except ApiException as err:
            if err.status != 409:
                raise
    raise AssertionError("could not update the StatefulSet")


def set_image(image: str) -> Callable[[client.V1StatefulSet], None]:
    def mutate(sts: client.V1StatefulSet) -> None:
        sts.spec.template.spec.containers[0].image = image
    return mutate


def set_replicas(n: int) -> Callable[[client.V1StatefulSet], None]:
    def mutate(sts: client.V1StatefulSet) -> None:
        sts.spec.replicas = n
    return mutate


# -- readiness under the test's control ---------------------------------------------------------------
def pod_is_ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        pod = core.read_namespaced_pod(name, NS)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def set_pod_status(core: client.CoreV1Api, name: str, phase: str, ready: bool) -> None:
    """Write phase and Ready/ContainersReady via ``/status``, as a kubelet reports them."""
    flag = "True" if ready else "False"
    for _ in range(50):
        pod = core.read_namespaced_pod(name, NS)
        conditions = {c.type: c for c in pod.status.conditions or []}
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        for ctype in ("ContainersReady", "Ready"):
            if conditions.get(ctype) is None or conditions[ctype].status != flag:
                conditions[ctype] = client.V1PodCondition(type=ctype, status=flag, last_transition_time=now)
        pod.status.phase = phase
        pod.status.conditions = list(conditions.values())
        try:
            core.replace_namespaced_pod_status(name, NS, pod)
            return
        except ApiException as err:
            if err.status != 409:
                raise
    raise AssertionError(f"could not write the status of pod {name}")


class Readiness:
    """Keeps the set's pods unready until the test releases them, one pod incarnation at a time.

    With the simulated kubelet this goes through its test hook: every pod labelled ``app=web`` is
    ``never_ready`` (Running, Ready=False) until ``release`` makes that pod (by uid, so a re-created pod is
    held again) ``normal``. Without a kubelet the test writes the status a kubelet would, via ``/status``.
    """

    def __init__(self, dc: DevClusterThread, core: client.CoreV1Api) -> None:
        self.dc, self.core = dc, core
        self.kubelet = dc.call(lambda c: any(isinstance(x, Kubelet) for x in c.controllers))
        if self.kubelet:
            dc.call(lambda c: Kubelet.of(c).set_behavior("app=web", "never_ready"))

    def _behave(self, name: str, behavior: str) -> None:
        uid = self.core.read_namespaced_pod(name, NS).metadata.uid
        self.dc.call(lambda c: Kubelet.of(c).set_behavior(lambda pod: pod["metadata"].get("uid") == uid, behavior))

    def release(self, name: str) -> None:
        """Make the pod Running and Ready, and wait until the API shows it."""
        if self.kubelet:
            self._behave(name, "normal")
        else:
            set_pod_status(self.core, name, "Running", True)
        wait_for(lambda: pod_is_ready(self.core, name), message=f"{name} Ready")

    def hold(self, name: str) -> None:
        """Make a Ready pod unready again (a failing readiness probe)."""
        if self.kubelet:
            self._behave(name, "never_ready")
        else:
            set_pod_status(self.core, name, "Running", False)
        wait_for(lambda: not pod_is_ready(self.core, name), message=f"{name} not Ready")

    def bring_up(self, names: list[str], revision: str | None = None) -> None:
        """Wait for each pod in turn (at ``revision``) and release it."""
        for name in names:
            wait_for(lambda n=name: live_pod(self.core, n, revision),
                     message=f"pod {name} at {revision or 'any revision'}")
            self.release(name)


def terminating_or_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        return core.read_namespaced_pod(name, NS).metadata.deletion_timestamp is not None
    except ApiException as err:
        if err.status == 404:
            return True
        raise


def live_pod(core: client.CoreV1Api, name: str, revision: str | None = None) -> client.V1Pod | None:
    """The pod if it exists, is not terminating and (optionally) is at ``revision``."""
    try:
        pod = core.read_namespaced_pod(name, NS)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    if pod.metadata.deletion_timestamp is not None:
        return None
    if revision is not None and (pod.metadata.labels or {}).get("controller-revision-hash") != revision:
        return None
    return pod


def pod_names(core: client.CoreV1Api) -> list[str]:
    return sorted(p.metadata.name for p in core.list_namespaced_pod(NS).items)


def wait_status(apps: client.AppsV1Api, name: str = "web", **expected: Any) -> client.V1StatefulSetStatus:
    """Wait until every given status field has the expected value (omitted int fields count as 0)."""
    def check() -> client.V1StatefulSetStatus | None:
        status = apps.read_namespaced_stateful_set_status(name, NS).status
        for key, want in expected.items():
            got = getattr(status, key)
            if isinstance(want, int) and got is None:
                got = 0
            if got != want:
                return None
        return status
    return wait_for(check, message=f"status {expected}")  # type: ignore[return-value]


def controller_idle(dc: DevClusterThread) -> None:
    """Let the StatefulSet controller handle every event delivered so far."""
    from devcluster.controllers.statefulset import StatefulSetController

    def idle(cluster: Any) -> Any:
        ctl = next(c for c in cluster.controllers if isinstance(c, StatefulSetController))
        return ctl.wait_idle()

    dc.call(idle)


def events_of(core: client.CoreV1Api, name: str = "web") -> list[client.CoreV1Event]:
    return core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items


# -- a watch log with resourceVersions -------------------------------------------------------------------
@dataclass
class Seen:
    rv: int
    type: str
    name: str
    obj: dict[str, Any]
    at: float  # wall clock when the event arrived here

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"]["uid"])


def added(s: Seen) -> bool:
    return s.type == "ADDED"


def _is_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def ready(s: Seen) -> bool:
    return s.type != "DELETED" and _is_ready(s.obj)


def deleting(s: Seen) -> bool:
    """The first sign of a deletion: graceful (deletionTimestamp) or immediate (DELETED)."""
    return s.type == "DELETED" or bool(s.obj["metadata"].get("deletionTimestamp"))


class WatchLog:
    """Every ADDED/MODIFIED/DELETED event of one namespaced resource, from a list taken at construction."""

    def __init__(self, list_fn: Callable[..., Any]) -> None:
        self._list_fn = list_fn
        self._rv = list_fn(NS).metadata.resource_version
        self._lock = threading.Lock()
        self._events: list[Seen] = []
        self._watch = watch.Watch()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._watch.stream(self._list_fn, NS, resource_version=self._rv):
                if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                raw = event["raw_object"]
                seen = Seen(int(raw["metadata"]["resourceVersion"]), event["type"], raw["metadata"]["name"], raw,
                            time.time())
                with self._lock:
                    self._events.append(seen)
        except Exception as exc:  # surfaced by the assertions that use the log
            self.error = exc

    def stop(self) -> None:
        self._watch.stop()
        self._thread.join(3)

    def all(self, name: str, pred: Callable[[Seen], bool] = lambda s: True) -> list[Seen]:
        assert self.error is None, f"watch failed: {self.error!r}"
        with self._lock:
            events = list(self._events)
        return [s for s in events if s.name == name and pred(s)]  # pred may itself read the log

    def first(self, name: str, pred: Callable[[Seen], bool] = lambda s: True) -> Seen | None:
        found = self.all(name, pred)
        return found[0] if found else None

    def wait_first(self, name: str, pred: Callable[[Seen], bool], what: str) -> Seen:
        return wait_for(lambda: self.first(name, pred), message=f"{what} of {name} in the watch log")  # type: ignore[return-value]


@pytest.fixture
def devcluster_config() -> DevClusterConfig:
    # Containers start and pass readiness at once; when a pod is Ready is the test's decision (Readiness).
    return DevClusterConfig(bookmark_interval=0.5, pod_start_delay=0.0, pod_ready_delay=0.0)


@pytest.fixture
def readiness(dc: DevClusterThread, core: client.CoreV1Api) -> Readiness:
    return Readiness(dc, core)


@pytest.fixture
def pod_log(core: client.CoreV1Api) -> Iterator[WatchLog]:
    log = WatchLog(core.list_namespaced_pod)
    yield log
    log.stop()


@pytest.fixture
def pvc_log(core: client.CoreV1Api) -> Iterator[WatchLog]:
    log = WatchLog(core.list_namespaced_persistent_volume_claim)
    yield log
    log.stop()


# -- tests ----------------------------------------------------------------------------------------------------
def test_ordered_creation_identity_claims_status_and_events(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness,
        pod_log: WatchLog, pvc_log: WatchLog) -> None:
    created = apps.create_namespaced_stateful_set(NS, sts_body(replicas=3))
    wait_for(lambda: live_pod(core, "web-0"), message="web-0")
    controller_idle(dc)
    assert pod_names(core) == ["web-0"], "web-1 was created while web-0 was not Ready"
    readiness.bring_up(["web-0", "web-1", "web-2"])
    status = wait_status(apps, replicas=3, ready_replicas=3, available_replicas=3, current_replicas=3,
                         updated_replicas=3, observed_generation=created.metadata.generation)
    assert status.current_revision == status.update_revision
    assert status.update_revision.startswith("web-")
    assert status.collision_count == 0

    # Each pod is created only after its predecessor was Running and Ready; each claim before its pod.
    pod_log.wait_first("web-2", ready, "Ready")
    for i in (1, 2):
        created_at = pod_log.first(f"web-{i}", added)
        predecessor_ready = pod_log.first(f"web-{i - 1}", ready)
        assert created_at is not None and predecessor_ready is not None
        assert created_at.rv > predecessor_ready.rv, f"web-{i} was created before web-{i - 1} was Ready"
    for i in range(3):
        claim = pvc_log.wait_first(f"data-web-{i}", added, "creation")
        pod = pod_log.first(f"web-{i}", added)
        assert pod is not None and claim.rv < pod.rv, f"data-web-{i} was not created before web-{i}"

    # Identity: labels, owner, hostname/subdomain, the claim volume.
    pod = core.read_namespaced_pod("web-1", NS)
    # Binding adds the node's topology labels (PodTopologyLabelsAdmission); the rest come from the controller.
    controller_labels = {k: v for k, v in pod.metadata.labels.items() if not k.startswith("topology.kubernetes.io/")}
    assert controller_labels == {"app": "web", "tier": "db", "controller-revision-hash": status.update_revision,
                                 "statefulset.kubernetes.io/pod-name": "web-1",
                                 "apps.kubernetes.io/pod-index": "1"}
    assert pod.metadata.generate_name == "web-"
    [owner] = pod.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.name, owner.uid, owner.controller, owner.block_owner_deletion) == \
        ("apps/v1", "StatefulSet", "web", created.metadata.uid, True, True)
    assert (pod.spec.hostname, pod.spec.subdomain) == ("web-1", "web")
    [volume] = pod.spec.volumes
    assert volume.name == "data" and volume.persistent_volume_claim.claim_name == "data-web-1"

    # Claims: template labels plus the selector's; no owner under the default Retain/Retain policy.
    for i in range(3):
        pvc = core.read_namespaced_persistent_volume_claim(f"data-web-{i}", NS)
        assert pvc.metadata.labels == {"kind": "data", "app": "web"}
        assert not pvc.metadata.owner_references
        assert pvc.spec.resources.requests == {"storage": "1Gi"}

    # Events, selected by the object they are about.
    events = events_of(core)
    messages = [(e.reason, e.message) for e in events]
    for i in range(3):
        assert ("SuccessfulCreate", f"create Pod web-{i} in StatefulSet web successful") in messages
        assert ("SuccessfulCreate", f"create Claim data-web-{i} Pod web-{i} in StatefulSet web success") in messages
    for e in events:
        assert e.type == "Normal"
        assert e.source.component == "statefulset-controller"
        assert e.reporting_component == "statefulset-controller"
        assert (e.involved_object.kind, e.involved_object.api_version, e.involved_object.uid) == \
            ("StatefulSet", "apps/v1", created.metadata.uid)
        assert e.metadata.name.startswith("web.")
        assert e.count == 1


def test_start_ordinal_names_pods_and_claims(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=2, start=5))
    readiness.bring_up(["web-5", "web-6"])
    wait_status(apps, replicas=2, ready_replicas=2)
    pod = core.read_namespaced_pod("web-6", NS)
    assert pod.metadata.labels["apps.kubernetes.io/pod-index"] == "6"
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == "data-web-6"
    assert pod_names(core) == ["web-5", "web-6"]
    assert core.read_namespaced_persistent_volume_claim("data-web-5", NS)


def test_scale_down_from_the_highest_ordinal_one_at_a_time(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness, pod_log: WatchLog) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=3))
    readiness.bring_up(["web-0", "web-1", "web-2"])
    wait_status(apps, ready_replicas=3)
    old_web1 = core.read_namespaced_pod("web-1", NS).metadata.uid

    update_sts(apps, set_replicas(1))
    wait_for(lambda: pod_names(core) == ["web-0"], message="only web-0 left")
    # Pods on a node terminate gracefully: web-1 is touched only once web-2 is gone from the API.
    gone_2 = pod_log.wait_first("web-2", lambda s: s.type == "DELETED", "deletion")
    leaving_1 = pod_log.first("web-1", deleting)
    assert leaving_1 is not None and leaving_1.rv > gone_2.rv, "web-1 was deleted before web-2 was gone"
    wait_status(apps, replicas=1, ready_replicas=1, current_replicas=1)
    # Claims outlive their pods under the default Retain policy.
    assert core.read_namespaced_persistent_volume_claim("data-web-2", NS)
    messages = [e.message for e in events_of(core) if e.reason == "SuccessfulDelete"]
    assert "delete Pod web-2 in StatefulSet web successful" in messages
    assert "delete Pod web-1 in StatefulSet web successful" in messages

    update_sts(apps, set_replicas(2))
    readiness.bring_up(["web-1"])
    assert core.read_namespaced_pod("web-1", NS).metadata.uid != old_web1
    wait_status(apps, replicas=2, ready_replicas=2)
    # The surviving claim is reused, and the repeated "create Pod web-1" event is folded into one (count 2).
    [claim_event] = [e for e in events_of(core) if e.message.startswith("create Claim data-web-1 ")]
    assert claim_event.count == 1
    [pod_event] = [e for e in events_of(core) if e.message == "create Pod web-1 in StatefulSet web successful"]
    assert pod_event.count == 2


def test_ordered_scale_down_waits_for_unhealthy_pods(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=3, claims=False))
    readiness.bring_up(["web-0", "web-1", "web-2"])
    wait_status(apps, ready_replicas=3)

    readiness.hold("web-0")
    update_sts(apps, set_replicas(2))
    wait_status(apps, observed_generation=2, ready_replicas=2)
    controller_idle(dc)
    assert live_pod(core, "web-2") is not None, "web-2 was deleted while web-0 was unready"
    readiness.release("web-0")
    wait_for(lambda: pod_names(core) == ["web-0", "web-1"], message="web-2 deleted")


def test_ordered_scale_down_waits_while_a_lower_condemned_pod_is_unhealthy(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=3, claims=False))
    readiness.bring_up(["web-0", "web-1", "web-2"])
    wait_status(apps, ready_replicas=3)
    for name in ("web-1", "web-2"):
        readiness.hold(name)
    update_sts(apps, set_replicas(1))
    wait_status(apps, observed_generation=2, ready_replicas=1)
    controller_idle(dc)
    # Only the lowest unhealthy pod may be removed while others are unhealthy, and web-2 must go first.
    assert all(live_pod(core, f"web-{i}") is not None for i in range(3)), "a pod was deleted"
    readiness.release("web-1")
    wait_for(lambda: pod_names(core) == ["web-0"], message="only web-0 left")


def test_parallel_creates_and_deletes_without_waiting(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=3, policy="Parallel", claims=False))
    wait_for(lambda: pod_names(core) == ["web-0", "web-1", "web-2"], message="three pods")
    assert not any(pod_is_ready(core, f"web-{i}") for i in range(3))
    wait_status(apps, replicas=3, ready_replicas=0)

    update_sts(apps, set_replicas(0))  # none is Ready: OrderedReady would never get past web-2
    wait_for(lambda: not pod_names(core), message="all pods deleted")
    wait_status(apps, replicas=0)


@pytest.mark.parametrize("policy", ["OrderedReady", "Parallel"])
def test_rolling_update_replaces_from_the_highest_ordinal_and_keeps_history(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness, pod_log: WatchLog,
        policy: str) -> None:
    created = apps.create_namespaced_stateful_set(NS, sts_body(replicas=3, claims=False, policy=policy))
    readiness.bring_up(["web-0", "web-1", "web-2"])
    rev1 = wait_status(apps, ready_replicas=3).update_revision
    old_uids = {i: core.read_namespaced_pod(f"web-{i}", NS).metadata.uid for i in range(3)}

    update_sts(apps, set_image("nginx:1.27"))
    rev2 = wait_for(lambda: (r := apps.read_namespaced_stateful_set_status("web", NS).status.update_revision)
                    not in (None, rev1) and r, message="a new update revision")
    readiness.bring_up(["web-2", "web-1", "web-0"], revision=str(rev2))
    status = wait_status(apps, current_revision=rev2, update_revision=rev2, updated_replicas=3, current_replicas=3,
                         ready_replicas=3, observed_generation=2)
    assert status.replicas == 3

    # Highest ordinal first; each old pod goes only once its successor at the new revision is Ready.
    for hi, lo in ((2, 1), (1, 0)):
        new_hi_ready = pod_log.first(f"web-{hi}", lambda s, h=hi: s.uid != old_uids[h] and ready(s))
        old_lo_leaving = pod_log.first(f"web-{lo}", lambda s, lo_=lo: s.uid == old_uids[lo_] and deleting(s))
        assert new_hi_ready is not None and old_lo_leaving is not None
        assert old_lo_leaving.rv > new_hi_ready.rv, f"web-{lo} was replaced before the new web-{hi} was Ready"
    assert core.read_namespaced_pod("web-0", NS).spec.containers[0].image == "nginx:1.27"

    # ControllerRevisions: one per template, owned by the set, numbered in order.
    revisions = {r.metadata.name: r for r in apps.list_namespaced_controller_revision(NS).items}
    assert set(revisions) == {rev1, rev2}
    assert (revisions[rev1].revision, revisions[rev2].revision) == (1, 2)
    for name, rev in revisions.items():
        [owner] = rev.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == ("StatefulSet", "web", created.metadata.uid,
                                                                        True)
        assert rev.metadata.labels["app"] == "web"
        assert name == f"web-{rev.metadata.labels['controller.kubernetes.io/hash']}"
        assert rev.data["spec"]["template"]["$patch"] == "replace"
    assert revisions[rev2].data["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"

    # Rolling back to the first template re-uses its revision, renumbered as the newest.
    update_sts(apps, set_image("nginx:1.25"))
    wait_status(apps, update_revision=rev1)
    revisions = {r.metadata.name: r.revision for r in apps.list_namespaced_controller_revision(NS).items}
    assert revisions == {rev1: 3, rev2: 2}


def test_revision_history_limit_prunes_unused_revisions(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    body = sts_body(replicas=1, claims=False)
    body["spec"]["revisionHistoryLimit"] = 1
    apps.create_namespaced_stateful_set(NS, body)
    readiness.bring_up(["web-0"])
    names = [wait_status(apps, ready_replicas=1).update_revision]
    for image in ("nginx:1.26", "nginx:1.27"):
        update_sts(apps, set_image(image))
        rev = wait_for(lambda: (r := apps.read_namespaced_stateful_set_status("web", NS).status.update_revision)
                       not in names and r, message="a new update revision")
        names.append(str(rev))
        readiness.bring_up(["web-0"], revision=str(rev))
        wait_status(apps, current_revision=rev, ready_replicas=1)
    # Live (current/update, used by a pod) plus one historic revision; the oldest is gone.
    wait_for(lambda: sorted(r.metadata.name for r in apps.list_namespaced_controller_revision(NS).items)
             == sorted(names[1:]), message="the oldest revision pruned")


def test_partition_holds_lower_ordinals_at_the_current_revision(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=3, claims=False, update_strategy=strategy))
    readiness.bring_up(["web-0", "web-1", "web-2"])
    rev1 = wait_status(apps, ready_replicas=3).update_revision
    kept = {i: core.read_namespaced_pod(f"web-{i}", NS).metadata.uid for i in (0, 1)}

    update_sts(apps, set_image("nginx:1.27"))
    rev2 = wait_for(lambda: (r := apps.read_namespaced_stateful_set_status("web", NS).status.update_revision)
                    not in (None, rev1) and r, message="a new update revision")
    readiness.bring_up(["web-2"], revision=str(rev2))
    status = wait_status(apps, ready_replicas=3, updated_replicas=1, current_replicas=2)
    assert (status.current_revision, status.update_revision) == (rev1, rev2)
    controller_idle(dc)
    for i, uid in kept.items():
        pod = core.read_namespaced_pod(f"web-{i}", NS)
        assert pod.metadata.uid == uid and pod.metadata.deletion_timestamp is None
        assert pod.metadata.labels["controller-revision-hash"] == rev1

    # A pod below the partition that is deleted comes back at the *current* revision.
    core.delete_namespaced_pod("web-0", NS)
    readiness.bring_up(["web-0"], revision=rev1)

    def lower_partition(sts: client.V1StatefulSet) -> None:
        sts.spec.update_strategy.rolling_update.partition = 0
    update_sts(apps, lower_partition)
    readiness.bring_up(["web-1", "web-0"], revision=str(rev2))
    wait_status(apps, current_revision=rev2, updated_replicas=3, ready_replicas=3)


def test_max_unavailable_replaces_several_pods_at_once(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness, pod_log: WatchLog) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=3, claims=False, update_strategy=strategy))
    readiness.bring_up(["web-0", "web-1", "web-2"])
    rev1 = wait_status(apps, ready_replicas=3).update_revision
    old = {i: core.read_namespaced_pod(f"web-{i}", NS).metadata.uid for i in range(3)}

    update_sts(apps, set_image("nginx:1.27"))
    leaving = [pod_log.wait_first(f"web-{i}", lambda s, i_=i: s.uid == old[i_] and deleting(s), "deletion")
               for i in (1, 2)]
    replacement = pod_log.wait_first("web-1", lambda s: s.uid != old[1] and added(s), "re-creation")
    assert max(s.rv for s in leaving) < replacement.rv, "web-1 and web-2 were not taken down together"
    assert live_pod(core, "web-0", rev1) is not None
    rev2 = apps.read_namespaced_stateful_set_status("web", NS).status.update_revision
    # Re-creation stays ordered: web-1 first, then web-2, then the last old pod.
    readiness.bring_up(["web-1", "web-2", "web-0"], revision=rev2)
    wait_status(apps, current_revision=rev2, updated_replicas=3, ready_replicas=3)


def test_on_delete_updates_a_pod_only_when_it_is_deleted(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=2, claims=False,
                                                     update_strategy={"type": "OnDelete"}))
    readiness.bring_up(["web-0", "web-1"])
    rev1 = wait_status(apps, ready_replicas=2).update_revision
    uids = {i: core.read_namespaced_pod(f"web-{i}", NS).metadata.uid for i in range(2)}

    update_sts(apps, set_image("nginx:1.27"))
    status = wait_status(apps, observed_generation=2)
    rev2 = status.update_revision
    assert rev2 != rev1 and status.current_revision == rev1
    controller_idle(dc)
    for i, uid in uids.items():
        pod = core.read_namespaced_pod(f"web-{i}", NS)
        assert pod.metadata.uid == uid and pod.metadata.deletion_timestamp is None
        assert pod.metadata.labels["controller-revision-hash"] == rev1
        assert pod.spec.containers[0].image == "nginx:1.25"
    assert wait_status(apps, updated_replicas=0, current_replicas=2).ready_replicas == 2

    core.delete_namespaced_pod("web-1", NS)
    readiness.bring_up(["web-1"], revision=rev2)
    pod = core.read_namespaced_pod("web-1", NS)
    assert pod.metadata.uid != uids[1] and pod.spec.containers[0].image == "nginx:1.27"
    wait_status(apps, updated_replicas=1, current_replicas=1, ready_replicas=2, current_revision=rev1)

    # Once every pod has been replaced the update revision becomes current (kubernetes 1.36+).
    core.delete_namespaced_pod("web-0", NS)
    readiness.bring_up(["web-0"], revision=rev2)
    wait_status(apps, current_revision=rev2, updated_replicas=2, current_replicas=2, ready_replicas=2)


def test_failed_pod_is_deleted_and_recreated(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=1, claims=False))
    readiness.bring_up(["web-0"])
    uid = core.read_namespaced_pod("web-0", NS).metadata.uid
    set_pod_status(core, "web-0", "Failed", False)  # what the kubelet reports for an evicted pod
    wait_for(lambda: (p := live_pod(core, "web-0")) is not None and p.metadata.uid != uid, message="a new web-0")
    messages = [(e.reason, e.message) for e in events_of(core)]
    assert ("SuccessfulDelete", "delete Pod web-0 in StatefulSet web successful") in messages


def test_claim_retention_policy_sets_claim_owners(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness, pod_log: WatchLog,
        pvc_log: WatchLog) -> None:
    created = apps.create_namespaced_stateful_set(
        NS, sts_body(replicas=2, retention={"whenDeleted": "Delete", "whenScaled": "Delete"}))
    readiness.bring_up(["web-0", "web-1"])

    def owners(name: str) -> list[tuple[str, str, str, bool]]:
        pvc = core.read_namespaced_persistent_volume_claim(name, NS)
        return [(r.kind, r.name, r.uid, bool(r.controller)) for r in pvc.metadata.owner_references or []]

    set_owner = [("StatefulSet", "web", created.metadata.uid, True)]
    for i in range(2):
        wait_for(lambda n=f"data-web-{i}": owners(n) == set_owner, message=f"data-web-{i} owned by the set")
    pod1 = core.read_namespaced_pod("web-1", NS).metadata.uid

    update_sts(apps, set_replicas(1))
    # Before web-1 goes, its claim is handed to the pod, so the garbage collector removes it with the pod.
    handed = pvc_log.wait_first("data-web-1", lambda s: [
        (r.get("kind"), r.get("name"), r.get("uid"), r.get("controller"))
        for r in s.obj["metadata"].get("ownerReferences") or []] == [("Pod", "web-1", pod1, True)],
        "hand-over to the pod")
    leaving = pod_log.wait_first("web-1", deleting, "deletion")
    assert handed.rv < leaving.rv
    assert owners("data-web-0") == set_owner
    pvc_log.wait_first("data-web-1", deleting, "garbage collection")


def test_min_ready_seconds_gates_the_next_pod(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness, pod_log: WatchLog) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=2, claims=False, min_ready_seconds=2))
    readiness.bring_up(["web-0"])
    status = wait_status(apps, ready_replicas=1)
    created = pod_log.wait_first("web-1", added, "creation")
    # The Ready time the controller saw: web-0's last state before web-1 was created.
    [*_, seen] = pod_log.all("web-0", lambda s: s.rv < created.rv)
    since = next(c["lastTransitionTime"] for c in seen.obj["status"]["conditions"] if c["type"] == "Ready")
    ready_at = dt.datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
    assert _is_ready(seen.obj)
    if status.available_replicas:  # read in time, the status must not call web-0 available yet
        assert time.time() >= ready_at + 2
    # Available means Ready for longer than minReadySeconds (lastTransitionTime has second precision); the
    # controller looks again when that moment comes, not at some later resync.
    assert ready_at + 2 - 0.05 <= created.at <= ready_at + 2 + 1.0
    wait_status(apps, available_replicas=1)


def test_api_failures_are_reported_and_retried(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    dc.call(lambda c: c.faults.fail_next(1, 500, verb="create", resource="persistentvolumeclaims"))
    dc.call(lambda c: c.faults.fail_next(1, 500, verb="create", resource="pods"))
    dc.call(lambda c: c.faults.fail_next(2, 409, verb="update", resource="statefulsets"))
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=1))
    readiness.bring_up(["web-0"])
    wait_status(apps, replicas=1, ready_replicas=1, observed_generation=1)
    warnings = {(e.reason, e.message) for e in events_of(core) if e.type == "Warning"}
    # As upstream: the claim failure is reported for the claim and (aggregated) for the pod.
    assert warnings == {
        ("FailedCreate", "create Claim data-web-0 for Pod web-0 in StatefulSet web failed error: "
                         "Internal error occurred: injected fault"),
        ("FailedCreate", "create Pod web-0 in StatefulSet web failed error: failed to create PVC data-web-0: "
                         "Internal error occurred: injected fault"),
        ("FailedCreate", "create Pod web-0 in StatefulSet web failed error: Internal error occurred: injected fault"),
    }


def test_a_dropped_watch_does_not_stop_the_controller(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=1, claims=False))
    readiness.bring_up(["web-0"])
    for key in ("apps/statefulsets", "/pods"):
        dc.call(lambda c, k=key: c.faults.drop_watches(k))
    update_sts(apps, set_replicas(2))
    readiness.bring_up(["web-1"])
    core.delete_namespaced_pod("web-1", NS)
    wait_for(lambda: terminating_or_gone(core, "web-1"), message="web-1 going")
    readiness.bring_up(["web-1"])
    wait_status(apps, replicas=2, ready_replicas=2)


def test_foreground_deletion_removes_pods_without_the_controller_recreating_them(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness,
        pod_log: WatchLog) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=2, claims=False))
    readiness.bring_up(["web-0", "web-1"])
    apps.delete_namespaced_stateful_set("web", NS, propagation_policy="Foreground")
    wait_for(lambda: not apps.list_namespaced_stateful_set(NS).items and not pod_names(core),
             message="the set and its pods gone")
    assert all(len(pod_log.all(f"web-{i}", added)) == 1 for i in range(2)), "a pod was re-created"


def test_kubectl_rollout_status_follows_the_status(
        core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness, kubectl: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=2, claims=False))
    readiness.bring_up(["web-0", "web-1"])
    done = kubectl.run("rollout", "status", "statefulset/web", "--timeout=20s")
    assert "partitioned roll out complete: 2 new pods have been updated" in done.stdout
    update_sts(apps, set_image("nginx:1.27"))
    rollout = kubectl.popen("rollout", "status", "statefulset/web", "--timeout=20s")
    rev2 = wait_for(lambda: (r := apps.read_namespaced_stateful_set_status("web", NS).status.update_revision)
                    and live_pod(core, "web-1", r) and r, message="web-1 at the new revision")
    readiness.bring_up(["web-1", "web-0"], revision=str(rev2))
    out, err = rollout.communicate(timeout=30)
    assert rollout.returncode == 0, err
    assert "partitioned roll out complete: 2 new pods have been updated" in out


def test_revision_name_matches_a_real_cluster(apps: client.AppsV1Api) -> None:
    """kubernetes' own statefulset compatibility fixture (1.34): this template's revision is test-776999688b."""
    apps.create_namespaced_stateful_set(NS, {"metadata": {"name": "test"}, "spec": {
        "replicas": 0, "serviceName": "test", "selector": {"matchLabels": {"app": "foo"}},
        "template": {"metadata": {"labels": {"app": "foo"}, "annotations": {"test": "value"}},
                     "spec": {"containers": [{"name": "test", "image": "test"}]}}}})
    status = wait_status(apps, "test", observed_generation=1)
    assert status.update_revision == status.current_revision == "test-776999688b"
    revision = apps.read_namespaced_controller_revision("test-776999688b", NS)
    assert revision.metadata.labels == {"app": "foo", "controller.kubernetes.io/hash": "776999688b"}
    assert revision.data == {"spec": {"template": {
        "$patch": "replace",
        "metadata": {"annotations": {"test": "value"}, "labels": {"app": "foo"}},
        "spec": {"containers": [{"image": "test", "imagePullPolicy": "Always", "name": "test", "resources": {},
                                 "terminationMessagePath": "/dev/termination-log",
                                 "terminationMessagePolicy": "File"}],
                 "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "securityContext": {}, "terminationGracePeriodSeconds": 30}}}}


def test_a_set_recreated_after_an_orphaning_delete_adopts_its_pods_without_restarting_them(
        dc: DevClusterThread, core: client.CoreV1Api, apps: client.AppsV1Api, readiness: Readiness,
        pod_log: WatchLog, pvc_log: WatchLog) -> None:
    """How an operator changes volumeClaimTemplates (immutable): delete the set with propagationPolicy Orphan,
    create it again; the new set adopts the running pods (and the revision) by its selector, as
    ControllerRefManager does, and nothing is restarted or re-created."""
    apps.create_namespaced_stateful_set(NS, sts_body(replicas=2, update_strategy={"type": "OnDelete"}))
    readiness.bring_up(["web-0", "web-1"])
    old = apps.read_namespaced_stateful_set("web", NS)
    revision = wait_status(apps, ready_replicas=2).update_revision
    pods = {i: core.read_namespaced_pod(f"web-{i}", NS).metadata.uid for i in range(2)}

    apps.delete_namespaced_stateful_set("web", NS, body=client.V1DeleteOptions(
        propagation_policy="Orphan", preconditions=client.V1Preconditions(uid=old.metadata.uid)))
    wait_for(lambda: not apps.list_namespaced_stateful_set(NS).items, message="the old set gone")
    for i in range(2):  # orphaned: still running, no owner any more
        pod = core.read_namespaced_pod(f"web-{i}", NS)
        assert pod.metadata.uid == pods[i] and pod.metadata.deletion_timestamp is None
        assert not pod.metadata.owner_references
    bigger = sts_body(replicas=2, update_strategy={"type": "OnDelete"})
    bigger["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "2Gi"
    new = apps.create_namespaced_stateful_set(NS, bigger)
    assert new.metadata.uid != old.metadata.uid

    def adopted() -> bool:
        return all([r.uid for r in core.read_namespaced_pod(f"web-{i}", NS).metadata.owner_references or []
                    if r.controller] == [new.metadata.uid] for i in range(2))

    wait_for(adopted, message="both pods adopted by the new set")
    status = wait_status(apps, ready_replicas=2, current_replicas=2)
    assert status.update_revision == status.current_revision == revision  # same pod template, same revision
    [rev] = [r for r in apps.list_namespaced_controller_revision(NS).items if r.metadata.name == revision]
    assert [o.uid for o in rev.metadata.owner_references] == [new.metadata.uid]
    controller_idle(dc)
    for i in range(2):
        assert len(pod_log.all(f"web-{i}", added)) == 1 and not pod_log.all(f"web-{i}", deleting)
        assert core.read_namespaced_pod(f"web-{i}", NS).metadata.uid == pods[i]
        claim = core.read_namespaced_persistent_volume_claim(f"data-web-{i}", NS)
        assert claim.spec.resources.requests["storage"] == "1Gi"  # claims are never changed by the set
        assert len(pvc_log.all(f"data-web-{i}", added)) == 1
