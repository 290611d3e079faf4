"""The live feed (tiering's "live" PUB) as a watcher reads it: every sample with its tier, stamped
with the moment it arrived here.

No pytest here: bench/detection.py imports it too. Subscribing costs the machine nothing per poll
(unlike a `pmctl` process or a snapshot request, whose whole ring buffer is decoded each time),
so a test or the bench can follow every sample while it times a load it started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import zmq

from pmshared import messages as m
from pmshared.config import TransportConfig
from pmshared.endpoints import ENDPOINTS, Sockets


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when it arrived
    sample: m.LiveSample

    @property
    def tier(self) -> int:
        return self.sample.state.tier

    @property
    def top(self) -> m.ProcessScore | None:
        rogues = self.sample.samples.rogues
        return max(rogues, key=lambda r: r.score) if rogues else None


class LiveFeed:
    """Subscribed on creation; ``read(seconds)`` returns what arrived meanwhile, oldest first."""

    def __init__(self, transport: TransportConfig | None = None) -> None:
        self.sockets = Sockets(transport)
        self.sock = self.sockets.connect("live")
        self.codec = ENDPOINTS["live"].codec()
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    def read(self, seconds: float) -> list[Seen]:
        got: list[Seen] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self.poller.poll(max(1, int(left * 1000))):
                continue
            while True:
                try:
                    frame = self.sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                sample = self.codec.decode(frame)
                if isinstance(sample, m.LiveSample):
                    got.append(Seen(time.monotonic(), sample))
        return got

    def until(self, condition, timeout: float) -> tuple[Seen | None, list[Seen]]:
        """Read until a sample satisfies ``condition`` or ``timeout`` passes: (that sample or
        None, everything read)."""
        seen: list[Seen] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for s in self.read(min(0.1, left)):
                seen.append(s)
                if condition(s):
                    return s, seen
        return None, seen

    def close(self) -> None:
        self.sockets.close()
        self.sockets.ctx.term()

    def __enter__(self) -> LiveFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
