"""The scorer and tiering workers as real processes over real ZeroMQ sockets.

The test plays every neighbour: the collector (PUSH "raw"), a viewer (SUB "live", DEALER
"snapshot"), the recorder (PULL "record") and the supervisor (SUB "health" for heartbeats).
"""

from __future__ import annotations

import os
import time

import pytest

from pmshared import messages as m
from pmshared import paths
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, Sockets, send_nowait
from pmshared.flight_codec import Frame, decode_frame
from tests.tiering_helpers import (
    SEED_MODEL,
    burner_snapshot,
    quiet_snapshot,
    receive_until,
    samples,
    stop,
    workers,
    write_config,
)

pytestmark = pytest.mark.slow

RAW = ENDPOINTS["raw"].codec()
LIVE = ENDPOINTS["live"].codec()
RECORD = ENDPOINTS["record"].codec()
SNAPSHOT = ENDPOINTS["snapshot"].codec()
HEALTH = ENDPOINTS["health"].codec()
SCORED = ENDPOINTS["scored"].codec()
EXIT_LIMIT_S = 1.0


def child_env(tmp_path, monkeypatch, extra: str = "") -> dict[str, str]:
    # The scripted burner scores 55/65 under the seed model, which these tests select.
    config = write_config(tmp_path / "config.toml", SEED_MODEL + "[supervisor]\nheartbeat_interval_s = 0.2\n" + extra)
    monkeypatch.setenv("PAUSE_MONITOR_CONFIG", str(config))
    return dict(os.environ)


@pytest.fixture
def socks():
    sockets = Sockets()
    yield sockets
    sockets.close()


def heartbeat_from(sender: str, counter: str, at_least: int):
    return lambda h: h.sender == sender and h.counters.get(counter, 0) >= at_least


def not_flight(record: m.Record) -> bool:
    """Event records; the flight samples (one per sample, issue 19) come on the same endpoint."""
    return not isinstance(record, m.FlightSample)


def test_snapshots_become_live_samples_events_and_a_snapshot(tmp_path, monkeypatch, socks):
    env = child_env(tmp_path, monkeypatch)
    health = socks.bind("health")
    record = socks.bind("record")
    live = socks.connect("live")
    raw = socks.connect("raw")
    viewer = socks.connect("snapshot")
    stamp = Stamper("collector", "test-collector")

    with workers("scorer", "tiering", env=env) as procs:
        started, _ = receive_until(record, RECORD.decode, not_flight)
        assert isinstance(started, m.TieringStarted)

        # Until the SUB/PUB links are up, samples are dropped: offer quiet snapshots until one
        # comes back on "live" (a handshake, not a sleep).
        first, _ = receive_until(
            live, LIVE.decode, lambda s: True, deadline_s=15,
            on_idle=lambda: send_nowait(raw, RAW.encode(quiet_snapshot(stamp, time.time()))),
        )
        assert first.state.tier == 1 and first.sender == "tiering"

        hot = burner_snapshot(stamp, time.time())
        raw.send(RAW.encode(hot))
        hot_live, _ = receive_until(live, LIVE.decode, lambda s: s.samples.snapshot_seq == hot.seq)
        assert hot_live.state.tier == 2 and hot_live.samples.max_score == 55
        assert hot_live.state.event_key is not None

        opened, before = receive_until(record, RECORD.decode, not_flight)
        entry, between = receive_until(record, RECORD.decode, not_flight)
        before += between
        assert isinstance(opened, m.EventOpened) and (opened.tier, opened.score) == (2, 55)
        assert isinstance(entry, m.EventSample) and entry.action == "tier2_entry"
        assert opened.event_key == entry.event_key == hot_live.state.event_key
        # The hot sample also went to the flight recorder, with the tier it produced.
        def hot_frame(r: m.Record) -> Frame | None:
            if isinstance(r, m.FlightSample) and (frame := decode_frame(r.frame)).samples.snapshot_seq == hot.seq:
                return frame
            return None

        flown = [frame for r in before if (frame := hot_frame(r)) is not None]
        if not flown:  # the flight socket is a separate queue: it may arrive after the event records
            late, meanwhile = receive_until(record, RECORD.decode, hot_frame)
            flown = [hot_frame(late)]
            before += meanwhile  # event records that came first (the tally, below) are kept
        assert flown[0].state.tier == 2 and flown[0].state.event_key == hot_live.state.event_key
        burner = [r for r in entry.samples.rogues if r.command == "burner"]
        assert burner and burner[0].score == 55 and burner[0].pid == 4242
        # Who the event is about so far: the burner, from its one sample.
        came = [r for r in before if isinstance(r, m.EventCulprits)]
        tally = came[0] if came else receive_until(record, RECORD.decode, not_flight)[0]
        assert isinstance(tally, m.EventCulprits) and tally.event_key == entry.event_key
        assert [(c.pid, c.score_sum, c.peak, c.samples) for c in tally.culprits] == [(4242, 55, 55, 1)]

        viewer.send(SNAPSHOT.encode(Stamper("viewer", "v")(m.SnapshotRequest)))
        reply, _ = receive_until(viewer, SNAPSHOT.decode, lambda r: True)
        assert isinstance(reply, m.SnapshotReply)
        assert reply.last_live_seq == hot_live.seq and reply.live_incarnation == hot_live.incarnation
        assert reply.ring[-1].tier == 2 and reply.ring[-1].samples.snapshot_seq == hot.seq
        assert reply.state == hot_live.state

        # Garbage, a truncated snapshot, a multipart message and a wrong-type message: dropped
        # and counted; the snapshot after them is scored as usual.
        raw.send(b"\xc1garbage")
        raw.send(RAW.encode(hot)[:-20])
        raw.send_multipart([b"a", b"b"])
        raw.send(HEALTH.encode(Stamper("x", "y")(m.Heartbeat, pid=1)))
        critical = burner_snapshot(stamp, time.time(), critical=True)
        raw.send(RAW.encode(critical))
        crit_live, _ = receive_until(live, LIVE.decode, lambda s: s.samples.snapshot_seq == critical.seq)
        assert crit_live.state.tier == 3 and crit_live.samples.max_score == 65
        crit_record, _ = receive_until(record, RECORD.decode, not_flight)
        assert isinstance(crit_record, m.EventSample)
        assert (crit_record.tier, crit_record.action) == (3, "tier3_entry")

        beat, _ = receive_until(health, HEALTH.decode, heartbeat_from("scorer", "bad_input", 4))
        assert beat.counters["bad_input"] == 4

        for name in ("scorer", "tiering"):
            assert stop(procs[name]) < EXIT_LIMIT_S, f"{name} took too long to exit"
            assert procs[name].returncode == 0
        scorer_log = procs["scorer"].stderr.read().decode()
        assert scorer_log.count("dropped malformed") == 4
        assert "Traceback" not in scorer_log
        # Bound ipc files are removed on a clean exit.
        for name in ("raw", "scored", "live", "snapshot"):
            assert not paths.socket_path(name).exists(), name


