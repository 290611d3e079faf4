"""The live feed (tiering's "live" PUB) as a watcher reads it: every sample with its tier, stamped
with the moment it arrived here.

No pytest here: bench/detection.py imports it too. ``LiveWatch`` subscribes on a thread and keeps
a small ``Live`` record of each sample (the fault tests compare them with the database);
``SampleWatch`` keeps the whole sample (rogues, stress per resource) for the detection bench and
scenarios. Subscribing costs the machine nothing per poll, unlike a `pmctl` process (~0.3 s of CPU
here) or a snapshot request (the whole ring buffer decoded each time), so a test can follow every
sample while it times a load it started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import zmq

from pmshared import messages as m
from pmshared.endpoints import ENDPOINTS, Sockets
from tests.procutil import wait_for


@dataclass(frozen=True)
class Live:
    """One live sample as the test received it."""

    received: float  # monotonic, in this process
    incarnation: str
    seq: int
    timestamp: float  # the sample's own wall-clock time (the key of a stored event sample)
    tier: int
    event_key: str | None
    max_score: int


@dataclass
class LiveWatch:
    """Subscribes to tiering's "live" PUB on a thread and keeps every sample it receives."""

    endpoint: ClassVar[str] = "live"
    samples: list[Any] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    error: BaseException | None = None

    def start(self) -> LiveWatch:
        self._thread = threading.Thread(target=self._run, name="live-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _item(self, msg: Any, received: float) -> Any:
        return Live(
            received=received, incarnation=msg.incarnation, seq=msg.seq,
            timestamp=msg.samples.timestamp, tier=msg.state.tier,
            event_key=msg.state.event_key, max_score=msg.samples.max_score,
        )

    def _run(self) -> None:
        codec = ENDPOINTS[self.endpoint].codec()
        sockets = Sockets()
        try:
            sock = sockets.connect(self.endpoint)  # the test process's env is the isolated one
            while not self._stop.is_set():
                if not sock.poll(100, zmq.POLLIN):
                    continue
                while True:
                    try:
                        frame = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    item = self._item(codec.decode(frame), time.monotonic())
                    with self._lock:
                        self.samples.append(item)
        except BaseException as exc:  # noqa: BLE001 - reported by the test through ``check``
            self.error = exc
        finally:
            sockets.close()

    # -- queries ---------------------------------------------------------------------------------
    def snapshot(self) -> list[Live]:
        with self._lock:
            return list(self.samples)

    def check(self) -> None:
        assert self.error is None, f"live feed watcher failed: {self.error!r}"

    def between(self, start: float, end: float) -> list[Live]:
        """Samples received in [start, end] (monotonic times of this process)."""
        return [s for s in self.snapshot() if start <= s.received <= end]

    def max_gap(self, start: float, end: float) -> float:
        """Longest silence of the feed within [start, end], edges included."""
        times = [start, *(s.received for s in self.between(start, end)), end]
        return max(b - a for a, b in zip(times, times[1:]))

    def seq_gaps(self, items: list[Live]) -> list[tuple[int, int]]:
        """Holes in the sequence numbers of one incarnation: samples published that we missed."""
        gaps = []
        for a, b in zip(items, items[1:]):
            if a.incarnation == b.incarnation and b.seq != a.seq + 1:
                gaps.append((a.seq, b.seq))
        return gaps

    def wait_for_count(self, n: int, timeout: float) -> None:
        wait_for(lambda: len(self.snapshot()) >= n, timeout, f"{n} live samples")


@dataclass(frozen=True)
class Seen:
    """One whole live sample as received."""

    received: float  # monotonic, in this process
    sample: m.LiveSample

    @property
    def tier(self) -> int:
        return self.sample.state.tier

    @property
    def max_score(self) -> int:
        return self.sample.samples.max_score

    @property
    def top(self) -> m.ProcessScore | None:
        rogues = self.sample.samples.rogues
        return max(rogues, key=lambda r: r.score) if rogues else None


class SampleWatch(LiveWatch):
    """``LiveWatch`` keeping every sample whole (``Seen``)."""

    def _item(self, msg: Any, received: float) -> Seen:
        return Seen(received, msg)

    def since(self, start: float) -> list[Seen]:
        return [s for s in self.snapshot() if s.received >= start]

    def collect(self, seconds: float) -> list[Seen]:
        """What arrives in the next ``seconds`` (the caller's wait is the point)."""
        start = time.monotonic()
        time.sleep(seconds)
        return self.since(start)

    def first(self, condition: Callable[[Seen], bool], start: float, timeout: float) -> Seen | None:
        """The first sample received since ``start`` that satisfies ``condition``, waiting until
        ``timeout`` seconds from now; None if none did."""
        def found() -> Seen | None:
            self.check()
            return next((s for s in self.since(start) if condition(s)), None)

        try:
            return wait_for(found, timeout, "a live sample", interval=0.05)
        except AssertionError:
            return None

    def __enter__(self) -> SampleWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
