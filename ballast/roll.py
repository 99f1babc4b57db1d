"""Rolling restarts, the decisions: what needs a restart, in which order, and whether a pod may restart now.

Pure and deterministic (no I/O, no clock), so ``RollWorkflow`` and ``KafkaClusterWorkflow`` call these during
replay, and the facts they decide on are activity results recorded in history
(``activities.contracts.GateObservation``, ``ballast.observed.ObservedCluster``).

* :func:`classify_change`: which part of a spec change Kafka takes live (dynamic broker settings, applied with
  IncrementalAlterConfigs) and which needs a restart (image/version, read-only settings, resources, listeners).
* :func:`plan_roll`: the pods to restart -- those not on their StatefulSet's update revision (the StatefulSets
  use ``OnDelete``) merged with a manual request -- in the runbook order: controllers first with the active
  KRaft controller last, then brokers, unready or stuck ones first.
* :func:`can_roll_broker` / :func:`can_roll_brokers` / :func:`can_roll_controller`: the can-roll gates.
* :func:`is_stuck` / :func:`stuck_decision`: the stuck-pod rule (an old stuck pod may restart without the gate,
  a stuck pod on the new revision stops the roll).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import ValidationError

from activities.contracts import GateObservation, PartitionFacts, VoterFacts
from ballast.kafka_configs import PER_BROKER, READ_ONLY, update_mode
from ballast.manifests.config import broker_tunables, dynamic_tunables
from ballast.manifests.inputs import RenderInput
from ballast.manifests.names import Role, pod_name, role_of_node
from ballast.manifests.statefulsets import config_hash
from ballast.messages import RollRequest, RollStep
from ballast.observed import ObservedCluster, PodState, StatefulSetState
from ballast.spec import KafkaClusterSpec

# --- what a spec change needs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeClassification:
    """``dynamic``: broker settings to apply live (None = delete the override); ``restart_reasons``: why the
    change needs a rolling restart, one line each (empty: none needed)."""

    dynamic: dict[str, str | None] = field(default_factory=dict)
    restart_reasons: list[str] = field(default_factory=list)

    @property
    def needs_restart(self) -> bool:
        return bool(self.restart_reasons)


# Rendering needs an identity; both specs get the same one, so only spec differences show.
_PLACEHOLDER = {"name": "cluster", "namespace": "namespace", "uid": "uid", "cluster_id": "A" * 22}


def _render_input(spec: KafkaClusterSpec) -> RenderInput:
    return RenderInput(spec=spec, **_PLACEHOLDER)


def _shown(value: str | None) -> str:
    return "(unset)" if value is None else repr(value)


def classify_change(old: KafkaClusterSpec | None, new: KafkaClusterSpec) -> ChangeClassification:
    """Split the change ``old`` -> ``new`` into live-applicable broker settings and reasons to restart.

    Restart reasons: the image or Kafka version, container resources, listeners, rack awareness, the
    controller quorum size (the static voters change on every node), each read-only broker setting that
    changed, and each dynamic setting that was *removed* (a broker that started with it keeps its static value
    until it restarts; deleting the dynamic override cannot reach that). Dynamic settings that were set or
    changed go to ``dynamic``. ``old`` None (unknown, e.g. a fresh workflow): every dynamic setting of ``new``
    is (re)applied -- idempotent -- and nothing is claimed to need a restart.

    The restart reasons agree with the pod templates' ``config-hash`` (which leaves the dynamic settings out),
    except for removals; a template change nothing here explains is reported as such.
    """
    new_tunables = broker_tunables(new)
    if old is None:
        live = dynamic_tunables(new)
        return ChangeClassification(dynamic={k: v for k, v in sorted(new_tunables.items()) if k in live})
    reasons: list[str] = []
    old_in, new_in = _render_input(old), _render_input(new)
    if old_in.image != new_in.image:
        reasons.append(f"image {old_in.image} -> {new_in.image}")
    if old.version != new.version:
        reasons.append(f"Kafka version {old.version} -> {new.version}")
    if old.controllers.replicas != new.controllers.replicas:
        reasons.append(f"controllers.replicas {old.controllers.replicas} -> {new.controllers.replicas} "
                       "(the static quorum voters change on every node)")
    if old.controllers.resources != new.controllers.resources:
        reasons.append("controllers.resources changed")
    if old.brokers.resources != new.brokers.resources:
        reasons.append("brokers.resources changed")
    if [lst.model_dump() for lst in old.listeners] != [lst.model_dump() for lst in new.listeners]:
        reasons.append("listeners changed: "
                       f"{', '.join(f'{lst.name}:{lst.port}' for lst in old.listeners)} -> "
                       f"{', '.join(f'{lst.name}:{lst.port}' for lst in new.listeners)}")
    if old.brokers.rack_awareness != new.brokers.rack_awareness:
        reasons.append("brokers.rackAwareness changed (broker.rack is read at start-up)")

    dynamic: dict[str, str | None] = {}
    old_tunables = broker_tunables(old)
    for key in sorted(old_tunables.keys() | new_tunables.keys()):
        before, after = old_tunables.get(key), new_tunables.get(key)
        if before == after:
            continue
        mode = update_mode(key, new.version)
        if mode == READ_ONLY:
            reasons.append(f"broker setting {key}: {_shown(before)} -> {_shown(after)} "
                           f"(read-only in Kafka {new.version})")
        elif after is None:
            dynamic[key] = None
            reasons.append(f"broker setting {key} removed: a broker that started with it keeps it until restarted")
        else:
            dynamic[key] = after

    for role in (Role.CONTROLLER, Role.BROKER):
        if not reasons and config_hash(old_in, role) != config_hash(new_in, role):
            reasons.append(f"the {role.value}s' pod template changed")
    return ChangeClassification(dynamic=dynamic, restart_reasons=reasons)


def split_dynamic(dynamic: dict[str, str | None], version: str) -> tuple[dict[str, str | None],
                                                                         dict[str, str | None]]:
    """``dynamic`` as (cluster-wide, per-broker) settings for ``APPLY_DYNAMIC_CONFIGS``."""
    per_broker = {k: v for k, v in dynamic.items() if update_mode(k, version) == PER_BROKER}
    return {k: v for k, v in dynamic.items() if k not in per_broker}, per_broker


# --- stuck pods --------------------------------------------------------------------------------------------

# Container waiting reasons that do not go away by waiting: the pod needs another spec (or a restart with it).
STUCK_WAITING_REASONS: Final = frozenset({
    "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "ImagePullBackOff", "ErrImagePull",
    "InvalidImageName",
})
UNSCHEDULABLE = "Unschedulable"


def stuck_reason(pod: PodState) -> str:
    """Why ``pod`` is stuck (CrashLoopBackOff, ..., ``Unschedulable`` for a Pending pod no node takes), or ""."""
    if pod.waiting_reason in STUCK_WAITING_REASONS:
        return pod.waiting_reason
    if pod.unschedulable or (pod.phase in ("", "Pending") and pod.waiting_reason == UNSCHEDULABLE):
        return UNSCHEDULABLE
    return ""


def is_stuck(pod: PodState) -> bool:
    """A pod that will not become Ready by waiting: CrashLoopBackOff, Pending unschedulable,
    CreateContainerConfigError, image pull errors."""
    return bool(stuck_reason(pod))


def is_outdated(pod: PodState, update_revision: str) -> bool:
    """The pod runs an older template than its StatefulSet's ``update_revision`` (both must be known)."""
    return bool(update_revision and pod.revision and pod.revision != update_revision)


