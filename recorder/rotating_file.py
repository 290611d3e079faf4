"""An append-only line file rotated at a size limit: ``events.jsonl`` -> ``.1`` -> ... -> ``.keep``.

Rotation is by rename, as logrotate does and as log shippers (Vector, Promtail, Filebeat) follow:
they keep reading the renamed file to its end, then pick up the new one by its inode.

Each line is one ``write`` on an O_APPEND descriptor, so a reader never sees half a line from
us; a short write (the disk filled up in the middle) is cut back off, so a failure leaves no
partial line either (and if even that fails, the next line starts on a line of its own). The
file is created 0600 (process names are private) and an existing one is tightened; a symlink in
its place is refused (O_NOFOLLOW), as is anything but a regular file.
A file renamed or removed under us (logrotate, a user) is noticed by its inode and reopened.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MODE = 0o600
MAX_KEEP = 100  # the config's bound: rotated files past `keep` up to this are removed


class RotatingFile:
    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotations = 0
        self._fd: int | None = None

    def write_line(self, line: bytes) -> None:
        """Append ``line`` (rotating first if it would pass ``max_bytes``). Raises OSError."""
        fd = self._open()
        size = os.fstat(fd).st_size
        if size and size + len(line) > self.max_bytes:
            self.rotate()
            fd = self._open()
            size = 0
        elif size and os.pread(fd, 1, size - 1) != b"\n":
            # A partial line (a short write we could not cut back, or someone else's) ends here:
            # start ours on a line of its own, so at most that one line is broken.
            line = b"\n" + line
        try:
            written = os.write(fd, line)
        except OSError:
            self._cut(fd, size)
            raise
        if written != len(line):
            self._cut(fd, size)
            raise OSError(errno.ENOSPC, f"short write to {self.path} ({written} of {len(line)} bytes)")

    def rotate(self) -> None:
        """events.jsonl.(keep-1) -> .keep, ..., events.jsonl -> .1; a new file starts at the next line."""
        self.close()
        for n in range(MAX_KEEP, self.keep, -1):  # left over from a larger `keep`
            self._numbered(n).unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            try:
                os.rename(self._numbered(n), self._numbered(n + 1))
            except FileNotFoundError:
                pass
        os.rename(self.path, self._numbered(1))
        self.rotations += 1

    def files(self) -> list[Path]:
        """The current file and the rotated ones that exist, newest first."""
        return [p for p in (self.path, *(self._numbered(n) for n in range(1, self.keep + 1))) if p.exists()]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- internals -------------------------------------------------------------------------------
    def _numbered(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _open(self) -> int:
        if self._fd is not None and not self._still_ours(self._fd):
            self.close()
        if self._fd is None:
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(self.path, flags, MODE)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, f"{self.path} is not a regular file")
                if stat.S_IMODE(st.st_mode) != MODE:
                    os.fchmod(fd, MODE)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def _still_ours(self, fd: int) -> bool:
        """Is the path still the file we hold open (not renamed or removed by someone else)?"""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (st.st_ino, st.st_dev) == (held.st_ino, held.st_dev)

    @staticmethod
    def _cut(fd: int, size: int) -> None:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass  # the head of the line stays; the next write starts on a fresh line (see write_line)
