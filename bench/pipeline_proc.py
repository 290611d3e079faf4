"""What /proc says about a process: CPU time (own, reaped children, per thread) and memory (PSS).

All figures are read, never estimated: a process's own CPU time from its CPU-time clock (the
kernel's run time of all its threads, in ns), reaped children's from cutime/cstime in
/proc/PID/stat (clock ticks), Pss/Rss/private pages from /proc/PID/smaps_rollup (kB).

Why the clock and not utime + stime: those are the same run time rounded down to whole clock ticks
(10 ms), and a process using 0.1 % of a core moves by only 6 ticks a minute, so one tick more or
less at either end of a 60 s window is ±0.017 % per process: ±0.1 % for the six of the pipeline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from collector.linux import cpu_clock_id
from pmshared.proc_children import live_children

CLK_TCK = os.sysconf("SC_CLK_TCK")


T = TypeVar("T")


def _stat_fields(path: str) -> tuple[str, list[str]]:
    with open(path, "rb") as f:
        raw = f.read().decode(errors="replace")
    close = raw.rfind(")")
    comm = raw[raw.find("(") + 1 : close]
    return comm, raw[close + 2 :].split()


def cpu_s(pid: int, children: bool = True) -> float:
    """Own CPU time (+ cutime + cstime: children it reaped) in seconds; 0.0 if it is gone."""
    try:
        _, f = _stat_fields(f"/proc/{pid}/stat")
        own = time.clock_gettime_ns(cpu_clock_id(pid)) / 1e9
    except OSError:
        return 0.0
    # After the state field (index 0): cutime is field 16 of the line, index 13 here.
    return own + ((int(f[13]) + int(f[14])) / CLK_TCK if children else 0.0)


def each_thread(pid: int, read: Callable[[str, int], T]) -> dict[str, T]:
    """``read(task_dir, tid)`` of every live thread of ``pid`` whose files could be read, keyed
    ``"<comm>/<tid>"`` (the main thread is ``main``); a thread gone meanwhile is left out."""
    out: dict[str, T] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        task = f"/proc/{pid}/task/{tid}"
        try:
            comm, _ = _stat_fields(f"{task}/stat")
            value = read(task, int(tid))
        except (OSError, ValueError, IndexError, KeyError):
            continue
        out["main" if int(tid) == pid else f"{comm}/{tid}"] = value
    return out


def _schedstat(task: str) -> list[int]:
    with open(f"{task}/schedstat") as f:
        return [int(x) for x in f.read().split()[:3]]


def threads_runtime_s(pid: int) -> dict[str, float]:
    """On-CPU seconds per live thread from /proc/PID/task/TID/schedstat (nanoseconds, so far
    finer than stat's clock ticks), keyed as ``each_thread`` keys them."""
    return each_thread(pid, lambda task, _tid: _schedstat(task)[0] / 1e9)


def thread_runs(pid: int) -> dict[str, tuple[int, int]]:
    """(run ns, times run) so far per live thread (schedstat), keyed as ``each_thread`` keys them."""
    return each_thread(pid, lambda task, _tid: tuple(_schedstat(task)[:3:2]))


def thread_switches(pid: int) -> dict[str, int]:
    """Context switches (voluntary + not) so far per live thread, keyed as ``each_thread`` keys
    them: a thread's wake-ups are its voluntary switches."""

    def read(task: str, _tid: int) -> int:
        with open(f"{task}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])

    return each_thread(pid, read)


def smaps_rollup_kb(pid: int) -> dict[str, int]:
    """Pss, Rss, Private (clean + dirty) and Swap in kB; {} if unreadable."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        return {}
    out["Private"] = out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)
    return out


def children_of(pid: int) -> list[int]:
    """Direct children, live or not yet reaped (a walk of /proc: /proc/PID/task/TID/children
    exists only on kernels built with CONFIG_PROC_CHILDREN)."""
    return [child for child, _ in live_children([pid]).get(pid, [])]


def with_children(pids: dict[str, int]) -> dict[str, int]:
    """``pids`` (name -> pid) and each one's live children as ``"<name>/<comm>"`` (a second child
    of the same name ``"<name>/<comm>#2"``, and so on); children already in ``pids`` (the
    supervisor's workers) are not listed twice."""
    out = dict(pids)
    kids = live_children(pids.values())
    listed = set(pids.values())
    for name, pid in pids.items():
        for child, comm in sorted(kids.get(pid, [])):
            if child in listed:
                continue
            label, n = f"{name}/{comm}", 1
            while label in out:
                n += 1
                label = f"{name}/{comm}#{n}"
            out[label] = child
    return out


def process_count() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f}/{b:.2f}/{c:.2f}"


def machine_activity() -> tuple[dict[int, int], int]:
    """({pid: utime+stime ticks} of every process, the last pid handed out (/proc/loadavg))."""
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            _, f = _stat_fields(f"/proc/{name}/stat")
        except OSError:
            continue
        ticks[int(name)] = int(f[11]) + int(f[12])
    with open("/proc/loadavg") as fh:
        last_pid = int(fh.read().split()[-1])
    return ticks, last_pid


def activity_between(a: tuple[dict[int, int], int], b: tuple[dict[int, int], int]) -> tuple[int, int]:
    """(processes that used CPU between the two sweeps, pids handed out meanwhile: processes and
    threads created). What the collector has to look at closely grows with both."""
    ran = sum(1 for pid, t in b[0].items() if t != a[0].get(pid, t if pid in a[0] else -1))
    pid_max = int(open("/proc/sys/kernel/pid_max").read())
    created = (b[1] - a[1]) % pid_max
    return ran, created


def group_files_kb(pids: list[int]) -> int:
    """File-backed kB resident in ``pids``, each file counted once at the largest resident size
    any of them has. With the group's anonymous PSS (its anonymous pages are shared, copy-on-write
    after a fork, only within the group) this is what the group would cost on a machine where no
    other process maps the same files. Copy-on-write pages of a file mapping (relocated data of a
    library) are anonymous."""
    files: dict[str, int] = {}
    for pid in pids:
        per_file: dict[str, int] = {}
        current = None
        rss = 0
        try:
            with open(f"/proc/{pid}/smaps") as f:
                for line in f:
                    head = line.split(None, 6)
                    if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                        path = head[5].strip() if len(head) > 5 else ""
                        current = path if path.startswith("/") else None
                    elif head and head[0] == "Rss:":
                        rss = int(head[1])
                    elif head and head[0] == "Anonymous:":
                        kb = int(head[1])
                        if current is not None:
                            per_file[current] = per_file.get(current, 0) + rss - kb
        except OSError:
            continue
        for path, kb in per_file.items():
            files[path] = max(files.get(path, 0), kb)
    return sum(files.values())


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every core since boot (/proc/stat's first line; idle and
    iowait are not busy)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def machine_busy_pct(seconds: float) -> float:
    """How busy the whole machine was over the next ``seconds`` (percent of every core)."""
    busy0, total0 = _cpu_ticks()
    time.sleep(seconds)
    busy1, total1 = _cpu_ticks()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)
