"""Real loads for the detection bench and the scenario tests: stress-ng, and memory pressure in a
memory-limited cgroup.

No pytest here: bench/detection.py imports it too. ``Load`` starts a command in a process group of
its own (stress-ng forks its workers, and they fork again) and, leaving the context manager, kills
the whole group and reaps the leader. ``MemoryCgroup`` makes a cgroup v1 memory group (root only),
runs a load inside it and, leaving, kills whatever is left in it and removes it.

Process groups are pmshared/procgroup.py's (the supervisor's and forensics' way).

Memory pressure without swap: anonymous memory cannot be reclaimed, so ``stress-ng --vm`` in a
small cgroup is OOM-killed again and again (measured here: 73 kills in 5 s, 0.17 s of memory
stall). A *file-backed* working set larger than the limit makes the kernel reclaim the group's
page cache on every pass and fault it back in: the reader stalls in reclaim and on refaults
(measured here: 1.1 s of memory stall in 6 s with one reader of 256 MiB in a 64 MiB group).
``THRASHER`` is that reader: it maps a file read-only and touches every page, in a loop.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from pmshared import procgroup

STRESS_NG = shutil.which("stress-ng")
MEMORY_CGROUP_ROOT = Path("/sys/fs/cgroup/memory")

# Maps argv[2] read-only, drops the file from the page cache once (the pages it then faults in are
# charged to its own cgroup), and touches every page until argv[3] seconds have passed.
THRASHER = (
    "import mmap, os, sys, time\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "f = open(sys.argv[2], 'rb')\n"
    "os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)\n"
    "m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
    "end = time.monotonic() + float(sys.argv[3])\n"
    "total = 0\n"
    "while time.monotonic() < end:\n"
    "    for off in range(0, len(m), 4096):\n"
    "        total += m[off]\n"
)


def stress_ng_missing() -> str | None:
    """Why stress-ng loads cannot run here, or None when they can."""
    if STRESS_NG is None:
        return ("stress-ng is not installed: `apt-get install stress-ng` (as root on Debian "
                "`bash .ci/setup` installs it)")
    return None


def memory_cgroup_missing() -> str | None:
    """Why a memory-limited cgroup v1 group cannot be made here, or None when it can."""
    if not (MEMORY_CGROUP_ROOT / "memory.limit_in_bytes").exists():
        return f"no cgroup v1 memory controller at {MEMORY_CGROUP_ROOT}"
    if not os.access(MEMORY_CGROUP_ROOT, os.W_OK):
        return f"{MEMORY_CGROUP_ROOT} is not writable (run as root)"
    return None


def stress_ng(*args: str, seconds: float, temp_dir: str | os.PathLike) -> list[str]:
    """A stress-ng command line: ``args`` for ``seconds`` (its own timeout, so even a load whose
    owner died ends), scratch files in ``temp_dir`` (the --hdd stressor writes there)."""
    assert STRESS_NG is not None, stress_ng_missing()
    return [STRESS_NG, *args, "--timeout", f"{max(1, round(seconds))}s", "--temp-path", str(temp_dir),
            "--quiet"]


@functools.cache
def warm_stress_ng() -> None:
    """stress-ng's program and libraries in the page cache, once per process. A row measures its
    load, not the loading of stress-ng: on a machine where it was installed long ago (a CI image)
    its first start reads megabytes from a cold disk, and the monitor rightly names that second's
    io stress after it, before its workers' cpu shows."""
    assert STRESS_NG is not None, stress_ng_missing()
    with open(STRESS_NG, "rb") as f:
        while f.read(1 << 20):
            pass
    subprocess.run([STRESS_NG, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=30, check=False)


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state letter) of every member of process group ``pgid``, zombies included."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            found.append((int(entry), fields[0]))
    return found


def group_pids(pgid: int) -> set[int]:
    """Live members of process group ``pgid`` (from /proc/PID/stat)."""
    return {pid for pid, state in group_members(pgid) if state not in ("Z", "X")}


class Load:
    """``argv`` running in a process group of its own; every member killed on ``stop``.

    ``seen`` accumulates every pid of the group that ``poll_members`` found (fork storms: the
    children come and go), so a culprit can be checked as "one of the load's processes"."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.argv = argv
        self.proc = procgroup.start(argv, env=env, cwd=cwd)
        self.pgid = self.proc.pid
        self.seen: set[int] = {self.proc.pid}

    def poll_members(self) -> set[int]:
        members = group_pids(self.pgid)
        self.seen |= members
        return members

    def stop(self) -> None:
        """SIGTERM the leader alone first: stress-ng (and ``parallel``'s shell) then stop and reap
        their own workers, so none is left an orphan for pid 1 to reap (a zombie meanwhile, and
        zombies are rogues). Then procgroup.stop: SIGKILL for whatever is left of the group while
        the leader is still unreaped (its pid, the group's id, cannot be anyone else's yet), and
        reap it."""
        if self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 3.0
            while not procgroup.leader_exited(self.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        procgroup.stop(self.proc)

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MemoryCgroup:
    """A cgroup v1 memory group limited to ``limit_bytes``, created here and removed on close."""

    def __init__(self, limit_bytes: int) -> None:
        reason = memory_cgroup_missing()
        if reason:
            raise RuntimeError(reason)
        self.path = MEMORY_CGROUP_ROOT / f"pm-load-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()
        try:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        except OSError:
            self.path.rmdir()
            raise

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the group: a shell moves itself there, then execs it."""
        script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
        return ["/bin/sh", "-c", script, "sh", str(self.path), *argv]

    def holds(self, load: Load, timeout: float = 5.0) -> Load:
        """``load`` once its leader is in the group (it moves itself there first thing); a
        RuntimeError if it never gets there (the write to cgroup.procs failed: the load ended)."""
        deadline = time.monotonic() + timeout
        while load.proc.pid not in self.pids():
            if load.proc.poll() is not None or time.monotonic() >= deadline:
                raise RuntimeError(f"the load did not enter {self.path} (exit status {load.proc.poll()})")
            time.sleep(0.01)
        return load

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def close(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.path.exists():
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()  # fails with EBUSY while a member is still exiting
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def __enter__(self) -> MemoryCgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parallel(n: int, argv: list[str]) -> list[str]:
    """``n`` copies of ``argv`` under one shell that waits for them all; on SIGTERM it kills and
    reaps them before it exits."""
    script = ('pids=; trap \'kill -9 $pids 2>/dev/null; wait; exit 143\' TERM; '
              'i=0; while [ $i -lt "$0" ]; do "$@" & pids="$pids $!"; i=$((i+1)); done; wait')
    return ["/bin/sh", "-c", script, str(n), *argv]


def working_set_file(path: Path, mib: int) -> Path:
    """A file of ``mib`` MiB of non-zero data (holes would be zero pages, never read from disk),
    flushed so the thrasher can drop it from the page cache."""
    block = bytes(range(256)) * 4096  # 1 MiB
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    return path
