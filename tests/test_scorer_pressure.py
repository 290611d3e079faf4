"""The pressure model on hand-computed figures: ramps, machine stress, shares, charges, rogues.

Recorded real loads are in test_scorer_pressure_loads.py.
"""

from __future__ import annotations

import math

import pytest

from pmshared import config as config_mod
from pmshared import messages as m
from pmshared.codec import Stamper
from scorer.pressure import PressureRules, score_pressure
from scorer.scoring import ScoringRules, build_samples
from scorer.stress import Ramp, StressRules, machine_stress
from tests.tiering_helpers import proc, snapshot

GIB = 1024**3


def rules(toml: str = "") -> PressureRules:
    return PressureRules.from_config(config_mod.parse(toml))


def stress_of(toml: str = "", sentinel: m.SentinelStats | None = None, run_delay: float | None = None,
              **system) -> dict[str, float]:
    return machine_stress(m.SystemStats(**system), sentinel, run_delay, rules(toml).stress)


def score(processes: list[m.ProcessInfo], toml: str = "", sentinel=None, **system):
    """(max_score, stress, {pid: (score, categories)}) of one snapshot, rogues in order."""
    system.setdefault("cpu_count", 2)
    snap = snapshot(processes, system=m.SystemStats(**system), sentinel=sentinel)
    max_score, stress, rogues = score_pressure(snap, rules(toml))
    return max_score, stress, {r.pid: (r.score, r.categories) for r in rogues}


# ------------------------------------------------------------------------------------ ramps

RAMP = Ramp(start=0.0, elevated=20.0, critical=60.0, low=35.0, high=65.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 0.0), (-5.0, 0.0), (10.0, 17.5), (20.0, 35.0), (40.0, 50.0), (60.0, 65.0), (100.0, 95.0),
     (200.0, 100.0), (None, None), (math.nan, None)],
)
def test_ramp_is_linear_from_zero_through_both_anchors_and_beyond_capped_at_100(value, expected):
    assert RAMP(value) == expected


def test_ramp_with_a_start_is_zero_up_to_it():
    ramp = Ramp(start=80.0, elevated=95.0, critical=99.0, low=35.0, high=65.0)
    assert (ramp(50.0), ramp(80.0), ramp(87.5), ramp(95.0), ramp(99.0)) == (0.0, 0.0, 17.5, 35.0, 65.0)


def test_anchors_follow_the_tiers_thresholds():
    # The anchors say "this value is elevated": with other tier thresholds they still are.
    cpu = rules("[tiers]\nelevated_threshold = 40\ncritical_threshold = 80\n").stress.cpu["psi_some"]
    assert (cpu(20.0), cpu(60.0)) == (40.0, 80.0)


# ----------------------------------------------------------------------------- machine stress


def test_every_signal_of_every_resource_reaches_elevated_at_its_default_anchor():
    cfg = config_mod.Config().scoring.pressure
    cases = {
        "cpu": [dict(cpu_busy_pct=cfg.cpu.busy_pct_elevated), dict(psi_cpu=m.PressureStall(some=20.0)),
                dict(procs_running=1 + 6, cpu_count=2), dict(cpu_steal_pct=10.0)],
        "memory": [dict(psi_memory=m.PressureStall(some=10.0)), dict(psi_memory=m.PressureStall(full=5.0)),
                   dict(pageins=100.0, swapins=150.0, swapouts=50.0), dict(mem_total=100, mem_available=5)],
        "io": [dict(psi_io=m.PressureStall(some=20.0)), dict(psi_io=m.PressureStall(full=10.0)),
               dict(procs_blocked=3, cpu_count=2), dict(cpu_iowait_pct=25.0)],
        "fork": [dict(forks=1000.0, cpu_count=2)],
        "csw": [dict(csw=50_000.0, cpu_count=2)],
    }
    for resource, systems in cases.items():
        for system in systems:
            assert stress_of(**system)[resource] == pytest.approx(35.0), (resource, system)
    sentinel = m.SentinelStats(tick_ms=20.0, window_s=60.0, ticks=3000, interval_late_pct=10.0)
    assert stress_of(sentinel=sentinel)["stall"] == 35.0
    assert stress_of(run_delay=1000.0, cpu_count=2)["cpu"] == 35.0  # 1 s/s on 2 cores = 50 %


