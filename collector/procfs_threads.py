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
  runnable, waiting for a CPU), summed the same way. On this machine's own /proc the backend
  keeps those files open between samples (``ThreadFiles``): a process whose threads are all
  still there (as many as its stat line counts, every kept file still readable) costs one
  ``pread`` per thread instead of a listing of its task directory and an open, read and close
  per thread — the pipeline's own workers (three or four threads each) run every second.
"""

from __future__ import annotations

import os

from .procfs_files import FdBudget, read_path
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
    name, size = ("schedstat", 256) if schedstat else ("status", 4096)
    texts = []
    for tid in tids:
        try:
            texts.append(read_path(f"{task}/{tid}/{name}", size))
        except OSError:
            continue  # the thread exited meanwhile
    return sum_switches(texts, schedstat, len(tids))


def sum_switches(texts: list[bytes], schedstat: bool, read: int) -> tuple[int | None, int | None, int]:
    """``threads_switches``' answer from the threads' schedstat (or status) texts; ``read``: how
    many threads were looked at."""
    total = delay = 0
    seen = False
    for b in texts:
        if schedstat:
            d, c = parse_schedstat(b)
            delay += d or 0
        else:
            c = status_csw(b)
        if c is not None:
            total += c
            seen = True
    if not seen:
        return None, None, read
    return total, (delay if schedstat else None), read


class ThreadFiles:
    """One multi-threaded process's per-thread ``schedstat`` (or ``status``) files, kept open.

    Only for a live /proc: there a kept file of a thread that exited fails to read (ESRCH), so
    "as many threads as stat counts, and every kept file read" means the kept set is the live
    set (a new thread has a new tid; one that exited would have failed). Otherwise the task
    directory is listed again and the kept set brought up to date. Descriptors come from the
    backend's budget; over it, a thread's file is read by path (``-1`` kept).
    """

    __slots__ = ("task", "name", "size", "fds", "kept")

    def __init__(self, proc_root: str, pid: str, schedstat: bool, fds: FdBudget) -> None:
        self.task = f"{proc_root}/{pid}/task"
        self.name, self.size = ("schedstat", 256) if schedstat else ("status", 4096)
        self.fds = fds
        self.kept: dict[str, int] = {}  # tid -> descriptor (-1: read by path)

    def switches(self, threads: int) -> tuple[int | None, int | None, int]:
        """``threads_switches`` for this process, whose stat line counts ``threads`` threads."""
        schedstat = self.name == "schedstat"
        if len(self.kept) == threads:
            texts = self._read_kept()
            if texts is not None:
                return sum_switches(texts, schedstat, len(texts))
        try:
            tids = os.listdir(self.task)
        except OSError:
            self.close()
            return None, None, 0
        return sum_switches(self._read_listed(tids), schedstat, len(tids))

    def _read(self, tid: str, fd: int) -> bytes:
        return os.pread(fd, self.size, 0) if fd >= 0 else read_path(f"{self.task}/{tid}/{self.name}", self.size)

    def _read_kept(self) -> list[bytes] | None:
        """Every kept thread's file; None as soon as one is gone (a thread exited)."""
        texts = []
        for tid, fd in self.kept.items():
            try:
                b = self._read(tid, fd)
            except OSError:
                return None
            if not b:
                return None
            texts.append(b)
        return texts

    def _read_listed(self, tids: list[str]) -> list[bytes]:
        """The files of the threads listed just now; the kept set becomes exactly those read."""
        listed = set(tids)
        for tid in [t for t in self.kept if t not in listed]:
            self.fds.close(self.kept.pop(tid))
        texts = []
        for tid in tids:
            try:
                fd = self.kept.get(tid)
                if fd is None:
                    fd = self.kept[tid] = self.fds.open(f"{self.task}/{tid}/{self.name}")
                texts.append(self._read(tid, fd))
            except OSError:  # the thread exited meanwhile
                self.fds.close(self.kept.pop(tid, -1))
        return texts

    def close(self) -> None:
        for fd in self.kept.values():
            self.fds.close(fd)
        self.kept.clear()
