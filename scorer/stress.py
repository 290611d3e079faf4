"""The machine's stress per resource over one interval (the pressure model's first half).

Every signal is a figure of the interval just sampled (PSI from the ``total=`` counter deltas, busy
and iowait from /proc/stat deltas, rates per second) or an instantaneous count (run queue, blocked
tasks, memory in use); never a 1/5/15-minute average, which lags a load by minutes. Each signal
goes through a ramp with two anchors from the config: the value where the signal alone puts the
resource at the tiers' elevated threshold and the value where it puts it at critical. Below the
first anchor the ramp is linear from 0 (or from ``X_start``), so light work shows as a small
non-zero stress whose contributors can be named, while an idle machine stays near 0.

    stress(resource) = max over its signals of ramp(signal)
    stress(machine)  = max over resources

A figure the platform does not give (None) contributes nothing: a resource with no known signal
has stress 0 and is left out of the parts, so "unknown" is never shown as "calm".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from pmshared.config import Config, PressureModelConfig
from pmshared.messages import SentinelStats, SystemStats

# The resources, in the order the parts are reported.
RESOURCES = ("cpu", "memory", "io", "stall", "fork", "csw")


@dataclass(frozen=True)
class Ramp:
    """Signal value -> stress: 0 at ``start``, ``low`` at ``elevated``, ``high`` at ``critical``,
    the same slope beyond, capped at 100. ``low``/``high`` are the tiers' thresholds."""

    start: float
    elevated: float
    critical: float
    low: float
    high: float

    def __call__(self, value: float | None) -> float | None:
        if value is None or value != value:  # unknown, or NaN from a broken sender
            return None
        if value == math.inf:
            return 100.0
        if value <= self.start:
            return 0.0
        if value <= self.elevated:
            return self.low * (value - self.start) / (self.elevated - self.start)
        return min(100.0, self.low + (self.high - self.low) * (value - self.elevated) / (self.critical - self.elevated))


def _ramps(section: object, low: float, high: float) -> dict[str, Ramp]:
    """Every ``X_elevated``/``X_critical`` pair of a config section as ``{X: Ramp}``."""
    out = {}
    for name in type(section).__struct_fields__:
        if name.endswith("_elevated"):
            signal = name[: -len("_elevated")]
            out[signal] = Ramp(
                start=getattr(section, f"{signal}_start", 0.0),
                elevated=getattr(section, name),
                critical=getattr(section, f"{signal}_critical"),
                low=low,
                high=high,
            )
    return out


@dataclass(frozen=True)
class StressRules:
    """The config's anchors as ramps, built once at start."""

    cpu: dict[str, Ramp]
    memory: dict[str, Ramp]
    io: dict[str, Ramp]
    stall: dict[str, Ramp]
    fork: dict[str, Ramp]
    csw: dict[str, Ramp]
    own_running_tasks: int
    level_stress: dict[str, float]  # macOS memory pressure level -> stress
    elevated: float = 35.0  # the tiers' elevated threshold: a resource this stressed is contended

    @classmethod
    def from_config(cls, config: Config) -> StressRules:
        cfg: PressureModelConfig = config.scoring.pressure
        low, high = config.tiers.elevated_threshold, config.tiers.critical_threshold
        return cls(
            cpu=_ramps(cfg.cpu, low, high),
            memory=_ramps(cfg.memory, low, high),
            io=_ramps(cfg.io, low, high),
            stall=_ramps(cfg.stall, low, high),
            fork=_ramps(cfg.fork, low, high),
            csw=_ramps(cfg.csw, low, high),
            own_running_tasks=cfg.cpu.own_running_tasks,
            level_stress={"normal": 0.0, "warn": float(cfg.memory.level_warn),
                          "critical": float(cfg.memory.level_critical)},
            elevated=float(max(low, 1)),
        )


def _max_known(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _per(value: float | None, divisor: float) -> float | None:
    return None if value is None else value / divisor


def _sum_known(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def machine_stress(
    system: SystemStats, sentinel: SentinelStats | None, run_delay_ms: float | None, rules: StressRules
) -> dict[str, float]:
    """Stress 0..100 per resource with at least one known signal.

    ``run_delay_ms`` is the sum over processes of their run delay (ms per second), None when no
    process has the figure or the kernel does not account it."""
    cores = max(1, system.cpu_count)
    psi_cpu, psi_mem, psi_io = system.psi_cpu, system.psi_memory, system.psi_io
    c, m, i = rules.cpu, rules.memory, rules.io
    running = None if system.procs_running is None else max(0, system.procs_running - rules.own_running_tasks)
    used_pct = None
    if system.mem_total and system.mem_available is not None:
        used_pct = 100.0 * (1.0 - system.mem_available / system.mem_total)
    if system.run_delay_known is False:
        run_delay_ms = None
    if psi_cpu is not None and psi_cpu.some is not None:
        # PSI is the kernel's own sum of the same waits, per interval. Per-task run delay is
        # credited only when a starved task next gets a CPU, so after a storm it arrives in lumps
        # seconds later (measured: cpu stress 65 five seconds after a context-switch storm ended,
        # which reopened its event): it stands in only where PSI is missing.
        run_delay_ms = None
    parts = {
        "cpu": _max_known((
            c["busy_pct"](system.cpu_busy_pct),
            c["psi_some"](psi_cpu.some if psi_cpu else None),
            c["runnable_per_core"](_per(running, cores)),
            c["steal_pct"](system.cpu_steal_pct),
            c["run_delay_pct"](_per(run_delay_ms, 10.0 * cores)),  # ms/s -> % of the interval
        )),
        "memory": _max_known((
            m["psi_some"](psi_mem.some if psi_mem else None),
            m["psi_full"](psi_mem.full if psi_mem else None),
            m["paging_per_s"](_sum_known(system.pageins, system.swapins, system.swapouts)),
            m["used_pct"](used_pct),
            rules.level_stress.get(system.memory_pressure) if system.memory_pressure else None,
        )),
        "io": _max_known((
            i["psi_some"](psi_io.some if psi_io else None),
            i["psi_full"](psi_io.full if psi_io else None),
            i["blocked_per_core"](_per(system.procs_blocked, cores)),
            i["iowait_pct"](system.cpu_iowait_pct),
        )),
        "stall": rules.stall["late_pct"](sentinel.interval_late_pct if sentinel else None),
        "fork": rules.fork["forks_per_core"](_per(system.forks, cores)),
        "csw": rules.csw["per_core"](_per(system.csw, cores)),
    }
    return {name: value for name, value in parts.items() if value is not None}


def stall_explained(system: SystemStats, rules: StressRules) -> dict[str, float]:
    """Per resource with PSI, the most of a stall it can explain: the stall ramp at the share of
    the interval some task waited for it (PSI some). A late sentinel is a stall of everyone only
    if tasks were waiting for something: the collector stopped for 2 s (SIGSTOP, a debugger, a
    frozen cgroup) is late by the whole interval while PSI shows 3 % cpu waits, and a desktop's
    everyday 23 % busy cpu then explained two thirds of it (an event, naming whoever used the
    CPU). Busy loops starving everyone show cpu PSI near 100 %: they explain all of it. Where
    the kernel has no PSI the resource is not listed (its stress alone bounds its part)."""
    ramp = rules.stall["late_pct"]
    out = {}
    for name, psi in (("cpu", system.psi_cpu), ("memory", system.psi_memory), ("io", system.psi_io)):
        if psi is not None and psi.some is not None:
            out[name] = ramp(psi.some) or 0.0
    return out

