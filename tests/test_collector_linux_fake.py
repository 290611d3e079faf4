"""Linux backend on a crafted /proc tree: the logic that real processes cannot be made to show
on demand — pid reuse, files vanishing mid-scan, threads stuck in D behind a sleeping main
thread, a denied /proc/PID/io — plus the parsers and the system figures, with a fake clock.

The tree is plain files written in place (same inode), so the backend's kept-open descriptors
see every rewrite, as they would see the kernel regenerate a /proc file.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import collector.linux
from collector.linux import CLK_TCK, PAGE_SIZE, LinuxBackend, waits_accounted
from collector.procfs_parse import (
    parse_io,
    parse_io_syscalls,
    parse_pressure,
    parse_proc_stat,
    parse_schedstat,
    parse_stat,
    parse_status,
    schedstat_delay,
)
from collector.procfs_threads import count_stuck_threads
from tests.as_nobody import run_python_as_nobody

PF_KTHREAD = 0x00200000


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeProc:
    """A /proc tree in a directory. Counters are absolute, as the kernel shows them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.system()

    def _write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:  # truncate + write: same inode, like a regenerated file
            f.write(text)

    def system(
        self,
        *,
        cpu: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 0, 0),  # user nice system idle iowait irq softirq steal
        procs_running: int = 1,
        procs_blocked: int = 0,
        ncpu: int = 2,
        vm: dict[str, int] | None = None,
        psi: dict[str, tuple[int, int]] | None = None,
        mem_kb: tuple[int, int, int, int] = (1000, 600, 200, 150),  # total avail swaptotal swapfree
        ctxt: int = 99,
        processes: int = 500,
    ) -> None:
        line = " ".join(str(v) for v in cpu)
        percpu = "".join(f"cpu{i} {line}\n" for i in range(ncpu))
        self._write(
            "stat",
            f"cpu  {line} 0 0\n{percpu}intr 1 2 3\nctxt {ctxt}\nbtime 1\nprocesses {processes}\n"
            f"procs_running {procs_running}\nprocs_blocked {procs_blocked}\nsoftirq 0\n",
        )
        self._write("loadavg", "0.50 0.25 0.10 1/100 4242\n")
        total, avail, swap_total, swap_free = mem_kb
        self._write(
            "meminfo",
            f"MemTotal:       {total} kB\nMemFree:  1 kB\nMemAvailable:   {avail} kB\n"
            f"SwapTotal:      {swap_total} kB\nSwapFree:       {swap_free} kB\n",
        )
        vm = {"pgmajfault": 0, "pswpin": 0, "pswpout": 0, "zswpin": 0, "zswpout": 0,
              "pgsteal_kswapd": 0, "thp_collapse_alloc": 0, **(vm or {})}  # fmt: skip
        self._write("vmstat", "".join(f"{k} {v}\n" for k, v in vm.items()))
        if psi is not None:
            for res, (some, full) in psi.items():
                self._write(
                    f"pressure/{res}",
                    f"some avg10=0.00 avg60=0.00 avg300=0.00 total={some}\n"
                    f"full avg10=0.00 avg60=0.00 avg300=0.00 total={full}\n",
                )

    def process(
        self,
        pid: int,
        *,
        comm: str = "proc",
        state: str = "S",
        ppid: int = 1,
        utime: int = 0,
        stime: int = 0,
        majflt: int = 0,
        threads: int = 1,
        start: int = 100,
        rss_pages: int = 10,
        flags: int = 0,
        uid: int = 1000,
        swap_kb: int | None = 0,
        csw: tuple[int, int] = (0, 0),
        syscalls: tuple[int, int] = (0, 0),
        tasks: dict[int, str] | None = None,
        schedstat: bool = True,
        child_ticks: tuple[int, int] = (0, 0),  # cutime, cstime
        io_bytes: tuple[int, int] = (0, 0),  # read_bytes, write_bytes
        wait_ns: int = 0,  # schedstat run delay (each thread's)
        cgroup: str | None = None,  # /proc/PID/cgroup text
    ) -> None:
        """Write every file of one process; ``tasks`` gives extra threads' states (tid: letter)."""
        fields = [0] * 52
        fields[0], fields[2], fields[3] = pid, state, ppid
        fields[8], fields[11], fields[13], fields[14] = flags, majflt, utime, stime
        fields[15], fields[16] = child_ticks
        fields[19], fields[21], fields[23] = threads, start, rss_pages
        fields[1] = f"({comm})"
        self._write(f"{pid}/stat", " ".join(str(f) for f in fields) + "\n")
        swap = f"VmSwap:\t{swap_kb:8d} kB\n" if swap_kb is not None else ""
        self._write(
            f"{pid}/status",
            f"Name:\t{comm}\nState:\t{state} (x)\nPid:\t{pid}\nPPid:\t{ppid}\n"
            f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nVmRSS:\t{rss_pages * 4} kB\n"
            f"{swap}Threads:\t{threads}\n"
            f"voluntary_ctxt_switches:\t{csw[0]}\nnonvoluntary_ctxt_switches:\t{csw[1]}\n",
        )
        self._write(
            f"{pid}/io",
            f"rchar: 1\nwchar: 2\nsyscr: {syscalls[0]}\nsyscw: {syscalls[1]}\n"
            f"read_bytes: {io_bytes[0]}\nwrite_bytes: {io_bytes[1]}\ncancelled_write_bytes: 0\n",
        )
        runtime_ns = (utime + stime) * 10_000_000
        if schedstat:
            self._write(f"{pid}/schedstat", f"{runtime_ns} {wait_ns} {csw[0] + csw[1]}\n")
        if cgroup is not None:
            self._write(f"{pid}/cgroup", cgroup)
        all_tasks = {pid: state, **(tasks or {})}
        for tid, tstate in all_tasks.items():
            tf = list(fields)
            tf[0], tf[2] = tid, tstate
            self._write(f"{pid}/task/{tid}/stat", " ".join(str(f) for f in tf) + "\n")
            self._write(f"{pid}/task/{tid}/schedstat", f"{runtime_ns} {wait_ns} {csw[0] + csw[1]}\n")
            self._write(
                f"{pid}/task/{tid}/status",
                f"Name:\t{comm}\nvoluntary_ctxt_switches:\t{csw[0]}\n"
                f"nonvoluntary_ctxt_switches:\t{csw[1]}\n",
            )

    def remove(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))


