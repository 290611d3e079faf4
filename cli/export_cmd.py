"""`pmctl export --textfile DIR`: the exporter's figures for node_exporter's textfile collector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    textfile: Annotated[Path, typer.Option("--textfile", metavar="DIR", help="node_exporter's textfile directory: writes DIR/pause_monitor.prom atomically.")],
) -> None:
    """Write the exporter's figures (database totals, worker health, tier) for node_exporter."""
    from cli import clients
    from cli.errors import describe_db_error, fail, load_config
    from exporter import textfile as tf
    from pmshared import paths, storage

    config = load_config()
    if not textfile.is_dir():
        fail(f"--textfile {textfile}: not a directory")
    db_path = paths.db_path()
    try:
        state = tf.gather(db_path, lambda: clients.control("status", timeout_s=1.0, transport=config.transport),
                          lambda: clients.snapshot(timeout_s=1.0, transport=config.transport))
    except storage.StorageError as exc:
        fail(describe_db_error(exc, db_path))
    try:
        target = tf.write_atomically(textfile, tf.render(state))
    except OSError as exc:
        fail(f"cannot write into {textfile}: {exc.strerror or exc}")
    print(target)
