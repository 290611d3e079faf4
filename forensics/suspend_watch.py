"""Notice resumes from suspend by watching two clocks drift apart.

On Linux CLOCK_BOOTTIME counts time asleep and CLOCK_MONOTONIC does not; on macOS the same pair
is CLOCK_MONOTONIC_RAW and CLOCK_UPTIME_RAW. When their difference grows, the machine slept in
between. The worker samples the difference on every loop turn, so it learns of a resume within a
poll interval, independently of whatever the collector reported. A pause shortly after a resume is
classified ``suspend-adjacent``.
"""

from __future__ import annotations

import sys
import time

# Below this much growth between two looks, the difference is clock noise, not a sleep.
MIN_SLEEP_S = 0.5


def _clock_pair() -> tuple[int, int] | None:
    if sys.platform.startswith("linux") and hasattr(time, "CLOCK_BOOTTIME"):
        return time.CLOCK_BOOTTIME, time.CLOCK_MONOTONIC
    if sys.platform == "darwin" and hasattr(time, "CLOCK_UPTIME_RAW"):
        return time.CLOCK_MONOTONIC_RAW, time.CLOCK_UPTIME_RAW
    return None


class SuspendWatch:
    def __init__(self) -> None:
        self._clocks = _clock_pair()
        self._offset = self._read_offset()
        self.last_resume_wall: float | None = None
        self.last_sleep_s: float = 0.0

    def _read_offset(self) -> float | None:
        if self._clocks is None:
            return None
        with_sleep, without = self._clocks
        return time.clock_gettime(with_sleep) - time.clock_gettime(without)

    def check(self, now_wall: float | None = None) -> bool:
        """Look at the clocks; True when a sleep happened since the last look."""
        offset = self._read_offset()
        if offset is None or self._offset is None:
            return False
        grew = offset - self._offset
        self._offset = offset
        if grew >= MIN_SLEEP_S:
            self.last_resume_wall = time.time() if now_wall is None else now_wall
            self.last_sleep_s = grew
            return True
        return False

    def resume_ago(self, wall: float) -> float | None:
        """Seconds from the last resume seen to ``wall`` (negative if the resume came later)."""
        if self.last_resume_wall is None:
            return None
        return wall - self.last_resume_wall
