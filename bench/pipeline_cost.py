"""The pipeline's own cost: CPU against procps top over the same window, memory as PSS, and what
each worker's imports weigh.

CPU: utime + stime + cutime + cstime (so children a worker ran and reaped count too) of the
supervisor and every worker, from /proc/PID/stat at the start and end of the window; top's from
its own /proc/PID/stat over exactly the same window (its startup and first refresh happen before
the window opens), and its whole-life rusage from wait4 for reference. The per-thread split comes
from /proc/PID/task/TID/schedstat (nanoseconds): main loop, sentinel, ZeroMQ's I/O threads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.pipeline_proc import (
    activity_between,
    cpu_s,
    live_children,
    load,
    machine_activity,
    process_count,
    smaps_rollup_kb,
    threads_runtime_s,
    with_children,
)
from bench.pipeline_run import REPO


@dataclass
class CpuResult:
    seconds: float
    processes: float
    load_before: str
    load_after: str
    per_process: dict[str, float]  # name -> % of one core
    threads: dict[str, dict[str, float]]  # name -> thread -> % of one core (schedstat)
    top_pct: float  # top over the same window, % of one core
    top_rusage_s: float  # top's whole life (startup and first refresh included), CPU seconds
    top_life_s: float
    ran: int = 0  # processes that used CPU during the window (whole machine)
    created: int = 0  # processes and threads created during the window (whole machine)
    restarts: list[str] = field(default_factory=list)

    @property
    def total_pct(self) -> float:
        return sum(self.per_process.values())


SENTINEL_PROCESS = "collector/pm-sentinel"


def sentinel_pct(r: CpuResult, collector: str = "collector") -> float:
    """The pause sentinel's CPU (% of a core) in either mode: its process, or the collector's thread
    that is neither main nor ZeroMQ's (in process mode that thread only relays pauses)."""
    return r.per_process.get(f"{collector}/pm-sentinel", 0.0) + r.threads.get(collector, {}).get("thread", 0.0)


def _children_cpu(pids: dict[str, int]) -> dict[tuple[str, int], float]:
    """(``"<worker>/<comm>"``, pid) -> CPU seconds of each process's live children that are not in
    ``pids`` themselves (the supervisor's children are the workers)."""
    kids, listed = live_children(pids.values()), set(pids.values())
    return {(f"{name}/{comm}", child): cpu_s(child)
            for name, pid in pids.items() for child, comm in kids.get(pid, []) if child not in listed}


def _thread_label(key: str) -> str:
    if key == "main":
        return "main"
    if key.startswith("ZMQbg/"):
        return "zmq " + key.split("/")[1].lower()
    return "thread"  # the collector's sentinel, forensics' capture threads


