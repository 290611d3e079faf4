"""The recorder's logic without sockets: batch writer and retry queue, prune schedule, intake, log limiter.

Real SQLite throughout; a full disk is injected with ``PRAGMA max_page_count`` (SQLite then fails
writes with SQLITE_FULL exactly as on a full filesystem); clocks are fakes, nothing sleeps.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from pmshared import messages as m
from pmshared import storage
from pmshared.config import RetentionConfig
from pmshared.codec import BadMessage
from pmshared.endpoints import ENDPOINTS
from pmshared.workerio import one_frame
from recorder.pruning import PruneSchedule
from recorder.ratelimit import RateLimitedLog
from recorder.writer import BACKOFF_MAX_S, BatchWriter
from tests.recorder_helpers import Tiering, forensics_done, pause, rogue

T0 = 1_700_000_000.0
log = logging.getLogger("test.recorder")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(n: int, tiering: Tiering | None = None) -> list[m.Record]:
    tiering = tiering or Tiering()
    key = tiering.new_key()
    return [tiering.sample(key, T0, T0 + i, [rogue(1, "x" * 3000, 50)]) for i in range(n)]


def make_writer(db: Path, clock: FakeClock, max_pending: int = 1000, batch_max: int = 50):
    counters: Counter = Counter()
    conn = storage.connect(db, mode="create")
    writer = BatchWriter(lambda: conn, max_pending=max_pending, counters=counters, log=log,
                         batch_max=batch_max, clock=clock)
    return writer, conn, counters


def test_writer_commits_pending_records_in_batches(tmp_path: Path) -> None:
    clock = FakeClock()
    writer, conn, counters = make_writer(tmp_path / "d.db", clock, batch_max=7)
    for record in samples(20):
        writer.add(record)
    assert writer.seconds_until_retry() == 0
    assert writer.flush() == 20
    assert not writer.pending and writer.seconds_until_retry() is None
    assert counters["batches_written"] == 3 and counters["records_stored"] == 20
    assert storage.db_stats(conn).samples == 20


def test_a_full_disk_keeps_the_batch_retries_with_backoff_and_loses_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    writer, conn, counters = make_writer(tmp_path / "d.db", clock)
    conn.pragma("max_page_count", conn.pragma("page_count"))
    records = samples(30)
    for record in records:
        writer.add(record)
    assert writer.flush() == 0
    assert len(writer.pending) == 30 and counters["write_failures"] == 1
    first_wait = writer.seconds_until_retry()
    assert first_wait > 0
    assert writer.flush() == 0 and counters["write_failures"] == 1  # not due yet: no attempt
    waits = []
    for _ in range(8):
        clock.now += writer.seconds_until_retry()
        writer.flush()
        waits.append(writer.seconds_until_retry())
    assert waits == sorted(waits) and waits[-1] == BACKOFF_MAX_S  # doubling, capped
    assert len(writer.pending) == 30
    conn.pragma("max_page_count", 1 << 30)  # space returns
    clock.now += writer.seconds_until_retry()
    assert writer.flush() == 30
    assert storage.db_stats(conn).samples == 30
    assert storage.integrity_check(conn) == ["ok"]
    # Back-off resets after a success.
    writer.add(records[0])
    assert writer.seconds_until_retry() == 0


def test_the_bound_reports_full_and_close_counts_what_is_lost(tmp_path: Path) -> None:
    clock = FakeClock()
    writer, conn, counters = make_writer(tmp_path / "d.db", clock, max_pending=10)
    conn.pragma("max_page_count", conn.pragma("page_count"))
    for record in samples(10):
        assert not writer.full
        writer.add(record)
    assert writer.full
    writer.flush()
    assert writer.full  # still held
    assert writer.close() == 10
    assert counters["records_lost"] == 10


def test_close_writes_what_it_can(tmp_path: Path) -> None:
    clock = FakeClock()
    writer, _conn, counters = make_writer(tmp_path / "d.db", clock)
    for record in samples(5):
        writer.add(record)
    assert writer.close() == 0
    assert counters["records_stored"] == 5 and counters["records_lost"] == 0
    conn = storage.open_readonly(tmp_path / "d.db")
    assert storage.db_stats(conn).samples == 5


def test_a_database_that_is_busy_at_open_is_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    attempts = []
    db = tmp_path / "d.db"

    def open_db():
        attempts.append(clock.now)
        if len(attempts) < 3:
            raise storage.DatabaseBusy("busy")
        return storage.connect(db, mode="create")

    counters: Counter = Counter()
    writer = BatchWriter(open_db, max_pending=100, counters=counters, log=log, clock=clock)
    for record in samples(3):
        writer.add(record)
    for _ in range(3):
        writer.flush()
        clock.now += writer.seconds_until_retry() or 0
    assert len(attempts) == 3 and counters["records_stored"] == 3 and not writer.pending


def test_a_corrupt_database_is_fatal(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    db.write_bytes(b"\x00garbage" * 1000)
    writer = BatchWriter(lambda: storage.connect(db, mode="create"), max_pending=10, counters=Counter(),
                         log=log, clock=FakeClock())
    writer.add(samples(1)[0])
    with pytest.raises(storage.DatabaseCorrupt):
        writer.flush()


def test_prune_schedule_runs_at_start_then_daily_and_removes_bundles(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    conn = storage.connect(db, mode="create")
    root = tmp_path / "events"
    (root / "b1").mkdir(parents=True)
    with conn:
        storage.apply(conn, pause("col:1", T0))
        storage.apply(conn, forensics_done(["col:1"], str(root / "b1"), sent_at=T0))
    clock = FakeClock(0.0)
    wall = FakeClock(T0 + 40 * 86400)
    counters: Counter = Counter()
    schedule = PruneSchedule(RetentionConfig(samples_days=30, events_days=90), root, counters=counters,
                             log=log, clock=clock, wall_clock=wall)
    result = schedule.run_if_due(conn)
    assert result is not None and len(result.pauses) == 1
    assert not (root / "b1").exists() and counters["prune_runs"] == 1 and counters["pruned_pauses"] == 1
    clock.now = 86399.0
    assert schedule.run_if_due(conn) is None
    clock.now = 86400.0
    assert schedule.run_if_due(conn) is not None and counters["prune_runs"] == 2


def test_record_frames_reject_garbage_truncated_wrong_type_and_multipart_messages() -> None:
    codec = ENDPOINTS["record"].codec()
    decode = one_frame(codec)
    good = codec.encode(Tiering().started())
    heartbeat = msgspec.msgpack.encode(m.Heartbeat(sender="x", incarnation="i", seq=1, sent_at=0.0, pid=1))
    nested = b"\x91" * 100_000  # deeply nested arrays: RecursionError inside msgspec
    for frames in ([b"\xc1garbage"], [good[: len(good) // 2]], [heartbeat], [nested], [b""], [good, good], []):
        with pytest.raises(BadMessage):
            decode(frames)
    assert isinstance(decode([good]), m.TieringStarted)


def test_rate_limited_log_summarises_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    limited = RateLimitedLog(log, interval_s=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.recorder"):
        assert limited(logging.WARNING, "bad frame %d", 1)
        for i in range(5):
            assert not limited(logging.WARNING, "bad frame %d", i)
        clock.now = 10.0
        assert limited(logging.WARNING, "bad frame %d", 7)
    assert [r.getMessage() for r in caplog.records] == [
        "bad frame 1", "bad frame 7 (5 similar messages suppressed)"]


def test_rejected_record_does_not_sink_its_batch(tmp_path: Path) -> None:
    clock = FakeClock()
    writer, conn, counters = make_writer(tmp_path / "d.db", clock)
    # A trigger stands in for a record SQLite refuses for good (a constraint it can never meet).
    conn.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON pauses WHEN NEW.pause_id = 'bad'"
                 " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    writer.add(pause("ok:1", T0))
    writer.add(pause("bad", T0 + 1))
    writer.add(pause("ok:2", T0 + 2))
    assert writer.flush() == 2
    assert counters["records_rejected"] == 1 and not writer.pending
    assert [p.pause_id for p in storage.list_pauses(conn)] == ["ok:2", "ok:1"]


# --------------------------------------------------------------------------- flight samples


def flight(t: float) -> m.FlightSample:
    from pmshared.flight_codec import flight_fields
    from tests.flight_helpers import sample

    return m.FlightSample(sender="tiering", incarnation="t", seq=int(t), sent_at=t,
                          **flight_fields(sample(t), m.TierState(tier=1)))


def test_flight_samples_taken_together_are_written_at_once_in_one_transaction(tmp_path: Path) -> None:
    """Tiering sends them in pairs; the writer holds nothing back: a pair is one batch."""
    conn = storage.connect(tmp_path / "d.db", mode="create")
    writer = BatchWriter(lambda: conn, max_pending=1000, counters=Counter(), log=log, clock=FakeClock())
    writer.add(flight(T0))
    writer.add(flight(T0 + 1))
    assert writer.seconds_until_retry() == 0
    assert writer.flush() == 2 and writer.counters["batches_written"] == 1
    assert conn.execute("SELECT count(*) FROM flight_recent").get == 2
