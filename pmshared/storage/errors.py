"""Storage errors: one-line ``StorageError`` subclasses, and the translation of apsw's."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import apsw


class StorageError(Exception):
    """A database problem. ``str()`` is one line for a user; ``path`` names the file if known."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None


class DatabaseMissing(StorageError):
    """No database file yet (only ``mode="create"`` makes one)."""


class DatabaseBusy(StorageError):
    """Another process held a lock for longer than the busy timeout. Transient."""


class DatabaseFull(StorageError):
    """The disk (or the database's page limit) is full. Transient: retry once space returns."""


class DatabaseIOError(StorageError):
    """A disk I/O error reading or writing the database. Possibly transient."""


class DatabaseCorrupt(StorageError):
    """Not a database, malformed, or not a pause-monitor database."""


class DatabaseReadOnly(StorageError):
    """The file or its directory cannot be written (or cannot be opened at all)."""


class SchemaTooNew(StorageError):
    """The database was written by a newer pause-monitor."""


class SchemaTooOld(StorageError):
    """A read-only open found a schema that needs an upgrade (the recorder or a write upgrades it)."""


class BadStatus(StorageError, ValueError):
    """An event status that is not one of ``STATUSES``."""


class NotFound(StorageError, LookupError):
    """No event/pause with that id."""


class RecordRejected(StorageError):
    """One record could not be stored for a reason retrying will not fix (its savepoint rolled back)."""


TRANSIENT = (DatabaseBusy, DatabaseFull, DatabaseIOError)


def describe(exc: BaseException) -> str:
    return str(exc).split("\n")[0][:200]


@contextmanager
def translate_errors(path: str | os.PathLike | None) -> Iterator[None]:
    """Turn apsw's exceptions into the StorageError types above (one line, the path named).

    Public for callers that run their own ``with conn:`` around ``apply`` (the recorder's batch).
    """
    where = str(path) if path else "database"
    try:
        yield
    except StorageError:
        raise
    except (apsw.BusyError, apsw.LockedError) as exc:
        raise DatabaseBusy(f"database {where} is busy (locked by another process); try again", path) from exc
    except (apsw.NotADBError, apsw.CorruptError) as exc:
        # What to do about it is the caller's to say (the recorder moves it aside by itself).
        raise DatabaseCorrupt(f"database {where} is corrupt ({describe(exc)})", path) from exc
    except apsw.FullError as exc:
        raise DatabaseFull(f"database {where}: disk full ({describe(exc)})", path) from exc
    except apsw.IOError as exc:
        raise DatabaseIOError(f"database {where}: disk I/O error ({describe(exc)})", path) from exc
    except (apsw.ReadOnlyError, apsw.PermissionsError, apsw.CantOpenError, apsw.AuthError) as exc:
        raise DatabaseReadOnly(f"database {where} cannot be opened for this ({describe(exc)})", path) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DatabaseFull(f"database {where}: disk full ({exc.strerror})", path) from exc
        raise DatabaseIOError(f"database {where}: {exc.strerror or exc}", path) from exc
    except apsw.Error as exc:
        raise StorageError(f"database {where}: {describe(exc)}", path) from exc


F = TypeVar("F", bound=Callable)


def db_errors(func: F) -> F:
    """Decorator for public functions whose first argument is a connection."""

    @functools.wraps(func)
    def wrapper(conn: apsw.Connection, *args, **kwargs):
        with translate_errors(conn.filename or None):
            return func(conn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
