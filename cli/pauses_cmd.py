"""`pmctl pauses` and `pmctl pauses show ID`: every pause the sentinel recorded, with its forensics.

Most pauses happen outside any event; this is the list a user opens after "my machine just froze".
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.events_cmd import JsonOpt, SinceOpt, levels, parse_since_opt

app = typer.Typer(help="List and inspect recorded pauses.", invoke_without_command=True, no_args_is_help=False)


@app.callback()
def pauses(
    ctx: typer.Context,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many (newest first; 0 = all).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List pauses newest first: when, how long, time suspended, cause, culprits, bundle."""
    if ctx.invoked_subcommand is not None:
        return
    since_at = parse_since_opt(since)
    from cli import format as fmt
    from cli.errors import open_db
    from pmshared import storage

    with open_db() as db:
        rows = storage.list_pauses(db, since=since_at, limit=limit or None)
    if as_json:
        print(fmt.to_json(rows))
        return
    console = fmt.console()
    if not rows:
        console.print("no pauses recorded" + (" in that window" if since else ""))
        return
    from cli.events_view import pauses_table

    console.print(pauses_table(rows))
    if limit and len(rows) == limit:
        console.print(f"(newest {limit}; --limit N or --limit 0 for more)", style="dim")


@app.command()
def show(
    pause_id: Annotated[str, typer.Argument(metavar="ID", help="Pause id (the number from `pmctl pauses`).")],
    as_json: JsonOpt = False,
) -> None:
    """One pause: duration, suspended time, cause and evidence, culprits, captures and bundle path."""
    from cli import format as fmt
    from cli.errors import read_one
    from pmshared import storage

    key: int | str = int(pause_id) if pause_id.strip().isdigit() else pause_id
    pause = read_one(storage.get_pause, key, f"no pause with id {pause_id!r} (see `pmctl pauses`)")
    if as_json:
        print(fmt.to_json(pause))
        return
    from cli.events_view import pause_detail

    fmt.console().print(pause_detail(pause, levels()))
