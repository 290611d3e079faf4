"""What the recorder does with a corrupt database: move it aside and go on in a fresh one.

Recording is what this product exists for, so a damaged ``data.db`` (random bytes, a torn
header, a bad page in the middle) must not stop it: the file is kept (``data.db.corrupt-<time>``,
with its -wal/-shm), a new database takes its place, and the records in hand are written there.
Records can create their own events (see pmshared.storage), so nothing in hand is lost.

At its start the recorder also runs the bounded check `pmctl up` runs (``check_at_start``), so a
restart (after a crash, or started on its own) finds damage before a write meets it.

Bounded: a database found corrupt again within ``min_interval_s`` of the last move means the
trouble is not the file (a failing disk, something rewriting it); moving file after file aside
would only hide that, so the error is left to propagate and the recorder exits with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from pmshared import storage
from pmshared.safetext import inert

MIN_INTERVAL_S = 60.0


class SetAside:
    """``__call__(exc) -> bool``: True when the corrupt database was moved aside (open a fresh
    one and retry), False when the caller must give up."""

    def __init__(self, db_path: Path, log: logging.Logger, *, min_interval_s: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db_path = db_path
        self.log = log
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.moved: list[Path] = []
        self._last_at: float | None = None

    def __call__(self, exc: storage.StorageError) -> bool:
        now = self.clock()
        if self._last_at is not None and now - self._last_at < self.min_interval_s:
            self.log.error("%s again %.0f s after the last one was moved aside; giving up",
                           inert(str(exc), 300), now - self._last_at)
            return False
        try:
            target = storage.quarantine(self.db_path)
        except OSError as err:
            self.log.error("%s; cannot move it aside: %s", inert(str(exc), 300), err.strerror or err)
            return False
        self._last_at = now
        self.moved.append(target)
        self.log.error("%s; moved it aside to %s and started a new database (the old one is kept)",
                       inert(str(exc), 300), target)
        return True


def check_at_start(db_path: Path, corrupt: Callable[[storage.DatabaseCorrupt], None],
                   log: logging.Logger) -> None:
    """The bounded quick_check; a corrupt database goes to ``corrupt`` (BatchWriter.corrupt).
    Anything else the check meets (busy, no permission) is left to the writer's own open."""
    try:
        if not db_path.is_file():
            return
        result = storage.check(db_path)
    except (OSError, storage.StorageError):
        return
    if not result.complete:
        log.info("database check stopped after %.1f s (its budget); the part read was sound", result.seconds)
    if result.corrupt is not None:
        corrupt(storage.DatabaseCorrupt(result.corrupt, db_path))
