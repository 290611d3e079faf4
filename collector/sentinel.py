"""The pause sentinel: a loop that ticks every ~20 ms and notices when the machine stalled.

Each wake-up is compared with the previous one. The gap on the awake clock, which stops while the
machine is suspended, minus the expected tick is the wake-up's *lateness*; lateness above the
threshold is a pause, so a lid closed for an hour is never reported as a one-hour pause. The time
suspended inside a pause's gap is reported with it, from two clocks that differ only in whether
they run while the machine sleeps (Linux: CLOCK_BOOTTIME - CLOCK_MONOTONIC; macOS:
CLOCK_MONOTONIC_RAW - CLOCK_UPTIME_RAW).

Where the loop runs (``[sentinel] where``): in a small child process forked from the collector
("process", the default on Linux: a wake-up costs less CPU there than inside the collector), or
on a thread of the collector ("thread", the default elsewhere). It is the same loop either way
(``Sentinel.run``); in a child its tick counter and lateness ring live in shared memory and its
pauses come back over a pipe (collector/sentinel_child.py).

The pure parts (``PauseDetector`` and ``LatenessWindow``) take clock readings as
arguments; the ``Sentinel`` loop only reads clocks and waits. Clocks and the wait function are
constructor parameters, so tests drive late wake-ups and suspends on fake clocks without sleeping.
"""

from __future__ import annotations

import functools
import logging
import math
import struct
import sys
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Callable

from collector.sentinel_child import ForkedChild, shared_cells
from pmshared import messages as m
from pmshared.config import SentinelConfig
from pmshared.schedclass import leave_realtime

log = logging.getLogger("collector.sentinel")

Clock = Callable[[], float]  # seconds
Wait = Callable[[float], bool]  # wait(timeout_s) -> True when the sentinel must stop

# The awake and suspend-inclusive clocks are read one after the other; below this their difference
# is that reading skew, not time asleep.
CLOCK_SKEW_MS = 1.0
CHILD_NAME = "pm-sentinel"  # the sentinel process's name in ps, top and our own process table


def runs_in_process(where: str, platform: str = sys.platform) -> bool:
    """``[sentinel] where`` resolved: "auto" is a process on Linux only. On macOS a fork without
    exec of a process that has threads and may have loaded system frameworks is unsafe (they are
    not fork-safe), so there it is a thread unless "process" is asked for explicitly."""
    return where == "process" or (where == "auto" and platform.startswith("linux"))


# --------------------------------------------------------------------------- clocks


def _clock(name: str) -> Clock | None:
    """A reader for ``time.CLOCK_<name>``, or None when this platform/Python lacks it."""
    clk_id = getattr(time, name, None)
    if clk_id is None:
        return None
    try:
        time.clock_gettime(clk_id)
    except OSError:
        return None
    # partial, not a lambda: a C-level call, no Python frame on the tick loop's hot path
    return functools.partial(time.clock_gettime, clk_id)


def platform_clocks(platform: str = sys.platform) -> tuple[Clock, Clock, bool]:
    """(awake clock, suspend-inclusive clock, suspend_aware) for this OS.

    The awake clock stops while the machine is suspended; the other keeps running. When the
    suspend-inclusive clock is missing both are the awake clock: suspended time then reads 0 and
    a wake from sleep still produces no pause on Linux/macOS (the awake clock did not advance),
    but the pause cannot tell how long the machine slept.
    """
    if platform == "darwin":
        awake, total = _clock("CLOCK_UPTIME_RAW"), _clock("CLOCK_MONOTONIC_RAW")
    else:
        awake, total = _clock("CLOCK_MONOTONIC"), _clock("CLOCK_BOOTTIME")
    awake = awake or time.monotonic
    if total is None:
        return awake, awake, False
    return awake, total, True


# --------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class DetectedPause:
    """A stall found by the detector (the main loop turns it into a stamped ``Pause``)."""

    number: int  # 1, 2, ... per sentinel; with the incarnation it makes the pause_id
    start: float  # wall time of the last on-time tick (the stall began after it)
    end: float  # wall time of the late wake-up (the stall had ended by then)
    duration_ms: float  # best estimate of the stall: see PauseDetector.observe
    expected_ms: float  # the tick interval that was expected
    suspended_ms: float  # time asleep inside the gap (excluded from duration)
    lateness_ms: float  # awake gap between the ticks minus expected_ms


