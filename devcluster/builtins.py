"""Per-kind strategies for built-in resources: defaulting, server-set fields and update rules.

Only what the operator (or kubectl) would otherwise see differently from a real cluster is modelled:
defaults that show up in a diff, immutable fields, and the forbidden-update messages.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
from typing import Any

from devcluster import errors
from devcluster.api import ApiServer, Strategy
from devcluster.errors import Cause
from devcluster.registry import ResourceType
from devcluster.store import Obj

PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


# -- shared defaulting --------------------------------------------------------------------------------
def default_container(c: dict[str, Any]) -> None:
    image = str(c.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = ":" not in tag or tag.endswith(":latest")
    c.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = c.get(probe)
        if isinstance(p, dict):
            p.setdefault("timeoutSeconds", 1)
            p.setdefault("periodSeconds", 10)
            p.setdefault("successThreshold", 1)
            p.setdefault("failureThreshold", 3)


def default_pod_spec(spec: dict[str, Any]) -> None:
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for vol in spec.get("volumes") or []:
        for src, mode_key in (("configMap", "defaultMode"), ("secret", "defaultMode"), ("projected", "defaultMode")):
            if isinstance(vol.get(src), dict):
                vol[src].setdefault(mode_key, 420)
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]


def default_pod_template(template: dict[str, Any]) -> None:
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))


# -- namespaces ---------------------------------------------------------------------------------------
class NamespaceStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def prepare_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> None:
        new["spec"] = copy.deepcopy(old.get("spec", {}))
        new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = new["metadata"]["name"]


# -- pods ---------------------------------------------------------------------------------------------
_POD_MUTABLE_MSG = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


class PodStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tolerations = spec.setdefault("tolerations", [])
        keys = {t.get("key") for t in tolerations}
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if key not in keys:
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}

    def validate_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> list[Cause]:
        containers = (obj.get("spec") or {}).get("containers")
        if not containers:
            return [Cause("FieldValueRequired", "Required value", "spec.containers")]
        causes = []
        for i, c in enumerate(containers):
            if not c.get("name"):
                causes.append(Cause("FieldValueRequired", "Required value", f"spec.containers[{i}].name"))
            if not c.get("image"):
                causes.append(Cause("FieldValueRequired", "Required value", f"spec.containers[{i}].image"))
        return causes

    def validate_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
        """``ValidatePodUpdate``: images, activeDeadlineSeconds, terminationGracePeriodSeconds and
        *additions* to tolerations may change; ``spec.nodeName`` is set only through ``pods/binding``."""
        def normalized(o: Obj) -> Obj:
            spec = copy.deepcopy(o.get("spec") or {})
            for key in ("containers", "initContainers"):
                for c in spec.get(key) or []:
                    c.pop("image", None)
            for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
                spec.pop(key, None)
            return spec

        causes = []
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if not _tolerations_only_added(old_spec.get("tolerations") or [], new_spec.get("tolerations") or []):
            causes.append(Cause("FieldValueForbidden", "Forbidden: existing toleration can not be modified except "
                                "its tolerationSeconds", "spec.tolerations"))
        if normalized(old) != normalized(new):
            causes.append(Cause("FieldValueForbidden", _POD_MUTABLE_MSG, "spec"))
        return causes


def _tolerations_only_added(old: list[Any], new: list[Any]) -> bool:
    """``validateOnlyAddedTolerations``: every old toleration is still in the new list, equal except
    perhaps for its ``tolerationSeconds``."""
    def comparable(t: Any) -> Any:
        if not isinstance(t, dict):
            return t
        return {k: v for k, v in t.items() if k != "tolerationSeconds" and v not in (None, "")}

    remaining = [comparable(t) for t in new]
    return all(comparable(t) in remaining for t in old)


def _qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    requests = [c.get("resources", {}).get("requests") or {} for c in containers]
    limits = [c.get("resources", {}).get("limits") or {} for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(lim.get("cpu") and lim.get("memory") and (not req or req == lim)
                     for req, lim in zip(requests, limits, strict=True))
    return "Guaranteed" if guaranteed else "Burstable"


# -- services -----------------------------------------------------------------------------------------
class ServiceStrategy(Strategy):
    def __init__(self) -> None:
        self._next_ip = int(ipaddress.IPv4Address("10.96.0.10"))

    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec.get("clusterIP") in (None, ""):
            self._next_ip += 1
            spec["clusterIP"] = str(ipaddress.IPv4Address(self._next_ip))
        spec["clusterIPs"] = [spec["clusterIP"]]
        if spec["clusterIP"] != "None":
            spec.setdefault("ipFamilies", ["IPv4"])
        else:
            spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> None:
        spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key not in spec and key in old_spec:
                spec[key] = copy.deepcopy(old_spec[key])
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))

    def validate_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
        if (old.get("spec") or {}).get("clusterIP") != (new.get("spec") or {}).get("clusterIP"):
            return [Cause("FieldValueInvalid", f'Invalid value: "{new["spec"].get("clusterIP")}": field is '
                          "immutable", "spec.clusterIPs[0]")]
        return []


# -- endpoints ----------------------------------------------------------------------------------------
class EndpointsStrategy(Strategy):
    """``SetDefaults_EndpointPort``: a port without a protocol is TCP."""

    @staticmethod
    def _defaults(obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in (subset.get("ports") or []) if isinstance(subset, dict) else []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")

    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        self._defaults(obj)

    def prepare_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> None:
        self._defaults(new)


# -- persistent volume claims -------------------------------------------------------------------------
def parse_quantity(value: Any) -> float:
    """Kubernetes resource quantity to a number (bytes for storage, cores for cpu)."""
    text = str(value).strip()
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 1e-3}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def default_storage_class(api: ApiServer) -> Obj | None:
    rt = api.lookup("storage.k8s.io", "v1", "storageclasses")
    for sc in api.store.list(rt.key):
        if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true":
            return sc
    return None


class PvcStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        if "storageClassName" not in spec:
            sc = default_storage_class(api)
            if sc is not None:
                spec["storageClassName"] = sc["metadata"]["name"]
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if PVC_PROTECTION not in finalizers:
            finalizers.append(PVC_PROTECTION)
        obj["status"] = {"phase": "Pending"}

    def validate_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = []
        if not spec.get("accessModes"):
            causes.append(Cause("FieldValueRequired", "Required value: at least 1 access mode is required",
                                "spec.accessModes"))
        if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
            causes.append(Cause("FieldValueRequired", "Required value", "spec.resources[storage]"))
        return causes

    def validate_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
        old_spec, new_spec = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(new.get("spec") or {})
        old_size = old_spec.get("resources", {}).get("requests", {}).pop("storage", None)
        new_size = new_spec.get("resources", {}).get("requests", {}).pop("storage", None)
        if not old_spec.get("volumeName") and new_spec.get("volumeName"):
            new_spec.pop("volumeName")  # binding
        if old_spec != new_spec:
            return [Cause("FieldValueForbidden", "Forbidden: spec is immutable after creation except "
                          "resources.requests and volumeAttributesClassName for bound claims", "spec")]
        if old_size == new_size:
            return []
        if parse_quantity(new_size) < parse_quantity(old_size):
            return [Cause("FieldValueForbidden", "Forbidden: field can not be less than status.capacity",
                          "spec.resources.requests.storage")]
        if (old.get("status") or {}).get("phase") != "Bound":
            return [Cause("FieldValueForbidden", "Forbidden: spec is immutable after creation except "
                          "resources.requests and volumeAttributesClassName for bound claims", "spec")]
        sc_rt = api.lookup("storage.k8s.io", "v1", "storageclasses")
        sc = api.store.get(sc_rt.key, "", new_spec.get("storageClassName") or "")
        if sc is None or not sc.get("allowVolumeExpansion"):
            name = new["metadata"]["name"]
            raise errors.forbidden(f'persistentvolumeclaims "{name}" is forbidden: only dynamically provisioned pvc '
                                   "can be resized and the storageclass that provisions the pvc must support resize",
                                   name=name, kind="persistentvolumeclaims")
        return []


class PvStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if PV_PROTECTION not in finalizers:
            finalizers.append(PV_PROTECTION)
        obj["status"] = {"phase": "Pending"}


class SecretStrategy(Strategy):
    """``stringData`` is write-only: the server merges it into ``data`` (base64), as kube-apiserver does."""

    @staticmethod
    def _fold_string_data(obj: Obj) -> None:
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        self._fold_string_data(obj)

    def prepare_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> None:
        if not new.get("type"):
            new["type"] = old.get("type", "Opaque")
        self._fold_string_data(new)

    def validate_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
        if old.get("type") != new.get("type"):
            return [Cause("FieldValueInvalid", f'Invalid value: "{new.get("type")}": field is immutable', "type")]
        return []


class StorageClassStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")


# -- statefulsets -------------------------------------------------------------------------------------
# ValidateStatefulSetUpdate as of 1.33 (kubernetes#130263 made revisionHistoryLimit mutable).
_STS_FORBIDDEN = ("Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                  "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                  "'minReadySeconds' are forbidden")
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def default_statefulset_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    default_pod_template(spec.setdefault("template", {}))
    for claim in spec.get("volumeClaimTemplates") or []:
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        claim.setdefault("metadata", {})
        claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        claim.setdefault("status", {"phase": "Pending"})


class StatefulSetStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        default_statefulset_spec(obj.setdefault("spec", {}))
        obj["status"] = {"replicas": 0, "availableReplicas": 0}

    def prepare_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> None:
        default_statefulset_spec(new.setdefault("spec", {}))

    def validate_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> list[Cause]:
        from devcluster.selectors import LabelSelector
        from devcluster.validation import go_quote, is_dns1123_label

        spec = obj["spec"]
        causes = []
        service_name = spec.get("serviceName")
        if service_name:  # 1.33+ (kubernetes#130233): it becomes the pods' spec.subdomain, a DNS label
            causes += [Cause("FieldValueInvalid", f"Invalid value: {go_quote(service_name)}: {msg}", "spec.serviceName")
                       for msg in is_dns1123_label(service_name)]
        selector = spec.get("selector")
        if not selector:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.selector"))
        else:
            labels = (spec["template"].get("metadata") or {}).get("labels") or {}
            if not LabelSelector.from_label_selector_object(selector).matches(labels):
                shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
                causes.append(Cause("FieldValueInvalid", f"Invalid value: {shown}: `selector` does not match "
                                    "template `labels`", "spec.template.metadata.labels"))
        if int(spec.get("replicas", 0)) < 0:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {spec['replicas']}: must be greater than or "
                                "equal to 0", "spec.replicas"))
        if spec["podManagementPolicy"] not in ("OrderedReady", "Parallel"):
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{spec["podManagementPolicy"]}": '
                                'supported values: "OrderedReady", "Parallel"', "spec.podManagementPolicy"))
        if spec["updateStrategy"]["type"] not in ("RollingUpdate", "OnDelete"):
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{spec["updateStrategy"]["type"]}": '
                                'supported values: "OnDelete", "RollingUpdate"', "spec.updateStrategy.type"))
        containers = (spec["template"].get("spec") or {}).get("containers")
        if not containers:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.template.spec.containers"))
        return causes

    def validate_update(self, api: ApiServer, rt: ResourceType, old: Obj, new: Obj) -> list[Cause]:
        causes = self.validate_create(api, rt, new)
        frozen_old = {k: v for k, v in (old.get("spec") or {}).items() if k not in _STS_MUTABLE}
        frozen_new = {k: v for k, v in (new.get("spec") or {}).items() if k not in _STS_MUTABLE}
        if frozen_old != frozen_new:
            causes.append(Cause("FieldValueForbidden", _STS_FORBIDDEN, "spec"))
        return causes


class PodDisruptionBudgetStrategy(Strategy):
    def prepare_create(self, api: ApiServer, rt: ResourceType, obj: Obj) -> None:
        obj["status"] = {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}
