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


class Cgroup:
    """A fresh cgroup under a v1 controller's root. Processes moved in go back where they came
    from on exit (anything else left inside goes to the root), then the cgroup is removed."""

    def __init__(self, controller: str) -> None:
        self.controller = controller
        self.root = cgroup_v1(controller)
        self.path = self.root / f"pm-test-{uuid.uuid4().hex[:12]}"
        self._origins: dict[int, Path] = {}

    def _current(self, pid: int) -> Path:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if self.controller in controllers.split(","):
                return self.root / path.lstrip("/")
        return self.root

    def move(self, pids: list[int]) -> None:
        for pid in pids:
            self._origins.setdefault(pid, self._current(pid))
            (self.path / "cgroup.procs").write_text(str(pid))

    def join(self) -> None:
        """For ``preexec_fn``: the starting child enters the cgroup before it execs."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        if self.controller == "freezer":
            with contextlib.suppress(OSError):
                (self.path / "freezer.state").write_text("THAWED")
        for _ in range(50):  # tasks may still be forking/exiting while we move them
            pids = (self.path / "cgroup.procs").read_text().split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    (self._origins.get(int(pid), self.root) / "cgroup.procs").write_text(pid)
            time.sleep(0.02)
        self.path.rmdir()


@contextlib.contextmanager
def child_cgroup(controller: str) -> Iterator[Cgroup]:
    cgroup = Cgroup(controller)
    cgroup.path.mkdir()
    try:
        yield cgroup
    finally:
        cgroup.close()


def freeze(cgroup: Cgroup) -> None:
    state = cgroup.path / "freezer.state"
    state.write_text("FROZEN")
    wait_for(lambda: state.read_text().strip() == "FROZEN", 5, "the freezer to freeze")


def thaw(cgroup: Cgroup) -> None:
    (cgroup.path / "freezer.state").write_text("THAWED")


# --------------------------------------------------------------------------- stimuli


@contextlib.contextmanager
def stimuli(script: str, argvs: list[list[str]], preexec_fn=None) -> Iterator[list[subprocess.Popen[str]]]:  # type: ignore[no-untyped-def]
    """One ``python -c script`` per argv, each started and ready (it printed "ready") and waiting
    for "go"; killed and reaped on exit."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for argv in argvs:
            procs.append(subprocess.Popen(
                [sys.executable, "-c", script, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True, preexec_fn=preexec_fn,
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


def busy_loops(name: str, seconds: float, cores: int):  # type: ignore[no-untyped-def]
    """One BUSY_LOOP per core, each pinned to its core."""
    return stimuli(BUSY_LOOP, [[name, str(seconds), str(core)] for core in range(cores)])


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
    """Until every stimulus has done its time (each bounds itself; the alarm bounds a hung one)."""
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("done"), (line, proc.poll())
