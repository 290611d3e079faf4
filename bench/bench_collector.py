"""CPU cost of the Linux collector backend against procps top/ps, psutil and the kernel floor.

Run: ``.venv/bin/python bench/bench_collector.py`` (Linux; a few minutes; root not needed).

For each process count (about 100, 500 and 2,000 — sleepers are spawned to get there and reaped
afterwards) it measures, in the same run and at the same count, the CPU time (user + system) of:

- ours: ``LinuxBackend.sample()`` in steady state, called once a second like the worker does;
- ours, refresh every sample: the same with ``refresh_every=1`` (stat, schedstat and status of
  every process read and parsed every sample; io and thread files only for processes that ran,
  which schedstat tells exactly): the cost without the "skip what did not change" shortcuts;
- psutil with the same fields (name, ppid, status, cpu_times, memory_full_info for swap,
  num_ctx_switches, io_counters, num_threads, uids), one pass over ``process_iter``;
- procps ``top -b -d 1``: its cost over N+1 refreshes minus its cost for 1 (startup and the first
  refresh), divided by N, read from the child's rusage;
- procps ``ps -eo pid,ppid,stat,rss,nlwp,maj_flt,uid,time,comm`` (one whole run, startup included);
- the kernel floor: list /proc and open/read/close ``stat`` and ``status`` of every process, no
  parsing — what any collector that reads those two files must pay the kernel.

The sleepers are idle, as most processes on a real machine are in any given second (the
processes already on the machine are whatever they are). A last row adds ``--active`` processes
that wake up 20 times a second, so that they run in every interval: the case the shortcuts cannot
skip.

Medians over the iterations. Machine load from elsewhere inflates everything a bit; the ratios
measured in the same run are the figures that matter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._spawn import Sleepers  # noqa: E402
from collector.linux import LinuxBackend  # noqa: E402

# The figures at ~590 processes on the author's machine, in µs per process.
ANCHORS = {"top": 14.0, "psutil": 90.0, "floor": 4.3}
TARGET_TOP, TARGET_FLOOR = 0.5, 2.0
PS_FIELDS = "pid,ppid,stat,rss,nlwp,maj_flt,uid,time,comm"
WORK = ("ran", "parsed", "io_reads", "status_reads", "threads_read", "new", "gone")


def cpu_now() -> float:
    return time.process_time()


def kernel_floor(proc: str = "/proc") -> None:
    """open/read/close stat and status of every process; no parsing."""
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        for f in ("stat", "status"):
            try:
                fd = os.open(f"{proc}/{name}/{f}", os.O_RDONLY)
            except OSError:
                continue
            try:
                os.read(fd, 4096)
            except OSError:
                pass
            finally:
                os.close(fd)


def psutil_pass(psutil) -> int:
    """One pass with the fields our backend produces; Process objects are cached across passes."""
    n = 0
    for p in psutil.process_iter():
        try:
            with p.oneshot():
                p.name()
                p.ppid()
                p.status()
                p.cpu_times()
                p.memory_full_info()
                p.num_ctx_switches()
                p.num_threads()
                p.uids()
                try:
                    p.io_counters()
                except psutil.AccessDenied:
                    pass
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
        n += 1
    return n


def child_cpu(argv: list[str]) -> float:
    """CPU seconds (user + system) one command used, from wait4's rusage."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, ru = os.wait4(p.pid, 0)
    p.returncode = 0  # reaped here; keep Popen from trying again
    return ru.ru_utime + ru.ru_stime


class TopRun(threading.Thread):
    """``top -b -d 1 -n N+1`` in the background; ``per_refresh`` once joined."""

    def __init__(self, refreshes: int) -> None:
        super().__init__(daemon=True)
        self.refreshes = refreshes
        self.cost_n1 = self.cost_1 = 0.0

    def run(self) -> None:
        self.cost_1 = child_cpu(["top", "-b", "-d", "1", "-n", "1"])
        self.cost_n1 = child_cpu(["top", "-b", "-d", "1", "-n", str(self.refreshes + 1)])

    @property
    def per_refresh(self) -> float:
        return (self.cost_n1 - self.cost_1) / self.refreshes


