"""The tier state machine driven by scripted (time, score) sequences on a fake clock."""

from __future__ import annotations

import pytest

from tiering.tiers import TierAction as A
from tiering.tiers import TierManager

E2, E3 = A.TIER2_ENTRY, A.TIER3_ENTRY
X2, X3 = A.TIER2_EXIT, A.TIER3_EXIT
P2 = A.TIER2_PEAK


def run(script: list[tuple[float, int]], **kwargs) -> tuple[TierManager, list[tuple[A | None, int]]]:
    """Feed (now, score) pairs; [(action, tier after)] per step."""
    tm = TierManager(**kwargs)
    return tm, [(tm.update(score, now), tm.tier) for now, score in script]


SCRIPTS = [
    (
        "below elevated stays in tier 1",
        [(0, 0), (1, 34), (2, 20)],
        [(None, 1), (None, 1), (None, 1)],
    ),
    (
        "elevated threshold is inclusive; higher scores while elevated are peaks",
        [(0, 35), (1, 40), (2, 38), (3, 40), (4, 64)],
        [(E2, 2), (P2, 2), (None, 2), (None, 2), (P2, 2)],
    ),
    (
        "critical threshold is inclusive, from tier 2 and straight from tier 1",
        [(0, 40), (1, 65), (2, 90)],
        [(E2, 2), (E3, 3), (None, 3)],
    ),
    (
        "tier 1 jumps straight to tier 3",
        [(0, 10), (1, 80)],
        [(None, 1), (E3, 3)],
    ),
    (
        "tier 2 -> 1 after the delay: 4.9 s below stays, 5.0 s de-escalates",
        [(0, 50), (1, 10), (5.9, 10), (6.0, 10)],
        [(E2, 2), (None, 2), (None, 2), (X2, 1)],
    ),
    (
        "a score back above the threshold restarts the delay",
        [(0, 50), (1, 10), (4, 36), (5, 10), (9.9, 10), (10, 10)],
        [(E2, 2), (None, 2), (None, 2), (None, 2), (None, 2), (X2, 1)],
    ),
    (
        "tier 3 -> 2 after the delay, then tier 2's own delay starts on the next low sample",
        [(0, 70), (1, 50), (5.9, 50), (6, 50), (7, 10), (11.9, 10), (12, 10)],
        [(E3, 3), (None, 3), (None, 3), (X3, 2), (None, 2), (None, 2), (X2, 1)],
    ),
    (
        "tier 3 -> 2 -> 1 with scores below both thresholds",
        [(0, 40), (1, 70), (2, 0), (7, 0), (8, 0), (13, 0)],
        [(E2, 2), (E3, 3), (None, 3), (X3, 2), (None, 2), (X2, 1)],
    ),
    (
        "a score between the thresholds ends tier 3 but keeps tier 2",
        [(0, 70), (1, 40), (6, 40), (20, 40), (30, 40)],
        [(E3, 3), (None, 3), (X3, 2), (None, 2), (None, 2)],
    ),
    (
        "after tier 1 the next elevation is a fresh entry",
        [(0, 40), (1, 0), (6, 0), (7, 36)],
        [(E2, 2), (None, 2), (X2, 1), (E2, 2)],
    ),
    (
        # The seed kept tier 2's low timer across a tier-3 spike; left to run it would have
        # ended tier 2 on the first low sample after tier 3 (9 - 1 >= 5).
        "a tier-2 low timer does not survive a tier-3 spike",
        [(0, 40), (1, 10), (2, 70), (3, 10), (8, 10), (9, 10), (13.9, 10), (14, 10)],
        [(E2, 2), (None, 2), (E3, 3), (None, 3), (X3, 2), (None, 2), (None, 2), (X2, 1)],
    ),
]


@pytest.mark.parametrize(("script", "expected"), [(s, e) for _, s, e in SCRIPTS], ids=[d for d, _, _ in SCRIPTS])
def test_scripted_transitions(script, expected):
    _, steps = run(script)
    assert steps == expected


def test_thresholds_and_delay_come_from_the_caller():
    _, steps = run([(0, 20), (1, 50), (2, 0), (2.5, 0)], elevated_threshold=20, critical_threshold=50, deescalation_delay_s=0.5)
    assert steps == [(E2, 2), (E3, 3), (None, 3), (X3, 2)]


def test_zero_delay_still_needs_a_second_low_sample():
    _, steps = run([(0, 40), (1, 0), (1, 0)], deescalation_delay_s=0.0)
    assert steps == [(E2, 2), (None, 2), (X2, 1)]


def test_peak_score_and_entry_times():
    tm = TierManager()
    tm.update(40, 10.0)
    assert (tm.peak_score, tm.tier2_entry_time, tm.tier3_entry_time) == (40, 10.0, None)
    tm.update(70, 11.0)
    assert (tm.peak_score, tm.tier2_entry_time, tm.tier3_entry_time) == (70, 10.0, 11.0)
    assert tm.update(90, 12.0) is None  # tier 3 peaks are tracked silently
    assert tm.peak_score == 90
    for now in (13.0, 18.0):
        tm.update(50, now)
    assert tm.tier == 2 and tm.tier3_entry_time is None and tm.peak_score == 90
    for now in (19.0, 24.0):
        tm.update(0, now)
    assert (tm.tier, tm.peak_score, tm.tier2_entry_time) == (1, 0, None)


def test_direct_jump_to_tier_3_marks_the_start_of_elevation():
    tm = TierManager()
    tm.update(99, 3.0)
    assert (tm.tier, tm.tier2_entry_time, tm.tier3_entry_time, tm.peak_score) == (3, 3.0, 3.0, 99)
