"""The activities at the tail of a scale-in, run for real (temporalio's ActivityEnvironment) against devcluster's
simulated KRaft pods: waiting for the removed broker pods, UnregisterBroker through the brokers, deleting the
removed brokers' volume claims -- and refusing both while a broker's pod is there."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cluster import ClusterActivities
from activities.contracts import DeleteBrokerClaimsInput, UnregisterBrokersInput, WaitBrokerPodsGoneInput
from ballast.messages import ClusterRef
from tests.activities.test_activities import NS
from tests.activities.test_roll_activities import _up
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("quiet_kafka_client")

SPEC = {"controllers": {"replicas": 1}, "brokers": {"replicas": 3}}


def _registered(admin: Callable[[], KafkaAdminClient]) -> dict[int, bool]:
    """broker id -> fenced, as DescribeCluster through the bootstrap Service reports them."""
    return {b["broker_id"]: b["is_fenced"] for b in admin().describe_cluster()["brokers"]}


def _claim_exists(core: client.CoreV1Api, name: str) -> bool:
    return any(c.metadata.name == name and c.metadata.deletion_timestamp is None
               for c in core.list_namespaced_persistent_volume_claim(NS).items)


def test_scale_in_tail_waits_for_the_pods_unregisters_and_deletes_claims(
        custom: client.CustomObjectsApi, acts: ClusterActivities, env: ActivityEnvironment, ref: ClusterRef,
        core: client.CoreV1Api, apps: client.AppsV1Api, admin: Callable[[], KafkaAdminClient]) -> None:
    _up(custom, acts, env, ref, SPEC)
    assert _registered(admin) == {0: False, 1: False, 2: False}

    # While broker 2 runs, neither its registration nor its claim may go.
    with pytest.raises(ApplicationError) as err:
        env.run(acts.unregister_brokers, UnregisterBrokersInput(ref=ref, brokers=[2]))
    assert err.value.non_retryable and err.value.type == "BrokerPodExists"
    assert "Pod/demo-broker-2 still exists" in err.value.message
    with pytest.raises(ApplicationError) as err:
        env.run(acts.delete_broker_claims, DeleteBrokerClaimsInput(ref=ref, ordinals=[2]))
    assert err.value.non_retryable and err.value.type == "ClaimStillWanted"
    assert _registered(admin) == {0: False, 1: False, 2: False} and _claim_exists(core, "data-demo-broker-2")

    # Nothing to wait for yet.
    done = env.run(acts.wait_broker_pods_gone, WaitBrokerPodsGoneInput(ref=ref, replicas=3, poll_seconds=0.1))
    assert done.ready == 3 and "no broker pod with ordinal >= 3 left" in done.detail

    # The StatefulSet shrinks: broker 2 shuts down (controlled: fenced, still registered).
    apps.patch_namespaced_stateful_set("demo-broker", NS, {"spec": {"replicas": 2}})
    done = env.run(acts.wait_broker_pods_gone, WaitBrokerPodsGoneInput(ref=ref, replicas=2, poll_seconds=0.1))
    assert done.ready == 2
    assert sorted(p.metadata.name for p in core.list_namespaced_pod(NS).items if "broker" in p.metadata.name) \
        == ["demo-broker-0", "demo-broker-1"]
    assert _registered(admin) == {0: False, 1: False, 2: True}

    unregistered = env.run(acts.unregister_brokers, UnregisterBrokersInput(ref=ref, brokers=[7, 2]))
    assert (unregistered.unregistered, unregistered.not_registered) == ([2], [7])
    assert _registered(admin) == {0: False, 1: False}
    again = env.run(acts.unregister_brokers, UnregisterBrokersInput(ref=ref, brokers=[2]))  # a retry
    assert (again.unregistered, again.not_registered) == ([], [2])

    deleted = env.run(acts.delete_broker_claims, DeleteBrokerClaimsInput(ref=ref, ordinals=[2]))
    assert (deleted.deleted, deleted.absent) == (["data-demo-broker-2"], [])
    wait_for(lambda: all(c.metadata.name != "data-demo-broker-2"
                         for c in core.list_namespaced_persistent_volume_claim(NS).items),
             message="data-demo-broker-2 gone")
    again_deleted = env.run(acts.delete_broker_claims, DeleteBrokerClaimsInput(ref=ref, ordinals=[2]))
    assert (again_deleted.deleted, again_deleted.absent) == ([], ["data-demo-broker-2"])
    assert _claim_exists(core, "data-demo-broker-0") and _claim_exists(core, "data-demo-broker-1")

    # An ordinal the StatefulSet still runs is refused; so is one whose pod outlived its set.
    with pytest.raises(ApplicationError) as err:
        env.run(acts.delete_broker_claims, DeleteBrokerClaimsInput(ref=ref, ordinals=[1]))
    assert err.value.non_retryable and "still has 2 replicas" in err.value.message
    apps.delete_namespaced_stateful_set("demo-broker", NS, propagation_policy="Orphan")
    wait_for(lambda: not [s for s in apps.list_namespaced_stateful_set(NS).items
                          if s.metadata.name == "demo-broker"], message="the broker StatefulSet gone")
    with pytest.raises(ApplicationError) as err:
        env.run(acts.delete_broker_claims, DeleteBrokerClaimsInput(ref=ref, ordinals=[1]))
    assert err.value.non_retryable and err.value.type == "BrokerPodExists"
    assert _claim_exists(core, "data-demo-broker-1")


def test_unregister_without_kafka_is_retryable_and_bad_ids_are_not(
        acts: ClusterActivities, env: ActivityEnvironment) -> None:
    ghost = ClusterRef(namespace=NS, name="ghost")
    with pytest.raises(ApplicationError) as err:
        env.run(acts.unregister_brokers, UnregisterBrokersInput(ref=ghost, brokers=[5]))
    assert not err.value.non_retryable and err.value.type == "KafkaUnreachable"
    assert "ghost-kafka-bootstrap does not exist" in err.value.message
    assert env.run(acts.unregister_brokers, UnregisterBrokersInput(ref=ghost, brokers=[])).unregistered == []
    with pytest.raises(ApplicationError) as err:
        env.run(acts.unregister_brokers, UnregisterBrokersInput(ref=ghost, brokers=[-1]))
    assert err.value.non_retryable and err.value.type == "InvalidInput"
    # Claims of a cluster that has none: absent, nothing refused.
    absent = env.run(acts.delete_broker_claims, DeleteBrokerClaimsInput(ref=ghost, ordinals=[3, 4]))
    assert (absent.deleted, absent.absent) == ([], ["data-ghost-broker-3", "data-ghost-broker-4"])
