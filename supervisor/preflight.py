"""What `pmctl up` checks before it starts any worker: the data directory and the database.

- The data directory is made private (0700) and the database with its -wal/-shm 0600, also for an
  install from before they were (the bundles already were).
- The database gets a bounded quick_check (pmshared.storage.health); a corrupt one is moved aside
  (kept as ``data.db.corrupt-<time>``) so the recorder starts a fresh one and recording goes on.
- Anything else wrong with it (a directory, no permission, a newer schema) is reported in one line
  naming the cause; the pipeline still starts (pauses are still detected and bundled) and the
  recorder, which cannot run, shows as FAILED in `pmctl status` with that same reason.

Every finding is one line for the supervisor's log; nothing here raises.
"""

from __future__ import annotations

from pathlib import Path

from pmshared import paths, storage


def prepare(db_path: Path | None = None) -> list[str]:
    """Do the checks; return the lines to log (empty when all is well)."""
    notes: list[str] = []
    try:
        paths.ensure_data_dir()
    except OSError as exc:
        notes.append(f"data directory {paths.data_dir()}: {exc.strerror or exc}")
        return notes
    db_path = db_path or paths.db_path()
    if not db_path.exists() and not db_path.is_symlink():
        return notes  # the recorder creates it, private
    problem = storage.access_problem(db_path, write=True)
    if problem is not None:
        notes.append(f"database: {problem}")
        return notes
    try:
        tightened = storage.make_private(db_path)
    except OSError as exc:
        notes.append(f"database {db_path}: cannot make it private: {exc.strerror or exc}")
        tightened = []
    if tightened:
        notes.append(f"made {', '.join(p.name for p in tightened)} private (0600)")
    notes.extend(_check(db_path))
    return notes


def _check(db_path: Path) -> list[str]:
    try:
        result = storage.check(db_path)
    except storage.StorageError as exc:  # busy, newer schema, ...: not damage, say it and go on
        return [f"database not checked: {exc}"]
    if result.ok:
        if not result.complete:
            return [f"database check stopped after {result.seconds:.1f} s (budget); the part read was sound"]
        return []
    try:
        target = storage.quarantine(db_path)
    except OSError as exc:
        return [f"{result.corrupt}; cannot move it aside ({exc.strerror or exc}): recording will fail"]
    return [f"{result.corrupt}; moved it aside to {target} (kept) so the recorder starts a new one"]
