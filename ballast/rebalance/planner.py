"""The built-in rebalance planner: a pure, deterministic function from brokers, partitions and goals to a plan.

:func:`plan_rebalance` reaches the goals in priority order and reports what it does (:class:`PlanFigures`):

1. **Hard goals** -- a plan that cannot reach one of them is *infeasible*: ``RebalancePlan.infeasible`` names what is
   impossible and ``batches`` is empty.

   * No replica on a broker in ``Goals.remove`` (a scale-in's drain).
   * Rack awareness. Every broker whose ``rack`` is None counts as a rack of its own, so a cluster without rack
     information only needs distinct brokers and a mixed one treats its rackless brokers as isolated. With K racks
     among the brokers that stay and a partition of RF replicas, no rack may hold more than ``cap(RF)`` of its
     replicas, where ``cap(RF)`` is the smallest number for which the racks (each holding at most its broker count)
     can take RF replicas: 1 when K >= RF and the racks are usable, ``ceil(RF / K)`` for even racks otherwise. That
     is "as evenly as possible" in the sense that matters: losing one rack loses as few replicas as any placement
     allows.
   * No broker above ``capacity_threshold`` of its ``capacity_bytes`` (0 = unknown: no capacity goal for it).

2. **Balance** over the brokers that stay (those not in ``remove``), each mean taken over them: replica count
   within ``mean * (1 +- tolerance)`` rounded inwards to whole numbers (but never narrower than
   ``floor(mean)..ceil(mean)``, as the counts must add up), disk bytes within ``mean * (1 +- tolerance)`` (capped by
   each broker's capacity limit), and preferred leaders (the first replica) within the same kind of band as the
   replica count. Leaders are balanced by reordering replicas, which copies no data. When rack awareness fixes
   what a rack must hold (racks of 3, 3 and 2 brokers with RF-3 partitions: every rack holds a replica of every
   partition, so the 2-broker rack's brokers carry half as much again), that rack's brokers are balanced around
   that share instead of the mean (``_rack_means``), and ``notes`` says so. Balance is best effort otherwise:
   partitions are indivisible, so a cluster with one giant partition cannot be balanced to 5 %;
   ``RebalancePlan.notes`` then says which goal stays out of reach.

3. **Minimal movement**: a replica moves only to fix a violated goal; each balance move fixes the worst broker
   (largest violation) with the partition whose size best fits what that broker needs (the smallest when only the
   count is off), taken from / given to the most / least loaded broker that can take it without leaving its own
   band; a partition no goal needs moved keeps its replicas and their order. A replica that leaves a broker takes
   the place of the one it replaces in the replica list, so the other replicas keep their order.

Algorithm: partitions are held as lists of internal broker slots; every broker has its replicas in a list sorted by
(size, partition) for "nearest size" look-ups, and lazy heaps (over all brokers and per rack) order the brokers by
load (replicas / mean + bytes / mean). The drain places removed brokers' replicas largest first on the least loaded
broker that can take them (rack, capacity, not already a replica); racks and capacity are fixed the same way. The
balance loop then pops the broker with the largest violation (how far it is outside its bands, in means) from a heap
and moves one replica for it, of the size that brings its count and bytes back together (bytes missing / replicas
missing); when no single move helps -- the count at its bound, the bytes not -- it exchanges a large replica for a
small one. A move must strictly reduce the driving broker's violation and may not increase the other broker's. Only
when that finds nothing (a goal out of reach: partitions too coarse, capacity limits) may it even the driver out
with a broker less far off, which may then get worse by less than the driver gains: the worst broker ends as close
to its band as the constraints allow. Either way the sum of squared violations falls with every move, so the loop
ends. When the heap runs dry every broker still out of band is tried once more against every other broker; the loop
stops when that finds nothing, so planning again on the result finds nothing either (the search depends on the state
only; a cap of 50 such sweeps, never reached in the tests or the benchmark, bounds the time on pathological input).
Cost: O(replicas log replicas) to set up and O(log replicas + log brokers) per move -- 100,000 partitions x RF 3 on
100 brokers plan in a few seconds.

Lower bound (``PlanFigures.lower_bound_bytes``, see :func:`assignment_figures`): let a plan end with loads ``f_b``
and call ``[L*, U*]`` the band it reaches over the brokers that stay: ``U* = max(mean * (1 + tolerance), max f_b)``
and ``L* = min(mean * (1 - tolerance), min f_b)``; a staying broker may end with at most
``U*_b = max(min(U*, its capacity limit), f_b)`` (every valid plan respects capacity), a removed broker with at
most ``U*_b = f_b`` (0 once drained). Take any plan ending within these bounds. A broker b sends
``out_b >= before_b - f_b >= before_b - U*_b`` bytes and receives ``in_b >= L* - before_b``; every added replica
lands on one broker and, as replication factors are kept, every move removes as many replicas of the same size as
it adds, so ``sum in_b = sum out_b = bytes moved``. Hence it moves at least ``max(E, D)`` bytes, with
``E = sum max(0, before_b - U*_b)`` (which includes everything on removed brokers) and
``D = sum max(0, L* - before_b)``. Everything on removed brokers sits inside E, not added on top of max(E, D): a
byte leaving a removed broker may be exactly the byte an underloaded broker must receive (a scale-in and a
scale-out at once), so adding it would overstate the bound. The bound counts bytes only (not replica counts, racks
or leaders), so it is a true lower bound, if not always a reachable one.

Partitions with replicas on brokers not in ``brokers`` (not registered right now, e.g. restarting, or gone): such
a replica is left where it is -- the planner cannot judge a broker it does not see, and moving data off a broker
that is merely restarting would be wrong -- it keeps its slot in the replica list, counts towards the partition's
replication factor, is in a rack of its own, and counts in no broker's balance. Only when its broker is in
``remove`` is it moved, like any replica of a removed broker. ``notes`` lists such brokers.

Leaders: ``leaders_before`` counts each partition's current leader (``PartitionLoad.leader``, or the first replica
when it is -1), ``leaders_after`` the first replica of the target (the workflow runs a preferred-leader election
after the moves).

Determinism: partitions are processed in (topic, partition) order and brokers by id whatever the input order, no
set is iterated, heaps break ties by broker, and nothing is random: the same input always gives the same plan.
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_left, insort
from collections import Counter, deque
from collections.abc import Mapping, Sequence

from ballast.rebalance.model import (
    BrokerLoad,
    Goals,
    Move,
    PartitionLoad,
    PlanFigures,
    RebalancePlan,
    Spread,
    TopicPartition,
)

__all__ = ["assignment_figures", "format_bytes", "plan_rebalance"]

_INF = float("inf")
_EPS = 1e-12  # violations are sums of normalised amounts (1.0 = one broker's mean); below this is noise
_NEAR = 12  # partitions looked at per counterpart broker, nearest to the wanted size first
_TOP = 6  # counterpart brokers per heap tried before giving up on a driver (until the final sweep tries all)
_MAX_MESSAGES = 8  # per kind of infeasibility; the rest is summed up
_MAX_SWEEPS = 50  # final sweeps (every broker out of band against every other); a handful in practice

# Why a partition moves, in the order the batches run them: hard goals first (drain first of all), then balance,
# then the moves that only reorder replicas (no data) for leader balance.
_DRAIN, _RACK, _CAPACITY, _BALANCE, _LEADER = range(5)


def plan_rebalance(
    brokers: Sequence[BrokerLoad], partitions: Sequence[PartitionLoad], goals: Goals
) -> RebalancePlan:
    """Plan moves that reach ``goals`` on ``brokers`` for ``partitions`` moving as few bytes as possible.

    Pure and deterministic. ``partitions`` must not include partitions being reassigned (the caller leaves them
    out); their replicas may name brokers missing from ``brokers`` (see the module docstring). The plan's moves
    run in ``batches`` of at most ``goals.max_moves_per_batch``: draining removed brokers first, then rack and
    capacity fixes, then balance moves, then replica reorders for leader balance; inside each, small moves first
    (progress shows early), spreading a batch's moves over as many destination brokers as the moves allow. Every
    ``Move.source`` is the partition's replicas as given; ``Move.target`` keeps the replication factor and never
    repeats a broker. When a hard goal cannot be reached, ``infeasible`` says why and ``batches`` is empty.
    """
    return _Planner(brokers, partitions, goals).run()


def format_bytes(n: float) -> str:
    """``900 GiB``, ``1.5 TiB``, ``12 MiB``: binary units, the way disks and Kafka's log sizes are read."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 100 or value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def _spread(values: Sequence[float], mean: float) -> Spread:
    if mean <= 0 or not values:
        return Spread(mean=max(mean, 0.0), max_deviation_percent=0.0)
    return Spread(mean=mean, max_deviation_percent=max(abs(v - mean) for v in values) / mean * 100)