# A DetectedPause on the pipe from the sentinel process: its fields in order, 56 bytes.
PAUSE_RECORD = struct.Struct("=q6d")


def pack_pause(pause: DetectedPause) -> bytes:
    return PAUSE_RECORD.pack(pause.number, pause.start, pause.end, pause.duration_ms, pause.expected_ms,
                             pause.suspended_ms, pause.lateness_ms)


def unpack_pause(record: bytes) -> DetectedPause:
    return DetectedPause(*PAUSE_RECORD.unpack(record))


class PauseDetector:
    """Turns successive tick readings into lateness values and pauses. No clocks, no threads."""

    def __init__(self, tick_ms: float, threshold_ms: float) -> None:
        self.tick_ms = tick_ms
        self.threshold_ms = threshold_ms
        self.pauses = 0
        self._prev: tuple[float, float] | None = None  # awake_s, total_s
        self.last_lateness_ms = 0.0

    def reset(self) -> None:
        """Forget the previous tick (the next observe() only sets the baseline)."""
        self._prev = None

    def observe(self, awake_s: float, total_s: float, wall_s: float) -> DetectedPause | None:
        """Record one wake-up; return a pause when it came later than the threshold allows."""
        prev = self._prev
        self._prev = (awake_s, total_s)
        if prev is None:
            self.last_lateness_ms = 0.0
            return None
        return self.examine(prev[0], prev[1], awake_s, total_s, wall_s)

    def examine(
        self, prev_awake_s: float, prev_total_s: float, awake_s: float, total_s: float, wall_s: float
    ) -> DetectedPause | None:
        """One wake-up against the previous one (no state kept but the pause count)."""
        # The awake clock alone measures the gap: it stops while the machine is suspended, and a
        # stall between reading it and the suspend-inclusive clock lands in the next gap instead
        # of being mistaken for time asleep.
        awake_gap_ms = max(0.0, (awake_s - prev_awake_s) * 1000.0)
        # Both clocks tick at the same rate while awake; a difference is time spent asleep. The two
        # clocks are read microseconds apart, so differences below a millisecond are that reading
        # skew (either sign), not a suspend.
        suspended_ms = (total_s - prev_total_s) * 1000.0 - awake_gap_ms
        if suspended_ms < CLOCK_SKEW_MS:
            suspended_ms = 0.0
        lateness_ms = max(0.0, awake_gap_ms - self.tick_ms)
        self.last_lateness_ms = lateness_ms
        if lateness_ms <= self.threshold_ms:
            return None
        # The stall began somewhere in the tick after the last on-time wake-up (we were asleep,
        # waiting for the next one) and ended just before this wake-up: the gap overstates it by
        # between 0 and one tick. Half a tick off is the unbiased estimate, wrong by at most
        # tick/2 either way (the gap itself would be wrong by up to a whole tick, always high).
        duration_ms = max(0.0, awake_gap_ms - self.tick_ms / 2)
        self.pauses += 1
        return DetectedPause(
            number=self.pauses,
            # wall time runs on while suspended: the gap on it is the awake gap plus the sleep
            start=wall_s - (awake_gap_ms + suspended_ms) / 1000.0,
            end=wall_s,
            duration_ms=duration_ms,
            expected_ms=self.tick_ms,
            suspended_ms=suspended_ms,
            lateness_ms=lateness_ms,
        )


