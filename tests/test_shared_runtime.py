"""The worker runtime's heartbeat rhythm, on a real PUB/SUB pair and a controlled clock."""

from __future__ import annotations

import os
import time

import pytest

from pmshared.endpoints import ENDPOINTS, Sockets
from pmshared.runtime import HEARTBEAT_SLACK, MAX_IDLE_MS, Worker


@pytest.fixture
def worker_and_feed():
    """A worker heartbeating into a real SUB bound on the health endpoint (the supervisor's end)."""
    listener = Sockets()
    sub = listener.bind("health")
    worker = Worker("probe")
    worker.install_signal_handlers()
    worker.start_heartbeat()
    codec = ENDPOINTS["health"].codec()

    def received(expect: int, timeout: float = 5.0) -> list:
        """Exactly the heartbeats sent so far: wait for ``expect``, then check none more follow."""
        got, deadline = [], time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            if sub.poll(50):
                got.append(codec.decode(sub.recv()))
        while sub.poll(100):  # anything extra would be a heartbeat sent too early
            got.append(codec.decode(sub.recv()))
        return got

    # PUB/SUB joins asynchronously: heartbeat until the first one arrives, then start counting.
    deadline = time.monotonic() + 5
    t = 1000.0
    while not sub.poll(20):
        assert time.monotonic() < deadline, "no heartbeat reached the SUB"
        worker._next_heartbeat = 0.0  # force "due" while the connection is being made
        worker.heartbeat(now=t)
    while sub.poll(100):
        sub.recv()
    try:
        yield worker, received, t
    finally:
        worker.close()
        listener.close()


def test_heartbeat_rides_on_a_wake_up_inside_the_slack_window(worker_and_feed):
    worker, received, t0 = worker_and_feed
    every = worker.config.supervisor.heartbeat_interval_s
    slack = HEARTBEAT_SLACK * every
    worker.heartbeat(now=t0 + every - slack - 0.01)  # too early: nothing
    assert received(0) == []
    worker.heartbeat(now=t0 + every - slack + 0.01)  # early, but inside the window: sent
    (hb,) = received(1)
    assert hb.pid == os.getpid()


def test_poll_timeout_reaches_the_latest_moment_of_the_window(worker_and_feed):
    worker, received, t0 = worker_and_feed
    every = worker.config.supervisor.heartbeat_interval_s
    slack_ms = HEARTBEAT_SLACK * every * 1000
    # Right after a heartbeat, an idle loop may sleep to the window's end, capped at MAX_IDLE_MS.
    assert worker.poll_timeout_ms(now=t0) == min(MAX_IDLE_MS, round(every * 1000 + slack_ms))
    # Half an interval later it sleeps to the window's end, not just to the due time.
    assert worker.poll_timeout_ms(now=t0 + every / 2) == round(every * 500 + slack_ms)
    # Past the window's end the loop must not sleep at all.
    assert worker.poll_timeout_ms(now=t0 + every + 2 * slack_ms / 1000) == 0
    worker.heartbeat(now=t0 + every + slack_ms / 1000)  # a late wake-up still sends
    assert len(received(1)) == 1


def test_a_long_interval_heartbeats_every_second_while_the_worker_starts(tmp_path, monkeypatch):
    """The first heartbeat is lost to the PUB/SUB join; at a 60 s interval the next would come
    45-60 s later and `pmctl status` would show the worker starting all that time."""
    from pmshared import runtime

    config = tmp_path / "config.toml"
    config.write_text("[supervisor]\nheartbeat_interval_s = 60.0\n")
    monkeypatch.setenv("PAUSE_MONITOR_CONFIG", str(config))
    worker = Worker("probe", sockets=False)
    sent: list[float] = []

    class Sock:  # stands in for the PUB socket: heartbeat() only sends on it
        def send(self, frame: bytes, flags: int = 0) -> None:
            sent.append(now)

    worker._heartbeat_sock = Sock()
    start = time.monotonic()
    now = start
    while now < start + runtime.STARTUP_HEARTBEATS_FOR_S + 130:
        worker.heartbeat(now=now)
        now += 0.1
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    early = [g for a, g in zip(sent, gaps) if a < start + runtime.STARTUP_HEARTBEATS_FOR_S]
    late = [g for a, g in zip(sent, gaps) if a >= start + runtime.STARTUP_HEARTBEATS_FOR_S]
    assert early and max(early) <= runtime.STARTUP_HEARTBEAT_S + 0.11, early
    assert late and min(late) >= 60 * (1 - HEARTBEAT_SLACK) - 0.11, late  # then the configured rhythm


def test_a_worker_heartbeating_less_often_says_so_and_sleeps_that_long(tmp_path, monkeypatch):
    """Worker.heartbeat_every (the exporter's 5 s): each heartbeat past start-up carries its
    interval, which the supervisor's watchdog allows missed_heartbeats of, and an idle loop sleeps
    to the end of that window instead of waking every second."""
    from pmshared import runtime

    monkeypatch.setenv("PAUSE_MONITOR_CONFIG", str(tmp_path / "absent.toml"))  # the defaults: 1 s
    worker = Worker("probe", sockets=False)
    worker.install_signal_handlers()  # poll_timeout_ms is for loops that poll the wake-up fd
    worker.heartbeat_every(5.0)
    codec = ENDPOINTS["health"].codec()
    sent: list[tuple[float, object]] = []

    class Sock:
        def send(self, frame: bytes, flags: int = 0) -> None:
            sent.append((now, codec.decode(frame)))

    worker._heartbeat_sock = Sock()
    try:
        start = time.monotonic()
        now = start
        while now < start + runtime.STARTUP_HEARTBEATS_FOR_S + 30:
            worker.heartbeat(now=now)
            now += 0.1
        early = [hb.interval_s for t, hb in sent if t < start + runtime.STARTUP_HEARTBEATS_FOR_S]
        late = [(t, hb.interval_s) for t, hb in sent if t >= start + runtime.STARTUP_HEARTBEATS_FOR_S]
        assert early and set(early) == {None}  # every second while starting: the configured rhythm
        assert len(late) >= 4 and {i for _, i in late} == {5.0}
        assert min(b - a for (a, _), (b, _) in zip(late, late[1:])) >= 5.0 * (1 - HEARTBEAT_SLACK) - 0.11
        last = late[-1][0]
        assert worker.poll_timeout_ms(now=last) == round(5000 * (1 + HEARTBEAT_SLACK))
    finally:
        worker.close()
