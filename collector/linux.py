"""Linux backend: every process from /proc, with per-interval rates, cheaply.

The kernel's cost of *generating* a /proc file dominates (stat ≈ 2.5 µs, status ≈ 5 µs, an open
≈ 4 µs on the benchmark machine), so the aim is to make it generate fewer, smaller files
(measured by bench/bench_collector.py):

- Every file is kept open and re-read with ``pread`` at offset 0: no path walk, no open/close.
- On this machine's own /proc (not a test's fake tree), no file at all for a process that did
  not run: its CPU clock (``clock_gettime`` on the process's CPU-time clock id, the thread group's
  run time in ns) stood still, which costs the kernel no file to generate (~1.3 µs a process
  cold, against ~2.5 µs for schedstat). And /proc itself is listed only when many tasks were
  created (or once a minute): /proc/stat's fork count tells whether any was, loadavg's last pid
  which few pids to look at one by one; a process that exited is found by its clock (EINVAL).
  A cold listing costs ~1 ms at 600 processes.
- Single-threaded processes (most of them) are watched through ``/proc/PID/schedstat``
  (``runtime_ns wait_ns switches``, a third of stat's cost): if it did not change, the process
  did not run at all, so it made no system calls, no context switches, no faults and did not
  change state — nothing else is read and its previous ``ProcessInfo`` (zero rates) is reused.
  When it changed, the process ran: stat and io are read and parsed; the switch count comes from
  schedstat itself. Two things can change without the process running: its resident memory,
  when the kernel takes pages away (reclaim, swap-out, khugepaged: /proc/vmstat counts them), and
  its parent, when the parent exits. So while vmstat shows such movement, stat is re-read every
  ``stat_every`` samples (staggered by pid); the children of a process that vanished are re-read
  at the next sample; and every process's stat is re-read with its status (below) anyway.
- Multi-threaded processes are watched through stat (thread-group totals; schedstat is the main
  thread's only): same bytes, same process state. When their CPU time moved, io is read and the
  context switches are summed over the threads (/proc/PID/status alone counts the main thread).
  A thread may run for less than a clock tick without moving the total: its switches and system
  calls are then reported when it next ticks (counts are never lost, only attributed late).
- ``status`` (uid, VmSwap) is read for every process in the first snapshot; a process born
  later starts with its /proc files' owner as uid and no swap, and has status read on its first
  run (daemons drop privileges early). Then again when its name changes (exec), every
  ``refresh_every`` samples if it ran since (on a live /proc, where its CPU clock tells; uid
  changes only by running), and, while /proc/vmstat shows pages moving to or from swap, every
  ``swap_refresh_every`` samples — VmSwap can change while a process sleeps only then.
- A refresh of a process that did not run spreads the counts since the last read over the whole
  time since then; a process that ran gets them in the current interval. Either way the rates
  integrate to the true counts.

- The pressure model's figures cost no extra file: ``cpu_children`` (cutime+cstime) comes from
  the stat line, ``run_delay`` from the schedstat already read (summed over the threads' schedstat
  where their switches are), ``read_bps``/``write_bps`` from the io file already read when a
  process ran, ``mem_growth`` from rss (+ VmSwap as last read) at each stat read. Only ``cgroup``
  is a file of its own: /proc/PID/cgroup, read once per process (and again after an exec).

Accuracy notes: on a live /proc CPU is the process's CPU clock (ns, every thread, exited ones
included); elsewhere utime+stime in clock ticks (1/SC_CLK_TCK s, like ps and top: with a 1 s
interval the resolution is 100/SC_CLK_TCK percent). Either is capped at 100 % times the cores its
threads could use (a tick over a short interval would read far more); reaped children's CPU at
every core. ``run_delay`` is credited by the kernel when a task gets a CPU, so a wait longer than
the interval shows when it ends, capped at 1000 ms/s per thread. ``mem`` is stat's rss (= VmRSS).
``sysbsd`` is syscr+syscw (read- and write-family calls: what Linux counts per process).
``write_bps`` counts pages as they are dirtied (write-back happens later, by the kernel).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import msgspec

from pmshared.messages import ProcessInfo, SystemStats

from .cgroup_name import cgroup_name
from .procfs_errors import Gone, field_unknown
from .procfs_files import FdBudget, read_path
from .procfs_parse import (
    NO_IO,
    STATE_NAMES,
    IoCounters,
    StatFields,
    parse_io,
    parse_schedstat,
    parse_stat,
    parse_status,
    schedstat_delay,
)
from .procfs_record import (
    REAPED_CREDIT_SAMPLES,
    Before,
    Counts,
    Rates,
    Seen,
    add_seen,
    counter_rates,
    cpu_percent,
    growth_rate,
    is_idle,
    same_stat_record,
    settled,
    stat_record,
    seen_of,
    still_rates,
    without_seen_children,
)
from .procfs_schedule import plan_reads
from .procfs_system import SystemReader
from .procfs_threads import ThreadFiles, count_stuck_threads, threads_switches

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STAT_SIZE = 2048  # a stat line is ~300 bytes (52 numbers and a name of at most 64 bytes)
SCHED_SIZE = 256
STATUS_SIZE = 4096
IO_SIZE = 512
CGROUP_SIZE = 4096
# New pids looked at one by one; more than this and /proc is listed instead. A probe is one clock
# read (~2-3 us with its Python), a cold listing ~1.8 us per process there (~1 ms at 600).
PROBE_MAX = 128
LIST_EVERY = 60  # samples: /proc is listed at least this often whatever the counters say

_replace = msgspec.structs.replace
log = logging.getLogger("collector")


class _Proc:
    """What the backend remembers about one process between samples."""

    __slots__ = (
        "name", "pid", "path", "fd_stat", "fd_sched", "fd_io",
        "stat", "sched", "comm", "start", "ticks", "majflt", "threads",
        "counts", "t_counters", "uid", "swap", "young", "kthread",
        "info", "idle", "stat_at", "refresh_at", "clock", "cpu_ns", "status_ns",
        "ns_mark", "child_ticks", "memsw", "mem_t", "cgroup", "tasks",
    )  # fmt: skip

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.pid = int(name)
        self.path = path  # "<proc_root>/<pid>/"
        self.fd_stat = self.fd_sched = self.fd_io = -1
        self.stat = self.sched = b""
        self.tasks: ThreadFiles | None = None  # a multi-threaded process's kept thread files
        # The kernel's CPU clock of the whole process (all threads, in ns): see cpu_clock_id()
        self.clock = cpu_clock_id(self.pid)
        self.cpu_ns = -1
        self.status_ns = -2  # cpu_ns when status was last read (never yet: matches no clock)


def cpu_clock_id(pid: int) -> int:
    """The clock id of process ``pid``'s CPU time, what glibc's clock_getcpuclockid() returns.

    Linux ABI (include/linux/posix-timers.h): ``~pid << 3 | CPUCLOCK_SCHED``, as a 32-bit int.
    ``clock_gettime`` on it is the thread group's total run time in nanoseconds, the same sum
    schedstat shows for one thread, without a /proc file to generate: a third of the cost of
    re-reading schedstat, half of it cold. Anyone may read any process's clock (as anyone may read
    its schedstat); a pid that no longer exists raises EINVAL.
    """
    return ((~pid) << 3 | 2) if pid > 0 else 0


def live_proc(proc_root: str) -> bool:
    """Is ``proc_root`` this machine's /proc, in our pid namespace? Only then are pids there the
    pids that CPU clocks and /proc/stat's fork count speak of (not so for a test's fake tree)."""
    try:
        if os.readlink(f"{proc_root}/self") != str(os.getpid()):
            return False
        time.clock_gettime_ns(cpu_clock_id(os.getpid()))
    except (OSError, ValueError, OverflowError):
        return False
    return True


def schedstat_works(proc_root: str) -> bool:
    """Does this kernel count per-task runs (CONFIG_SCHED_INFO)? Without it schedstat reads
    ``0 0 0`` forever and must not be used to tell whether a process ran."""
    for path in (f"{proc_root}/self/schedstat", "/proc/self/schedstat"):
        try:
            words = read_path(path, SCHED_SIZE).split()
        except OSError:
            continue
        return len(words) >= 3 and int(words[0]) > 0 and int(words[2]) > 0
    return False


def run_delay_accounted(proc_root: str) -> bool:
    """Does this kernel fill schedstat's second number (time runnable, waiting for a CPU)?

    Some kernels count runs but not the wait (``0 0 n``, or a runtime and ``0``). No task can be
    told to wait, so look at tasks that surely have: init, our parent and ourselves (started
    Python, touched hundreds of files). All zero: not accounted, and run_delay is None rather
    than a false 0.
    """
    found = []
    for pid in ("1", str(os.getppid()), "self"):
        for root in dict.fromkeys((proc_root, "/proc")):
            try:
                found.append(read_path(f"{root}/{pid}/schedstat", SCHED_SIZE))
                break
            except OSError:
                continue
    return waits_accounted(found)


def waits_accounted(schedstats: list[bytes]) -> bool:
    """Any of these schedstat texts with a wait time: the kernel accounts it."""
    return any(schedstat_delay(b) for b in schedstats)


class LinuxBackend:
    """Samples every process and the machine from a /proc tree.

    ``sample()`` returns every process now, with rates over the time since the previous call
    (``None`` rates on a process's first sample), and the machine's figures. Keeps descriptors
    open between calls: call ``close()`` (or use it as a context manager) when done.

    Knobs (defaults are what the worker uses): ``stat_every`` — samples between stat reads of a
    single-threaded process that did not run, while the kernel reclaims memory;
    ``refresh_every`` / ``swap_refresh_every`` — samples between status reads of a process,
    normally / while pages move to or from swap (``refresh_every=1``: stat and status of every
    process read and parsed every sample, the benchmark's no-shortcut variant; io and threads
    are still read only for processes that ran); ``thread_scan_every`` — samples between looks at a
    multi-threaded process's threads for D state when /proc/stat does not ask for one;
    ``thread_csw`` — sum context switches over threads (exact; one read per thread of a
    multi-threaded process that ran); ``schedstat`` — use schedstat (None: if the kernel counts);
    ``run_delay`` — report schedstat's wait time (None: if the kernel fills it);
    ``live`` — the tree is this machine's /proc (None: find out), which allows two shortcuts:
    a process's CPU clock tells whether it ran before any file is read, and /proc is listed only
    when /proc/stat's fork count moved (nothing new can have appeared otherwise).
    """

    def __init__(
        self,
        proc_root: str = "/proc",
        clock: Callable[[], float] = time.monotonic,
        *,
        stat_every: int = 5,
        refresh_every: int = 60,
        swap_refresh_every: int = 10,
        thread_scan_every: int = 10,
        thread_csw: bool = True,
        schedstat: bool | None = None,
        run_delay: bool | None = None,
        live: bool | None = None,
        fd_limit: int | None = None,
    ) -> None:
        self._root = proc_root.rstrip("/") or "/"
        self._clock = clock
        self._refresh_every = max(int(refresh_every), 1)
        self._swap_refresh_every = min(max(int(swap_refresh_every), 1), self._refresh_every)
        self._stat_every = min(max(int(stat_every), 1), self._refresh_every)
        self._thread_scan_every = max(int(thread_scan_every), 1)
        self._thread_csw = thread_csw
        self._schedstat = schedstat_works(self._root) if schedstat is None else schedstat
        self._live = live_proc(self._root) if live is None else live
        if run_delay is None:
            run_delay = self._schedstat and run_delay_accounted(self._root)
            if not run_delay:
                log.info("run delay unknown: /proc/PID/schedstat has no wait time on this kernel"
                         " (it reads '0 0 n'); ProcessInfo.run_delay is None")  # fmt: skip
        self._run_delay = bool(run_delay and self._schedstat)
        self._ncpu = os.cpu_count() or 1  # /proc/stat's count once read: caps the CPU rates
        # /proc/stat's fork count and loadavg's last pid when new processes were last looked for
        self._forks: int | None = None
        self._last_pid: int | None = None
        self._since_listing = 0  # samples since /proc was last listed
        self._fds = FdBudget(fd_limit)
        # /sys describes this machine's devices: used only with its own /proc.
        self._system = SystemReader(self._root, "/sys" if self._live else None)
        self._system.run_delay_known = self._run_delay
        self._procs: dict[str, _Proc] = {}
        self._multi: dict[str, _Proc] = {}  # processes with more than one thread
        self._stuck: set[str] = set()  # found with a D thread last sample: looked at again
        self._period = self._refresh_every  # status refresh period in force this sample
        self._swap_until = 0  # sample number until which the swap refresh period applies
        self._stat_period = self._refresh_every  # stat refresh period in force this sample
        self._memory_until = 0  # sample number until which stat_every applies
        # pid -> ppid of the processes that vanished this sample (their children move)
        self._gone: dict[int, int] = {}
        # parent pid -> [what its vanished (reaped) children were seen to use, last sample to
        # wait for the reap to show]: taken out of the parent's figures (without_seen_children)
        self._reaped: dict[int, list] = {}
        # pid -> what its reaped children were seen to use, never shown in its own figures in time:
        # passed on to its reaper when it goes (_forget). One entry at most per live process.
        self._folded: dict[int, Seen] = {}
        self._t: float | None = None
        # CLOCK_BOOTTIME at the previous sample (live /proc only): a process whose stat starttime
        # (ticks after boot) is later was born in this interval, so all its counters are too.
        self._boot: float | None = None
        self._born_after: float | None = None
        self._dt: float | None = None
        self._n = 0
        # Work done, cumulative: the benchmark and the worker's heartbeat can report these.
        self.counters = {
            "samples": 0, "ran": 0, "parsed": 0, "status_reads": 0, "io_reads": 0,
            "new": 0, "gone": 0, "thread_scans": 0, "threads_read": 0, "listings": 0, "probes": 0,
            "cgroup_reads": 0,
        }  # fmt: skip

    # ------------------------------------------------------------------ public

    def sample(self) -> tuple[list[ProcessInfo], SystemStats]:
        now = self._clock()
        system = self._system.read(now)
        self._ncpu = system.cpu_count
        dt = now - self._t if self._t is not None and now > self._t else None
        if self._live:
            self._born_after, self._boot = self._boot, time.clock_gettime(time.CLOCK_BOOTTIME)
        self._dt = dt
        self._n = n = self._n + 1
        self.counters["samples"] += 1
        if self._system.swap_moved:
            self._swap_moving(n)
        if self._system.memory_moved:
            self._memory_moving(n)
        self._period = self._swap_refresh_every if n <= self._swap_until else self._refresh_every
        self._stat_period = self._stat_every if n <= self._memory_until else self._period

        old = self._procs
        new: dict[str, _Proc] = {}
        out: list[ProcessInfo] = []
        append = out.append
        live = self._live
        cpu_clock = time.clock_gettime_ns
        names = self._names(old)
        for name in names:
            e = old.pop(name, None)
            if e is not None:
                if live:
                    # Hot path: one clock read for a process that did not run at all (so made
                    # no system calls, switches or faults and kept its state); its rss and
                    # parent are re-read on the stat_at schedule.
                    try:
                        ns = cpu_clock(e.clock)
                    except OSError:
                        self._forget(e)  # EINVAL: no such process any more
                        continue
                    if ns == e.cpu_ns and e.stat_at > n:
                        if not e.idle:
                            self._settle(e)
                        new[name] = e
                        append(e.info)
                        continue
                    e.cpu_ns = ns
                if self._look(e, now, dt, n):
                    new[name] = e
                    append(e.info)
                    continue
                self._forget(e)
            elif not name.isdigit():
                continue
            e = self._first_sample(name, now, n)
            if e is not None:
                new[name] = e
                append(e.info)
        for e in old.values():
            self._forget(e)
        self._procs = new
        if self._reaped:
            self._take_out_seen_children(out, new, dt, n)
        if self._gone:
            # Their children were handed to a reaper: read their stat (ppid) next time.
            gone = self._gone
            for e in new.values():
                if e.info.ppid in gone:
                    e.stat_at = n + 1
            gone.clear()
        if self._multi:
            self._mark_stuck_threads(out, system.procs_blocked or 0, n)
        self._t = now
        return out, system

    def _names(self, known: dict[str, _Proc]) -> list[str]:
        """The entries of /proc to look at: the known processes plus any new ones.

        A cold listing of /proc costs ~1 ms at 600 processes, so on a live /proc it is avoided
        (exits are found by the processes' own reads failing):
        - /proc/stat's fork count did not move since the last look: nothing was created;
        - it moved, and the pids handed out since then (loadavg's last pid counts up until it
          wraps) are few: each is looked at directly; a thread is not a process.
        Otherwise, and at least every ``LIST_EVERY`` samples whatever the counts say (pids can
        also be set by checkpoint/restore tools), /proc is listed.
        """
        system = self._system
        forks, last = system.forks, system.last_pid
        self._since_listing += 1
        if self._live and known and forks is not None and self._since_listing < LIST_EVERY:
            if forks == self._forks:
                return list(known)  # baselines kept: a task counted later is still above them
            prev = self._last_pid
            # (last == prev: the tasks were created in other pid namespaces, none visible here)
            if last is not None and prev is not None and 0 <= last - prev <= PROBE_MAX:
                self._forks, self._last_pid = forks, last
                new = [str(pid) for pid in range(prev + 1, last + 1) if str(pid) not in known]
                return [*known, *(name for name in new if self._is_process(name))]
        try:
            names = os.listdir(self._root)
        except OSError:
            self._forks = self._last_pid = None
            return []
        self.counters["listings"] += 1
        self._since_listing = 0
        self._forks, self._last_pid = forks, last
        return names

    def _is_process(self, name: str) -> bool:
        """Is pid ``name`` a live process (a thread group leader, what a listing shows)?

        Asked of its CPU-time clock (probes happen on a live /proc only): the kernel takes a
        process clock id only for a thread group leader, EINVAL for a thread's id or a free pid.
        A system call instead of a status file to generate (~1 us against ~28 us here), and
        every thread created on the machine moves the counts that send us probing. A process
        not ours to see is then dropped by its first sample (its stat does not open)."""
        self.counters["probes"] += 1
        try:
            time.clock_gettime_ns(cpu_clock_id(int(name)))
        except OSError:
            return False  # exited already, a thread, or never there
        return True

    def close(self) -> None:
        for e in self._procs.values():
            self._close_fds(e)
        self._procs = {}
        self._multi = {}
        self._system.close()

    def __enter__(self) -> LinuxBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def open_fds(self) -> int:
        """Descriptors kept open for processes right now."""
        return self._fds.used

    # ------------------------------------------------------------------ per process

    def _first_sample(self, name: str, now: float, n: int) -> _Proc | None:
        """Open a process seen for the first time; None when it vanished meanwhile."""
        e = _Proc(name, f"{self._root}/{name}/")
        try:
            if self._live:
                # Before stat: a run between the two reads moves the clock past this value,
                # so the next sample reads stat again instead of keeping a stale one.
                e.cpu_ns = time.clock_gettime_ns(e.clock)  # EINVAL (gone) is an OSError too
            e.fd_stat = self._fds.open(e.path + "stat")
            b = self._read_stat(e)
            st = parse_stat(b)
            if st is None:
                raise Gone
            self._baseline(e, b, st, now, n)
        except (OSError, Gone):
            self._close_fds(e)
            return None
        self.counters["new"] += 1
        return e

    def _baseline(self, e: _Proc, b: bytes, st: StatFields, now: float, n: int) -> None:
        """First sample of a process: counters remembered, no rates. Raises Gone/OSError."""
        e.stat = b
        e.start = st.starttime
        e.ticks = st.ticks
        e.child_ticks = st.child_ticks
        e.ns_mark = e.cpu_ns
        e.majflt = st.majflt
        e.comm = st.comm
        e.kthread = st.kthread
        e.threads = 0  # _set_threads() decides how to watch it
        self._set_threads(e, st.threads)
        if st.kthread:
            e.uid, e.swap = 0, 0  # kernel threads: root's, no address space
        elif n == 1:
            self._read_status(e)  # the first snapshot: processes of any age, some swapped out
        else:
            # Born since the last snapshot: nothing swapped out yet (a fork child of a swapped
            # parent aside), and the owner of its /proc files is its euid (root if it made
            # itself non-dumpable). Status is read on its first run (``young``) anyway, which
            # a process that dies within a second never gets to.
            e.swap = 0
            e.uid = os.fstat(e.fd_stat).st_uid if e.fd_stat >= 0 else os.stat(e.path).st_uid
        # Kernel threads all sit in the root cgroup; anyone else's is read once, here (and on exec).
        e.cgroup = None if st.kthread else self._read_cgroup(e)
        e.counts = self._counters(e, e.sched or None)
        e.t_counters = now
        e.young = not st.kthread
        e.refresh_at = n + 1 + e.pid % self._period  # staggered: refreshes spread out
        e.stat_at = min(n + 1 + e.pid % self._stat_period, e.refresh_at)
        mem = st.rss_pages * PAGE_SIZE
        e.memsw, e.mem_t = mem + (e.swap or 0), now
        e.info = ProcessInfo(
            pid=e.pid,
            ppid=st.ppid,
            command=st.comm.decode("utf-8", "replace"),
            state=STATE_NAMES.get(st.state, "unknown"),
            mem=mem,
            cmprs=e.swap,
            threads=st.threads,
            uid=e.uid,
            cgroup=e.cgroup,
        )
        e.idle = False
        dt = self._dt
        if dt and self._born_after is not None and st.starttime >= (self._born_after - 0.02) * CLK_TCK:
            e.info = self._birth_record(e, st, dt)

    def _birth_record(self, e: _Proc, st: StatFields, dt: float) -> ProcessInfo:
        """A process born in this interval: every counter counted from zero, over the interval.

        Without this a new process had no rates in its first sample, and what it used then (a
        whole core, for a load just started) was unexplained busy time that the model could
        only lay at the door of a parent reaping children, such as a shell or a test runner."""
        used = e.cpu_ns / 1e9 if self._live and e.cpu_ns >= 0 else st.ticks / CLK_TCK
        cpu = cpu_percent(used, dt, st.threads, self._ncpu)
        zero = Counts(*(None if v is None else 0 for v in e.counts))
        r = counter_rates(zero, e.counts, dt, st.threads)
        return stat_record(
            e.pid, st, Before(0, 0), e.info.command, cpu, r, dt, CLK_TCK, self._ncpu, e.info.mem,
            e.uid, e.swap, None, e.cgroup,
        )  # fmt: skip

    def _look(self, e: _Proc, now: float, dt: float | None, n: int) -> bool:
        """One small pread and a bytes comparison for a process that did nothing; else _update.

        Reached for a process whose CPU clock moved (or whose stat read is due), and for every
        process off a live /proc. False when the process is gone.
        """
        if e.fd_sched >= 0:
            try:
                s = os.pread(e.fd_sched, SCHED_SIZE, 0)
            except OSError:
                s = b""  # ESRCH: gone (its pid may already be someone else's)
            if s == e.sched and e.stat_at > n:
                self._keep_idle(e)
                return True
            if not s:
                return False
            try:
                b = os.pread(e.fd_stat, STAT_SIZE, 0)  # (watched via schedstat: stat is kept open)
            except OSError:
                return False
            return self._update(e, s, b, now, dt, n)
        try:
            b = os.pread(e.fd_stat, STAT_SIZE, 0) if e.fd_stat >= 0 else read_path(e.path + "stat")
        except OSError:
            b = b""
        if b == e.stat and e.refresh_at > n:
            self._keep_idle(e)
            return True
        return bool(b) and self._update(e, None, b, now, dt, n)

    def _keep_idle(self, e: _Proc) -> None:
        if not e.idle:
            self._settle(e)

    def _update(
        self, e: _Proc, sched: bytes | None, b: bytes, now: float, dt: float | None, n: int
    ) -> bool:
        """Something may have changed (or a refresh is due). False when the process is gone.

        ``sched``: the new schedstat of a process watched through it (None: watched through
        stat); ``b``: its stat line, just read.
        """
        try:
            e.stat_at = n + self._stat_period  # stat was read now
            st = None
            if b != e.stat:
                st = parse_stat(b)
                if st is None:
                    return False
                if st.starttime != e.start:
                    # Same pid, another process (seen when reading by path): start over.
                    self._close_fds(e, keep_stat=True)
                    self._baseline(e, b, st, now, n)
                    return True
                self.counters["parsed"] += 1
                e.stat = b
            ran = sched != e.sched if sched is not None else (st is not None and st.ticks != e.ticks)
            if st is not None and st.threads != e.threads:
                self._set_threads(e, st.threads)  # may start or stop watching schedstat
                sched = e.sched or None
            elif sched is not None:
                e.sched = sched
            # A new name means exec (maybe of a setuid program, maybe into a container); kernel
            # workers rename themselves after the work queue they serve, which changes nothing.
            exec_ = st is not None and st.comm != e.comm and not e.kthread
            if exec_:
                e.cgroup = self._read_cgroup(e)
            plan = plan_reads(
                ran=ran, stat_changed=st is not None, refresh_due=e.refresh_at <= n, exec_=exec_,
                clock_still=self._live and e.cpu_ns == e.status_ns, swap_moving=n <= self._swap_until,
                young=e.young, kthread=e.kthread, via_schedstat=sched is not None,
            )  # fmt: skip
            e.young = plan.young
            if plan.reschedule:
                e.refresh_at = n + self._period
            if plan.settle:
                self._settle(e)  # a stat refresh found nothing new
                e.stat_at = min(e.stat_at, e.refresh_at)
                return True
            if plan.status:
                self._read_status(e)
            rates = self._count_rates(e, sched, ran, plan.counters, now, dt)
        except (OSError, Gone):
            return False
        e.stat_at = min(e.stat_at, e.refresh_at)
        e.info = self._info(e, st, rates, now, dt)
        e.idle = is_idle(e.info)
        return True

    def _count_rates(
        self, e: _Proc, sched: bytes | None, ran: bool, read: bool, now: float, dt: float | None
    ) -> Rates:
        """Rates of the counters read when a process ran (context switches, system calls, storage
        bytes, run delay); zero rates, without a read, for one that did not."""
        old = e.counts
        # ``read`` (see plan_reads): watched through schedstat, "did not run" is exact, its
        # counters cannot have moved; through stat it means "less than a clock tick": a refresh
        # collects what trickled.
        if not read:
            return still_rates(old, dt)
        if ran:
            self.counters["ran"] += 1
        c = self._counters(e, sched)
        # A process that ran gets the counts in this interval; a refresh of one that did not
        # spreads them over the whole time since the last read.
        window = dt if ran else now - e.t_counters
        e.counts, e.t_counters = c, now
        return counter_rates(old, c, window, e.threads)

    def _info(self, e: _Proc, st: StatFields | None, r: Rates, now: float, dt: float | None) -> ProcessInfo:
        """The process over this interval, from a stat line that changed (``st``) or did not."""
        cpu = self._cpu(e, st, dt)
        if st is None:
            growth = self._growth(e, e.info.mem, now, dt)
            return same_stat_record(e.info, cpu, r, dt, e.uid, e.swap, growth, e.cgroup)
        if st.comm != e.comm:
            e.comm = st.comm
            command = st.comm.decode("utf-8", "replace")
        else:
            command = e.info.command
        before = Before(e.child_ticks, e.majflt)
        e.ticks, e.child_ticks, e.majflt = st.ticks, st.child_ticks, st.majflt
        mem = st.rss_pages * PAGE_SIZE
        growth = self._growth(e, mem, now, dt)
        return stat_record(
            e.pid, st, before, command, cpu, r, dt, CLK_TCK, self._ncpu, mem, e.uid, e.swap,
            growth, e.cgroup,
        )  # fmt: skip

    def _cpu(self, e: _Proc, st: StatFields | None, dt: float | None) -> float | None:
        """% of one core over the interval, never above what its threads could use on this
        machine: from the process's CPU clock in ns on a live /proc, else stat's clock ticks.

        A tick-resolution figure over a short interval is coarse (one 10 ms tick in 5 ms reads
        200 %), hence the cap; threads of both samples count, one that exited meanwhile ran too.
        """
        if not dt:
            e.ns_mark = e.cpu_ns
            return None
        if self._live and e.cpu_ns >= 0:
            used = (e.cpu_ns - e.ns_mark) / 1e9
            e.ns_mark = e.cpu_ns
        elif st is not None:
            used = (st.ticks - e.ticks) / CLK_TCK
        else:
            return 0.0  # stat unchanged: not a tick more
        threads = max(st.threads if st is not None else 1, e.info.threads, 1)
        return cpu_percent(used, dt, threads, self._ncpu)

    @staticmethod
    def _growth(e: _Proc, mem: int, now: float, dt: float | None) -> float | None:
        """Bytes/s change of resident + swapped memory since the last stat (or status) read."""
        total = mem + (e.swap or 0)
        before, t = e.memsw, e.mem_t
        e.memsw, e.mem_t = total, now
        return growth_rate(before, t, total, now, dt)

    def _settle(self, e: _Proc) -> None:
        """Nothing changed since the last sample: the same process with zero rates."""
        e.info = settled(e.info, e.counts)
        e.idle = True

    def _read_stat(self, e: _Proc) -> bytes:
        if e.fd_stat >= 0:
            return os.pread(e.fd_stat, STAT_SIZE, 0)
        return read_path(e.path + "stat")

    def _set_threads(self, e: _Proc, threads: int) -> None:
        """Watch a single-threaded process through schedstat, a multi-threaded one through stat."""
        e.threads = threads
        if threads > 1:
            self._multi[e.name] = e
            if e.fd_sched >= 0:
                self._fds.close(e.fd_sched)
                e.fd_sched = -1
            e.sched = b""
            return
        self._multi.pop(e.name, None)
        self._close_tasks(e)
        if self._schedstat and e.fd_sched < 0 and e.fd_stat >= 0:
            try:
                e.fd_sched = self._fds.open(e.path + "schedstat")
                if e.fd_sched >= 0:
                    e.sched = os.pread(e.fd_sched, SCHED_SIZE, 0)
            except OSError as exc:
                field_unknown(exc)  # denied: stat-watched then

    def _read_status(self, e: _Proc) -> None:
        """uid and VmSwap from status (read by path: rarely needed, so no descriptor kept)."""
        self.counters["status_reads"] += 1
        try:
            status = parse_status(read_path(e.path + "status", STATUS_SIZE))
        except OSError as exc:
            field_unknown(exc)  # hidepid and friends: the process is there, its status is not
            e.uid, e.swap = None, None
            return
        e.uid, e.swap = status.euid, status.swap_bytes
        e.status_ns = e.cpu_ns

    def _read_cgroup(self, e: _Proc) -> str | None:
        """The process's cgroup by name (see cgroup_name); None when unreadable or the root."""
        self.counters["cgroup_reads"] += 1
        try:
            return cgroup_name(read_path(e.path + "cgroup", CGROUP_SIZE))
        except OSError:
            return None

    def _counters(self, e: _Proc, sched: bytes | None) -> Counts:
        """Counters now: context switches, syscalls, storage bytes, run delay. Raises Gone when
        the process vanished.

        ``io`` denied (another user's process without privileges) gives None for its three,
        tried again at every read.
        """
        delay = None
        if e.threads > 1 and self._thread_csw:
            csw, delay, read = self._threads_switches(e)
            self.counters["threads_read"] += read
        elif sched is not None:
            delay, csw = parse_schedstat(sched)
        else:  # no schedstat (or not summing threads): the main thread's status counters
            try:
                b = read_path(e.path + "status", STATUS_SIZE)
            except OSError as exc:
                field_unknown(exc)
                b = b""
            csw = parse_status(b).csw if b else None
        if not self._run_delay:
            delay = None
        if e.kthread:
            return Counts(csw, 0, 0, 0, delay)  # kernel threads make no system calls
        self.counters["io_reads"] += 1
        try:
            if e.fd_io < 0:
                e.fd_io = self._fds.open(e.path + "io")
            b = os.pread(e.fd_io, IO_SIZE, 0) if e.fd_io >= 0 else read_path(e.path + "io", IO_SIZE)
            io: IoCounters = parse_io(b)
        except OSError as exc:
            field_unknown(exc, unsupported=True)  # no io accounting in this kernel: as denied
            io = NO_IO
        return Counts(csw, io.syscalls, io.read_bytes, io.write_bytes, delay)

    def _threads_switches(self, e: _Proc) -> tuple[int | None, int | None, int]:
        """Switches and run delay summed over a multi-threaded process's threads: from kept
        files on a live /proc (a thread that exited fails to read there), else read by path."""
        if not self._live:
            return threads_switches(self._root, e.name, self._schedstat)
        if e.tasks is None:
            e.tasks = ThreadFiles(self._root, e.name, self._schedstat, self._fds)
        return e.tasks.switches(e.threads)

    def _swap_moving(self, n: int) -> None:
        """Pages moved to or from swap: bring every process's next status read forward."""
        every = self._swap_refresh_every
        if self._swap_until < n - 1:  # was not already in swap mode: reschedule everyone once
            for e in self._procs.values():
                e.refresh_at = min(e.refresh_at, n + 1 + e.pid % every)
                e.stat_at = min(e.stat_at, e.refresh_at)
        self._swap_until = n + every

    def _memory_moving(self, n: int) -> None:
        """The kernel took pages from processes: re-read stat (rss) of the idle ones too."""
        every = self._stat_every
        if self._memory_until < n - 1:  # entering: spread everyone's next stat read
            for e in self._procs.values():
                e.stat_at = min(e.stat_at, n + 1 + e.pid % every)
        self._memory_until = n + every

    def _forget(self, e: _Proc) -> None:
        self.counters["gone"] += 1
        self._gone[e.pid] = e.info.ppid
        # Its own credit, a reap of its children its figures never showed (it died, or stayed a
        # zombie, before being read again): the kernel folded those children into its lifetime,
        # which its reaper now receives. Dropped, the bench's python, reaping a zombie shell whose
        # readers had read gigabytes, showed 11.6 GB/s of io.
        own = self._reaped.pop(e.pid, None)
        folded = self._folded.pop(e.pid, None)
        if e.info.ppid > 0 and not e.kthread:  # what its parent's figures grow by when it reaps it
            seen = seen_of(e.ticks, e.child_ticks, e.counts)
            for more in (own[0] if own else None, folded):
                if more is not None:
                    seen = add_seen(seen, more)
            credit = self._reaped.setdefault(self._reaper_of(e.info.ppid), [Seen(), 0])
            credit[0] = add_seen(credit[0], seen)
            credit[1] = self._n + REAPED_CREDIT_SAMPLES
        self._close_fds(e)
        if self._multi.get(e.name) is e:
            del self._multi[e.name]

    def _reaper_of(self, ppid: int) -> int:
        """Who receives a vanished process's lifetime: its parent, or, where the parent vanished in
        the same sample (a shell killed with its workers), the nearest ancestor that did not: it
        reaps the orphans (as a subreaper or init) or the zombie parent holding them."""
        for _ in range(64):  # a chain of this sample's dead, never a cycle; bounded all the same
            if ppid not in self._gone:
                break
            ppid = self._gone[ppid]
        return ppid

    def _take_out_seen_children(self, out: list[ProcessInfo], procs: dict[str, _Proc], dt: float | None,
                                n: int) -> None:
        """Parents that reaped children seen alive: their cpu_children without what was seen."""
        reaped = self._reaped
        for pid, credit in list(reaped.items()):
            e = procs.get(str(pid))
            if e is None:  # the parent is gone too: nobody's figure to correct
                del reaped[pid]
                continue
            old = e.info
            e.info, credit[0] = without_seen_children(old, credit[0], CLK_TCK, dt)
            if e.info is not old:  # rare: a parent that reaped a child seen alive
                out[out.index(old)] = e.info
                e.idle = is_idle(e.info)
            if not any(credit[0]):
                del reaped[pid]
            elif credit[1] <= n:
                # Not shown in time: no longer taken out of its own figures (a reap that never
                # showed, or a process not read again: a zombie). Kept for its own reaper, which
                # receives those children with its lifetime (_forget).
                self._folded[pid] = add_seen(self._folded.get(pid, Seen()), credit[0])
                del reaped[pid]

    def _close_fds(self, e: _Proc, keep_stat: bool = False) -> None:
        for fd in (e.fd_sched, e.fd_io) if keep_stat else (e.fd_stat, e.fd_sched, e.fd_io):
            self._fds.close(fd)
        if not keep_stat:
            e.fd_stat = -1
        e.fd_sched = e.fd_io = -1
        e.sched = b""
        self._close_tasks(e)

    @staticmethod
    def _close_tasks(e: _Proc) -> None:
        if e.tasks is not None:
            e.tasks.close()
            e.tasks = None

    # ------------------------------------------------------------------ stuck threads

    def _mark_stuck_threads(self, out: list[ProcessInfo], procs_blocked: int, n: int) -> None:
        """A multi-threaded process whose main thread is not in D but another thread is: stuck.

        Which processes are looked at: those found stuck last time; all of them (until as many
        blocked threads are found as /proc/stat reports beyond the main threads in D) when
        procs_blocked asks for it; otherwise a rotating 1/thread_scan_every slice.
        """
        every = self._thread_scan_every
        slot = n % every
        wanted = 0
        if procs_blocked:
            wanted = procs_blocked - sum(1 for p in out if p.state == "stuck")
        stuck: set[str] = set()
        for name, e in self._multi.items():
            if wanted <= 0 and e.pid % every != slot and name not in self._stuck:
                continue
            if e.info.state == "stuck":
                continue
            self.counters["thread_scans"] += 1
            found = count_stuck_threads(self._root, name)
            if found:
                stuck.add(name)
                wanted -= found
        self._stuck = stuck
        if stuck:
            pids = {int(name) for name in stuck}
            for i, p in enumerate(out):
                if p.pid in pids:
                    out[i] = _replace(p, state="stuck")

