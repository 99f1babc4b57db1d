"""Kubernetes API helpers shared by the activities: typed calls returning plain JSON, and error classification.

Objects are handled as the JSON the API server sends (``_preload_content=False``), never as the client's
model classes: the renderer produces dicts, the spec-hash is computed over dicts, and a round trip through
the models would drop fields the client version does not know.

Error classification (what Temporal retries):

* 409 Conflict / AlreadyExists: the caller re-reads and tries again a few times (optimistic concurrency),
  then gives up with a retryable error;
* 400 / 422 on the operator's own writes: the object is invalid and retrying cannot help ->
  ``ApplicationError(type="InvalidManifest", non_retryable=True)`` carrying the API server's message;
* everything else (429, 5xx, connection errors, 403 until someone fixes RBAC): retryable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError

JSON = dict[str, Any]

INVALID_MANIFEST = "InvalidManifest"
OWNERSHIP_CONFLICT = "OwnershipConflict"
KUBERNETES_API_ERROR = "KubernetesApiError"
CONFLICT_RETRIES = 5


def api_message(err: ApiException) -> str:
    """The ``message`` of the Status the API server answered with (else the HTTP reason)."""
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{err.status} {err.reason}"


def write_error(err: ApiException, what: str) -> Exception:
    """Classify a failed write of ``what`` (e.g. ``"StatefulSet/demo-broker"``): invalid or transient."""
    if err.status in (400, 422):
        return ApplicationError(f"{what}: {api_message(err)}", type=INVALID_MANIFEST, non_retryable=True)
    return retryable(err, what)


def retryable(err: ApiException, what: str) -> ApplicationError:
    return ApplicationError(f"{what}: HTTP {err.status}: {api_message(err)}", type=KUBERNETES_API_ERROR)


def load(response: Any) -> JSON:
    """The JSON body of a ``_preload_content=False`` response."""
    data: JSON = json.loads(response.data)
    return data


@dataclass(frozen=True)
class KindApi:
    """Typed API methods of one namespaced kind (``read_namespaced_<snake>`` and friends)."""

    kind: str
    api: Any
    snake: str

    def _method(self, verb: str) -> Callable[..., Any]:
        method: Callable[..., Any] = getattr(self.api, f"{verb}_namespaced_{self.snake}")
        return method

    def read(self, namespace: str, name: str) -> JSON | None:
        """The live object, or None when it does not exist."""
        try:
            return load(self._method("read")(name, namespace, _preload_content=False))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create(self, namespace: str, body: JSON) -> JSON:
        return load(self._method("create")(namespace, body, _preload_content=False))

    def replace(self, namespace: str, name: str, body: JSON) -> JSON:
        return load(self._method("replace")(name, namespace, body, _preload_content=False))

    def delete(self, namespace: str, name: str, propagation: str = "Background") -> bool:
        """Request deletion; False if it was already gone."""
        try:
            self._method("delete")(name, namespace, body=k8s.V1DeleteOptions(propagation_policy=propagation),
                                   _preload_content=False)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def list(self, namespace: str, label_selector: str) -> list[JSON]:
        items: list[JSON] = load(self._method("list")(namespace, label_selector=label_selector,
                                                      _preload_content=False)).get("items") or []
        return items


def kind_apis(api_client: k8s.ApiClient) -> dict[str, KindApi]:
    """The kinds the renderer produces plus the ones the activities read (Pods, PVCs, Events)."""
    core = k8s.CoreV1Api(api_client)
    apps = k8s.AppsV1Api(api_client)
    policy = k8s.PolicyV1Api(api_client)
    table = {
        "ConfigMap": (core, "config_map"),
        "Service": (core, "service"),
        "Pod": (core, "pod"),
        "PersistentVolumeClaim": (core, "persistent_volume_claim"),
        "Event": (core, "event"),
        "StatefulSet": (apps, "stateful_set"),
        "PodDisruptionBudget": (policy, "pod_disruption_budget"),
    }
    return {kind: KindApi(kind, api, snake) for kind, (api, snake) in table.items()}
