"""The recorder process keeps the flight record within retention.flight_days and flight_max_mb on
its own (at start, then every minute), oldest minutes first, a pinned event's minutes never.

A real recorder child on a real database, written beforehand through the recorder's write path
(ten days, one sample a minute: every sample a minute block of its own).
"""

from __future__ import annotations

import re
import signal
import time

from pmshared import storage
from tests.flight_helpers import Recorder
from tests.recorder_helpers import RecorderProcess, TempHome, Tiering, wait_for

DAY = 86400.0


def test_the_recorder_prunes_by_age_and_size_and_keeps_a_pinned_event(tmp_path):
    home = TempHome(tmp_path, "[retention]\nflight_days = 7\nflight_max_mb = 1\n")
    now = time.time()
    start = now - 10 * DAY
    rec = Recorder(home.db_path)
    for i in range(int(10 * DAY / 60)):
        rec.record(start + i * 60)
    rec.record(now)
    rec.flush()
    pinned_at = start + DAY + 30  # nine days ago: beyond both limits, 30 s after a sample
    tiering = Tiering(start=pinned_at)
    key = tiering.new_key()
    rec.writer.add(tiering.opened(key, pinned_at))
    rec.writer.add(tiering.closed(key, pinned_at, pinned_at + 60, 70))
    rec.flush()
    storage.set_status(rec.conn, rec.conn.execute("SELECT id FROM events").get, "pinned")
    total = rec.conn.execute("SELECT sum(bytes) FROM flight_blocks").get
    rec.close()
    assert total > 1.5 * 10**6  # more than the size limit, or the test proves nothing

    proc = RecorderProcess(home)
    try:
        proc.wait_ready()

        def pruned():
            conn = storage.open_readonly(home.db_path)
            try:
                kept = [t for (t,) in conn.execute("SELECT start_at FROM flight_blocks ORDER BY start_at")]
                size = conn.execute("SELECT sum(bytes) FROM flight_blocks").get
            finally:
                conn.close()
            return size <= 10**6 and (kept, size)

        kept, size = wait_for(pruned, 20, lambda: f"the prune; log:\n{proc.log()}")
    finally:
        assert proc.stop(signal.SIGTERM) == 0
    # The pinned event's minute (with the 5 minutes before it) stayed; everything else older
    # than the newest ~1 MB went, the oldest first.
    old = [t for t in kept if t < now - 7 * DAY]
    assert pinned_at - 30 in old and all(pinned_at - 300 - 60 <= t <= pinned_at + 60 for t in old), old
    assert kept[-1] >= now - 600
    log = proc.log_path.read_text()
    assert re.search(r"pruned [1-9]\d* minutes by age, [1-9]\d* by size", log), log
