"""Sleeper processes for the benchmark: spawned in one process group, always reaped.

Each sleeper is ``sleep`` with a bounded lifetime, so even a benchmark killed with SIGKILL leaves
nothing behind for long. ``Sleepers`` is a context manager: leaving it kills the group and reaps
every child.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

SLEEP = shutil.which("sleep") or "/bin/sleep"


def count_processes(proc_root: str = "/proc") -> int:
    return sum(1 for name in os.listdir(proc_root) if name.isdigit())


class Sleepers:
    """Keeps ``len(self)`` sleeping children; ``grow_to(total)`` tops the machine up to ``total``."""

    def __init__(self, lifetime_s: int = 900) -> None:
        self.lifetime_s = lifetime_s
        self.pids: list[int] = []
        self.pgid = 0

    def __len__(self) -> int:
        return len(self.pids)

    def spawn(self, n: int) -> None:
        for _ in range(n):
            pid = os.posix_spawn(
                SLEEP, [SLEEP, str(self.lifetime_s)], os.environ, setpgroup=self.pgid
            )
            if not self.pgid:
                self.pgid = pid
            self.pids.append(pid)

    def spawn_active(self, n: int) -> None:
        """``n`` processes that wake up 20 times a second: each runs in every sampling interval."""
        code = f"import time\nend = time.monotonic() + {self.lifetime_s}\nwhile time.monotonic() < end: time.sleep(0.05)"
        for _ in range(n):
            pid = os.posix_spawn(
                sys.executable, [sys.executable, "-S", "-c", code], os.environ, setpgroup=self.pgid
            )
            if not self.pgid:
                self.pgid = pid
            self.pids.append(pid)

    def start_churn(self, per_s: float) -> int:
        """A process that starts ``per_s`` short-lived ones a second (``true``, reaped at once), as
        on a desktop where something always starts; killed with the group or ``stop``. Its pid."""
        true = shutil.which("true") or "/bin/true"
        code = (
            "import os, time\n"
            f"end = time.monotonic() + {self.lifetime_s}\n"
            "while time.monotonic() < end:\n"
            f"    os.waitpid(os.posix_spawn({true!r}, [{true!r}], {{}}), 0)\n"
            f"    time.sleep({1.0 / per_s!r})\n"
        )
        argv = [sys.executable, "-S", "-c", code]
        pid = os.posix_spawn(sys.executable, argv, os.environ, setpgroup=self.pgid)
        if not self.pgid:
            self.pgid = pid
        return pid

    def stop(self, pid: int) -> None:
        """Kill and reap one child started here (not a sleeper)."""
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def grow_to(self, total: int) -> None:
        """Spawn until about ``total`` processes exist on the machine (others come and go)."""
        missing = total - count_processes()
        if missing > 0:
            self.spawn(missing)
        time.sleep(0.2)  # let the children get to their sleep (exec done, state S)

    def kill_all(self) -> None:
        if self.pgid:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)  # in case one left the group
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.pids = []
        self.pgid = 0

    def __enter__(self) -> Sleepers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()
