"""``ballast roll <cluster>``: ask a cluster's workflow for a rolling restart (the ``request_roll`` update).

The same as ``temporal workflow update execute --workflow-id kafkacluster/<ns>/<name> --name request_roll
--input '{"reason": "...", "brokers": [1, 2]}'``, with the operator's Temporal settings (``TEMPORAL_*``
environment, or the flags). The update returns once the workflow accepted the request (the roll itself runs
on; follow it with ``kubectl get kc`` or the ``plan`` query). A request while a roll runs is merged into it.
Exit status: 0 accepted, 1 rejected or no such cluster workflow, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, NoReturn

from ballast.config import OperatorSettings
from ballast.messages import UPDATE_REQUEST_ROLL, RollRequest, RollRequestAccepted, cluster_workflow_id


def broker_ids(value: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]`` (argparse type): distinct node ids >= 0, in the order given."""
    ids: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit():
            raise argparse.ArgumentTypeError(f"{value!r}: expected comma-separated broker ids, e.g. 1,2")
        if int(part) not in ids:
            ids.append(int(part))
    return ids


def add_roll_command(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     add_temporal_flags: Any) -> None:
    p = sub.add_parser("roll", help="rolling restart of a KafkaCluster (controllers, then brokers), one pod at "
                                    "a time and health-gated, through its cluster workflow")
    p.add_argument("cluster", help="KafkaCluster name")
    p.add_argument("-n", "--namespace", default="default", help="namespace of the KafkaCluster (default: default)")
    p.add_argument("--brokers", type=broker_ids, default=None,
                   help="comma-separated broker ids to restart (default: every pod of the cluster)")
    p.add_argument("--reason", default="", help="why (shown in status, Events and the workflow)")
    add_temporal_flags(p)


async def request_roll(settings: OperatorSettings, namespace: str, name: str,
                       request: RollRequest) -> RollRequestAccepted:
    """Execute the ``request_roll`` update on the cluster's workflow; returns what the workflow answered."""
    from ballast.operator import connect_temporal

    temporal = await connect_temporal(settings)
    handle = temporal.get_workflow_handle(cluster_workflow_id(namespace, name))
    accepted: RollRequestAccepted = await handle.execute_update(UPDATE_REQUEST_ROLL, request,
                                                                result_type=RollRequestAccepted)
    return accepted


def run_roll(args: argparse.Namespace, settings: OperatorSettings) -> int:
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    workflow_id = cluster_workflow_id(args.namespace, args.cluster)
    request = RollRequest(reason=args.reason, brokers=args.brokers)
    try:
        result = asyncio.run(request_roll(settings, args.namespace, args.cluster, request))
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        print(f"ballast roll: {workflow_id} rejected the request: {getattr(cause, 'message', None) or cause}",
              file=sys.stderr)
        return 1
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            print(f"ballast roll: no running workflow {workflow_id} (is the operator running, and does "
                  f"KafkaCluster {args.namespace}/{args.cluster} exist?)", file=sys.stderr)
            return 1
        print(f"ballast roll: {workflow_id}: {err.status.name if err.status else 'error'}: {err.message}",
              file=sys.stderr)
        return 1
    except RuntimeError as err:  # the client could not connect (message names the address and the reason)
        print(f"ballast roll: {settings.temporal_address}: {err}", file=sys.stderr)
        return 1
    if not result.accepted:
        print(f"ballast roll: {workflow_id} declined the request: {result.message}", file=sys.stderr)
        return 1
    merged = f", merged into {result.merged_into}" if result.merged_into else ""
    message = f": {result.message}" if result.message else ""
    print(f"roll requested on {workflow_id}{merged}{message}")
    return 0


def main_roll(args: argparse.Namespace, settings: OperatorSettings) -> NoReturn:
    """``run_roll`` as a command: exits the process with its status without interpreter teardown.

    temporalio's Rust client threads can outlive the event loop; a short-lived process that exits normally
    right after a client call may abort in CPython finalization ("PyGILState_Release: thread state ... must
    be current", temporalio/sdk-python#300). Nothing needs tearing down here, so skip it.
    """
    code = run_roll(args, settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
