"""What every worker process shares at run time: stop flag, logging, heartbeat, counters.

Signal handlers only set the stop flag; Python also writes a byte to ``Worker.wakeup_fd`` for each
signal (signal.set_wakeup_fd), so a receive loop that polls that fd with its sockets wakes at once
on SIGTERM/SIGINT and may otherwise sleep until its next heartbeat is due (``poll_timeout_ms``).
Loops that cannot poll the fd keep polling with POLL_MS and checking the flag. Either way a worker
exits within a second of SIGTERM/SIGINT. The heartbeat is sent from the worker's own main loop
(never from a helper thread), so a hung loop stops heartbeating and the supervisor's watchdog
notices.
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

from pmshared import config as config_mod
from pmshared import messages as m
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, Sockets, send_nowait
from pmshared.safetext import inert

POLL_MS = 200  # longest a loop not polling Worker.wakeup_fd waits before looking at the stop flag
# Longest a loop that polls Worker.wakeup_fd sleeps (woken by signals, heartbeats): the end of the
# default heartbeat's window ((1 + HEARTBEAT_SLACK) x 1 s); longer for a worker that heartbeats less
# often (Worker.heartbeat_every). Capped at 1 s, a worker fed at 1 Hz woke for its heartbeat at the
# due time and again a few ms later for the input whenever the input came just after it (half the
# seconds: tiering and forensics woke 1.4-1.8 times a second).
MAX_IDLE_MS = 1250
MAX_HEARTBEAT_S = 60.0  # the longest interval a heartbeat may announce (Heartbeat.interval_s)
# A heartbeat may go out this fraction of an interval early or late. A worker woken by its own
# 1 Hz work (the snapshot flow) then sends it on that wake-up instead of waking once more just for
# it: on a VM one wake-up costs 40-70 us of CPU, more than the heartbeat itself. Heartbeats stay
# at most 1.25 intervals apart, well inside the supervisor's allowance (missed_heartbeats x interval).
HEARTBEAT_SLACK = 0.25
# When an exec'd worker gives the C heap's free pages back to the system: once start-up is over
# (imports, sockets, the first messages). Once: after that the heap holds messages of about the
# same size every second, which reuse the same free space rather than leave new holes.
TRIM_AFTER_S = 3.0
# A worker's first heartbeat is usually lost: the supervisor's SUB has not yet told our PUB that
# it subscribes. For its first seconds a worker therefore heartbeats at least this often, so that
# `pmctl status` shows it running within a second even at a long heartbeat_interval_s.
STARTUP_HEARTBEAT_S = 1.0
STARTUP_HEARTBEATS_FOR_S = 10.0


def drain_fd(fd: int) -> None:
    """Empty a non-blocking wake-up fd that a poll saw readable (its bytes carry nothing)."""
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


class WakePipe:
    """A non-blocking pipe that wakes a loop polling ``fd``: ``poke()`` from a thread or a signal
    (signal.set_wakeup_fd), ``drain()`` in the loop once it saw ``fd`` readable. The bytes carry
    nothing; a full buffer only drops bytes that would wake an already-woken loop. (A pipe, not a
    socketpair: the socket module would cost every worker ~0.25 MB for nothing else.)"""

    def __init__(self) -> None:
        self.fd, self.write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self.write_fd, False)

    def poke(self) -> None:
        try:
            os.write(self.write_fd, b"\0")
        except OSError:
            pass  # buffer full: a wake-up is already pending (or closed at exit)

    def drain(self) -> None:
        drain_fd(self.fd)

    def close(self) -> None:
        for fd in (self.fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


_libc_malloc_trim: Any = None  # resolved on first use; False where there is none (macOS, musl)


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``); False if unavailable.

    Importing leaves megabytes of freed scratch memory (unmarshalled code, compile buffers)
    inside the heap; glibc keeps it mapped because live objects sit above it. Trimming once
    start-up is over takes ~1 MB off an exec'd worker's resident memory (measured: 12.9 -> 12.0
    MB anonymous in the collector) for ~0.1 MB of ctypes; the supervisor trims before it forks.
    """
    global _libc_malloc_trim
    if _libc_malloc_trim is None:
        _libc_malloc_trim = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                _libc_malloc_trim = ctypes.CDLL(None).malloc_trim
            except (OSError, AttributeError):
                pass  # not glibc
    if not _libc_malloc_trim:
        return False
    _libc_malloc_trim(0)
    return True


