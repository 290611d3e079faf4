"""The tier state machine (the seed's TierManager), driven by each sample's max score.

    tier 1 (sentinel) --score >= elevated--> tier 2 (elevated) --score >= critical--> tier 3
    tier 3 --score < critical for the delay--> tier 2 --score < elevated for the delay--> tier 1

Escalation is immediate (tier 1 jumps straight to 3 on a critical score); de-escalation waits
until the score has stayed below the tier's threshold for ``deescalation_delay_s``, measured from
the first low sample on the caller's clock (``now``, monotonic seconds), so tests script time.
Leaving tier 3 lands in tier 2, whose own delay then starts over: the seed's two-step descent.

Differences from the seed, both fixes of stale state:
- entering tier 3 clears tier 2's low-score timer, so a timer started before a critical spike
  cannot end tier 2 the moment tier 3 is left;
- a direct jump from tier 1 to tier 3 also sets ``tier2_entry_time`` (the machine is elevated
  from then on), which the seed left empty.
"""

from __future__ import annotations

from enum import StrEnum


class TierAction(StrEnum):
    """What a score changed; values are the wire's ``pmshared.messages.TierAction`` literals."""

    TIER2_ENTRY = "tier2_entry"
    TIER2_EXIT = "tier2_exit"
    TIER2_PEAK = "tier2_peak"
    TIER3_ENTRY = "tier3_entry"
    TIER3_EXIT = "tier3_exit"


SENTINEL, ELEVATED, CRITICAL = 1, 2, 3


class TierManager:
    def __init__(
        self,
        elevated_threshold: int = 35,
        critical_threshold: int = 65,
        deescalation_delay_s: float = 5.0,
    ) -> None:
        self.elevated_threshold = elevated_threshold
        self.critical_threshold = critical_threshold
        self.deescalation_delay_s = deescalation_delay_s
        self.tier = SENTINEL
        self.peak_score = 0  # highest score since leaving tier 1; 0 in tier 1
        self.tier2_entry_time: float | None = None  # when the machine became elevated (>= tier 2)
        self.tier3_entry_time: float | None = None
        self._tier2_low_since: float | None = None
        self._tier3_low_since: float | None = None

    def update(self, score: int, now: float) -> TierAction | None:
        """Feed one sample's max score; the action it caused, if any (at most one per sample)."""
        # Escalation first, and immediately.
        if score >= self.critical_threshold and self.tier < CRITICAL:
            if self.tier == SENTINEL:
                self.tier2_entry_time = now
                self.peak_score = 0
            self.tier = CRITICAL
            self.tier3_entry_time = now
            self._tier3_low_since = None
            self._tier2_low_since = None
            self.peak_score = max(self.peak_score, score)
            return TierAction.TIER3_ENTRY

        if score >= self.elevated_threshold and self.tier < ELEVATED:
            self.tier = ELEVATED
            self.tier2_entry_time = now
            self._tier2_low_since = None
            self.peak_score = score
            return TierAction.TIER2_ENTRY

        action = None
        if self.tier >= ELEVATED and score > self.peak_score:
            self.peak_score = score
            # Only tier 2 reports peaks: in tier 3 every sample is saved anyway (seed).
            if self.tier == ELEVATED:
                action = TierAction.TIER2_PEAK

        if self.tier == CRITICAL:
            if score < self.critical_threshold:
                if self._tier3_low_since is None:
                    self._tier3_low_since = now
                elif now - self._tier3_low_since >= self.deescalation_delay_s:
                    self.tier = ELEVATED
                    self.tier3_entry_time = None
                    self._tier3_low_since = None
                    return TierAction.TIER3_EXIT
            else:
                self._tier3_low_since = None

        if self.tier == ELEVATED:
            if score < self.elevated_threshold:
                if self._tier2_low_since is None:
                    self._tier2_low_since = now
                elif now - self._tier2_low_since >= self.deescalation_delay_s:
                    self.tier = SENTINEL
                    self.tier2_entry_time = None
                    self._tier2_low_since = None
                    self.peak_score = 0
                    return TierAction.TIER2_EXIT
            else:
                self._tier2_low_since = None

        return action