StuckDecision = Literal["gate", "restart-without-gate", "stop"]


def stuck_decision(pod: PodState, update_revision: str) -> StuckDecision:
    """The stuck-pod rule. A healthy (or merely slow) pod goes through the gate -- always. A stuck pod on an
    old revision may restart without the gate: it serves nothing now, so restarting it cannot lower any ISR,
    and the new spec may be the fix. A stuck pod already on the new revision (or of unknown revision) stops the
    roll: restarting more pods with a spec that does not start would only take more of the cluster down."""
    if not is_stuck(pod):
        return "gate"
    return "restart-without-gate" if is_outdated(pod, update_revision) else "stop"


def pod_from_gate(obs: GateObservation, step: RollStep) -> PodState:
    """The pod facts of a gate observation as a ``PodState`` (for :func:`stuck_decision`)."""
    return PodState(name=step.pod, node_id=step.node_id, ready=obs.pod_ready, uid=obs.pod_uid,
                    revision=obs.pod_revision, waiting_reason=obs.waiting_reason,
                    phase="Pending" if obs.waiting_reason == UNSCHEDULABLE else "")


# --- the plan ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollPlan:
    """The pods to restart, in order. ``blocked`` (non-empty) says why no roll may start now; ``ignored`` lists
    requested node ids that have no pod."""

    steps: tuple[RollStep, ...] = ()
    blocked: str = ""
    ignored: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    @property
    def node_ids(self) -> list[int]:
        return [s.node_id for s in self.steps]

    def describe(self) -> list[str]:
        total = len(self.steps)
        lines = [f"{i}/{total} restart {s.describe()}: {s.reason}" for i, s in enumerate(self.steps, start=1)]
        if self.blocked:
            lines.insert(0, f"blocked: {self.blocked}")
        return lines


