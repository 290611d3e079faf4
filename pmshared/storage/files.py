"""The database as files: who may read them, what is wrong with the path, and moving a corrupt
one aside.

A database is up to three files: ``data.db`` and, in WAL mode, ``data.db-wal`` and ``data.db-shm``
(SQLite gives the last two the mode of the first). They hold process names, command lines, pids
and bundle paths, so they are private to their owner: 0600, in a 0700 data directory. A new
database is created 0600 before SQLite opens it (SQLite itself would make it 0644 under the usual
umask); an existing one is tightened whenever a writer opens it.

A corrupt database is never deleted: ``quarantine`` renames it (and its -wal/-shm, so SQLite still
pairs them for a ``.recover``) to ``data.db.corrupt-<local time>`` beside it, and ``quarantined``
lists those copies so `pmctl status` and `pmctl doctor` can name them.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

SIDECARS = ("-wal", "-shm", "-journal")
PRIVATE_FILE = 0o600
QUARANTINE_TAG = ".corrupt-"


def access_problem(path: Path, *, write: bool) -> str | None:
    """Why ``path`` cannot be used as a database (read, and written when ``write``), in words
    that name the cause; None when nothing is visibly wrong (a missing file is not a problem
    here: the caller decides whether it may be created)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        parent = path.parent
        if parent.exists() and write and not os.access(parent, os.W_OK | os.X_OK):
            return f"cannot create {path}: no permission to write in {parent} ({_owner_and_mode(parent)})"
        return None
    except PermissionError:
        return f"cannot reach {path}: no permission to enter {path.parent} ({_owner_and_mode(path.parent)})"
    except OSError as exc:
        return f"cannot use {path}: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a directory, not a database file; move it aside"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file; move it aside"
    wanted, verb = (os.R_OK | os.W_OK, "read and write") if write else (os.R_OK, "read")
    if not os.access(path, wanted):
        return f"cannot {verb} {path}: permission denied ({_owner_and_mode(path)})"
    if write and not os.access(path.parent, os.W_OK | os.X_OK):
        # SQLite creates data.db-wal and -shm beside the database: the directory must be writable.
        return f"cannot write in {path.parent} (needed for {path.name}-wal): permission denied ({_owner_and_mode(path.parent)})"
    return None


def _owner_and_mode(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"we are uid {os.getuid()}"
    return f"owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}; we are uid {os.getuid()}"


def create_private(path: Path) -> None:
    """Create an empty database file with mode 0600 unless one exists (SQLite treats an empty
    file as a new database, and gives its -wal and -shm the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)


def make_private(path: Path) -> list[Path]:
    """Tighten the database and its sidecar files that we own to 0600; returns the ones changed.
    Files of another owner are left alone (we could not chmod them, and must not try to)."""
    changed = []
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in SIDECARS)):
        try:
            st = candidate.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            continue
        if stat.S_IMODE(st.st_mode) & ~PRIVATE_FILE:
            os.chmod(candidate, stat.S_IMODE(st.st_mode) & PRIVATE_FILE)
            changed.append(candidate)
    return changed


def quarantine(path: Path, now: float | None = None) -> Path:
    """Move the database at ``path`` (and its -wal/-shm/-journal) aside; returns the new path.

    Raises OSError when the rename is refused (the caller reports it: the file stays where it was).
    """
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}{QUARANTINE_TAG}{stamp}")
    n = 1
    while target.exists() or any(Path(f"{target}{s}").exists() for s in SIDECARS):
        n += 1
        target = path.with_name(f"{path.name}{QUARANTINE_TAG}{stamp}.{n}")
    os.rename(path, target)
    for suffix in SIDECARS:
        try:
            os.rename(f"{path}{suffix}", f"{target}{suffix}")
        except FileNotFoundError:
            pass
    return target


def quarantined(path: Path) -> list[Path]:
    """The corrupt copies ``quarantine`` left beside ``path``, oldest first."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    prefix = f"{path.name}{QUARANTINE_TAG}"
    found = [path.parent / n for n in names if n.startswith(prefix) and not n.endswith(SIDECARS)]
    return sorted(found, key=lambda p: p.name)
