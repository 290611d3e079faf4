"""Flight-record test helpers: samples and the recorder's write path on a real SQLite file."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from pmshared import messages as m
from pmshared.flight_codec import flight_fields
from pmshared import storage
from pmshared.codec import Stamper
from recorder.writer import BatchWriter
from tests.recorder_helpers import rogue

log = logging.getLogger("test.flight")


def sample(t: float, busy: str = "hog", table: bool = False, score: int = 40) -> m.ProcessSamples:
    proc = m.ProcessInfo(pid=7, command="idle-top", state="sleeping", cpu=0.5, mem=1 << 20)
    return m.ProcessSamples(
        sender="scorer", incarnation="s", seq=int(t), sent_at=t, timestamp=t, elapsed_ms=1000.0,
        process_count=3, max_score=score, rogues=[rogue(42, busy, score)], top=[proc],
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
        self.writer.add(self.stamp(m.FlightSample, **flight_fields(sample(t, **kw), m.TierState(tier=tier))))

    def flush(self) -> None:
        assert self.writer.flush() >= 0 and not self.writer.pending

    def seconds(self, start: float, n: int, **kw) -> list[float]:
        """``n`` samples a second apart from ``start`` (a whole table on each minute), stored."""
        times = [start + i for i in range(n)]
        for t in times:
            self.record(t, table=(int(t) % 60 == 0), **kw)
        self.flush()
        return times

    def close(self) -> None:
        self.conn.close()


