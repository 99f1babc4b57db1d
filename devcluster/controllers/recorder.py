"""Event recording as the simulated components' real counterparts do it.

Two flavours exist in a real cluster and both are read back through ``core/v1`` Events:

- the legacy recorder (kubelet, external-provisioner/resizer): ``source.component``/``source.host``,
  ``firstTimestamp``/``lastTimestamp`` and ``count``; an identical event (same object, reason,
  message, type and source) is folded into the existing one by bumping ``count`` and
  ``lastTimestamp`` -- client-go's EventCorrelator;
- the ``events.k8s.io`` recorder (kube-scheduler): ``eventTime``, ``action``,
  ``reportingComponent``/``reportingInstance``, empty ``source``; a repeat becomes a ``series``.

Events of cluster-scoped objects go to the ``default`` namespace. Write failures (injected faults)
are dropped, as client-go's recorder drops events it cannot write after its retries.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from devcluster import clock
from devcluster.api import ApiServer
from devcluster.errors import ApiError
from devcluster.store import Obj

log = logging.getLogger("devcluster.events")


def object_reference(obj: Obj, field_path: str | None = None) -> dict[str, Any]:
    meta = obj["metadata"]
    ref: dict[str, Any] = {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", ""),
                           "name": meta["name"], "uid": meta.get("uid", ""),
                           "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class EventRecorder:
    """Writes Events through the ApiServer for one reporting component."""

    def __init__(self, api: ApiServer, component: str, host: str | None = None, *,
                 new_api: bool = False, instance: str | None = None) -> None:
        self.api = api
        self.component = component
        self.host = host
        self.new_api = new_api
        self.instance = instance or (f"{component}-{host}" if new_api and host else host or "")
        self._rt = api.lookup("", "v1", "events")
        self._seen: dict[tuple[str, ...], tuple[str, str]] = {}

    def event(self, obj: Obj, type_: str, reason: str, message: str, *, action: str | None = None,
              field_path: str | None = None, host: str | None = None) -> None:
        ref = object_reference(obj, field_path)
        namespace = ref.get("namespace") or "default"
        key = (namespace, ref["kind"], ref["name"], ref["uid"], field_path or "", reason, message, type_,
               host or self.host or "")
        try:
            if self._bump(key):
                return
            body = self._new_event(ref, type_, reason, message, action, host or self.host)
            created = self.api.create(self._rt, namespace, body)
            self._seen[key] = (namespace, created["metadata"]["name"])
        except ApiError as err:
            log.debug("dropping event %s %s: %s", reason, ref["name"], err)

    def _new_event(self, ref: dict[str, Any], type_: str, reason: str, message: str, action: str | None,
                   host: str | None) -> Obj:
        name = f"{ref['name']}.{time.time_ns():x}"
        body: Obj = {"metadata": {"name": name, "namespace": ref.get("namespace") or "default"},
                     "involvedObject": ref, "reason": reason, "message": message, "type": type_}
        if self.new_api:
            body.update({"source": {}, "eventTime": clock.micro_time(), "firstTimestamp": None,
                         "lastTimestamp": None, "action": action or reason,
                         "reportingComponent": self.component, "reportingInstance": self.instance})
        else:
            now = clock.rfc3339()
            source = {"component": self.component}
            if host:
                source["host"] = host
            body.update({"source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                         "eventTime": None, "reportingComponent": self.component,
                         "reportingInstance": host or ""})
        return body

    def _bump(self, key: tuple[str, ...]) -> bool:
        """Fold a repeat into the stored event; False when there is none to fold into."""
        seen = self._seen.get(key)
        if seen is None:
            return False
        current = self.api.try_get(self._rt, seen[0], seen[1])
        if current is None:
            del self._seen[key]
            return False
        new = copy.deepcopy(current)
        if self.new_api:
            series = new.get("series") or {"count": 1}
            new["series"] = {"count": int(series.get("count", 1)) + 1, "lastObservedTime": clock.micro_time()}
        else:
            new["count"] = int(new.get("count") or 1) + 1
            new["lastTimestamp"] = clock.rfc3339()
        self.api.update(self._rt, seen[0], seen[1], new)
        return True
