"""One worker process: started in its own process group, tied to our life, its output read from
one pipe without blocking, reaped with waitpid, its pipe closed after exit.

Two ways to start one (``Child.spawn`` / ``Child.fork``):
- exec, for any command: without a shell, ``start_new_session``, and Linux ``PR_SET_PDEATHSIG``
  set between fork and exec;
- fork from the supervisor's preloaded interpreter, for a ``python -m``/``python script`` line at
  start-up on Linux (supervisor/launch.py: the workers then share the imported code's memory). The child
  sets up the same session, output pipe and PDEATHSIG itself.

- Own process group: the worker leads it, so stopping it signals the worker *and* anything it
  started (a grandchild cannot escape a stop), and a Ctrl-C on the terminal reaches the
  supervisor only, which then stops the workers in order.
- ``PR_SET_PDEATHSIG``: the kernel SIGKILLs the worker when the thread that forked it dies, so
  even ``kill -9`` of the supervisor leaves no worker running. The signal is tied to the forking
  *thread*, which is why the supervisor starts children from its main thread. macOS has no
  equivalent; there a worker notices a dead supervisor only through its own means.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import IO, Protocol

from pmshared import prctl, procgroup
from supervisor import launch
from supervisor.output import MAX_LINE

_READ_CHUNK = 65536


def _die_with_parent(parent_pid: int):  # type: ignore[no-untyped-def]
    def preexec() -> None:
        prctl.die_with_parent()
        # The parent may have died between fork and prctl: then nobody would ever signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class Process(Protocol):
    """What the supervisor needs of a started process (subprocess.Popen, launch.ForkedProcess)."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def describe_exit(returncode: int) -> str:
    """``code 1`` / ``signal 9 (SIGKILL)``: Popen's negative return code means death by signal."""
    if returncode >= 0:
        return f"code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "?"
    return f"signal {-returncode} ({name})"


class Child:
    """A running (or just exited, not yet closed) worker process."""

    def __init__(self, name: str, proc: Process, output: IO[bytes], *, forked: bool) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.forked = forked
        self.started_mono = time.monotonic()
        self.started_wall = time.time()
        self._pipe = output
        os.set_blocking(self._pipe.fileno(), False)
        self._partial = b""
        self.returncode: int | None = None

    @classmethod
    def spawn(cls, name: str, argv: list[str], env: dict[str, str], cwd: str | None) -> Child:
        """Exec ``argv``. Raises OSError (e.g. FileNotFoundError) when it cannot be started."""
        proc = procgroup.start(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        assert proc.stdout is not None
        return cls(name, proc, proc.stdout, forked=False)

    @classmethod
    def fork(cls, name: str, target: launch.PythonTarget, env: dict[str, str], cwd: str | None) -> Child:
        """Fork a Python worker from this interpreter (see supervisor/launch.py for when that is safe)."""
        read_end, write_end = os.pipe()
        try:
            proc = launch.fork_target(target, name, env, cwd, write_end)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return cls(name, proc, os.fdopen(read_end, "rb", buffering=0), forked=True)

    # -- output ----------------------------------------------------------------------------------
    def fileno(self) -> int:
        """The output pipe (for the poller); -1 once closed."""
        return -1 if self._pipe.closed else self._pipe.fileno()

    def read_lines(self) -> list[str]:
        """Complete lines available now (never blocks). At EOF: the rest, and the pipe is closed."""
        if self._pipe.closed:
            return []
        data = b""
        eof = False
        while True:
            try:
                chunk = os.read(self._pipe.fileno(), _READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            data += chunk
            if len(data) >= 4 * _READ_CHUNK:
                break  # let the other workers' output and the loop have a turn
        lines = self._split(data)
        if eof:
            if self._partial:
                lines.append(self._partial.decode("utf-8", "replace"))
                self._partial = b""
            self.close_output()
        return lines

    def _split(self, data: bytes) -> list[str]:
        buf = self._partial + data
        *complete, self._partial = buf.split(b"\n")
        if len(self._partial) > MAX_LINE:
            # A line without end: show what we have rather than buffer without bound.
            complete.append(self._partial)
            self._partial = b""
        return [c.rstrip(b"\r").decode("utf-8", "replace") for c in complete]

    def close_output(self) -> None:
        if not self._pipe.closed:
            self._pipe.close()

    # -- life ------------------------------------------------------------------------------------
    def poll(self) -> int | None:
        """Reap the worker if it exited (waitpid WNOHANG); its return code, else None."""
        if self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def signal_group(self, sig: int) -> None:
        """Signal the worker's whole process group. Only while the leader is unreaped (or just
        reaped, in the same loop turn), so the group id cannot have been reused."""
        procgroup.signal_group(self.pid, sig)
