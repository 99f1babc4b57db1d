"""The simulation clock of devcluster's Kafka model.

Simulated time is expressed in seconds since the Unix epoch (so timestamps the model reports, e.g.
DescribeQuorum's lastCaughtUpTimestamp, look like real epoch milliseconds). At speed 1 it tracks the
wall clock; at speed 100 one wall second is 100 simulated seconds, so a 10 GB reassignment at
10 MB/s (1000 s simulated) finishes in 10 wall seconds. All model rates are per *simulated* second.
The operator never sees this clock; tests and the demo change its speed through the control surface.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class SimClock:
    """Simulated time = anchor + speed x (wall - wall anchor) + manual offsets; never goes backwards.

    ``manual=True`` freezes the clock except for :meth:`advance` (deterministic unit tests).
    ``wall`` is injectable for tests of the clock itself.
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        start: float | None = None,
        manual: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a finite number >= 0, got {speed}")
        self._wall = wall
        self._manual = manual
        self._speed = 0.0 if manual else float(speed)
        self._wall_anchor = wall()
        self._sim_anchor = self._wall_anchor if start is None else float(start)

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second (0 when paused or manual)."""
        return self._speed

    @property
    def manual(self) -> bool:
        return self._manual

    def now(self) -> float:
        """Current simulated time, seconds since the epoch."""
        if self._speed == 0.0:
            return self._sim_anchor
        return self._sim_anchor + (self._wall() - self._wall_anchor) * self._speed

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (time already elapsed is kept). 0 pauses. Not allowed when manual."""
        if self._manual:
            raise ValueError("a manual clock only moves through advance()")
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a finite number >= 0, got {speed}")
        self._rebase()
        self._speed = float(speed)

    def advance(self, seconds: float) -> float:
        """Jump simulated time forward by ``seconds`` (>= 0); returns the new time."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"can only advance by a finite number >= 0 of seconds, got {seconds}")
        self._rebase()
        self._sim_anchor += seconds
        return self._sim_anchor

    def wall_delay(self, sim_time: float) -> float:
        """Wall seconds until simulated time reaches ``sim_time`` (0 if past; inf if the clock is stopped)."""
        remaining = sim_time - self.now()
        if remaining <= 0:
            return 0.0
        if self._speed == 0.0:
            return math.inf
        return remaining / self._speed

    def _rebase(self) -> None:
        wall = self._wall()
        self._sim_anchor = self._sim_anchor + (wall - self._wall_anchor) * self._speed
        self._wall_anchor = wall
