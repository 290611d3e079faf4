"""A scrape's figures are as of the scrape: it has the main loop take in what is queued first.

The exporter's main loop wakes only every few seconds (exporter.main: one wake-up of a Python
process costs more CPU than the exporter's whole work of a second); meanwhile the live feed's
samples wait in ZeroMQ's queue. A scrape runs on an HTTP thread, which must not touch the sockets,
so it asks the main loop to take in every message queued before the ask (waking it through
``wake``) and waits for that, at most ``wait_s``: a main loop that is late (a slow database read, a
stalled machine) costs the scrape freshness, never its answer. Counters never depend on this:
every message is taken in, by the scrape's catch-up or by the next wake-up.

No sockets, no clock: tests drive both sides with threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class CatchUp:
    """Asks (HTTP threads) against catch-ups (the main loop), numbered so that an answer is only
    ever given by a catch-up that began after the ask."""

    def __init__(self, wake: Callable[[], None], wait_s: float) -> None:
        self._wake, self._wait_s = wake, wait_s
        self._cond = threading.Condition()
        self._asked = 0  # asks so far
        self._answered = 0  # every ask up to this one has had its catch-up
        self._closed = False
        self.late = 0  # asks that were not answered within wait_s

    def ask(self) -> bool:
        """(An HTTP thread) True once everything queued before now has been taken in; False after
        ``wait_s`` without it, or once closed."""
        with self._cond:
            if self._closed:
                return False
            self._asked += 1
            mine = self._asked
        self._wake()
        with self._cond:
            if self._cond.wait_for(lambda: self._answered >= mine or self._closed, self._wait_s) and not self._closed:
                return True
            self.late += 1
            return False

    def begin(self) -> int:
        """(The main loop, before it takes in its queued messages) The asks this catch-up answers."""
        with self._cond:
            return self._asked

    def done(self, upto: int) -> None:
        """(The main loop, once it has taken them in) Answer the asks up to ``upto``."""
        with self._cond:
            if upto > self._answered:
                self._answered = upto
                self._cond.notify_all()

    def close(self) -> None:
        """No more asks are taken (the main loop is gone); waiting ones return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
