"""The `pmctl` entry point: one typer app; each command group lives in its own module."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pmshared import __version__
from pmshared.paths import PathError
from pmshared.safetext import inert

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
from cli import config_cmd, doctor_cmd, events_cmd, history_cmd, pauses_cmd, prune_cmd, service_cmd, watch_cmd  # noqa: E402
from cli import export_cmd  # noqa: E402

app.command()(watch_cmd.watch)
app.add_typer(events_cmd.app, name="events")
app.add_typer(pauses_cmd.app, name="pauses")
app.command()(history_cmd.history)
app.command()(prune_cmd.prune)
app.command()(doctor_cmd.doctor)
app.add_typer(config_cmd.app, name="config")
app.command()(service_cmd.install)
app.command()(service_cmd.uninstall)
app.command()(export_cmd.export)

from cli import keys_cmd  # noqa: E402 - remote watch's CURVE keys

app.add_typer(keys_cmd.app, name="keys")

from cli import replay_cmd  # noqa: E402 - the flight record, stepped through like watch (issue 19)

app.command()(replay_cmd.replay)


def run() -> None:
    """`pmctl`: typer's own handling, except that a usage mistake (a bad option value, an unknown
    option or command) is one line on stderr and exit code 2, not a framed usage box."""
    # typer 0.28 (pinned) vendors click; its exceptions are not re-exported under these names.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(prog_name="pmctl", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `pmctl` alone: the help, as before
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "pmctl"
        # The message may quote what was typed: inert, like every text from outside.
        print(f"error: {inert(where)}: {inert(exc.format_message())} (see `{inert(where)} --help`)", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except ClickException as exc:
        print(f"error: {inert(exc.format_message())}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        raise SystemExit(1) from None
    except PathError as exc:
        # A directory pause-monitor needs is unusable (e.g. another user's runtime dir after `su`):
        # one line naming it, from whichever command met it first.
        print(f"error: {inert(str(exc))}", file=sys.stderr)
        raise SystemExit(1) from None
    # Without standalone mode typer returns the exit code of a typer.Exit, or the command's value.
    raise SystemExit(code if isinstance(code, int) else 0)
