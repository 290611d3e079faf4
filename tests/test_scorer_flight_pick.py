"""What the scorer adds for the flight recorder: the busiest few non-rogues, the table once a minute."""

from __future__ import annotations

import heapq
import random

from pmshared.messages import ProcessInfo
from scorer.flight_pick import busiest, table_due


def proc(pid: int, cpu: float = 0.0, mem: int = 0, read: float = 0.0, pageins: float = 0.0) -> ProcessInfo:
    return ProcessInfo(pid=pid, command=f"p{pid}", state="sleeping", cpu=cpu, mem=mem, read_bps=read,
                       pageins=pageins)


def test_busiest_takes_three_per_resource_above_its_floor_and_skips_rogues() -> None:
    procs = [proc(1, cpu=90), proc(2, cpu=50), proc(3, cpu=20), proc(4, cpu=10), proc(5, cpu=0.5),
             proc(10, mem=5 << 30), proc(11, mem=4 << 30), proc(12, mem=3 << 30), proc(13, mem=2 << 30),
             proc(20, read=10e6), proc(21, read=1000.0),  # 1 kB/s is below the io floor
             proc(30, pageins=40.0), proc(31, pageins=0.2)]
    picked = [p.pid for p in busiest(procs, exclude={1})]
    # cpu: 2, 3, 4 (1 is a rogue; 0.5 % is below the floor); memory: the three largest;
    # io: only 20; page-ins: only 30.
    assert picked == [2, 3, 4, 10, 11, 12, 20, 30]


def test_busiest_of_an_idle_machine_is_its_largest_processes() -> None:
    procs = [proc(i, mem=i << 20) for i in range(1, 50)]
    assert [p.pid for p in busiest(procs, exclude=set())] == [47, 48, 49]


def test_whole_table_on_the_first_snapshot_and_then_once_a_minute() -> None:
    assert [seq for seq in range(1, 200) if table_due(seq, 1.0)] == [1, 61, 121, 181]
    assert [seq for seq in range(1, 100) if table_due(seq, 2.0)] == [1, 31, 61, 91]
    assert all(table_due(seq, 60.0) for seq in range(1, 5))  # one sample a minute: every one


def _busiest_by_definition(processes: list[ProcessInfo], exclude: set[int], n: int = 3) -> list[ProcessInfo]:
    """The definition, on every process: the n largest by each figure, those at its floor."""
    keys = ((lambda p: p.cpu or 0.0, 1.0), (lambda p: float(p.mem), 1.0),
            (lambda p: (p.read_bps or 0.0) + (p.write_bps or 0.0), 65536.0), (lambda p: p.pageins or 0.0, 1.0))
    candidates = [p for p in processes if p.pid not in exclude]
    picked = {}
    for key, floor in keys:
        for p in heapq.nlargest(n, candidates, key=key):
            if key(p) >= floor:
                picked[p.pid] = p
    return sorted(picked.values(), key=lambda p: p.pid)


def test_busiest_picks_what_the_definition_picks_on_random_machines() -> None:
    """busiest() ranks only the processes that did something (and memory in C): the same picks,
    ties included, as ranking every process by every figure."""
    rng = random.Random(16)
    choice = rng.choice
    for _ in range(300):
        procs = [ProcessInfo(pid=pid, command="p", state="sleeping",
                             cpu=choice([None, 0.0, 0.0, 0.5, 1.0, 3.0, 3.0, rng.uniform(0, 200)]),
                             mem=choice([0, 1 << 20, 1 << 20, 5 << 20, rng.randrange(1 << 33)]),
                             read_bps=choice([None, 0.0, 0.0, 40000.0, 70000.0, 70000.0]),
                             write_bps=choice([None, 0.0, 30000.0, 1e6]),
                             pageins=choice([None, 0.0, 0.0, 0.5, 2.0, 2.0]))
                 for pid in rng.sample(range(1, 5000), rng.randrange(0, 60))]
        exclude = {p.pid for p in procs if rng.random() < 0.1} | {99999}
        assert [p.pid for p in busiest(procs, exclude)] == [p.pid for p in _busiest_by_definition(procs, exclude)]
