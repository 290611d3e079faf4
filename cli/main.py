"""The `pmctl` entry point: one typer app; each command group lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from pmshared import __version__

app = typer.Typer(
    name="pmctl",
    help="pause-monitor: find out why the machine froze, and who did it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pmctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """pause-monitor: find out why the machine froze, and who did it."""


from cli import up_cmd  # noqa: E402 - up/down/status (the supervisor)

up_cmd.register(app)

# Commands for people (each module imports only typer at import time: `pmctl events` starts fast).
from cli import config_cmd, events_cmd, history_cmd, pauses_cmd, prune_cmd, service_cmd, watch_cmd  # noqa: E402

app.command()(watch_cmd.watch)
app.add_typer(events_cmd.app, name="events")
app.add_typer(pauses_cmd.app, name="pauses")
app.command()(history_cmd.history)
app.command()(prune_cmd.prune)
app.add_typer(config_cmd.app, name="config")
app.command()(service_cmd.install)
app.command()(service_cmd.uninstall)


def run() -> None:
    app()
