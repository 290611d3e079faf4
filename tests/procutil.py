"""Polling with a deadline, and what tests and benchmarks read of other processes in /proc.

No pytest here: bench/ imports it too. A timeout is an AssertionError, which pytest reports as the
test's failure, with ``what`` (a string, or a function called at that moment to describe the
state) in the message.
"""

from __future__ import annotations

import os
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


def pid_gone(pid: int) -> bool:
    """Gone, or a zombie (exited, waiting for its parent to collect it): it runs nothing."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")


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


def comm(pid: int) -> str:
    """The process's name as top and ``ps -e`` show it."""
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")[:-1]
