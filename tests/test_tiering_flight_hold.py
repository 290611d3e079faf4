"""Flight samples leave tiering in pairs (tiering/flight_hold.py): pure, on a clock given by hand."""

from __future__ import annotations

from tiering.flight_hold import HOLD_S, HOLD_SLACK_S, FlightHold


def test_at_1_hz_samples_go_in_pairs_and_none_waits_over_the_hold() -> None:
    hold = FlightHold()
    sent: list[tuple[int, list[bytes]]] = []
    for i in range(6):
        now = 1000.0 + i + 0.01 * (i % 2)  # arrival jitter
        out = hold.add(b"s%d" % i, now)
        if out:
            sent.append((i, out))
        else:
            assert hold.seconds_until_due(now) == HOLD_S  # the loop wakes by then at the latest
    assert sent == [(1, [b"s0", b"s1"]), (3, [b"s2", b"s3"]), (5, [b"s4", b"s5"])]
    assert hold.seconds_until_due(1006.0) is None  # nothing held


def test_a_lone_sample_goes_when_its_hold_is_over_or_on_a_wake_up_within_the_slack() -> None:
    hold = FlightHold()
    assert hold.add(b"a", 10.0) == []
    assert hold.take_due(10.0 + HOLD_S - HOLD_SLACK_S - 0.01) == []  # a heartbeat too early
    assert hold.take_due(10.0 + HOLD_S - HOLD_SLACK_S) == [b"a"]  # within the slack: on this one
    assert hold.add(b"b", 20.0) == [] and hold.seconds_until_due(20.5) == HOLD_S - 0.5
    assert hold.take_due(20.0 + HOLD_S) == [b"b"]  # at the deadline, by the loop's timer
    assert hold.take_due(30.0) == [] and hold.seconds_until_due(30.0) is None


def test_whatever_is_held_goes_at_shutdown() -> None:
    hold = FlightHold()
    hold.add(b"last", 5.0)
    assert hold.take_all() == [b"last"] and hold.take_all() == []


def test_a_faster_rate_still_sends_pairs() -> None:
    hold = FlightHold()
    out = [hold.add(b"%d" % i, 100.0 + 0.25 * i) for i in range(4)]
    assert out == [[], [b"0", b"1"], [], [b"2", b"3"]]
