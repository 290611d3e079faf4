"""`pmctl doctor`: what is wrong with this install and what to do about it, one line each.

Read-only: it looks (config, data directory, database, runtime directory, the running pipeline)
and says; it never moves, creates or chmods anything (`pmctl up` does the repairs it names).
Each check returns ``Finding``s; ``diagnose`` runs them all. The database check is the bounded
quick_check `pmctl up` runs (pmshared.storage.health).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pmshared import journald, paths

Level = Literal["ok", "note", "warn", "error"]


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    text: str
    fix: str | None = None


def diagnose() -> list[Finding]:
    config, found = check_config()
    found += check_data_dir()
    found += check_database()
    found += check_flight(config)
    found += check_runtime_dir()
    found += check_event_log(config)
    found += check_pipeline(config)
    return found


def check_config():
    from pmshared import config as config_mod

    where = paths.config_path()
    try:
        config = config_mod.load()
    except config_mod.ConfigError as exc:
        return None, [Finding("error", "config", str(exc), f"fix the file, then `pmctl config validate {where}`")]
    exists = where.exists()
    return config, [Finding("ok", "config", f"{where}" if exists else f"{where} absent: defaults in use")]


def _private(path: Path, want: int, what: str) -> list[Finding]:
    """Is ``path`` ours and no more open than ``want``?"""
    st = path.stat()
    if st.st_uid != os.getuid():
        return [Finding("error", what, f"{path} is owned by uid {st.st_uid}, not by us (uid {os.getuid()})",
                        f"chown it back (sudo chown -R {os.getuid()} {path}) or set XDG_DATA_HOME")]
    mode = stat.S_IMODE(st.st_mode)
    if mode & ~want:
        return [Finding("warn", what, f"{path} is readable by other users (mode {mode:04o})",
                        f"`pmctl up` makes it {want:04o} (or: chmod {want:o} {path})")]
    return []


def check_data_dir() -> list[Finding]:
    data = paths.data_dir()
    try:
        if not data.exists():
            return [Finding("ok", "data", f"{data} not created yet (`pmctl up` creates it, private)")]
        problems = _private(data, 0o700, "data")
    except OSError as exc:
        return [Finding("error", "data", f"cannot look at {data}: {exc.strerror or exc}",
                        "fix the permissions of its parent directories")]
    return problems or [Finding("ok", "data", f"{data} (private)")]


def check_database() -> list[Finding]:
    from pmshared import storage

    db = paths.db_path()
    found = [Finding("note", "database", f"corrupt copy kept: {kept} ({_size(kept)})",
                     f"recover rows with `sqlite3 {kept} .recover`, or delete it")
             for kept in storage.quarantined(db)]
    try:
        exists = db.exists()
    except OSError:
        exists = True  # access_problem names the directory that shuts us out
    if not exists:
        return [Finding("ok", "database", f"{db} not created yet (the recorder creates it)"), *found]
    problem = storage.access_problem(db, write=True)
    if problem is not None:
        fix = (f"mv {db} {db}.old; `pmctl up` then starts a new one"
               if "directory" in problem or "regular file" in problem else
               f"give it back to this user (chown {os.getuid()} {db}; chmod 600 {db})")
        return [Finding("error", "database", problem, fix), *found]
    found += _private(db, 0o600, "database")
    try:
        result = storage.check(db)
    except storage.StorageError as exc:
        fix = "upgrade pause-monitor" if isinstance(exc, storage.SchemaTooNew) else "try again in a moment"
        return [Finding("error", "database", str(exc), fix), *found]
    if not result.ok:
        return [Finding("error", "database", result.corrupt or "corrupt",
                        "`pmctl up` moves it aside (kept) and starts a fresh one; if it is running, "
                        "`pmctl down` first"), *found]
    how = "quick_check ok" if result.complete else "quick_check stopped at its time budget, sound so far"
    return [Finding("ok", "database", f"{db} ({_size(db)}, {how} in {result.seconds:.2f} s)"), *found]


# The recorder prunes the flight record every 10 minutes (recorder/flight_retention.py): data past
# the age limit by more than this, or a size over the limit by more than FLIGHT_SIZE_SLACK, means
# retention is not keeping up (recorder stopped, or the database refusing the deletes).
FLIGHT_AGE_SLACK_S = 3600.0
FLIGHT_SIZE_SLACK = 1.05


def check_flight(config, now: float | None = None) -> list[Finding]:
    """The flight record's span and size, and whether retention keeps it within its limits."""
    import time

    from cli import format as fmt
    from pmshared import storage

    if config is None or not paths.db_path().exists():
        return []
    now = time.time() if now is None else now
    retention = config.retention
    try:
        conn = storage.open_readonly(paths.db_path())
        try:
            usage = storage.flight_usage(conn, max_age_days=retention.flight_days, now=now)
        finally:
            conn.close()
    except storage.StorageError:
        return []  # the database check above says what is wrong with it (or it predates the record)
    limits = f"kept {retention.flight_days} days, at most {retention.flight_max_mb} MB"
    if usage.first_at is None:
        return [Finding("ok", "flight", f"empty ({limits}): the recorder keeps every sample while running")]
    found = [Finding("ok", "flight", (
        f"{fmt.timestamp(usage.first_at)} to {fmt.timestamp(usage.last_at)} "
        f"({fmt.human_seconds(usage.last_at - usage.first_at)}, {usage.samples:,} samples), "
        f"{usage.bytes / 1e6:.1f} MB ({limits})"))]
    cutoff = now - retention.flight_days * 86400.0
    if usage.overdue_blocks and usage.overdue_since is not None and usage.overdue_since < cutoff - FLIGHT_AGE_SLACK_S:
        found.append(Finding("warn", "flight", (
            f"retention is behind: {usage.overdue_blocks} minutes older than {retention.flight_days} days "
            f"(oldest {fmt.timestamp(usage.overdue_since)})"),
            "the recorder prunes every 10 minutes: is it running (`pmctl status`)? `pmctl prune` removes them now"))
    if usage.bytes > retention.flight_max_mb * 1e6 * FLIGHT_SIZE_SLACK:
        found.append(Finding("warn", "flight", (
            f"{usage.bytes / 1e6:.1f} MB, over its {retention.flight_max_mb} MB limit"),
            "the recorder prunes every 10 minutes (pinned events' minutes are kept whatever the limit); "
            "`pmctl prune --dry-run` shows what would go"))
    return found


