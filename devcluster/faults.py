"""Fault injection for reliability tests.

Tests arm rules on a running devcluster (through ``DevClusterThread.call`` or the Python API):

- ``fail_next(n, code, verb=..., resource=..., name=...)``: the next ``n`` matching requests fail with
  409 Conflict, 429 TooManyRequests (with Retry-After), 500 InternalError or 503, as a real server
  under contention or overload would answer;
- ``drop_watches(resource=...)``: end every open watch stream (optionally of one resource) now, and
  ``drop_next_watch_events(n)`` ends streams mid-flight the next ``n`` times an event is due;
- ``expire(...)``: compact the event log so resuming watches get 410 Expired;
- slow or failing pods are kubelet knobs (``devcluster.kubelet``), not API faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devcluster.errors import ApiError


@dataclass
class FailureRule:
    remaining: int
    code: int
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None

    def matches(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        return ((self.verb is None or self.verb == verb)
                and (self.resource is None or self.resource == resource)
                and (self.namespace is None or self.namespace == namespace)
                and (self.name is None or self.name == name))


_REASONS = {
    409: ("Conflict", "Operation cannot be fulfilled: the object has been modified; please apply your changes "
          "to the latest version and try again"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
}


class FaultInjector:
    def __init__(self) -> None:
        self.rules: list[FailureRule] = []
        self.store: Any = None  # set by the cluster for watch faults
        self._drop_watch_events = 0
        self.injected: list[tuple[str, str, str, int]] = []

    def fail_next(self, n: int, code: int, *, verb: str | None = None, resource: str | None = None,
                  namespace: str | None = None, name: str | None = None) -> FailureRule:
        if code not in _REASONS:
            raise ValueError(f"unsupported fault code {code}; choose one of {sorted(_REASONS)}")
        rule = FailureRule(n, code, verb, resource, namespace, name)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()
        self._drop_watch_events = 0

    def check(self, verb: str, rt: Any, namespace: str, name: str) -> None:
        for rule in self.rules:
            if rule.remaining > 0 and rule.matches(verb, rt.plural, namespace, name):
                rule.remaining -= 1
                self.injected.append((verb, rt.plural, name, rule.code))
                reason, message = _REASONS[rule.code]
                raise ApiError(rule.code, reason, message,
                               retry_after_seconds=1 if rule.code in (429, 503) else None)
        self.rules = [r for r in self.rules if r.remaining > 0]

    def drop_watches(self, resource_key: str | None = None) -> None:
        """End open watch streams now (all, or those of one ``ResourceType.key`` such as ``apps/statefulsets``)."""
        self.store.close_subscriptions(resource_key)

    def expire(self, upto_rv: int | None = None) -> None:
        """Compact the event log (default: everything so far): resuming from an older revision gets 410."""
        self.store.compact(upto_rv)

    def drop_next_watch_events(self, n: int) -> None:
        self._drop_watch_events += n

    def should_drop_watch(self, rt: Any) -> bool:
        if self._drop_watch_events > 0:
            self._drop_watch_events -= 1
            return True
        return False