def test_a_dead_recorder_costs_records_not_the_live_feed(tmp_path, monkeypatch, socks):
    # Small record queue, and nobody binds "record": the queue fills and records are dropped.
    env = child_env(tmp_path, monkeypatch, "[transport]\nrecord_queue = 10\n")
    health = socks.bind("health")
    scored = socks.bind("scored")  # the test is the scorer
    live = socks.connect("live")
    viewer = socks.connect("snapshot")
    stamp = Stamper("scorer", "test-scorer")
    now = [time.time()]

    def publish(score: int) -> m.ProcessSamples:
        now[0] += 1.0
        msg = samples(score, now[0], stamp)
        scored.send(SCORED.encode(msg))
        return msg

    with workers("tiering", env=env) as procs:
        receive_until(live, LIVE.decode, lambda s: True, deadline_s=15, on_idle=lambda: publish(0))
        # Tier 3 saves a record per sample: 40 samples overflow a queue of 10.
        for _ in range(40):
            sent = publish(80)
            got, _ = receive_until(live, LIVE.decode, lambda s, seq=sent.seq: s.samples.seq == seq)
            assert got.state.tier == 3
        beat, _ = receive_until(health, HEALTH.decode, heartbeat_from("tiering", "records_dropped", 1))
        assert beat.counters["samples"] >= 41

        # A garbage request on the snapshot endpoint is dropped; the next request is answered.
        viewer.send(b"junk")
        viewer.send(SNAPSHOT.encode(Stamper("viewer", "v")(m.SnapshotRequest)))
        reply, _ = receive_until(viewer, SNAPSHOT.decode, lambda r: True)
        assert isinstance(reply, m.SnapshotReply) and len(reply.ring) == 30
        assert all(entry.tier == 3 for entry in reply.ring)
        receive_until(health, HEALTH.decode, heartbeat_from("tiering", "bad_input", 1))

        # Queued records that can never be delivered do not hold up the exit.
        assert stop(procs["tiering"]) < EXIT_LIMIT_S
        assert procs["tiering"].returncode == 0
        log = procs["tiering"].stderr.read().decode()
        assert "record queue full" in log and "Traceback" not in log


def test_bad_config_is_one_line_and_no_traceback(tmp_path, monkeypatch):
    env = child_env(tmp_path, monkeypatch, "[tiers]\nelevated_threshold = 500\n")
    for name in ("scorer", "tiering"):
        with workers(name, env=env) as procs:
            assert procs[name].wait(timeout=10) == 2
            err = procs[name].stderr.read().decode().strip().splitlines()
            assert len(err) == 1 and err[0].startswith("error: ") and "tiers.elevated_threshold" in err[0]
