"""The collector worker as a real process: snapshots on "raw", pauses on "record" and "pause",
SIGTERM, the standalone --jsonl mode, and the Collector logic with the real backend."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import zmq

from collector.backend import make_backend
from collector.main import MIN_SPAN, Collector, JsonOutputs, PauseInbox, SocketOutputs, next_deadline, run_loop
from collector.sentinel import DetectedPause
from pmshared import messages as m
from pmshared import paths
from pmshared.codec import JsonLines
from pmshared.endpoints import ENDPOINTS, Sockets
from tests.procutil import freeze, pid_gone, thaw, wait_for

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    socks = Sockets()
    yield socks
    socks.close()


def start_collector(children: list, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                    stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """``python -m collector`` leading a process group of its own, as the supervisor starts it:
    ``freeze`` stops it with its sentinel process."""
    log = open(tmp_path / f"collector-{len(children)}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    children.append(proc)
    return proc


def receive(sock: zmq.Socket, codec, deadline_s: float) -> object | None:
    """The next message, or None when none arrives before the deadline."""
    end = time.monotonic() + deadline_s
    while (left := end - time.monotonic()) > 0:
        if sock.poll(int(min(left, 0.2) * 1000)):
            return codec.decode(sock.recv())
    return None


def wait_exit(proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until ``proc`` exited (fails the test after ``timeout``)."""
    start = time.monotonic()
    proc.wait(timeout=timeout)
    return time.monotonic() - start


def runtime_files() -> set[str]:
    directory = paths.runtime_dir()
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


# --------------------------------------------------------------------------- the worker


def test_snapshots_arrive_at_1hz_and_sigterm_exits_clean(children, sockets, tmp_path) -> None:
    raw = sockets.bind("raw")
    health = sockets.bind("health")
    codec = ENDPOINTS["raw"].codec()
    before = runtime_files()
    proc = start_collector(children, tmp_path)

    snaps: list[m.Snapshot] = []
    while len(snaps) < 4:
        snap = receive(raw, codec, 10)
        assert snap is not None, (tmp_path / "collector-0.log").read_text()
        snaps.append(snap)

    first = snaps[0]
    assert first.sender == "collector" and first.platform == "linux"
    assert [s.seq for s in snaps] == [1, 2, 3, 4]
    assert len({s.incarnation for s in snaps}) == 1
    for prev, snap in zip(snaps, snaps[1:]):
        assert snap.timestamp - prev.timestamp == pytest.approx(1.0, abs=0.3)
    for snap in snaps:
        assert snap.interval_ms == 1000.0
        assert snap.elapsed_ms == pytest.approx(1000, abs=300)
        assert snap.process_count == len(snap.processes) > 5
        assert snap.system.cpu_count == os.cpu_count()
        assert snap.sentinel is not None and snap.sentinel.tick_ms == 20 and snap.sentinel.ticks > 0
    # the collector itself is in its own snapshot, with rates (a primed first sample)
    me = [p for p in snaps[-1].processes if p.pid == proc.pid]
    assert len(me) == 1 and me[0].cpu is not None and me[0].state in ("running", "sleeping")
    assert me[0].mem > 1_000_000 and me[0].threads >= 2  # main + the thread relaying pauses
    # and so is its one child, the pause sentinel process (the default on Linux), named as such
    (sentinel,) = psutil.Process(proc.pid).children(recursive=True)
    assert sentinel.name() == "pm-sentinel" and sentinel.ppid() == proc.pid
    seen = [(p.command, p.ppid) for p in snaps[-1].processes if p.pid == sentinel.pid]
    assert seen == [("pm-sentinel", proc.pid)]

    # the heartbeat carries the counters
    beat = receive(health, ENDPOINTS["health"].codec(), 5)
    assert isinstance(beat, m.Heartbeat) and beat.sender == "collector" and beat.pid == proc.pid
    assert {"samples", "dropped_raw", "dropped_record", "dropped_pause", "pauses"} <= beat.counters.keys()

    proc.send_signal(signal.SIGTERM)
    took = wait_exit(proc, 5)
    assert took < 1.0
    assert proc.returncode == 0
    assert pid_gone(sentinel.pid)  # stopped and reaped by the collector on its way out
    # it binds nothing, so it left nothing behind: only the test's own sockets are there
    assert runtime_files() - before == set()


