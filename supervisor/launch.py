"""Starting a Procfile's Python workers by fork from the supervisor's warm interpreter.

Six CPython processes each holding their own copy of zmq, msgspec, typing, inspect and the shared
package cost ~12 MB of private memory apiece (measured: 85 MB PSS for the pipeline). Instead, the
supervisor imports the workers' code once (``preload``) and, before it creates any ZeroMQ context
or thread, forks each ``python -m <module>`` / ``python <script>`` line: the child runs the module
with ``runpy`` exactly as ``python -m`` would, and the pages imported before the fork stay shared
copy-on-write with the supervisor and with each other (measured: the five workers 72.5 MB PSS
exec'd, 46.7 MB forked). This is the prefork pattern of gunicorn's ``--preload`` and of
``multiprocessing``'s forkserver.

Only where it is safe: Linux (macOS system libraries are not fork-safe without exec), a process
with no other threads and no ZeroMQ context yet (the supervisor's initial start), and commands
that run this very interpreter with no interpreter options. Everything else, restarts included,
is exec'd as before (supervisor/child.py). The child does what ``subprocess`` does between fork and exec
(own session, stdin from /dev/null, stdout+stderr into the supervisor's pipe, PDEATHSIG) plus
what a fresh interpreter would have: default signal handlers, the Procfile's environment and
working directory, ``sys.argv``, ``sys.path[0]``.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass

from pmshared import prctl
from pmshared.runtime import release_free_memory
from supervisor import heap

# Signals the supervisor handles itself; a fresh interpreter has these defaults.
_RESET_SIGNALS = {
    signal.SIGTERM: signal.SIG_DFL,
    signal.SIGHUP: signal.SIG_DFL,
    signal.SIGCHLD: signal.SIG_DFL,
    signal.SIGINT: signal.default_int_handler,
}


@dataclass(frozen=True)
class PythonTarget:
    """What a ``python -m <module> args`` or ``python <script> args`` line runs."""

    module: str | None
    script: str | None
    args: list[str]


def python_target(argv: list[str]) -> PythonTarget | None:
    """The module or script a command runs on *this* interpreter, or None (then it is exec'd).

    ``argv`` is a Procfile entry's argv, ``python`` already replaced by ``sys.executable``; any
    interpreter option (``-u``, ``-X``, ...) other than ``-m`` means exec: only a real
    interpreter start honours those.
    """
    if len(argv) < 2 or argv[0] != sys.executable:
        return None
    if argv[1] == "-m":
        if len(argv) < 3 or not argv[2] or argv[2].startswith("-"):
            return None
        return PythonTarget(module=argv[2], script=None, args=argv[3:])
    if argv[1].startswith("-"):
        return None
    return PythonTarget(module=None, script=argv[1], args=argv[2:])


def fork_supported() -> bool:
    """Linux, and no thread but this one: forking a threaded process copies its locks mid-use."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def preload(targets: list[PythonTarget]) -> list[str]:
    """Import what the workers will run: ``<module>`` and, where there is one, ``<module>.main``
    (this project's convention: ``__main__`` only calls ``main``). Returns one line per import
    that failed; such a worker is still forked and then fails, visibly, in its own output."""
    problems = []
    for target in targets:
        if target.module is None:
            continue
        for name in (target.module, f"{target.module}.main"):
            try:
                if name != target.module and importlib.util.find_spec(name) is None:
                    continue
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - any import error: the worker reports it itself
                problems.append(f"preloading {name}: {type(exc).__name__}: {exc}")
                break
    # Objects imported so far live as long as the process: keep the collector from ever touching
    # them, so their pages stay shared with every worker forked from here.
    gc.collect()
    gc.freeze()
    heap.fill_free_blocks()  # the workers' first objects then go to pages of their own
    release_free_memory()  # what the imports freed goes back now, not into every child
    return problems


class ForkedProcess:
    """The part of ``subprocess.Popen`` the supervisor uses, for a child forked from here."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.returncode  # reaped elsewhere: nothing more to learn
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"pid {self.pid} still running after {timeout} s")
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode


def fork_target(target: PythonTarget, name: str, env: dict[str, str], cwd: str | None, output_fd: int) -> ForkedProcess:
    """Fork a child that runs ``target`` with stdout and stderr on ``output_fd``. The child never
    returns: it leaves through ``os._exit`` with the module's exit code."""
    parent = os.getpid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    for stream in (sys.stdout, sys.stderr):  # nothing of ours may be written twice
        stream.flush()
    pid = os.fork()
    if pid:
        os.close(devnull)
        return ForkedProcess(pid)
    code = 1
    try:
        code = _child(target, name, env, cwd, output_fd, devnull, parent)
    except BaseException:  # noqa: BLE001 - the child must never return into the supervisor
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    raise AssertionError("unreachable")  # pragma: no cover


def _child(
    target: PythonTarget, name: str, env: dict[str, str], cwd: str | None, output_fd: int, devnull: int, parent: int
) -> int:
    os.setsid()  # own process group: a stop reaches the worker and whatever it starts
    prctl.die_with_parent()
    prctl.set_name(name)
    if os.getppid() != parent:  # the supervisor died before PDEATHSIG was set
        return 1
    signal.set_wakeup_fd(-1)
    for sig, handler in _RESET_SIGNALS.items():
        signal.signal(sig, handler)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    # Every other descriptor is the supervisor's (its lock, its pipes, the other workers' pipes).
    # The Python objects that own them are never freed here (gc is frozen and the fork happened
    # deep in the supervisor's stack, which this process never unwinds), so nothing will close
    # a number the worker later reuses.
    os.closerange(3, _max_fd())
    sys.stdout.reconfigure(line_buffering=True)
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    # gc stays frozen for what was imported before the fork: collecting those objects would
    # write to every page they sit on and end the sharing. The worker's own objects are
    # collected as usual.
    if target.module is not None:
        sys.argv = [target.module, *target.args]  # runpy puts the module's file in argv[0]
        sys.path[0] = os.getcwd()  # as `python -m` does
        try:
            runpy.run_module(target.module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            return _exit_code(exc)
        return 0
    assert target.script is not None
    sys.argv = [target.script, *target.args]
    sys.path[0] = os.path.dirname(os.path.abspath(target.script))  # as `python script` does
    try:
        runpy.run_path(target.script, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc)
    return 0


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter makes of ``SystemExit(value)``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536
