"""``python -m recorder --jsonl --db PATH``: store records read from stdin as JSON lines.

Same decode-and-write path as the pipeline minus the socket. A bad line is reported on stderr
(with its line number) and skipped. Exit status 0 when every line was stored, 1 when some were
bad, 2 when the database cannot be used.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator
from pathlib import Path

from pmshared import messages as m
from pmshared import runtime, storage
from pmshared.codec import BadMessage, JsonLines
from pmshared.safetext import inert
from recorder.writer import BatchWriter

BUSY_TIMEOUT_MS = 200
READ_CHUNK = 1 << 16


class LineSplitter:
    """Bytes in, complete lines out; a line longer than ``max_line`` is reported as None."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False

    def feed(self, chunk: bytes) -> Iterator[bytes | None]:
        self._buf += chunk
        while True:
            cut = self._buf.find(b"\n")
            if cut < 0:
                if len(self._buf) > self.max_line:
                    self._buf.clear()
                    if not self._skipping:
                        self._skipping = True
                        yield None
                return
            line = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            if self._skipping:
                self._skipping = False
                continue
            yield line

    def finish(self) -> Iterator[bytes]:
        if self._buf and not self._skipping:
            yield bytes(self._buf)
        self._buf.clear()


def run_jsonl(db_path: Path, config, stdin_fd: int | None = None) -> int:
    worker = runtime.Worker("recorder", config, sockets=False)
    worker.install_signal_handlers()
    fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    codec = JsonLines(m.Record)
    writer = BatchWriter(
        lambda: storage.connect(db_path, mode="create", busy_timeout_ms=BUSY_TIMEOUT_MS),
        max_pending=config.transport.record_queue, counters=worker.counters, log=worker.log,
    )
    splitter = LineSplitter(config.transport.max_message_bytes)
    line_no = bad = 0

    def take(line: bytes | None) -> None:
        nonlocal line_no, bad
        line_no += 1
        if line is None:
            bad += 1
            print(f"line {line_no}: longer than {splitter.max_line} bytes; skipped", file=sys.stderr)
            return
        if not line.strip():
            return
        try:
            writer.add(codec.decode(line))
        except BadMessage as exc:
            bad += 1
            print(f"line {line_no}: {inert(str(exc), 200)}", file=sys.stderr)

    try:
        writer.connection()
    except storage.TRANSIENT:
        pass  # the writer retries
    except storage.StorageError as exc:
        runtime.fail(str(exc))
    eof = False
    try:
        while worker.running and not (eof and not writer.pending):
            wait_s = runtime.POLL_MS / 1000
            if eof or writer.full:
                # Back-pressure (or nothing more to read): let the database catch up first.
                worker.sleep(min(wait_s, writer.seconds_until_retry() or 0.0))
            elif select.select([fd], [], [], wait_s)[0]:
                chunk = os.read(fd, READ_CHUNK)
                if chunk:
                    for line in splitter.feed(chunk):
                        take(line)
                else:
                    eof = True
                    for line in splitter.finish():
                        take(line)
            writer.flush()
    except storage.StorageError as exc:
        writer.close()
        runtime.fail(str(exc))
    writer.close()
    stored = worker.counters["records_stored"]
    print(f"recorder: stored {stored} records in {db_path}"
          + (f"; {bad} bad lines skipped" if bad else ""), file=sys.stderr)
    if worker.counters["records_lost"]:
        return 2
    return 1 if bad else 0
