"""What an error reading a process's /proc file means (psutil's ``wrap_exceptions`` idea).

Every read of a process's files can fail in two ways that mean different things: the process is
gone (``ProcessLookupError``/ESRCH on a kept descriptor, ``FileNotFoundError`` on a path), or the
process is there but this one figure is not ours to see (``PermissionError``: hidepid, another
user's io). The backend translates the error in one place: gone raises ``Gone`` (the process is
dropped from the sample), denied leaves the field unknown (None) and keeps the process.
"""

from __future__ import annotations


class Gone(Exception):
    """The process vanished between two reads of its files."""


def field_unknown(exc: OSError, *, unsupported: bool = False) -> None:
    """Return when ``exc`` only makes one field unknown; raise ``Gone`` when the process is gone.

    ``PermissionError`` is always "unknown". With ``unsupported`` (a file the kernel may lack,
    such as io without task IO accounting), any error other than ESRCH/ENOENT is "unknown" too;
    without it, any other error is taken as the process having gone.
    """
    if isinstance(exc, PermissionError):
        return
    if unsupported and not isinstance(exc, (ProcessLookupError, FileNotFoundError)):
        return
    raise Gone from exc