def measure_cpu(pids: dict[str, int], seconds: float, pids_now, with_top: bool = True) -> CpuResult:
    """CPU of ``pids`` (name -> pid) and of a `top -b -d 1` over the same ``seconds``."""
    argv = ["top", "-b", "-d", "1"] if with_top else ["sleep", str(int(seconds) + 30)]
    top = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    top_started = time.monotonic()
    try:
        time.sleep(2.5 if with_top else 0.0)  # top's startup and its first (full) refresh
        load_before = load()
        counts = [process_count()]
        act0 = machine_activity()
        t0 = time.monotonic()
        c0 = {n: cpu_s(p) for n, p in pids.items()}
        k0 = _children_cpu(pids)
        th0 = {n: threads_runtime_s(p) for n, p in pids.items()}
        top0 = cpu_s(top.pid, children=False)
        end = t0 + seconds
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            counts.append(process_count())
        c1 = {n: cpu_s(p) for n, p in pids.items()}
        k1 = _children_cpu(pids)
        for key in k0.keys() - k1.keys():  # gone: reads 0, its CPU now in its parent's cutime
            k1[key] = cpu_s(key[1])
        th1 = {n: threads_runtime_s(p) for n, p in pids.items()}
        top1 = cpu_s(top.pid, children=False)
        dt = time.monotonic() - t0
        ran, created = activity_between(act0, machine_activity())
        load_after = load()
    finally:
        top.send_signal(signal.SIGTERM)
        _, _, ru = os.wait4(top.pid, 0)
        top.returncode = 0  # reaped here; keep Popen from trying again
    top_life = time.monotonic() - top_started
    now = pids_now()
    restarts = [n for n, p in pids.items() if now.get(n) != p]
    per_process = {n: (c1[n] - c0[n]) / dt * 100 for n in pids}
    threads: dict[str, dict[str, float]] = {}
    for n in pids:
        split: dict[str, float] = {}
        for key, v in th1[n].items():
            label = _thread_label(key)
            split[label] = split.get(label, 0.0) + (v - th0[n].get(key, 0.0)) / dt * 100
        threads[n] = split
    for label, child in sorted(k0.keys() | k1.keys()):
        pct = (k1[label, child] - k0.get((label, child), 0.0)) / dt * 100
        per_process[label] = per_process.get(label, 0.0) + pct
        threads.setdefault(label, {})["main"] = per_process[label]  # a child's whole CPU, one line
    return CpuResult(
        seconds=dt,
        processes=sorted(counts)[len(counts) // 2],
        load_before=load_before,
        load_after=load_after,
        per_process=per_process,
        threads=threads,
        top_pct=(top1 - top0) / dt * 100,
        top_rusage_s=ru.ru_utime + ru.ru_stime,
        top_life_s=top_life,
        ran=ran,
        created=created,
        restarts=restarts,
    )


def measure_memory(pids: dict[str, int]) -> dict[str, dict[str, int]]:
    """smaps_rollup (kB) of each process and of each one's live children: Pss, Rss, Private
    (USS), Swap."""
    return {n: smaps_rollup_kb(p) for n, p in with_children(pids).items()}


# What a fresh interpreter weighs after importing each layer: the floor every worker pays, then
# each worker's own modules. Private memory (USS) is what adding that process costs the machine.
IMPORT_LAYERS = [
    ("python itself", ""),
    ("+ zmq", "import zmq"),
    ("+ zmq, msgspec", "import zmq, msgspec"),
    ("+ pmshared.runtime", "import zmq, msgspec, pmshared.runtime"),
    ("collector", "import collector.main"),
    ("scorer", "import scorer.main"),
    ("tiering", "import tiering.main"),
    ("recorder", "import recorder.main"),
    ("  of which apsw", "import zmq, msgspec, pmshared.runtime, apsw"),
    ("  + apsw.ext, apsw.bestpractice", "import zmq, msgspec, pmshared.runtime, apsw, apsw.ext, apsw.bestpractice"),
    ("forensics", "import forensics.main"),
    ("supervisor (pmctl up)", "import cli.main, cli.up_cmd, supervisor.daemon"),
]

_PROBE = """
import sys
{imports}
r = {{}}
for line in open('/proc/self/smaps_rollup'):
    p = line.split()
    if p[0] in ('Pss:', 'Rss:', 'Private_Clean:', 'Private_Dirty:'):
        r[p[0][:-1]] = int(p[1])
print(len(sys.modules), r['Private_Clean'] + r['Private_Dirty'], r['Rss'])
"""


def import_costs() -> list[tuple[str, int, int, int]]:
    """(label, modules, private kB, rss kB) per layer, each in a fresh interpreter (median of 3)."""
    rows = []
    for label, imports in IMPORT_LAYERS:
        runs = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", _PROBE.format(imports=imports)],
                cwd=REPO, capture_output=True, text=True, timeout=60,
            )
            if out.returncode != 0:
                raise RuntimeError(f"import probe {label!r} failed: {out.stderr.strip()[-300:]}")
            runs.append(tuple(int(x) for x in out.stdout.split()))
        runs.sort(key=lambda r: r[1])
        mods, priv, rss = runs[1]
        rows.append((label, mods, priv, rss))
    return rows
