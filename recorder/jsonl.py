"""``python -m recorder --jsonl --db PATH``: store records read from stdin as JSON lines.

Same decode-and-write path as the pipeline minus the socket. A bad line is reported on stderr
(with its line number) and skipped. Another worker's message (at the end of ``collector | scorer
| tiering | recorder``: the live samples) is no error: skipped, counted and reported at the end.
Exit status 0 when every record was stored, 1 when some lines were bad, 2 when the database
cannot be used.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pmshared import messages as m
from pmshared import runtime, storage
from pmshared.jsonlpipe import IDLE
from pmshared.workerio import LineInput
from recorder.writer import BatchWriter

BUSY_TIMEOUT_MS = 200


FLUSH_EVERY_S = 0.2  # a steady trickle of lines is written at least this often


def run_jsonl(db_path: Path, config, stdin_fd: int | None = None) -> int:
    worker = runtime.Worker("recorder", config, sockets=False)
    worker.install_signal_handlers()
    writer = BatchWriter(
        lambda: storage.connect(db_path, mode="create", busy_timeout_ms=BUSY_TIMEOUT_MS),
        max_pending=config.transport.record_queue, counters=worker.counters, log=worker.log,
    )
    # The end of a pipe: other workers' messages (tiering's live samples) are skipped, not bad.
    lines = LineInput(worker, m.Record, None, fd=stdin_fd)
    try:
        writer.connection()
    except storage.TRANSIENT:
        pass  # the writer retries
    except storage.StorageError as exc:
        runtime.fail(str(exc))
    try:
        store(worker, lines, writer)
    except storage.StorageError as exc:
        writer.close()
        runtime.fail(str(exc))
    writer.close()
    bad = worker.counters["bad_input"]
    print(f"recorder: stored {worker.counters['records_stored']} records in {db_path}"
          + (f"; {bad} bad lines skipped" if bad else ""), file=sys.stderr)
    if lines.foreign:
        print(f"recorder: {lines.foreign_report()}", file=sys.stderr)
    if worker.counters["records_lost"]:
        return 2
    return 1 if bad else 0


def store(worker: runtime.Worker, lines: LineInput, writer: BatchWriter) -> None:
    """Records from ``lines`` into the writer in batches, then what is pending once input ends."""
    flush_at = time.monotonic() + FLUSH_EVERY_S
    for record in lines:
        if record is not IDLE:
            writer.add(record)
        if record is IDLE or writer.full or time.monotonic() >= flush_at:
            writer.flush()
            flush_at = time.monotonic() + FLUSH_EVERY_S
        while writer.full and worker.running:
            # Back-pressure: read no further until the database takes what is pending.
            worker.sleep(min(runtime.POLL_MS / 1000, writer.seconds_until_retry() or 0.0))
            writer.flush()
    while writer.pending and worker.running:
        worker.sleep(min(runtime.POLL_MS / 1000, writer.seconds_until_retry() or 0.0))
        writer.flush()
