"""One supervisor per user: an flock on ``<runtime dir>/supervisor.lock``, which holds its pid.

The kernel drops an flock when its holder dies however it dies, so a crashed supervisor never
blocks the next one (unlike a pid file alone). The file is unlinked on a clean exit while still
locked; a contender that opened the old file just before that notices (its locked file is no longer
the one at the path) and tries again, so two supervisors can never both believe they hold it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pmshared import paths

LOCK_NAME = "supervisor.lock"


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, path: Path) -> None:
        self.pid = pid
        self.path = path
        who = f"pid {pid}" if pid else "pid not written yet"
        super().__init__(f"pmctl up is already running ({who}; lock {path})")


def lock_path() -> Path:
    return paths.runtime_dir() / LOCK_NAME


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class InstanceLock:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or lock_path()
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid into it; ``AlreadyRunning`` when another holds it.
        Raises ``paths.PathError`` when the runtime directory is unusable."""
        paths.ensure_private_dir(self.path.parent)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise AlreadyRunning(read_pid(self.path), self.path) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder unlinked it as we locked it: lock the new file instead
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def holder_pid() -> int | None:
    """The pid of the running supervisor according to the lock, or None when nobody holds it."""
    path = lock_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_pid(path) or None
    finally:
        os.close(fd)
    return None
