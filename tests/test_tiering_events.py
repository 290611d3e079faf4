"""Tiering's event bookkeeping, ring buffer and snapshot replies, without sockets."""

from __future__ import annotations

import msgspec
import pytest

from pmshared import config as config_mod
from pmshared import messages as m
from pmshared.flight_codec import decode_frame
from tiering.engine import Tiering
from tiering.ring import RingBuffer, capacity
from tests.tiering_helpers import samples

INC = "inc-t"


def feed(engine: Tiering, script: list[tuple[float, int]]):
    """(time, max_score) pairs; time is both the sample's timestamp and the clock."""
    return [engine.handle(samples(score, timestamp=t), now=t) for t, score in script]


def summary(records: list[m.Record]) -> list[tuple]:
    """The event records in order; the culprit tallies between them are tested on their own
    (tests/test_tiering_culprits.py)."""
    out = []
    for r in records:
        match r:
            case m.EventCulprits():
                continue
            case m.EventOpened():
                out.append(("opened", r.event_key, r.tier, r.score, r.start))
            case m.EventSample():
                out.append(("sample", r.event_key, r.tier, r.action, r.samples.max_score))
            case m.EventClosed():
                out.append(("closed", r.event_key, r.start, r.end, r.peak_score, r.peak_tier))
            case _:
                out.append((type(r).__name__,))
    return out


def all_records(outputs) -> list[m.Record]:
    return [r for out in outputs for r in out.records]


def test_start_announces_the_incarnation_first():
    engine = Tiering(config_mod.Config(), INC)
    (started,) = engine.start()
    assert isinstance(started, m.TieringStarted)
    assert (started.sender, started.incarnation, started.seq) == ("tiering", INC, 1)


def test_tier_2_episode_records_entry_peaks_and_close():
    engine = Tiering(config_mod.Config(), INC)
    engine.start()
    outs = feed(engine, [(0, 10), (1, 40), (2, 50), (3, 45), (4, 60), (5, 20), (9, 20), (10, 20), (11, 50)])
    key = f"{INC}:1"
    assert summary(all_records(outs[:8])) == [
        ("opened", key, 2, 40, 1),
        ("sample", key, 2, "tier2_entry", 40),
        ("sample", key, 2, "tier2_peak", 50),
        ("sample", key, 2, "tier2_peak", 60),
        ("closed", key, 1, 10, 60, 2),
    ]
    # Samples that change nothing produce no event records (the tally: on its own, below).
    assert [len(summary(o.records)) for o in outs[:8]] == [0, 2, 1, 0, 1, 0, 0, 1]
    # The next episode is a new event with the next key.
    assert summary(outs[8].records) == [
        ("opened", f"{INC}:2", 2, 50, 11),
        ("sample", f"{INC}:2", 2, "tier2_entry", 50),
    ]


def test_tier_3_saves_every_sample_until_it_is_left():
    engine = Tiering(config_mod.Config(), INC)
    script = [(0, 40), (1, 70), (2, 80), (3, 60), (8, 60), (9, 50), (10, 20), (15, 20)]
    outs = feed(engine, script)
    key = f"{INC}:1"
    assert summary(all_records(outs)) == [
        ("opened", key, 2, 40, 0),
        ("sample", key, 2, "tier2_entry", 40),
        ("sample", key, 3, "tier3_entry", 70),
        ("sample", key, 3, None, 80),
        ("sample", key, 3, None, 60),  # still tier 3: below critical for less than the delay
        # t=8: tier 3 is left; that sample is not saved, nor are later tier-2 ones (no new peak)
        ("closed", key, 0, 15, 80, 3),
    ]
    assert [o.live.state.tier for o in outs] == [2, 3, 3, 3, 2, 2, 2, 1]


def test_direct_jump_to_tier_3_opens_the_event_at_tier_3():
    engine = Tiering(config_mod.Config(), INC)
    outs = feed(engine, [(0, 0), (1, 90), (2, 95), (3, 10), (8, 10), (9, 10), (14, 10)])
    key = f"{INC}:1"
    assert summary(all_records(outs)) == [
        ("opened", key, 3, 90, 1),
        ("sample", key, 3, "tier3_entry", 90),
        ("sample", key, 3, None, 95),
        ("sample", key, 3, None, 10),
        ("closed", key, 1, 14, 95, 3),
    ]


def test_every_record_of_an_event_carries_its_key_and_start():
    engine = Tiering(config_mod.Config(), INC)
    records = all_records(feed(engine, [(5, 50), (6, 70), (7, 70), (8, 0), (13, 0), (14, 0), (19, 0)]))
    assert {r.event_key for r in records} == {f"{INC}:1"}
    assert {getattr(r, "event_start", getattr(r, "start", None)) for r in records} == {5}
    # Records form one stream: consecutive seq numbers after TieringStarted's 1.
    engine2 = Tiering(config_mod.Config(), INC)
    first = engine2.start()
    rest = all_records(feed(engine2, [(0, 50), (1, 70), (2, 70)]))
    assert [r.seq for r in first + rest] == list(range(1, len(rest) + 2))