def _rack_aware(observed: ObservedCluster) -> bool:
    try:
        return KafkaClusterSpec.model_validate(observed.spec).roll_policy.rack_aware
    except ValidationError:
        return False


def _healthy(pod: PodState) -> bool:
    return pod.ready and not pod.deleting and not is_stuck(pod)


def plan_roll(observed: ObservedCluster, requested: RollRequest | None = None,
              quorum_leader_id: int | None = None, *, rack_aware: bool | None = None) -> RollPlan:
    """Which pods to restart and in which order.

    Pods: every pod whose ``controller-revision-hash`` differs from its StatefulSet's ``updateRevision``
    (``if_outdated`` steps: skipped if the pod got the new revision by the time its turn comes), merged with
    ``requested`` (its ``brokers`` node ids -- controller ids allowed -- or every pod when None; these restart
    regardless of revision). Each pod appears once.

    Order: controllers first (unready/stuck ones first, then by ordinal), the active controller
    (``quorum_leader_id``, default: what the observation says) last of them -- the roll re-checks who leads
    before each controller step, since leadership moves. Then brokers: unready/stuck ones first, then the rest
    by ordinal; with ``rack_aware`` (default: ``spec.rollPolicy.rackAware``) the healthy ones rack by rack.

    ``blocked``: a pod is stuck on its update revision -- the new spec itself does not start, so no roll
    should begin (see :func:`stuck_decision`).
    """
    leader = observed.kafka.quorum_leader_id if quorum_leader_id is None else quorum_leader_id
    rack_aware = _rack_aware(observed) if rack_aware is None else rack_aware
    pods: dict[int, tuple[Role, PodState, StatefulSetState | None]] = {}
    for role, role_pods, sts in ((Role.CONTROLLER, observed.controller_pods, observed.controllers),
                                 (Role.BROKER, observed.broker_pods, observed.brokers)):
        for pod in role_pods:
            if pod.node_id >= 0:
                pods[pod.node_id] = (role, pod, sts)

    steps: dict[int, RollStep] = {}
    for node_id, (role, pod, sts) in sorted(pods.items()):
        revision = sts.update_revision if sts else ""
        if is_outdated(pod, revision):
            steps[node_id] = RollStep(node_id=node_id, role=role.value, pod=pod.name, if_outdated=True, rack=pod.rack,
                                      reason=f"revision {pod.revision} -> {revision}")
    ignored: list[int] = []
    if requested is not None:
        ids = sorted(pods) if requested.brokers is None else requested.brokers
        why = requested.reason or "requested"
        for node_id in ids:
            if node_id not in pods:
                if node_id not in ignored:
                    ignored.append(node_id)
                continue
            role, pod, _ = pods[node_id]
            earlier = steps.get(node_id)
            reason = f"{earlier.reason}; {why}" if earlier and why not in earlier.reason else why
            steps[node_id] = RollStep(node_id=node_id, role=role.value, pod=pod.name, if_outdated=False,
                                      rack=pod.rack, reason=reason)

    def health_first(step: RollStep) -> tuple[bool, int]:
        return _healthy(pods[step.node_id][1]), step.node_id

    controllers = sorted((s for s in steps.values() if s.role == Role.CONTROLLER.value),
                         key=lambda s: (s.node_id == leader, *health_first(s)))
    brokers = sorted((s for s in steps.values() if s.role == Role.BROKER.value), key=health_first)
    if rack_aware:
        brokers = _rack_order(brokers, {s.node_id: _healthy(pods[s.node_id][1]) for s in brokers})

    blocked = ""
    if steps:
        for _, (_, pod, sts) in sorted(pods.items()):
            if stuck_decision(pod, sts.update_revision if sts else "") == "stop":
                blocked = (f"{pod.name} is {stuck_reason(pod)} on its update revision: the current spec does not "
                           "start, so restarting more pods with it would take more of the cluster down; fix the "
                           "spec (or the node capacity) first")
                break
    return RollPlan(steps=tuple(controllers + brokers), blocked=blocked, ignored=tuple(ignored))


