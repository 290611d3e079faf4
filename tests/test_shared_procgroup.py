"""pmshared.procgroup: a child in its own process group, stopped as a whole (real processes, real
signals; each test reaps what it starts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pmshared import procgroup
from tests.procutil import pid_gone, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A leader that starts a sleeping grandchild in its group, prints its pid, and then exits or waits.
LEAVES_A_CHILD = "sleep 30 & echo $!"
WAITS_ON_A_CHILD = "sleep 30 & echo $!; wait"


def _grandchild(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    return int(proc.stdout.readline())


def _kill_anyway(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_started_child_leads_its_own_group_with_stdin_from_dev_null() -> None:
    proc = procgroup.start(["sh", "-c", "cat; echo done"], stdout=subprocess.PIPE)
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        out, _ = proc.communicate(timeout=10)  # cat sees EOF at once: nothing of ours on stdin
        assert out == b"done\n" and proc.returncode == 0
    finally:
        procgroup.stop(proc)


def test_stop_after_the_leader_exited_removes_what_it_left_in_its_group() -> None:
    proc = procgroup.start(["sh", "-c", LEAVES_A_CHILD], stdout=subprocess.PIPE)
    child = _grandchild(proc)
    try:
        wait_for(lambda: procgroup.leader_exited(proc.pid), timeout=10, what="the leader to exit")
        assert proc.returncode is None and not pid_gone(child)  # leader unreaped, child running
        assert procgroup.stop(proc) == 0  # the leader's own exit status, not the kill
        wait_for(lambda: pid_gone(child), timeout=5, what="the leader's child to die")
    finally:
        _kill_anyway(child)
        proc.stdout.close()  # type: ignore[union-attr]


def test_stop_kills_a_running_group_at_once_without_grace() -> None:
    proc = procgroup.start(["sh", "-c", WAITS_ON_A_CHILD], stdout=subprocess.PIPE)
    child = _grandchild(proc)
    try:
        assert procgroup.stop(proc) == -signal.SIGKILL
        wait_for(lambda: pid_gone(child), timeout=5, what="the leader's child to die")
    finally:
        _kill_anyway(child)
        proc.stdout.close()  # type: ignore[union-attr]


def test_stop_with_grace_ends_with_sigterm_when_that_is_enough() -> None:
    proc = procgroup.start(["sleep", "30"])
    assert procgroup.stop(proc, grace_s=5.0) == -signal.SIGTERM


def test_stop_with_grace_kills_a_leader_that_ignores_sigterm_after_the_grace() -> None:
    # The trap is set before the line is printed: once we read it, SIGTERM is ignored.
    proc = procgroup.start(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        started = time.monotonic()
        assert procgroup.stop(proc, grace_s=0.3) == -signal.SIGKILL
        assert 0.3 <= time.monotonic() - started < 5.0
    finally:
        if proc.returncode is None:  # a failed assertion above: the loop must not outlive the test
            procgroup.signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_a_reaped_leader_is_not_signalled_again() -> None:
    proc = procgroup.start(["sh", "-c", "exit 3"])
    assert proc.wait(timeout=10) == 3  # reaped: its pid may be someone else's from now on
    assert procgroup.stop(proc) == 3


def test_signalling_a_group_that_does_not_exist_is_no_error() -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        never_a_pid = int(f.read())  # pids stay below pid_max: no group has this id
    procgroup.signal_group(never_a_pid)  # ESRCH, swallowed


def test_without_os_waitid_exited_reaps_keeping_the_status_and_stop_signals_no_reaped_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """macOS before Python 3.13 has no os.waitid: ``exited`` reaps through Popen (the exit status
    kept), and the reaped leader's pid, perhaps someone else's by now, is never signalled."""
    monkeypatch.delattr(os, "waitid", raising=False)
    signalled: list[int] = []
    monkeypatch.setattr(procgroup, "signal_group", lambda pgid, sig=signal.SIGKILL: signalled.append(pgid))
    proc = procgroup.start(["sh", "-c", "exit 3"])
    wait_for(lambda: procgroup.exited(proc), timeout=10, what="the leader to exit")
    assert proc.returncode == 3
    assert procgroup.stop(proc) == 3 and signalled == []
