"""Linux ``prctl`` for forked children: die with the parent, carry a readable name.

Used by the supervisor for its workers and by the collector for its pause sentinel process.
Resolved once, at import (the supervisor imports it before it forks anything): a child between
fork and exec (or a forked worker) must do as little as possible. Elsewhere (macOS) every call is
a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_NAME_MAX = 15  # the kernel's comm is 16 bytes with the NUL


def _load():  # type: ignore[no-untyped-def]
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load()


def die_with_parent() -> None:
    """The kernel SIGKILLs this process when the thread that forked it dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def set_name(name: str) -> None:
    """The name top, ``ps -e`` and pgrep show (a forked worker would otherwise show ours)."""
    if _PRCTL is not None:
        buf = ctypes.create_string_buffer(name.encode("utf-8", "replace")[:_NAME_MAX])
        _PRCTL(_PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0)
