"""Max-min fair sharing of replication bandwidth among catching-up replicas.

Each catching-up replica draws from a set of shared limits: its follower broker's fetch capacity, and,
when the replica is listed in the topic's throttled-replica configs, the follower broker's
``follower.replication.throttled.rate`` and/or the leader broker's ``leader.replication.throttled.rate``
(Kafka throttles only replicas that are not in sync, which is exactly this set). Progressive filling
gives every flow the same rate until a limit saturates, freezes the flows through it, and continues:
O(limits x (limits + flows)), run only when the set of flows or a limit changes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence


def allocate(flows: Sequence[Sequence[Hashable]], limits: Mapping[Hashable, float]) -> list[float]:
    """Rates for ``flows`` (each the keys of the limits it passes through) under ``limits`` (bytes/s;
    inf = unlimited). A flow through no finite limit gets inf."""
    rates = [math.inf] * len(flows)
    remaining: dict[Hashable, float] = {}
    users: dict[Hashable, list[int]] = {}
    for index, keys in enumerate(flows):
        for key in keys:
            capacity = limits.get(key, math.inf)
            if math.isfinite(capacity):
                remaining[key] = max(0.0, capacity)
                users.setdefault(key, []).append(index)
    active_count = {key: len(indexes) for key, indexes in users.items()}
    frozen = [False] * len(flows)
    while True:
        best_key, best_level = None, math.inf
        for key, count in active_count.items():
            if count > 0:
                level = remaining[key] / count
                if level < best_level:
                    best_key, best_level = key, level
        if best_key is None:
            break
        for index in users[best_key]:
            if frozen[index]:
                continue
            frozen[index] = True
            rates[index] = best_level
            for key in flows[index]:
                if key in remaining:
                    remaining[key] -= best_level
                    active_count[key] -= 1
    return rates
