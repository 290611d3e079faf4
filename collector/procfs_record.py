"""The Linux backend's record builder, pure: counters before and now, over an interval, become
one process's ``ProcessInfo`` (rates, and the caps at what the hardware allows).

Nothing here reads /proc or remembers anything: the backend passes what it read and what it
kept from the last read, and keeps the new counters itself. Tested on scripted figures.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from pmshared.messages import ProcessInfo

from .procfs_parse import STATE_NAMES, StatFields

_replace = msgspec.structs.replace


class Counts(NamedTuple):
    """Cumulative counters read when a process ran (rates are their deltas over the interval)."""

    csw: int | None = None
    syscalls: int | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None
    delay_ns: int | None = None  # schedstat run delay (of all threads, where they are summed)


class Rates(NamedTuple):
    csw: float | None
    sysbsd: float | None
    read_bps: float | None
    write_bps: float | None
    run_delay: float | None  # ms/s


class Before(NamedTuple):
    """Stat's cumulative figures as last read, for the deltas of a new stat line."""

    child_ticks: int  # reaped children's utime+stime, clock ticks
    majflt: int


def rate(now: int | None, before: int | None, window: float | None) -> float | None:
    """Per second over ``window``; None when either count or the window is unknown."""
    if now is None or before is None or not window or window <= 0:
        return None
    return max(now - before, 0) / window


def _zero(v: object, dt: float | None) -> float | None:
    """0.0 for a figure that is known (a previous count exists) over a real interval."""
    return 0.0 if dt and v is not None else None


def still_rates(old: Counts, dt: float | None) -> Rates:
    """Counters not read (they cannot have moved): zero where they are known."""
    return Rates(
        _zero(old.csw, dt), _zero(old.syscalls, dt), _zero(old.read_bytes, dt),
        _zero(old.write_bytes, dt), _zero(old.delay_ns, dt),
    )  # fmt: skip


def counter_rates(old: Counts, new: Counts, window: float | None, threads: int) -> Rates:
    """Rates of the counters over ``window``; run delay in ms per second, at most every thread
    waiting all the time (the kernel credits a wait when the task gets a CPU: a task starved
    longer than the interval would otherwise read more)."""
    delay = rate(new.delay_ns, old.delay_ns, window)
    if delay is not None:
        delay = min(delay / 1e6, 1000.0 * max(threads, 1))
    return Rates(
        rate(new.csw, old.csw, window),
        rate(new.syscalls, old.syscalls, window),
        rate(new.read_bytes, old.read_bytes, window),
        rate(new.write_bytes, old.write_bytes, window),
        delay,
    )


def cpu_percent(used: float, dt: float, threads: int, ncpu: int) -> float:
    """% of one core for ``used`` seconds of CPU over ``dt``, never above what ``threads`` could
    use on ``ncpu`` cores (a 10 ms clock tick over 5 ms would read 200 %)."""
    return min(max(used, 0.0) * 100.0 / dt, 100.0 * min(threads, ncpu))


def children_percent(ticks: int, clk_tck: int, dt: float, ncpu: int) -> float:
    """Reaped children's CPU (``ticks`` more of it) in % of one core: it arrives all at once
    when they are reaped, so it is capped at every core for the interval."""
    return min(max(ticks, 0) * 100.0 / (clk_tck * dt), 100.0 * ncpu)


def growth_rate(before: int, t: float, total: int, now: float, dt: float | None) -> float | None:
    """Bytes/s change of resident + swapped memory from ``before`` at ``t`` to ``total``."""
    if not dt or now <= t:
        return None
    return (total - before) / (now - t)


def settled(info: ProcessInfo, c: Counts) -> ProcessInfo:
    """Nothing changed since the last sample: the same process with zero rates."""
    return _replace(
        info,
        cpu=0.0,
        pageins=0.0,
        csw=None if c.csw is None else 0.0,
        sysbsd=None if c.syscalls is None else 0.0,
        cpu_children=0.0,
        run_delay=None if c.delay_ns is None else 0.0,
        read_bps=None if c.read_bytes is None else 0.0,
        write_bps=None if c.write_bytes is None else 0.0,
        mem_growth=0.0,
    )


def is_idle(i: ProcessInfo) -> bool:
    """Every rate zero (or unknown): settling it again would change nothing."""
    return (
        i.cpu == 0.0 and not i.pageins and not i.csw and not i.sysbsd and not i.cpu_children
        and not i.run_delay and not i.read_bps and not i.write_bps and not i.mem_growth
    )  # fmt: skip


