"""Hostile frames against every decoder on the wire, through the running workers.

Each worker runs standalone (``python -m <worker>``) in a private world whose "health" SUB the test
binds, so its heartbeat counters are visible. For every socket a worker receives on, the test sends
random bytes, truncated frames of valid messages, deeply nested msgpack (msgspec raises
RecursionError there), 1 MB frames, valid envelopes of the wrong type or with wrongly typed
fields, and several frames where one is expected; then one valid message. The worker must drop and
count every hostile message (exactly one count each), and process the valid one afterwards. Frames
above ``transport.max_message_bytes`` sent to a socket the worker binds never reach it: ZeroMQ
drops the connection that carried them, and the worker serves the reconnected peer as before.
On a socket the worker connects (its SUBs), such a frame reaches the decoder and is counted.

The supervisor's "health" SUB and "control" ROUTER get the same treatment under a real `pmctl up`.
"""

from __future__ import annotations

import re

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmshared import messages as m
from pmshared.endpoints import ENDPOINTS
from tests.hostile_helpers import (
    MAX_MESSAGE,
    MEGABYTE,
    REPO,
    Valid,
    World,
    deep_extra_field,
    foreign_frames,
    hostile_message,
    unsafe_chars,
    wait_for,
    wait_monitor_event,
    wait_subscribed,
)

pytestmark = pytest.mark.slow

EXAMPLES = 10  # per socket; each example is a round trip through a real worker (≈ 0.1–0.3 s)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
)


class Target:
    """One receiving socket of one worker: how the test reaches it and what the worker counts."""

    def __init__(self, endpoint: str, worker: str, bad: str, ok: str) -> None:
        self.endpoint, self.worker, self.bad, self.ok = endpoint, worker, bad, ok


TARGETS = {
    "raw": Target("raw", "scorer", "bad_input", "scored"),
    "scored": Target("scored", "tiering", "bad_input", "samples"),
    "snapshot": Target("snapshot", "tiering", "bad_input", "snapshots_served"),
    "record": Target("record", "recorder", "bad_input", "records_stored"),
    "pause": Target("pause", "forensics", "bad_input_pause", "pauses_received"),
    "live": Target("live", "forensics", "bad_input_live", "live_received"),
}


class Worlds:
    """One world per worker; the test binds the PUB sockets the workers subscribe to."""

    def __init__(self) -> None:
        self.worlds: dict[str, World] = {}
        self.xpubs: dict[str, zmq.Socket] = {}
        self.dealers: dict[str, zmq.Socket] = {}
        self.pushes: dict[str, zmq.Socket] = {}
        self.valid = Valid()

    def start(self) -> None:
        for worker in ("scorer", "tiering", "recorder", "forensics"):
            self.worlds[worker] = World()
        # tiering SUBscribes to "scored" and forensics to "live": with no scorer/tiering running in
        # their worlds, the test binds those PUBs (XPUB: it sees the subscription arrive).
        for endpoint, worker in (("scored", "tiering"), ("live", "forensics")):
            world = self.worlds[worker]
            xpub = world.socket(zmq.XPUB)
            xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
            xpub.bind(world.addr(endpoint))
            self.xpubs[endpoint] = xpub
        for worker, world in self.worlds.items():
            world.start(worker)
        for worker, world in self.worlds.items():
            world.wait_ready(worker)
        for endpoint in ("scored", "live"):
            wait_subscribed(self.xpubs[endpoint])
        for endpoint in ("raw", "record", "pause"):
            world = self.world(endpoint)
            self.pushes[endpoint] = world.socket(zmq.PUSH)
            self.pushes[endpoint].connect(world.addr(endpoint))
        world = self.world("snapshot")
        self.dealers["snapshot"] = world.socket(zmq.DEALER)
        self.dealers["snapshot"].connect(world.addr("snapshot"))

    def world(self, endpoint: str) -> World:
        return self.worlds[TARGETS[endpoint].worker]

    def sender(self, endpoint: str) -> zmq.Socket:
        return self.xpubs.get(endpoint) or self.dealers.get(endpoint) or self.pushes[endpoint]

    def close(self) -> None:
        for world in self.worlds.values():
            world.close()


@pytest.fixture(scope="module")
def worlds():
    w = Worlds()
    logs = {}
    try:
        w.start()
        yield w
        for worker, world in w.worlds.items():
            world.stop(worker)
            logs[worker] = world.log(worker)
    finally:
        w.close()
    for worker, log in logs.items():
        # Dropped frames are logged, never with a traceback or with raw bytes from the frame.
        assert "Traceback" not in log and not unsafe_chars(log), log[-3000:]


