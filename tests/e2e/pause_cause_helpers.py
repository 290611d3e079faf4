"""Real pauses for tests/e2e/test_pause_causes.py: the cgroup freezer, SCHED_FIFO busy loops, and
what the test itself measures of the machine meanwhile (to tell its own stall from other load).

Every helper undoes what it did in a ``finally`` (a context manager): cgroups thawed, emptied
and removed, loops killed and reaped, even when the test fails half-way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from forensics import proc_files
from tests.procutil import wait_for

CGROUP_V1 = Path("/sys/fs/cgroup")

# Waits (SCHED_OTHER, as started) for "go" on stdin, then spins for argv[2] seconds and no more
# (time.monotonic: its own hard bound, whatever priority the test gave it meanwhile), then drops
# to SCHED_OTHER and stays alive, idle, until stdin closes, so the snapshot taken after the stall
# still lists it. signal.alarm is a last bound if the test dies without closing stdin.
BUSY_LOOP = (
    "import os, signal, sys, time\n"
    "signal.alarm(60)\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "os.sched_setaffinity(0, {int(sys.argv[3])})\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
    "os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))\n"
    "print('done', flush=True)\n"
    "sys.stdin.read()\n"
)


# --------------------------------------------------------------------------- the machine meanwhile


@dataclass(frozen=True)
class Measured:
    """The machine over an interval, as the test read it from /proc (independently of the
    pipeline): percent of the interval, page-ins per second."""

    seconds: float
    cpu_busy_pct: float
    psi: dict[str, dict[str, float]]  # resource -> {"some_pct", "full_pct"}
    pageins_per_s: float

    def busiest(self) -> str:
        figures = [f"cpu busy {self.cpu_busy_pct:.1f}%", f"page-ins {self.pageins_per_s:.0f}/s"]
        figures += [f"{r} PSI {k.removesuffix('_pct')} {v:.1f}%" for r, d in self.psi.items() for k, v in d.items()]
        return ", ".join(figures)


class Meter:
    """/proc readings at two moments, subtracted with forensics' own delta()."""

    def __init__(self) -> None:
        self.before = proc_files.read_all()

    def stop(self) -> Measured:
        after = proc_files.read_all()
        d = proc_files.delta(self.before, after)
        vm = d["vmstat"]  # type: ignore[index]
        return Measured(
            seconds=d["interval_s"],  # type: ignore[arg-type]
            cpu_busy_pct=d["cpu_pct"]["busy"],  # type: ignore[index]
            psi=d["psi"],  # type: ignore[arg-type]
            pageins_per_s=vm["pgmajfault"]["per_s"] if "pgmajfault" in vm else 0.0,  # type: ignore[index]
        )


# --------------------------------------------------------------------------- cgroups (v1)


def cgroup_v1(controller: str) -> Path:
    root = CGROUP_V1 / controller
    if os.geteuid() != 0 or not (root / "cgroup.procs").exists():
        pytest.skip(f"needs root and the cgroup v1 {controller} controller at {root}")
    return root


@contextlib.contextmanager
def child_cgroup(controller: str) -> Iterator[Path]:
    """A fresh cgroup under the controller's root; on exit its tasks go back to the root and it
    is removed."""
    root = cgroup_v1(controller)
    path = root / f"pm-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        yield path
    finally:
        if controller == "freezer":
            with contextlib.suppress(OSError):
                (path / "freezer.state").write_text("THAWED")
        for _ in range(50):  # tasks may still be forking/exiting while we move them
            pids = (path / "cgroup.procs").read_text().split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(pid)
            time.sleep(0.02)
        path.rmdir()


def move(pids: list[int], cgroup: Path) -> None:
    for pid in pids:
        (cgroup / "cgroup.procs").write_text(str(pid))


def freeze(cgroup: Path) -> None:
    (cgroup / "freezer.state").write_text("FROZEN")
    wait_for(lambda: (cgroup / "freezer.state").read_text().strip() == "FROZEN", 5, "the freezer to freeze")


def thaw(cgroup: Path) -> None:
    (cgroup / "freezer.state").write_text("THAWED")


# --------------------------------------------------------------------------- SCHED_FIFO busy loops


@contextlib.contextmanager
def busy_loops(name: str, seconds: float, cores: int) -> Iterator[list[subprocess.Popen[str]]]:
    """One BUSY_LOOP per core, started and waiting; killed and reaped on exit."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for core in range(cores):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", BUSY_LOOP, name, str(seconds), str(core)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            ))
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.poll()
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def make_fifo(procs: list[subprocess.Popen[str]], priority: int = 10) -> None:
    """`chrt -f -p 10 PID`: the loops become SCHED_FIFO while they still wait."""
    for proc in procs:
        subprocess.run(["chrt", "-f", "-p", str(priority), str(proc.pid)], check=True)


def go(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def wait_done(procs: list[subprocess.Popen[str]]) -> None:
    """Until every loop has spun its time (each bounds itself; the alarm bounds a hung one)."""
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "done", (line, proc.poll())
