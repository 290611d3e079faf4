"""The pause-monitor database: schema, the recorder's writes and pmctl's queries (SQLite via apsw).

Modules: ``errors`` (one-line StorageError subclasses), ``schema`` (migrations, ``connect``),
``writes`` (the recorder's ``apply``), ``queries`` (pmctl's reads), ``triage`` (status, prune),
``files`` (modes, causes, moving a corrupt database aside), ``health`` (the bounded check).
Everything public is re-exported here: callers use ``storage.<name>``.

It lives in the shared package because the database crosses process boundaries: the recorder is
its single writer of records; pmctl reads it and makes short transactions of its own (status, prune).

Opening (every connection is made by ``connect``)::

    conn = connect(path, mode="create", busy_timeout_ms=200)   # recorder: creates + upgrades
    conn = open_readwrite(path)      # pmctl events mark / prune: must exist, may upgrade
    conn = open_readonly(path)       # pmctl events / pauses / history: never creates, never writes

Writing (recorder)::

    with conn:                       # one transaction per batch
        for record in batch:
            apply(conn, record)      # idempotent; each record is a savepoint of its own

Reading (pmctl): ``list_events``, ``get_event``, ``last_event``, ``list_pauses``, ``get_pause``,
``samples_in_window``, ``db_stats``; triage: ``set_status``, ``prune`` (+ ``remove_bundle_dirs``);
forensics' start-up sweep: ``pending_pauses``. The flight record (every sample, kept for days):
``FlightReader`` (frames at/around a time, next/previous pause or event; see ``flight``), kept
within its limits by ``prune_flight``.
Every result is a frozen msgspec Struct, so ``msgspec.json.encode(result)`` gives ``--json`` output.
Times are wall-clock epoch seconds (float); durations in the names' units.

Errors: every public function raises only ``StorageError`` subclasses for database problems; each
``str()`` is one line fit for a user (``DatabaseMissing``, ``DatabaseBusy``, ``DatabaseCorrupt``,
``SchemaTooNew``, ``SchemaTooOld``, ``DatabaseFull``, ``DatabaseIOError``, ``DatabaseReadOnly``,
``BadStatus``, ``NotFound``, ``RecordRejected``). ``TRANSIENT`` lists the ones worth retrying.

Design decisions (documented here because the CLI and tests rely on them):
- Idempotency. Events are keyed by ``event_key``; event samples and forensics bundles by their
  record key ``"<sender incarnation>:<seq>"``; pauses by ``pause_id``. A record applied twice is
  stored once. An ``EventSample``/``EventClosed``/``EventCulprits`` whose ``EventOpened`` was lost
  creates the event from ``event_start``/``start``. An ``EventCulprits`` holds the event's whole
  tally so far: the latest replaces the one before (``events.culprits``), and names the event.
- Interrupted events. ``TieringStarted`` closes events left open by other tiering incarnations at
  their last recorded sample (or start) and flags them ``interrupted``. The current incarnation and
  its start are remembered (table ``meta``), so (a) an event record from a *newer* incarnation whose
  ``TieringStarted`` was lost acts as that announcement, and (b) a late record of an *older*
  incarnation cannot re-open an event forever: its event is closed as interrupted at once. A real
  ``EventClosed`` arriving later still wins (clears ``interrupted``, sets the true end).
- Forensics. A ``ForensicsDone`` becomes one ``bundles`` row (path, cause, culprits, evidence) with
  its ``artifacts`` and one ``bundle_pauses`` link per pause id. Links are by ``pause_id`` text and
  resolved when reading, so a bundle that arrives before its ``Pause`` is attached the moment the
  pause row arrives — no placeholder pause rows, nothing to patch up.
- Pauses and events. A pause belongs to the event whose time range overlaps it (an open event
  extends to "now"); derived when reading, so arrival order between the collector's and tiering's
  streams does not matter.
- Integrity on open. ``connect`` reads the header, ``user_version`` and the schema (cheap: this
  catches "not a database" and a damaged schema page). A full ``PRAGMA quick_check`` reads the whole
  file — too slow for every pmctl command on a large database — so it is ``check(path)`` (bounded
  in time; `pmctl up` and `pmctl doctor` run it) and ``integrity_check(conn)``; damage found later
  by a query is still raised as ``DatabaseCorrupt``.
- Corruption is never fatal to recording: the recorder and `pmctl up` move a corrupt database
  aside with ``quarantine`` (kept as ``data.db.corrupt-<time>``, listed by ``quarantined``) and
  start a fresh one.
- Privacy. The database and its -wal/-shm are created 0600 and tightened to 0600 by every
  writable open (``files.make_private``); ``connect(mode="create")`` makes a missing directory 0700.
  A directory, a non-file or a file we may not open is ``DatabaseReadOnly`` naming that cause.
"""

from pmshared.storage.errors import (
    TRANSIENT,
    BadStatus,
    DatabaseBusy,
    DatabaseCorrupt,
    DatabaseFull,
    DatabaseIOError,
    DatabaseMissing,
    DatabaseReadOnly,
    NotFound,
    RecordRejected,
    SchemaTooNew,
    SchemaTooOld,
    StorageError,
    translate_errors,
)
from pmshared.storage.flight import FlightReader, Frame, Mark, mark_window
from pmshared.storage.flight_writes import FlightPruneResult, FlightUsage, flight_usage, prune_flight
from pmshared.storage.files import access_problem, make_private, quarantine, quarantined
from pmshared.storage.health import CHECK_BUDGET_S, CheckResult, check
from pmshared.storage.queries import (
    STATUSES,
    DbStats,
    EventDetail,
    EventSummary,
    PauseRecord,
    PruneResult,
    StoredSample,
    db_stats,
    get_event,
    get_pause,
    last_event,
    list_events,
    list_pauses,
    pending_pauses,
    samples_in_window,
)
from pmshared.storage.schema import (
    DEFAULT_BUSY_TIMEOUT_MS,
    MIGRATIONS,
    SCHEMA_VERSION,
    OpenMode,
    connect,
    integrity_check,
    open_readonly,
    open_readwrite,
    optimize,
    schema_version,
    upgrade,
)
from pmshared.storage.triage import PRUNABLE_STATUSES, prune, remove_bundle_dirs, set_status
from pmshared.storage.writes import apply, close_interrupted, record_key

__all__ = [
    "CHECK_BUDGET_S", "DEFAULT_BUSY_TIMEOUT_MS", "MIGRATIONS", "PRUNABLE_STATUSES", "SCHEMA_VERSION", "STATUSES", "TRANSIENT",
    "BadStatus", "CheckResult", "DatabaseBusy", "DatabaseCorrupt", "DatabaseFull", "DatabaseIOError", "DatabaseMissing",
    "DatabaseReadOnly", "DbStats", "EventDetail", "EventSummary", "NotFound", "OpenMode", "PauseRecord",
    "PruneResult", "RecordRejected", "SchemaTooNew", "SchemaTooOld", "StorageError", "StoredSample",
    "access_problem", "apply", "check", "close_interrupted", "connect", "db_stats", "get_event", "get_pause",
    "integrity_check", "last_event", "list_events", "list_pauses", "make_private", "open_readonly",
    "open_readwrite", "optimize", "pending_pauses", "prune", "quarantine", "quarantined", "record_key",
    "remove_bundle_dirs", "samples_in_window", "schema_version", "set_status",
    "translate_errors", "upgrade",
    # the flight recorder (issue 19)
    "FlightPruneResult", "FlightReader", "FlightUsage", "Frame", "Mark", "flight_usage", "mark_window",
    "prune_flight",
]
