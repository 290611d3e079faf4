"""Writing records in batches, with a bounded retry queue for a busy or full database.

Records wait in ``pending`` (in arrival order) until a batch of them commits in one transaction:
at the caller's next write (tiering sends flight samples in pairs, so that two share one:
tiering/flight_hold.py).
A busy database (another process holds the write lock past our short busy timeout), a full disk or
an I/O error leaves the batch in ``pending`` and schedules a retry with exponential back-off; the
caller's loop keeps heart-beating and watching its stop flag meanwhile.

The bound: when ``pending`` holds ``max_pending`` records, ``full`` is True and the caller stops
taking new records (it stops reading its socket or stdin), so nothing accepted is dropped; further
records wait in ZeroMQ's queues and, once those are full too, the senders count what they could not
send. Records still pending when the recorder has to stop are counted as ``records_lost`` and logged.

A corrupt database (at open, or found by a write) goes to ``set_aside`` (recorder/recovery.py): when
it moved the file aside, a fresh database is opened and the same batch is written there, since its
transaction rolled back and nothing of it was stored. Otherwise the error propagates.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from itertools import islice

import apsw

from pmshared import messages as m
from pmshared import storage
from pmshared.safetext import inert
from recorder.ratelimit import RateLimitedLog

BATCH_MAX = 500  # records per transaction
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 2.0


class BatchWriter:
    def __init__(
        self,
        open_db: Callable[[], apsw.Connection],
        *,
        max_pending: int,
        counters: Counter,
        log: logging.Logger,
        batch_max: int = BATCH_MAX,
        clock: Callable[[], float] = time.monotonic,
        set_aside: Callable[[storage.StorageError], bool] | None = None,
        on_stored: Callable[[apsw.Connection, list[m.Record]], None] | None = None,
    ) -> None:
        self._open_db = open_db
        # Told the records of each committed batch (rejected ones left out): the event log.
        self._on_stored = on_stored
        self._set_aside = set_aside
        self.max_pending = max_pending
        self.batch_max = batch_max
        self.counters = counters
        self.log = log
        self.clock = clock
        self.conn: apsw.Connection | None = None
        self.pending: deque[m.Record] = deque()
        self._retry_at = 0.0
        self._backoff = BACKOFF_INITIAL_S
        self._failing_since: float | None = None
        self._fail_log = RateLimitedLog(log, interval_s=5.0)

    # -- state -----------------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return len(self.pending) >= self.max_pending

    def add(self, record: m.Record) -> None:
        self.pending.append(record)
        self.counters["records_received"] += 1

    def seconds_until_retry(self, now: float | None = None) -> float | None:
        """None when nothing waits; 0 when a write is due now."""
        if not self.pending:
            return None
        now = self.clock() if now is None else now
        return max(0.0, self._retry_at - now)

    def connection(self) -> apsw.Connection:
        """The open connection, opening it on first use. Raises storage errors as they come."""
        if self.conn is None:
            try:
                self.conn = self._open_db()
            except storage.DatabaseCorrupt as exc:
                self.corrupt(exc)
                self.conn = self._open_db()  # a fresh one; corrupt again propagates
        return self.conn

    def corrupt(self, exc: storage.DatabaseCorrupt) -> None:
        """The database is corrupt: close it and have it moved aside, or re-raise ``exc``."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self._set_aside is None or not self._set_aside(exc):
            raise exc
        self.counters["databases_set_aside"] += 1
        try:
            # At once, not at the next write: until then `pmctl` would find no database at all.
            self.conn = self._open_db()
        except storage.TRANSIENT:
            pass  # the next write retries the open

    # -- writing ---------------------------------------------------------------------------------
    def flush(self, now: float | None = None, *, force: bool = False) -> int:
        """Write pending records in batches until none is left or the database refuses.

        Returns how many records were committed. A transient failure is logged (rate-limited) and
        retried later; ``force`` ignores the back-off (used once at shutdown). A fatal storage error
        (corrupt database, schema too new, read-only) propagates.
        """
        now = self.clock() if now is None else now
        if not self.pending or (not force and now < self._retry_at):
            return 0
        stored = 0
        while self.pending:
            batch = list(islice(self.pending, self.batch_max))
            try:
                conn = self.connection()
                kept = self._write(conn, batch)
            except storage.TRANSIENT as exc:
                self._failed(exc, now)
                return stored
            except storage.DatabaseCorrupt as exc:
                self.corrupt(exc)
                continue  # the batch rolled back: write it again, into the fresh database
            for _ in batch:
                self.pending.popleft()
            stored += len(kept)
            self.counters["records_stored"] += len(kept)
            self.counters["batches_written"] += 1
            if self._on_stored is not None:
                self._on_stored(conn, kept)
        self._recovered(now)
        return stored

    def _write(self, conn: apsw.Connection, batch: list[m.Record]) -> list[m.Record]:
        """Commit ``batch`` in one transaction; the records stored (rejected ones left out)."""
        kept = []
        with storage.translate_errors(conn.filename), conn:  # one transaction for the batch
            for record in batch:
                try:
                    storage.apply(conn, record)
                except storage.RecordRejected as exc:
                    # Only this record's savepoint rolled back; retrying would fail the same way.
                    self.counters["records_rejected"] += 1
                    self.log.error("%s", inert(str(exc), 300))
                else:
                    kept.append(record)
        return kept

    def _failed(self, exc: storage.StorageError, now: float) -> None:
        self.counters["write_failures"] += 1
        if self._failing_since is None:
            self._failing_since = now
        if isinstance(exc, storage.DatabaseIOError) and self.conn is not None:
            self.conn.close()  # reopen next time: the file may have been replaced or remounted
            self.conn = None
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        self._fail_log(logging.WARNING, "cannot write yet (%s); %d records kept, retrying", exc, len(self.pending))

    def _recovered(self, now: float) -> None:
        if self._failing_since is not None:
            self.log.info("database writable again after %.1f s", now - self._failing_since)
        self._failing_since = None
        self._backoff = BACKOFF_INITIAL_S
        self._retry_at = 0.0

    # -- shutdown --------------------------------------------------------------------------------
    def close(self) -> int:
        """One last forced write; whatever still cannot be written is counted lost and logged."""
        try:
            self.flush(force=True)
        except storage.StorageError as exc:
            self.log.error("final write failed: %s", exc)
        lost = len(self.pending)
        if lost:
            self.counters["records_lost"] += lost
            self.log.error("exiting with %d records not written (database unavailable); they are lost", lost)
            self.pending.clear()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        return lost
