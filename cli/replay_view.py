"""The picture `pmctl replay` draws: `pmctl watch`'s panels, fed from the record instead of the
live feed. A pure ``render(frame, nav, ...)``, no database, no clock.

The stress, sentinel, rogue and events panels are watch's own (``cli.watch_view``), given a
``WatchView`` whose "now" is the recorded time, so "for 1m 12s" and "3 s ago" read as they did then.
What differs is said loudly: a REPLAY header with the recorded time, the busiest processes of that
second (recorded so "who was running" has an answer when nothing was scored), and a position panel
where watch has its workers. Process names pass through ``format.safe`` like everywhere else.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cli import format as fmt
from cli.replay_nav import ReplayState
from cli.watch_feed import FeedState
from cli.watch_view import (
    ROGUE_ROWS, WatchView, _sentinel_panel, _side_by_side, _stress_panel, events_table, rogue_table,
)
from pmshared import messages as m

TOP_ROWS = 8
KEYS = "←/→ sample · PgUp/PgDn minute · n/p next/prev pause or event · g go to · q quit"
PROMPT = "go to (14:03, 2026-12-01T14:03, 5m ago, pause:ID, event:ID; Enter, Esc cancels): "


@dataclass
class ReplayFrame:
    """What the record holds for one moment: the sample shown is ``ring[-1]``."""

    at: float  # the sample's timestamp
    ring: list[m.RingEntry]  # samples up to and including this one, oldest first (the sparkline)
    state: m.TierState | None = None  # tier as tiering held it at that sample
    first: float | None = None  # the recorded range
    last: float | None = None
    events: list[Any] = field(default_factory=list)  # storage EventSummary rows, newest first
    last_pause: Any | None = None  # the newest pause that started at or before ``at``


def as_of(events: list[Any], at: float) -> list[Any]:
    """Events as they stood at ``at``: ones that had not started are left out, ones that ended
    later are shown open (as watch showed them then)."""
    out = []
    for event in events:
        if event.start > at:
            continue
        if event.end is not None and event.end > at:
            event = msgspec.structs.replace(event, end=None, duration_ms=None)
        out.append(event)
    return out


def watch_view(frame: ReplayFrame, elevation: int, critical: int, width: int) -> WatchView:
    feed = FeedState(capacity=max(1, len(frame.ring)))
    feed.ring = deque(frame.ring)
    feed.tier = frame.state
    feed.synced = True
    return WatchView(feed=feed, now=frame.at, link="live", elevation_threshold=elevation,
                     critical_threshold=critical, events=as_of(frame.events, frame.at),
                     last_pause=frame.last_pause, keys_hint=False, width=width)


def table_rows(height: int | None, width: int) -> tuple[int, int]:
    """(rogue rows, busiest rows) that fit a terminal of ``height`` lines beside the fixed parts
    (header, note, the two panels, events, position, keys: about 26 lines side by side, 38 stacked
    below 120 columns); all of them when the height is not known (--once)."""
    if height is None:
        return ROGUE_ROWS, TOP_ROWS
    spare = max(0, height - (26 if width >= 120 else 38))
    rogues = min(ROGUE_ROWS, max(3, spare * 3 // 5))
    return rogues, min(TOP_ROWS, max(2, spare - rogues))


def render(frame: ReplayFrame, nav: ReplayState, *, wall_now: float, elevation: int = 30,
           critical: int = 60, width: int = 160, interactive: bool = True,
           height: int | None = None) -> RenderableType:
    view = watch_view(frame, elevation, critical, width)
    rogue_rows, top_rows = table_rows(height, width)
    latest = view.feed.latest
    parts: list[RenderableType] = [header(frame, nav, wall_now)]
    # The prompt and notes go right under the header: a terminal shorter than the frame crops
    # its bottom, and what was typed must stay in sight.
    said = prompt_line(nav) if interactive else None
    if said is None and nav.note:
        said = fmt.safe(nav.note, style="yellow")
    if said is not None:
        parts.append(said)
    parts.append(_side_by_side(view, _stress_panel(view), _sentinel_panel(view)))
    parts.append(rogue_table(latest.rogues if latest else [], view, rows=rogue_rows))
    top = getattr(latest, "top", None) if latest is not None else None
    if top:
        parts.append(top_table(top, rows=top_rows))
    parts.append(_side_by_side(view, events_table(view, rows=5), position_panel(frame, nav)))
    if interactive:
        parts.append(Text(KEYS, style="dim"))
    return Group(*parts)


def header(frame: ReplayFrame, nav: ReplayState, wall_now: float) -> Text:
    text = Text()
    text.append("pause-monitor", style="bold")
    text.append("  ")
    text.append(" REPLAY ", style="bold reverse")
    text.append("  recorded ")
    text.append(fmt.timestamp(frame.at), style="bold")
    text.append(f" ({fmt.human_seconds(max(0.0, wall_now - frame.at))} ago)")
    if nav.mark is not None:
        text.append("  at ")
        text.append_text(fmt.safe(nav.mark.label, style="bold"))
    return text


def position_panel(frame: ReplayFrame, nav: ReplayState) -> Panel:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_row("shown", Text(fmt.timestamp(frame.at)))
    grid.add_row("record", Text(f"{fmt.timestamp(frame.first)} to {fmt.timestamp(frame.last)}"))
    if frame.last is not None and frame.at < frame.last:
        grid.add_row("later", Text(f"{fmt.human_seconds(frame.last - frame.at)} more recorded"))
    return Panel(grid, title="replay", title_align="left")


def top_table(procs: list[m.ProcessInfo], rows: int = TOP_ROWS) -> Table:
    """The busiest processes of the sample, by cpu (what "who was running" means first)."""
    table = Table(title="busiest processes", title_justify="left", show_edge=False)
    for name, justify in (("command", "left"), ("pid", "right"), ("cpu %", "right"), ("mem", "right"),
                          ("io/s", "right"), ("page-ins/s", "right"), ("state", "left")):
        table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         max_width=40 if name == "command" else None)
    for p in sorted(procs, key=lambda p: (p.cpu or 0.0, p.mem), reverse=True)[:rows]:
        io = None if p.read_bps is None and p.write_bps is None else (p.read_bps or 0) + (p.write_bps or 0)
        table.add_row(fmt.safe(p.command, limit=40), str(p.pid), fmt.number(p.cpu), fmt.human_bytes(p.mem),
                      fmt.human_bytes(io) if io is not None else fmt.MISSING, fmt.number(p.pageins),
                      Text(p.state))
    return table


def prompt_line(nav: ReplayState) -> Text | None:
    """The `g` prompt with what has been typed so far (inert), or None when not prompting."""
    if nav.prompt is None:
        return None
    line = Text(PROMPT, style="bold")
    line.append_text(fmt.safe(nav.prompt))
    line.append("█", style="blink")
    return line
