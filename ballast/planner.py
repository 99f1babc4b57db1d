"""The reconcile planner: given what a Kafka cluster looks like and what it should look like, what to do next.

Pure and deterministic (no I/O, no clock, no randomness), so the cluster workflow can call it during replay
and a person can ask the workflow for the same answer as a dry run (the ``plan`` query). A plan is an
ordered list of typed steps, each carrying a ``why`` written for the person reading the Temporal UI or
``kubectl describe``.

Provisioning order is the Kafka KRaft runbook:

1. put the finalizer on the KafkaCluster (so a deletion waits for our cleanup);
2. fix the KRaft cluster id (generated once, persisted in ``status.clusterId`` before any manifest uses it);
3. apply the controllers' objects and wait until the quorum has a leader;
4. apply the brokers' objects and wait until every broker registered with the quorum;
5. mark the cluster Ready.

For an existing cluster only the needed steps remain: objects whose ``kafka.ballast.dev/spec-hash`` differs
from what ``render_role`` produces now (or which are missing) are applied, and a role is waited for only if its
StatefulSet was applied (pods may come or go) or Kafka does not confirm its health. Re-creating a Service,
ConfigMap or PodDisruptionBudget needs no wait: no pod restarts for it (``OnDelete``). A healthy cluster with
nothing to change gets an empty plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from ballast.manifests import SPEC_HASH_ANNOTATION, RenderInput, render_role
from ballast.manifests.names import DEFAULT_CLUSTER_DOMAIN, Role, node_ids
from ballast.observed import ObservedCluster
from ballast.spec import GROUP, KafkaClusterSpec

# The finalizer the operator puts on every KafkaCluster it manages: deletion waits until the workflow has
# cleaned up (PVCs per deleteClaim) and removed it.
FINALIZER = f"{GROUP}/cleanup"

Component = Literal["controllers", "brokers"]
_ROLE_OF: dict[Component, Role] = {"controllers": Role.CONTROLLER, "brokers": Role.BROKER}

OPERATION_PROVISIONING = "Provisioning"
OPERATION_RECONCILE = "Reconcile"
OPERATION_DELETION = "Deletion"


# --- steps -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Drift:
    """One desired object whose live copy is ``missing`` or ``changed`` (another spec-hash)."""

    kind: str
    name: str
    state: Literal["missing", "changed"]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} {self.state}"


@dataclass(frozen=True)
class EnsureFinalizer:
    why: str

    def describe(self) -> str:
        return f"add finalizer {FINALIZER}"


@dataclass(frozen=True)
class EnsureClusterId:
    """Fix the KRaft cluster id in ``status.clusterId``: ``adopt`` the one Kafka reports, else generate one."""

    why: str
    adopt: str | None = None

    def describe(self) -> str:
        return f"adopt cluster id {self.adopt}" if self.adopt else "generate the KRaft cluster id"


@dataclass(frozen=True)
class Apply:
    components: tuple[Component, ...]
    why: str

    def describe(self) -> str:
        return f"apply {' and '.join(self.components)} manifests"


@dataclass(frozen=True)
class WaitControllersReady:
    expected: int
    why: str

    def describe(self) -> str:
        return f"wait for the controller quorum ({self.expected} voters) to elect a leader"


@dataclass(frozen=True)
class WaitBrokersRegistered:
    expected: int
    why: str

    def describe(self) -> str:
        return f"wait for {self.expected} brokers to register"


@dataclass(frozen=True)
class MarkReady:
    why: str

    def describe(self) -> str:
        return "mark the cluster Ready"


@dataclass(frozen=True)
class Cleanup:
    """Delete what garbage collection does not: the PVCs of the roles whose ``storage.deleteClaim`` is true."""

    delete_broker_claims: bool
    delete_controller_claims: bool
    why: str

    def describe(self) -> str:
        roles = [r for r, on in (("broker", self.delete_broker_claims),
                                 ("controller", self.delete_controller_claims)) if on]
        return f"clean up (delete {' and '.join(roles)} volume claims)" if roles else "clean up (keep volume claims)"


@dataclass(frozen=True)
class RemoveFinalizer:
    why: str

    def describe(self) -> str:
        return f"remove finalizer {FINALIZER}"


Step = (EnsureFinalizer | EnsureClusterId | Apply | WaitControllersReady | WaitBrokersRegistered | MarkReady
        | Cleanup | RemoveFinalizer)


@dataclass(frozen=True)
class Plan:
    """Ordered steps; ``operation`` names the kind of work (the status' ``currentOperation.type``)."""

    steps: tuple[Step, ...] = ()
    operation: str = ""

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __bool__(self) -> bool:
        return bool(self.steps)


def describe_step(step: Step) -> str:
    return f"{step.describe()} -- {step.why}"


def describe_plan(plan: Plan) -> list[str]:
    """One line per step, numbered as the status reports progress (``2/5 ...``)."""
    total = len(plan)
    return [f"{i}/{total} {describe_step(step)}" for i, step in enumerate(plan, start=1)]


# --- facts -----------------------------------------------------------------------------------------------

def drifted(observed: ObservedCluster, desired: Sequence[dict[str, Any]]) -> list[Drift]:
    """Each desired object whose live copy is absent or carries another spec-hash, in ``desired`` order.

    An object the observer did not report counts as missing: applying is idempotent, guessing is not.
    """
    live = {(o.kind, o.name): o for o in observed.objects}
    out: list[Drift] = []
    for obj in desired:
        kind, name = obj["kind"], obj["metadata"]["name"]
        want = obj["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        state = live.get((kind, name))
        if state is None or not state.exists:
            out.append(Drift(kind, name, "missing"))
        elif state.spec_hash != want:
            out.append(Drift(kind, name, "changed"))
    return out


def quorum_has_leader(observed: ObservedCluster, replicas: int) -> bool:
    """Kafka confirms a leader and all ``replicas`` expected voters."""
    kafka = observed.kafka
    expected = set(node_ids(Role.CONTROLLER, replicas))
    return kafka.reachable and kafka.quorum_leader_id is not None and expected <= set(kafka.quorum_voters)


def brokers_registered(observed: ObservedCluster, replicas: int) -> bool:
    """Kafka confirms every expected broker id (``0..replicas-1``) is registered."""
    kafka = observed.kafka
    return kafka.reachable and set(node_ids(Role.BROKER, replicas)) <= set(kafka.registered_brokers)


def _statefulset_exists(observed: ObservedCluster, component: Component) -> bool:
    state = observed.controllers if component == "controllers" else observed.brokers
    return state is not None and state.exists


# A role's wait rule: (observed, spec, touched) -> the wait step, or None when Kafka confirms the role healthy.
_WaitRule = Callable[[ObservedCluster, KafkaClusterSpec, bool], "Step | None"]


# --- planning --------------------------------------------------------------------------------------------

def plan_reconcile(observed: ObservedCluster, spec: KafkaClusterSpec, *,
                   cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> Plan:
    """The steps that bring ``observed`` to ``spec``; empty when the cluster already is what the spec says.

    ``spec`` must already be valid (the workflow reports an invalid one instead of planning). The plan never
    depends on anything but its arguments, so replaying a workflow re-plans identically.
    """
    steps: list[Step] = []
    if FINALIZER not in observed.finalizers:
        steps.append(EnsureFinalizer(why="deleting the KafkaCluster must wait for the operator's cleanup"))

    cluster_id = observed.cluster_id
    if cluster_id is None:
        adopt = observed.kafka.cluster_id if observed.kafka.reachable else None
        why = ("Kafka already runs with this id; keep it so the existing logs stay valid" if adopt else
               "a new KRaft cluster needs an id before its storage is formatted")
        steps.append(EnsureClusterId(why=why, adopt=adopt))
        cluster_id = adopt

    # Provisioning until both roles exist: a cluster without brokers serves nobody, whatever the reason.
    provisioning = cluster_id is None or not all(_statefulset_exists(observed, c) for c in ("controllers", "brokers"))
    # Controllers before brokers: a broker cannot register without a quorum to register with.
    steps += _component_steps(observed, spec, "controllers", cluster_id, cluster_domain, _wait_controllers)
    steps += _component_steps(observed, spec, "brokers", cluster_id, cluster_domain, _wait_brokers)

    if not steps:
        return Plan()
    steps.append(MarkReady(why="every step above succeeded"))
    return Plan(tuple(steps), OPERATION_PROVISIONING if provisioning else OPERATION_RECONCILE)


def _component_steps(observed: ObservedCluster, spec: KafkaClusterSpec, component: Component,
                     cluster_id: str | None, cluster_domain: str, wait: _WaitRule) -> list[Step]:
    """Apply ``component`` if any of its objects drifted, then wait for it if touched or not confirmed healthy."""
    steps: list[Step] = []
    if cluster_id is None:
        # The id is generated during the run: nothing rendered with it can exist yet.
        why, touched = "a new cluster: every object is created with the new cluster id", True
    else:
        inp = RenderInput(name=observed.name, namespace=observed.namespace, uid=observed.uid,
                          spec=spec, cluster_id=cluster_id, cluster_domain=cluster_domain)
        drift = drifted(observed, render_role(inp, _ROLE_OF[component]))
        why, touched = _summarize(drift), any(d.kind == "StatefulSet" for d in drift)
    if why:
        steps.append(Apply(components=(component,), why=why))
    waited = wait(observed, spec, touched)
    if waited is not None:
        steps.append(waited)
    return steps


def _wait_controllers(observed: ObservedCluster, spec: KafkaClusterSpec, touched: bool) -> Step | None:
    replicas = spec.controllers.replicas
    if quorum_has_leader(observed, replicas) and not touched:
        return None
    why = ("the controllers' StatefulSet was just applied" if touched else
           _unconfirmed(observed, f"the quorum of {replicas} voters has no confirmed leader"))
    return WaitControllersReady(expected=replicas, why=why)


def _wait_brokers(observed: ObservedCluster, spec: KafkaClusterSpec, touched: bool) -> Step | None:
    replicas = spec.brokers.replicas
    if brokers_registered(observed, replicas) and not touched:
        return None
    if touched:
        why = "the brokers' StatefulSet was just applied"
    else:
        have = len(set(observed.kafka.registered_brokers) & set(node_ids(Role.BROKER, replicas)))
        why = _unconfirmed(observed, f"{have}/{replicas} brokers registered")
    return WaitBrokersRegistered(expected=replicas, why=why)


def _unconfirmed(observed: ObservedCluster, detail: str) -> str:
    if observed.kafka.reachable:
        return detail
    return f"Kafka is unreachable ({observed.kafka.error or 'no answer'}), so health is unconfirmed"


def _summarize(drift: list[Drift], limit: int = 4) -> str:
    shown = ", ".join(str(d) for d in drift[:limit])
    return shown + (f" and {len(drift) - limit} more" if len(drift) > limit else "")


def plan_deletion(observed: ObservedCluster) -> Plan:
    """What deleting the KafkaCluster still needs: clean up per ``deleteClaim``, then release the finalizer.

    Owned objects (StatefulSets, Services, ConfigMaps, PDBs) go by garbage collection through their owner
    references; volume claims have no owner, so they are deleted here only if the spec asks. A spec that no
    longer parses keeps the claims: when in doubt, keep the data.
    """
    if not observed.found or not observed.deleting:
        return Plan()
    brokers_claims, controller_claims = _delete_claims(observed.spec)
    steps: list[Step] = [Cleanup(delete_broker_claims=brokers_claims, delete_controller_claims=controller_claims,
                                 why="the KafkaCluster is being deleted")]
    if FINALIZER in observed.finalizers:
        steps.append(RemoveFinalizer(why="cleanup is done; let the API server delete the KafkaCluster"))
    return Plan(tuple(steps), OPERATION_DELETION)


def _delete_claims(raw_spec: dict[str, Any]) -> tuple[bool, bool]:
    try:
        spec = KafkaClusterSpec.model_validate(raw_spec)
    except ValidationError:
        return False, False
    return spec.brokers.storage.delete_claim, spec.controllers.storage.delete_claim
