"""An executed rebalance against its floor: scale-out 3 -> 6 brokers with a known data size and replication throttle
(issue 6, "Performance"; target: wall time <= 1.10 x the floor).

Everything is real: a Temporal dev server, devcluster with simulated KRaft pods and ``ballast operator`` as its own
process. Each run creates a cluster (1 controller, 3 brokers) with three topics (12 partitions each at RF 3, their
partitions filled at once to sizes 4:2:1 adding up to ``--data``), optionally producers writing ``--ingest`` per
topic, then sets ``brokers.replicas: 6`` with ``rebalance.throttleBytesPerSec = --throttle``: the operator grows
the StatefulSet, waits for the new brokers and moves replicas onto them (``RebalanceWorkflow``).

The floor: replication throttles apply per broker -- a destination broker receives its new replicas at most at
``follower.replication.throttled.rate``, a leader sends to the new replicas of the partitions it leads at most at
``leader.replication.throttled.rate``, both set to the throttle, and devcluster's simulated replication honours both
(max-min fair sharing of each broker's throttle among its copies). So no executor can finish before
``max(max over destinations of bytes received, max over leaders of bytes sent) / throttle``; the bytes are what
Kafka reports, not what the plan said: each added replica's log size on its new broker (DescribeLogDirs, after the
run) and the leader it copied from (the Kafka model's history). Measured, per run:

* *rebalance*: the ``RebalanceWorkflow``'s run, start to close as the Temporal server recorded them -- planning
  (which waits until the new brokers are registered), throttles, every batch, leader election, clearing the
  throttles, the Events; *ratio* = rebalance / floor;
* *copying*: the first reassignment started -> the last completed (the Kafka model's history): the data movement
  itself, against the same floor;
* *scale-out*: the spec change -> ``status.rebalance`` Succeeded and the cluster Ready (pods starting, the new
  brokers registering, status reporting included).

The table shows each run and the median over runs; each run uses a fresh cluster in the same environment.

    .venv/bin/python bench/rebalance_bench.py [--runs 3] [--data 1280MiB] [--throttle 32MiB] [--ingest 0]
                                              [--batch 20] [--replication-rate 100MiB]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from temporalio.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollenv import RollEnv, roll_env

from devcluster.kafka.control import parse_bytes
from devcluster.kafka.types import HistoryEvent
from tests.e2e.rebalances import (
    Key,
    MiB,
    cluster_spec,
    create_topics,
    fill,
    history,
    ingest,
    loads,
    min_isr_violations,
    patch_cluster,
    rebalance_done,
    sim_now,
    started_moves,
    throttles_left,
)
from tests.e2e.rolls import kafka_admin_of, kafka_control

console = Console(width=max(Console().width, 170))
TARGET = 1.10
TOPICS = {"orders": 4, "payments": 2, "audit": 1}  # relative partition sizes
PARTITIONS = 12


@dataclass
class Run:
    moved: int  # bytes the new replicas hold after the run
    moves: int
    batches: int
    received: dict[int, int]  # destination broker -> bytes
    sent: dict[int, int]  # leader it copied from -> bytes
    throttle: int
    rebalance: float
    copying: float
    scale_out: float
    lower_bound: int
    disk_spread: float
    violations: int
    throttles_left: int
    repeated: int  # moves started more than once

    @property
    def floor_in(self) -> float:
        return max(self.received.values()) / self.throttle

    @property
    def floor_out(self) -> float:
        return max(self.sent.values()) / self.throttle

    @property
    def floor(self) -> float:
        return max(self.floor_in, self.floor_out)

    @property
    def ratio(self) -> float:
        return self.rebalance / self.floor

    @property
    def ratio_in(self) -> float:
        """Against the destinations' side alone (what a plan whose copies left every leader within the
        busiest destination's load could reach)."""
        return self.rebalance / self.floor_in

    @property
    def ok(self) -> bool:
        return not (self.violations or self.throttles_left or self.repeated)


