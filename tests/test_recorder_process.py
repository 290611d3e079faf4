"""The real recorder process over real ZeroMQ sockets and a real SQLite file, in a temp home.

The test pushes records as the pipeline's senders would (pmshared.endpoints.Sockets, "record") and
watches the recorder's counters by binding the supervisor's side of "health".
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import msgspec
import pytest
import zmq

from pmshared import messages as m
from pmshared.flight_codec import flight_fields
from pmshared import storage
from pmshared.endpoints import ENDPOINTS, Sockets
from tests.recorder_helpers import REPO, RecorderProcess, TempHome, Tiering, pause, rogue, wait_for

T0 = 1_700_000_000.0


class Health:
    """The supervisor's end of "health": heartbeats from the workers under test."""

    def __init__(self) -> None:
        self.sockets = Sockets()
        self.sub = self.sockets.bind("health")
        self.codec = ENDPOINTS["health"].codec()

    def wait(self, predicate, timeout: float = 10.0, pid: int | None = None) -> m.Heartbeat:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.sub.poll(100):
                hb = self.codec.decode(self.sub.recv())
                if hb.sender == "recorder" and (pid is None or hb.pid == pid):
                    last = hb
                    if predicate(hb.counters):
                        return hb
        raise AssertionError(f"no matching heartbeat within {timeout} s; last counters: "
                             f"{last.counters if last else None}")

    def close(self) -> None:
        self.sockets.close()


class Sender:
    """A pipeline sender's PUSH socket to the recorder (blocking send with a timeout)."""

    def __init__(self) -> None:
        self.sockets = Sockets()
        self.push = self.sockets.connect("record")
        self.push.setsockopt(zmq.SNDTIMEO, 5000)
        self.codec = ENDPOINTS["record"].codec()

    def send(self, *records: m.Record) -> None:
        for record in records:
            self.push.send(self.codec.encode(record))

    def send_raw(self, frame: bytes) -> None:
        self.push.send(frame)

    def close(self) -> None:
        self.sockets.close()


@pytest.fixture
def home(tmp_path):
    return TempHome(tmp_path)


@pytest.fixture
def health():
    h = Health()
    yield h
    h.close()


@pytest.fixture
def sender():
    s = Sender()
    yield s
    s.close()


@pytest.fixture
def recorders(home):
    started: list[RecorderProcess] = []

    def start(*args: str) -> RecorderProcess:
        proc = RecorderProcess(home, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL)


def db_figure(home: TempHome, query):
    """Run ``query(conn)`` on a fresh read-only connection; None while there is no database yet."""
    try:
        conn = storage.open_readonly(home.db_path, busy_timeout_ms=1000)
    except storage.DatabaseMissing:
        return None
    try:
        return query(conn)
    finally:
        conn.close()


def sample_count(home: TempHome) -> int:
    return db_figure(home, lambda c: storage.db_stats(c).samples) or 0


def integrity_ok(home: TempHome) -> None:
    assert db_figure(home, lambda c: storage.integrity_check(c, quick=False)) == ["ok"]


def test_bad_frames_are_dropped_and_counted_and_the_next_record_is_stored(home, health, sender, recorders):
    recorder = recorders()
    recorder.wait_ready()
    tiering = Tiering()
    key = tiering.new_key()
    good = sender.codec.encode(tiering.opened(key, T0))
    wrong_type = msgspec.msgpack.encode(m.Heartbeat(sender="x", incarnation="y", seq=1, sent_at=0.0, pid=1))
    sender.send_raw(b"\xc1\x00 this is not msgpack \xff")
    sender.send_raw(good[: len(good) // 2])  # truncated
    sender.send_raw(wrong_type)
    sender.send_raw(good)
    hb = health.wait(lambda c: c.get("bad_input") == 3 and c.get("records_stored") == 1)
    assert hb.counters["frames_received"] == 4
    events = db_figure(home, storage.list_events)
    assert [e.event_key for e in events] == [key]
    assert recorder.proc.poll() is None
    assert "dropped malformed frame on record" in recorder.log()
    integrity_ok(home)


def test_kill_9_mid_event_then_resend_gives_one_complete_event(home, health, sender, recorders):
    tiering = Tiering()
    key = tiering.new_key()
    first = [tiering.started(), tiering.opened(key, T0)] + [
        tiering.sample(key, T0, T0 + i, [rogue(7, "hog", 40 + i)]) for i in range(1, 6)]
    rest = [tiering.sample(key, T0, T0 + i, [rogue(7, "hog", 40 + i)]) for i in range(6, 9)]
    rest.append(tiering.closed(key, T0, T0 + 9, peak_score=48, peak_tier=3))

    recorder = recorders()
    recorder.wait_ready()
    sender.send(*first)
    wait_for(lambda: sample_count(home) == 5, what="the first samples")
    recorder.proc.kill()
    recorder.proc.wait(5)
    integrity_ok(home)

    again = recorders()
    # The old socket file is still there (kill -9): a heartbeat from the new pid proves it serves.
    health.wait(lambda c: True, pid=again.proc.pid)
    sender.send(*first, *rest)  # a restarted sender resends everything it is unsure of
    wait_for(lambda: db_figure(home, lambda c: storage.last_event(c).end), what="the event's close")
    health.wait(lambda c: c.get("records_stored", 0) >= len(first) + len(rest), pid=again.proc.pid)
    (event,) = db_figure(home, lambda c: storage.list_events(c, limit=None))
    assert (event.event_key, event.start, event.end, event.peak_score, event.peak_tier) == (key, T0, T0 + 9, 48, 3)
    assert not event.interrupted and event.sample_count == 8
    detail = db_figure(home, lambda c: storage.get_event(c, event.id))
    assert [s.timestamp for s in detail.samples] == [T0 + i for i in range(1, 9)]
    integrity_ok(home)


LOCKER = """
import sys, time, pathlib, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN EXCLUSIVE")
pathlib.Path(sys.argv[2]).touch()
time.sleep(float(sys.argv[3]))  # the fault under test: a lock held this long
conn.execute("COMMIT")
"""


def test_records_sent_while_another_process_holds_the_lock_are_stored_afterwards(
        home, health, sender, recorders, tmp_path):
    recorder = recorders()
    recorder.wait_ready()
    tiering = Tiering()
    key = tiering.new_key()
    sender.send(tiering.started(), tiering.opened(key, T0))
    wait_for(lambda: db_figure(home, storage.last_event), what="the event")

    marker = tmp_path / "locked"
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(home.db_path), str(marker), "3"], cwd=REPO)
    try:
        wait_for(marker.exists, what="the lock")
        locked_at = time.monotonic()
        sender.send(*[tiering.sample(key, T0, T0 + i, [rogue(7, "hog", 50)]) for i in range(1, 51)])
        # Still heart-beating while it waits, with the records held in its queue.
        hb = health.wait(lambda c: c.get("records_pending", 0) == 50 and c.get("write_failures", 0) > 0)
        assert time.monotonic() - locked_at < 3.0, "the lock should still be held"
        assert sample_count(home) == 0
        wait_for(lambda: sample_count(home) == 50, timeout=15, what="the samples after the lock")
        assert time.monotonic() - locked_at >= 2.5
        assert locker.wait(10) == 0
    finally:
        locker.kill()
        locker.wait()
    assert hb.counters.get("records_lost", 0) == 0
    assert recorder.proc.poll() is None
    integrity_ok(home)


