"""A logger wrapper that says the same kind of thing at most once per interval.

A flood of garbage frames or a database locked for minutes must not fill the log: the first
occurrence is logged at once, later ones are counted and summarised in the next line allowed out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(self, log: logging.Logger, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.interval_s = interval_s
        self.clock = clock
        self._next_at = 0.0
        self._suppressed = 0

    def __call__(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg`` unless one went out less than ``interval_s`` ago; True if it was logged."""
        now = self.clock()
        if now < self._next_at:
            self._suppressed += 1
            return False
        if self._suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, self._suppressed)
            self._suppressed = 0
        self._next_at = now + self.interval_s
        self.log.log(level, msg, *args)
        return True