def measure(seconds: int, psutil) -> dict[str, float]:
    """Per-process CPU µs of each method with the processes the machine has now."""
    ours = LinuxBackend()
    full = LinuxBackend(refresh_every=1)
    results: dict[str, list[float]] = {k: [] for k in ("ours", "full", "floor", "psutil")}
    counts: list[int] = []
    try:
        t = cpu_now()
        procs, _ = ours.sample()
        first = (cpu_now() - t) / max(len(procs), 1) * 1e6
        full.sample()
        if psutil:
            psutil_pass(psutil)
        time.sleep(1)
        for _ in range(2):  # settle: every process has had its second sample
            ours.sample()
            full.sample()
            time.sleep(1)
        c0 = dict(ours.counters)

        top = TopRun(seconds)
        top.start()
        next_tick = time.monotonic()
        for _ in range(seconds):
            next_tick += 1.0
            t = cpu_now()
            procs, _ = ours.sample()
            t1 = cpu_now()
            n = len(procs)
            counts.append(n)
            results["ours"].append((t1 - t) / n)
            t = cpu_now()
            full.sample()
            results["full"].append((cpu_now() - t) / n)
            t = cpu_now()
            kernel_floor()
            results["floor"].append((cpu_now() - t) / n)
            if psutil:
                t = cpu_now()
                m = psutil_pass(psutil)
                results["psutil"].append((cpu_now() - t) / m)
            time.sleep(max(next_tick - time.monotonic(), 0.0))
        top.join()
        work = {k: (ours.counters[k] - c0[k]) / seconds for k in WORK}
    finally:
        ours.close()
        full.close()

    n = statistics.median(counts)
    ps_runs = [child_cpu(["ps", "-eo", PS_FIELDS]) for _ in range(5)]
    out = {k: statistics.median(v) * 1e6 for k, v in results.items() if v}
    out["top"] = top.per_refresh / n * 1e6
    out["ps"] = statistics.median(ps_runs) / n * 1e6
    out["first"] = first
    out["n"] = n
    out.update({f"work_{k}": v for k, v in work.items()})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="100,500,2000", help="process counts to measure at")
    ap.add_argument("--seconds", type=int, default=10, help="samples (1/s) per count")
    ap.add_argument("--active", type=int, default=300, help="processes running every interval, last row")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    try:
        import psutil
    except ImportError:
        psutil = None
        print("psutil not installed: its column is skipped", file=sys.stderr)

    rows = []
    with Sleepers() as sleepers:
        for target in counts:
            sleepers.grow_to(target)
            r = measure(args.seconds, psutil)
            rows.append(r)
            print(
                f"  {r['n']:.0f} processes: ours {r['ours']:.2f} µs/process, "
                f"floor {r['floor']:.2f}, top {r['top']:.2f}",
                file=sys.stderr,
            )
        if args.active:
            sleepers.spawn_active(args.active)
            time.sleep(1.0)  # interpreters started
            r = measure(args.seconds, psutil)
            r["label"] = f"{r['n']:.0f} ({args.active} active)"
            rows.append(r)
    print_table(rows)
    print()
    for r in rows:
        ok = r["ours"] <= TARGET_TOP * r["top"] and r["ours"] <= TARGET_FLOOR * r["floor"]
        print(f"target (ours ≤ {TARGET_TOP}× top and ≤ {TARGET_FLOOR}× kernel floor) at {label(r)}: "
              f"{'met' if ok else 'NOT met'}")
    return 0


def label(r: dict) -> str:
    return r.get("label") or f"{r['n']:.0f}"


def print_table(rows: list[dict[str, float]]) -> None:
    cols = ["ours", "full", "floor", "top", "ps", "psutil"]
    heads = {
        "ours": "ours",
        "full": "ours, refresh every sample",
        "floor": "kernel floor",
        "top": "top/refresh",
        "ps": "ps -eo",
        "psutil": "psutil",
    }
    print("\nCPU time per process per snapshot, µs (median; user+system):\n")
    print(f"| processes | {' | '.join(heads[c] for c in cols)} | ours ms/snapshot |")
    print(f"|---:|{'---:|' * len(cols)}---:|")
    for r in rows:
        cells = " | ".join(f"{r[c]:.2f}" if c in r else "—" for c in cols)
        print(f"| {label(r)} | {cells} | {r['ours'] * r['n'] / 1000:.2f} |")
    print("\nRatios (same run, same process count):\n")
    print("| processes | ours/top | ours/floor | ours/psutil | refresh-every/floor | refresh-every/top |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ps = f"{r['ours'] / r['psutil']:.3f}" if "psutil" in r else "—"
        print(
            f"| {label(r)} | {r['ours'] / r['top']:.2f} | {r['ours'] / r['floor']:.2f} | {ps} "
            f"| {r['full'] / r['floor']:.2f} | {r['full'] / r['top']:.2f} |"
        )
    print("\nThis machine against the issue's anchors (µs/process at ~590 processes there):\n")
    print("| processes | top here/anchor | psutil here/anchor | floor here/anchor |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        ps = "—"
        if "psutil" in r:
            ps = f"{r['psutil']:.1f}/{ANCHORS['psutil']:.0f} = {r['psutil'] / ANCHORS['psutil']:.2f}"
        print(
            f"| {label(r)} | {r['top']:.1f}/{ANCHORS['top']:.0f} = {r['top'] / ANCHORS['top']:.2f} | {ps} "
            f"| {r['floor']:.1f}/{ANCHORS['floor']} = {r['floor'] / ANCHORS['floor']:.2f} |"
        )
    print("\nWork of ours per snapshot in steady state (processes that ran, stat lines parsed, io and")
    print("status reads, thread files read, processes new and gone) and its first, cold snapshot:")
    for r in rows:
        work = ", ".join(f"{k} {r['work_' + k]:.1f}" for k in WORK)
        print(f"  {label(r)} processes: {work}; first snapshot {r['first']:.1f} µs/process")


if __name__ == "__main__":
    sys.exit(main())
