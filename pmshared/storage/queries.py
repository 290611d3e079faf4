"""pmctl's reads: events, samples, pauses and bundles, as frozen msgspec Structs."""

from __future__ import annotations

import json

import apsw
import msgspec

from pmshared import messages as m
from pmshared.storage.errors import BadStatus, DatabaseCorrupt, db_errors, describe
from pmshared.storage.schema import schema_version

_samples_decoder = msgspec.json.Decoder(m.ProcessSamples)
_culprits_decoder = msgspec.json.Decoder(list[m.Culprit])
_event_culprits_decoder = msgspec.json.Decoder(list[m.EventCulprit])
_stress_decoder = msgspec.json.Decoder(dict[str, int])

STATUSES = ("unreviewed", "reviewed", "pinned", "dismissed")


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
    # The process the event is about: the first of ``culprits`` (the largest score summed over
    # the event's samples); for events recorded before schema v4, the highest-scoring rogue of
    # its stored samples. Its score is its highest in the event.
    top_culprit: str | None
    top_culprit_pid: int | None
    top_culprit_score: int | None
    # Closed events: the length tiering measured on its monotonic clock, or (events from before
    # schema v2, interrupted ones) end - start, never negative. None while open.
    duration_ms: float | None = None
    top_culprit_categories: list[str] = []  # what it did, leading first ([] before schema v4)
    culprits: list[m.EventCulprit] = []  # tiering's tally, largest summed score first
    # The tally charged no process: the machine was stressed (io waits while the host's storage
    # was busy, say) but nothing running here accounts for it. The event names nobody then,
    # rather than whoever happened to score 1 in one of its samples.
    no_local_culprit: bool = False
    # For such an event, what was stressed instead: the resources at its highest-scoring sample,
    # most stressed first, within half of the most (``[]`` for events that name a culprit).
    stressed: list[str] = []

    @property
    def duration_s(self) -> float | None:
        return None if self.duration_ms is None else self.duration_ms / 1000.0


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
    # The stored JSON object as written (m.Evidence today, a free-form dict before): rows of older
    # versions carry keys m.Evidence no longer knows, and `pmctl pauses show` lists every key, so
    # it stays an object here; msgspec.convert(evidence, m.Evidence) gives the typed view.
    evidence: dict[str, object]
    artifacts: list[m.Artifact]  # filled by get_pause/get_event; empty in list_pauses
    forensics_error: str | None = None  # forensics could not write the bundle: why


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


_EVENT_COLUMNS = """
    e.id, e.event_key, e.start_at, e.end_at, e.peak_score, e.peak_tier, e.status, e.notes,
    e.interrupted, e.incarnation, e.last_sample_at,
    (SELECT count(*) FROM event_samples s WHERE s.event_id = e.id),
    (SELECT count(*) FROM pauses p WHERE p.end_at >= e.start_at AND (e.end_at IS NULL OR p.start_at <= e.end_at)),
    ts.top_command, ts.top_pid, ts.top_score,
    CASE WHEN e.end_at IS NOT NULL THEN coalesce(e.duration_ms, max(0.0, e.end_at - e.start_at) * 1000) END,
    e.culprits
"""
# The sample holding the event's top culprit (index event_samples_event_top).
_TOP_SAMPLE_JOIN = """
    LEFT JOIN event_samples ts ON ts.id = (
        SELECT s.id FROM event_samples s WHERE s.event_id = e.id ORDER BY s.top_score DESC, s.timestamp LIMIT 1)
"""


def _tally(text: str | None) -> list[m.EventCulprit] | None:
    """An event's stored culprit tally; None when none was stored or it does not decode (the
    event is then named from its samples, as before schema v4)."""
    if not text:
        return None
    try:
        return _event_culprits_decoder.decode(text)
    except msgspec.DecodeError:
        return None


