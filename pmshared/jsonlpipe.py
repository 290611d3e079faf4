"""The two pipe ends of a worker's ``--jsonl`` mode: JSON lines in on stdin, out on stdout.

Reading: a plain ``readline()`` blocks until the next line, so a SIGTERM (whose handler only sets
the stop flag) would not end the worker while its upstream is quiet. ``iter_lines`` waits with
``select`` and a timeout, so the caller checks its stop flag and does its periodic work between
lines, exactly like a socket receive loop.

Writing: when the reader goes away (``... | head -1``) the next write fails; ``write_lines`` says
so once, quietly, so the worker can stop instead of dying with a traceback.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

IDLE = None  # yielded when nothing arrived within the timeout


def iter_lines(
    fd: int,
    stopping: Callable[[], bool],
    timeout_ms: int = 200,
    max_line_bytes: int = 64 * 1024 * 1024,
) -> Iterator[bytes | None]:
    """Lines read from ``fd`` (without the newline), ``IDLE`` after each quiet timeout.

    Ends at end of file (a last line without newline is still yielded) or once ``stopping()``
    is true. A line longer than ``max_line_bytes`` is yielded cut at that length (so the caller's
    decoder rejects and counts it) and the rest of it is skipped.
    """
    buf = bytearray()
    scanned = 0  # bytes of buf already known to hold no newline (a long line spans many reads)
    skipping = False
    while not stopping():
        ready, _, _ = select.select([fd], [], [], timeout_ms / 1000)
        if not ready:
            yield IDLE
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        buf += chunk
        while True:
            end = buf.find(b"\n", scanned)
            if end < 0:
                if len(buf) > max_line_bytes and not skipping:
                    yield bytes(buf[:max_line_bytes])
                    skipping = True
                if skipping:
                    buf.clear()
                scanned = len(buf)
                break
            # Cut here too: a long line can arrive whole within one read.
            line = bytes(buf[: min(end, max_line_bytes)])
            del buf[: end + 1]
            scanned = 0
            if skipping:
                skipping = False  # the tail of an over-long line
                continue
            yield line
    if buf and not skipping and not stopping():
        yield bytes(buf)


def write_lines(out: BinaryIO, lines: Iterable[bytes]) -> bool:
    """Write encoded lines and flush; False once the reader has gone (the caller then stops).

    The output is then pointed at /dev/null, so the interpreter's own flush at exit does not
    complain about the broken pipe either.
    """
    try:
        for line in lines:
            out.write(line)
        out.flush()
        return True
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
        return False
