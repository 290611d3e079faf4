"""Cause classification: a table of recorded figures and the label each must get."""

from __future__ import annotations

import msgspec
import pytest

from forensics import cause, stall_window
from forensics.cause import Figures
from forensics.stall_window import Interval
from pmshared import config
from pmshared import messages as m
from pmshared.config import CauseConfig
from tests.forensics_helpers import live, pause, system

# Figures as the collector reports them (percent, per-second rates), from real windows:
# a build saturating both cores; a browser swapping under memory pressure; a USB disk stuck in
# writeback; a laptop resumed from suspend; an idle machine.
TABLE = [
    (
        "cpu-saturated",
        Figures(cpu_count=2, cpu_busy_pct=99.5, runq_per_core=3.9, psi_cpu_some=72.0, psi_memory_some=0.0,
                psi_io_some=1.2, pageins_per_s=0.0, procs_blocked=0, stuck_threads=0),
        "cpu",
    ),
    (
        "cpu-steal",
        Figures(cpu_count=4, cpu_busy_pct=40.0, runq_per_core=0.25, cpu_steal_pct=35.0),
        "cpu",
    ),
    (
        "cpu-runqueue",
        Figures(cpu_count=2, cpu_busy_pct=80.0, runq_per_core=3.0),
        "cpu",
    ),
    (
        "memory-psi-pageins",
        Figures(cpu_count=2, cpu_busy_pct=95.0, runq_per_core=2.0, psi_memory_some=38.0, psi_memory_full=6.0,
                psi_io_some=45.0, pageins_per_s=2400.0, swapins_per_s=800.0, procs_blocked=3, stuck_threads=5),
        "memory",
    ),
    (
        "memory-full-stall",
        Figures(cpu_count=2, psi_memory_full=22.0),
        "memory",
    ),
    (
        "io-stuck-threads",
        Figures(cpu_count=2, cpu_busy_pct=12.0, cpu_iowait_pct=48.0, psi_io_some=64.0, psi_io_full=40.0,
                psi_memory_some=0.5, pageins_per_s=3.0, procs_blocked=2, stuck_threads=4),
        "io",
    ),
    (
        "io-iowait-blocked",
        Figures(cpu_count=2, cpu_iowait_pct=55.0, procs_blocked=1),
        "io",
    ),
    (
        "suspended-inside",
        Figures(suspended_ms=4200.0, cpu_busy_pct=99.0, runq_per_core=4.5),
        "suspend-adjacent",
    ),
    (
        "resumed-just-before",
        Figures(last_resume_ago_s=3.5, psi_io_some=50.0, stuck_threads=3),
        "suspend-adjacent",
    ),
    (
        "quiet",
        Figures(cpu_count=2, cpu_busy_pct=8.0, runq_per_core=0.5, psi_cpu_some=0.5, psi_memory_some=0.0,
                psi_io_some=0.4, pageins_per_s=0.0, procs_blocked=0, stuck_threads=0),
        "unknown",
    ),
    (
        # memory PSI without paging is not enough to call it memory (e.g. cgroup limits elsewhere)
        "memory-psi-no-paging",
        Figures(cpu_count=2, psi_memory_some=15.0, pageins_per_s=2.0),
        "unknown",
    ),
    (
        # io pressure with nobody stuck: a throughput-bound copy, not a stall
        "io-pressure-nobody-stuck",
        Figures(cpu_count=2, psi_io_some=40.0, procs_blocked=0, stuck_threads=0),
        "unknown",
    ),
    (
        "resume-long-ago",
        Figures(last_resume_ago_s=600.0, cpu_busy_pct=5.0),
        "unknown",
    ),
    (
        # Right after a freeze every thawed task is runnable at once on idle cores: an instant
        # run queue, no contention over the stall.
        "thawed-run-queue-on-idle-cores",
        Figures(cpu_count=2, cpu_busy_pct=4.0, runq_per_core=4.0, psi_cpu_some=1.0),
        "unknown",
    ),
    (
        # Recorded: the pipeline frozen 1 s while another engineer's load kept the cores 63 % busy;
        # the sample after the thaw read procs_running 5 on 2 cores, yet cpu PSI was 2.1 %.
        "freeze-on-a-busy-machine-nobody-waited",
        Figures(cpu_count=2, cpu_busy_pct=62.9, runq_per_core=2.5, psi_cpu_some=2.1, psi_io_some=0.5),
        "unknown",
    ),
    (
        # Saturated by work nobody waited for (PSI says so): at work, not stalled.
        "saturated-but-nobody-waiting",
        Figures(cpu_count=2, cpu_busy_pct=100.0, psi_cpu_some=6.0),
        "unknown",
    ),
    (
        # Recorded: SCHED_FIFO loops on both cores while another engineer's memory thrash kept io
        # PSI at 48 % with 3 tasks in D: the sentinel waited for a core, not for the disk.
        "cpu-stall-beside-io-pressure",
        Figures(cpu_count=2, cpu_busy_pct=100.0, psi_cpu_some=98.3, psi_io_some=48.1, psi_io_full=0.0,
                psi_memory_some=3.7, procs_blocked=3),
        "cpu",
    ),
    (
        "memory-stronger-than-cpu",
        Figures(cpu_count=2, psi_cpu_some=55.0, psi_memory_some=80.0, psi_memory_full=40.0),
        "memory",
    ),
    ("nothing-known", Figures(), "unknown"),
]


