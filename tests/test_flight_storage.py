"""The flight record in SQLite: written through the recorder's write path (BatchWriter + apply),
read back through ``storage.FlightReader``; the v2 -> v3 migration; retention by age and size.

Real SQLite files, fake clocks; nothing sleeps.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import apsw
import pytest

from pmshared import messages as m
from pmshared import storage
from pmshared.codec import Stamper
from pmshared.storage.flight_writes import minute_of
from recorder.writer import BatchWriter
from tests.recorder_helpers import Tiering, pause, rogue

T0 = 1_700_000_020.0  # 40 s into a minute: the first minute is partial
log = logging.getLogger("test.flight")


def sample(t: float, busy: str = "hog", table: bool = False) -> m.ProcessSamples:
    proc = m.ProcessInfo(pid=7, command="idle-top", state="sleeping", cpu=0.5, mem=1 << 20)
    return m.ProcessSamples(
        sender="scorer", incarnation="s", seq=int(t), sent_at=t, timestamp=t, elapsed_ms=1000.0,
        process_count=3, max_score=40, rogues=[rogue(42, busy, 40)], top=[proc],
        system=m.SystemStats(cpu_count=2, load1=1.5, procs_blocked=0),
        sentinel=m.SentinelStats(tick_ms=50, window_s=60, p99_ms=2.5),
        table=[proc, m.ProcessInfo(pid=8, command="other", state="sleeping")] if table else None,
    )


class Recorder:
    """The recorder's write path on a real file: BatchWriter over storage.apply."""

    def __init__(self, db: Path) -> None:
        self.conn = storage.connect(db, mode="create")
        self.writer = BatchWriter(lambda: self.conn, max_pending=10_000, counters=Counter(), log=log)
        self.stamp = Stamper("tiering", "tiering-A")

    def record(self, t: float, tier: int = 2, **kw) -> None:
        self.writer.add(self.stamp(m.FlightSample, samples=sample(t, **kw), state=m.TierState(tier=tier)))

    def flush(self) -> None:
        assert self.writer.flush() >= 0 and not self.writer.pending


@pytest.fixture
def rec(tmp_path: Path) -> Recorder:
    r = Recorder(tmp_path / "data.db")
    yield r
    r.conn.close()


def write_seconds(rec: Recorder, start: float, n: int) -> list[float]:
    times = [start + i for i in range(n)]
    for t in times:
        rec.record(t, table=(int(t) % 60 == 0))
    rec.flush()
    return times


def test_samples_are_rows_at_once_then_blocks_per_minute(rec: Recorder) -> None:
    times = write_seconds(rec, T0, 150)  # minutes: 20 s, 60 s, 60 s, then 10 s still recent
    blocks = rec.conn.execute("SELECT minute, samples, start_at, end_at FROM flight_blocks ORDER BY minute").fetchall()
    assert [(b[0], b[1]) for b in blocks] == [(minute_of(T0), 20), (minute_of(T0) + 1, 60), (minute_of(T0) + 2, 60)]
    recent = [r[0] for r in rec.conn.execute("SELECT ts FROM flight_recent ORDER BY ts")]
    assert recent == times[-10:]


def test_reader_steps_through_blocks_and_recent_rows(rec: Recorder) -> None:
    times = write_seconds(rec, T0, 150)
    reader = storage.FlightReader(rec.conn)
    assert reader.span() == (times[0], times[-1])
    assert reader.frame_at(T0 - 1) is None
    frame = reader.frame_at(T0 + 30.5)
    assert frame.timestamp == T0 + 30
    assert frame.samples.rogues[0].command == "hog" and frame.state.tier == 2
    assert frame.samples.system.load1 == 1.5 and frame.samples.sentinel.p99_ms == 2.5
    assert frame.ring_entry().tier == 2
    # Stepping one frame at a time visits every sample once, across both block boundaries and
    # into the rows not packed yet.
    seen, t = [], T0 - 1
    while (f := reader.next_frame(t)) is not None:
        seen.append(f.timestamp)
        t = f.timestamp
    assert seen == times
    back, t = [], times[-1] + 1
    while (f := reader.prev_frame(t)) is not None:
        back.append(f.timestamp)
        t = f.timestamp
    assert back == times[::-1]
    window = reader.frames(T0 + 10, T0 + 145)
    assert [f.timestamp for f in window] == times[10:146]


def test_whole_table_once_a_minute(rec: Recorder) -> None:
    write_seconds(rec, T0, 150)
    at, table = storage.FlightReader(rec.conn).table_at(T0 + 100)
    assert at == (minute_of(T0) + 2) * 60 and {p.command for p in table} == {"idle-top", "other"}


def test_a_resent_sample_is_stored_once_even_after_its_minute_was_packed(rec: Recorder) -> None:
    write_seconds(rec, T0, 90)
    rec.record(T0 + 5)  # a resend of a packed minute's sample
    rec.record(T0 + 90)  # the next minute: packs again, merging the resend
    rec.flush()
    rec.record(T0 + 150)
    rec.flush()
    frames = storage.FlightReader(rec.conn).frames(T0, T0 + 200)
    assert [f.timestamp for f in frames] == [T0 + i for i in range(91)] + [T0 + 150]


def test_next_and_previous_pause_or_event(rec: Recorder) -> None:
    write_seconds(rec, T0, 120)
    tiering = Tiering(start=T0)
    key = tiering.new_key()
    for record in (pause("c:1", T0 + 20), tiering.opened(key, T0 + 50),
                   tiering.closed(key, T0 + 50, T0 + 70, 60), pause("c:2", T0 + 100)):
        rec.writer.add(record)
    rec.flush()
    reader = storage.FlightReader(rec.conn)
    first = reader.next_mark(T0)
    assert (first.kind, first.start) == ("pause", T0 + 20)
    event = reader.next_mark(first.start)
    assert (event.kind, event.start, event.end) == ("event", T0 + 50, T0 + 70)
    assert reader.next_mark(event.start).start == T0 + 100
    assert reader.next_mark(T0 + 100) is None
    assert reader.prev_mark(T0 + 100).kind == "event"
    assert storage.mark_window(rec.conn, f"event:{event.id}") == (T0 + 50, T0 + 70)
    assert storage.mark_window(rec.conn, "pause:c:2")[0] == T0 + 100
    with pytest.raises(storage.NotFound):
        storage.mark_window(rec.conn, "pause:999")
    with pytest.raises(ValueError):
        storage.mark_window(rec.conn, "yesterday")


def test_migration_from_v2_keeps_data_and_adds_the_flight_tables(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = apsw.Connection(str(db))
    storage.upgrade(conn, storage.MIGRATIONS[:2])
    conn.execute("INSERT INTO events (event_key, start_at, incarnation) VALUES ('a:1', 1.0, 'a')")
    conn.close()
    with pytest.raises(storage.SchemaTooOld):
        storage.open_readonly(db)
    rec = Recorder(db)  # the recorder's open upgrades
    assert storage.schema_version(rec.conn) == storage.SCHEMA_VERSION == 3
    assert rec.conn.execute("SELECT event_key FROM events").get == "a:1"
    write_seconds(rec, T0, 3)
    assert len(storage.FlightReader(rec.conn).frames(T0, T0 + 3)) == 3
    rec.conn.close()
