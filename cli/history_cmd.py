"""`pmctl history`: the samples recorded in a time window, as a table, JSON or CSV.

Only samples saved into events are recorded (tier 2 peaks and tier 3 continuous samples), so a
quiet machine has an empty history — that is the design, and the output says so.
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


def history(
    hours: Annotated[float, typer.Option("--hours", "-H", min=0.0, help="How far back to look.")] = 24.0,
    since: SinceOpt = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many samples (oldest first; 0 = all).")] = 1000,
    plot: Annotated[bool, typer.Option("--plot", help="Charts of stress, PSI and sentinel lateness over the window.")] = False,
) -> None:
    """Recorded samples of the last HOURS (or since --since): time, event, tier, score, top process."""
    if output_format not in FORMATS:
        fail(f"unknown format {output_format!r}; use one of: {', '.join(FORMATS)}", USAGE)
    now = time.time()
    since_at = parse_since_opt(since)
    if since_at is None:
        since_at = now - hours * 3600
    from cli import format as fmt
    from cli.errors import open_db
    from pmshared import storage

    with open_db() as db:
        rows = storage.samples_in_window(db, since_at, limit=limit or None)
    if plot:  # the charts live in history_plot (issue 19)
        from cli.history_plot import show

        show(rows)
    elif output_format == "json":
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
    if not rows:
        console.print(f"no samples recorded since {fmt.timestamp(since_at)} "
                      "(samples are recorded only while the machine is elevated or critical)")
        return
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