@pytest.mark.parametrize("where", ["process", "thread"])
def test_sigstop_of_one_second_is_one_pause_on_record_and_pause(children, sockets, tmp_path, where) -> None:
    config = tmp_path / "config.toml"
    # A higher threshold than the default keeps scheduling hiccups of a busy test machine out;
    # the stop below is 1 s.
    config.write_text(f'[sentinel]\npause_threshold_ms = 400\nwhere = "{where}"\n')
    raw = sockets.bind("raw")
    record = sockets.bind("record")
    pause_sock = sockets.bind("pause")
    proc = start_collector(children, tmp_path, env={"PAUSE_MONITOR_CONFIG": str(config)})
    first = receive(raw, ENDPOINTS["raw"].codec(), 10)
    assert first is not None, (tmp_path / "collector-0.log").read_text()

    assert len(psutil.Process(proc.pid).children()) == (where == "process")
    stopped_at = time.monotonic()
    freeze(proc.pid)
    time.sleep(1.0)  # the stimulus: a 1 s stall of the collector and its sentinel
    thaw(proc.pid)
    stopped_ms = (time.monotonic() - stopped_at) * 1000

    rec_codec, pause_codec = ENDPOINTS["record"].codec(), ENDPOINTS["pause"].codec()
    recorded = receive(record, rec_codec, 5)
    assert isinstance(recorded, m.Pause), (tmp_path / "collector-0.log").read_text()
    assert recorded.duration_ms == pytest.approx(stopped_ms, abs=100)
    assert recorded.expected_ms == 20  # the default tick
    assert recorded.suspended_ms == pytest.approx(0, abs=5)
    assert recorded.processes is None
    assert recorded.pause_id == f"{first.incarnation}:1"
    assert recorded.end - recorded.start == pytest.approx(recorded.duration_ms / 1000, abs=0.1)

    forensic = receive(pause_sock, pause_codec, 5)
    assert isinstance(forensic, m.Pause)
    assert forensic.pause_id == recorded.pause_id
    assert forensic.duration_ms == recorded.duration_ms
    assert forensic.processes and any(p.pid == proc.pid for p in forensic.processes)
    assert forensic.system is not None

    # exactly one: nothing more arrives on either socket while it keeps running
    assert receive(record, rec_codec, 1.5) is None
    assert receive(pause_sock, pause_codec, 0.1) is None
    proc.send_signal(signal.SIGINT)  # Ctrl-C stops it as SIGTERM does
    assert wait_exit(proc, 5) < 1.0
    assert proc.returncode == 0


def test_a_stopped_collector_beside_its_ticking_sentinel_is_no_pause(children, sockets, tmp_path) -> None:
    """The sentinel measures the machine's stalls: the collector alone stopped (its sentinel process
    ticking on) is not one. Its snapshots resume, late, and no pause is sent."""
    raw, record = sockets.bind("raw"), sockets.bind("record")
    proc = start_collector(children, tmp_path)
    assert receive(raw, ENDPOINTS["raw"].codec(), 10) is not None, (tmp_path / "collector-0.log").read_text()
    (sentinel,) = psutil.Process(proc.pid).children()
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(0.6)  # the stimulus: the collector's process alone stopped, three pause thresholds
    os.kill(proc.pid, signal.SIGCONT)
    assert receive(raw, ENDPOINTS["raw"].codec(), 5) is not None
    assert receive(record, ENDPOINTS["record"].codec(), 1.5) is None
    assert sentinel.is_running() and sentinel.status() != psutil.STATUS_ZOMBIE
    proc.send_signal(signal.SIGTERM)
    assert wait_exit(proc, 5) < 1.0 and proc.returncode == 0


def test_kill_9_of_the_sentinel_process_ends_the_collector_with_an_error(children, sockets, tmp_path) -> None:
    """A collector without its sentinel would miss every pause while looking healthy: it exits
    non-zero (the supervisor then restarts it, with a new sentinel)."""
    raw = sockets.bind("raw")
    proc = start_collector(children, tmp_path)
    assert receive(raw, ENDPOINTS["raw"].codec(), 10) is not None, (tmp_path / "collector-0.log").read_text()
    (sentinel,) = psutil.Process(proc.pid).children()
    sentinel.kill()
    wait_exit(proc, 5)
    log = (tmp_path / "collector-0.log").read_text()
    assert proc.returncode == 1, log
    assert f"pause sentinel died (pm-sentinel process {sentinel.pid} was killed by SIGKILL); exiting" in log
    assert "Traceback" not in log
    assert pid_gone(sentinel.pid)


