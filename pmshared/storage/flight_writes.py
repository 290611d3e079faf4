"""The flight recorder's writes: store each sample at once, pack finished minutes, prune by age and size.

- ``store_sample`` (called by ``apply`` for a ``FlightSample``) inserts the frame as its own row of
  ``flight_recent``: it is on disk when the recorder's batch commits, within a second of the sample.
  Idempotent by the sample's timestamp.
- In the same transaction, rows of minutes before the new sample's minute are packed into one
  compressed ``flight_blocks`` row per minute and deleted (``compact_before``). A crash at any
  point leaves either the rows or the block, never neither. A sample that arrives for a minute
  already packed (a resend after a restart, a clock set back) is merged into that minute's block.
- ``prune_flight`` removes the oldest blocks beyond the age limit and then beyond the size limit,
  never a block overlapping a pinned event (or the ``PINNED_LEAD_S`` before it, what a bundle of
  that event would show).
"""

from __future__ import annotations

import math
from itertools import groupby

import apsw
import msgspec

from pmshared import messages as m
from pmshared.flight_codec import CODEC, BlockCorrupt, check_frame, decode_block, encode_block
from pmshared.storage.dryrun import transaction
from pmshared.storage.errors import RecordRejected, db_errors

MINUTE_S = 60
PINNED_LEAD_S = 300.0  # kept before a pinned event: the history a pause bundle carries

# Blocks overlapping a pinned event (from PINNED_LEAD_S before it to its end, or now while open).
_PINNED = (
    "EXISTS (SELECT 1 FROM events e WHERE e.status = 'pinned'"
    " AND flight_blocks.end_at >= e.start_at - :lead AND flight_blocks.start_at <= coalesce(e.end_at, :now))"
)


def minute_of(ts: float) -> int:
    return math.floor(ts / MINUTE_S)


def store_sample(conn: apsw.Connection, record: m.FlightSample) -> None:
    """Keep one sample (inside the caller's transaction), then pack the minutes it closes.
    RecordRejected for a frame that is not one (see flight_codec.check_frame).

    Once a second, so it costs as few statements as it can: the sample is checked before any is
    run, its one insert needs no savepoint of its own (nothing to undo if it fails: the batch's
    transaction is retried whole), and the same statement returns the oldest kept row's time. The
    packing of a minute, once a minute, runs in a savepoint: one that fails leaves the rows."""
    ts = record.timestamp
    if not math.isfinite(ts):
        raise RecordRejected(f"a flight sample at {ts!r}: not a time")
    try:
        check_frame(record.frame)
    except BlockCorrupt as exc:
        raise RecordRejected(str(exc)) from exc
    oldest = conn.execute(
        "INSERT INTO flight_recent (ts, data) VALUES (?, ?) ON CONFLICT (ts) DO NOTHING"
        " RETURNING (SELECT min(ts) FROM flight_recent)",
        (ts, record.frame),
    ).get  # None for a sample already kept (a resend): the next new one packs what is due
    if oldest is not None and minute_of(oldest) < minute_of(ts):
        with conn:
            compact_before(conn, minute_of(ts) * MINUTE_S)


def compact_before(conn: apsw.Connection, boundary: float) -> int:
    """Pack every ``flight_recent`` row older than ``boundary`` into its minute's block; returns
    how many rows were packed."""
    rows = conn.execute("SELECT ts, data FROM flight_recent WHERE ts < ? ORDER BY ts", (boundary,)).fetchall()
    for minute, group in groupby(rows, key=lambda row: minute_of(row[0])):
        _write_block(conn, minute, [(ts, bytes(data)) for ts, data in group])
    conn.execute("DELETE FROM flight_recent WHERE ts < ?", (boundary,))
    return len(rows)


def _write_block(conn: apsw.Connection, minute: int, frames: list[tuple[float, bytes]]) -> None:
    existing = conn.execute("SELECT codec, data FROM flight_blocks WHERE minute = ?", (minute,)).fetchall()
    if existing:
        codec, data = existing[0]
        try:
            merged = {ts: bytes(raw) for ts, raw in decode_block(bytes(data), codec)}
        except BlockCorrupt:
            merged = {}  # unreadable already: the new samples replace it rather than be lost too
        merged.update(frames)  # the same timestamp is the same sample: keep one
        frames = sorted(merged.items())
    data = encode_block(frames)
    conn.execute(
        "INSERT INTO flight_blocks (minute, start_at, end_at, samples, codec, bytes, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (minute) DO UPDATE SET start_at = excluded.start_at,"
        " end_at = excluded.end_at, samples = excluded.samples, codec = excluded.codec,"
        " bytes = excluded.bytes, data = excluded.data",
        (minute, frames[0][0], frames[-1][0], len(frames), CODEC, len(data), data),
    )


