"""The pressure model: the machine's stress, charged to the processes that hold the resource.

    stress_r        machine stress of resource r (scorer.stress), 0..100
    mult_r          stress_r; for cpu, io and memory at least their part of the stall, scaled by
                    how contended they are (stress_r / the elevated threshold, up to 1)
    share_r(p)      p's part of what all processes consumed of r in the interval, 0..1
    charge_r(p)     mult_r * share_r(p): the points of r's stress that p accounts for
    score(p)        min(100, round(max over r of charge_r(p)))
    max_score       max over r of mult_r (what the tiers follow: every resource's stress, the
                    stall only as far as a contended resource explains it)

A process's score is thus its portion of the machine's trouble: the shares of a resource add up
to 1, so the charges of r add up to stress_r. Shares are of what was *consumed* (not of the
machine's capacity), so the top consumer of a lightly used resource is still named, with a small
score. A parent of two or more same-named workers is also charged what they hold together
(``_charge_parents``), so a job of many small workers is named. Shares per resource:

    cpu     cpu + cpu_children, each process capped at the machine's cores; children's CPU (a
            whole lifetime arrives when they are reaped) bounded by the busy time the live
            processes leave unexplained (``_bound_children``)
    io      read + write bytes, against the larger of what all processes moved and what the
            storage devices moved (``disk_bps``): the kernel's writeback of pages dirtied earlier,
            the journal and swap move bytes no process shows in the interval, and charged by the
            processes' sum alone the one process that read a page took all of that stress. Where
            no process has byte figures (macOS), read/write system calls (sysbsd). A task waiting
            in D state is not charged for waiting (it is listed as stuck): it is io's victim, and
            charging it named stress-ng's cpu worker, waiting for the set-up's writeback, as the
            io culprit
    memory  its part of the memory demanded in the interval, in bytes/s: resident + swapped
            growth (if positive) plus what it brought in from storage (read bytes, or major
            faults times ``page_in_bytes`` where larger); when memory is stressed and nobody
            demanded any, its part of resident memory
    fork    cpu_children, bounded as above (a fork storm is charged to the parent that reaps);
            where no process has the figure, the cpu share
    csw     context switches
    stall   sentinel lateness is a symptom: split among cpu, io and memory by their stress
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

from pmshared.config import Config
from pmshared.messages import ProcessInfo, ProcessScore, Snapshot
from pmshared.reaped import bound_reaped

from scorer.selection import SelectionRules
from scorer.stress import StressRules, machine_stress, stall_explained

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
    page_in_bytes: float = 4096.0  # bytes one major fault stands for where no byte figure is known

    @classmethod
    def from_config(cls, config: Config) -> PressureRules:
        cfg = config.scoring.pressure
        return cls(
            stress=StressRules.from_config(config),
            rogue_count=cfg.rogue_count,
            category_ratio=cfg.category_ratio,
            selection=SelectionRules.from_config(config.rogue_selection),
            page_in_bytes=float(cfg.page_in_bytes),
        )


def _num(value: float | None) -> float:
    """Unknown, NaN, infinite or negative (a collector bug, a hostile sender) consumes nothing."""
    if value is None or not 0 < value < math.inf:
        return 0.0
    return value


@dataclass(slots=True)
class _Use:
    """What one active process consumed in the interval (all >= 0)."""

    proc: ProcessInfo
    cpu: float
    children: float
    io: float
    syscalls: float
    demand: float  # memory demanded, bytes/s (``memory_demand``)
    csw: float
    rss: float


# The figures that can give a process a share of each resource: a process with none of them
# (most of a desktop's processes slept through the interval) is skipped without a look.
_USES = {
    "cpu": ("cpu", "cpu_children"),
    "fork": ("cpu", "cpu_children"),
    "io": ("read_bps", "write_bps", "sysbsd"),
    "memory": ("mem_growth", "pageins", "read_bps"),
    "csw": ("csw",),
}


def memory_demand(proc: ProcessInfo, page_in_bytes: float) -> float:
    """Bytes/s of memory ``proc`` demanded in the interval: its resident + swapped growth (when
    positive) plus what it brought in from storage. Under memory pressure both make the kernel
    reclaim someone's pages. Reads count because a page-cache refault through read() is no major
    fault (measured: readers in a memory-limited cgroup at ~500 MB/s read and ~50 major faults/s,
    while the collector's own 0.5 MB/s of growth took the whole growth share and the memory
    charge); where no byte figure is known (macOS), each major fault is ``page_in_bytes``.
    Everything in one unit, so a process is charged in proportion to what it really took."""
    growth = _num(proc.mem_growth)
    return growth + max(_num(proc.read_bps), _num(proc.pageins) * page_in_bytes)


def _active(processes: list[ProcessInfo], cpu_cap: float, busy: float | None,
            resources: Iterable[str], rss: bool, page_in_bytes: float) -> list[_Use]:
    """The processes that consumed some of ``resources`` (always their CPU figures, which bound
    the reaped children's), or hold memory when ``rss`` shares are used.

    ``busy`` is the CPU the whole machine was busy with (% of one core), None if unknown."""
    names = {"cpu", "cpu_children"}.union(*(_USES[r] for r in resources))
    if rss:
        names.add("mem")
    uses = attrgetter(*sorted(names))
    num = _num
    memory = "memory" in resources  # its demand only when charged (memory_demand, inlined: hot)
    out = []
    for p in processes:
        if not any(uses(p)):
            continue
        read = num(p.read_bps)
        demand = num(p.mem_growth) + max(read, num(p.pageins) * page_in_bytes) if memory else 0.0
        out.append(_Use(
            p, min(cpu_cap, num(p.cpu)), num(p.cpu_children), read + num(p.write_bps),
            num(p.sysbsd), demand, num(p.csw), float(p.mem),
        ))
    _bound_children(out, busy)
    for use in out:
        use.cpu = min(cpu_cap, use.cpu + use.children)
    return out


def _bound_children(active: list[_Use], busy: float | None) -> None:
    """Reaped children's CPU, bounded by the busy time no live process accounts for
    (pmshared.reaped says why)."""
    if busy is None:
        return
    bounded = bound_reaped([u.children for u in active], busy - sum(u.cpu for u in active))
    for use, children in zip(active, bounded):
        use.children = children


def _reaped_switches(active: list[_Use], system_csw: float | None, busy: float | None) -> None:
    """The machine's context switches no live process accounts for, laid at the door of the
    parents that reaped children in the interval, each in proportion to its children's part of
    the machine's busy time (``busy``, % of one core).

    A process's switches are lost with it: the kernel adds a reaped child's CPU to its parent
    (``cpu_children``) but not its switches. When a context-switch storm ends, its workers run
    most of the interval and die before the sample: their switches were still most of the
    machine's, and without this the storm's parent was charged their CPU alone (under cpu). A
    parent whose children used a sliver of the busy time gets a sliver of the lost switches (the
    rest may be the idle task's, or counts a sample missed), never all of them."""
    if not system_csw or system_csw <= 0 or not busy or busy <= 0:
        return
    reapers = [u for u in active if u.children > 0]
    if not reapers:
        return
    lost = system_csw - sum(u.csw for u in active)
    if lost <= 0:
        return
    busy = max(busy, sum(u.children for u in reapers))
    for use in reapers:
        use.csw += lost * use.children / busy


def _share(part: float, total: float) -> float:
    return part / total if total > 0 else 0.0


@dataclass(frozen=True)
class _Totals:
    cpu: float
    children: float
    io: float
    syscalls: float
    demand: float
    csw: float
    children_known: bool
    bytes_known: bool  # some process has storage byte figures (else io is shared by syscalls)
    disk: float  # bytes/s the storage devices moved, 0 when unknown
    rss: float  # only summed when the memory fallback needs it (else 0)


def _totals(processes: list[ProcessInfo], active: list[_Use], memory_stressed: bool,
            disk_bps: float | None) -> _Totals:
    demand = sum(u.demand for u in active)
    return _Totals(
        cpu=sum(u.cpu for u in active),
        children=sum(u.children for u in active),
        io=sum(u.io for u in active),
        syscalls=sum(u.syscalls for u in active),
        demand=demand,
        csw=sum(u.csw for u in active),
        children_known=any(u.proc.cpu_children is not None for u in active),
        bytes_known=any(p.read_bps is not None or p.write_bps is not None for p in processes),
        disk=_num(disk_bps),
        rss=float(sum(p.mem for p in processes)) if memory_stressed and demand == 0 else 0.0,
    )


def _factors(t: _Totals, mult: dict[str, float]) -> list[tuple[str, str, float]]:
    """(resource, figure of _Use, points per unit) such that a process's charge of the resource
    is the largest of figure * points over the resource's entries: mult_r * share_r."""
    def per(total: float, m: float) -> float:
        return m / total if total > 0 else 0.0

    out = []
    for r, m in mult.items():
        if r == "cpu":
            out.append((r, "cpu", per(t.cpu, m)))
        elif r == "io":
            out.append((r, "io", per(max(t.io, t.disk), m)) if t.bytes_known else (r, "syscalls", per(t.syscalls, m)))
        elif r == "memory" and t.rss:
            out.append((r, "rss", per(t.rss, m)))
        elif r == "memory":
            out.append((r, "demand", per(t.demand, m)))
        elif r == "fork":
            out.append((r, "children", per(t.children, m)) if t.children_known else (r, "cpu", per(t.cpu, m)))
        elif r == "csw":
            out.append((r, "csw", per(t.csw, m)))
    return out


def _charge(use: _Use, factors: list[tuple[str, str, float]]) -> dict[str, float]:
    """Points of each stressed resource this process accounts for."""
    charge: dict[str, float] = {}
    for r, figure, points in factors:
        value = getattr(use, figure) * points
        if value > charge.get(r, 0.0):
            charge[r] = value
    return charge


STALL_CAUSES = ("cpu", "io", "memory")


def multipliers(stress: dict[str, float], contended: float = 35.0,
                explained: dict[str, float] | None = None) -> dict[str, float]:
    """Per resource, the points a process holding all of it is charged: charge = mult * share.

    Sentinel lateness (stall) is a symptom, not a resource: it is split among cpu, io and memory
    in proportion to their stress, and each part charged like that resource (a resource's
    multiplier is the larger of its own stress and its part of the stall). A resource explains
    a stall only as far as it is contended: its part is scaled by its stress over ``contended``
    (the tiers' elevated threshold), up to 1. So a stall with no contention to explain it (the
    hypervisor paused the VM, the collector itself was stopped) is charged to nobody and raises
    no tier, however busy a core was with everyday work: the model does not invent a cause, and
    the pause is recorded as a pause. Where the kernel says how long tasks waited for a
    resource (PSI: ``explained``, scorer.stress.stall_explained), its part is at most what those
    waits explain. A resource whose multiplier is under MIN_CHARGE can charge
    nobody a point, not even a group of workers (shares add up to <= 1), so it is left out: most
    resources of a calm machine, which keeps the per-process work small."""
    mult = {r: v for r, v in stress.items() if r in CATEGORY}
    stall = stress.get("stall", 0.0)
    causes = {r: stress.get(r, 0.0) for r in STALL_CAUSES}
    total = sum(causes.values())
    if stall and total:
        for r, weight in causes.items():
            if weight:
                part = stall * weight / total * min(1.0, weight / contended)
                if explained is not None and r in explained:
                    part = min(part, explained[r])
                mult[r] = max(mult.get(r, 0.0), part)
    return {r: v for r, v in mult.items() if v >= MIN_CHARGE}


def categories_of(charge: dict[str, float], mult: dict[str, float], ratio: float,
                  contended: float = 35.0) -> set[str]:
    """The resources a process is charged for: its top charge, any charge of at least ``ratio``
    of that, and any contended resource (stress at the elevated threshold, ``contended``) it holds
    at least ``ratio`` of (share = charge / multiplier). So the parent of a fork storm is named
    under fork even while its CPU charge is larger, but a CPU hog whose workers' start-up was most
    of a calm machine's memory growth (memory stress 5 beside cpu 57) is not named under mem."""
    top = max(charge.values(), default=0.0)
    return {CATEGORY[r] for r, c in charge.items()
            if c >= MIN_CHARGE and (c >= ratio * top or (c >= ratio * mult[r] and mult[r] >= contended))}


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


def _add(charge: dict[str, float], more: dict[str, float]) -> dict[str, float]:
    return {r: charge.get(r, 0.0) + more.get(r, 0.0) for r in charge.keys() | more.keys()}


def _charge_parents(charged: dict[int, tuple[ProcessInfo, dict[str, float]]],
                    processes: list[ProcessInfo]) -> None:
    """Charge a parent with what its copies and its group of workers hold together.

    Workers of one job (make -j, stress-ng --cpu 8, a browser's renderers) each hold a small part
    of the machine, and a single process of someone else's can outscore every one of them. Two or
    more children with the same command and the same parent are a group; the parent is charged
    its own part plus the group's. A child with its parent's own command (forked, not exec'd: a
    copy doing the same work, e.g. each ``stress-ng --switch`` worker's partner at the other end
    of its pipe) is charged to that parent first, so a worker carries its pair and the job's
    parent the whole storm (without it stress-ng held half of it: score 50, outscored by others'
    processes once the storm ended). Parts of one resource add up to at most 1, so a charge
    stays within the resource's stress; the workers keep their own scores."""
    # (pid, process, own charge) of every charged process with a parent that may be charged
    children = [(pid, proc, charge) for pid, (proc, charge) in charged.items()
                if charge and proc.ppid not in NO_GROUP_PARENTS]
    # Their parents: most are charged themselves; the rest take one pass over the processes.
    by_pid = {ppid: charged[ppid][0] for _, proc, _ in children if (ppid := proc.ppid) in charged}
    if missing := {proc.ppid for _, proc, _ in children} - by_pid.keys():
        by_pid.update((p.pid, p) for p in processes if p.pid in missing)
    groups: dict[tuple[int, str], list[int]] = {}
    for pid, proc, charge in children:
        parent = by_pid.get(proc.ppid)
        if parent is None:  # the parent exited: nobody to name
            continue
        if parent.command == proc.command:  # a copy: charged to its parent first
            charged[parent.pid] = (parent, _add(charged.get(parent.pid, (parent, {}))[1], charge))
        else:
            groups.setdefault((parent.pid, proc.command), []).append(pid)
    for (ppid, _), members in groups.items():
        if len(members) < 2:
            continue
        add: dict[str, float] = {}
        for pid in members:  # each worker with the copies charged to it above
            add = _add(add, charged[pid][1])
        charged[ppid] = (by_pid[ppid], _add(charged.get(ppid, (by_pid[ppid], {}))[1], add))


def run_delay_total(processes: list[ProcessInfo]) -> float | None:
    """All processes' run delay (ms/s), None when no process has the figure."""
    known = [p.run_delay for p in processes if p.run_delay is not None]
    return sum(_num(d) for d in known) if known else None


def _charge_all(snapshot: Snapshot, mult: dict[str, float], page_in_bytes: float,
                contended: float) -> dict[int, tuple[ProcessInfo, dict[str, float]]]:
    """pid -> (process, charge per resource) of every process that consumed something."""
    if not mult:  # nothing is stressed enough to charge anyone a point: skip the processes
        return {}
    processes, system = snapshot.processes, snapshot.system
    cores = max(1, system.cpu_count)
    busy = None if system.cpu_busy_pct is None else system.cpu_busy_pct * cores
    memory_stressed = "memory" in mult
    rss = memory_stressed and not any(memory_demand(p, page_in_bytes) for p in processes)
    active = _active(processes, 100.0 * cores, busy, mult, rss, page_in_bytes)
    if mult.get("csw", 0.0) >= contended:  # contended only: a calm machine's idle switches are no one's
        _reaped_switches(active, system.csw, busy)
    totals = _totals(processes, active, memory_stressed, system.disk_bps)
    factors = _factors(totals, mult)
    charged = {}
    for use in active:
        charge = _charge(use, factors)
        if charge:  # else it held none of the stressed resources
            charged[use.proc.pid] = (use.proc, charge)
    _charge_parents(charged, processes)
    return charged


def _rogues(charged: dict[int, tuple[ProcessInfo, dict[str, float]]], mult: dict[str, float],
            processes: list[ProcessInfo], rules: PressureRules) -> list[ProcessScore]:
    """The top ``rogue_count`` charged processes, then those picked by state, highest first."""
    ranked = []  # (top charge, process, categories) of every process scoring > 0
    for proc, charge in charged.values():
        top = max(charge.values(), default=0.0)
        if top >= MIN_CHARGE:
            ranked.append((top, proc, categories_of(charge, mult, rules.category_ratio, rules.stress.elevated)))
    # Ranked on the charge before rounding: scores that round alike still order by who held more.
    rogues = {proc.pid: (top, proc, cats) for top, proc, cats in
              heapq.nlargest(rules.rogue_count, ranked, key=lambda r: r[0])}
    for proc, category in _by_state(processes, rules.selection):
        top, _, cats = rogues.get(proc.pid, (0.0, proc, set()))
        rogues[proc.pid] = (top, proc, cats | {category})
    out = sorted(rogues.values(), key=lambda r: -r[0])
    # A charged process (>= MIN_CHARGE) scores at least 1; one listed for its state alone, 0.
    return [_score(p, min(100, max(1, round(top))) if top >= MIN_CHARGE else 0, cats) for top, p, cats in out]


def score_pressure(snapshot: Snapshot, rules: PressureRules) -> tuple[int, dict[str, int], list[ProcessScore]]:
    """``(max_score, stress per resource, rogues)`` of one snapshot under the pressure model."""
    system = snapshot.system
    # machine_stress reads the processes' run delay only where cpu PSI is missing (and the kernel
    # accounts the delay): summing ~600 figures for nothing was a quarter of a calm sample's work.
    psi = system.psi_cpu
    wanted = (psi is None or psi.some is None) and system.run_delay_known is not False
    delay = run_delay_total(snapshot.processes) if wanted else None
    stress = machine_stress(system, snapshot.sentinel, delay, rules.stress)
    mult = multipliers(stress, rules.stress.elevated, stall_explained(system, rules.stress))
    rogues = _rogues(_charge_all(snapshot, mult, rules.page_in_bytes, rules.stress.elevated), mult, snapshot.processes, rules)
    # The tiers follow what processes can be charged for: every resource's stress, the stall
    # only through the contended resources that explain it (``multipliers``).
    max_score = round(max(mult.values(), default=0.0))
    return max_score, {r: round(v) for r, v in stress.items()}, rogues
