"""The picture `pmctl watch` draws: a pure ``render(view) -> Renderable``, no sockets, no clock.

Every process name, note and path shown here is untrusted and goes through ``format.safe`` into a
``Text``; nothing is ever put into markup. Colour only marks levels (the seed's gauge: green below
the elevation threshold, yellow below the critical one, red above); each level is also written as a
word, so NO_COLOR and pipes lose nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cli import format as fmt
from cli.event_rows import NO_LOCAL_CULPRIT
from cli.watch_feed import FeedState
from pmshared import messages as m

TIER_NAMES = {1: "normal", 2: "elevated", 3: "critical"}
GAUGE_WIDTH = 24
ROGUE_ROWS = 12


@dataclass
class WatchView:
    """Everything one frame shows. Built by the command from the feed, the DB and the supervisor."""

    feed: FeedState
    now: float  # wall clock, for "for 1m 12s" and ages
    link: Literal["connecting", "live", "down"] = "connecting"
    retry_in_s: float = 0.0
    attempts: int = 0
    endpoint: str = ""
    elevation_threshold: int = 30
    critical_threshold: int = 60
    events: list[Any] | None = None  # storage event rows, newest first
    events_note: str | None = None  # why there are none (no database yet, locked, ...)
    last_pause: Any | None = None
    workers: list[m.WorkerStatus] | None = None
    supervisor_note: str | None = None
    mode: Literal["main", "events"] = "main"
    keys_hint: bool = True
    width: int = 160  # console width: narrow terminals get panels stacked, not squeezed


def level(score: int, view: WatchView) -> tuple[str, str]:
    """(word, style) of a score against the gauge thresholds."""
    if score >= view.critical_threshold:
        return "critical", "bold red"
    if score >= view.elevation_threshold:
        return "elevated", "yellow"
    return "ok", "green"


def gauge(score: int, view: WatchView) -> Text:
    word, style = level(score, view)
    filled = round(GAUGE_WIDTH * min(max(score, 0), 100) / 100)
    text = Text()
    text.append(f"{score:3d} ", style=f"bold {style}")
    text.append("█" * filled, style=style)
    text.append("░" * (GAUGE_WIDTH - filled), style="dim")
    text.append(f" {word}", style=style)
    return text


def stress_parts(stress: dict[str, int], view: WatchView, limit: int = 8) -> Text:
    """The pressure model's stress per resource, highest first ("cpu 45  io 12  memory 0").
    Resource names come off the wire: inert like any other received text."""
    text = Text()
    for name, value in sorted(stress.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]:
        if text:
            text.append("  ")
        _, style = level(value, view)
        text.append_text(fmt.safe(name, limit=12))
        text.append(f" {value}", style=style)
    return text


# --------------------------------------------------------------------------- panels


def _stress_panel(view: WatchView) -> Panel:
    feed = view.feed
    latest = feed.latest
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    if latest is None:
        grid.add_row("score", Text("no samples yet", style="dim"))
    else:
        grid.add_row("score", gauge(latest.max_score, view))
        if latest.stress:
            grid.add_row("parts", stress_parts(latest.stress, view))
    tier = feed.tier
    if tier is not None:
        since = f" for {fmt.human_seconds(view.now - tier.tier_since)}" if tier.tier_since else ""
        tier_text = Text(f"{tier.tier} ({TIER_NAMES.get(tier.tier, '?')}){since}")
        if tier.tier > 1 and tier.peak_score:
            tier_text.append(f", peak {tier.peak_score}")
        grid.add_row("tier", tier_text)
    if latest is not None:
        grid.add_row("processes", Text(f"{latest.process_count}"))
    grid.add_row("buffer", Text(f"{len(feed.ring)} samples"))
    scores = feed.max_scores()
    if scores:
        spark = Text(fmt.sparkline(scores, width=40))
        spark.append(f"  max {max(scores)}", style="dim")
        grid.add_row("history", spark)
    return Panel(grid, title="stress", title_align="left")


def _sentinel_panel(view: WatchView) -> Panel:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    stats = view.feed.latest_sentinel()
    if stats is None:
        grid.add_row("latency", Text("no sentinel data", style="dim"))
    else:
        grid.add_row(
            "latency",
            Text(f"p50 {stats.p50_ms:.1f} ms  p99 {stats.p99_ms:.1f} ms  max {stats.max_ms:.1f} ms"),
        )
        grid.add_row("window", Text(f"{stats.ticks} ticks of {stats.tick_ms:g} ms over {stats.window_s:g} s"))
        grid.add_row("pauses", Text(f"{stats.pauses} since the collector started"))
    pause = view.last_pause
    if pause is not None:
        text = Text(f"{fmt.timestamp(_get(pause, 'start'))}, {fmt.human_ms(_get(pause, 'duration_ms'))}")
        cause = _get(pause, "cause")
        if cause:
            text.append(", cause ")
            text.append_text(fmt.safe(cause))
        ago = view.now - (_get(pause, "start") or view.now)
        text.append(f" ({fmt.human_seconds(ago)} ago)", style="dim")
        grid.add_row("last pause", text)
    else:
        grid.add_row("last pause", Text("none recorded", style="dim"))
    return Panel(grid, title="pause sentinel", title_align="left")


def rogue_table(rogues: list[m.ProcessScore], view: WatchView, rows: int = ROGUE_ROWS) -> Table:
    table = Table(title="rogue processes", title_justify="left", expand=False, show_edge=False)
    table.add_column("command", no_wrap=True, max_width=40, overflow="ellipsis")
    table.add_column("pid", justify="right")
    table.add_column("score", justify="right")
    table.add_column("cpu %", justify="right")
    table.add_column("mem", justify="right")
    table.add_column("page-ins/s", justify="right")
    table.add_column("state")
    table.add_column("categories")
    for proc in sorted(rogues, key=lambda p: p.score, reverse=True)[:rows]:
        _, style = level(proc.score, view)
        table.add_row(
            fmt.safe(proc.command, limit=40),
            str(proc.pid),
            Text(str(proc.score), style=style),
            fmt.number(proc.cpu),
            fmt.human_bytes(proc.mem),
            fmt.number(proc.pageins),
            Text(proc.state, style="bold red" if proc.state in ("stuck", "zombie") else ""),
            Text(",".join(proc.categories)),
        )
    if not rogues:
        table.add_row(Text("no rogue processes", style="dim"), "", "", "", "", "", "", "")
    return table


def events_table(view: WatchView, rows: int) -> RenderableType:
    if view.events is None or (not view.events and view.events_note):
        return Panel(fmt.safe(view.events_note or "no database"), title="recent events", title_align="left")
    if not view.events:  # one line, not eight empty columns squeezed to "durat…" beside the workers
        table = Table(title="recent events", title_justify="left", show_edge=False, show_header=False)
        table.add_column()
        table.add_row(Text("no events recorded yet", style="dim"))
        return table
    table = Table(title="recent events", title_justify="left", show_edge=False)
    for name, justify in (("id", "right"), ("start", "left"), ("duration", "right"), ("peak", "right"),
                          ("tier", "right"), ("status", "left"), ("top culprit", "left"), ("pauses", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for event in view.events[:rows]:
        start, end = _get(event, "start"), _get(event, "end")
        if end is not None:
            duration = fmt.human_ms(_get(event, "duration_ms"))  # measured, not end - start
        else:
            duration = (fmt.human_seconds(view.now - start) if start else fmt.MISSING) + " (open)"
        peak = _get(event, "peak_score") or 0
        _, style = level(peak, view)
        table.add_row(
            str(_get(event, "id")),
            fmt.timestamp(start),
            duration,
            Text(str(peak), style=style),
            str(_get(event, "peak_tier") or fmt.MISSING),
            fmt.safe(_get(event, "status") or ""),
            fmt.safe(NO_LOCAL_CULPRIT if _get(event, "no_local_culprit") else _get(event, "top_culprit") or "",
                     limit=32),
            str(_get(event, "pause_count") or 0),
        )
    return table


def workers_table(view: WatchView) -> RenderableType:
    if not view.workers:
        return Panel(fmt.safe(view.supervisor_note or "supervisor not answering"), title="workers",
                     title_align="left")
    table = Table(title="workers", title_justify="left", show_edge=False)
    for name in ("worker", "state", "pid", "restarts", "heartbeat"):
        table.add_column(name, no_wrap=True)
    for w in view.workers:
        style = {"running": "green", "backoff": "yellow", "failed": "bold red"}.get(w.state, "")
        table.add_row(
            fmt.safe(w.name),
            Text(w.state, style=style),
            str(w.pid) if w.pid else fmt.MISSING,
            str(w.restarts),
            fmt.MISSING if w.last_heartbeat_age_s is None else f"{w.last_heartbeat_age_s:.1f} s ago",
        )
    return table


def _status_line(view: WatchView) -> Text:
    feed = view.feed
    text = Text()
    text.append("pause-monitor", style="bold")
    text.append(f"  {fmt.timestamp(view.now)}  ")
    if view.link == "live":
        text.append("live", style="green")
        if feed.updates or feed.snapshots > 1:
            text.append(f"  {feed.updates} updates, {feed.gaps} missed, {feed.snapshots} snapshots")
        else:
            text.append(f"  snapshot of {len(feed.ring)} samples")
    elif view.link == "connecting":
        text.append("connecting…", style="yellow")
    else:
        text.append("pipeline not running", style="bold red")
    return text


def not_running(view: WatchView) -> Panel:
    text = Text()
    text.append("The pipeline is not running", style="bold red")
    text.append(": tiering did not answer at ")
    text.append_text(fmt.safe(view.endpoint or "its snapshot endpoint"))
    text.append(".\nStart it with `pmctl up` (or `pmctl install` to run it at login).")
    if view.retry_in_s > 0:
        text.append(f"\nRetrying in {view.retry_in_s:.0f} s (attempt {view.attempts}).", style="dim")
    if view.feed.latest is not None and view.feed.last_update_wall is not None:
        text.append(
            f"\nLast sample {fmt.human_seconds(view.now - view.feed.last_update_wall)} ago; "
            "showing it below.",
            style="dim",
        )
    return Panel(text, title="not running", title_align="left", border_style="red")


def render(view: WatchView) -> RenderableType:
    parts: list[RenderableType] = [_status_line(view)]
    if view.link == "down":
        parts.append(not_running(view))
    top = _side_by_side(view, _stress_panel(view), _sentinel_panel(view))
    if view.mode == "events":
        parts.extend([top, events_table(view, rows=20)])
    else:
        latest = view.feed.latest
        parts.append(top)
        if latest is not None or view.link != "down":
            parts.append(rogue_table(latest.rogues if latest else [], view))
        parts.append(_side_by_side(view, events_table(view, rows=5), workers_table(view)))
    if view.keys_hint:
        parts.append(Text("q quit · e " + ("back" if view.mode == "events" else "events") + " · r refresh",
                          style="dim"))
    return Group(*parts)


def _side_by_side(view: WatchView, left: RenderableType, right: RenderableType) -> RenderableType:
    if view.width < 120:
        return Group(left, right)
    grid = Table.grid(padding=(0, 2))
    grid.add_column()
    grid.add_column()
    grid.add_row(left, right)
    return grid


def _get(row: Any, name: str) -> Any:
    """A field of a storage row, whether it is an object or a mapping."""
    if isinstance(row, dict):
        return row.get(name)
    return getattr(row, name, None)
