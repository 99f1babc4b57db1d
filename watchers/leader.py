"""Leader election among watcher replicas with a ``coordination.k8s.io/v1`` Lease (client-go's algorithm).

Only the leader watches and signals. The Lease is the one object watchers ever write: it coordinates
the replicas and is not cluster state the operator manages (everything else the watchers only read).

Algorithm (as client-go's ``leaderelection`` with a Lease lock):

- every ``retry_period`` a candidate reads the Lease (creating it if absent) and takes it when it is
  free (no holder: a clean release) or expired: the record has not changed for ``leaseDurationSeconds``
  *as measured on this candidate's monotonic clock* since it last saw it change, so clock skew between
  replicas does not matter (a new candidate therefore waits one full lease duration before taking a
  lease held by someone it never saw renew);
- every write is an update carrying the resourceVersion that was read (optimistic concurrency): of two
  candidates racing for an expired Lease, the API server lets one win and answers 409 to the other;
- the leader renews every ``retry_period``; if it cannot renew for ``renew_deadline`` (< lease duration)
  it gives up leadership before anyone else may take over, and stops its work;
- on a clean stop the leader releases the Lease (empty holder), so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ballast.observability import LEADER

log = logging.getLogger(__name__)

LEASE_NAME = "ballast-watchers"


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str = LEASE_NAME
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 5.0
    request_timeout: float = 5.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not (0 < self.retry_period < self.renew_deadline < self.lease_duration):
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")


@dataclass(frozen=True)
class _Record:
    holder: str
    renew_time: str
    transitions: int
    resource_version: str


class LeaderElector:
    """Campaign for the Lease; run ``lead()`` while holding it, cancel it as soon as leadership is lost."""

    def __init__(self, api_client: k8s.ApiClient, config: LeaseConfig) -> None:
        self.api = k8s.CoordinationV1Api(api_client)
        self.config = config
        self._leader = False
        self._observed: _Record | None = None
        self._observed_at = 0.0
        self.became_leader = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign forever (until cancelled): each time leadership is won, run ``lead()``; when it is lost,
        cancel ``lead()`` and campaign again. ``lead()`` returning or raising ends leadership too (the
        Lease is released) and is re-raised. Cancelling ``run`` releases the Lease if
        ``config.release_on_cancel`` (client-go's ReleaseOnCancel)."""
        tasks: list[asyncio.Task[None]] = []
        try:
            while True:
                await self._acquire()
                lead_task = asyncio.create_task(lead(), name="leader-work")
                renew_task = asyncio.create_task(self._renew_until_lost(), name="lease-renew")
                tasks = [lead_task, renew_task]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                if lead_task.done():
                    await _cancel(renew_task)
                    await self._release()
                    lead_task.result()
                    return
                self._set_leader(False)
                await _cancel(lead_task)
                log.warning("lost leadership of Lease %s/%s", self.config.namespace, self.config.name)
        finally:
            for task in tasks:
                await _cancel(task)
            if self._leader and self.config.release_on_cancel:
                await self._release()
            self._set_leader(False)

    def _set_leader(self, value: bool) -> None:
        self._leader = value
        LEADER.set(1 if value else 0)
        if value:
            self.became_leader.set()
        else:
            self.became_leader.clear()

    async def _acquire(self) -> None:
        while True:
            if await self._try(acquiring=True):
                self._set_leader(True)
                log.info("%s leads Lease %s/%s", self.config.identity, self.config.namespace, self.config.name)
                return
            await asyncio.sleep(self.config.retry_period)

    async def _renew_until_lost(self) -> None:
        last_success = time.monotonic()
        while True:
            await asyncio.sleep(self.config.retry_period)
            if await self._try(acquiring=False):
                last_success = time.monotonic()
            elif (self._observed is not None and self._observed.holder not in ("", self.config.identity)) \
                    or time.monotonic() - last_success > self.config.renew_deadline:
                return  # someone else holds it, or we could not renew in time: stop leading

    async def _try(self, *, acquiring: bool) -> bool:
        try:
            return await asyncio.to_thread(self._try_acquire_or_renew)
        except Exception as err:  # API unreachable, 5xx, ...: not fatal, the deadline decides
            log.warning("Lease %s/%s %s failed: %s", self.config.namespace, self.config.name,
                        "acquire" if acquiring else "renew", err)
            return False

    def _observe(self, lease: k8s.V1Lease) -> _Record:
        spec = lease.spec or k8s.V1LeaseSpec()
        record = _Record(holder=spec.holder_identity or "",
                         renew_time=str(spec.renew_time or ""),
                         transitions=spec.lease_transitions or 0,
                         resource_version=(lease.metadata.resource_version if lease.metadata else None) or "")
        seen = self._observed
        if seen is None or (seen.holder, seen.renew_time) != (record.holder, record.renew_time):
            self._observed_at = time.monotonic()
        self._observed = record
        return record

    def _try_acquire_or_renew(self) -> bool:
        """One round (blocking): True when this candidate holds the Lease afterwards."""
        cfg = self.config
        now = datetime.now(UTC)
        try:
            lease = self.api.read_namespaced_lease(cfg.name, cfg.namespace, _request_timeout=cfg.request_timeout)
        except ApiException as err:
            if err.status != 404:
                raise
            body = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=cfg.name, namespace=cfg.namespace),
                               spec=self._spec(now, acquire_time=now, transitions=0))
            try:
                created = self.api.create_namespaced_lease(cfg.namespace, body,
                                                           _request_timeout=cfg.request_timeout)
            except ApiException as create_err:
                if create_err.status == 409:
                    return False  # another candidate created it first
                raise
            self._observe(created)
            return True
        record = self._observe(lease)
        mine = record.holder == cfg.identity
        duration = (lease.spec.lease_duration_seconds if lease.spec else None) or cfg.lease_duration
        if record.holder and not mine and time.monotonic() < self._observed_at + duration:
            return False  # held by someone else and not expired
        spec = lease.spec or k8s.V1LeaseSpec()
        lease.spec = self._spec(now, acquire_time=spec.acquire_time if mine and spec.acquire_time else now,
                                transitions=record.transitions + (0 if mine else 1))
        try:
            # The body carries the resourceVersion just read: a concurrent writer makes this a 409.
            updated = self.api.replace_namespaced_lease(cfg.name, cfg.namespace, lease,
                                                        _request_timeout=cfg.request_timeout)
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        self._observe(updated)
        return True

    def _spec(self, now: datetime, *, acquire_time: datetime, transitions: int) -> k8s.V1LeaseSpec:
        return k8s.V1LeaseSpec(holder_identity=self.config.identity,
                               lease_duration_seconds=max(1, round(self.config.lease_duration)),
                               acquire_time=acquire_time, renew_time=now, lease_transitions=transitions)

    async def _release(self) -> None:
        """Give the Lease up (empty holder) so a standby need not wait for it to expire."""
        def release() -> None:
            cfg = self.config
            lease = self.api.read_namespaced_lease(cfg.name, cfg.namespace, _request_timeout=cfg.request_timeout)
            if lease.spec is None or lease.spec.holder_identity != cfg.identity:
                return
            now = datetime.now(UTC)
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = now
            lease.spec.acquire_time = now
            self.api.replace_namespaced_lease(cfg.name, cfg.namespace, lease, _request_timeout=cfg.request_timeout)

        self._set_leader(False)
        try:
            await asyncio.to_thread(release)
        except Exception as err:
            log.warning("releasing Lease %s/%s failed (it will expire): %s", self.config.namespace,
                        self.config.name, err)


async def _cancel(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
