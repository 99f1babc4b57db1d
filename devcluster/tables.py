"""``meta.k8s.io`` Table rendering: what ``kubectl get`` asks for with ``Accept: ...;as=Table``.

Columns and cell values follow kube-apiserver's printers (``pkg/printers/internalversion/printers.go``):
the server always renders the wide cells (``Wide: true``) and marks the extra columns ``priority: 1``;
kubectl hides those unless ``-o wide``. Custom resources use the CRD version's
``additionalPrinterColumns`` (an ``Age`` column when it declares none); kinds without a printer get the
generic ``Name`` / ``Created At`` table, exactly like the server's default table convertor.

``include_object`` is the ``includeObject`` query parameter: ``Object`` embeds the full object,
``Metadata`` (the server default; kubectl sends none) a ``PartialObjectMetadata``, ``None`` nothing.

:class:`Target` is the ``Accept`` negotiation the server applies to GET, list and watch: plain JSON,
``as=Table`` or ``as=PartialObjectMetadata[List]`` in ``meta.k8s.io/v1`` or ``v1beta1``; a watch turns
every event object into a one-row Table whose ``columnDefinitions`` appear on the first event only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from devcluster import clock, errors
from devcluster.registry import ResourceType
from devcluster.store import Obj

Cell = Any
Column = dict[str, Any]

NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, although some resources "
            "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
            "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
           "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
           "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
           "lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
           "api-conventions.md#metadata")
INCLUDE_OBJECT_VALUES = ("Object", "Metadata", "None")


def _col(name: str, type_: str = "string", description: str = "", priority: int = 0, fmt: str = "") -> Column:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


def _name_col() -> Column:
    return _col("Name", fmt="name", description=NAME_DOC)


def _age_col() -> Column:
    return _col("Age", description=AGE_DOC)


# -- time and quantity formatting -----------------------------------------------------------------
def human_duration(seconds_f: float) -> str:
    """apimachinery's ``duration.HumanDuration``: ~2-3 significant figures."""
    seconds = int(seconds_f)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = clock.parse(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def since(value: Any) -> str:
    """``translateTimestampSince``: ``<unknown>`` for an unset timestamp."""
    moment = _parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration((clock.now() - moment).total_seconds())


def _age(obj: Obj) -> str:
    return since(obj["metadata"].get("creationTimestamp"))


_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_DECIMAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")


def quantity_string(value: Any) -> str:
    """``resource.Quantity.String()`` for the common cases: canonical suffix for whole amounts.

    ``1024Mi`` prints as ``1Gi`` and ``1000M`` as ``1G``, as the apiserver does; anything unusual is
    returned as written.
    """
    if value is None or value == "":
        return "0"
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        return text
    number, suffix = m.group(1), m.group(2) or ""
    try:
        amount = float(number)
    except ValueError:
        return text
    binary = suffix.endswith("i")
    if binary:
        total = amount * dict(_BINARY)[suffix]
    elif suffix in ("", "m") or suffix[0] in "eE":
        scale = 1e-3 if suffix == "m" else (10 ** int(suffix[1:]) if suffix else 1)
        total = amount * scale
    else:
        total = amount * dict(_DECIMAL)[suffix]
    if total != int(total):
        return text
    whole = int(total)
    if whole == 0:
        return "0"
    for sfx, factor in _BINARY if binary else _DECIMAL:
        if whole % factor == 0:
            return f"{whole // factor}{sfx}"
    return str(whole)


def _access_modes(modes: Any) -> str:
    modes = modes or []
    out = [short for mode, short in (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"),
                                     ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")) if mode in modes]
    return ",".join(out)


def _format_labels(labels: Any) -> str:
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = (template_spec or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _int_or_string(value: Any) -> str:
    return "N/A" if value is None else str(value)


# -- pods -----------------------------------------------------------------------------------------
def _restartable(init_container: Any) -> bool:
    return isinstance(init_container, dict) and init_container.get("restartPolicy") == "Always"


def _has_condition(conditions: Any, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions or [])


def _later(current: dt.datetime | None, candidate: Any) -> dt.datetime | None:
    moment = _parse_time(candidate)
    if moment is None:
        return current
    return moment if current is None or moment > current else current


def pod_row(pod: Obj) -> tuple[list[Cell], list[dict[str, Any]]]:
    """``printPod``: READY, STATUS (the kubectl status reason), RESTARTS, plus the wide cells."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    row_conditions: list[dict[str, Any]] = []
    if phase == "Succeeded":
        row_conditions = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                           "message": "The pod has completed successfully."}]
    elif phase == "Failed":
        row_conditions = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if _restartable(c))
    ready = restarts = sidecar_restarts = 0
    last_restart: dt.datetime | None = None
    last_sidecar_restart: dt.datetime | None = None
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        last_restart = _later(last_restart, finished)
        sidecar = _restartable(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    if not initializing or _has_condition(status.get("conditions"), "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        error_reason = ""
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                if terminated.get("reason"):
                    reason = terminated["reason"]
                elif terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
                if int(terminated.get("exitCode") or 0) != 0:
                    error_reason = reason
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed":
            if has_running and _has_condition(status.get("conditions"), "Ready"):
                reason = "Running"
            elif error_reason:
                reason = error_reason
            elif has_running:
                reason = "NotReady"

    if pod["metadata"].get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration((clock.now() - last_restart).total_seconds())} ago)"
    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else "") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        by_type = {}
        for cond in status.get("conditions") or []:
            by_type.setdefault(cond.get("type"), cond)
        true = sum(1 for g in gates if (by_type.get(g.get("conditionType")) or {}).get("status") == "True")
        gates_cell = f"{true}/{len(gates)}"
    cells = [_name(pod), f"{ready}/{total}", reason, restarts_cell, _age(pod),
             pod_ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", gates_cell]
    return cells, row_conditions


# -- other built-in kinds -------------------------------------------------------------------------
def _service_external_ip(svc: Obj) -> str:
    spec = svc.get("spec") or {}
    external = spec.get("externalIPs") or []
    svc_type = spec.get("type") or ""
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
        if external:
            return ",".join([*lb, *external])
        return ",".join(lb) if lb else "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_ports(svc: Obj) -> str:
    pieces = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        proto = port.get("protocol") or ""
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{proto}")
        else:
            pieces.append(f"{port.get('port')}/{proto}")
    return ",".join(pieces) or "<none>"


def _node_status(node: Obj) -> str:
    status = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            status = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if (node.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_roles(node: Obj) -> str:
    roles = set()
    for key, value in (node["metadata"].get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key.removeprefix("node-role.kubernetes.io/"):
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, type_: str) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == type_:
            return str(addr.get("address"))
    return "<none>"


def _event_source(ev: Obj) -> str:
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    host = source.get("host") or ev.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def _event_cells(ev: Obj) -> list[Cell]:
    first = since(ev.get("firstTimestamp")) if ev.get("firstTimestamp") else since(ev.get("eventTime"))
    last = since(ev.get("lastTimestamp")) if ev.get("lastTimestamp") else first
    count = int(ev.get("count") or 0)
    series = ev.get("series")
    if series:
        last = since(series.get("lastObservedTime"))
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1
    involved = ev.get("involvedObject") or {}
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [last, ev.get("type") or "", ev.get("reason") or "", target, involved.get("fieldPath") or "",
            _event_source(ev), str(ev.get("message") or "").strip(), first, count, _name(ev)]


def _storage_class_name(obj: Obj) -> str:
    beta = (obj["metadata"].get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class")
    if beta is not None:
        return str(beta)
    return str((obj.get("spec") or {}).get("storageClassName") or "")


def _pvc_cells(pvc: Obj) -> list[Cell]:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    phase = "Terminating" if pvc["metadata"].get("deletionTimestamp") else status.get("phase") or ""
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes"))
        capacity = quantity_string((status.get("capacity") or {}).get("storage"))
    return [_name(pvc), phase, spec.get("volumeName") or "", capacity, modes, _storage_class_name(pvc),
            spec.get("volumeAttributesClassName") or "<unset>", _age(pvc), spec.get("volumeMode") or "<unset>"]


def _pv_cells(pv: Obj) -> list[Cell]:
    spec, status = pv.get("spec") or {}, pv.get("status") or {}
    claim = spec.get("claimRef")
    claim_cell = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    phase = "Terminating" if pv["metadata"].get("deletionTimestamp") else status.get("phase") or ""
    return [_name(pv), quantity_string((spec.get("capacity") or {}).get("storage")),
            _access_modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy") or "", phase,
            claim_cell, _storage_class_name(pv), spec.get("volumeAttributesClassName") or "<unset>",
            status.get("reason") or "", _age(pv), spec.get("volumeMode") or "<unset>"]


def _controller_ref(obj: Obj) -> str:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            kind = f"{ref.get('kind', '')}.{group}" if group else str(ref.get("kind", ""))
            return f"{kind.lower()}/{ref.get('name', '')}"
    return "<none>"


def _storage_class_cells(sc: Obj) -> list[Cell]:
    annotations = sc["metadata"].get("annotations") or {}
    default = "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                         annotations.get("storageclass.beta.kubernetes.io/is-default-class"))
    name = _name(sc) + (" (default)" if default else "")
    return [name, sc.get("provisioner") or "", sc.get("reclaimPolicy") or "Delete",
            sc.get("volumeBindingMode") or "Immediate", bool(sc.get("allowVolumeExpansion")), _age(sc)]


def _endpoints_cell(ep: Obj) -> str:
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count, more = 0, False
    for ss in subsets:
        addresses = ss.get("addresses") or []
        ports = ss.get("ports") or []
        targets = [(a.get("ip", ""), None) for a in addresses] if not ports else \
            [(a.get("ip", ""), p.get("port")) for p in ports for a in addresses]
        count += len(targets)
        for ip, port in targets:
            if len(shown) == 3:
                more = True
                break
            shown.append(ip if port is None else (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"))
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if more else text


# One printer per built-in storage key: (columns, cells(obj) -> (cells, row conditions)).
Printer = tuple[list[Column], Callable[[Obj], tuple[list[Cell], list[dict[str, Any]]]]]


def _plain(fn: Callable[[Obj], list[Cell]]) -> Callable[[Obj], tuple[list[Cell], list[dict[str, Any]]]]:
    return lambda obj: (fn(obj), [])


def _name(obj: Obj) -> str:
    # .get: watch BOOKMARK objects carry only a resourceVersion and are rendered too.
    return str(obj["metadata"].get("name", ""))


_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."

PRINTERS: dict[str, Printer] = {
    "/pods": ([
        _name_col(),
        _col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", description="The aggregate status of the containers in this pod."),
        _col("Restarts", description="The number of times the containers in this pod have been restarted and when "
             "the last container in this pod has restarted."),
        _age_col(),
        _col("IP", priority=1, description="podIP address allocated to the pod."),
        _col("Node", priority=1, description="NodeName indicates in which node this pod is scheduled."),
        _col("Nominated Node", priority=1, description="nominatedNodeName is set only when this pod preempts other "
             "pods on the node."),
        _col("Readiness Gates", priority=1, description="If specified, all readiness gates will be evaluated for "
             "pod readiness."),
    ], pod_row),
    "apps/statefulsets": ([
        _name_col(), _col("Ready", description="Number of the pod with ready state"), _age_col(),
        _col("Containers", priority=1, description=_CONTAINERS_DOC),
        _col("Images", priority=1, description=_IMAGES_DOC),
    ], _plain(lambda o: [
        _name(o), f"{int((o.get('status') or {}).get('readyReplicas') or 0)}/"
                  f"{int((o.get('spec') or {}).get('replicas') or 0)}", _age(o),
        *_containers(((o.get("spec") or {}).get("template") or {}).get("spec"))])),
    "/services": ([
        _name_col(), _col("Type", description="type determines how the Service is exposed."),
        _col("Cluster-IP", description="clusterIP is the IP address of the service."),
        _col("External-IP", description="externalIPs is a list of IP addresses for which nodes in the cluster will "
             "also accept traffic for this service."),
        _col("Port(s)", description="The list of ports that are exposed by this service."), _age_col(),
        _col("Selector", priority=1, description="Route service traffic to pods with label keys and values "
             "matching this selector."),
    ], _plain(lambda o: [
        _name(o), (o.get("spec") or {}).get("type") or "",
        ((o.get("spec") or {}).get("clusterIPs") or ["<none>"])[0], _service_external_ip(o), _service_ports(o),
        _age(o), _format_labels((o.get("spec") or {}).get("selector"))])),
    "/endpoints": ([
        _name_col(), _col("Endpoints", description="The set of all endpoints is the union of all subsets."),
        _age_col(),
    ], _plain(lambda o: [_name(o), _endpoints_cell(o), _age(o)])),
    "/configmaps": ([
        _name_col(), _col("Data", description="Data contains the configuration data."), _age_col(),
    ], _plain(lambda o: [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)])),
    "/secrets": ([
        _name_col(), _col("Type", description="Used to facilitate programmatic handling of secret data."),
        _col("Data", description="Data contains the secret data."), _age_col(),
    ], _plain(lambda o: [_name(o), o.get("type") or "", len(o.get("data") or {}), _age(o)])),
    "/serviceaccounts": ([_name_col(), _age_col()], _plain(lambda o: [_name(o), _age(o)])),
    "/namespaces": ([
        _name_col(), _col("Status", description="The status of the namespace"), _age_col(),
    ], _plain(lambda o: [_name(o), (o.get("status") or {}).get("phase") or "", _age(o)])),
    "/nodes": ([
        _name_col(), _col("Status", description="The status of the node"),
        _col("Roles", description="The roles of the node"), _age_col(),
        _col("Version", description="Kubelet Version reported by the node."),
        _col("Internal-IP", priority=1, description="List of addresses reachable to the node."),
        _col("External-IP", priority=1, description="List of addresses reachable to the node."),
        _col("OS-Image", priority=1, description="OS Image reported by the node from /etc/os-release."),
        _col("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
        _col("Container-Runtime", priority=1, description="ContainerRuntime Version reported by the node."),
    ], _plain(lambda o: [
        _name(o), _node_status(o), _node_roles(o), _age(o),
        ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "",
        _node_address(o, "InternalIP"), _node_address(o, "ExternalIP"),
        *[((o.get("status") or {}).get("nodeInfo") or {}).get(k) or "<unknown>"
          for k in ("osImage", "kernelVersion", "containerRuntimeVersion")]])),
    "/events": ([
        _col("Last Seen", description="The time at which the most recent occurrence of this event was recorded."),
        _col("Type", description="Type of this event (Normal, Warning), new types could be added in the future"),
        _col("Reason", description="This should be a short, machine understandable string that gives the reason "
             "for the transition into the object's current status."),
        _col("Object", description="The object that this event is about."),
        _col("Subobject", priority=1, description="If referring to a piece of an object instead of an entire "
             "object, this string should contain a valid JSON/Go field access statement."),
        _col("Source", priority=1, description="The component reporting this event."),
        _col("Message", description="A human-readable description of the status of this operation."),
        _col("First Seen", priority=1, description="The time at which the event was first recorded."),
        _col("Count", priority=1, description="The number of times this event has occurred."),
        _col("Name", priority=1, fmt="name", description=NAME_DOC),
    ], _plain(_event_cells)),
    "/persistentvolumeclaims": ([
        _name_col(), _col("Status", description="phase represents the current phase of PersistentVolumeClaim."),
        _col("Volume", description="volumeName is the binding reference to the PersistentVolume backing this "
             "claim."),
        _col("Capacity", description="capacity represents the actual resources of the underlying volume."),
        _col("Access Modes", description="accessModes contains the actual access modes the volume backing the PVC "
             "has."),
        _col("StorageClass", description="StorageClass of the pvc"),
        _col("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"), _age_col(),
        _col("VolumeMode", priority=1, description="volumeMode defines what type of volume is required by the "
             "claim."),
    ], _plain(_pvc_cells)),
    "/persistentvolumes": ([
        _name_col(), _col("Capacity", description="capacity is the description of the persistent volume's "
                          "resources and capacity."),
        _col("Access Modes", description="accessModes contains all ways the volume can be mounted."),
        _col("Reclaim Policy", description="persistentVolumeReclaimPolicy defines what happens to a persistent "
             "volume when released from its claim."),
        _col("Status", description="phase indicates if a volume is available, bound to a claim, or released by a "
             "claim."),
        _col("Claim", description="claimRef is part of a bi-directional binding between PersistentVolume and "
             "PersistentVolumeClaim."),
        _col("StorageClass", description="StorageClass of the pv"),
        _col("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        _col("Reason", description="reason is a brief CamelCase string that describes any failure and is meant "
             "for machine parsing and tidy display in the CLI."),
        _age_col(),
        _col("VolumeMode", priority=1, description="volumeMode defines if a volume is intended to be used with a "
             "formatted filesystem or to remain in raw block state."),
    ], _plain(_pv_cells)),
    "apps/controllerrevisions": ([
        _name_col(), _col("Controller", description="Controller of the object"),
        _col("Revision", description="Revision indicates the revision of the state represented by Data."),
        _age_col(),
    ], _plain(lambda o: [_name(o), _controller_ref(o), int(o.get("revision") or 0), _age(o)])),
    "policy/poddisruptionbudgets": ([
        _name_col(), _col("Min Available", description="The minimum number of pods that must be available."),
        _col("Max Unavailable", description="The maximum number of pods that may be unavailable."),
        _col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
        _age_col(),
    ], _plain(lambda o: [
        _name(o), _int_or_string((o.get("spec") or {}).get("minAvailable")),
        _int_or_string((o.get("spec") or {}).get("maxUnavailable")),
        int((o.get("status") or {}).get("disruptionsAllowed") or 0), _age(o)])),
    "coordination.k8s.io/leases": ([
        _name_col(), _col("Holder", description="holderIdentity contains the identity of the holder of a current "
                          "lease."), _age_col(),
    ], _plain(lambda o: [_name(o), (o.get("spec") or {}).get("holderIdentity") or "", _age(o)])),
    "storage.k8s.io/storageclasses": ([
        _name_col(), _col("Provisioner", description="provisioner indicates the type of the provisioner."),
        _col("ReclaimPolicy", description="reclaimPolicy controls the reclaimPolicy for dynamically provisioned "
             "PersistentVolumes of this storage class."),
        _col("VolumeBindingMode", description="volumeBindingMode indicates how PersistentVolumeClaims should be "
             "provisioned and bound."),
        _col("AllowVolumeExpansion", description="allowVolumeExpansion shows whether the storage class allow "
             "volume expand."),
        _age_col(),
    ], _plain(_storage_class_cells)),
}

_DEFAULT_COLUMNS = [_name_col(), _col("Created At", "date", AGE_DOC)]


def _default_cells(obj: Obj) -> list[Cell]:
    """The generic convertor prints the creation time in RFC 3339, not as an age."""
    created = _parse_time(obj["metadata"].get("creationTimestamp"))
    stamp = (created or dt.datetime(1, 1, 1, tzinfo=dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [_name(obj), stamp]


# -- custom resources: additionalPrinterColumns -----------------------------------------------------
_MISSING = object()


class JsonPath:
    """The part of client-go's JSONPath that printer columns use.

    Supports ``.field``, ``['field']``, ``[n]`` (negative too), ``[*]``, ``[a:b]``, ``..field``
    (recursive descent) and filters ``[?(@.a.b == "x")]`` with ``== != < > <= >=`` or a bare
    ``[?(@.a)]`` existence test. ``find`` returns every match in document order; missing keys match
    nothing (``AllowMissingKeys(true)``).
    """

    _FILTER = re.compile(r"^\?\(\s*@((?:\.[^\s=!<>]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")

    def __init__(self, steps: list[tuple[str, Any]]) -> None:
        self.steps = steps

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        text = text.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
        text = text.removeprefix("$")
        steps: list[tuple[str, Any]] = []
        i = 0
        while i < len(text):
            if text.startswith("..", i):
                j = i + 2
                while j < len(text) and text[j] not in ".[":
                    j += 1
                steps.append(("recurse", text[i + 2:j]))
                i = j
            elif text[i] == ".":
                j = i + 1
                while j < len(text) and text[j] not in ".[":
                    j += 1
                if j > i + 1:
                    steps.append(("key", text[i + 1:j]))
                i = j
            elif text[i] == "[":
                depth, j = 0, i
                while j < len(text):
                    if text[j] == "[":
                        depth += 1
                    elif text[j] == "]":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                if j >= len(text):
                    raise ValueError(f"unterminated [ in {text!r}")
                steps.append(cls._bracket(text[i + 1:j].strip()))
                i = j + 1
            else:
                j = i
                while j < len(text) and text[j] not in ".[":
                    j += 1
                steps.append(("key", text[i:j]))
                i = j
        return cls(steps)

    @classmethod
    def _bracket(cls, inner: str) -> tuple[str, Any]:
        if inner == "*":
            return ("all", None)
        if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
            return ("key", inner[1:-1])
        if inner.startswith("?"):
            m = cls._FILTER.match(inner)
            if not m:
                raise ValueError(f"unsupported filter {inner!r}")
            path = JsonPath.parse(m.group(1)) if m.group(1) else JsonPath([])
            literal: Any = _MISSING
            if m.group(3) is not None:
                raw = m.group(3).strip()
                if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
                    literal = raw[1:-1]
                elif raw in ("true", "false"):
                    literal = raw == "true"
                else:
                    literal = float(raw)
            return ("filter", (path, m.group(2), literal))
        if ":" in inner:
            parts = [int(p) if p.strip() else None for p in inner.split(":")[:2]]
            return ("slice", (parts[0], parts[1]))
        return ("index", int(inner))

    def find(self, data: Any) -> list[Any]:
        current = [data]
        for kind, arg in self.steps:
            nxt: list[Any] = []
            for value in current:
                nxt.extend(self._step(kind, arg, value))
            current = nxt
        return current

    def _step(self, kind: str, arg: Any, value: Any) -> list[Any]:
        if kind == "key":
            return [value[arg]] if isinstance(value, dict) and arg in value else []
        if kind == "all":
            return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else []
        if kind == "index":
            return [value[arg]] if isinstance(value, list) and -len(value) <= arg < len(value) else []
        if kind == "slice":
            return list(value[arg[0]:arg[1]]) if isinstance(value, list) else []
        if kind == "recurse":
            out: list[Any] = []
            stack = [value]
            while stack:
                node = stack.pop(0)
                if isinstance(node, dict):
                    if arg in node:
                        out.append(node[arg])
                    stack.extend(node.values())
                elif isinstance(node, list):
                    stack.extend(node)
            return out
        path, op, literal = arg
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
        return [item for item in items if self._matches(path.find(item), op, literal)]

    @staticmethod
    def _matches(found: list[Any], op: str | None, literal: Any) -> bool:
        if op is None:
            return bool(found)
        if not found:
            return False
        left = found[0]
        if isinstance(literal, float) and isinstance(left, (int, float)) and not isinstance(left, bool):
            left = float(left)
        if op == "==":
            return bool(left == literal)
        if op == "!=":
            return bool(left != literal)
        try:
            return bool({"<": left < literal, ">": left > literal, "<=": left <= literal,
                         ">=": left >= literal}[op])
        except TypeError:  # comparing e.g. a string with a number matches nothing
            return False


def go_text(value: Any) -> str:
    """How client-go's jsonpath prints one value (``fmt.Fprint`` of the decoded JSON)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    return str(value)


def _custom_cell(type_: str, value: Any) -> Cell:
    """``cellForJSONValue``: typed cells; a value of the wrong type prints as ``<none>``."""
    if value is None:
        return None
    if type_ == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float):
            return int(value)
    elif type_ == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif type_ == "boolean":
        if isinstance(value, bool):
            return value
    elif type_ == "date" and isinstance(value, str):
        moment = _parse_time(value)
        return "<invalid>" if moment is None else human_duration((clock.now() - moment).total_seconds())
    return None


def _custom_columns(rt: ResourceType) -> list[dict[str, Any]]:
    if rt.printer_columns:
        return list(rt.printer_columns)
    return [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": AGE_DOC}]


def _custom_printer(rt: ResourceType) -> Printer:
    specs = _custom_columns(rt)
    columns = [_name_col()]
    paths = []
    for spec in specs:
        path_text = str(spec.get("jsonPath", ""))
        columns.append(_col(str(spec.get("name", "")), str(spec.get("type", "string")),
                            str(spec.get("description") or "Custom resource definition column (in JSONPath format): "
                                + path_text), int(spec.get("priority") or 0), str(spec.get("format") or "")))
        paths.append(JsonPath.parse(path_text))

    def cells(obj: Obj) -> tuple[list[Cell], list[dict[str, Any]]]:
        out: list[Cell] = [_name(obj)]
        for column, path in zip(columns[1:], paths, strict=True):
            found = path.find(obj)
            if not found:
                out.append(None)
            elif column["type"] == "string":
                out.append(go_text(found[0]))
            else:
                out.append(_custom_cell(column["type"], found[0]))
        return out, []

    return columns, cells


def printer_for(rt: ResourceType) -> Printer:
    if not rt.builtin:
        return _custom_printer(rt)
    return PRINTERS.get(rt.key) or (_DEFAULT_COLUMNS, _plain(_default_cells))


# -- the Table object -------------------------------------------------------------------------------
def partial_object_metadata(obj: Obj, api_version: str = "meta.k8s.io/v1") -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj["metadata"]}


def _embedded(rt: ResourceType, obj: Obj, include_object: str, table_version: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return {"kind": rt.kind, "apiVersion": rt.api_version,
                **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}}
    return partial_object_metadata(obj, table_version)


def validate_include_object(value: str | None) -> str:
    """The ``includeObject`` parameter; unset means ``Metadata`` as on kube-apiserver."""
    if value in (None, ""):
        return "Metadata"
    if value not in INCLUDE_OBJECT_VALUES:
        raise errors.bad_request(f'unrecognized includeObject value: "{value}"')
    return value


def to_table(rt: ResourceType, objects: list[Obj], list_meta: dict[str, Any], include_object: str | None,
             *, no_headers: bool = False, table_version: str = "meta.k8s.io/v1") -> dict[str, Any]:
    """Render ``objects`` as a ``Table``; ``list_meta`` becomes the Table's (list) metadata."""
    include = validate_include_object(include_object)
    columns, printer = printer_for(rt)
    rows = []
    for obj in objects:
        cells, conditions = printer(obj)
        row: dict[str, Any] = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        embedded = _embedded(rt, obj, include, table_version)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": table_version, "metadata": list_meta,
            "columnDefinitions": None if no_headers else columns, "rows": rows}


# -- content negotiation (the ``as=`` transforms of kube-apiserver) --------------------------------
_META_GROUP = "meta.k8s.io"
_TRANSFORMS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")
NOT_ACCEPTABLE = ("only the following media types are accepted: application/json, application/yaml, "
                  "application/vnd.kubernetes.protobuf")


class Target:
    """The representation a request negotiated through its ``Accept`` header.

    ``kind`` is ``None`` for the plain object (no transform), else ``Table``,
    ``PartialObjectMetadata`` or ``PartialObjectMetadataList`` in ``api_version``
    (``meta.k8s.io/v1`` or ``meta.k8s.io/v1beta1``).
    """

    def __init__(self, kind: str | None = None, api_version: str = "meta.k8s.io/v1") -> None:
        self.kind = kind
        self.api_version = api_version

    @classmethod
    def negotiate(cls, accept: str | None) -> Target:
        """The first acceptable clause wins; 406 NotAcceptable when no clause can be served."""
        if not accept or not accept.strip():
            return cls()
        for clause in accept.split(","):
            parts = [p.strip() for p in clause.split(";")]
            media = parts[0].lower()
            params = {}
            for p in parts[1:]:
                key, _, value = p.partition("=")
                params[key.strip().lower()] = value.strip().strip('"')
            if params.get("q") in ("0", "0.0", "0.00", "0.000"):
                continue
            if media not in ("application/json", "application/*", "*/*", "*"):
                continue  # protobuf, yaml, cbor: not produced here; a later clause may still fit
            as_kind = params.get("as")
            if as_kind is None:
                return cls()
            if as_kind in _TRANSFORMS and params.get("g") == _META_GROUP and params.get("v") in ("v1", "v1beta1"):
                return cls(as_kind, f"{_META_GROUP}/{params['v']}")
        raise errors.ApiError(406, "NotAcceptable", NOT_ACCEPTABLE)

    def _not_acceptable(self, message: str) -> errors.ApiError:
        return errors.ApiError(406, "NotAcceptable", message)

    def render_object(self, rt: ResourceType, obj: Obj, query: Any) -> Obj:
        if self.kind is None:
            return obj
        if self.kind == "Table":
            return to_table(rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                            query.get("includeObject"), table_version=self.api_version)
        if self.kind == "PartialObjectMetadata":
            return partial_object_metadata(obj, self.api_version)
        raise self._not_acceptable(f"you requested PartialObjectMetadataList, but the requested object is not a "
                                   f"list (*{rt.kind})")

    def render_list(self, rt: ResourceType, items: list[Obj], list_meta: dict[str, Any], query: Any,
                    plain: Callable[[], Obj]) -> Obj:
        """``plain`` builds the untransformed list (kept in the server, which owns its shape)."""
        if self.kind is None:
            return plain()
        if self.kind == "Table":
            return to_table(rt, items, list_meta, query.get("includeObject"), table_version=self.api_version)
        if self.kind == "PartialObjectMetadataList":
            return {"kind": "PartialObjectMetadataList", "apiVersion": self.api_version, "metadata": list_meta,
                    "items": [partial_object_metadata(o, self.api_version) for o in items]}
        raise self._not_acceptable(f"you requested PartialObjectMetadata, but the requested object is a list "
                                   f"(*{rt.kind}List)")

    def watch_transform(self, rt: ResourceType, query: Any) -> Callable[[Obj], Obj] | None:
        """Per-event transform for a watch stream, or ``None`` for plain objects.

        As on kube-apiserver, every event object (bookmarks included) becomes a one-row Table, and only
        the first carries ``columnDefinitions`` (later ones are encoded with ``noHeaders``).
        """
        if self.kind is None:
            return None
        if self.kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            version = self.api_version
            return lambda obj: partial_object_metadata(obj, version)
        include = validate_include_object(query.get("includeObject"))
        sent_headers = False

        def to_row_table(obj: Obj) -> Obj:
            nonlocal sent_headers
            table = to_table(rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}, include,
                             no_headers=sent_headers, table_version=self.api_version)
            sent_headers = True
            return table

        return to_row_table
