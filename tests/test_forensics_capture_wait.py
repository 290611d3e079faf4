"""Waiting for capture threads: limits count the time this process ran, so a machine stall across a
command's timeout does not make the session give up on a capture that then times out normally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from forensics.capture_wait import STALL_SLACK_S, AwakeClock, join_all
from forensics.runner import CaptureContext, CommandCapture, run_command
from tests.forensics_helpers import FAKE_BIN, kill_listed, pid_gone, wait_for

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_awake_clock_counts_a_stalled_look_only_as_the_time_asked() -> None:
    clock = FakeClock()
    awake = AwakeClock(clock)
    clock.now += 0.1
    assert awake.advance(0.1) == pytest.approx(0.1)  # an ordinary look
    clock.now += 5.0  # the process did not run for 5 s
    assert awake.advance(0.1) == pytest.approx(0.2 + STALL_SLACK_S)
    clock.now += 0.05  # a look that ended early (the thread finished)
    assert awake.advance(0.1) == pytest.approx(0.25 + STALL_SLACK_S)


def test_an_overrunning_thread_is_given_up_at_its_limit() -> None:
    release = threading.Event()
    t = threading.Thread(target=release.wait, daemon=True)
    t.start()
    try:
        started = time.monotonic()
        join_all([(t, 0.3)])
        assert t.is_alive() and 0.3 <= time.monotonic() - started < 2.0
    finally:
        release.set()
        t.join(5)


def test_a_stall_seen_by_the_waiter_does_not_give_up_on_a_command_that_times_out_normally(tmp_path: Path) -> None:
    """The waiter's clock jumps 5 s (what it sees after the process was stopped) before the hang's
    own 1 s timeout: a wall-clock limit of 1.5 s would abandon the thread right then."""
    pids_file = tmp_path / "pids"
    spec = CommandCapture("hang", [str(FAKE_BIN / "hang"), str(pids_file)], 1.0, "hang.txt")
    out: list = []
    capture_ctx = CaptureContext(tmp_path, 1 << 20, threading.Event())
    t = threading.Thread(target=lambda: out.append(run_command(spec, capture_ctx)), daemon=True)
    t.start()
    jumped = {"by": 0.0}

    def clock() -> float:
        if pids_file.exists():  # the hang runs, well before its timeout: the machine stalls now
            jumped["by"] = 5.0
        return time.monotonic() + jumped["by"]

    try:
        join_all([(t, spec.timeout_s + 0.5)], clock=clock)
        assert jumped["by"] == 5.0 and not t.is_alive()
        assert out[0].artifact.error == "timed out after 1s; process group killed"
    finally:
        t.join(10)
        kill_listed(pids_file)


WAITER = """
import json, sys, threading
from pathlib import Path
from forensics.capture_wait import join_all
from forensics.runner import CaptureContext, CommandCapture, run_command
bundle, hang = Path(sys.argv[1]), sys.argv[2]
spec = CommandCapture("hang", [hang, str(bundle / "pids")], 1.0, "hang.txt")
ctx = CaptureContext(bundle, 1 << 20, threading.Event())
out = []
t = threading.Thread(target=lambda: out.append(run_command(spec, ctx)), daemon=True)
t.start()
join_all([(t, spec.timeout_s + 0.5)])
print(json.dumps(out[0].artifact.error if out else "gave up"), flush=True)
"""


def test_a_process_stopped_across_the_limit_still_reports_the_capture_timed_out(tmp_path: Path) -> None:
    """A real stall: the waiting process is SIGSTOPped from before the hang's timeout until past
    its limit, then continued."""
    pids_file = tmp_path / "pids"
    proc = subprocess.Popen([sys.executable, "-c", WAITER, str(tmp_path), str(FAKE_BIN / "hang")],
                            stdout=subprocess.PIPE, cwd=ROOT)
    try:
        wait_for(pids_file.exists, timeout=10, what="the hang to start")
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)  # the stall itself: past the 1 s timeout and the 1.5 s limit
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=15)
        assert json.loads(out) == "timed out after 1s; process group killed"
        child, leader = (int(p) for p in pids_file.read_text().split())
        wait_for(lambda: pid_gone(child) and pid_gone(leader), timeout=5, what="group death")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_listed(pids_file)
