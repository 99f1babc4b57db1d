"""Rolling restart of a 9-broker cluster: total roll time against the floor the simulation imposes, and the
operator's overhead per broker (issue 5, "Performance"; target < 1 s per broker).

Everything is real: a Temporal dev server, devcluster with simulated KRaft pods (3 controllers, ``--brokers``
brokers, topic ``orders`` at RF 3 / min.insync.replicas 2 with producers writing ``--ingest``) and ``ballast
operator`` as its own process. Each run asks for a roll of every broker (the ``request_roll`` update, as
``ballast roll --brokers 0,...`` does) with ``rollPolicy.delayBetweenRestarts`` = ``--delay``.

Known simulated times: broker pods start ``--start-delay`` s after the kubelet gets them (devcluster kubelet
behaviour), a restarted broker is unfenced 0.5 s after registering, and catches up what it missed while down at
``--replication-rate`` (the simulated follower bandwidth). What each broker actually took is measured on the
simulation's side, not the operator's:

* *restart*: the pod's deletion (devcluster's store) -> the new pod Ready;
* *catch-up*: Ready -> back in the ISR of every partition it replicates (the Kafka model's ISR history);
* *floor* = sum over brokers of (deletion -> back in every ISR) + the configured delays between restarts:
  the roll time with an operator that reacted instantly;
* *total* = the request -> the last broker back in every ISR; *overhead* = total - floor, i.e. the time the
  operator added: planning before the first restart, and after each broker noticing it is back (polling),
  preferred-leader election, the next gate check and the restart call. Per broker = overhead / brokers.

The table shows each run and the median over runs (the runs roll the same cluster one after the other).

    .venv/bin/python bench/roll_bench.py [--runs 3] [--brokers 9] [--start-delay 1.0] [--delay 1s]
                                         [--ingest 20MiB] [--replication-rate 20MiB]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollenv import RollEnv, roll_env

from ballast.spec import parse_duration
from devcluster.cluster import DevClusterConfig
from devcluster.controllers.kubelet import Behavior, Kubelet
from devcluster.kafka.types import HistoryEvent
from tests.e2e.rolls import min_isr_violations, once_each

console = Console(width=max(Console().width, 130))
NAME = "bench"
TARGET_S = 1.0


@dataclass
class BrokerRoll:
    node: int
    deleted: float
    ready: float
    back: float  # back in the ISR of every partition it replicates

    @property
    def restart(self) -> float:
        return self.ready - self.deleted

    @property
    def catch_up(self) -> float:
        return self.back - self.ready


@dataclass
class Run:
    requested: float
    brokers: list[BrokerRoll]
    reported: float
    delay: float
    violations: int
    deletions_ok: bool
    gaps: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.brokers[-1].back - self.requested

    @property
    def floor(self) -> float:
        return sum(b.back - b.deleted for b in self.brokers) + self.delay * (len(self.brokers) - 1)

    @property
    def overhead(self) -> float:
        return self.total - self.floor

    @property
    def per_broker(self) -> float:
        return self.overhead / len(self.brokers)


def _back_in_isr(history: list[HistoryEvent], node: int, since: float) -> float:
    """When ``node`` was back in the ISR of every partition it replicates after leaving them at ``since``."""
    latest: dict[tuple[str, int], HistoryEvent] = {}
    left: dict[tuple[str, int], bool] = {}
    back: dict[tuple[str, int], float] = {}
    for e in history:
        if e.kind != "isr" or e.topic is None or e.partition is None:
            continue
        key = (e.topic, e.partition)
        latest[key] = e
        if e.time < since or node not in e.replicas:
            continue
        if node not in e.isr:
            left[key] = True
            back.pop(key, None)
        elif left.get(key) and key not in back:
            back[key] = e.time
    mine = [k for k, e in latest.items() if node in e.replicas]
    missing = [k for k in mine if left.get(k) and k not in back]
    if missing:
        raise RuntimeError(f"broker {node} not back in the ISR of {missing}")
    return max((back[k] for k in mine if k in back), default=since)


def _one_run(env: RollEnv, cluster_id: str, brokers: int, delay: float, timeout: float) -> Run:
    timeline = env.timelines[NAME]
    old = {p: u for p, u in env.uids(NAME).items() if "-broker-" in p}
    requested = time.time()
    env.request_roll(NAME, list(range(brokers)), "benchmark")
    reported = env.wait_rolled(NAME, old, timeout)
    deletions = timeline.deletions(since=requested)
    events = timeline.snapshot()
    history = env.dc.call(lambda c: c.kafka.model(cluster_id).history())
    rolled: list[BrokerRoll] = []
    for d in deletions:
        ready = next(e.t for e in events if e.pod == d.pod and e.what == "ready" and e.t > d.t and e.uid != d.uid)
        node = int(d.pod.rsplit("-", 1)[1])
        rolled.append(BrokerRoll(node, d.t, ready, _back_in_isr(history, node, d.t)))
    run = Run(requested, rolled, reported, delay, len(min_isr_violations(env.dc, cluster_id, since=requested)),
              once_each(deletions) == {p: 1 for p in old} and [e.pod for e in deletions] == [
                  e.pod for e in sorted(deletions, key=lambda x: x.t)])
    previous = requested
    for i, b in enumerate(rolled):
        run.gaps.append(b.deleted - previous - (delay if i else 0.0))
        previous = b.back
    return run


def _table(runs: list[Run], args: argparse.Namespace) -> Table:
    table = Table(title=f"Roll of {args.brokers} brokers (start delay {args.start_delay:g} s, delay between restarts "
                        f"{args.delay}, ingest {args.ingest}, replication {args.replication_rate}/s)")
    # restart / catch-up: medians over the brokers; gap: request -> first restart, then back in ISR -> next
    # restart (less the configured delay); done +: last broker back -> the roll reported done in status.
    for col in ("run", "total s", "floor s", "restart s", "catch-up s", "overhead s", "per broker s",
                "gap med/max s", "done + s", "minISR viol.", "once each"):
        table.add_column(col, justify="right")

    def row(label: str, r: list[Run]) -> list[str]:
        med = statistics.median
        return [label, f"{med(x.total for x in r):.2f}", f"{med(x.floor for x in r):.2f}",
                f"{med(statistics.median(b.restart for b in x.brokers) for x in r):.2f}",
                f"{med(statistics.median(b.catch_up for b in x.brokers) for x in r):.2f}",
                f"{med(x.overhead for x in r):.2f}", f"{med(x.per_broker for x in r):.2f}",
                f"{med(statistics.median(x.gaps) for x in r):.2f}/{med(max(x.gaps) for x in r):.2f}",
                f"{med(x.reported - x.brokers[-1].back for x in r):.2f}",
                str(sum(x.violations for x in r)), "yes" if all(x.deletions_ok for x in r) else "NO"]

    for i, run in enumerate(runs, 1):
        table.add_row(*row(str(i), [run]))
    table.add_row(*row("median", runs), style="bold")
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--brokers", type=int, default=9)
    parser.add_argument("--start-delay", type=float, default=1.0, help="kubelet start delay of broker pods, s")
    parser.add_argument("--delay", default="1s", help="rollPolicy.delayBetweenRestarts")
    parser.add_argument("--ingest", default="20MiB", help="producers' rate into topic orders, per second")
    parser.add_argument("--replication-rate", default="20MiB", help="a follower broker's catch-up bandwidth /s")
    parser.add_argument("--timeout", type=float, default=600.0, help="per roll, s")
    args = parser.parse_args()
    delay = parse_duration(args.delay).total_seconds()
    spec = {"controllers": {"replicas": 3, "storage": {"size": "1Gi"}},
            "brokers": {"replicas": args.brokers, "storage": {"size": "20Gi"},
                        "config": {"min.insync.replicas": "2"}},
            "rollPolicy": {"delayBetweenRestarts": args.delay}}
    runs: list[Run] = []
    with roll_env(DevClusterConfig(), prefix="roll-bench-") as env:
        env.dc.call(lambda c: Kubelet.of(c).set_behavior(
            f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=broker",
            Behavior.slow(start_delay=args.start_delay, ready_delay=0.0)))
        console.print(f"provisioning {NAME}: 3 controllers, {args.brokers} brokers ...")
        cluster_id = env.create_cluster(NAME, spec)
        env.topic_with_ingest(NAME, cluster_id, "orders", 4 * args.brokers, args.ingest)
        env.dc.call(lambda c: c.kafka.control("replication-rate", cluster=cluster_id,
                                              bytes_per_sec=args.replication_rate))
        for i in range(args.runs):
            try:
                run = _one_run(env, cluster_id, args.brokers, delay, args.timeout)
            except Exception:
                console.print(env.operator_logs())
                raise
            runs.append(run)
            console.print(f"run {i + 1}: total {run.total:.1f} s, floor {run.floor:.1f} s, overhead "
                          f"{run.per_broker:.2f} s per broker")
    console.print(_table(runs, args))
    per_broker = statistics.median(r.per_broker for r in runs)
    verdict = "meets" if per_broker < TARGET_S else "MISSES"
    console.print(f"operator overhead {per_broker:.2f} s per broker (median of {len(runs)} runs): {verdict} the "
                  f"target of < {TARGET_S:g} s")
    return 0 if all(r.deletions_ok and not r.violations for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

