"""Bytes per day of the flight record at 1 Hz (issue 19; target <= 50 MB/day at ~600 processes).

    python bench/flight_size.py [--procs 600] [--minutes 10]

Simulates ``--minutes`` of distinct seconds (bench/flight_gen.py: every sample differs; the whole
table once a minute), stores them through the recorder's write path into a fresh database, and
reports the stored bytes of the packed minutes (what a day is made of) scaled to a day, with the
database file's own growth for comparison. Also the time the write path took per sample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.flight_gen import write  # noqa: E402
from pmshared import storage  # noqa: E402

DAY_S = 86400


def measure(procs: int, minutes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "data.db"
        seconds = minutes * 60 + 1  # the last sample packs the last whole minute
        began = time.process_time()
        write(db, 1_800_000_000.0, seconds, procs=procs, distinct_s=seconds)
        cpu_s = time.process_time() - began
        conn = storage.connect(db, mode="readonly")
        blocks, stored = conn.execute("SELECT count(*), sum(bytes) FROM flight_blocks").fetchone()
        conn.close()
        file_bytes = db.stat().st_size + sum(p.stat().st_size for p in Path(tmp).glob("data.db-*"))
    per_sample = stored / (blocks * 60)
    return {"procs": procs, "minutes": blocks, "bytes_per_sample": round(per_sample),
            "mb_per_day": round(per_sample * DAY_S / 1e6, 1), "file_mb": round(file_bytes / 1e6, 2),
            "write_path_ms_per_sample_incl_simulation": round(cpu_s / seconds * 1000, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procs", type=int, default=600)
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args(argv)
    print(measure(args.procs, args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
