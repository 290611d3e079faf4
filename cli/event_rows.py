"""Event rows as plain text — the rich-free half of the events views (see ``plain``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cli import format as fmt

EVENT_COLUMNS = (("id", "right"), ("start", "left"), ("duration", "right"), ("peak", "right"),
                 ("tier", "right"), ("status", "left"), ("top culprit", "left"), ("pauses", "right"))


def duration_text(event: Any, now: float) -> str:
    """A closed event's length as measured (``duration_ms``, monotonic), never its wall-clock
    labels' difference, which a clock change during the event distorts."""
    if event.end is None:
        return fmt.human_seconds(now - event.start) + " (open)"
    text = fmt.human_ms(event.duration_ms)
    return text + " (interrupted)" if event.interrupted else text


def events_plain(events: Sequence[Any], now: float) -> str:
    """The events table as aligned plain text (pipes, NO_COLOR); same columns as the rich table."""
    from cli import plain

    rows = []
    for e in events:
        culprit = fmt.clean(e.top_culprit or fmt.MISSING, limit=40)
        if e.top_culprit_pid is not None:
            culprit += f" ({e.top_culprit_pid})"
        if e.top_culprit_categories:
            culprit += f" {','.join(e.top_culprit_categories)}"
        rows.append([str(e.id), fmt.timestamp(e.start), duration_text(e, now), str(e.peak_score),
                     str(e.peak_tier), fmt.clean(e.status), culprit, str(e.pause_count)])
    return plain.table(EVENT_COLUMNS, rows)
