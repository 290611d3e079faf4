"""Stimuli for the scenario tests (tests/e2e/test_scenarios.py) and a reader for what they show.

Each stimulus is a small Python child that renames itself through /proc/self/comm, so the user
(and the test) can recognise it in every view. ``Children`` owns them and kills every one of them,
whatever state it is in, when the test ends. ``rogue_rows`` reads the rogue table of
`pmctl watch --once` the way a person reads it: by column.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procutil import proc_state  # noqa: F401 - re-exported to the scenarios

# Grows in steps to a target, touching every page (so the memory is really resident), then keeps
# allocating: each step frees the oldest chunk and allocates and touches a fresh one.
MEM_HOG = (
    "import sys, time\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "step = int(sys.argv[3]) << 20\n"
    "keep = int(sys.argv[2]) // int(sys.argv[3])\n"
    "chunks = []\n"
    "while True:\n"
    "    chunk = bytearray(step)\n"
    "    for i in range(0, step, 4096):\n"
    "        chunk[i] = 1\n"
    "    chunks.append(chunk)\n"
    "    if len(chunks) > keep:\n"
    "        chunks.pop(0)\n"
    "    time.sleep(0.1)\n"
)

# Forks children that rename themselves and exit at once; it never reaps them, so they stay
# zombies. It prints their pids. On SIGTERM it reaps them and exits, so no zombie outlives the test
# even where pid 1 does not reap orphans.
ZOMBIE_MAKER = (
    "import os, signal, sys\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "def reap(*_):\n"
    "    while True:\n"
    "        try:\n"
    "            os.wait()\n"
    "        except ChildProcessError:\n"
    "            os._exit(0)\n"
    "signal.signal(signal.SIGTERM, reap)\n"
    "pids = []\n"
    "for _ in range(int(sys.argv[3])):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        open('/proc/self/comm', 'w').write(sys.argv[2])\n"
    "        os._exit(0)\n"
    "    pids.append(pid)\n"
    "print(' '.join(map(str, pids)), flush=True)\n"
    "while True:\n"
    "    signal.pause()\n"
)

# Does nothing, under a name (the test stops it with SIGSTOP).
IDLER = (
    "import signal, sys\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "while True:\n"
    "    signal.pause()\n"
)


def comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Children:
    """The stimulus processes of one test; ``close()`` kills and reaps every one."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen] = []

    def start(self, script: str, *args: str, stdout: int | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *args], env=self.env, stdout=stdout, text=True,
        )
        self.procs.append(proc)
        return proc

    def wait_named(self, proc: subprocess.Popen, name: str, timeout: float = 10) -> None:
        """Until the child has renamed itself (it is then recognisable in every sample)."""
        deadline = time.monotonic() + timeout
        while comm(proc.pid) != name:
            if time.monotonic() >= deadline or proc.poll() is not None:
                pytest.fail(f"child {proc.pid} did not become {name!r} (comm {comm(proc.pid)!r})")
            time.sleep(0.01)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                continue
            # SIGTERM first: the zombie maker reaps its children on it. A stopped child only acts
            # on it once continued. SIGKILL after a moment, whatever it did.
            proc.send_signal(signal.SIGTERM)
            os.kill(proc.pid, signal.SIGCONT)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()


# --------------------------------------------------------------------------- `pmctl watch --once`

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


@dataclass(frozen=True)
class RogueRow:
    command: str
    pid: int
    score: int
    cpu: str
    mem_bytes: float | None
    state: str
    categories: tuple[str, ...]


def _bytes(text: str) -> float | None:
    match = re.fullmatch(r"([\d.]+) (B|KiB|MiB|GiB|TiB)", text.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def rogue_rows(watch_output: str) -> list[RogueRow]:
    """The rows of the "rogue processes" table, top to bottom (rich separates columns with │)."""
    lines = watch_output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "rogue processes")
    except StopIteration:
        raise AssertionError(f"no rogue table in:\n{watch_output}") from None
    rows = []
    for line in lines[start + 1 :]:
        cells = [c.strip() for c in line.split("│")]
        if len(cells) != 8:
            if rows:
                break  # the end of the table
            continue  # the header's rule
        if not cells[1].isdigit():
            continue  # the header row
        rows.append(
            RogueRow(
                command=cells[0],
                pid=int(cells[1]),
                score=int(cells[2]),
                cpu=cells[3],
                mem_bytes=_bytes(cells[4]),
                state=cells[6],
                categories=tuple(c for c in cells[7].split(",") if c),
            )
        )
    return rows
