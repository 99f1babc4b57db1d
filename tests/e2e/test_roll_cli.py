"""``ballast roll``, as a process, against the Temporal dev server: the update it sends, and its failures.

The workflow here is a stand-in that records ``request_roll`` updates, so the command line is checked on its
own; the end-to-end roll tests drive it against the real cluster workflow.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from ballast.devserver import DevServer
from ballast.messages import UPDATE_REQUEST_ROLL, RollRequest, RollRequestAccepted, cluster_workflow_id


@workflow.defn(name="RollRequestRecorder")
class RollRequestRecorder:
    def __init__(self) -> None:
        self.requests: list[RollRequest] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update(name=UPDATE_REQUEST_ROLL)
    def request_roll(self, request: RollRequest) -> RollRequestAccepted:
        self.requests.append(request)
        if request.reason == "decline me":
            return RollRequestAccepted(accepted=False, message="the cluster is being deleted")
        if len(self.requests) > 1:
            return RollRequestAccepted(merged_into="roll/team-a/x/1", message=f"request {len(self.requests)}")
        return RollRequestAccepted()

    @request_roll.validator
    def _validate(self, request: RollRequest) -> None:
        if request.brokers is not None and 99 in request.brokers:
            raise ValueError("brokers: 99 is not a broker of this cluster")

    @workflow.query(name="requests")
    def recorded(self) -> list[RollRequest]:
        return self.requests


async def _ballast(address: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "ballast"), "roll", *args, env={**os.environ, "TEMPORAL_ADDRESS": address},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_ballast_roll_sends_request_roll_to_the_cluster_workflow(temporal_server: DevServer) -> None:
    async def scenario() -> None:
        temporal = await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)
        queue = f"roll-cli-{uuid.uuid4().hex[:8]}"
        name = f"c{uuid.uuid4().hex[:6]}"
        async with Worker(temporal, task_queue=queue, workflows=[RollRequestRecorder]):
            handle = await temporal.start_workflow(RollRequestRecorder.run, id=cluster_workflow_id("team-a", name),
                                                   task_queue=queue)
            code, out, err = await _ballast(temporal_server.address, name, "-n", "team-a", "--brokers", "2,0,2",
                                            "--reason", "rotate certificates")
            assert code == 0, err
            assert out == f"roll requested on kafkacluster/team-a/{name}\n"

            code, out, err = await _ballast(temporal_server.address, name, "-n", "team-a")
            assert code == 0, err
            assert out == f"roll requested on kafkacluster/team-a/{name}, merged into roll/team-a/x/1: request 2\n"
            recorded = await handle.query("requests", result_type=list[RollRequest])
            assert recorded == [RollRequest(reason="rotate certificates", brokers=[2, 0]),
                                RollRequest(reason="", brokers=None)]

            code, out, err = await _ballast(temporal_server.address, name, "-n", "team-a", "--reason", "decline me")
            assert code == 1 and "declined the request: the cluster is being deleted" in err, err

            # Rejected by the workflow's validator: exit 1 with its reason; nothing recorded.
            code, out, err = await _ballast(temporal_server.address, name, "-n", "team-a", "--brokers", "99")
            assert code == 1 and "rejected the request: brokers: 99 is not a broker" in err, err
            assert len(await handle.query("requests", result_type=list[RollRequest])) == 3

            # A cluster without a workflow (wrong namespace): exit 1, saying so.
            code, out, err = await _ballast(temporal_server.address, name, "-n", "elsewhere")
            assert code == 1 and f"no running workflow kafkacluster/elsewhere/{name}" in err, err
            await handle.terminate()

    asyncio.run(scenario())


def test_ballast_roll_rejects_bad_broker_ids_before_connecting() -> None:
    async def scenario() -> None:
        code, _, err = await _ballast("127.0.0.1:1", "demo", "--brokers", "1,x")
        assert code == 2 and "expected comma-separated broker ids" in err
        code, _, err = await _ballast("127.0.0.1:1", "demo")
        assert code == 1 and "127.0.0.1:1" in err and "connect" in err.lower()

    asyncio.run(scenario())
