"""The simulated Kafka cluster model: KRaft quorum, brokers, topics, ISR/leadership, sizes, catch-up,
throttles, reassignment, configs, log dirs and history, plus property tests over random operation
sequences. Pure Python (no sockets); time is a manual simulation clock, so nothing here sleeps."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devcluster.kafka import ClusterDirectory, KafkaClusterModel, SimClock, directory_for
from devcluster.kafka.control import KafkaControl
from devcluster.kafka.errors import ErrorCode, KafkaError, NoActiveController
from devcluster.kafka.model import Tuning
from devcluster.kafka.types import (
    AlterConfigOp,
    ConfigResourceType,
    ConfigSource,
    ElectionType,
    Endpoint,
    LogDirSpec,
)

MiB = 2**20
GiB = 2**30
T0 = 1_700_000_000.0
VOTERS = "1@ctl-0:9093,2@ctl-1:9093,3@ctl-2:9093"


class Cluster:
    """A 3-controller cluster with brokers 101.. on a manual clock."""

    def __init__(self, brokers: int = 3, racks: Sequence[str] | None = None, dirs: Sequence[str] = ("/data",),
                 capacity: int = 100 * GiB, seed: int | None = None, controllers: int = 3,
                 broker_static: dict[str, str] | None = None) -> None:
        self.clock = SimClock(manual=True, start=T0)
        self.model = ClusterDirectory(self.clock, Tuning(seed=seed)).get_or_create("test-cluster")
        voters = ",".join(f"{i}@ctl-{i - 1}:9093" for i in range(1, controllers + 1))
        self.static = {"controller.quorum.voters": voters}
        for node_id in range(1, controllers + 1):
            self.model.start_node(node_id, roles={"controller"}, static_config=self.static,
                                  endpoints=[Endpoint("CONTROLLER", f"ctl-{node_id - 1}", 9093)])
        self.racks = racks
        self.dirs = dirs
        self.capacity = capacity
        self.broker_static = broker_static or {}
        self.brokers = [101 + i for i in range(brokers)]
        for broker in self.brokers:
            self.start(broker)
        self.advance(2)

    def start(self, broker: int) -> None:
        rack = self.racks[(broker - 101) % len(self.racks)] if self.racks else None
        static = {**self.static, "node.id": str(broker), "process.roles": "broker", **self.broker_static}
        if rack:
            static["broker.rack"] = rack
        self.model.start_node(broker, roles={"broker"}, rack=rack, static_config=static,
                              endpoints=[Endpoint("PLAINTEXT", f"kafka-{broker - 101}.kafka", 9092)],
                              log_dirs=[LogDirSpec(d, self.capacity) for d in self.dirs])

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.advance_to()

    def partition(self, topic: str, index: int = 0):
        state = self.model.topic(topic)
        assert state is not None
        return state.partitions[index]

    def size(self, topic: str, index: int, broker: int) -> int:
        return self.model.replica_size(self.partition(topic, index), broker)

    def isr_events(self, topic: str, index: int = 0) -> list:
        return [e for e in self.model.history() if e.kind == "isr" and e.topic == topic and e.partition == index]


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


# ------------------------------------------------------------------------------------- clock
def test_sim_clock_speed_and_manual_time() -> None:
    wall = [1000.0]
    clock = SimClock(speed=100, start=T0, wall=lambda: wall[0])
    wall[0] += 2.0
    assert clock.now() == pytest.approx(T0 + 200)
    clock.set_speed(1)
    wall[0] += 2.0
    assert clock.now() == pytest.approx(T0 + 202)
    assert clock.wall_delay(T0 + 212) == pytest.approx(10)
    clock.set_speed(0)
    assert clock.wall_delay(T0 + 1000) == math.inf
    assert clock.advance(5) == pytest.approx(T0 + 207)
    manual = SimClock(manual=True, start=T0)
    with pytest.raises(ValueError):
        manual.set_speed(2)
    assert manual.now_ms() == int(T0 * 1000)


def test_directory_is_per_owner_and_shares_models_by_cluster_id() -> None:
    class Owner:
        pass

    first, second = Owner(), Owner()
    directory = directory_for(first)
    assert directory_for(first) is directory
    assert directory_for(second) is not directory
    model = directory.get_or_create("abc")
    assert directory.get_or_create("abc") is model
    assert directory.get_or_create("def") is not model
    assert directory_for(second).get("abc") is None


# ------------------------------------------------------------------------------------ quorum
def test_quorum_elects_a_leader_once_a_majority_runs() -> None:
    clock = SimClock(manual=True, start=T0)
    model = KafkaClusterModel("q", clock)
    model.start_node(1, roles={"controller"}, static_config={"controller.quorum.voters": VOTERS})
    clock.advance(5)
    assert model.active_controller_id() == -1  # 1 of 3 voters is not a majority
    with pytest.raises(NoActiveController) as raised:
        model.create_topic("t", num_partitions=1, replication_factor=1)
    assert raised.value.code is ErrorCode.REQUEST_TIMED_OUT
    model.start_node(2, roles={"controller"}, static_config={"controller.quorum.voters": VOTERS})
    clock.advance(0.5)
    assert model.active_controller_id() == -1  # the election timeout has not passed yet
    clock.advance(0.6)
    assert model.active_controller_id() in (1, 2)
    quorum = model.quorum_state()
    assert quorum.leader_epoch == 1
    assert [v.replica_id for v in quorum.voters] == [1, 2, 3]
    by_id = {v.replica_id: v for v in quorum.voters}
    assert by_id[3].log_end_offset == -1 and by_id[3].last_caught_up_timestamp_ms == -1
    assert by_id[quorum.leader_id].last_fetch_timestamp_ms == clock.now_ms()


def test_bootstrap_servers_only_make_every_started_controller_a_voter() -> None:
    """KIP-853's dynamic quorum, approximated as the config.py contract says: without
    controller.quorum.voters, each controller that starts joins the voter set; brokers observe."""
    clock = SimClock(manual=True, start=T0)
    model = KafkaClusterModel("dynamic", clock)
    static = {"controller.quorum.bootstrap.servers": "ctl-0:9093,ctl-1:9093,ctl-2:9093"}
    for node_id in (1, 2, 3):
        model.start_node(node_id, roles={"controller"}, static_config=static,
                         log_dirs=[LogDirSpec("/var/lib/kafka/meta", GiB)],
                         endpoints=[Endpoint("CONTROLLER", f"ctl-{node_id - 1}", 9093)])
    model.start_node(101, roles={"broker"}, static_config=static, log_dirs=[LogDirSpec("/data", GiB)])
    clock.advance(5)
    quorum = model.quorum_state()
    assert quorum.leader_id in (1, 2, 3) and quorum.leader_epoch >= 1
    assert [v.replica_id for v in quorum.voters] == [1, 2, 3]
    assert [o.replica_id for o in quorum.observers] == [101]
    for voter in quorum.voters:
        # The directory id of the voter's metadata log dir, as a KIP-853 voter record carries it.
        assert voter.replica_directory_id.int != 0
        assert voter.replica_directory_id == model.node(voter.replica_id).directory_ids[0]
        assert voter.log_end_offset == quorum.high_watermark
    # Endpoints come from the controllers themselves (there is no static voters string to read them from).
    assert quorum.voter_endpoints[2] == (Endpoint("CONTROLLER", "ctl-1", 9093),)
    assert [b.node_id for b in model.alive_brokers()] == [101]
    # The approximation: a controller started later joins the voters without an AddRaftVoter.
    model.start_node(4, roles={"controller"}, static_config=static)
    assert [v.replica_id for v in model.quorum_state().voters] == [1, 2, 3, 4]


def test_stopped_voter_falls_behind_and_catches_up_after_restart(cluster: Cluster) -> None:
    model = cluster.model
    leader = model.active_controller_id()
    follower = next(v for v in (1, 2, 3) if v != leader)
    model.stop_node(follower, graceful=True)
    stopped_at = cluster.clock.now_ms()
    cluster.advance(30)  # NoOpRecords every 500 ms (and fencing of nothing) keep the log growing
    quorum = model.quorum_state()
    voter = {v.replica_id: v for v in quorum.voters}
    assert quorum.leader_id == leader
    assert voter[follower].log_end_offset < voter[leader].log_end_offset - 50
    assert voter[follower].last_caught_up_timestamp_ms == stopped_at
    assert voter[follower].last_fetch_timestamp_ms == stopped_at
    model.start_node(follower, roles={"controller"}, static_config=cluster.static)
    behind = {v.replica_id: v for v in model.quorum_state().voters}[follower]
    assert behind.last_caught_up_timestamp_ms == stopped_at  # still catching up
    assert behind.last_fetch_timestamp_ms == cluster.clock.now_ms()
    cluster.advance(1)
    quorum = model.quorum_state()
    caught_up = {v.replica_id: v for v in quorum.voters}[follower]
    assert caught_up.log_end_offset == {v.replica_id: v for v in quorum.voters}[leader].log_end_offset
    assert caught_up.last_caught_up_timestamp_ms == cluster.clock.now_ms()
    assert quorum.high_watermark == caught_up.log_end_offset
    assert [o.replica_id for o in quorum.observers] == cluster.brokers
    assert {v.replica_directory_id for v in quorum.voters} == {uuid.UUID(int=0)}  # static voters
    assert all(o.replica_directory_id != uuid.UUID(int=0) for o in quorum.observers)
    assert quorum.voter_endpoints[2] == (Endpoint("CONTROLLER", "ctl-1", 9093),)


def test_quorum_leader_failover_and_loss_of_majority(cluster: Cluster) -> None:
    model = cluster.model
    first = model.active_controller_id()
    model.stop_node(first, graceful=False)
    assert model.active_controller_id() == -1
    cluster.advance(1.9)  # controller.quorum.fetch.timeout.ms = 2 s before followers campaign
    assert model.active_controller_id() == -1
    cluster.advance(0.2)
    second = model.active_controller_id()
    assert second not in (-1, first)
    assert model.quorum_state().leader_epoch == 2
    model.create_topic("still-writable", num_partitions=1, replication_factor=3)
    third = next(v for v in (1, 2, 3) if v not in (first, second))
    model.stop_node(third, graceful=False)  # 1 of 3 voters left: the leader resigns
    cluster.advance(2.1)
    assert model.active_controller_id() == -1
    with pytest.raises(NoActiveController):
        model.create_topic("not-writable", num_partitions=1, replication_factor=3)
    assert model.topic("still-writable") is not None  # reads are served from the brokers' metadata
    leaders = [e.leader for e in model.history() if e.kind == "quorum_leader"]
    assert leaders == [first, -1, second, -1]


# ---------------------------------------------------------------------------- topics/placement
def test_brokers_register_and_metadata_lists_unfenced_brokers(cluster: Cluster) -> None:
    assert [b.node_id for b in cluster.model.alive_brokers()] == [101, 102, 103]
    assert [c.node_id for c in cluster.model.controllers()] == [1, 2, 3]
    assert cluster.model.broker(1) is None
    assert cluster.model.metadata_controller_id() in (101, 102, 103)
    with pytest.raises(KafkaError) as raised:
        cluster.model.node(999)
    assert raised.value.code is ErrorCode.BROKER_NOT_AVAILABLE


def test_create_topic_places_replicas_across_racks_and_starts_with_full_isr() -> None:
    cluster = Cluster(brokers=6, racks=["a", "b", "c"])
    result = cluster.model.create_topic("orders", num_partitions=12, replication_factor=3)
    assert (result.num_partitions, result.replication_factor) == (12, 3)
    rack = {101 + i: "abc"[i % 3] for i in range(6)}
    leaders = []
    for p in cluster.model.topic("orders").partitions:
        assert len(set(p.replicas)) == 3
        assert {rack[b] for b in p.replicas} == {"a", "b", "c"}
        assert p.isr == p.replicas and p.leader == p.replicas[0] and p.leader_epoch == 0
        leaders.append(p.leader)
    assert set(leaders) == set(range(101, 107))  # leadership spread over every broker
    assert isinstance(result.topic_id, uuid.UUID)
    assert cluster.model.topic_by_id(result.topic_id).name == "orders"
    entry = {c.name: c for c in result.configs}["retention.ms"]
    assert (entry.value, entry.source) == ("604800000", ConfigSource.DEFAULT_CONFIG)


def test_placement_is_deterministic_for_a_seed() -> None:
    def placements(seed: int) -> list[tuple[int, ...]]:
        cluster = Cluster(brokers=5, seed=seed)
        cluster.model.create_topic("t", num_partitions=10, replication_factor=3)
        return [p.replicas for p in cluster.model.topic("t").partitions]

    assert placements(7) == placements(7)
    assert placements(7) != placements(8)


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"num_partitions": 1, "replication_factor": 4}, ErrorCode.INVALID_REPLICATION_FACTOR,
         "Unable to replicate the partition 4 time(s): The target replication factor of 4 cannot be reached "
         "because only 3 broker(s) are registered."),
        ({"num_partitions": 0, "replication_factor": 1}, ErrorCode.INVALID_PARTITIONS,
         "Number of partitions was set to an invalid non-positive value."),
        ({"num_partitions": 1, "replication_factor": 0}, ErrorCode.INVALID_REPLICATION_FACTOR,
         "Replication factor must be larger than 0, or -1 to use the default value."),
        ({"num_partitions": 1, "replication_factor": 1, "configs": {"retention.ms": "soon"}},
         ErrorCode.INVALID_CONFIG, "Invalid value soon for configuration retention.ms: Not a number of type LONG"),
        ({"num_partitions": 1, "replication_factor": 1, "configs": {"no.such.config": "1"}},
         ErrorCode.INVALID_CONFIG, "Unknown topic config name: no.such.config"),
        ({"assignment": {0: [101, 101]}}, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
         "The manual partition assignment includes the broker 101 more than once."),
        ({"assignment": {0: [101, 999]}}, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
         "The manual partition assignment includes broker 999, but no such broker is registered."),
        ({"assignment": {0: [101]}, "replication_factor": 1}, ErrorCode.INVALID_REQUEST,
         "A manual partition assignment was specified, but replication factor was not set to -1."),
        ({"assignment": {1: [101]}}, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
         "partitions should be a consecutive 0-based integer sequence"),
    ],
)
def test_create_topic_errors(cluster: Cluster, kwargs: dict, code: ErrorCode, message: str) -> None:
    with pytest.raises(KafkaError) as raised:
        cluster.model.create_topic("t", **kwargs)
    assert (raised.value.code, raised.value.message) == (code, message)
    assert cluster.model.topic("t") is None


def test_create_topic_names_defaults_and_validate_only(cluster: Cluster) -> None:
    model = cluster.model
    for name, message in [
        ("", "Topic name is invalid: the empty string is not allowed"),
        ("..", "Topic name is invalid: '..' is not allowed"),
        ("a/b", "Topic name is invalid: 'a/b' contains one or more characters other than ASCII alphanumerics, "
                "'.', '_' and '-'"),
    ]:
        with pytest.raises(KafkaError) as raised:
            model.create_topic(name)
        assert (raised.value.code, raised.value.message) == (ErrorCode.INVALID_TOPIC_EXCEPTION, message)
    checked = model.create_topic("dry", num_partitions=3, replication_factor=2, validate_only=True)
    assert checked.num_partitions == 3 and model.topic("dry") is None
    model.create_topic("a.b", num_partitions=1, replication_factor=1)
    with pytest.raises(KafkaError) as raised:
        model.create_topic("a_b", num_partitions=1, replication_factor=1)
    assert raised.value.message == "Topic 'a_b' collides with existing topic: a.b"
    with pytest.raises(KafkaError) as raised:
        model.create_topic("a.b", num_partitions=1, replication_factor=1)
    assert (raised.value.code, raised.value.message) == (ErrorCode.TOPIC_ALREADY_EXISTS, "Topic 'a.b' already exists.")
    defaults = model.create_topic("defaults")  # num.partitions = 1, default.replication.factor = 1
    assert (defaults.num_partitions, defaults.replication_factor) == (1, 1)


def test_delete_topic_by_name_and_id(cluster: Cluster) -> None:
    model = cluster.model
    first = model.create_topic("one", num_partitions=2, replication_factor=3)
    model.create_topic("two", num_partitions=1, replication_factor=1)
    assert model.delete_topic("one") == ("one", first.topic_id)
    assert model.topic("one") is None and model.topic_by_id(first.topic_id) is None
    two = model.topic("two")
    assert model.delete_topic(topic_id=two.topic_id) == ("two", two.topic_id)
    with pytest.raises(KafkaError) as raised:
        model.delete_topic("one")
    assert raised.value.code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    with pytest.raises(KafkaError) as raised:
        model.delete_topic(topic_id=uuid.uuid4())
    assert raised.value.code is ErrorCode.UNKNOWN_TOPIC_ID
    assert all(r.replicas == () for d in model.describe_log_dirs(101) for r in [d])


def test_create_partitions(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("grow", num_partitions=2, replication_factor=2)
    model.create_partitions("grow", 4)
    assert [p.index for p in model.topic("grow").partitions] == [0, 1, 2, 3]
    assert all(len(p.replicas) == 2 for p in model.topic("grow").partitions)
    with pytest.raises(KafkaError) as raised:
        model.create_partitions("grow", 3)
    assert raised.value.message == "The topic grow currently has 4 partition(s); 3 would not be an increase."


# ------------------------------------------------------------------------------- sizes & ISR
def test_sizes_grow_with_ingest_and_skew(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("events", num_partitions=4, replication_factor=3)
    model.set_ingest_rate("events", 4 * MiB, weights=[1, 1, 1, 5])
    cluster.advance(100)
    sizes = [cluster.size("events", i, cluster.partition("events", i).leader) for i in range(4)]
    assert sizes == [50 * MiB, 50 * MiB, 50 * MiB, 250 * MiB]
    p = cluster.partition("events", 3)
    assert {model.replica_size(p, b) for b in p.replicas} == {250 * MiB}  # in-sync followers keep up
    model.inflate_partition("events", 0, GiB)
    assert cluster.size("events", 0, cluster.partition("events", 0).leader) == GiB + 50 * MiB


def test_crashed_broker_leaves_isr_after_session_timeout_then_catches_up(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102, 103]})
    model.set_replication_rate(11 * MiB)
    model.set_ingest_rate("t", MiB)
    cluster.advance(10)
    model.stop_node(101, graceful=False)
    cluster.advance(8.9)
    p = cluster.partition("t")
    assert (p.leader, p.isr) == (101, (101, 102, 103))  # the controller has not noticed yet
    assert model.replica_size(p, 102) == 10 * MiB  # no writes: the leader is down
    cluster.advance(0.2)
    assert (p.leader, p.isr, p.leader_epoch) == (102, (102, 103), 1)
    assert p.offline_replicas == (101,)
    fenced_at = cluster.clock.now()
    cluster.advance(100 - (cluster.clock.now() - fenced_at) + 9.1)
    lag = model.replica_size(p, 102) - model.replica_size(p, 101)
    model_lag_mib = lag / MiB
    cluster.start(101)
    restarted = cluster.clock.now()
    cluster.advance(0.5)  # registration -> unfenced
    assert p.offline_replicas == () and 101 not in p.isr
    # It copies at 11 MiB/s while the log grows at 1 MiB/s.
    expected = 0.5 + (model_lag_mib + 0.5) / 10
    cluster.advance(expected - 0.5 - 0.1)
    assert 101 not in cluster.partition("t").isr
    cluster.advance(0.2)
    assert cluster.partition("t").isr == (102, 103, 101)
    joined = cluster.isr_events("t")[-1]
    assert joined.time - restarted == pytest.approx(expected, abs=1e-6)
    assert model.replica_size(p, 101) == model.replica_size(p, 102)
    # Preferred leader election moves leadership back.
    [result] = model.elect_leaders(ElectionType.PREFERRED, {"t": [0]})
    assert result.error is ErrorCode.NONE and cluster.partition("t").leader == 101
    [again] = model.elect_leaders(ElectionType.PREFERRED, {"t": [0]})
    assert (again.error, again.message) == (ErrorCode.ELECTION_NOT_NEEDED,
                                            "Leader election not needed for topic partition.")


def test_graceful_stop_moves_leaders_at_once_and_auto_rebalance_restores_them(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102, 103], 1: [102, 103, 101]})
    model.stop_node(101, graceful=True)
    p0 = cluster.partition("t", 0)
    assert (p0.leader, p0.isr) == (102, (102, 103))
    fence = [e for e in model.history() if e.kind == "broker_fenced"][-1]
    assert (fence.node, fence.reason) == (101, "controlled_shutdown")
    cluster.start(101)
    cluster.advance(1)
    assert cluster.partition("t", 0).isr == (102, 103, 101) and cluster.partition("t", 0).leader == 102
    cluster.advance(300)  # leader.imbalance.check.interval.seconds
    assert cluster.partition("t", 0).leader == 101
    assert cluster.partition("t", 1).leader == 102


def test_partition_goes_offline_when_last_isr_member_dies_and_returns_with_it(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102]})
    model.set_ingest_rate("t", MiB)
    model.stop_node(102, graceful=True)
    cluster.advance(5)
    model.stop_node(101, graceful=True)
    p = cluster.partition("t")
    assert (p.leader, p.isr) == (-1, (101,))  # unclean election is off: the last ISR member stays
    size = model.replica_size(p, 101)
    cluster.advance(60)
    assert model.replica_size(p, 101) == size
    [result] = model.elect_leaders(ElectionType.PREFERRED, {"t": [0]})
    assert result.error is ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    [result] = model.elect_leaders(ElectionType.UNCLEAN, {"t": [0]})
    assert result.error is ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    cluster.start(102)  # not in the ISR: cannot lead
    cluster.advance(1)
    assert (p.leader, p.isr) == (-1, (101,))
    cluster.start(101)
    cluster.advance(1)
    assert p.leader == 101
    assert p.isr == (101, 102)  # 102 caught up from the returning leader
    violations = model.min_isr_violations()
    assert violations == []  # min.insync.replicas is 1 here


def test_min_isr_violations_and_acks_all_writes() -> None:
    cluster = Cluster(broker_static={"min.insync.replicas": "2"})
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102, 103]}, configs={"min.insync.replicas": "2"})
    model.set_ingest_rate("t", MiB)
    model.stop_node(103, graceful=True)
    cluster.advance(10)
    model.stop_node(102, graceful=True)
    size = cluster.size("t", 0, 101)
    cluster.advance(10)
    assert cluster.size("t", 0, 101) == size  # acks=all producers get NOT_ENOUGH_REPLICAS
    [violation] = model.min_isr_violations()
    assert (violation.topic, violation.partition, violation.isr_size, violation.min_isr) == ("t", 0, 1, 2)
    assert violation.time == pytest.approx(T0 + 12)


def test_unclean_leader_election_when_enabled(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102]}, configs={"unclean.leader.election.enable": "true"})
    model.stop_node(102, graceful=True)
    model.stop_node(101, graceful=True)
    cluster.start(102)
    cluster.advance(1)
    p = cluster.partition("t")
    assert (p.leader, p.isr) == (102, (102,))


# ------------------------------------------------------------------------------ reassignment
def test_reassignment_copies_at_throttled_rate_then_drops_removed_replicas() -> None:
    cluster = Cluster(brokers=4)
    model = cluster.model
    model.set_replication_rate(50 * MiB)
    model.create_topic("t", assignment={0: [101, 102], 1: [101, 102]})
    model.inflate_partition("t", 0, 100 * MiB)
    model.inflate_partition("t", 1, 100 * MiB)
    model.incremental_alter_configs(ConfigResourceType.BROKER, "104", [
        ("follower.replication.throttled.rate", AlterConfigOp.SET, str(MiB))])
    for index in (0, 1):
        model.incremental_alter_configs(ConfigResourceType.TOPIC, "t", [
            ("follower.replication.throttled.replicas", AlterConfigOp.APPEND, f"{index}:104")])
    start = cluster.clock.now()
    model.alter_reassignment("t", 0, [104, 102])
    model.alter_reassignment("t", 1, [104, 102])
    views = model.list_reassignments()
    assert [(v.partition, v.replicas, v.adding_replicas, v.removing_replicas) for v in views] == [
        (0, (104, 102, 101), (104,), (101,)), (1, (104, 102, 101), (104,), (101,))]
    assert model.list_reassignments({"t": [1], "nope": [0]})[0].partition == 1
    cluster.advance(100)
    # Two replicas share broker 104's 1 MiB/s follower throttle: 0.5 MiB/s each.
    assert cluster.size("t", 0, 104) == pytest.approx(50 * MiB, rel=1e-9)
    model.incremental_alter_configs(ConfigResourceType.BROKER, "104", [
        ("follower.replication.throttled.rate", AlterConfigOp.DELETE, None)])
    cluster.advance(1)  # 50 MiB left each at 25 MiB/s each (the 50 MiB/s replication rate is shared)
    done = [e for e in model.history() if e.kind == "reassignment_completed"]
    assert len(done) == 1 or done == []
    cluster.advance(2)
    done = [e for e in model.history() if e.kind == "reassignment_completed"]
    assert [e.partition for e in done] == [0, 1]
    assert done[0].time - start == pytest.approx(102, abs=1e-6)
    for index in (0, 1):
        p = cluster.partition("t", index)
        # The removed leader hands over to the first in-sync replica in target order.
        assert (p.replicas, p.isr, p.leader, p.adding_replicas, p.removing_replicas) == (
            (104, 102), (102, 104), 104, (), ())
        assert model.replica_size(p, 101) == 0
    assert model.list_reassignments() == []
    assert all(r.partition is None or r.topic != "t"
               for d in model.describe_log_dirs(101) for r in d.replicas)


def test_leader_throttle_limits_the_leader_broker() -> None:
    cluster = Cluster(brokers=3)
    model = cluster.model
    model.create_topic("t", assignment={0: [101]})
    model.inflate_partition("t", 0, 20 * MiB)
    model.incremental_alter_configs(ConfigResourceType.BROKER, "101", [
        ("leader.replication.throttled.rate", AlterConfigOp.SET, str(2 * MiB))])
    model.incremental_alter_configs(ConfigResourceType.TOPIC, "t", [
        ("leader.replication.throttled.replicas", AlterConfigOp.SET, "*")])
    model.alter_reassignment("t", 0, [101, 102, 103])
    cluster.advance(19.9)
    assert cluster.partition("t").adding_replicas == (102, 103)
    cluster.advance(0.2)  # 2 followers x 1 MiB/s each
    assert cluster.partition("t").isr == (101, 102, 103)
    assert cluster.partition("t").adding_replicas == ()


def test_slow_broker_catches_up_slower(cluster: Cluster) -> None:
    model = cluster.model
    model.set_replication_rate(10 * MiB)
    model.set_broker_slowness(103, 4)
    model.create_topic("t", assignment={0: [101]})
    model.inflate_partition("t", 0, 10 * MiB)
    model.alter_reassignment("t", 0, [101, 102, 103])
    cluster.advance(1.01)
    assert cluster.partition("t").isr == (101, 102)
    cluster.advance(3)
    assert cluster.partition("t").isr == (101, 102, 103)


def test_cancel_and_reassignment_errors(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102]})
    model.inflate_partition("t", 0, 10 * GiB)
    with pytest.raises(KafkaError) as raised:
        model.alter_reassignment("t", 0, None)
    assert (raised.value.code, raised.value.message) == (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS,
                                                         "No partition reassignment is in progress.")
    for target, message in [
        ([101, 101], "The manual partition assignment includes the broker 101 more than once."),
        ([101, 555], "The manual partition assignment includes broker 555, but no such broker is registered."),
        ([], "The manual partition assignment includes an empty replica list."),
    ]:
        with pytest.raises(KafkaError) as raised:
            model.alter_reassignment("t", 0, target)
        assert (raised.value.code, raised.value.message) == (ErrorCode.INVALID_REPLICA_ASSIGNMENT, message)
    with pytest.raises(KafkaError) as raised:
        model.alter_reassignment("t", 7, [101])
    assert raised.value.message == "Unable to find partition t:7."
    with pytest.raises(KafkaError) as raised:
        model.alter_reassignment("nope", 0, [101])
    assert raised.value.message == "Unable to find a topic named nope."
    model.alter_reassignment("t", 0, [103, 102])
    cluster.advance(5)
    assert cluster.size("t", 0, 103) > 0
    model.alter_reassignment("t", 0, None)
    p = cluster.partition("t")
    assert (p.replicas, p.isr, p.adding_replicas, p.removing_replicas) == ((102, 101), (101, 102), (), ())
    assert model.replica_size(p, 103) == 0
    kinds = [e.kind for e in model.history() if e.kind.startswith("reassignment")]
    assert kinds == ["reassignment_started", "reassignment_cancelled"]


def test_reordering_replicas_completes_at_once(cluster: Cluster) -> None:
    cluster.model.create_topic("t", assignment={0: [101, 102, 103]})
    cluster.model.alter_reassignment("t", 0, [103, 102, 101])
    p = cluster.partition("t")
    assert (p.replicas, p.leader, cluster.model.list_reassignments()) == ((103, 102, 101), 101, [])
    cluster.advance(300)  # auto leader rebalance picks the new preferred leader
    assert p.leader == 103


# ----------------------------------------------------------------------------------- configs
def _entries(model: KafkaClusterModel, rtype: ConfigResourceType, name: str, *keys: str, node: int | None = None):
    return {e.name: e for e in model.describe_configs(rtype, name, list(keys) or None, handling_node=node,
                                                        include_synonyms=True)}


def test_broker_configs_describe_sources_and_read_only() -> None:
    cluster = Cluster(racks=["a"], broker_static={"num.io.threads": "4"})
    model = cluster.model
    entries = _entries(model, ConfigResourceType.BROKER, "101", "broker.rack", "num.io.threads", "log.dirs",
                       "background.threads", "listeners", node=101)
    assert (entries["broker.rack"].value, entries["broker.rack"].read_only,
            entries["broker.rack"].source) == ("a", True, ConfigSource.STATIC_BROKER_CONFIG)
    assert (entries["num.io.threads"].value, entries["num.io.threads"].read_only,
            entries["num.io.threads"].source) == ("4", False, ConfigSource.STATIC_BROKER_CONFIG)
    assert (entries["background.threads"].value, entries["background.threads"].source,
            entries["background.threads"].is_default) == ("10", ConfigSource.DEFAULT_CONFIG, True)
    assert entries["listeners"].read_only is False
    model.incremental_alter_configs(ConfigResourceType.BROKER, "101", [
        ("num.io.threads", AlterConfigOp.SET, "16")], handling_node=101)
    model.incremental_alter_configs(ConfigResourceType.BROKER, "", [
        ("num.io.threads", AlterConfigOp.SET, "12"), ("min.insync.replicas", AlterConfigOp.SET, "2")])
    entry = _entries(model, ConfigResourceType.BROKER, "101", "num.io.threads", node=101)["num.io.threads"]
    assert (entry.value, entry.source) == ("16", ConfigSource.DYNAMIC_BROKER_CONFIG)
    assert [(s.value, s.source) for s in entry.synonyms] == [
        ("16", ConfigSource.DYNAMIC_BROKER_CONFIG), ("12", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
        ("4", ConfigSource.STATIC_BROKER_CONFIG), ("8", ConfigSource.DEFAULT_CONFIG)]
    defaults = model.describe_configs(ConfigResourceType.BROKER, "")
    assert [(e.name, e.value, e.source) for e in defaults] == [
        ("min.insync.replicas", "2", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
        ("num.io.threads", "12", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)]
    with pytest.raises(KafkaError) as raised:
        model.describe_configs(ConfigResourceType.BROKER, "102", handling_node=101)
    assert (raised.value.code, raised.value.message) == (
        ErrorCode.INVALID_REQUEST, "Unexpected broker id, expected 101 or empty string, but received 102")


def test_throttle_rates_are_dynamic_but_described_read_only(cluster: Cluster) -> None:
    model = cluster.model
    assert "leader.replication.throttled.rate" not in _entries(model, ConfigResourceType.BROKER, "101", node=101)
    model.incremental_alter_configs(ConfigResourceType.BROKER, "101", [
        ("leader.replication.throttled.rate", AlterConfigOp.SET, "1048576")], handling_node=101)
    entry = _entries(model, ConfigResourceType.BROKER, "101", node=101)["leader.replication.throttled.rate"]
    assert (entry.value, entry.read_only, entry.source, entry.is_sensitive) == (
        "1048576", True, ConfigSource.DYNAMIC_BROKER_CONFIG, False)


@pytest.mark.parametrize(
    ("name", "ops", "code", "message"),
    [
        ("101", [("broker.rack", AlterConfigOp.SET, "x")], ErrorCode.INVALID_REQUEST,
         "Cannot update these configs dynamically: Set(broker.rack)"),
        ("", [("listeners", AlterConfigOp.SET, "PLAINTEXT://:9092")], ErrorCode.INVALID_REQUEST,
         "Cannot update these configs at default cluster level, broker id must be specified: Set(listeners)"),
        ("101", [("num.io.threads", AlterConfigOp.SET, "many")], ErrorCode.INVALID_REQUEST,
         "Invalid value many for configuration num.io.threads: Not a number of type INT"),
        ("101", [("num.io.threads", AlterConfigOp.SET, "0")], ErrorCode.INVALID_REQUEST,
         "Invalid value 0 for configuration num.io.threads: Value must be at least 1"),
        ("101", [("num.io.threads", AlterConfigOp.APPEND, "1")], ErrorCode.INVALID_CONFIG,
         "Config value append is not allowed for config key: num.io.threads"),
        ("101", [("num.io.threads", AlterConfigOp.SET, None)], ErrorCode.INVALID_REQUEST,
         "Null value not supported for : num.io.threads"),
        ("101", [("a", AlterConfigOp.SET, "1"), ("a", AlterConfigOp.SET, "2")], ErrorCode.INVALID_REQUEST,
         "Error due to duplicate config keys"),
        ("102", [("num.io.threads", AlterConfigOp.SET, "9")], ErrorCode.INVALID_REQUEST,
         "Unexpected broker id, expected 101, but received 102"),
    ],
)
def test_broker_config_alter_errors(cluster: Cluster, name: str, ops: list, code: ErrorCode, message: str) -> None:
    with pytest.raises(KafkaError) as raised:
        cluster.model.incremental_alter_configs(ConfigResourceType.BROKER, name, ops, handling_node=101)
    assert (raised.value.code, raised.value.message) == (code, message)


def test_topic_configs_incremental_legacy_and_errors(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", num_partitions=1, replication_factor=1, configs={"retention.ms": "1000"})
    entries = _entries(model, ConfigResourceType.TOPIC, "t", "retention.ms", "cleanup.policy", "min.insync.replicas")
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert entries["cleanup.policy"].value == "delete" and entries["cleanup.policy"].is_default
    model.incremental_alter_configs(ConfigResourceType.TOPIC, "t", [
        ("cleanup.policy", AlterConfigOp.APPEND, "compact"), ("retention.ms", AlterConfigOp.DELETE, None)])
    entries = _entries(model, ConfigResourceType.TOPIC, "t", "retention.ms", "cleanup.policy")
    assert entries["cleanup.policy"].value == "delete,compact"
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == ("604800000", ConfigSource.DEFAULT_CONFIG)
    model.incremental_alter_configs(ConfigResourceType.TOPIC, "t", [("cleanup.policy", AlterConfigOp.SUBTRACT, "delete")])
    assert _entries(model, ConfigResourceType.TOPIC, "t", "cleanup.policy")["cleanup.policy"].value == "compact"
    model.alter_configs(ConfigResourceType.TOPIC, "t", {"segment.ms": "60000"})  # replaces all overrides
    entries = _entries(model, ConfigResourceType.TOPIC, "t", "cleanup.policy", "segment.ms")
    assert entries["cleanup.policy"].value == "delete" and entries["segment.ms"].value == "60000"
    model.incremental_alter_configs(ConfigResourceType.BROKER, "", [("log.retention.ms", AlterConfigOp.SET, "5000")])
    entry = _entries(model, ConfigResourceType.TOPIC, "t", "retention.ms")["retention.ms"]
    assert (entry.value, entry.source) == ("5000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
    model.incremental_alter_configs(ConfigResourceType.TOPIC, "t", [("segment.ms", AlterConfigOp.SET, "1")],
                                    validate_only=True)
    assert _entries(model, ConfigResourceType.TOPIC, "t", "segment.ms")["segment.ms"].value == "60000"
    for ops, code, message in [
        ([("retention.ms", AlterConfigOp.APPEND, "1")], ErrorCode.INVALID_CONFIG,
         "Can't APPEND to key retention.ms because its type is not LIST."),
        ([("bogus", AlterConfigOp.SET, "1")], ErrorCode.INVALID_CONFIG, "Unknown topic config name: bogus"),
        ([("cleanup.policy", AlterConfigOp.SET, "shred")], ErrorCode.INVALID_CONFIG,
         "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete"),
        ([("leader.replication.throttled.replicas", AlterConfigOp.SET, "0-101")], ErrorCode.INVALID_CONFIG,
         "Invalid value [0-101] for configuration leader.replication.throttled.replicas: "
         "leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following "
         "format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
    ]:
        with pytest.raises(KafkaError) as raised:
            model.incremental_alter_configs(ConfigResourceType.TOPIC, "t", ops)
        assert (raised.value.code, raised.value.message) == (code, message)
    with pytest.raises(KafkaError) as raised:
        model.incremental_alter_configs(ConfigResourceType.TOPIC, "missing", [("retention.ms", AlterConfigOp.SET, "1")])
    assert (raised.value.code, raised.value.message) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                         "The topic 'missing' does not exist.")
    with pytest.raises(KafkaError) as raised:
        model.describe_configs(ConfigResourceType.TOPIC, "missing")
    assert raised.value.code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_dynamic_min_insync_replicas_applies_to_topics(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102]})
    model.incremental_alter_configs(ConfigResourceType.BROKER, "", [("min.insync.replicas", AlterConfigOp.SET, "2")])
    model.stop_node(102, graceful=True)
    [violation] = model.min_isr_violations()
    assert (violation.isr_size, violation.min_isr) == (1, 2)


# ---------------------------------------------------------------------------------- log dirs
def test_log_dirs_usage_and_failure() -> None:
    cluster = Cluster(dirs=("/d1", "/d2"), capacity=10 * GiB)
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102], 1: [101, 102]})
    model.inflate_partition("t", 0, GiB)
    model.inflate_partition("t", 1, 2 * GiB)
    dirs = {d.path: d for d in model.describe_log_dirs(101)}
    assert {r.partition for r in dirs["/d1"].replicas} | {r.partition for r in dirs["/d2"].replicas} == {0, 1}
    assert len(dirs["/d1"].replicas) == len(dirs["/d2"].replicas) == 1  # spread over the dirs
    used = {path: sum(r.size_bytes for r in d.replicas) for path, d in dirs.items()}
    assert all(d.total_bytes == 10 * GiB and d.usable_bytes == 10 * GiB - used[p] for p, d in dirs.items())
    only = model.describe_log_dirs(101, {"t": [1]})
    assert [r.partition for d in only for r in d.replicas] == [1]
    failed_path = next(p for p, d in dirs.items() if d.replicas[0].partition == 0)
    model.fail_log_dir(101, failed_path)
    view = {d.path: d for d in model.describe_log_dirs(101)}[failed_path]
    assert (view.error, view.total_bytes, view.usable_bytes, view.replicas) == (ErrorCode.KAFKA_STORAGE_ERROR, -1, -1, ())
    p0, p1 = cluster.partition("t", 0), cluster.partition("t", 1)
    assert (p0.leader, p0.isr, p0.offline_replicas) == (102, (102,), (101,))
    assert (p1.leader, p1.isr) == (101, (101, 102))
    model.restore_log_dir(101, failed_path)
    cluster.advance(1)
    assert p0.isr == (102, 101) and p0.offline_replicas == ()
    model.fail_log_dir(102, "/d1")
    model.fail_log_dir(102, "/d2")  # no dir left: the broker shuts down
    assert model.node(102).running is False


# ----------------------------------------------------------------------------------- control
def test_control_surface(cluster: Cluster) -> None:
    control = KafkaControl(cluster.model)
    cluster.model.create_topic("t", num_partitions=2, replication_factor=3)
    control.set_ingest_rate("t", "2MiB")
    control.skew("t", {1: 3.0})
    cluster.advance(10)
    sizes = control.partition_sizes("t")
    assert sizes == {0: 5 * MiB, 1: 15 * MiB}
    control.inflate("t", 0, "1GiB")
    assert control.partition_sizes("t")[0] == GiB + 5 * MiB
    control.slow_broker(102, 3)
    control.set_replication_rate("10MB")
    assert cluster.model.tuning.replication_rate == 10_000_000
    control.fail_disk(101, "/data")
    assert cluster.model.node(101).running is False  # its only dir failed
    with pytest.raises(ValueError):
        control.set_speed(2)  # a manual clock


def test_restart_within_the_session_waits_for_the_old_registration_to_expire(cluster: Cluster) -> None:
    model = cluster.model
    model.create_topic("t", assignment={0: [101, 102]})
    model.stop_node(101, graceful=False)
    cluster.advance(3)
    cluster.start(101)  # DuplicateBrokerRegistration until the old session times out at +9 s
    cluster.advance(5.9)
    node = model.node(101)
    assert node.running and not node.fenced and cluster.partition("t").isr == (101, 102)
    cluster.advance(0.2)
    assert model.node(101).fenced and cluster.partition("t").isr == (102,)
    cluster.advance(0.5)
    assert not model.node(101).fenced
    cluster.advance(0.1)
    assert cluster.partition("t").isr == (102, 101)
    fences = [e for e in model.history() if e.kind == "broker_fenced"]
    assert [(f.node, f.reason) for f in fences] == [(101, "session_timeout")]


def test_combined_nodes_and_cluster_id_check() -> None:
    clock = SimClock(manual=True, start=T0)
    model = KafkaClusterModel("combined", clock)
    static = {"controller.quorum.voters": "1@k-0:9093,2@k-1:9093,3@k-2:9093", "cluster.id": "combined"}
    for node_id in (1, 2, 3):
        model.start_node(node_id, roles=["broker", "controller"], static_config=static,
                         log_dirs=[LogDirSpec("/data", GiB)])
    with pytest.raises(KafkaError) as raised:
        model.start_node(4, roles=["broker"], static_config={"cluster.id": "other"})
    assert raised.value.code is ErrorCode.INCONSISTENT_CLUSTER_ID
    assert model.next_event_time() == pytest.approx(T0 + 1)  # the first election
    clock.advance(2)
    assert [b.node_id for b in model.alive_brokers()] == [1, 2, 3]
    assert model.quorum_state().observers == ()  # combined nodes are voters, not observers
    model.create_topic("t", num_partitions=3, replication_factor=3)
    leader = model.active_controller_id()
    model.stop_node(leader, graceful=True)
    clock.advance(0.3)
    assert model.active_controller_id() not in (-1, leader)
    assert all(leader not in p.isr for p in model.topic("t").partitions)


def test_next_event_time_tracks_catch_up(cluster: Cluster) -> None:
    model = cluster.model
    model.set_replication_rate(MiB)
    model.create_topic("t", assignment={0: [101]})
    model.inflate_partition("t", 0, 10 * MiB)
    model.alter_reassignment("t", 0, [101, 102])
    now = cluster.clock.now()
    assert model.next_event_time() == pytest.approx(now + 10)
    directory = ClusterDirectory(cluster.clock)
    assert directory.advance() is None
    cluster.advance(10)
    assert cluster.partition("t").isr == (101, 102)


# ---------------------------------------------------------------------------------- property
_OPS = st.one_of(
    st.tuples(st.just("stop"), st.sampled_from([101, 102, 103, 104]), st.booleans()),
    st.tuples(st.just("start"), st.sampled_from([101, 102, 103, 104])),
    st.tuples(st.just("advance"), st.floats(min_value=0.1, max_value=40)),
    st.tuples(st.just("reassign"), st.integers(0, 2),
              st.lists(st.sampled_from([101, 102, 103, 104]), min_size=1, max_size=3, unique=True)),
    st.tuples(st.just("cancel"), st.integers(0, 2)),
    st.tuples(st.just("elect"), st.integers(0, 2)),
    st.tuples(st.just("ctl_stop"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("ctl_start"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("throttle"), st.sampled_from([101, 102, 103, 104]), st.sampled_from([0, MiB, 10 * MiB])),
    st.tuples(st.just("fail_dir"), st.sampled_from([101, 102, 103, 104]), st.sampled_from(["/d1", "/d2"])),
    st.tuples(st.just("restore_dir"), st.sampled_from([101, 102, 103, 104]), st.sampled_from(["/d1", "/d2"]),
              st.booleans()),
    st.tuples(st.just("inflate"), st.integers(0, 2), st.sampled_from([MiB, 100 * MiB])),
)


def _run(ops: list[tuple]) -> tuple[Cluster, list[tuple]]:
    cluster = Cluster(brokers=4, dirs=("/d1", "/d2"))
    model = cluster.model
    model.set_replication_rate(20 * MiB)
    model.create_topic("p", assignment={0: [101, 102, 103], 1: [102, 103, 104], 2: [103, 104, 101]})
    model.incremental_alter_configs(ConfigResourceType.TOPIC, "p", [
        ("follower.replication.throttled.replicas", AlterConfigOp.SET, "*")])
    model.set_ingest_rate("p", 3 * MiB)
    targets: dict[int, tuple[int, ...] | None] = {}
    committed: dict[int, int] = {}
    trace = []
    for op in ops:
        kind = op[0]
        try:
            if kind == "stop":
                model.stop_node(op[1], graceful=op[2])
            elif kind == "start":
                if not model.node(op[1]).running:
                    cluster.start(op[1])
            elif kind == "advance":
                cluster.advance(op[1])
            elif kind == "reassign":
                model.alter_reassignment("p", op[1], op[2])
                targets[op[1]] = tuple(op[2])
            elif kind == "cancel":
                model.alter_reassignment("p", op[1], None)
                targets[op[1]] = None
            elif kind == "elect":
                model.elect_leaders(ElectionType.PREFERRED, {"p": [op[1]]})
            elif kind == "ctl_stop":
                model.stop_node(op[1], graceful=False)
            elif kind == "ctl_start":
                if not model.node(op[1]).running:
                    model.start_node(op[1], roles={"controller"}, static_config=cluster.static)
            elif kind == "fail_dir":
                model.fail_log_dir(op[1], op[2])
            elif kind == "restore_dir":
                model.restore_log_dir(op[1], op[2], wiped=op[3])
            elif kind == "inflate":
                model.inflate_partition("p", op[1], op[2])
            elif kind == "throttle":
                model.incremental_alter_configs(ConfigResourceType.BROKER, str(op[1]), [
                    ("follower.replication.throttled.rate", AlterConfigOp.SET, str(op[2]))])
        except KafkaError as exc:
            trace.append((kind, int(exc.code)))
        except ValueError:  # wiping a disk whose replicas are still in sync without a controller
            trace.append((kind, "refused"))
        _check_invariants(cluster, committed)
        trace.append(tuple((p.replicas, p.isr, p.leader) for p in model.topic("p").partitions))
    # Heal: everything up, throttles off, a long time passes -> all reassignments finish.
    for node_id in (1, 2, 3):
        if not model.node(node_id).running:
            model.start_node(node_id, roles={"controller"}, static_config=cluster.static)
    cluster.advance(5)
    for broker in (101, 102, 103, 104):
        for path in ("/d1", "/d2"):
            model.restore_log_dir(broker, path)
        if not model.node(broker).running:
            cluster.start(broker)
        model.incremental_alter_configs(ConfigResourceType.BROKER, str(broker), [
            ("follower.replication.throttled.rate", AlterConfigOp.DELETE, None)])
    cluster.advance(3600)
    _check_invariants(cluster, committed)
    assert model.list_reassignments() == []
    for p in model.topic("p").partitions:
        target = targets.get(p.index)
        if target is not None:
            assert p.replicas == target  # the last accepted reassignment, in target order
        assert set(p.isr) == set(p.replicas)  # healed: everybody caught up
        assert set(p.replica_states) == set(p.replicas)
        assert len({model.replica_size(p, b) for b in p.replicas}) == 1
    return cluster, trace


def _check_invariants(cluster: Cluster, committed: dict[int, int]) -> None:
    model = cluster.model
    nodes = {n.node_id: n for n in model.nodes()}
    for p in model.topic("p").partitions:
        assert set(p.isr) <= set(p.replicas), p
        assert len(set(p.replicas)) == len(p.replicas), p
        if p.leader >= 0:
            assert p.leader in p.isr, p
            assert not nodes[p.leader].fenced, p
        for member in p.isr:
            node = nodes[member]
            # An ISR member is an unfenced broker, except the last one of an offline partition.
            assert (node.registered and not node.fenced) or (p.isr == (member,) and p.leader == -1), p
        assert set(p.adding_replicas) <= set(p.replicas) and set(p.removing_replicas) <= set(p.replicas)
        log = int(p.log_size(model.now))
        for broker in p.replicas:
            assert model.replica_size(p, broker) <= log + 1
        # What every ISR member has (the high watermark) never shrinks: unclean election is off. (The log
        # end can: a new leader may lack records the old one appended but never committed.)
        high_watermark = min(model.replica_size(p, b) for b in p.isr)
        assert high_watermark >= committed.get(p.index, 0), p
        committed[p.index] = high_watermark


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPS, min_size=1, max_size=25))
def test_random_operations_keep_kafka_invariants(ops: list[tuple]) -> None:
    _run(ops)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPS, min_size=1, max_size=15))
def test_simulation_is_deterministic(ops: list[tuple]) -> None:
    first, trace1 = _run(ops)
    second, trace2 = _run(ops)
    assert trace1 == trace2
    assert first.model.history() == second.model.history()


def test_large_cluster_steady_state_is_cheap() -> None:
    """12 brokers x 20,000 partitions: creation and reads stay fast; idle time costs nothing."""
    import time

    cluster = Cluster(brokers=12, racks=["a", "b", "c"])
    model = cluster.model
    started = time.perf_counter()
    for i in range(20):
        model.create_topic(f"topic-{i}", num_partitions=1000, replication_factor=3)
        model.set_ingest_rate(f"topic-{i}", 10 * MiB)
    created = time.perf_counter() - started
    started = time.perf_counter()
    cluster.advance(3600)
    total = sum(model.replica_size(p, p.leader) for t in model.topics() for p in t.partitions)
    read = time.perf_counter() - started
    assert total == pytest.approx(20 * 10 * MiB * 3600, rel=1e-6)
    # A broker down for an hour comes back: ~5000 replicas catch up (batched re-sharing of bandwidth).
    model.set_replication_rate(200 * MiB)
    model.stop_node(105, graceful=False)
    cluster.advance(3600)
    started = time.perf_counter()
    cluster.start(105)
    cluster.advance(3600)
    caught_up = time.perf_counter() - started
    behind = [p for t in model.topics() for p in t.partitions if 105 in p.replicas and 105 not in p.isr]
    assert behind == []
    assert created < 10 and read < 2 and caught_up < 10, (created, read, caught_up)


async def test_directory_ticker_advances_models_without_reads() -> None:
    import asyncio

    directory = ClusterDirectory(SimClock(speed=1000))
    model = directory.get_or_create("ticking")
    for node_id in (1, 2, 3):
        model.start_node(node_id, roles={"controller"}, static_config={"controller.quorum.voters": VOTERS})
    started = model.now
    task = asyncio.create_task(directory.run(max_sleep_s=0.01))
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while model.now < started + 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
    assert model.now >= started + 2  # ~2 ms of wall time at 1000x
    assert model._quorum.leader > 0  # elected by the ticker, not by a read
