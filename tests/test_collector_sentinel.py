"""Pause sentinel: lateness and pauses on fake clocks (no sleeping), percentiles, the real thread."""

from __future__ import annotations

import sys
import time

import pytest

from collector.sentinel import DetectedPause, LatenessWindow, PauseDetector, Sentinel, platform_clocks
from pmshared.config import SentinelConfig

TICK_MS = 50.0


class ScriptedClocks:
    """Fake clocks driven by a script of wake-ups.

    Each step is (late_ms, suspended_ms): the wait returns ``late_ms`` after its timeout on the
    awake clock, and the machine additionally slept ``suspended_ms`` (suspend-inclusive clock and
    wall clock advance by it, the awake clock does not).
    """

    def __init__(self, steps: list[tuple[float, float]]) -> None:
        self.steps = list(steps)
        self.awake = 1000.0
        self.total = 5000.0
        self.wall = 1_700_000_000.0
        self.waits = 0

    def monotonic(self) -> float:
        return self.awake

    def boottime(self) -> float:
        return self.total

    def now(self) -> float:
        return self.wall

    def wait(self, timeout: float) -> bool:
        if not self.steps:
            return True  # script done: stop
        late_ms, suspended_ms = self.steps.pop(0)
        self.waits += 1
        awake = timeout + late_ms / 1000.0
        self.awake += awake
        self.total += awake + suspended_ms / 1000.0
        self.wall += awake + suspended_ms / 1000.0
        return False


def run_script(steps: list[tuple[float, float]], threshold_ms: float = 200.0) -> tuple[Sentinel, list[DetectedPause]]:
    clocks = ScriptedClocks(steps)
    found: list[DetectedPause] = []
    sentinel = Sentinel(
        SentinelConfig(tick_ms=TICK_MS, pause_threshold_ms=threshold_ms, percentile_window_s=60),
        found.append,
        monotonic=clocks.monotonic,
        boottime=clocks.boottime,
        wall=clocks.now,
        wait=clocks.wait,
    )
    sentinel.run()  # the thread's body, on the test's thread
    assert clocks.waits == len(steps)
    return sentinel, found


def test_late_wakeup_is_a_pause_of_the_right_length() -> None:
    steps = [(0, 0)] * 10 + [(750, 0)] + [(0, 0)] * 10
    sentinel, found = run_script(steps)
    assert len(found) == 1
    pause = found[0]
    # the gap between the two ticks is one tick plus the 750 ms it came late (800 ms); the stall
    # began somewhere in the first tick, so the estimate is the gap less half a tick
    assert pause.duration_ms == pytest.approx(800 - TICK_MS / 2, abs=1)
    assert pause.expected_ms == TICK_MS
    assert pause.suspended_ms == pytest.approx(0, abs=1)
    assert pause.lateness_ms == pytest.approx(750, abs=1)
    assert pause.end - pause.start == pytest.approx(0.8, abs=0.001)
    assert pause.number == 1
    assert sentinel.stats().pauses == 1


def test_threshold_separates_jitter_from_pauses() -> None:
    steps = [(0, 0), (150, 0), (0, 0), (199, 0), (0, 0), (260, 0), (0, 0), (1500, 0), (0, 0)]
    _, found = run_script(steps)
    assert [round(p.duration_ms) for p in found] == [285, 1525]  # gaps 310 and 1550, less tick/2
    assert [p.number for p in found] == [1, 2]


def test_thirty_second_suspend_is_not_a_pause() -> None:
    steps = [(0, 0)] * 5 + [(0, 30_000)] + [(0, 0)] * 5
    sentinel, found = run_script(steps)
    assert found == []
    assert sentinel.stats().max_ms < 1


def test_suspend_plus_stall_reports_the_stall_only() -> None:
    steps = [(0, 0)] * 5 + [(500, 30_000)] + [(0, 0)] * 5
    _, found = run_script(steps)
    assert len(found) == 1
    pause = found[0]
    assert pause.duration_ms == pytest.approx(550 - TICK_MS / 2, abs=1)
    assert pause.suspended_ms == pytest.approx(30_000, abs=1)
    # wall time includes the sleep: the pause spans it, its duration does not
    assert pause.end - pause.start == pytest.approx(30.55, abs=0.001)


def test_detector_alone_on_raw_readings() -> None:
    det = PauseDetector(tick_ms=50, threshold_ms=200)
    assert det.observe(10.0, 20.0, 100.0) is None  # baseline
    assert det.observe(10.05, 20.05, 100.05) is None
    pause = det.observe(10.35, 20.35, 100.35)  # 300 ms gap: 250 ms late
    assert pause is not None and pause.duration_ms == pytest.approx(300 - 25, abs=1e-6)
    assert pause.start == 100.05 and pause.end == 100.35
    det.reset()
    assert det.observe(99.0, 99.0, 999.0) is None  # after reset: a baseline again


def test_percentiles_of_a_known_sequence() -> None:
    window = LatenessWindow(capacity=200)
    for value in range(1, 101):  # 1..100 ms
        window.add(float(value))
    assert window.percentiles() == (50.0, 99.0, 100.0)
    assert len(window) == 100

    small = LatenessWindow(capacity=10)
    assert small.percentiles() == (0.0, 0.0, 0.0)
    for value in range(1, 26):  # only the last 10 (16..25) remain
        small.add(float(value))
    assert small.percentiles() == (20.0, 25.0, 25.0)


