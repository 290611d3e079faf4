"""What the flight recorder needs from a snapshot besides the rogues (issue 19), picked here because
only the scorer sees every process each second.

- ``busiest``: the top few processes by cpu, memory, storage io and page-ins that are not already
  rogues, so a quiet second still answers "who was running";
- ``table_due``: whether this snapshot carries the whole process table (about once a minute,
  decided from the snapshot's own sequence number so the scorer stays stateless).
"""

from __future__ import annotations

import heapq
import operator

from pmshared.messages import ProcessInfo

BUSIEST_PER_RESOURCE = 3
TABLE_EVERY_S = 60.0


def _io(proc: ProcessInfo) -> float:
    return (proc.read_bps or 0.0) + (proc.write_bps or 0.0)


def _mem(proc: ProcessInfo) -> float:
    return float(proc.mem)


# (figure, the least of it that counts as "running"): a process at 0.3 % cpu or reading 2 KB/s is
# not the answer to "who was running", and would cost the record a row every second.
_KEYS = (
    (lambda p: p.cpu or 0.0, 1.0),  # % of a core
    (_mem, 1.0),  # bytes: the largest few, always
    (_io, 65536.0),  # bytes/s
    (lambda p: p.pageins or 0.0, 1.0),  # major faults/s
)
_BY_MEM = operator.attrgetter("mem")  # the same order as _mem for any size below 2**53 bytes


def busiest(processes: list[ProcessInfo], exclude: set[int], n: int = BUSIEST_PER_RESOURCE) -> list[ProcessInfo]:
    """Up to ``n`` processes per resource, each at least that resource's floor, not in ``exclude``
    (pids), by pid."""
    # Every floor but memory's is above 0, so only a process with some cpu, io or page-ins can be
    # picked for those: one pass finds the few (most processes sleep), and the keys run on them
    # alone instead of on every process four times (0.56 ms a second at 600 processes, measured,
    # most of the scorer's own work beside the model). Same picks: the sublist keeps the order,
    # so ties go the same way.
    active = [p for p in processes if (p.cpu or p.read_bps or p.write_bps or p.pageins) and p.pid not in exclude]
    picked: dict[int, ProcessInfo] = {}
    for key, floor in _KEYS:
        pool = active
        if key is _mem:  # every process has some: the largest (ranked in C), past the excluded
            largest = heapq.nlargest(n + len(exclude), processes, key=_BY_MEM)
            pool = [p for p in largest if p.pid not in exclude]
        for proc in heapq.nlargest(n, pool, key=key):
            if key(proc) >= floor:
                picked[proc.pid] = proc
    return sorted(picked.values(), key=lambda p: p.pid)


def table_due(snapshot_seq: int, interval_s: float, every_s: float = TABLE_EVERY_S) -> bool:
    """True for the first snapshot of a collector incarnation and then every ``every_s``."""
    every = max(1, round(every_s / interval_s))
    return snapshot_seq % every == 1 % every
