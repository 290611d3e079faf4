"""Kept per-thread files (ThreadFiles) against a real multi-threaded child: the same sums as
reading every thread's file by path, one pread per thread while the threads stay the same, and
an up-to-date set after a thread exits and another starts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from collector import procfs_threads
from collector.procfs_files import FdBudget
from collector.procfs_threads import ThreadFiles, threads_switches

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc")

# Three threads blocked on events (their counters stand still); "swap" on stdin ends one and
# starts another (same thread count, a new tid), "ok" on stdout once done.
CHILD = """
import sys, threading
stops = []
def start():
    ev = threading.Event()
    threading.Thread(target=ev.wait, daemon=True).start()
    stops.append(ev)
for _ in range(3):
    start()
print("ok", flush=True)
for line in sys.stdin:
    old = stops.pop(0)
    old.set()
    start()
    while threading.active_count() != 4:
        pass
    print("ok", flush=True)
"""


@pytest.fixture
def child() -> Iterator[subprocess.Popen]:
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "ok\n"
        yield p
    finally:
        p.kill()
        p.wait(timeout=10)


def tids(pid: int) -> set[str]:
    return set(os.listdir(f"/proc/{pid}/task"))


def swap_a_thread(p: subprocess.Popen) -> None:
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write("swap\n")
    p.stdin.flush()
    assert p.stdout.readline() == "ok\n"


def wait_threads_settled(pid: int, count: int) -> None:
    """The ended thread may linger a moment as a task after the new one started."""
    from tests.procutil import wait_for

    wait_for(lambda: len(tids(pid)) == count, what=f"{count} tasks in {pid}")


def test_kept_files_sum_like_reading_by_path(child: subprocess.Popen) -> None:
    fds = FdBudget(limit=100)
    files = ThreadFiles("/proc", str(child.pid), True, fds)
    try:
        # main thread and three blocked ones: nothing moves between the two reads
        first = files.switches(4)
        assert first == threads_switches("/proc", str(child.pid), True)
        assert first[2] == 4 and set(files.kept) == tids(child.pid) and fds.used == 4
    finally:
        files.close()
    assert fds.used == 0 and files.kept == {}


def test_same_threads_are_read_without_a_listing(child: subprocess.Popen, monkeypatch: pytest.MonkeyPatch) -> None:
    files = ThreadFiles("/proc", str(child.pid), True, FdBudget(limit=100))
    try:
        files.switches(4)
        listings = []
        real_listdir = os.listdir
        monkeypatch.setattr(procfs_threads.os, "listdir", lambda path: listings.append(path) or real_listdir(path))
        assert files.switches(4) == threads_switches("/proc", str(child.pid), True)
        assert len(listings) == 1  # threads_switches' own listing only
        # A stat line counting another number of threads: listed again.
        files.switches(5)
        assert len(listings) == 2
    finally:
        files.close()


def test_a_thread_replaced_by_another_is_noticed(child: subprocess.Popen) -> None:
    fds = FdBudget(limit=100)
    files = ThreadFiles("/proc", str(child.pid), True, fds)
    try:
        files.switches(4)
        before = set(files.kept)
        swap_a_thread(child)
        wait_threads_settled(child.pid, 4)
        now = files.switches(4)  # same count, but one kept file is gone (ESRCH): listed again
        assert set(files.kept) == tids(child.pid) != before
        assert now == threads_switches("/proc", str(child.pid), True)
        assert fds.used == 4  # the gone thread's descriptor was closed
    finally:
        files.close()


def test_over_the_descriptor_budget_reads_by_path(child: subprocess.Popen) -> None:
    fds = FdBudget(limit=0)
    files = ThreadFiles("/proc", str(child.pid), True, fds)
    try:
        assert files.switches(4) == threads_switches("/proc", str(child.pid), True)
        assert set(files.kept.values()) == {-1} and fds.used == 0
        swap_a_thread(child)
        wait_threads_settled(child.pid, 4)
        assert files.switches(4) == threads_switches("/proc", str(child.pid), True)
        assert set(files.kept) == tids(child.pid)
    finally:
        files.close()


def test_a_gone_process_gives_unknown_and_keeps_nothing(child: subprocess.Popen) -> None:
    fds = FdBudget(limit=100)
    files = ThreadFiles("/proc", str(child.pid), True, fds)
    files.switches(4)
    child.kill()
    child.wait(timeout=10)
    assert files.switches(4) == (None, None, 0)
    assert files.kept == {} and fds.used == 0
