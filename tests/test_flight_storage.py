"""The flight record in SQLite: written through the recorder's write path (BatchWriter + apply),
read back through ``storage.FlightReader``; the v2 -> v3 migration; retention by age and size.

Real SQLite files, fake clocks; nothing sleeps.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import apsw
import msgspec
import pytest

from pmshared import messages as m
from pmshared import storage
from pmshared.flight_codec import flight_fields
from pmshared.storage.flight_writes import minute_of
from tests.flight_helpers import Recorder, sample
from tests.recorder_helpers import Tiering, pause

T0 = 1_700_000_020.0  # 40 s into a minute: the first minute is partial
log = logging.getLogger("test.flight")


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
    assert storage.schema_version(rec.conn) == storage.SCHEMA_VERSION == 4
    assert rec.conn.execute("SELECT event_key FROM events").get == "a:1"
    write_seconds(rec, T0, 3)
    assert len(storage.FlightReader(rec.conn).frames(T0, T0 + 3)) == 3
    rec.conn.close()


# --------------------------------------------------------------------------- retention

DAY = 86400.0


def sparse_record(rec: Recorder, start: float, days: int, every_s: float = 600.0) -> list[float]:
    """One sample every ``every_s`` over ``days``: each lands in a minute (a block) of its own."""
    times = [start + i * every_s for i in range(int(days * DAY / every_s))]
    for t in times:
        rec.record(t)
    rec.record(times[-1] + every_s)  # packs the last one
    rec.flush()
    return times


def pin_event(rec: Recorder, start: float, end: float) -> int:
    tiering = Tiering(start=start)
    key = tiering.new_key()
    rec.writer.add(tiering.opened(key, start))
    rec.writer.add(tiering.closed(key, start, end, 60))
    rec.flush()
    event_id = rec.conn.execute("SELECT id FROM events WHERE event_key = ?", (key,)).get
    storage.set_status(rec.conn, event_id, "pinned")
    return event_id


def kept_days(rec: Recorder, start: float) -> set[int]:
    return {int((t - start) // DAY) for (t,) in rec.conn.execute("SELECT start_at FROM flight_blocks")}


def test_prune_by_age_removes_the_oldest_and_keeps_a_pinned_event(rec: Recorder) -> None:
    start = T0
    times = sparse_record(rec, start, days=10)
    pinned_at = start + DAY + 3600 + 30  # day 1, between two samples: the one before it is in its lead
    pin_event(rec, pinned_at, pinned_at + 120)
    now = times[-1] + 600
    result = storage.prune_flight(rec.conn, max_age_days=7, max_bytes=10**9, now=now)
    assert result.blocks_by_age > 0 and result.blocks_by_size == 0
    reader = storage.FlightReader(rec.conn)
    first_kept = reader.frames(start + DAY * 2.5, now)[0].timestamp
    assert first_kept >= now - 7 * DAY - 600
    # Nothing older than 7 days is left except the pinned event's lead-in (up to 5 minutes before it).
    old = [f.timestamp for f in reader.frames(start, now - 7 * DAY - 600)]
    assert old and all(pinned_at - 300 <= t <= pinned_at + 120 for t in old)
    assert reader.frame_at(pinned_at).timestamp == pinned_at - 30


def test_prune_by_size_removes_the_oldest_until_it_fits_and_keeps_a_pinned_event(rec: Recorder) -> None:
    start = T0
    times = sparse_record(rec, start, days=4)
    pinned_at = start + 600 * 3 + 30  # one of the very first minutes
    pin_event(rec, pinned_at, pinned_at + 60)
    total = rec.conn.execute("SELECT sum(bytes) FROM flight_blocks").get
    budget = total // 2
    result = storage.prune_flight(rec.conn, max_age_days=30, max_bytes=budget, now=times[-1])
    assert result.blocks_by_age == 0 and result.blocks_by_size > 0
    assert result.bytes_kept <= budget
    kept = sorted(t for (t,) in rec.conn.execute("SELECT start_at FROM flight_blocks"))
    # The newest half stayed, the pinned event's minute too; the rest of the oldest went.
    assert kept[-1] == times[-1] and kept[0] == start + 600 * 3
    assert kept[1] > start + 2 * DAY - 600
    again = storage.prune_flight(rec.conn, max_age_days=30, max_bytes=budget, now=times[-1])
    assert again.blocks_by_size == 0  # nothing more to do


def test_flight_retention_runs_at_start_then_every_ten_minutes(rec: Recorder) -> None:
    from pmshared.config import RetentionConfig
    from recorder.flight_retention import EVERY_S, FlightRetention

    times = sparse_record(rec, T0, days=9)
    clock = [100.0]
    counters: Counter = Counter()
    retention = FlightRetention(RetentionConfig(flight_days=7, flight_max_mb=500), counters=counters, log=log,
                                clock=lambda: clock[0], wall_clock=lambda: times[-1])
    assert retention.run_if_due(rec.conn).blocks_by_age > 0
    assert retention.run_if_due(rec.conn) is None  # not due yet
    clock[0] += EVERY_S - 1
    assert retention.run_if_due(rec.conn) is None
    clock[0] += 1
    assert retention.run_if_due(rec.conn).blocks_by_age == 0
    assert counters["flight_minutes_pruned"] > 0 and counters["flight_bytes"] > 0


# --------------------------------------------------------------------------- the layout on disk


def test_a_frame_comes_back_in_the_wire_types_with_figures_rounded_and_times_exact() -> None:
    import msgspec

    from pmshared import messages as m
    from pmshared.flight_codec import Frame, decode_frame, encode_frame

    t = 1_700_000_000.123456
    proc = m.ProcessInfo(pid=4_194_303, command="big", state="running", cpu=23.456, mem=1_536_454_827,
                         csw=1.000016027, read_bps=123456.7, cgroup="user.slice")
    samples = m.ProcessSamples(
        sender="scorer", incarnation="s", seq=9, sent_at=t + 0.001, timestamp=t, elapsed_ms=1000.37,
        process_count=600, max_score=55, model="pressure", stress={"cpu": 55},
        rogues=[m.ProcessScore(pid=7, command="hog", cpu=187.654, state="running", mem=2_147_483_648, cmprs=None,
                               pageins=0.123, csw=5.55, sysbsd=None, threads=4, score=55, categories=["cpu"],
                               io_bps=None, cgroup="x.service")],
        system=m.SystemStats(cpu_count=2, load1=3.14159, mem_total=16 << 30, psi_cpu=m.PressureStall(some=12.345),
                             psi_io=m.PressureStall(some=0.0, full=0.004), memory_pressure=None),
        sentinel=m.SentinelStats(tick_ms=50.0, window_s=60.0, p99_ms=2.345, max_ms=250.6),
        top=[proc], table=[proc],
    )
    frame = decode_frame(encode_frame(Frame(samples=samples, state=m.TierState(tier=3, tier_since=t - 5,
                                                                               peak_score=70, event_key="a:1"))))
    s = frame.samples
    assert type(s) is m.ProcessSamples and type(s.rogues[0]) is m.ProcessScore and type(s.system) is m.SystemStats
    assert type(s.system.psi_cpu) is m.PressureStall and type(s.sentinel) is m.SentinelStats
    assert s.timestamp == t and s.sent_at == t + 0.001 and frame.state.tier_since == t - 5  # times exact
    # 5.55 is a tie in decimal: scaled and rounded (x10, round, /10: what the recorder does, at half
    # round(v, 1)'s cost) it is 5.6; either is within the precision kept.
    assert (s.rogues[0].cpu, s.rogues[0].pageins, s.rogues[0].csw, s.rogues[0].mem) == (188, 0.12, 5.6, 2_150_000_000)
    assert s.rogues[0].command == "hog" and s.rogues[0].categories == ["cpu"] and s.rogues[0].io_bps is None
    assert (s.system.load1, s.system.psi_cpu.some, s.system.psi_io.full, s.system.mem_total) == (3.1, 12, 0.0, 17_200_000_000)
    assert (s.sentinel.p99_ms, s.sentinel.max_ms, s.elapsed_ms) == (2.3, 251, 1000)
    top = s.top[0]
    assert (top.pid, top.cpu, top.mem, top.read_bps, top.cgroup) == (4_194_303, 23, 1_540_000_000, 123457, "user.slice")
    assert top.csw is None  # a busiest-few entry keeps what it was picked by; the table keeps all
    assert s.table[0].csw == 1.0 and s.table[0].mem == top.mem and frame.state == m.TierState(tier=3, tier_since=t - 5, peak_score=70, event_key="a:1")
    # The JSON of a frame is maps again (what `pmctl history --format json` and bundles show).
    assert msgspec.to_builtins(s.rogues[0])["command"] == "hog"


def test_a_damaged_block_is_skipped_and_counted_never_a_traceback(rec: Recorder) -> None:
    times = rec.seconds(T0, 150)
    first_minute = minute_of(T0)
    rec.conn.execute("UPDATE flight_blocks SET data = x'00112233' WHERE minute = ?", (first_minute,))
    reader = storage.FlightReader(rec.conn)
    frames = reader.frames(T0, T0 + 200)
    assert [f.timestamp for f in frames] == times[20:]  # the damaged first minute (20 s) is missing
    assert reader.bad_blocks >= 1 and reader.frame_at(T0 + 5) is None
    # A late sample for the damaged minute replaces it rather than failing the write.
    rec.record(T0 + 5)
    rec.record(T0 + 151)
    rec.flush()
    assert [f.timestamp for f in storage.FlightReader(rec.conn).frames(T0, T0 + 19)] == [T0 + 5]


@pytest.mark.parametrize("frame", [b"", b"\xc1", b"\x93\x01\x02", b"garbage, not msgpack", b"\x91" * 10,
                                   b"\x92\x01\x02\x03", b"\x92\x01\xc1"])
def test_a_flight_sample_whose_frame_is_not_one_is_rejected_and_its_minute_stays_readable(rec: Recorder, frame) -> None:
    """The record keeps a frame verbatim inside its minute's block: one that is not well-formed
    (a bad sender on the record socket) is rejected at the door, counted, and the others of that
    minute, packed around it, still read back."""
    rec.seconds(T0, 10)
    rec.writer.add(rec.stamp(m.FlightSample, timestamp=T0 + 10, frame=frame))
    rec.seconds(T0 + 11, 60)  # the minute closes and is packed
    assert rec.writer.counters["records_rejected"] == 1
    reader = storage.FlightReader(rec.conn)
    assert [f.timestamp for f in reader.frames(T0, T0 + 19)] == [T0 + i for i in range(20) if i != 10]
    assert reader.bad_blocks == 0


def test_a_flight_sample_at_no_time_is_rejected(rec: Recorder) -> None:
    good = rec.stamp(m.FlightSample, **flight_fields(sample(T0), m.TierState(tier=1)))
    rec.writer.add(msgspec.structs.replace(good, timestamp=float("nan")))
    rec.writer.add(good)
    rec.flush()
    assert rec.writer.counters["records_rejected"] == 1
    assert [f.timestamp for f in storage.FlightReader(rec.conn).frames(T0 - 1, T0 + 1)] == [T0]


def test_a_well_formed_frame_of_the_wrong_shape_costs_only_itself(rec: Recorder) -> None:
    rec.seconds(T0, 10)
    rec.writer.add(rec.stamp(m.FlightSample, timestamp=T0 + 10, frame=b"\x92\x01\x02"))  # [1, 2]
    rec.seconds(T0 + 11, 60)
    reader = storage.FlightReader(rec.conn)
    assert [f.timestamp for f in reader.frames(T0, T0 + 19)] == [T0 + i for i in range(20) if i != 10]
    assert reader.bad_blocks == 1  # that frame, counted; its minute's other 19 read back