def _hardware_allows(snap: m.Snapshot) -> list[str]:
    """Processes of ``snap`` whose rates exceed what this machine can do, described."""
    ncpu = snap.system.cpu_count
    bad = []
    for p in snap.processes:
        if p.cpu is not None and p.cpu > 100.0 * min(p.threads, ncpu) + 1e-6:
            bad.append(f"{p.command}[{p.pid}] cpu {p.cpu:.0f}% with {p.threads} threads")
        if p.cpu_children is not None and p.cpu_children > 100.0 * ncpu + 1e-6:
            bad.append(f"{p.command}[{p.pid}] cpu_children {p.cpu_children:.0f}%")
    return bad


def test_stopped_collector_never_reads_as_a_cpu_hog_and_forensics_gets_the_spanning_snapshot(
    children, sockets, tmp_path
) -> None:
    """Issue 16: after a 0.5 s SIGSTOP the collector reported itself at 519-744 % CPU on 2 cores.
    The stop falls at several points of the 1 s interval, so that the regular sample comes both
    before and after the sentinel reports the pause: never a snapshot over a few ms, never a rate
    above the hardware, and forensics gets the processes of a snapshot spanning the stall."""
    config = tmp_path / "config.toml"
    config.write_text("[sentinel]\npause_threshold_ms = 300\n")
    raw, record, pause_sock = sockets.bind("raw"), sockets.bind("record"), sockets.bind("pause")
    raw_codec, pause_codec = ENDPOINTS["raw"].codec(), ENDPOINTS["pause"].codec()
    proc = start_collector(children, tmp_path, env={"PAUSE_MONITOR_CONFIG": str(config)})
    snaps: list[m.Snapshot] = []

    def next_snapshot() -> m.Snapshot:
        snap = receive(raw, raw_codec, 10)
        assert isinstance(snap, m.Snapshot), (tmp_path / "collector-0.log").read_text()
        snaps.append(snap)
        return snap

    forensic: list[m.Pause] = []
    for offset in (0.05, 0.3, 0.55, 0.8, 0.93):
        while raw.poll(0):
            next_snapshot()  # queued ones: the next to arrive marks the start of an interval
        next_snapshot()
        time.sleep(offset)  # the stimulus' phase within the interval
        freeze(proc.pid)
        time.sleep(0.5)  # the stimulus: a 0.5 s stall of the whole collector, its sentinel too
        thaw(proc.pid)
        got = receive(pause_sock, pause_codec, 5)
        assert isinstance(got, m.Pause), (tmp_path / "collector-0.log").read_text()
        forensic.append(got)
    next_snapshot()
    next_snapshot()  # the regular rhythm resumed after the last stop
    while raw.poll(0):
        next_snapshot()

    assert {s.seq: _hardware_allows(s) for s in snaps if _hardware_allows(s)} == {}
    spans = [round(s.elapsed_ms) for s in snaps]
    assert min(spans) >= snaps[0].interval_ms * MIN_SPAN - 50, spans  # none over a few ms
    for pause in forensic:
        spanning = [s for s in snaps if s.processes == pause.processes]
        assert spanning, f"pause {pause.pause_id}: its processes are no snapshot's"
        assert spanning[0].elapsed_ms >= pause.duration_ms, (spanning[0].elapsed_ms, pause.duration_ms)
        me = [p for p in pause.processes if p.pid == proc.pid]
        assert len(me) == 1 and me[0].cpu is not None and me[0].cpu < 100.0
    proc.send_signal(signal.SIGTERM)
    assert wait_exit(proc, 5) < 1.0


# --------------------------------------------------------------------------- standalone mode


