"""Holding flight samples for up to a second, so two at 1 Hz share one transaction and durable point.

Why: on a shared VM nearly all of a flight sample's CPU in the recorder is paid cold, once a
second: decode, rounding and encoding, SQLite's insert and commit, the fsync each run ~2x slower
than back to back (bench/flight_store_cpu.py, ``--gap``). Two samples written together pay the
cold start, the commit and the durable point once (README, "The flight recorder").

The rule: a record of a held kind (``FlightSample``) may wait in the writer's queue until the first
record now waiting is ``hold_s`` old; any other record (events, pauses) is written at once, and the
held ones with it. A wake-up within ``slack_s`` of that moment (the next sample at 1 Hz, a
heartbeat) writes them then instead of waking once more at the deadline. So at 1 Hz samples go in
pairs, and a ``kill -9`` of the recorder loses at most the samples of the last ``hold_s``.
"""

from __future__ import annotations

HOLD_S = 1.0
HOLD_SLACK_S = 0.25


class HoldPolicy:
    def __init__(self, kinds: tuple[type, ...], *, hold_s: float = HOLD_S, slack_s: float = HOLD_SLACK_S) -> None:
        self.kinds, self.hold_s, self.slack_s = kinds, hold_s, slack_s
        self.since: float | None = None  # arrival of the first record waiting
        self.urgent = False  # a record that must not wait is among them

    def arrived(self, record: object, now: float) -> None:
        if self.since is None:
            self.since = now
        if not isinstance(record, self.kinds):
            self.urgent = True

    def due(self, now: float) -> bool:
        """Write now? (Also true when nothing waits: the caller then has nothing to write.)"""
        return self.since is None or self.urgent or now >= self.since + self.hold_s - self.slack_s

    def seconds_until_due(self, now: float) -> float:
        """How long the loop may sleep before the held records must be written (0: now)."""
        if self.since is None or self.urgent:
            return 0.0
        return max(0.0, self.since + self.hold_s - now)

    def emptied(self) -> None:
        """Everything waiting was written."""
        self.since, self.urgent = None, False
