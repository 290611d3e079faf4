"""Tiering without sockets: scored samples in, the live sample and event records out.

``Tiering.handle(samples, now)`` runs the tier state machine, keeps the ring buffer and turns tier
actions into records for the recorder, the way the seed's daemon main loop did
(``_handle_tier_action`` / ``_save_event_sample``):

- entering tier 2 opens an event and saves the entry sample as a tier-2 sample;
- a new peak while in tier 2 saves that sample (tier 2, ``tier2_peak``);
- entering tier 3 opens the event if tier 1 jumped straight to 3, and saves the entry sample as a
  tier-3 sample; every later sample while in tier 3 is saved too (continuous);
- leaving tier 3 saves nothing by itself (the event goes on in tier 2);
- returning to tier 1 closes the event with its peak score and peak tier;
- while an event is open, every sample's rogues at the elevated threshold are tallied
  (``culprit_tally``): who the event is about over its whole length goes to the recorder as
  ``EventCulprits`` with each of the event's first few samples, then when the leader or its
  categories change, every ``CULPRITS_EVERY_S`` otherwise, and just before the event closes.

Times: an event's start and end are its samples' wall-clock timestamps (labels for people and
storage); its length is measured on ``now``, the clock ``handle`` is given (monotonic in the
pipeline), and sent as ``EventClosed.duration_ms``, so setting the clock during an event (date -s,
an NTP step) moves its labels but not its duration.

Differences from the seed: an event's peak score is the highest max score of any of its samples
(the seed missed rises inside tier 3); times are the samples' own timestamps, so a record always
agrees with the sample it describes; ring entries carry the tier the sample produced (the seed
stored the tier before the update), the same tier its LiveSample shows. On start a
``TieringStarted`` record announces the incarnation, so the recorder can close events an earlier
incarnation left open as interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from pmshared import messages as m
from pmshared.codec import Stamper
from pmshared.config import Config
from pmshared.flight_codec import flight_fields

from tiering.culprit_tally import CulpritTally
from tiering.ring import RingBuffer, capacity
from tiering.tiers import CRITICAL, TierAction, TierManager

SENDER = "tiering"
# How often a long event's tally is re-sent when only its sums moved (its leader changing is sent
# at once): the stored sums lag the event by at most this, and the recorder writes a row for each.
CULPRITS_EVERY_S = 10.0
# An event's first tallied samples are each sent: its first seconds are when someone runs `pmctl
# events` to see what is going on, and when its sums move the most.
CULPRITS_EACH_FIRST = 5


@dataclass(frozen=True)
class Outputs:
    """What one sample produces: the live sample to publish, the event records to send (in order)
    and the sample for the flight recorder's continuous record (its own socket, see main.py)."""

    live: m.LiveSample
    records: list[m.Record] = field(default_factory=list)
    flight: m.FlightSample | None = None


@dataclass
class _OpenEvent:
    key: str
    start: float
    peak_score: int
    peak_tier: int
    opened_at: float  # on the caller's clock (``now``): what the duration is measured on
    tally: CulpritTally
    sent_leader: tuple[int, tuple[str, ...]] | None = None
    sent_at: float | None = None  # when its tally was last sent (``now``)