def test_run_delay_stands_in_only_where_psi_is_missing():
    # After a context-switch storm the starved tasks' waits were credited in lumps seconds later
    # (run delay 3 s/s on 2 cores: critical) while PSI, the kernel's own per-interval sum, read 0.
    lump = dict(run_delay=3000.0, cpu_count=2, cpu_busy_pct=1.0)
    assert stress_of(**lump, psi_cpu=m.PressureStall(some=0.0, full=0.0))["cpu"] < 5
    assert stress_of(**lump)["cpu"] == 65.0  # no PSI on this kernel: run delay is the sign


def test_resource_stress_is_the_max_of_its_signals():
    got = stress_of(cpu_busy_pct=50.0, psi_cpu=m.PressureStall(some=60.0), procs_running=2, cpu_count=2)
    assert got["cpu"] == 65.0


def test_unknown_figures_contribute_nothing_and_a_resource_without_any_is_left_out():
    assert stress_of() == {}  # nothing known: no part at all, not "calm"
    got = stress_of(cpu_busy_pct=None, psi_cpu=m.PressureStall(some=None), procs_running=None, mem_total=0)
    assert got == {}
    # A sentinel with no interval figure yet (its first snapshot) tells nothing either, and the
    # window's percentiles (a minute long) are not read as this interval's stall.
    idle = m.SentinelStats(tick_ms=20.0, window_s=60.0, ticks=3000, p99_ms=900.0, max_ms=900.0)
    assert "stall" not in stress_of(sentinel=idle)


def test_our_own_running_task_is_not_a_queue_and_idle_stays_near_zero():
    idle = stress_of(cpu_busy_pct=1.0, procs_running=1, procs_blocked=0, psi_cpu=m.PressureStall(some=0.2, full=0.0),
                     psi_memory=m.PressureStall(some=0.0, full=0.0), psi_io=m.PressureStall(some=0.0, full=0.0),
                     mem_total=100, mem_available=90, pageins=0.0, forks=20.0, csw=400.0, cpu_count=2)
    assert max(idle.values()) < 2
    assert idle["cpu"] == pytest.approx(35.0 * 1.0 / 95.0)  # busy %, not the sampler's own task


def test_run_delay_is_ignored_where_the_kernel_does_not_account_it():
    assert stress_of(run_delay=4000.0, cpu_count=2)["cpu"] > 65
    assert "cpu" not in stress_of(run_delay=4000.0, cpu_count=2, run_delay_known=False)


def test_macos_memory_pressure_level():
    assert stress_of(memory_pressure="warn")["memory"] == 40.0
    assert stress_of(memory_pressure="critical")["memory"] == 70.0
    assert stress_of(memory_pressure="normal")["memory"] == 0.0


# --------------------------------------------------------------------------- shares, charges

# Two cores fully busy (cpu stress: busy 100 % = 35 + 30 * 5/15 = 45).
BUSY = dict(cpu_busy_pct=100.0, procs_running=3)


def test_cpu_is_charged_by_share_of_what_was_consumed():
    procs = [proc(1, cpu=150.0, state="running"), proc(2, cpu=50.0, state="running"), proc(3, cpu=0.0)]
    max_score, stress, rogues = score(procs, **BUSY)
    assert max_score == 45 and stress == {"cpu": 45}
    assert rogues == {1: (34, ["cpu"]), 2: (11, ["cpu"])}  # 45 * 0.75 = 33.75, 45 * 0.25; pid 3 idle


def test_light_work_has_a_small_stress_and_its_consumer_is_named():
    # A 20 % Python loop on an otherwise idle 2-core machine: busy 10 %.
    procs = [proc(1, cpu=20.0, state="running"), proc(2, cpu=0.5), proc(3, cpu=0.0)]
    max_score, _, rogues = score(procs, cpu_busy_pct=10.0, procs_running=1)
    assert max_score == 4  # 35 * 10/95
    assert rogues == {1: (4, ["cpu"])}  # pid 2's 0.1 point rounds to 0: not a rogue


