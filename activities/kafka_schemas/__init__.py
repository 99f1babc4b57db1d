"""Kafka protocol messages kafka-python does not ship, as kafka-python ``ApiMessage`` classes.

Each class is built by kafka-python's ``JsonSchemaData`` metaclass from the JSON schema file of the same name in
this package (``load_json=<package>``), written for Ballast from the Kafka protocol documentation in the format
Kafka's message definitions use (``//`` comments allowed). The classes encode, decode and version-gate exactly
like kafka-python's own messages, so they go over the same connections (see :mod:`activities.clients`).

* :class:`UnregisterBrokerRequest` / :class:`UnregisterBrokerResponse` (API key 64, v0, flexible): remove a
  broker's registration from the KRaft metadata; sent to any broker, which forwards it to the active
  controller.
"""

from activities.kafka_schemas.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse

__all__ = ["UnregisterBrokerRequest", "UnregisterBrokerResponse"]
