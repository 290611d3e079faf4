"""Pictures of stored events and pauses: pure functions from storage results to rich renderables.

Process names, notes, paths and causes come from the database, which got them from processes that
may have chosen them to attack a terminal: every one goes through ``format.safe`` into a ``Text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cli import format as fmt
from cli.event_rows import culprit_parts
from cli.event_rows import duration_text as _duration

TIER_NAMES = {1: "normal", 2: "elevated", 3: "critical"}


@dataclass(frozen=True)
class Levels:
    """The gauge thresholds (config.sampling): green below elevated, yellow below critical, red."""

    elevated: int = 30
    critical: int = 60

    def style(self, score: int | None) -> str:
        if score is None:
            return ""
        if score >= self.critical:
            return "bold red"
        if score >= self.elevated:
            return "yellow"
        return "green"




def _status(status: str) -> Text:
    style = {"unreviewed": "bold", "pinned": "cyan", "dismissed": "dim"}.get(status, "")
    return Text(fmt.clean(status), style=style)


# --------------------------------------------------------------------------- events


def events_table(events: Sequence[Any], now: float, levels: Levels) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("start", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("peak", justify="right", no_wrap=True)
    table.add_column("tier", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("top culprit", no_wrap=True, max_width=48, overflow="ellipsis")
    table.add_column("pauses", justify="right", no_wrap=True)
    for e in events:
        name, pid, cats = culprit_parts(e)
        culprit = Text(name, style="dim" if getattr(e, "no_local_culprit", False) else "")
        culprit.append(pid, style="dim")
        culprit.append(cats)
        table.add_row(
            str(e.id),
            fmt.timestamp(e.start),
            _duration(e, now),
            Text(str(e.peak_score), style=levels.style(e.peak_score)),
            str(e.peak_tier),
            _status(e.status),
            culprit,
            str(e.pause_count),
        )
    return table


def rogue_rows(title: str, rogues: Sequence[Any], levels: Levels, limit: int = 10) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name, justify in (("command", "left"), ("pid", "right"), ("score", "right"), ("cpu %", "right"),
                          ("mem", "right"), ("page-ins/s", "right"), ("state", "left"), ("categories", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for p in sorted(rogues, key=lambda r: r.score, reverse=True)[:limit]:
        table.add_row(
            fmt.safe(p.command, limit=48),
            str(p.pid),
            Text(str(p.score), style=levels.style(p.score)),
            fmt.number(p.cpu),
            fmt.human_bytes(p.mem),
            fmt.number(p.pageins),
            fmt.clean(p.state),
            ",".join(p.categories),
        )
    return table


@dataclass
class _Seen:
    command: str
    pid: int
    max_score: int
    samples: int
    categories: set[str]


def continuous_rows(samples: Sequence[Any], levels: Levels, limit: int = 10) -> Table:
    """Who kept showing up in the tier-3 (continuous) samples: best score and how often."""
    seen: dict[tuple[int, str], _Seen] = {}
    for stored in samples:
        for p in stored.samples.rogues:
            entry = seen.setdefault((p.pid, p.command), _Seen(p.command, p.pid, 0, 0, set()))
            entry.max_score = max(entry.max_score, p.score)
            entry.samples += 1
            entry.categories.update(p.categories)
    table = Table(title=f"continuous samples ({len(samples)}): processes seen", title_justify="left",
                  show_edge=False, pad_edge=False)
    for name, justify in (("command", "left"), ("pid", "right"), ("max score", "right"),
                          ("samples", "right"), ("categories", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in sorted(seen.values(), key=lambda s: (s.max_score, s.samples), reverse=True)[:limit]:
        table.add_row(fmt.safe(s.command, limit=48), str(s.pid),
                      Text(str(s.max_score), style=levels.style(s.max_score)),
                      str(s.samples), ",".join(sorted(s.categories)))
    return table


def tally_rows(culprits: Sequence[Any], levels: Levels) -> Table:
    """Who the event is about: each process's scores summed over all of the event's samples
    (tiering's tally), which the event is named after."""
    table = Table(title="over the whole event: scores summed over its samples", title_justify="left",
                  show_edge=False, pad_edge=False)
    for name, justify in (("command", "left"), ("pid", "right"), ("summed", "right"), ("peak", "right"),
                          ("samples", "right"), ("categories", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for c in culprits:
        table.add_row(fmt.safe(c.command, limit=48), str(c.pid), str(c.score_sum),
                      Text(str(c.peak), style=levels.style(c.peak)), str(c.samples), ",".join(c.categories))
    return table


def event_detail(detail: Any, now: float, levels: Levels, width: int = 100) -> RenderableType:
    e = detail.event
    parts: list[RenderableType] = []
    head = Text()
    head.append(f"event {e.id}", style="bold")
    head.append(f"  {fmt.timestamp(e.start)} → {fmt.timestamp(e.end) if e.end else 'now'}  ")
    head.append(_duration(e, now))
    parts.append(head)
    line = Text("peak ")
    line.append(str(e.peak_score), style=levels.style(e.peak_score))
    line.append(f", tier {e.peak_tier} ({TIER_NAMES.get(e.peak_tier, '?')}), status ")
    line.append_text(_status(e.status))
    line.append(f", {len(detail.samples)} samples, {len(detail.pauses)} pauses")
    parts.append(line)
    key = Text("key ", style="dim")
    key.append_text(fmt.safe(e.event_key))
    parts.append(key)
    if e.culprits:
        parts.append(Text(""))
        parts.append(tally_rows(e.culprits, levels))

    if detail.samples:
        scores = [s.max_score for s in detail.samples]
        spark = Text("timeline ")
        spark.append(fmt.sparkline(scores, width=max(10, min(width - 30, 80))))
        spark.append(f"  min {min(scores)} max {max(scores)}", style="dim")
        parts.append(spark)
        peak = max(detail.samples, key=lambda s: (s.max_score, -s.timestamp))
        parts.append(Text(""))
        parts.append(rogue_rows(
            f"peak sample {fmt.timestamp(peak.timestamp)} (max score {peak.max_score}, tier {peak.tier}): "
            "top processes", peak.samples.rogues, levels))
        continuous = [s for s in detail.samples if s.tier == 3]
        if continuous:
            parts.append(Text(""))
            parts.append(continuous_rows(continuous, levels))
    else:
        parts.append(Text("no samples recorded for this event", style="dim"))

    parts.append(Text(""))
    if detail.pauses:
        parts.append(pauses_table(detail.pauses, title="pauses during the event"))
        for p in detail.pauses:
            if p.bundle_path:
                parts.append(Text(f"pause {p.id} bundle: ").append_text(fmt.safe(p.bundle_path)))
    else:
        parts.append(Text("no pauses during this event", style="dim"))
    parts.append(Text(""))
    notes = Text("notes: ", style="bold")
    notes.append_text(fmt.safe(e.notes) if e.notes else Text("(none)", style="dim"))
    parts.append(notes)
    return Group(*parts)


# --------------------------------------------------------------------------- pauses


def _culprits(culprits: Sequence[Any], limit: int = 3) -> Text:
    text = Text()
    for i, c in enumerate(sorted(culprits, key=lambda c: c.score, reverse=True)[:limit]):
        if i:
            text.append(", ")
        text.append_text(fmt.safe(c.command, limit=32))
        text.append(f" ({c.score})", style="dim")
        if c.suspect:
            text.append(" suspect", style="yellow")
    return text if culprits else Text(fmt.MISSING)


def _forensics_state(p: Any, pending: str) -> Text:
    """The cause, "forensics failed: <why>" (no bundle could be written), or ``pending``."""
    error = getattr(p, "forensics_error", None)
    if error:
        return Text("forensics failed: ", style="red").append_text(fmt.safe(error, limit=60))
    return fmt.safe(p.cause or pending)


def pauses_table(pauses: Sequence[Any], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("start", no_wrap=True)
    table.add_column("stalled", justify="right", no_wrap=True)
    table.add_column("suspended", justify="right", no_wrap=True)
    table.add_column("cause", no_wrap=True)
    table.add_column("event", justify="right", no_wrap=True)
    table.add_column("top culprits", no_wrap=True, max_width=60, overflow="ellipsis")
    table.add_column("bundle", no_wrap=True)
    for p in pauses:
        table.add_row(
            str(p.id),
            fmt.timestamp(p.start),
            fmt.human_ms(p.duration_ms),
            fmt.human_ms(p.suspended_ms) if p.suspended_ms else fmt.MISSING,
            _forensics_state(p, "pending"),
            str(p.event_id) if p.event_id is not None else fmt.MISSING,
            _culprits(p.culprits),
            # The directory name identifies the bundle; full paths are listed by the callers that
            # need them (`pauses show`, `events show`), one per line so they can be copied.
            fmt.safe(p.bundle_path.rstrip("/").rsplit("/", 1)[-1] if p.bundle_path else fmt.MISSING),
        )
    return table


def _evidence_value(value: object) -> Text:
    """A figure as a reader wants it: 59.41, not 59.40594059405941; an unknown one as "-", not blank.
    (`--json` keeps the stored value whole.)"""
    if value is None:
        return Text(fmt.MISSING)
    if isinstance(value, float):
        return Text(fmt.number(value, 2))
    return fmt.safe(value)


def _cgroup_cell(cgroup: str | None, width: int = 40) -> Text:
    """A cgroup path by its end (the unit or container), the front elided when it is long."""
    if not cgroup:
        return Text(fmt.MISSING)
    text = fmt.clean(cgroup)
    return Text(text if len(text) <= width else "…" + text[-(width - 1):])


def pause_detail(p: Any, levels: Levels) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("pause", Text(f"{p.id}  ").append_text(fmt.safe(p.pause_id)))
    grid.add_row("start", fmt.timestamp(p.start))
    grid.add_row("stalled", f"{fmt.human_ms(p.duration_ms)} (tick expected every {fmt.human_ms(p.expected_ms)})")
    grid.add_row("suspended", fmt.human_ms(p.suspended_ms) + " (asleep, not counted)" if p.suspended_ms else "0")
    grid.add_row("event", str(p.event_id) if p.event_id is not None else "none (outside any event)")
    grid.add_row("cause", _forensics_state(p, "pending (no forensics yet)"))
    grid.add_row("bundle", fmt.safe(p.bundle_path or fmt.MISSING))
    parts: list[RenderableType] = [grid]
    if p.evidence:
        # A figure's "<name>_over" entry (the interval it covers, seconds from the pause start)
        # goes beside it rather than on a row of its own.
        overs = {k[: -len("_over")] for k in p.evidence if k.endswith("_over")} & set(p.evidence)
        ev = Table(title="evidence", title_justify="left", show_edge=False, pad_edge=False)
        ev.add_column("key", no_wrap=True)
        ev.add_column("value")
        if overs:
            ev.add_column("over (s from the pause start)")
        for k, v in sorted(p.evidence.items()):
            if k.endswith("_over") and k[: -len("_over")] in overs:
                continue
            cells = [fmt.safe(k), _evidence_value(v)]
            if overs:
                cells.append(fmt.safe(p.evidence[f"{k}_over"]) if k in overs else Text(""))
            ev.add_row(*cells)
        parts += [Text(""), ev]
    if p.culprits:
        table = Table(title="culprits", title_justify="left", show_edge=False, pad_edge=False)
        for name, justify in (("command", "left"), ("pid", "right"), ("score", "right"),
                              ("categories", "left"), ("cgroup", "left"), ("suspect", "left")):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for c in sorted(p.culprits, key=lambda c: c.score, reverse=True):
            table.add_row(fmt.safe(c.command, limit=48), str(c.pid),
                          Text(str(c.score), style=levels.style(c.score)),
                          ",".join(c.categories), _cgroup_cell(c.cgroup),
                          "yes" if c.suspect else "")
        parts += [Text(""), table]
    if p.artifacts:
        table = Table(title="captures", title_justify="left", show_edge=False, pad_edge=False)
        for name, justify in (("name", "left"), ("result", "left"), ("took", "right"),
                              ("size", "right"), ("file", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for a in p.artifacts:
            if not a.ran:
                result = Text("skipped: ").append_text(fmt.safe(a.skipped_reason or ""))
            elif a.ok:
                result = Text("ok" + (" (truncated)" if a.truncated else ""), style="green")
            else:
                result = Text("failed", style="red")
                if a.exit_code is not None:
                    result.append(f" (exit {a.exit_code})")
                if a.error:
                    result.append(": ").append_text(fmt.safe(a.error, limit=80))
            table.add_row(fmt.safe(a.name), result, fmt.human_ms(a.duration_ms),
                          fmt.human_bytes(a.bytes), fmt.safe(a.path or fmt.MISSING))
        parts += [Text(""), table]
    return Group(*parts)
