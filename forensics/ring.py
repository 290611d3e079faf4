"""The forensics worker's own ring buffer of the live feed.

Tiering keeps a ring buffer too, but asking it for a snapshot at pause time would add a round trip
to a process that may itself have been frozen; the worker simply remembers the last
``ring_buffer_seconds`` of LiveSamples it received. The live feed is PUB/SUB, so gaps are possible
and harmless: the buffer holds what arrived, keyed by the sample's own timestamp.
"""

from __future__ import annotations

import threading
from collections import deque

from pmshared import messages as m


class LiveRing:
    def __init__(self, seconds: float, *, max_entries: int | None = None) -> None:
        self.seconds = seconds
        # A bound even if timestamps misbehave (clock steps): a few samples per second at most.
        self._entries: deque[m.LiveSample] = deque(maxlen=max_entries or int(seconds * 4) + 16)
        self._lock = threading.Lock()  # a capture session reads it from its own thread

    def push(self, sample: m.LiveSample) -> None:
        with self._lock:
            self._entries.append(sample)
            newest = sample.samples.timestamp
            # Drop by age relative to the newest sample, not the wall clock: after a pause the
            # samples from before it are exactly the ones we want to keep.
            while self._entries and self._entries[0].samples.timestamp < newest - self.seconds:
                self._entries.popleft()

    def __len__(self) -> int:
        return len(self._entries)

    def freeze(self) -> list[m.LiveSample]:
        """A copy for a capture session (the live loop keeps pushing meanwhile)."""
        with self._lock:
            return list(self._entries)


def window(entries: list[m.LiveSample], start: float, end: float) -> list[m.LiveSample]:
    """Entries whose sample timestamp lies in [start, end]."""
    return [e for e in entries if start <= e.samples.timestamp <= end]
