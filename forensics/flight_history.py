"""history.json of a bundle: the five minutes before the pause from the flight record (issue 19).

The ring buffer (ring_buffer.json) holds the last 30 s the live feed brought; the recorder keeps
every sample on disk within a second of it being taken, so the database has the minutes before a
stall even when the live feed dropped some. Read-only, briefly: a busy, missing or damaged
database gives a history.json that says why, never a failed bundle.
"""

from __future__ import annotations

from pathlib import Path

from pmshared import storage

HISTORY_S = 300.0
BUSY_TIMEOUT_MS = 500


def history_json(db_path: Path, start: float, end: float, before_s: float = HISTORY_S) -> dict[str, object]:
    """The frames from ``before_s`` before ``start`` to ``end``, shaped like ring_buffer.json."""
    since = start - before_s
    try:
        conn = storage.open_readonly(db_path, busy_timeout_ms=BUSY_TIMEOUT_MS)
    except storage.StorageError as exc:
        return {"error": str(exc), "since": since, "until": end, "entries": 0, "samples": []}
    try:
        frames = storage.FlightReader(conn).frames(since, end)
    except storage.StorageError as exc:
        return {"error": str(exc), "since": since, "until": end, "entries": 0, "samples": []}
    finally:
        conn.close()
    return {
        "since": since,
        "until": end,
        "entries": len(frames),
        "first": frames[0].timestamp if frames else None,
        "last": frames[-1].timestamp if frames else None,
        "samples": [{"tier": f.state.tier, "tier_state": f.state, "samples": f.samples} for f in frames],
    }