@pytest.fixture
def fake(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


def by_pid(procs):
    return {p.pid: p for p in procs}


def backend(fake: FakeProc, clock: FakeClock, **kw) -> LinuxBackend:
    return LinuxBackend(str(fake.root), clock, **kw)


# --------------------------------------------------------------------------- parsers


def test_stat_name_with_parentheses_and_spaces() -> None:
    line = b"42 (a) R (b c)) Z 7 1 1 0 -1 4194304 5 0 9 0 30 12 0 0 20 0 3 0 555 1000 77 1 2 3\n"
    st = parse_stat(line)
    assert st is not None
    assert st.comm == b"a) R (b c)"
    assert chr(st.state) == "Z"
    assert (st.ppid, st.majflt, st.ticks, st.threads, st.starttime, st.rss_pages) == (7, 9, 42, 3, 555, 77)
    assert not st.kthread
    assert parse_stat(b"") is None
    assert parse_stat(b"42 (truncated") is None
    assert parse_stat(b"42 (x) S 1 2") is None


def test_status_io_schedstat_and_pressure_parsers() -> None:
    status = b"Name:\tx\nUid:\t1000\t1001\t1000\t1000\nVmSwap:\t     12 kB\n" \
             b"voluntary_ctxt_switches:\t5\nnonvoluntary_ctxt_switches:\t7\n"  # fmt: skip
    assert parse_status(status) == (1001, 12 * 1024, 12)
    kernel_thread = b"Name:\tkworker\nUid:\t0\t0\t0\t0\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t0\n"
    assert parse_status(kernel_thread) == (0, 0, 1)
    assert parse_io_syscalls(b"rchar: 1\nwchar: 2\nsyscr: 30\nsyscw: 12\nread_bytes: 0\n") == 42
    assert parse_io_syscalls(b"syscw: 2\nsyscr: 3\n") == 5  # any order
    assert parse_io_syscalls(b"rchar: 1\n") is None
    assert parse_schedstat(b"123 456 789\n") == (456, 789)
    assert parse_schedstat(b"") == (None, None)
    assert parse_pressure(b"some avg10=1.00 avg60=0 avg300=0 total=100\nfull avg10=0 avg60=0 avg300=0 total=7\n") == (100, 7)
    assert parse_pressure(b"some avg10=1.00 avg60=0 avg300=0 total=100\n") == (100, None)
    ps = parse_proc_stat(b"cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1\ncpu1 1\ncpu2 1\nprocs_running 3\nprocs_blocked 2\n")
    assert ps.cpu is not None and (ps.cpu.busy, ps.cpu.idle, ps.cpu.iowait, ps.cpu.steal) == (1 + 2 + 3 + 6 + 7, 4, 5, 8)
    assert (ps.cpu_count, ps.procs_running, ps.procs_blocked) == (3, 3, 2)


# Captured on this machine (kernel 6.18): /proc/PID/stat of a bash that had reaped children,
# /proc/PID/io of a process that wrote a file, /proc/stat's counters, a busy pid 1's schedstat.
BASH_STAT = (b"3285 (bash) S 3284 3285 3285 34816 9049 4194304 4791 52417 0 0 22 19 71 60 20 0 1 0 "
             b"7113 7614464 982 18446744073709551615 1 1 0 0 0 0 65536 3670020 1266777851 0 0 0 "
             b"17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")  # fmt: skip
IO_TEXT = (b"rchar: 4526719\nwchar: 1048789\nsyscr: 1071\nsyscw: 272\nread_bytes: 229376\n"
           b"write_bytes: 1052672\ncancelled_write_bytes: 4096\n")  # fmt: skip


def test_new_per_process_and_system_counters_parse() -> None:
    st = parse_stat(BASH_STAT)
    assert st is not None and (st.ticks, st.child_ticks) == (22 + 19, 71 + 60)
    assert parse_io(IO_TEXT) == (1071 + 272, 229376, 1052672)
    # keys in another order or missing: found by name, absent ones None (not 0)
    assert parse_io(b"write_bytes: 5\ncancelled_write_bytes: 9\nread_bytes: 3\nsyscr: 1\nsyscw: 1\n") == (2, 3, 5)
    assert parse_io(b"rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\n") == (7, None, None)
    assert parse_io(b"") == (None, None, None)
    assert schedstat_delay(b"183048479 18221979 368\n") == 18221979
    assert schedstat_delay(b"0 0 12\n") == 0 and schedstat_delay(b"garbage") is None
    # "0 0 n" everywhere: the kernel counts runs but not the wait
    assert not waits_accounted([b"0 0 368\n", b"0 0 85\n", b"0 0 1\n"])
    assert waits_accounted([b"0 0 1\n", b"183048479 18221979 368\n"])
    assert not waits_accounted([])
    ps = parse_proc_stat(b"cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1\nintr 5 1\nctxt 2722312\nbtime 1\nprocesses 9141\n")
    assert (ps.ctxt, ps.forks) == (2722312, 9141)


# --------------------------------------------------------------------------- rates and identity


@pytest.mark.parametrize("schedstat", [True, False], ids=["schedstat", "stat-only"])
def test_rates_over_the_interval(fake: FakeProc, schedstat: bool) -> None:
    clock = FakeClock()
    fake.process(100, comm="worker", utime=100, majflt=5, csw=(10, 2), syscalls=(100, 50), rss_pages=25, uid=1234, swap_kb=8)
    with backend(fake, clock, schedstat=schedstat) as b:
        first = by_pid(b.sample()[0])[100]
        assert (first.cpu, first.csw, first.sysbsd, first.pageins) == (None, None, None, None)
        assert (first.command, first.state, first.ppid, first.threads) == ("worker", "sleeping", 1, 1)
        assert first.mem == 25 * PAGE_SIZE and first.cmprs == 8 * 1024 and first.uid == 1234

        clock.t += 2.0  # 2 s later: +CLK_TCK ticks = 50 % of one core; +40 csw; +300 syscalls
        fake.process(100, comm="worker", utime=100 + CLK_TCK // 2, stime=CLK_TCK // 2, majflt=9,
                     csw=(40, 12), syscalls=(300, 150), rss_pages=30, uid=1234, swap_kb=8)  # fmt: skip
        p = by_pid(b.sample()[0])[100]
        assert p.cpu == pytest.approx(50.0)
        assert p.csw == pytest.approx(20.0)
        assert p.sysbsd == pytest.approx(150.0)
        assert p.pageins == pytest.approx(2.0)
        assert p.mem == 30 * PAGE_SIZE

        clock.t += 1.0  # nothing changed: zero rates, not None
        idle = by_pid(b.sample()[0])[100]
        assert (idle.cpu, idle.csw, idle.sysbsd, idle.pageins) == (0.0, 0.0, 0.0, 0.0)


def test_pressure_figures_over_the_interval(fake: FakeProc) -> None:
    """Reaped children's CPU, run delay, storage bytes, memory growth; forks and switches/s."""
    clock = FakeClock()
    fake.process(100, utime=10, child_ticks=(5, 5), io_bytes=(1000, 2000), wait_ns=10**6,
                 csw=(1, 0), rss_pages=100, swap_kb=40)  # fmt: skip
    fake.system(ctxt=1000, processes=500)
    with backend(fake, clock, run_delay=True) as b:
        first, system = b.sample()
        p = by_pid(first)[100]
        assert (p.cpu_children, p.run_delay, p.read_bps, p.write_bps, p.mem_growth) == (None,) * 5
        assert (system.forks, system.csw, system.run_delay_known) == (None, None, True)

        clock.t += 2.0
        fake.process(100, utime=10 + CLK_TCK, child_ticks=(5 + CLK_TCK, 5 + CLK_TCK),
                     io_bytes=(1000 + 8192, 2000 + 4 * 2**20), wait_ns=10**6 + 300 * 10**6,
                     csw=(9, 0), rss_pages=100 + 512, swap_kb=40)  # fmt: skip
        fake.system(ctxt=1000 + 8000, processes=500 + 30)
        procs, system = b.sample()
        p = by_pid(procs)[100]
        assert p.cpu == pytest.approx(50.0)
        assert p.cpu_children == pytest.approx(100.0)  # 2 s of children's CPU over 2 s
        assert p.run_delay == pytest.approx(150.0)  # 300 ms waiting over 2 s: 150 ms/s
        assert (p.read_bps, p.write_bps) == (pytest.approx(4096.0), pytest.approx(2 * 2**20))
        assert p.mem_growth == pytest.approx(512 * PAGE_SIZE / 2)
        assert (system.forks, system.csw) == (pytest.approx(15.0), pytest.approx(4000.0))

        clock.t += 1.0  # nothing changed: every rate 0, none None
        p = by_pid(b.sample()[0])[100]
        assert (p.cpu, p.cpu_children, p.run_delay, p.read_bps, p.write_bps, p.mem_growth) == (0.0,) * 6


def test_run_delay_is_none_where_the_kernel_does_not_account_it(
    fake: FakeProc, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    fake.process(100, utime=10, csw=(1, 0))
    monkeypatch.setattr(collector.linux, "run_delay_accounted", lambda root: False)  # "0 0 n" kernel
    with caplog.at_level(logging.INFO, logger="collector"), backend(fake, clock) as b:
        assert [r.getMessage() for r in caplog.records if "run delay" in r.getMessage()] == [
            "run delay unknown: /proc/PID/schedstat has no wait time on this kernel (it reads '0 0 n');"
            " ProcessInfo.run_delay is None"
        ]
        b.sample()
        clock.t += 1.0
        fake.process(100, utime=20, csw=(5, 0), wait_ns=5 * 10**6)
        procs, system = b.sample()
        p = by_pid(procs)[100]
        assert p.run_delay is None and p.csw == pytest.approx(4.0) and system.run_delay_known is False


@pytest.mark.parametrize("schedstat", [True, False], ids=["schedstat", "stat-only"])
def test_rates_never_exceed_what_the_hardware_allows(fake: FakeProc, schedstat: bool) -> None:
    """Issue 16: a sample 5 ms after the last one, tick-resolution CPU: one 10 ms tick reads 200 %
    of a core. A process can use at most min(threads, cores) cores; reaped children every core."""
    clock = FakeClock()
    fake.process(100, comm="single", utime=10)
    fake.process(101, comm="threaded", utime=10, threads=3)
    fake.process(102, comm="reaper", utime=10)
    with backend(fake, clock, schedstat=schedstat, run_delay=True) as b:
        b.sample()
        clock.t += 0.005
        fake.process(100, comm="single", utime=12)
        fake.process(101, comm="threaded", utime=20, threads=3)
        fake.process(102, comm="reaper", utime=11, child_ticks=(500, 500))  # a child's 10 s, reaped
        procs = by_pid(b.sample()[0])
        assert procs[100].cpu == 100.0
        assert procs[101].cpu == 200.0  # 3 threads, 2 cores
        assert procs[102].cpu_children == 200.0


def test_cgroup_is_read_once_and_again_on_exec(fake: FakeProc) -> None:
    clock = FakeClock()
    fake.process(100, comm="sh", utime=1, cgroup="0::/system.slice/cron.service\n")
    fake.process(101, comm="kworker/0:1", flags=PF_KTHREAD, cgroup="0::/\n")
    with backend(fake, clock) as b:
        procs = by_pid(b.sample()[0])
        assert (procs[100].cgroup, procs[101].cgroup) == ("cron.service", None)
        clock.t += 1.0  # moved by someone else, and ran: not read again (once per process)
        fake.process(100, comm="sh", utime=5, cgroup="0::/system.slice/docker-" + "ab" * 32 + ".scope\n")
        assert by_pid(b.sample()[0])[100].cgroup == "cron.service"
        for _ in range(3):
            clock.t += 1.0  # idle
            assert by_pid(b.sample()[0])[100].cgroup == "cron.service"
        assert b.counters["cgroup_reads"] == 1  # the kernel thread's never
        clock.t += 1.0  # exec (a new name): read again
        fake.process(100, comm="nginx", utime=9, cgroup="0::/system.slice/docker-" + "ab" * 32 + ".scope\n")
        assert by_pid(b.sample()[0])[100].cgroup == "docker:abababababab"
        assert b.counters["cgroup_reads"] == 2


def test_pid_reuse_detected_by_start_time(fake: FakeProc) -> None:
    clock = FakeClock()
    fake.process(100, comm="old", utime=5000, start=500, csw=(900, 0), syscalls=(9000, 0))
    with backend(fake, clock) as b:
        b.sample()
        clock.t += 1.0
        # The old process exited and a new one got pid 100: its counters are smaller, its
        # start time later. Without the start-time check this would be a negative (or, if the
        # new one had larger counters, an absurd) rate.
        fake.process(100, comm="new", utime=3, start=900, csw=(4, 0), syscalls=(10, 0))
        p = by_pid(b.sample()[0])[100]
        assert p.command == "new"
        assert (p.cpu, p.csw, p.sysbsd, p.pageins) == (None, None, None, None)
        clock.t += 1.0
        fake.process(100, comm="new", utime=3 + CLK_TCK // 4, start=900, csw=(14, 0), syscalls=(30, 0))
        p = by_pid(b.sample()[0])[100]
        assert p.cpu == pytest.approx(25.0)
        assert p.csw == pytest.approx(10.0)
        assert p.sysbsd == pytest.approx(20.0)


def test_processes_vanishing_mid_scan_do_not_break_the_snapshot(fake: FakeProc) -> None:
    clock = FakeClock()
    for pid in (100, 101, 102, 103):
        fake.process(pid, comm=f"p{pid}", utime=1)
    with backend(fake, clock) as b:
        assert sorted(by_pid(b.sample()[0])) == [100, 101, 102, 103]
        clock.t += 1.0
        for pid in (100, 101, 102, 103):
            fake.process(pid, comm=f"p{pid}", utime=2)  # they all ran
        (fake.root / "101" / "stat").write_text("")  # listed, but its stat reads empty: gone
        fake.remove(102)  # gone before the listing
        (fake.root / "104").mkdir()  # listed, no files yet: a process half-created or half-gone
        fake.process(105, comm="p105")
        (fake.root / "105" / "status").unlink()  # stat read, then it vanished before status
        (fake.root / "105" / "io").unlink()
        procs = by_pid(b.sample()[0])
        assert sorted(procs) == [100, 103]
        assert procs[100].cpu is not None
        assert b.open_fds <= 2 * 3  # nothing left open for the vanished


def test_kernel_threads_and_zombies_have_no_memory_and_no_syscalls(fake: FakeProc) -> None:
    clock = FakeClock()
    fake.process(2, comm="kthreadd", ppid=0, flags=PF_KTHREAD, rss_pages=0, swap_kb=None, uid=0)
    fake.process(50, comm="kworker/0:1-events", ppid=2, state="I", flags=PF_KTHREAD, rss_pages=0, swap_kb=None, uid=0)
    fake.process(60, comm="defunct", state="Z", rss_pages=0, swap_kb=None)
    with backend(fake, clock) as b:
        b.sample()
        clock.t += 1.0
        fake.process(50, comm="kworker/0:1-mm_percpu_wq", ppid=2, state="I", flags=PF_KTHREAD,
                     rss_pages=0, swap_kb=None, uid=0, utime=3, csw=(7, 0))  # fmt: skip
        procs = by_pid(b.sample()[0])
        assert procs[50].command == "kworker/0:1-mm_percpu_wq"
        assert (procs[50].state, procs[50].mem, procs[50].cmprs, procs[50].uid) == ("idle", 0, 0, 0)
        assert procs[50].sysbsd == 0.0 and procs[50].csw == pytest.approx(7.0)
        assert (procs[60].state, procs[60].mem, procs[60].cmprs) == ("zombie", 0, 0)


def test_states_map_to_the_seed_vocabulary(fake: FakeProc) -> None:
    letters = {"R": "running", "S": "sleeping", "D": "stuck", "Z": "zombie", "T": "stopped",
               "t": "stopped", "I": "idle", "X": "halted", "x": "halted", "?": "unknown"}  # fmt: skip
    for i, letter in enumerate(letters):
        fake.process(200 + i, state=letter)
    with backend(fake, FakeClock()) as b:
        procs = by_pid(b.sample()[0])
    assert {letter: procs[200 + i].state for i, letter in enumerate(letters)} == letters


# --------------------------------------------------------------------------- stuck threads


def test_thread_in_d_behind_sleeping_main_thread_counts_as_stuck(fake: FakeProc) -> None:
    clock = FakeClock()
    fake.system(procs_blocked=1)  # one task in iowait, and no main thread in D: scan
    fake.process(300, comm="db", threads=3, tasks={301: "D", 302: "S"})
    fake.process(310, comm="web", threads=2, tasks={311: "S"})
    fake.process(320, comm="single", state="S")
    assert count_stuck_threads(str(fake.root), "300") == 1
    assert count_stuck_threads(str(fake.root), "310") == 0
    with backend(fake, clock, thread_scan_every=1000) as b:
        procs = by_pid(b.sample()[0])
        assert procs[300].state == "stuck"
        assert procs[310].state == "sleeping"
        assert procs[320].state == "sleeping"

        clock.t += 1.0  # the thread woke up: no longer stuck (it was being watched)
        fake.system(procs_blocked=0)
        fake.process(300, comm="db", threads=3, tasks={301: "S", 302: "S"})
        assert by_pid(b.sample()[0])[300].state == "sleeping"


def test_no_thread_scan_without_a_reason_then_the_rotation_finds_it(fake: FakeProc) -> None:
    """procs_blocked counts iowait only; a D wait outside io_schedule is found by the rotation."""
    clock = FakeClock()
    fake.system(procs_blocked=0)
    fake.process(300, comm="db", threads=2, tasks={301: "D"})
    with backend(fake, clock, thread_scan_every=1000) as b:
        for _ in range(3):
            clock.t += 1.0
            assert by_pid(b.sample()[0])[300].state == "sleeping"  # nobody asked for a scan
    with backend(fake, clock, thread_scan_every=4) as b:
        states = []
        for _ in range(4):
            clock.t += 1.0
            states.append(by_pid(b.sample()[0])[300].state)
        assert "stuck" in states
        assert states[states.index("stuck"):] == ["stuck"] * (4 - states.index("stuck"))  # stays found


def test_main_thread_in_d_is_stuck_without_a_scan(fake: FakeProc) -> None:
    fake.process(400, state="D")
    with backend(fake, FakeClock()) as b:
        assert by_pid(b.sample()[0])[400].state == "stuck"
        assert b.counters["thread_scans"] == 0


# --------------------------------------------------------------------------- system figures


def test_system_figures_over_the_interval(fake: FakeProc) -> None:
    clock = FakeClock()
    fake.system(cpu=(100, 0, 100, 1000, 10, 0, 0, 0), psi={"cpu": (1000, 0), "memory": (0, 0), "io": (500, 100)},
                vm={"pgmajfault": 10, "pswpin": 0, "pswpout": 0})  # fmt: skip
    with backend(fake, clock) as b:
        first = b.sample()[1]
        assert first.cpu_busy_pct is None and first.pageins is None
        assert first.psi_cpu is not None and first.psi_cpu.some is None  # present, no interval yet
        assert (first.load1, first.load5, first.load15) == (0.5, 0.25, 0.1)
        assert (first.cpu_count, first.procs_running, first.procs_blocked) == (2, 1, 0)
        assert (first.mem_total, first.mem_available, first.swap_used) == (1000 * 1024, 600 * 1024, 50 * 1024)

        clock.t += 2.0
        # +200 ticks: 100 busy (user 60 + system 30 + softirq 10), 60 idle, 30 iowait, 10 steal
        fake.system(cpu=(160, 0, 130, 1060, 40, 0, 10, 10), procs_blocked=3,
                    psi={"cpu": (1000 + 500_000, 0), "memory": (0, 0), "io": (500 + 1_000_000, 100 + 200_000)},
                    vm={"pgmajfault": 50, "pswpin": 20, "pswpout": 60})  # fmt: skip
        s = b.sample()[1]
        assert s.cpu_busy_pct == pytest.approx(50.0)
        assert s.cpu_iowait_pct == pytest.approx(15.0)
        assert s.cpu_steal_pct == pytest.approx(5.0)
        assert s.procs_blocked == 3
        assert s.psi_cpu.some == pytest.approx(25.0) and s.psi_cpu.full == pytest.approx(0.0)
        assert s.psi_io.some == pytest.approx(50.0) and s.psi_io.full == pytest.approx(10.0)
        assert (s.pageins, s.swapins, s.swapouts) == (pytest.approx(20.0), pytest.approx(10.0), pytest.approx(30.0))


def test_absent_pressure_files_give_none(fake: FakeProc) -> None:
    assert not (fake.root / "pressure").exists()
    clock = FakeClock()
    with backend(fake, clock) as b:
        b.sample()
        clock.t += 1.0
        s = b.sample()[1]
    assert (s.psi_cpu, s.psi_memory, s.psi_io) == (None, None, None)
    assert s.cpu_busy_pct is None  # no ticks moved in the fake: no percentage, not a division by 0


# --------------------------------------------------------------------------- swap and idle refresh


# A sleeping process's files are not re-read (schedstat unchanged), so a figure the kernel changes
# behind its back (swapped out, pages reclaimed) is re-read once the system counter that moves it
# moves: until then the old figure stands (by design).
@pytest.mark.parametrize(
    ("figure", "then", "now", "every", "counter", "stale", "fresh"),
    [
        ("cmprs", {"swap_kb": 0}, {"swap_kb": 4096}, {"swap_refresh_every": 2}, "pswpout", 0, 4096 * 1024),
        ("mem", {"rss_pages": 1000}, {"rss_pages": 10}, {"stat_every": 2}, "pgsteal_kswapd",
         1000 * PAGE_SIZE, 10 * PAGE_SIZE),
    ],
    ids=["vmswap-when-swap-moves", "rss-when-the-kernel-reclaims"],
)
def test_a_figure_of_a_sleeping_process_is_reread_when_its_system_counter_moves(
    fake: FakeProc, figure: str, then: dict[str, int], now: dict[str, int], every: dict[str, int], counter: str,
    stale: int, fresh: int,
) -> None:
    clock = FakeClock()
    fake.process(500, **then)
    with backend(fake, clock, refresh_every=1000, **every) as b:
        b.sample()
        clock.t += 1.0
        fake.process(500, **now)  # changed while it slept
        assert getattr(by_pid(b.sample()[0])[500], figure) == stale  # the counter did not move
        seen = []
        for i in range(3):
            clock.t += 1.0
            fake.system(vm={counter: 100 + i})
            seen.append(getattr(by_pid(b.sample()[0])[500], figure))
        assert fresh in seen


def test_orphan_gets_its_new_parent_at_the_next_sample(fake: FakeProc) -> None:
    clock = FakeClock()
    fake.process(700, comm="parent")
    fake.process(701, comm="child", ppid=700)
    with backend(fake, clock, refresh_every=1000) as b:
        b.sample()
        clock.t += 1.0
        fake.remove(700)
        fake.process(701, comm="child", ppid=1)  # reparented; the child itself did not run
        b.sample()  # notices the parent is gone
        clock.t += 1.0
        assert by_pid(b.sample()[0])[701].ppid == 1


# --------------------------------------------------------------------------- io denied


SYSBSD_SCRIPT = """
import json, sys, time
from collector.linux import LinuxBackend
drop_privileges()
clock = iter(range(1000, 2000)).__next__
with LinuxBackend(sys.argv[1], clock) as b:
    b.sample()
    procs = {p.pid: [p.sysbsd, p.read_bps, p.write_bps] for p in b.sample()[0]}
print(json.dumps({str(pid): procs.get(int(pid), "absent") for pid in sys.argv[2:]}))
"""


def test_unreadable_io_gives_none_not_zero() -> None:
    top = Path(tempfile.mkdtemp(prefix="pmfake"))
    try:
        os.chmod(top, 0o755)
        fake = FakeProc(top / "proc")
        fake.process(800, comm="secret", syscalls=(5, 5))
        fake.process(801, comm="open", syscalls=(5, 5))
        for dirpath, dirnames, filenames in os.walk(top):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        os.chmod(fake.root / "800" / "io", 0o000)
        if os.geteuid() != 0:
            assert not os.access(fake.root / "800" / "io", os.R_OK)
        got = run_python_as_nobody(SYSBSD_SCRIPT, str(fake.root), "800", "801")
        assert got == {"800": [None, None, None], "801": [0.0, 0.0, 0.0]}
    finally:
        shutil.rmtree(top, ignore_errors=True)


GB5 = 5 * 2**30


def _python_shell_and_reader(fake: FakeProc) -> None:
    """python (100) started a shell (200) that started a reader (300)."""
    fake.process(100, comm="python", utime=10)
    fake.process(200, comm="sh", ppid=100, utime=1)
    fake.process(300, comm="reader", ppid=200, utime=1)


def _reader_seen_reading(fake: FakeProc, clock: FakeClock, b: LinuxBackend) -> None:
    """A first sample, then one that sees the reader read 5 GiB in a second."""
    b.sample()
    clock.t += 1.0
    fake.process(300, comm="reader", ppid=200, utime=101, io_bytes=(GB5, 0))
    assert by_pid(b.sample()[0])[300].read_bps == pytest.approx(GB5)
    clock.t += 1.0


def test_a_zombie_passes_on_what_it_reaped_to_its_own_reaper(fake: FakeProc) -> None:
    """The kernel folds a reaped child's lifetime io into its parent; when that parent dies before
    its figures showed it (a shell killed with its readers, a zombie until someone reaps it), the
    grandparent receives it all at once. What the collector saw the grandchildren use is taken
    out there too: the bench's python, reaping a zombie shell, had shown 11.6 GB/s of io."""
    clock = FakeClock()
    _python_shell_and_reader(fake)
    with backend(fake, clock) as b:
        _reader_seen_reading(fake, clock, b)
        fake.remove(300)  # reaped by the shell, which is killed: a zombie holding the reader's lifetime
        fake.process(200, comm="sh", state="Z", ppid=100, utime=1, child_ticks=(100, 0), io_bytes=(GB5, 0))
        for _ in range(5):  # nobody reaps the zombie for a while
            b.sample()
            clock.t += 1.0
        fake.remove(200)
        fake.process(100, comm="python", utime=11, child_ticks=(101, 0), io_bytes=(GB5, 0))  # reaped now
        python = by_pid(b.sample()[0])[100]
        assert not python.read_bps, python.read_bps


@pytest.mark.parametrize("first", ["200", "300"], ids=["shell-forgotten-first", "reader-forgotten-first"])
def test_a_parent_killed_with_its_children_hands_them_to_the_ancestor_that_reaps_them(fake: FakeProc, first) -> None:
    """Shell and reader killed together (one process group): the orphaned reader is reaped by the
    nearest subreaper, here the shell's parent, which receives the reader's lifetime io at once;
    the collector had seen it, so it is taken out there, whichever of the two it finds gone first
    (the order it last listed them in: forced here, /proc's own order is the directory's)."""
    clock = FakeClock()
    _python_shell_and_reader(fake)
    with backend(fake, clock) as b:
        listed = b._names
        b._names = lambda known: sorted(listed(known), key=lambda name: name != first)  # type: ignore[method-assign]
        _reader_seen_reading(fake, clock, b)
        fake.remove(200)
        fake.remove(300)
        fake.process(100, comm="python", utime=11, child_ticks=(101, 0), io_bytes=(GB5, 0))  # reaped both
        python = by_pid(b.sample()[0])[100]
        assert not python.read_bps, python.read_bps