def test_a_process_cannot_hold_more_than_the_machine_and_unknown_or_broken_figures_consume_nothing():
    procs = [proc(1, cpu=900.0), proc(2, cpu=200.0), proc(3, cpu=None), proc(4, cpu=math.nan), proc(5, cpu=-50.0)]
    _, _, rogues = score(procs, **BUSY)
    assert rogues == {1: (22, ["cpu"]), 2: (22, ["cpu"])}  # 900 % capped at the 200 % two cores give


def test_a_fork_storm_is_charged_to_the_parent_that_reaps_its_children():
    parent = proc(10, command="forker", cpu=5.0, cpu_children=150.0)
    other = proc(11, command="busy", cpu=45.0, cpu_children=0.0)
    max_score, stress, rogues = score([parent, other], forks=3000.0, **BUSY)
    # fork: 1500/s per core = 35 + 30 * 1000/1500 = 55; the parent reaped all the children's CPU.
    assert stress == {"cpu": 45, "fork": 55} and max_score == 55
    # Its cpu charge, 45 * 155/200 = 34.9, is over half its fork charge: both are named.
    assert rogues[10] == (55, ["cpu", "fork"])
    assert rogues[11] == (10, ["cpu"])  # 45 * 45/200; no children, no fork charge


def test_fork_share_falls_back_to_cpu_share_where_no_process_has_a_children_figure():
    procs = [proc(1, cpu=150.0), proc(2, cpu=50.0)]
    _, stress, rogues = score(procs, forks=3000.0, **BUSY)
    assert rogues[1] == (41, ["cpu", "fork"])  # 55 * 0.75 = 41.25 fork, 33.75 cpu


def test_io_is_charged_by_bytes_and_a_task_waiting_in_d_state_is_listed_not_charged():
    writer = proc(1, command="writer", read_bps=0.0, write_bps=300e6)
    reader = proc(2, command="reader", read_bps=100e6, write_bps=None)
    stuck = proc(3, command="nfs", state="stuck")
    _, stress, rogues = score([writer, reader, stuck], psi_io=m.PressureStall(some=50.0, full=30.0))
    assert stress == {"io": 65}
    assert rogues[1] == (49, ["io"]) and rogues[2] == (16, ["io"])  # 65 * 3/4, 65 * 1/4
    assert rogues[3] == (0, ["stuck"])  # waiting for io is being its victim, not its cause


def test_io_shares_are_of_what_the_devices_moved_so_writeback_nobody_shows_is_charged_to_nobody():
    # The kernel writes back 400 MB/s dirtied earlier (by a process long gone); the only process
    # that moved bytes this second read 4 MB/s of its binary. Against the processes' sum it took
    # the whole io stress (65); against the devices it holds 1 % of it.
    loader = proc(1, command="stress-ng", cpu=30.0, read_bps=4e6, write_bps=0.0)
    idle = proc(2, command="sshd", cpu=0.1, read_bps=0.0, write_bps=0.0)
    psi = m.PressureStall(some=50.0, full=30.0)
    _, stress, rogues = score([loader, idle], psi_io=psi, disk_bps=400e6)
    assert stress == {"io": 65}
    assert rogues == {1: (1, ["io"])}  # 65 * 4/400 = 0.65
    # Without the device figure (a platform that does not give it) the processes' sum stands.
    assert score([loader, idle], psi_io=psi)[2] == {1: (65, ["io"])}
    # Processes that show more than the devices moved (dirtying the page cache faster than it is
    # written back) are shared among themselves: the devices' figure only ever lowers a share.
    writer = proc(3, command="dd", read_bps=0.0, write_bps=800e6)
    assert score([writer, loader], psi_io=psi, disk_bps=400e6)[2] == {3: (65, ["io"])}  # 65 * 800/804


def test_where_byte_figures_exist_nobody_moving_a_byte_means_nobody_is_charged_io_by_syscalls():
    # Linux: io stress (the devices' own latency, another VM on the host) while no process moved a
    # byte: syscalls are no stand-in for bytes there, so nobody is named for it.
    procs = [proc(1, command="stress-ng", cpu=90.0, sysbsd=9000.0, read_bps=0.0, write_bps=0.0)]
    _, stress, rogues = score(procs, psi_io=m.PressureStall(some=50.0))
    assert stress == {"io": 65} and rogues == {}


