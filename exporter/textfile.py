"""``pmctl export --textfile DIR``: the exporter's figures as a file for node_exporter's textfile
collector (``--collector.textfile.directory``), for machines that would rather not open a port.

The figures come from where the exporter gets them, asked once: the database's totals (pauses by
cause, their durations, events by peak tier), the supervisor's status (workers up, restarts,
drops, CPU) and tiering's snapshot (tier, stress) when the monitor runs. The live-only series
(sentinel lateness, culprit seconds, missed live messages) need the running exporter and are left
out. The file is written whole or not at all: a temporary file in the same directory, named so
the collector ignores it (it reads ``*.prom`` only), fsynced, made 0644, then renamed over
``pause_monitor.prom``. Label values are made inert and escaped by prometheus_client, so a hostile
process name cannot add a line or a series.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

FILENAME = "pause_monitor.prom"


def render(state) -> bytes:
    from prometheus_client import generate_latest

    from exporter.families import registry_for

    return generate_latest(registry_for(state, live=False))


def gather(db_path: Path, status: Callable[[], object], snapshot: Callable[[], object]):
    """An ExporterState filled from the database (if there is one) and the running monitor (if it
    answers). Raises ``storage.StorageError`` for a database that exists but cannot be read."""
    from exporter.dbtotals import DbTotals, open_database
    from exporter.state import ExporterState

    state = ExporterState()
    if db_path.exists():
        conn = open_database(db_path)
        try:
            DbTotals(state).read(conn, time.time())
        finally:
            conn.close()
    if (reply := status()) is not None:
        state.on_status(reply)
    if (snap := snapshot()) is not None:
        state.on_snapshot(snap)
    return state


def write_atomically(directory: Path, body: bytes, name: str = FILENAME) -> Path:
    """``directory/name`` replaced by ``body`` in one rename; raises OSError (nothing left behind)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        target = directory / name
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