def test_jsonl_count_prints_parseable_snapshots(children, tmp_path) -> None:
    before = runtime_files()
    proc = start_collector(children, tmp_path, "--jsonl", "--count", "3", "--interval", "0.2",
                           stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 3
    decoder = JsonLines(m.Snapshot)
    snaps = [decoder.decode(line) for line in lines]
    assert [s.seq for s in snaps] == [1, 2, 3]
    assert all(s.process_count == len(s.processes) > 0 and s.interval_ms == 200 for s in snaps)
    assert runtime_files() == before  # no sockets at all


def test_jsonl_into_a_closed_pipe_stops_quietly(children, tmp_path) -> None:
    proc = start_collector(children, tmp_path, "--jsonl", "--interval", "0.1", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # what `head -n 1` does ...
    proc.stdout.close()  # ... before it exits
    assert wait_exit(proc, 5) < 5
    assert proc.returncode == 0
    assert b'"type":"snapshot"' in first
    log = (tmp_path / "collector-0.log").read_text()
    assert "Traceback" not in log and "BrokenPipe" not in log


def test_help_and_bad_arguments(tmp_path) -> None:
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "collector", *a], cwd=REPO, capture_output=True, text=True, timeout=20
    )
    helped = run("--help")
    assert helped.returncode == 0 and "--jsonl" in helped.stdout and "--count" in helped.stdout
    for bad in (["--count", "0"], ["--interval", "fast"], ["--interval", "0"], ["--nope"]):
        res = run(*bad)
        assert res.returncode == 2, bad
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
    config = tmp_path / "bad.toml"
    config.write_text("[sentinel]\ntick_ms = -1\n")
    res = subprocess.run([sys.executable, "-m", "collector", "--jsonl"], cwd=REPO, capture_output=True,
                         text=True, timeout=20, env={**os.environ, "PAUSE_MONITOR_CONFIG": str(config)})
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "sentinel.tick_ms" in res.stderr


# --------------------------------------------------------------------------- the logic, in-process


def _pause(n: int) -> DetectedPause:
    return DetectedPause(number=n, start=100.0, end=101.5, duration_ms=1500.0, expected_ms=50.0,
                         suspended_ms=0.0, lateness_ms=1450.0)


def test_pause_is_recorded_first_then_sent_with_a_fresh_sample() -> None:
    out = io.BytesIO()
    counters = {k: 0 for k in ("samples", "dropped_raw", "dropped_record", "dropped_pause", "pauses")}
    backend = make_backend()
    try:
        collector = Collector(backend, JsonOutputs(out), incarnation="inc", interval_s=1.0, counters=counters)
        collector.prime()
        collector.handle_pauses([_pause(1), _pause(2)])
    finally:
        backend.close()
    decoder = JsonLines(m.Snapshot | m.Pause)
    msgs = [decoder.decode(line) for line in out.getvalue().splitlines()]
    assert [type(x).__name__ for x in msgs] == ["Pause", "Pause", "Snapshot"]
    assert [x.pause_id for x in msgs[:2]] == ["inc:1", "inc:2"]
    assert msgs[0].processes is None and msgs[2].process_count > 0
    assert counters == {"samples": 1, "dropped_raw": 0, "dropped_record": 0, "dropped_pause": 0, "pauses": 2}


class _CountingBackend:
    """Each sample is one process whose pid is the sample's number: tells snapshots apart."""

    def __init__(self) -> None:
        self.n = 0

    def sample(self):
        self.n += 1
        return [m.ProcessInfo(pid=self.n, command="p", state="sleeping")], m.SystemStats()

    def close(self) -> None:
        pass


class _Outputs:
    def __init__(self) -> None:
        self.forensic: list[m.Pause] = []

    def snapshot(self, msg: m.Snapshot) -> bool:
        return True

    def pause_record(self, msg: m.Pause) -> bool:
        return True

    def pause_forensics(self, msg: m.Pause) -> bool:
        self.forensic.append(msg)
        return True

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("sampled_at", "fresh"), [(101.4, False), (100.02, True), (99.5, True)],
                         ids=["after-the-stall", "a-tick-after-its-start", "before-it"])  # fmt: skip
def test_pause_reuses_the_regular_snapshot_taken_after_the_stall(sampled_at: float, fresh: bool) -> None:
    """The stall runs 100.0-101.5 (wall): a regular sample begun after it spans it and goes to
    forensics as is; one begun before it (or within a tick of its start) does not, so a new one
    is taken, whose interval then spans it."""
    wall = [sampled_at]
    backend, outputs = _CountingBackend(), _Outputs()
    counters = {k: 0 for k in ("samples", "dropped_raw", "dropped_record", "dropped_pause", "pauses")}
    collector = Collector(backend, outputs, incarnation="inc", interval_s=1.0, counters=counters,
                          wall=lambda: wall[0])  # fmt: skip
    collector.prime()
    collector.sample_and_send()  # the regular snapshot: process 2
    wall[0] = 101.6
    snap = collector.handle_pauses([_pause(1)])
    assert counters["samples"] == (2 if fresh else 1)
    assert [p.pid for p in outputs.forensic[0].processes] == [3 if fresh else 2] == [p.pid for p in snap.processes]


