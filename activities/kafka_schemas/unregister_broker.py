"""UnregisterBroker (API key 64): the classes come from ``UnregisterBrokerRequest.json`` and
``UnregisterBrokerResponse.json`` next to this module (the class name selects the file)."""

from __future__ import annotations

from kafka.protocol.api_message import ApiMessage


class UnregisterBrokerRequest(ApiMessage, load_json=__package__):  # type: ignore[misc,call-arg]
    """``broker_id``: the broker whose registration the controller removes."""


class UnregisterBrokerResponse(ApiMessage, load_json=__package__):  # type: ignore[misc,call-arg]
    """``throttle_time_ms``, ``error_code`` (102 = BROKER_ID_NOT_REGISTERED), ``error_message`` (nullable)."""
