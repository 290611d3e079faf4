"""A loop run in a small forked child of the collector, its results relayed to the parent.

Why a child: the pause sentinel wakes 50 times a second, and a wake-up costs a little less CPU in
a process of its own than beside the collector's threads (the README's Measured section has the
figures, and the memory it costs).

The parent and the child share two kinds of state:
- numbers the child keeps current (the tick count, the lateness ring) live in an anonymous
  MAP_SHARED mapping (``shared_cells``): the child stores into it as it would into an array, the
  parent reads it whenever it likes, no message per tick;
- what the parent must act on (a pause) crosses a pipe as fixed-size records, each one ``write``
  of at most PIPE_BUF bytes, so records never interleave or split. A daemon thread of the parent
  blocks on the pipe and hands each record to ``on_record``; end of file means the child is gone
  (the thread ends and ``alive`` turns False).

The child is made with a bare ``os.fork()`` and never execs: it must do almost nothing of what it
inherited. It leaves through ``os._exit`` (no atexit handlers, no finalizers of ZeroMQ sockets or
files it shares with the parent), never logs, closes every descriptor but the pipe's write end and
stderr (a crash's traceback), ignores SIGINT (a Ctrl-C reaches the whole foreground process group;
the parent stops the child itself), takes SIGTERM's default (the supervisor stops a worker by
signalling its group, and ``stop`` sends it too), and dies with its parent: PR_SET_PDEATHSIG on
Linux, and the loop's own ``orphaned()`` check elsewhere.
"""

from __future__ import annotations

import functools
import gc
import mmap
import os
import signal
import sys
import threading
import time
import traceback
from types import ModuleType
from typing import Callable, NoReturn

Send = Callable[[bytes], object]
# body(send, orphaned): the child's work; orphaned() is True once the parent is gone (cheap, but
# a system call: look now and then, not every tick).
Body = Callable[[Send, Callable[[], bool]], None]

_REAP_POLL_S = 0.005
# A pipe write of at most this many bytes is never split or interleaved with another (POSIX's
# lowest PIPE_BUF; Linux and macOS have 4096).
PIPE_BUF = 512


def shared_cells(count: int) -> memoryview:
    """``count`` zeroed 8-byte cells in an anonymous shared mapping (parent and forked children
    see the same memory), as bytes: ``cast("q")`` or ``cast("d")`` a slice of it."""
    return memoryview(mmap.mmap(-1, 8 * count, flags=mmap.MAP_SHARED))


class ForkedChild:
    """``body`` in a forked child; the records it sends reach ``on_record`` on a parent thread."""

    def __init__(self, name: str, record_size: int, on_record: Callable[[bytes], None]) -> None:
        if not 0 < record_size <= PIPE_BUF:
            raise ValueError(f"a record of {record_size} bytes is not one atomic pipe write")
        self.name = name  # the child's comm: what ps, top and our own process table show
        self.record_size = record_size
        self.on_record = on_record
        self.pid: int | None = None
        self.status: int | None = None  # the wait status, once reaped
        self.cpu_s = 0.0  # the child's CPU time, known once reaped
        self._read_fd: int | None = None
        self._reader: threading.Thread | None = None

    # -- start -------------------------------------------------------------------------------------
    def start(self, body: Body) -> None:
        """Fork. Call it from the main thread: PDEATHSIG follows the thread that forked, and a
        fork with other threads running copies their locks mid-use (start the child early)."""
        # Imported here, in the parent: ctypes only where a child is forked (the supervisor has it
        # loaded already when it forked the collector).
        from pmshared import prctl

        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered here may be written twice
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:
            os.close(read_fd)
            _child(body, self.name, write_fd, parent, prctl)
        # Only the child may hold the write end: its exit is then the pipe's end of file.
        os.close(write_fd)
        self.pid, self._read_fd = pid, read_fd
        self._reader = threading.Thread(target=self._relay, name=f"{self.name}-reader", daemon=True)
        self._reader.start()

    def _relay(self) -> None:
        """Parent thread: each record to ``on_record``, until the child's end of the pipe closes."""
        assert self._read_fd is not None
        size, pending = self.record_size, b""
        while chunk := os.read(self._read_fd, 64 * size):
            pending += chunk
            while len(pending) >= size:
                record, pending = pending[:size], pending[size:]
                self.on_record(record)

    @property
    def alive(self) -> bool:
        """Started, and its pipe still open (the child closes it only by exiting)."""
        return self._reader is not None and self._reader.is_alive()

    # -- stop ----------------------------------------------------------------------------------------
    def stop(self, timeout: float = 0.5) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; reaped either way (no
        zombie), its pipe closed once the reader thread has seen the end of it."""
        if self.pid is None:
            return
        if self.status is None:
            _signal(self.pid, signal.SIGTERM)
            if not self._reap(time.monotonic() + timeout):
                _signal(self.pid, signal.SIGKILL)  # also ends a child that is stopped (SIGSTOP)
                self._reap(None)
        if self._reader is not None:
            self._reader.join(timeout)
        if self._read_fd is not None and not self.alive:
            os.close(self._read_fd)
            self._read_fd = None

    def _reap(self, deadline: float | None) -> bool:
        """Collect the child's exit status (and CPU time): by ``deadline`` (None: wait as long as it
        takes); False if it is still running then."""
        assert self.pid is not None
        while self.status is None:
            try:
                pid, status, usage = os.wait4(self.pid, 0 if deadline is None else os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: nothing more to learn
                self.status = 0
                break
            if pid == self.pid:
                self.status, self.cpu_s = status, usage.ru_utime + usage.ru_stime
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_REAP_POLL_S)
        return True

    def describe_exit(self) -> str:
        """How the child ended, for a log line ("process 123 was killed by SIGKILL")."""
        if self.pid is None:
            return "process never started"
        if self.status is None and not self._reap(time.monotonic() + 0.2):
            return f"process {self.pid} closed its pipe"
        code = os.waitstatus_to_exitcode(self.status or 0)
        if code < 0:
            return f"process {self.pid} was killed by {signal.Signals(-code).name}"
        return f"process {self.pid} exited with code {code}"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _child(body: Body, name: str, write_fd: int, parent: int, prctl: ModuleType) -> NoReturn:
    """The child, from fork to ``os._exit``: never returns into the parent's code."""
    code = 1
    try:
        try:
            signal.set_wakeup_fd(-1)  # the parent's wake-up pipe is the parent's
        except ValueError:
            pass
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        prctl.die_with_parent()
        if os.getppid() != parent:  # the parent died before PDEATHSIG was set
            os._exit(0)
        prctl.set_name(name)
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, _max_fd())
        # The loop makes no reference cycles; a collection would only walk the parent's heap (and
        # copy the pages it writes to).
        gc.disable()
        # A record is at most PIPE_BUF bytes and the pipe blocks: one write sends all of it.
        body(functools.partial(os.write, write_fd), lambda: os.getppid() != parent)
        code = 0
    except BrokenPipeError:
        code = 0  # the parent closed its end: it is going away
    except BaseException:  # noqa: BLE001 - a bug: say where on stderr, then exit all the same
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536
