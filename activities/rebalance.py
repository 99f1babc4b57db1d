"""The activities that plan and execute partition reassignments: plan a rebalance from what Kafka reports,
throttle and submit a batch of moves, follow it until it is done, cancel it, clear the throttles, move
leadership to the preferred replicas, and check through Kafka that brokers hold nothing before removal.

``RebalanceActivities`` is a mixin of :class:`activities.cluster.ClusterActivities` (it uses that class's
clients and the Kafka addressing of :class:`activities.roll.RollActivities`), so the worker registers these
with the rest through ``ClusterActivities.all()``. The plan itself is pure code
(:func:`ballast.rebalance.planner.plan_rebalance`); these activities only gather facts and act.

Everything goes through the brokers' admin API (kafka-python ``KafkaAdminClient``), each request bounded by
``settings.kafka_timeout_seconds``; the reads and writes of partitions, reassignments, log dirs and topic
throttles are :mod:`activities.reassignments`, whose errors ``_kafka`` turns into these. Errors:

* Kafka not answering (no bootstrap, a timeout, no controller, a broker restarting) is a retryable
  ``ApplicationError`` of type ``KafkaUnreachable``; ``wait_reassignments`` never fails for it, it keeps
  polling (a broker restarting during a rebalance does not fail it).
* Bad input (a move with an empty or duplicated target, a partition named twice, a malformed
  ``topic-partition``) is non-retryable ``InvalidInput`` with a message saying what is wrong.
* A setting Kafka refuses is non-retryable ``ConfigRejected`` (as in ``apply_dynamic_configs``).

Every activity heartbeats while it runs, so a worker lost mid-call is noticed within the workflow's few-second
heartbeat timeout: ``wait_reassignments`` every poll (its details re-sent by a keep-alive thread while a poll
is slow), the others every second from a keep-alive thread (``activities.roll._kept_alive``).

Every activity is idempotent. ``submit_reassignments`` compares each move with the partition's replicas and
in-flight reassignment before sending it; ``clear_throttles`` deletes only what is set; ``cancel_reassignments``
cancels only what is in flight.

Replication throttles follow ``kafka-reassign-partitions``: per topic, ``leader.replication.throttled.replicas``
lists the current replicas (``partition:broker``) of the partitions whose data moves and
``follower.replication.throttled.replicas`` the replicas being added; on every broker involved (sources and
destinations) ``leader.replication.throttled.rate`` and ``follower.replication.throttled.rate`` are the
throttle in bytes per second. All four are dynamic configs set with IncrementalAlterConfigs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import AlterConfigOp
from kafka.structs import TopicPartition
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import dynamic_configs, partitions
from activities.clients import KafkaUnreachable, ask_kafka
from activities.contracts import (
    CANCEL_REASSIGNMENTS,
    CLEAR_THROTTLES,
    ELECT_LEADERS_FOR_PARTITIONS,
    PLAN_REBALANCE,
    SUBMIT_REASSIGNMENTS,
    VERIFY_BROKERS_EMPTY,
    WAIT_REASSIGNMENTS,
    BrokerBalance,
    CancelReassignmentsInput,
    CancelReassignmentsResult,
    ClearThrottlesInput,
    ClearThrottlesResult,
    ElectLeadersResult,
    ElectPartitionsInput,
    MoveSpec,
    PlanRebalanceInput,
    PlanRebalanceResult,
    SpreadFacts,
    SubmitReassignmentsInput,
    SubmitReassignmentsResult,
    VerifyBrokersEmptyInput,
    VerifyBrokersEmptyResult,
    WaitReassignmentsInput,
    WaitReassignmentsResult,
)
from activities.reassignments import (
    BROKER_THROTTLES,
    PartitionKey,
    RegisteredBrokers,
    alter_topic_configs,
    by_topic,
    describe_brokers,
    describe_log_dirs,
    describe_partitions,
    describe_topic_throttles,
    list_reassignments,
    set_topic_throttles,
)
from activities.roll import POLL_QUIET_SECONDS, _Heartbeat, _kept_alive
from ballast.messages import ClusterRef
from ballast.rebalance import planner
from ballast.rebalance.model import BrokerLoad, Goals, Move, PartitionLoad, RebalancePlan, Spread

KAFKA_UNREACHABLE = "KafkaUnreachable"
INVALID_INPUT = "InvalidInput"
BROKERS_NOT_REGISTERED = "BrokersNotRegistered"
CONFIG_REJECTED = "ConfigRejected"
# Partitions per AlterPartitionReassignments request (the activity heartbeats between requests).
ALTER_CHUNK = 500
# Long activities heartbeat at least this often between their Kafka requests.
KEEPALIVE_SECONDS = 1.0


def _name(key: PartitionKey) -> str:
    return f"{key[0]}-{key[1]}"


def _parse_key(text: str) -> PartitionKey:
    """``'topic-partition'`` -> (topic, partition); the topic may itself contain dashes."""
    topic, sep, index = text.rpartition("-")
    if not sep or not topic or not index.isdigit():
        raise ApplicationError(f"{text!r} is not a 'topic-partition' name", type=INVALID_INPUT, non_retryable=True)
    return topic, int(index)


def _parse_keys(texts: Iterable[str]) -> list[PartitionKey]:
    return sorted(dict.fromkeys(_parse_key(t) for t in texts))


def _unreachable(what: str, err: Exception) -> ApplicationError:
    return ApplicationError(f"{what}: {err}", type=KAFKA_UNREACHABLE)


def _validate_moves(moves: list[MoveSpec]) -> None:
    """Bad input is refused up front, non-retryably: Kafka would refuse it anyway, on every retry."""
    seen: set[PartitionKey] = set()
    for m in moves:
        key = (m.topic, m.partition)
        if not m.topic or m.partition < 0:
            raise ApplicationError(f"move {m.topic!r}/{m.partition}: not a partition", type=INVALID_INPUT,
                                   non_retryable=True)
        if not m.target or len(set(m.target)) != len(m.target) or min(m.target) < 0:
            raise ApplicationError(f"move {m.key}: target {m.target} must be distinct broker ids, at least one",
                                   type=INVALID_INPUT, non_retryable=True)
        if key in seen:
            raise ApplicationError(f"move {m.key} is listed more than once", type=INVALID_INPUT, non_retryable=True)
        seen.add(key)


def _spread(spread: Spread) -> SpreadFacts:
    return SpreadFacts(mean=spread.mean, max_deviation_percent=spread.max_deviation_percent)


def _move_spec(move: Move) -> MoveSpec:
    return MoveSpec(topic=move.topic, partition=move.partition, source=list(move.source), target=list(move.target),
                    size_bytes=move.size_bytes)


def _gib(value: int | float) -> str:
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


@dataclass
class _Observed:
    """What ``plan_rebalance`` observed: the planner's inputs and the partitions left out."""

    brokers: RegisteredBrokers
    loads: list[BrokerLoad]
    partitions: list[PartitionLoad]
    in_flight: list[PartitionKey]


