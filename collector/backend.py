"""The platform backend, chosen once at import (psutil style); nothing else branches on the OS.

Every backend has the same interface:

    sample() -> (list[ProcessInfo], SystemStats)   # rates since the previous sample
    close()                                         # release files, child processes, threads

Linux reads /proc (collector.linux); macOS parses a long-lived top stream (collector.macos).
"""

from __future__ import annotations

import sys
from typing import Protocol

from pmshared import messages as m


class Backend(Protocol):
    def sample(self) -> tuple[list[m.ProcessInfo], m.SystemStats]: ...

    def close(self) -> None: ...


class UnsupportedPlatform(Exception):
    """pause-monitor samples processes on Linux and macOS only."""


if sys.platform == "darwin":
    from collector.macos import MacBackend as _PlatformBackend

    PLATFORM = "macos"
elif sys.platform.startswith("linux"):
    from collector.linux import LinuxBackend as _PlatformBackend

    PLATFORM = "linux"
else:  # pragma: no cover - no such machine here
    _PlatformBackend = None
    PLATFORM = sys.platform


def make_backend() -> Backend:
    """The backend for this OS; UnsupportedPlatform elsewhere."""
    if _PlatformBackend is None:
        raise UnsupportedPlatform(f"no process sampler for platform {sys.platform!r} (Linux and macOS only)")
    return _PlatformBackend()
