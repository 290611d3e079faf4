"""`pmctl history --around pause:ID` over 7 days of flight record, interpreter start included
(issue 19; target <= 300 ms wall).

    .venv/bin/python bench/flight_history.py [--days 7] [--runs 7] [--keep DIR] [--format table]

Builds (or, with ``--keep DIR``, reuses) a home whose database holds ``--days`` of 1 Hz samples
of a simulated 600-process machine, written through the recorder's write path
(bench/flight_gen.py ``write``), plus one pause in the middle of it. Then runs
`python -m cli history --around pause:ID` (5 minutes either side: ~600 seconds shown) in a
subprocess several times and prints each wall time and the median against the target.
h-replay's ``replay --once`` benchmark can reuse the home: ``--keep DIR`` prints it.

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

from bench.flight_gen import write  # noqa: E402
from pmshared import messages as m  # noqa: E402
from pmshared import storage  # noqa: E402

TARGET_MS = 300.0


def build(home: Path, days: float) -> tuple[int, float]:
    """The database of ``home``: ``days`` of samples ending now and a pause at their middle.
    Returns (pause id, seconds taken)."""
    db = home / "data" / "pause-monitor" / "data.db"
    began = time.perf_counter()
    seconds = int(days * 86400)
    end = time.time()
    if not db.exists():
        print(f"writing {seconds:,} samples into {db} ...", flush=True)
        write(db, end - seconds, seconds)
    conn = storage.connect(db, mode="create")
    try:
        pause_id = conn.execute("SELECT id FROM pauses WHERE pause_id = 'bench:1'").get
        if pause_id is None:
            start = conn.execute("SELECT (min(start_at) + max(end_at)) / 2 FROM flight_blocks").get
            with conn:
                storage.apply(conn, m.Pause(sender="collector", incarnation="bench", seq=1, sent_at=start,
                                            pause_id="bench:1", start=start, end=start + 1.5, duration_ms=1500.0,
                                            expected_ms=50.0))
            pause_id = conn.execute("SELECT id FROM pauses WHERE pause_id = 'bench:1'").get
    finally:
        conn.close()
    return pause_id, time.perf_counter() - began


def time_history(home: Path, pause_id: int, runs: int, output_format: str) -> list[float]:
    env = dict(os.environ)
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_RUNTIME_DIR=str(home / "run"), NO_COLOR="1")
    env.pop("PAUSE_MONITOR_CONFIG", None)
    cmd = [sys.executable, "-m", "cli", "history", "--around", f"pause:{pause_id}", "--format", output_format]
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed = (time.perf_counter() - started) * 1000
        if proc.returncode != 0:
            raise SystemExit(f"pmctl history failed ({proc.returncode}): {proc.stderr.strip()}")
        if output_format == "table" and "samples from" not in proc.stdout:
            raise SystemExit(f"pmctl history printed no samples: {proc.stdout[:500]}")
        if i:  # the first run warms the page cache and .pyc files; not counted
            times.append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the home in this directory")
    parser.add_argument("--format", default="table", choices=("table", "json", "csv"))
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="pmflight"))
    try:
        pause_id, took = build(home, args.days)
        db = home / "data" / "pause-monitor" / "data.db"
        print(f"home {home}: {db.stat().st_size / 1e6:.0f} MB database, pause {pause_id} (ready in {took:.0f} s)")
        (home / "run").mkdir(mode=0o700, exist_ok=True)
        times = time_history(home, pause_id, args.runs, args.format)
        median = statistics.median(times)
        print(f"pmctl history --around pause:{pause_id} --format {args.format} wall times (ms): "
              + ", ".join(f"{t:.0f}" for t in times))
        print(f"median {median:.0f} ms (target {TARGET_MS:.0f} ms): {'OK' if median <= TARGET_MS else 'TOO SLOW'}")
        return 0 if median <= TARGET_MS else 1
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
