"""The counters that live in the database: pauses by cause (with their durations) and events by
peak tier, read once in full at start and then incrementally, so that each row is counted once.

Why the database and not a subscription: a pause reaches forensics and the recorder over PUSH
sockets (work that must arrive, one consumer each), and its cause is known only when forensics
has captured and judged it, seconds later; the recorder stores both and links them. Reading that
is one indexed range query, run only when the live feed says something happened (the sentinel's
pause count moved, an event ended), while a pause still waits for its cause, and once a minute to
be safe. A restarted exporter starts from the database's totals, so its counters carry on from
what was retained (Prometheus sees a counter reset only where retention pruned rows meanwhile).

A pause is counted once its cause is known, or as ``none`` once ``CAUSE_WAIT_S`` has passed
without a bundle (forensics disabled, or down): a Prometheus counter cannot move a pause from one
label to another later. An event is counted when it is closed, under its peak tier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import apsw

from exporter.state import ExporterState
from pmshared import storage
from pmshared.storage.errors import translate_errors

CAUSE_WAIT_S = 120.0  # forensics' slowest capture (spindump, 30 s) with room to spare
NO_BUNDLE = "none"  # one of exporter.state.PAUSE_CAUSES

_PAUSES = """
    SELECT p.id, p.duration_ms, p.end_at,
           (SELECT b.cause FROM bundle_pauses bp JOIN bundles b ON b.id = bp.bundle_id
             WHERE bp.pause_id = p.pause_id ORDER BY b.id LIMIT 1)
      FROM pauses p WHERE p.id > ? ORDER BY p.id
"""
_EVENTS = "SELECT id, peak_tier, end_at FROM events WHERE id > ? ORDER BY id"


class RowTracker:
    """Counts each row of a growing table once, when it is resolved (a pause with its cause, a
    closed event). Every id up to ``floor`` is done; ``done`` holds the ids above it counted
    already (rows resolved while an older one is still pending). Reads start after ``floor``."""

    def __init__(self) -> None:
        self.floor = 0
        self.done: set[int] = set()
        self.pending = 0

    def take(self, rows: Iterable[tuple[int, object]], count: Callable[[object], None]) -> None:
        """``rows`` are (id, value or None while unresolved), ascending; ``count`` each new value."""
        lowest_pending: int | None = None
        top = self.floor
        self.pending = 0
        for row_id, value in rows:
            top = max(top, row_id)
            if value is None:
                self.pending += 1
                if lowest_pending is None:
                    lowest_pending = row_id
            elif row_id not in self.done:
                self.done.add(row_id)
                count(value)
        self.floor = top if lowest_pending is None else lowest_pending - 1
        self.done = {i for i in self.done if i > self.floor}


class DbTotals:
    """Feeds ``state`` from the database; ``read(conn, now)`` after every trigger."""

    def __init__(self, state: ExporterState) -> None:
        self.state = state
        self.pauses = RowTracker()
        self.events = RowTracker()

    def new_file(self) -> None:
        """The database was replaced (a corrupt one moved aside): its rows are all new."""
        self.pauses, self.events = RowTracker(), RowTracker()

    @property
    def waiting(self) -> bool:
        """A pause is still waiting for its cause (read again soon)."""
        return self.pauses.pending > 0

    def read(self, conn: apsw.Connection, now: float) -> None:
        """Count what is new; ``now`` is wall-clock seconds (pause rows carry wall-clock ends).
        Raises ``storage.StorageError`` (one line) on database trouble."""
        with translate_errors(conn.filename or None):
            pause_rows = conn.execute(_PAUSES, (self.pauses.floor,)).fetchall()
            event_rows = conn.execute(_EVENTS, (self.events.floor,)).fetchall()

        def pause(row: tuple) -> tuple[int, object]:
            row_id, duration_ms, end_at, cause = row
            if cause is None and now - end_at >= CAUSE_WAIT_S:
                cause = NO_BUNDLE
            return row_id, None if cause is None else (str(cause), float(duration_ms))

        self.pauses.take(map(pause, pause_rows), lambda v: self.state.on_pause(*v))  # type: ignore[misc]
        self.events.take(((i, None if end is None else int(tier)) for i, tier, end in event_rows),
                         lambda tier: self.state.on_event(tier))  # type: ignore[arg-type]


def open_database(path) -> apsw.Connection:
    """Read-only: the exporter never creates or writes the database (the recorder does)."""
    return storage.open_readonly(path, busy_timeout_ms=100)
