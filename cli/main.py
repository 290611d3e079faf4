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


def run() -> None:
    app()
