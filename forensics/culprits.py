"""Who held the machine during the pause.

Primary (``consumption``): the processes of the snapshot whose interval spans the stall (``Pause.
processes``), ranked by what each consumed in it, as a share of the contended resource:
- cpu: its CPU plus its reaped children's (``cpu_children``: processes that exited inside the
  interval are charged to their parent, so a fork storm names the forker; bounded by the busy
  time the live processes leave unexplained, see ``bounded_children``), as a share of every
  core, clipped to what the hardware allows (a rate above it is a sampling artefact);
- io: read + write bytes/s, as a share of all processes' (at least ``IO_FLOOR_BPS``, so a few
  KiB/s on a quiet disk is not "all of the io");
- pageins: major faults/s, as a share of all processes' (at least ``FAULT_FLOOR_PER_S``);
- mem: memory demanded, resident + swapped growth (when positive) plus bytes read from storage,
  as a share of all processes' (at least ``GROWTH_FLOOR_BPS``): a page-cache refault through
  read() is no major fault, and readers thrashing in a memory-limited cgroup shrink while they
  read hundreds of MB/s, so by growth alone whoever grew a little (the collector) held it all;
- stuck: in D state when sampled, a flat ``STUCK_SHARE`` (it waited on, or held, io or memory).
The score is the largest share; resources the cause does not name count half (a cpu stall is
ranked by CPU, but a process that did all the io still shows). Score 0 is not a culprit. The
pipeline's own processes are ranked like any other: no boost, no exemption; culprits.json marks
them (``pipeline``) so a reader sees when the monitor itself is named.

Fallback (``rank_from_ring``): when the pause came without processes, the peak score of each rogue
over the ring buffer, as the seed did. Commands matching a configured suspect pattern
(case-insensitive substring, as the seed) are flagged ``suspect`` either way.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import msgspec
from msgspec import UNSET, UnsetType

from pmshared import messages as m
from pmshared.reaped import bound_reaped


def is_suspect(command: str, patterns: list[str]) -> bool:
    lowered = command.lower()
    return any(p.lower() in lowered for p in patterns if p)


@dataclass
class _Peak:
    pid: int
    command: str
    score: int
    categories: set[str] = field(default_factory=set)
    seen: int = 0
    cgroup: str | None = None
    ppid: int = 0


def rank_from_ring(entries: list[m.LiveSample]) -> list[tuple[m.Culprit, int]]:
    """(culprit without suspect flag, samples seen) for every rogue in ``entries``, best first."""
    peaks: dict[int, _Peak] = {}
    for entry in entries:
        for rogue in entry.samples.rogues:
            peak = peaks.get(rogue.pid)
            if peak is None:
                peak = peaks[rogue.pid] = _Peak(
                    rogue.pid, rogue.command, rogue.score, cgroup=rogue.cgroup, ppid=rogue.ppid
                )
            elif rogue.score > peak.score:
                peak.score = rogue.score
                peak.command = rogue.command
            peak.categories.update(rogue.categories)
            peak.seen += 1
    ordered = sorted(peaks.values(), key=lambda p: (-p.score, -p.seen, p.pid))
    return [
        (m.Culprit(pid=p.pid, command=p.command, score=p.score, categories=sorted(p.categories),  # type: ignore[arg-type]
                   cgroup=p.cgroup, ppid=p.ppid), p.seen)
        for p in ordered
    ]


IO_FLOOR_BPS = 8 << 20
FAULT_FLOOR_PER_S = 100.0
GROWTH_FLOOR_BPS = 64 << 20
STUCK_SHARE = 10.0  # in D state when sampled: a moment, not a measured consumption
MIN_SHARE = 5.0  # a resource is among a culprit's categories from this share on
# The resources each cause is about; the others count half.
CAUSE_RESOURCES: dict[str, set[str]] = {
    "cpu": {"cpu"},
    "io": {"io", "stuck"},
    "memory": {"mem", "pageins", "stuck"},
}
CHILDREN_NOTE = "includes the CPU of children that exited in the interval (charged to their parent)"


@dataclass(frozen=True)
class Consumption:
    """What one process consumed in the stall's interval, and its shares (percent)."""

    process: m.ProcessInfo
    cpu_pct: float  # own + reaped children, % of one core, clipped to the machine
    clipped: bool
    shares: dict[str, float]
    score: int
    categories: list[str]
    children_pct: float = 0.0  # the reaped children's CPU counted (after the bound)


