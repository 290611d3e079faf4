"""The flight record as `pmctl replay` reads it: a ``replay_nav.Timeline`` and ``ReplayFrame``s
over ``storage.FlightReader`` (h-flight's read API), so the navigation and the picture never see
SQL or blocks."""

from __future__ import annotations

from typing import Any

from cli.replay_nav import Mark, RecordError
from cli.replay_view import ReplayFrame
from cli.timespec import Marker


class RecordTimeline:
    """replay_nav.Timeline on the database: each question is one or two indexed lookups, so seven
    days of record cost no more to step through than seven minutes."""

    def __init__(self, conn: Any) -> None:
        from pmshared.storage.flight import FlightReader

        self.conn = conn
        self.reader = FlightReader(conn)

    def span(self) -> tuple[float, float] | None:
        return self.reader.span()

    def first(self) -> float | None:
        span = self.reader.span()
        return None if span is None else span[0]

    def last(self) -> float | None:
        span = self.reader.span()
        return None if span is None else span[1]

    def at_or_before(self, t: float) -> float | None:
        frame = self.reader.frame_at(t)
        return None if frame is None else frame.timestamp

    def at_or_after(self, t: float) -> float | None:
        frame = self.reader.frame_at(t)
        if frame is not None and frame.timestamp == t:
            return t
        frame = self.reader.next_frame(t)
        return None if frame is None else frame.timestamp

    def next_mark(self, t: float) -> Mark | None:
        return _mark(self.reader.next_mark(t))

    def prev_mark(self, t: float) -> Mark | None:
        return _mark(self.reader.prev_mark(t))

    def resolve(self, marker: Marker) -> Mark:
        from pmshared.storage import NotFound
        from pmshared.storage.flight import mark_window

        try:
            start, _end = mark_window(self.conn, f"{marker.kind}:{marker.ident}")
        except (NotFound, ValueError):
            raise RecordError(f"no {marker.kind} {marker.ident} in the database "
                              f"(`pmctl {marker.kind}s` lists them)") from None
        return Mark(start, marker.kind, marker.ident, f"{marker.kind} {marker.ident}")

    def frame(self, at: float, ring_s: float) -> ReplayFrame:
        """Everything the picture needs for the sample at ``at`` (a time from this timeline)."""
        from pmshared import storage

        frames = self.reader.frames(at - ring_s, at)
        span = self.reader.span()
        until = at + 1e-3  # list_* take start < until: a pause or event starting at ``at`` counts
        pauses = storage.list_pauses(self.conn, until=until, limit=1)
        return ReplayFrame(
            at=frames[-1].timestamp if frames else at,
            ring=[f.ring_entry() for f in frames],
            state=frames[-1].state if frames else None,
            first=span[0] if span else None,
            last=span[1] if span else None,
            events=list(storage.list_events(self.conn, until=until, limit=5)),
            last_pause=pauses[0] if pauses else None,
        )


def _mark(found: Any) -> Mark | None:
    if found is None:
        return None
    return Mark(found.start, found.kind, str(found.id), f"{found.kind} {found.id}")
