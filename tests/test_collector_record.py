"""The Linux backend's record builder on scripted counters: rates, caps and unknowns."""

from __future__ import annotations

import pytest

from collector import procfs_record as rec
from collector.procfs_parse import StatFields
from pmshared.messages import ProcessInfo

ST = StatFields(
    comm=b"job", state=ord("R"), ppid=1, majflt=30, ticks=500, threads=2, starttime=7,
    rss_pages=10, kthread=False, child_ticks=250,
)  # fmt: skip
RATES = rec.Rates(csw=5.0, sysbsd=7.0, read_bps=100.0, write_bps=200.0, run_delay=3.0)


def test_counter_rates_over_the_window_and_unknown_where_a_count_is() -> None:
    old = rec.Counts(csw=10, syscalls=None, read_bytes=0, write_bytes=100, delay_ns=0)
    new = rec.Counts(csw=30, syscalls=50, read_bytes=4096, write_bytes=50, delay_ns=500_000_000)
    r = rec.counter_rates(old, new, 2.0, threads=1)
    assert r == rec.Rates(csw=10.0, sysbsd=None, read_bps=2048.0, write_bps=0.0, run_delay=250.0)
    assert rec.counter_rates(old, new, None, threads=1) == rec.Rates(None, None, None, None, None)


def test_run_delay_is_capped_at_every_thread_waiting_all_the_time() -> None:
    # a wait credited at its end: 5 s of delay over a 1 s interval
    r = rec.counter_rates(rec.Counts(delay_ns=0), rec.Counts(delay_ns=5_000_000_000), 1.0, threads=2)
    assert r.run_delay == 2000.0
    no_threads = rec.counter_rates(rec.Counts(delay_ns=0), rec.Counts(delay_ns=5 * 10**9), 1.0, 0)
    assert no_threads.run_delay == 1000.0  # at least one thread


def test_still_rates_are_zero_where_known_and_unknown_on_a_first_interval() -> None:
    old = rec.Counts(csw=1, syscalls=None, read_bytes=2, write_bytes=3, delay_ns=None)
    assert rec.still_rates(old, 1.0) == rec.Rates(0.0, None, 0.0, 0.0, None)
    assert rec.still_rates(old, None) == rec.Rates(None, None, None, None, None)


def test_cpu_is_capped_at_what_its_threads_could_use_on_this_machine() -> None:
    assert rec.cpu_percent(0.5, 1.0, threads=1, ncpu=4) == 50.0
    assert rec.cpu_percent(0.01, 0.005, threads=1, ncpu=4) == 100.0  # one tick over 5 ms
    assert rec.cpu_percent(3.0, 1.0, threads=8, ncpu=2) == 200.0  # 8 threads, 2 cores
    assert rec.cpu_percent(-1.0, 1.0, threads=1, ncpu=1) == 0.0


def test_a_new_stat_line_gives_deltas_and_caps_reaped_children_at_every_core() -> None:
    before = rec.Before(child_ticks=50, majflt=10)
    p = rec.stat_record(
        42, ST, before, "job", 12.5, RATES, 1.0, clk_tck=100, ncpu=1, mem=40960, uid=1000,
        swap=0, growth=8.0, cgroup="x.service",
    )  # fmt: skip
    assert (p.pid, p.ppid, p.command, p.state, p.threads) == (42, 1, "job", "running", 2)
    assert p.pageins == 20.0  # 20 faults over 1 s
    assert p.cpu_children == 100.0  # 2 s of children's CPU reaped in 1 s, on 1 core: capped
    rates = (p.cpu, p.csw, p.sysbsd, p.read_bps, p.write_bps, p.run_delay)
    assert rates == (12.5, 5.0, 7.0, 100.0, 200.0, 3.0)
    assert (p.mem, p.cmprs, p.uid, p.mem_growth, p.cgroup) == (40960, 0, 1000, 8.0, "x.service")
    first = rec.stat_record(42, ST, before, "job", None, RATES, None, 100, 1, 0, None, None, None, None)
    assert (first.pageins, first.cpu_children) == (None, None)


def test_what_reaped_children_were_seen_to_use_is_taken_out_and_what_is_left_waits() -> None:
    parent = ProcessInfo(pid=9, command="sh", state="sleeping", cpu=0.0, cpu_children=150.0,
                         read_bps=1e6, write_bps=3e9, sysbsd=500.0)
    # Over 2 s: 300 ticks reaped (250 seen alive), 6 GB written (5.8 GB seen), 1000 calls (all seen).
    seen = rec.Seen(ticks=250, read_bytes=0, write_bytes=5.8e9, syscalls=1000)
    p, left = rec.without_seen_children(parent, seen, clk_tck=100, dt=2.0)
    assert round(p.cpu_children, 6) == 25.0  # 50 ticks since its last sample, over 2 s
    assert (p.read_bps, round(p.write_bps), p.sysbsd) == (1e6, 100e6, 0.0)
    assert left == rec.Seen(0, 0, 0, 0)
    # A reap that has not shown yet (the parent's figures are 0): the credit waits, untouched.
    idle = ProcessInfo(pid=9, command="sh", state="sleeping", cpu=0.0, cpu_children=0.0, write_bps=0.0)
    assert rec.without_seen_children(idle, seen, clk_tck=100, dt=1.0) == (idle, seen)
    # More seen than shown (the reap half shown, or a child reaped by someone else): the figure
    # goes to 0, the rest waits.
    p, left = rec.without_seen_children(parent, rec.Seen(ticks=400), clk_tck=100, dt=2.0)
    assert (p.cpu_children, left.ticks) == (0.0, 100)


def test_an_unchanged_stat_keeps_the_state_and_takes_the_new_rates() -> None:
    old = ProcessInfo(pid=3, ppid=2, command="x", state="sleeping", mem=4096, cpu=9.0, pageins=4.0)
    p = rec.same_stat_record(old, 1.0, RATES, 1.0, uid=5, swap=8, growth=0.0, cgroup=None)
    assert (p.ppid, p.state, p.mem, p.pageins, p.cpu_children, p.cpu, p.uid, p.cmprs) == (
        2, "sleeping", 4096, 0.0, 0.0, 1.0, 5, 8,
    )  # fmt: skip
    assert rec.same_stat_record(old, None, RATES, None, 5, 8, None, None).pageins is None


def test_settled_is_idle_and_keeps_unknowns_unknown() -> None:
    busy = ProcessInfo(pid=3, command="x", state="running", cpu=50.0, csw=9.0, mem_growth=1.0)
    assert not rec.is_idle(busy)
    s = rec.settled(busy, rec.Counts(csw=4, syscalls=None, read_bytes=1, write_bytes=1, delay_ns=None))
    assert rec.is_idle(s)
    assert (s.cpu, s.csw, s.sysbsd, s.run_delay, s.read_bps, s.mem_growth) == (0.0, 0.0, None, None, 0.0, 0.0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [((1000, 0.0, 3000, 2.0, 1.0), 1000.0), ((1000, 0.0, 0, 1.0, 1.0), -1000.0),
     ((1000, 0.0, 3000, 2.0, None), None), ((1000, 2.0, 3000, 2.0, 1.0), None)],
)  # fmt: skip
def test_growth_rate_is_per_second_since_the_last_read(args: tuple, expected: float | None) -> None:
    assert rec.growth_rate(*args) == expected
