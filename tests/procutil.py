"""Polling with a deadline, and what tests and benchmarks read of other processes in /proc.

No pytest here: bench/ imports it too. A timeout is an AssertionError, which pytest reports as the
test's failure, with ``what`` (a string, or a function called at that moment to describe the
state) in the message.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T], timeout: float = 10.0, what: str | Callable[[], str] = "condition",
    *, interval: float = 0.05,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc (R, S, Z, T, ...), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The state follows the parenthesised command (which may itself contain parentheses).
    return chr(stat[stat.rfind(b")") + 2])


def pid_gone(pid: int) -> bool:
    """Gone, or a zombie (exited, waiting for its parent to collect it): it runs nothing."""
    return proc_state(pid) in (None, "Z", "X")


def tagged_pids(var: str, tag: str) -> list[int]:
    """Live processes whose environment holds ``var=tag`` (a zombie's environ is empty)."""
    needle = f"{var}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry))
    return found


def kill_tagged(var: str, tag: str, settle_s: float = 3.0) -> list[int]:
    """SIGKILL the processes still tagged ``var=tag`` once ``settle_s`` has passed (those killed a
    moment ago, e.g. by PDEATHSIG, may still be on their way out); return the pids it killed."""
    deadline = time.monotonic() + settle_s
    left = tagged_pids(var, tag)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = tagged_pids(var, tag)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def freeze(leader: int) -> None:
    """SIGSTOP the process group ``leader`` leads: a worker and the processes it forked.

    A test's stand-in for a machine stall must stop the collector's pause sentinel, which runs in
    a child process of the collector (``[sentinel] where = "process"``, the Linux default) in the
    collector's process group: stopping the collector's pid alone leaves the sentinel ticking,
    and a stopped collector beside a sentinel that keeps its rhythm is, rightly, no pause (the
    machine did not stall). Refused unless ``leader`` leads its group (as every worker the
    supervisor starts does): the group might otherwise be this test's own."""
    if os.getpgid(leader) != leader:
        raise AssertionError(f"pid {leader} leads no process group of its own")
    os.killpg(leader, signal.SIGSTOP)


def thaw(leader: int) -> None:
    """SIGCONT the process group ``leader`` leads (after ``freeze``)."""
    os.killpg(leader, signal.SIGCONT)


def comm(pid: int) -> str:
    """The process's name as top and ``ps -e`` show it."""
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")[:-1]
