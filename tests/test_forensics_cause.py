"""Cause classification: a table of recorded figures and the label each must get."""

from __future__ import annotations

import pytest

from forensics import cause
from forensics.cause import Figures
from pmshared import messages as m
from tests.forensics_helpers import system

# Figures as the collector reports them (percent, per-second rates), from real windows:
# a build saturating both cores; a browser swapping under memory pressure; a USB disk stuck in
# writeback; a laptop resumed from suspend; an idle machine.
TABLE = [
    (
        "cpu-saturated",
        Figures(cpu_count=2, cpu_busy_pct=99.5, load1=7.8, psi_cpu_some=72.0, psi_memory_some=0.0,
                psi_io_some=1.2, pageins_per_s=0.0, procs_blocked=0, stuck_threads=0),
        "cpu",
    ),
    (
        "cpu-steal",
        Figures(cpu_count=4, cpu_busy_pct=40.0, load1=1.0, cpu_steal_pct=35.0),
        "cpu",
    ),
    (
        "cpu-runqueue",
        Figures(cpu_count=2, cpu_busy_pct=80.0, load1=6.0),
        "cpu",
    ),
    (
        "memory-psi-pageins",
        Figures(cpu_count=2, cpu_busy_pct=95.0, load1=4.0, psi_memory_some=38.0, psi_memory_full=6.0,
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
        Figures(suspended_ms=4200.0, cpu_busy_pct=99.0, load1=9.0),
        "suspend-adjacent",
    ),
    (
        "resumed-just-before",
        Figures(last_resume_ago_s=3.5, psi_io_some=50.0, stuck_threads=3),
        "suspend-adjacent",
    ),
    (
        "quiet",
        Figures(cpu_count=2, cpu_busy_pct=8.0, load1=0.3, psi_cpu_some=0.5, psi_memory_some=0.0,
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
    ("nothing-known", Figures(), "unknown"),
]


@pytest.mark.parametrize("name,figures,expected", TABLE, ids=[row[0] for row in TABLE])
def test_classify_table(name: str, figures: Figures, expected: str) -> None:
    label, evidence = cause.classify(figures)
    assert label == expected, evidence["rule"]
    assert evidence["rule"]
    # The evidence carries the figures that decided it and the thresholds they met.
    assert evidence["threshold_cpu_busy_pct"] == cause.CPU_BUSY
    assert evidence["cpu_busy_pct"] == figures.cpu_busy_pct
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in evidence.values())


def test_evidence_is_a_valid_forensics_done_field() -> None:
    label, evidence = cause.classify(TABLE[3][1])
    msg = m.ForensicsDone(
        sender="f", incarnation="i", seq=1, sent_at=0.0, pause_ids=["p"], bundle_path="/x",
        artifacts=[], culprits=[], cause=label, evidence=evidence,
    )
    from pmshared.codec import Codec

    codec = Codec(m.ForensicsDone)
    assert codec.decode(codec.encode(msg)).evidence["psi_memory_some"] == 38.0


def test_gather_takes_the_worst_of_each_figure() -> None:
    systems = [
        system(cpu_busy_pct=20.0, load1=0.5, psi_memory=m.PressureStall(some=2.0, full=0.0), pageins=5.0),
        system(cpu_busy_pct=97.0, load1=3.0, procs_blocked=2, psi_io=m.PressureStall(some=30.0, full=None)),
        system(cpu_busy_pct=None, psi_memory=m.PressureStall(some=25.0, full=1.0), pageins=900.0),
    ]
    f = cause.gather(systems, suspended_ms=0.0, stuck_threads=1)
    assert (f.cpu_busy_pct, f.load1, f.procs_blocked, f.stuck_threads) == (97.0, 3.0, 2, 1)
    assert (f.psi_memory_some, f.psi_memory_full, f.psi_io_some, f.psi_io_full) == (25.0, 1.0, 30.0, None)
    assert f.pageins_per_s == 900.0 and f.samples == 3 and f.cpu_count == 2
    assert cause.classify(f)[0] == "memory"


def test_gather_of_nothing_is_unknown_not_an_error() -> None:
    f = cause.gather([])
    assert f.samples == 0 and f.cpu_busy_pct is None
    assert cause.classify(f)[0] == "unknown"