@pytest.mark.parametrize("name,figures,expected", TABLE, ids=[row[0] for row in TABLE])
def test_classify_table(name: str, figures: Figures, expected: str) -> None:
    label, evidence = cause.classify(figures)
    assert label == expected, evidence.rule
    assert evidence.rule
    # The evidence carries the figures that decided it and the thresholds they met.
    assert evidence.threshold_cpu_busy_pct == CauseConfig().cpu_busy_pct
    assert evidence.cpu_busy_pct == figures.cpu_busy_pct
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in msgspec.to_builtins(evidence).values())


def test_evidence_is_a_valid_forensics_done_field() -> None:
    label, evidence = cause.classify(TABLE[3][1])
    msg = m.ForensicsDone(
        sender="f", incarnation="i", seq=1, sent_at=0.0, pause_ids=["p"], bundle_path="/x",
        artifacts=[], culprits=[], cause=label, evidence=evidence,
    )
    from pmshared.codec import Codec

    codec = Codec(m.ForensicsDone)
    assert codec.decode(codec.encode(msg)).evidence.psi_memory_some == 38.0


def test_thresholds_come_from_the_config_section() -> None:
    busy = Figures(cpu_count=2, cpu_busy_pct=93.0)
    assert cause.classify(busy)[0] == "cpu"
    strict = config.parse("[forensics.cause]\ncpu_busy_pct = 95\n").forensics.cause
    label, evidence = cause.classify(busy, strict)
    assert label == "unknown" and evidence.threshold_cpu_busy_pct == 95.0


