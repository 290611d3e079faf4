"""The recorder's writes: ``apply`` one record, idempotently; interrupted events."""

from __future__ import annotations

import apsw
import msgspec

from pmshared import messages as m
from pmshared.storage.errors import RecordRejected, db_errors, describe, translate_errors
from pmshared.storage.flight_writes import store_sample

_json = msgspec.json.Encoder()


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
            if record.__class__ is m.FlightSample:  # once a second: store_sample keeps its own savepoints
                store_sample(conn, record)
                return
            with conn:
                _apply(conn, record)
        except (apsw.ConstraintError, apsw.SQLError, apsw.MismatchError, apsw.TooBigError,
                apsw.RangeError, msgspec.EncodeError, OverflowError) as exc:
            raise RecordRejected(f"{type(record).__name__} {record_key(record)} rejected: {describe(exc)}",
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
            _event_closed(conn, record)
        case m.EventCulprits():
            _note_tiering(conn, record.incarnation, record.sent_at)
            event_id = _ensure_event(conn, record.event_key, record.event_start, record.incarnation, 2, 0)
            # Each tally holds the whole event so far: the latest replaces the one before.
            conn.execute("UPDATE events SET culprits = ? WHERE id = ?",
                         (_json.encode(record.culprits).decode(), event_id))
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
                "INSERT INTO bundles (record_key, bundle_path, cause, culprits, evidence, done_at, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (record_key) DO NOTHING RETURNING id",
                (record_key(record), record.bundle_path, record.cause,
                 _json.encode(record.culprits).decode(), _json.encode(record.evidence).decode(),
                 record.sent_at, record.error),
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
        case m.FlightSample():
            store_sample(conn, record)
        case _:
            raise RecordRejected(f"not a record type: {type(record).__name__}")


def _event_closed(conn: apsw.Connection, record: m.EventClosed) -> None:
    _note_tiering(conn, record.incarnation, record.sent_at)
    event_id = _ensure_event(conn, record.event_key, record.start, record.incarnation,
                             record.peak_tier, record.peak_score)
    # A proper close wins over an earlier "interrupted" guess. The end is a wall-clock label:
    # after the clock was set back it can precede the start; it is never stored so. The duration
    # is tiering's monotonic measure.
    conn.execute(
        "UPDATE events SET end_at = max(?, start_at), duration_ms = ?,"
        " peak_score = max(peak_score, ?), peak_tier = max(peak_tier, ?), interrupted = 0 WHERE id = ?",
        (record.end, record.duration_ms, record.peak_score, record.peak_tier, event_id),
    )


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


@db_errors
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