def same_stat_record(
    info: ProcessInfo, cpu: float | None, r: Rates, dt: float | None, uid: int | None,
    swap: int | None, growth: float | None, cgroup: str | None,
) -> ProcessInfo:  # fmt: skip
    """Stat unchanged: same state, rss, parent, faults and reaped children; new rates."""
    return _replace(
        info,
        cpu=cpu,
        pageins=0.0 if dt else None,
        csw=r.csw,
        sysbsd=r.sysbsd,
        cmprs=swap,
        uid=uid,
        cpu_children=0.0 if dt else None,
        run_delay=r.run_delay,
        read_bps=r.read_bps,
        write_bps=r.write_bps,
        mem_growth=growth,
        cgroup=cgroup,
    )


def stat_record(
    pid: int, st: StatFields, before: Before, command: str, cpu: float | None, r: Rates,
    dt: float | None, clk_tck: int, ncpu: int, mem: int, uid: int | None, swap: int | None,
    growth: float | None, cgroup: str | None,
) -> ProcessInfo:  # fmt: skip
    """A new stat line: the process's state and figures now, deltas over ``dt``."""
    if dt:
        children = children_percent(st.child_ticks - before.child_ticks, clk_tck, dt, ncpu)
        pageins = max(st.majflt - before.majflt, 0) / dt
    else:
        children = pageins = None
    return ProcessInfo(
        pid=pid,
        ppid=st.ppid,
        command=command,
        state=STATE_NAMES.get(st.state, "unknown"),
        cpu=cpu,
        mem=mem,
        cmprs=swap,
        threads=st.threads,
        csw=r.csw,
        sysbsd=r.sysbsd,
        pageins=pageins,
        uid=uid,
        cpu_children=children,
        run_delay=r.run_delay,
        read_bps=r.read_bps,
        write_bps=r.write_bps,
        mem_growth=growth,
        cgroup=cgroup,
    )


# Samples a reaped child's seen figures wait for its parent's to show the reap (the reap can fall
# between two reads of one pass), then are dropped: a parent's figures are never held down longer.
# Not a config key: it measures nothing about the machine or the model, only this collector's read
# order (the kernel updates cutime before the child's /proc entry goes, so the reap shows by the
# next pass that reads the parent; a parent that reaps ran, so it is read; 3 leaves slack for a
# pass cut short by an error). A user has no reason to tune it, and no value changes a score
# except by leaving a seen child's CPU charged twice (shorter) or holding a parent down (longer).
REAPED_CREDIT_SAMPLES = 3


class Seen(NamedTuple):
    """What a process was seen to use over its life, as last read: what its parent's counters
    grow by when it reaps it (the kernel adds a child's CPU to cutime/cstime, and its storage
    bytes and read/write calls to the parent's /proc/PID/io, at the reap)."""

    ticks: float = 0.0  # own + reaped children's CPU, clock ticks
    read_bytes: float = 0.0
    write_bytes: float = 0.0
    syscalls: float = 0.0


def seen_of(ticks: int, child_ticks: int, c: Counts) -> Seen:
    return Seen(ticks + child_ticks, c.read_bytes or 0, c.write_bytes or 0, c.syscalls or 0)


def add_seen(a: Seen, b: Seen) -> Seen:
    return Seen(*(x + y for x, y in zip(a, b)))


def _take(rate: float | None, seen: float, per_unit: float) -> tuple[float | None, float]:
    """``rate`` less ``seen`` units spread over the interval (``per_unit``: rate of one unit);
    and what is left of ``seen``."""
    if not rate or seen <= 0 or per_unit <= 0:
        return rate, seen
    shown = rate / per_unit
    used = min(seen, shown)
    return (shown - used) * per_unit, seen - used


def without_seen_children(info: ProcessInfo, seen: Seen, clk_tck: int, dt: float | None) -> tuple[ProcessInfo, Seen]:
    """``info`` with what this collector had already seen its reaped children use taken out of
    its reaped-children CPU and its io rates; and what is left of ``seen`` (a reap not shown yet).

    The kernel adds a child's whole lifetime to the parent at once when the parent reaps it: a
    worker seen at full speed for ten seconds lands on its parent as ten seconds of CPU in one
    interval (it charged stress-ng, a zombie by then, with every core after its workers had
    stopped), and the gigabytes an io load wrote as the reaper's own writes in that interval.
    What the children used since their last sample (and children never sampled: a fork storm's)
    is what remains."""
    if not dt or dt <= 0:
        return info, seen
    children, ticks = _take(info.cpu_children, seen.ticks, 100.0 / (clk_tck * dt))
    read, read_left = _take(info.read_bps, seen.read_bytes, 1.0 / dt)
    write, write_left = _take(info.write_bps, seen.write_bytes, 1.0 / dt)
    calls, calls_left = _take(info.sysbsd, seen.syscalls, 1.0 / dt)
    left = Seen(ticks, read_left, write_left, calls_left)
    if left == seen:
        return info, seen
    return _replace(info, cpu_children=children, read_bps=read, write_bps=write, sysbsd=calls), left
