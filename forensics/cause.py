"""Why did the machine pause? A pure classification from the figures of the stall itself.

Input is a ``Figures`` record: the worst per-interval figure of the samples that cover the stall
(stall_window.py chooses them and estimates each figure over the stall), the stuck-thread capture
and the worker's own suspend watch. Output is one label and the evidence: every figure, the
interval it covers (``<figure>_over``, seconds relative to the pause start), the thresholds
([forensics.cause] in the config) and the rule that fired. No 1/5/15-minute average takes part:
a load that ended seconds before the pause must not explain it.

The rules, and why:
1. ``suspend-adjacent``: time asleep inside the gap, or a resume within ``suspend_recent_s`` of
   it. Resume stalls (devices waking, caches refilling) look like anything else, so they go first.
2. ``memory``: a full memory stall, or memory pressure together with paging. Reclaim and page-ins
   also show up as io pressure and blocked tasks, so memory must win over io when both are there.
3. ``io``: io pressure (or heavy iowait) with tasks stuck in uninterruptible sleep.
4. ``cpu``: the cores stolen by the hypervisor, or tasks waiting for a core (cpu PSI some).
   Where there is no PSI: cores ``cpu_busy_pct`` busy, or a run queue of ``cpu_runq_per_core``
   per core on cores at least ``cpu_runq_min_busy_pct`` busy. With PSI, busy cores and the run
   queue do not decide: a saturated machine where nobody waits is at work, not stalled, and
   procs_running is an instant (right after a freeze every thawed task is runnable at once).
   When several of memory/io/cpu qualify at once, the one whose PSI some is largest wins (memory
   still beats io), and the rule names the others.
5. ``unknown``: nothing reached its threshold (a process or the machine frozen by something that
   leaves no trace in these figures: SIGSTOP, the cgroup freezer, a hypervisor pause without
   steal accounting). The evidence still lists every figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import msgspec

from pmshared import messages as m
from pmshared.config import CauseConfig

from forensics import stall_window
from forensics.stall_window import Interval

DEFAULTS = CauseConfig()


@dataclass(frozen=True)
class Figures:
    """The worst value of each figure over the stall; ``None`` = not known on this platform."""

    suspended_ms: float = 0.0
    last_resume_ago_s: float | None = None  # seconds from the last resume to the pause start
    cpu_count: int = 1
    cpu_busy_pct: float | None = None
    cpu_steal_pct: float | None = None
    cpu_iowait_pct: float | None = None
    runq_per_core: float | None = None  # procs_running / cores, at a sample's end
    psi_cpu_some: float | None = None
    psi_memory_some: float | None = None
    psi_memory_full: float | None = None
    psi_io_some: float | None = None
    psi_io_full: float | None = None
    procs_blocked: int | None = None  # tasks in D state, at a sample's end
    stuck_threads: int | None = None
    pageins_per_s: float | None = None
    swapins_per_s: float | None = None
    swapouts_per_s: float | None = None
    samples: int = 0  # how many samples cover the stall
    # figure -> the interval it covers, as text relative to the pause start (evidence only)
    over: dict[str, str] = field(default_factory=dict)

    @property
    def swap_pages_per_s(self) -> float | None:
        return _add(self.swapins_per_s, self.swapouts_per_s)

    @property
    def stuck(self) -> int | None:
        """Tasks in D state: the stuck-thread capture's count or procs_blocked, the larger."""
        return max((v for v in (self.stuck_threads, self.procs_blocked) if v is not None), default=None)