@dataclass
class _WaitState:
    """One ``wait_reassignments`` attempt: the admin client kept between polls (dropped when Kafka stops
    answering), the moves already seen finished, and the last known size of each added replica (kept when
    the broker holding it does not answer for a while)."""

    inp: WaitReassignmentsInput
    progress: dict[str, Any] = field(default_factory=dict)  # the heartbeat details
    admin: Any = None
    finished: dict[PartitionKey, str] = field(default_factory=dict)  # key -> "" (at target) or its replicas
    # key -> added replica's broker -> bytes
    copied: dict[PartitionKey, dict[int, int]] = field(default_factory=dict)
    silent: list[int] = field(default_factory=list)  # brokers that did not answer DescribeLogDirs last poll
    last_beat: float = 0.0
    heart: Any = None  # the attempt's _Heartbeat, which re-sends the last details while a poll is slow

    def resume(self, previous: dict[str, Any]) -> None:
        """Take over the copy sizes a previous attempt recorded (heartbeat details come back as plain JSON),
        so a retry started while a destination broker is down does not report less than was seen."""
        raw = previous.get("copied")
        if not isinstance(raw, dict):
            return
        wanted = {m.key: (m.topic, m.partition) for m in self.inp.moves}
        for name, sizes in raw.items():
            key = wanted.get(str(name))
            if key is None or not isinstance(sizes, dict):
                continue
            for broker, size in sizes.items():
                if str(broker).isdigit() and isinstance(size, int):
                    self.copied.setdefault(key, {})[int(broker)] = size

    def record(self, result: WaitReassignmentsResult) -> None:
        self.progress.update(bytesMoved=result.bytes_moved, bytesTotal=result.bytes_total, detail=result.detail,
                             copied={_name(k): {str(b): n for b, n in sorted(v.items())}
                                     for k, v in sorted(self.copied.items()) if _name(k) in result.in_flight})

    def beat(self) -> None:
        self.heart.beat(dict(self.progress))
        self.last_beat = time.monotonic()

    def keepalive(self) -> None:
        """Between the requests of one poll (each bounded by the Kafka timeout): heartbeat the last progress
        again if a while passed, so a poll that asks several brokers that do not answer stays within the
        heartbeat timeout (and the details a retry resumes from are kept)."""
        if time.monotonic() - self.last_beat >= KEEPALIVE_SECONDS:
            self.beat()

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()
        self.admin = None


