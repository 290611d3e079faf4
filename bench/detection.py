"""The detection matrix: does `pmctl up`, with the default config, see real stress and name who
causes it, and stay quiet when the machine is?

Run: ``.venv/bin/python bench/detection.py`` (Linux, stress-ng, root for the memory-cgroup row;
about 4 minutes; ``--long`` makes the idle period 5 minutes instead of 30 s). Exits 1 when a target
is missed, naming each miss; 2 when it cannot run here (it says why and how).

One pipeline (bench/pipeline_run.py: a real `pmctl up` from the repository's Procfile, in a
temporary home with an empty config file, so every default) runs every row in turn:

- loads, 12 s each (stress-ng, and memory pressure from a file-backed working set 4× the limit
  of a memory cgroup: see tests/stressload.py): time from the start to tiering's publication of
  the first live sample at tier ≥ 2 (target ≤ 3 s), the event it opened and whether it closed after the load, the event's
  top culprit (must be the load's process: its worker, or for a fork storm the worker that forks)
  and that culprit's categories (must include the row's), the peak of the score the tiers follow;
- quiet rows: idle, and everyday work (a Python loop at ~20 % of a core, tar | gzip and
  `git status` every second): events opened (target 0);
- the collector stopped with SIGSTOP for 0.5 s and 2 s: no event may name a pipeline process
  and no process may show more CPU than every core together (100 % × cores); the pause it
  causes is shown with its cause and culprits.

Each row waits for tier 1 first (the previous row's event closed), then measures how busy the
machine is for a second ("machine before"): other work on the machine shows up in every figure
(its processes can outscore the load, hold an event open, or open one in a quiet row), so a miss
in a row that did not start near idle says as much about the machine as about the monitor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.loadrows import CORES, ROWS, missing  # noqa: E402
from bench.detection_measure import Result, measure_load, measure_quiet, measure_stop  # noqa: E402
from bench.pipeline_proc import load  # noqa: E402
from bench.pipeline_run import REPO, PipelineRun  # noqa: E402
from pmshared.config import TiersConfig  # noqa: E402
from tests.livefeed import SampleWatch  # noqa: E402
from tests.stressload import stress_ng_missing  # noqa: E402

DEFAULT_CONFIG = ""  # a new user's first run: every default


def say(text: str = "") -> None:
    print(text, flush=True)


def table(results: list[Result]) -> str:
    lines = ["| row | tier ≥ 2 after (≤ 3 s) | top culprit | its categories / pause | event | "
             "peak stress | machine before | verdict |", "|---|---:|---|---|---|---|---|---|"]
    for r in results:
        t2 = "—" if r.kind != "load" else ("never" if r.to_tier2_s is None else f"{r.to_tier2_s:.1f} s")
        verdict = f"skipped: {r.skipped}" if r.skipped else ("MISS" if r.misses else "ok")
        lines.append(f"| {r.name} | {t2} | {r.culprit} | {r.category} | {r.event} | {r.peak} | {r.before} "
                     f"| {verdict} |")
    return "\n".join(lines)


def run_rows(args: argparse.Namespace, run: PipelineRun, watch: SampleWatch, scratch: Path) -> list[Result]:
    results: list[Result] = []
    deescalation = TiersConfig().deescalation_delay_s
    for row in ROWS:
        if args.only and args.only not in (row.key, "loads"):
            continue
        if why := missing(row):
            results.append(Result(row.name, "load", skipped=why))
        else:
            results.append(measure_load(run, watch, row, args.seconds, scratch, deescalation))
        say(f"  {results[-1].name}: {results[-1].event}; misses: {results[-1].misses or 'none'}")
    if args.only in ("", "quiet"):
        results.append(measure_quiet(run, watch, f"idle {args.idle:.0f} s", args.idle, False, REPO))
        say(f"  {results[-1].name}: {results[-1].event}")
        results.append(measure_quiet(run, watch, f"light everyday work {args.light:.0f} s", args.light, True, REPO))
        say(f"  {results[-1].name}: {results[-1].event}")
    if args.only in ("", "stop"):
        for stop_s in (0.5, 2.0):
            results.append(measure_stop(run, watch, stop_s, watch_s=8.0))
            say(f"  {results[-1].name}: {results[-1].event}; {results[-1].category}")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--long", action="store_true", help="idle for 5 minutes (default 30 s)")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each load")
    ap.add_argument("--light", type=float, default=30.0, help="length of the everyday-work row")
    ap.add_argument("--only", default="", help="one row: " + ", ".join(r.key for r in ROWS)
                    + ", or all 'loads', 'quiet' (idle and everyday work), 'stop' (collector stops)")
    args = ap.parse_args()
    args.idle = 300.0 if args.long else 30.0
    if not sys.platform.startswith("linux"):
        ap.error("this benchmark reads /proc and starts stress-ng: Linux only")
    if why := stress_ng_missing():
        print(f"detection: {why}", file=sys.stderr)
        return 2
    started = time.monotonic()
    say(f"detection: {CORES} cores, load {load()}, default config, loads {args.seconds:.0f} s, "
        f"idle {args.idle:.0f} s{' (--long)' if args.long else ' (--long: 5 min)'}")
    with PipelineRun(DEFAULT_CONFIG, "detection") as run, \
            tempfile.TemporaryDirectory(prefix="pm-detect-") as scratch:
        first = run.start()
        with SampleWatch() as watch:
            results = run_rows(args, run, watch, Path(scratch))
        now = run.workers()
        restarted = [f"{w} ({now.get(w, ('gone', 0))[0]})" for w, pid in first.items()
                     if now.get(w, ("", 0)) != ("running", pid)]
        if restarted:  # the supervisor's own lines say why (exit, watchdog, ...)
            lines = [ln for ln in run.output().splitlines() if ln.startswith("supervisor")]
            say("supervisor's log:\n" + "\n".join(lines[-25:]))
    say(f"\n## Detection matrix ({CORES} cores, default config; load after: {load()})\n")
    say(table(results))
    misses = [(r.name, m) for r in results for m in r.misses]
    if restarted:
        misses.append(("pipeline", f"workers restarted or not running: {', '.join(restarted)}"))
    say(f"\ntotal run time {(time.monotonic() - started) / 60:.1f} min")
    if misses:
        say("\nMissed targets:")
        for name, miss in misses:
            say(f"- {name}: {miss}")
        return 1
    say("\nEvery target met.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