def _rack_order(brokers: list[RollStep], healthy: dict[int, bool]) -> list[RollStep]:
    """Unhealthy first (as they are); then the healthy ones rack by rack (racks in order of their lowest node
    id), by node id within a rack, so batches of one rack are consecutive."""
    first = [s for s in brokers if not healthy[s.node_id]]
    rest = [s for s in brokers if healthy[s.node_id]]
    rack_rank: dict[str, int] = {}
    for step in sorted(rest, key=lambda s: s.node_id):
        rack_rank.setdefault(step.rack, len(rack_rank))
    return first + sorted(rest, key=lambda s: (rack_rank[s.rack], s.node_id))


def manual_steps(cluster: str, node_ids: Iterable[int], reason: str) -> list[RollStep]:
    """Steps for node ids without an observation (pod names follow from the ids)."""
    return [RollStep(node_id=n, role=role_of_node(n).value, pod=pod_name(cluster, role_of_node(n), n), reason=reason)
            for n in node_ids]


def merge_steps(pending: Sequence[RollStep], extra: Sequence[RollStep]) -> tuple[list[RollStep], list[RollStep]]:
    """Merge ``extra`` into the not-yet-started ``pending`` steps of a running roll: a node already pending
    stays where it is (a manual step there makes it unconditional); controllers go before the first pending
    broker (controllers first, always), brokers at the end. Returns (new pending list, steps added)."""
    out = list(pending)
    added: list[RollStep] = []
    for step in extra:
        at = next((i for i, s in enumerate(out) if s.node_id == step.node_id), None)
        if at is not None:
            if out[at].if_outdated and not step.if_outdated:
                out[at] = out[at].model_copy(update={"if_outdated": False, "reason": f"{out[at].reason}; {step.reason}"})
            continue
        if step.role == Role.CONTROLLER.value:
            first_broker = next((i for i, s in enumerate(out) if s.role == Role.BROKER.value), len(out))
            out.insert(first_broker, step)
        else:
            out.append(step)
        added.append(step)
    return out, added


def batch_candidates(pending: Sequence[RollStep], max_unavailable: int, rack_aware: bool) -> list[RollStep]:
    """The steps that may restart together with ``pending[0]``, in order (the gate then decides which do):
    only brokers, at most ``max_unavailable``, consecutive, and with ``rack_aware`` of the first one's rack.
    A controller always restarts alone."""
    if not pending:
        return []
    first = pending[0]
    if first.role != Role.BROKER.value or max_unavailable <= 1:
        return [first]
    out = [first]
    for step in pending[1:]:
        if len(out) >= max_unavailable or step.role != Role.BROKER.value:
            break
        if rack_aware and (not first.rack or step.rack != first.rack):
            break
        out.append(step)
    return out


# --- gates -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "; ".join(self.reasons[:5])
        more = f" (and {len(self.reasons) - 5} more)" if len(self.reasons) > 5 else ""
        return f"{'ok' if self.ok else 'blocked'}{': ' + shown + more if shown else ''}"


def can_roll_broker(node_id: int, partitions: Sequence[PartitionFacts]) -> GateResult:
    """May broker ``node_id`` restart now without any partition dropping below ``min.insync.replicas``?

    A partition with a replica on this broker (or being reassigned to it) blocks when the replicas that stay in
    sync while it is down are fewer than ``min.insync.replicas``: with no reassignment, that is ISR < minISR, or
    ISR == minISR with this broker in the ISR.

    Partitions whose replication factor is at most ``min.insync.replicas`` never block: they cannot lose any
    replica without dropping below minISR, so no order of restarts could ever satisfy them and blocking would
    stall the roll forever (their producers with ``acks=all`` see the restart, whatever we do).

    In-flight reassignments (Strimzi misses these): the replicas a reassignment is *adding* count as not in
    sync even when the ISR lists them. A new replica joins the ISR as soon as it first catches up and drops out
    again as easily while it copies the rest of a large log (often throttled), and when the reassignment
    completes the controller removes the *removing* replicas from the ISR at once. Counting only the
    established replicas that stay in sync keeps the partition at minISR whichever way the reassignment goes
    while this broker is down. The replication factor for the exemption above is likewise counted without the
    adding replicas.
    """
    return can_roll_brokers([node_id], partitions)


