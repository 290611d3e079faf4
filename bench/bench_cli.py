"""How fast `pmctl events` answers over a large database: interpreter start + query + table.

Builds a database of N events (default 100,000) with the storage module's own writes (the
recorder's path: ``storage.apply`` in one transaction), each event with its opening, one peak
sample holding a few rogue processes, and its close; every 50th event has a pause. Then runs
`python -m cli events` in a subprocess several times against it (a temp HOME, output to a pipe)
and prints each wall time and the median against the 300 ms target.

    .venv/bin/python bench/bench_cli.py [--events 100000] [--runs 7] [--keep DIR]

Exit status 0 when the median is within the target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pmshared import messages as m  # noqa: E402
from pmshared import storage  # noqa: E402
from pmshared.codec import Stamper  # noqa: E402

TARGET_MS = 300.0


def _rogues(i: int) -> list[m.ProcessScore]:
    return [
        m.ProcessScore(pid=1000 + (i + k) % 30000, command=f"proc-{(i + k) % 97}", cpu=12.5 * (k + 1),
                       state="running", mem=(k + 1) << 24, cmprs=None, pageins=float(k), csw=10.0 * k,
                       sysbsd=None, threads=k + 1, score=min(100, 30 + (i * 7 + k * 13) % 70),
                       categories=["cpu"])
        for k in range(4)
    ]


def build(path: Path, events: int) -> float:
    """Write ``events`` events through storage.apply; returns seconds taken."""
    started = time.perf_counter()
    conn = storage.connect(path, mode="create")
    tiering = Stamper("tiering", "bench-tiering")
    collector = Stamper("collector", "bench-collector")
    t0 = time.time() - events * 600.0  # one event every 10 minutes, ending now
    with conn:  # one transaction: each apply is a savepoint inside it
        storage.apply(conn, tiering(m.TieringStarted))
        for i in range(events):
            key = f"bench-tiering:{i + 1}"
            start = t0 + i * 600.0
            rogues = _rogues(i)
            peak = max(r.score for r in rogues)
            storage.apply(conn, tiering(m.EventOpened, event_key=key, start=start, tier=2, score=peak))
            sample = m.ProcessSamples(sender="scorer", incarnation="bench-scorer", seq=i + 1, sent_at=start + 1,
                                      timestamp=start + 1, elapsed_ms=1000.0, process_count=400,
                                      max_score=peak, rogues=rogues)
            storage.apply(conn, tiering(m.EventSample, event_key=key, event_start=start, tier=2,
                                        action="tier2_entry", samples=sample))
            storage.apply(conn, tiering(m.EventClosed, event_key=key, start=start, end=start + 30.0,
                                        peak_score=peak, peak_tier=2))
            if i % 50 == 0:
                storage.apply(conn, collector(m.Pause, pause_id=f"bench-collector:{i}", start=start + 5,
                                              end=start + 6.5, duration_ms=1500.0, expected_ms=50.0))
    conn.close()
    return time.perf_counter() - started


def time_events(home: Path, runs: int) -> list[float]:
    env = dict(os.environ)
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_RUNTIME_DIR=str(home / "run"), NO_COLOR="1")
    env.pop("PAUSE_MONITOR_CONFIG", None)
    cmd = [sys.executable, "-m", "cli", "events"]
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed = (time.perf_counter() - started) * 1000
        if proc.returncode != 0:
            raise SystemExit(f"pmctl events failed ({proc.returncode}): {proc.stderr.strip()}")
        if "proc-" not in proc.stdout:
            raise SystemExit("pmctl events printed no events")
        if i:  # the first run warms the page cache and .pyc files; not counted
            times.append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the database in this directory")
    args = parser.parse_args()

    home = args.keep or Path(tempfile.mkdtemp(prefix="pmbench"))
    db = home / "data" / "pause-monitor" / "data.db"
    try:
        if not db.exists():
            print(f"building {args.events:,} events in {db} ...", flush=True)
            took = build(db, args.events)
            print(f"built in {took:.1f} s ({db.stat().st_size / 1e6:.1f} MB)")
        (home / "run").mkdir(mode=0o700, exist_ok=True)
        times = time_events(home, args.runs)
        median = statistics.median(times)
        print("pmctl events wall times (ms): " + ", ".join(f"{t:.0f}" for t in times))
        print(f"median {median:.0f} ms (target {TARGET_MS:.0f} ms): {'OK' if median <= TARGET_MS else 'TOO SLOW'}")
        return 0 if median <= TARGET_MS else 1
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
