"""The loads of the detection matrix (bench/detection.py) and of the scenario tests that run a short
version of each row (tests/e2e/test_detection.py): what each row starts and what it expects.

No pytest here: the bench imports it too.

A row says which processes do the work (by their command as the kernel shows it: stress-ng's
workers call themselves ``stress-ng-<stressor>``, 15 characters at most) and the category the top
culprit must carry. The top culprit must be one of the load's processes: the load runs in a
process group of its own, and any member counts. That is the worker, or the process that started
the workers: the pressure model charges a parent with what a group of same-named workers holds
together ("jobs of workers", README), so ``stress-ng`` itself (or the shell that started the
memory readers) is named for its workers; a fork storm is charged to whoever reaps the children
(category ``fork``). Which one it was is shown.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tests.stressload import (
    THRASHER,
    Load,
    MemoryCgroup,
    memory_cgroup_missing,
    parallel,
    stress_ng,
    stress_ng_missing,
    warm_stress_ng,
    working_set_file,
)

CORES = os.cpu_count() or 1
MEM_LIMIT_MIB = 64  # the cgroup's limit ...
MEM_FILE_MIB = 256  # ... and the file-backed working set its readers scan (4× the limit)
THRASHER_NAME = "pm-memthrash"


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# `stress-ng --vm 2 --vm-bytes 2G` writes 2 GiB of anonymous memory over and over. Where that fits
# in the memory available, the kernel reclaims nothing (measured on 24 GiB without swap: PSI memory
# some 0 us, pgsteal 0, no major fault in 6 s) and its workers keep both cores busy: a cpu load,
# and naming it under mem would invent a memory problem. Only where it does not fit (twice the
# load, for the page cache and everything else running) is it memory pressure.
VM_BYTES = 2 << 30
VM_RECLAIMS = (_available_bytes() or 0) < 2 * VM_BYTES
LIGHT_NAME = "pm-light-py"


@dataclass(frozen=True)
class LoadRow:
    key: str  # short name, for tests and --only
    name: str  # as the table shows it
    culprit: str  # command (comm) prefix of the workers (the top culprit: see the module's doc)
    category: str  # the category it must carry
    args: tuple[str, ...] = ()  # stress-ng arguments (empty: the memory-cgroup thrasher)
    needs: tuple[str, ...] = field(default=("stress-ng",))


ROWS = [
    LoadRow("cpu", f"stress-ng --cpu {CORES} (every core busy)", "stress-ng-cpu", "cpu",
            ("--cpu", str(CORES))),
    LoadRow("oversubscribed", f"stress-ng --cpu {4 * CORES} (oversubscribed)", "stress-ng-cpu", "cpu",
            ("--cpu", str(4 * CORES))),
    LoadRow("vm", "stress-ng --vm 2 --vm-bytes 2G" + ("" if VM_RECLAIMS else " (fits in memory)"), "stress-ng-vm",
            "mem" if VM_RECLAIMS else "cpu", ("--vm", "2", "--vm-bytes", "2G")),
    LoadRow("memory",
            f"memory pressure: {CORES} readers of a {MEM_FILE_MIB} MiB file in a {MEM_LIMIT_MIB} MiB cgroup",
            THRASHER_NAME, "mem", needs=("cgroup",)),
    LoadRow("hdd", "stress-ng --hdd 2", "stress-ng-hdd", "io", ("--hdd", "2")),
    LoadRow("fork", "stress-ng --fork 4 (fork storm)", "stress-ng-fork", "fork", ("--fork", "4")),
    LoadRow("switch", "stress-ng --switch 4 (context-switch storm)", "stress-ng-switc", "csw", ("--switch", "4")),
]
ROW = {row.key: row for row in ROWS}


def missing(row: LoadRow) -> str | None:
    """Why ``row`` cannot run here, or None."""
    if "stress-ng" in row.needs and (why := stress_ng_missing()):
        return why
    if "cgroup" in row.needs and (why := memory_cgroup_missing()):
        return why
    return None


def prepare(row: LoadRow, scratch: Path) -> None:
    """What ``row`` needs before its clock starts: stress-ng in the page cache, the memory row's
    file (writing either is io)."""
    if row.args:
        warm_stress_ng()
    elif not (scratch / "working-set").exists():
        working_set_file(scratch / "working-set", MEM_FILE_MIB)


def start(row: LoadRow, seconds: float, scratch: Path, stack: ExitStack) -> Load:
    """Start ``row``'s load (``prepare`` first); ``stack`` stops it (and removes its cgroup) when
    closed."""
    if row.args:
        return stack.enter_context(Load(stress_ng(*row.args, seconds=seconds, temp_dir=scratch)))
    prepare(row, scratch)
    data = scratch / "working-set"
    group = stack.enter_context(MemoryCgroup(MEM_LIMIT_MIB << 20))
    reader = [sys.executable, "-S", "-c", THRASHER, THRASHER_NAME, str(data), str(seconds)]
    return group.holds(stack.enter_context(Load(group.wrap(parallel(CORES, reader)))))


# Everyday work: a Python loop busy ~20 % of a core (20 ms of work, 80 ms asleep), and a shell
# that every second packs a small tree with tar | gzip and runs `git status` in this repository.
LIGHT_PY = (
    "import sys, time\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while time.monotonic() < end:\n"
    "    t = time.monotonic() + 0.02\n"
    "    while time.monotonic() < t:\n"
    "        pass\n"
    "    time.sleep(0.08)\n"
)
LIGHT_SH = (
    'end=$(( $(date +%s) + $1 )); while [ "$(date +%s)" -lt "$end" ]; do '
    'tar -cf - -C "$2" cli pmshared | gzip -1 > /dev/null; git -C "$2" status --short > /dev/null; '
    "sleep 1; done"
)


def start_light(seconds: float, repo: Path, stack: ExitStack) -> list[Load]:
    py = [sys.executable, "-S", "-c", LIGHT_PY, LIGHT_NAME, str(seconds)]
    sh = ["/bin/sh", "-c", LIGHT_SH, "sh", str(int(seconds)), str(repo)]
    return [stack.enter_context(Load(py)), stack.enter_context(Load(sh))]
