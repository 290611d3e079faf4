"""The ring buffer: the last ``ring_buffer_seconds`` of samples, each with its tier (seed).

Viewers get it as a snapshot when they join; forensics keeps its own copy from the live feed.
"""

from __future__ import annotations

import math
from collections import deque

from pmshared.messages import ProcessSamples, RingEntry


def capacity(ring_buffer_seconds: float, interval_s: float) -> int:
    """Samples that cover ``ring_buffer_seconds`` at one sample per ``interval_s`` (30 at 1 Hz)."""
    return max(1, math.ceil(ring_buffer_seconds / interval_s - 1e-9))


class RingBuffer:
    def __init__(self, max_samples: int = 30) -> None:
        self._entries: deque[RingEntry] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def max_samples(self) -> int:
        return self._entries.maxlen or 0

    def push(self, samples: ProcessSamples, tier: int) -> None:
        self._entries.append(RingEntry(samples=samples, tier=tier))

    def entries(self) -> list[RingEntry]:
        """A copy, oldest first; the entries themselves are immutable."""
        return list(self._entries)