def bounded_children(processes: list[m.ProcessInfo], cpu_count: int, busy_pct: float | None) -> dict[int, float]:
    """Each process's reaped children's CPU (% of one core) that can belong to this interval,
    bounded as the scorer bounds it (pmshared.reaped). ``busy_pct``: the machine's busy %, None
    when unknown (then unbounded)."""
    children = [max(p.cpu_children or 0.0, 0.0) for p in processes]
    if busy_pct is not None:
        capacity = 100.0 * max(cpu_count, 1)
        own = sum(min(max(p.cpu or 0.0, 0.0), capacity) for p in processes)
        children = bound_reaped(children, busy_pct / 100.0 * capacity - own)
    return {p.pid: c for p, c in zip(processes, children)}


def _demand(p: m.ProcessInfo) -> float:
    """Bytes/s of memory ``p`` demanded: its growth (when positive) and what it read from storage."""
    return max(p.mem_growth or 0.0, 0.0) + max(p.read_bps or 0.0, 0.0)


def _shares(
    p: m.ProcessInfo, children: float, cpu_count: int, totals: dict[str, float]
) -> tuple[float, bool, dict[str, float]]:
    capacity = 100.0 * max(cpu_count, 1)
    raw_cpu = (p.cpu or 0.0) + children
    cpu = min(raw_cpu, capacity)
    io = (p.read_bps or 0.0) + (p.write_bps or 0.0)
    shares = {
        "cpu": 100.0 * cpu / capacity,
        "io": 100.0 * io / max(totals["io"], IO_FLOOR_BPS),
        "pageins": 100.0 * (p.pageins or 0.0) / max(totals["pageins"], FAULT_FLOOR_PER_S),
        "mem": 100.0 * _demand(p) / max(totals["mem"], GROWTH_FLOOR_BPS),
        "stuck": STUCK_SHARE if p.state == "stuck" else 0.0,
    }
    return cpu, raw_cpu > capacity, shares


def consumption(
    processes: list[m.ProcessInfo], cpu_count: int, cause: str, busy_pct: float | None = None
) -> list[Consumption]:
    """Every process that consumed something, best first. Pure. ``busy_pct`` (the machine's, over
    the same interval) bounds the reaped children's CPU; None leaves it unbounded."""
    totals = {
        "io": sum((p.read_bps or 0.0) + (p.write_bps or 0.0) for p in processes),
        "pageins": sum(p.pageins or 0.0 for p in processes),
        "mem": sum(_demand(p) for p in processes),
    }
    children = bounded_children(processes, cpu_count, busy_pct)
    named = CAUSE_RESOURCES.get(cause)
    out = []
    for p in processes:
        cpu, clipped, shares = _shares(p, children[p.pid], cpu_count, totals)
        weighted = {r: v if named is None or r in named else v / 2 for r, v in shares.items()}
        score = min(100, round(max(weighted.values())))
        if score <= 0:
            continue
        # What it held much of, and in any case what its score comes from.
        categories = {r for r, v in shares.items() if v >= MIN_SHARE or (r == "stuck" and v)}
        categories.add(max(weighted, key=lambda r: weighted[r]))
        if "cpu" in categories and children[p.pid] >= max(p.cpu or 0.0, 1.0):
            categories.add("fork")  # mostly its exited children's CPU
        out.append(Consumption(p, cpu, clipped, shares, score, sorted(categories), children[p.pid]))
    return sorted(out, key=lambda c: (-c.score, -c.cpu_pct, c.process.pid))


class CulpritEntry(msgspec.Struct, kw_only=True):
    """One culprit in culprits.json: who, how often the ring saw it, and (ranked from the stall's
    snapshot) what it consumed there and how its score came about."""

    pid: int
    ppid: int
    command: str
    cgroup: str | None
    score: int
    categories: list[m.Category]
    suspect: bool
    samples_seen: int  # samples it was rogue in (ranked from the ring)
    cpu_pct: float | UnsetType = UNSET  # own + counted children, % of one core, clipped
    cpu_own_pct: float | None | UnsetType = UNSET
    cpu_children_pct: float | None | UnsetType = UNSET
    cpu_children_counted_pct: float | UnsetType = UNSET
    read_bps: float | None | UnsetType = UNSET
    write_bps: float | None | UnsetType = UNSET
    pageins_per_s: float | None | UnsetType = UNSET
    mem_growth_bps: float | None | UnsetType = UNSET
    state: str | None | UnsetType = UNSET
    shares_pct: dict[str, float] | UnsetType = UNSET
    pipeline: bool | UnsetType = UNSET
    cpu_children_note: str | UnsetType = UNSET
    clipped: str | UnsetType = UNSET


