"""Waiting for the capture threads: each gets a limit (its own timeout plus a grace), counted in
time this process was running, not in wall-clock time.

A command capture kills its process group at its own timeout, so its thread ends moments later;
only an in-process capture can overrun, and the session gives up on it at its limit. Forensics
runs right after a pause, on a machine that may still be stalled or starved: when this process is
not running, its capture threads are not either. With a wall-clock limit, a process stopped for a
few seconds across a capture's timeout woke up past the limit and gave up on a thread that had
not yet had the chance to notice its own timeout and kill its command (the bundle then said the
command "did not finish", and forgot its output). Here a look that comes back much later than
asked counts only as the time asked: the stall is nobody's fault but the machine's.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

STEP_S = 0.1  # how often the waiter looks at its threads
STALL_SLACK_S = 0.25  # a look this much later than asked means this process was not running
MAX_UNCOUNTED_S = 30.0  # however stalled the machine, no thread is waited for longer than its limit + this


class AwakeClock:
    """Seconds this process was running since it was made, as seen by one waiter: the time between
    two looks counts at most as the time asked for plus ``STALL_SLACK_S``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()
        self.elapsed = 0.0

    def advance(self, asked_s: float) -> float:
        now = self._clock()
        self.elapsed += min(max(now - self._last, 0.0), asked_s + STALL_SLACK_S)
        self._last = now
        return self.elapsed


def join_all(jobs: list[tuple[threading.Thread, float]], clock: Callable[[], float] = time.monotonic) -> None:
    """Join every thread until it ends or its limit (seconds from now, counted on an
    ``AwakeClock``) passes; a thread past its limit is left running (it should be a daemon)."""
    awake = AwakeClock(clock)
    started = clock()
    pending = list(jobs)
    while True:
        now = clock()
        pending = [
            (t, limit) for t, limit in pending
            if t.is_alive() and awake.elapsed < limit and now - started < limit + MAX_UNCOUNTED_S
        ]
        if not pending:
            return
        pending[0][0].join(STEP_S)
        awake.advance(STEP_S)