def test_io_falls_back_to_read_write_syscalls_where_no_process_has_byte_figures():
    procs = [proc(1, sysbsd=9000.0), proc(2, sysbsd=1000.0)]
    _, _, rogues = score(procs, psi_io=m.PressureStall(some=50.0))
    assert rogues == {1: (58, ["io"]), 2: (6, ["io"])}  # 65 * 0.9, 65 * 0.1


def test_memory_is_charged_by_bytes_demanded_and_by_resident_memory_when_nobody_demands():
    # Growth and bytes brought in from storage are one unit (bytes/s): a grower of 150 MB/s and
    # a reader of 50 MB/s (shrinking meanwhile: its pages are being reclaimed) share 3:1.
    grower = proc(1, mem=GIB, mem_growth=150e6, pageins=0.0, read_bps=0.0)
    reader = proc(2, mem=GIB, mem_growth=-50e6, pageins=800.0, read_bps=50e6)
    _, stress, rogues = score([grower, reader], psi_memory=m.PressureStall(some=40.0, full=20.0))
    assert stress == {"memory": 65}
    assert rogues == {1: (49, ["mem"]), 2: (16, ["mem"])}  # 65 * 3/4, 65 * 1/4
    # No byte figure (macOS): a major fault stands for page_in_bytes.
    faulter = proc(2, mem=GIB, mem_growth=None, pageins=12_207.0)  # 50 MB/s of 4096-byte pages
    _, _, rogues = score([grower, faulter], psi_memory=m.PressureStall(some=40.0, full=20.0))
    assert rogues == {1: (49, ["mem"]), 2: (16, ["mem"])}
    _, _, rogues = score([grower, faulter], "[scoring.pressure]\npage_in_bytes = 12288\n",
                         psi_memory=m.PressureStall(some=40.0, full=20.0))
    assert rogues == {1: (33, ["mem"]), 2: (32, ["mem"])}  # 150 MB/s against 150 MB/s
    big = proc(1, mem=3 * GIB, cpu=1.0)
    small = proc(2, mem=GIB, cpu=1.0)
    _, _, rogues = score([big, small], mem_total=100, mem_available=1)  # used 99 %: 65
    assert rogues[1][1] == ["mem"] and rogues[1][0] == 49  # 65 * 3/4


def test_refaults_through_read_charge_the_readers_not_a_small_grower_like_the_collector():
    # Measured on this machine (issue 16's memory row): two readers of a file 4x their memory
    # cgroup's limit, their page cache reclaimed and read back on every pass. Refaults through
    # read() are no major faults (~35 a second each), their resident memory shrank this
    # interval, and the collector (reading /proc) grew by 0.5 MB/s. Charged by growth alone the
    # collector held the whole growth share: score 100, the readers' parent tied with it.
    readers = [proc(10, ppid=9, command="pm-memthrash", cpu=66.0, mem=30 << 20, mem_growth=-10.46e6,
                    pageins=34.0, read_bps=500.4e6),
               proc(11, ppid=9, command="pm-memthrash", cpu=66.0, mem=30 << 20, mem_growth=-0.93e6,
                    pageins=39.0, read_bps=455.5e6)]
    shell = proc(9, ppid=1, command="sh", mem=1 << 20)
    collector = proc(20, ppid=5, command="collector", cpu=2.4, mem=40 << 20, mem_growth=0.52e6,
                     pageins=0.0, read_bps=0.0)
    _, stress, rogues = score([shell, *readers, collector], psi_memory=m.PressureStall(some=49.1, full=44.4),
                              psi_io=m.PressureStall(some=18.3, full=14.7), pageins=72.0)
    assert stress["memory"] == 100
    assert list(rogues)[:3] == [9, 10, 11] and rogues[9][0] == 100 and "mem" in rogues[9][1]  # their parent, then each
    assert 20 not in rogues  # 0.5 of ~957 MB/s demanded: under half a point


def test_holding_most_of_a_calm_resource_adds_no_category():
    # stress-ng --cpu 2 starting: its workers' growth is most of the memory demanded while memory
    # is calm (stress ~4): named under cpu, not "cpu, mem" (tests/e2e/test_detection.py saw that).
    hog = proc(1, cpu=190.0, mem_growth=20e6, read_bps=0.0)
    other = proc(2, cpu=5.0, mem_growth=1e6, read_bps=0.0)
    _, stress, rogues = score([hog, other], cpu_busy_pct=100.0, mem_total=100, mem_available=18)
    assert stress["cpu"] == 45 and 0 < stress["memory"] < 35
    assert rogues[1][1] == ["cpu"]
    # Memory contended (used 97 %: stress 50): holding most of it is a category.
    _, stress, rogues = score([hog, other], cpu_busy_pct=100.0, mem_total=100, mem_available=3)
    assert stress["memory"] >= 35 and rogues[1][1] == ["cpu", "mem"]


