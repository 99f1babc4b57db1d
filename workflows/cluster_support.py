"""What the cluster workflow's parts share: activity options, status conditions, failure messages.

Deterministic helpers only (workflow code): no I/O, the clock only through ``workflow.now()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import contracts as act
    from ballast.status import ConditionType


# --- activity options ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None


# Errors retrying cannot fix (the activities raise them non-retryable too; listing them is belt and braces).
NON_RETRYABLE = ["InvalidManifest", "OwnershipConflict", "ValidationError", "ConfigRejected"]

# Reads and writes to the API server: transient errors (429, 5xx, 409 storms) retry with back-off for about
# two and a half minutes, then the pass fails and is retried later with the cluster reported Degraded.
KUBE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=30), maximum_attempts=10,
                          non_retryable_error_types=NON_RETRYABLE)
# Short calls (observe, finalizer, status, cleanup) do not heartbeat: a lost worker shows as a start-to-close
# timeout, short enough to retry on another worker soon.
KUBE = Options(start_to_close=timedelta(seconds=30), retry=KUBE_RETRY)
# Applying heartbeats once per object, so a lost worker is noticed within the heartbeat timeout.
APPLY = Options(start_to_close=timedelta(minutes=2), heartbeat=timedelta(seconds=15), retry=KUBE_RETRY)
# Waiting for Kafka: each attempt polls (heartbeating every poll) for up to 10 minutes; a lost worker is noticed
# within the heartbeat timeout. Three attempts, then the pass fails and the cluster is reported Degraded.
WAIT = Options(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(seconds=15),
    retry=RetryPolicy(initial_interval=timedelta(seconds=10), backoff_coefficient=2.0,
                      maximum_interval=timedelta(minutes=1), maximum_attempts=3,
                      non_retryable_error_types=NON_RETRYABLE),
)
# Kafka admin calls (dynamic broker settings): bounded by the operator's Kafka timeouts.
KAFKA = Options(start_to_close=timedelta(minutes=1), retry=KUBE_RETRY)
# The periodic skew check plans (as an observation) with a few quick retries; a failure skips one check.
SKEW_CHECK = Options(start_to_close=timedelta(minutes=5), heartbeat=timedelta(seconds=60),
                       retry=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=3))
# Events are for people; never hold up a reconcile for one.
EVENT = Options(
    start_to_close=timedelta(seconds=30),
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5),
                      maximum_attempts=3),
)


def timestamp() -> str:
    return workflow.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_message(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err)


def rejected(err: ActivityError) -> bool:
    """The API server or an activity refused the input: retrying the same thing cannot succeed."""
    return isinstance(err.cause, ApplicationError) and err.cause.non_retryable


@dataclass
class Condition:
    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""

    def update(self) -> act.ConditionUpdate:
        return act.ConditionUpdate(type=self.type.value, status=self.status, reason=self.reason,
                                   message=self.message)
