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


NO_LOCAL_CULPRIT = "no process here"  # the tally charged nobody: see EventSummary.no_local_culprit


def culprit_parts(event: Any) -> tuple[str, str, str]:
    """(name, " (pid)", " categories") of an event's top culprit, each "" where it has none;
    the name is cleaned and shortened, ready for either view."""
    if getattr(event, "no_local_culprit", False):
        stressed = getattr(event, "stressed", None)
        return NO_LOCAL_CULPRIT, "", f" ({fmt.joined(stressed)})" if stressed else ""
    name = fmt.clean(event.top_culprit or fmt.MISSING, limit=40)
    pid = f" ({event.top_culprit_pid})" if event.top_culprit_pid is not None else ""
    cats = f" {fmt.joined(event.top_culprit_categories)}" if event.top_culprit_categories else ""
    return name, pid, cats


def events_plain(events: Sequence[Any], now: float) -> str:
    """The events table as aligned plain text (pipes, NO_COLOR); same columns as the rich table."""
    from cli import plain

    rows = []
    for e in events:
        rows.append([str(e.id), fmt.timestamp(e.start), duration_text(e, now), str(e.peak_score),
                     str(e.peak_tier), fmt.clean(e.status), "".join(culprit_parts(e)), str(e.pause_count)])
    return plain.table(EVENT_COLUMNS, rows)
