"""The two StatefulSets, ``<name>-controller`` (KRaft controllers) and ``<name>-broker`` (brokers).

Both:

* ``podManagementPolicy: OrderedReady`` and ``updateStrategy: OnDelete``: the StatefulSet controller creates
  and scales pods, but never restarts one for an update -- the operator owns every restart (one at a time, after
  checking the quorum / partition health), comparing each pod's ``config-hash`` annotation with the template's;
* ``volumeClaimTemplates`` ``data`` (size and class from the spec, ReadWriteOnce), mounted at
  ``/var/lib/kafka/data`` through ``subPath: kafka`` so the volume root's ``lost+found`` stays out of Kafka's
  log dir, and ``persistentVolumeClaimRetentionPolicy`` Retain/Retain: claims outlive pods and the set, the
  operator deletes them itself per ``storage.deleteClaim``;
* ``serviceName`` = the role's headless Service, so each pod resolves as ``<pod>.<service>.<ns>.svc.<domain>``;
* controllers start their ordinals at 1000 (``spec.ordinals.start``) so ``node.id`` = ordinal everywhere.

The container is the official ``apache/kafka`` image (or ``spec.image``) configured through its environment
(see ``ballast.manifests.config``): the role's ConfigMap with ``envFrom`` plus per-pod ``env``:

* ``POD_NAME`` from ``metadata.name``;
* ``KAFKA_NODE_ID`` from the label ``apps.kubernetes.io/pod-index`` (the ordinal);
* brokers: ``KAFKA_ADVERTISED_LISTENERS`` = ``INTERNAL://$(POD_NAME).<name>-brokers.<ns>.svc.<domain>:<port>``
  (the kubelet expands ``$(POD_NAME)``, defined earlier in the list);
* brokers with ``rackAwareness``: ``KAFKA_BROKER_RACK`` from the pod label ``<topologyKey>``. Pods carry their
  node's ``topology.kubernetes.io/zone`` and ``/region`` labels only through the ``PodTopologyLabels``
  admission plugin (KEP-4742; feature gate ``PodTopologyLabelsAdmission``, beta and on by default since
  Kubernetes 1.35), which copies them at binding, before the kubelet starts the container. Any other key
  yields an empty rack (``validate_spec`` reports it). Brokers are also spread over that key (ScheduleAnyway).

The image runs as ``appuser`` (uid/gid 1000); ``fsGroup: 1000`` makes the claim writable for it. Service links
are disabled: the image would turn any ``KAFKA*`` variable a Service link creates (a Service named ``kafka``
yields ``KAFKA_PORT``, ...) into a property. The pod needs no API access, so no service account token is mounted.
Brokers get 120 s of grace for a controlled shutdown (leadership moved away before the process exits).
"""

from __future__ import annotations

from typing import Final

from ballast.manifests.config import (
    advertised_listeners,
    inter_broker_listener,
    property_to_env,
    restart_environment,
)
from ballast.manifests.hashing import stable_hash
from ballast.manifests.inputs import RenderInput
from ballast.manifests.labels import CONFIG_HASH_ANNOTATION, labels, selector_labels
from ballast.manifests.metadata import JSON, object_meta
from ballast.manifests.names import (
    CONTAINER_NAME,
    CONTROLLER_PORT,
    CONTROLLER_PORT_NAME,
    DATA_DIR,
    DATA_SUBPATH,
    DATA_VOLUME,
    POD_INDEX_LABEL,
    Role,
    config_map_name,
    headless_service_name,
    ordinal_start,
    statefulset_name,
)
from ballast.spec import ResourceRequirements, StorageSpec

KAFKA_UID: Final = 1000  # appuser in the apache/kafka image
BROKER_TERMINATION_GRACE_SECONDS: Final = 120
POD_NAME_ENV: Final = "POD_NAME"
HOSTNAME_TOPOLOGY_KEY: Final = "kubernetes.io/hostname"


def _label_ref(key: str) -> JSON:
    return {"fieldRef": {"fieldPath": f"metadata.labels['{key}']"}}


def _replicas(inp: RenderInput, role: Role) -> int:
    return inp.spec.controllers.replicas if role is Role.CONTROLLER else inp.spec.brokers.replicas


def _storage(inp: RenderInput, role: Role) -> StorageSpec:
    return inp.spec.controllers.storage if role is Role.CONTROLLER else inp.spec.brokers.storage


def _resources(inp: RenderInput, role: Role) -> ResourceRequirements:
    return inp.spec.controllers.resources if role is Role.CONTROLLER else inp.spec.brokers.resources


