"""Small Kafka rules several handlers share (topic names, authorized-operations bitfields)."""

from __future__ import annotations

import re

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
CLUSTER_METADATA_TOPIC = "__cluster_metadata"

_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_NAME_LENGTH = 249


def topic_name_is_valid(name: str | None) -> bool:
    """``org.apache.kafka.common.internals.Topic.validate`` without the exception."""
    return bool(
        name and name not in (".", "..") and len(name) <= MAX_TOPIC_NAME_LENGTH and _LEGAL.fullmatch(name)
    )


def _bitfield(*codes: int) -> int:
    value = 0
    for code in codes:
        value |= 1 << code
    # The wire field is a signed int32.
    return value - (1 << 32) if value >= 1 << 31 else value


# AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
# DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12. Without an authorizer a broker reports
# every operation the resource type supports (AclEntry.supportedOperations).
TOPIC_AUTHORIZED_OPERATIONS = _bitfield(3, 4, 5, 6, 7, 8, 10, 11)
CLUSTER_AUTHORIZED_OPERATIONS = _bitfield(5, 7, 8, 9, 10, 11, 12)
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
"""The schema default (Integer.MIN_VALUE) sent when the client did not ask for authorized operations."""
