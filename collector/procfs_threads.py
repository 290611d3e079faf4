"""Per-thread reads: stuck (D-state) threads behind a sleeping main thread, and whole-process
context switches.

Both cost one read per thread, so the backend calls them only when they can change the answer:

- ``count_stuck_threads``: a process whose main thread sleeps while another thread waits in D
  shows ``S`` in /proc/PID/stat (and in ``ps``). /proc/stat ``procs_blocked`` counts tasks in
  iowait (the kernel's ``nr_iowait``), so more blocked tasks than main threads in D means some
  worker thread is blocked: scan then. It does *not* count D waits outside io_schedule() (a
  mutex, a vfork parent, many NFS/FUSE waits), which is why the backend also rotates a slow scan
  through the multi-threaded processes.
- ``threads_switches``: /proc/PID/status and /proc/PID/schedstat count the context switches of
  the main thread only (so does psutil's ``num_ctx_switches``); a process's total is the sum over
  its threads. Threads that already exited are not in the sum, so the total may drop: the
  backend clamps rates at 0. The same schedstat reads give the threads' run delay (time spent
  runnable, waiting for a CPU), summed the same way.
"""

from __future__ import annotations

import os

from .procfs_files import read_path
from .procfs_parse import D_STATE, parse_schedstat, stat_state, status_csw


def count_stuck_threads(proc_root: str, pid: str) -> int:
    """How many threads of ``pid`` other than the main one are in D right now."""
    task = f"{proc_root}/{pid}/task"
    try:
        tids = os.listdir(task)
    except OSError:
        return 0
    stuck = 0
    for tid in tids:
        if tid == pid:
            continue
        try:
            b = read_path(f"{task}/{tid}/stat", 1024)
        except OSError:
            continue  # the thread exited meanwhile
        if stat_state(b) == D_STATE:
            stuck += 1
    return stuck


def threads_switches(proc_root: str, pid: str, schedstat: bool) -> tuple[int | None, int | None, int]:
    """(voluntary + involuntary context switches summed over live threads, their run delay in ns
    summed likewise (None without schedstat), threads read).

    From each thread's ``schedstat`` (``runtime_ns wait_ns switches``: the third number counts
    switches onto a CPU, equal to nvcsw + nivcsw; a small file) when available, else from each
    thread's ``status`` (no run delay there).
    """
    task = f"{proc_root}/{pid}/task"
    try:
        tids = os.listdir(task)
    except OSError:
        return None, None, 0
    total = delay = 0
    seen = False
    for tid in tids:
        try:
            b = read_path(f"{task}/{tid}/schedstat", 256) if schedstat else read_path(f"{task}/{tid}/status", 4096)
        except OSError:
            continue
        if schedstat:
            d, c = parse_schedstat(b)
            delay += d or 0
        else:
            c = status_csw(b)
        if c is not None:
            total += c
            seen = True
    if not seen:
        return None, None, len(tids)
    return total, (delay if schedstat else None), len(tids)
