"""The recorder's CPU per flight sample in its store path, in-process and exact (process_time:
user + system, so the fsyncs count), without the wake-up and ZeroMQ costs bench/flight_cpu.py
also sees (its /proc figures have 10 ms ticks: ~0.1 ms a record at 120 records).

    python bench/flight_store_cpu.py [--records 600] [--runs 3] [--gap 0]

Each record is decoded from its wire bytes and stored through BatchWriter on a real file, one
transaction each, as the recorder does at 1 Hz; a minute is packed every 60. Modes:
- ``full``: synchronous=FULL, an fsync on every commit (the recorder before durable points);
- ``durable``: synchronous=NORMAL and recorder/durable.py's points on a clock that advances 1 s a
  record, one commit a record (the recorder before the hold);
- ``pairs``: the recorder now: the same, with flight samples arriving in pairs as tiering sends them
  (tiering/flight_hold.py), so at 1 Hz a commit and a durable point every second record.
``--gap S`` sleeps S seconds between records (wall time, not counted): in the recorder a second
passes between samples and other processes take the caches meanwhile, so every record is paid
cold; back to back (gap 0) the same code runs about twice as fast.
Reported: ms of CPU per record, the best of ``--runs`` (the machine is shared).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.flight_gen import flight_records, simulate  # noqa: E402
from pmshared import storage  # noqa: E402
from pmshared.endpoints import ENDPOINTS  # noqa: E402
from recorder.durable import DURABLE_EVERY_S, DurablePoints, relaxed  # noqa: E402
from recorder.writer import BatchWriter  # noqa: E402

log = logging.getLogger("bench")


def run(frames: list[bytes], mode: str, gap: float = 0.0) -> float:
    codec = ENDPOINTS["record"].codec()
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        conn = storage.connect(tmp / "data.db", mode="create")
        if mode != "full":
            relaxed(conn)
        clock = [0.0]
        writer = BatchWriter(lambda: conn, max_pending=10_000, counters=Counter(), log=log,
                             clock=lambda: clock[0])
        # ``durable`` is the recorder before the hold, whose points were at most every 1.5 s.
        durable = DurablePoints(counters=Counter(), log=log, clock=lambda: clock[0],
                                every_s=1.5 if mode == "durable" else DURABLE_EVERY_S)
        spent = 0.0
        for i, frame in enumerate(frames):
            if gap:
                time.sleep(gap)
            began = time.process_time()
            writer.add(codec.decode(frame))
            if mode == "pairs" and i % 2 == 0 and i + 1 < len(frames):
                pass  # the first of a pair: written with its partner
            elif writer.flush() and mode != "full":
                durable.committed(conn)
            elif mode != "full":
                durable.run_if_due(conn)
            spent += time.process_time() - began
            clock[0] += 1.0
        writer.flush(force=True)
        conn.close()
        return spent / len(frames)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--procs", type=int, default=600)
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between records (cold caches)")
    args = parser.parse_args(argv)
    codec = ENDPOINTS["record"].codec()
    frames = [codec.encode(r) for r in flight_records(simulate(args.records, args.procs, start=time.time() - args.records))]
    best = {mode: min(run(frames, mode, args.gap) for _ in range(args.runs)) for mode in ("full", "durable", "pairs")}
    print({f"{mode}_ms_per_record": round(v * 1000, 3) for mode, v in best.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