def _loads(
    rows: Sequence[tuple[Sequence[int], int, int]],
) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """Replica count, bytes and leaders per broker id for (replicas, size, leader) rows."""
    cnt: dict[int, int] = {}
    byt: dict[int, int] = {}
    lead: dict[int, int] = {}
    for replicas, size, leader in rows:
        for b in replicas:
            cnt[b] = cnt.get(b, 0) + 1
            byt[b] = byt.get(b, 0) + size
        if leader >= 0:
            lead[leader] = lead.get(leader, 0) + 1
    return cnt, byt, lead


def assignment_figures(
    brokers: Sequence[BrokerLoad],
    partitions: Sequence[PartitionLoad],
    target: Mapping[TopicPartition, Sequence[int]],
    goals: Goals,
) -> PlanFigures:
    """The figures of going from ``partitions``' current replicas to ``target`` (a partition missing from
    ``target`` stays as it is): moves, bytes copied, the lower bound for reaching the same balance (module
    docstring), and spreads before/after over the brokers that stay. Used for the planner's own plans and for
    other assignments (e.g. :mod:`ballast.rebalance.baseline`) so that both are measured the same way."""
    before_rows: list[tuple[Sequence[int], int, int]] = []
    after_rows: list[tuple[Sequence[int], int, int]] = []
    moves = 0
    moved_bytes = 0
    for p in partitions:
        size = max(0, p.size_bytes)
        before_rows.append((p.replicas, size, p.leader if p.leader >= 0 else (p.replicas[0] if p.replicas else -1)))
        new = tuple(target.get(p.key, p.replicas))
        after_rows.append((new, size, new[0] if new else -1))
        if new != p.replicas:
            moves += 1
            old = set(p.replicas)
            moved_bytes += size * sum(1 for b in new if b not in old)
    return _figures(brokers, goals, moves, moved_bytes, _loads(before_rows), _loads(after_rows))


_Loads = tuple[dict[int, int], dict[int, int], dict[int, int]]  # replicas, bytes, leaders per broker id


def _figures(brokers: Sequence[BrokerLoad], goals: Goals, moves: int, moved_bytes: int, before: _Loads,
             after: _Loads) -> PlanFigures:
    known = {b.id: b for b in brokers}
    remove = goals.remove
    stay = sorted(i for i in known if i not in remove)
    n_stay = len(stay)

    def managed(b: int) -> bool:  # counts in the cluster's totals: a known broker or one being removed
        return b in known or b in remove

    cnt0, byt0, lead0 = before
    cnt1, byt1, lead1 = after
    if n_stay == 0:
        return PlanFigures(moves=moves, bytes_to_move=moved_bytes)
    tot_c = sum(v for b, v in cnt0.items() if managed(b))
    tot_b = sum(v for b, v in byt0.items() if managed(b))
    tot_l0 = sum(v for b, v in lead0.items() if managed(b))
    tot_l1 = sum(v for b, v in lead1.items() if managed(b))
    tol = max(0.0, goals.tolerance)
    mean_b = tot_b / n_stay

    # Lower bound over the band the target reaches (see the module docstring for the argument).
    after_stay = [byt1.get(b, 0) for b in stay]
    upper = max(mean_b * (1 + tol), max(after_stay))
    lower = min(mean_b * (1 - tol), min(after_stay))
    leave: list[float] = []
    for b, held in byt0.items():
        if not managed(b):
            continue
        if b in remove or b not in known:
            cap_b = float(byt1.get(b, 0))
        else:
            limit = _capacity_limit(known[b], goals)
            cap_b = max(min(upper, limit), float(byt1.get(b, 0)))
        leave.append(max(0.0, held - cap_b))
    # fsum: exactly rounded, so the figure does not depend on the order brokers are summed in
    must_leave = math.fsum(leave)
    must_arrive = math.fsum(max(0.0, lower - byt0.get(b, 0)) for b in stay)
    bound = int(max(must_leave, must_arrive))  # floor: float rounding must never lift it above a real plan

    usage = [byt1.get(b, 0) / known[b].capacity_bytes for b in stay if known[b].capacity_bytes > 0]
    return PlanFigures(
        moves=moves,
        bytes_to_move=moved_bytes,
        lower_bound_bytes=bound,
        replicas_before=_spread([cnt0.get(b, 0) for b in stay], tot_c / n_stay),
        replicas_after=_spread([cnt1.get(b, 0) for b in stay], tot_c / n_stay),
        disk_before=_spread([byt0.get(b, 0) for b in stay], mean_b),
        disk_after=_spread(after_stay, mean_b),
        leaders_before=_spread([lead0.get(b, 0) for b in stay], tot_l0 / n_stay),
        leaders_after=_spread([lead1.get(b, 0) for b in stay], tot_l1 / n_stay),
        max_disk_usage_after=max(usage, default=0.0),
    )


def _capacity_limit(broker: BrokerLoad, goals: Goals) -> float:
    if broker.capacity_bytes <= 0:
        return _INF
    return broker.capacity_bytes * goals.capacity_threshold


def _part_name(p: PartitionLoad) -> str:
    return f"{p.topic}-{p.partition}"


