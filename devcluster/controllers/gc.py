"""The garbage collector of kube-controller-manager: ownerReferences, cascading and orphaning deletion.

Contract (as in ``pkg/controller/garbagecollector``):

- A dependent whose owners are all gone is deleted. An owner is looked up by the reference's
  apiVersion/kind and name (in the dependent's namespace when the owner kind is namespaced) and is
  *absent* if it does not exist or has another uid; a reference to an object that never existed is
  therefore dangling and its dependent is collected too. A dependent that still has a live owner only
  loses its references to absent owners.
- Background (the API default): the owner is removed at once; its dependents are deleted afterwards.
- Foreground: the owner keeps ``deletionTimestamp`` and the ``foregroundDeletion`` finalizer (added by
  ``ApiServer.delete``) while the collector deletes its dependents (themselves in foreground when they
  have dependents). Only dependents whose reference has ``blockOwnerDeletion: true`` hold the owner;
  when none is left the finalizer is removed and the owner goes.
- Orphan: the owner's ``orphan`` finalizer makes the collector remove the references to it from every
  dependent, then the finalizer.
- References the collector cannot resolve (unknown kind, or a cluster-scoped dependent naming a
  namespaced owner) keep the dependent, as the real collector does. Events are never collected.

The collector is driven by store events (``Store.listeners``) through a deduplicating work queue,
with a periodic full resync as a backstop; every write goes through ``ApiServer``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from devcluster.api import ApiServer, DeleteOptions
from devcluster.controllers.workqueue import WorkQueue, run_queue
from devcluster.errors import ApiError
from devcluster.registry import ResourceType
from devcluster.store import Obj, WatchEvent

if TYPE_CHECKING:
    from devcluster.cluster import DevCluster

log = logging.getLogger("devcluster.gc")

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# kube-controller-manager's DefaultIgnoredResources: events are never garbage collected.
IGNORED_KEYS = frozenset({"/events", "events.k8s.io/events"})

Ident = tuple[str, str, str]  # (ResourceType.key, namespace, name)


def resource_types(api: ApiServer) -> list[ResourceType]:
    """One served type per storage key (several versions of a CRD share one bucket)."""
    seen: dict[str, ResourceType] = {}
    for rt in api.registry:
        seen.setdefault(rt.key, rt)
    return list(seen.values())


def _refs(obj: Obj) -> list[dict[str, Any]]:
    return [r for r in obj["metadata"].get("ownerReferences") or [] if isinstance(r, dict)]


def _finalizers(obj: Obj) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


def _deleting(obj: Obj, finalizer: str) -> bool:
    meta = obj["metadata"]
    return bool(meta.get("deletionTimestamp")) and finalizer in (meta.get("finalizers") or [])


class GarbageCollector:
    """Owner/dependent graph kept from store events; see the module docstring for the contract."""

    def __init__(self, api: ApiServer, resync_seconds: float = 10.0) -> None:
        self.api = api
        self.resync_seconds = resync_seconds
        self.queue: WorkQueue[tuple[str, Ident]] = WorkQueue()
        self._dependents: dict[str, set[Ident]] = {}  # owner uid -> dependents referencing it
        self._owner_uids: dict[Ident, tuple[str, ...]] = {}  # dependent -> owner uids it references
        self._by_uid: dict[str, Ident] = {}
        self._ident_uid: dict[Ident, str] = {}

    @classmethod
    def for_cluster(cls, cluster: DevCluster) -> GarbageCollector:
        return cls(cluster.api, float(cluster.config.extra.get("gc_resync_seconds", 10.0)))

    # -- lifecycle -----------------------------------------------------------------------------------
    async def run(self) -> None:
        self.api.store.listeners.append(self._on_event)
        try:
            self._resync()
            await run_queue(self.queue, self._process, self._resync, self.resync_seconds, "gc")
        finally:
            with contextlib.suppress(ValueError):
                self.api.store.listeners.remove(self._on_event)
            self.queue.close()

    # -- graph ---------------------------------------------------------------------------------------
    def _index(self, ident: Ident, obj: Obj | None) -> None:
        """Record ``obj`` (or its absence) under ``ident`` in the uid and owner indexes."""
        old_uid = self._ident_uid.pop(ident, None)
        if old_uid is not None and self._by_uid.get(old_uid) == ident:
            del self._by_uid[old_uid]
        for uid in self._owner_uids.pop(ident, ()):
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(ident)
                if not deps:
                    del self._dependents[uid]
        if obj is None:
            return
        uid = obj["metadata"].get("uid", "")
        self._ident_uid[ident] = uid
        self._by_uid[uid] = ident
        owners = tuple(str(r.get("uid", "")) for r in _refs(obj))
        if owners:
            self._owner_uids[ident] = owners
            for owner in owners:
                self._dependents.setdefault(owner, set()).add(ident)

    def _resync(self) -> None:
        """Rebuild the graph from storage and queue everything the collector may have to act on."""
        self._dependents.clear()
        self._owner_uids.clear()
        self._by_uid.clear()
        self._ident_uid.clear()
        with_refs: list[tuple[Ident, Obj]] = []
        waiting: set[str] = set()
        for rt in resource_types(self.api):
            if rt.key in IGNORED_KEYS:
                continue
            for obj in self.api.store.list(rt.key):
                ident = (rt.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                self._index(ident, obj)
                if _refs(obj):
                    with_refs.append((ident, obj))
                if _deleting(obj, FOREGROUND):
                    waiting.add(obj["metadata"].get("uid", ""))
                if _deleting(obj, FOREGROUND) or _deleting(obj, ORPHAN):
                    self.queue.add(("owner", ident))
        # Only dependents that may have lost an owner need a look; live, settled graphs cost nothing.
        for ident, obj in with_refs:
            for ref in _refs(obj):
                owner = self._by_uid.get(str(ref.get("uid", "")))
                if owner is None or owner[2] != ref.get("name") or ref.get("uid") in waiting:
                    self.queue.add(("dependent", ident))
                    break

    def _on_event(self, event: WatchEvent) -> None:
        """Store listener: runs inside a commit, so it only updates indexes and queues work."""
        if event.key in IGNORED_KEYS:
            return
        meta = event.obj["metadata"]
        ident = (event.key, meta.get("namespace", ""), meta["name"])
        old_owner_uids = self._owner_uids.get(ident, ())
        if event.type == "DELETED":
            self._index(ident, None)
            for dep in self._dependents.get(meta.get("uid", ""), ()):
                self.queue.add(("dependent", dep))
            self._queue_owners(old_owner_uids)
            return
        self._index(ident, event.obj)
        old_refs = _refs(event.old) if event.old is not None else []
        refs = _refs(event.obj)
        if refs != old_refs:
            if refs:
                self.queue.add(("dependent", ident))
            # A dependent that dropped (or stopped blocking) an owner may release a foreground owner.
            self._queue_owners(old_owner_uids)
        if _deleting(event.obj, FOREGROUND) or _deleting(event.obj, ORPHAN):
            self.queue.add(("owner", ident))
            if _deleting(event.obj, FOREGROUND) and not (event.old is not None and _deleting(event.old, FOREGROUND)):
                # The owner started waiting for its dependents: they are no longer held by it.
                for dep in self._dependents.get(meta.get("uid", ""), ()):
                    self.queue.add(("dependent", dep))

    def _queue_owners(self, uids: Iterable[str]) -> None:
        for uid in uids:
            owner = self._by_uid.get(uid)
            if owner is not None:
                self.queue.add(("owner", owner))

    # -- work ----------------------------------------------------------------------------------------
    def _process(self, item: tuple[str, Ident]) -> None:
        kind, ident = item
        rt = self.api.registry.by_key(ident[0])
        if rt is None:
            return
        obj = self.api.store.get(*ident)
        if obj is None:
            return
        if kind == "owner":
            self._process_owner(rt, obj)
        else:
            self._attempt_to_delete(rt, obj)

    def _owner_type(self, ref: dict[str, Any]) -> ResourceType | None:
        api_version, kind = str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
        rt = self.api.registry.by_kind(api_version, kind)
        if rt is not None:
            return rt
        # A reference may name another served version of the same group and kind.
        group = api_version.rpartition("/")[0]
        return next((t for t in self.api.registry if t.group == group and t.kind == kind), None)

    def _classify(self, ref: dict[str, Any], namespace: str) -> str:
        """``solid`` | ``dangling`` | ``waiting`` (owner deleting in foreground) | ``unresolvable``."""
        rt = self._owner_type(ref)
        if rt is None or (rt.namespaced and not namespace):
            return "unresolvable"
        owner = self.api.store.get(rt.key, namespace if rt.namespaced else "", str(ref.get("name", "")))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return "dangling"
        return "waiting" if _deleting(owner, FOREGROUND) else "solid"

    def _attempt_to_delete(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        refs = _refs(obj)
        if not refs:
            return
        if meta.get("deletionTimestamp"):
            if FOREGROUND in _finalizers(obj):
                self.queue.add(("owner", (rt.key, meta.get("namespace", ""), meta["name"])))
            return  # already being deleted
        states = [(ref, self._classify(ref, meta.get("namespace", ""))) for ref in refs]
        if any(state == "unresolvable" for _, state in states):
            return  # the real collector keeps retrying (or gives up) without deleting
        if any(state == "solid" for _, state in states):
            gone = {str(ref.get("uid")) for ref, state in states if state in ("dangling", "waiting")}
            if gone:
                self._write_refs(rt, obj, [r for r in refs if str(r.get("uid")) not in gone])
            return
        waiting = any(state == "waiting" for _, state in states)
        dependents = self._dependents.get(meta.get("uid", ""), set())
        if waiting and dependents:
            if any(self._is_deleting_dependents(dep) for dep in dependents):
                # Break a would-be cycle: this object must not block its owners any longer.
                self._write_refs(rt, obj, [{**r, "blockOwnerDeletion": False} if r.get("blockOwnerDeletion")
                                           else r for r in refs])
                obj = self.api.store.get(rt.key, meta.get("namespace", ""), meta["name"]) or obj
            policy = "Foreground"
        elif ORPHAN in _finalizers(obj):
            policy = "Orphan"
        elif FOREGROUND in _finalizers(obj):
            policy = "Foreground"
        else:
            policy = "Background"
        self._delete(rt, obj, policy)

    def _is_deleting_dependents(self, ident: Ident) -> bool:
        obj = self.api.store.get(*ident)
        return obj is not None and _deleting(obj, FOREGROUND)

    def _process_owner(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp"):
            return
        uid = meta["uid"]
        if ORPHAN in _finalizers(obj):
            for dep in sorted(self._dependents.get(uid, set())):
                dep_rt = self.api.registry.by_key(dep[0])
                dep_obj = self.api.store.get(*dep)
                if dep_rt is None or dep_obj is None:
                    continue
                self._write_refs(dep_rt, dep_obj, [r for r in _refs(dep_obj) if r.get("uid") != uid])
            obj = self._remove_finalizer(rt, obj, ORPHAN)
            if obj is None:
                return
        if FOREGROUND in _finalizers(obj):
            blocking = [dep for dep in sorted(self._dependents.get(uid, set())) if self._blocks(dep, uid)]
            if not blocking:
                self._remove_finalizer(rt, obj, FOREGROUND)
                return
            for dep in blocking:
                if not self._is_deleting_dependents(dep):
                    self.queue.add(("dependent", dep))

    def _blocks(self, dep: Ident, owner_uid: str) -> bool:
        obj = self.api.store.get(*dep)
        if obj is None:
            return False
        return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") is True for r in _refs(obj))

    # -- writes (all through the API server) ---------------------------------------------------------
    def _write_refs(self, rt: ResourceType, obj: Obj, refs: list[dict[str, Any]]) -> None:
        if refs == _refs(obj):
            return
        new = copy.deepcopy(obj)
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        try:
            self.api.update(rt, new["metadata"].get("namespace"), new["metadata"]["name"], new)
        except ApiError as err:
            if err.code != 404:
                raise

    def _remove_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> Obj | None:
        """Drop ``finalizer``; returns the object as stored afterwards (None once it is gone)."""
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [f for f in _finalizers(obj) if f != finalizer]
        meta = obj["metadata"]
        try:
            self.api.update(rt, meta.get("namespace"), meta["name"], new)
        except ApiError as err:
            if err.code != 404:
                raise
        return self.api.store.get(rt.key, meta.get("namespace", ""), meta["name"])

    def _delete(self, rt: ResourceType, obj: Obj, policy: str) -> None:
        meta = obj["metadata"]
        log.debug("gc: deleting %s %s/%s (%s)", rt.kind, meta.get("namespace", ""), meta["name"], policy)
        try:
            self.api.delete(rt, meta.get("namespace"), meta["name"],
                            DeleteOptions(propagation_policy=policy, precondition_uid=meta["uid"]))
        except ApiError as err:
            if err.code not in (404, 409):  # gone already, or replaced by a new object of that name
                raise