def can_roll_brokers(node_ids: Iterable[int], partitions: Sequence[PartitionFacts], *,
                     also_down: Iterable[int] = ()) -> GateResult:
    """The broker gate for several brokers down together (``maxUnavailable`` > 1): each partition touching any
    of ``node_ids`` must keep ``min.insync.replicas`` established in-sync replicas outside all of them (and
    outside ``also_down``: the rest of a rack, for rack-aware batches). Same rules as :func:`can_roll_broker`."""
    batch = set(node_ids)
    down = batch | set(also_down)
    reasons: list[str] = []
    seen: set[tuple[str, int]] = set()
    for p in partitions:
        key = (p.topic, p.partition)
        if key in seen:
            continue
        seen.add(key)
        if not (set(p.replicas) | set(p.adding)) & batch:
            continue
        adding = set(p.adding)
        established = [r for r in p.replicas if r not in adding]
        if len(established) <= p.min_isr:
            continue
        staying = [r for r in p.isr if r not in down and r not in adding]
        if len(staying) < p.min_isr:
            note = f" (reassignment adding {sorted(adding)} not counted)" if adding & set(p.isr) else ""
            reasons.append(f"{p.topic}-{p.partition}: ISR {sorted(p.isr)} would keep {len(staying)} in sync without "
                           f"{_brokers(sorted(batch))}, below min.insync.replicas={p.min_isr}{note}")
    return GateResult(ok=not reasons, reasons=reasons)


def _brokers(ids: list[int]) -> str:
    return f"broker {ids[0]}" if len(ids) == 1 else f"brokers {ids}"


def broker_gate(node_ids: Sequence[int], observations: Sequence[GateObservation], *,
                also_down: Iterable[int] = ()) -> GateResult:
    """:func:`can_roll_brokers` over the union of the partitions several gate observations reported; any
    observation without Kafka's answer blocks (no facts, no restart)."""
    unreachable = [o.error or "no answer" for o in observations if not o.reachable]
    if unreachable:
        return GateResult(ok=False, reasons=[f"Kafka did not answer: {unreachable[0]}"])
    partitions = [p for o in observations for p in o.partitions]
    return can_roll_brokers(node_ids, partitions, also_down=also_down)


# A follower counts as caught up if it reached the leader's log end within this window...
CAUGHT_UP_WINDOW_MS: Final = 10_000
# ...or its log end offset is this close to the quorum's high watermark.
QUORUM_LAG_TOLERANCE: Final = 100


def voter_caught_up(voter: VoterFacts, obs: GateObservation) -> bool:
    if voter.node_id == obs.quorum_leader_id:
        return True
    recent = voter.last_caught_up_ms >= 0 and obs.now_ms > 0 and obs.now_ms - voter.last_caught_up_ms <= \
        CAUGHT_UP_WINDOW_MS
    near = voter.log_end_offset >= 0 and obs.quorum_high_watermark >= 0 and \
        obs.quorum_high_watermark - voter.log_end_offset <= QUORUM_LAG_TOLERANCE
    return recent or near


def can_roll_controller(node_id: int, observation: GateObservation) -> GateResult:
    """May controller ``node_id`` restart now? Only when the quorum has a leader and a majority of the *other*
    voters is caught up (reached the leader's log end recently, or is close to the high watermark), so the
    quorum keeps -- or quickly re-elects -- a leader while this one is down. A single-voter quorum cannot
    avoid the outage: allowed, and said so."""
    obs = observation
    if not obs.reachable:
        return GateResult(ok=False, reasons=[f"the quorum did not answer: {obs.error or 'no answer'}"])
    if obs.quorum_leader_id < 0:
        return GateResult(ok=False, reasons=["the quorum has no leader"])
    voters = {v.node_id: v for v in obs.voters}
    if len(voters) <= 1:
        return GateResult(ok=True, reasons=["a single voter: the metadata quorum is unavailable while it restarts"])
    others = [v for v in voters.values() if v.node_id != node_id]
    needed = len(others) // 2 + 1
    caught = [v.node_id for v in others if voter_caught_up(v, obs)]
    if len(caught) >= needed:
        return GateResult(ok=True)
    lagging = sorted(v.node_id for v in others if v.node_id not in caught)
    return GateResult(ok=False, reasons=[
        f"{len(caught)}/{len(others)} other voters caught up, {needed} needed without controller {node_id} "
        f"(lagging: {lagging}, high watermark {obs.quorum_high_watermark})"])
