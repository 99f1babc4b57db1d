"""The operator's metrics and logs from inside activities: reconcile outcomes counted by the status update (and
the deletion's finalizer removal) against devcluster, and the JSON log lines of an activity run."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from temporalio import activity
from temporalio import workflow as temporal_workflow
from temporalio.testing import ActivityEnvironment

from activities.cluster import ClusterActivities
from activities.contracts import StatusUpdate
from ballast import observability
from ballast.config import OperatorSettings
from ballast.messages import ClusterRef, cluster_workflow_id
from ballast.planner import FINALIZER
from ballast.spec import GROUP, KIND, PLURAL, VERSION

NS = "default"
REF = ClusterRef(namespace=NS, name="demo")


def outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("ballast_reconcile_outcomes_total", {"outcome": outcome}) or 0.0


def test_outcomes_are_counted_by_the_activities_that_report_them(kafkaclusters: client.CustomObjectsApi,
                                                                  api_client: client.ApiClient,
                                                                  kubeconfig: Path) -> None:
    custom = kafkaclusters
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": "demo", "finalizers": [FINALIZER]},
        "spec": {"version": "3.9.1", "controllers": {"replicas": 3}, "brokers": {"replicas": 3}}})
    acts = ClusterActivities(api_client, OperatorSettings.from_env({"KUBECONFIG": str(kubeconfig)}),
                             reporting_instance="test-worker")
    env = ActivityEnvironment()
    ready, invalid, deleted = outcomes("ready"), outcomes("invalid"), outcomes("deleted")

    assert env.run(acts.update_status, StatusUpdate(ref=REF, observed_generation=1, phase="Ready", outcome="ready"))
    assert custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo")["status"]["phase"] == "Ready"
    assert outcomes("ready") == ready + 1
    # Reported again (a new workflow run does not know what the last one wrote): nothing to write, still an outcome.
    assert not env.run(acts.update_status, StatusUpdate(ref=REF, phase="Ready", outcome="ready"))
    assert outcomes("ready") == ready + 2
    # A progress write reports no outcome.
    assert env.run(acts.update_status, StatusUpdate(ref=REF, phase="Reconciling"))
    assert outcomes("ready") == ready + 2
    assert env.run(acts.update_status, StatusUpdate(ref=REF, phase="Invalid", outcome="invalid"))
    assert outcomes("invalid") == invalid + 1

    # Deletion ends when the finalizer comes off a KafkaCluster being deleted: counted once.
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "demo")
    env.run(acts.remove_finalizer, REF)
    assert outcomes("deleted") == deleted + 1
    env.run(acts.remove_finalizer, REF)  # a retry finds it gone
    assert outcomes("deleted") == deleted + 1
    # A cluster that is gone has no outcome to report.
    assert not env.run(acts.update_status, StatusUpdate(ref=REF, phase="Ready", outcome="ready"))
    assert outcomes("ready") == ready + 2


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """``configure_logging`` (JSON) writing to a buffer; the logging set-up pytest and the SDK had is restored."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("kafka").level,
             temporal_workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message)
    buffer = io.StringIO()
    observability.configure_logging("INFO", "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level, kafka_level, on_workflow, on_activity = saved
        logging.getLogger("kafka").setLevel(kafka_level)
        temporal_workflow.logger.workflow_info_on_message = on_workflow
        activity.logger.activity_info_on_message = on_activity


def test_an_activity_s_json_log_carries_cluster_workflow_and_trace(json_log: io.StringIO) -> None:
    """Records from temporalio's activity logger and from any other logger in the activity (kafka-python's, here
    at INFO and WARNING) get the cluster, the workflow id and the trace id; kafka-python's INFO is dropped."""
    provider = TracerProvider()
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=cluster_workflow_id(NS, "demo"))

    def observe() -> None:
        activity.logger.info("observing")
        logging.getLogger("kafka.conn").info("connecting to demo-broker-0")
        logging.getLogger("kafka.conn").warning("connection to demo-broker-0 refused")

    with provider.get_tracer("t").start_as_current_span("RunActivity:observe_cluster") as span:
        env.run(observe)
    provider.shutdown()
    lines: list[dict[str, Any]] = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert [(line["logger"], line["msg"]) for line in lines] == [
        ("temporalio.activity", "observing"), ("kafka.conn", "connection to demo-broker-0 refused")]
    for line in lines:
        assert line["cluster"] == f"{NS}/demo"
        assert line["workflow_id"] == f"kafkacluster/{NS}/demo"
        assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def test_cluster_of_workflow() -> None:
    assert observability.cluster_of_workflow("kafkacluster/prod/events") == "prod/events"
    assert observability.cluster_of_workflow("roll/prod/events/3") == "prod/events"
    assert observability.cluster_of_workflow("rebalance/prod/events/1") == "prod/events"
    assert observability.cluster_of_workflow("something-else/a/b") == ""
    assert observability.cluster_of_workflow("kafkacluster/") == ""
