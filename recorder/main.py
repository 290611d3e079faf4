"""``python -m recorder``: the pipeline's single database writer (or ``--jsonl`` from stdin)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from pmshared import paths, runtime, storage
from pmshared.endpoints import ENDPOINTS
from pmshared.workerio import FrameInput, one_frame, serve_frames
from recorder.durable import DurablePoints, relaxed
from recorder.event_log import EventLog, log_path
from recorder.flight_retention import FlightRetention
from recorder.pruning import PruneSchedule
from recorder.recovery import SetAside, check_at_start
from recorder.writer import BatchWriter

# Short on purpose: while SQLite waits for a lock the loop can neither heartbeat nor see SIGTERM.
# The writer retries on its own schedule instead (see writer.py).
BUSY_TIMEOUT_MS = 200
DRAIN_MAX = 1000  # frames taken per wake-up before writing
SHUTDOWN_DRAIN_S = 0.3  # at SIGTERM: take what is already queued, then write it
# At SIGTERM, frames may still be on their way: a recorder that was stopped (SIGSTOP, a debugger)
# is continued together with the SIGTERM, and its zmq I/O thread may not yet have read the kernel's
# socket buffer when the main loop ends. An empty read therefore ends the drain only after this
# long without a frame (still within SHUTDOWN_DRAIN_S).
SHUTDOWN_QUIET_S = 0.1
# Tiering sends flight samples in pairs, one every 2 s at 1 Hz: a heartbeat every 2 s rides on
# that wake-up instead of waking the recorder once more in between (a wake-up is most of what an
# idle Python process costs on a VM). The watchdog allows missed_heartbeats of it.
HEARTBEAT_S = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recorder", description=__doc__)
    parser.add_argument("--jsonl", action="store_true", help="store records read from stdin as JSON lines")
    parser.add_argument("--db", type=Path, help="database file (default: the data directory's data.db)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = runtime.load_config_or_exit()
    db_path = args.db or paths.db_path()
    if args.jsonl:
        from recorder.jsonl import run_jsonl

        sys.exit(run_jsonl(db_path, config))
    sys.exit(serve(db_path, config))


def received(worker: runtime.Worker, codec) -> Callable[[list[bytes]], object]:
    """The record decoder, counting every message received (``frames_received``), bad ones too."""
    decode = one_frame(codec)

    def count_and_decode(frames: list[bytes]) -> object:
        worker.counters["frames_received"] += 1
        return decode(frames)

    return count_and_decode


def open_writer(db_path: Path):
    """Commits that do not wait for the disk; the loop's durable points do (recorder/durable.py)."""
    return lambda: relaxed(storage.connect(db_path, mode="create", busy_timeout_ms=BUSY_TIMEOUT_MS))


def serve(db_path: Path, config) -> int:
    worker = runtime.Worker("recorder", config)
    worker.install_signal_handlers()
    log = worker.log
    try:
        sock = worker.sockets.bind("record")
        worker.heartbeat_every(HEARTBEAT_S)
        worker.start_heartbeat()
    except (zmq.ZMQError, paths.PathError) as exc:
        worker.close()
        runtime.fail(f"cannot bind the record endpoint: {exc}")
    if db_path == paths.db_path():
        try:
            paths.ensure_data_dir()  # private (0700), also for an install from before it was
        except OSError as exc:  # opening the database below names the cause
            log.warning("cannot prepare the data directory: %s", exc)
    event_log = EventLog(config.event_log, log_path(db_path), counters=worker.counters, log=log)
    writer = BatchWriter(open_writer(db_path), max_pending=config.transport.record_queue,
                         counters=worker.counters, log=log, set_aside=SetAside(db_path, log),
                         on_stored=event_log.stored)
    pruners = [PruneSchedule(config.retention, paths.events_dir(), counters=worker.counters, log=log),
               FlightRetention(config.retention, counters=worker.counters, log=log)]
    # Back-pressure: while the writer is full, new records wait in ZeroMQ's queue.
    records = FrameInput(sock, received(worker, ENDPOINTS["record"].codec()), writer.add, "frame on record",
                         budget=DRAIN_MAX, paused=lambda: writer.full)
    durable = DurablePoints(counters=worker.counters, log=log)
    code = 0
    try:
        check_at_start(db_path, writer.corrupt, log)
        try:
            writer.connection()
        except storage.TRANSIENT as exc:
            log.warning("database not available yet (%s); will retry", exc)
        log.info("recording into %s", db_path)
        loop(worker, records, writer, pruners, event_log, durable)
        taken = drain_at_shutdown(worker, records, writer, deadline=time.monotonic() + SHUTDOWN_DRAIN_S)
        log.info("stopping: %d frames taken at shutdown, %d records to write", taken, len(writer.pending))
        writer.flush(force=True)
        if writer.conn is not None:
            durable.sync(writer.conn)
    except storage.StorageError as exc:
        # Corrupt, too new or read-only: retrying cannot help; say it in one line and exit.
        log.error("%s", exc)
        code = 1
    finally:
        writer.close()
        event_log.close()
        worker.close()
    return code


def loop(worker: runtime.Worker, records: FrameInput, writer: BatchWriter,
         pruners: list[PruneSchedule | FlightRetention], event_log: EventLog | None = None,
         durable: DurablePoints | None = None) -> None:
    def timeout_ms() -> int:
        wait_s = worker.poll_timeout_ms() / 1000
        for due_in in (writer.seconds_until_retry(), durable and durable.seconds_until_due()):
            if due_in is not None:
                wait_s = min(wait_s, due_in)
        # Rounded up: waking a millisecond before a heartbeat or retry is due costs a turn.
        return math.ceil(wait_s * 1000)

    def write() -> None:
        if writer.flush() and durable is not None and writer.conn is not None:
            durable.committed(writer.conn)
        elif durable is not None:
            durable.run_if_due(writer.conn)
        if writer.conn is not None and not writer.pending:
            try:
                for pruner in pruners:
                    pruner.run_if_due(writer.conn)
            except storage.DatabaseCorrupt as exc:  # a prune reads old pages a write may not
                writer.corrupt(exc)
        worker.counters["records_pending"] = len(writer.pending)
        if event_log is not None:
            event_log.retry_if_due()  # lines held back while the log directory was unwritable

    serve_frames(worker, [records], write, timeout_ms)


def drain_at_shutdown(worker: runtime.Worker, records: FrameInput, writer: BatchWriter, *,
                      deadline: float) -> int:
    """Take frames until none has come for SHUTDOWN_QUIET_S (or ``deadline``, or the writer is full)."""
    taken = 0
    while not writer.full:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not records.sock.poll(int(min(SHUTDOWN_QUIET_S, remaining) * 1000), zmq.POLLIN):
            break
        taken += records.drain(worker, budget=1 << 62, until=lambda: time.monotonic() > deadline)
    return taken
