"""Watch streams: newline-framed JSON events served from the store's event log.

Semantics follow kube-apiserver's watch cache:
- ``resourceVersion`` unset or ``"0"``: synthetic ADDED for every matching object, then live events;
- ``resourceVersion=N``: every event after N, then live; N older than the log -> one ERROR event (410);
- ``sendInitialEvents=true`` (watch-list, kubectl >= 1.35): ADDED for every object, then a BOOKMARK
  annotated ``k8s.io/initial-events-end: "true"``, then live;
- ``resourceVersion=N`` newer than the store: no error; only events after N are sent (the cacher's
  watchers drop everything at or below the requested revision), so the stream stays quiet until then;
- watch-list from a revision newer than the store: the server waits up to ``TOO_LARGE_RV_WAIT`` seconds
  for it, then sends one ERROR event, 504 Timeout ``Too large resource version: N, current: M`` with
  cause ``ResourceVersionTooLarge`` (the cacher's ``waitUntilFreshAndBlock``);
- selectors: an object that starts matching arrives as ADDED; one that stops matching arrives as
  DELETED carrying its *previous* state (which still matched) with the event's resourceVersion, as the
  watch cache sends ``PrevObject``;
- ``allowWatchBookmarks``: periodic BOOKMARK events carrying the newest revision;
- ``timeoutSeconds``: the server ends the stream.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devcluster import errors
from devcluster.registry import ResourceType
from devcluster.store import ExpiredError, Obj, Store, WatchEvent

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# How long a watch-list from a future revision waits for the store to catch up (kube-apiserver's
# blockTimeout in waitUntilFreshAndBlock is 3 s); a module attribute so tests may shorten it.
TOO_LARGE_RV_WAIT = 3.0


@dataclass
class WatchParams:
    resource_version: str | None
    send_initial_events: bool
    allow_bookmarks: bool
    timeout_seconds: float | None

    @classmethod
    def from_query(cls, q: Any) -> WatchParams:
        timeout = q.get("timeoutSeconds")
        sie = q.get("sendInitialEvents")
        if sie is not None and sie not in ("true", "false"):
            raise errors.bad_request(f"invalid value for sendInitialEvents: {sie}")
        return cls(q.get("resourceVersion") or None, sie == "true", q.get("allowWatchBookmarks") == "true",
                   float(timeout) if timeout not in (None, "") else None)

    def validate(self, resource_version_match: str | None) -> None:
        if self.send_initial_events:
            causes = []
            if resource_version_match != "NotOlderThan":
                causes.append(errors.Cause("FieldValueForbidden", "Forbidden: sendInitialEvents requires setting "
                                           "resourceVersionMatch to NotOlderThan", "resourceVersionMatch"))
            if not self.allow_bookmarks:
                causes.append(errors.Cause("FieldValueForbidden", "Forbidden: sendInitialEvents requires setting "
                                           "allowWatchBookmarks to true", "allowWatchBookmarks"))
            if causes:
                err = errors.invalid("ListOptions", "meta.k8s.io", "", causes)
                err.message = err.message.replace('ListOptions.meta.k8s.io "" is invalid', "ListOptions.meta.k8s.io "
                                                  '"" is invalid')
                raise err


def _with_type(rt: ResourceType, obj: Obj) -> Obj:
    if "kind" in obj and "apiVersion" in obj:
        return obj
    return {"kind": rt.kind, "apiVersion": rt.api_version, **obj}


def _frame(event_type: str, obj: Obj) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> Obj:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


def translate(event: WatchEvent, matches: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    """Map a stored event to what a watcher with a selector sees (or None)."""
    now = matches(event.obj)
    if event.type == "ADDED":
        return ("ADDED", event.obj) if now else None
    if event.type == "DELETED":
        before = matches(event.old) if event.old is not None else now
        return ("DELETED", event.obj) if (before or now) else None
    before = matches(event.old) if event.old is not None else False
    if before and now:
        return "MODIFIED", event.obj
    if now:
        return "ADDED", event.obj
    if before and event.old is not None:
        return "DELETED", _left_selector(event.old, event.rv)
    return None


def _left_selector(old: Obj, rv: int) -> Obj:
    """The DELETED object for a watcher whose selector the object stopped matching: its previous state
    (the one the watcher last saw matching) stamped with the event's revision, so a client resuming
    from it does not replay the change. Shallow copies: stored objects are never mutated."""
    return {**old, "metadata": {**old["metadata"], "resourceVersion": str(rv)}}


def too_large(requested: int, current: int) -> errors.ApiError:
    """``storage.NewTooLargeResourceVersionError``: 504 Timeout, retry after 1 s, cause ResourceVersionTooLarge."""
    err = errors.ApiError(504, "Timeout", f"Timeout: Too large resource version: {requested}, current: {current}",
                          retry_after_seconds=1)
    err.causes = [errors.Cause("ResourceVersionTooLarge", "Too large resource version")]
    return err


async def serve_watch(request: web.Request, store: Store, rt: ResourceType, namespace: str | None,
                      matches: Callable[[Obj], bool], params: WatchParams, *,
                      bookmark_interval: float, faults: Any = None,
                      transform: Callable[[Obj], Obj] | None = None) -> web.StreamResponse:
    """Serve one watch. ``transform`` (content negotiation, e.g. ``as=Table``) maps each event object
    except ERROR statuses, in stream order; transformed frames are never shared between watchers."""

    def framed(event_type: str, obj: Obj) -> bytes:
        return _frame(event_type, transform(obj) if transform is not None else obj)

    # Subscribe before reading the log/snapshot so nothing committed in between is lost; duplicates
    # are skipped by revision.
    sub = store.subscribe(rt.key, namespace)
    resp: web.StreamResponse | None = None
    try:
        initial: list[tuple[str, Obj]] = []
        end_marker = False
        rv = params.resource_version
        since: int | None = None
        if rv is not None and rv != "0":
            try:
                since = int(rv)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {rv}") from None
        if params.send_initial_events and since is not None and since > store.current_rv:
            # Watch-list must start at least as fresh as the requested revision: wait a bounded time.
            loop = asyncio.get_running_loop()
            give_up = loop.time() + TOO_LARGE_RV_WAIT
            while store.current_rv < since and loop.time() < give_up:
                await asyncio.sleep(min(0.05, max(0.0, give_up - loop.time())))
            if store.current_rv < since:
                resp = await _start(request)
                await resp.write(_frame("ERROR", too_large(since, store.current_rv).to_status()))
                return resp
        # Everything runs on one event loop, so the snapshot below and the subscription agree exactly.
        last_sent = store.current_rv
        # A plain watch from a revision the store has not reached yet sends only events after it.
        floor = since if since is not None and not params.send_initial_events and since > last_sent else None
        try:
            if params.send_initial_events or since is None:
                initial = [("ADDED", o) for o in store.list(rt.key, namespace) if matches(o)]
                end_marker = params.send_initial_events
            elif floor is not None:
                last_sent = floor
            else:
                for ev in store.events_since(since, rt.key, namespace):
                    shown = translate(ev, matches)
                    if shown:
                        initial.append(shown)
        except ExpiredError as exc:
            resp = await _start(request)
            status = errors.gone(str(exc)).to_status()
            await resp.write(_frame("ERROR", status))
            return resp

        resp = await _start(request)
        for event_type, obj in initial:
            await resp.write(framed(event_type, _with_type(rt, obj)))
        if end_marker:
            await resp.write(framed("BOOKMARK", bookmark(rt, last_sent, initial_end=True)))

        # kube-apiserver picks a random timeout in [minRequestTimeout, 2*minRequestTimeout) when none is given.
        timeout = params.timeout_seconds if params.timeout_seconds is not None else 1800 * (1 + random.random())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + bookmark_interval
        while True:
            now = loop.time()
            if now >= deadline:
                break
            wait = deadline - now
            if params.allow_bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            try:
                # asyncio.timeout, not wait_for: wait_for can swallow cancellation on Python 3.11.
                async with asyncio.timeout(wait):
                    event = await sub.queue.get()
            except TimeoutError:
                if params.allow_bookmarks and loop.time() >= next_bookmark:
                    # The cacher drops bookmarks at or below a watcher's starting revision.
                    if floor is None or store.current_rv > floor:
                        await resp.write(framed("BOOKMARK", bookmark(rt, store.current_rv)))
                    next_bookmark = loop.time() + bookmark_interval
                continue
            if event is None:  # the server (or a fault) ends the stream
                break
            if event.rv <= last_sent:
                continue
            last_sent = event.rv
            shown = translate(event, matches)
            if shown is None:
                continue
            if faults is not None and faults.should_drop_watch(rt):
                break
            if transform is not None:
                await resp.write(framed(shown[0], _with_type(rt, shown[1])))
                continue
            frame = event.frames.get(shown[0])
            if frame is None:
                frame = event.frames[shown[0]] = _frame(shown[0], _with_type(rt, shown[1]))
            await resp.write(frame)
        return resp
    except ConnectionResetError:
        # The client went away mid-stream (kubectl get -w interrupted): a normal end of a watch.
        if resp is None:
            raise
        return resp
    except asyncio.CancelledError:
        raise
    finally:
        store.unsubscribe(sub)


async def _start(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp
