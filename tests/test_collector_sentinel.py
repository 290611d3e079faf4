"""Pause sentinel: lateness and pauses on fake clocks (no sleeping), percentiles, the real thread
and the real sentinel process (a fork of this test: ticks, a real pause, stop, kill -9 of either
side).

The loop on fake clocks runs with the storage of both modes: arrays (thread) and shared memory
(process); ``run()`` is the same loop in both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from array import array
from dataclasses import astuple, fields
from pathlib import Path

import pytest

from collector.sentinel import (
    CHILD_NAME,
    PAUSE_RECORD,
    DetectedPause,
    LatenessWindow,
    PauseDetector,
    Sentinel,
    pack_pause,
    platform_clocks,
    runs_in_process,
    unpack_pause,
)
from collector.sentinel_child import shared_cells
from pmshared.config import SentinelConfig
from tests.procutil import comm, pid_gone, wait_for

TICK_MS = 50.0
REPO = Path(__file__).resolve().parent.parent
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: PDEATHSIG, /proc")


@pytest.fixture(params=["thread", "process"])
def where(request) -> str:
    """The loop's storage: arrays on a thread, shared memory in the sentinel process."""
    return request.param


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


def run_script(steps: list[tuple[float, float]], threshold_ms: float = 200.0,
               where: str = "thread") -> tuple[Sentinel, list[DetectedPause]]:
    clocks = ScriptedClocks(steps)
    found: list[DetectedPause] = []
    sentinel = Sentinel(
        SentinelConfig(tick_ms=TICK_MS, pause_threshold_ms=threshold_ms, percentile_window_s=60, where=where),
        found.append,
        monotonic=clocks.monotonic,
        boottime=clocks.boottime,
        wall=clocks.now,
        wait=clocks.wait,
    )
    assert sentinel.in_process == (where == "process")
    sentinel.run()  # the thread's or the process's body, on the test's thread
    assert clocks.waits == len(steps)
    return sentinel, found


def test_late_wakeup_is_a_pause_of_the_right_length(where: str) -> None:
    steps = [(0, 0)] * 10 + [(750, 0)] + [(0, 0)] * 10
    sentinel, found = run_script(steps, where=where)
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


def test_threshold_separates_jitter_from_pauses(where: str) -> None:
    steps = [(0, 0), (150, 0), (0, 0), (199, 0), (0, 0), (260, 0), (0, 0), (1500, 0), (0, 0)]
    _, found = run_script(steps, where=where)
    assert [round(p.duration_ms) for p in found] == [285, 1525]  # gaps 310 and 1550, less tick/2
    assert [p.number for p in found] == [1, 2]


def test_thirty_second_suspend_is_not_a_pause(where: str) -> None:
    steps = [(0, 0)] * 5 + [(0, 30_000)] + [(0, 0)] * 5
    sentinel, found = run_script(steps, where=where)
    assert found == []
    assert sentinel.stats().max_ms < 1


def test_suspend_plus_stall_reports_the_stall_only(where: str) -> None:
    steps = [(0, 0)] * 5 + [(500, 30_000)] + [(0, 0)] * 5
    _, found = run_script(steps, where=where)
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


def ring(capacity: int, where: str) -> array | memoryview:
    return array("d", bytes(8 * capacity)) if where == "thread" else shared_cells(capacity).cast("d")


def test_percentiles_of_a_known_sequence(where: str) -> None:
    window = LatenessWindow(200, ring(200, where))
    for value in range(1, 101):  # 1..100 ms
        window.add(float(value))
    assert window.percentiles() == (50.0, 99.0, 100.0)
    assert len(window) == 100

    small = LatenessWindow(10, ring(10, where))
    assert small.percentiles() == (0.0, 0.0, 0.0)
    for value in range(1, 26):  # only the last 10 (16..25) remain
        small.add(float(value))
    assert small.percentiles() == (20.0, 25.0, 25.0)


def test_summary_resorts_every_few_calls_but_its_max_is_always_current(where: str) -> None:
    window = LatenessWindow(100, ring(100, where))
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