class RebalanceActivities:
    """Mixin: the rebalance activities. The host class provides ``_admin`` (see ``RollActivities``)."""

    if TYPE_CHECKING:  # declared for mypy; ClusterActivities provides it
        def _admin(self, ref: ClusterRef) -> Any: ...

    def rebalance_activities(self) -> list[Callable[..., Any]]:
        return [self.plan_rebalance, self.submit_reassignments, self.wait_reassignments, self.cancel_reassignments,
                self.clear_throttles, self.elect_leaders_for_partitions, self.verify_brokers_empty]

    @contextmanager
    def _kafka(self, ref: ClusterRef, what: str) -> Iterator[Any]:
        """An admin client for the cluster's brokers, closed afterwards; Kafka not answering (while
        bootstrapping or inside the block) becomes a retryable ``KafkaUnreachable``, a configuration Kafka
        refuses a non-retryable ``ConfigRejected``."""
        try:
            admin = self._admin(ref)
        except KafkaUnreachable as err:
            raise _unreachable(what, err) from err
        try:
            yield admin
        except KafkaUnreachable as err:
            raise _unreachable(what, err) from err
        except dynamic_configs.ConfigRejected as err:
            raise ApplicationError(f"{what}: {err}", type=CONFIG_REJECTED, non_retryable=True) from err
        finally:
            admin.close()

    # -- plan_rebalance -------------------------------------------------------------------------------------

    @activity.defn(name=PLAN_REBALANCE)
    @_kept_alive
    def plan_rebalance(self, inp: PlanRebalanceInput) -> PlanRebalanceResult:
        """Observe the cluster through Kafka and plan (see ``PlanRebalanceInput``).

        The plan's brokers are the registered, unfenced ones (DescribeCluster, with their racks): the planner
        leaves replicas on any other broker (fenced: restarting, say) where they are, unless it is in
        ``remove``. Partitions come from Metadata, sizes and capacities from DescribeLogDirs sent to every
        plan broker (a partition's size is its largest replica's; a broker's capacity is its online log dirs'
        total bytes, else ``capacity_fallback_bytes``). Partitions with a reassignment in flight are left out
        of the plan and listed in ``in_flight``. A required broker not registered (or fenced), or a plan broker
        not answering DescribeLogDirs, is a retryable error.

        The result holds at most ``max_moves`` moves (``truncated`` when the plan had more): ``moves`` and
        ``bytes_to_move`` count the moves returned, ``brokers`` shows each broker before and after them
        (leaders after = the preferred leader of each moved partition); the spreads and the lower bound are
        the whole plan's."""
        if inp.max_moves < 1 or inp.max_moves_per_batch < 1:
            raise ApplicationError(f"max_moves ({inp.max_moves}) and max_moves_per_batch "
                                   f"({inp.max_moves_per_batch}) must be at least 1", type=INVALID_INPUT,
                                   non_retryable=True)
        if not 0 < inp.capacity_threshold_percent <= 100 or inp.tolerance_percent < 0:
            raise ApplicationError(f"capacity_threshold_percent ({inp.capacity_threshold_percent}) must be in "
                                   f"1..100 and tolerance_percent ({inp.tolerance_percent}) >= 0",
                                   type=INVALID_INPUT, non_retryable=True)
        with self._kafka(inp.ref, "plan_rebalance") as admin:
            observed = self._observe(admin, inp)
        activity.heartbeat({"phase": "planning", "partitions": len(observed.partitions)})
        goals = Goals(remove=frozenset(inp.remove), capacity_threshold=inp.capacity_threshold_percent / 100,
                      tolerance=inp.tolerance_percent / 100, max_moves_per_batch=inp.max_moves_per_batch)
        plan = planner.plan_rebalance(observed.loads, observed.partitions, goals)
        return _plan_result(plan, observed, inp.max_moves)

    @staticmethod
    def _observe(admin: KafkaAdminClient, inp: PlanRebalanceInput) -> _Observed:
        brokers = describe_brokers(admin)
        missing = sorted(set(inp.require_brokers) - set(brokers.active))
        if missing:
            raise ApplicationError(f"brokers {missing} are not registered (registered and unfenced: "
                                   f"{brokers.active}); planning waits for them", type=BROKERS_NOT_REGISTERED)
        meta = describe_partitions(admin)
        moving = list_reassignments(admin)
        sizes: dict[PartitionKey, int] = {}
        capacity: dict[int, int] = {}
        for broker in brokers.active:
            dirs = describe_log_dirs(admin, broker)
            capacity[broker] = dirs.capacity
            for key, size in dirs.sizes.items():
                sizes[key] = max(sizes.get(key, 0), size)
            activity.heartbeat({"phase": "observing", "broker": broker})
        loads = [BrokerLoad(id=b, rack=brokers.racks[b],
                            capacity_bytes=capacity.get(b) or inp.capacity_fallback_bytes)
                 for b in brokers.active]
        parts = [PartitionLoad(topic=key[0], partition=key[1], replicas=p.replicas, size_bytes=sizes.get(key, 0),
                               leader=p.leader)
                 for key, p in sorted(meta.items()) if key not in moving]
        return _Observed(brokers=brokers, loads=loads, partitions=parts,
                         in_flight=sorted(k for k in moving if k in meta))

    # -- submit_reassignments -------------------------------------------------------------------------------

    @activity.defn(name=SUBMIT_REASSIGNMENTS)
    @_kept_alive
    def submit_reassignments(self, inp: SubmitReassignmentsInput) -> SubmitReassignmentsResult:
        """Throttle exactly the moving replicas (when ``throttle_bytes_per_sec`` > 0), then submit the moves
        that still need it with AlterPartitionReassignments (see ``SubmitReassignmentsInput``).

        Per move, against the partition's replicas now: already equal to the target -> ``already_done``; a
        reassignment in flight to the target -> ``already_in_flight`` (throttled, not resubmitted); in flight
        elsewhere, replicas that are neither the source nor the target (as sets), a topic or partition that
        is gone, or a target Kafka refuses -> ``skipped`` with the reason; otherwise submitted (also when only
        the order of the replicas differs: that completes at once)."""
        _validate_moves(inp.moves)
        result = SubmitReassignmentsResult()
        if not inp.moves:
            return result
        with self._kafka(inp.ref, "submit_reassignments") as admin:
            keys = [(m.topic, m.partition) for m in inp.moves]
            meta = describe_partitions(admin, sorted({m.topic for m in inp.moves}))
            moving = list_reassignments(admin, keys)
            submit: list[MoveSpec] = []
            copying: list[tuple[MoveSpec, list[int]]] = []  # (move, replicas it copies from)
            for m in inp.moves:
                key = (m.topic, m.partition)
                part, state = meta.get(key), moving.get(key)
                if part is None:
                    result.skipped[m.key] = "the topic or partition is gone"
                elif state is not None:
                    if state.target == m.target:
                        result.already_in_flight.append(m.key)
                        copying.append((m, state.original))
                    else:
                        result.skipped[m.key] = (f"a reassignment to {state.target} is in flight (not this "
                                                 f"plan's {m.target})")
                elif list(part.replicas) == m.target:
                    result.already_done.append(m.key)
                elif set(part.replicas) in (set(m.source), set(m.target)):
                    submit.append(m)
                    copying.append((m, list(part.replicas)))
                else:
                    result.skipped[m.key] = (f"its replicas are {list(part.replicas)}, neither the planned source "
                                             f"{m.source} nor the target {m.target}")
            activity.heartbeat()
            if inp.throttle_bytes_per_sec > 0:
                self._throttle(admin, copying, inp.throttle_bytes_per_sec, result)
            for start in range(0, len(submit), ALTER_CHUNK):
                self._alter(admin, submit[start:start + ALTER_CHUNK], result)
                activity.heartbeat({"submitted": len(result.submitted)})
        result.already_done.sort()
        result.already_in_flight.sort()
        result.submitted.sort()
        result.skipped = dict(sorted(result.skipped.items()))
        return result

    @staticmethod
    def _throttle(admin: KafkaAdminClient, copying: list[tuple[MoveSpec, list[int]]], rate: int,
                  result: SubmitReassignmentsResult) -> None:
        """Throttled-replica lists per topic and throttle rates per broker for the moves that copy data."""
        leaders: dict[str, set[tuple[int, int]]] = {}
        followers: dict[str, set[tuple[int, int]]] = {}
        brokers: set[int] = set()
        for move, current in copying:
            added = [b for b in move.target if b not in current]
            if not added:
                continue  # a reorder or a pure removal copies nothing
            leaders.setdefault(move.topic, set()).update((move.partition, b) for b in current)
            followers.setdefault(move.topic, set()).update((move.partition, b) for b in added)
            brokers.update(current)
            brokers.update(added)

        def listed(pairs: set[tuple[int, int]]) -> str:
            return ",".join(f"{p}:{b}" for p, b in sorted(pairs))

        result.throttled_topics = set_topic_throttles(
            admin, {t: (listed(leaders[t]), listed(followers[t])) for t in leaders})
        rates: dict[str, str | None] = dict.fromkeys(BROKER_THROTTLES, str(rate))
        for broker in sorted(brokers):
            activity.heartbeat()  # two requests per broker, each bounded by the Kafka timeout
            dynamic_configs.apply(admin, {}, rates, [broker])  # sends only what differs
        result.throttled_brokers = sorted(brokers)

    @staticmethod
    def _alter(admin: KafkaAdminClient, moves: list[MoveSpec], result: SubmitReassignmentsResult) -> None:
        if not moves:
            return
        answers = ask_kafka("AlterPartitionReassignments", admin.alter_partition_reassignments,
                            {TopicPartition(m.topic, m.partition): list(m.target) for m in moves})
        failed: list[str] = []
        for m in moves:
            error = answers.get(TopicPartition(m.topic, m.partition), kafka_errors.UnknownError)
            if error is None:
                result.submitted.append(m.key)
            elif error is kafka_errors.UnknownTopicOrPartitionError:
                result.skipped[m.key] = "the topic or partition is gone"
            elif error is kafka_errors.InvalidReplicaAssignmentError:
                result.skipped[m.key] = f"Kafka refused the target {m.target}: {error.__name__}"
            else:
                failed.append(f"{m.key}: {error.__name__}")
        if failed:
            # Transient (no controller, timeout): the retry resubmits only what is not in flight yet.
            raise KafkaUnreachable(f"AlterPartitionReassignments: {', '.join(failed)}")

    # -- wait_reassignments ---------------------------------------------------------------------------------

    @activity.defn(name=WAIT_REASSIGNMENTS)
    def wait_reassignments(self, inp: WaitReassignmentsInput) -> WaitReassignmentsResult:
        """Poll every ``poll_seconds`` (heartbeating ``{startedAt, polls, bytesMoved, bytesTotal, detail, copied}``;
        a retried attempt continues ``startedAt``, the poll count and the copy sizes last seen, which stand in
        for a destination broker that does not answer) until none of ``moves`` is in flight, then
        report which ended on their target (as a set of replicas) and which did not (``not_at_target``:
        cancelled or changed by someone else, or a topic deleted); or return ``done=False`` with the progress
        after ``report_after_seconds``. ``bytes_moved`` counts the added replicas' log sizes (DescribeLogDirs,
        each capped at the move's size) and the moves completed in full. Kafka not answering is waited out
        and reported in ``detail``, never raised."""
        _validate_moves(inp.moves)
        info = activity.info()
        previous: dict[str, Any] = {}
        if info.heartbeat_details and isinstance(info.heartbeat_details[-1], dict):
            previous = dict(info.heartbeat_details[-1])
        progress: dict[str, Any] = {"startedAt": previous.get("startedAt") or int(time.time() * 1000),
                                    "polls": int(previous.get("polls") or 0)}
        deadline = time.monotonic() + inp.report_after_seconds
        state = _WaitState(inp, progress=progress, last_beat=time.monotonic())
        state.resume(previous)
        try:
            # Until the first poll's beat, the keep-alive thread re-sends what the previous attempt left.
            with _Heartbeat(POLL_QUIET_SECONDS, {**previous, **progress}) as state.heart:
                while True:
                    progress["polls"] += 1
                    result = self._poll_reassignments(state)
                    state.record(result)
                    state.beat()
                    left = deadline - time.monotonic()
                    if result.done or left <= 0:
                        waited = (time.time() * 1000 - int(progress["startedAt"])) / 1000
                        result.detail += f" (waiting {waited:.1f}s, {progress['polls']} polls)"
                        return result
                    activity.wait_for_cancelled_sync(min(inp.poll_seconds, left))
                    if activity.is_cancelled():
                        raise CancelledError("wait cancelled")
        finally:
            state.close()

    def _poll_reassignments(self, state: _WaitState) -> WaitReassignmentsResult:
        moves = state.inp.moves
        total = sum(m.bytes_to_move for m in moves)
        problem = ""
        try:
            if state.admin is None:
                state.admin = self._admin(state.inp.ref)
            self._observe_moves(state)
        except KafkaUnreachable as err:
            state.close()  # the next poll starts over with a fresh client (a broker may have moved)
            problem = f"; Kafka: {err}"
        by_key = {(m.topic, m.partition): m for m in moves}
        moved = 0
        for key, m in by_key.items():
            if key in state.finished:
                moved += 0 if state.finished[key] else m.bytes_to_move
            else:
                copied = state.copied.get(key, {})
                moved += min(m.bytes_to_move, sum(min(m.size_bytes, size) for size in copied.values()))
        completed = sorted(_name(k) for k, v in state.finished.items() if not v)
        not_at_target = {_name(k): v for k, v in sorted(state.finished.items()) if v}
        in_flight = sorted(_name(k) for k in by_key if k not in state.finished)
        done = not in_flight and not problem
        detail = f"{len(completed)}/{len(moves)} moves done, {_gib(moved)} of {_gib(total)} moved"
        if not_at_target:
            detail += f", {len(not_at_target)} not on their target"
        if state.silent and not problem:
            detail += f"; brokers {state.silent} not answering (their copies as last seen)"
        return WaitReassignmentsResult(done=done, bytes_total=total, bytes_moved=moved, in_flight=in_flight,
                                       completed=completed, not_at_target=not_at_target, detail=detail + problem)

    @staticmethod
    def _observe_moves(state: _WaitState) -> None:
        admin = state.admin
        pending = [(m.topic, m.partition) for m in state.inp.moves if (m.topic, m.partition) not in state.finished]
        moving = list_reassignments(admin, pending)
        ended = [k for k in pending if k not in moving]
        if ended:
            targets = {(m.topic, m.partition): m.target for m in state.inp.moves}
            meta = describe_partitions(admin, sorted({k[0] for k in ended}))
            for key in ended:
                part = meta.get(key)
                if part is None:
                    state.finished[key] = "the topic or partition is gone"
                elif set(part.replicas) == set(targets[key]):
                    state.finished[key] = ""
                else:
                    state.finished[key] = str(list(part.replicas))
        # Bytes copied so far: each added replica's log on its broker.
        by_broker: dict[int, list[PartitionKey]] = {}
        for key, flight in moving.items():
            for broker in flight.adding:
                by_broker.setdefault(broker, []).append(key)
        state.silent = []
        for broker, keys in sorted(by_broker.items()):
            state.keepalive()
            try:
                dirs = describe_log_dirs(admin, broker, keys)
            except KafkaUnreachable:
                state.silent.append(broker)  # restarting, say: keep what it reported last
                continue
            for key in keys:
                state.copied.setdefault(key, {})[broker] = dirs.sizes.get(key, 0)

    # -- cancel_reassignments -------------------------------------------------------------------------------

    @activity.defn(name=CANCEL_REASSIGNMENTS)
    @_kept_alive
    def cancel_reassignments(self, inp: CancelReassignmentsInput) -> CancelReassignmentsResult:
        """AlterPartitionReassignments with a null target for the given partitions that are in flight (None:
        all in flight); Kafka reverts each to its original replicas. A partition not in flight (done, never
        started, unknown) is ``not_in_flight``."""
        wanted = None if inp.partitions is None else _parse_keys(inp.partitions)
        result = CancelReassignmentsResult()
        with self._kafka(inp.ref, "cancel_reassignments") as admin:
            moving = list_reassignments(admin, wanted)
            keys = sorted(moving) if wanted is None else wanted
            cancel = [k for k in keys if k in moving]
            result.not_in_flight = [_name(k) for k in keys if k not in moving]
            if cancel:
                answers = ask_kafka("AlterPartitionReassignments", admin.alter_partition_reassignments,
                                    {TopicPartition(*k): None for k in cancel})
                failed: list[str] = []
                for key in cancel:
                    error = answers.get(TopicPartition(*key), kafka_errors.UnknownError)
                    if error is None:
                        result.cancelled.append(_name(key))
                    elif error in (kafka_errors.NoReassignmentInProgressError,
                                   kafka_errors.UnknownTopicOrPartitionError):
                        result.not_in_flight.append(_name(key))  # it completed (or went) meanwhile
                    else:
                        failed.append(f"{_name(key)}: {error.__name__}")
                if failed:
                    raise KafkaUnreachable(f"cancelling: {', '.join(failed)}")
        result.not_in_flight.sort()
        return result

    # -- clear_throttles ------------------------------------------------------------------------------------

    @activity.defn(name=CLEAR_THROTTLES)
    @_kept_alive
    def clear_throttles(self, inp: ClearThrottlesInput) -> ClearThrottlesResult:
        """DELETE the throttled-replica lists from ``topics`` and the throttle rates from ``brokers`` (None:
        every topic / every unfenced registered broker), only where they are set (DescribeConfigs first), so
        it is safe to call at any time and as often as needed. Returns what had any. A broker that is not
        registered or fenced cannot be asked about its own configs and is passed over."""
        result = ClearThrottlesResult()
        with self._kafka(inp.ref, "clear_throttles") as admin:
            topics = inp.topics
            if topics is None:
                topics = sorted({k[0] for k in describe_partitions(admin)})
            throttled = describe_topic_throttles(admin, sorted(set(topics)))
            result.topics = alter_topic_configs(admin, {t: dict.fromkeys(keys, (AlterConfigOp.DELETE, None))
                                                        for t, keys in throttled.items()})
            active = describe_brokers(admin).active
            brokers = active if inp.brokers is None else sorted(set(inp.brokers) & set(active))
            unset: dict[str, str | None] = dict.fromkeys(BROKER_THROTTLES)
            for broker in brokers:
                activity.heartbeat()
                if dynamic_configs.apply(admin, {}, unset, [broker]).deleted:
                    result.brokers.append(broker)
        return result

    # -- elect_leaders_for_partitions -----------------------------------------------------------------------

    @activity.defn(name=ELECT_LEADERS_FOR_PARTITIONS)
    @_kept_alive
    def elect_leaders_for_partitions(self, inp: ElectPartitionsInput) -> ElectLeadersResult:
        """Preferred-leader election for ``partitions``, best effort: a partition whose preferred replica
        leads already is ``not_needed``, one that cannot be elected now (preferred replica not in the ISR,
        unknown partition) is reported in ``failed`` with Kafka's error name. Kafka not answering is
        retryable."""
        keys = _parse_keys(inp.partitions)
        if not keys:
            return ElectLeadersResult()
        with self._kafka(inp.ref, "elect_leaders_for_partitions") as admin:
            elected, not_needed, failed = partitions.elect_preferred(admin, by_topic(keys))
        return ElectLeadersResult(elected=elected, not_needed=len(not_needed), failed=failed)

    # -- verify_brokers_empty -------------------------------------------------------------------------------

    @activity.defn(name=VERIFY_BROKERS_EMPTY)
    @_kept_alive
    def verify_brokers_empty(self, inp: VerifyBrokersEmptyInput) -> VerifyBrokersEmptyResult:
        """What Kafka says ``brokers`` still hold, independent of any plan: replicas in Metadata (which
        lists the replicas a reassignment is adding and removing), the adding replicas ListPartitionReassignments
        reports, and every replica log DescribeLogDirs finds on the brokers that answer (a broker that is
        down cannot be asked; Metadata still names its replicas). Kafka not answering Metadata is retryable."""
        wanted = set(inp.brokers)
        holders: dict[int, set[PartitionKey]] = {b: set() for b in wanted}
        if not wanted:
            return VerifyBrokersEmptyResult()
        with self._kafka(inp.ref, "verify_brokers_empty") as admin:
            for key, part in describe_partitions(admin).items():
                for broker in wanted.intersection(part.replicas):
                    holders[broker].add(key)
            for key, flight in list_reassignments(admin).items():
                for broker in wanted.intersection(flight.replicas + flight.adding):
                    holders[broker].add(key)
            for broker in sorted(wanted.intersection(describe_brokers(admin).active)):
                try:
                    holders[broker].update(describe_log_dirs(admin, broker).sizes)
                except KafkaUnreachable:
                    continue
        return VerifyBrokersEmptyResult(holders={b: [_name(k) for k in sorted(keys)]
                                                 for b, keys in sorted(holders.items()) if keys})


