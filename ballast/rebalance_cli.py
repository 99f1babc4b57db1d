"""``ballast rebalance``: ask for, inspect, approve or cancel a cluster's rebalance through its workflow.

    ballast rebalance demo                # plan and run a rebalance now (request_rebalance update)
    ballast rebalance plan demo           # the running or waiting plan: figures and per-broker load
    ballast rebalance approve demo        # approve the plan waiting for approval (rebalance.mode: approval)
    ballast rebalance cancel demo         # cancel it (in-flight moves go back, throttles are cleared)

The same as the Temporal CLI (``temporal workflow update execute --workflow-id kafkacluster/<ns>/<name> --name
request_rebalance``, ``... --name approve_rebalance``, ``temporal workflow query --workflow-id
rebalance/<ns>/<name>/<n> --type plan``), with the operator's Temporal settings (``TEMPORAL_*`` environment or
the flags). Exit status: 0 done, 1 rejected / nothing to show / no such workflow, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, NoReturn

from ballast.config import OperatorSettings
from ballast.messages import (
    QUERY_REBALANCE,
    REBALANCE_QUERY_PLAN,
    UPDATE_APPROVE_REBALANCE,
    UPDATE_CANCEL_OPERATION,
    UPDATE_REQUEST_REBALANCE,
    ApproveRequest,
    CancelRequest,
    RebalanceAccepted,
    RebalanceProgress,
    RebalanceRequest,
    cluster_workflow_id,
)
from ballast.units import format_bytes

ACTIONS = ("run", "plan", "approve", "cancel")


def add_rebalance_command(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                          add_temporal_flags: Any) -> None:
    p = sub.add_parser("rebalance", help="rebalance a KafkaCluster's replicas now, or show / approve / cancel "
                                         "its rebalance plan")
    p.add_argument("words", nargs="+", metavar="ACTION_OR_CLUSTER",
                   help="[ACTION] CLUSTER: ACTION is run (default), plan, approve or cancel; CLUSTER the "
                        "KafkaCluster name")
    p.add_argument("-n", "--namespace", default="default", help="namespace of the KafkaCluster (default: default)")
    p.add_argument("--reason", default="", help="why (shown in status, Events and the workflow)")
    add_temporal_flags(p)


def parse_words(words: list[str]) -> tuple[str, str]:
    """``["demo"]`` -> ``("run", "demo")``; ``["plan", "demo"]`` -> ``("plan", "demo")``."""
    if len(words) == 1:
        return "run", words[0]
    if len(words) == 2 and words[0] in ACTIONS:
        return words[0], words[1]
    raise ValueError(f"expected [ACTION] CLUSTER with ACTION one of {', '.join(ACTIONS)}, got {' '.join(words)!r}")


async def _run(settings: OperatorSettings, action: str, namespace: str, name: str, reason: str) -> str:
    from ballast.operator import connect_temporal

    temporal = await connect_temporal(settings)
    handle = temporal.get_workflow_handle(cluster_workflow_id(namespace, name))
    if action == "run":
        accepted: RebalanceAccepted = await handle.execute_update(
            UPDATE_REQUEST_REBALANCE, RebalanceRequest(reason=reason or "ballast rebalance"),
            result_type=RebalanceAccepted)
        return f"rebalance requested on {handle.id}: {accepted.message}"
    if action == "approve":
        accepted = await handle.execute_update(UPDATE_APPROVE_REBALANCE, ApproveRequest(reason=reason),
                                               result_type=RebalanceAccepted)
        return f"{accepted.workflow_id}: {accepted.message}"
    if action == "cancel":
        await handle.execute_update(UPDATE_CANCEL_OPERATION, CancelRequest(reason=reason or "ballast rebalance cancel"))
        return f"cancel requested on {handle.id}"
    raw = await handle.query(QUERY_REBALANCE)
    if raw is None:
        raise LookupError(f"{handle.id}: no rebalance is running or waiting for approval")
    progress = RebalanceProgress.model_validate(raw)
    from activities.contracts import PlanRebalanceResult

    raw_plan = await temporal.get_workflow_handle(progress.workflow_id).query(REBALANCE_QUERY_PLAN)
    return render_plan(progress, PlanRebalanceResult.model_validate(raw_plan) if raw_plan else None)


def render_plan(progress: RebalanceProgress, plan: Any) -> str:
    """The plan as a person reads it: what it moves, how balanced it ends, the load per broker."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    out = StringIO()
    console = Console(file=out, width=110, force_terminal=False)
    console.print(f"{progress.workflow_id} ({progress.purpose}): {progress.state}"
                  + (f" -- {progress.reason}" if progress.reason else ""))
    if plan is None:
        console.print("no plan yet")
        return out.getvalue()
    console.print(f"{plan.moves} moves in {len(plan.batches)} batches; {format_bytes(plan.bytes_to_move)} to copy "
                  f"(lower bound {format_bytes(plan.lower_bound_bytes)}); {progress.batches_done} batches done, "
                  f"{format_bytes(progress.bytes_moved)} moved")
    console.print(f"disk spread {plan.disk_before.max_deviation_percent:.1f}% -> "
                  f"{plan.disk_after.max_deviation_percent:.1f}%, replica spread "
                  f"{plan.replicas_before.max_deviation_percent:.1f}% -> "
                  f"{plan.replicas_after.max_deviation_percent:.1f}%")
    if plan.infeasible:
        console.print("infeasible: " + "; ".join(plan.infeasible))
    table = Table("broker", "rack", "replicas", "disk", "leaders")
    for b in plan.brokers:
        table.add_row(str(b.id), b.rack or "-", f"{b.replicas_before} -> {b.replicas_after}",
                      f"{format_bytes(b.bytes_before)} -> {format_bytes(b.bytes_after)}",
                      f"{b.leaders_before} -> {b.leaders_after}")
    console.print(table)
    if progress.state == "AwaitingApproval":
        console.print("approve with: ballast rebalance approve <cluster>")
    return out.getvalue()


def run_rebalance(args: argparse.Namespace, settings: OperatorSettings) -> int:
    from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    try:
        action, name = parse_words(args.words)
    except ValueError as err:
        print(f"ballast rebalance: {err}", file=sys.stderr)
        return 2
    workflow_id = cluster_workflow_id(args.namespace, name)
    try:
        print(asyncio.run(_run(settings, action, args.namespace, name, args.reason)).rstrip())
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        print(f"ballast rebalance: {workflow_id} rejected it: {getattr(cause, 'message', None) or cause}",
              file=sys.stderr)
        return 1
    except (LookupError, WorkflowQueryFailedError) as err:
        print(f"ballast rebalance: {err}", file=sys.stderr)
        return 1
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            print(f"ballast rebalance: no running workflow {workflow_id} (is the operator running, and does "
                  f"KafkaCluster {args.namespace}/{name} exist?)", file=sys.stderr)
            return 1
        print(f"ballast rebalance: {workflow_id}: {err.status.name if err.status else 'error'}: {err.message}",
              file=sys.stderr)
        return 1
    except RuntimeError as err:
        print(f"ballast rebalance: {settings.temporal_address}: {err}", file=sys.stderr)
        return 1
    return 0


def main_rebalance(args: argparse.Namespace, settings: OperatorSettings) -> NoReturn:
    """``run_rebalance`` as a command, exiting without interpreter teardown (see ``ballast.roll_cli.main_roll``)."""
    code = run_rebalance(args, settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