def container_ports(inp: RenderInput, role: Role) -> list[JSON]:
    """Named container ports: ``controller`` (9093) or one per listener, named after it."""
    if role is Role.CONTROLLER:
        return [{"name": CONTROLLER_PORT_NAME, "containerPort": CONTROLLER_PORT, "protocol": "TCP"}]
    return [{"name": lst.name, "containerPort": lst.port, "protocol": "TCP"} for lst in inp.spec.listeners]


def pod_env(inp: RenderInput, role: Role) -> list[JSON]:
    """The per-pod environment (order matters: ``$(POD_NAME)`` refers to an earlier entry)."""
    env: list[JSON] = [
        {"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": property_to_env("node.id"), "valueFrom": _label_ref(POD_INDEX_LABEL)},
    ]
    if role is Role.BROKER:
        env.append({"name": property_to_env("advertised.listeners"), "value": advertised_listeners(inp)})
        rack = inp.spec.brokers.rack_awareness
        if rack is not None:
            env.append({"name": property_to_env("broker.rack"), "valueFrom": _label_ref(rack.topology_key)})
    return env


def _resource_dict(resources: ResourceRequirements) -> JSON:
    out: JSON = {}
    if resources.requests:
        out["requests"] = dict(sorted(resources.requests.items()))
    if resources.limits:
        out["limits"] = dict(sorted(resources.limits.items()))
    return out


def container(inp: RenderInput, role: Role) -> JSON:
    probe_port = CONTROLLER_PORT_NAME if role is Role.CONTROLLER else inter_broker_listener(inp.spec).name
    out: JSON = {
        "name": CONTAINER_NAME,
        "image": inp.image,
        "ports": container_ports(inp, role),
        "envFrom": [{"configMapRef": {"name": config_map_name(inp.name, role)}}],
        "env": pod_env(inp, role),
        # Listening is what readiness can see from outside; quorum membership and broker registration are
        # checked by the operator through the Kafka protocol.
        "readinessProbe": {"tcpSocket": {"port": probe_port}, "periodSeconds": 5, "failureThreshold": 3},
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_DIR, "subPath": DATA_SUBPATH}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    resources = _resource_dict(_resources(inp, role))
    if resources:
        out["resources"] = resources
    return out


def pod_spec(inp: RenderInput, role: Role) -> JSON:
    selector = {"matchLabels": selector_labels(inp.name, role)}
    spec: JSON = {
        "containers": [container(inp, role)],
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": KAFKA_UID,
            "runAsGroup": KAFKA_UID,
            "fsGroup": KAFKA_UID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Prefer one pod of a role per node, so losing a node costs at most one voter / one replica.
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": selector, "topologyKey": HOSTNAME_TOPOLOGY_KEY}},
        ]}},
    }
    if role is Role.BROKER:
        spec["terminationGracePeriodSeconds"] = BROKER_TERMINATION_GRACE_SECONDS
        rack = inp.spec.brokers.rack_awareness
        if rack is not None:
            spec["topologySpreadConstraints"] = [{
                "maxSkew": 1, "topologyKey": rack.topology_key, "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": selector,
            }]
    return spec


def _bare_template(inp: RenderInput, role: Role) -> JSON:
    return {"metadata": {"labels": labels(inp.name, role)}, "spec": pod_spec(inp, role)}


def config_hash(inp: RenderInput, role: Role) -> str:
    """Hash of what needs a restart of ``role``'s pods: its ConfigMap data (without the brokers' dynamic
    settings, which the operator applies live: ``restart_environment``) and its pod template."""
    return stable_hash({"configMapData": restart_environment(inp, role), "template": _bare_template(inp, role)})


def pod_template(inp: RenderInput, role: Role) -> JSON:
    template = _bare_template(inp, role)
    template["metadata"]["annotations"] = {CONFIG_HASH_ANNOTATION: config_hash(inp, role)}
    return template


def volume_claim_template(inp: RenderInput, role: Role) -> JSON:
    storage = _storage(inp, role)
    spec: JSON = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage.size}}}
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_VOLUME, "labels": labels(inp.name, role)},
        "spec": spec,
    }


def statefulset(inp: RenderInput, role: Role) -> JSON:
    spec: JSON = {
        "replicas": _replicas(inp, role),
        "serviceName": headless_service_name(inp.name, role),
        "selector": {"matchLabels": selector_labels(inp.name, role)},
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "OnDelete"},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "template": pod_template(inp, role),
        "volumeClaimTemplates": [volume_claim_template(inp, role)],
    }
    start = ordinal_start(role)
    if start:
        spec["ordinals"] = {"start": start}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(inp, statefulset_name(inp.name, role), role),
        "spec": spec,
    }
