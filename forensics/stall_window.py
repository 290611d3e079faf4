"""Which samples cover a pause, and what each figure was over the stall. Pure: no clock, no I/O.

A snapshot's SystemStats are per-interval figures: a snapshot taken at ``timestamp`` covers
[timestamp - elapsed_ms, timestamp]. The cause of a pause [start, end] is read from the samples
whose interval overlaps the stall, plus the first one ending after it (usually the snapshot the
collector took right after the pause, sent with it as ``Pause.system``). Never from the 1/5/15
minute load averages: they remember loads that ended long before.

Three kinds of figure:
- shares of the interval (cpu busy/iowait/steal %, PSI some/full %) and rates (page-ins/s,
  swap pages/s). A sample longer than the stall mixes the stall with ordinary time before it, so
  when the stall fills at least ``stall_share_min`` of the interval the figure is also estimated
  over the stall alone: the part of the interval outside the stall is taken at the rate of the
  sample just before it, the rest is the stall's. (Example: a 0.95 s stall at 100 % busy inside a
  1.5 s sample that reads 66 %, after a sample at 7 %: (66 x 1.5 - 7 x 0.55) / 0.95 = 100 %.)
- instants (procs_running per core, procs_blocked): what /proc/stat said when the sample was
  taken, i.e. at the interval's end.
Each reading keeps the interval it covers; the evidence prints them relative to the pause start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from pmshared import messages as m

SAME_SNAPSHOT_S = 0.1  # a live sample ending this close before the Pause was sent is its snapshot
ADJACENT_S = 0.25  # a sample ending this close to another's start is the one just before it


@dataclass(frozen=True)
class Interval:
    start: float | None  # wall clock; None when nothing says where the interval began
    end: float
    system: m.SystemStats
    source: str  # "live" (ring buffer), "pause" (the snapshot sent with the pause), "proc"


@dataclass(frozen=True)
class Reading:
    value: float
    start: float | None  # the time the value describes (an instant: start == end)
    end: float
    how: str  # "interval", "stall estimate" or "instant"
    sample: Interval


def _psi(which: str, kind: str) -> Callable[[m.SystemStats], float | None]:
    def get(s: m.SystemStats) -> float | None:
        stall = getattr(s, f"psi_{which}")
        return getattr(stall, kind) if stall is not None else None

    return get


# Percent of the interval (0..100), then per-second rates, then instants.
SHARES: dict[str, Callable[[m.SystemStats], float | None]] = {
    "cpu_busy_pct": lambda s: s.cpu_busy_pct,
    "cpu_iowait_pct": lambda s: s.cpu_iowait_pct,
    "cpu_steal_pct": lambda s: s.cpu_steal_pct,
    "psi_cpu_some": _psi("cpu", "some"),
    "psi_memory_some": _psi("memory", "some"),
    "psi_memory_full": _psi("memory", "full"),
    "psi_io_some": _psi("io", "some"),
    "psi_io_full": _psi("io", "full"),
}
RATES: dict[str, Callable[[m.SystemStats], float | None]] = {
    "pageins_per_s": lambda s: s.pageins,
    "swapins_per_s": lambda s: s.swapins,
    "swapouts_per_s": lambda s: s.swapouts,
}
INSTANTS: dict[str, Callable[[m.SystemStats], float | None]] = {
    # /proc/stat procs_running counts the reader itself: an idle machine reads 1.
    "runq_per_core": lambda s: s.procs_running / max(s.cpu_count, 1) if s.procs_running is not None else None,
    "procs_blocked": lambda s: s.procs_blocked,
}
FIGURES = (*SHARES, *RATES, *INSTANTS)


def live_intervals(entries: list[m.LiveSample]) -> list[Interval]:
    out = []
    for e in entries:
        s = e.samples
        if s.system is not None:
            start = s.timestamp - s.elapsed_ms / 1000.0 if s.elapsed_ms > 0 else None
            out.append(Interval(start, s.timestamp, s.system, "live"))
    return sorted(out, key=lambda iv: iv.end)


def pause_interval(pause: m.Pause, live: list[Interval]) -> Interval | None:
    """The interval of the snapshot sent with ``pause``. The same snapshot also reaches the ring
    through the scorer (same SystemStats, ending just before the Pause was sent): its own
    elapsed time then says where it began. Otherwise it began at the collector's previous sample."""
    if pause.system is None:
        return None
    for iv in live:
        if iv.system == pause.system and iv.end >= pause.start:
            return replace(iv, source="pause")
    earlier = [iv.end for iv in live if iv.end < pause.sent_at - SAME_SNAPSHOT_S]
    return Interval(max(earlier) if earlier else None, pause.sent_at, pause.system, "pause")


