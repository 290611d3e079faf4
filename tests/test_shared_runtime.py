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