def _event_from_row(row: tuple) -> EventSummary:
    culprits = _tally(row[17])
    if culprits:
        top = culprits[0]
        named = {"top_culprit": top.command, "top_culprit_pid": top.pid, "top_culprit_score": top.peak,
                 "top_culprit_categories": list(top.categories)}
    elif culprits == []:
        named = {"top_culprit": None, "top_culprit_pid": None, "top_culprit_score": None, "no_local_culprit": True}
    else:
        named = {"top_culprit": row[13], "top_culprit_pid": row[14],
                 "top_culprit_score": row[15] if row[13] is not None else None}
    return EventSummary(
        id=row[0], event_key=row[1], start=row[2], end=row[3], peak_score=row[4], peak_tier=row[5],
        status=row[6], notes=row[7], interrupted=bool(row[8]), incarnation=row[9],
        last_sample_at=row[10], sample_count=row[11], pause_count=row[12], duration_ms=row[16],
        culprits=culprits or [], **named,
    )


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise BadStatus(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")


def select_events(conn: apsw.Connection, where: str, params: tuple, order_limit: str) -> list[EventSummary]:
    # Filter and limit first, then compute the per-event figures only for the rows returned.
    sql = (f"SELECT {_EVENT_COLUMNS} FROM (SELECT * FROM events {where} {order_limit}) e"
           f" {_TOP_SAMPLE_JOIN} ORDER BY e.start_at DESC, e.id DESC")
    events = [_event_from_row(row) for row in conn.execute(sql, params)]
    return [msgspec.structs.replace(e, stressed=_stressed_at_peak(conn, e.id)) if e.no_local_culprit else e
            for e in events]


def _stressed_at_peak(conn: apsw.Connection, event_id: int) -> list[str]:
    """The resources most stressed in the event's highest-scoring stored sample (rare: only
    for events no process is charged for, so one query each is fine)."""
    row = conn.execute("SELECT json_extract(data, '$.stress') FROM event_samples WHERE event_id = ?"
                       " ORDER BY max_score DESC, timestamp LIMIT 1", (event_id,)).fetchone()
    try:
        stress = _stress_decoder.decode(row[0]) if row and row[0] else {}
    except msgspec.DecodeError:
        return []
    top = max(stress.values(), default=0)
    return [r for r, v in sorted(stress.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0 and v >= top / 2]


def _newest_first(
    prefix: str, clauses: list[str], params: list, since: float | None, until: float | None, limit: int | None
) -> tuple[str, str, tuple]:
    """(WHERE, ORDER BY ... LIMIT, parameters) for rows with ``since <= start_at < until``, newest
    first; ``prefix`` qualifies the columns (``"p."``), ``clauses``/``params`` are the caller's own."""
    if since is not None:
        clauses.append(f"{prefix}start_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{prefix}start_at < ?")
        params.append(until)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    order = f"ORDER BY {prefix}start_at DESC, {prefix}id DESC"
    if limit is not None:
        order += " LIMIT ?"
        params.append(max(0, int(limit)))
    return where, order, tuple(params)


@db_errors
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
        check_status(status)
        clauses.append("status = ?")
        params.append(status)
    where, order, params = _newest_first("", clauses, params, since, until, limit)
    return select_events(conn, where, params, order)


@db_errors
def last_event(conn: apsw.Connection) -> EventSummary | None:
    """The most recently started event, or None."""
    rows = select_events(conn, "", (), "ORDER BY start_at DESC, id DESC LIMIT 1")
    return rows[0] if rows else None


def _sample_from_row(row: tuple) -> StoredSample:
    try:
        samples = _samples_decoder.decode(row[7])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DatabaseCorrupt(f"event sample {row[0]} holds unreadable data: {describe(exc)}") from exc
    return StoredSample(id=row[0], event_id=row[1], tier=row[2], action=row[3], timestamp=row[4],
                        max_score=row[5], record_key=row[6], samples=samples)


_SAMPLE_COLUMNS = "id, event_id, tier, action, timestamp, max_score, record_key, data"


@db_errors
def get_event(conn: apsw.Connection, event_id: int) -> EventDetail | None:
    """One event with its samples (decoded, by time) and overlapping pauses; None if unknown."""
    rows = select_events(conn, "WHERE id = ?", (int(event_id),), "")
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


@db_errors
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
        b.id, b.bundle_path, b.cause, b.culprits, b.evidence, b.error
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
            raise DatabaseCorrupt(f"bundle {bundle_id} holds unreadable data: {describe(exc)}") from exc
        out.append(PauseRecord(
            id=row[0], pause_id=row[1], start=row[2], end=row[3], duration_ms=row[4],
            expected_ms=row[5], suspended_ms=row[6], event_id=row[7], bundle_path=row[9],
            cause=row[10], culprits=culprits, evidence=evidence,
            artifacts=_artifacts(conn, bundle_id) if (with_artifacts and bundle_id is not None) else [],
            forensics_error=row[13],
        ))
    return out


@db_errors
def list_pauses(
    conn: apsw.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = 50,
) -> list[PauseRecord]:
    """Pauses newest first (``since <= start < until``), with cause/culprits/bundle; no artifacts."""
    clauses, params = [], []
    where, order, params = _newest_first("p.", clauses, params, since, until, limit)
    return _select_pauses(conn, where, params, order, with_artifacts=False)


@db_errors
def pending_pauses(conn: apsw.Connection, *, since: float, until: float, limit: int) -> list[PauseRecord]:
    """Pauses no ForensicsDone names yet (``since <= start < until``), newest first: forensics'
    start-up sweep for bundles a stopped worker never wrote."""
    where, order, params = _newest_first(
        "p.", ["NOT EXISTS (SELECT 1 FROM bundle_pauses bp WHERE bp.pause_id = p.pause_id)"], [],
        since, until, limit,
    )
    return _select_pauses(conn, where, params, order, with_artifacts=False)


@db_errors
def get_pause(conn: apsw.Connection, pause: int | str) -> PauseRecord | None:
    """One pause with its artifacts: by row id (int, as listed) or by ``pause_id`` (str)."""
    if isinstance(pause, str):
        rows = _select_pauses(conn, "WHERE p.pause_id = ?", (pause,), "", with_artifacts=True)
    else:
        rows = _select_pauses(conn, "WHERE p.id = ?", (int(pause),), "", with_artifacts=True)
    return rows[0] if rows else None


@db_errors
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
