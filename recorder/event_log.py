"""The event log: every stored pause, event open/close and forensics bundle as a JSON line in
``<data>/logs/events.jsonl`` (rotated), and as a journald entry where journald runs.

Why the recorder writes it: it receives every one of these records already, and it knows when a
record is durably stored. ``stored`` is called by the BatchWriter after a batch committed, with
the records that went in (rejected ones left out), so a line never claims what the database lost.
A record stored twice (a resend) gives one line per recorder run: ids already logged are
remembered (a bounded set); a resend after a recorder restart may repeat a line with the same
``pause_id``/``event_key``, which shippers can deduplicate on. An event whose tiering died before
closing it (the database ends it at its last sample when the next tiering starts) gets its close
line then, marked ``interrupted``.

Faults never stop recording: a log directory that cannot be written (full, read-only, owned by
someone else, a symlink planted in the file's place) is counted (``event_log_failures``) and
logged once per outage; lines wait in a bounded queue (the oldest dropped past it, counted in
``event_log_dropped``) and are retried with back-off from the recorder's loop (``retry_if_due``).
A missing journald is counted (``journal_absent``) and otherwise ignored.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

import apsw

from pmshared import journald, paths, storage
from pmshared import messages as m
from pmshared.config import EventLogConfig
from pmshared.safetext import inert
from pmshared.storage.queries import select_events
from recorder.event_entries import entry_for, interrupted_close, journal_fields, json_line
from recorder.rotating_file import RotatingFile

MAX_QUEUED = 1000  # lines kept while the file cannot be written
MAX_REMEMBERED = 10_000  # ids already logged, for resends
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 60.0


def log_path(db_path: Path) -> Path:
    """The event log beside the database: <data>/logs/events.jsonl for the default data.db."""
    return db_path.parent / "logs" / paths.EVENT_LOG_NAME


def _identity(record: m.Record) -> tuple[str, str] | None:
    match record:
        case m.Pause():
            return ("pause", record.pause_id)
        case m.EventOpened():
            return ("event_opened", record.event_key)
        case m.EventClosed():
            return ("event_closed", record.event_key)
        case m.ForensicsDone():
            return ("forensics", f"{record.incarnation}:{record.seq}")
    return None


def _new_tiering(records: list[m.Record], open_events: dict[str, str]) -> bool:
    """Does the batch hold a tiering start, or a record of a tiering other than an open event's?"""
    incarnations = set(open_events.values())
    return any(isinstance(r, m.TieringStarted)
               or (isinstance(r, (m.EventOpened, m.EventSample, m.EventClosed)) and r.incarnation not in incarnations)
               for r in records)


