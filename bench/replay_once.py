"""`pmctl replay TIME --once` over 7 days of flight record, wall time including interpreter start
(issue 19; target <= 300 ms).

    python bench/replay_once.py [--db DATA_HOME/pause-monitor/data.db] [--days 7] [--runs 7]

Without --db: writes ``--days`` of synthetic record (bench/flight_gen.py, ~600 processes, through
the recorder's own write path) into a temporary home first, plus a few pauses to start from. Then
runs a fresh ``python -m cli replay TIME --once`` ``--runs`` times for each start: near the
beginning of the record, its middle, its last minute, and ``pause:ID``. Prints the median and the
worst wall time per start, and a bare ``python -c pass`` for the interpreter's own share.

The project's modules are byte-compiled first, as an installed package's are: with
PYTHONDONTWRITEBYTECODE set (as on the CI VM) every run would otherwise compile them again; the
last line measures the coldest case (no bytecode for anything, rich and typer included), for
comparison.
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
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.flight_gen import write  # noqa: E402
from pmshared import messages as m  # noqa: E402
from pmshared import storage  # noqa: E402
from pmshared.codec import Stamper  # noqa: E402


def add_pauses(db: Path, times: list[float]) -> None:
    conn = storage.connect(db, mode="create")
    stamp = Stamper("collector", "collector-bench")
    with conn:
        for i, t in enumerate(times):
            storage.apply(conn, stamp(m.Pause, pause_id=f"collector-bench:{i + 1}", start=t, end=t + 0.8,
                                      duration_ms=800.0, expected_ms=20.0, suspended_ms=0.0))
    conn.close()


def wall_ms(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = (time.perf_counter() - began) * 1000
    if proc.returncode != 0 or ("REPLAY" not in proc.stdout and argv[-1] == "--once"):
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def run(db: Path, runs: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="pmbench"))
    env = {**os.environ, "XDG_DATA_HOME": str(db.parent.parent), "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_RUNTIME_DIR": str(home), "COLUMNS": "160"}
    env.pop("PAUSE_MONITOR_CONFIG", None)
    conn = storage.open_readonly(db)
    first, last = storage.FlightReader(conn).span()
    pause_ids = [row[0] for row in conn.execute("SELECT id FROM pauses ORDER BY start_at")]
    conn.close()
    starts = {
        "start + 1 h": datetime.fromtimestamp(first + 3600).isoformat(timespec="seconds"),
        "middle": datetime.fromtimestamp((first + last) / 2).isoformat(timespec="seconds"),
        "last minute": datetime.fromtimestamp(last - 30).isoformat(timespec="seconds"),
    }
    if pause_ids:
        starts["pause:ID"] = f"pause:{pause_ids[len(pause_ids) // 2]}"
    days = (last - first) / 86400
    print(f"record: {days:.1f} days, {db.stat().st_size / 1e6:.0f} MB ({db})")
    base = [wall_ms([sys.executable, "-c", "pass"], env) for _ in range(runs)]
    report("python -c pass", base)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "cli", "pmshared"], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    for name, spec in starts.items():
        report(name, [wall_ms([sys.executable, "-m", "cli", "replay", spec, "--once"], env) for _ in range(runs)])
    cold = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(home / "no-bytecode")}
    report("middle, no .pyc at all", [wall_ms([sys.executable, "-m", "cli", "replay", starts["middle"], "--once"], cold)
                               for _ in range(runs)])


    shutil.rmtree(home, ignore_errors=True)


def report(name: str, times: list[float]) -> None:
    print(f"{name:<22} median {statistics.median(times):6.0f} ms   worst {max(times):6.0f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="an existing DATA_HOME/pause-monitor/data.db")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    if args.db is not None:
        run(args.db, args.runs)
        return 0
    with tempfile.TemporaryDirectory(prefix="pmreplay") as tmp:
        db = Path(tmp) / "pause-monitor" / "data.db"
        db.parent.mkdir()
        seconds = int(args.days * 86400)
        start = time.time() - seconds
        write(db, start, seconds)
        add_pauses(db, [start + seconds * f for f in (0.1, 0.5, 0.9)])
        run(db, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