class _Planner:
    """One planning run's state. Brokers are *slots* 0..n-1 (known brokers by id, then brokers that only appear in
    replica lists, by id); partitions are indices into ``parts`` (sorted by key)."""

    def __init__(self, brokers: Sequence[BrokerLoad], partitions: Sequence[PartitionLoad], goals: Goals) -> None:
        self.goals = goals
        self.tol = max(0.0, goals.tolerance)
        self.infeasible: list[str] = []
        self.notes: list[str] = []
        self.input_brokers = list(brokers)
        self.input_partitions = list(partitions)

        known = sorted(brokers, key=lambda b: b.id)
        for a, b in itertools.pairwise(known):
            if a.id == b.id:
                self.infeasible.append(f"broker {a.id} is listed twice")
        parts = sorted(partitions, key=lambda p: (p.topic, p.partition))
        for pa, pb in itertools.pairwise(parts):
            if pa.key == pb.key:
                self.infeasible.append(f"partition {_part_name(pa)} is listed twice")
        self.parts = parts

        slot: dict[int, int] = {}
        ids: list[int] = []
        for b in known:
            if b.id not in slot:
                slot[b.id] = len(ids)
                ids.append(b.id)
        n_known = len(ids)
        unknown = sorted({r for p in parts for r in p.replicas if r not in slot} | {r for r in goals.remove
                                                                                    if r not in slot})
        for r in unknown:
            slot[r] = len(ids)
            ids.append(r)
        self.ids = ids
        self.slot = slot
        n = len(ids)
        by_id = {b.id: b for b in known}

        # Racks as small ints; a broker without a rack (or unknown to the plan) is a rack of its own.
        rack_ids: dict[str, int] = {}
        rack: list[int] = []
        for i, b_id in enumerate(ids):
            info = by_id.get(b_id) if i < n_known else None
            if info is not None and info.rack is not None:
                rack.append(rack_ids.setdefault(info.rack, len(rack_ids)))
            else:
                rack.append(-2 - i)  # negative: a rack of its own (-1 names the heaps over all brokers)
        self.rack = rack
        self.rack_names = {v: k for k, v in rack_ids.items()}
        self.removed = [b_id in goals.remove for b_id in ids]
        self.stay = [i < n_known and not self.removed[i] for i in range(n)]
        self.fixed = [i >= n_known and not self.removed[i] for i in range(n)]
        self.stay_list = [i for i in range(n) if self.stay[i]]
        self.caplim = [_capacity_limit(by_id[ids[i]], goals) if self.stay[i] else _INF for i in range(n)]
        rack_size: dict[int, int] = {}
        for i in self.stay_list:
            rack_size[rack[i]] = rack_size.get(rack[i], 0) + 1
        self.rack_sizes = sorted(rack_size.values(), reverse=True)
        self.rack_aware = any(s > 1 for s in self.rack_sizes)
        self._caps: dict[int, int] = {}

        # Partition state: current replicas as slots (mutated in place), sizes, what each move is for.
        self.reps: list[list[int]] = []
        self.size: list[int] = []
        cnt = [0] * n
        byt = [0] * n
        for p in parts:
            rs = [slot[r] for r in p.replicas]
            sz = max(0, p.size_bytes)
            self.reps.append(rs)
            self.size.append(sz)
            for r in rs:
                cnt[r] += 1
                byt[r] += sz
            if len(set(rs)) != len(rs):
                self.infeasible.append(f"partition {_part_name(p)} lists a broker more than once: {list(p.replicas)}")
        self.cnt = cnt
        self.byt = byt
        lead0: dict[int, int] = {}
        for p in parts:
            leader = p.leader if p.leader >= 0 else (p.replicas[0] if p.replicas else -1)
            if leader >= 0:
                lead0[leader] = lead0.get(leader, 0) + 1
        self.before: _Loads = ({ids[i]: c for i, c in enumerate(cnt)}, {ids[i]: y for i, y in enumerate(byt)}, lead0)
        self.reason = [_BALANCE] * len(parts)
        self.touched = [False] * len(parts)  # replicas changed at some point (may have come back, rarely)

        fixed_ids = [ids[i] for i in range(n) if self.fixed[i] and cnt[i]]
        if fixed_ids:
            held = sum(cnt[i] for i in range(n) if self.fixed[i])
            self.notes.append(f"brokers {fixed_ids} are not known to the plan: their {held} replicas stay where "
                              "they are and count in no broker's balance")

        # Balance bands over the brokers that stay.
        n_stay = len(self.stay_list)
        self.n_stay = n_stay
        tot_c = sum(cnt[i] for i in range(n) if not self.fixed[i])
        tot_b = sum(byt[i] for i in range(n) if not self.fixed[i])
        self.tot_b = tot_b
        mean_c = tot_c / n_stay if n_stay else 0.0
        mean_b = tot_b / n_stay if n_stay else 0.0
        tol = self.tol
        self.ic = 1.0 / mean_c if mean_c > 0 else 0.0
        self.ib = 1.0 / mean_b if mean_b > 0 else 0.0
        # Each broker's bands: around the mean, or around what rack awareness leaves its rack (_rack_means).
        means = self._rack_means(tot_c, tot_b) if self.rack_aware and n_stay else {}
        self.lo_c = [0] * n
        self.hi_c = [0] * n
        self.lo_b = [0.0] * n
        self.hi_b = [0.0] * n
        for i in range(n):
            m_c, m_b = means.get(rack[i], (mean_c, mean_b))
            lo, hi = _band(m_c, mean_c, tol)
            self.lo_c[i] = min(math.ceil(lo - 1e-9), math.floor(m_c + 1e-9))  # whole counts, never empty
            self.hi_c[i] = max(math.floor(hi + 1e-9), math.ceil(m_c - 1e-9))
            lo, hi = _band(m_b, mean_b, tol)
            self.lo_b[i] = min(lo, self.caplim[i])
            self.hi_b[i] = min(hi, self.caplim[i])

        # Per staying broker: its replicas sorted by (size, partition), for nearest-size look-ups.
        hosted: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for pi, rs in enumerate(self.reps):
            sz = self.size[pi]
            for r in rs:
                if self.stay[r]:
                    hosted[r].append((sz, pi))
        for lst in hosted:
            lst.sort()
        self.hosted = hosted

        # Heaps of the staying brokers by load score (least loaded first in ``dst``, most loaded first in
        # ``src``), over all brokers (key -1) and per rack. Each broker has one entry per heap; a move leaves its
        # two brokers' entries stale and an entry is re-keyed when it comes out of the heap (``_pop``), so a move
        # costs no heap work. ``ver`` counts the moves of each broker, for the balance loop's heap of violations.
        self.ver = [0] * n
        self.dst: dict[int, list[tuple[float, int]]] = {-1: []}
        self.src: dict[int, list[tuple[float, int]]] = {-1: []}
        for i in self.stay_list:
            score = self._score(i)
            for k in ((-1, rack[i]) if self.rack_aware else (-1,)):
                self.dst.setdefault(k, []).append((score, i))
                self.src.setdefault(k, []).append((-score, i))
        for heap in (*self.dst.values(), *self.src.values()):
            heapq.heapify(heap)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _cap(self, rf: int) -> int:
        """Most replicas of an RF-replica partition one rack may hold (module docstring)."""
        cap = self._caps.get(rf)
        if cap is None:
            cap = 1
            while cap < rf and sum(min(s, cap) for s in self.rack_sizes) < rf:
                cap += 1
            self._caps[rf] = cap
        return cap

    def _score(self, b: int) -> float:
        return self.cnt[b] * self.ic + self.byt[b] * self.ib

    def _pop(self, heap: list[tuple[float, int]], sign: float) -> tuple[float, int]:
        """The entry with the best current key (``sign`` * load score): stale entries met on the way are
        re-keyed and pushed back."""
        cnt, byt, ic, ib = self.cnt, self.byt, self.ic, self.ib
        while True:
            e = heapq.heappop(heap)
            b = e[1]
            key = sign * (cnt[b] * ic + byt[b] * ib)
            if key == e[0] or not heap:
                return key, b
            heapq.heappush(heap, (key, b))

    def _viol(self, b: int, c: int, y: float) -> float:
        """How far broker ``b`` with ``c`` replicas and ``y`` bytes is outside its bands (1.0 = one mean)."""
        v = 0.0
        hi_c = self.hi_c[b]
        if c > hi_c:
            v += (c - hi_c) * self.ic
        else:
            lo_c = self.lo_c[b]
            if c < lo_c:
                v += (lo_c - c) * self.ic
        hi = self.hi_b[b]
        if y > hi:
            v += (y - hi) * self.ib
        else:
            lo = self.lo_b[b]
            if y < lo:
                v += (lo - y) * self.ib
        return v

    def _rack_ok(self, rs: list[int], s: int, d: int, strict: bool) -> bool:
        """May ``d`` replace ``s`` in replicas ``rs`` as far as racks go? ``strict``: ``d`` must also be in a
        rack other than ``s``'s (fixing a rack violation)."""
        rack = self.rack
        rd = rack[d]
        if rd == rack[s]:
            return not strict
        if rd < 0:  # a rack of its own
            return True
        c = 0
        for r in rs:
            if rack[r] == rd:
                c += 1
        return c < self._cap(len(rs))

    def _apply(self, pi: int, s: int, d: int) -> None:
        """Replace replica ``s`` of partition ``pi`` by ``d`` (same position in the replica list)."""
        rs = self.reps[pi]
        rs[rs.index(s)] = d
        self.touched[pi] = True
        sz = self.size[pi]
        self.cnt[s] -= 1
        self.byt[s] -= sz
        self.cnt[d] += 1
        self.byt[d] += sz
        if self.stay[s]:
            lst = self.hosted[s]
            del lst[bisect_left(lst, (sz, pi))]
            self.ver[s] += 1
        insort(self.hosted[d], (sz, pi))
        self.ver[d] += 1

    def _best_dest(self, pi: int, s: int, strict: bool) -> int:
        """The least loaded staying broker that can take partition ``pi``'s replica from ``s`` (not already a
        replica, racks, capacity), or -1."""
        heap = self.dst[-1]
        rs = self.reps[pi]
        sz = self.size[pi]
        taken: list[tuple[float, int]] = []
        found = -1
        while heap:
            e = self._pop(heap, 1.0)
            b = e[1]
            taken.append(e)
            if b in rs or self.byt[b] + sz > self.caplim[b]:
                continue
            if (self.rack_aware or strict) and not self._rack_ok(rs, s, b, strict):
                continue
            found = b
            break
        for e in taken:
            heapq.heappush(heap, e)
        return found

    def _threshold_text(self) -> str:
        return f"{self.goals.capacity_threshold * 100:g}%"

    def _add_infeasible(self, kind: str, counter: dict[str, int], message: str) -> None:
        counter[kind] = counter.get(kind, 0) + 1
        if counter[kind] <= _MAX_MESSAGES:
            self.infeasible.append(message)

    def _summarise(self, kind: str, counter: dict[str, int], what: str) -> None:
        extra = counter.get(kind, 0) - _MAX_MESSAGES
        if extra > 0:
            self.infeasible.append(f"... and {extra} more {what}")

    # -- checks -----------------------------------------------------------------------------------------------
    def _check(self) -> None:
        """Hard goals no placement can reach: too few brokers for a replication factor, too little disk."""
        removed_text = f" left after removing {sorted(self.goals.remove)}" if self.goals.remove else ""
        n_stay = self.n_stay
        if n_stay == 0:
            if any(not self.fixed[r] for rs in self.reps for r in rs):
                self.infeasible.append(f"no broker is left to hold the partitions{removed_text}")
            return
        worst: dict[str, int] = {}
        for pi, rs in enumerate(self.reps):
            need = sum(1 for r in rs if not self.fixed[r])
            topic = self.parts[pi].topic
            if need > n_stay and len(rs) > worst.get(topic, 0):
                worst[topic] = len(rs)
        for topic, rf in worst.items():
            self.infeasible.append(f"replication factor {rf} of topic {topic!r} exceeds the {n_stay} brokers"
                                   f"{removed_text or ' available'}")
        limits = [self.caplim[i] for i in self.stay_list]
        if all(lim < _INF for lim in limits):
            room = sum(limits)
            data = sum(self.byt[i] for i in range(len(self.ids)) if not self.fixed[i])
            if data > room:
                which = "remaining" if self.goals.remove else ""
                self.infeasible.append(
                    f"the {n_stay} {which + ' ' if which else ''}brokers cannot hold {format_bytes(data)} under "
                    f"the {self._threshold_text()} capacity threshold (they have {format_bytes(room)})")
        if any(lim < _INF for lim in limits):
            ordered = sorted(limits)
            counter: dict[str, int] = {}
            for pi, rs in enumerate(self.reps):
                sz = self.size[pi]
                if sz == 0 or sz <= ordered[0]:
                    continue
                need = sum(1 for r in rs if not self.fixed[r])
                fits = len(ordered) - bisect_left(ordered, sz)
                if fits < need:
                    p = self.parts[pi]
                    self._add_infeasible("fit", counter, (
                        f"partition {_part_name(p)} ({format_bytes(sz)}) fits under the {self._threshold_text()} "
                        f"capacity threshold on {fits} broker{'s' if fits != 1 else ''} but needs {need}"))
            self._summarise("fit", counter, "partitions that fit on too few brokers")

    # -- hard goals -------------------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Move every replica off the removed brokers, largest first, each to the least loaded broker that can
        take it."""
        todo = [(-self.size[pi], pi, r) for pi, rs in enumerate(self.reps) for r in rs if self.removed[r]]
        todo.sort()
        counter: dict[str, int] = {}
        for _, pi, s in todo:
            self.reason[pi] = _DRAIN
            d = self._best_dest(pi, s, strict=False)
            if d < 0:
                p = self.parts[pi]
                self._add_infeasible("drain", counter, (
                    f"cannot move {_part_name(p)} ({format_bytes(self.size[pi])}) off broker {self.ids[s]}: no "
                    f"remaining broker can take it (under the {self._threshold_text()} capacity threshold, in a "
                    "rack that keeps the partition rack-aware, not already a replica)"))
                continue
            self._apply(pi, s, d)
        self._summarise("drain", counter, "replicas that cannot be moved off removed brokers")

    def _fix_racks(self) -> None:
        """Give every partition a rack spread no worse than ``_cap`` allows."""
        if not self.rack_aware:
            return
        rack = self.rack
        counter: dict[str, int] = {}
        for pi, rs in enumerate(self.reps):
            cap = self._cap(len(rs))
            if cap >= len(rs):
                continue
            per: dict[int, int] = {}
            for r in rs:
                per[rack[r]] = per.get(rack[r], 0) + 1
            if max(per.values()) <= cap:
                continue
            if self.reason[pi] != _DRAIN:
                self.reason[pi] = _RACK
            for rk in sorted(per):
                while per[rk] > cap:
                    # Move the replica on the most loaded broker of the crowded rack (never a fixed one).
                    choices = [(-self._score(r), -j, r) for j, r in enumerate(rs) if rack[r] == rk and self.stay[r]]
                    if not choices:
                        break
                    s = min(choices)[2]
                    d = self._best_dest(pi, s, strict=True)
                    if d < 0:
                        p = self.parts[pi]
                        self._add_infeasible("rack", counter, (
                            f"cannot spread {_part_name(p)} ({format_bytes(self.size[pi])}) over racks: no broker "
                            f"in another rack can take it under the {self._threshold_text()} capacity threshold"))
                        break
                    self._apply(pi, s, d)
                    per[rk] -= 1
                    per[rack[d]] = per.get(rack[d], 0) + 1
        self._summarise("rack", counter, "partitions that cannot be spread over racks")

    def _fix_capacity(self) -> None:
        """Bring every broker above its capacity limit back under it, moving as few bytes as it can: the
        partition nearest in size to the excess first."""
        counter: dict[str, int] = {}
        for b in self.stay_list:
            while self.byt[b] > self.caplim[b]:
                excess = self.byt[b] - self.caplim[b]
                moved = False
                for sz, pi in _near(self.hosted[b], excess, 4 * _NEAR):
                    if sz == 0:
                        continue
                    d = self._best_dest(pi, b, strict=False)
                    if d >= 0:
                        if self.reason[pi] == _BALANCE:
                            self.reason[pi] = _CAPACITY
                        self._apply(pi, b, d)
                        moved = True
                        break
                if not moved:
                    self._add_infeasible("capacity", counter, (
                        f"broker {self.ids[b]} holds {format_bytes(self.byt[b])}, above the "
                        f"{self._threshold_text()} capacity threshold ({format_bytes(self.caplim[b])}), and no "
                        "other broker can take enough of its replicas"))
                    break
        self._summarise("capacity", counter, "brokers above the capacity threshold")

    # -- balance ----------------------------------------------------------------------------------------------
    def _balance(self) -> None:
        """Move replicas for the worst broker until every broker is in band or nothing more can be done."""
        if self.n_stay < 2:
            return
        viol = self._viol
        cnt, byt, ver = self.cnt, self.byt, self.ver
        heap = [(-v, b, ver[b]) for b in self.stay_list if (v := viol(b, cnt[b], byt[b])) > _EPS]
        heapq.heapify(heap)
        budget = 4 * sum(len(rs) for rs in self.reps) + 1000
        sweeps = _MAX_SWEEPS
        while budget > 0 and sweeps > 0:
            sweeps -= 1
            while heap and budget > 0:
                _, b, v0 = heapq.heappop(heap)
                if v0 != ver[b]:
                    continue
                moved = self._drive(b, wide=False)
                if moved is not None:
                    budget -= 1
                    for x in moved:
                        v = viol(x, cnt[x], byt[x])
                        if v > _EPS:
                            heapq.heappush(heap, (-v, x, ver[x]))
            # Every broker still out of band tries every other broker once; stop when none of them moves.
            progressed = False
            stuck = sorted((-v, b) for b in self.stay_list if (v := viol(b, cnt[b], byt[b])) > _EPS)
            for _, b in stuck:
                if budget <= 0:
                    break
                if viol(b, cnt[b], byt[b]) <= _EPS:
                    continue
                moved = self._drive(b, wide=True)
                if moved is not None:
                    budget -= 1
                    progressed = True
                    for x in moved:
                        v = viol(x, cnt[x], byt[x])
                        if v > _EPS:
                            heapq.heappush(heap, (-v, x, ver[x]))
            if not progressed:
                break

    def _drive(self, b: int, wide: bool) -> tuple[int, int] | None:
        """One move (or swap) that reduces broker ``b``'s violation without adding to another's -- failing that,
        one that evens ``b`` out with another broker (``_try``'s ``level``); returns the two brokers.

        Counterparts: the most loaded brokers to take from, or the least loaded to give to -- first of ``b``'s
        own rack (a move inside a rack never breaks rack awareness), then of all brokers, ``_TOP`` of each;
        ``wide``: every broker, for the final sweep."""
        c, y = self.cnt[b], self.byt[b]
        hi_c, lo_c, hi_b, lo_b = self.hi_c[b], self.lo_c[b], self.hi_b[b], self.lo_b[b]
        over_c = (c - hi_c) * self.ic if c > hi_c else 0.0
        under_c = (lo_c - c) * self.ic if c < lo_c else 0.0
        over_b = (y - hi_b) * self.ib if y > hi_b else 0.0
        under_b = (lo_b - y) * self.ib if y < lo_b else 0.0
        attempts: list[tuple[bool, float]] = []  # (shed?, wanted size)
        if over_c + over_b > _EPS:
            if over_c > 0 and over_b > 0:
                t = (y - hi_b) / (c - hi_c)
            elif over_c > 0:
                t = 0.0
            else:
                t = y - hi_b
            attempts.append((True, t))
        if under_c + under_b > _EPS:
            if under_c > 0 and under_b > 0:
                t = (lo_b - y) / (lo_c - c)
            elif under_c > 0:
                t = 0.0
            else:
                t = lo_b - y
            attempts.append((False, t))
        if len(attempts) == 2 and under_c + under_b > over_c + over_b:
            attempts.reverse()
        for shed, t in attempts:
            tried: list[int] = []
            if wide:
                scored = sorted((self._score(x), x) for x in self.stay_list)
                for other in [x for _, x in (scored if shed else sorted(scored, key=lambda e: (-e[0], e[1])))]:
                    if other != b:
                        tried.append(other)
                        if self._try(b, other, t, shed):
                            return b, other
            else:
                heaps, sign = (self.dst, 1.0) if shed else (self.src, -1.0)
                for k in ((self.rack[b], -1) if self.rack_aware else (-1,)):
                    heap = heaps[k]
                    taken: list[tuple[float, int]] = []
                    found = False
                    n_tried = 0
                    while heap and n_tried < _TOP:
                        e = self._pop(heap, sign)
                        other = e[1]
                        taken.append(e)
                        if other == b or other in tried:
                            continue
                        n_tried += 1
                        tried.append(other)
                        if self._try(b, other, t, shed):
                            found = True
                            break
                    for e in taken:  # the moved pair's entries are stale now: re-keyed when popped
                        heapq.heappush(heap, e)
                    if found:
                        return b, tried[-1]
            # No single move helps (typically: the count is at its bound but the bytes are not): exchange a
            # large replica for a small one, which moves bytes and leaves both counts alone.
            need = (y - hi_b) if shed else (lo_b - y)
            if need > 0:
                for other in tried:
                    if self._swap(b, other, shed, need):
                        return b, other
            for other in tried:
                if self._try(b, other, t, shed, level=True):
                    return b, other
        return None

    def _try(self, b: int, other: int, t: float, shed: bool, level: bool = False) -> bool:
        """Move one replica between driver ``b`` and ``other`` (from ``b`` when ``shed``): the partition of the
        source whose size is nearest ``t`` (``_NEAR`` looked at) that the destination can take, that strictly
        improves the driver and does not make the other broker worse.

        ``level``: for a driver no such move helps (e.g. the brokers of a rack that rack awareness makes hold
        more than the mean can only give to each other), even the two out instead: the driver improves and the
        other may get worse, by less (the sum of their squared violations falls), so the worst broker ends as
        close to its band as the constraints allow."""
        s, d = (b, other) if shed else (other, b)
        cnt, byt, viol, reps = self.cnt, self.byt, self._viol, self.reps
        vs0 = viol(s, cnt[s], byt[s])
        vd0 = viol(d, cnt[d], byt[d])
        if level:
            # only towards a broker less far off than the driver
            v_drv, v_oth = (vs0, vd0) if shed else (vd0, vs0)
            if v_drv - v_oth <= _EPS:
                return False
            # the size that leaves both equally far from their bands
            if shed:
                t = min(t, max(0.0, (byt[s] - self.hi_b[s] - byt[d] + self.hi_b[d]) / 2))
            else:
                t = min(t, max(0.0, (self.lo_b[d] - byt[d] - self.lo_b[s] + byt[s]) / 2))
            before = vs0 * vs0 + vd0 * vd0
        room = self.caplim[d] - byt[d]
        cs, cd, ys, yd = cnt[s] - 1, cnt[d] + 1, byt[s], byt[d]
        rack_check = self.rack_aware and self.rack[s] != self.rack[d]
        lst = self.hosted[s]
        n = len(lst)
        hi = bisect_left(lst, (t,))
        lo = hi - 1
        touched = self.touched
        fallback = -1  # a valid partition that already moves; one of the same size that does not is better
        fallback_size = -1
        for _ in range(_NEAR):
            # the next entry nearest in size to t, outwards from it (the smaller on a tie)
            if hi < n and (lo < 0 or lst[hi][0] - t < t - lst[lo][0]):
                x, pi = lst[hi]
                hi += 1
            elif lo >= 0:
                x, pi = lst[lo]
                lo -= 1
            else:
                break
            if fallback >= 0 and x != fallback_size:
                break
            if x > room:
                continue
            vs1 = viol(s, cs, ys - x)
            vd1 = viol(d, cd, yd + x)
            if shed:
                if vs1 - vs0 >= -_EPS or (vd1 - vd0 > _EPS and not level):
                    continue
            elif vd1 - vd0 >= -_EPS or (vs1 - vs0 > _EPS and not level):
                continue
            if level and vs1 * vs1 + vd1 * vd1 >= before - _EPS:
                continue
            rs = reps[pi]
            if d in rs:
                continue
            if rack_check and not self._rack_ok(rs, s, d, strict=False):
                continue
            if touched[pi] and fallback < 0:
                # Equal sizes (e.g. empty partitions) would otherwise send all replicas of the same partitions
                # to the new brokers, leaving groups of brokers that share no partition (leaders cannot even out)
                fallback, fallback_size = pi, x
                continue
            self._apply(pi, s, d)
            return True
        if fallback >= 0:
            self._apply(fallback, s, d)
            return True
        return False

    def _swap(self, b: int, o: int, lose: bool, need: float) -> bool:
        """Exchange a replica of driver ``b`` with one of ``o`` so that ``b`` loses (``lose``) or gains bytes,
        about ``need``: the small side is the smallest replicas, the large side the one nearest ``need`` above."""
        big, small = (b, o) if lose else (o, b)
        cnt, byt, viol = self.cnt, self.byt, self._viol
        v_big0 = viol(big, cnt[big], byt[big])
        v_small0 = viol(small, cnt[small], byt[small])
        room = self.caplim[small] - byt[small]
        racks = self.rack_aware and self.rack[big] != self.rack[small]
        for y, py in _near(self.hosted[small], 0.0, 4):
            rs_y = self.reps[py]
            if big in rs_y or (racks and not self._rack_ok(rs_y, small, big, strict=False)):
                continue
            for x, px in _near(self.hosted[big], need + y, _NEAR, above=y):
                delta = x - y
                if delta <= 0 or px == py or delta > room:
                    continue
                d_big = viol(big, cnt[big], byt[big] - delta) - v_big0
                d_small = viol(small, cnt[small], byt[small] + delta) - v_small0
                d_drv, d_oth = (d_big, d_small) if lose else (d_small, d_big)
                if d_drv >= -_EPS or d_oth > _EPS:
                    continue
                rs_x = self.reps[px]
                if small in rs_x or (racks and not self._rack_ok(rs_x, big, small, strict=False)):
                    continue
                self._apply(px, big, small)
                self._apply(py, small, big)
                return True
        return False

    # -- leaders ----------------------------------------------------------------------------------------------
    def _balance_leaders(self) -> None:
        """Reorder replicas (no data copied) so that preferred leaders are within the band; partitions that move
        anyway are reordered first, so fewer partitions are touched only for their order."""
        stay, reps = self.stay, self.reps
        lead = [0] * len(self.ids)
        for rs in reps:
            if rs:
                lead[rs[0]] += 1
        total = sum(lead[b] for b in self.stay_list)
        mean = total / self.n_stay
        lo, hi = _count_band(mean, self.tol)
        touched = self.touched

        def order(pis: list[int]) -> list[int]:
            return sorted(pis, key=lambda pi: (not touched[pi], pi))

        for _ in range(50):
            changed = False
            led: list[list[int]] = [[] for _ in self.ids]
            for pi, rs in enumerate(reps):
                if rs and stay[rs[0]]:
                    led[rs[0]].append(pi)
            for b in sorted((b for b in self.stay_list if lead[b] > hi), key=lambda b: (-lead[b], b)):
                for pi in order(led[b]):
                    if lead[b] <= hi:
                        break
                    rs = reps[pi]
                    best = -1
                    for j in range(1, len(rs)):
                        r = rs[j]
                        if stay[r] and lead[r] + 1 < lead[b] and lead[r] < hi and (best < 0 or lead[r] < lead[rs[best]]):
                            best = j
                    if best > 0:
                        r = rs[best]
                        rs[0], rs[best] = r, b
                        touched[pi] = True
                        lead[b] -= 1
                        lead[r] += 1
                        changed = True
            for d in sorted((b for b in self.stay_list if lead[b] < lo), key=lambda b: (lead[b], b)):
                for pi in order([pi for _, pi in self.hosted[d]]):
                    if lead[d] >= lo:
                        break
                    rs = reps[pi]
                    first = rs[0]
                    if first == d or not stay[first] or lead[first] <= lo or lead[first] <= lead[d] + 1:
                        continue
                    j = rs.index(d)
                    rs[0], rs[j] = d, first
                    touched[pi] = True
                    lead[first] -= 1
                    lead[d] += 1
                    changed = True
            if not changed:
                break
        self._leader_paths(lead, lo, hi)
        off = [self.ids[b] for b in self.stay_list if not lo <= lead[b] <= hi]
        if off:
            self.notes.append(f"preferred leaders stay outside {lo}..{hi} on brokers {off[:10]}"
                              f"{' ...' if len(off) > 10 else ''}")

    def _leader_paths(self, lead: list[int], lo: int, hi: int) -> None:
        """What the direct hand-overs leave out of band, fixed along chains: broker x leads a partition that y
        also holds, y one that z holds, ... down to a broker with room (found breadth-first, so the chain is
        shortest); each partition on the chain passes its leadership one step, so only the ends change count.
        For a broker below the band the same, backwards from it to a broker that can spare a leader."""
        stay, reps = self.stay, self.reps
        led: list[list[int]] = [[] for _ in self.ids]
        for pi, rs in enumerate(reps):
            if rs and stay[rs[0]]:
                led[rs[0]].append(pi)

        def hand_over(pi: int, to: int) -> None:
            rs = reps[pi]
            frm = rs[0]
            j = rs.index(to)
            rs[0], rs[j] = to, frm
            self.touched[pi] = True
            led[frm].remove(pi)
            insort(led[to], pi)

        for _ in range(4 * self.n_stay):
            fixed = False
            for b in sorted((b for b in self.stay_list if lead[b] > hi), key=lambda b: (-lead[b], b)):
                prev: dict[int, tuple[int, int]] = {b: (-1, -1)}
                queue = deque([b])
                end = -1
                while queue and end < 0:
                    x = queue.popleft()
                    for pi in led[x]:
                        for y in reps[pi][1:]:
                            if stay[y] and y not in prev:
                                prev[y] = (x, pi)
                                if lead[y] < hi and lead[y] + 1 < lead[b]:
                                    end = y
                                    break
                                queue.append(y)
                        if end >= 0:
                            break
                if end >= 0:
                    y = end
                    while y != b:
                        x, pi = prev[y]
                        hand_over(pi, y)
                        y = x
                    lead[b] -= 1
                    lead[end] += 1
                    fixed = True
                    break
            if not fixed:
                for d in sorted((b for b in self.stay_list if lead[b] < lo), key=lambda b: (lead[b], b)):
                    nxt: dict[int, tuple[int, int]] = {d: (-1, -1)}
                    queue = deque([d])
                    start = -1
                    while queue and start < 0:
                        y = queue.popleft()
                        for _, pi in self.hosted[y]:
                            x = reps[pi][0]
                            if x != y and stay[x] and x not in nxt:
                                nxt[x] = (y, pi)
                                if lead[x] > lo and lead[x] > lead[d] + 1:
                                    start = x
                                    break
                                queue.append(x)
                    if start >= 0:
                        x = start
                        while x != d:
                            y, pi = nxt[x]
                            hand_over(pi, y)
                            x = y
                        lead[start] -= 1
                        lead[d] += 1
                        fixed = True
                        break
            if not fixed:
                return

    # -- result -----------------------------------------------------------------------------------------------
    def run(self) -> RebalancePlan:
        if not self.infeasible:
            self._check()
        if not self.infeasible:
            self._drain()
        if not self.infeasible:
            self._fix_racks()
        if not self.infeasible:
            self._fix_capacity()
        if self.infeasible:
            figures = assignment_figures(self.input_brokers, self.input_partitions, {}, self.goals)
            return RebalancePlan(figures=figures, infeasible=tuple(self.infeasible), notes=tuple(self.notes))
        self._balance()
        if self.goals.balance_leaders and self.n_stay > 1:
            self._balance_leaders()
        moves: list[tuple[int, Move]] = []
        ids = self.ids
        moved_bytes = 0
        firsts = Counter(rs[0] for rs in self.reps if rs)
        lead1 = {ids[b]: c for b, c in firsts.items()}
        for pi, p in enumerate(self.parts):
            if not self.touched[pi]:
                continue
            new = tuple(ids[r] for r in self.reps[pi])
            if new == p.replicas:
                continue
            move = Move(topic=p.topic, partition=p.partition, source=p.replicas, target=new, size_bytes=self.size[pi])
            added = sum(1 for r in new if r not in p.replicas)
            moved_bytes += added * move.size_bytes
            reason = self.reason[pi]
            if reason == _BALANCE and not added:
                reason = _LEADER
            moves.append((reason, move))
        after = ({ids[i]: c for i, c in enumerate(self.cnt)}, {ids[i]: y for i, y in enumerate(self.byt)}, lead1)
        figures = _figures(self.input_brokers, self.goals, len(moves), moved_bytes, self.before, after)
        self._note_balance(figures)
        return RebalancePlan(batches=_batches(moves, self.goals.max_moves_per_batch), figures=figures,
                             notes=tuple(self.notes))

    def _note_balance(self, figures: PlanFigures) -> None:
        """Say which balance goal the plan could not reach (partitions are indivisible; constraints)."""
        cnt, byt = self.cnt, self.byt
        pct = f"{self.tol * 100:g}%"
        off_c = [self.ids[b] for b in self.stay_list if not self.lo_c[b] <= cnt[b] <= self.hi_c[b]]
        if off_c:
            self.notes.append(f"replica counts stay more than {pct} off their target on brokers {off_c[:10]}"
                              f"{' ...' if len(off_c) > 10 else ''}")
        off_b = [self.ids[b] for b in self.stay_list if not self.lo_b[b] - 0.5 <= byt[b] <= self.hi_b[b] + 0.5]
        if off_b:
            self.notes.append(f"disk bytes stay more than {pct} off their target on brokers {off_b[:10]}"
                              f"{' ...' if len(off_b) > 10 else ''} (disk spread after: "
                              f"{figures.disk_after.max_deviation_percent:.1f}%)")

    def _rack_means(self, tot_c: int, tot_b: int) -> dict[int, tuple[float, float]]:
        """Replicas and bytes per broker that rack awareness lets each rack reach, for racks where that is not
        the cluster's mean (none when the racks are even).

        A rack must hold what the other racks cannot take (at most ``_cap`` replicas of a partition per rack,
        and one per broker) and can hold at most ``min(brokers, _cap)`` of each partition's replicas; between
        these floors and ceilings the load is spread in proportion to the racks' broker counts (water-filling).
        E.g. racks of 3, 3 and 2 brokers with RF-3 partitions: every rack holds one replica of every partition,
        so the 2-broker rack's brokers carry 3/2 of what the others do, and are balanced around that."""
        size: dict[int, int] = {}
        for b in self.stay_list:
            size[self.rack[b]] = size.get(self.rack[b], 0) + 1
        groups: dict[tuple[int, int], list[int]] = {}  # (replicas to place, RF) -> [partitions, bytes]
        for pi, rs in enumerate(self.reps):
            m = sum(1 for r in rs if not self.fixed[r])
            g = groups.setdefault((m, len(rs)), [0, 0])
            g[0] += 1
            g[1] += self.size[pi]
        floor_c = dict.fromkeys(size, 0)
        ceil_c = dict.fromkeys(size, 0)
        floor_b = dict.fromkeys(size, 0)
        ceil_b = dict.fromkeys(size, 0)
        for (m, rf), (count, nbytes) in groups.items():
            cap = self._cap(rf)
            room = sum(min(n, cap) for n in size.values())
            for r, n in size.items():
                least = max(0, m - (room - min(n, cap)))
                most = min(n, cap, m)
                floor_c[r] += count * least
                ceil_c[r] += count * most
                floor_b[r] += nbytes * least
                ceil_b[r] += nbytes * most
        share_c = _water_fill(size, floor_c, ceil_c, tot_c)
        share_b = _water_fill(size, floor_b, ceil_b, tot_b)
        n_stay = self.n_stay
        mean_c, mean_b = tot_c / n_stay, tot_b / n_stay
        out: dict[int, tuple[float, float]] = {}
        for r in sorted(size):
            m_c = share_c[r] / size[r]
            m_b = share_b[r] / size[r]
            if abs(m_c - mean_c) <= 1e-9 * max(1.0, mean_c) and abs(m_b - mean_b) <= 1e-9 * max(1.0, mean_b):
                continue
            out[r] = (m_c, m_b)
            if abs(m_c - mean_c) > self.tol * mean_c or abs(m_b - mean_b) > self.tol * mean_b:
                name = f"rack {self.rack_names[r]!r}" if r >= 0 else "a broker without a rack"
                self.notes.append(
                    f"rack awareness makes {name} ({size[r]} of {n_stay} brokers) hold "
                    f"{share_c[r] / tot_c * 100:.0f}% of the replicas: its brokers are balanced around {m_c:.0f} "
                    f"replicas and {format_bytes(m_b)} each, not the mean {mean_c:.0f} and {format_bytes(mean_b)}")
        return out


def _band(target: float, mean: float, tol: float) -> tuple[float, float]:
    """A broker's band: ``mean * (1 +- tol)``; for a rack that rack awareness gives another ``target`` per broker,
    the part of that band within ``tol`` of the target, or -- when the target lies outside the band -- the
    target's own ``+- tol``."""
    if mean * (1 - tol) <= target <= mean * (1 + tol):
        return max(target * (1 - tol), mean * (1 - tol)), min(target * (1 + tol), mean * (1 + tol))
    return target * (1 - tol), target * (1 + tol)


def _water_fill(size: dict[int, int], floor: dict[int, int], ceil: dict[int, int], total: int) -> dict[int, float]:
    """Split ``total`` over racks in proportion to their ``size`` (a common per-broker level), each share
    clamped to its [floor, ceil]: the level is found by bisection (the shares grow with it)."""
    def shares(level: float) -> dict[int, float]:
        return {r: min(max(level * n, floor[r]), ceil[r]) for r, n in size.items()}

    lo, hi = 0.0, max((ceil[r] / n for r, n in size.items()), default=0.0) + 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if sum(shares(mid).values()) < total:
            lo = mid
        else:
            hi = mid
    return shares(hi)


def _count_band(mean: float, tol: float) -> tuple[int, int]:
    """Whole counts within ``mean * (1 +- tol)``, widened to floor(mean)..ceil(mean) when the band holds no
    whole number on a side (e.g. mean 10.3 at 5 %): the counts must still add up to the total."""
    lo = min(math.ceil(mean * (1 - tol) - 1e-9), math.floor(mean + 1e-9))
    hi = max(math.floor(mean * (1 + tol) + 1e-9), math.ceil(mean - 1e-9))
    return lo, hi


def _near(lst: list[tuple[int, int]], t: float, k: int, above: float = -1.0) -> list[tuple[int, int]]:
    """Up to ``k`` entries of a list sorted by (size, partition), nearest in size to ``t`` first (the smaller
    one on a tie), only entries larger than ``above``."""
    n = len(lst)
    floor = bisect_left(lst, (above + 1,)) if above >= 0 else 0
    hi = max(bisect_left(lst, (t,)), floor)
    lo = hi - 1
    out: list[tuple[int, int]] = []
    while len(out) < k:
        if hi < n:
            if lo >= floor and t - lst[lo][0] <= lst[hi][0] - t:
                out.append(lst[lo])
                lo -= 1
            else:
                out.append(lst[hi])
                hi += 1
        elif lo >= floor:
            out.append(lst[lo])
            lo -= 1
        else:
            break
    return out


def _batches(moves: list[tuple[int, Move]], per_batch: int) -> tuple[tuple[Move, ...], ...]:
    """Order moves by reason (hard goals first), then small first; cut them into batches of at most
    ``per_batch``, each spreading its moves over destination brokers: a batch takes at most its fair share of
    moves per destination (batch size / destinations left) while other destinations still have moves."""
    per_batch = max(1, per_batch)
    out: list[tuple[Move, ...]] = []
    for reason in (_DRAIN, _RACK, _CAPACITY, _BALANCE, _LEADER):
        # (bytes, key, destination, move): a move's destination is its first added broker (the new leader for
        # a reorder)
        rows: list[tuple[int, TopicPartition, int, Move]] = []
        for r, m in moves:
            if r == reason:
                adding = m.adding
                rows.append((m.size_bytes * len(adding), m.key, adding[0] if adding else m.target[0], m))
        if not rows:
            continue
        rows.sort(key=lambda row: (row[0], row[1]))
        queues: dict[int, list[tuple[int, TopicPartition, int, Move]]] = {}
        for row in rows:
            queues.setdefault(row[2], []).append(row)
        heads = [(q[0][0], q[0][1], dest, 0) for dest, q in queues.items()]
        heapq.heapify(heads)
        while heads:
            limit = max(1, math.ceil(per_batch / len(heads)))
            batch: list[Move] = []
            taken: dict[int, int] = {}
            held: list[tuple[int, TopicPartition, int, int]] = []
            while heads and len(batch) < per_batch:
                head = heapq.heappop(heads)
                dest, i = head[2], head[3]
                if taken.get(dest, 0) >= limit:
                    held.append(head)
                    continue
                q = queues[dest]
                batch.append(q[i][3])
                taken[dest] = taken.get(dest, 0) + 1
                if i + 1 < len(q):
                    heapq.heappush(heads, (q[i + 1][0], q[i + 1][1], dest, i + 1))
            for h in held:
                heapq.heappush(heads, h)
            out.append(tuple(batch))
    return tuple(out)
