"""The pressure model: the machine's stress, charged to the processes that hold the resource.

    stress_r        machine stress of resource r (scorer.stress), 0..100
    share_r(p)      p's part of what all processes consumed of r in the interval, 0..1
    charge_r(p)     stress_r * share_r(p): the points of r's stress that p accounts for
    score(p)        min(100, round(max over r of charge_r(p)))
    max_score       max over r of stress_r (what the tiers follow)

A process's score is thus its portion of the machine's trouble: the shares of a resource add up
to 1, so the charges of r add up to stress_r. A parent of two or more same-named workers is also
charged what they hold together (``_charge_parents``), so a job of many small workers is named. Shares are of what was *consumed* (not of the
machine's capacity) so the top consumer of a lightly used resource is still named, with a small
score. Shares per resource:

    cpu     cpu + cpu_children, each process capped at the machine's cores; children's CPU (a
            whole lifetime arrives when they are reaped) bounded by the busy time the live
            processes leave unexplained (``_bound_children``)
    io      read + write bytes; where no process has a byte figure, read/write system calls
            (Linux sysbsd is syscr + syscw); a task in D state (stuck) gets at least 1/#stuck
    memory  the larger of its part of positive memory growth and of page-ins; when memory is
            stressed and nobody grows or pages in, its part of resident memory
    fork    cpu_children, bounded as above (a fork storm is charged to the parent that reaps);
            where no process has the figure, the cpu share
    csw     context switches
    stall   sentinel lateness is a symptom: split among cpu, io and memory by their stress
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from pmshared.config import Config
from pmshared.messages import ProcessInfo, ProcessScore, Snapshot

from scorer.selection import SelectionRules
from scorer.stress import StressRules, machine_stress

# Resource -> the rogue category that names it (the wire's Category literals).
CATEGORY = {"cpu": "cpu", "memory": "mem", "io": "io", "fork": "fork", "csw": "csw"}
# Charges below this many points make no category (they would round to a score of 0).
MIN_CHARGE = 0.5


@dataclass(frozen=True)
class PressureRules:
    stress: StressRules
    rogue_count: int
    category_ratio: float
    selection: SelectionRules  # only its state rules are used here

    @classmethod
    def from_config(cls, config: Config) -> PressureRules:
        cfg = config.scoring.pressure
        return cls(
            stress=StressRules.from_config(config),
            rogue_count=cfg.rogue_count,
            category_ratio=cfg.category_ratio,
            selection=SelectionRules.from_config(config.rogue_selection),
        )


def _num(value: float | None) -> float:
    """Unknown, NaN, infinite or negative (a collector bug, a hostile sender) consumes nothing."""
    if value is None or not 0 < value < math.inf:
        return 0.0
    return value


@dataclass
class _Use:
    """What one active process consumed in the interval (all >= 0)."""

    proc: ProcessInfo
    cpu: float
    children: float
    io: float
    syscalls: float
    growth: float
    pageins: float
    csw: float


def _active(processes: list[ProcessInfo], cpu_cap: float, busy: float | None) -> list[_Use]:
    """The processes that consumed something, or are stuck in D state (most of a desktop's
    processes slept through the whole interval).

    ``busy`` is the CPU the whole machine was busy with (% of one core), None if unknown."""
    out = []
    for p in processes:
        if not (p.cpu or p.csw or p.pageins or p.sysbsd or p.cpu_children or p.read_bps
                or p.write_bps or p.mem_growth or p.state == "stuck"):
            continue
        out.append(_Use(
            p, min(cpu_cap, _num(p.cpu)), _num(p.cpu_children), _num(p.read_bps) + _num(p.write_bps),
            _num(p.sysbsd), _num(p.mem_growth), _num(p.pageins), _num(p.csw),
        ))
    _bound_children(out, busy)
    for use in out:
        use.cpu = min(cpu_cap, use.cpu + use.children)
    return out


def _bound_children(active: list[_Use], busy: float | None) -> None:
    """Reaped children's CPU, bounded by the busy time no live process accounts for.

    The kernel adds a child's whole lifetime of CPU to its parent when the parent reaps it: a
    shell reaping an hour-long build, a supervisor a worker it ran all day. That CPU was spent
    (and charged to the child) in earlier intervals. Only the part of this interval's busy time
    that the live processes' own CPU leaves unexplained can have been the reaped children's:
    each parent's children figure is capped at it, and all are scaled down together if they
    add up to more. A fork storm's short-lived children (never sampled alive) fill exactly that
    gap, so the storm's parent keeps its charge."""
    if busy is None:
        return
    unexplained = max(0.0, busy - sum(u.cpu for u in active))
    for use in active:
        use.children = min(use.children, unexplained)
    total = sum(u.children for u in active)
    if total > unexplained:
        scale = unexplained / total
        for use in active:
            use.children *= scale