class EventLog:
    def __init__(self, config: EventLogConfig, path: Path, *, counters: Counter, log: logging.Logger,
                 journal: journald.JournalSender | None = None, host: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = config.enabled
        self.file = RotatingFile(path, config.max_bytes, config.keep)
        if journal is None and config.journald:
            journal = journald.JournalSender(counters=counters)
        self.journal = journal if config.journald else None
        self.counters = counters
        self.log = log
        self.host = host or socket.gethostname()
        self.clock = clock
        self.queued: deque[bytes] = deque()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._open: dict[str, str] = {}  # event_key -> incarnation of tiering that opened it
        self._retry_at = 0.0
        self._backoff = RETRY_INITIAL_S
        self._failing = False
        self._journal_said = False

    # -- the hook ----------------------------------------------------------------------------------
    def stored(self, conn: apsw.Connection | None, records: list[m.Record]) -> None:
        """Log the records of a committed batch (called by BatchWriter; never raises for I/O)."""
        for record in records:
            identity = _identity(record)
            if identity is not None and identity not in self._seen:
                self._emit(identity, lambda: entry_for(record, self.host, self._event(conn, record)))  # noqa: B023
            self._track(record)
        if self._open and _new_tiering(records, self._open):
            self._log_interrupted(conn)
        if self.queued and self.clock() >= self._retry_at:
            self._write_queued()

    def retry_if_due(self) -> None:
        """From the recorder's loop: write lines still queued once the back-off has passed."""
        if self.queued and self.clock() >= self._retry_at:
            self._write_queued()

    def close(self) -> None:
        if self.queued:
            self._write_queued()
        if self.queued:
            self.counters["event_log_dropped"] += len(self.queued)
            self.log.error("event log: %d lines not written at exit (%s)", len(self.queued), self.file.path)
            self.queued.clear()
        self.file.close()
        if self.journal is not None:
            self.journal.close()

    # -- internals ---------------------------------------------------------------------------------
    def _emit(self, identity: tuple[str, str], build: Callable[[], dict[str, object] | None]) -> None:
        self._remember(identity)
        try:
            entry = build()
            line = json_line(entry) if entry is not None else None
        except (ValueError, TypeError, OverflowError) as exc:
            # A record the database took but the formatter cannot (a value JSON refuses): no line
            # for it, and recording goes on.
            self.counters["event_log_bad_records"] += 1
            self.log.error("event log: no %s line for %s: %s", identity[0], inert(identity[1], 80),
                           inert(str(exc), 200))
            return
        if entry is None:
            return
        if self.enabled:
            self._enqueue(line)
        if self.journal is not None:
            self._send_journal(entry)

    def _track(self, record: m.Record) -> None:
        """Events this run logged as open and not (yet) as closed, with their tiering incarnation."""
        if isinstance(record, m.EventOpened):
            self._open[record.event_key] = record.incarnation
            if len(self._open) > MAX_REMEMBERED:
                self._open.pop(next(iter(self._open)))
        elif isinstance(record, m.EventClosed):
            self._open.pop(record.event_key, None)

    def _log_interrupted(self, conn: apsw.Connection | None) -> None:
        """A new tiering incarnation: the events the old one left open were ended by the database
        (storage close_interrupted); give each its close line."""
        if conn is None:
            return
        keys = list(self._open)
        try:
            ended = select_events(conn, f"WHERE end_at IS NOT NULL AND event_key IN ({','.join('?' * len(keys))})",
                                  tuple(keys), "")
        except (storage.StorageError, apsw.Error) as exc:
            self.log.warning("event log: cannot read the events a tiering restart ended: %s", exc)
            return
        for event in ended:
            self._open.pop(event.event_key, None)
            identity = ("event_closed", event.event_key)
            if identity not in self._seen:
                self._emit(identity, lambda: interrupted_close(event, self.host))  # noqa: B023

    def _remember(self, identity: tuple[str, str]) -> None:
        self._seen[identity] = None
        if len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)

    def _event(self, conn: apsw.Connection | None, record: m.Record):
        """For a closed event: the stored event (top culprit, id); None when it cannot be read."""
        if not isinstance(record, m.EventClosed) or conn is None:
            return None
        try:
            found = select_events(conn, "WHERE event_key = ?", (record.event_key,), "LIMIT 1")
        except (storage.StorageError, apsw.Error) as exc:
            self.log.warning("event log: no culprit for event %s: %s", inert(record.event_key, 80), exc)
            return None
        return found[0] if found else None

    def _enqueue(self, line: bytes) -> None:
        self.queued.append(line)
        if len(self.queued) > MAX_QUEUED:
            self.queued.popleft()
            self.counters["event_log_dropped"] += 1

    def _write_queued(self) -> None:
        while self.queued:
            try:
                paths.ensure_private_dir(self.file.path.parent)
                self.file.write_line(self.queued[0])
            except (OSError, paths.PathError) as exc:
                self._failed(exc)
                return
            self.queued.popleft()
            self.counters["event_log_lines"] += 1
        self.counters["event_log_rotations"] = self.file.rotations
        if self._failing:
            self.log.info("event log %s writable again", self.file.path)
        self._failing = False
        self._backoff = RETRY_INITIAL_S

    def _failed(self, exc: Exception) -> None:
        self.counters["event_log_failures"] += 1
        self.file.close()  # reopen next time: the directory may have been fixed or replaced
        if not self._failing:  # once per outage; the counter tells how often it was retried
            self.log.warning("event log %s cannot be written (%s); %d lines kept, retrying; "
                             "the database is not affected", self.file.path, exc, len(self.queued))
        self._failing = True
        self._retry_at = self.clock() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MAX_S)

    def _send_journal(self, entry: dict[str, object]) -> None:
        outcome = self.journal.send(journal_fields(entry))
        if outcome == "failed" and not self._journal_said:
            self._journal_said = True  # once: a busy journald would otherwise fill our own log
            self.log.warning("journald entry not sent: %s (counted in journal_failed)", self.journal.last_error)
