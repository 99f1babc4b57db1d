"""The rebalance planner's speed and the data it moves (issue 6, "Performance: bench/planner_bench.py").

(a) *Scale*: 100,000 partitions x RF 3 on 100 brokers in 3 racks, skewed: topic sizes follow a log-normal law
    (sigma 1.5: the biggest topics are hundreds of times the median), replicas are placed one per rack with a
    per-broker weight drawn log-normally (sigma 0.6: some brokers hold several times what others do) and the last
    10 brokers are new and empty. Plan time = wall time of ``plan_rebalance`` (median of ``--runs``); peak memory =
    the peak of Python allocations during one ``plan_rebalance`` call measured by ``tracemalloc`` (the input
    excluded; a separate run, as tracing slows Python down), with the process's peak RSS (``getrusage``) for
    context. Targets: < 5 s and < 1 GiB.

(b) *Scale-out* 12 -> 16 and 48 -> 64 brokers (no racks; 250 partitions per old broker x RF 3, log-normal topic
    sizes, placed by Kafka's own round-robin assignor on the old brokers, so counts start even and bytes do not):
    bytes moved / lower bound (target <= 1.10) with the replica and disk spread after (target within 5 %), for the
    planner and for the round-robin assignment ``kafka-reassign-partitions --generate`` proposes over all brokers
    (:mod:`ballast.rebalance.baseline`). Both ratios divide by the planner's lower bound: the least any plan
    reaching the 5 % band must move.

    .venv/bin/python bench/planner_bench.py [--runs 5] [--partitions 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ballast.rebalance.baseline import assign_topic, round_robin_plan
from ballast.rebalance.model import BrokerLoad, Goals, PartitionLoad, RebalancePlan
from ballast.rebalance.planner import format_bytes, plan_rebalance

console = Console(width=max(Console().width, 180))
MiB = 1 << 20
GiB = 1 << 30
TIME_TARGET = 5.0
MEMORY_TARGET = GiB
RATIO_TARGET = 1.10
SPREAD_TARGET = 5.0


def skewed_cluster(n_partitions: int, n_brokers: int = 100, racks: int = 3, empty: int = 10,
                   seed: int = 7) -> tuple[list[BrokerLoad], list[PartitionLoad]]:
    """Scenario (a): see the module docstring."""
    rng = random.Random(seed)
    brokers = [BrokerLoad(i, f"rack-{i % racks}", 0) for i in range(n_brokers)]
    used = [b for b in brokers if b.id < n_brokers - empty]
    weight = {b.id: rng.lognormvariate(0, 0.6) for b in used}
    per_rack = [[b.id for b in used if b.id % racks == r] for r in range(racks)]
    rack_weights = [[weight[i] for i in ids] for ids in per_rack]
    partitions: list[PartitionLoad] = []
    per_topic = 50
    for t in range(n_partitions // per_topic):
        base = rng.lognormvariate(18, 1.5)  # median ~64 MiB per partition
        for k in range(per_topic):
            first = rng.randrange(racks)
            replicas = tuple(rng.choices(per_rack[(first + j) % racks], rack_weights[(first + j) % racks])[0]
                             for j in range(3))
            size = int(base * rng.uniform(0.5, 1.5))
            partitions.append(PartitionLoad(f"topic-{t:05d}", k, replicas, size, replicas[0]))
    return brokers, partitions


def scale_out_cluster(old: int, new: int, seed: int = 7) -> tuple[list[BrokerLoad], list[PartitionLoad]]:
    """Scenario (b): ``old`` brokers holding everything, ``new`` empty ones added."""
    rng = random.Random(seed)
    brokers = [BrokerLoad(i) for i in range(old + new)]
    partitions: list[PartitionLoad] = []
    per_topic = 25
    for t in range(old * 250 // per_topic):
        base = rng.lognormvariate(20, 1.0)
        layout = assign_topic(brokers[:old], per_topic, 3, rng.randrange(old), rng.randrange(old))
        for k, replicas in enumerate(layout):
            partitions.append(PartitionLoad(f"topic-{t:04d}", k, replicas, int(base * rng.uniform(0.5, 1.5)),
                                            replicas[0]))
    return brokers, partitions


@dataclass
class Timed:
    plan: RebalancePlan
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(brokers: list[BrokerLoad], partitions: list[PartitionLoad], goals: Goals, runs: int) -> Timed:
    seconds: list[float] = []
    plan = RebalancePlan()
    for _ in range(runs):
        start = time.perf_counter()
        plan = plan_rebalance(brokers, partitions, goals)
        seconds.append(time.perf_counter() - start)
    return Timed(plan, seconds)


def peak_memory(brokers: list[BrokerLoad], partitions: list[PartitionLoad], goals: Goals) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    plan_rebalance(brokers, partitions, goals)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def verdict(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]MISSED[/red]"


def bench_scale(args: argparse.Namespace) -> bool:
    brokers, partitions = skewed_cluster(args.partitions, seed=args.seed)
    goals = Goals()
    result = timed(brokers, partitions, goals, args.runs)
    peak = peak_memory(brokers, partitions, goals)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    f = result.plan.figures
    table = Table(title=f"(a) plan {len(partitions):,} partitions x RF 3 on {len(brokers)} brokers, skewed "
                        f"(median of {args.runs} runs)")
    for col in ("measure", "value", "target", "value / target", ""):
        table.add_column(col, justify="right" if col not in ("measure", "") else "left")
    time_ok = result.median < TIME_TARGET
    mem_ok = peak < MEMORY_TARGET
    table.add_row("plan time (wall)", f"{result.median:.2f} s", f"{TIME_TARGET:.0f} s",
                  f"{result.median / TIME_TARGET:.2f}", verdict(time_ok))
    table.add_row("  runs", ", ".join(f"{s:.2f}" for s in result.seconds), "", "", "")
    table.add_row("peak memory (tracemalloc)", format_bytes(peak), "1 GiB", f"{peak / MEMORY_TARGET:.2f}",
                  verdict(mem_ok))
    table.add_row("  process peak RSS (getrusage)", format_bytes(rss), "", "", "")
    table.add_row("moves / batches", f"{f.moves:,} / {len(result.plan.batches):,}", "", "", "")
    table.add_row("bytes to move / lower bound", f"{format_bytes(f.bytes_to_move)} / "
                  f"{format_bytes(f.lower_bound_bytes)}", "", f"{f.bytes_to_move / max(1, f.lower_bound_bytes):.3f}",
                  "")
    table.add_row("replica spread before -> after", f"{f.replicas_before.max_deviation_percent:.1f} % -> "
                  f"{f.replicas_after.max_deviation_percent:.1f} %", "5 %", "", "")
    table.add_row("disk spread before -> after", f"{f.disk_before.max_deviation_percent:.1f} % -> "
                  f"{f.disk_after.max_deviation_percent:.1f} %", "5 %", "", "")
    table.add_row("leader spread before -> after", f"{f.leaders_before.max_deviation_percent:.1f} % -> "
                  f"{f.leaders_after.max_deviation_percent:.1f} %", "5 %", "", "")
    console.print(table)
    for note in result.plan.notes:
        console.print(f"  note: {note}")
    return time_ok and mem_ok and not result.plan.infeasible


def bench_scale_out(args: argparse.Namespace) -> bool:
    table = Table(title=f"(b) scale-out: bytes moved / lower bound and spreads before -> after (planner: median "
                        f"time of {args.runs} runs)")
    for col in ("brokers", "partitions", "plan", "moves", "bytes moved", "lower bound", "moved / bound",
                "replica spread", "disk spread", "leader spread", "time", ""):
        table.add_column(col, justify="left" if col in ("brokers", "plan", "") else "right", no_wrap=True)
    all_ok = True
    for old, new in ((12, 16), (48, 64)):
        brokers, partitions = scale_out_cluster(old, new - old, seed=args.seed)
        goals = Goals()
        planned = timed(brokers, partitions, goals, args.runs)
        start = time.perf_counter()
        naive = round_robin_plan(brokers, partitions, goals, seed=args.seed)
        naive_time = time.perf_counter() - start
        bound = planned.plan.figures.lower_bound_bytes
        for name, plan, seconds in (("planner", planned.plan, planned.median), ("round-robin", naive, naive_time)):
            f = plan.figures
            ratio = f.bytes_to_move / max(1, bound)
            ok = (ratio <= RATIO_TARGET and f.replicas_after.max_deviation_percent <= SPREAD_TARGET + 1e-9
                  and f.disk_after.max_deviation_percent <= SPREAD_TARGET + 1e-9)
            if name == "planner":
                all_ok = all_ok and ok
            first = name == "planner"
            table.add_row(f"{old} -> {new}" if first else "", f"{len(partitions):,}" if first else "", name,
                          f"{f.moves:,}", format_bytes(f.bytes_to_move), format_bytes(bound), f"{ratio:.3f}",
                          f"{f.replicas_before.max_deviation_percent:.0f} -> "
                          f"{f.replicas_after.max_deviation_percent:.1f} %",
                          f"{f.disk_before.max_deviation_percent:.0f} -> {f.disk_after.max_deviation_percent:.1f} %",
                          f"{f.leaders_before.max_deviation_percent:.0f} -> "
                          f"{f.leaders_after.max_deviation_percent:.1f} %", f"{seconds:.2f} s",
                          verdict(ok) if name == "planner" else "")
    console.print(table)
    console.print(f"  targets: planner moved / bound <= {RATIO_TARGET:.2f} with replica and disk spread after within "
                  f"{SPREAD_TARGET:.0f} % (spread = largest deviation of a broker from the mean; the bound is the "
                  "planner's: the least any plan reaching the 5 % band moves)")
    return all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="plans per measurement (the median is reported)")
    parser.add_argument("--partitions", type=int, default=100_000, help="partitions in scenario (a)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ok_a = bench_scale(args)
    ok_b = bench_scale_out(args)
    return 0 if ok_a and ok_b else 1


if __name__ == "__main__":
    sys.exit(main())
