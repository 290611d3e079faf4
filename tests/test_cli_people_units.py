"""Pure parts of the people-facing pmctl commands: formatting, --since, the watch feed and link."""

from __future__ import annotations

from datetime import datetime

import pytest

from cli import format as fmt
from cli.timespec import TimeSpecError, parse_since
from cli.watch_feed import FeedState, Link
from pmshared import messages as m
from tests.cli_people_helpers import HOSTILE, RECOGNISABLE, control_bytes, rogue, samples

NOW = 1_700_000_000.0


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (64 * 1024**2, "64.0 MiB"), (3 * 1024**3, "3.0 GiB")],
)
def test_human_bytes(value, text):
    assert fmt.human_bytes(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.85, "850 ms"), (2.34, "2.3 s"), (252, "4m 12s"), (3780, "1h 03m"), (2 * 86400 + 4 * 3600, "2d 04h")],
)
def test_human_seconds(seconds, text):
    assert fmt.human_seconds(seconds) == text


def test_sparkline_scale_and_downsampling_keeps_spikes():
    assert fmt.sparkline([0, 50, 100]) == "▁▅█"
    assert fmt.sparkline([None, 100]) == " █"
    # 100 values into 10 buckets: the single spike survives as the bucket maximum.
    values = [0] * 100
    values[57] = 100
    line = fmt.sparkline(values, width=10)
    assert len(line) == 10 and line[5] == "█" and set(line) - {"█"} == {"▁"}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_safe_text_is_inert_and_recognisable(name):
    text = fmt.safe(HOSTILE[name])
    assert control_bytes(text.plain) == []
    assert RECOGNISABLE[name] in text.plain
    assert text.spans == []  # no markup was interpreted


def test_csv_cell_defuses_formulas_and_controls():
    assert fmt.csv_cell("=cmd|' /C calc'!A0").startswith("'=")
    assert fmt.csv_cell("-bash") == "-bash"
    assert control_bytes(fmt.csv_cell(HOSTILE["title"])) == []


def test_to_json_escapes_every_control_and_bidi_character():
    import json

    out = fmt.to_json({"name": HOSTILE["bidi"] + HOSTILE["title"] + "\x85"})
    assert control_bytes(out.replace("\n", "")) == []
    assert json.loads(out)["name"] == HOSTILE["bidi"] + HOSTILE["title"] + "\x85"


# --------------------------------------------------------------------------- --since


def test_since_relative_forms():
    assert parse_since("2h", NOW) == NOW - 7200
    assert parse_since("30m", NOW) == NOW - 1800
    assert parse_since("1d", NOW) == NOW - 86400
    assert parse_since("1h30m", NOW) == NOW - 5400
    assert parse_since("1.5h", NOW) == NOW - 5400
    assert parse_since(" 2W ", NOW) == NOW - 14 * 86400


def test_since_iso_forms_are_local_time_unless_zoned():
    assert parse_since("2024-05-01", NOW) == datetime(2024, 5, 1).timestamp()
    assert parse_since("2024-05-01T14:00", NOW) == datetime(2024, 5, 1, 14).timestamp()
    assert parse_since("2024-05-01 14:00:05", NOW) == datetime(2024, 5, 1, 14, 0, 5).timestamp()
    assert parse_since("2024-05-01T14:00:00+00:00", NOW) == 1714572000.0
    assert parse_since("2024-05-01T14:00:00Z", NOW) == 1714572000.0


def test_since_today_and_yesterday():
    midnight = datetime.fromtimestamp(NOW).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    assert parse_since("today", NOW) == midnight
    assert NOW - parse_since("yesterday", NOW) >= 86400


@pytest.mark.parametrize("bad", ["", "soon", "2 hours ago", "5x", "2024-13-01", "-2h", "h"])
def test_since_rejects_with_the_accepted_forms(bad):
    with pytest.raises(TimeSpecError) as err:
        parse_since(bad, NOW)
    assert "2h" in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- watch feed


