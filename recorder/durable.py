"""Durable points: the recorder commits without waiting for the disk and fsyncs at most every DURABLE_EVERY_S.

The recorder's connection runs WAL with ``synchronous=NORMAL``: a commit writes its pages to the
WAL file (the operating system's cache) without waiting for the disk. Any process can read it at
once and a crash of any process, ``kill -9`` of the recorder included, loses nothing committed: the kernel
still has the pages. Only a hard reset (power loss, kernel panic) loses what was not yet on the
disk, so this class makes a *durable point* (an fsync of the WAL file) on a schedule:

- after a commit, if the last durable point is ``every_s`` (1 s) old or older;
- otherwise at the latest ``every_s`` after the first commit not yet durable (the loop's timer),
  so a sample is never left undurable longer than that when no further sample arrives.

Tiering holds a flight sample up to 1 s and sends them in pairs (tiering/flight_hold.py), so at
1 Hz they commit in pairs every 2 s, each pair with its durable point: after a hard reset the
record stops at most 2 s (plus the sample's transit, milliseconds) before it. In general a sample
is on the disk within 2 s of being taken (1 s held, 1 s to the durable point).
SQLite fsyncs the WAL itself before each checkpoint and the database after it, so what a
checkpoint moves out of the WAL stays durable.
Why: at ``synchronous=FULL`` every commit waited for its own fsync, the largest part of the
recorder's CPU for the flight record (README, "The flight recorder").
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable

import apsw

from recorder.ratelimit import RateLimitedLog

DURABLE_EVERY_S = 1.0


def relaxed(conn: apsw.Connection) -> apsw.Connection:
    """``conn`` with commits that do not wait for the disk (the durable points do)."""
    conn.pragma("synchronous", "normal")
    return conn


# fdatasync where there is one (Linux): the WAL's data and what reading it back needs (its size),
# not its times; ~50 us of CPU less than fsync on ext4 every durable point. SQLite syncs its WAL
# the same way.
_datasync = getattr(os, "fdatasync", os.fsync)


def fsync_wal(conn: apsw.Connection) -> None:
    """Put what the WAL holds on the disk. Without a WAL file (nothing written since the last
    checkpoint truncated it) everything committed is in the database file, synced by SQLite."""
    try:
        fd = os.open(conn.filename + "-wal", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        _datasync(fd)
    finally:
        os.close(fd)


class DurablePoints:
    def __init__(self, *, counters: Counter, log: logging.Logger, every_s: float = DURABLE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic,
                 sync: Callable[[apsw.Connection], None] = fsync_wal) -> None:
        self.every_s, self.clock, self._sync = every_s, clock, sync
        self.counters = counters
        self._log = RateLimitedLog(log, interval_s=60.0)
        self.last_at = -float("inf")  # the last durable point
        self.waiting_since: float | None = None  # the first commit not yet durable

    def committed(self, conn: apsw.Connection, now: float | None = None) -> None:
        """A commit just happened on ``conn``: make it durable now if the last point is old."""
        now = self.clock() if now is None else now
        if self.waiting_since is None:
            self.waiting_since = now
        if now - self.last_at >= self.every_s:
            self.sync(conn, now)

    def seconds_until_due(self, now: float | None = None) -> float | None:
        """None when everything committed is durable; else how long the loop may sleep."""
        if self.waiting_since is None:
            return None
        now = self.clock() if now is None else now
        return max(0.0, self.waiting_since + self.every_s - now)

    def run_if_due(self, conn: apsw.Connection | None, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if conn is not None and self.waiting_since is not None and now >= self.waiting_since + self.every_s:
            self.sync(conn, now)

    def sync(self, conn: apsw.Connection, now: float | None = None) -> None:
        """A durable point now (also at shutdown). A failure is logged and retried at the next."""
        now = self.clock() if now is None else now
        try:
            self._sync(conn)
        except OSError as exc:
            self.counters["durable_point_failures"] += 1
            self._log(logging.WARNING, "cannot fsync the database's WAL (%s); retrying", exc)
            self.waiting_since = now  # retried after every_s, not in a tight loop
            return
        self.counters["durable_points"] += 1
        self.last_at = now
        self.waiting_since = None