def test_switches_of_children_that_died_in_the_interval_go_to_the_parent_that_reaped_them():
    # The interval in which a context-switch storm ended: its workers switched ~800,000 times a
    # second for most of it and were reaped by stress-ng before the sample. The kernel hands
    # their CPU to stress-ng (cpu_children) but not their switches: a shell that switched 500
    # times a second held every switch any live process made, and stress-ng was named under cpu.
    parent = proc(1, command="stress-ng", cpu=0.0, cpu_children=150.0, csw=0.0)
    shell = proc(2, command="bash", cpu=20.0, csw=500.0)
    _, stress, rogues = score([parent, shell], cpu_busy_pct=90.0, csw=800_000.0)
    assert stress["csw"] == 100
    assert list(rogues)[0] == 1 and "csw" in rogues[1][1]
    assert rogues[2][1] == ["cpu"]  # its own CPU; 500 of 800,000 switches is no csw charge
    # A parent that reaped a sliver of the busy time (0.5 % of one core) gets a sliver of them.
    storm = [proc(3, command="stress-ng-switc", cpu=90.0, csw=300_000.0),
             proc(4, command="stress-ng-switc", cpu=90.0, csw=300_000.0)]
    reaper = proc(5, command="python", cpu=0.2, cpu_children=0.5, csw=18.0)
    _, _, rogues = score([*storm, reaper], cpu_busy_pct=100.0, csw=800_000.0)
    assert list(rogues)[:2] == [3, 4] and rogues.get(5, (0, []))[0] <= 1
    # A calm machine's switches that no process shows (the idle task's) are nobody's.
    _, stress, rogues = score([parent, shell], cpu_busy_pct=90.0, csw=20_000.0)
    assert stress["csw"] < 35 and "csw" not in rogues[1][1]


def test_context_switches_are_charged_by_share():
    procs = [proc(1, csw=300_000.0), proc(2, csw=100_000.0)]
    _, stress, rogues = score(procs, csw=400_000.0)
    assert stress == {"csw": 100}  # 200k per core: 65 + 30 * 100k/75k = 105, capped
    assert rogues == {1: (75, ["csw"]), 2: (25, ["csw"])}


def test_a_stall_raises_the_tier_only_as_far_as_a_contended_resource_explains_it():
    # The collector stopped for half a second on a machine doing everyday work (cores 30 % busy:
    # cpu stress ~11): the stall is critical, but nothing was contended, so no tier is raised and
    # the process that happened to use the CPU (here the monitor's own forensics) is charged
    # only the small part of the stall its resource could explain (11/35 of it).
    stopped = m.SentinelStats(tick_ms=20.0, window_s=60.0, ticks=3000, interval_late_pct=50.0)
    worker = proc(7, cpu=50.0)
    max_score, stress, rogues = score([worker], sentinel=stopped, cpu_busy_pct=30.0)
    assert stress["stall"] >= 65 and stress["cpu"] == 11  # a critical stall, a calm cpu
    assert max_score < 35 and rogues[7][0] == round(stress["stall"] * 11 / 35)
    # The same stall while busy loops held every core (RT starvation: cpu PSI near 100 %): the
    # cpu explains it in full.
    hogs = [proc(1, cpu=100.0, state="running"), proc(2, cpu=100.0, state="running")]
    max_score, stress, rogues = score(hogs, sentinel=stopped, cpu_busy_pct=100.0,
                                      psi_cpu=m.PressureStall(some=95.0))
    assert max_score >= 65 and rogues[1][0] == rogues[2][0] == round(max_score / 2)


