"""PodDisruptionBudgets (policy/v1): at most one broker and at most one controller voluntarily disrupted
at a time (node drains, evictions), so a 3-voter quorum keeps its majority and replication factor 3 with
``min.insync.replicas`` 2 keeps accepting ``acks=all`` writes. The operator's own restarts delete pods
directly (not through eviction) and do their own one-at-a-time pacing.
"""

from __future__ import annotations

from ballast.manifests.inputs import RenderInput
from ballast.manifests.labels import selector_labels
from ballast.manifests.metadata import JSON, object_meta
from ballast.manifests.names import Role, pdb_name


def pod_disruption_budget(inp: RenderInput, role: Role) -> JSON:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(inp, pdb_name(inp.name, role), role),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(inp.name, role)},
        },
    }
