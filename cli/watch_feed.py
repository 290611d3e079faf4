"""What `pmctl watch` knows about the live pipeline: the Clone pattern's viewer side, without sockets.

Tiering answers a snapshot request with its ring buffer and the seq of the last LiveSample it
published; the viewer subscribes to the "live" feed *before* asking, keeps what arrives meanwhile,
then drops every update at or below that seq and counts the holes after it. A LiveSample from a new
tiering incarnation means the ring we hold is someone else's: ask again.

``Link`` is the connection policy (when to ask, when to give up and back off), driven by a clock
passed in, so both are tested without sockets or sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from pmshared import messages as m

PENDING_MAX = 256  # live samples held while a snapshot is on its way (a few minutes at 1 Hz)

Outcome = Literal["applied", "stale", "pending", "resync"]


@dataclass
class FeedState:
    capacity: int = 30  # ring length until tiering tells us (LiveSample.buffer_len)
    ring: deque[m.RingEntry] = field(default_factory=deque)
    tier: m.TierState | None = None
    live_incarnation: str | None = None
    last_seq: int = 0
    synced: bool = False
    snapshots: int = 0  # snapshots applied (more than one = resynchronised)
    updates: int = 0  # live samples applied
    gaps: int = 0  # live samples we never saw (seq holes)
    stale: int = 0  # live samples dropped as already contained in the snapshot
    buffer_len: int = 0
    last_update_wall: float | None = None  # sent_at of the newest thing applied
    pending: list[m.LiveSample] = field(default_factory=list)

    # -- input ---------------------------------------------------------------------------------
    def apply_snapshot(self, reply: m.SnapshotReply) -> None:
        self.ring = deque(reply.ring)
        self.capacity = max(self.capacity, len(reply.ring))
        self.buffer_len = len(reply.ring)
        self.tier = reply.state
        self.live_incarnation = reply.live_incarnation
        self.last_seq = reply.last_live_seq
        self.synced = True
        self.snapshots += 1
        self.last_update_wall = reply.sent_at
        held, self.pending = self.pending, []
        for sample in sorted(held, key=lambda s: s.seq):
            self.apply_live(sample)

    def apply_live(self, sample: m.LiveSample) -> Outcome:
        if not self.synced:
            if len(self.pending) >= PENDING_MAX:
                self.pending.pop(0)
            self.pending.append(sample)
            return "pending"
        if sample.incarnation != self.live_incarnation:
            # Tiering restarted: its seq numbers start again and our ring is stale.
            self.synced = False
            self.pending = [sample]
            return "resync"
        if sample.seq <= self.last_seq:
            self.stale += 1
            return "stale"
        if sample.seq > self.last_seq + 1:
            self.gaps += sample.seq - self.last_seq - 1
        self.last_seq = sample.seq
        self.ring.append(m.RingEntry(samples=sample.samples, tier=sample.state.tier))
        if sample.buffer_len > 0:
            self.capacity = sample.buffer_len
        while len(self.ring) > self.capacity:
            self.ring.popleft()
        self.buffer_len = sample.buffer_len or len(self.ring)
        self.tier = sample.state
        self.updates += 1
        self.last_update_wall = sample.sent_at
        return "applied"

    def desync(self) -> None:
        """The pipeline went away: keep the last picture, but the next snapshot starts afresh."""
        self.synced = False
        self.pending = []

    # -- views ---------------------------------------------------------------------------------
    @property
    def latest(self) -> m.ProcessSamples | None:
        return self.ring[-1].samples if self.ring else None

    def max_scores(self) -> list[int]:
        return [entry.samples.max_score for entry in self.ring]

    def latest_sentinel(self) -> m.SentinelStats | None:
        for entry in reversed(self.ring):
            if entry.samples.sentinel is not None:
                return entry.samples.sentinel
        return None


LinkState = Literal["connecting", "live", "down"]


@dataclass
class Link:
    """When to ask tiering for a snapshot, and how long to wait before asking again.

    connecting --reply--> live --no sample for stall_s--> connecting --no reply in timeout_s--> down
    down --back-off elapsed (or a live sample arrived)--> connecting. The back-off doubles up to a
    cap (the Paranoid Pirate's reconnect) and resets once a snapshot arrives.
    """

    timeout_s: float = 1.5
    stall_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    state: LinkState = "connecting"
    deadline: float = 0.0  # connecting: give up at; down: retry at
    backoff_s: float = 0.0
    attempts: int = 0  # snapshot requests sent
    failures: int = 0  # requests nobody answered
    last_heard: float = 0.0

    def __post_init__(self) -> None:
        self.backoff_s = self.backoff_initial_s

    def start_request(self, now: float) -> None:
        self.state = "connecting"
        self.deadline = now + self.timeout_s
        self.attempts += 1

    def got_snapshot(self, now: float) -> None:
        self.state = "live"
        self.backoff_s = self.backoff_initial_s
        self.last_heard = now

    def got_live(self, now: float) -> None:
        self.last_heard = now
        if self.state == "down":
            self.deadline = now  # the pipeline is back: ask at once instead of waiting out the back-off

    def tick(self, now: float) -> Literal["request", "wait"]:
        """Advance by the clock; "request" means: (re)create the request socket and ask now."""
        if self.state == "connecting" and now >= self.deadline:
            self.state = "down"
            self.failures += 1
            self.deadline = now + self.backoff_s
            self.backoff_s = min(self.backoff_s * 2, self.backoff_max_s)
            return "wait"
        if self.state == "down" and now >= self.deadline:
            return "request"
        if self.state == "live" and now - self.last_heard >= self.stall_s:
            return "request"
        return "wait"

    def retry_in(self, now: float) -> float:
        return max(self.deadline - now, 0.0) if self.state == "down" else 0.0