def covering(intervals: list[Interval], start: float, end: float) -> list[Interval]:
    """The intervals overlapping [start, end], and the first one ending after ``end``."""
    chosen = [iv for iv in intervals if iv.end > start and (iv.start is None or iv.start < end)]
    after = [iv for iv in intervals if iv.end >= end]
    if after:
        first = min(after, key=lambda iv: iv.end)
        if first not in chosen:
            chosen.append(first)
    return sorted(chosen, key=lambda iv: iv.end)


def previous(intervals: list[Interval], iv: Interval) -> Interval | None:
    """The sample that ended where ``iv`` began (the rate just before it)."""
    if iv.start is None:
        return None
    near = [p for p in intervals if p is not iv and abs(p.end - iv.start) <= ADJACENT_S]
    return max(near, key=lambda p: p.end) if near else None


def readings(
    iv: Interval, stall: tuple[float, float], before: Interval | None, share_min: float
) -> dict[str, Reading]:
    """Every known figure of ``iv``, estimated over the stall where that is meaningful."""
    out: dict[str, Reading] = {}
    overlap = None
    if iv.start is not None:
        length = iv.end - iv.start
        inside = min(iv.end, stall[1]) - max(iv.start, stall[0])
        if length > 0 and 0 < inside < length and inside / length >= share_min and before is not None:
            overlap = (inside, length)
    for name, get in (*SHARES.items(), *RATES.items()):
        value = get(iv.system)
        if value is None:
            continue
        base = get(before.system) if before is not None and overlap else None
        if overlap and base is not None:
            inside, length = overlap
            estimate = max(0.0, (value * length - base * (length - inside)) / inside)
            if name in SHARES:
                estimate = min(estimate, 100.0)
            out[name] = Reading(
                estimate, max(iv.start or stall[0], stall[0]), min(iv.end, stall[1]), "stall estimate", iv
            )
        else:
            out[name] = Reading(float(value), iv.start, iv.end, "interval", iv)
    for name, get in INSTANTS.items():
        value = get(iv.system)
        if value is not None:
            out[name] = Reading(float(value), iv.end, iv.end, "instant", iv)
    return out


def worst_readings(
    intervals: list[Interval], stall: tuple[float, float], share_min: float
) -> dict[str, Reading]:
    """The worst reading of each figure over the intervals covering ``stall``."""
    worst: dict[str, Reading] = {}
    for iv in covering(intervals, *stall):
        for name, r in readings(iv, stall, previous(intervals, iv), share_min).items():
            if name not in worst or r.value > worst[name].value:
                worst[name] = r
    return worst


def describe(r: Reading, origin: float) -> str:
    """'+0.00..+0.95 s (stall estimate; sample -0.62..+1.01 s pause)' relative to ``origin``."""

    def rel(t: float | None) -> str:
        return "?" if t is None else f"{t - origin:+.2f}"

    sample = f"{rel(r.sample.start)}..{rel(r.sample.end)} s {r.sample.source}"
    if r.how == "instant":
        return f"at {rel(r.end)} s (instant, {r.sample.source} sample)"
    if r.how == "interval":
        return f"{sample} (whole sample)"
    return f"{rel(r.start)}..{rel(r.end)} s (stall estimate; sample {sample})"
