"""One-line errors for people: every failure a command expects ends here, never in a traceback.

``fail()`` prints ``error: <message>`` on stderr (made inert: messages quote paths and user input)
and exits non-zero. ``open_db()`` opens the recorder's database and turns each storage exception
into a sentence that says what to do next.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from pmshared.safetext import inert

if TYPE_CHECKING:
    from pathlib import Path

K = TypeVar("K")
T = TypeVar("T")

USAGE = 2  # bad input on the command line (as click uses for usage errors)
FAILURE = 1  # the command could not do its job (no database, unknown id, ...)
# How long a command waits for the recorder's write lock before saying the database is busy. The
# recorder's transactions are short; a person at a prompt should not wait longer than this.
BUSY_TIMEOUT_MS = 3000


def fail(message: str, code: int = FAILURE) -> NoReturn:
    # sys.stderr is looked up at call time so CliRunner's captured stream is used.
    print(f"error: {inert(message)}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def load_config() -> Any:
    """The config in effect (pmshared.config.load); a broken file is ``fail()`` with the one exit
    code every command and worker uses for a config error (CONFIG_ERROR_EXIT)."""
    from pmshared import config as config_mod

    try:
        return config_mod.load()
    except config_mod.ConfigError as exc:
        fail(str(exc), config_mod.CONFIG_ERROR_EXIT)


def warn(message: str) -> None:
    print(f"warning: {inert(message)}", file=sys.stderr, flush=True)


def describe_db_error(exc: BaseException, path: Path) -> str:
    """The sentence for a storage exception (shared by commands and the watch view's DB panel)."""
    from pmshared import storage

    exc = _translate(exc)
    if isinstance(exc, storage.DatabaseMissing):
        if _monitor_running():
            return (f"no database yet at {path} although pause-monitor is running: the recorder has "
                    "not created it; `pmctl status` shows why (`pmctl doctor` says what to do)")
        return f"no database yet at {path}: start the monitor with `pmctl up` (the recorder creates it)"
    if isinstance(exc, storage.DatabaseBusy):
        return f"database {path} is locked by another process; try again in a moment"
    if isinstance(exc, storage.DatabaseCorrupt):
        # The recorder moves it aside itself when a write meets the damage; damage only a read
        # meets is found by the check `pmctl up` runs before it starts the recorder.
        restart = "restart the monitor (`pmctl down`, then `pmctl up`)" if _monitor_running() else "`pmctl up`"
        return (
            f"database {path} is corrupted or not a pause-monitor database ({_detail(exc)}); "
            f"{restart} moves it aside (kept as {path.name}.corrupt-<time>) and starts a fresh one"
        )
    if isinstance(exc, storage.SchemaTooNew):
        return f"database {path} was written by a newer pause-monitor; upgrade pmctl"
    if isinstance(exc, storage.StorageError):
        return _first_line(exc)  # storage's messages are one line and name the file
    return f"database {path}: {_first_line(exc)}"


def _monitor_running() -> bool:
    from supervisor.lock import holder_pid

    try:
        return holder_pid() is not None
    except Exception:  # noqa: BLE001 - a runtime dir we cannot read: we cannot tell
        return False


def _detail(exc: BaseException) -> str:
    """SQLite's own words from a corrupt-database message: "(file is not a database)"."""
    text = _first_line(exc)
    start, end = text.find("("), text.rfind(")")
    return text[start + 1 : end] if 0 <= start < end else text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def storage_exceptions() -> tuple[type[BaseException], ...]:
    import apsw

    from pmshared import storage

    # storage raises only StorageError subclasses; raw apsw/OS errors are a safety net.
    return (storage.StorageError, apsw.Error, OSError)


@contextmanager
def open_db(*, readonly: bool = True, path: Path | None = None) -> Iterator[Any]:
    """The database, opened read-only unless asked; storage errors become ``fail()``.

    Errors raised while the body runs (a lock taken mid-command, corruption found by a query) are
    mapped too, so callers need no try/except of their own for database trouble.
    """
    from pmshared import paths, storage

    path = path or paths.db_path()
    try:
        opener = storage.open_readonly if readonly else storage.open_readwrite
        db = opener(path, busy_timeout_ms=BUSY_TIMEOUT_MS)
    except storage_exceptions() as exc:
        fail(describe_db_error(exc, path))
    try:
        yield db
    except (storage.NotFound, storage.BadStatus) as exc:
        fail(_first_line(exc), USAGE if isinstance(exc, storage.BadStatus) else FAILURE)
    except storage_exceptions() as exc:
        fail(describe_db_error(exc, path))
    finally:
        try:
            db.close()
        except Exception:  # closing after a failure must not hide the first error
            pass


def read_one(get: Callable[[Any, K], T | None], key: K, missing: str) -> T:
    """``get(db, key)`` on the database (as ``open_db``); ``fail(missing)`` when it finds nothing."""
    with open_db() as db:
        found = get(db, key)
    if found is None:
        fail(missing)
    return found


def _translate(exc: BaseException) -> BaseException:
    """Raw apsw errors (should storage let one through) mean the same as storage's own."""
    import apsw

    from pmshared import storage

    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        return storage.DatabaseBusy(str(exc))
    if isinstance(exc, apsw.CorruptError | apsw.NotADBError):
        return storage.DatabaseCorrupt(str(exc))
    return exc


def confirm(question: str, force_flag: str) -> bool:
    """Ask yes/no on the terminal. With nobody to answer (stdin closed or at end of file), refuse
    with one line naming the flag that skips the question — never a silent yes."""
    if sys.stdin is None or getattr(sys.stdin, "closed", False):
        fail(f"refusing without confirmation: stdin is closed; pass {force_flag}", USAGE)
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:
        print(file=sys.stderr)
        fail(f"refusing without confirmation: no answer on stdin; pass {force_flag}", USAGE)
