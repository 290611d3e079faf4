"""Kept-open /proc files: the file-descriptor budget and whole-file reads.

Opening ``/proc/PID/stat`` costs a path walk through procfs on every open; a kept-open descriptor
re-read with ``os.pread(fd, n, 0)`` skips it (seq_file regenerates the text on a read at offset 0).
A kept descriptor also pins the identity of the process: once that process is gone, reads fail
with ESRCH even if its pid number was reused, so reuse can never mix two processes' counters.

Descriptors are a limited resource: the budget raises the soft ``RLIMIT_NOFILE`` towards the hard
limit once, keeps a reserve for the rest of the worker (sockets, logs, subprocesses), and beyond it
the backend falls back to open/read/close — slower, never wrong.
"""

from __future__ import annotations

import errno
import os
import resource

O_FLAGS = os.O_RDONLY | os.O_CLOEXEC
RESERVE = 256  # descriptors left for everything else in the worker
SOFT_LIMIT_CAP = 1 << 16  # enough for ~20k processes; some code still loops over every fd number


def raise_nofile_limit(cap: int = SOFT_LIMIT_CAP) -> int:
    """Raise the soft RLIMIT_NOFILE to min(hard, cap) if it is lower; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return cap if soft == resource.RLIM_INFINITY else soft


class FdBudget:
    """Counts the descriptors the backend keeps open and says whether one more may be kept."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is None:
            limit = raise_nofile_limit() - RESERVE
        self.limit = max(limit, 0)
        self.used = 0

    def open(self, path: str) -> int:
        """Open ``path`` to keep; -1 when over budget (the caller then reads by path).

        Raises FileNotFoundError / ProcessLookupError / PermissionError like ``os.open``.
        """
        if self.used >= self.limit:
            return -1
        try:
            fd = os.open(path, O_FLAGS)
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                # The process or the system ran out: stop keeping descriptors from here on.
                self.limit = self.used
                return -1
            raise
        self.used += 1
        return fd

    def close(self, fd: int) -> None:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
            self.used -= 1


def read_fd(fd: int, size: int) -> bytes:
    """The whole file behind a kept descriptor (seq_file: a read at offset 0 regenerates it)."""
    b = os.pread(fd, size, 0)
    if len(b) < size:
        return b
    parts = [b]
    offset = len(b)
    while True:
        more = os.pread(fd, 65536, offset)
        if not more:
            return b"".join(parts)
        parts.append(more)
        offset += len(more)


def read_path(path: str, size: int = 4096) -> bytes:
    """Open, read whole, close. Raises OSError like ``os.open``/``os.read``."""
    fd = os.open(path, O_FLAGS)
    try:
        b = os.read(fd, size)
        if len(b) < size:
            return b
        parts = [b]
        while more := os.read(fd, 65536):
            parts.append(more)
        return b"".join(parts)
    finally:
        os.close(fd)
