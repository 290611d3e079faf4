"""The schema (migrations), opening a database (``connect``) and its housekeeping."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import apsw

from pmshared.storage import files
from pmshared.storage.errors import (
    DatabaseCorrupt,
    DatabaseMissing,
    DatabaseReadOnly,
    SchemaTooNew,
    SchemaTooOld,
    db_errors,
    translate_errors,
)

SCHEMA_VERSION = 4
DEFAULT_BUSY_TIMEOUT_MS = 5000

OpenMode = Literal["create", "readwrite", "readonly"]

# SQLite's own log (WAL recovery notices, lock warnings) goes here at DEBUG: every error in it also
# reaches us as an exception, reported in one line, so at a higher level it would only repeat that
# (and clutter a CLI's stderr). The NullHandler keeps Python's last-resort handler away.
_sqlite_log = logging.getLogger("pmshared.storage.sqlite")
_sqlite_log.addHandler(logging.NullHandler())

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
    # ---- v2
    """
    -- An event's duration as tiering measured it on its monotonic clock: start_at/end_at are
    -- wall-clock labels, which a clock change (date -s, NTP step) moves. NULL for events recorded
    -- before v2 and for interrupted ones (readers fall back to end_at - start_at).
    ALTER TABLE events ADD COLUMN duration_ms REAL;
    -- Why forensics could not write a bundle (bundle_path is '' then), e.g. a full disk.
    ALTER TABLE bundles ADD COLUMN error TEXT;
    """,
    # ---- v3
    """
    -- The flight recorder (issue 19): every sample, kept for days (pmshared/storage/flight*.py).
    -- Samples just taken, one row each, so each is on disk within a second of being taken; the
    -- recorder packs a minute's rows into one flight_blocks row once the minute is over.
    CREATE TABLE flight_recent (
        id    INTEGER PRIMARY KEY,
        ts    REAL NOT NULL UNIQUE,                -- the sample's wall-clock timestamp
        data  BLOB NOT NULL                        -- one flight_codec.Frame, msgpack
    );
    -- A minute of samples: the msgpack list of (timestamp, frame), compressed.
    CREATE TABLE flight_blocks (
        id       INTEGER PRIMARY KEY,
        minute   INTEGER NOT NULL UNIQUE,          -- floor(timestamp / 60) of its samples
        start_at REAL NOT NULL,                    -- first sample's timestamp
        end_at   REAL NOT NULL,                    -- last sample's timestamp
        samples  INTEGER NOT NULL,
        codec    TEXT NOT NULL,                    -- 'zstd' (flight_codec.CODEC)
        bytes    INTEGER NOT NULL,                 -- length(data), for retention by size
        data     BLOB NOT NULL
    );
    CREATE INDEX flight_blocks_start ON flight_blocks(start_at);
    CREATE INDEX flight_blocks_end ON flight_blocks(end_at);
    """,
    # ---- v4
    """
    -- Who an event is about over its whole length (tiering's EventCulprits): a JSON list of
    -- EventCulprit, the largest summed score first. NULL for events recorded before v4 (readers
    -- then name the event after the rogue of its highest-scoring stored sample).
    ALTER TABLE events ADD COLUMN culprits TEXT;
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION

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
    SchemaTooOld, DatabaseBusy, DatabaseReadOnly (also, naming the cause, for a directory, a
    non-file, or a file or directory we may not open), DatabaseFull, DatabaseIOError.
    A writable open makes the file and its -wal/-shm private (0600) if they were not.
    """
    _apply_best_practice_once()
    path = Path(path)
    flags = _prepare(path, mode)
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
                # An install from before the database was private (0644) is tightened here.
                files.make_private(path)
        return conn
    except BaseException:
        if conn is not None:
            conn.close()
        raise


def _prepare(path: Path, mode: OpenMode) -> int:
    """Everything before SQLite opens ``path``: the checks that name a cause, and for "create"
    the private directory and file. Returns the open flags."""
    # SQLite's own words for a directory or a file we may not open ("disk I/O error", "unable to
    # open database file") do not say which; these do.
    problem = files.access_problem(path, write=mode != "readonly")
    if problem is not None:
        raise DatabaseReadOnly(problem, path)
    if mode == "create":
        try:
            # A directory made here is private (0700); an existing one is the caller's business.
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            files.create_private(path)
        except OSError as exc:
            raise DatabaseReadOnly(f"cannot create {path}: {exc.strerror or exc}", path) from exc
        return apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    if mode not in ("readwrite", "readonly"):
        raise ValueError(f"unknown mode {mode!r}")
    if not path.exists():
        raise DatabaseMissing(
            f"no database at {path} yet; start the pipeline (`pmctl up`) and the recorder creates it", path
        )
    return apsw.SQLITE_OPEN_READWRITE if mode == "readwrite" else apsw.SQLITE_OPEN_READONLY


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


@db_errors
def schema_version(conn: apsw.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").get or 0)


@db_errors
def optimize(conn: apsw.Connection) -> None:
    """Let SQLite refresh its query-planner statistics (cheap; needs the write lock briefly)."""
    conn.execute("PRAGMA optimize")


@db_errors
def integrity_check(conn: apsw.Connection, quick: bool = True) -> list[str]:
    """SQLite's quick_check (or the full integrity_check): ``["ok"]`` when the file is sound."""
    pragma = "quick_check" if quick else "integrity_check"
    return [row[0] for row in conn.execute(f"PRAGMA {pragma}")]