def _ge(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def _add(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _evidence(f: Figures, t: CauseConfig) -> m.Evidence:
    """Every figure, the interval each covers and the thresholds (a figure or threshold without a
    field of its own in m.Evidence is a TypeError here: tests build every kind)."""
    return m.Evidence(
        **{fl.name: getattr(f, fl.name) for fl in fields(f) if fl.name != "over"},
        **{f"{name}_over": text for name, text in f.over.items()},
        swap_pages_per_s=f.swap_pages_per_s,
        stuck=f.stuck,
        **{f"threshold_{k}": getattr(t, k) for k in t.__struct_fields__},
    )


Verdict = tuple[m.PauseCause, str, float]  # cause, rule, strength (PSI some; -1 when unknown)


def _memory(f: Figures, t: CauseConfig, swap: float | None) -> Verdict | None:
    strength = f.psi_memory_some if f.psi_memory_some is not None else -1.0
    paging = _ge(f.pageins_per_s, t.mem_pageins_per_s) or _ge(swap, t.mem_swap_pages_per_s)
    if _ge(f.psi_memory_full, t.mem_psi_full_pct):
        return "memory", f"psi_memory_full={f.psi_memory_full:.1f} >= {t.mem_psi_full_pct:g}", strength
    if _ge(f.psi_memory_some, t.mem_psi_some_pct) and paging:
        return "memory", (
            f"psi_memory_some={f.psi_memory_some:.1f} >= {t.mem_psi_some_pct:g} with paging "
            f"(pageins/s={f.pageins_per_s}, swap pages/s={swap})"
        ), strength
    return None


def _io(f: Figures, t: CauseConfig, stuck: float | None) -> Verdict | None:
    strength = f.psi_io_some if f.psi_io_some is not None else -1.0
    if not _ge(stuck, t.io_stuck):
        return None
    if _ge(f.psi_io_some, t.io_psi_some_pct) or _ge(f.psi_io_full, t.io_psi_full_pct):
        return "io", f"io pressure (some={f.psi_io_some}, full={f.psi_io_full}) with {stuck:g} stuck task(s)", strength
    if _ge(f.cpu_iowait_pct, t.io_iowait_pct):
        return "io", f"iowait={f.cpu_iowait_pct:.1f}% with {stuck:g} stuck task(s)", strength
    return None


def _cpu(f: Figures, t: CauseConfig) -> Verdict | None:
    """Contention is waiting. Where PSI exists it measures the waiting itself; busy cores or a
    run queue without it are a machine at work, not a stall (another engineer's build at 100 %
    with nobody waiting, or every frozen task runnable at once on thaw). Busy % and the run queue
    decide only where there is no PSI (macOS, kernels before 4.20)."""
    strength = f.psi_cpu_some if f.psi_cpu_some is not None else -1.0
    if _ge(f.cpu_steal_pct, t.cpu_steal_pct):
        return "cpu", f"steal={f.cpu_steal_pct:.1f}% >= {t.cpu_steal_pct:g} (hypervisor took the cores)", max(
            strength, f.cpu_steal_pct or 0.0)
    if f.psi_cpu_some is not None:
        if f.psi_cpu_some >= t.cpu_psi_some_pct:
            busy = f" (cores {f.cpu_busy_pct:.1f}% busy)" if f.cpu_busy_pct is not None else ""
            return "cpu", f"psi_cpu_some={f.psi_cpu_some:.1f} >= {t.cpu_psi_some_pct:g}{busy}", strength
        return None
    if _ge(f.cpu_busy_pct, t.cpu_busy_pct):
        return "cpu", f"cpu_busy={f.cpu_busy_pct:.1f}% >= {t.cpu_busy_pct:g} (no PSI here)", strength
    if _ge(f.runq_per_core, t.cpu_runq_per_core) and _ge(f.cpu_busy_pct, t.cpu_runq_min_busy_pct):
        return "cpu", (
            f"procs_running/cpu_count={f.runq_per_core:.2f} >= {t.cpu_runq_per_core:g} "
            f"on cores {f.cpu_busy_pct:.1f}% busy (no PSI here)"
        ), strength
    return None


def classify(f: Figures, t: CauseConfig = DEFAULTS) -> tuple[m.PauseCause, m.Evidence]:
    """Label the pause and say why. Pure: same figures and thresholds, same answer."""
    evidence = _evidence(f, t)
    swap, stuck = f.swap_pages_per_s, f.stuck

    def decided(cause: m.PauseCause, rule: str) -> tuple[m.PauseCause, m.Evidence]:
        return cause, msgspec.structs.replace(evidence, rule=rule)

    if f.suspended_ms > 0:
        return decided("suspend-adjacent", f"suspended_ms={f.suspended_ms:g} > 0")
    # Negative: the worker noticed the resume after the pause began (it was asleep too).
    if f.last_resume_ago_s is not None and abs(f.last_resume_ago_s) <= t.suspend_recent_s:
        return decided(
            "suspend-adjacent",
            f"a resume {f.last_resume_ago_s:+.1f}s from the pause start (within {t.suspend_recent_s:g}s)",
        )
    memory, io, cpu = _memory(f, t, swap), _io(f, t, stuck), _cpu(f, t)
    if memory is not None:
        io = None  # reclaim and page-ins show up as io pressure and blocked tasks too
    candidates = [v for v in (memory, io, cpu) if v is not None]
    if not candidates:
        return decided("unknown", "no figure reached its threshold")
    # Several resources contended at once (a busy shared machine): the one tasks waited on for
    # the largest share of the stall; in that order where PSI does not say.
    cause, rule, _ = max(candidates, key=lambda v: v[2])
    others = [f"{c} ({r})" for c, r, _ in candidates if c != cause]
    return decided(cause, rule + (f"; also {'; '.join(others)}" if others else ""))


# --------------------------------------------------------------------------- gathering


def gather(
    stalls: list[tuple[float, float]],
    intervals: list[Interval],
    *,
    fallback: Sequence[Interval] = (),
    thresholds: CauseConfig = DEFAULTS,
    suspended_ms: float = 0.0,
    last_resume_ago_s: float | None = None,
    stuck_threads: int | None = None,
) -> Figures:
    """The worst of each figure over the samples covering each stall [start, end] (a capture
    session may hold several coalesced pauses). ``fallback`` intervals (forensics' own /proc
    readings, which also span its captures) count only when no sample covers a stall."""
    worst: dict[str, stall_window.Reading] = {}
    used: set[int] = set()
    for stall in stalls:
        pool = intervals if stall_window.covering(intervals, *stall) else list(fallback)
        for iv in stall_window.covering(pool, *stall):
            used.add(id(iv))
        for name, r in stall_window.worst_readings(pool, stall, thresholds.stall_share_min).items():
            if name not in worst or r.value > worst[name].value:
                worst[name] = r
    origin = min((s for s, _ in stalls), default=0.0)
    values = {name: int(r.value) if name == "procs_blocked" else round(r.value, 2) for name, r in worst.items()}
    cpu_counts = [r.sample.system.cpu_count for r in worst.values()]
    return Figures(
        suspended_ms=suspended_ms,
        last_resume_ago_s=last_resume_ago_s,
        cpu_count=max(cpu_counts, default=1),
        stuck_threads=stuck_threads,
        samples=len(used),
        over={name: stall_window.describe(r, origin) for name, r in worst.items()},
        **values,  # type: ignore[arg-type]
    )


def figures_dict(f: Figures) -> dict[str, object]:
    return asdict(f)
