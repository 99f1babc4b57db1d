"""The scheduler's filters and scores as pure functions over API objects (kube-scheduler's default plugins).

Filters run per node in the default profile's order and stop at the first plugin that rejects, exactly
as the framework does; each rejection carries kube-scheduler's reason text and whether preemption could
help (``Unschedulable``) or not (``UnschedulableAndUnresolvable``). Implemented: NodeUnschedulable,
TaintToleration, NodeAffinity (nodeSelector + required node affinity), NodeResourcesFit (cpu, memory,
ephemeral-storage, pods), PodTopologySpread (DoNotSchedule) and InterPodAffinity (required affinity and
anti-affinity, both directions). Not modelled: host ports, volume limits/zones, DRA, preemption itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from devcluster.builtins import parse_quantity
from devcluster.selectors import LabelSelector
from devcluster.store import Obj

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
RESOURCES = ("cpu", "memory", "ephemeral-storage")


@dataclass(frozen=True)
class Rejection:
    reasons: tuple[str, ...]
    resolvable: bool  # True: plain Unschedulable (preemption could help); False: ...AndUnresolvable


def labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def is_active(pod: Obj) -> bool:
    """A pod that still occupies its node: assigned and not in a terminal phase."""
    return bool((pod.get("spec") or {}).get("nodeName")) and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


# -- taints -------------------------------------------------------------------------------------------
def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taints(pod: Obj, node: Obj) -> list[Obj]:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, t)]


# -- node affinity ------------------------------------------------------------------------------------
def _expression_matches(expr: Obj, values: Mapping[str, str]) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    wanted = [str(v) for v in expr.get("values") or []]
    present = key in values
    if op == "In":
        return present and values[key] in wanted
    if op == "NotIn":
        return not present or values[key] not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            have, bound = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def node_selector_term_matches(term: Obj, node: Obj) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no node
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return all(_expression_matches(e, labels(node)) for e in exprs) and \
        all(_expression_matches(f, node_fields) for f in fields)


def matches_node_affinity(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    node_labels = labels(node)
    if any(node_labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


# -- resources ----------------------------------------------------------------------------------------
def pod_requests(pod: Obj) -> dict[str, float]:
    """Effective requests: sum over containers (requests default to limits), at least the largest init container."""
    spec = pod.get("spec") or {}

    def of(c: Obj) -> dict[str, float]:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        return {r: parse_quantity(req.get(r, lim.get(r, 0))) for r in RESOURCES}

    total = dict.fromkeys(RESOURCES, 0.0)
    for c in spec.get("containers") or []:
        for r, v in of(c).items():
            total[r] += v
    for c in spec.get("initContainers") or []:
        for r, v in of(c).items():
            total[r] = max(total[r], v)
    for r, v in (spec.get("overhead") or {}).items():
        if r in total:
            total[r] += parse_quantity(v)
    return total


def insufficient(pod: Obj, node: Obj, pods_on_node: list[Obj]) -> list[str]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    reasons = []
    if len(pods_on_node) + 1 > int(parse_quantity(alloc.get("pods", "110"))):
        reasons.append("Too many pods")
    want = pod_requests(pod)
    used = dict.fromkeys(RESOURCES, 0.0)
    for other in pods_on_node:
        for r, v in pod_requests(other).items():
            used[r] += v
    for r in RESOURCES:
        if want[r] > 0 and used[r] + want[r] > parse_quantity(alloc.get(r, 0)) + 1e-9:
            reasons.append(f"Insufficient {r}")
    return reasons


# -- pod (anti-)affinity and topology spread ------------------------------------------------------------
def _term_namespaces(pod: Obj, term: Obj, namespaces: Mapping[str, Obj]) -> set[str] | None:
    """Namespaces a term applies to; ``None`` means all (an empty namespaceSelector)."""
    names = set(term.get("namespaces") or [])
    sel = term.get("namespaceSelector")
    if sel is not None:
        selector = LabelSelector.from_label_selector_object(sel)
        if selector.is_empty():
            return None
        names |= {n for n, ns in namespaces.items() if selector.matches(labels(ns))}
    elif not names:
        names = {pod["metadata"].get("namespace", "")}
    return names


def _term_selector(pod: Obj, term: Obj) -> LabelSelector:
    sel = dict(term.get("labelSelector") or {})
    if term.get("labelSelector") is None:
        return LabelSelector.nothing()
    exprs = list(sel.get("matchExpressions") or [])
    own = labels(pod)
    for key in term.get("matchLabelKeys") or []:
        if key in own:
            exprs.append({"key": key, "operator": "In", "values": [own[key]]})
    for key in term.get("mismatchLabelKeys") or []:
        if key in own:
            exprs.append({"key": key, "operator": "NotIn", "values": [own[key]]})
    sel["matchExpressions"] = exprs
    return LabelSelector.from_label_selector_object(sel)


def term_matches(owner: Obj, term: Obj, candidate: Obj, namespaces: Mapping[str, Obj]) -> bool:
    """Does ``candidate`` match ``owner``'s pod (anti-)affinity ``term``?"""
    allowed = _term_namespaces(owner, term, namespaces)
    if allowed is not None and candidate["metadata"].get("namespace", "") not in allowed:
        return False
    return _term_selector(owner, term).matches(labels(candidate))