def test_sentinel_stats_from_scripted_lateness(where: str) -> None:
    # 99 on-time ticks and one 100 ms late (below the pause threshold)
    steps = [(0, 0)] * 99 + [(100, 0)]
    sentinel, found = run_script(steps, where=where)
    assert found == []
    stats = sentinel.stats()
    assert stats.ticks == 100
    assert stats.p50_ms == pytest.approx(0, abs=0.01)
    assert stats.p99_ms == pytest.approx(0, abs=0.01)  # nearest rank: 99 of 100 are on time
    assert stats.max_ms == pytest.approx(100, abs=0.01)
    assert stats.tick_ms == TICK_MS and stats.window_s == 60


def test_interval_figures_cover_only_the_ticks_since_the_previous_stats(where: str) -> None:
    # The window's percentiles span a minute; the pressure model reads the interval's own share
    # of late time, so a stall stops counting once the interval after it is on time.
    clocks = ScriptedClocks([(0, 0)] * 99 + [(100, 0)])
    sentinel = Sentinel(
        SentinelConfig(tick_ms=TICK_MS, percentile_window_s=60, where=where), lambda p: None,
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


def test_window_since_wraps_and_never_counts_a_value_twice(where: str) -> None:
    window = LatenessWindow(4, ring(4, where))
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
    sentinel = Sentinel(SentinelConfig(where="thread"), found.append)
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
    # 50 wake-ups a second must cost far below 1 % of a core
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


# --------------------------------------------------------------------------- where it runs


def test_auto_is_a_process_on_linux_and_a_thread_elsewhere() -> None:
    assert runs_in_process("auto", "linux") and not runs_in_process("auto", "darwin")
    assert runs_in_process("process", "darwin") and not runs_in_process("thread", "linux")
    assert Sentinel(SentinelConfig(), lambda p: None).in_process == sys.platform.startswith("linux")


def test_a_pause_crosses_the_pipe_unchanged() -> None:
    pause = DetectedPause(number=7, start=1_700_000_000.25, end=1_700_000_001.5, duration_ms=1240.0,
                          expected_ms=20.0, suspended_ms=30_000.5, lateness_ms=1230.125)
    record = pack_pause(pause)
    assert len(record) == PAUSE_RECORD.size <= 512  # one atomic pipe write (POSIX PIPE_BUF)
    assert unpack_pause(record) == pause
    assert len(PAUSE_RECORD.unpack(record)) == len(fields(DetectedPause)) == len(astuple(pause))


def test_the_ring_must_be_as_long_as_the_window() -> None:
    with pytest.raises(ValueError, match="holds 3 values, not 4"):
        LatenessWindow(4, array("d", bytes(24)))


def child_state(pid: int) -> tuple[str, int]:
    """(comm, ppid) of a live process."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return comm(pid), int(stat[stat.rfind(b")") + 2:].split()[1])


def not_a_child_of_ours(pid: int) -> bool:
    """Reaped: waitpid knows no such child (a zombie would still be one)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.fixture
def process_sentinel():
    """A started sentinel process (a fork of this test) and the pauses it relayed; always stopped."""
    found: list[DetectedPause] = []
    sentinel = Sentinel(SentinelConfig(where="process"), found.append)
    sentinel.start()
    try:
        yield sentinel, found
    finally:
        sentinel.stop()
        if sentinel.pid is not None and not pid_gone(sentinel.pid):  # a failed test's leftover
            os.kill(sentinel.pid, signal.SIGKILL)


@linux
def test_the_sentinel_process_ticks_relays_a_real_pause_and_stops_without_a_trace(process_sentinel) -> None:
    sentinel, found = process_sentinel
    pid = sentinel.pid
    assert pid is not None and pid != os.getpid() and sentinel.alive
    # The child names itself just after the fork: a fresh-clone run read it a moment before.
    wait_for(lambda: child_state(pid) == (CHILD_NAME, os.getpid()), 5, lambda: f"the child named {CHILD_NAME} "
             f"under this process; now {child_state(pid)}")
    wait_for(lambda: sentinel.ticks >= 10, 10, "ten ticks in shared memory")
    assert sentinel.stats().ticks >= 9
    # The child is what ticks: stopped 0.4 s, it wakes 0.4 s late, past the 200 ms threshold.
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    time.sleep(0.4)  # the stimulus
    os.kill(pid, signal.SIGCONT)
    stall_ms = (time.monotonic() - stopped) * 1000
    wait_for(lambda: found, 5, "the pause to come through the pipe")
    (pause,) = found
    assert pause.number == 1 and pause.expected_ms == 20.0 and pause.suspended_ms == 0.0
    # Within half a tick of the stall (the estimate's bound), give or take this loaded machine's
    # delay in waking the child and this test after each kill().
    assert stall_ms - 30 <= pause.duration_ms <= stall_ms + 60, (pause, stall_ms)
    assert pause.end - pause.start == pytest.approx((pause.duration_ms + 10) / 1000, abs=0.011)
    stats = sentinel.stats()
    assert stats.pauses == 1 and stats.max_ms >= 350, stats
    ticks = sentinel.ticks
    wait_for(lambda: sentinel.ticks >= ticks + 5, 5, "ticking on after the pause")
    os.kill(pid, signal.SIGINT)  # a Ctrl-C reaching the whole group: the parent decides
    ticks = sentinel.ticks
    wait_for(lambda: sentinel.ticks >= ticks + 5, 5, "ticking on after SIGINT")

    stop_at = time.monotonic()
    sentinel.stop()
    assert time.monotonic() - stop_at < 0.3
    assert not sentinel.alive and not_a_child_of_ours(pid) and pid_gone(pid)
    assert sentinel.cpu_s > 0  # the reaped child's CPU time
    assert "killed by SIGTERM" in sentinel.describe_death()


@linux
def test_the_sentinel_process_ticks_cheaply(process_sentinel) -> None:
    from collector.linux import cpu_clock_id

    sentinel, _ = process_sentinel
    wait_for(lambda: sentinel.ticks >= 5, 10, "the first ticks")  # past the fork's own cost
    clock = cpu_clock_id(sentinel.pid)
    ticks0, cpu0, t0 = sentinel.ticks, time.clock_gettime(clock), time.monotonic()
    wait_for(lambda: sentinel.ticks >= ticks0 + 50, 10, "a second of ticks")
    cpu, elapsed = time.clock_gettime(clock) - cpu0, time.monotonic() - t0
    assert cpu / elapsed < 0.01, (cpu, elapsed)  # 50 wake-ups a second: far below 1 % of a core


@linux
def test_kill_9_of_the_sentinel_process_is_noticed_and_reaped(process_sentinel) -> None:
    sentinel, _ = process_sentinel
    pid = sentinel.pid
    wait_for(lambda: sentinel.ticks >= 2, 10, "ticking")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not sentinel.alive, 5, "the end of the pipe to be seen")
    assert sentinel.describe_death() == f"{CHILD_NAME} process {pid} was killed by SIGKILL"
    sentinel.stop()
    assert not_a_child_of_ours(pid)