class Tiering:
    def __init__(self, config: Config, incarnation: str) -> None:
        self.incarnation = incarnation
        self.tiers = TierManager(
            config.tiers.elevated_threshold,
            config.tiers.critical_threshold,
            config.tiers.deescalation_delay_s,
        )
        self.ring = RingBuffer(
            capacity(config.sentinel.ring_buffer_seconds, config.sampling.interval_s)
        )
        # One stamper per output stream, so each stream's seq has no gaps of its own making.
        self._live = Stamper(SENDER, incarnation)
        self._record = Stamper(SENDER, incarnation)
        self._reply = Stamper(SENDER, incarnation)
        self._flight = Stamper(SENDER, incarnation)
        self._event: _OpenEvent | None = None
        self._category_ratio = config.scoring.pressure.category_ratio
        self._events_opened = 0
        self._tier_since: float | None = None

    # -- queries ---------------------------------------------------------------------------------
    @property
    def state(self) -> m.TierState:
        return m.TierState(
            tier=self.tiers.tier,
            tier_since=self._tier_since,
            peak_score=self.tiers.peak_score,
            event_key=self._event.key if self._event else None,
        )

    def snapshot_reply(self) -> m.SnapshotReply:
        """The ring buffer and state, for a viewer that is joining (Clone pattern)."""
        return self._reply(
            m.SnapshotReply,
            ring=self.ring.entries(),
            state=self.state,
            last_live_seq=self._live.seq,
            live_incarnation=self.incarnation,
        )

    # -- commands --------------------------------------------------------------------------------
    def start(self) -> list[m.Record]:
        """Records to send once, before the first sample: this incarnation has begun."""
        return [self._record(m.TieringStarted)]

    def handle(self, samples: m.ProcessSamples, now: float) -> Outputs:
        """One scored sample; ``now`` is the clock the de-escalation delay is measured on.

        The minute's whole process table (``samples.table``, ~85 KB) goes only to the flight
        record: no viewer, ring entry or event sample shows it, and it would otherwise travel to
        every ``pmctl watch`` client and sit in the ring and in each snapshot reply."""
        full = samples
        if samples.table is not None:
            samples = msgspec.structs.replace(samples, table=None)
        action = self.tiers.update(samples.max_score, now)
        tier = self.tiers.tier
        records = self._records_for(action, tier, samples, now)
        if action is not None and action is not TierAction.TIER2_PEAK:
            self._tier_since = samples.timestamp
        self.ring.push(samples, tier)
        state = self.state
        live = self._live(m.LiveSample, samples=samples, state=state, buffer_len=len(self.ring))
        flight = self._flight(m.FlightSample, **flight_fields(full, state))
        return Outputs(live=live, records=records, flight=flight)

    # -- event bookkeeping -----------------------------------------------------------------------
    def _records_for(
        self, action: TierAction | None, tier: int, samples: m.ProcessSamples, now: float
    ) -> list[m.Record]:
        score = samples.max_score
        out: list[m.Record] = []
        if self._event is not None:
            self._event.peak_score = max(self._event.peak_score, score)

        if action is TierAction.TIER2_ENTRY:
            event = self._open(samples, tier=2, out=out, now=now)
            out.append(self._sample(event, samples, 2, action))
        elif action is TierAction.TIER2_PEAK and self._event is not None:
            out.append(self._sample(self._event, samples, 2, action))
        elif action is TierAction.TIER3_ENTRY:
            event = self._event or self._open(samples, tier=3, out=out, now=now)
            event.peak_tier = 3
            out.append(self._sample(event, samples, 3, action))
        elif action is TierAction.TIER2_EXIT and self._event is not None:
            event, self._event = self._event, None
            self._tally(event, samples, now, out, final=True)  # before the close it completes
            out.append(
                self._record(
                    m.EventClosed,
                    event_key=event.key,
                    start=event.start,
                    end=samples.timestamp,
                    peak_score=event.peak_score,
                    peak_tier=event.peak_tier,
                    duration_ms=round(max(now - event.opened_at, 0.0) * 1000.0, 1),
                )
            )

        # Tier 3 saves every sample; its entry sample was saved above.
        if tier == CRITICAL and action is not TierAction.TIER3_ENTRY and self._event is not None:
            out.append(self._sample(self._event, samples, 3, None))
        if self._event is not None:
            self._tally(self._event, samples, now, out)
        return out

    def _tally(self, event: _OpenEvent, samples: m.ProcessSamples, now: float, out: list[m.Record],
               final: bool = False) -> None:
        """Add the sample to the event's tally; send it while the event is young, when its leader
        changed, when it is due, or (``final``) before the event closes.

        Only samples at the elevated threshold count: the event is about the seconds the machine
        was stressed, not its calm tail (the de-escalation delay), where whoever ran then, a
        `pmctl` the user started to look, say, would add up seconds of small scores."""
        young = False
        if samples.max_score >= self.tiers.elevated_threshold:
            event.tally.add(samples.rogues)
            young = event.tally.samples <= CULPRITS_EACH_FIRST
        leader = event.tally.leader()
        due = event.sent_at is None or now - event.sent_at >= CULPRITS_EVERY_S
        if final or young or leader != event.sent_leader or due:
            event.sent_leader, event.sent_at = leader, now
            out.append(self._record(m.EventCulprits, event_key=event.key, event_start=event.start,
                                    culprits=event.tally.culprits()))

    def _open(self, samples: m.ProcessSamples, tier: int, out: list[m.Record], now: float) -> _OpenEvent:
        self._events_opened += 1
        event = self._event = _OpenEvent(
            key=f"{self.incarnation}:{self._events_opened}",
            start=samples.timestamp,
            peak_score=samples.max_score,
            peak_tier=tier,
            opened_at=now,
            tally=CulpritTally(self._category_ratio),
        )
        out.append(
            self._record(
                m.EventOpened,
                event_key=event.key,
                start=event.start,
                tier=tier,
                score=samples.max_score,
            )
        )
        return event

    def _sample(
        self, event: _OpenEvent, samples: m.ProcessSamples, tier: int, action: TierAction | None
    ) -> m.EventSample:
        return self._record(
            m.EventSample,
            event_key=event.key,
            event_start=event.start,
            tier=tier,
            action=str(action) if action is not None else None,
            samples=samples,
        )