def _required_terms(pod: Obj, kind: str) -> list[Obj]:
    aff = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    return list(aff.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _preferred_terms(pod: Obj, kind: str) -> list[tuple[int, Obj]]:
    aff = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    return [(int(w.get("weight", 1)), w.get("podAffinityTerm") or {})
            for w in aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []]


def _same_domain(node: Obj, other_node: Obj | None, key: str) -> bool:
    if other_node is None or key not in labels(node):
        return False
    return labels(other_node).get(key) == labels(node)[key]


@dataclass
class ClusterView:
    """What one scheduling attempt sees: nodes, the pods occupying them, namespaces."""

    nodes: dict[str, Obj]
    pods: list[Obj]  # active (assigned, non-terminal) pods
    namespaces: dict[str, Obj]

    def pods_on(self, node_name: str) -> list[Obj]:
        return [p for p in self.pods if p["spec"].get("nodeName") == node_name]

    def node_of(self, pod: Obj) -> Obj | None:
        return self.nodes.get(pod["spec"].get("nodeName", ""))


def inter_pod_affinity(pod: Obj, node: Obj, view: ClusterView) -> Rejection | None:
    for term in _required_terms(pod, "podAntiAffinity"):
        key = term.get("topologyKey", "")
        for other in view.pods:
            if _same_domain(node, view.node_of(other), key) and term_matches(pod, term, other, view.namespaces):
                return Rejection(("node(s) didn't match pod anti-affinity rules",), True)
    for other in view.pods:
        for term in _required_terms(other, "podAntiAffinity"):
            if _same_domain(node, view.node_of(other), term.get("topologyKey", "")) and \
                    term_matches(other, term, pod, view.namespaces):
                return Rejection(("node(s) didn't satisfy existing pods anti-affinity rules",), True)
    for term in _required_terms(pod, "podAffinity"):
        key = term.get("topologyKey", "")
        matching = [o for o in view.pods if term_matches(pod, term, o, view.namespaces)]
        if not matching and term_matches(pod, term, pod, view.namespaces):
            continue  # the first pod of a group may schedule anywhere
        if not any(_same_domain(node, view.node_of(o), key) for o in matching):
            return Rejection(("node(s) didn't match pod affinity rules",), False)
    return None


def spread_constraints(pod: Obj) -> list[Obj]:
    """The pod's constraints, or the cluster defaults (soft, per host and zone) for controller-owned pods."""
    declared = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
    if declared:
        return list(declared)
    owner = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    if owner is None:
        return []
    selector = {"__owner__": owner.get("uid", "")}
    return [{"maxSkew": 3, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": selector},
            {"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": selector}]


def _spread_matches(pod: Obj, constraint: Obj, other: Obj) -> bool:
    if other["metadata"].get("namespace") != pod["metadata"].get("namespace"):
        return False
    if other["metadata"].get("deletionTimestamp"):
        return False  # terminating pods are not counted
    sel = constraint.get("labelSelector")
    if sel is not None and "__owner__" in sel:
        return any(r.get("uid") == sel["__owner__"] for r in other["metadata"].get("ownerReferences") or [])
    return term_matches(pod, {"labelSelector": sel, "matchLabelKeys": constraint.get("matchLabelKeys"),
                              "namespaces": [pod["metadata"].get("namespace", "")]}, other, {})


def domain_counts(pod: Obj, constraint: Obj, view: ClusterView, eligible: Iterable[Obj]) -> dict[str, int]:
    key = constraint.get("topologyKey", "")
    counts = {labels(n)[key]: 0 for n in eligible if key in labels(n)}
    for other in view.pods:
        node = view.node_of(other)
        if node is None or key not in labels(node) or labels(node)[key] not in counts:
            continue
        if _spread_matches(pod, constraint, other):
            counts[labels(node)[key]] += 1
    return counts


def topology_spread(pod: Obj, node: Obj, view: ClusterView) -> Rejection | None:
    hard = [c for c in spread_constraints(pod) if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"]
    for c in hard:
        key = c.get("topologyKey", "")
        if key not in labels(node):
            return Rejection(("node(s) didn't match pod topology spread constraints (missing required label)",),
                             False)
        honor = c.get("nodeAffinityPolicy", "Honor") == "Honor"
        eligible = [n for n in view.nodes.values() if not honor or matches_node_affinity(pod, n)]
        counts = domain_counts(pod, c, view, eligible)
        minimum = min(counts.values()) if counts else 0
        if len(counts) < int(c.get("minDomains") or 1):
            minimum = 0
        self_match = 1 if _spread_matches(pod, c, pod) else 0
        if counts.get(labels(node)[key], 0) + self_match - minimum > int(c.get("maxSkew", 1)):
            return Rejection(("node(s) didn't match pod topology spread constraints",), True)
    return None


def score(pod: Obj, node: Obj, view: ClusterView) -> tuple[float, ...]:
    """Lower is better: spread cost, (anti-)affinity preference, load, then the node name as tie-break."""
    spread = 0.0
    for c in spread_constraints(pod):
        counts = domain_counts(pod, c, view, [node])
        spread += counts.get(labels(node).get(c.get("topologyKey", ""), ""), 0)
    preference = 0.0
    for weight, term in _preferred_terms(pod, "podAntiAffinity"):
        preference += weight * sum(1 for o in view.pods if _same_domain(node, view.node_of(o), term.get(
            "topologyKey", "")) and term_matches(pod, term, o, view.namespaces))
    for weight, term in _preferred_terms(pod, "podAffinity"):
        preference -= weight * sum(1 for o in view.pods if _same_domain(node, view.node_of(o), term.get(
            "topologyKey", "")) and term_matches(pod, term, o, view.namespaces))
    alloc = (node.get("status") or {}).get("allocatable") or {}
    on_node = view.pods_on(node["metadata"]["name"])
    used = dict.fromkeys(RESOURCES, 0.0)
    for p in [*on_node, pod]:
        for r, v in pod_requests(p).items():
            used[r] += v
    load = max(used[r] / max(parse_quantity(alloc.get(r, 1)), 1e-9) for r in ("cpu", "memory"))
    return (spread, preference, round(load, 3), float(len(on_node)))


def filter_node(pod: Obj, node: Obj, view: ClusterView) -> Rejection | None:
    """Run the filter plugins in the default profile's order; the first rejection wins."""
    spec = node.get("spec") or {}
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if spec.get("unschedulable") and not tolerates(tolerations, {"key": UNSCHEDULABLE_TAINT,
                                                                  "effect": "NoSchedule"}):
        return Rejection(("node(s) were unschedulable",), False)
    if untolerated_taints(pod, node):
        return Rejection(("node(s) had untolerated taint(s)",), False)
    if not matches_node_affinity(pod, node):
        return Rejection(("node(s) didn't match Pod's node affinity/selector",), False)
    reasons = insufficient(pod, node, view.pods_on(node["metadata"]["name"]))
    if reasons:
        return Rejection(tuple(reasons), True)
    return topology_spread(pod, node, view) or inter_pod_affinity(pod, node, view)


def fit_error(node_count: int, rejections: Mapping[str, Rejection], prefilter: str | None,
              preemption_policy: str | None) -> str:
    """kube-scheduler's FitError text (with the DRA and preemption PostFilter notes of 1.34+)."""
    msg = f"0/{node_count} nodes are available:"
    if prefilter:
        msg += f" {prefilter}."
        unresolvable = dict.fromkeys(rejections, True)  # VolumeBinding's PreFilter is ...AndUnresolvable
    else:
        histogram: dict[str, int] = {}
        for rej in rejections.values():
            for reason in rej.reasons:
                histogram[reason] = histogram.get(reason, 0) + 1
        msg += " " + ", ".join(sorted(f"{n} {r}" for r, n in histogram.items())) + "."
        unresolvable = {name: not rej.resolvable for name, rej in rejections.items()}
    if preemption_policy == "Never":
        return msg + " no new claims to deallocate, preemption: not eligible due to preemptionPolicy=Never."
    counts: dict[str, int] = {}
    for name in rejections:
        text = "Preemption is not helpful for scheduling" if unresolvable[name] else \
            "No preemption victims found for incoming pod"
        counts[text] = counts.get(text, 0) + 1
    detail = ", ".join(sorted(f"{n} {t}" for t, n in counts.items()))
    return f"{msg} no new claims to deallocate, preemption: 0/{node_count} nodes are available: {detail}."
