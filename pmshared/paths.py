"""Where pause-monitor keeps its files (XDG base directories, overridable for tests).

config   $PAUSE_MONITOR_CONFIG, else $XDG_CONFIG_HOME/pause-monitor/config.toml (~/.config/...)
data     $XDG_DATA_HOME/pause-monitor/ (~/.local/share/...): data.db, events/, logs/
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


def socket_path(name: str) -> Path:
    path = runtime_dir() / f"{name}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise PathError(
            f"socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
            "set XDG_RUNTIME_DIR to a shorter directory"
        )
    return path
