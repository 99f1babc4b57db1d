"""A deduplicating, rate-limited work queue for devcluster's controllers (client-go's workqueue, in small).

Every controller runs on the cluster's single asyncio loop: store listeners ``add`` keys synchronously and
``run_queue`` processes them, retrying failures with per-item exponential backoff and resyncing on a timer
as an informer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from devcluster.errors import ApiError

log = logging.getLogger("devcluster.workqueue")

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """A deduplicating work queue for controllers on one asyncio loop.

    ``add`` is safe to call from synchronous store listeners. ``retry`` re-adds an item after an
    exponential per-item backoff (like client-go's rate-limited queue); ``forget`` resets it.
    ``next_batch`` waits until something is queued or ``timeout`` passes and returns all queued items.
    """

    def __init__(self, base_delay: float = 0.05, max_delay: float = 5.0) -> None:
        self._pending: dict[K, None] = {}
        self._wake = asyncio.Event()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._base, self._max = base_delay, max_delay

    def add(self, item: K) -> None:
        self._pending[item] = None
        self._wake.set()

    def add_after(self, item: K, delay: float) -> None:
        timer = self._timers.get(item)
        loop = asyncio.get_running_loop()
        if timer is not None and timer.when() <= loop.time() + delay:
            return  # an earlier wake-up is already due
        if timer is not None:
            timer.cancel()
        self._timers[item] = loop.call_later(delay, self._fire, item)

    def _fire(self, item: K) -> None:
        self._timers.pop(item, None)
        self.add(item)

    def retry(self, item: K) -> None:
        n = self._failures.get(item, 0)
        self._failures[item] = n + 1
        self.add_after(item, min(self._max, self._base * 2**n))

    def forget(self, item: K) -> None:
        self._failures.pop(item, None)

    async def next_batch(self, timeout: float) -> list[K]:
        if not self._pending:
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that races
            # with the wake-up, and the controller would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._wake.wait()
        items = list(self._pending)
        self._pending.clear()
        return items

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


async def run_queue(queue: WorkQueue[K], process: Callable[[K], None], resync: Callable[[], None],
                    resync_seconds: float, name: str) -> None:
    """Process queued items forever; call ``resync`` every ``resync_seconds`` (the informer resync)."""
    next_resync = time.monotonic() + resync_seconds
    while True:
        items = await queue.next_batch(next_resync - time.monotonic())
        for item in items:
            try:
                process(item)
                queue.forget(item)
            except ApiError as err:
                log.debug("%s: %r failed (%s); retrying", name, item, err)
                queue.retry(item)
            except Exception:
                log.exception("%s: %r failed; retrying", name, item)
                queue.retry(item)
            await asyncio.sleep(0)  # never hold the loop for a whole batch
        if time.monotonic() >= next_resync:
            resync()
            next_resync = time.monotonic() + resync_seconds
