"""The reconcile planner: provisioning order, drift repair, health waits, deletion, and properties over specs."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ballast import planner
from ballast.manifests import RenderInput, render_cluster
from ballast.manifests.names import Role, node_ids
from ballast.observed import KafkaState, ObjectState, ObservedCluster, StatefulSetState
from ballast.planner import (
    FINALIZER,
    Apply,
    Cleanup,
    EnsureClusterId,
    EnsureFinalizer,
    MarkReady,
    Plan,
    RemoveFinalizer,
    WaitBrokersRegistered,
    WaitControllersReady,
    describe_plan,
    plan_deletion,
    plan_reconcile,
)
from ballast.spec import BrokersSpec, ControllersSpec, KafkaClusterSpec, StorageSpec

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qg"
UID = "0b7c7a4e-5f0e-4c43-9d3a-1f4cbe1c2f10"


def spec_of(controllers: int = 3, brokers: int = 3, config: dict[str, str] | None = None) -> KafkaClusterSpec:
    return KafkaClusterSpec(controllers=ControllersSpec(replicas=controllers),  # type: ignore[arg-type]
                            brokers=BrokersSpec(replicas=brokers, config=config or {}))


def rendered(spec: KafkaClusterSpec, cluster_id: str = CLUSTER_ID) -> list[dict[str, Any]]:
    return render_cluster(RenderInput(name="demo", namespace="kafka", uid=UID, spec=spec, cluster_id=cluster_id))


def converged(spec: KafkaClusterSpec, **changes: Any) -> ObservedCluster:
    """What the observer reports for a healthy cluster running exactly ``spec``."""
    objects = [ObjectState(kind=o["kind"], name=o["metadata"]["name"], exists=True,
                           spec_hash=o["metadata"]["annotations"]["kafka.ballast.dev/spec-hash"])
               for o in rendered(spec)]
    controller_ids = node_ids(Role.CONTROLLER, spec.controllers.replicas)
    observed = ObservedCluster(
        namespace="kafka", name="demo", found=True, uid=UID, generation=1, finalizers=[FINALIZER],
        spec=spec.model_dump(mode="json", by_alias=True), cluster_id=CLUSTER_ID, objects=objects,
        controllers=StatefulSetState(name="demo-controller", exists=True, replicas=spec.controllers.replicas),
        brokers=StatefulSetState(name="demo-broker", exists=True, replicas=spec.brokers.replicas),
        kafka=KafkaState(reachable=True, cluster_id=CLUSTER_ID, quorum_leader_id=controller_ids[0],
                         quorum_voters=controller_ids,
                         registered_brokers=node_ids(Role.BROKER, spec.brokers.replicas)))
    return observed.model_copy(update=changes)


def fresh(spec: KafkaClusterSpec) -> ObservedCluster:
    return ObservedCluster(namespace="kafka", name="demo", found=True, uid=UID, generation=1,
                           spec=spec.model_dump(mode="json", by_alias=True),
                           kafka=KafkaState(reachable=False, error="no pods"))


def without(observed: ObservedCluster, kind: str, name: str) -> ObservedCluster:
    objects = [o.model_copy(update={"exists": False, "spec_hash": ""}) if (o.kind, o.name) == (kind, name) else o
               for o in observed.objects]
    return observed.model_copy(update={"objects": objects})


def kinds(plan: Plan) -> list[str]:
    return [type(step).__name__ for step in plan]


# --- provisioning ---------------------------------------------------------------------------------------

def test_new_cluster_is_provisioned_controllers_first() -> None:
    plan = plan_reconcile(fresh(spec_of(3, 4)), spec_of(3, 4))
    assert plan.operation == planner.OPERATION_PROVISIONING
    steps = list(plan)
    assert [type(s) for s in steps] == [EnsureFinalizer, EnsureClusterId, Apply, WaitControllersReady, Apply,
                                        WaitBrokersRegistered, MarkReady]
    assert steps[1] == EnsureClusterId(why=steps[1].why, adopt=None)
    assert steps[2].components == ("controllers",) and steps[4].components == ("brokers",)  # type: ignore[union-attr]
    assert steps[3].expected == 3 and steps[5].expected == 4  # type: ignore[union-attr]
    assert all(step.why for step in steps)


def test_describe_plan_numbers_steps_and_says_why() -> None:
    lines = describe_plan(plan_reconcile(fresh(spec_of()), spec_of()))
    assert lines[0].startswith("1/7 add finalizer kafka.ballast.dev/cleanup -- ")
    assert lines[3].startswith("4/7 wait for the controller quorum (3 voters) to elect a leader -- ")
    assert lines[-1].startswith("7/7 mark the cluster Ready -- ")
    assert describe_plan(Plan()) == []


def test_converged_cluster_has_nothing_to_do() -> None:
    plan = plan_reconcile(converged(spec_of()), spec_of())
    assert plan == Plan() and not plan and describe_plan(plan) == []


def test_existing_kafka_cluster_id_is_adopted_not_regenerated() -> None:
    # status.clusterId lost (e.g. the object restored from a backup without status): keep Kafka's id.
    observed = converged(spec_of(), cluster_id=None)
    plan = plan_reconcile(observed, spec_of())
    assert list(plan) == [EnsureClusterId(why=plan.steps[0].why, adopt=CLUSTER_ID), MarkReady(why=plan.steps[1].why)]
    assert plan.operation == planner.OPERATION_RECONCILE


# --- drift ----------------------------------------------------------------------------------------------

def test_deleted_service_is_recreated_without_waiting() -> None:
    observed = without(converged(spec_of()), "Service", "demo-kafka-bootstrap")
    plan = plan_reconcile(observed, spec_of())
    assert kinds(plan) == ["Apply", "MarkReady"]
    assert plan.steps[0] == Apply(components=("brokers",), why="Service/demo-kafka-bootstrap missing")
    assert plan.operation == planner.OPERATION_RECONCILE


def test_changed_broker_config_applies_brokers_and_waits_for_them() -> None:
    observed = converged(spec_of())
    wanted = spec_of(config={"log.retention.hours": "24"})
    plan = plan_reconcile(observed, wanted)
    assert kinds(plan) == ["Apply", "WaitBrokersRegistered", "MarkReady"]
    assert "ConfigMap/demo-broker-config changed" in plan.steps[0].why
    assert "StatefulSet/demo-broker changed" in plan.steps[0].why


def test_scaling_brokers_waits_for_the_new_ones() -> None:
    plan = plan_reconcile(converged(spec_of(brokers=3)), spec_of(brokers=5))
    wait = plan.steps[1]
    assert isinstance(wait, WaitBrokersRegistered) and wait.expected == 5


def test_quorum_without_leader_is_waited_for() -> None:
    observed = converged(spec_of())
    observed = observed.model_copy(update={"kafka": observed.kafka.model_copy(update={"quorum_leader_id": None})})
    plan = plan_reconcile(observed, spec_of())
    assert kinds(plan) == ["WaitControllersReady", "MarkReady"]
    assert "no confirmed leader" in plan.steps[0].why


def test_missing_broker_registration_is_waited_for() -> None:
    observed = converged(spec_of())
    observed = observed.model_copy(update={"kafka": observed.kafka.model_copy(update={"registered_brokers": [0, 2]})})
    plan = plan_reconcile(observed, spec_of())
    assert kinds(plan) == ["WaitBrokersRegistered", "MarkReady"]
    assert plan.steps[0].why == "2/3 brokers registered"


def test_unreachable_kafka_is_not_taken_for_healthy() -> None:
    observed = converged(spec_of(), kafka=KafkaState(reachable=False, error="connection refused"))
    plan = plan_reconcile(observed, spec_of())
    assert kinds(plan) == ["WaitControllersReady", "WaitBrokersRegistered", "MarkReady"]
    assert "connection refused" in plan.steps[0].why


def test_missing_finalizer_alone() -> None:
    plan = plan_reconcile(converged(spec_of(), finalizers=["other/finalizer"]), spec_of())
    assert kinds(plan) == ["EnsureFinalizer", "MarkReady"]


def test_object_owned_by_someone_else_counts_as_drift() -> None:
    # The observer reports an empty hash for an object it does not own; the apply activity then refuses it.
    observed = converged(spec_of())
    objects = [o.model_copy(update={"spec_hash": ""}) if o.name == "demo-controllers" else o
               for o in observed.objects]
    plan = plan_reconcile(observed.model_copy(update={"objects": objects}), spec_of())
    assert plan.steps[0] == Apply(components=("controllers",), why="Service/demo-controllers changed")


# --- deletion -------------------------------------------------------------------------------------------

def test_deletion_cleans_up_per_delete_claim_then_releases_the_finalizer() -> None:
    spec = spec_of()
    spec = spec.model_copy(update={"brokers": spec.brokers.model_copy(
        update={"storage": StorageSpec(size="10Gi", delete_claim=True)})})
    observed = converged(spec, deleting=True)
    plan = plan_deletion(observed)
    assert plan.operation == planner.OPERATION_DELETION
    assert [type(s) for s in plan] == [Cleanup, RemoveFinalizer]
    cleanup = plan.steps[0]
    assert isinstance(cleanup, Cleanup)
    assert (cleanup.delete_broker_claims, cleanup.delete_controller_claims) == (True, False)
    assert describe_plan(plan)[0].startswith("1/2 clean up (delete broker volume claims)")


def test_deletion_with_unparseable_spec_keeps_the_claims() -> None:
    observed = converged(spec_of(), deleting=True).model_copy(update={"spec": {"brokers": {"replicas": "many"}}})
    cleanup = plan_deletion(observed).steps[0]
    assert isinstance(cleanup, Cleanup)
    assert not cleanup.delete_broker_claims and not cleanup.delete_controller_claims


def test_deletion_without_our_finalizer_only_cleans_up() -> None:
    plan = plan_deletion(converged(spec_of(), deleting=True, finalizers=["other/finalizer"]))
    assert kinds(plan) == ["Cleanup"]


def test_nothing_to_delete_when_gone_or_not_deleting() -> None:
    assert plan_deletion(converged(spec_of())) == Plan()
    assert plan_deletion(ObservedCluster(namespace="kafka", name="demo", found=False)) == Plan()


# --- properties -----------------------------------------------------------------------------------------

specs = st.builds(
    spec_of,
    controllers=st.sampled_from([1, 3, 5]),
    brokers=st.integers(min_value=1, max_value=6),
    config=st.dictionaries(st.sampled_from(["log.retention.hours", "num.partitions", "message.max.bytes"]),
                           st.integers(min_value=1, max_value=1000).map(str), max_size=2),
)


@st.composite
def drifted_clusters(draw: st.DrawFn) -> tuple[ObservedCluster, KafkaClusterSpec]:
    """A converged cluster for one spec, with random objects deleted or changed, planned against another."""
    running, wanted = draw(specs), draw(specs)
    observed = converged(running)
    objects = []
    for obj in observed.objects:
        fate = draw(st.sampled_from(["ok", "ok", "missing", "changed"]))
        if fate == "missing":
            obj = obj.model_copy(update={"exists": False, "spec_hash": ""})
        elif fate == "changed":
            obj = obj.model_copy(update={"spec_hash": "0" * 32})
        objects.append(obj)
    kafka = observed.kafka
    if draw(st.booleans()):
        kafka = kafka.model_copy(update={"registered_brokers": kafka.registered_brokers[:-1]})
    if draw(st.booleans()):
        kafka = kafka.model_copy(update={"quorum_leader_id": None})
    return observed.model_copy(update={"objects": objects, "kafka": kafka}), wanted


@settings(max_examples=60, deadline=None)
@given(drifted_clusters())
def test_plans_are_deterministic_ordered_and_converge(case: tuple[ObservedCluster, KafkaClusterSpec]) -> None:
    observed, spec = case
    plan = plan_reconcile(observed, spec)
    assert plan == plan_reconcile(observed, spec)

    steps = list(plan)
    if steps:
        assert isinstance(steps[-1], MarkReady)
        assert sum(isinstance(s, MarkReady) for s in steps) == 1
    order = [(type(s).__name__, getattr(s, "components", ())) for s in steps]
    position = {item: i for i, item in enumerate(order)}
    controllers = position.get(("Apply", ("controllers",)))
    brokers = position.get(("Apply", ("brokers",)))
    if controllers is not None and brokers is not None:
        assert controllers < brokers
    # A wait follows the apply of its role and the controllers' wait comes before any broker work.
    wait_c = position.get(("WaitControllersReady", ()))
    wait_b = position.get(("WaitBrokersRegistered", ()))
    if wait_c is not None and controllers is not None:
        assert controllers < wait_c
    if wait_c is not None and brokers is not None:
        assert wait_c < brokers
    if wait_b is not None and brokers is not None:
        assert brokers < wait_b

    # Applying a role happens exactly when one of its objects is not what the spec renders.
    desired = {(o["kind"], o["metadata"]["name"]): o for o in rendered(spec)}
    drift = planner.drifted(observed, list(desired.values()))
    drifted_roles = {desired[(d.kind, d.name)]["metadata"]["labels"]["app.kubernetes.io/component"] for d in drift}
    assert (controllers is not None) == ("controller" in drifted_roles)
    assert (brokers is not None) == ("broker" in drifted_roles)

    # Once every step succeeded, observing finds ``spec`` converged: nothing is left to do.
    assert plan_reconcile(converged(spec), spec) == Plan()
