"""Services: a headless Service per role and the brokers' bootstrap Service.

* ``<name>-controllers`` / ``<name>-brokers``: headless (``clusterIP: None``), the StatefulSets'
  ``serviceName``, giving every pod a stable DNS name. ``publishNotReadyAddresses: true`` because peers must
  resolve each other before anyone is Ready: controllers need the other voters to elect a leader, and a
  broker's advertised name must resolve while it is still catching up.
* ``<name>-kafka-bootstrap``: a ClusterIP Service over the brokers' client ports (one per listener, named after
  it), for clients' ``bootstrap.servers``. Only Ready brokers are behind it.
"""

from __future__ import annotations

from ballast.manifests.inputs import RenderInput
from ballast.manifests.labels import selector_labels
from ballast.manifests.metadata import JSON, object_meta
from ballast.manifests.names import (
    CONTROLLER_PORT,
    CONTROLLER_PORT_NAME,
    Role,
    bootstrap_service_name,
    headless_service_name,
)


def service_ports(inp: RenderInput, role: Role) -> list[JSON]:
    if role is Role.CONTROLLER:
        return [{"name": CONTROLLER_PORT_NAME, "port": CONTROLLER_PORT, "targetPort": CONTROLLER_PORT_NAME,
                 "protocol": "TCP"}]
    return [{"name": lst.name, "port": lst.port, "targetPort": lst.name, "protocol": "TCP"}
            for lst in inp.spec.listeners]


def headless_service(inp: RenderInput, role: Role) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(inp, headless_service_name(inp.name, role), role),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(inp.name, role),
            "ports": service_ports(inp, role),
        },
    }


def bootstrap_service(inp: RenderInput) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(inp, bootstrap_service_name(inp.name), Role.BROKER),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(inp.name, Role.BROKER),
            "ports": service_ports(inp, Role.BROKER),
        },
    }
