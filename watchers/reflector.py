"""List+watch of one Kubernetes collection with the official (synchronous) ``kubernetes`` client.

Threading model (chosen over a second, asyncio Kubernetes client): each :class:`Reflector` runs the
blocking list and ``watch.Watch().stream(...)`` calls in one dedicated daemon thread and hands events to
the asyncio side through ``loop.call_soon_threadsafe`` into an ``asyncio.Queue``; the handler runs on the
event loop, one event at a time, in resourceVersion order. A dedicated thread (not the default
executor) because a watch blocks for minutes. Stopping calls ``Watch.stop()``, which shuts the socket
down, so the thread ends at once rather than at the next event.

Protocol, as client-go's reflector does it:

- list (paginated, ``limit``/``continue``) -> remember the list's resourceVersion -> watch from it with
  ``allowWatchBookmarks=true`` and a bounded, jittered ``timeoutSeconds``; when the server ends the stream (timeout,
  restart), watch again from the last resourceVersion seen (an event's or a BOOKMARK's);
- ``410 Gone``/``Expired`` (the client's ``Watch`` raises ``ApiException(410)``; with ``timeout_seconds``
  it does not retry first) -> relist;
- any other error -> exponential backoff with jitter, then watch again (or relist if never listed).

A relist is diffed against the objects already known, so handlers see what changed while the watch was
down as ordinary ``ADDED``/``MODIFIED``/``DELETED`` events (``relisted=True``): nothing is lost, only
intermediate states are collapsed. Events carry the previous version of the object (``old``), which is
what lets handlers decide whether a change matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kubernetes import watch as _watch_module
from kubernetes.client.exceptions import ApiException

from ballast.observability import WATCH_EVENTS, WATCH_RESTARTS

log = logging.getLogger(__name__)

# The kubernetes package ships no type hints; keep its watch module behind Any.
k8s_watch: Any = _watch_module

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ObjectKey = tuple[str, str]  # (namespace, name)


def object_key(obj: Obj) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass(frozen=True)
class ObjectEvent:
    """A change to one object; ``old`` is the version known before it (``None`` for a first sighting)."""

    type: EventType
    obj: Obj
    old: Obj | None
    relisted: bool = False

    @property
    def key(self) -> ObjectKey:
        return object_key(self.obj)


@dataclass
class Backoff:
    """Exponential backoff with full jitter, reset after a success."""

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    _current: float = field(default=0.0, init=False)

    def next(self) -> float:
        self._current = self.initial if self._current == 0 else min(self.maximum, self._current * self.factor)
        return random.uniform(self._current / 2, self._current)

    def reset(self) -> None:
        self._current = 0.0


Handler = Callable[[ObjectEvent], Awaitable[None]]


class Reflector:
    """Keep one collection in sync and feed its changes to an async handler.

    ``list_fn(*list_args, **kwargs)`` is a list function of the ``kubernetes`` client, e.g.
    ``CoreV1Api.list_namespaced_pod`` with ``("ns",)`` or ``CustomObjectsApi.list_cluster_custom_object``
    with ``(group, version, plural)``. ``resource`` names the collection in logs and metrics.
    """

    def __init__(self, resource: str, list_fn: Callable[..., Any], *list_args: Any,
                 label_selector: str | None = None, timeout_seconds: int = 300, page_size: int = 500,
                 backoff: Backoff | None = None) -> None:
        self.resource = resource
        self._list_fn = list_fn
        self._list_args = list_args
        self._selector = {"label_selector": label_selector} if label_selector else {}
        self.timeout_seconds = timeout_seconds
        self.page_size = page_size
        self._backoff = backoff or Backoff()
        self.known: dict[ObjectKey, Obj] = {}  # touched by the reflector thread only
        self.resource_version: str | None = None
        self.synced = threading.Event()  # set after the first successful list
        self._stop = threading.Event()
        self._watch: Any = None
        self._lock = threading.Lock()

    # -- asyncio side ------------------------------------------------------------------------------
    async def run(self, handler: Handler) -> None:
        """Run until cancelled: events reach ``handler`` in order; a handler error is logged and skipped
        (a watcher must not die on one bad object)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ObjectEvent] = asyncio.Queue()
        self._stop.clear()
        thread = threading.Thread(target=self._thread_main, args=(loop, queue), daemon=True,
                                  name=f"reflector-{self.resource}")
        thread.start()
        try:
            while True:
                event = await queue.get()
                WATCH_EVENTS.labels(resource=self.resource, type=event.type).inc()
                try:
                    await handler(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("handling %s %s %s/%s failed", event.type, self.resource, *event.key)
        finally:
            self.stop()
            await asyncio.to_thread(thread.join, 5.0)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._watch is not None:
                self._watch.stop()

    # -- thread side -------------------------------------------------------------------------------
    def _thread_main(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[ObjectEvent]) -> None:
        def emit(event: ObjectEvent) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed while stopping
                loop.call_soon_threadsafe(queue.put_nowait, event)

        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._relist(emit)
                    self._backoff.reset()
                self._watch_once(emit)
                WATCH_RESTARTS.labels(resource=self.resource, reason="closed").inc()
            except ApiException as err:
                if self._stop.is_set():
                    break
                if err.status == 410:
                    # Too old to resume: list again (client-go does the same); no backoff needed.
                    log.info("%s watch expired at resourceVersion %s; relisting", self.resource,
                             self.resource_version)
                    WATCH_RESTARTS.labels(resource=self.resource, reason="expired").inc()
                    self.resource_version = None
                    continue
                self._retry_after_error(err)
            except Exception as err:  # connection refused/reset, bad responses, ...
                if self._stop.is_set():
                    break
                self._retry_after_error(err)

    def _retry_after_error(self, err: BaseException) -> None:
        delay = self._backoff.next()
        log.warning("%s list/watch failed (%s: %s); retrying in %.1fs", self.resource, type(err).__name__,
                    err, delay)
        WATCH_RESTARTS.labels(resource=self.resource, reason="error").inc()
        self._stop.wait(delay)

    def _relist(self, emit: Callable[[ObjectEvent], None]) -> None:
        items: dict[ObjectKey, Obj] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {**self._selector, "limit": self.page_size, "_preload_content": False,
                                      "_request_timeout": 60}
            if token:
                kwargs["_continue"] = token
            resp = self._list_fn(*self._list_args, **kwargs)
            body = json.loads(resp.data)
            for item in body.get("items") or []:
                items[object_key(item)] = item
            meta = body.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                list_rv = str(meta.get("resourceVersion") or "")
                break
        # Diff against what handlers already know, so a relist after 410 loses no change.
        for key, obj in items.items():
            old = self.known.get(key)
            if old is None:
                emit(ObjectEvent("ADDED", obj, None, relisted=True))
            elif _rv(old) != _rv(obj):
                emit(ObjectEvent("MODIFIED", obj, old, relisted=True))
        for key, old in self.known.items():
            if key not in items:
                emit(ObjectEvent("DELETED", old, old, relisted=True))
        self.known = items
        self.resource_version = list_rv
        self.synced.set()

    def _watch_once(self, emit: Callable[[ObjectEvent], None]) -> None:
        # return_type "object": keep the JSON dicts; no model deserialisation of every event.
        w = k8s_watch.Watch(return_type="object")
        with self._lock:
            if self._stop.is_set():
                return
            self._watch = w
        # Jittered like client-go (timeout..2*timeout) so many watches do not all reconnect at once.
        timeout = int(self.timeout_seconds * (1 + random.random()))
        try:
            stream = w.stream(self._list_fn, *self._list_args, **self._selector,
                              resource_version=self.resource_version, allow_watch_bookmarks=True,
                              timeout_seconds=timeout,
                              # A dead connection must not hang us past the server-side timeout.
                              _request_timeout=(10, timeout + 30))
            for raw in stream:
                self._backoff.reset()
                kind = raw.get("type")
                obj = raw.get("raw_object") or {}
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                key = object_key(obj)
                old = self.known.get(key)
                if kind == "DELETED":
                    self.known.pop(key, None)
                else:
                    self.known[key] = obj
                if rv:
                    self.resource_version = rv
                emit(ObjectEvent(kind, obj, old))
        finally:
            with self._lock:
                self._watch = None


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