class LatenessWindow:
    """The last ``capacity`` lateness values in a preallocated ring; percentiles on demand.

    Adding is one store (50 times a second). The window is counted in ticks (``window_s /
    tick``), which equals the time window while the sentinel keeps its rhythm. ``summary()``
    is what a snapshot asks for once a second: sorting ~3,000 floats (60 s of 20 ms ticks)
    costs ~0.5 ms of CPU cold on the benchmark VM (0.05 % of a core if done every second), so
    it re-sorts every ``REFRESH_EVERY`` calls and reuses the percentiles in between; the max is
    exact at every call (the values stored since are scanned, in C).
    """

    REFRESH_EVERY = 5

    def __init__(self, capacity: int, values: array | memoryview | None = None) -> None:
        """``values``: the ring's storage, ``capacity`` zeroed doubles (an array, or a memoryview
        cast to "d" over shared memory); a new array by default."""
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if values is not None and len(values) != capacity:
            raise ValueError(f"the ring's storage holds {len(values)} values, not {capacity}")
        self.capacity = capacity
        self._values = array("d", bytes(8 * capacity)) if values is None else values
        self._total = 0  # values ever stored; the n-th went to index n % capacity
        self._calls = 0  # summary() calls
        self._cached: tuple[float, float, float, int] | None = None  # p50, p99, max, _total then

    def add(self, lateness_ms: float) -> None:
        self._values[self._total % self.capacity] = lateness_ms
        self._total += 1

    @property
    def values(self) -> array | memoryview:
        """The ring itself, for a writer that stores in place (then calls ``stored``)."""
        return self._values

    def stored(self, total: int) -> None:
        """``total`` values were stored in place so far, the n-th at index n % capacity."""
        self._total = total

    def __len__(self) -> int:
        return min(self._total, self.capacity)

    def percentiles(self) -> tuple[float, float, float]:
        """(p50, p99, max) by nearest rank; zeros when empty."""
        n = len(self)
        if n == 0:
            return 0.0, 0.0, 0.0
        ordered = sorted(self._values[:n]) if n < self.capacity else sorted(self._values)
        return _rank(ordered, 50), _rank(ordered, 99), ordered[-1]

    def summary(self) -> tuple[float, float, float]:
        """(p50, p99, max): the percentiles as of the last re-sort (at most REFRESH_EVERY - 1
        calls ago), the max of those values and every one stored since."""
        cached, total = self._cached, self._total
        calls, self._calls = self._calls, self._calls + 1
        if cached is None or calls % self.REFRESH_EVERY == 0 or total - cached[3] >= self.capacity:
            p50, p99, worst = self.percentiles()
            self._cached = (p50, p99, worst, total)
            return p50, p99, worst
        p50, p99, worst, since = cached
        return p50, p99, max(worst, self._max_since(since))

    def since(self, since: int) -> tuple[float, float]:
        """(sum, max) of the values stored after the first ``since`` (all of the ring when more
        than its capacity were stored since): the lateness of one sampling interval."""
        count = min(self._total - since, self.capacity)
        if count <= 0:
            return 0.0, 0.0
        end, values = self._total % self.capacity, self._values
        start = (end - count) % self.capacity
        parts = (values[start:end],) if start < end else (values[start:], values[:end])
        return sum(sum(p) for p in parts), max(max(p, default=0.0) for p in parts)

    def _max_since(self, since: int) -> float:
        """The largest value stored after the first ``since`` (fewer than capacity of them)."""
        if self._total <= since:
            return 0.0
        start, end, values = since % self.capacity, self._total % self.capacity, self._values
        if start < end:
            return max(values[start:end])
        return max(max(values[start:], default=0.0), max(values[:end], default=0.0))


