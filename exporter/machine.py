"""Two figures read at scrape time from the kernel rather than from the pipeline's messages: the
monitor's own CPU seconds (per process, from /proc on Linux) and the time the machine has spent
suspended since boot (the time pause detection excludes). Both are cheap reads done only when
someone scrapes, so the exporter costs nothing for them between scrapes.
"""

from __future__ import annotations

import os
import sys
import time

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int, proc: str = "/proc") -> float | None:
    """utime + stime of ``pid`` in seconds (Linux /proc/PID/stat); None if unreadable or gone.

    The command field may hold spaces and parentheses (whoever runs a process names it), so the
    fields are counted from the last ``)``."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15
    except (IndexError, ValueError):
        return None


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