def deliver_and_check(worlds: Worlds, endpoint: str, messages: list[list[bytes]]) -> None:
    """Send the hostile messages, then one valid message; every hostile one is dropped and counted
    once, the valid one is processed."""
    target = TARGETS[endpoint]
    world = worlds.world(endpoint)
    sock = worlds.sender(endpoint)
    for frames in messages:
        sock.send_multipart(frames)
    sock.send(worlds.valid.frame(endpoint))
    world.expect(target.worker, **{target.bad: len(messages), target.ok: 1})
    world.settle(target.worker)
    if endpoint == "snapshot":
        # Exactly one reply, to the valid request: hostile requests get none.
        assert sock.poll(10_000), "no snapshot reply"
        reply = ENDPOINTS["snapshot"].codec().decode(sock.recv_multipart()[-1])
        assert isinstance(reply, m.SnapshotReply)
        assert not sock.poll(50), "a hostile request was answered"


def _batches(endpoint: str) -> st.SearchStrategy[list[list[bytes]]]:
    return st.lists(hostile_message(endpoint), min_size=1, max_size=6)


def catalogue(endpoint: str) -> list[list[bytes]]:
    """One message of every hostile kind, so each is sent on every run whatever hypothesis picks."""
    valid = Valid()
    frame = valid.frame(endpoint)
    as_dict = msgspec.to_builtins(valid.for_endpoint(endpoint))
    out = [
        # First, while the workers still log each drop: msgspec's error quotes the bad tag.
        [msgspec.msgpack.encode({**as_dict, "type": "\x1b]0;pwn\x07\u202e"})],
        [b""],
        [frame[: len(frame) // 2]],
        [frame[:-1]],
        [b"\x91" * 200_000 + b"\xc0"],
        [deep_extra_field(as_dict, 200_000)],  # RecursionError inside msgspec
        [bytes(range(256)) * (MEGABYTE // 256)],  # 1 MB of noise
        [msgspec.msgpack.encode("x" * MEGABYTE)],  # 1 MB of well-formed msgpack, wrong type
        [msgspec.msgpack.encode({**as_dict, "seq": "1"})],
        [msgspec.msgpack.encode({**as_dict, "seq": -1})],
        [msgspec.msgpack.encode({**as_dict, "type": "no_such_message"})],
        [msgspec.msgpack.encode({k: v for k, v in as_dict.items() if k != "sender"})],
        *[[f] for f in foreign_frames(endpoint)],
        [frame, b"junk"],  # multipart where one frame is expected (on a ROUTER: a bad request)
    ]
    if endpoint not in ("snapshot", "control"):  # a ROUTER reads leading frames as the envelope
        out += [[b"junk", frame], [frame, frame]]  # valid parts do not make it valid
    return out


@pytest.mark.parametrize("endpoint", list(TARGETS))
def test_every_kind_of_hostile_frame_is_dropped_counted_and_the_worker_serves_on(worlds, endpoint):
    deliver_and_check(worlds, endpoint, catalogue(endpoint))
    log = worlds.world(endpoint).log(TARGETS[endpoint].worker)
    assert not unsafe_chars(log), log[-3000:]
    if endpoint in ("raw", "scored", "record"):  # their first drops are logged, the tag quoted inert
        assert "^[]0;pwn^G\\u202e" in log, log[-3000:]

    @FUZZ
    @given(messages=_batches(endpoint))
    def fuzz(messages):
        deliver_and_check(worlds, endpoint, messages)

    fuzz()


@pytest.mark.parametrize("endpoint", list(TARGETS))
def test_a_frame_above_the_size_limit_drops_the_connection_not_the_worker(worlds, endpoint):
    """On a socket the worker binds, zmq hangs up on the sender of an oversized frame (the sender
    reconnects) and the worker never sees it. On a socket the worker connects (its SUBs), the
    frame reaches the decoder and is counted: a connecting socket that hit the size limit would be
    cut off for good (libzmq treats it as a protocol error and never reconnects), a deaf worker."""
    target = TARGETS[endpoint]
    world = worlds.world(endpoint)
    before = world.settle(target.worker)
    oversize = b"\x00" * (MAX_MESSAGE + MEGABYTE)
    if endpoint in worlds.xpubs:
        sock = worlds.xpubs[endpoint]
        sock.send(oversize)
        world.expect(target.worker, **{target.bad: 1})
    else:
        kind = zmq.DEALER if endpoint == "snapshot" else zmq.PUSH
        sock = world.socket(kind)
        monitor = sock.get_monitor_socket()
        try:
            sock.connect(world.addr(endpoint))
            wait_monitor_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)
            sock.send(oversize)
            wait_monitor_event(monitor, zmq.EVENT_DISCONNECTED)  # the worker hung up on us
            wait_monitor_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)  # and we are back
        finally:
            sock.disable_monitor()
            monitor.close(0)
    try:
        # A valid message on the same socket afterwards is served.
        sock.send(worlds.valid.frame(endpoint))
        world.expect(target.worker, **{target.ok: 1})
        after = world.settle(target.worker)
        if endpoint not in worlds.xpubs:  # never reached the decoder
            assert after.get(target.bad, 0) == before.get(target.bad, 0)
        if endpoint == "snapshot":
            assert sock.poll(10_000)
            assert isinstance(ENDPOINTS["snapshot"].codec().decode(sock.recv()), m.SnapshotReply)
    finally:
        if endpoint not in worlds.xpubs:
            sock.close(0)


def test_the_recorder_stored_every_valid_record_and_nothing_else(worlds):
    world = worlds.worlds["recorder"]
    worlds.sender("record").send(worlds.valid.frame("record"))
    world.expect("recorder", records_stored=1)
    stored = world.settle("recorder")["records_stored"]
    proc = world.cli("pauses", "--json", "--limit", "0")
    assert proc.returncode == 0, proc.stderr
    pauses = msgspec.json.decode(proc.stdout)
    assert len(pauses) == stored > 0
    assert all(p["pause_id"].startswith("fuzz-") for p in pauses)  # only the valid ones we sent


# --------------------------------------------------------------------------------- supervisor
def test_the_supervisor_drops_hostile_heartbeats_and_control_requests():
    world = World(own_health=False)
    try:
        _supervisor_fuzz(world)
    finally:
        world.close()


def _supervisor_fuzz(world: World) -> None:
    procfile = world.root / "Procfile"
    procfile.write_text(f"sleeper: python {REPO / 'tests' / 'fake_workers' / 'worker.py'} sleeper\n")
    world.start("supervisor", "up", "--procfile", str(procfile), module="cli")
    control_codec = ENDPOINTS["control"].codec()
    valid = Valid()
    dealer = world.socket(zmq.DEALER)

    def status() -> m.ControlReply:
        dealer.send(control_codec.encode(valid.status_request()))
        assert dealer.poll(10_000), "the supervisor stopped answering"
        reply = control_codec.decode(dealer.recv_multipart()[-1])
        assert isinstance(reply, m.ControlReply) and reply.ok, reply
        return reply

    def sleeper_running() -> bool:
        world.alive("supervisor")
        w = {x.name: x for x in status().workers}.get("sleeper")
        return w is not None and w.state == "running"

    wait_for(lambda: world.runtime_dir.joinpath("control.sock").exists(), 20, "the control socket")
    dealer.connect(world.addr("control"))
    wait_for(sleeper_running, 20, lambda: f"sleeper running; output:\n{world.log('supervisor')}")
    health = world.socket(zmq.XPUB)
    health.setsockopt(zmq.XPUB_VERBOSE, 1)
    health.connect(world.addr("health"))
    wait_subscribed(health)
    bad = 0

    def served() -> None:
        reply = status()
        sleeper = {x.name: x for x in reply.workers}["sleeper"]
        assert sleeper.state == "running" and sleeper.restarts == 0, sleeper
        assert sleeper.last_heartbeat_age_s is not None and sleeper.last_heartbeat_age_s < 2.0

    def health_round(messages):
        nonlocal bad
        for frames in messages:
            health.send_multipart(frames)
        bad += len(messages)
        served()

    def control_round(messages):
        nonlocal bad
        for frames in messages:
            dealer.send_multipart(frames)
        # Every bad request gets its "bad request" answer, in order, then the valid one is served.
        for _ in messages:
            assert dealer.poll(10_000), "no answer to a bad request"
            reply = control_codec.decode(dealer.recv_multipart()[-1])
            assert reply.ok is False and reply.error.startswith("bad request"), reply
        bad += len(messages)
        served()

    health_round(catalogue("health"))
    control_round(catalogue("control"))
    FUZZ(given(messages=_batches("health"))(health_round))()
    FUZZ(given(messages=_batches("control"))(control_round))()

    # Oversized frames: the supervisor hangs up on the sender and goes on.
    oversize = b"\x00" * (MAX_MESSAGE + MEGABYTE)
    for sock in (health, dealer):
        monitor = sock.get_monitor_socket()
        try:
            sock.send(oversize)
            wait_monitor_event(monitor, zmq.EVENT_DISCONNECTED)
            wait_monitor_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        finally:
            sock.disable_monitor()
            monitor.close(0)
    served()

    down = world.cli("down")
    assert down.returncode == 0, down.stderr
    assert world.procs["supervisor"].wait(15) == 0
    out = world.log("supervisor")
    found = re.search(r"stopped: .* (\d+) bad messages", out)
    assert found, out[-3000:]
    assert int(found.group(1)) == bad, out[-2000:]
    assert "Traceback" not in out and not unsafe_chars(out)
