"""`pmctl keys generate|show|allow|trust`: the CURVE keys of remote watch (pmshared.curve_keys).

A machine that serves ([remote] enabled) needs its server keypair and the public keys of the
clients it allows; a machine that watches needs its client keypair and the server key of each
machine it connects to. One `generate` makes both pairs; the public keys are what people copy.

A key may start with '-' (a Z85 character), which a command line takes for an option: the hints
this tool prints, and its README, put `--` before a key.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli.errors import FAILURE, fail

app = typer.Typer(help="CURVE keys for remote watch (`pmctl watch --connect`).", no_args_is_help=True)

Role = Annotated[Optional[str], typer.Option("--role", help="Only this keypair's public key, bare: server or client.")]


def _keys():
    from pmshared import curve_keys

    return curve_keys


def _or_fail(action):
    curve_keys = _keys()
    try:
        return action()
    except curve_keys.KeyFileError as exc:
        fail(str(exc), FAILURE)
    except OSError as exc:
        fail(f"{curve_keys.keys_dir()}: {exc.strerror or exc}", FAILURE)


@app.command()
def generate(
    force: Annotated[bool, typer.Option(
        "--force", help="Replace existing keypairs (clients and servers must be told the new keys).")] = False,
) -> None:
    """Create this machine's server and client keypairs (kept if they exist; files 0600)."""
    curve_keys = _keys()
    for role in curve_keys.ROLES:
        pair, made = _or_fail(lambda role=role: curve_keys.generate(role, force=force))
        what = "created" if made else "kept existing"
        typer.echo(f"{role} key {what}: {pair.public}  ({curve_keys.public_path(role)})")


@app.command()
def show(role: Role = None) -> None:
    """Print this machine's public keys (server: for clients to trust; client: for servers to allow)."""
    curve_keys = _keys()
    if role is not None and role not in curve_keys.ROLES:
        fail("--role: server or client", 2)
    if role is not None:
        typer.echo(_or_fail(lambda: curve_keys.load_public(role)))
        return
    for each in curve_keys.ROLES:
        typer.echo(f"{each} {_or_fail(lambda each=each: curve_keys.load_public(each))}")


@app.command()
def allow(
    key: Annotated[str, typer.Argument(help="The client's public key (`pmctl keys show --role client` there); after `--`, as it may start with '-'.")],
    name: Annotated[Optional[str], typer.Option(
        "--name", help="File name for it in allowed_clients/ (default from the key).")] = None,
) -> None:
    """Allow a client to watch this machine over remote watch (takes effect at its next connection)."""
    path = _or_fail(lambda: _keys().allow(key, name))
    typer.echo(f"allowed: {path}")


@app.command()
def trust(
    host: Annotated[str, typer.Argument(help="The server's host as you will write it in --connect tcp://HOST:PORT.")],
    key: Annotated[str, typer.Argument(help="Its server public key (`pmctl keys show --role server` there); after `--`, as it may start with '-'.")],
) -> None:
    """Remember a server's public key for `pmctl watch/status --connect tcp://HOST:PORT`."""
    curve_keys = _keys()
    _or_fail(lambda: curve_keys.trust(host, key))
    typer.echo(f"trusted {host}: {curve_keys.known_servers_path()}")
