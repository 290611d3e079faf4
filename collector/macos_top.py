"""Parser for macOS ``top`` logging mode (``top -l 0 -s 1 -stats <TOP_STATS>``). Pure: no I/O.

What top prints (Apple's top sources, log.c/uinteger.c/pid.c/threads.c, and real captures):
- each sample starts with a ``Processes: N total, ...`` line, then the header block (time, load,
  CPU usage, PhysMem, VM ...), a blank line, the column header and one row per process; top
  flushes stdout once per sample, then sleeps ``-s`` seconds;
- after the first sample, values that changed get a ``+`` or ``-`` suffix (``4208K+``, ``1223-``);
- PID has a suffix ``*`` (process of a foreign architecture) or ``-`` (32-bit on a 64-bit host);
- ``#TH`` is ``total`` or ``total/running``;
- memory is humanized in powers of 1024 with a unit: ``0B``, ``4208K``, ``34M``, ``2G``;
- COMMAND is cut at 16 characters and may contain spaces; all other columns have none, so rows are
  split from the right by the number of columns after COMMAND;
- CSW, SYSBSD and PAGEINS are cumulative counters in the default event mode (turned into per-second
  rates here); %CPU of the first sample is meaningless (no previous sample), so that sample is
  only used as the baseline for the counters.

The pieces: ``TopSplitter`` cuts the line stream into samples, ``parse_sample`` turns one sample's
lines into a ``TopSample`` of raw values, and ``RateTracker`` turns successive samples into
``ProcessInfo``/``SystemStats`` with rates.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from typing import Literal

from pmshared import messages as m

PressureLevel = Literal["normal", "warn", "critical"]

TOP_STATS = "pid,command,cpu,state,mem,cmprs,threads,csw,sysbsd,pageins,ppid,uid"

# Column header names top prints for each of TOP_STATS.
_COLUMN_NAMES = {
    "PID": "pid",
    "COMMAND": "command",
    "%CPU": "cpu",
    "STATE": "state",
    "MEM": "mem",
    "CMPRS": "cmprs",
    "#TH": "threads",
    "CSW": "csw",
    "SYSBSD": "sysbsd",
    "PAGEINS": "pageins",
    "PPID": "ppid",
    "UID": "uid",
}
# ppid and uid are used when present (a parent is charged for children that exited; culprits
# show their owner) but a sample without them is still a sample.
OPTIONAL_COLUMNS = frozenset({"ppid", "uid"})
REQUIRED_COLUMNS = frozenset(_COLUMN_NAMES.values()) - OPTIONAL_COLUMNS

_STATES: dict[str, m.ProcessState] = {
    "running": "running",
    "sleeping": "sleeping",
    "stuck": "stuck",
    "zombie": "zombie",
    "stopped": "stopped",
    "halted": "halted",
    "idle": "idle",
}

_UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([BKMGTP]?)$", re.IGNORECASE)


class TopFormatError(ValueError):
    """A sample or value that is not in the format top prints."""


# --------------------------------------------------------------------------- values


def _strip_change(token: str) -> str:
    """'4208K+' -> '4208K', '1223-' -> '1223' (top marks values that rose or fell)."""
    return token.rstrip("+-")


def parse_size(token: str) -> int:
    """'4208K' -> 4308992 bytes; accepts B/K/M/G/T/P, a plain number, and +/- change marks."""
    match = _SIZE_RE.match(_strip_change(token))
    if not match:
        raise TopFormatError(f"bad size {token!r}")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()])


def parse_count(token: str) -> int:
    value = _strip_change(token)
    if not value.isdigit():
        raise TopFormatError(f"bad count {token!r}")
    return int(value)


def parse_pid(token: str) -> int:
    """'123' / '123*' / '123-' -> 123 (the suffix is an architecture mark, not part of the pid)."""
    digits = token.rstrip("*-+ ")
    if not digits.isdigit():
        raise TopFormatError(f"bad pid {token!r}")
    return int(digits)


def parse_threads(token: str) -> int:
    """'22' or '22/1' (total/running) -> 22. max() also survives the order written the other way."""
    parts = _strip_change(token).split("/")
    try:
        return max(int(p) for p in parts)
    except ValueError:
        raise TopFormatError(f"bad thread count {token!r}") from None


def parse_cpu(token: str) -> float:
    try:
        return float(_strip_change(token))
    except ValueError:
        raise TopFormatError(f"bad %CPU {token!r}") from None


def parse_state(token: str) -> m.ProcessState:
    return _STATES.get(_strip_change(token).lower(), "unknown")


# --------------------------------------------------------------------------- one sample


@dataclass(frozen=True)
class TopRow:
    """One process row with raw (cumulative) counters."""

    pid: int
    command: str
    cpu: float
    state: m.ProcessState
    mem: int
    cmprs: int
    threads: int
    csw: int
    sysbsd: int
    pageins: int
    ppid: int = 0  # 0: not printed
    uid: int | None = None


@dataclass
class TopHeader:
    """Whole-machine figures from the header block; None where the line was missing."""

    total: int | None = None
    running: int | None = None
    stuck: int | None = None
    load: tuple[float, float, float] | None = None
    cpu_busy_pct: float | None = None
    mem_used: int | None = None
    mem_unused: int | None = None
    swapins: int | None = None  # cumulative pages
    swapouts: int | None = None
    pageins: int | None = None  # cumulative (older top prints pageins/pageouts on the VM line)


@dataclass
class TopSample:
    header: TopHeader
    rows: list[TopRow]
    received_at: float  # monotonic seconds when the sample arrived (rates divide by the spacing)
    bad_rows: int = 0  # rows that did not parse (skipped, counted)


_PROCESSES_RE = re.compile(r"(\d+)\s+(total|running|stuck|sleeping|threads)")
_TOTAL_RE = re.compile(r"(\d+)\s+total")
_LOAD_RE = re.compile(r"Load Avg:\s*([\d.]+),\s*([\d.]+),\s*([\d.]+)")
_IDLE_RE = re.compile(r"([\d.]+)%\s*idle")
_PHYSMEM_USED_RE = re.compile(r"PhysMem:\s*(\S+)\s+used")
_PHYSMEM_UNUSED_RE = re.compile(r"(\S+)\s+unused")
_VM_COUNTER_RE = re.compile(r"(\d+)\(\d+\)\s+(swapins|swapouts|pageins)")


def parse_header_line(line: str, header: TopHeader) -> None:
    """Fill ``header`` from one header-block line; unknown lines are ignored."""
    if line.startswith("Processes:"):
        for number, word in _PROCESSES_RE.findall(line):
            if word in ("total", "running", "stuck"):
                setattr(header, word, int(number))
    elif line.startswith("Load Avg:"):
        match = _LOAD_RE.search(line)
        if match:
            header.load = (float(match.group(1)), float(match.group(2)), float(match.group(3)))
    elif line.startswith("CPU usage:"):
        match = _IDLE_RE.search(line)
        if match:
            header.cpu_busy_pct = round(max(0.0, min(100.0, 100.0 - float(match.group(1)))), 2)
    elif line.startswith("PhysMem:"):
        used, unused = _PHYSMEM_USED_RE.search(line), _PHYSMEM_UNUSED_RE.search(line)
        try:
            header.mem_used = parse_size(used.group(1)) if used else None
            header.mem_unused = parse_size(unused.group(1).rstrip(".,")) if unused else None
        except TopFormatError:
            header.mem_used = header.mem_unused = None
    elif line.startswith("VM:"):
        for number, word in _VM_COUNTER_RE.findall(line):
            setattr(header, word, int(number))


def column_layout(header_line: str) -> tuple[list[str], int]:
    """Column keys in order and the index of COMMAND, from the column header line."""
    names = header_line.split()
    keys = [_COLUMN_NAMES.get(name, name.lower()) for name in names]
    missing = REQUIRED_COLUMNS - set(keys)
    if missing:
        raise TopFormatError(f"column header lacks {sorted(missing)}: {header_line.strip()!r}")
    return keys, keys.index("command")


def parse_row(line: str, keys: list[str], command_at: int) -> TopRow:
    """One process row. Only COMMAND may contain spaces: split it off from both sides."""
    after = len(keys) - command_at - 1
    left = line.split(None, command_at)  # the columns before COMMAND, then the rest
    if len(left) != command_at + 1:
        raise TopFormatError(f"short row {line!r}")
    rest = left[command_at].rstrip()
    right = rest.rsplit(None, after)
    if len(right) != after + 1:
        raise TopFormatError(f"short row {line!r}")
    values = dict(zip(keys[:command_at], left[:command_at]))
    values.update(zip(keys[command_at + 1 :], right[1:]))
    return TopRow(
        pid=parse_pid(values["pid"]),
        command=right[0].strip(),
        cpu=parse_cpu(values["cpu"]),
        state=parse_state(values["state"]),
        mem=parse_size(values["mem"]),
        cmprs=parse_size(values["cmprs"]),
        threads=parse_threads(values["threads"]),
        csw=parse_count(values["csw"]),
        sysbsd=parse_count(values["sysbsd"]),
        pageins=parse_count(values["pageins"]),
        ppid=parse_count(values["ppid"]) if "ppid" in values else 0,
        uid=parse_count(values["uid"]) if "uid" in values else None,
    )


def parse_sample(lines: list[str], received_at: float = 0.0) -> TopSample:
    """One sample's lines (from ``Processes:`` to its last row) -> raw values.

    Rows that do not parse are skipped and counted; a sample without a column header raises
    TopFormatError (it is cut off, or not top's output at all).
    """
    header = TopHeader()
    rows: list[TopRow] = []
    bad = 0
    layout: tuple[list[str], int] | None = None
    for line in lines:
        if layout is None:
            if line.lstrip().startswith("PID"):
                layout = column_layout(line)
            else:
                parse_header_line(line.strip(), header)
            continue
        if not line.strip():
            continue
        try:
            rows.append(parse_row(line, *layout))
        except TopFormatError:
            bad += 1
    if layout is None:
        raise TopFormatError("sample has no column header")
    return TopSample(header=header, rows=rows, received_at=received_at, bad_rows=bad)


# --------------------------------------------------------------------------- the stream


@dataclass
class _Pending:
    lines: list[str] = field(default_factory=list)
    declared: int | None = None  # "Processes: N total"
    rows: int = 0
    in_table: bool = False


class TopSplitter:
    """Cuts top's line stream into complete samples.

    A sample is complete when it has as many rows as its ``Processes: N total`` line declares, or
    when the next sample begins. At end of stream an incomplete sample is dropped (top died while
    printing it) and counted in ``truncated``.
    """

    def __init__(self) -> None:
        self._pending: _Pending | None = None
        self.truncated = 0
        # lines outside any sample: before the first Processes: line, or rows beyond a sample's
        # declared count (that sample went out complete when its count was reached)
        self.stray_lines = 0

    def feed(self, line: str) -> list[str] | None:
        """Add one line (without its newline). Returns the lines of a sample it completed."""
        done: list[str] | None = None
        if line.startswith("Processes:"):
            if self._pending is not None and self._pending.rows:
                done = self._pending.lines
            elif self._pending is not None:
                self.truncated += 1  # a header without rows: cut off before the table
            total = _TOTAL_RE.search(line)
            self._pending = _Pending(lines=[line], declared=int(total.group(1)) if total else None)
            return done
        pending = self._pending
        if pending is None:
            self.stray_lines += 1
            return None
        pending.lines.append(line)
        if not pending.in_table:
            pending.in_table = line.lstrip().startswith("PID")
            return None
        if line.strip():
            pending.rows += 1
            if pending.declared is not None and pending.rows >= pending.declared:
                self._pending = None
                return pending.lines
        return None

    def flush(self) -> list[str] | None:
        """The stream went quiet. top flushes once per sample and then sleeps, so a sample whose
        rows fall a few short of its declared count is complete (processes exited between
        counting and printing). One far short is top stalled mid-table (stopped, or the machine
        paused): it stays pending rather than go out with most processes missing."""
        pending = self._pending
        if pending is None or not pending.rows:
            return None
        if pending.declared is not None:
            missing = pending.declared - pending.rows
            if missing > max(2, pending.declared // 20):
                return None
        self._pending = None
        return pending.lines

    def end(self) -> None:
        """End of stream: whatever is pending was cut off."""
        if self._pending is not None:
            self.truncated += 1
        self._pending = None


# --------------------------------------------------------------------------- rates


@dataclass
class _Prev:
    command: str
    csw: int
    sysbsd: int
    pageins: int
    memory: int  # MEM + CMPRS: resident and compressed (macOS compresses before it swaps)


def _rate(now: int, before: int, dt: float) -> float | None:
    # A counter that went backwards belongs to a different process (pid reused): no rate.
    if now < before or dt <= 0:
        return None
    return round((now - before) / dt, 3)


class RateTracker:
    """Turns successive TopSamples into ProcessInfo/SystemStats with per-second rates.

    The first sample after (re)start only sets the baseline: its %CPU is meaningless and no
    counter has a previous value. Per process, a rate needs the same pid with the same command in
    the previous sample; a process seen for the first time has None rates.
    """

    def __init__(self, cpu_count: int | None = None) -> None:
        self.cpu_count = cpu_count or os.cpu_count() or 1
        self._prev: dict[int, _Prev] = {}
        self._prev_at: float | None = None
        self._prev_header: TopHeader | None = None

    def reset(self) -> None:
        """Forget everything (a new top process): the next sample is a baseline again."""
        self._prev.clear()
        self._prev_at = None
        self._prev_header = None

    def update(
        self, sample: TopSample, memory_pressure: PressureLevel | None = None
    ) -> tuple[list[m.ProcessInfo], m.SystemStats] | None:
        """Returns None for a baseline sample, else the processes and system figures.

        ``memory_pressure``: the kernel's level ("normal", "warn", "critical") read with the
        sample, None when unknown (top does not print it: see macos_pressure).
        """
        baseline = self._prev_at is None
        dt = 0.0 if baseline else sample.received_at - self._prev_at
        prev, prev_header = self._prev, self._prev_header
        current: dict[int, _Prev] = {}
        processes: list[m.ProcessInfo] = []
        for row in sample.rows:
            memory = row.mem + row.cmprs
            current[row.pid] = _Prev(row.command, row.csw, row.sysbsd, row.pageins, memory)
            if baseline:
                continue
            before = prev.get(row.pid)
            if before is not None and before.command != row.command:
                before = None  # pid reused by another program
            processes.append(
                m.ProcessInfo(
                    pid=row.pid,
                    ppid=row.ppid,
                    command=row.command,
                    state=row.state,
                    # top's own interval; capped like Linux at what the threads can use here
                    cpu=min(row.cpu, 100.0 * min(max(row.threads, 1), self.cpu_count)),
                    mem=row.mem,
                    cmprs=row.cmprs,
                    threads=row.threads,
                    csw=_rate(row.csw, before.csw, dt) if before else None,
                    sysbsd=_rate(row.sysbsd, before.sysbsd, dt) if before else None,
                    pageins=_rate(row.pageins, before.pageins, dt) if before else None,
                    uid=row.uid,
                    mem_growth=round((memory - before.memory) / dt, 3) if before and dt > 0 else None,
                )
            )
        self._prev = current
        self._prev_at = sample.received_at
        self._prev_header = sample.header
        if baseline:
            return None
        return processes, self._system(sample.header, prev_header, dt, memory_pressure)

    def _system(
        self, header: TopHeader, prev: TopHeader | None, dt: float, memory_pressure: PressureLevel | None
    ) -> m.SystemStats:
        def delta(name: str) -> float | None:
            now = getattr(header, name)
            before = getattr(prev, name) if prev is not None else None
            return None if now is None or before is None else _rate(now, before, dt)

        total = None
        if header.mem_used is not None and header.mem_unused is not None:
            total = header.mem_used + header.mem_unused
        load = header.load or (None, None, None)
        return m.SystemStats(
            cpu_count=self.cpu_count,
            load1=load[0],
            load5=load[1],
            load15=load[2],
            procs_running=header.running,
            procs_blocked=header.stuck if header.stuck is not None else (0 if header.total else None),
            cpu_busy_pct=header.cpu_busy_pct,
            mem_total=total,
            # macOS has no "available"; "unused" is the free pool (it under-states what could be
            # reclaimed from caches, never over-states it).
            mem_available=header.mem_unused,
            pageins=delta("pageins"),
            swapins=delta("swapins"),
            swapouts=delta("swapouts"),
            run_delay_known=False,  # top has no per-process run delay (nor reaped children's CPU)
            memory_pressure=memory_pressure,
        )
