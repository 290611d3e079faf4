"""Structured entries for systemd-journald over its native protocol, without python-systemd.

The protocol (systemd's "Native Journal Protocol"): one datagram to /run/systemd/journal/socket
holds one entry, a sequence of fields. A field whose value has no newline is ``NAME=value\\n``;
any other is ``NAME\\n`` + the value's length as a 64-bit little-endian integer + the value +
``\\n``. Names are upper-case letters, digits and ``_``, start with a letter (a leading ``_`` is
journald's own, trusted fields) and are at most 64 characters.

``format_entry`` is the pure part (tested directly); ``JournalSender`` sends. Where journald does
not run (macOS, containers, minimal systems) the socket is absent: that is no error, the entry is
skipped and counted, so nothing depends on journald being there. The socket is non-blocking: a
journald that falls behind costs a counted drop, never a stalled recorder.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
from collections import Counter
from collections.abc import Iterable

SOCKET_PATH = "/run/systemd/journal/socket"
# Tests point the sender (and a whole pipeline) at a socket of their own.
SOCKET_ENV = "PAUSE_MONITOR_JOURNAL_SOCKET"

_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# The socket is missing, or its file exists with nobody reading it (journald stopped).
_ABSENT = (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR)


def socket_path() -> str:
    return os.environ.get(SOCKET_ENV) or SOCKET_PATH


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def format_entry(fields: Iterable[tuple[str, str]]) -> bytes:
    """One journal entry in the native protocol. Raises ValueError for a name journald refuses.

    Values are text; a value with a newline takes the length-prefixed form, so no value can end a
    field early or inject a field of its own.
    """
    out = bytearray()
    for name, value in fields:
        if not valid_name(name):
            raise ValueError(f"not a journal field name: {name[:70]!r}")
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalSender:
    """Sends entries to journald; counts ``journal_sent``, ``journal_absent`` and ``journal_failed``.

    Never raises for a socket problem: ``send`` returns "sent", "absent" (no journald here) or
    "failed" (journald busy: EAGAIN; an entry too large: EMSGSIZE; anything else the kernel said).
    """

    def __init__(self, path: str | None = None, counters: Counter | None = None) -> None:
        self.path = path or socket_path()
        self.counters = counters if counters is not None else Counter()
        self.last_error: OSError | None = None
        self._sock: socket.socket | None = None

    def send(self, fields: Iterable[tuple[str, str]]) -> str:
        data = format_entry(fields)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # close-on-exec by default (PEP 446)
                self._sock.setblocking(False)
            self._sock.sendto(data, self.path)
        except OSError as exc:
            self.last_error = exc
            outcome = "absent" if exc.errno in _ABSENT else "failed"
            self.counters[f"journal_{outcome}"] += 1
            return outcome
        self.counters["journal_sent"] += 1
        return "sent"

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
