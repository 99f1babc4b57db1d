"""Chaos: SIGKILL the operator at ``--kills`` random moments during a rolling restart, restart it each time, and
check the roll's invariants (issue 5: "kill the operator process (SIGKILL) at 20 random moments during a
roll"). ``tests/e2e/test_roll_e2e.py`` does 20 too, in bursts at pods spread over the plan (about a minute);
this script spreads them more freely: each kill waits for the roll to move on by a few events first (pod
writes, or events in the roll workflow's history), or a random 5-20 s (a kill while Temporal is still waiting
out the previous one), so the kills hit different steps -- a restart in flight, the wait for Ready or for the
ISR, the gate check, the leader election, the delay between restarts, the recovery from the previous kill.

What a kill costs the roll: Temporal retries the activity the killed worker was running once its heartbeat
timeout expires (5 s for every roll activity), and a workflow task sent to the killed worker's sticky queue
within 10 s of its last poll waits out the worker's sticky schedule-to-start timeout (10 s) before another
worker takes it: ~10-15 s per kill that lands after the roll moved on. Expect a few minutes.

A 3-controller / 6-broker cluster with topic ``orders`` at RF 3 / min.insync.replicas 2 and producers writing
is rolled by an image change (``--seed`` replays a sequence of kill moments). Checked from devcluster's record
of pod writes and the Kafka model's ISR history:

1. each pod deleted exactly once (the uid-guarded restart across worker crashes), controllers before brokers;
2. never more than one broker (maxUnavailable) and one controller unavailable at once;
3. no partition below min.insync.replicas at any time, and none under-replicated at the end;
4. the cluster Ready with the roll reported Succeeded.

    .venv/bin/python bench/roll_chaos.py [--kills 20] [--seed N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollenv import roll_env, wait_until

from tests.e2e.rolls import (
    RollMonitor,
    kafka_cluster,
    min_isr_violations,
    once_each,
    pods_rolled,
    under_replicated,
)

console = Console(width=max(Console().width, 120))
NAME = "chaos"
SPEC = {"controllers": {"replicas": 3, "storage": {"size": "1Gi"}},
        "brokers": {"replicas": 6, "storage": {"size": "2Gi"}, "config": {"min.insync.replicas": "2"}}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800.0, help="for the whole roll, s")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    console.print(f"seed {seed}")
    with roll_env(prefix="roll-chaos-") as env:
        cluster_id = env.create_cluster(NAME, SPEC)
        env.topic_with_ingest(NAME, cluster_id, "orders", 12, "4MiB")
        timeline = env.timelines[NAME]
        old = env.uids(NAME)
        since = time.time()
        env.custom.patch_namespaced_custom_object("kafka.ballast.dev", "v1alpha1", "default", "kafkaclusters", NAME,
                                                  {"spec": {"image": "docker.io/apache/kafka:3.9.1"}})
        rolled = pods_rolled(env.core, env.apps, NAME, old)
        kills: list[tuple[float, int, list[str]]] = []  # (seconds into the roll, pods deleted, activities in flight)
        monitor = RollMonitor(env.custom, timeline, env.temporal.address)
        progress = monitor.progress  # pod events plus events in the roll workflow's history: anything it did
        seen = progress()
        while len(kills) < args.kills and not rolled():
            # Spread the kills over the roll: each waits until the roll moved on by 1-4 events (a pod event, an
            # activity or timer in the roll's history) since the last kill, or a random 5-20 s passed (a kill
            # while Temporal waits out the previous kill's lost activity), then a random 0-0.5 s more. Kills at
            # fixed short intervals would nearly all land in the stall the previous kill caused.
            target, deadline = seen + rng.randint(1, 4), time.monotonic() + rng.uniform(5.0, 20.0)
            wait_until(lambda t=target, d=deadline: progress() >= t or time.monotonic() > d or rolled(),
                       args.timeout, "roll progress", interval=0.1)
            time.sleep(rng.uniform(0.0, 0.5))
            if rolled():
                break
            in_flight = monitor.in_flight()
            env.kill_operator()
            kills.append((time.time() - since, len(timeline.deletions(since=since)), in_flight))
            env.start_operator()
            seen = progress()
            console.print(f"kill {len(kills)} at {kills[-1][0]:.1f} s ({kills[-1][1]} pods deleted so far, in flight: "
                          f"{', '.join(in_flight) or 'no activity'})")
        try:
            done = env.wait_rolled(NAME, old, args.timeout)
        except TimeoutError:
            console.print(env.operator_logs())
            raise
        deletions = timeline.deletions(since=since)
        counts = once_each(deletions)
        roles = ["controller" if "-controller-" in e.pod else "broker" for e in deletions]
        brokers = [p for p in old if "-broker-" in p]
        controllers = [p for p in old if "-controller-" in p]
        status = kafka_cluster(env.custom, NAME).get("status") or {}
        checks = {
            "each pod deleted exactly once": counts == Counter({p: 1 for p in old}),
            "controllers before brokers": roles == sorted(roles, key=lambda r: r != "controller"),
            "max brokers unavailable <= 1": timeline.max_unavailable(brokers, since=since) <= 1,
            "max controllers unavailable <= 1": timeline.max_unavailable(controllers, since=since) <= 1,
            "no ISR below min.insync.replicas": not min_isr_violations(env.dc, cluster_id, since=since),
            "no under-replicated partition": not under_replicated(env.core, NAME),
            "roll Succeeded": (status.get("lastOperation") or {}).get("result") == "Succeeded",
        }
        table = Table(title=f"Roll of 3 controllers + 6 brokers with {len(kills)} operator SIGKILLs (seed {seed})")
        table.add_column("check")
        table.add_column("result", justify="right")
        table.add_row("roll time", f"{done - since:.1f} s")
        table.add_row("kills (s into the roll)", ", ".join(f"{t:.0f}" for t, _, _ in kills))
        table.add_row("pod steps killed in", str(len({n for _, n, _ in kills})))
        table.add_row("pod deletions", ", ".join(f"{e.pod.removeprefix(NAME + '-')}" for e in deletions))
        for name, ok in checks.items():
            table.add_row(name, "yes" if ok else "[bold red]NO[/]")
        console.print(table)
        if not all(checks.values()):
            console.print(counts, status)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
