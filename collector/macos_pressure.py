"""macOS memory pressure level: ``sysctl kern.memorystatus_vm_pressure_level``, read in-process.

The kernel answers 1 (normal), 2 (warn) or 4 (critical): the levels of the system's memory
pressure notifications (DISPATCH_MEMORYPRESSURE_NORMAL/WARN/CRITICAL), what Activity Monitor's
"Memory Pressure" graph colours green/yellow/red. top does not print it.

Why ``sysctlbyname`` through ctypes, every sample: it is one system call (microseconds), where
running the ``sysctl`` command would cost a fork and exec (milliseconds) each time and would call
for a lower cadence; the level can change within a second, and a pause's forensics want the level
of that very sample. Any failure (not macOS, the name unknown to this kernel, denied) gives None,
the figure the contract uses for "not known", and the reader stops trying.

Unverified on a Mac: the mapping is tested here, the call only where it cannot be made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable

from collector.macos_top import PressureLevel

SYSCTL_NAME = b"kern.memorystatus_vm_pressure_level"
LEVELS: dict[int, PressureLevel] = {1: "normal", 2: "warn", 4: "critical"}


def level_name(value: int | None) -> PressureLevel | None:
    """The level's name; None for a value the kernel does not document."""
    return LEVELS.get(value) if value is not None else None


def sysctl_reader(name: bytes = SYSCTL_NAME) -> Callable[[], int | None] | None:
    """A function returning the integer sysctl ``name`` now, or None where libc has no
    ``sysctlbyname`` (Linux) or the first read fails."""
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path, use_errno=True)
        sysctlbyname = libc.sysctlbyname
    except (OSError, AttributeError, TypeError):
        return None
    sysctlbyname.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                             ctypes.c_void_p, ctypes.c_size_t]  # fmt: skip
    sysctlbyname.restype = ctypes.c_int

    def read() -> int | None:
        value = ctypes.c_int(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        if sysctlbyname(name, ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
            return None
        return value.value

    return read if read() is not None else None


class PressureReader:
    """``level()``: the memory pressure level now, None when this machine does not tell."""

    def __init__(self, read: Callable[[], int | None] | None = None, *, probe: bool = True) -> None:
        self._read = read if read is not None or not probe else sysctl_reader()

    def level(self) -> PressureLevel | None:
        if self._read is None:
            return None
        try:
            value = self._read()
        except OSError:
            value = None
        if value is None:
            self._read = None  # failed once: it will not start working; stop paying for it
        return level_name(value)
