"""The pressure model's per-process figures against real processes on this machine's /proc: a
parent that forks and reaps children, a writer, a growing process, two processes fighting for one
core, and a process in a cgroup made for the test.

Each figure is polled for with a deadline over successive samples (a shared, loaded machine gives
no guarantee about any single second); children and cgroups are removed at the end.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.linux import LinuxBackend, cpu_clock_id, run_delay_accounted
from pmshared import messages as m
from tests.procutil import proc_state, wait_for
from tests.test_collector_linux import (  # noqa: F401 - children: the fixture
    Children,
    _run_once,
    _sleeper_that_runs_on_request,
    _tree_of,
    by_pid,
    children,
    wait_ready,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc backend")


def _sampled(b: LinuxBackend, pid: int, ok, what: str, timeout: float = 15.0) -> m.ProcessInfo:
    """Sample until ``ok(process)`` holds for ``pid``; the last readings explain a timeout."""
    seen: list[m.ProcessInfo] = []

    def check() -> m.ProcessInfo | None:
        p = by_pid(b.sample()[0]).get(pid)
        if p is not None:
            seen.append(p)
        return p if p is not None and ok(p) else None

    return wait_for(check, timeout, lambda: f"{what}; last readings: {seen[-3:]}", interval=0.3)


def test_cpu_is_the_process_clock_in_ns_on_a_live_proc(children: Children, tmp_path: Path) -> None:
    """A child that burns ~50 ms between two samples exactly 1 s apart (a fake monotonic clock):
    its cpu is its CPU clock's advance to the ns, not a whole number of 10 ms ticks, and reading
    it cost no stat/schedstat/io read beyond what a run costs anyway."""
    p = _sleeper_that_runs_on_request(children)
    tree = _tree_of(tmp_path, p.pid)
    now = [1000.0]
    with LinuxBackend(str(tree.root), lambda: now[0], live=True) as b:
        b.sample()
        before = time.clock_gettime_ns(cpu_clock_id(p.pid))
        _run_once(p)
        wait_for(lambda: proc_state(p.pid) == "S", what="child blocked on stdin again")
        after = time.clock_gettime_ns(cpu_clock_id(p.pid))
        now[0] += 1.0
        cpu = by_pid(b.sample()[0])[p.pid].cpu
    assert after - before >= 50_000_000
    assert cpu == pytest.approx((after - before) / 1e7, rel=1e-9)


def test_fork_storm_is_charged_to_the_parent_that_reaps(children: Children) -> None:
    # Each child burns 20 ms of CPU and exits; the parent waits for it: its cutime grows.
    code = (
        "import os, time\n"
        "while True:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        end = time.thread_time() + 0.02\n"
        "        while time.thread_time() < end: pass\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
    )
    parent = children.python(code)
    with LinuxBackend() as b:
        b.sample()
        p = _sampled(b, parent.pid, lambda p: (p.cpu_children or 0) > 20.0, "children's CPU on the parent")
        ncpu = os.cpu_count() or 1
        assert p.cpu_children <= 100.0 * ncpu and p.cpu is not None and p.cpu <= 100.0


def test_writer_shows_write_bytes(children: Children, tmp_path: Path) -> None:
    # On a disk filesystem (tmpfs does not count them), 1 MiB appended every 50 ms, up to 100 MiB:
    # write_bytes counts pages as they are dirtied, so new pages each time (not a rewrite).
    target = tmp_path / "out.bin"
    code = (
        "import sys, time\n"
        "with open(sys.argv[1], 'wb') as f:\n"
        "    for _ in range(100):\n"
        "        f.write(b'x' * 2**20); f.flush(); time.sleep(0.05)\n"
        "time.sleep(300)\n"
    )
    writer = children.spawn([sys.executable, "-c", code, str(target)])
    if not os.access(f"/proc/{writer.pid}/io", os.R_OK):
        pytest.skip("/proc/PID/io not readable here")
    with LinuxBackend() as b:
        b.sample()
        p = _sampled(b, writer.pid, lambda p: (p.write_bps or 0) > 2**20, "write_bps of a 20 MiB/s writer")
        assert p.read_bps is not None


def test_growing_process_shows_memory_growth(children: Children, tmp_path: Path) -> None:
    # 4 MiB more touched every 50 ms, up to 400 MiB (the fixture kills it long before). It says
    # when its first chunk is in: Python's own start-up maps several MiB within milliseconds, a
    # true rate far above the loop's when two samples fall a few ms apart around it.
    ready = tmp_path / "ready"
    code = (
        "import pathlib, time\n"
        "chunks = [bytearray(4 * 2**20)]\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "for _ in range(99):\n"
        "    time.sleep(0.05); chunks.append(bytearray(4 * 2**20))\n"
        "time.sleep(300)\n"
    )
    grower = children.python(code)
    wait_ready(ready)
    with LinuxBackend() as b:
        b.sample()
        # The rate is over the interval between two samples: one of a few hundred ms, as the
        # collector's own are, spans several of the loop's steps rather than one 4 MiB jump.
        time.sleep(0.3)
        p = _sampled(b, grower.pid, lambda p: (p.mem_growth or 0) > 10 * 2**20, "mem_growth of a growing child")
        assert p.mem_growth < 400 * 2**20  # a rate (it grows ~80 MiB/s), not a size


@pytest.mark.skipif(not run_delay_accounted("/proc"), reason="this kernel does not account run delay")
def test_processes_sharing_one_core_wait_for_it(children: Children) -> None:
    # Two busy loops pinned to the same core: each runnable all the time, running half of it.
    spin = "import os; os.sched_setaffinity(0, {0})\nwhile True: pass\n"
    a, c = children.python(spin), children.python(spin)
    with LinuxBackend() as b:
        b.sample()
        p = _sampled(b, a.pid, lambda p: (p.run_delay or 0) > 250.0, "run delay of a loop sharing its core")
        assert p.run_delay <= 1000.0
    assert c.poll() is None


def _unified_cgroup_root() -> Path | None:
    """Where cgroup v2 is mounted (the whole tree on v2, /sys/fs/cgroup/unified on hybrid)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


