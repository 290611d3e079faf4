"""Which processes are whose children, from Linux /proc (the kernel's /proc/PID/task/TID/children
exists only where it was built with CONFIG_PROC_CHILDREN, so the walk reads each process's ppid).

A live child's CPU reaches its parent's figures (cutime) only once the parent has reaped it, so
whoever counts the monitor's own CPU must find its live children: the collector's pause sentinel
process, forensics' captures. The exporter does at scrape time, the benches in their windows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def stat_ppid_comm(pid: int | str, proc: str = "/proc") -> tuple[int, str] | None:
    """(ppid, comm) of ``pid`` from its stat file; None if unreadable or gone. The command may hold
    spaces and parentheses (whoever runs a process names it): fields count from the last ``)``."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            raw = f.read()
        close = raw.rfind(b")")
        return int(raw[close + 2:].split()[1]), raw[raw.find(b"(") + 1:close].decode(errors="replace")
    except (OSError, IndexError, ValueError):
        return None


def parent_of(pid: int, proc: str = "/proc") -> int | None:
    """The ppid of ``pid``; None if it is gone."""
    seen = stat_ppid_comm(pid, proc)
    return None if seen is None else seen[0]


def live_children(parents: Iterable[int], proc: str = "/proc") -> dict[int, list[tuple[int, str]]]:
    """{parent: [(pid, comm), ...]} of the processes whose parent is one of ``parents``: one walk of
    /proc."""
    wanted = set(parents)
    found: dict[int, list[tuple[int, str]]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        seen = stat_ppid_comm(name, proc)
        if seen is not None and seen[0] in wanted:
            found.setdefault(seen[0], []).append((int(name), seen[1]))
    return found