def test_sigterm_exits_within_a_second_after_storing_what_it_has(home, sender, recorders):
    recorder = recorders()
    recorder.wait_ready()
    tiering = Tiering()
    key = tiering.new_key()
    sender.send(tiering.opened(key, T0))  # connected and serving
    wait_for(lambda: db_figure(home, storage.last_event), what="the first record")
    records = [tiering.sample(key, T0, T0 + i, [rogue(7, "hog", 50)]) for i in range(200)]
    records.append(pause("col:1", T0 + 3))
    sender.send(*records)  # still in flight when the signal lands
    started = time.monotonic()
    recorder.proc.send_signal(signal.SIGTERM)
    code = recorder.proc.wait(5)
    elapsed = time.monotonic() - started
    assert code == 0, recorder.log()
    assert elapsed < 1.0, f"took {elapsed:.2f} s to exit"
    assert sample_count(home) == 200
    assert [p.pause_id for p in db_figure(home, storage.list_pauses)] == ["col:1"]
    assert not home.socket.exists()
    integrity_ok(home)


def flight_rows(home: TempHome) -> list[float]:
    return db_figure(home, lambda c: [r[0] for r in c.execute("SELECT ts FROM flight_recent ORDER BY ts")]) or []


def test_a_pair_of_flight_samples_is_written_at_once_in_one_transaction_then_made_durable(
        home, health, sender, recorders):
    """Tiering sends flight samples in pairs (tiering/flight_hold.py); the recorder holds nothing:
    the two are written in the wake-up that takes them, in one transaction, and the durable point
    follows at once (the first) or within DURABLE_EVERY_S."""
    from pmshared.codec import Stamper
    from tests.flight_helpers import sample

    recorder = recorders()
    recorder.wait_ready()
    stamp = Stamper("tiering", "tiering-D")
    sent = time.monotonic()
    for t in (T0, T0 + 1):
        sender.send(stamp(m.FlightSample, **flight_fields(sample(t), m.TierState(tier=1))))
    wait_for(lambda: flight_rows(home) == [T0, T0 + 1], 3, what="the pair, written")
    assert time.monotonic() - sent < 1.0  # not held
    hb = health.wait(lambda c: c.get("records_stored") == 2)
    assert hb.counters["batches_written"] == 1 and hb.counters["durable_points"] == 1


def test_kill_9_loses_no_flight_sample_it_took(home, health, sender, recorders):
    """The recorder commits what it takes in the same turn, holding nothing: once its heartbeat
    says it took every sample sent (a heartbeat goes out after the turn's write), a kill -9 finds
    them all in the database."""
    from pmshared.codec import Stamper
    from tests.flight_helpers import sample

    recorder = recorders()
    recorder.wait_ready()
    stamp = Stamper("tiering", "tiering-K")
    for i in range(0, 8, 2):  # pairs, as tiering sends them
        for t in (T0 + i, T0 + i + 1):
            sender.send(stamp(m.FlightSample, **flight_fields(sample(t), m.TierState(tier=1))))
    health.wait(lambda c: c.get("frames_received") == 8)
    recorder.stop(signal.SIGKILL)
    assert flight_rows(home) == [T0 + i for i in range(8)]
    integrity_ok(home)
