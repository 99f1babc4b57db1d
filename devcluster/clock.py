"""Wall-clock helpers in the formats kube-apiserver writes (RFC 3339, second precision, UTC)."""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime | None = None) -> str:
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: dt.datetime | None = None) -> str:
    """``metav1.MicroTime`` (used by Leases and events.k8s.io)."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
