"""Synthetic flight-recorder data written through the recorder's own write path (issue 19).

    python bench/flight_gen.py DB --days 7 [--procs 600] [--end EPOCH]

``simulate(seconds, procs)`` plays a machine of ``procs`` processes second by second (a few busy
ones whose load wanders, a few that come and go, the rest idle) and yields the
``ProcessSamples`` the scorer would send: ten scored rogues, the busiest few by cpu, memory, io and
page-ins (scorer.flight_pick), the whole table once a minute, system figures, sentinel lateness.
``write(db, start, seconds)`` turns them into tiering's ``FlightSample`` records and stores them
with the recorder's ``BatchWriter`` and ``storage.apply``, batch by batch as the recorder does.

Days of data: simulating each second of a week is slow (~600 processes a second), so ``write``
simulates ``distinct_s`` seconds (10 minutes by default) and replays them with fresh timestamps;
each replayed minute is still compressed on its own, so the bytes per day are those of the
simulated minutes (bench/flight_size.py measures them on an hour of distinct seconds).
Also used by h-replay's ``replay --once`` benchmark: ``from bench.flight_gen import write``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pmshared import messages as m  # noqa: E402
from pmshared.flight_codec import flight_fields  # noqa: E402
from pmshared import storage  # noqa: E402
from pmshared.codec import Stamper  # noqa: E402
from recorder.writer import BatchWriter  # noqa: E402
from scorer.flight_pick import busiest, table_due  # noqa: E402

NAMES = ["chrome", "firefox", "python3", "node", "java", "postgres", "nginx", "sshd", "bash", "zsh",
         "systemd-journald", "dockerd", "containerd-shim", "kworker/0:1-events", "Xorg", "gnome-shell",
         "pulseaudio", "code", "slack", "rustc", "cc1plus", "make", "git", "rsync", "cron", "snapd"]
BUSY_SHARE = 0.02  # 12 of 600 processes busy all the time (a loaded server, not an idle desktop)
UNITS = ["user@1000.service", "session-2.scope", "docker-3f2a.scope", "system.slice", "nginx.service", None]


class _Proc:
    __slots__ = ("pid", "ppid", "command", "cgroup", "busy", "cpu", "mem", "io", "faults", "threads")

    def __init__(self, rng: random.Random, pid: int) -> None:
        self.pid = pid
        self.ppid = rng.choice((1, 2, pid // 2 or 1))
        name = rng.choice(NAMES)
        self.command = f"{name} --worker={rng.randrange(100)}" if rng.random() < 0.5 else name
        self.cgroup = rng.choice(UNITS)
        self.busy = rng.random() < BUSY_SHARE
        self.cpu = rng.uniform(5, 90) if self.busy else 0.0
        self.mem = rng.randrange(1 << 20, 2 << 30)
        self.io = 0.0
        self.faults = 0.0
        self.threads = rng.choice((1, 1, 2, 4, 8, 32))

    def step(self, rng: random.Random) -> m.ProcessInfo:
        # Like /proc on a real machine: most processes sleep through most seconds (every delta 0),
        # a few wake briefly, the busy ones have noisy figures in every digit.
        awake = self.busy or rng.random() < 0.1
        if self.busy:
            self.cpu = min(400.0, max(0.0, self.cpu + rng.gauss(0, 8)))
        else:
            self.cpu = rng.uniform(0, 2) if awake else 0.0
        growth = rng.gauss(0, 1 << 16) if awake and rng.random() < 0.3 else 0.0
        self.mem = max(1 << 20, self.mem + int(growth))
        self.io = rng.uniform(0, 5e6) if awake and rng.random() < 0.2 else 0.0
        self.faults = rng.uniform(0, 50) if awake and rng.random() < 0.05 else 0.0
        return m.ProcessInfo(
            pid=self.pid, ppid=self.ppid, command=self.command, state="running" if self.cpu > 20 else "sleeping",
            cpu=self.cpu, mem=self.mem, cmprs=0, threads=self.threads,
            csw=rng.uniform(0, 200) if awake else 0.0, sysbsd=rng.uniform(0, 900) if awake else 0.0,
            pageins=self.faults, uid=1000, cpu_children=0.0, run_delay=rng.uniform(0, 3) if awake else 0.0,
            read_bps=self.io, write_bps=rng.uniform(0, 1e5) if self.io else 0.0, mem_growth=growth,
            cgroup=self.cgroup)


def _rogue(p: m.ProcessInfo, score: int) -> m.ProcessScore:
    return m.ProcessScore(
        pid=p.pid, command=p.command, cpu=p.cpu, state=p.state, mem=p.mem, cmprs=p.cmprs, pageins=p.pageins,
        csw=p.csw, sysbsd=p.sysbsd, threads=p.threads, score=score, categories=["cpu"], ppid=p.ppid,
        cpu_children=p.cpu_children, run_delay=p.run_delay, io_bps=(p.read_bps or 0) + (p.write_bps or 0),
        mem_growth=p.mem_growth, cgroup=p.cgroup)


def simulate(seconds: int, procs: int = 600, *, start: float = 1_700_000_000.0, seed: int = 19,
             rogues: int = 10) -> Iterator[m.ProcessSamples]:
    """``seconds`` scored samples of a simulated machine, one a second from ``start``."""
    rng = random.Random(seed)
    population = [_Proc(rng, pid) for pid in range(100, 100 + procs)]
    next_pid = 100 + procs
    stamp = Stamper("scorer", "scorer-synthetic")
    for i in range(seconds):
        if rng.random() < 0.2:  # a process exits and another starts
            population[rng.randrange(len(population))] = _Proc(rng, next_pid)
            next_pid += 1
        table = [p.step(rng) for p in population]
        ranked = sorted(table, key=lambda p: -(p.cpu or 0))[:rogues]
        scored = [_rogue(p, min(100, int(p.cpu or 0) // 2)) for p in ranked if (p.cpu or 0) > 1]
        busy = sum(p.cpu or 0 for p in table)
        yield stamp(
            m.ProcessSamples, timestamp=start + i + rng.uniform(0, 0.004), elapsed_ms=1000 + rng.uniform(-2, 2),
            process_count=len(table), max_score=max((r.score for r in scored), default=0), rogues=scored,
            snapshot_seq=i + 1, model="pressure", stress={"cpu": min(100, int(busy / 8)), "memory": 0, "io": 0},
            system=m.SystemStats(
                cpu_count=8, load1=busy / 100, load5=busy / 110, load15=busy / 120, procs_running=rng.randrange(1, 9),
                procs_blocked=rng.choice((0, 0, 0, 1)), cpu_busy_pct=min(100.0, busy / 8), cpu_iowait_pct=rng.uniform(0, 2),
                cpu_steal_pct=0.0, mem_total=16 << 30, mem_available=rng.randrange(4 << 30, 8 << 30), swap_used=0,
                pageins=rng.uniform(0, 5), swapins=0.0, swapouts=0.0,
                psi_cpu=m.PressureStall(some=rng.uniform(0, 10), full=None),
                psi_memory=m.PressureStall(some=0.0, full=0.0), psi_io=m.PressureStall(some=rng.uniform(0, 1), full=0.0),
                forks=rng.uniform(0, 20), csw=rng.uniform(5000, 20000), run_delay_known=True),
            sentinel=m.SentinelStats(tick_ms=50.0, window_s=60.0, ticks=1200, p50_ms=rng.uniform(0.05, 0.2),
                                     p99_ms=rng.uniform(0.5, 3), max_ms=rng.uniform(1, 10), interval_late_pct=0.1,
                                     interval_max_ms=rng.uniform(0.2, 5)),
            top=busiest(table, {r.pid for r in scored}),
            table=table if table_due(i + 1, 1.0) else None,
        )


def flight_records(samples: Iterator[m.ProcessSamples], incarnation: str = "tiering-synthetic") -> Iterator[m.FlightSample]:
    stamp = Stamper("tiering", incarnation)
    for s in samples:
        tier = 1 if s.max_score < 30 else 2 if s.max_score < 60 else 3
        yield stamp(m.FlightSample, **flight_fields(s, m.TierState(tier=tier, tier_since=s.timestamp)))


def write(db: Path, start: float, seconds: int, *, procs: int = 600, distinct_s: int = 600,
          batch: int = 500) -> int:
    """Store ``seconds`` samples from ``start`` into ``db`` through the recorder's write path."""
    pool = list(simulate(min(distinct_s, seconds), procs, start=0.0))
    conn = storage.connect(db, mode="create")
    writer = BatchWriter(lambda: conn, max_pending=batch * 2, counters=Counter(),
                         log=logging.getLogger("flight_gen"), batch_max=batch)
    tiering = Stamper("tiering", "tiering-synthetic")
    for i in range(seconds):
        s = pool[i % len(pool)]
        minute_table = s.table if (i % 60 == 0) else None  # keep "a table a minute" after wrapping
        s = msgspec.structs.replace(s, timestamp=start + i + s.timestamp % 1, table=minute_table)
        tier = 1 if s.max_score < 30 else 2 if s.max_score < 60 else 3
        writer.add(tiering(m.FlightSample, **flight_fields(s, m.TierState(tier=tier, tier_since=start))))
        if len(writer.pending) >= batch:
            writer.flush()
    writer.flush()
    conn.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--procs", type=int, default=600)
    parser.add_argument("--end", type=float, default=None, help="last sample's time (default: now)")
    args = parser.parse_args(argv)
    seconds = int(args.days * 86400)
    end = time.time() if args.end is None else args.end
    began = time.monotonic()
    write(args.db, end - seconds, seconds, procs=args.procs)
    print(f"{seconds} samples in {args.db} ({args.db.stat().st_size / 1e6:.1f} MB) in "
          f"{time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
