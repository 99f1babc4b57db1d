"""What a fresh devcluster contains, and which strategies and controllers it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devcluster import builtins, crds
from devcluster.api import ApiServer, Strategy
from devcluster.errors import ApiError

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster, DevClusterConfig

DEFAULT_STORAGE_CLASS = "standard"
PROVISIONER = "devcluster.ballast.dev/hostpath"


def install_strategies(api: ApiServer) -> None:
    strategies: dict[str, Strategy] = {
        "/namespaces": builtins.NamespaceStrategy(),
        "/pods": builtins.PodStrategy(),
        "/services": builtins.ServiceStrategy(),
        "/endpoints": builtins.EndpointsStrategy(),
        "/persistentvolumeclaims": builtins.PvcStrategy(),
        "/persistentvolumes": builtins.PvStrategy(),
        "/secrets": builtins.SecretStrategy(),
        "apps/statefulsets": builtins.StatefulSetStrategy(),
        "policy/poddisruptionbudgets": builtins.PodDisruptionBudgetStrategy(),
        "storage.k8s.io/storageclasses": builtins.StorageClassStrategy(),
        "apiextensions.k8s.io/customresourcedefinitions": crds.CrdStrategy(),
    }
    api.strategies.update(strategies)
    crds.install_cleanup_listener(api)


def _ensure(api: ApiServer, group: str, plural: str, body: dict[str, Any], namespace: str | None = None) -> None:
    rt = api.lookup(group, "v1", plural)
    try:
        api.create(rt, namespace, body)
    except ApiError as err:
        if err.code != 409:
            raise


def seed(api: ApiServer, config: DevClusterConfig) -> None:
    from devcluster.cluster import DEFAULT_NAMESPACES

    for ns in DEFAULT_NAMESPACES:
        _ensure(api, "", "namespaces", {"metadata": {"name": ns}})
    _ensure(api, "storage.k8s.io", "storageclasses", {
        "metadata": {"name": DEFAULT_STORAGE_CLASS,
                     "annotations": {builtins.DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": PROVISIONER, "allowVolumeExpansion": True, "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate"})
    _ensure(api, "", "services", {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}},
        namespace="default")


def make_controllers(cluster: DevCluster) -> list[Any]:
    """The simulated control plane and node agents, in start order."""
    from devcluster.controllers import all_controllers

    return all_controllers(cluster)
