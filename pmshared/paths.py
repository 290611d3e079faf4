"""Where pause-monitor keeps its files (XDG base directories, overridable for tests).

config   $PAUSE_MONITOR_CONFIG, else $XDG_CONFIG_HOME/pause-monitor/config.toml (~/.config/...)
data     $XDG_DATA_HOME/pause-monitor/ (~/.local/share/...; mode 0700): data.db (0600), events/,
         logs/ (events.jsonl: the event log, 0600)
runtime  $XDG_RUNTIME_DIR/pause-monitor/ (mode 0700), else <data>/run/; sockets and the lock
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

APP = "pause-monitor"
# sun_path is 108 bytes on Linux (104 on macOS) including the NUL; keep room for "/snapshot.sock".
MAX_SOCKET_PATH = 103


class PathError(Exception):
    """A directory pause-monitor needs is unusable (wrong owner, open permissions, too long)."""


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    # The XDG spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_path() -> Path:
    override = os.environ.get("PAUSE_MONITOR_CONFIG")
    if override:
        return Path(override)
    return _xdg("XDG_CONFIG_HOME", ".config") / APP / "config.toml"


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / APP


def db_path() -> Path:
    return data_dir() / "data.db"


def events_dir() -> Path:
    return data_dir() / "events"


def logs_dir() -> Path:
    return data_dir() / "logs"


EVENT_LOG_NAME = "events.jsonl"  # the recorder's event log (recorder/event_log.py), under logs/


def event_log_path() -> Path:
    return logs_dir() / EVENT_LOG_NAME


def runtime_dir() -> Path:
    """The private directory for sockets and the supervisor lock (not created here)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isabs(base):
        return Path(base) / APP
    return data_dir() / "run"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make sure only we can enter it: 0700, owned by us.

    Other local users must not be able to connect to our ipc sockets, and a directory that someone
    else owns could be swapped under us, so both are checked, not assumed.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise PathError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise PathError(f"{path} is owned by uid {st.st_uid}, not by us (uid {os.getuid()})")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def ensure_data_dir() -> Path:
    """Create the data directory private (0700), and tighten one an older install left open.

    It holds the database and the bundles: process names, command lines, pids. One owned by
    someone else is left alone (not ours to chmod; opening the database there says why it fails).
    """
    path = data_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def unusable_runtime_dir() -> str:
    """One line on why the runtime directory cannot be entered: whose it is, and what to do."""
    path = runtime_dir()
    # The first directory on the way down that shuts us out (the runtime dir itself, usually).
    blocker = next((d for d in (*reversed(path.parents), path) if d.is_dir() and not os.access(d, os.X_OK)), path)
    try:
        st = blocker.stat()
        whose = f"owned by uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}"
    except OSError as exc:
        whose = exc.strerror or "not accessible"
    return (
        f"runtime directory {path}: permission denied ({blocker}: {whose}; we are uid {os.getuid()}); "
        "run pmctl as the user who started pause-monitor, or set XDG_RUNTIME_DIR to your own"
    )


def socket_path(name: str) -> Path:
    path = runtime_dir() / f"{name}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise PathError(
            f"socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
            "set XDG_RUNTIME_DIR to a shorter directory"
        )
    return path
