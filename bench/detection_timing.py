"""Where the time goes between a load's start and its first live sample at tier ≥ 2: per live
sample, when the collector took it, when the scorer and tiering sent it, and when it arrived.

Run: ``.venv/bin/python bench/detection_timing.py [--row switch] [--seconds 10] [--runs 1]``
(Linux, stress-ng). One `pmctl up` with every default (bench/pipeline_run.py); each run waits for
tier 1, starts the row's load (tests/loadrows.py) and prints one line per live sample, times in
seconds from the load's start:

- ``taken``: the collector's snapshot time (its sample's end, wall clock), ``elapsed`` the
  interval it covers and ``snap#`` its sequence number (a gap: snapshots the scorer never got);
- ``scored``/``tiered``: when the scorer and tiering sent it (their envelopes' ``sent_at``);
- ``seen``: when it arrived here (received on tiering's live feed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline_run import PipelineRun  # noqa: E402
from tests.livefeed import SampleWatch, Seen  # noqa: E402
from tests.loadrows import ROW, start  # noqa: E402


def line(s: Seen, t0_wall: float, t0_mono: float) -> str:
    smp = s.sample.samples
    return (f"snap#{smp.snapshot_seq:<4} taken {smp.timestamp - t0_wall:6.2f} elapsed {smp.elapsed_ms / 1000:5.2f} "
            f"scored {smp.sent_at - t0_wall:6.2f} tiered {s.sample.sent_at - t0_wall:6.2f} "
            f"seen {s.received - t0_mono:6.2f}  tier {s.tier} max {smp.max_score} {dict(smp.stress)}")


def one_run(watch: SampleWatch, row_key: str, seconds: float, scratch: Path) -> float | None:
    watch.first(lambda s: s.tier == 1, time.monotonic(), 30)
    t0_wall, t0 = time.time(), time.monotonic()
    with ExitStack() as stack:
        start(ROW[row_key], seconds, scratch, stack)
        time.sleep(seconds)
    seen = watch.since(t0 - 1.0)
    for s in seen:
        print("  " + line(s, t0_wall, t0))
    # Published by tiering after the start (a previous row's event may still be stepping down).
    first = next((s for s in seen if s.sample.samples.timestamp >= t0_wall and s.tier >= 2), None)
    return None if first is None else first.sample.sent_at - t0_wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--row", default="switch")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    results = []
    with PipelineRun("", "timing") as run, tempfile.TemporaryDirectory(prefix="pm-timing-") as scratch:
        run.start()
        with SampleWatch() as watch:
            for i in range(args.runs):
                print(f"run {i + 1}: {ROW[args.row].name}")
                results.append(one_run(watch, args.row, args.seconds, Path(scratch)))
                print(f"  -> tier ≥ 2 published after {results[-1]}")
    print("tier ≥ 2 published after:", ", ".join("never" if r is None else f"{r:.2f} s" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
