"""Linux backend against real processes, with procps ``ps`` as the oracle nobody here wrote.

Children are started in their own session and killed (whole group) and reaped in the fixture.
The machine is shared and loaded, so CPU figures are measured over a generous window and
retried; nothing sleeps to synchronise — states are polled for with a deadline.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import collector.linux
from collector.linux import PAGE_SIZE, LinuxBackend, cpu_clock_id, live_proc
from tests.as_nobody import run_python_as_nobody
from tests.procutil import proc_state, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc backend")
PS = shutil.which("ps")
needs_ps = pytest.mark.skipif(PS is None, reason="procps ps not installed (.ci/setup installs it)")

PS_STATE = {"R": "running", "S": "sleeping", "D": "stuck", "Z": "zombie", "T": "stopped",
            "t": "stopped", "I": "idle", "X": "halted"}  # fmt: skip


class Children:
    """Spawned children, each in its own session; all killed and reaped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def python(self, code: str, **kw) -> subprocess.Popen:
        return self.spawn([sys.executable, "-c", code], **kw)

    def cleanup(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.kill()
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait(timeout=10)


@pytest.fixture
def children() -> Iterator[Children]:
    c = Children()
    try:
        yield c
    finally:
        c.cleanup()


def wait_ready(path: Path) -> None:
    wait_for(path.exists, what=f"child to write {path.name}")


def ps_rows(pids: list[int]) -> dict[int, tuple[int, int, str]]:
    """pid -> (rss KiB, nlwp, stat) from procps ps."""
    out = subprocess.run(
        [PS, "-o", "pid=,rss=,nlwp=,stat=", "-p", ",".join(map(str, pids))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    rows = {}
    for line in out.stdout.splitlines():
        pid, rss, nlwp, stat = line.split()
        rows[int(pid)] = (int(rss), int(nlwp), stat)
    return rows


def by_pid(procs):
    return {p.pid: p for p in procs}


# --------------------------------------------------------------------------- accuracy against ps


@needs_ps
def test_rss_threads_and_state_match_ps(children: Children, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    sleeper = children.spawn(["sleep", "300"])
    # 40 MB touched, 4 extra threads parked on an event: a multi-threaded, sizeable process.
    fat = children.python(
        "import threading, pathlib, sys, time\n"
        "data = bytearray(40 << 20)\n"
        "for i in range(0, len(data), 4096): data[i] = 1\n"
        "ev = threading.Event()\n"
        "ts = [threading.Thread(target=ev.wait, daemon=True) for _ in range(4)]\n"
        "[t.start() for t in ts]\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "while True: time.sleep(60)\n"
    )
    stopped = children.spawn(["sleep", "300"])
    wait_ready(ready)
    os.kill(stopped.pid, signal.SIGSTOP)
    pids = [sleeper.pid, fat.pid, stopped.pid]
    wait_for(lambda: proc_state(stopped.pid) == "T" and proc_state(sleeper.pid) == "S", what="states")
    with LinuxBackend() as b:
        before = ps_rows(pids)
        procs = by_pid(b.sample()[0])
        after = ps_rows(pids)
    for pid in pids:
        ours = procs[pid]
        rss_before, nlwp, stat = before[pid]
        rss_after = after[pid][0]
        low, high = min(rss_before, rss_after), max(rss_before, rss_after)
        slack = max(256, high // 50)  # KiB: per-CPU rss counters are approximate
        assert low - slack <= ours.mem // 1024 <= high + slack, (pid, ours.mem // 1024, before[pid], after[pid])
        assert ours.threads == nlwp == after[pid][1]
        assert ours.state == PS_STATE[stat[0]], (pid, ours.state, stat)
    assert procs[fat.pid].threads == 5
    assert procs[fat.pid].mem >= 40 << 20
    assert procs[stopped.pid].state == "stopped"
    assert procs[sleeper.pid].uid == os.geteuid()
    assert procs[sleeper.pid].command == "sleep"
    assert procs[fat.pid].ppid == os.getpid()


@needs_ps
def test_zombie_and_stopped_children(children: Children) -> None:
    zombie = children.spawn(["true"])  # exits at once; not waited for until cleanup: a zombie
    stopped = children.spawn(["sleep", "300"])
    os.kill(stopped.pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(zombie.pid) == "Z", what="zombie")
    wait_for(lambda: proc_state(stopped.pid) == "T", what="stopped")
    with LinuxBackend() as b:
        procs = by_pid(b.sample()[0])
    assert procs[zombie.pid].state == "zombie"
    assert procs[zombie.pid].mem == 0
    assert procs[stopped.pid].state == "stopped"
    rows = ps_rows([zombie.pid, stopped.pid])
    assert rows[zombie.pid][2][0] == "Z" and rows[stopped.pid][2][0] == "T"


# --------------------------------------------------------------------------- CPU


def test_busy_child_reads_about_one_core_and_sleeper_about_zero(children: Children) -> None:
    busy = children.python("while True: pass")
    sleeper = children.spawn(["sleep", "300"])
    if os.geteuid() == 0:
        os.setpriority(os.PRIO_PROCESS, busy.pid, -10)  # a full core despite the other tests
    wait_for(lambda: proc_state(sleeper.pid) == "S", what="sleeper asleep")
    readings = []
    with LinuxBackend() as b:
        b.sample()
        for _ in range(3):  # three 2 s windows; the machine is shared: pass on a fair one
            time.sleep(2.0)  # the measuring window itself, not synchronisation
            procs = by_pid(b.sample()[0])
            readings.append((procs[busy.pid].cpu, procs[sleeper.pid].cpu))
            if abs(readings[-1][0] - 100.0) <= 15.0:
                break
    busy_cpu, sleeper_cpu = readings[-1]
    assert abs(busy_cpu - 100.0) <= 15.0, readings
    assert all(s is not None and s <= 1.0 for _, s in readings), readings


REAPER = (
    "import os, sys, time\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    with open(sys.argv[1], 'wb') as f:\n"  # 32 MiB written to storage ...
    "        for _ in range(32): f.write(b'x' * (1 << 20))\n"
    "        os.fsync(f.fileno())\n"
    "    while time.process_time() < 1.2: pass\n"  # ... and 1.2 s of CPU, seen alive across samples
    "    os._exit(0)\n"
    "os.waitpid(pid, 0)\n"
    "time.sleep(300)\n"
)


def test_what_a_reaped_child_was_seen_using_is_not_charged_again_to_its_parent(
    children: Children, tmp_path: Path
) -> None:
    # The kernel adds the child's whole lifetime to the parent when it reaps it (cutime, and the
    # parent's /proc/PID/io): 1.2 s of CPU in one 0.25 s interval read as every core, 32 MiB
    # written long before as 128 MB/s. Only what the child used after its last sample (at most
    # the interval: one core; no more writes) may land on the parent.
    parent = children.spawn([sys.executable, "-c", REAPER, str(tmp_path / "written")])
    child = None
    samples = []
    with LinuxBackend() as b:
        b.sample()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.25)  # the sampling interval itself
            procs = by_pid(b.sample()[0])
            if child is None:
                child = next((p.pid for p in procs.values() if p.ppid == parent.pid), None)
            samples.append(procs)
            if child is not None and child not in procs and parent.pid in procs:
                break
    assert child is not None and child not in samples[-1], "the child never ran or never exited"
    seen_alive = [s[child].cpu for s in samples if child in s and s[child].cpu]
    assert sum(seen_alive) * 0.25 >= 60, f"the child was seen using too little CPU: {seen_alive}"
    reaped = [(s[parent.pid].cpu_children, s[parent.pid].write_bps) for s in samples[-2:] if parent.pid in s]
    assert max(c for c, _ in reaped) <= 120.0, f"parent's (children CPU, writes) {reaped} (lifetime 1.2 s, interval 0.25 s)"
    assert max(w for _, w in reaped) < 4e6, f"parent's (children CPU, writes) {reaped} (32 MiB written while seen)"


def test_context_switches_of_all_threads_are_counted(children: Children, tmp_path: Path) -> None:
    """/proc/PID/status (and psutil) count the main thread only; the process did far more."""
    ready = tmp_path / "ready"
    child = children.python(
        "import threading, time, pathlib\n"
        "def spin():\n"
        "    while True: time.sleep(0.001)\n"
        "for _ in range(3): threading.Thread(target=spin, daemon=True).start()\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "threading.Event().wait()\n"
    )
    wait_ready(ready)

    def main_thread_csw() -> int:
        text = Path(f"/proc/{child.pid}/status").read_text()
        return sum(int(line.split()[1]) for line in text.splitlines() if "ctxt_switches" in line)

    with LinuxBackend() as b:
        b.sample()
        main_before = main_thread_csw()
        t0 = time.monotonic()
        time.sleep(1.0)
        p = by_pid(b.sample()[0])[child.pid]
        main_rate = (main_thread_csw() - main_before) / (time.monotonic() - t0)
    assert p.threads == 4
    assert p.csw is not None and p.csw > 300, p  # 3 threads waking up to 1000 times a second
    assert p.csw > 10 * (main_rate + 1), (p.csw, main_rate)


# --------------------------------------------------------------------------- stuck threads


CLONE_VFORK_HOLDER = """
import ctypes, os, platform, threading, time, pathlib, sys
libc = ctypes.CDLL(None, use_errno=True)
NR_CLONE = {"x86_64": 56, "aarch64": 220}[platform.machine()]
CLONE_VFORK, SIGCHLD = 0x4000, 17
def hold():
    # clone(CLONE_VFORK) without CLONE_VM: the child has its own copy of memory, like fork, but
    # this thread waits for it to exec or exit in TASK_KILLABLE, which /proc shows as D. The
    # child never does either: it sleeps (or blocks on the copied interpreter lock) until killed.
    if libc.syscall(NR_CLONE, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0) == 0:
        libc.pause()
threading.Thread(target=hold, daemon=True).start()
pathlib.Path(sys.argv[1]).touch()
while True:
    time.sleep(60)  # the main thread sleeps: ps shows the process as S
"""


@needs_ps
@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="raw clone syscall number")
def test_real_thread_in_d_behind_sleeping_main_thread(children: Children, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    holder = children.spawn([sys.executable, "-c", CLONE_VFORK_HOLDER, str(ready)])
    wait_ready(ready)
    task = Path(f"/proc/{holder.pid}/task")

    def thread_states() -> dict[int, str]:
        return {int(t.name): proc_state_of(t / "stat") for t in task.iterdir()}

    wait_for(lambda: "D" in thread_states().values() and proc_state(holder.pid) == "S", what="a D thread")
    # procps agrees the main thread sleeps: ps alone would not call this process stuck.
    assert ps_rows([holder.pid])[holder.pid][2][0] == "S"
    # The default backend looks at every multi-threaded process within thread_scan_every samples
    # even when /proc/stat's procs_blocked (iowait only) does not count this wait.
    with LinuxBackend() as b:
        states = [by_pid(b.sample()[0])[holder.pid].state for _ in range(10)]
    assert "stuck" in states, states
    assert states[-1] == "stuck", states  # once found, watched every sample


def proc_state_of(stat_path: Path) -> str:
    try:
        b = stat_path.read_bytes()
    except OSError:
        return ""
    return chr(b[b.rfind(b")") + 2])


# --------------------------------------------------------------------------- churn and vanishing


def test_processes_exiting_during_sampling_never_break_a_snapshot(children: Children) -> None:
    stop = threading.Event()
    spawned = [0]

    def churn() -> None:
        while not stop.is_set():
            batch = [subprocess.Popen(["true"]) for _ in range(8)]
            batch += [subprocess.Popen(["sleep", "0.01"]) for _ in range(4)]
            for p in batch:
                p.wait()
            spawned[0] += len(batch)

    t = threading.Thread(target=churn)
    t.start()
    fds_before = len(os.listdir("/proc/self/fd"))
    try:
        with LinuxBackend() as b:
            for _ in range(40):
                procs, system = b.sample()
                pids = [p.pid for p in procs]
                assert len(pids) == len(set(pids))
                assert os.getpid() in pids
                assert system.cpu_count >= 1
                assert b.open_fds <= 4 * len(procs)
                time.sleep(0.02)
            assert b.counters["gone"] > 0 and b.counters["new"] > 0
    finally:
        stop.set()
        t.join()
    assert spawned[0] > 50
    assert len(os.listdir("/proc/self/fd")) <= fds_before  # close() released every descriptor


@pytest.mark.parametrize("live", [True, False], ids=["cpu-clock", "files-only"])
def test_process_listed_but_gone_at_read_time(
    children: Children, monkeypatch: pytest.MonkeyPatch, live: bool
) -> None:
    """A pid in the listing whose process exited before its files (or its CPU clock: EINVAL)
    were read (real ESRCH/ENOENT)."""
    known = children.spawn(["sleep", "300"])
    never_seen = children.spawn(["sleep", "300"])
    with LinuxBackend(live=live) as b:
        assert known.pid in by_pid(b.sample()[0])
        stale = os.listdir("/proc")  # the listing, taken while both still live
        for p in (known, never_seen):
            p.kill()
            p.wait()
        # More new pids than are looked at one by one: the next sample lists /proc (live or not).
        for _ in range(collector.linux.PROBE_MAX + 1):
            subprocess.run(["true"], check=True)
        real_listdir = os.listdir
        monkeypatch.setattr(os, "listdir", lambda path=".": stale if path == "/proc" else real_listdir(path))
        procs = by_pid(b.sample()[0])
        monkeypatch.undo()
        assert known.pid not in procs and never_seen.pid not in procs
        assert os.getpid() in procs
        assert b.counters["listings"] == 2


def test_kept_descriptor_does_not_follow_a_reused_pid(children: Children) -> None:
    """A kept /proc/PID/stat descriptor keeps pointing at the process it was opened for."""
    p = children.spawn(["sleep", "300"])
    fd = os.open(f"/proc/{p.pid}/stat", os.O_RDONLY)
    try:
        assert os.pread(fd, 512, 0).startswith(f"{p.pid} (sleep)".encode())
        p.kill()
        p.wait()
        with pytest.raises(ProcessLookupError):
            os.pread(fd, 512, 0)
    finally:
        os.close(fd)


def test_small_descriptor_budget_degrades_to_reading_by_path(children: Children) -> None:
    sleepers = [children.spawn(["sleep", "300"]) for _ in range(5)]
    wait_for(lambda: all(proc_state(s.pid) == "S" for s in sleepers), what="sleepers asleep")
    with LinuxBackend(fd_limit=6) as small, LinuxBackend() as full:
        small.sample(), full.sample()
        time.sleep(0.2)
        a, b = by_pid(small.sample()[0]), by_pid(full.sample()[0])
        assert small.open_fds <= 6
        for s in sleepers:
            assert a[s.pid].mem == b[s.pid].mem and a[s.pid].cpu == b[s.pid].cpu == 0.0
        assert len(set(a) & set(b)) >= len(b) - 5  # same processes (others come and go)


# --------------------------------------------------------------------------- io denied


DENIED_SCRIPT = """
import json, os, sys, time
from collector.linux import LinuxBackend
drop_privileges()
with LinuxBackend() as b:
    b.sample()
    time.sleep(0.2)
    procs = {p.pid: p for p in b.sample()[0]}
target = int(sys.argv[1])
print(json.dumps({"other": procs[target].sysbsd, "own": procs[os.getpid()].sysbsd,
                  "own_uid": procs[os.getpid()].uid}))
"""


def test_io_of_another_users_process_is_none(children: Children) -> None:
    """Run the backend as nobody: /proc/PID/io of a root process is denied by the kernel."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a child as another user")
    target = children.spawn(["sleep", "300"])  # ours: root's
    got = run_python_as_nobody(DENIED_SCRIPT, str(target.pid))
    assert got["other"] is None
    assert isinstance(got["own"], float)
    assert got["own_uid"] == 65534


def test_first_snapshot_has_every_process_and_no_rates() -> None:
    with LinuxBackend() as b:
        procs, system = b.sample()
    listed = {int(n) for n in os.listdir("/proc") if n.isdigit()}
    ours = {p.pid for p in procs}
    assert os.getpid() in ours and 1 in ours
    assert len(ours & listed) >= 0.9 * len(listed)
    assert all(p.cpu is None and p.csw is None for p in procs)
    me = by_pid(procs)[os.getpid()]
    assert me.mem > 0 and me.mem % PAGE_SIZE == 0
    assert system.mem_total and system.load1 is not None


# --------------------------------------------------------------------------- live-/proc shortcuts
# A tree of our own whose entries are symlinks to real /proc/PID directories and whose stat file
# we write: which processes get listed and when the fork count moves is then ours to decide,
# while every process file and CPU clock read is the real one.


class LinkedTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.stat_lines = Path("/proc/stat").read_text().splitlines()

    def link(self, pid: int) -> None:
        (self.root / str(pid)).symlink_to(f"/proc/{pid}")

    def forks(self, count: int) -> None:
        lines = [ln for ln in self.stat_lines if not ln.startswith("processes ")]
        (self.root / "stat").write_text("\n".join([*lines, f"processes {count}"]) + "\n")

    def last_pid(self, pid: int) -> None:
        (self.root / "loadavg").write_text(f"0.10 0.20 0.30 1/100 {pid}\n")

    def swapped_in(self, pages: int) -> None:
        """A vmstat whose swap-in count is ``pages`` (and nothing else moves)."""
        (self.root / "vmstat").write_text(f"pgmajfault 10\npswpin {pages}\npswpout 0\npgsteal_kswapd 0\n")


def test_cpu_clock_of_another_process_and_of_a_gone_one(children: Children) -> None:
    p = children.spawn(["sleep", "300"])
    ns = time.clock_gettime_ns(cpu_clock_id(p.pid))
    assert 0 < ns < 5 * 10**9  # a sleep that just started: some CPU, far from seconds
    assert time.clock_gettime_ns(cpu_clock_id(os.getpid())) >= time.thread_time_ns()
    p.kill()
    p.wait()
    with pytest.raises(OSError):
        time.clock_gettime_ns(cpu_clock_id(p.pid))
    assert live_proc("/proc")


def test_listing_only_when_the_fork_count_moved(children: Children, tmp_path: Path) -> None:
    tree = LinkedTree(tmp_path / "proc")
    assert not live_proc(str(tree.root))  # no self link to us: a fake tree is never live
    a = children.spawn(["sleep", "300"])
    tree.link(a.pid)
    tree.forks(100)
    with LinuxBackend(str(tree.root), live=True) as b:
        assert set(by_pid(b.sample()[0])) == {a.pid}
        c = children.spawn(["sleep", "300"])
        tree.link(c.pid)  # there, but the fork count says nothing new: not looked for
        assert set(by_pid(b.sample()[0])) == {a.pid}
        tree.forks(101)
        assert set(by_pid(b.sample()[0])) == {a.pid, c.pid}
        a.kill()
        a.wait()  # gone: its clock says so, without a listing
        assert set(by_pid(b.sample()[0])) == {c.pid}
        assert (b.counters["samples"], b.counters["listings"]) == (4, 2)


def _sleeper_that_runs_on_request(children: Children, threads: int = 1) -> subprocess.Popen:
    """A child blocked on stdin (with ``threads`` threads in all) that burns 50 ms of CPU for each
    line it is sent, then answers "done"; returned once it sleeps."""
    code = (
        "import sys, threading, time\n"
        f"for _ in range({threads} - 1): threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    end = time.thread_time() + 0.05\n"
        "    while time.thread_time() < end: pass\n"
        "    print('done', flush=True)\n"
    )
    p = children.spawn([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    wait_for(lambda: proc_state(p.pid) == "S", what="child blocked on stdin")
    return p


def _run_once(p: subprocess.Popen) -> None:
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline() == "done\n"


def _tree_of(tmp_path: Path, pid: int) -> LinkedTree:
    """A linked /proc holding only ``pid``, whose fork count says one task was created."""
    tree = LinkedTree(tmp_path / "proc")
    tree.link(pid)
    tree.forks(1)
    return tree


@pytest.mark.parametrize("threads", [1, 3])
def test_idle_process_costs_one_clock_read_and_a_run_is_seen(
    children: Children, tmp_path: Path, threads: int
) -> None:
    """Nothing is parsed for a process whose CPU clock stood still; a run between two samples,
    however short, moves the clock and the process is read again."""
    p = _sleeper_that_runs_on_request(children, threads)
    tree = _tree_of(tmp_path, p.pid)
    with LinuxBackend(str(tree.root), live=True) as b:
        first = by_pid(b.sample()[0])[p.pid]
        assert first.threads == threads
        parsed = b.counters["parsed"]
        idle = by_pid(b.sample()[0])[p.pid]
        assert idle.cpu == 0.0 and b.counters["parsed"] == parsed and b.counters["ran"] == 0
        _run_once(p)
        busy = by_pid(b.sample()[0])[p.pid]
        assert b.counters["parsed"] == parsed + 1
        assert busy.cpu > 0 and busy.csw > 0


def _process_with_a_thread(children: Children) -> tuple[subprocess.Popen, int]:
    """A Python process with a second thread, both waiting on stdin; (process, the thread's id)."""
    code = (
        "import threading, sys\n"
        "report = lambda: (print(threading.get_native_id(), flush=True), sys.stdin.read())\n"
        "threading.Thread(target=report).start()\n"
        "sys.stdin.read()\n"
    )
    parent = children.spawn([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return parent, int(parent.stdout.readline())


def test_new_pids_are_looked_at_one_by_one_instead_of_a_listing(children: Children, tmp_path: Path) -> None:
    """The fork count moved and loadavg's last pid went up by a few: exactly those pids are
    looked at; a thread's pid among them is not taken for a process."""
    tree = LinkedTree(tmp_path / "proc")
    parent, tid = _process_with_a_thread(children)
    newcomer = children.spawn(["sleep", "300"])
    tree.link(parent.pid)
    tree.forks(100)
    tree.last_pid(newcomer.pid - 1)
    with LinuxBackend(str(tree.root), live=True) as b:
        assert set(by_pid(b.sample()[0])) == {parent.pid}
        tree.link(newcomer.pid)
        tree.link(tid)  # /proc/TID exists for a thread (unlisted): a probe must tell it apart
        tree.forks(102)
        tree.last_pid(newcomer.pid)
        b._last_pid = min(tid, newcomer.pid) - 1  # both pids in the range, wherever they fell
        assert set(by_pid(b.sample()[0])) == {parent.pid, newcomer.pid}
        assert b.counters["listings"] == 1 and b.counters["probes"] >= 2
        # Too many new pids at once: listing is cheaper than looking at each.
        other = children.spawn(["sleep", "300"])
        tree.link(other.pid)
        tree.forks(103)
        tree.last_pid(newcomer.pid + 10_000)
        assert set(by_pid(b.sample()[0])) == {parent.pid, newcomer.pid, other.pid}
        assert b.counters["listings"] == 2
        # Tasks created in another pid namespace only: the last pid here did not move.
        tree.forks(150)
        assert set(by_pid(b.sample()[0])) == {parent.pid, newcomer.pid, other.pid}
        assert b.counters["listings"] == 2


def test_a_probe_tells_a_process_from_a_thread_and_a_free_pid(children: Children) -> None:
    """The probe asks the pid's process CPU clock, which the kernel gives a thread group leader
    only: no status file is generated for it."""
    parent, tid = _process_with_a_thread(children)
    gone = children.spawn(["true"])
    gone.wait(timeout=10)
    assert Path(f"/proc/{tid}/status").exists()  # a thread's directory is there, unlisted
    with LinuxBackend() as b:
        assert b._is_process(str(parent.pid))
        assert not b._is_process(str(tid))
        assert not b._is_process(str(gone.pid))
        assert b.counters["probes"] == 3


def test_proc_is_listed_at_least_every_list_every_samples(
    children: Children, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pid set by checkpoint/restore escapes the counters: a listing every so often finds it."""
    monkeypatch.setattr(collector.linux, "LIST_EVERY", 3)
    tree = LinkedTree(tmp_path / "proc")
    a, restored = children.spawn(["sleep", "300"]), children.spawn(["sleep", "300"])
    tree.link(a.pid)
    tree.forks(100)
    tree.last_pid(a.pid)
    with LinuxBackend(str(tree.root), live=True) as b:
        b.sample()
        tree.link(restored.pid)  # appeared with the counters unchanged
        seen = [restored.pid in by_pid(b.sample()[0]) for _ in range(3)]
        assert seen == [False, False, True] and b.counters["listings"] == 2


def test_status_is_reread_only_after_a_run_or_while_swap_moves(children: Children, tmp_path: Path) -> None:
    """The periodic status refresh (uid, VmSwap) is skipped for a process whose CPU clock stood
    still since the last one: it cannot have changed either. After a run, or while pages move
    to or from swap, status is read again on the schedule."""
    p = _sleeper_that_runs_on_request(children)
    tree = _tree_of(tmp_path, p.pid)
    tree.swapped_in(0)
    with LinuxBackend(str(tree.root), live=True, refresh_every=2, swap_refresh_every=2) as b:
        b.sample()  # the first snapshot reads every process's status
        reads = b.counters["status_reads"]
        for _ in range(4):  # refreshes fall due twice
            b.sample()
        assert b.counters["status_reads"] == reads
        _run_once(p)
        for _ in range(3):
            b.sample()
        assert b.counters["status_reads"] == reads + 1  # ran: read once at its next refresh
        tree.swapped_in(5)  # pages moved: a sleeper's VmSwap may have changed
        for _ in range(3):
            b.sample()
        assert b.counters["status_reads"] >= reads + 2
