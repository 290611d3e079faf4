"""recorder/durable.py: commits without waiting for the disk, fsyncs on a schedule that keeps a hard reset's loss at
~2 s (policy on a fake clock; the relaxed connection and the fsync on a real file)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from pmshared import storage
from recorder.durable import DURABLE_EVERY_S, DurablePoints, fsync_wal, relaxed

LOG = logging.getLogger("test")


def points(synced: list[float], clock: list[float], fail: bool = False) -> DurablePoints:
    def sync(conn) -> None:
        if fail:
            raise OSError(5, "Input/output error")
        synced.append(clock[0])

    return DurablePoints(counters=Counter(), log=LOG, clock=lambda: clock[0], sync=sync)


def test_at_1_hz_each_pair_the_writer_commits_is_a_durable_point_so_a_reset_loses_at_most_2_s():
    """Tiering sends flight samples in pairs (tiering/flight_hold.py): at 1 Hz the recorder commits a
    pair every 2 s, and each commit is then a durable point."""
    synced: list[float] = []
    clock = [100.0]
    durable = points(synced, clock)
    for i in range(1, 11, 2):
        clock[0] = 100.0 + i + 0.003 * (i % 3)  # arrival jitter
        durable.committed(conn=None)
        assert durable.seconds_until_due() is None  # nothing left for the loop's timer
    assert len(synced) == 5
    # A reset just before any durable point finds the record ending at the previous one:
    # never more than 2 s (plus jitter) earlier.
    assert max(b - a for a, b in zip(synced, synced[1:])) <= 2.01


def test_commits_closer_than_the_interval_share_a_durable_point():
    synced: list[float] = []
    clock = [100.0]
    durable = points(synced, clock)
    for i in range(8):  # a commit every 0.5 s (events between the samples, a faster rate)
        clock[0] = 100.0 + 0.5 * i
        durable.committed(conn=None)
        due = durable.seconds_until_due()
        assert due is None or due > 0.5  # the loop never wakes just for a durable point here
    assert synced == [100.0, 101.0, 102.0, 103.0]


def test_a_last_commit_becomes_durable_by_the_timer_within_the_interval():
    synced: list[float] = []
    clock = [100.0]
    durable = points(synced, clock)
    durable.committed(conn=None)  # durable at once: the first point is never "recent"
    clock[0] = 100.5
    durable.committed(conn=None)  # waits: the last point is 0.5 s old
    assert synced == [100.0] and durable.seconds_until_due() == DURABLE_EVERY_S
    clock[0] = 100.5 + DURABLE_EVERY_S - 0.01
    durable.run_if_due(conn=object())
    assert synced == [100.0]
    clock[0] = 100.5 + DURABLE_EVERY_S
    durable.run_if_due(conn=object())
    assert synced == [100.0, clock[0]] and durable.seconds_until_due() is None


def test_a_failed_fsync_is_counted_and_retried_later_not_in_a_tight_loop():
    clock = [100.0]
    durable = points([], clock, fail=True)
    durable.committed(conn=None)
    assert durable.counters["durable_point_failures"] == 1
    assert durable.seconds_until_due() == DURABLE_EVERY_S


def test_the_recorders_connection_commits_without_waiting_and_fsync_finds_its_wal(tmp_path: Path):
    conn = relaxed(storage.connect(tmp_path / "data.db", mode="create"))
    try:
        assert conn.pragma("synchronous") == 1  # NORMAL
        assert conn.pragma("journal_mode") == "wal"
        with conn:
            conn.execute("CREATE TABLE t (x)")
        assert Path(conn.filename + "-wal").exists()
        fsync_wal(conn)  # no error on the real file
    finally:
        conn.close()
    gone = relaxed(storage.connect(tmp_path / "other.db", mode="create"))
    try:
        Path(gone.filename + "-wal").unlink(missing_ok=True)
        fsync_wal(gone)  # no WAL: nothing to do, no error
    finally:
        gone.close()
