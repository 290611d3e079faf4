"""Parsers for the /proc files the Linux backend reads: bytes in, plain values out.

Pure functions on the raw bytes of one read, so they are tested without a /proc. They work on
``bytes`` (``find``/``split`` on bytes are C loops; nothing is decoded except a process name).
Field positions are those of proc(5). A file that does not look like what the kernel writes gives
``None`` (or ``None`` fields) rather than an exception: a process can exit or exec between two
reads, and a half-written fake tree in a test must not crash a snapshot.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# /proc/PID/stat state letter -> the seed's (macOS top) vocabulary. Keys are byte values.
# W (waking) and K (wakekill) only appear on old kernels; P (parked) is an idle kernel thread.
STATE_NAMES: dict[int, str] = {
    ord("R"): "running",
    ord("S"): "sleeping",
    ord("D"): "stuck",
    ord("Z"): "zombie",
    ord("T"): "stopped",
    ord("t"): "stopped",
    ord("I"): "idle",
    ord("X"): "halted",
    ord("x"): "halted",
    ord("P"): "idle",
    ord("W"): "running",
    ord("K"): "stuck",
}
D_STATE = ord("D")
PF_KTHREAD = 0x00200000  # task flags (stat field 9): a kernel thread


class StatFields(NamedTuple):
    """What the backend takes from one /proc/PID/stat line (thread-group totals)."""

    comm: bytes
    state: int  # the state letter as a byte value (see STATE_NAMES)
    ppid: int
    majflt: int  # major faults of all threads, live and dead
    ticks: int  # utime + stime of all threads, in clock ticks (SC_CLK_TCK)
    threads: int
    starttime: int  # clock ticks after boot: with the pid, identifies a process
    rss_pages: int
    kthread: bool  # a kernel thread: no address space, no system calls, no owner but root
    # cutime + cstime (fields 16-17): CPU of the children it has reaped so far, in clock ticks.
    # A child's whole CPU lands here when its parent waits for it, so a fork storm shows on the
    # parent that reaps (children reaped by the kernel, SIGCHLD ignored, are not counted).
    child_ticks: int = 0


def parse_stat(b: bytes) -> StatFields | None:
    """Fields of a /proc/PID/stat line; ``None`` when it is empty or malformed.

    The name sits between the first ``(`` and the *last* ``)``: a process may call itself
    ``a) R 1 (b``, so everything after the name is split from the last parenthesis.
    """
    left = b.find(b"(")
    right = b.rfind(b")")
    if left < 0 or right < left:
        return None
    f = b[right + 2 :].split(None, 22)  # f[k] is proc(5) field k + 3
    if len(f) < 22 or not f[0]:
        return None
    try:
        return StatFields(
            b[left + 1 : right],
            f[0][0],
            int(f[1]),
            int(f[9]),
            int(f[11]) + int(f[12]),
            int(f[17]),
            int(f[19]),
            int(f[21]),
            bool(int(f[6]) & PF_KTHREAD),
            int(f[13]) + int(f[14]),
        )
    except ValueError:
        return None


def stat_state(b: bytes) -> int | None:
    """Only the state letter (byte value) of a stat line: what a thread scan needs."""
    right = b.rfind(b")")
    if right < 0 or len(b) < right + 3:
        return None
    return b[right + 2]


def _number_after(b: bytes, key: bytes, start: int = 0) -> int | None:
    """The first integer after ``key`` on its line, or None when the key is absent."""
    i = b.find(key, start)
    if i < 0:
        return None
    i += len(key)
    j = b.find(b"\n", i)
    words = (b[i:j] if j >= 0 else b[i:]).split()
    if not words:
        return None
    try:
        return int(words[0])
    except ValueError:
        return None


class StatusFields(NamedTuple):
    euid: int | None
    swap_bytes: int  # VmSwap; 0 for kernel threads and zombies, which have no address space
    csw: int | None  # voluntary + nonvoluntary context switches of this task (not its threads)


def parse_status(b: bytes) -> StatusFields:
    """Effective uid, VmSwap and context switches from /proc/PID/status (or .../task/TID/status)."""
    euid = None
    i = b.find(b"\nUid:")
    if i >= 0:
        j = b.find(b"\n", i + 5)
        ids = b[i + 5 : j].split()
        if len(ids) >= 2:
            try:
                euid = int(ids[1])
            except ValueError:
                euid = None
    swap_kb = _number_after(b, b"\nVmSwap:")
    vol = _number_after(b, b"\nvoluntary_ctxt_switches:")
    invol = _number_after(b, b"\nnonvoluntary_ctxt_switches:")
    csw = vol + invol if vol is not None and invol is not None else None
    return StatusFields(euid, (swap_kb or 0) * 1024, csw)


def status_csw(b: bytes) -> int | None:
    """Only the context switches of a status file (per-thread summing reads many of them)."""
    vol = _number_after(b, b"\nvoluntary_ctxt_switches:")
    if vol is None:
        return None
    invol = _number_after(b, b"\nnonvoluntary_ctxt_switches:")
    return None if invol is None else vol + invol


def parse_schedstat(b: bytes) -> tuple[int | None, int | None]:
    """(run delay in ns, context switches) from /proc/PID[/task/TID]/schedstat: ``runtime_ns wait_ns
    switches``, split once: what the backend takes from it every time a task ran.

    The third number counts the task's arrivals on a CPU, which equals voluntary + involuntary
    context switches (status' two counters) — in a file a fraction of status's cost.
    """
    words = b.split()
    if len(words) < 3:
        return None, None
    try:
        return int(words[1]), int(words[2])
    except ValueError:
        return None, None


def schedstat_delay(b: bytes) -> int | None:
    """Nanoseconds spent runnable but waiting for a CPU: schedstat's second number (run_delay).

    Credited when the task gets a CPU, so a task starved for 3 s shows it when it next runs."""
    return parse_schedstat(b)[0]


class IoCounters(NamedTuple):
    """From /proc/PID/io (all threads, live and dead): system calls and storage bytes."""

    syscalls: int | None  # syscr + syscw
    read_bytes: int | None  # bytes this process caused to be fetched from storage
    write_bytes: int | None  # bytes it caused to be sent to storage (counted when dirtied)


NO_IO = IoCounters(None, None, None)


def parse_io(b: bytes) -> IoCounters:
    """syscr + syscw, read_bytes and write_bytes from /proc/PID/io; None fields where absent."""
    v = b.split(None, 12)  # rchar: N wchar: N syscr: N syscw: N read_bytes: N write_bytes: N ...
    if len(v) > 11 and v[4] == b"syscr:" and v[6] == b"syscw:" and v[8] == b"read_bytes:" \
            and v[10] == b"write_bytes:":  # fmt: skip
        try:
            return IoCounters(int(v[5]) + int(v[7]), int(v[9]), int(v[11]))
        except ValueError:
            return NO_IO
    b = b"\n" + b  # every key at a line start ("write_bytes:" is inside "cancelled_write_bytes:")
    r = _number_after(b, b"\nsyscr:")
    w = _number_after(b, b"\nsyscw:")
    return IoCounters(
        None if r is None or w is None else r + w,
        _number_after(b, b"\nread_bytes:"),
        _number_after(b, b"\nwrite_bytes:"),
    )


def parse_io_syscalls(b: bytes) -> int | None:
    """syscr + syscw from /proc/PID/io (read- and write-family system calls of all threads)."""
    return parse_io(b).syscalls


# --------------------------------------------------------------------------- system files


class CpuTimes(NamedTuple):
    """The aggregate ``cpu`` line of /proc/stat, in clock ticks (guest time is inside user)."""

    busy: int  # user + nice + system + irq + softirq
    idle: int
    iowait: int
    steal: int

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.iowait + self.steal


class ProcStat(NamedTuple):
    cpu: CpuTimes | None
    cpu_count: int
    procs_running: int | None
    procs_blocked: int | None  # tasks in iowait now (nr_iowait), *not* every task in D
    # Tasks (processes and threads) created since boot, machine-wide: while it stands still, no
    # pid was handed out, so the list of processes can only have shrunk.
    forks: int | None = None
    ctxt: int | None = None  # context switches since boot, every CPU


def parse_proc_stat(b: bytes) -> ProcStat:
    cpu = None
    if b.startswith(b"cpu "):
        end = b.find(b"\n")
        v = [int(x) for x in b[4:end].split()] + [0] * 8
        # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
        cpu = CpuTimes(v[0] + v[1] + v[2] + v[5] + v[6], v[3], v[4], v[7])
    return ProcStat(
        cpu,
        max(b.count(b"\ncpu"), 1),
        _number_after(b, b"\nprocs_running"),
        _number_after(b, b"\nprocs_blocked"),
        _number_after(b, b"\nprocesses"),
        _number_after(b, b"\nctxt"),
    )


def parse_loadavg(b: bytes) -> tuple[float, float, float] | None:
    words = b.split()
    try:
        return float(words[0]), float(words[1]), float(words[2])
    except (IndexError, ValueError):
        return None


def loadavg_last_pid(b: bytes) -> int | None:
    """The last pid handed out in the reader's pid namespace (loadavg's fifth field)."""
    words = b.split()
    try:
        return int(words[4])
    except (IndexError, ValueError):
        return None


def status_tgid(b: bytes) -> int | None:
    """The thread group (process) id from a status file: a thread's own pid differs from it."""
    return _number_after(b, b"\nTgid:")


class MemInfo(NamedTuple):
    total: int | None  # bytes
    available: int | None
    swap_used: int | None


def parse_meminfo(b: bytes) -> MemInfo:
    b = b"\n" + b

    def kb(key: bytes) -> int | None:
        v = _number_after(b, key)
        return None if v is None else v * 1024

    swap_total, swap_free = kb(b"\nSwapTotal:"), kb(b"\nSwapFree:")
    swap_used = swap_total - swap_free if swap_total is not None and swap_free is not None else None
    return MemInfo(kb(b"\nMemTotal:"), kb(b"\nMemAvailable:"), swap_used)


class VmCounters(NamedTuple):
    pgmajfault: int | None
    pswpin: int | None
    pswpout: int | None
    zswap: int | None  # zswpin + zswpout: pages moved to/from compressed swap (no pswp* counted)
    # Pages taken from processes without them running: reclaim (every pgsteal_* counter) and
    # khugepaged collapsing small pages into huge ones. Only its changes matter.
    reclaim: int | None


_RECLAIM = re.compile(rb"\n(?:pgsteal_\w+|thp_collapse_alloc) (\d+)")


def parse_vmstat(b: bytes) -> VmCounters:
    b = b"\n" + b
    zin, zout = _number_after(b, b"\nzswpin "), _number_after(b, b"\nzswpout ")
    reclaim = _RECLAIM.findall(b)
    return VmCounters(
        _number_after(b, b"\npgmajfault "),
        _number_after(b, b"\npswpin "),
        _number_after(b, b"\npswpout "),
        None if zin is None and zout is None else (zin or 0) + (zout or 0),
        sum(map(int, reclaim)) if reclaim else None,
    )


def parse_pressure(b: bytes) -> tuple[int | None, int | None]:
    """The cumulative ``total=`` stall microseconds of the ``some`` and ``full`` lines."""
    b = b"\n" + b
    some = full = None
    i = b.find(b"\nsome ")
    if i >= 0:
        some = _number_after(b, b"total=", i)
    j = b.find(b"\nfull ")
    if j >= 0:
        full = _number_after(b, b"total=", j)
    return some, full
