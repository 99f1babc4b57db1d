"""An invalid new generation of a cluster that is already Ready: reported Invalid, nothing touched, and the
next valid generation picks up from there.

Uses the activity fakes and helpers of ``test_kafkacluster_workflow`` (the fake world behind the activity
contracts) on this module's own time-skipping test server.
"""

from __future__ import annotations

import copy

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities import contracts as act
from ballast.messages import SIGNAL_SPEC_CHANGED, SpecChanged
from tests.workflows.test_kafkacluster_workflow import plan, running, status, until_phase

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.filterwarnings("error:.*handlers are still running:RuntimeWarning"),
]


async def test_invalid_new_generation_on_a_ready_cluster_touches_nothing(env: WorkflowEnvironment) -> None:
    async with running(env) as run:
        fake = run.fake
        handle = await run.start()
        await until_phase(handle, "Ready", generation=1)
        live, finalizers, cluster_id = dict(fake.live), list(fake.finalizers), fake.status["clusterId"]
        valid_brokers = copy.deepcopy(fake.spec["brokers"])

        # Generation 2 passes the schema but not the operator's validation (min.insync.replicas = RF = 3).
        fake.update_spec(brokers={"replicas": 3, "config": {"min.insync.replicas": "3"}})
        before = len(fake.calls)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=2))
        await until_phase(handle, "Invalid", generation=2)

        # Looked, reported, changed nothing: no manifests, no waits, no finalizer call, same objects.
        assert {name for name, _ in fake.calls[before:]} <= {act.OBSERVE_CLUSTER, act.UPDATE_STATUS,
                                                               act.RECORD_EVENT}
        assert fake.count(act.OBSERVE_CLUSTER) >= 2
        assert fake.live == live and fake.finalizers == finalizers
        invalid = fake.conditions["Invalid"]
        assert (invalid.status, invalid.reason) == ("True", "InvalidSpec")
        assert "spec.brokers.config[min.insync.replicas]" in invalid.message
        ready = fake.conditions["Ready"]
        assert (ready.status, ready.message) == ("False", "generation 2 is invalid; the running cluster is left as it is")
        assert fake.status["phase"] == "Invalid" and fake.status["observedGeneration"] == 2
        assert fake.status["clusterId"] == cluster_id
        warning = fake.events[-1]
        assert (warning.type, warning.reason) == ("Warning", "InvalidSpec") and "min.insync.replicas" in warning.message
        assert (await plan(handle))[0].startswith("waiting for a valid spec: generation 2: ")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        # Generation 3 restores the valid spec: Ready again, and since it renders the objects of generation 1,
        # nothing is rewritten.
        fake.update_spec(brokers=valid_brokers)
        await handle.signal(SIGNAL_SPEC_CHANGED, SpecChanged(generation=3))
        await until_phase(handle, "Ready", generation=3)
        assert fake.conditions["Invalid"].status == "False" and fake.conditions["Ready"].status == "True"
        assert fake.live == live
        assert fake.status["observedGeneration"] == 3 and (await status(handle)).processed_generation == 3
