"""The pause-monitor database: schema, the recorder's writes and pmctl's queries (SQLite via apsw).

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
``samples_in_window``, ``db_stats``; triage: ``set_status``, ``prune`` (+ ``remove_bundle_dirs``).
Every result is a frozen msgspec Struct, so ``msgspec.json.encode(result)`` gives ``--json`` output.
Times are wall-clock epoch seconds (float); durations in the names' units.

Errors: every public function raises only ``StorageError`` subclasses for database problems; each
``str()`` is one line fit for a user (``DatabaseMissing``, ``DatabaseBusy``, ``DatabaseCorrupt``,
``SchemaTooNew``, ``SchemaTooOld``, ``DatabaseFull``, ``DatabaseIOError``, ``DatabaseReadOnly``,
``BadStatus``, ``NotFound``, ``RecordRejected``). ``TRANSIENT`` lists the ones worth retrying.

Design decisions (documented here because the CLI and tests rely on them):
- Idempotency. Events are keyed by ``event_key``; event samples and forensics bundles by their
  record key ``"<sender incarnation>:<seq>"``; pauses by ``pause_id``. A record applied twice is
  stored once. An ``EventSample``/``EventClosed`` whose ``EventOpened`` was lost creates the event
  from ``event_start``/``start``.
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
  file — too slow for pmctl's start-up on a large database — so it is ``integrity_check(conn)``;
  damage found later by a query is still raised as ``DatabaseCorrupt``.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import apsw
import msgspec

from pmshared import messages as m

SCHEMA_VERSION = 1
STATUSES = ("unreviewed", "reviewed", "pinned", "dismissed")
PRUNABLE_STATUSES = ("reviewed", "dismissed")  # the seed's rule: pinned and unreviewed stay
DEFAULT_BUSY_TIMEOUT_MS = 5000
_DAY = 86400.0

OpenMode = Literal["create", "readwrite", "readonly"]

log = logging.getLogger("pmshared.storage")
# SQLite's own log (WAL recovery notices, lock warnings) goes here at DEBUG: every error in it also
# reaches us as an exception, reported in one line, so at a higher level it would only repeat that
# (and clutter a CLI's stderr). The NullHandler keeps Python's last-resort handler away.
_sqlite_log = logging.getLogger("pmshared.storage.sqlite")
_sqlite_log.addHandler(logging.NullHandler())


# =========================================================================== errors


class StorageError(Exception):
    """A database problem. ``str()`` is one line for a user; ``path`` names the file if known."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None


class DatabaseMissing(StorageError):
    """No database file yet (only ``mode="create"`` makes one)."""


class DatabaseBusy(StorageError):
    """Another process held a lock for longer than the busy timeout. Transient."""


class DatabaseFull(StorageError):
    """The disk (or the database's page limit) is full. Transient: retry once space returns."""


class DatabaseIOError(StorageError):
    """A disk I/O error reading or writing the database. Possibly transient."""


class DatabaseCorrupt(StorageError):
    """Not a database, malformed, or not a pause-monitor database."""


class DatabaseReadOnly(StorageError):
    """The file or its directory cannot be written (or cannot be opened at all)."""


class SchemaTooNew(StorageError):
    """The database was written by a newer pause-monitor."""


class SchemaTooOld(StorageError):
    """A read-only open found a schema that needs an upgrade (the recorder or a write upgrades it)."""


class BadStatus(StorageError, ValueError):
    """An event status that is not one of ``STATUSES``."""


class NotFound(StorageError, LookupError):
    """No event/pause with that id."""


class RecordRejected(StorageError):
    """One record could not be stored for a reason retrying will not fix (its savepoint rolled back)."""


TRANSIENT = (DatabaseBusy, DatabaseFull, DatabaseIOError)


def _describe(exc: BaseException) -> str:
    return str(exc).split("\n")[0][:200]


@contextmanager
def translate_errors(path: str | os.PathLike | None) -> Iterator[None]:
    """Turn apsw's exceptions into the StorageError types above (one line, the path named).

    Public for callers that run their own ``with conn:`` around ``apply`` (the recorder's batch).
    """
    where = str(path) if path else "database"
    try:
        yield
    except StorageError:
        raise
    except (apsw.BusyError, apsw.LockedError) as exc:
        raise DatabaseBusy(f"database {where} is busy (locked by another process); try again", path) from exc
    except (apsw.NotADBError, apsw.CorruptError) as exc:
        raise DatabaseCorrupt(
            f"database {where} is corrupt ({_describe(exc)}); move it aside and restart the "
            "recorder to start a new one",
            path,
        ) from exc
    except apsw.FullError as exc:
        raise DatabaseFull(f"database {where}: disk full ({_describe(exc)})", path) from exc
    except apsw.IOError as exc:
        raise DatabaseIOError(f"database {where}: disk I/O error ({_describe(exc)})", path) from exc
    except (apsw.ReadOnlyError, apsw.PermissionsError, apsw.CantOpenError, apsw.AuthError) as exc:
        raise DatabaseReadOnly(f"database {where} cannot be opened for this ({_describe(exc)})", path) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DatabaseFull(f"database {where}: disk full ({exc.strerror})", path) from exc
        raise DatabaseIOError(f"database {where}: {exc.strerror or exc}", path) from exc
    except apsw.Error as exc:
        raise StorageError(f"database {where}: {_describe(exc)}", path) from exc