def new_incarnation() -> str:
    """Unique per process start: keys records so a resend after a restart is recognised."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def setup_logging(name: str, level: int = logging.INFO) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return logging.getLogger(name)


def fail(message: str, code: int = 2) -> None:
    """One clear line on stderr for a user mistake, then exit (never a traceback)."""
    # The message may quote the config file, a path or a key: text from outside, made inert.
    print(f"error: {inert(message)}", file=sys.stderr)
    raise SystemExit(code)


def load_config_or_exit() -> config_mod.Config:
    try:
        return config_mod.load()
    except config_mod.ConfigError as exc:
        fail(str(exc), config_mod.CONFIG_ERROR_EXIT)
        raise  # unreachable


class Worker:
    """Runtime of one worker process: identity, stop flag, counters, sockets, heartbeat."""

    def __init__(self, name: str, config: config_mod.Config | None = None, *, sockets: bool = True) -> None:
        self.name = name
        self.config = config or load_config_or_exit()
        self.incarnation = new_incarnation()
        self.log = setup_logging(name)
        self.stopping = threading.Event()
        self.counters: Counter[str] = Counter()
        self.sockets = Sockets(self.config.transport, remote=self.config.remote) if sockets else None
        self._heartbeat_sock = None
        self._heartbeat_stamp = Stamper(name, self.incarnation)
        self._heartbeat_codec = ENDPOINTS["health"].codec()
        self._heartbeat_every = self.config.supervisor.heartbeat_interval_s
        self._heartbeat_slack = HEARTBEAT_SLACK * self._heartbeat_every
        self._max_idle_ms = MAX_IDLE_MS
        self._next_heartbeat = 0.0
        self._fast_heartbeats_until = time.monotonic() + STARTUP_HEARTBEATS_FOR_S
        self._wakeup: WakePipe | None = None
        self._wakeup_lock = threading.Lock()  # wake() from other threads against close()
        self._trim_at: float | None = time.monotonic() + TRIM_AFTER_S  # None once done
        self.wakeup_fd: int | None = None  # readable after a signal; see install_signal_handlers

    def stamper(self) -> Stamper:
        return Stamper(self.name, self.incarnation)

    # -- counted warnings ------------------------------------------------------------------------
    def warn_counted(self, counter: str, message: str, *args: object) -> None:
        """Count one lost input or output; log the first ten, then every thousandth, so a flood
        of garbage or a dead peer never floods the log (the counter, in the heartbeat, is exact)."""
        self.counters[counter] += 1
        n = self.counters[counter]
        if n <= 10 or n % 1000 == 0:
            self.log.warning(message + " (%d so far)", *args, n)

    def drop_bad(self, source: str, error: object) -> None:
        """A malformed frame or line: counted as ``bad_input``, logged (inert), dropped."""
        self.warn_counted("bad_input", "dropped malformed %s: %s", source, inert(str(error), 200))

    # -- signals ---------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        # Self-pipe: the interpreter writes a byte here on every signal, so a loop polling
        # wakeup_fd with its sockets wakes at once instead of waking every POLL_MS to look at the
        # flag (an idle worker then costs one wake-up per heartbeat).
        self._wakeup = WakePipe()
        signal.set_wakeup_fd(self._wakeup.write_fd, warn_on_full_buffer=False)
        self.wakeup_fd = self._wakeup.fd

    def wake(self) -> None:
        """Wake the main loop's poll from another thread, as a signal would (serve_frames then
        drains its inputs and ticks); nothing once closed (the fd number may be reused)."""
        with self._wakeup_lock:
            if self._wakeup is not None:
                self._wakeup.poke()

    def drain_wakeup(self) -> None:
        """Empty wakeup_fd once a poll saw it readable (its bytes carry nothing: the flag does)."""
        if self._wakeup is not None:
            self._wakeup.drain()

    def sleep(self, seconds: float) -> None:
        """Wait up to ``seconds``, returning early on SIGTERM/SIGINT.

        Never ``self.stopping.wait()`` on the main thread: the signal handler sets that Event, and
        a signal arriving while the wait holds the Event's internal lock would deadlock."""
        if seconds <= 0 or self.stopping.is_set():
            return
        if self.wakeup_fd is not None:
            if select.select([self.wakeup_fd], [], [], seconds)[0]:
                self.drain_wakeup()
            return
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, POLL_MS / 1000))

    def poll_timeout_ms(self, now: float | None = None) -> int:
        """How long a loop that polls wakeup_fd may wait for input: until the heartbeat's latest
        moment (its due time plus the slack; any earlier wake-up in the window sends it), at most
        MAX_IDLE_MS. Without the wakeup fd, POLL_MS (the loop must look at the flag)."""
        if self.wakeup_fd is None:
            return POLL_MS
        if self._heartbeat_sock is None:
            return MAX_IDLE_MS
        now = time.monotonic() if now is None else now
        # Rounded up: waking a millisecond early would find the heartbeat not yet due.
        due_in = math.ceil((self._next_heartbeat + self._heartbeat_slack - now) * 1000)
        return max(0, min(self._max_idle_ms, due_in))

    @property
    def running(self) -> bool:
        return not self.stopping.is_set()

    # -- heartbeat -------------------------------------------------------------------------------
    def heartbeat_every(self, seconds: float) -> None:
        """Heartbeat every ``seconds`` instead of the configured interval, when that is longer,
        and let an idle loop sleep that long: for a worker with nothing to do every second (each
        wake-up of a Python process costs ~0.4 ms of CPU on a VM, most of a quiet worker's cost).
        Each heartbeat then carries its interval (``Heartbeat.interval_s``) and the supervisor's
        watchdog allows missed_heartbeats of it: such a worker's hang is noticed that much later,
        every other worker's as before. Call before start_heartbeat."""
        seconds = min(seconds, MAX_HEARTBEAT_S)
        if seconds > self._heartbeat_every:
            self._heartbeat_every = seconds
            self._heartbeat_slack = HEARTBEAT_SLACK * seconds
            self._max_idle_ms = max(MAX_IDLE_MS, math.ceil((1 + HEARTBEAT_SLACK) * seconds * 1000))

    def start_heartbeat(self) -> None:
        assert self.sockets is not None
        self._heartbeat_sock = self.sockets.connect("health")

    def heartbeat(self, now: float | None = None) -> None:
        """Send a heartbeat if one is due (within HEARTBEAT_SLACK); cheap to call on every loop
        iteration."""
        if self._heartbeat_sock is None:
            return
        now = time.monotonic() if now is None else now
        if now < self._next_heartbeat - self._heartbeat_slack:
            return
        every = self._heartbeat_every
        if now < self._fast_heartbeats_until:
            every = min(every, STARTUP_HEARTBEAT_S)
        self._next_heartbeat = now + every
        self._heartbeat_slack = HEARTBEAT_SLACK * every
        # The interval is said only where it is longer than the configured one (heartbeat_every):
        # the supervisor allows every worker at least that.
        interval = every if every > self.config.supervisor.heartbeat_interval_s else None
        msg = self._heartbeat_stamp(m.Heartbeat, pid=os.getpid(), counters=dict(self.counters), interval_s=interval)
        # PUB never blocks; with no supervisor listening the message is simply dropped.
        send_nowait(self._heartbeat_sock, self._heartbeat_codec.encode(msg))
        # Housekeeping rides on the heartbeat: it runs from the main loop, at a known rhythm.
        if self._trim_at is not None and now >= self._trim_at:
            self._trim_at = None
            release_free_memory()

    def close(self) -> None:
        if self.sockets is not None:
            self.sockets.close()
        with self._wakeup_lock:
            if self._wakeup is not None:
                signal.set_wakeup_fd(-1)
                self._wakeup.close()
                self._wakeup = None
                self.wakeup_fd = None