@pytest.fixture
def test_cgroup() -> Iterator[Path]:
    root = _unified_cgroup_root()
    if root is None or not os.access(root, os.W_OK):
        pytest.skip("no writable cgroup v2 hierarchy (needs root)")
    path = root / f"pmtest-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        # the fixture order kills the children first; move any straggler out, then remove it
        for pid in (path / "cgroup.procs").read_text().split():
            try:
                (root / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        wait_for(lambda: not (path / "cgroup.procs").read_text().split(), 5, "test cgroup to empty")
        path.rmdir()


def test_process_in_a_cgroup_is_named_by_it(test_cgroup: Path, children: Children) -> None:
    procs_file = str(test_cgroup / "cgroup.procs")
    # The child joins the cgroup before it execs, as a service manager or container runtime does.
    sleeper = children.spawn(
        ["sleep", "300"], preexec_fn=lambda: Path(procs_file).write_text(str(os.getpid()))
    )
    wait_for(lambda: proc_state(sleeper.pid) == "S", what="sleeper started")
    with LinuxBackend() as b:
        procs = by_pid(b.sample()[0])
    assert procs[sleeper.pid].cgroup == test_cgroup.name
    assert procs[os.getpid()].cgroup != test_cgroup.name


def test_a_process_born_in_the_interval_has_its_figures_in_its_first_sample(children: Children) -> None:
    """A load just started has used a core before the collector first sees it; its first sample
    carries that (counted from zero over the interval), instead of no figure at all, which left
    the busy time unexplained and the model charging it to whoever had reaped children."""
    b = LinuxBackend()
    try:
        b.sample()
        b.sample()
        burner = children.python(
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 30:\n    pass\n"
        )
        time.sleep(0.7)  # the interval the load is born in
        first = by_pid(b.sample()[0]).get(burner.pid)
        assert first is not None, "the new process is listed in the sample after its birth"
        assert first.cpu is not None and first.cpu > 30, first  # it burned most of the interval
        assert first.csw is not None and first.pageins is not None, first
    finally:
        b.close()
