"""storage.flight_figures: the charted figures of each second, read without whole frames, must be
exactly what FlightReader's frames hold, from packed minutes and from the recent rows alike."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from pmshared import messages as m
from pmshared.flight_codec import flight_fields
from pmshared import storage
from pmshared.codec import Stamper
from pmshared.storage.flight_figures import figures_in_window
from recorder.writer import BatchWriter

T0 = 1_700_000_020.0  # 40 s into a minute: a partial block, whole blocks, then recent rows


def write(db: Path, seconds: int) -> None:
    conn = storage.connect(db, mode="create")
    writer = BatchWriter(lambda: conn, max_pending=10_000, counters=Counter(), log=logging.getLogger("t"))
    stamp = Stamper("tiering", "tiering-F")
    for i in range(seconds):
        t = T0 + i
        samples = m.ProcessSamples(
            sender="scorer", incarnation="s", seq=i + 1, sent_at=t, timestamp=t, elapsed_ms=1000.0,
            process_count=9, max_score=i % 101,
            rogues=[m.ProcessScore(pid=5, command="busy", cpu=90.0, state="running", mem=1, cmprs=None,
                                   pageins=None, csw=None, sysbsd=None, threads=1, score=i % 101,
                                   categories=["cpu"])],
            top=[m.ProcessInfo(pid=6, command="other", state="sleeping", cpu=1.0)],
            table=[m.ProcessInfo(pid=6, command="other", state="sleeping")] if i % 60 == 0 else None,
            system=m.SystemStats(psi_cpu=m.PressureStall(some=float(i % 50)), psi_io=None)
            if i % 7 else None,
            sentinel=m.SentinelStats(tick_ms=20, window_s=60, max_ms=99.0, interval_max_ms=float(i % 30))
            if i % 5 else None,
        )
        writer.add(stamp(m.FlightSample, **flight_fields(samples, m.TierState(tier=1))))
    writer.flush()
    conn.close()


def charted(s) -> tuple:
    """What a chart shows of a frame's ProcessSamples, in storage's Figures order."""
    system, sentinel = s.system, s.sentinel

    def some(name):
        stall = None if system is None else getattr(system, name)
        return None if stall is None else stall.some

    late = None
    if sentinel is not None:
        late = sentinel.interval_max_ms if sentinel.interval_max_ms is not None else sentinel.max_ms
    return (s.timestamp, s.max_score, some("psi_cpu"), some("psi_memory"), some("psi_io"), late)


def test_figures_equal_the_frames_from_blocks_and_recent_rows(tmp_path: Path):
    db = tmp_path / "data.db"
    write(db, 150)
    conn = storage.open_readonly(db)
    try:
        assert conn.execute("SELECT count(*) FROM flight_blocks").get >= 2
        assert conn.execute("SELECT count(*) FROM flight_recent").get >= 1
        frames = storage.FlightReader(conn).frames(T0 - 10, T0 + 200)
        figures = list(figures_in_window(conn, T0 - 10, T0 + 200))
        assert len(figures) == len(frames) == 150
        assert [tuple(f) for f in figures] == [charted(f.samples) for f in frames]
        assert any(f.psi_cpu for f in figures) and any(f.late_ms for f in figures)
        inside = list(figures_in_window(conn, T0 + 15, T0 + 145))  # edges inside a block and the recent rows
        assert [f.timestamp for f in inside] == [T0 + i for i in range(15, 146)]
        assert list(figures_in_window(conn, T0 + 500, T0 + 600)) == []
    finally:
        conn.close()


def test_figures_span_is_the_recorded_part_of_the_window(tmp_path: Path):
    from pmshared.storage.flight_figures import figures_span

    db = tmp_path / "data.db"
    write(db, 150)
    conn = storage.open_readonly(db)
    try:
        assert figures_span(conn, T0 - 1000, T0 + 1000) == (T0, T0 + 149)
        assert figures_span(conn, T0 + 15, T0 + 100) == (T0 + 15, T0 + 100)
        assert figures_span(conn, T0 + 500, T0 + 600) is None
    finally:
        conn.close()
