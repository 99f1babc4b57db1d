"""Rolling-restart decisions (ballast.roll), the config update modes (ballast.kafka_configs) and rollPolicy
durations: examples, and hypothesis properties over random ISR layouts and random clusters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from activities.contracts import GateObservation, PartitionFacts, VoterFacts
from ballast import kafka_configs, roll
from ballast.manifests import RenderInput, config_hash
from ballast.manifests.names import Role
from ballast.messages import RollRequest, RollStep
from ballast.observed import KafkaState, ObservedCluster, PodState, StatefulSetState
from ballast.spec import KafkaClusterSpec, RollPolicy, format_duration, parse_duration

OLD, NEW = "demo-broker-aaaaaaaaaa", "demo-broker-bbbbbbbbbb"
C_OLD, C_NEW = "demo-controller-aaaaaaaaaa", "demo-controller-bbbbbbbbbb"


# --- durations and rollPolicy --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("0", timedelta()), ("0s", timedelta()), ("10s", timedelta(seconds=10)), ("1m30s", timedelta(seconds=90)),
    ("1.5h", timedelta(minutes=90)), ("500ms", timedelta(milliseconds=500)), ("2h10m", timedelta(minutes=130)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "1d", "-1s", "s", "1 m", "1m 30s", "1.s"])
def test_parse_duration_rejects_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: use a number with a unit"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("0s", "10s", "1m30s", "1h", "2h10m5s", "500ms"):
        assert format_duration(parse_duration(text)) == text


def test_roll_policy_defaults_and_errors() -> None:
    policy = KafkaClusterSpec().roll_policy
    assert (policy.max_unavailable, policy.rack_aware) == (1, False)
    assert (policy.delay, policy.ready, policy.budget) == (timedelta(), timedelta(minutes=10), timedelta(minutes=30))
    with pytest.raises(ValidationError, match=r"gateBudget|gate_budget") as err:
        RollPolicy.model_validate({"gateBudget": "5 minutes"})
    assert "is not a duration" in str(err.value)
    with pytest.raises(ValidationError, match="greater than zero"):
        RollPolicy.model_validate({"readyTimeout": "0s"})
    with pytest.raises(ValidationError):
        RollPolicy.model_validate({"maxUnavailable": 0})


# --- update modes as data ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "version", "mode"), [
    ("min.insync.replicas", "3.9.1", "cluster-wide"),
    ("log.retention.ms", "4.0.0", "cluster-wide"),
    ("log.retention.hours", "3.9.1", "read-only"),  # only the first synonym is dynamic
    ("log.roll.hours", "3.9.1", "read-only"),
    ("num.partitions", "3.9.1", "read-only"),
    ("auto.create.topics.enable", "4.1.0", "read-only"),
    ("compression.zstd.level", "3.7.2", "read-only"),  # dynamic from 3.8
    ("compression.zstd.level", "3.8.1", "cluster-wide"),
    ("log.message.format.version", "3.9.1", "cluster-wide"),
    ("log.message.format.version", "4.0.0", "read-only"),  # removed in 4.0
    ("leader.replication.throttled.rate", "3.9.1", "per-broker"),
    ("ssl.keystore.location", "3.9.1", "read-only"),  # only with a listener prefix
    ("listener.name.internal.ssl.keystore.location", "3.9.1", "per-broker"),
    ("listener.name.internal.max.connections", "3.9.1", "cluster-wide"),
    ("listener.name.internal.plain.sasl.jaas.config", "3.9.1", "per-broker"),
    ("listener.name.internal.num.partitions", "3.9.1", "read-only"),
    ("no.such.setting", "3.9.1", "read-only"),
])
def test_update_modes(key: str, version: str, mode: str) -> None:
    assert kafka_configs.update_mode(key, version) == mode


def _spec(**fields: Any) -> KafkaClusterSpec:
    return KafkaClusterSpec.model_validate({"brokers": {"replicas": 3}, **fields})


def _hash(spec: KafkaClusterSpec, role: Role) -> str:
    return config_hash(RenderInput(name="demo", namespace="ns", uid="u", spec=spec, cluster_id="A" * 22), role)


def test_dynamic_settings_leave_the_pod_template_alone() -> None:
    base = _spec(brokers={"replicas": 3, "config": {"log.retention.ms": "1000"}})
    tuned = _spec(brokers={"replicas": 3, "config": {"log.retention.ms": "2000", "min.insync.replicas": "1"}})
    assert _hash(base, Role.BROKER) == _hash(tuned, Role.BROKER)
    read_only = _spec(brokers={"replicas": 3, "config": {"log.retention.ms": "1000", "log.retention.hours": "1"}})
    assert _hash(base, Role.BROKER) != _hash(read_only, Role.BROKER)


# --- classify_change ---------------------------------------------------------------------------------------

def test_classify_dynamic_changes_need_no_restart() -> None:
    old = _spec(brokers={"replicas": 3, "config": {"log.retention.ms": "1000"}})
    new = _spec(brokers={"replicas": 3, "config": {"log.retention.ms": "2000", "min.insync.replicas": "1",
                                                   "leader.replication.throttled.rate": "1000000"}})
    change = roll.classify_change(old, new)
    assert change.dynamic == {"log.retention.ms": "2000", "min.insync.replicas": "1",
                              "leader.replication.throttled.rate": "1000000"}
    assert not change.needs_restart
    cluster_wide, per_broker = roll.split_dynamic(change.dynamic, new.version)
    assert per_broker == {"leader.replication.throttled.rate": "1000000"}
    assert set(cluster_wide) == {"log.retention.ms", "min.insync.replicas"}


@pytest.mark.parametrize(("new", "reason"), [
    ({"version": "4.0.0"}, "image apache/kafka:3.9.1 -> apache/kafka:4.0.0"),
    ({"image": "example/kafka:custom"}, "image apache/kafka:3.9.1 -> example/kafka:custom"),
    ({"brokers": {"replicas": 3, "config": {"num.partitions": "6"}}}, "broker setting num.partitions"),
    ({"brokers": {"replicas": 3, "resources": {"limits": {"memory": "4Gi"}}}}, "brokers.resources changed"),
    ({"controllers": {"resources": {"requests": {"cpu": "1"}}}}, "controllers.resources changed"),
    ({"listeners": [{"name": "internal", "port": 19092}]}, "listeners changed: internal:9092 -> internal:19092"),
    ({"brokers": {"replicas": 3, "rackAwareness": {}}}, "brokers.rackAwareness changed"),
    ({"controllers": {"replicas": 5}}, "controllers.replicas 3 -> 5"),
])
def test_classify_restart_reasons(new: dict[str, Any], reason: str) -> None:
    change = roll.classify_change(_spec(), _spec(**new))
    assert change.needs_restart and any(r.startswith(reason) for r in change.restart_reasons), change


def test_classify_removed_dynamic_setting_deletes_it_and_needs_a_restart() -> None:
    change = roll.classify_change(_spec(brokers={"replicas": 3, "config": {"log.retention.ms": "1000"}}), _spec())
    assert change.dynamic == {"log.retention.ms": None}
    assert change.restart_reasons == ["broker setting log.retention.ms removed: a broker that started with it "
                                      "keeps it until restarted"]


def test_classify_without_a_previous_spec_reapplies_every_dynamic_setting() -> None:
    change = roll.classify_change(None, _spec(brokers={"replicas": 3, "config": {"log.retention.ms": "5",
                                                                               "num.partitions": "6"}}))
    assert change.dynamic == {"log.retention.ms": "5", "min.insync.replicas": "2"}
    assert not change.needs_restart


def test_classify_agrees_with_the_template_hash() -> None:
    specs = [_spec(), _spec(version="4.0.0"), _spec(brokers={"replicas": 3, "config": {"log.retention.ms": "9"}}),
             _spec(brokers={"replicas": 3, "config": {"num.partitions": "6"}}), _spec(brokers={"replicas": 5}),
             _spec(brokers={"replicas": 1}), _spec(listeners=[{"name": "internal", "port": 19092}])]
    for old in specs:
        for new in specs:
            change = roll.classify_change(old, new)
            template = any(_hash(old, r) != _hash(new, r) for r in Role)
            removal = any(v is None for v in change.dynamic.values())
            assert change.needs_restart == (template or removal), (old, new, change)


# --- stuck pods --------------------------------------------------------------------------------------------

def pod(node_id: int, revision: str = NEW, ready: bool = True, **fields: Any) -> PodState:
    role = Role.CONTROLLER if node_id >= 1000 else Role.BROKER
    return PodState(name=f"demo-{role.value}-{node_id}", node_id=node_id, ready=ready, phase="Running",
                    uid=f"uid-{node_id}", revision=revision, **fields)


@pytest.mark.parametrize(("fields", "stuck"), [
    ({"waiting_reason": "CrashLoopBackOff", "ready": False}, True),
    ({"waiting_reason": "CreateContainerConfigError", "ready": False}, True),
    ({"waiting_reason": "ImagePullBackOff", "ready": False}, True),
    ({"phase": "Pending", "unschedulable": True, "ready": False}, True),
    ({"phase": "Pending", "waiting_reason": "Unschedulable", "ready": False}, True),
    ({"waiting_reason": "ContainerCreating", "ready": False}, False),
    ({"ready": False}, False),  # not Ready yet is slow, not stuck
    ({}, False),
])
def test_is_stuck(fields: dict[str, Any], stuck: bool) -> None:
    data = {"ready": True, **fields}
    phase = data.pop("phase", "Running")
    assert roll.is_stuck(pod(0, **data).model_copy(update={"phase": phase})) is stuck


def test_stuck_rule() -> None:
    crashing = {"waiting_reason": "CrashLoopBackOff", "ready": False}
    assert roll.stuck_decision(pod(0, OLD, **crashing), NEW) == "restart-without-gate"
    assert roll.stuck_decision(pod(0, NEW, **crashing), NEW) == "stop"
    assert roll.stuck_decision(pod(0, "", **crashing), NEW) == "stop"  # unknown revision: do not guess
    assert roll.stuck_decision(pod(0, OLD), NEW) == "gate"  # healthy but old: never without the gate
    assert roll.stuck_decision(pod(0, OLD, ready=False), NEW) == "gate"


# --- plan_roll ---------------------------------------------------------------------------------------------

def observed(brokers: list[PodState], controllers: list[PodState] | None = None, leader: int | None = 1000,
             spec: dict[str, Any] | None = None) -> ObservedCluster:
    controllers = controllers if controllers is not None else [pod(i, C_NEW) for i in (1000, 1001, 1002)]
    return ObservedCluster(
        namespace="ns", name="demo", found=True, spec=spec or {},
        controllers=StatefulSetState(name="demo-controller", exists=True, update_revision=C_NEW),
        brokers=StatefulSetState(name="demo-broker", exists=True, update_revision=NEW),
        controller_pods=controllers, broker_pods=brokers,
        kafka=KafkaState(reachable=True, quorum_leader_id=leader))


def test_plan_rolls_outdated_pods_controllers_first_leader_last_unready_brokers_first() -> None:
    obs = observed(brokers=[pod(0, OLD), pod(1, OLD), pod(2, OLD, ready=False), pod(3, NEW)],
                   controllers=[pod(1000, C_OLD), pod(1001, C_OLD), pod(1002, C_OLD)], leader=1001)
    plan = roll.plan_roll(obs)
    assert plan.node_ids == [1000, 1002, 1001, 2, 0, 1]
    assert all(s.if_outdated for s in plan.steps)
    assert plan.steps[3].reason == f"revision {OLD} -> {NEW}"
    assert not plan.blocked
    assert plan.describe()[0].startswith("1/6 restart controller 1000 (demo-controller-1000): revision")


def test_plan_with_unknown_revisions_rolls_nothing() -> None:
    obs = observed([pod(0, ""), pod(1, "")]).model_copy(
        update={"brokers": StatefulSetState(name="demo-broker", exists=True)})
    assert not roll.plan_roll(obs)


def test_plan_merges_a_manual_request() -> None:
    obs = observed([pod(0, OLD), pod(1, NEW), pod(2, NEW)])
    plan = roll.plan_roll(obs, RollRequest(reason="rotate certs", brokers=[2, 0, 7]))
    assert plan.node_ids == [0, 2] and plan.ignored == (7,)
    assert [s.if_outdated for s in plan.steps] == [False, False]
    assert plan.steps[0].reason == f"revision {OLD} -> {NEW}; rotate certs"
    everything = roll.plan_roll(obs, RollRequest(reason="all"))
    assert everything.node_ids == [1001, 1002, 1000, 0, 1, 2]  # leader 1000 last of the controllers


def test_plan_is_blocked_by_a_pod_stuck_on_the_new_revision() -> None:
    obs = observed([pod(0, NEW, ready=False, waiting_reason="CrashLoopBackOff"), pod(1, OLD)])
    plan = roll.plan_roll(obs)
    assert plan.node_ids == [1] and "demo-broker-0 is CrashLoopBackOff on its update revision" in plan.blocked
    # Stuck on the old revision: rolled first, no block (the new spec may be the fix).
    plan = roll.plan_roll(observed([pod(0, OLD, ready=False, waiting_reason="CrashLoopBackOff"), pod(1, OLD)]))
    assert plan.node_ids == [0, 1] and not plan.blocked


def test_plan_rack_aware_orders_healthy_brokers_rack_by_rack() -> None:
    brokers = [pod(i, OLD, rack=r) for i, r in enumerate(["a", "b", "c", "a", "b", "c"])]
    brokers[4] = brokers[4].model_copy(update={"ready": False})
    plan = roll.plan_roll(observed(brokers, spec={"rollPolicy": {"rackAware": True}}))
    assert plan.node_ids == [4, 0, 3, 1, 2, 5]
    assert roll.plan_roll(observed(brokers)).node_ids == [4, 0, 1, 2, 3, 5]


@st.composite
def clusters(draw: st.DrawFn) -> tuple[ObservedCluster, RollRequest | None]:
    n_brokers = draw(st.integers(1, 8))
    n_controllers = draw(st.sampled_from([1, 3, 5]))

    def some_pod(node_id: int, old: str, new: str) -> PodState:
        waiting = draw(st.sampled_from(["", "", "", "CrashLoopBackOff", "ContainerCreating"]))
        return pod(node_id, draw(st.sampled_from([old, new, ""])), ready=draw(st.booleans()) and not waiting,
                   waiting_reason=waiting, rack=draw(st.sampled_from(["", "a", "b"])))

    controllers = [some_pod(1000 + i, C_OLD, C_NEW) for i in range(n_controllers)]
    brokers = [some_pod(i, OLD, NEW) for i in range(n_brokers)]
    leader = draw(st.sampled_from([None, *[p.node_id for p in controllers]]))
    request = draw(st.one_of(st.none(), st.builds(RollRequest, reason=st.just("manual"), brokers=st.one_of(
        st.none(), st.lists(st.integers(0, 1006), max_size=6)))))
    spec = {"rollPolicy": {"rackAware": draw(st.booleans())}}
    return observed(brokers, controllers, leader=leader if leader is not None else -1, spec=spec), request


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_plan_order_invariants(case: tuple[ObservedCluster, RollRequest | None]) -> None:
    obs, request = case
    plan = roll.plan_roll(obs, request)
    ids = plan.node_ids
    assert len(ids) == len(set(ids)), "each pod at most once"
    roles = [s.role for s in plan.steps]
    assert roles == sorted(roles, key=lambda r: r != "controller"), "controllers before brokers"
    leader = obs.kafka.quorum_leader_id
    controller_ids = [s.node_id for s in plan.steps if s.role == "controller"]
    if leader in controller_ids:
        assert controller_ids[-1] == leader, "the active controller last among controllers"
    all_pods = {p.node_id: p for p in [*obs.controller_pods, *obs.broker_pods]}
    broker_health = [roll._healthy(all_pods[s.node_id]) for s in plan.steps if s.role == "broker"]
    assert broker_health == sorted(broker_health), "unready/stuck brokers first"
    outdated = {p.node_id for p in obs.controller_pods if roll.is_outdated(p, C_NEW)} | \
               {p.node_id for p in obs.broker_pods if roll.is_outdated(p, NEW)}
    requested: set[int] = set()
    if request is not None:
        requested = set(all_pods) if request.brokers is None else set(request.brokers) & set(all_pods)
    assert set(ids) == outdated | requested
    assert all(s.if_outdated == (s.node_id not in requested) for s in plan.steps)


# --- merging and batching ----------------------------------------------------------------------------------

def step(node_id: int, rack: str = "", if_outdated: bool = True) -> RollStep:
    role = "controller" if node_id >= 1000 else "broker"
    return RollStep(node_id=node_id, role=role, pod=f"demo-{role}-{node_id}", rack=rack, if_outdated=if_outdated,
                    reason="r")


def test_merge_steps_dedupes_and_keeps_controllers_first() -> None:
    pending = [step(1001), step(2), step(3)]
    merged, added = roll.merge_steps(pending, [step(3, if_outdated=False), step(1002), step(5), step(2)])
    assert [s.node_id for s in merged] == [1001, 1002, 2, 3, 5]
    assert [s.node_id for s in added] == [1002, 5]
    assert merged[3].if_outdated is False  # a manual request makes the pending step unconditional


def test_batch_candidates() -> None:
    pending = [step(0, "a"), step(1, "a"), step(2, "b"), step(3, "a")]
    assert [s.node_id for s in roll.batch_candidates(pending, 1, False)] == [0]
    assert [s.node_id for s in roll.batch_candidates(pending, 3, False)] == [0, 1, 2]
    assert [s.node_id for s in roll.batch_candidates(pending, 3, True)] == [0, 1]
    assert [s.node_id for s in roll.batch_candidates([step(1000), step(0)], 3, False)] == [1000]
    assert [s.node_id for s in roll.batch_candidates([step(0), step(1000)], 3, False)] == [0]
    assert roll.batch_candidates([], 2, False) == []


# --- the broker gate ---------------------------------------------------------------------------------------

def part(replicas: list[int], isr: list[int], min_isr: int = 2, adding: list[int] | None = None,
         name: str = "t", index: int = 0) -> PartitionFacts:
    return PartitionFacts(topic=name, partition=index, replicas=replicas, isr=isr, leader=isr[0] if isr else -1,
                          min_isr=min_isr, adding=adding or [])


def test_broker_gate_examples() -> None:
    assert roll.can_roll_broker(0, [part([0, 1, 2], [0, 1, 2])]).ok
    blocked = roll.can_roll_broker(0, [part([0, 1, 2], [0, 1])])  # ISR == minISR and 0 in the ISR
    assert not blocked.ok and "t-0: ISR [0, 1] would keep 1 in sync without broker 0" in blocked.reasons[0]
    assert roll.can_roll_broker(2, [part([0, 1, 2], [0, 1])]).ok  # ISR == minISR, 2 not in it
    assert not roll.can_roll_broker(2, [part([0, 1, 2], [0])]).ok  # already below minISR
    assert roll.can_roll_broker(3, [part([0, 1, 2], [0])]).ok  # no replica here
    assert roll.can_roll_broker(0, [part([0, 1], [0, 1])]).ok  # RF <= minISR never blocks
    assert roll.can_roll_broker(0, [part([0], [0], min_isr=1)]).ok


def test_broker_gate_counts_reassignment_additions_as_not_in_sync() -> None:
    # Moving t-0 from [0,1,2] to [1,2,3]: 3 is being added and already listed in the ISR.
    moving = part([1, 2, 3, 0], [0, 1, 2, 3], adding=[3])
    assert roll.can_roll_broker(1, [moving]).ok  # 0 and 2 stay in sync
    thin = part([1, 2, 3, 0], [1, 3, 0], adding=[3])
    result = roll.can_roll_broker(1, [thin])
    # Counting 3 would say [3, 0] stay: the gate says only [0] does.
    assert not result.ok and "reassignment adding [3] not counted" in result.reasons[0]
    assert roll.can_roll_broker(3, [part([1, 2, 3], [1, 3], adding=[3])]).ok  # RF 2 without 3 <= minISR: exempt


def test_joint_gate_and_racks() -> None:
    partitions = [part([0, 1, 2], [0, 1, 2], index=0), part([3, 4, 5], [3, 4, 5], index=1)]
    assert roll.can_roll_brokers([0, 3], partitions).ok  # different partitions
    assert not roll.can_roll_brokers([0, 1], partitions).ok  # t-0 would keep only 2
    # Rack a = {0, 3, 4}: restarting 0 with the rest of its rack counted down leaves t-1 with [5] only.
    assert roll.can_roll_brokers([0], partitions, also_down=[3, 4]).ok  # t-1 is not touched by broker 0
    assert not roll.can_roll_brokers([0, 3], partitions, also_down=[4]).ok


def test_broker_gate_over_observations() -> None:
    ok = GateObservation(partitions=[part([0, 1, 2], [0, 1, 2])])
    assert roll.broker_gate([0], [ok]).ok
    down = GateObservation(reachable=False, error="bootstrap: connection refused")
    result = roll.broker_gate([0, 1], [ok, down])
    assert not result.ok and result.reasons == ["Kafka did not answer: bootstrap: connection refused"]


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, list[PartitionFacts]]:
    n = draw(st.integers(1, 7))
    partitions = []
    for index in range(draw(st.integers(0, 12))):
        replicas = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        isr = [r for r in replicas if draw(st.booleans())]
        adding = [r for r in replicas[1:] if draw(st.integers(0, 4)) == 0]
        min_isr = draw(st.integers(1, len(replicas) + 1))
        partitions.append(part(replicas, isr, min_isr=min_isr, adding=adding, index=index))
    return n, partitions


def _non_exempt(p: PartitionFacts) -> bool:
    return len([r for r in p.replicas if r not in p.adding]) > p.min_isr


@settings(max_examples=400, deadline=None)
@given(layouts(), st.data())
def test_gate_never_lets_a_partition_drop_below_min_isr(layout: tuple[int, list[PartitionFacts]],
                                                        data: st.DataObject) -> None:
    n, partitions = layout
    batch = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))
    if not roll.can_roll_brokers(batch, partitions).ok:
        return
    for p in partitions:
        if (set(p.replicas) | set(p.adding)) & batch and _non_exempt(p):
            # Even if every replica being added drops out of the ISR meanwhile.
            staying = [r for r in p.isr if r not in batch and r not in p.adding]
            assert len(staying) >= p.min_isr, (p, batch)


@settings(max_examples=300, deadline=None)
@given(layouts(), st.data())
def test_gate_is_monotonic_in_the_isr_and_in_the_batch(layout: tuple[int, list[PartitionFacts]],
                                                       data: st.DataObject) -> None:
    n, partitions = layout
    node = data.draw(st.integers(0, n - 1))
    if not partitions or not roll.can_roll_broker(node, partitions).ok:
        return
    # A replica joining an ISR never turns an allowed restart into a blocked one...
    index = data.draw(st.integers(0, len(partitions) - 1))
    p = partitions[index]
    grown = p.model_copy(update={"isr": sorted(set(p.isr) | {data.draw(st.sampled_from(p.replicas))})})
    assert roll.can_roll_broker(node, [*partitions[:index], grown, *partitions[index + 1:]]).ok
    # ...and whatever a batch may do, each of its members may do alone.
    batch = data.draw(st.sets(st.integers(0, n - 1), max_size=n)) | {node}
    if roll.can_roll_brokers(batch, partitions).ok:
        assert all(roll.can_roll_broker(b, partitions).ok for b in batch)


@settings(max_examples=200, deadline=None)
@given(layouts(), st.lists(st.integers(0, 6), max_size=10))
def test_rolling_whatever_the_gate_allows_one_at_a_time_keeps_min_isr(
        layout: tuple[int, list[PartitionFacts]], order: list[int]) -> None:
    """Restart brokers in any order, each only when the gate allows, each back in its ISRs before the next:
    no partition that satisfied minISR ever drops below it."""
    n, partitions = layout
    for node in (b for b in order if b < n):
        if not roll.can_roll_broker(node, partitions).ok:
            continue
        down = [p.model_copy(update={"isr": [r for r in p.isr if r != node]}) for p in partitions]
        for before, during in zip(partitions, down, strict=True):
            healthy = len([r for r in before.isr if r not in before.adding]) >= before.min_isr
            if node in before.replicas and _non_exempt(before) and healthy:
                assert len(during.isr) >= during.min_isr


# --- the controller gate -----------------------------------------------------------------------------------

def quorum(leader: int, *voters: tuple[int, int], hw: int = 1000, now: int = 50_000) -> GateObservation:
    return GateObservation(quorum_leader_id=leader, quorum_high_watermark=hw, now_ms=now,
                           voters=[VoterFacts(node_id=v, log_end_offset=leo, last_caught_up_ms=-1)
                                   for v, leo in voters])


def test_controller_gate() -> None:
    healthy = quorum(1000, (1000, 1000), (1001, 1000), (1002, 990))
    assert roll.can_roll_controller(1001, healthy).ok
    assert roll.can_roll_controller(1000, healthy).ok  # the leader, when both others are caught up
    lagging = quorum(1000, (1000, 1000), (1001, 1000), (1002, -1))
    result = roll.can_roll_controller(1001, lagging)
    assert not result.ok and "1/2 other voters caught up, 2 needed without controller 1001" in result.reasons[0]
    assert roll.can_roll_controller(1002, lagging).ok  # the lagging one itself may go
    recent = GateObservation(quorum_leader_id=1000, quorum_high_watermark=10_000, now_ms=50_000, voters=[
        VoterFacts(node_id=1000, log_end_offset=10_000), VoterFacts(node_id=1001, last_caught_up_ms=45_000),
        VoterFacts(node_id=1002, last_caught_up_ms=1_000)])
    assert roll.can_roll_controller(1002, recent).ok and not roll.can_roll_controller(1001, recent).ok
    assert not roll.can_roll_controller(1000, quorum(-1, (1000, 1), (1001, 1), (1002, 1))).ok
    assert not roll.can_roll_controller(1000, GateObservation(reachable=False, error="refused")).ok
    single = roll.can_roll_controller(1000, quorum(1000, (1000, 5)))
    assert single.ok and "single voter" in single.reasons[0]
    five = quorum(1000, (1000, 1000), (1001, 1000), (1002, 1000), (1003, 0), (1004, 0))
    assert not roll.can_roll_controller(1001, five).ok  # 2 of the 4 others: not a majority of them
    assert roll.can_roll_controller(1003, five).ok


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([3, 5]), st.data())
def test_controller_gate_keeps_a_caught_up_majority(size: int, data: st.DataObject) -> None:
    ids = list(range(1000, 1000 + size))
    leader = data.draw(st.sampled_from(ids))
    obs = quorum(leader, *[(v, 1000 if v == leader else data.draw(st.sampled_from([-1, 0, 1000]))) for v in ids])
    node = data.draw(st.sampled_from(ids))
    if roll.can_roll_controller(node, obs).ok:
        caught = [v for v in obs.voters if v.node_id != node and roll.voter_caught_up(v, obs)]
        assert len(caught) > size // 2  # a majority of the whole quorum stays caught up
