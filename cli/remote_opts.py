"""The `--connect` and `--server-key` options that `pmctl watch` and `pmctl status` share.

``resolve`` turns them into a ``pmshared.remote.Target`` (None without --connect: the local
pipeline, as before) or one line on stderr: a malformed URL, no client key yet, an unknown server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cli.errors import FAILURE, fail

if TYPE_CHECKING:
    from pmshared.remote import Target

# Events and pauses live in the watched machine's database, which remote watch does not carry.
REMOTE_DB_NOTE = "recent events and pauses are in the remote machine's database (`pmctl events` there)"

Connect = Annotated[
    Optional[str],
    typer.Option(
        "--connect", metavar="tcp://HOST:PORT",
        help="Watch another machine over CURVE-authenticated tcp (PORT: its remote.port_base; see `pmctl keys`).",
    ),
]
ServerKey = Annotated[
    Optional[str],
    typer.Option("--server-key", help="With --connect: the server's public key (default: `pmctl keys trust`'s record)."),
]


def resolve(connect: str | None, server_key: str | None) -> Target | None:
    if connect is None:
        if server_key is not None:
            fail("--server-key needs --connect", 2)
        return None
    from pmshared import remote

    try:
        return remote.target(connect, server_key)
    except remote.curve_keys.KeyFileError as exc:
        fail(str(exc), FAILURE)
