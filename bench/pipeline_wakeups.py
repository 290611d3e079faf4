"""Where the pipeline's CPU goes, thread by thread: CPU, wake-ups a second, CPU per wake-up.

Run: ``.venv/bin/python bench/pipeline_wakeups.py [--processes 600] [--seconds 40]
[--sentinel-where auto|process|thread]`` (Linux).

An idle monitor's cost is mostly wake-ups (on a VM one costs 30-90 us of CPU before any work), so
this counts them: /proc/PID/task/TID/schedstat gives each thread's run time (ns) and its number of
runs on a CPU, at the start and end of the window. The workers' live children are counted as their
own rows (the collector's pause sentinel process, ``collector/pm-sentinel``): a child's CPU is
in no thread of its parent. Beside the pipeline, over the same window, run the floors of the
pause sentinel's design: a bare Python thread that only sleeps 20 ms in a loop (``time.sleep``,
the main thread blocked in select like the collector's), and the same loop as the only thread of
a small process (the sentinel process's floor). The sentinel's CPU per wake-up is read against
them: what is left above the floor is the tick's own work.

A worker that wakes twice where once would do (a heartbeat due just before its 1 Hz input) shows
as about 2 runs a second on its main thread.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._spawn import Sleepers  # noqa: E402
from bench.pipeline_proc import load, thread_runs, with_children  # noqa: E402
from bench.pipeline_run import PipelineRun  # noqa: E402

# The sentinel's floor: a thread that sleeps one tick at a time and does nothing else.
FLOOR = """
import os, select, threading, time
def tick():
    while True:
        time.sleep(0.02)
threading.Thread(target=tick, daemon=True).start()
r, _ = os.pipe()
while True:
    select.select([r], [], [], 1.0)
"""
# The sentinel process's floor: a process whose only thread sleeps one tick at a time.
FLOOR_PROCESS = """
import time
while True:
    time.sleep(0.02)
"""
FLOORS = ("python floor", "python floor process")
SENTINEL_PROCESS = "collector/pm-sentinel"


def label(name: str, key: str, sentinel_process: bool = False) -> str:
    """A thread of worker ``name`` by its ``each_thread`` key ("main" or "<comm>/<tid>").
    ``sentinel_process``: the collector's sentinel runs in its own process, and the collector's
    other thread only relays its pauses."""
    if "/" in name:  # a worker's child process: the collector's sentinel process
        return name if key == "main" else f"{name} {key.split('/')[0]}"
    if key == "main":
        return f"{name} main"
    if key.startswith("ZMQbg/"):
        return f"{name} zmq {key.split('/')[1].lower()}"
    if name == "collector":
        return f"{name} {'sentinel relay' if sentinel_process else 'sentinel'}"
    return f"{name} thread"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=600, help="processes on the machine (sleepers added)")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--sentinel-where", choices=("auto", "process", "thread"), default=None,
                    help="[sentinel] where for the pipeline (default: the config's default)")
    args = ap.parse_args()
    config = f'[sentinel]\nwhere = "{args.sentinel_where}"\n' if args.sentinel_where else ""
    with Sleepers(lifetime_s=900) as sleepers, PipelineRun(config, "wakeups") as run:
        run.start()
        sleepers.grow_to(args.processes)
        floors = [subprocess.Popen([sys.executable, "-c", code]) for code in (FLOOR, FLOOR_PROCESS)]
        try:
            time.sleep(5.0)  # past the first snapshots and the workers' warm-up
            pids = {**with_children(run.pids()), **{n: f.pid for n, f in zip(FLOORS, floors)}}
            before = {n: thread_runs(p) for n, p in pids.items()}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            dt = time.monotonic() - t0
            after = {n: thread_runs(p) for n, p in pids.items()}
        finally:
            for floor in floors:
                floor.kill()
                floor.wait()
    where = args.sentinel_where or "default"
    print(f"{args.seconds:.0f} s at ~{args.processes} processes, sentinel where = {where}, load {load()}\n")
    print("| thread | % of a core | wake-ups/s | us CPU per wake-up |")
    print("|---|---:|---:|---:|")
    total = 0.0
    for name in pids:
        for key, (ns, runs) in sorted(after[name].items()):
            if key not in before[name] or key.startswith("ZMQbg/Reaper"):
                continue
            d_ns, d_runs = ns - before[name][key][0], runs - before[name][key][1]
            if name == "python floor" and key == "main":
                continue  # its main thread only waits in select
            pct = d_ns / dt / 1e7
            if name not in FLOORS:
                total += pct
            per_wake_us = d_ns / max(d_runs, 1) / 1e3
            print(f"| {label(name, key, SENTINEL_PROCESS in pids)} | {pct:.3f} | {d_runs / dt:.1f} "
                  f"| {per_wake_us:.0f} |")
    print(f"| **pipeline** | **{total:.3f}** | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