def _share(part: float, total: float) -> float:
    return part / total if total > 0 else 0.0


@dataclass(frozen=True)
class _Totals:
    cpu: float
    children: float
    io: float
    syscalls: float
    growth: float
    pageins: float
    csw: float
    io_bytes_known: bool
    children_known: bool
    stuck: int
    rss: float  # only summed when the memory fallback needs it (else 0)


def _totals(processes: list[ProcessInfo], active: list[_Use], memory_stressed: bool) -> _Totals:
    growth = sum(u.growth for u in active)
    pageins = sum(u.pageins for u in active)
    return _Totals(
        cpu=sum(u.cpu for u in active),
        children=sum(u.children for u in active),
        io=sum(u.io for u in active),
        syscalls=sum(u.syscalls for u in active),
        growth=growth,
        pageins=pageins,
        csw=sum(u.csw for u in active),
        io_bytes_known=any(u.proc.read_bps is not None or u.proc.write_bps is not None for u in active),
        children_known=any(u.proc.cpu_children is not None for u in active),
        stuck=sum(1 for p in processes if p.state == "stuck"),
        rss=float(sum(p.mem for p in processes)) if memory_stressed and growth == 0 and pageins == 0 else 0.0,
    )


def shares(use: _Use, t: _Totals) -> dict[str, float]:
    """One process's part of each resource consumed in the interval (0..1)."""
    p = use.proc
    cpu = _share(use.cpu, t.cpu)
    io = _share(use.io, t.io) if t.io_bytes_known else _share(use.syscalls, t.syscalls)
    if p.state == "stuck" and t.stuck:
        io = max(io, 1.0 / t.stuck)
    memory = max(_share(use.growth, t.growth), _share(use.pageins, t.pageins))
    if t.rss:
        memory = _share(p.mem, t.rss)
    fork = _share(use.children, t.children) if t.children_known else cpu
    return {"cpu": cpu, "io": io, "memory": memory, "fork": fork, "csw": _share(use.csw, t.csw)}


STALL_CAUSES = ("cpu", "io", "memory")


def multipliers(stress: dict[str, float]) -> dict[str, float]:
    """Per resource, the points a process holding all of it is charged: charge = mult * share.

    Sentinel lateness (stall) is a symptom, not a resource: it is split among cpu, io and memory
    in proportion to their stress, and each part charged like that resource (a resource's
    multiplier is the larger of its own stress and its part of the stall). A stall with no
    contention to explain it (the hypervisor paused the VM, the collector was stopped) is charged
    to nobody: the model does not invent a cause. A resource whose multiplier is under
    MIN_CHARGE can charge nobody a point, not even a group of workers (shares add up to <= 1),
    so it is left out: most resources of a calm machine, which keeps the per-process work small."""
    mult = {r: v for r, v in stress.items() if r in CATEGORY}
    stall = stress.get("stall", 0.0)
    causes = {r: stress.get(r, 0.0) for r in STALL_CAUSES}
    total = sum(causes.values())
    if stall and total:
        for r, weight in causes.items():
            if weight:
                mult[r] = max(mult.get(r, 0.0), stall * weight / total)
    return {r: v for r, v in mult.items() if v >= MIN_CHARGE}


def charges(part: dict[str, float], mult: dict[str, float]) -> dict[str, float]:
    """Points of each resource's stress this process accounts for."""
    return {r: m * part[r] for r, m in mult.items()}


def categories_of(charge: dict[str, float], mult: dict[str, float], ratio: float) -> set[str]:
    """The resources a process is charged for: its top charge, any charge of at least ``ratio``
    of that, and any resource it holds at least ``ratio`` of (share = charge / multiplier), so the
    parent of a fork storm is named under fork even while its CPU charge is larger."""
    top = max(charge.values(), default=0.0)
    return {CATEGORY[r] for r, c in charge.items()
            if c >= MIN_CHARGE and (c >= ratio * top or c >= ratio * mult[r])}


def _score(proc: ProcessInfo, score: int, cats: set[str]) -> ProcessScore:
    io = None if proc.read_bps is None and proc.write_bps is None else _num(proc.read_bps) + _num(proc.write_bps)
    return ProcessScore(
        pid=proc.pid, command=proc.command, cpu=proc.cpu, state=proc.state, mem=proc.mem,
        cmprs=proc.cmprs, pageins=proc.pageins, csw=proc.csw, sysbsd=proc.sysbsd,
        threads=proc.threads, score=score, categories=sorted(cats), ppid=proc.ppid,
        cpu_children=proc.cpu_children, run_delay=proc.run_delay, io_bps=io,
        mem_growth=proc.mem_growth, cgroup=proc.cgroup,
    )