def test_a_stall_is_explained_by_a_resource_at_most_as_far_as_its_psi_says_tasks_waited():
    # The collector stopped for 2 s (SIGSTOP) while others' everyday work kept the cores 62 %
    # busy (cpu stress 23): the sentinel was late the whole interval (stall 100), and two thirds
    # of it (23/35) went through cpu: tier 3, an event naming a shell (bench/detection.py). PSI
    # showed tasks waiting for a CPU 3 % of the interval: that is all cpu can explain.
    stopped = m.SentinelStats(tick_ms=20.0, window_s=60.0, ticks=3000, interval_late_pct=100.0)
    shell = proc(7, command="bash", cpu=60.0)
    max_score, stress, rogues = score([shell], sentinel=stopped, cpu_busy_pct=62.0,
                                      psi_cpu=m.PressureStall(some=3.0), psi_io=m.PressureStall(some=0.0))
    assert (stress["stall"], stress["cpu"]) == (100, 23)
    assert max_score == 23 and rogues[7][0] == 23  # the cpu's own stress, no part of the stall
    # Busy loops starving every task (cpu PSI 95 %): cpu explains the whole stall.
    hogs = [proc(1, cpu=100.0), proc(2, cpu=100.0)]
    max_score, _, _ = score(hogs, sentinel=stopped, cpu_busy_pct=100.0, psi_cpu=m.PressureStall(some=95.0))
    assert max_score == 100


def test_a_stall_is_charged_through_the_contended_resources_and_never_invented():
    sentinel = m.SentinelStats(tick_ms=20.0, window_s=60.0, ticks=3000, interval_late_pct=40.0)  # stall 65
    hog = proc(1, cpu=200.0, mem_growth=1e6)
    grower = proc(2, cpu=0.0, mem_growth=100e6)
    _, stress, rogues = score([hog, grower], sentinel=sentinel, **BUSY)
    assert stress == {"cpu": 45, "stall": 65}
    # All of the stall goes through cpu (memory is not stressed): the grower is not blamed.
    assert rogues == {1: (65, ["cpu"])}
    # A stall with no contention anywhere (a paused VM, a stopped collector) blames nobody.
    _, stress, rogues = score([hog, grower], sentinel=sentinel, cpu_busy_pct=0.0)
    assert stress["stall"] == 65 and rogues == {}


# ------------------------------------------------------------------------------------ rogues


def test_idle_processes_are_never_rogues_but_stuck_and_configured_states_are():
    procs = [proc(1, cpu=0.0), proc(2, state="zombie"), proc(3, state="stuck"), proc(4, state="stopped")]
    _, _, rogues = score(procs, cpu_busy_pct=1.0)
    assert rogues == {3: (0, ["stuck"]), 2: (0, ["state"])}
    toml = '[rogue_selection.state]\nstates = ["stopped"]\n'
    assert score(procs, toml, cpu_busy_pct=1.0)[2] == {3: (0, ["stuck"]), 4: (0, ["state"])}


def test_rogues_are_the_top_count_by_charge():
    # Scores 3, 3, 3, 3, ... round alike: the ranking uses the charge before rounding.
    procs = [proc(i, cpu=float(i)) for i in range(1, 31)]
    _, _, rogues = score(procs, "[scoring.pressure]\nrogue_count = 3\n", cpu_busy_pct=100.0)
    assert list(rogues) == [30, 29, 28]


def test_categories_name_the_top_charge_and_resources_charged_or_held_at_least_the_ratio():
    p = proc(1, cpu=200.0, csw=100_000.0)
    _, _, rogues = score([p], csw=60_000.0, **BUSY)  # cpu 45; csw 30k/core: 35 + 30 * 5/75 = 37
    assert rogues[1] == (45, ["cpu", "csw"])  # csw 37 >= 0.5 * 45
    q = proc(2, csw=80_000.0)  # p now holds 100/180 of the switches: 20.6 points
    assert score([p, q], csw=60_000.0, **BUSY)[2][1] == (45, ["cpu", "csw"])  # holds >= 0.5 of csw
    ratio = "[scoring.pressure]\ncategory_ratio = 0.6\n"  # 20.6 < 0.6 * 45 and 0.556 < 0.6
    assert score([p, q], ratio, csw=60_000.0, **BUSY)[2][1] == (45, ["cpu"])


