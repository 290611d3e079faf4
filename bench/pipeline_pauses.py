"""Pause detection as a user sees it: stall the collector with SIGSTOP, look for the row in the
database.

A stall of the collector's process group (the collector and its sentinel process) is what the
sentinel sees of a machine-wide pause: it does not run, so its next wake-up comes late. Each trial
sends SIGSTOP, waits the stall, sends SIGCONT, and polls the ``pauses`` table (read-only, every 5 ms) for the row; the stall is what was
measured between the two signals, the latency is from SIGCONT to the row being readable. Trials
are shuffled and start at a random moment, so the stall lands at a random phase of the
sentinel's tick.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import zmq

from bench.pipeline_proc import load
from bench.pipeline_run import PipelineRun
from pmshared import config as config_mod
from pmshared.endpoints import ENDPOINTS, Sockets
from tests.procutil import freeze, thaw

ROW_WAIT_S = 1.2  # a pause whose row is not readable by then counts as missed (target is 1 s)


@dataclass
class Trial:
    asked_ms: float
    stall_ms: float  # measured between SIGSTOP and SIGCONT
    detected: bool
    reported_ms: float | None = None
    expected_ms: float | None = None
    latency_ms: float | None = None  # SIGCONT -> row readable
    extra_rows: int = 0


def last_pause_id(run: PipelineRun) -> int:
    return run.query("SELECT coalesce(max(id), 0) FROM pauses")[0][0]


def stall(pid: int, ms: float) -> tuple[float, float]:
    """SIGSTOP the process group ``pid`` leads for ``ms``; (measured stall ms, monotonic time of
    SIGCONT). The group: the collector's sentinel may be a process of its own (tests.procutil.freeze)."""
    t0 = time.monotonic()
    freeze(pid)
    end = t0 + ms / 1000.0
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(left if left < 0.002 else left - 0.001)
    thaw(pid)
    t1 = time.monotonic()
    return (t1 - t0) * 1000.0, t1


def one_trial(run: PipelineRun, pid: int, ms: float) -> Trial:
    before = last_pause_id(run)
    time.sleep(random.uniform(0.15, 0.40))  # random phase against the sentinel tick
    stall_ms, t_cont = stall(pid, ms)
    deadline = t_cont + ROW_WAIT_S
    while time.monotonic() < deadline:
        rows = run.query(
            "SELECT id, duration_ms, expected_ms FROM pauses WHERE id > ? ORDER BY id", before
        )
        if rows:
            seen = time.monotonic()
            _, duration, expected = rows[0]
            return Trial(ms, stall_ms, True, duration, expected, (seen - t_cont) * 1000.0, len(rows) - 1)
        time.sleep(0.005)
    return Trial(ms, stall_ms, False)


def run_trials(run: PipelineRun, pid: int, durations: list[float], repeats: int) -> list[Trial]:
    plan = [d for d in durations for _ in range(repeats)]
    random.shuffle(plan)
    trials = []
    for ms in plan:
        trials.append(one_trial(run, pid, ms))
        time.sleep(0.1)  # let the sentinel settle into its rhythm again
    # A row that shows up after its trial's wait would be seen as an extra row of a later trial.
    return trials


def smallest_reliable(trials: list[Trial]) -> float | None:
    """The smallest asked stall from which every trial, at that length and every longer one,
    was detected."""
    by: dict[float, list[bool]] = {}
    for t in trials:
        by.setdefault(t.asked_ms, []).append(t.detected)
    best = None
    for ms in sorted(by, reverse=True):
        if all(by[ms]):
            best = ms
        else:
            break
    return best


def detection_table(trials: list[Trial]) -> list[tuple[float, int, int, float]]:
    """(asked ms, detected, trials, median measured stall ms) per asked stall."""
    by: dict[float, list[Trial]] = {}
    for t in trials:
        by.setdefault(t.asked_ms, []).append(t)
    return [
        (ms, sum(t.detected for t in ts), len(ts), statistics.median(t.stall_ms for t in ts))
        for ms, ts in sorted(by.items())
    ]


# --------------------------------------------------------------------------- false pauses

HOG = "import sys\nopen('/proc/self/comm', 'w').write(sys.argv[1])\nwhile True:\n    pass\n"


@dataclass
class BusyResult:
    seconds: float
    hogs: int
    pauses: list[tuple[float, float]]  # (duration_ms, expected_ms) of rows recorded meanwhile
    second_max_ms: list[float]  # the sentinel's worst lateness in each second (live feed)
    live_samples: int
    load_before: str
    load_after: str


def busy_cores(run: PipelineRun, seconds: float, hogs: int | None = None) -> BusyResult:
    """Every core busy with a hog for ``seconds``: pauses recorded meanwhile are false pauses.

    The live feed (tiering's PUB) carries the sentinel's lateness percentiles over its window;
    with ``sentinel.percentile_window_s = 1`` in the config each sample's max is the worst
    wake-up of that second, and the worst of them tells which thresholds would have fired.
    """
    hogs = hogs or os.cpu_count() or 2
    before = last_pause_id(run)
    sockets = Sockets(config_mod.load().transport)
    live = sockets.connect("live")
    codec = ENDPOINTS["live"].codec()
    procs = [
        subprocess.Popen([sys.executable, "-c", HOG, f"pm-bench-hog{i}"], env=run.env)
        for i in range(hogs)
    ]
    maxima: list[float] = []
    samples = 0
    load_before = load()
    t0 = time.monotonic()
    try:
        poller = zmq.Poller()
        poller.register(live, zmq.POLLIN)
        while time.monotonic() - t0 < seconds:
            if not poller.poll(500):
                continue
            while True:
                try:
                    frame = live.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                sample = codec.decode(frame)
                st = sample.samples.sentinel
                samples += 1
                if st is not None and time.monotonic() - t0 > 1.5:  # its window began before the hogs
                    maxima.append(st.max_ms)
        load_after = load()
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        sockets.close()
    dt = time.monotonic() - t0
    time.sleep(0.5)  # a pause noticed at the very end reaches the database
    rows = run.query("SELECT duration_ms, expected_ms FROM pauses WHERE id > ?", before)
    return BusyResult(dt, hogs, [(d, e) for d, e in rows], maxima, samples, load_before, load_after)
