"""Why did the machine pause? A pure classification from the figures around the pause.

Input is a ``Figures`` record gathered from the live feed's SystemStats (the window just before the
pause), the collector's snapshot taken right after it (whose rates span the stall itself), the
stuck-thread capture and the worker's own suspend watch. Output is one label and the evidence: the
figures that decided it, the thresholds they were compared with, and the rule that fired.

Order of the rules, and why:
1. ``suspend-adjacent``: time asleep inside the gap, or a resume within 30 s of it. Resume stalls
   (devices waking, caches refilling) look like anything else, so they are named first.
2. ``memory``: memory pressure together with paging. Reclaim and page-ins also show up as io
   pressure and blocked tasks, so memory must win over io when both are present.
3. ``io``: io pressure with tasks stuck in uninterruptible sleep (or heavy iowait).
4. ``cpu``: the cores saturated (busy %, run queue per core, cpu PSI) or stolen by the hypervisor.
5. ``unknown``: nothing above its threshold — the evidence still lists every figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Iterable

from pmshared import messages as m

# Thresholds. PSI figures are percent of wall time stalled over the sampling interval.
SUSPEND_RECENT_S = 30.0  # a resume this close before the pause makes it suspend-adjacent
MEM_PSI_SOME = 10.0
MEM_PSI_FULL = 10.0  # full memory stall alone is enough: every task waited on reclaim
MEM_PAGEINS = 100.0  # major faults/s, whole machine
MEM_SWAP = 100.0  # pages/s swapped in + out
IO_PSI_SOME = 20.0
IO_PSI_FULL = 10.0
IO_STUCK = 1  # stuck (D) threads or procs_blocked
IO_IOWAIT = 30.0  # % of all cores
CPU_BUSY = 90.0  # % of all cores
CPU_RUNQ_PER_CORE = 2.0  # load1 / cpu_count
CPU_PSI_SOME = 50.0
CPU_STEAL = 20.0  # % of all cores taken by the hypervisor

THRESHOLDS: dict[str, float] = {
    "suspend_recent_s": SUSPEND_RECENT_S,
    "mem_psi_some": MEM_PSI_SOME,
    "mem_psi_full": MEM_PSI_FULL,
    "mem_pageins_per_s": MEM_PAGEINS,
    "mem_swap_pages_per_s": MEM_SWAP,
    "io_psi_some": IO_PSI_SOME,
    "io_psi_full": IO_PSI_FULL,
    "io_stuck": IO_STUCK,
    "io_iowait_pct": IO_IOWAIT,
    "cpu_busy_pct": CPU_BUSY,
    "cpu_runq_per_core": CPU_RUNQ_PER_CORE,
    "cpu_psi_some": CPU_PSI_SOME,
    "cpu_steal_pct": CPU_STEAL,
}


@dataclass(frozen=True)
class Figures:
    """The worst value of each figure around the pause; ``None`` = not known on this platform."""

    suspended_ms: float = 0.0
    last_resume_ago_s: float | None = None  # seconds from the last resume to the pause start
    cpu_count: int = 1
    cpu_busy_pct: float | None = None
    load1: float | None = None
    cpu_steal_pct: float | None = None
    cpu_iowait_pct: float | None = None
    psi_cpu_some: float | None = None
    psi_memory_some: float | None = None
    psi_memory_full: float | None = None
    psi_io_some: float | None = None
    psi_io_full: float | None = None
    procs_blocked: int | None = None
    stuck_threads: int | None = None
    pageins_per_s: float | None = None
    swapins_per_s: float | None = None
    swapouts_per_s: float | None = None
    samples: int = 0  # how many SystemStats went into these figures


Evidence = dict[str, float | int | str | bool | None]


def _ge(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def _add(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def classify(f: Figures) -> tuple[m.PauseCause, Evidence]:
    """Label the pause and say why. Pure: same figures, same answer."""
    evidence: Evidence = {name: getattr(f, name) for name in (fl.name for fl in fields(f))}
    runq = f.load1 / max(f.cpu_count, 1) if f.load1 is not None else None
    swap = _add(f.swapins_per_s, f.swapouts_per_s)
    stuck = max((v for v in (f.stuck_threads, f.procs_blocked) if v is not None), default=None)
    evidence.update({"runq_per_core": runq, "swap_pages_per_s": swap, "stuck": stuck})
    evidence.update({f"threshold_{k}": v for k, v in THRESHOLDS.items()})

    def decided(cause: m.PauseCause, rule: str) -> tuple[m.PauseCause, Evidence]:
        evidence["rule"] = rule
        return cause, evidence

    if f.suspended_ms > 0:
        return decided("suspend-adjacent", f"suspended_ms={f.suspended_ms:g} > 0")
    # Negative: the worker noticed the resume after the pause began (it was asleep too).
    if f.last_resume_ago_s is not None and abs(f.last_resume_ago_s) <= SUSPEND_RECENT_S:
        return decided(
            "suspend-adjacent",
            f"a resume {f.last_resume_ago_s:+.1f}s from the pause start (within {SUSPEND_RECENT_S:g}s)",
        )

    paging = _ge(f.pageins_per_s, MEM_PAGEINS) or _ge(swap, MEM_SWAP)
    if _ge(f.psi_memory_full, MEM_PSI_FULL):
        return decided("memory", f"psi_memory_full={f.psi_memory_full:g} >= {MEM_PSI_FULL:g}")
    if _ge(f.psi_memory_some, MEM_PSI_SOME) and paging:
        return decided(
            "memory",
            f"psi_memory_some={f.psi_memory_some:g} >= {MEM_PSI_SOME:g} with paging "
            f"(pageins/s={f.pageins_per_s}, swap pages/s={swap})",
        )

    io_pressure = _ge(f.psi_io_some, IO_PSI_SOME) or _ge(f.psi_io_full, IO_PSI_FULL)
    if io_pressure and _ge(stuck, IO_STUCK):
        return decided(
            "io",
            f"io pressure (some={f.psi_io_some}, full={f.psi_io_full}) with {stuck} stuck task(s)",
        )
    if _ge(f.cpu_iowait_pct, IO_IOWAIT) and _ge(stuck, IO_STUCK):
        return decided("io", f"iowait={f.cpu_iowait_pct:g}% with {stuck} stuck task(s)")

    if _ge(f.cpu_steal_pct, CPU_STEAL):
        return decided("cpu", f"steal={f.cpu_steal_pct:g}% >= {CPU_STEAL:g} (hypervisor took the cores)")
    if _ge(f.cpu_busy_pct, CPU_BUSY):
        return decided("cpu", f"cpu_busy={f.cpu_busy_pct:g}% >= {CPU_BUSY:g}")
    if _ge(runq, CPU_RUNQ_PER_CORE):
        return decided("cpu", f"load1/cpu_count={runq:.2f} >= {CPU_RUNQ_PER_CORE:g}")
    if _ge(f.psi_cpu_some, CPU_PSI_SOME):
        return decided("cpu", f"psi_cpu_some={f.psi_cpu_some:g} >= {CPU_PSI_SOME:g}")

    return decided("unknown", "no figure reached its threshold")


# --------------------------------------------------------------------------- gathering


def _worst(values: Iterable[float | int | None]) -> float | int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def gather(
    systems: list[m.SystemStats],
    *,
    suspended_ms: float = 0.0,
    last_resume_ago_s: float | None = None,
    stuck_threads: int | None = None,
) -> Figures:
    """Worst value of each figure over ``systems`` (the window before the pause + the one after)."""

    def worst(getter) -> float | int | None:  # type: ignore[no-untyped-def]
        return _worst(getter(s) for s in systems)

    def psi(s: m.SystemStats, which: str, kind: str) -> float | None:
        stall = getattr(s, f"psi_{which}")
        return getattr(stall, kind) if stall is not None else None

    return Figures(
        suspended_ms=suspended_ms,
        last_resume_ago_s=last_resume_ago_s,
        cpu_count=max((s.cpu_count for s in systems), default=1),
        cpu_busy_pct=worst(lambda s: s.cpu_busy_pct),
        load1=worst(lambda s: s.load1),
        cpu_steal_pct=worst(lambda s: s.cpu_steal_pct),
        cpu_iowait_pct=worst(lambda s: s.cpu_iowait_pct),
        psi_cpu_some=worst(lambda s: psi(s, "cpu", "some")),
        psi_memory_some=worst(lambda s: psi(s, "memory", "some")),
        psi_memory_full=worst(lambda s: psi(s, "memory", "full")),
        psi_io_some=worst(lambda s: psi(s, "io", "some")),
        psi_io_full=worst(lambda s: psi(s, "io", "full")),
        procs_blocked=worst(lambda s: s.procs_blocked),
        stuck_threads=stuck_threads,
        pageins_per_s=worst(lambda s: s.pageins),
        swapins_per_s=worst(lambda s: s.swapins),
        swapouts_per_s=worst(lambda s: s.swapouts),
        samples=len(systems),
    )


def figures_dict(f: Figures) -> dict[str, object]:
    return asdict(f)
