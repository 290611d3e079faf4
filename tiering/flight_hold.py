"""Flight samples leave tiering in pairs, so the recorder takes two at a time.

Why: at 1 Hz the recorder's share of a flight sample is mostly paid per message and cold: its
wake-up, ZeroMQ's hand-over, the decode, a transaction. Two sent back to back arrive together, and
the recorder takes them in one wake-up and commits them in one transaction with one durable point
(README, "The flight recorder": its added CPU a sample fell by about a third).

The rule: an encoded sample is held until a second one comes, or until it has waited ``hold_s``
(a slower sampling interval, a collector that stopped), less ``slack_s`` on a wake-up that comes
anyway (a heartbeat), which then sends it instead of waking once more at the deadline. Whatever is
held goes at shutdown. A ``kill -9`` of tiering loses what it holds: at 1 Hz at most one sample,
under ``hold_s`` old. The recorder holds nothing, so a kill of the recorder loses nothing that
tiering sent (the samples it sends meanwhile wait in its queue for the recorder's restart).
"""

from __future__ import annotations

HOLD_S = 1.0
HOLD_SLACK_S = 0.25
PAIR = 2


class FlightHold:
    def __init__(self, *, hold_s: float = HOLD_S, slack_s: float = HOLD_SLACK_S, batch: int = PAIR) -> None:
        self.hold_s, self.slack_s, self.batch = hold_s, slack_s, batch
        self.held: list[bytes] = []
        self.since: float | None = None  # when the first of them was held

    def add(self, frame: bytes, now: float) -> list[bytes]:
        """Hold one encoded sample; returns what is to be sent now (maybe nothing)."""
        if not self.held:
            self.since = now
        self.held.append(frame)
        return self.take_due(now)

    def take_due(self, now: float) -> list[bytes]:
        """What is to be sent now: everything held, once a pair is complete or the first has waited."""
        if self.since is None:
            return []
        if len(self.held) >= self.batch or now >= self.since + self.hold_s - self.slack_s:
            return self.take_all()
        return []

    def take_all(self) -> list[bytes]:
        held, self.held, self.since = self.held, [], None
        return held

    def seconds_until_due(self, now: float) -> float | None:
        """How long the loop may sleep before a held sample must go (None: nothing held)."""
        if self.since is None:
            return None
        return max(0.0, self.since + self.hold_s - now)