def culprit_entry(
    c: m.Culprit, seen: int, used: Consumption | None, pipeline: AbstractSet[int]
) -> CulpritEntry:
    """A culprit for culprits.json; ``used``: what it consumed in the stall (source "stall")."""
    entry = CulpritEntry(pid=c.pid, ppid=c.ppid, command=c.command, cgroup=c.cgroup, score=c.score,
                         categories=list(c.categories), suspect=c.suspect, samples_seen=seen)
    if used is None:
        return entry
    p = used.process
    entry.cpu_pct = round(used.cpu_pct, 1)
    entry.cpu_own_pct, entry.cpu_children_pct = p.cpu, p.cpu_children
    entry.cpu_children_counted_pct = round(used.children_pct, 1)
    entry.read_bps, entry.write_bps, entry.pageins_per_s, entry.mem_growth_bps = (
        p.read_bps, p.write_bps, p.pageins, p.mem_growth)
    entry.state = p.state
    entry.shares_pct = {r: round(v, 1) for r, v in used.shares.items()}
    entry.pipeline = p.pid in pipeline
    if p.cpu_children is None:
        entry.cpu_children_note = "not measured by this collector: exited children are not charged"
    elif used.children_pct > 0:
        entry.cpu_children_note = CHILDREN_NOTE
    if used.clipped:
        entry.clipped = "CPU above what the cores allow, clipped to the machine"
    return entry


class SuspectPresent(msgspec.Struct, kw_only=True):
    """A process matching a suspect pattern that is not among the culprits."""

    pid: int
    command: str
    state: str | None
    cpu: float | None


def pipeline_pids(processes: list[m.ProcessInfo], own_pid: int, supervisor_pid: int | None) -> set[int]:
    """The monitor's own processes, by pid (a command name proves nothing: anyone can call itself
    "collector"): this worker and its children (its captures); with the supervisor (None when
    the worker runs standalone), the supervisor, its children (the other workers) and theirs (the
    collector's pause sentinel process, macOS ``top``)."""
    parents = {own_pid}
    if supervisor_pid is not None:
        workers = {p.pid for p in processes if p.ppid == supervisor_pid}
        parents |= workers | {supervisor_pid}
    return parents | {p.pid for p in processes if p.ppid in parents}


@dataclass
class CulpritReport:
    culprits: list[m.Culprit]
    source: str  # "stall" (the snapshot spanning it), "ring" or "none"
    seen: dict[int, int]  # pid -> samples it was rogue in (source "ring")
    suspects_present: list[SuspectPresent]  # suspects running but not among the culprits
    details: dict[int, Consumption] = field(default_factory=dict)  # pid -> what it consumed (source "stall")
    pipeline: AbstractSet[int] = frozenset()  # the monitor's own pids (marked in culprits.json)

    def entries(self) -> list[CulpritEntry]:
        """The culprits as culprits.json lists them."""
        return [culprit_entry(c, self.seen.get(c.pid, 0), self.details.get(c.pid), self.pipeline)
                for c in self.culprits]


def identify(
    entries: list[m.LiveSample],
    processes: list[m.ProcessInfo] | None,
    patterns: list[str],
    count: int,
    *,
    cause: str = "unknown",
    cpu_count: int = 1,
    busy_pct: float | None = None,
    pipeline: AbstractSet[int] = frozenset(),
) -> CulpritReport:
    """Culprits from the stall's snapshot (``processes``), else from the ring buffer."""
    details: dict[int, Consumption] = {}
    if processes:
        ranked = consumption(processes, cpu_count, cause, busy_pct)[:count]
        chosen = [
            m.Culprit(pid=c.process.pid, command=c.process.command, score=c.score,
                      categories=c.categories, cgroup=c.process.cgroup, ppid=c.process.ppid)  # type: ignore[arg-type]
            for c in ranked
        ]
        details = {c.process.pid: c for c in ranked}
        source = "stall"
        seen: dict[int, int] = {}
    else:
        ring = rank_from_ring(entries)
        seen = {c.pid: n for c, n in ring}
        chosen = [c for c, _ in ring[:count]]
        source = "ring"
    if not chosen:
        source = "none"
    culprits = [
        m.Culprit(pid=c.pid, command=c.command, score=c.score, categories=c.categories,
                  suspect=is_suspect(c.command, patterns), cgroup=c.cgroup, ppid=c.ppid)
        for c in chosen
    ]
    chosen_pids = {c.pid for c in culprits}
    present = [
        SuspectPresent(pid=p.pid, command=p.command, state=p.state, cpu=p.cpu)
        for p in (processes or [])
        if p.pid not in chosen_pids and is_suspect(p.command, patterns)
    ]
    return CulpritReport(culprits=culprits, source=source, seen=seen, suspects_present=present, details=details,
                         pipeline=pipeline)