class FlightPruneResult(msgspec.Struct, frozen=True, kw_only=True):
    blocks_by_age: int = 0
    blocks_by_size: int = 0
    bytes_freed: int = 0
    bytes_kept: int = 0  # stored flight data after the prune (blocks and recent rows)
    removed_from: float | None = None  # the time span the removed minutes covered
    removed_until: float | None = None
    dry_run: bool = False


@db_errors
def prune_flight(conn: apsw.Connection, *, max_age_days: float, max_bytes: int, now: float,
                 dry_run: bool = False) -> FlightPruneResult:
    """Remove blocks ending before ``now - max_age_days``, then the oldest until the flight data
    (blocks plus recent rows) fits in ``max_bytes``; blocks of pinned events are kept either way.
    ``dry_run`` runs the same deletes and rolls them back: the result is what a real run removes."""
    args = {"lead": PINNED_LEAD_S, "now": now, "cutoff": now - max_age_days * 86400.0}
    with transaction(conn, dry_run=dry_run):
        aged = conn.execute(f"DELETE FROM flight_blocks WHERE end_at < :cutoff AND NOT {_PINNED}"
                            " RETURNING bytes, start_at, end_at", args).fetchall()
        total = (conn.execute("SELECT coalesce(sum(bytes), 0) FROM flight_blocks").get
                 + conn.execute("SELECT coalesce(sum(length(data)), 0) FROM flight_recent").get)
        doomed: list[tuple[int, int, float, float]] = []
        freed = 0
        if total > max_bytes:
            for block_id, size, start_at, end_at in conn.execute(
                f"SELECT id, bytes, start_at, end_at FROM flight_blocks WHERE NOT {_PINNED} ORDER BY start_at", args
            ):
                if total - freed <= max_bytes:
                    break
                doomed.append((block_id, size, start_at, end_at))
                freed += size
            conn.executemany("DELETE FROM flight_blocks WHERE id = ?", [(d[0],) for d in doomed])
        spans = [(a, b) for _, a, b in aged] + [(a, b) for _, _, a, b in doomed]
        result = FlightPruneResult(
            blocks_by_age=len(aged), blocks_by_size=len(doomed),
            bytes_freed=sum(b for b, _, _ in aged) + freed, bytes_kept=total - freed,
            removed_from=min((a for a, _ in spans), default=None),
            removed_until=max((b for _, b in spans), default=None), dry_run=dry_run)
    return result


class FlightUsage(msgspec.Struct, frozen=True, kw_only=True):
    """What the flight record holds now, and how much of it is past the age limit (not pinned)."""

    first_at: float | None
    last_at: float | None
    samples: int
    bytes: int  # blocks and recent rows
    overdue_blocks: int  # past ``max_age_days`` and not kept for a pinned event
    overdue_since: float | None  # the oldest of them


@db_errors
def flight_usage(conn: apsw.Connection, *, max_age_days: float, now: float) -> FlightUsage:
    """Read-only (``pmctl doctor``): span, size and what retention should already have removed."""
    args = {"lead": PINNED_LEAD_S, "now": now, "cutoff": now - max_age_days * 86400.0}
    first, last, samples, size = conn.execute(
        "SELECT min(start_at), max(end_at), coalesce(sum(samples), 0), coalesce(sum(bytes), 0) FROM flight_blocks"
    ).fetchall()[0]
    r_first, r_last, r_samples, r_size = conn.execute(
        "SELECT min(ts), max(ts), count(*), coalesce(sum(length(data)), 0) FROM flight_recent").fetchall()[0]
    overdue, since = conn.execute(
        f"SELECT count(*), min(start_at) FROM flight_blocks WHERE end_at < :cutoff AND NOT {_PINNED}", args
    ).fetchall()[0]
    firsts = [t for t in (first, r_first) if t is not None]
    lasts = [t for t in (last, r_last) if t is not None]
    return FlightUsage(first_at=min(firsts, default=None), last_at=max(lasts, default=None),
                       samples=samples + r_samples, bytes=size + r_size, overdue_blocks=overdue,
                       overdue_since=since)
