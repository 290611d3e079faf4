"""`pmctl history`: the machine second by second over a time window, as a table, JSON or CSV.

The window: ``--since``/``--until`` (ISO times or ages), ``--around pause:ID|event:ID`` (that
pause or event with ``--margin`` seconds either side), or the last ``--hours``. The rows come
from the flight record (every sample the recorder kept, issue 19: ``storage.FlightReader``).
A window the flight record does not cover (a database from before it) falls back to the samples
saved into events, shown as before.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cli.errors import USAGE, fail
from cli.events_cmd import SinceOpt, levels, parse_since_opt

FORMATS = ("table", "json", "csv")
CSV_FIELDS = ("time", "timestamp", "event_id", "tier", "action", "max_score", "process_count",
              "rogues", "top_command", "top_pid", "top_score", "top_cpu", "top_mem")
UntilOpt = Annotated[str | None, typer.Option("--until", help="Up to: an ISO time or an age like 10m (default: now).")]
AroundOpt = Annotated[str | None, typer.Option("--around", help="pause:ID or event:ID: that pause or event, with --margin either side.")]
MarginOpt = Annotated[float, typer.Option("--margin", min=0.0, max=86400.0, help="Seconds shown before and after --around.")]


def history(
    hours: Annotated[float, typer.Option("--hours", "-H", min=0.0, help="How far back to look.")] = 24.0,
    since: SinceOpt = None,
    until: UntilOpt = None,
    around: AroundOpt = None,
    margin: MarginOpt = 300.0,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many samples (oldest first; 0 = all).")] = 1000,
    plot: Annotated[bool, typer.Option("--plot", help="Charts of stress, PSI and sentinel lateness over the window (all of it: no --limit).")] = False,
) -> None:
    """The recorded seconds of a window: tier, score, cpu, load, PSI, paging, lateness, top process."""
    if output_format not in FORMATS:
        fail(f"unknown format {output_format!r}; use one of: {', '.join(FORMATS)}", USAGE)
    if around is not None and (since is not None or until is not None):
        fail("--around names the window itself; leave out --since/--until", USAGE)
    from cli.errors import open_db
    from pmshared import storage

    with open_db() as db:
        since_at, until_at = _window(db, hours, since, until, around, margin)
        if plot:
            return _plot(db, since_at, until_at)
        frames = storage.FlightReader(db).frames(since_at, until_at, limit=limit or None)
        if not frames:
            rows = storage.samples_in_window(db, since_at, until_at, limit=limit or None)
            if rows:
                return _event_samples(rows, output_format, since_at, limit)
    _frames(frames, output_format, since_at, until_at, limit)


def _window(db, hours: float, since: str | None, until: str | None, around: str | None,
            margin: float) -> tuple[float, float]:
    now = time.time()
    if around is not None:
        from pmshared import storage

        try:
            start, end = storage.mark_window(db, around)
        except ValueError as exc:
            fail(f"--around: {exc}", USAGE)
        return start - margin, end + margin
    since_at = parse_since_opt(since)
    until_at = now if until is None else _parse_until(until)
    if since_at is None:
        since_at = until_at - hours * 3600
    if until_at < since_at:
        fail("--until is before --since", USAGE)
    return since_at, until_at


def _parse_until(text: str) -> float:
    from cli.timespec import TimeSpecError, parse_since

    try:
        return parse_since(text)
    except TimeSpecError as exc:
        fail(f"--until: {exc}", USAGE)


def _frames(frames: list, output_format: str, since_at: float, until_at: float, limit: int) -> None:
    import sys

    from cli import format as fmt
    from cli import history_view as view

    if output_format == "json":
        print(view.json_text([view.json_row(f) for f in frames]))
        return
    if output_format == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(view.CSV_FIELDS)
        writer.writerows(view.csv_row(f) for f in frames)
        return
    if not frames:
        print(f"no samples recorded between {fmt.timestamp(since_at)} and {fmt.timestamp(until_at)} "
              "(the recorder keeps every sample while the pipeline runs: `pmctl up`)")
        return
    scores = [f.samples.max_score for f in frames]
    summary = (f"{len(frames)} samples from {fmt.timestamp(frames[0].timestamp)}, max score {max(scores)}  "
               + fmt.sparkline(scores, width=60))
    more = f"(first {limit}; --limit N or --limit 0 for more)" if limit and len(frames) == limit else None
    if not fmt.rich_wanted():
        # Pipes and NO_COLOR: aligned plain text, without paying for rich's import and layout.
        print(view.plain_table(frames))
        print(summary)
        if more:
            print(more)
        return
    console = fmt.console()
    console.print(view.table(frames, levels()))
    console.print(summary)
    if more:
        console.print(more, style="dim")


def _plot(db, since_at: float, until_at: float) -> None:
    """The whole window as charts (cli/history_plot.py); only the charted figures are read."""
    from cli.history_plot import show
    from pmshared import storage
    from pmshared.storage.flight_figures import figures_in_window, figures_span

    span = figures_span(db, since_at, until_at)
    if span is not None:  # streamed: a week of seconds is aggregated as it is read, never held
        return show(figures_in_window(db, since_at, until_at), span)
    show(storage.samples_in_window(db, since_at, until_at))  # before the flight record: events' samples


# --------------------------------------------------------------------------- before the flight record


def _event_samples(rows, output_format: str, since_at: float, limit: int) -> None:
    """Samples saved into events (tier 2 peaks, tier 3 continuous): a database from before v3."""
    from cli import format as fmt

    if output_format == "json":
        print(fmt.to_json(rows))
    elif output_format == "csv":
        _csv(rows)
    else:
        _table(rows, since_at, limit)


def _top(stored):
    return max(stored.samples.rogues, key=lambda r: r.score, default=None)


def _csv(rows) -> None:
    import csv
    import sys

    from cli import format as fmt

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for s in rows:
        top = _top(s)
        writer.writerow([
            fmt.iso(s.timestamp), f"{s.timestamp:.3f}", s.event_id, s.tier, s.action or "", s.max_score,
            s.samples.process_count, len(s.samples.rogues),
            fmt.csv_cell(top.command) if top else "", top.pid if top else "", top.score if top else "",
            "" if top is None or top.cpu is None else f"{top.cpu:.1f}", top.mem if top else "",
        ])


def _table(rows, since_at: float, limit: int) -> None:
    from rich.table import Table
    from rich.text import Text

    from cli import format as fmt

    console = fmt.console()
    lv = levels()
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("time", "left"), ("event", "right"), ("tier", "right"), ("score", "right"),
                          ("processes", "right"), ("top process", "left"), ("pid", "right"),
                          ("its score", "right"), ("cpu %", "right"), ("mem", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in rows:
        top = _top(s)
        table.add_row(
            fmt.timestamp(s.timestamp), str(s.event_id), str(s.tier),
            Text(str(s.max_score), style=lv.style(s.max_score)), str(s.samples.process_count),
            fmt.safe(top.command, limit=40) if top else Text(fmt.MISSING),
            str(top.pid) if top else fmt.MISSING, str(top.score) if top else fmt.MISSING,
            fmt.number(top.cpu) if top else fmt.MISSING, fmt.human_bytes(top.mem) if top else fmt.MISSING,
        )
    console.print(table)
    scores = [s.max_score for s in rows]
    line = Text(f"{len(rows)} samples since {fmt.timestamp(since_at)}, max score {max(scores)}  ")
    line.append(fmt.sparkline(scores, width=60))
    console.print(line)
    if limit and len(rows) == limit:
        console.print(f"(first {limit}; --limit N or --limit 0 for more)", style="dim")