def _workflow_times(env: RollEnv, workflow_id: str) -> tuple[float, float | None]:
    """When the workflow started and closed (epoch seconds, as the Temporal server recorded them; close None while
    it runs)."""

    async def describe() -> tuple[float, float | None]:
        temporal = await Client.connect(env.temporal.address)
        described = await temporal.get_workflow_handle(workflow_id).describe()
        closed = described.close_time.timestamp() if described.close_time else None
        return described.start_time.timestamp(), closed

    return asyncio.run(describe())


def _leaders_at_moves(events: list[HistoryEvent], before: dict[Key, int]) -> dict[tuple[Key, int], int]:
    """(partition, added broker) -> the partition's leader when that reassignment started."""
    leader = dict(before)
    out: dict[tuple[Key, int], int] = {}
    for e in events:
        if e.topic is None or e.partition is None:
            continue
        key = (e.topic, e.partition)
        if e.kind == "isr" and e.leader is not None:
            leader[key] = e.leader
        elif e.kind == "reassignment_started":
            for broker in e.adding:
                out[(key, broker)] = leader.get(key, -1)
    return out


def _one_run(env: RollEnv, index: int, args: argparse.Namespace) -> Run:
    name = f"bench-{index}"
    throttle = int(parse_bytes(args.throttle))
    spec = cluster_spec(3, storage="20Gi", throttle=throttle, maxMovesPerBatch=args.batch)
    cluster_id = env.create_cluster(name, spec)
    data = parse_bytes(args.data)
    unit = data / (PARTITIONS * sum(TOPICS.values()))
    create_topics(env.core, name, {t: (PARTITIONS, 3) for t in TOPICS})
    fill(env.dc, cluster_id, {(t, p): int(unit * w) for t, w in TOPICS.items() for p in range(PARTITIONS)})
    if parse_bytes(args.ingest) > 0:
        ingest(env.dc, cluster_id, TOPICS, args.ingest)
    kafka_control(env.dc, cluster_id, "replication-rate", bytes_per_sec=args.replication_rate)
    before = loads(env.core, name)
    with kafka_admin_of(env.core, name) as admin:
        leaders = {(t["name"], int(p["partition_index"])): int(p["leader_id"]) for t in admin.describe_topics()
                   for p in t["partitions"]}

    since = sim_now(env.dc, cluster_id)
    requested = time.time()
    patch_cluster(env.custom, name, {"spec": {"brokers": {"replicas": 6}}})
    deadline = time.monotonic() + args.timeout
    while not (done := rebalance_done(env.custom, name, f"rebalance/default/{name}/")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the scale-out of {name} did not finish within {args.timeout:.0f}s")
        time.sleep(0.05)
    scale_out = time.time() - requested
    if done["state"] != "Succeeded":
        raise RuntimeError(f"the rebalance of {name} ended {done['state']}: {done.get('message')}")
    started, closed = _workflow_times(env, done["workflowId"])
    assert closed is not None

    events = history(env.dc, cluster_id, since)
    moving = [e.time for e in events if e.kind in ("reassignment_started", "reassignment_completed")]
    after = loads(env.core, name)
    with kafka_admin_of(env.core, name) as admin:
        sizes = {(int(a["broker"]), t["name"], int(p["partition_index"])): int(p["partition_size"])
                 for a in admin.describe_log_dirs() for d in a["log_dirs"] for t in d["topics"]
                 for p in t["partitions"]}
    received: dict[int, int] = {}
    sent: dict[int, int] = {}
    for ((topic, partition), broker), leader in _leaders_at_moves(events, leaders).items():
        size = sizes.get((broker, topic, partition), 0)
        received[broker] = received.get(broker, 0) + size
        sent[leader] = sent.get(leader, 0) + size
    moves = started_moves(events)
    run = Run(moved=sum(received.values()), moves=len(moves), batches=int(done.get("batchesDone") or 0),
              received=received, sent=sent, throttle=throttle, rebalance=closed - started,
              copying=max(moving) - min(moving), scale_out=scale_out,
              lower_bound=int(done.get("lowerBoundBytes") or 0), disk_spread=after.spread("bytes"),
              violations=len(min_isr_violations(events)), throttles_left=len(throttles_left(env.core, name)),
              repeated=sum(1 for n in moves.values() if n > 1))
    console.print(f"run {index}: {run.moved / MiB:.0f} MiB in {run.moves} moves, floor {run.floor:.1f} s, rebalance "
                  f"{run.rebalance:.1f} s ({run.ratio:.3f}x), copying {run.copying:.1f} s; disk spread "
                  f"{before.spread('bytes'):.0f}% -> {run.disk_spread:.1f}% over {len(after.bytes)} brokers")
    env.custom.delete_namespaced_custom_object("kafka.ballast.dev", "v1alpha1", "default", "kafkaclusters", name)
    return run


def _table(runs: list[Run], args: argparse.Namespace) -> Table:
    table = Table(title=f"Scale-out 3 -> 6 brokers: {args.data} of partition data (RF 3), throttle {args.throttle}/s "
                        f"per broker, ingest {args.ingest}/s per topic, maxMovesPerBatch {args.batch}")
    for col in ("run", "moved MiB", "moves", "batches", "moved / LB", "floor in/out s", "floor s",
                "copying s", "rebalance s", "ratio", "ratio (in)", "scale-out s", "disk spread", "minISR viol.",
                "clean"):
        table.add_column(col, justify="right")

    def row(label: str, r: list[Run]) -> list[str]:
        med = statistics.median
        return [label, f"{med(x.moved for x in r) / MiB:.0f}", f"{med(x.moves for x in r):.0f}",
                f"{med(x.batches for x in r):.0f}",
                f"{med(x.moved / x.lower_bound for x in r if x.lower_bound) if any(x.lower_bound for x in r) else 0:.3f}",
                f"{med(x.floor_in for x in r):.1f}/{med(x.floor_out for x in r):.1f}",
                f"{med(x.floor for x in r):.2f}", f"{med(x.copying for x in r):.2f}",
                f"{med(x.rebalance for x in r):.2f}", f"{med(x.ratio for x in r):.3f}", f"{med(x.ratio_in for x in r):.3f}",
                f"{med(x.scale_out for x in r):.2f}", f"{med(x.disk_spread for x in r):.1f}%",
                str(sum(x.violations for x in r)), "yes" if all(x.ok for x in r) else "NO"]

    for i, run in enumerate(runs, 1):
        table.add_row(*row(str(i), [run]))
    table.add_row(*row("median", runs), style="bold")
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", default="1280MiB", help="partition data before the scale-out (x RF 3 on disk)")
    parser.add_argument("--throttle", default="32MiB", help="rebalance.throttleBytesPerSec, per broker")
    parser.add_argument("--ingest", default="0", help="producers' rate per topic, per second")
    parser.add_argument("--batch", type=int, default=20, help="rebalance.maxMovesPerBatch")
    parser.add_argument("--replication-rate", default="100MiB", help="a follower broker's unthrottled bandwidth /s")
    parser.add_argument("--timeout", type=float, default=600.0, help="per scale-out, s")
    args = parser.parse_args()
    runs: list[Run] = []
    with roll_env(prefix="rebalance-bench-") as env:
        for i in range(1, args.runs + 1):
            try:
                runs.append(_one_run(env, i, args))
            except Exception:
                console.print(env.operator_logs())
                raise
    console.print(_table(runs, args))
    ratio = statistics.median(r.ratio for r in runs)
    verdict = "meets" if ratio <= TARGET else "MISSES"
    console.print(f"rebalance wall time {ratio:.3f}x the floor (median of {len(runs)} runs): {verdict} the target of "
                  f"<= {TARGET:.2f}x; {statistics.median(r.ratio_in for r in runs):.3f}x the destinations' side alone "
                  f"(the leaders the plan copies from sent up to {statistics.median(r.floor_out / r.floor_in for r in runs):.2f}x "
                  "what the busiest destination received)")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
