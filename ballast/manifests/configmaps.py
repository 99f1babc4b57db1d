"""The per-role ConfigMaps (``<name>-controller-config``, ``<name>-broker-config``).

Their data is the role's shared Kafka configuration as the ``apache/kafka`` image's environment variables
(``ballast.manifests.config.environment``); the pods import it whole with ``envFrom``. A pod reads it only
when its container starts, so a data change reaches Kafka through a restart -- which the role's
``config-hash`` annotation tracks -- except for the brokers' dynamic settings (``ballast.kafka_configs``): the
operator applies those live with IncrementalAlterConfigs, and they are left out of the hash.
"""

from __future__ import annotations

from ballast.manifests.config import environment
from ballast.manifests.inputs import RenderInput
from ballast.manifests.metadata import JSON, object_meta
from ballast.manifests.names import Role, config_map_name


def config_map(inp: RenderInput, role: Role) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(inp, config_map_name(inp.name, role), role),
        "data": environment(inp, role),
    }