def _size(path: Path) -> str:
    try:
        return f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        return "size unknown"


def check_runtime_dir() -> list[Finding]:
    run = paths.runtime_dir()
    try:
        if not run.exists():
            return [Finding("ok", "runtime", f"{run} not created yet (`pmctl up` creates it, 0700)")]
        os.listdir(run)
    except PermissionError:
        return [Finding("error", "runtime", paths.unusable_runtime_dir(),
                        "run pmctl as the user who started pause-monitor, or set XDG_RUNTIME_DIR")]
    except OSError as exc:
        return [Finding("error", "runtime", f"{run}: {exc.strerror or exc}", "set XDG_RUNTIME_DIR")]
    return _private(run, 0o700, "runtime") or [Finding("ok", "runtime", f"{run} (private)")]


def check_pipeline(config) -> list[Finding]:
    from cli import clients
    from cli.format import human_seconds
    from pmshared.codec import BadMessage

    try:
        reply = clients.control("status", transport=config.transport if config else None)
    except (BadMessage, paths.PathError) as exc:
        return [Finding("error", "pipeline", f"cannot ask the supervisor: {exc}")]
    if reply is None:
        return [Finding("note", "pipeline", "not running", "start it with `pmctl up`")]
    found = []
    for w in reply.workers:
        if w.state in ("failed", "backoff"):
            retry = f"; next try in {human_seconds(w.retry_in_s)}" if w.retry_in_s is not None else ""
            found.append(Finding("error", "pipeline", f"{w.name} is {w.state.upper()}: "
                                 f"{w.reason or w.last_exit or 'no reason given'}{retry}",
                                 "fix the cause above; the supervisor retries it by itself"))
    return found or [Finding("ok", "pipeline", f"running (supervisor pid {reply.supervisor_pid}), every worker healthy")]


def check_event_log(config) -> list[Finding]:
    """Where the event log for log shippers is (README "Event log"), and whether journald gets it."""
    if config is None:
        return []
    settings = config.event_log
    where = paths.event_log_path()
    if not settings.enabled:
        found = [Finding("ok", "event log", f"off ([event_log] enabled = false); it would be {where}")]
    else:
        try:
            exists = where.exists()
            problems = _private(where, 0o600, "event log") if exists else []
        except OSError as exc:
            return [Finding("warn", "event log", f"cannot look at {where}: {exc.strerror or exc}")]
        rotated = sum(where.with_name(f"{where.name}.{n}").exists() for n in range(1, settings.keep + 1))
        state = (f"{_size(where)}, {rotated} rotated" if exists else "not written yet: one line per pause and event")
        found = problems or [Finding("ok", "event log", f"{where} ({state}; rotated at "
                                     f"{settings.max_bytes / 2**20:g} MiB, {settings.keep} kept)")]
    if settings.journald:
        sock = journald.socket_path()
        said = "each line is also sent there" if os.path.exists(sock) else "no journald socket here: skipped"
        found.append(Finding("ok", "journald", f"{sock}: {said}"))
    return found
