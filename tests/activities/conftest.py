"""Fixtures shared by the activity tests that run against devcluster (a test module may define its own of the
same name, which then wins): the activities bound to devcluster, an ActivityEnvironment, the cluster ref, the
KafkaCluster CRD and an admin client factory on the bootstrap Service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kubernetes import client
from temporalio.testing import ActivityEnvironment

from activities import clients
from activities.cluster import ClusterActivities
from ballast.config import KafkaAddressing, OperatorSettings
from ballast.messages import ClusterRef

NS = "default"


@pytest.fixture
def custom(kafkaclusters: client.CustomObjectsApi) -> client.CustomObjectsApi:
    """CustomObjectsApi with the KafkaCluster CRD installed (the shared fixture)."""
    return kafkaclusters


@pytest.fixture(autouse=True)
def _quiet_kafka_client(caplog: pytest.LogCaptureFixture) -> None:
    """kafka-python logs every bootstrap retry at WARNING while brokers register; not a test failure."""
    caplog.set_level("ERROR", logger="kafka")


@pytest.fixture
def acts(api_client: client.ApiClient, kubeconfig: Path) -> ClusterActivities:
    settings = OperatorSettings.from_env({"KUBECONFIG": str(kubeconfig), "BALLAST_KAFKA_ADDRESSING": "devcluster",
                                          "BALLAST_KAFKA_TIMEOUT_SECONDS": "1"})
    assert settings.kafka_addressing is KafkaAddressing.DEVCLUSTER
    return ClusterActivities(api_client, settings, reporting_instance="test-worker")


@pytest.fixture
def env() -> ActivityEnvironment:
    return ActivityEnvironment()


@pytest.fixture
def ref() -> ClusterRef:
    return ClusterRef(namespace=NS, name="demo")


@pytest.fixture
def admin(acts: ClusterActivities) -> Iterator[Callable[[], KafkaAdminClient]]:
    """Opens kafka-python admin clients on cluster ``demo``'s bootstrap Service (once it is up); all closed after."""
    opened: list[KafkaAdminClient] = []

    def open_admin() -> KafkaAdminClient:
        address = clients.service_address(acts.core, NS, "demo-kafka-bootstrap", 9092, acts.settings.kafka_addressing)
        opened.append(clients.kafka_admin_client(address, 2.0))
        return opened[-1]

    yield open_admin
    for a in opened:
        a.close()


@pytest.fixture
def quiet_kafka_client(caplog: pytest.LogCaptureFixture) -> None:
    """kafka-python logs every bootstrap retry at WARNING while brokers register; not a test failure."""
    caplog.set_level("ERROR", logger="kafka")
