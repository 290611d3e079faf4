"""macOS backend: one long-lived ``top -l 0 -s 1 -stats ...`` process, read on a reader thread.

top is setuid on macOS, so it sees every process without root, and one long-lived top costs one
process start instead of one per second. The reader thread cuts its output into samples
(``macos_top.TopSplitter``), parses them and keeps the latest result; ``sample()`` hands that out.
If top dies the thread starts a new one after a back-off (1 s doubling to 30 s); the first sample
of every top only sets the baseline. ``close()`` stops top and the thread. With each sample the
kernel's memory pressure level is read (``macos_pressure``: one sysctl, no process).

What top gives for the pressure model: CPU (capped at what the threads can use), memory and its
growth (MEM + CMPRS), page-ins, context switches, system calls, parent and owner. It has no run
delay, no CPU of reaped children, no per-process storage bytes and no cgroups: those are None.

Untested on Mac hardware: the parser is tested on captured output and the stream handling with a
fake ``top`` executable.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
import time
from typing import Callable

from collector.macos_pressure import PressureReader
from collector.macos_top import TOP_STATS, RateTracker, TopFormatError, TopSplitter, parse_sample
from pmshared import messages as m
from pmshared import procgroup

log = logging.getLogger("collector.macos")

TOP_ARGS = ("-l", "0", "-s", "1", "-stats", TOP_STATS)
TOP_STOP_GRACE_S = 1.0  # after SIGTERM, before SIGKILL

Result = tuple[list[m.ProcessInfo], m.SystemStats]


class MacBackend:
    """Same interface as LinuxBackend: ``sample()`` -> (processes, system), ``close()``.

    ``sample()`` returns the most recent complete top sample (top produces one a second; calling
    faster returns the same one again). Before top's first usable sample it waits up to
    ``sample_wait_s`` and then returns an empty process list rather than block the worker loop.
    """

    def __init__(
        self,
        top: str = "top",
        clock: Callable[[], float] = time.monotonic,
        *,
        sample_wait_s: float = 0.8,
        quiet_s: float = 0.5,
        backoff_s: tuple[float, float] = (1.0, 30.0),
        stable_s: float = 10.0,
        pressure: PressureReader | None = None,
    ) -> None:
        self.argv = [top, *TOP_ARGS]
        self.clock = clock
        self.sample_wait_s = sample_wait_s
        self.quiet_s = quiet_s  # silence after which a sample with rows counts as complete
        self.backoff_s = backoff_s
        self.stable_s = stable_s  # a top that ran this long resets the back-off
        self.cpu_count = os.cpu_count() or 1
        self._tracker = RateTracker(self.cpu_count)
        # The memory pressure level, read with each sample (one sysctl: see macos_pressure)
        self._pressure = pressure if pressure is not None else PressureReader()
        self._latest: Result | None = None
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()
        # Counters (read by tests and logs): tops started, samples parsed, samples handed out
        # (all but each top's baseline), samples dropped.
        self.starts = 0
        self.samples = 0
        self.published = 0
        self.bad_samples = 0
        self.bad_rows = 0
        self.truncated = 0
        self._thread = threading.Thread(target=self._run, name="top-reader", daemon=True)
        self._thread.start()

    # -- public ----------------------------------------------------------------------------------
    def sample(self) -> Result:
        with self._cond:
            if self._latest is None:
                self._cond.wait_for(lambda: self._latest is not None, timeout=self.sample_wait_s)
            if self._latest is None:
                return [], m.SystemStats(cpu_count=self.cpu_count)
            return self._latest

    def wait_for_samples(self, n: int, timeout: float) -> bool:
        """Block until ``n`` samples have been parsed in total (for tests and start-up)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.samples >= n, timeout=timeout)

    @property
    def top_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def close(self) -> None:
        self._closed.set()
        with self._proc_lock:
            proc = self._proc
        if proc is not None:
            procgroup.stop(proc, grace_s=TOP_STOP_GRACE_S)
        self._thread.join(timeout=2.0)

    # -- reader thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.backoff_s[0]
        while not self._closed.is_set():
            started = self.clock()
            try:
                self._read_one_top()
            except OSError as exc:
                log.error("cannot run %s: %s", self.argv[0], exc)
            if self._closed.is_set():
                break
            if self.clock() - started >= self.stable_s:
                backoff = self.backoff_s[0]
            log.warning("top exited; restarting in %.1f s", backoff)
            if self._closed.wait(backoff):
                break
            backoff = min(backoff * 2, self.backoff_s[1])

    def _read_one_top(self) -> None:
        with self._proc_lock:
            if self._closed.is_set():
                return
            # Own session: a Ctrl-C to the worker's terminal must not kill top behind our back;
            # if the worker dies, top exits on its next write to the closed pipe.
            proc = procgroup.start(self.argv, stdout=subprocess.PIPE, stderr=None)
            self._proc = proc
            self.starts += 1
        self._tracker.reset()  # a new top: its first sample is a baseline again
        splitter = TopSplitter()
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        buffer = b""
        last_data = self.clock()
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([fd], [], [], 0.1)
                now = self.clock()
                if not ready:
                    if now - last_data >= self.quiet_s:
                        lines = splitter.flush()
                        if lines is not None:
                            self._complete(lines, now)
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break  # top exited
                last_data = now
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    lines = splitter.feed(raw.decode("utf-8", "replace"))
                    if lines is not None:
                        self._complete(lines, now)
            splitter.end()
            self.truncated += splitter.truncated
            if splitter.truncated:
                log.warning("dropped a sample cut off by top's exit")
        finally:
            proc.stdout.close()
            procgroup.stop(proc, grace_s=TOP_STOP_GRACE_S)

    def _complete(self, lines: list[str], now: float) -> None:
        try:
            # top prints a sample in one flush, so its arrival time is the sample's time; rates
            # use the spacing between samples (~1 s), where a few ms do not matter.
            sample = parse_sample(lines, received_at=now)
        except TopFormatError as exc:
            self.bad_samples += 1
            log.warning("unparseable top sample: %s", exc)
            return
        self.bad_rows += sample.bad_rows
        result = self._tracker.update(sample, self._pressure.level())
        with self._cond:
            self.samples += 1
            if result is not None:
                self._latest = result
                self.published += 1
            self._cond.notify_all()