@linux
def test_a_sentinel_process_stopped_by_sigstop_is_still_stopped_and_reaped(process_sentinel) -> None:
    sentinel, _ = process_sentinel
    pid = sentinel.pid
    os.kill(pid, signal.SIGSTOP)  # SIGTERM stays pending on a stopped process: stop() must SIGKILL
    sentinel.stop(timeout=0.2)
    assert not sentinel.alive and not_a_child_of_ours(pid) and pid_gone(pid)


PARENT = textwrap.dedent("""
    import time
    from collector.sentinel import Sentinel
    from pmshared.config import SentinelConfig
    sentinel = Sentinel(SentinelConfig(where="process"), print)
    sentinel.start()
    print(sentinel.pid, flush=True)
    time.sleep(60)
""")


@linux
def test_a_sentinel_process_dies_with_its_parent_killed_by_kill_9() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(parent.stdout.readline())
        # Named once PDEATHSIG is set (a parent dead before that is noticed by the child itself).
        wait_for(lambda: child_state(child) == (CHILD_NAME, parent.pid), 5, "the sentinel process named")
        parent.kill()
        parent.wait(timeout=10)
        wait_for(lambda: pid_gone(child), 5, "the orphaned sentinel to be killed (PDEATHSIG)")
    finally:
        parent.kill()
        parent.wait(timeout=10)
        parent.stdout.close()
        if child is not None and not pid_gone(child):
            os.kill(child, signal.SIGKILL)