def test_scored_samples_carry_the_model_the_stress_and_the_new_process_fields():
    p = proc(7, command="w", cpu=100.0, ppid=3, cpu_children=10.0, run_delay=12.5, read_bps=1e6,
             write_bps=2e6, mem_growth=4096.0, cgroup="app.service")
    snap = snapshot([p], system=m.SystemStats(cpu_count=2, **BUSY))
    out = build_samples(snap, ScoringRules.from_config(config_mod.Config()), Stamper("scorer", "s"))
    assert (out.model, out.max_score, out.stress) == ("pressure", 45, {"cpu": 45})
    (r,) = out.rogues
    assert (r.ppid, r.cpu_children, r.run_delay, r.io_bps, r.mem_growth, r.cgroup) == (
        3, 10.0, 12.5, 3e6, 4096.0, "app.service")


def test_the_default_model_is_pressure_and_seed_stays_selectable():
    assert ScoringRules.from_config(config_mod.Config()).pressure is not None
    seed = ScoringRules.from_config(config_mod.parse('[scoring]\nmodel = "seed"\n'))
    assert seed.pressure is None and seed.model == "seed"


# ------------------------------------------------------------------------------------ config

BAD = [
    ("[scoring.pressure.cpu]\nbusy_pct_critical = 90\n",
     "f.toml: scoring.pressure.cpu: busy_pct_critical must be above busy_pct_elevated"),
    ("[scoring.pressure.memory]\nused_pct_start = 96\n",
     "f.toml: scoring.pressure.memory: used_pct_start must be below used_pct_elevated"),
    ("[scoring.pressure.io]\npsi_some_elevated = 0\n",
     "f.toml: scoring.pressure.io.psi_some_elevated: expected `float` > 0.0"),
    ("[scoring.pressure]\nrogue_count = 0\n", "f.toml: scoring.pressure.rogue_count: expected `int` >= 1"),
    ("[scoring.pressure]\ncategory_ratio = 1.5\n",
     "f.toml: scoring.pressure.category_ratio: expected `float` <= 1.0"),
    ("[scoring.pressure.stall]\nlate_pct_elevate = 5\n", "f.toml: scoring.pressure.stall.late_pct_elevate: unknown key"),
    ('[scoring]\nmodel = "fancy"\n', "f.toml: scoring.model: invalid enum value 'fancy' (expected \"pressure\" or \"seed\")"),
]


@pytest.mark.parametrize(("toml", "error"), BAD)
def test_a_bad_model_constant_is_one_line_naming_the_key(toml, error):
    with pytest.raises(config_mod.ConfigError) as exc:
        config_mod.parse(toml, "f.toml")
    assert str(exc.value) == error
    assert config_mod.validate_all(toml, "f.toml") == [error]


def test_every_anchor_pair_is_checked():
    cfg = config_mod.Config().scoring.pressure
    sections = [cfg.cpu, cfg.memory, cfg.io, cfg.stall, cfg.fork, cfg.csw]
    pairs = [(type(s).__name__, n[: -len("_elevated")]) for s in sections for n in type(s).__struct_fields__
             if n.endswith("_elevated")]
    assert len(pairs) == 16
    names = {"CpuSignals": "cpu", "MemorySignals": "memory", "IoSignals": "io", "StallSignals": "stall",
             "ForkSignals": "fork", "CswSignals": "csw"}
    for cls, signal in pairs:
        section = names[cls]
        elevated = getattr(getattr(cfg, section), f"{signal}_elevated")
        toml = f"[scoring.pressure.{section}]\n{signal}_critical = {elevated}\n"
        with pytest.raises(config_mod.ConfigError, match=f"{signal}_critical must be above"):
            config_mod.parse(toml)


def test_a_worker_carries_its_copies_and_the_job_s_parent_the_whole_storm():
    # stress-ng --switch 4: 4 workers, each with a forked partner of the same name at the other end
    # of its pipe, all 8 switching alike. Grouping direct children alone charged stress-ng half
    # the storm (50), which others' processes outscored once it had ended.
    workers = [proc(10 + i, ppid=9, command="stress-ng-switc", csw=100_000.0) for i in range(4)]
    partners = [proc(20 + i, ppid=10 + i, command="stress-ng-switc", csw=100_000.0) for i in range(4)]
    parent = proc(9, ppid=5, command="stress-ng")
    _, stress, rogues = score([parent, *workers, *partners], csw=800_000.0)
    assert stress["csw"] == 100
    assert rogues[9] == (100, ["csw"])  # the whole storm
    assert rogues[10] == (25, ["csw"]) and rogues[20] == (12, ["csw"])  # a worker and its pair; a partner
    # A copy is charged to its parent once: a master with two same-named workers, as before.
    master = [proc(30, ppid=5, command="nginx"), proc(31, ppid=30, command="nginx", cpu=100.0),
              proc(32, ppid=30, command="nginx", cpu=100.0)]
    _, _, rogues = score(master, **BUSY)
    assert rogues[30][0] == 45 and rogues[31][0] == rogues[32][0] == 22  # 45 = 22.5 + 22.5, not twice that


