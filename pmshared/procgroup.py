"""A child process in its own process group: started, signalled and stopped as a whole.

Every program the supervisor or a worker starts (a worker, a forensics capture, notify-send,
caffeinate, macOS ``top``) leads a new session, hence its own process group: stopping it signals
the group, so nothing the program started outlives it, and a Ctrl-C on our terminal does not
reach it behind our back. The group's id is the leader's pid, so the group is signalled only while
the leader is unreaped (running, or a zombie): a reaped leader's pid may already be someone else's.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import IO, Any, Union

# What Popen takes for stdout/stderr: a constant (DEVNULL, PIPE, STDOUT), a descriptor or a file.
Target = Union[int, IO[Any], None]


def start(argv: list[str], *, stdout: Target = subprocess.DEVNULL, stderr: Target = subprocess.DEVNULL, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` (no shell) as the leader of a new session, stdin from /dev/null and no
    descriptor of ours inherited; ``popen`` passes the rest (env, cwd, preexec_fn). Raises OSError
    when it cannot be started."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        close_fds=True,
        **popen,
    )


def signal_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group ``pgid``; a group already gone (or not ours) is no error."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def leader_exited(pid: int) -> bool:
    """Has the group leader ``pid`` (our child) exited? Without reaping it, so its pid, the group's
    id, stays reserved and a later ``signal_group`` cannot hit an unrelated process. Needs
    ``os.waitid`` (Linux; macOS from Python 3.13): use ``exited`` where it may be missing."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Has ``proc``, a group leader we started, exited? Left unreaped where ``os.waitid`` can look
    without reaping; without it (macOS before Python 3.13) reaped by ``proc.poll()``, which keeps
    its exit status, after which ``stop`` no longer signals the group (stragglers the leader left
    in it are not killed there)."""
    if proc.returncode is not None:
        return True
    if getattr(os, "waitid", None) is None:
        return proc.poll() is not None
    return leader_exited(proc.pid)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 0.0) -> int:
    """End the group ``proc`` leads and reap the leader; its return code.

    With ``grace_s``: SIGTERM to the group first, SIGKILL if the leader has not exited by then.
    Without: SIGKILL at once, which after the leader's own exit (unreaped) only removes what it
    left running in its group. A leader already reaped is not signalled (see the module note).
    """
    if proc.returncode is None:
        if grace_s > 0:
            signal_group(proc.pid, signal.SIGTERM)
            try:
                return proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        signal_group(proc.pid, signal.SIGKILL)
    return proc.wait()
