"""Fault injection for reliability tests.

Tests arm rules on a running devcluster (through ``DevClusterThread.call`` or the Python API):

- ``fail_next(n, code, verb=..., resource=..., name=...)``: the next ``n`` matching requests fail with
  409 Conflict (``Operation cannot be fulfilled on <resource> "<name>": the object has been modified; ...``,
  the optimistic-concurrency failure a real server gives a write that lost a race), 429 TooManyRequests
  (with Retry-After), 500 InternalError or 503, as a real server under contention or overload would
  answer. ``verb`` is get, list, watch, create, update, patch or delete; ``resource`` is the plural,
  with ``/status`` or ``/scale`` for subresource writes (``statefulsets/scale``): a rule for
  ``statefulsets`` does not hit them. Writes to ``/scale`` (PUT or PATCH) are seen as ``update``;
- ``drop_watches(resource=...)``: end every open watch stream (optionally of one resource) now, and
  ``drop_next_watch_events(n)`` ends streams mid-flight the next ``n`` times an event is due;
- ``expire(...)``: compact the event log so resuming watches get 410 Expired;
- slow or failing pods are kubelet knobs (``devcluster.kubelet``), not API faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devcluster import errors
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
    409: ("Conflict", ""),  # the message names the object: see ``injected_error``
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
                raise injected_error(rule.code, rt.plural, rt.group, name)
        self.rules = [r for r in self.rules if r.remaining > 0]

    def drop_watches(self, resource_key: str | None = None) -> None:
        """End open watch streams now (all, or those of one ``ResourceType.key`` such as ``apps/statefulsets``)."""
        self.store.close_subscriptions(resource_key)

    def expire(self, upto_rv: int | None = None) -> None:
        """Compact the event log (default: everything so far): resuming from an older revision gets 410."""
        self.store.compact(upto_rv)

    def drop_next_watch_events(self, n: int) -> None:
        """The next ``n`` times any watch stream is about to send a live event, end that stream instead
        (the event is not sent; a client resuming from its last revision gets it then)."""
        self._drop_watch_events += n

    def should_drop_watch(self, rt: Any) -> bool:
        if self._drop_watch_events > 0:
            self._drop_watch_events -= 1
            return True
        return False


def injected_error(code: int, resource: str, group: str, name: str) -> ApiError:
    """The error a real server gives for ``code``; ``resource`` may carry a subresource (``pods/status``).

    A 409 is ``errors.NewConflict`` for the main resource, as the registry reports a lost update race:
    ``Operation cannot be fulfilled on statefulsets.apps "web": the object has been modified; ...``.
    """
    if code == 409:
        return errors.conflict(resource.split("/", 1)[0], group, name)
    reason, message = _REASONS[code]
    return ApiError(code, reason, message, retry_after_seconds=1 if code in (429, 503) else None)