def _plan_result(plan: RebalancePlan, observed: _Observed, max_moves: int) -> PlanRebalanceResult:
    """The planner's plan as the workflow's message, cut to ``max_moves`` moves."""
    batches: list[list[MoveSpec]] = []
    kept = 0
    for batch in plan.batches:
        room = max_moves - kept
        if room <= 0:
            break
        specs = [_move_spec(m) for m in batch[:room]]
        if specs:
            batches.append(specs)
            kept += len(specs)
    moves = [m for batch in batches for m in batch]
    figures = plan.figures
    return PlanRebalanceResult(
        batches=batches,
        infeasible=list(plan.infeasible),
        notes=list(plan.notes),
        truncated=kept < len(plan.moves),
        moves=len(moves),
        bytes_to_move=sum(m.bytes_to_move for m in moves),
        lower_bound_bytes=figures.lower_bound_bytes,
        replicas_before=_spread(figures.replicas_before),
        replicas_after=_spread(figures.replicas_after),
        disk_before=_spread(figures.disk_before),
        disk_after=_spread(figures.disk_after),
        leaders_before=_spread(figures.leaders_before),
        leaders_after=_spread(figures.leaders_after),
        max_disk_usage_after=figures.max_disk_usage_after,
        brokers=_balances(observed, moves),
        partitions=len(observed.partitions) + len(observed.in_flight),
        in_flight=[_name(k) for k in observed.in_flight],
    )


def _balances(observed: _Observed, moves: list[MoveSpec]) -> list[BrokerBalance]:
    """Each broker's replicas, bytes and leaders before and after ``moves`` (a moved partition is led by its
    preferred replica after the election that follows a batch)."""
    out = {b.id: BrokerBalance(id=b.id, rack=b.rack, capacity_bytes=b.capacity_bytes) for b in observed.loads}
    targets = {(m.topic, m.partition): m.target for m in moves}

    def row(broker: int) -> BrokerBalance:
        return out.setdefault(broker, BrokerBalance(id=broker))

    for p in observed.partitions:
        for broker in p.replicas:
            row(broker).replicas_before += 1
            row(broker).bytes_before += p.size_bytes
        if p.leader >= 0:
            row(p.leader).leaders_before += 1
        target = targets.get(p.key)
        after = target if target is not None else list(p.replicas)
        for broker in after:
            row(broker).replicas_after += 1
            row(broker).bytes_after += p.size_bytes
        leader = after[0] if target is not None else p.leader
        if leader >= 0:
            row(leader).leaders_after += 1
    return [out[b] for b in sorted(out)]