def _live(seq: int, score: int = 40, incarnation: str = "tier-A", buffer_len: int = 0, tier: int = 1) -> m.LiveSample:
    return m.LiveSample(sender="tiering", incarnation=incarnation, seq=seq, sent_at=NOW + seq,
                        samples=samples(NOW + seq, [rogue(1, "x", score)], seq=seq),
                        state=m.TierState(tier=tier), buffer_len=buffer_len)


def _reply(last_seq: int, ring_scores: list[int], incarnation: str = "tier-A") -> m.SnapshotReply:
    ring = [m.RingEntry(samples=samples(NOW + i, [rogue(1, "x", s)]), tier=1) for i, s in enumerate(ring_scores)]
    return m.SnapshotReply(sender="tiering", incarnation=incarnation, seq=1, sent_at=NOW, ring=ring,
                           state=m.TierState(tier=2, tier_since=NOW - 5), last_live_seq=last_seq,
                           live_incarnation=incarnation)


def test_feed_holds_updates_until_snapshot_then_drops_older_ones():
    feed = FeedState(capacity=10)
    assert feed.apply_live(_live(4)) == "pending"
    assert feed.apply_live(_live(6)) == "pending"
    feed.apply_snapshot(_reply(last_seq=5, ring_scores=[10, 20]))
    # seq 4 was inside the snapshot (dropped); seq 6 follows it directly (applied, no gap).
    assert (feed.stale, feed.updates, feed.gaps, feed.last_seq) == (1, 1, 0, 6)
    assert feed.max_scores() == [10, 20, 40]
    assert feed.apply_live(_live(6)) == "stale"
    assert feed.apply_live(_live(9, score=70)) == "applied"
    assert feed.gaps == 2 and feed.latest.max_score == 70


def test_feed_trims_ring_to_tierings_buffer_length():
    feed = FeedState(capacity=100)
    feed.apply_snapshot(_reply(last_seq=0, ring_scores=[1, 2, 3]))
    for seq in range(1, 6):
        feed.apply_live(_live(seq, score=seq * 10, buffer_len=3))
    assert feed.max_scores() == [30, 40, 50]


def test_feed_asks_again_when_tiering_restarts():
    feed = FeedState()
    feed.apply_snapshot(_reply(last_seq=100, ring_scores=[5]))
    assert feed.apply_live(_live(1, incarnation="tier-B")) == "resync"
    assert not feed.synced
    feed.apply_snapshot(_reply(last_seq=0, ring_scores=[], incarnation="tier-B"))
    # The sample that revealed the restart was kept and applies on top of the new snapshot.
    assert feed.updates == 1 and feed.last_seq == 1 and feed.gaps == 0


def test_link_backs_off_doubling_to_a_cap_and_resets_on_reply():
    link = Link(timeout_s=1.0, backoff_initial_s=0.5, backoff_max_s=2.0, stall_s=5.0)
    now = 0.0
    link.start_request(now)
    waits = []
    for _ in range(4):
        now = link.deadline
        assert link.tick(now) == "wait" and link.state == "down"
        waits.append(link.retry_in(now))
        now = link.deadline
        assert link.tick(now) == "request"
        link.start_request(now)
    assert waits == [0.5, 1.0, 2.0, 2.0]
    link.got_snapshot(now)
    assert link.state == "live" and link.backoff_s == 0.5
    assert link.tick(now + 4.9) == "wait"
    assert link.tick(now + 5.0) == "request"  # silence on the live feed: resynchronise


def test_link_retries_at_once_when_the_feed_comes_back():
    link = Link(timeout_s=1.0, backoff_initial_s=8.0)
    link.start_request(0.0)
    link.tick(1.0)
    assert link.state == "down" and link.tick(2.0) == "wait"
    link.got_live(2.0)
    assert link.tick(2.0) == "request"