def test_records_survive_the_wire():
    engine = Tiering(config_mod.Config(), INC)
    codec_records = engine.start() + all_records(feed(engine, [(0, 50), (1, 70), (2, 0), (7, 0), (8, 0), (13, 0)]))
    for rec in codec_records:
        wire = msgspec.msgpack.decode(msgspec.msgpack.encode(rec), type=m.Record)
        assert wire == rec


def test_live_samples_carry_tier_state_and_buffer_length():
    engine = Tiering(config_mod.Config(), INC)
    outs = feed(engine, [(100, 10), (101, 40), (102, 50)])
    states = [o.live.state for o in outs]
    assert states[0] == m.TierState(tier=1, tier_since=None, peak_score=0, event_key=None)
    assert states[1] == m.TierState(tier=2, tier_since=101, peak_score=40, event_key=f"{INC}:1")
    assert states[2] == m.TierState(tier=2, tier_since=101, peak_score=50, event_key=f"{INC}:1")
    assert [o.live.buffer_len for o in outs] == [1, 2, 3]
    assert [o.live.seq for o in outs] == [1, 2, 3]
    assert outs[2].live.samples.max_score == 50


def test_ring_buffer_keeps_the_last_ring_buffer_seconds_with_their_tiers():
    engine = Tiering(config_mod.Config(), INC)
    outs = feed(engine, [(float(t), 50 if 10 <= t < 20 else 0) for t in range(40)])
    reply = engine.snapshot_reply()
    assert len(reply.ring) == 30
    assert [e.samples.timestamp for e in reply.ring] == [float(t) for t in range(10, 40)]
    assert [e.tier for e in reply.ring] == [o.live.state.tier for o in outs[10:]]
    assert reply.last_live_seq == outs[-1].live.seq == 40
    assert reply.live_incarnation == INC and reply.state == outs[-1].live.state


@pytest.mark.parametrize(("seconds", "interval", "expected"), [(30, 1.0, 30), (30, 0.5, 60), (30, 7.0, 5), (1, 60.0, 1)])
def test_ring_capacity_covers_the_configured_seconds(seconds, interval, expected):
    assert capacity(seconds, interval) == expected


def test_ring_buffer_capacity_from_config():
    config = config_mod.parse("[sentinel]\nring_buffer_seconds = 5\n[sampling]\ninterval_s = 0.5")
    engine = Tiering(config, INC)
    feed(engine, [(t / 2, 0) for t in range(25)])
    assert len(engine.snapshot_reply().ring) == 10 == engine.ring.max_samples


def test_snapshot_before_any_sample_is_empty():
    reply = Tiering(config_mod.Config(), INC).snapshot_reply()
    assert (reply.ring, reply.last_live_seq, reply.state) == ([], 0, m.TierState())


def test_ring_entries_are_a_copy():
    ring = RingBuffer(2)
    ring.push(samples(1, 1.0), 1)
    entries = ring.entries()
    ring.push(samples(2, 2.0), 2)
    ring.push(samples(3, 3.0), 3)
    assert [e.samples.max_score for e in entries] == [1]
    assert [(e.samples.max_score, e.tier) for e in ring.entries()] == [(2, 2), (3, 3)]


def test_the_whole_process_table_goes_only_to_the_flight_record():
    """The minute's table (~85 KB) is for the flight record alone: the live feed every watch
    client gets, the ring (and so every snapshot reply) and event samples go without it."""
    engine = Tiering(config_mod.Config(), INC)
    table = [m.ProcessInfo(pid=pid, command=f"p{pid}", state="sleeping") for pid in range(1, 600)]
    # 40 opens an event: its entry sample is an EventSample record, which must not carry it either.
    out = engine.handle(msgspec.structs.replace(samples(40, timestamp=100.0), table=table), now=100.0)
    flown = decode_frame(out.flight.frame)  # as the record keeps it
    assert [(p.pid, p.command, p.state) for p in flown.samples.table] == [(p.pid, p.command, p.state) for p in table]
    assert out.flight.timestamp == flown.samples.timestamp == 100.0
    assert out.live.samples.table is None
    assert engine.snapshot_reply().ring[-1].samples.table is None
    event_samples = [r for r in out.records if isinstance(r, m.EventSample)]
    assert event_samples and all(r.samples.table is None for r in event_samples)
    assert out.live.samples.max_score == flown.samples.max_score == 40
