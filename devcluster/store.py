"""Object storage with one global resourceVersion counter and a bounded event log.

Plays etcd's part: every committed write gets the next revision, which becomes the object's
``metadata.resourceVersion`` (a string on the wire). The event log holds the last ``window`` writes of
all kinds; a watch that asks to resume from a revision that fell out of the log gets 410 Expired, exactly
like a real apiserver after etcd compaction.

Stored objects are treated as immutable: callers never mutate what ``get``/``list`` return; a write
always passes a new dict. That makes reads free of copying and keeps the event log consistent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: str  # ResourceType.key of the object
    obj: Obj
    old: Obj | None
    # Serialized watch frames by event type, shared by every watcher that sends this event.
    frames: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


@dataclass(eq=False)
class Subscription:
    """A live feed of committed events for one resource key (optionally one namespace)."""

    key: str
    namespace: str | None
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


class ExpiredError(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


def object_key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


class Store:
    def __init__(self, window: int = 10_000) -> None:
        self._buckets: dict[str, dict[tuple[str, str], Obj]] = {}
        self._log: deque[WatchEvent] = deque()
        self._window = window
        self._compacted_rv = 0
        self._rv = 0
        self._subs: dict[str, set[Subscription]] = {}
        self.listeners: list[Callable[[WatchEvent], None]] = []

    # -- revisions ---------------------------------------------------------------------------------
    @property
    def current_rv(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        return self._compacted_rv

    def set_window(self, window: int) -> None:
        self._window = max(1, window)
        self._trim()

    def compact(self, upto_rv: int | None = None) -> None:
        """Drop every logged event at or below ``upto_rv`` (default: all), like etcd compaction."""
        limit = self._rv if upto_rv is None else upto_rv
        while self._log and self._log[0].rv <= limit:
            self._compacted_rv = self._log.popleft().rv
        self._compacted_rv = max(self._compacted_rv, min(limit, self._rv))

    def _trim(self) -> None:
        while len(self._log) > self._window:
            self._compacted_rv = self._log.popleft().rv

    # -- reads -------------------------------------------------------------------------------------
    def get(self, key: str, namespace: str, name: str) -> Obj | None:
        return self._buckets.get(key, {}).get((namespace, name))

    def list(self, key: str, namespace: str | None = None) -> list[Obj]:
        bucket = self._buckets.get(key, {})
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys]

    def count(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    # -- writes ------------------------------------------------------------------------------------
    def commit(self, key: str, obj: Obj, event_type: str, old: Obj | None) -> Obj:
        """Store ``obj`` (or remove it for DELETED) at the next revision and publish the event."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._buckets.setdefault(key, {})
        if event_type == "DELETED":
            bucket.pop(object_key(obj), None)
        else:
            bucket[object_key(obj)] = obj
        event = WatchEvent(self._rv, event_type, key, obj, old)
        self._log.append(event)
        self._trim()
        for sub in self._subs.get(key, ()):
            if sub.namespace is None or sub.namespace == obj["metadata"].get("namespace", ""):
                sub.queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)
        return obj

    def drop_bucket(self, key: str) -> None:
        self._buckets.pop(key, None)

    # -- watch -------------------------------------------------------------------------------------
    def subscribe(self, key: str, namespace: str | None) -> Subscription:
        sub = Subscription(key, namespace)
        self._subs.setdefault(key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.get(sub.key, set()).discard(sub)

    def close_subscriptions(self, key: str | None = None) -> None:
        """End live watches (all, or of one key): each gets a ``None`` sentinel."""
        for k, subs in self._subs.items():
            if key is None or k == key:
                for sub in subs:
                    sub.queue.put_nowait(None)

    def events_since(self, rv: int, key: str, namespace: str | None) -> list[WatchEvent]:
        """Logged events after ``rv`` for ``key``; ``ExpiredError`` if some of them were compacted."""
        if rv < self._compacted_rv:
            raise ExpiredError(rv, self._compacted_rv + 1)
        out = []
        for ev in reversed(self._log):
            if ev.rv <= rv:
                break
            if ev.key == key and (namespace is None or ev.obj["metadata"].get("namespace", "") == namespace):
                out.append(ev)
        out.reverse()
        return out