@pytest.mark.parametrize("line", [
    "cpu_busy_pct = 101", "io_stuck = 0", "stall_share_min = 0", "cpu_runq_per_core = -1", "psi = 3",
])
def test_cause_thresholds_out_of_range_are_one_line_errors(line: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.parse(f"[forensics.cause]\n{line}\n", "cfg.toml")
    assert str(err.value).startswith("cfg.toml: forensics.cause.") and "\n" not in str(err.value)


# --------------------------------------------------------------------------- from samples

T0 = 1_800_000_000.0  # the pause starts here


def sample(end: float, seconds: float, **figures: object) -> Interval:
    return Interval(T0 + end - seconds, T0 + end, system(**figures), "live")


def test_a_load_that_ended_before_the_pause_does_not_explain_it() -> None:
    """Issue 16's recorded case: a 1.2 s pause 3 s after a load ended was labelled cpu by
    load1/cpu_count = 2.02 while the cores were 2.7 % busy and cpu PSI 0.7 %."""
    loaded = dict(cpu_busy_pct=100.0, psi_cpu=m.PressureStall(some=90.0), procs_running=5, load1=4.04)
    quiet = dict(cpu_busy_pct=2.7, psi_cpu=m.PressureStall(some=0.7), procs_running=1, load1=4.04)
    samples = [sample(-3.0, 1.0, **loaded), sample(-2.0, 1.0, **quiet), sample(-1.0, 1.0, **quiet),
               sample(1.3, 2.3, **quiet), sample(2.3, 1.0, **quiet)]
    figures = cause.gather([(T0, T0 + 1.2)], samples)
    label, evidence = cause.classify(figures)
    assert label == "unknown", evidence.rule
    assert figures.samples == 1  # only the sample spanning the stall (also the first after it)
    assert evidence.cpu_busy_pct == 2.7 and "load1" not in msgspec.to_builtins(evidence)
    assert evidence.cpu_busy_pct_over == "+0.00..+1.20 s (stall estimate; sample -1.00..+1.30 s live)"
    assert evidence.runq_per_core_over == "at +1.30 s (instant, live sample)"


def test_a_figure_is_estimated_over_the_stall_when_the_sample_is_longer() -> None:
    # 0.95 s at 100 % inside a 1.5 s sample that began 0.55 s before the stall, after a sample
    # at 7 %: the sample reads 65.9 %, the stall itself was saturated.
    before = sample(-0.55, 1.0, cpu_busy_pct=7.0, psi_cpu=m.PressureStall(some=1.0))
    spanning = sample(0.95, 1.5, cpu_busy_pct=(0.95 * 100 + 0.55 * 7) / 1.5,
                      psi_cpu=m.PressureStall(some=(0.95 * 95 + 0.55 * 1) / 1.5))
    figures = cause.gather([(T0, T0 + 0.95)], [before, spanning])
    assert figures.cpu_busy_pct == 100.0 and figures.psi_cpu_some == 95.0
    label, evidence = cause.classify(figures)
    assert label == "cpu"
    assert evidence.cpu_busy_pct_over == "+0.00..+0.95 s (stall estimate; sample -0.55..+0.95 s live)"
    # Without the sample before, nothing says what the rest of the interval was: as measured.
    alone = cause.gather([(T0, T0 + 0.95)], [spanning])
    assert alone.cpu_busy_pct == round((0.95 * 100 + 0.55 * 7) / 1.5, 2)


def test_a_short_stall_in_a_long_sample_is_not_amplified() -> None:
    # 0.25 s of a 1.25 s sample: a 30 % vs 22 % difference would "estimate" 62 % over the stall.
    before = sample(-1.0, 1.0, cpu_busy_pct=22.0)
    spanning = sample(0.25, 1.25, cpu_busy_pct=30.0)
    figures = cause.gather([(T0, T0 + 0.25)], [before, spanning])
    assert figures.cpu_busy_pct == 30.0 and figures.over["cpu_busy_pct"].endswith("(whole sample)")
    share = CauseConfig(stall_share_min=0.2)
    assert cause.gather([(T0, T0 + 0.25)], [before, spanning], thresholds=share).cpu_busy_pct == 62.0


def test_the_worst_of_each_figure_over_the_covering_samples() -> None:
    samples = [
        sample(-5.0, 1.0, cpu_busy_pct=100.0, pageins=9000.0),  # before the stall: never counted
        sample(0.5, 1.0, cpu_busy_pct=20.0, psi_memory=m.PressureStall(some=2.0, full=0.0), pageins=5.0),
        sample(1.5, 1.0, cpu_busy_pct=40.0, procs_blocked=2, psi_io=m.PressureStall(some=30.0)),
        sample(2.5, 1.0, psi_memory=m.PressureStall(some=25.0, full=1.0), pageins=900.0),  # after it
        sample(3.5, 1.0, cpu_busy_pct=99.0),  # second after: never counted
    ]
    f = cause.gather([(T0 + 0.2, T0 + 1.8)], samples, stuck_threads=1)
    assert (f.cpu_busy_pct, f.procs_blocked, f.stuck_threads, f.samples) == (40.0, 2, 1, 3)
    assert (f.psi_memory_some, f.psi_memory_full, f.psi_io_some, f.psi_io_full) == (25.0, 1.0, 30.0, None)
    assert f.pageins_per_s == 900.0 and f.cpu_count == 2
    assert f.over["pageins_per_s"] == "+1.30..+2.30 s live (whole sample)"  # from the stall start
    assert cause.classify(f)[0] == "memory"


def test_forensics_own_readings_count_only_when_no_sample_covers_the_stall() -> None:
    across = Interval(T0 - 1.5, T0 + 2.0, system(cpu_busy_pct=97.0), "proc")
    covered = cause.gather([(T0, T0 + 1.0)], [sample(1.2, 1.6, cpu_busy_pct=3.0)], fallback=[across])
    assert covered.cpu_busy_pct == 3.0
    bare = cause.gather([(T0, T0 + 1.0)], [sample(-2.0, 1.0, cpu_busy_pct=3.0)], fallback=[across])
    assert bare.cpu_busy_pct == 97.0 and bare.over["cpu_busy_pct"] == "-1.50..+2.00 s proc (whole sample)"


def test_gather_of_nothing_is_unknown_not_an_error() -> None:
    f = cause.gather([(T0, T0 + 1.0)], [])
    assert f.samples == 0 and f.cpu_busy_pct is None
    assert cause.classify(f)[0] == "unknown"


def test_the_pause_snapshot_interval_comes_from_its_twin_in_the_ring_or_the_sample_before() -> None:
    stats = system(cpu_busy_pct=88.0, procs_running=3)
    p = pause("c:1", T0, 1000.0, sys_stats=stats)
    p = m.Pause(**{**{f: getattr(p, f) for f in p.__struct_fields__}, "sent_at": T0 + 1.1})
    earlier = live(T0 - 0.4, [], system(cpu_busy_pct=5.0))
    # Not yet in the ring: from the previous sample to the moment the Pause was sent.
    iv = stall_window.pause_interval(p, stall_window.live_intervals([earlier]))
    assert iv is not None and (iv.start, iv.end, iv.source) == (T0 - 0.4, T0 + 1.1, "pause")
    # The same snapshot reached the ring through the scorer: its own elapsed time says it all.
    twin = live(T0 + 1.08, [], stats)
    twin = m.LiveSample(**{**{f: getattr(twin, f) for f in twin.__struct_fields__},
                           "samples": m.ProcessSamples(**{**{f: getattr(twin.samples, f) for f in
                                                             twin.samples.__struct_fields__}, "elapsed_ms": 1480.0})})
    iv = stall_window.pause_interval(p, stall_window.live_intervals([earlier, twin]))
    assert iv is not None and (round(iv.start - T0, 3), iv.end) == (-0.4, T0 + 1.08)
    assert stall_window.pause_interval(pause("c:2", T0), []) is None  # no system: nothing to place


def test_evidence_is_a_valid_forensics_done_field_with_intervals() -> None:
    f = cause.gather([(T0, T0 + 1.0)], [sample(1.2, 1.6, cpu_busy_pct=3.0, procs_running=1)])
    label, evidence = cause.classify(f)
    msg = m.ForensicsDone(
        sender="f", incarnation="i", seq=1, sent_at=0.0, pause_ids=["p"], bundle_path="/x",
        artifacts=[], culprits=[], cause=label, evidence=evidence,
    )
    from pmshared.codec import Codec

    codec = Codec(m.ForensicsDone)
    assert codec.decode(codec.encode(msg)).evidence.cpu_busy_pct_over == "-0.40..+1.20 s live (whole sample)"


def test_the_rule_names_the_other_contended_resources() -> None:
    f = Figures(cpu_count=2, cpu_busy_pct=100.0, psi_cpu_some=98.3, psi_io_some=48.1, procs_blocked=3)
    label, evidence = cause.classify(f)
    assert label == "cpu"
    assert evidence.rule == ("psi_cpu_some=98.3 >= 50 (cores 100.0% busy); "
                                "also io (io pressure (some=48.1, full=None) with 3 stuck task(s))")