def _rank(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least pct % of values <= it."""
    index = max(0, math.ceil(pct / 100.0 * len(ordered)) - 1)
    return ordered[index]


# --------------------------------------------------------------------------- the loop


def _never() -> bool:
    return False


class Sentinel:
    """Ticks on its own thread or in its own process (``config.where``) and hands each pause to
    ``on_pause``: called on the sentinel thread, or on the thread that relays the sentinel
    process's pauses. ``on_pause`` must be quick and must not block (the main loop passes a queue
    put plus a wake-up). ``stats()`` may be called from any thread.
    """

    def __init__(
        self,
        config: SentinelConfig,
        on_pause: Callable[[DetectedPause], None],
        *,
        monotonic: Clock | None = None,
        boottime: Clock | None = None,
        wall: Clock = time.time,
        wait: Wait | None = None,
    ) -> None:
        awake, total, aware = platform_clocks()
        if monotonic is not None:  # injected clocks (tests): suspend-aware only if both given
            awake, total, aware = monotonic, boottime or monotonic, boottime is not None
        elif boottime is not None:
            total, aware = boottime, True
        self.monotonic = awake
        self.boottime = total
        self.suspend_aware = aware
        self.wall = wall
        self.tick_s = config.tick_ms / 1000.0
        self.window_s = config.percentile_window_s
        self.on_pause = on_pause
        self.in_process = runs_in_process(config.where)
        self._stopped = False  # a plain flag: the loop reads it every tick, an Event costs a call
        # time.sleep returns None: "not told to stop", and then the loop reads the flag. A plain
        # sleep costs less per wake-up than Event.wait (a lock allocated, more futex calls), and
        # stop() is still noticed within one tick.
        self._wait: Wait = wait or time.sleep  # type: ignore[assignment]
        self._orphaned: Callable[[], bool] = _never  # the sentinel process's: is its parent gone?
        self.detector = PauseDetector(config.tick_ms, config.pause_threshold_ms)
        capacity = max(1, math.ceil(self.window_s / self.tick_s))
        if self.in_process:
            # The tick counter and the lateness ring, written by the child, read here by stats().
            cells = shared_cells(1 + capacity)
            self._ticks: array | memoryview = cells[:8].cast("q")
            self.window = LatenessWindow(capacity, cells[8:].cast("d"))
        else:
            self._ticks = array("q", [0])
            self.window = LatenessWindow(capacity)
        self._thread: threading.Thread | None = None
        self._child: ForkedChild | None = None
        # Where the previous stats() left off: the interval figures cover the ticks since then.
        self._stats_total = 0
        self._stats_at: float | None = None
        self.cpu_s = 0.0  # CPU time the loop used: measured by the thread, or the reaped process's

    @property
    def ticks(self) -> int:
        """Wake-ups so far (the first only sets the baseline)."""
        return self._ticks[0]

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        """The tick loop: the thread's or the process's body (tests may call it directly with a
        fake wait).

        It runs 50 times a second, each time cold: on a VM a wake-up alone costs 40-90 us of CPU,
        and every line of Python run after 20 ms asleep costs far more than it would hot (a
        method per step cost ~125 us a tick, measured; a clock read ~8 us). So an on-time tick
        is inline on locals: a plain sleep of one tick, one clock read, one store in the
        lateness ring, in place, and one of the tick count (the ring's count is derived from it
        when stats are asked for). Both stores are subscript stores, into arrays on a thread and
        into shared memory in the sentinel process: the same loop either way.

        The clock read each tick is the suspend-inclusive one. Its gap exceeds the pause
        threshold for a stall and for a suspend alike; only then is the awake clock read,
        and the detector tells the two apart. The awake clock's value at the previous tick is
        that tick's suspend-inclusive reading less their offset, which changes only across a
        suspend, so it is refreshed at every such wake-up (every suspend longer than the
        threshold makes one).

        The sleep is not shortened by the tick's own work (that would cost another clock
        read): ticks are ``tick_ms`` plus ~0.1 ms apart, and that 0.1 ms is in the lateness.

        Once per turn of the ring (a minute by default) the sentinel process looks whether its
        parent is still there (where PDEATHSIG does not exist); on a thread that costs a call.
        """
        cpu0 = time.thread_time()
        read_total, read_awake, wall, wait = self.boottime, self.monotonic, self.wall, self._wait
        ring, capacity, ticks_cell, orphaned = self.window.values, self.window.capacity, self._ticks, self._orphaned
        tick_s, tick_ms = self.tick_s, self.detector.tick_ms
        detector = self.detector
        threshold_ms = detector.threshold_ms  # lateness above it: a pause or a suspend
        try:
            total = read_total()
            offset = total - read_awake()  # suspend-inclusive minus awake: time slept so far
            ticks = ticks_cell[0] = 1
            slot = 0  # where the next lateness goes: (ticks - 1) % capacity
            while True:
                if wait(tick_s) or self._stopped:
                    break
                prev_total = total
                total = read_total()
                late_ms = (total - prev_total) * 1000.0 - tick_ms
                if late_ms > threshold_ms:
                    awake = read_awake()
                    pause = detector.examine(prev_total - offset, prev_total, awake, total, wall())
                    offset = total - awake
                    late_ms = detector.last_lateness_ms  # on the awake clock: a suspend is not late
                    if pause is not None:
                        self.on_pause(pause)
                ring[slot] = late_ms if late_ms > 0.0 else 0.0
                slot += 1
                if slot == capacity:
                    slot = 0
                    if orphaned():
                        break
                ticks += 1
                ticks_cell[0] = ticks
        finally:
            self.cpu_s = time.thread_time() - cpu0

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start ticking. In process mode this forks: call it from the main thread, early (before
        ZeroMQ or any other thread exists; see collector/main.py)."""
        if not self.suspend_aware:
            log.warning("no suspend-inclusive clock on this system; suspended time reads as 0")
        if self.in_process:
            self._child = ForkedChild(CHILD_NAME, PAUSE_RECORD.size, self._relay_pause)
            self._child.start(self._run_in_child)
            return
        # daemon: a wedged sentinel must never keep the worker from exiting.
        self._thread = threading.Thread(target=self._run_on_thread, name="pause-sentinel", daemon=True)
        self._thread.start()

    def _run_on_thread(self) -> None:
        # The worker may run in the real-time class (pmshared/schedclass.py): the sentinel measures
        # how late an ordinary task wakes, so it leaves that class before its first tick.
        leave_realtime()
        try:
            self.run()
        except Exception:  # pragma: no cover - a bug here must not go unnoticed
            log.exception("sentinel thread crashed")
            raise

    def _run_in_child(self, send: Callable[[bytes], object], orphaned: Callable[[], bool]) -> None:
        """The sentinel process's body: the loop, its pauses written to the pipe."""
        leave_realtime()  # as on a thread (the child inherits the collector's class)
        self.on_pause = lambda pause: send(pack_pause(pause))  # type: ignore[method-assign]
        self._orphaned = orphaned
        self.run()

    def _relay_pause(self, record: bytes) -> None:
        """Parent, reader thread: a pause from the sentinel process."""
        pause = unpack_pause(record)
        self.detector.pauses = pause.number  # the child's count, for stats()
        self.on_pause(pause)

    def stop(self, timeout: float = 0.5) -> None:
        self._stopped = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._child is not None:
            self._child.stop(timeout)
            self.cpu_s = self._child.cpu_s

    @property
    def alive(self) -> bool:
        if self._child is not None:
            return self._child.alive
        return self._thread is not None and self._thread.is_alive()

    def describe_death(self) -> str:
        """Why ``alive`` turned False, for the log."""
        if self._child is not None:
            return f"{CHILD_NAME} {self._child.describe_exit()}"
        return "thread died"

    @property
    def pid(self) -> int | None:
        """The sentinel process's pid (None on a thread)."""
        return self._child.pid if self._child is not None else None

    # -- stats -----------------------------------------------------------------------------------
    def stats(self) -> m.SentinelStats:
        # No lock against the tick loop: a store into the ring is atomic (under the GIL on a
        # thread; an aligned 8-byte store in shared memory), and a percentile taken while a value
        # is replaced is still one of the window's values.
        stored = max(self._ticks[0] - 1, 0)  # one lateness per tick after the first
        self.window.stored(stored)
        p50, p99, worst = self.window.summary()
        ticks = len(self.window)
        # The interval's own lateness: the window's percentiles span a minute, so a stall would
        # hold them up for a minute after it ended; the share of the interval spent late does not.
        now = self.monotonic()
        late_sum, late_max = self.window.since(self._stats_total)
        late_pct = None
        if self._stats_at is not None and now > self._stats_at and stored > self._stats_total:
            late_pct = round(min(100.0, late_sum / ((now - self._stats_at) * 10.0)), 3)
        self._stats_total, self._stats_at = stored, now
        return m.SentinelStats(
            tick_ms=self.tick_s * 1000.0,
            window_s=self.window_s,
            ticks=ticks,
            p50_ms=round(p50, 3),
            p99_ms=round(p99, 3),
            max_ms=round(worst, 3),
            pauses=self.detector.pauses,
            interval_late_pct=late_pct,
            interval_max_ms=round(late_max, 3) if late_pct is not None else None,
        )
