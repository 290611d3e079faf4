"""Whole-machine figures from /proc: CPU split, load, memory, paging, pressure stall (PSI),
processes created and context switches per second.

Each file is opened once and re-read with ``pread``. Rates and percentages are over the time
since the previous read, so the first read has ``None`` for them. A file that does not exist
(no PSI before Linux 4.20 or with ``psi=0``; a container that hides some files) gives ``None``
for its figures, never 0.
"""

from __future__ import annotations

import os

from pmshared.messages import PressureStall, SystemStats

from .procfs_disks import SECTOR, sectors_moved
from .procfs_files import O_FLAGS, read_fd
from .procfs_parse import (
    CpuTimes,
    MemInfo,
    ProcStat,
    VmCounters,
    loadavg_last_pid,
    parse_loadavg,
    parse_meminfo,
    parse_pressure,
    parse_proc_stat,
    parse_vmstat,
)

PSI_RESOURCES = ("cpu", "memory", "io")


class _KeptFile:
    """A system file kept open; ``read()`` is None when it is absent or unreadable."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = 8192
        try:
            self.fd = os.open(path, O_FLAGS)
        except OSError:
            self.fd = -1

    def read(self) -> bytes | None:
        if self.fd < 0:
            return None
        try:
            b = read_fd(self.fd, self.size)
        except OSError:
            return None
        if len(b) >= self.size:  # /proc/stat grows with CPUs and interrupts: read it in one go next time
            self.size = len(b) * 2
        return b

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _pct(part: float, whole: float) -> float:
    return min(max(100.0 * part / whole, 0.0), 100.0)


def _rate(now: int | None, before: int | None, dt: float | None) -> float | None:
    if now is None or before is None or not dt:
        return None
    return max(now - before, 0) / dt


class SystemReader:
    """Reads the machine-wide files; ``read(now)`` returns SystemStats over the last interval."""

    def __init__(self, proc_root: str = "/proc", sys_root: str | None = "/sys") -> None:
        """``sys_root`` None: the devices are unknown (a /proc tree of another machine)."""
        self._stat = _KeptFile(f"{proc_root}/stat")
        self._loadavg = _KeptFile(f"{proc_root}/loadavg")
        self._meminfo = _KeptFile(f"{proc_root}/meminfo")
        self._vmstat = _KeptFile(f"{proc_root}/vmstat")
        self._psi = {r: _KeptFile(f"{proc_root}/pressure/{r}") for r in PSI_RESOURCES}
        self._diskstats = _KeptFile(f"{proc_root}/diskstats") if sys_root else None
        self._sys_block = f"{sys_root}/block"
        self._disk_counted: dict[bytes, bool] = {}  # diskstats name -> are its bytes counted
        self._sectors: int | None = None
        self._t: float | None = None
        self._cpu: CpuTimes | None = None
        self._vm: VmCounters | None = None
        self._psi_totals: dict[str, tuple[int | None, int | None]] = {}
        self.procs_blocked: int | None = None  # of the last read, for the thread-scan trigger
        self.forks: int | None = None  # /proc/stat "processes" of the last read (None: unknown)
        self._ctxt: int | None = None  # /proc/stat "ctxt" of the last read
        # Set by the backend: does this kernel account per-task run delay (SystemStats says so).
        self.run_delay_known: bool | None = None
        self.last_pid: int | None = None  # loadavg's last pid handed out, of the last read
        # Did any page move to or from swap (disk or zswap) during the last interval? A process's
        # VmSwap can change without it running only then. True when unknown.
        self.swap_moved = True
        # Were pages taken from processes (reclaim, swap-out, khugepaged)? Only then can the
        # resident size of a process that did not run change. True when unknown.
        self.memory_moved = True

    def read(self, now: float) -> SystemStats:
        dt = now - self._t if self._t is not None else None
        if dt is not None and dt <= 0:
            dt = None

        raw = self._stat.read()
        ps = parse_proc_stat(raw) if raw else ProcStat(None, os.cpu_count() or 1, None, None)
        self.procs_blocked = ps.procs_blocked
        forks = _rate(ps.forks, self.forks, dt)
        csw = _rate(ps.ctxt, self._ctxt, dt)
        self.forks, self._ctxt = ps.forks, ps.ctxt
        busy = iowait = steal = None
        if ps.cpu is not None and self._cpu is not None:
            total = ps.cpu.total - self._cpu.total
            if total > 0:
                busy = _pct(ps.cpu.busy - self._cpu.busy, total)
                iowait = _pct(ps.cpu.iowait - self._cpu.iowait, total)
                steal = _pct(ps.cpu.steal - self._cpu.steal, total)
        self._cpu = ps.cpu

        # After /proc/stat, not before: a task created between the two reads is then either in
        # the fork count and at or below the last pid, or in neither (LinuxBackend._names).
        raw = self._loadavg.read()
        load = parse_loadavg(raw) if raw else None
        self.last_pid = loadavg_last_pid(raw) if raw else None
        raw = self._meminfo.read()
        mem = parse_meminfo(raw) if raw else MemInfo(None, None, None)
        raw = self._vmstat.read()
        vm = parse_vmstat(raw) if raw else VmCounters(None, None, None, None, None)
        before = self._vm or VmCounters(None, None, None, None, None)
        # (The first read baselines every process anyway: no movement to catch up on.)
        self.swap_moved = vm.pswpin is None or (self._vm is not None and vm[1:4] != before[1:4])
        self.memory_moved = self.swap_moved or vm.reclaim is None or (
            self._vm is not None and vm.reclaim != before.reclaim
        )
        self._vm = vm

        psi: dict[str, PressureStall | None] = {}
        for res, f in self._psi.items():
            raw = f.read()
            if raw is None:
                psi[res] = None
                continue
            some, full = parse_pressure(raw)
            prev_some, prev_full = self._psi_totals.get(res, (None, None))
            self._psi_totals[res] = (some, full)
            # total= is cumulative stall time in microseconds: per interval, 1e6 us per second.
            psi[res] = PressureStall(
                some=_stall_pct(some, prev_some, dt),
                full=_stall_pct(full, prev_full, dt),
            )

        disk_bps = self._disk_bps(dt)
        self._t = now
        return SystemStats(
            cpu_count=ps.cpu_count,
            load1=load[0] if load else None,
            load5=load[1] if load else None,
            load15=load[2] if load else None,
            procs_running=ps.procs_running,
            procs_blocked=ps.procs_blocked,
            cpu_busy_pct=busy,
            cpu_iowait_pct=iowait,
            cpu_steal_pct=steal,
            mem_total=mem.total,
            mem_available=mem.available,
            swap_used=mem.swap_used,
            pageins=_rate(vm.pgmajfault, before.pgmajfault, dt),
            swapins=_rate(vm.pswpin, before.pswpin, dt),
            swapouts=_rate(vm.pswpout, before.pswpout, dt),
            psi_cpu=psi["cpu"],
            psi_memory=psi["memory"],
            psi_io=psi["io"],
            forks=forks,
            csw=csw,
            run_delay_known=self.run_delay_known,
            disk_bps=disk_bps,
        )

    def _disk_bps(self, dt: float | None) -> float | None:
        raw = self._diskstats.read() if self._diskstats is not None else None
        sectors = sectors_moved(raw, self._disk_counted, self._sys_block) if raw else None
        before, self._sectors = self._sectors, sectors
        rate = _rate(sectors, before, dt)
        return None if rate is None else rate * SECTOR

    def close(self) -> None:
        for f in (self._stat, self._loadavg, self._meminfo, self._vmstat, *self._psi.values()):
            f.close()
        if self._diskstats is not None:
            self._diskstats.close()


def _stall_pct(total: int | None, before: int | None, dt: float | None) -> float | None:
    if total is None or before is None or not dt:
        return None
    return _pct((total - before) / 1e6, dt)