def test_missing_consumers_never_block_and_drops_are_counted() -> None:
    socks = Sockets()
    counters = {k: 0 for k in ("samples", "dropped_raw", "dropped_record", "dropped_pause", "pauses")}
    backend = make_backend()
    try:
        outputs = SocketOutputs(socks)  # nobody bound raw/record/pause
        collector = Collector(backend, outputs, incarnation="inc", interval_s=1.0, counters=counters)
        collector.prime()
        started = time.monotonic()
        for _ in range(ENDPOINTS["raw"].hwm + 5):
            collector.sample_and_send()
        assert time.monotonic() - started < 10
        outputs.close()
    finally:
        backend.close()
        socks.close()
    # the raw queue holds hwm snapshots; the rest were dropped, not waited for
    assert counters["samples"] == ENDPOINTS["raw"].hwm + 5
    assert counters["dropped_raw"] == 5


def test_deadlines_are_absolute_and_skip_missed_ticks() -> None:
    assert next_deadline(10.0, 1.0, 10.2) == (11.0, 0)
    assert next_deadline(10.0, 1.0, 10.999) == (11.0, 0)  # no drift from a late wake-up
    assert next_deadline(10.0, 1.0, 13.5) == (14.0, 3)  # after a stall: skip, don't burst
    assert next_deadline(10.0, 0.5, 11.0) == (11.5, 2)


class _Sink:
    """A byte stream for JsonOutputs that the test can watch from another thread."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self.changed = threading.Event()

    def write(self, data: bytes) -> int:
        self.lines.append((time.monotonic(), data))
        self.changed.set()
        return len(data)

    def flush(self) -> None:
        pass


class _SlowBackend:
    """The real backend plus 40 ms of extra work per sample, to make drift measurable."""

    def __init__(self) -> None:
        self.inner = make_backend()

    def sample(self):
        time.sleep(0.04)
        return self.inner.sample()

    def close(self) -> None:
        self.inner.close()


def _loop_in_thread(backend, interval_s: float, count: int | None = None):
    sink, inbox, stopping = _Sink(), PauseInbox(), threading.Event()
    counters = {k: 0 for k in ("samples", "dropped_raw", "dropped_record", "dropped_pause", "pauses",
                               "sample_errors", "late_ticks")}
    collector = Collector(backend, JsonOutputs(sink), incarnation="inc", interval_s=interval_s, counters=counters)
    thread = threading.Thread(
        target=run_loop, args=(collector, inbox, interval_s), kwargs={"stopping": stopping, "count": count}
    )
    thread.start()
    return sink, inbox, stopping, thread, counters, collector


def test_loop_keeps_absolute_deadlines_despite_slow_samples() -> None:
    backend = _SlowBackend()
    sink, _, stopping, thread, counters, _ = _loop_in_thread(backend, 0.2, count=8)
    try:
        thread.join(timeout=20)
        assert not thread.is_alive()
    finally:
        stopping.set()
        thread.join(timeout=5)
        backend.close()
    decoder = JsonLines(m.Snapshot)
    stamps = [decoder.decode(line).timestamp for _, line in sink.lines]
    assert len(stamps) == 8 and counters["samples"] == 8
    # relative scheduling would drift by 40 ms per sample (280 ms over 7 intervals)
    assert stamps[-1] - stamps[0] == pytest.approx(7 * 0.2, abs=0.1)


def test_a_pause_wakes_the_loop_at_once() -> None:
    backend = make_backend()
    sink, inbox, stopping, thread, counters, collector = _loop_in_thread(backend, 30.0)  # none due for 30 s
    try:
        assert wait_for(lambda: collector._last_sample_at is not None, 5)  # primed: now waiting
        assert sink.lines == []
        put_at = time.monotonic()
        inbox.put(_pause(1))
        assert wait_for(lambda: len(sink.lines) >= 2, 5)
        # handled well before the loop's 200 ms poll would have noticed it
        assert sink.lines[0][0] - put_at < 0.15
        stop_at = time.monotonic()
        stopping.set()
        thread.join(timeout=5)
        assert time.monotonic() - stop_at < 0.5 and not thread.is_alive()
    finally:
        stopping.set()
        thread.join(timeout=5)
        backend.close()
    decoder = JsonLines(m.Snapshot | m.Pause)
    kinds = [type(decoder.decode(line)).__name__ for _, line in sink.lines]
    assert kinds == ["Pause", "Snapshot"] and counters["pauses"] == 1