F = TypeVar("F", bound=Callable)


def _db_errors(func: F) -> F:
    """Decorator for public functions whose first argument is a connection."""

    @functools.wraps(func)
    def wrapper(conn: apsw.Connection, *args, **kwargs):
        with translate_errors(conn.filename or None):
            return func(conn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


# =========================================================================== schema

# Version N is reached by running MIGRATIONS[N - 1] inside one transaction; never edit a shipped
# step, append a new one (and bump SCHEMA_VERSION).
MIGRATIONS: tuple[str, ...] = (
    # ---- v1
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value
    );

    -- One row per escalation episode (tier 1 -> 2/3 -> 1). end_at is NULL while open.
    CREATE TABLE events (
        id             INTEGER PRIMARY KEY,
        event_key      TEXT NOT NULL UNIQUE,       -- "<tiering incarnation>:<n>"
        start_at       REAL NOT NULL,
        end_at         REAL,
        peak_score     INTEGER NOT NULL DEFAULT 0,
        peak_tier      INTEGER NOT NULL DEFAULT 2,
        status         TEXT NOT NULL DEFAULT 'unreviewed'
                       CHECK (status IN ('unreviewed', 'reviewed', 'pinned', 'dismissed')),
        notes          TEXT,
        interrupted    INTEGER NOT NULL DEFAULT 0, -- closed because its tiering incarnation died
        incarnation    TEXT NOT NULL,              -- tiering incarnation that recorded it
        last_sample_at REAL
    );
    CREATE INDEX events_start ON events(start_at);
    CREATE INDEX events_status_start ON events(status, start_at);
    CREATE INDEX events_open ON events(incarnation) WHERE end_at IS NULL;

    -- Samples saved into an event: tier 2 = new peak, tier 3 = continuous.
    CREATE TABLE event_samples (
        id          INTEGER PRIMARY KEY,
        event_id    INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        record_key  TEXT NOT NULL UNIQUE,          -- "<sender incarnation>:<seq>"
        tier        INTEGER NOT NULL CHECK (tier IN (2, 3)),
        action      TEXT,
        timestamp   REAL NOT NULL,
        max_score   INTEGER NOT NULL,
        top_pid     INTEGER,                       -- highest-scoring rogue of this sample
        top_command TEXT,
        top_score   INTEGER NOT NULL DEFAULT 0,
        data        TEXT NOT NULL                  -- the ProcessSamples as JSON
    );
    CREATE INDEX event_samples_event_time ON event_samples(event_id, timestamp);
    CREATE INDEX event_samples_event_top ON event_samples(event_id, top_score);
    CREATE INDEX event_samples_time ON event_samples(timestamp);

    -- Every pause the collector's sentinel reported.
    CREATE TABLE pauses (
        id           INTEGER PRIMARY KEY,
        pause_id     TEXT NOT NULL UNIQUE,         -- "<collector incarnation>:<n>"
        start_at     REAL NOT NULL,
        end_at       REAL NOT NULL,
        duration_ms  REAL NOT NULL,
        expected_ms  REAL NOT NULL,
        suspended_ms REAL NOT NULL DEFAULT 0,
        incarnation  TEXT
    );
    CREATE INDEX pauses_start ON pauses(start_at);
    CREATE INDEX pauses_end ON pauses(end_at);

    -- One forensics capture (ForensicsDone); linked to its pauses by pause_id text, so it may
    -- arrive before the pause row.
    CREATE TABLE bundles (
        id          INTEGER PRIMARY KEY,
        record_key  TEXT NOT NULL UNIQUE,          -- "<sender incarnation>:<seq>"
        bundle_path TEXT NOT NULL,
        cause       TEXT NOT NULL,
        culprits    TEXT NOT NULL DEFAULT '[]',    -- JSON list of Culprit
        evidence    TEXT NOT NULL DEFAULT '{}',    -- JSON object
        done_at     REAL NOT NULL
    );
    CREATE TABLE bundle_pauses (
        pause_id  TEXT NOT NULL,
        bundle_id INTEGER NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
        PRIMARY KEY (pause_id, bundle_id)
    ) WITHOUT ROWID;
    CREATE INDEX bundle_pauses_bundle ON bundle_pauses(bundle_id);
    CREATE TABLE artifacts (
        id             INTEGER PRIMARY KEY,
        bundle_id      INTEGER NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
        name           TEXT NOT NULL,
        ok             INTEGER NOT NULL,
        path           TEXT,
        ran            INTEGER NOT NULL DEFAULT 1,
        skipped_reason TEXT,
        exit_code      INTEGER,
        duration_ms    REAL,
        bytes          INTEGER NOT NULL DEFAULT 0,
        truncated      INTEGER NOT NULL DEFAULT 0,
        error          TEXT
    );
    CREATE INDEX artifacts_bundle ON artifacts(bundle_id);
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION


# =========================================================================== opening

_best_practice_applied = False


# What apsw.bestpractice.recommended does (apsw 3.5x), written out here because importing
# apsw.bestpractice loads apsw.ext (~1.6 MB in every process that opens the database). Left out:
# connection_optimize, which runs ``PRAGMA optimize`` at every writable open and needs the write
# lock (with the 100 ms timeout below, before ours is set), so `pmctl events mark` or a recorder
# start would fail as busy while another process writes; the recorder calls ``optimize(conn)``
# after its daily prune instead.
def _best_practice(connection: apsw.Connection) -> None:
    connection.set_busy_timeout(100)  # replaced by connect()'s own timeout once open
    try:
        if not connection.readonly("main"):
            connection.pragma("journal_mode", "wal")
    except apsw.ReadOnlyError:
        pass  # journal/WAL files can be read-only even when the database is not
    connection.pragma("foreign_keys", "ON")
    # Double quotes are for identifiers only: a misquoted string is an error, not a literal.
    connection.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
    connection.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
    connection.pragma("recursive_triggers", "ON")


def _log_sqlite(code: int, message: str) -> None:
    """SQLite's log, to ours at DEBUG (see _sqlite_log above), named like apsw.ext.log_sqlite."""
    names = apsw.mapping_result_codes if code < 256 else apsw.mapping_extended_result_codes
    _sqlite_log.debug("SQLITE_LOG: %s (%d) %s", message, code, names.get(code, str(code)))


def _apply_best_practice_once() -> None:
    global _best_practice_applied
    if _best_practice_applied:
        return
    apsw.connection_hooks.append(_best_practice)
    apsw.config(apsw.SQLITE_CONFIG_LOG, _log_sqlite)
    _best_practice_applied = True


def connect(
    path: str | os.PathLike,
    *,
    mode: OpenMode = "readonly",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> apsw.Connection:
    """Open the database at ``path``. The only place a connection is made.

    mode:
      "create"    create the file (and its directory) if missing, then upgrade the schema;
      "readwrite" the file must exist (``DatabaseMissing``); upgrades the schema if needed;
      "readonly"  the file must exist; never creates or writes; an old schema is ``SchemaTooOld``.
    Writable connections start their transactions IMMEDIATE (``with conn:`` takes the write lock
    up front, waiting up to ``busy_timeout_ms``), so a batch never fails half-way on a stale read.

    Raises DatabaseMissing, DatabaseCorrupt (not a database / malformed / not ours), SchemaTooNew,
    SchemaTooOld, DatabaseBusy, DatabaseReadOnly, DatabaseFull, DatabaseIOError.
    """
    _apply_best_practice_once()
    path = Path(path)
    if mode == "create":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseReadOnly(f"cannot create {path.parent}: {exc.strerror}", path) from exc
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    elif mode in ("readwrite", "readonly"):
        if not path.exists():
            raise DatabaseMissing(
                f"no database at {path} yet; start the pipeline (`pmctl up`) and the recorder creates it",
                path,
            )
        flags = apsw.SQLITE_OPEN_READWRITE if mode == "readwrite" else apsw.SQLITE_OPEN_READONLY
    else:
        raise ValueError(f"unknown mode {mode!r}")

    conn = None
    try:
        with translate_errors(path):
            conn = apsw.Connection(str(path), flags=flags)
            conn.set_busy_timeout(busy_timeout_ms)
            version, tables = _header(conn)
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"database {path} has schema version {version}, newer than this pause-monitor "
                    f"understands ({SCHEMA_VERSION}); upgrade pause-monitor",
                    path,
                )
            if version == 0 and tables:
                raise DatabaseCorrupt(
                    f"{path} is an SQLite database but not a pause-monitor one; move it aside", path
                )
            if mode == "readonly":
                if version == 0:
                    raise DatabaseMissing(
                        f"database {path} is empty; start the pipeline (`pmctl up`) to initialise it", path
                    )
                if version < SCHEMA_VERSION:
                    raise SchemaTooOld(
                        f"database {path} has schema version {version} and needs an upgrade to "
                        f"{SCHEMA_VERSION}; start the recorder (`pmctl up`) to upgrade it",
                        path,
                    )
            else:
                conn.transaction_mode = "IMMEDIATE"
                if version < SCHEMA_VERSION:
                    upgrade(conn)
        return conn
    except BaseException:
        if conn is not None:
            conn.close()
        raise


def open_readonly(path: str | os.PathLike, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> apsw.Connection:
    """For pmctl's listing commands: never creates a database (``DatabaseMissing`` instead)."""
    return connect(path, mode="readonly", busy_timeout_ms=busy_timeout_ms)


def open_readwrite(path: str | os.PathLike, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> apsw.Connection:
    """For pmctl's short write transactions (``set_status``, ``prune``); never creates a database."""
    return connect(path, mode="readwrite", busy_timeout_ms=busy_timeout_ms)


def _header(conn: apsw.Connection) -> tuple[int, int]:
    """(user_version, number of schema objects); reading both touches the header and schema page."""
    version = conn.execute("PRAGMA user_version").get
    tables = conn.execute("SELECT count(*) FROM sqlite_schema").get
    return int(version or 0), int(tables or 0)


def upgrade(conn: apsw.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Run the ``PRAGMA user_version`` ladder up to ``len(migrations)``; returns the new version.

    One transaction: the version is re-read inside it, so two processes upgrading at once are
    safe, and a failed step leaves the database at its old version.
    """
    with translate_errors(conn.filename), conn:
        version = int(conn.execute("PRAGMA user_version").get or 0)
        if version > len(migrations):
            raise SchemaTooNew(
                f"database {conn.filename} has schema version {version}, newer than {len(migrations)}",
                conn.filename,
            )
        for target in range(version + 1, len(migrations) + 1):
            conn.execute(migrations[target - 1])
            conn.execute(f"PRAGMA user_version = {int(target)}")
        return len(migrations)


@_db_errors
def schema_version(conn: apsw.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").get or 0)


@_db_errors
def optimize(conn: apsw.Connection) -> None:
    """Let SQLite refresh its query-planner statistics (cheap; needs the write lock briefly)."""
    conn.execute("PRAGMA optimize")


@_db_errors
def integrity_check(conn: apsw.Connection, quick: bool = True) -> list[str]:
    """SQLite's quick_check (or the full integrity_check): ``["ok"]`` when the file is sound."""
    pragma = "quick_check" if quick else "integrity_check"
    return [row[0] for row in conn.execute(f"PRAGMA {pragma}")]


# =========================================================================== writing

_json = msgspec.json.Encoder()
_samples_decoder = msgspec.json.Decoder(m.ProcessSamples)
_culprits_decoder = msgspec.json.Decoder(list[m.Culprit])


def record_key(record: m.Envelope) -> str:
    """The stable identity of one record: its sender's incarnation and its sequence number."""
    return f"{record.incarnation}:{record.seq}"


def apply(conn: apsw.Connection, record: m.Record) -> None:
    """Store one record idempotently (see the module docstring for the rules).

    Runs as a savepoint of the caller's transaction (``with conn:`` nests), so a record that fails
    leaves the rest of a batch intact. Raises a ``TRANSIENT`` error for busy/full/IO (the caller
    keeps the batch and retries) and ``RecordRejected`` for anything retrying cannot fix.
    """
    with translate_errors(conn.filename):
        try:
            with conn:
                _apply(conn, record)
        except (apsw.ConstraintError, apsw.SQLError, apsw.MismatchError, apsw.TooBigError,
                apsw.RangeError, msgspec.EncodeError, OverflowError) as exc:
            raise RecordRejected(f"{type(record).__name__} {record_key(record)} rejected: {_describe(exc)}",
                                 conn.filename) from exc


def _apply(conn: apsw.Connection, record: m.Record) -> None:
    match record:
        case m.TieringStarted():
            _tiering_started(conn, record.incarnation, record.sent_at)
        case m.EventOpened():
            stale = _note_tiering(conn, record.incarnation, record.sent_at)
            event_id = _ensure_event(conn, record.event_key, record.start, record.incarnation,
                                     record.tier, record.score)
            conn.execute(
                "UPDATE events SET start_at = ?, peak_score = max(peak_score, ?),"
                " peak_tier = max(peak_tier, ?) WHERE id = ?",
                (record.start, record.score, record.tier, event_id),
            )
            if stale:
                _interrupt_if_open(conn, event_id)
        case m.EventSample():
            stale = _note_tiering(conn, record.incarnation, record.sent_at)
            samples = record.samples
            event_id = _ensure_event(conn, record.event_key, record.event_start, record.incarnation,
                                     record.tier, samples.max_score)
            top = max(samples.rogues, key=lambda r: r.score, default=None)
            inserted = conn.execute(
                "INSERT INTO event_samples (event_id, record_key, tier, action, timestamp, max_score,"
                " top_pid, top_command, top_score, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (record_key) DO NOTHING RETURNING id",
                (event_id, record_key(record), record.tier, record.action, samples.timestamp,
                 samples.max_score, top.pid if top else None, top.command if top else None,
                 top.score if top else 0, _json.encode(samples).decode()),
            ).get
            if inserted is not None:
                # An interrupted event's end follows late samples of its own incarnation.
                conn.execute(
                    "UPDATE events SET peak_score = max(peak_score, ?), peak_tier = max(peak_tier, ?),"
                    " last_sample_at = max(coalesce(last_sample_at, ?), ?),"
                    " end_at = CASE WHEN interrupted AND end_at < ? THEN ? ELSE end_at END"
                    " WHERE id = ?",
                    (samples.max_score, record.tier, samples.timestamp, samples.timestamp,
                     samples.timestamp, samples.timestamp, event_id),
                )
            if stale:
                _interrupt_if_open(conn, event_id)
        case m.EventClosed():
            _note_tiering(conn, record.incarnation, record.sent_at)
            event_id = _ensure_event(conn, record.event_key, record.start, record.incarnation,
                                     record.peak_tier, record.peak_score)
            # A proper close wins over an earlier "interrupted" guess.
            conn.execute(
                "UPDATE events SET end_at = ?, peak_score = max(peak_score, ?),"
                " peak_tier = max(peak_tier, ?), interrupted = 0 WHERE id = ?",
                (record.end, record.peak_score, record.peak_tier, event_id),
            )
        case m.Pause():
            conn.execute(
                "INSERT INTO pauses (pause_id, start_at, end_at, duration_ms, expected_ms,"
                " suspended_ms, incarnation) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (pause_id) DO NOTHING",
                (record.pause_id, record.start, record.end, record.duration_ms, record.expected_ms,
                 record.suspended_ms, record.incarnation),
            )
        case m.ForensicsDone():
            bundle_id = conn.execute(
                "INSERT INTO bundles (record_key, bundle_path, cause, culprits, evidence, done_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (record_key) DO NOTHING RETURNING id",
                (record_key(record), record.bundle_path, record.cause,
                 _json.encode(record.culprits).decode(), _json.encode(record.evidence).decode(),
                 record.sent_at),
            ).get
            if bundle_id is None:
                return  # already stored
            conn.executemany(
                "INSERT OR IGNORE INTO bundle_pauses (pause_id, bundle_id) VALUES (?, ?)",
                [(pause_id, bundle_id) for pause_id in record.pause_ids],
            )
            conn.executemany(
                "INSERT INTO artifacts (bundle_id, name, ok, path, ran, skipped_reason, exit_code,"
                " duration_ms, bytes, truncated, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(bundle_id, a.name, a.ok, a.path, a.ran, a.skipped_reason, a.exit_code,
                  a.duration_ms, a.bytes, a.truncated, a.error) for a in record.artifacts],
            )
        case _:
            raise RecordRejected(f"not a record type: {type(record).__name__}")


def _ensure_event(conn: apsw.Connection, key: str, start: float, incarnation: str,
                  tier: int, score: int) -> int:
    conn.execute(
        "INSERT INTO events (event_key, start_at, incarnation, peak_tier, peak_score)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING",
        (key, start, incarnation, tier, score),
    )
    return conn.execute("SELECT id FROM events WHERE event_key = ?", (key,)).get


def _meta_get(conn: apsw.Connection, key: str):
    return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).get


def _meta_set(conn: apsw.Connection, key: str, value) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _tiering_started(conn: apsw.Connection, incarnation: str, started_at: float) -> None:
    current_started = _meta_get(conn, "tiering_started_at")
    if current_started is not None and started_at < current_started:
        return  # a late announcement of an incarnation that has since been replaced
    _meta_set(conn, "tiering_incarnation", incarnation)
    _meta_set(conn, "tiering_started_at", started_at)
    close_interrupted(conn, incarnation)


def _note_tiering(conn: apsw.Connection, incarnation: str, sent_at: float) -> bool:
    """Track the current tiering incarnation from event records; True if ``incarnation`` is stale."""
    current = _meta_get(conn, "tiering_incarnation")
    if current == incarnation:
        return False
    started = _meta_get(conn, "tiering_started_at")
    if current is None or started is None or sent_at > started:
        # A newer incarnation whose TieringStarted we did not see: it is the announcement.
        _tiering_started(conn, incarnation, sent_at)
        return False
    return True


def _interrupt_if_open(conn: apsw.Connection, event_id: int) -> None:
    conn.execute(
        "UPDATE events SET end_at = max(start_at, coalesce(last_sample_at, start_at)), interrupted = 1"
        " WHERE id = ? AND end_at IS NULL",
        (event_id,),
    )


@_db_errors
def close_interrupted(conn: apsw.Connection, current_incarnation: str) -> list[int]:
    """End every event left open by another incarnation at its last sample (or start).

    Marks them ``interrupted``; returns their ids. Called by ``apply`` for ``TieringStarted``.
    """
    with conn:
        rows = conn.execute(
            "UPDATE events SET end_at = max(start_at, coalesce(last_sample_at, start_at)), interrupted = 1"
            " WHERE end_at IS NULL AND incarnation != ? RETURNING id",
            (current_incarnation,),
        )
        return sorted(row[0] for row in rows)


# =========================================================================== results


class EventSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One event as ``pmctl events`` lists it."""

    id: int
    event_key: str
    start: float
    end: float | None  # None while open
    peak_score: int
    peak_tier: int
    status: str
    notes: str | None
    interrupted: bool  # closed because its tiering incarnation died, at its last sample
    incarnation: str
    last_sample_at: float | None
    sample_count: int
    pause_count: int  # pauses overlapping the event
    top_culprit: str | None  # command of the highest-scoring rogue across its samples
    top_culprit_pid: int | None
    top_culprit_score: int | None

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - self.start)


class StoredSample(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    event_id: int
    tier: int  # 2 = peak, 3 = continuous
    action: str | None
    timestamp: float
    max_score: int
    record_key: str
    samples: m.ProcessSamples


class PauseRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One pause with its forensics (``None``/empty until a ForensicsDone names it)."""

    id: int
    pause_id: str
    start: float
    end: float
    duration_ms: float
    expected_ms: float
    suspended_ms: float
    event_id: int | None  # the event it overlaps, if any
    bundle_path: str | None
    cause: str | None
    culprits: list[m.Culprit]
    evidence: dict
    artifacts: list[m.Artifact]  # filled by get_pause/get_event; empty in list_pauses


class EventDetail(msgspec.Struct, frozen=True, kw_only=True):
    event: EventSummary
    samples: list[StoredSample]  # by time
    pauses: list[PauseRecord]  # by time, with artifacts


class PruneResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``prune`` deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool
    events: list[EventSummary]
    samples: int  # event samples deleted with their events
    pauses: list[int]  # pause row ids
    bundle_paths: list[str]  # bundles whose rows went; see remove_bundle_dirs


class DbStats(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int
    events: int
    open_events: int
    unreviewed: int
    samples: int
    pauses: int
    bundles: int
    last_sample_at: float | None
    last_pause_at: float | None


# =========================================================================== reading

_EVENT_COLUMNS = """
    e.id, e.event_key, e.start_at, e.end_at, e.peak_score, e.peak_tier, e.status, e.notes,
    e.interrupted, e.incarnation, e.last_sample_at,
    (SELECT count(*) FROM event_samples s WHERE s.event_id = e.id),
    (SELECT count(*) FROM pauses p WHERE p.end_at >= e.start_at AND (e.end_at IS NULL OR p.start_at <= e.end_at)),
    ts.top_command, ts.top_pid, ts.top_score
"""
# The sample holding the event's top culprit (index event_samples_event_top).
_TOP_SAMPLE_JOIN = """
    LEFT JOIN event_samples ts ON ts.id = (
        SELECT s.id FROM event_samples s WHERE s.event_id = e.id ORDER BY s.top_score DESC, s.timestamp LIMIT 1)
"""


def _event_from_row(row: tuple) -> EventSummary:
    return EventSummary(
        id=row[0], event_key=row[1], start=row[2], end=row[3], peak_score=row[4], peak_tier=row[5],
        status=row[6], notes=row[7], interrupted=bool(row[8]), incarnation=row[9],
        last_sample_at=row[10], sample_count=row[11], pause_count=row[12], top_culprit=row[13],
        top_culprit_pid=row[14], top_culprit_score=row[15] if row[13] is not None else None,
    )


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise BadStatus(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")


def _select_events(conn: apsw.Connection, where: str, params: tuple, order_limit: str) -> list[EventSummary]:
    # Filter and limit first, then compute the per-event figures only for the rows returned.
    sql = (f"SELECT {_EVENT_COLUMNS} FROM (SELECT * FROM events {where} {order_limit}) e"
           f" {_TOP_SAMPLE_JOIN} ORDER BY e.start_at DESC, e.id DESC")
    return [_event_from_row(row) for row in conn.execute(sql, params)]


@_db_errors
def list_events(
    conn: apsw.Connection,
    *,
    limit: int | None = 20,
    status: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[EventSummary]:
    """Events newest first, filtered by status and start time (``since <= start < until``).

    ``limit=None`` means all. Raises BadStatus for an unknown status.
    """
    clauses, params = [], []
    if status is not None:
        _check_status(status)
        clauses.append("status = ?")
        params.append(status)
    if since is not None:
        clauses.append("start_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("start_at < ?")
        params.append(until)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    order = "ORDER BY start_at DESC, id DESC"
    if limit is not None:
        order += " LIMIT ?"
        params.append(max(0, int(limit)))
    return _select_events(conn, where, tuple(params), order)


@_db_errors
def last_event(conn: apsw.Connection) -> EventSummary | None:
    """The most recently started event, or None."""
    rows = _select_events(conn, "", (), "ORDER BY start_at DESC, id DESC LIMIT 1")
    return rows[0] if rows else None


def _sample_from_row(row: tuple) -> StoredSample:
    try:
        samples = _samples_decoder.decode(row[7])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DatabaseCorrupt(f"event sample {row[0]} holds unreadable data: {_describe(exc)}") from exc
    return StoredSample(id=row[0], event_id=row[1], tier=row[2], action=row[3], timestamp=row[4],
                        max_score=row[5], record_key=row[6], samples=samples)


_SAMPLE_COLUMNS = "id, event_id, tier, action, timestamp, max_score, record_key, data"


@_db_errors
def get_event(conn: apsw.Connection, event_id: int) -> EventDetail | None:
    """One event with its samples (decoded, by time) and overlapping pauses; None if unknown."""
    rows = _select_events(conn, "WHERE id = ?", (int(event_id),), "")
    if not rows:
        return None
    event = rows[0]
    samples = [
        _sample_from_row(row)
        for row in conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM event_samples WHERE event_id = ? ORDER BY timestamp, id",
            (event.id,),
        )
    ]
    end = event.end if event.end is not None else float("inf")
    pauses = _select_pauses(conn, "WHERE p.end_at >= ? AND p.start_at <= ?", (event.start, min(end, 1e300)),
                            "ORDER BY p.start_at", with_artifacts=True)
    return EventDetail(event=event, samples=samples, pauses=pauses)


@_db_errors
def samples_in_window(
    conn: apsw.Connection, since: float, until: float | None = None, limit: int | None = None
) -> list[StoredSample]:
    """Recorded event samples with ``since <= timestamp < until``, oldest first (``pmctl history``)."""
    sql = f"SELECT {_SAMPLE_COLUMNS} FROM event_samples WHERE timestamp >= ?"
    params: list = [since]
    if until is not None:
        sql += " AND timestamp < ?"
        params.append(until)
    sql += " ORDER BY timestamp, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(max(0, int(limit)))
    return [_sample_from_row(row) for row in conn.execute(sql, params)]


_PAUSE_SELECT = """
    SELECT p.id, p.pause_id, p.start_at, p.end_at, p.duration_ms, p.expected_ms, p.suspended_ms,
        (SELECT c.id FROM (SELECT id, start_at, end_at FROM events WHERE start_at <= p.end_at
                           ORDER BY start_at DESC LIMIT 2) c
         WHERE c.end_at IS NULL OR c.end_at >= p.start_at ORDER BY c.start_at DESC LIMIT 1),
        b.id, b.bundle_path, b.cause, b.culprits, b.evidence
    FROM pauses p
    LEFT JOIN bundles b ON b.id = (
        SELECT bp.bundle_id FROM bundle_pauses bp JOIN bundles b2 ON b2.id = bp.bundle_id
        WHERE bp.pause_id = p.pause_id ORDER BY b2.done_at DESC, b2.id DESC LIMIT 1)
"""
# The event subquery looks at the two latest events that started before the pause ended: events
# follow each other (one tiering at a time), so the overlapping one is among them, and the lookup
# stays O(log n) on a database of 100,000 events.


def _artifacts(conn: apsw.Connection, bundle_id: int) -> list[m.Artifact]:
    return [
        m.Artifact(name=r[0], ok=bool(r[1]), path=r[2], ran=bool(r[3]), skipped_reason=r[4],
                   exit_code=r[5], duration_ms=r[6], bytes=r[7], truncated=bool(r[8]), error=r[9])
        for r in conn.execute(
            "SELECT name, ok, path, ran, skipped_reason, exit_code, duration_ms, bytes, truncated, error"
            " FROM artifacts WHERE bundle_id = ? ORDER BY id",
            (bundle_id,),
        )
    ]


def _select_pauses(conn: apsw.Connection, where: str, params: tuple, order_limit: str,
                   with_artifacts: bool) -> list[PauseRecord]:
    out = []
    for row in conn.execute(f"{_PAUSE_SELECT} {where} {order_limit}", params):
        bundle_id = row[8]
        try:
            culprits = _culprits_decoder.decode(row[11]) if bundle_id is not None else []
            evidence = json.loads(row[12]) if bundle_id is not None else {}
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise DatabaseCorrupt(f"bundle {bundle_id} holds unreadable data: {_describe(exc)}") from exc
        out.append(PauseRecord(
            id=row[0], pause_id=row[1], start=row[2], end=row[3], duration_ms=row[4],
            expected_ms=row[5], suspended_ms=row[6], event_id=row[7], bundle_path=row[9],
            cause=row[10], culprits=culprits, evidence=evidence,
            artifacts=_artifacts(conn, bundle_id) if (with_artifacts and bundle_id is not None) else [],
        ))
    return out


@_db_errors
def list_pauses(
    conn: apsw.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = 50,
) -> list[PauseRecord]:
    """Pauses newest first (``since <= start < until``), with cause/culprits/bundle; no artifacts."""
    clauses, params = [], []
    if since is not None:
        clauses.append("p.start_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("p.start_at < ?")
        params.append(until)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    order = "ORDER BY p.start_at DESC, p.id DESC"
    if limit is not None:
        order += " LIMIT ?"
        params.append(max(0, int(limit)))
    return _select_pauses(conn, where, tuple(params), order, with_artifacts=False)


@_db_errors
def get_pause(conn: apsw.Connection, pause: int | str) -> PauseRecord | None:
    """One pause with its artifacts: by row id (int, as listed) or by ``pause_id`` (str)."""
    if isinstance(pause, str):
        rows = _select_pauses(conn, "WHERE p.pause_id = ?", (pause,), "", with_artifacts=True)
    else:
        rows = _select_pauses(conn, "WHERE p.id = ?", (int(pause),), "", with_artifacts=True)
    return rows[0] if rows else None


@_db_errors
def db_stats(conn: apsw.Connection) -> DbStats:
    """Row counts and latest times, for ``pmctl status``."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events WHERE end_at IS NULL),"
        " (SELECT count(*) FROM events WHERE status = 'unreviewed'), (SELECT count(*) FROM event_samples),"
        " (SELECT count(*) FROM pauses), (SELECT count(*) FROM bundles),"
        " (SELECT max(timestamp) FROM event_samples), (SELECT max(start_at) FROM pauses)"
    ).get
    return DbStats(schema_version=schema_version(conn), events=row[0], open_events=row[1],
                   unreviewed=row[2], samples=row[3], pauses=row[4], bundles=row[5],
                   last_sample_at=row[6], last_pause_at=row[7])


# =========================================================================== triage


@_db_errors
def set_status(conn: apsw.Connection, event_id: int, status: str, notes: str | None = None) -> EventSummary:
    """Set an event's status (and notes, unless ``notes`` is None; "" clears them).

    Raises BadStatus, NotFound; returns the updated event.
    """
    _check_status(status)
    with conn:
        if notes is None:
            changed = conn.execute("UPDATE events SET status = ? WHERE id = ? RETURNING id",
                                   (status, int(event_id))).get
        else:
            changed = conn.execute("UPDATE events SET status = ?, notes = ? WHERE id = ? RETURNING id",
                                   (status, notes or None, int(event_id))).get
    if changed is None:
        raise NotFound(f"no event with id {event_id}")
    return _select_events(conn, "WHERE id = ?", (int(event_id),), "")[0]


class _DryRun(Exception):
    """Raised inside prune's transaction to roll it back."""


@_db_errors
def prune(
    conn: apsw.Connection,
    *,
    events_days: int,
    samples_days: int,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneResult:
    """Delete old data by the seed's rule; with ``dry_run`` report the same without deleting.

    - events started more than ``events_days`` ago, closed, with status reviewed or dismissed go,
      with their samples; pinned and unreviewed events are never pruned;
    - pauses that started more than ``samples_days`` ago go unless they overlap an event that stays;
    - a forensics bundle goes when none of its pauses stay (and, for a bundle whose pauses never
      arrived, when it is older than ``samples_days``). Its directory is not touched here: pass
      ``bundle_paths`` to ``remove_bundle_dirs``.
    The dry run executes the very same deletes and rolls them back, so it reports exactly what a
    real run would delete; it therefore needs a writable connection.
    """
    if events_days < 1 or samples_days < 1:
        raise ValueError("retention days must be >= 1")
    now = time.time() if now is None else now
    events_cutoff = now - events_days * _DAY
    samples_cutoff = now - samples_days * _DAY
    result: PruneResult | None = None
    try:
        with conn:
            event_ids = [row[0] for row in conn.execute(
                "SELECT id FROM events WHERE start_at < ? AND end_at IS NOT NULL"
                " AND status IN ('reviewed', 'dismissed') ORDER BY start_at",
                (events_cutoff,),
            )]
            doomed = json.dumps(event_ids)
            events = _select_events(conn, "WHERE id IN (SELECT value FROM json_each(?))", (doomed,),
                                    "") if event_ids else []
            samples = conn.execute(
                "SELECT count(*) FROM event_samples WHERE event_id IN (SELECT value FROM json_each(?))",
                (doomed,),
            ).get
            conn.execute("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))", (doomed,))
            pause_rows = conn.execute(
                "DELETE FROM pauses WHERE start_at < ? AND NOT EXISTS ("
                " SELECT 1 FROM events e WHERE e.start_at <= pauses.end_at"
                " AND (e.end_at IS NULL OR e.end_at >= pauses.start_at)) RETURNING id, pause_id",
                (samples_cutoff,),
            ).fetchall()
            bundle_paths = [row[0] for row in conn.execute(
                "DELETE FROM bundles WHERE NOT EXISTS ("
                "  SELECT 1 FROM bundle_pauses bp JOIN pauses p ON p.pause_id = bp.pause_id"
                "  WHERE bp.bundle_id = bundles.id)"
                " AND (done_at < ? OR EXISTS (SELECT 1 FROM bundle_pauses bp"
                "  WHERE bp.bundle_id = bundles.id AND bp.pause_id IN (SELECT value FROM json_each(?))))"
                " RETURNING bundle_path",
                (samples_cutoff, json.dumps([row[1] for row in pause_rows])),
            )]
            result = PruneResult(dry_run=dry_run, events=events, samples=samples,
                                 pauses=sorted(row[0] for row in pause_rows),
                                 bundle_paths=sorted(set(bundle_paths)))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    assert result is not None
    return result


def remove_bundle_dirs(bundle_paths: Sequence[str], root: str | os.PathLike) -> list[str]:
    """Delete pruned bundles' directories, but only ones inside ``root`` (the events dir).

    Paths come from the database, so nothing outside ``root`` is ever removed. Returns the paths
    removed; a path already gone or outside ``root`` is skipped.
    """
    root_path = Path(root).resolve()
    removed = []
    for raw in bundle_paths:
        try:
            target = Path(raw).resolve()
        except (OSError, RuntimeError):
            continue
        if target == root_path or root_path not in target.parents:
            log.warning("not removing bundle %r: outside %s", raw, root_path)
            continue
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                continue
        except OSError as exc:
            log.warning("cannot remove bundle %s: %s", target, exc.strerror)
            continue
        removed.append(str(target))
    return removed
