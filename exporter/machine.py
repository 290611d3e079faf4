"""Two figures read at scrape time from the kernel rather than from the pipeline's messages: the
monitor's own CPU seconds (per process, from /proc on Linux) and the time the machine has spent
suspended since boot (the time pause detection excludes). Both are cheap reads done only when
someone scrapes, so the exporter costs nothing for them between scrapes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from pmshared.proc_children import live_children, parent_of

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int, proc: str = "/proc", reaped: bool = False) -> float | None:
    """utime + stime of ``pid`` in seconds (Linux /proc/PID/stat), with ``reaped`` also its
    children's it has waited for (cutime + cstime); None if unreadable or gone.

    The command field may hold spaces and parentheses (whoever runs a process names it), so the
    fields are counted from the last ``)``."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    try:
        ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
        if reaped:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
        return ticks / _TICKS
    except (IndexError, ValueError):
        return None


class WithChildren:
    """The CPU seconds of a process and of its children, live and reaped: the collector's tick
    loop runs in a child of its own (``[sentinel] where = "process"``), most of the collector's
    CPU, and forensics runs its captures as children. A live child's time reaches its parent's
    figures only once it is reaped (cutime), so the live ones are added: the sum only grows as a
    counter must, a child's time moving from its own figure to its parent's when it is reaped.
    The children are found by one walk of /proc per parent pid, again when one of them is no
    longer that parent's child and at least every ``refresh_s`` (a child born since: a scrape
    that came before the collector forked its sentinel process would otherwise never see it),
    so most scrapes read one more stat file per child, not the whole of /proc."""

    def __init__(self, proc: str = "/proc", refresh_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.proc, self.refresh_s, self.clock = proc, refresh_s, clock
        self._children: dict[int, tuple[float, list[int]]] = {}  # pid -> (found at, children)

    def __call__(self, pid: int, children: bool = True) -> float | None:
        """With ``children`` False, the process's own CPU alone (the supervisor: its children
        are the workers, each a series of its own)."""
        if not children:
            return cpu_seconds(pid, self.proc)
        own = cpu_seconds(pid, self.proc, reaped=True)
        if own is None:
            self._children.pop(pid, None)
            return None
        now = self.clock()
        found_at, kids = self._children.get(pid, (None, []))
        if (found_at is None or now - found_at >= self.refresh_s
                or any(parent_of(k, self.proc) != pid for k in kids)):
            kids = [k for k, _ in live_children([pid], self.proc).get(pid, [])]
            self._children[pid] = (now, kids)
        return own + sum(cpu_seconds(k, self.proc, reaped=True) or 0.0 for k in kids)


def suspended_seconds() -> float | None:
    """Seconds the machine has been suspended since boot: the suspend-inclusive clock less the
    awake one (Linux CLOCK_BOOTTIME - CLOCK_MONOTONIC; macOS CLOCK_MONOTONIC_RAW -
    CLOCK_UPTIME_RAW); None where the platform lacks the pair."""
    if sys.platform == "darwin":
        total, awake = getattr(time, "CLOCK_MONOTONIC_RAW", None), getattr(time, "CLOCK_UPTIME_RAW", None)
    else:
        total, awake = getattr(time, "CLOCK_BOOTTIME", None), getattr(time, "CLOCK_MONOTONIC", None)
    if total is None or awake is None:
        return None
    # Read back to back; their difference below a millisecond is reading skew, not sleep.
    return max(0.0, time.clock_gettime(total) - time.clock_gettime(awake))
