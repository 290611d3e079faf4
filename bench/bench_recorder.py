"""Recorder throughput: event-sample rows per second into SQLite, in batches, and end to end.

Run: ``.venv/bin/python bench/bench_recorder.py [--rows 5000] [--batches 1 10 100 500] [--no-process]``

Each row is an ``EventSample`` carrying a realistic ``ProcessSamples``: 10 rogues with every figure
filled, commands of typical length, a few categories each (about 3 KB of JSON per row).

- storage: ``pmshared.storage.apply`` in transactions of N records (``with conn:`` per batch), on
  a fresh WAL database in a temp directory, as the recorder writes them; wall time, so the WAL
  writes and their syncs are included (SQLite's default synchronous setting is kept);
- process: the real ``python -m recorder`` in a temp home, fed over its ipc "record" socket by one
  PUSH sender; time from the first frame sent until the last row is visible to a reader.

The pipeline writes at most a few rows per second (tier 3 saves one sample a second), so the
figure to look at is the headroom: rows/s here against ~1 row/s needed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pmshared import messages as m  # noqa: E402
from pmshared import storage  # noqa: E402
from pmshared.codec import Stamper  # noqa: E402
from bench._recorder_proc import running_recorder  # noqa: E402
from pmshared.endpoints import ENDPOINTS  # noqa: E402

COMMANDS = ["firefox", "Web Content", "chrome --type=renderer", "python3", "node /usr/lib/code/out/main.js",
            "Xorg", "gnome-shell", "postgres: writer", "java -Xmx4g -jar app.jar", "cc1plus", "rustc",
            "kworker/u8:3-events_unbound", "systemd-journald", "pipewire", "dockerd"]
CATEGORIES = ["cpu", "mem", "cmprs", "threads", "csw", "sysbsd", "pageins"]


def realistic_samples(rng: random.Random, timestamp: float) -> m.ProcessSamples:
    rogues = []
    for i in range(10):
        score = rng.randint(20, 95)
        rogues.append(m.ProcessScore(
            pid=rng.randint(300, 400000), command=rng.choice(COMMANDS), cpu=round(rng.uniform(0, 250), 1),
            state=rng.choice(["running", "sleeping", "sleeping", "stuck"]), mem=rng.randint(1 << 20, 8 << 30),
            cmprs=rng.randint(0, 1 << 30), pageins=round(rng.uniform(0, 800), 1), csw=round(rng.uniform(0, 20000), 1),
            sysbsd=round(rng.uniform(0, 50000), 1), threads=rng.randint(1, 300), score=score,
            categories=sorted(rng.sample(CATEGORIES, rng.randint(1, 3))),
        ))
    rogues.sort(key=lambda r: r.score, reverse=True)
    return m.ProcessSamples(
        sender="scorer", incarnation="bench", seq=1, sent_at=timestamp, timestamp=timestamp, elapsed_ms=1000.4,
        process_count=612, max_score=rogues[0].score, rogues=rogues,
        system=m.SystemStats(cpu_count=8, load1=3.2, load5=2.1, load15=1.4, procs_running=5, procs_blocked=0,
                             cpu_busy_pct=63.0, mem_total=32 << 30, mem_available=12 << 30, swap_used=1 << 30,
                             pageins=120.0, swapins=0.0, swapouts=3.0),
        sentinel=m.SentinelStats(tick_ms=50.0, window_s=60.0, ticks=1200, p50_ms=0.2, p99_ms=3.1, max_ms=9.0),
    )


def event_samples(n: int, incarnation: str = "bench-tiering") -> list[m.Record]:
    rng = random.Random(1)
    stamp = Stamper("tiering", incarnation)
    start = time.time() - n
    key = f"{incarnation}:1"
    return [stamp(m.EventSample, event_key=key, event_start=start, tier=3, samples=realistic_samples(rng, start + i))
            for i in range(n)]


def bench_storage(rows: int, batch: int, workdir: Path) -> tuple[float, int]:
    db = workdir / f"storage-{batch}.db"
    records = event_samples(rows)
    conn = storage.connect(db, mode="create")
    started = time.perf_counter()
    for i in range(0, rows, batch):
        with conn:
            for record in records[i:i + batch]:
                storage.apply(conn, record)
    elapsed = time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return rows / elapsed, db.stat().st_size


def bench_process(rows: int, workdir: Path) -> float:
    with running_recorder(workdir / "home") as (_proc, sockets, db):
        push = sockets.connect("record")
        push.setsockopt(zmq.SNDTIMEO, 10000)
        codec = ENDPOINTS["record"].codec()
        frames = [codec.encode(r) for r in event_samples(rows, "bench-process")]
        reader = storage.open_readonly(db)
        started = time.perf_counter()
        for frame in frames:
            push.send(frame)
        while storage.db_stats(reader).samples < rows:
            if time.perf_counter() - started > 120:
                raise RuntimeError("recorder did not store every row within 120 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        reader.close()
        return rows / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100, 500])
    parser.add_argument("--no-process", action="store_true", help="skip the end-to-end recorder run")
    args = parser.parse_args()
    sample_json = len(msgspec.json.encode(realistic_samples(random.Random(1), time.time())))
    print(f"event-sample rows: 10 rogues each, {sample_json} bytes of JSON per row; {args.rows} rows per run")
    workdir = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    try:
        for batch in args.batches:
            rate, size = bench_storage(args.rows, batch, workdir)
            print(f"storage.apply, {batch:>4} rows per transaction: {rate:9,.0f} rows/s "
                  f"({1e6 / rate:7.1f} µs/row, {size / args.rows:,.0f} bytes/row on disk)")
        if not args.no_process:
            rate = bench_process(args.rows, workdir)
            print(f"recorder process over ipc (PUSH -> PULL -> SQLite): {rate:9,.0f} rows/s")
        print("needed by the pipeline: ~1 row/s (tier 3 saves one sample a second)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