def _by_state(processes: list[ProcessInfo], rules: SelectionRules) -> list[tuple[ProcessInfo, str]]:
    """Stuck processes always, then those in a configured state (up to its count): the seed's
    state rules, so a zombie is listed though it consumes nothing."""
    stuck = [(p, "stuck") for p in processes if p.state == "stuck"]
    listed = [(p, "state") for p in processes if p.state in rules.states]
    if rules.state_count > 0:
        listed = listed[: rules.state_count]
    return stuck + listed


# Parents never charged for a group of children: orphans of every user are reparented to init,
# and kthreadd is the parent of every kernel thread.
NO_GROUP_PARENTS = frozenset({0, 1, 2})


def _charge_parents(charged: dict[int, tuple[ProcessInfo, dict[str, float]]],
                    processes: list[ProcessInfo]) -> None:
    """Charge a parent with what its group of workers holds together.

    Workers of one job (make -j, stress-ng --cpu 8, a browser's renderers) each hold a small part
    of the machine, and a single process of someone else's can outscore every one of them. Two or
    more children with the same command and the same parent are a group; the parent is charged
    its own part plus the group's (parts of one resource add up to at most 1, so the charge stays
    within the resource's stress). The workers keep their own, smaller scores."""
    groups: dict[tuple[int, str], list[dict[str, float]]] = {}
    for proc, charge in charged.values():
        if proc.ppid not in NO_GROUP_PARENTS and charge:
            groups.setdefault((proc.ppid, proc.command), []).append(charge)
    extra: dict[int, dict[str, float]] = {}
    for (ppid, _), members in groups.items():
        if len(members) < 2:
            continue
        add = extra.setdefault(ppid, {})
        for charge in members:
            for r, c in charge.items():
                add[r] = add.get(r, 0.0) + c
    if not extra:
        return
    by_pid = {p.pid: p for p in processes}
    for ppid, add in extra.items():
        parent = by_pid.get(ppid)
        if parent is None:  # the parent exited: nobody to name
            continue
        own = charged.get(ppid, (parent, {}))[1]
        charged[ppid] = (parent, {r: own.get(r, 0.0) + add.get(r, 0.0) for r in own.keys() | add.keys()})


def run_delay_total(processes: list[ProcessInfo]) -> float | None:
    """All processes' run delay (ms/s), None when no process has the figure."""
    known = [p.run_delay for p in processes if p.run_delay is not None]
    return sum(_num(d) for d in known) if known else None


def score_pressure(snapshot: Snapshot, rules: PressureRules) -> tuple[int, dict[str, int], list[ProcessScore]]:
    """``(max_score, stress per resource, rogues)`` of one snapshot under the pressure model."""
    processes = snapshot.processes
    system = snapshot.system
    stress = machine_stress(system, snapshot.sentinel, run_delay_total(processes), rules.stress)
    mult = multipliers(stress)
    charged = {}
    if mult:  # else nothing is stressed enough to charge anyone a point: skip the processes
        cores = max(1, system.cpu_count)
        busy = None if system.cpu_busy_pct is None else system.cpu_busy_pct * cores
        active = _active(processes, 100.0 * cores, busy)
        totals = _totals(processes, active, stress.get("memory", 0.0) >= MIN_CHARGE)
        charged = {use.proc.pid: (use.proc, charges(shares(use, totals), mult)) for use in active}
        _charge_parents(charged, processes)
    ranked = []  # (top charge, process, categories) of every process scoring > 0
    for proc, charge in charged.values():
        top = max(charge.values(), default=0.0)
        if top >= MIN_CHARGE:
            ranked.append((top, proc, categories_of(charge, mult, rules.category_ratio)))
    # Ranked on the charge before rounding: scores that round alike still order by who held more.
    rogues = {proc.pid: (top, proc, cats) for top, proc, cats in
              heapq.nlargest(rules.rogue_count, ranked, key=lambda r: r[0])}
    for proc, category in _by_state(processes, rules.selection):
        top, _, cats = rogues.get(proc.pid, (0.0, proc, set()))
        rogues[proc.pid] = (top, proc, cats | {category})
    out = sorted(rogues.values(), key=lambda r: -r[0])
    max_score = round(max(stress.values(), default=0.0))
    # A charged process (>= MIN_CHARGE) scores at least 1; one listed for its state alone, 0.
    scored = [_score(p, min(100, max(1, round(top))) if top >= MIN_CHARGE else 0, cats) for top, p, cats in out]
    return max_score, {r: round(v) for r, v in stress.items()}, scored
