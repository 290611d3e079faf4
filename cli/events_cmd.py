"""`pmctl events` (list), `events show ID`, `events mark ID --status S`, `events export ID -o F`.

Only typer is imported at module level; rich, apsw and msgspec are imported by the command that
runs, so `pmctl events` over a large database still answers in well under 300 ms.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import FAILURE, USAGE, fail

app = typer.Typer(
    help="List, inspect, triage and export recorded events (escalation episodes).",
    invoke_without_command=True,
    no_args_is_help=False,
)

STATUSES = ("unreviewed", "reviewed", "pinned", "dismissed")  # storage.STATUSES, without importing it

StatusOpt = Annotated[str | None, typer.Option("--status", "-s", help="Only events with this status: " + ", ".join(STATUSES) + ".")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many (newest first; 0 = all).")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Started at or after: 2024-05-01, 2024-05-01T14:00, or an age: 30m, 2h, 1d.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def check_status(status: str) -> str:
    if status not in STATUSES:
        fail(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}", USAGE)
    return status


def parse_id(text: str, what: str = "event") -> int:
    try:
        value = int(text.strip())
    except ValueError:
        fail(f"{what} id must be a number, got {text!r} (see `pmctl {what}s`)", USAGE)
    if value < 1:
        fail(f"{what} id must be positive, got {value}", USAGE)
    return value


def parse_since_opt(text: str | None) -> float | None:
    if text is None:
        return None
    from cli.timespec import TimeSpecError, parse_since

    try:
        return parse_since(text)
    except TimeSpecError as exc:
        fail(f"--since: {exc}", USAGE)


def levels():
    """Gauge thresholds from the config (a broken config is reported, not silently replaced)."""
    from cli.errors import load_config
    from cli.events_view import Levels

    cfg = load_config()
    return Levels(cfg.sampling.elevation_threshold, cfg.sampling.critical_threshold)


@app.callback()
def events(
    ctx: typer.Context,
    status: StatusOpt = None,
    limit: LimitOpt = 20,
    since: SinceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List events newest first: id, start, duration, peak score and tier, status, top culprit, pauses."""
    if ctx.invoked_subcommand is not None:
        return
    if status is not None:
        check_status(status)
    since_at = parse_since_opt(since)
    from cli import format as fmt
    from cli.errors import open_db
    from pmshared import storage

    with open_db() as db:
        rows = storage.list_events(db, limit=limit or None, status=status, since=since_at)
    if as_json:
        print(fmt.to_json(rows))
        return
    if not rows:
        print("no events" + (f" with status {status}" if status else "") + (" in that window" if since else ""))
        return
    more = f"(newest {limit}; --limit N or --limit 0 for more)" if limit and len(rows) == limit else None
    if not fmt.rich_wanted():
        # Pipes and NO_COLOR: aligned plain text, without paying for rich's import and layout.
        from cli.event_rows import events_plain

        print(events_plain(rows, time.time()))
        if more:
            print(more)
        return
    from cli.events_view import events_table

    console = fmt.console()
    console.print(events_table(rows, time.time(), levels()))
    if more:
        console.print(more, style="dim")


@app.command()
def show(
    event_id: Annotated[str, typer.Argument(metavar="ID", help="Event id (from `pmctl events`).")],
    as_json: JsonOpt = False,
) -> None:
    """One event: score timeline, peak and continuous samples' top processes, pauses, notes."""
    ident = parse_id(event_id)
    from cli import format as fmt
    from cli.errors import read_one
    from pmshared import storage

    detail = read_one(storage.get_event, ident, f"no event with id {ident} (see `pmctl events`)")
    if as_json:
        print(fmt.to_json(detail))
        return
    from cli.events_view import event_detail

    console = fmt.console()
    console.print(event_detail(detail, time.time(), levels(), width=console.width))


@app.command()
def mark(
    event_id: Annotated[str, typer.Argument(metavar="ID", help="Event id.")],
    status: Annotated[str, typer.Option("--status", "-s", help="One of: " + ", ".join(STATUSES) + ".")],
    notes: Annotated[str | None, typer.Option("--notes", help="Replace the notes ('' clears them).")] = None,
) -> None:
    """Triage an event: reviewed, pinned (never pruned), dismissed, or back to unreviewed."""
    ident = parse_id(event_id)
    check_status(status)
    from cli import format as fmt
    from cli.errors import open_db
    from pmshared import storage

    with open_db(readonly=False) as db:
        event = storage.set_status(db, ident, status, notes)
    line = f"event {event.id}: {event.status}"
    if notes is not None:
        line += ", notes " + ("cleared" if not notes else "saved")
    print(fmt.clean(line))


@app.command()
def export(
    event_id: Annotated[str, typer.Argument(metavar="ID", help="Event id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Archive to write (.tar.gz).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the event, its samples and its pauses' forensics bundles into one .tar.gz."""
    ident = parse_id(event_id)
    from cli import event_export
    from cli import format as fmt
    from cli.errors import open_db
    from pmshared import paths, storage

    if output.exists() and not force:
        fail(f"{output} already exists; pass --force to overwrite it")
    with open_db() as db:
        detail = storage.get_event(db, ident)
        history = event_export.history_rows(db, detail.event) if detail is not None else []
    if detail is None:
        fail(f"no event with id {ident} (see `pmctl events`)")
    try:
        summary = event_export.write_archive(detail, output, bundle_root=paths.events_dir(), history=history)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", FAILURE)
    print(fmt.clean(f"wrote {output}: event {ident}, {summary.samples} samples, "
                    f"{summary.pauses} pauses, {summary.bundles} bundles ({summary.files} files), "
                    f"{summary.history} s of history"))
    for note in summary.skipped:
        print(fmt.clean(f"  skipped {note}"))