def test_summary_resorts_every_few_calls_but_its_max_is_always_current() -> None:
    window = LatenessWindow(capacity=100)
    every = LatenessWindow.REFRESH_EVERY
    for value in range(1, 101):
        window.add(float(value) / 10)  # 0.1 .. 10.0 ms
    assert window.summary() == (5.0, 9.9, 10.0)  # first call: sorted
    window.add(500.0)  # one late tick
    assert window.summary() == (5.0, 9.9, 500.0)  # percentiles reused, max current
    for _ in range(every - 3):
        window.summary()
    for _ in range(50):  # half the window now 0: the median moves at the next re-sort
        window.add(0.0)
    p50_before, _, worst = window.summary()  # call number `every`: still the old sort
    assert (p50_before, worst) == (5.0, 500.0)
    p50, p99, worst = window.summary()  # re-sorted: 0.0 x50, 5.2..10.0, 500
    assert (p50, worst) == (0.0, 500.0) and p99 == 10.0
    # More values than the ring holds since the last sort: re-sorted at once, whatever the count.
    window.summary()
    for _ in range(100):
        window.add(1.0)
    assert window.summary() == (1.0, 1.0, 1.0)


def test_sentinel_stats_from_scripted_lateness() -> None:
    # 99 on-time ticks and one 100 ms late (below the pause threshold)
    steps = [(0, 0)] * 99 + [(100, 0)]
    sentinel, found = run_script(steps)
    assert found == []
    stats = sentinel.stats()
    assert stats.ticks == 100
    assert stats.p50_ms == pytest.approx(0, abs=0.01)
    assert stats.p99_ms == pytest.approx(0, abs=0.01)  # nearest rank: 99 of 100 are on time
    assert stats.max_ms == pytest.approx(100, abs=0.01)
    assert stats.tick_ms == TICK_MS and stats.window_s == 60


def test_interval_figures_cover_only_the_ticks_since_the_previous_stats() -> None:
    # The window's percentiles span a minute; the pressure model reads the interval's own share
    # of late time, so a stall stops counting once the interval after it is on time.
    clocks = ScriptedClocks([(0, 0)] * 99 + [(100, 0)])
    sentinel = Sentinel(
        SentinelConfig(tick_ms=TICK_MS, percentile_window_s=60), lambda p: None,
        monotonic=clocks.monotonic, boottime=clocks.boottime, wall=clocks.now, wait=clocks.wait,
    )
    first = sentinel.stats()
    assert first.interval_late_pct is None and first.interval_max_ms is None  # no interval yet
    sentinel.run()
    stats = sentinel.stats()
    # 100 ms late over 99 ticks of 50 ms and one of 150 ms: 100 / 5100 ms
    assert stats.interval_late_pct == pytest.approx(100 / 5100 * 100, abs=0.01)
    assert stats.interval_max_ms == pytest.approx(100, abs=0.01)
    clocks.awake += 1.0  # a second passes without a tick being stored
    assert sentinel.stats().interval_late_pct is None
    assert sentinel.stats().max_ms == pytest.approx(100, abs=0.01)  # the window still has it


def test_window_since_wraps_and_never_counts_a_value_twice() -> None:
    window = LatenessWindow(4)
    for value in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        window.add(value)
    assert window.since(4) == (11.0, 6.0)  # the two stored after the first four
    assert window.since(1) == (18.0, 6.0)  # five stored since, but the ring keeps four
    assert window.since(6) == (0.0, 0.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux clocks")
def test_linux_uses_boottime_minus_monotonic() -> None:
    awake, total, aware = platform_clocks("linux")
    assert aware
    assert total() - awake() == pytest.approx(
        time.clock_gettime(time.CLOCK_BOOTTIME) - time.clock_gettime(time.CLOCK_MONOTONIC), abs=0.05
    )


def test_real_thread_ticks_cheaply_and_stops_fast() -> None:
    found: list[DetectedPause] = []
    sentinel = Sentinel(SentinelConfig(), found.append)
    started = time.monotonic()
    sentinel.start()
    deadline = started + 10
    while sentinel.ticks < 21 and time.monotonic() < deadline:  # ~1 s of ticking
        time.sleep(0.05)
    stop_at = time.monotonic()
    sentinel.stop()
    stopped_in = time.monotonic() - stop_at
    elapsed = time.monotonic() - started
    assert not sentinel.alive
    assert stopped_in < 0.3
    assert sentinel.ticks >= 21
    # 20 wake-ups a second must cost far below 1 % of a core
    assert sentinel.cpu_s / elapsed < 0.01, (sentinel.cpu_s, elapsed)
    stats = sentinel.stats()
    assert stats.ticks >= 20
    assert stats.max_ms < 1000


def test_clock_reading_skew_is_not_reported_as_suspended_time():
    from collector.sentinel import PauseDetector

    det = PauseDetector(tick_ms=50.0, threshold_ms=200.0)
    det.observe(awake_s=10.0, total_s=20.0, wall_s=100.0)
    # A 1.5 s stall where the second clock read happened 2 µs after the first.
    pause = det.observe(awake_s=11.5, total_s=21.500002, wall_s=101.5)
    assert pause is not None and pause.suspended_ms == 0.0
    assert abs(pause.duration_ms - (1500 - 25)) < 1e-6  # the awake clock measures the gap


@pytest.mark.parametrize("phase_ms", [0.0, 10.0, 24.9, 25.0, 40.0, 49.9])
def test_duration_estimate_is_within_half_a_tick_wherever_the_stall_begins(phase_ms):
    """A stall of 1000 ms that begins ``phase_ms`` after the last on-time tick, while the
    sentinel sleeps towards its next one: it wakes when the stall ends."""
    det = PauseDetector(tick_ms=TICK_MS, threshold_ms=200)
    det.observe(10.0, 20.0, 100.0)
    gap_s = (phase_ms + 1000.0) / 1000.0
    pause = det.observe(10.0 + gap_s, 20.0 + gap_s, 100.0 + gap_s)
    assert pause is not None
    assert abs(pause.duration_ms - 1000.0) <= TICK_MS / 2 + 1e-6
