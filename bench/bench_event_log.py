"""Event log cost: what one line costs the recorder, and how long the lines are.

Run: ``.venv/bin/python bench/bench_event_log.py [--lines 20000]``

Feeds ``EventLog.stored`` (recorder/event_log.py) pauses and forensics records (5 culprits) in a
temp directory, with the file rotated at 1 MiB (keep 3) and the journal pointed at (a) a path
with no socket (journald absent: the common case off systemd) and (b) a bound unix datagram
socket drained by nobody but the kernel's queue (sends past its queue are counted drops). Wall
time per record, one core of a shared machine: noisy, but the pipeline logs a handful of lines
per pause, so the figure to read is the headroom.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pmshared import messages as m  # noqa: E402
from pmshared.config import EventLogConfig  # noqa: E402
from pmshared.journald import JournalSender  # noqa: E402
from recorder.event_entries import entry_for, json_line  # noqa: E402
from recorder.event_log import EventLog  # noqa: E402


def records(n: int) -> list[m.Record]:
    now = time.time()
    out: list[m.Record] = []
    culprits = [m.Culprit(pid=1000 + i, command=f"worker-process-{i}", score=90 - i, categories=["cpu", "io"],
                          cgroup="user.slice/app.service") for i in range(5)]
    for i in range(n // 2):
        pid = f"bench-collector:{i}"
        out.append(m.Pause(sender="collector", incarnation="bench-collector", seq=i, sent_at=now, pause_id=pid,
                           start=now + i, end=now + i + 1.5, duration_ms=1500.0, expected_ms=20.0))
        out.append(m.ForensicsDone(sender="forensics", incarnation="bench-forensics", seq=i, sent_at=now + i + 2,
                                   pause_ids=[pid], bundle_path=f"/home/u/.local/share/pause-monitor/events/{i}",
                                   artifacts=[], culprits=culprits, cause="cpu"))
    return out


def run(batch: list[m.Record], journal_path: str, where: Path) -> tuple[float, Counter]:
    counters = Counter()
    elog = EventLog(EventLogConfig(max_bytes=1 << 20, keep=3), where / "events.jsonl", counters=counters,
                    log=logging.getLogger("bench"), host="bench-host",
                    journal=JournalSender(journal_path, counters))
    started = time.perf_counter()
    for record in batch:
        elog.stored(None, [record])
    elog.close()
    return time.perf_counter() - started, counters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    batch = records(args.lines)
    sizes = {type(r).__name__: len(json_line(entry_for(r, "bench-host"))) for r in batch[:2]}
    print(f"line bytes: {sizes}")
    with tempfile.TemporaryDirectory(prefix="pmbench-", dir="/tmp") as tmp:
        where = Path(tmp)
        seconds, counters = run(batch, str(where / "no-journal"), where / "a")
        print(f"journald absent: {seconds / len(batch) * 1e6:.1f} us per line "
              f"({counters['event_log_lines']} lines, {counters['event_log_rotations']} rotations)")
        sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sink.bind(str(where / "journal"))
        try:
            seconds, counters = run(records(args.lines), str(where / "journal"), where / "b")
        finally:
            sink.close()
        print(f"journald socket: {seconds / len(batch) * 1e6:.1f} us per line "
              f"(sent {counters['journal_sent']}, dropped at a full queue {counters['journal_failed']})")


if __name__ == "__main__":
    main()