def test_a_parent_is_charged_what_its_group_of_same_named_workers_holds_together():
    # 8 workers of one job at 12 % of a core each, beside one 100 % process of someone else.
    workers = [proc(100 + i, ppid=99, command="worker", cpu=12.0) for i in range(8)]
    job = proc(99, ppid=50, command="job", cpu=0.0)
    other = proc(7, ppid=50, command="other", cpu=100.0)
    _, _, rogues = score([job, *workers, other], **BUSY)
    # cpu 45 over 196 % consumed: each worker 45 * 12/196 = 2.8, the other 23, the job 22 (8 of them).
    assert rogues[99] == (22, ["cpu"]) and rogues[7] == (23, ["cpu"]) and rogues[100] == (3, ["cpu"])
    # A lone child, different commands, children of init (every orphan) or of a parent that has
    # exited: no group charge.
    lone = [proc(99, ppid=50, command="job"), proc(100, ppid=99, command="a", cpu=50.0),
            proc(101, ppid=99, command="b", cpu=50.0)]
    assert 99 not in score(lone, **BUSY)[2]
    orphans = [proc(1, ppid=0, command="init"), *[proc(10 + i, ppid=1, command="py", cpu=50.0) for i in range(4)]]
    assert 1 not in score(orphans, **BUSY)[2]
    gone = [proc(10 + i, ppid=99, command="w", cpu=50.0) for i in range(4)]
    assert set(score(gone, **BUSY)[2]) == {10, 11, 12, 13}


def test_a_reaped_childs_lifetime_of_cpu_is_bounded_by_the_busy_time_nobody_alive_explains():
    # A shell reaps a child that ran for 30 s (3000 % in this interval) while two hogs kept both
    # cores busy: the lump was spent in earlier intervals, the hogs hold this one.
    shell = proc(1, command="bash", cpu=0.5, cpu_children=3000.0)
    hogs = [proc(2, command="hog", cpu=100.0), proc(3, command="hog2", cpu=99.5)]
    _, _, rogues = score([shell, *hogs], **BUSY)
    assert rogues == {2: (22, ["cpu"]), 3: (22, ["cpu"])}
    # Short-lived children never sampled alive fill the unexplained busy time: kept in full.
    forker = proc(1, command="forker", cpu=10.0, cpu_children=180.0)
    _, _, rogues = score([forker], forks=3000.0, **BUSY)
    assert rogues == {1: (55, ["cpu", "fork"])}
    # Busy unknown (no figure to bound with): taken as reported, capped at the cores.
    _, _, rogues = score([shell, *hogs], psi_cpu=m.PressureStall(some=60.0))
    assert rogues[1] == (33, ["cpu"])  # 65 * 200/(200 + 199.5)


def test_hostile_figures_never_break_the_score():
    inf, nan = math.inf, math.nan
    procs = [proc(1, cpu=inf, csw=nan, cpu_children=inf, read_bps=inf, write_bps=-1.0, mem_growth=inf,
                  pageins=nan, sysbsd=inf, run_delay=inf),
             proc(2, cpu=50.0, csw=10.0)]
    system = dict(cpu_busy_pct=inf, psi_cpu=m.PressureStall(some=nan, full=inf), procs_running=-5,
                  psi_io=m.PressureStall(some=inf), csw=inf, forks=nan, mem_total=10, mem_available=-3)
    max_score, stress, rogues = score(procs, **system)
    assert 0 <= max_score <= 100 and all(0 <= v <= 100 for v in stress.values())
    assert rogues == {2: (100, ["cpu", "csw"])}  # the broken figures consume nothing
