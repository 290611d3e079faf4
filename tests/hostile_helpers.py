"""Helpers for the hostile-input tests: private worlds of standalone workers, valid messages per
endpoint, hypothesis strategies for hostile frames, and the "is this text inert?" check.

A ``World`` is a temporary home (HOME, XDG_*, PAUSE_MONITOR_CONFIG) in which the test starts real
workers with ``python -m <worker>`` and plays their neighbours. Unless a supervisor runs in it,
the world binds the "health" SUB itself, so every worker's heartbeat counters (cumulative) are
what the test asserts on: a dropped frame must show up there, counted.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from hypothesis import strategies as st
from zmq.utils.monitor import recv_monitor_message

from pmshared import messages as m
from pmshared.codec import BadMessage, Stamper
from pmshared.endpoints import ENDPOINTS
from tests.procutil import wait_for  # noqa: F401 - re-exported to the tests

REPO = Path(__file__).resolve().parent.parent
MAX_MESSAGE = 2 * 1024 * 1024  # transport.max_message_bytes in the fuzzing worlds
MEGABYTE = 1024 * 1024

# Heartbeats every 50 ms so the counters show a dropped frame quickly; forensics captures and
# notifications off, since the fuzzing sends valid pauses too.
FUZZ_CONFIG = f"""
[supervisor]
heartbeat_interval_s = 0.05
missed_heartbeats = 100
[transport]
max_message_bytes = {MAX_MESSAGE}
[forensics]
enabled = false
[alerts]
enabled = false
"""

# C0 and C1 controls except \n and \t, DEL, and the bidi embeddings/overrides/isolates and marks.
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour/style sequences Rich emits on a colour terminal


def unsafe_chars(text: str, *, allow_sgr: bool = False) -> list[str]:
    """The characters of ``text`` a terminal would act on (with ``allow_sgr``: Rich's own styling
    sequences are allowed, nothing else)."""
    if allow_sgr:
        text = SGR.sub("", text)
    return sorted({repr(c) for c in UNSAFE.findall(text)})


# --------------------------------------------------------------------------------- valid messages
class Valid:
    """A valid message of every kind a fuzzed socket accepts; unique ids where it matters."""

    def __init__(self) -> None:
        self.stamp = Stamper("fuzzer", f"fuzz-{os.getpid()}-{time.monotonic_ns()}")
        self.n = 0

    def process(self) -> m.ProcessInfo:
        return m.ProcessInfo(pid=4242, command="fuzz-proc", state="running", cpu=1.5, mem=1 << 20)

    def snapshot(self) -> m.Snapshot:
        return self.stamp(
            m.Snapshot, timestamp=time.time(), elapsed_ms=1000.0, interval_ms=1000.0, platform="linux",
            process_count=1, processes=[self.process()], system=m.SystemStats(cpu_count=2),
        )

    def samples(self) -> m.ProcessSamples:
        return self.stamp(m.ProcessSamples, timestamp=time.time(), elapsed_ms=1000.0, process_count=1,
                          max_score=0, rogues=[])

    def live(self) -> m.LiveSample:
        return self.stamp(m.LiveSample, samples=self.samples(), state=m.TierState())

    def pause(self) -> m.Pause:
        self.n += 1
        now = time.time()
        return self.stamp(m.Pause, pause_id=f"{self.stamp.incarnation}:{self.n}", start=now - 0.3, end=now,
                          duration_ms=300.0, expected_ms=50.0)

    def snapshot_request(self) -> m.SnapshotRequest:
        return self.stamp(m.SnapshotRequest)

    def heartbeat(self, pid: int = 1) -> m.Heartbeat:
        return self.stamp(m.Heartbeat, pid=pid)

    def status_request(self) -> m.ControlRequest:
        return self.stamp(m.ControlRequest, command="status")

    def for_endpoint(self, name: str) -> Any:
        return {
            "raw": self.snapshot, "scored": self.samples, "live": self.live, "record": self.pause,
            "pause": self.pause, "snapshot": self.snapshot_request, "health": self.heartbeat,
            "control": self.status_request,
        }[name]()

    def frame(self, name: str) -> bytes:
        return ENDPOINTS[name].codec().encode(self.for_endpoint(name))


# A message of the right shape for another socket ("valid envelope, wrong type") per endpoint.
def foreign_frames(name: str) -> list[bytes]:
    v = Valid()
    enc = msgspec.msgpack.encode
    others = [enc(v.heartbeat()), enc(v.snapshot()), enc(v.stamp(m.TieringStarted))]
    extra = {"snapshot": [enc(v.stamp(m.SnapshotReply, ring=[], state=m.TierState(), last_live_seq=0,
                                      live_incarnation="x"))],
             "control": [enc(v.stamp(m.ControlReply, ok=True, supervisor_pid=1, started_at=0.0))]}
    frames = others + extra.get(name, [])
    codec = ENDPOINTS[name].codec()
    out = []
    for frame in frames:
        try:
            msg = codec.decode(frame)
        except BadMessage:
            out.append(frame)
            continue
        # Decodes on this socket (a reply on a ROUTER): only wrong if it is not the request type.
        if name in ("snapshot", "control") and not type(msg).__name__.endswith("Request"):
            out.append(frame)
    return out


# --------------------------------------------------------------------------------- hostile frames
def deep_extra_field(valid: dict, depth: int) -> bytes:
    """A valid message plus an unknown field nested ``depth`` arrays deep: msgspec skips unknown
    fields recursively and raises RecursionError (not DecodeError) past its depth limit."""
    body = b"".join(msgspec.msgpack.encode(k) + msgspec.msgpack.encode(v) for k, v in valid.items())
    return b"\xde" + (len(valid) + 1).to_bytes(2, "big") + body + b"\xa3zzz" + b"\x91" * depth + b"\xc0"


_BAD_VALUES = ["x", -1, 1.5, None, [], {}, True, b"\xff"]
_ENVELOPE = ("sender", "incarnation", "seq", "sent_at")


def _wrong_type(valid: dict, field: str, value: Any) -> bytes:
    broken = dict(valid)
    if field == "type" and value is None:
        broken["type"] = "no_such_message"
    elif value is KeyError:
        broken.pop(field)
    else:
        broken[field] = value
    return msgspec.msgpack.encode(broken)


def _is_bad(name: str, frame: bytes) -> bool:
    try:
        msg = ENDPOINTS[name].codec().decode(frame)
    except BadMessage:
        return True
    return name in ("snapshot", "control") and not type(msg).__name__.endswith("Request")


def hostile_frame(name: str) -> st.SearchStrategy[bytes]:
    """One frame that the socket ``name`` must drop."""
    valid_msg = Valid().for_endpoint(name)
    valid_frame = ENDPOINTS[name].codec().encode(valid_msg)
    as_dict = msgspec.to_builtins(valid_msg)
    fixed = [
        b"",
        os.urandom(MEGABYTE),  # 1 MB of noise
        msgspec.msgpack.encode("x" * MEGABYTE),  # 1 MB, well-formed msgpack of the wrong type
        b"\x91" * 200_000 + b"\xc0",  # deep array at the top
        deep_extra_field(as_dict, 200_000),
        *foreign_frames(name),
    ]
    wrong = st.builds(
        _wrong_type,
        st.just(as_dict),
        st.sampled_from(["type", *_ENVELOPE]),
        st.sampled_from([*_BAD_VALUES, KeyError]),
    ).filter(lambda f: _is_bad(name, f))  # e.g. seq=True would be... still checked, never assumed
    return st.one_of(
        st.binary(max_size=2048).filter(lambda f: _is_bad(name, f)),
        st.integers(0, len(valid_frame) - 1).map(lambda n: valid_frame[:n]),
        st.integers(2_000, 200_000).map(lambda d: deep_extra_field(as_dict, d)),
        wrong,
        st.sampled_from(fixed),
    )


def hostile_message(name: str) -> st.SearchStrategy[list[bytes]]:
    """One zmq message (a list of frames) the socket must drop: a bad frame, or several frames
    where one is expected (valid ones among them). A ROUTER reads all but the last frame as the
    routing envelope, so there the last frame is always bad."""
    bad = hostile_frame(name)
    valid = st.builds(lambda: Valid().frame(name))
    multipart = st.lists(st.one_of(bad, valid), min_size=2, max_size=3)
    if name in ("snapshot", "control"):
        multipart = st.tuples(st.lists(st.one_of(bad, valid), min_size=1, max_size=2), bad).map(
            lambda t: [*t[0], t[1]]
        )
    return st.one_of(bad.map(lambda f: [f]), multipart)


# --------------------------------------------------------------------------------- worlds
class World:
    """A temporary home with its own runtime dir; workers started in it are standalone processes."""

    def __init__(self, config: str = FUZZ_CONFIG, *, own_health: bool = True) -> None:
        # Short and literal: ipc paths must fit ~103 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="pmh", dir="/tmp"))
        home = self.root / "home"
        runtime = self.root / "run"
        for d in (home, runtime):
            d.mkdir(mode=0o700)
        self.runtime_dir = runtime / "pause-monitor"
        self.config = self.root / "config.toml"
        self.config.write_text(config)
        self.env = dict(os.environ)
        self.env.update(
            HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"),
            XDG_RUNTIME_DIR=str(runtime), PAUSE_MONITOR_CONFIG=str(self.config), PYTHONUNBUFFERED="1",
        )
        self.env.pop("NO_COLOR", None)
        self.ctx = zmq.Context()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.beats: dict[str, m.Heartbeat] = {}
        self.expected: dict[str, Counter[str]] = {}
        self._health_codec = ENDPOINTS["health"].codec()
        self.health: zmq.Socket | None = None
        if own_health:
            self.runtime_dir.mkdir(mode=0o700)
            self.health = self.socket(zmq.SUB)
            self.health.setsockopt(zmq.SUBSCRIBE, b"")
            self.health.bind(self.addr("health"))

    # -- sockets ---------------------------------------------------------------------------------
    def addr(self, name: str) -> str:
        return f"ipc://{self.runtime_dir}/{name}.sock"

    def socket(self, kind: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        return sock

    # -- processes -------------------------------------------------------------------------------
    def start(self, worker: str, *args: str, module: str | None = None) -> subprocess.Popen:
        log = self.root / f"{worker}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", module or worker, *args], cwd=REPO, env=self.env,
                stdout=out, stderr=subprocess.STDOUT,
            )
        self.procs[worker] = proc
        self.logs[worker] = log
        return proc

    def log(self, worker: str) -> str:
        path = self.logs.get(worker)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def alive(self, worker: str) -> None:
        proc = self.procs[worker]
        if proc.poll() is not None:
            pytest.fail(f"{worker} exited with {proc.returncode}; its output:\n{self.log(worker)[-3000:]}")

    # -- heartbeats ------------------------------------------------------------------------------
    def pump(self, timeout_ms: int = 0) -> None:
        assert self.health is not None
        if not self.health.poll(timeout_ms):
            return
        while True:
            try:
                frame = self.health.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            hb = self._health_codec.decode(frame)
            self.beats[hb.sender] = hb

    def counters(self, worker: str) -> dict[str, int]:
        self.pump()
        hb = self.beats.get(worker)
        return dict(hb.counters) if hb else {}

    def wait_ready(self, worker: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while worker not in self.beats:
            self.alive(worker)
            if time.monotonic() > deadline:
                pytest.fail(f"no heartbeat from {worker}; output:\n{self.log(worker)[-3000:]}")
            self.pump(50)

    def expect(self, worker: str, **deltas: int) -> None:
        self.expected.setdefault(worker, Counter()).update(deltas)

    def settle(self, worker: str, timeout: float = 15) -> dict[str, int]:
        """Wait until the worker's heartbeat shows exactly the expected counters (cumulative)."""
        want = self.expected.get(worker, Counter())
        deadline = time.monotonic() + timeout
        while True:
            self.alive(worker)
            got = self.counters(worker)
            if all(got.get(k, 0) == v for k, v in want.items()):
                return got
            if time.monotonic() > deadline:
                pytest.fail(f"{worker} counters {got}, expected {dict(want)}; output:\n{self.log(worker)[-3000:]}")
            self.pump(50)

    def resync(self, worker: str, key: str, timeout: float = 15) -> None:
        """After a lossy moment (a dropped connection): wait until ``key`` moves past the expected
        value, then take the worker's count as the new expectation."""
        want = self.expected.setdefault(worker, Counter())
        deadline = time.monotonic() + timeout
        while self.counters(worker).get(key, 0) <= want[key]:
            self.alive(worker)
            if time.monotonic() > deadline:
                pytest.fail(f"{worker}: {key} stuck at {want[key]}; output:\n{self.log(worker)[-3000:]}")
            self.pump(50)
        want[key] = self.counters(worker)[key]

    # -- teardown --------------------------------------------------------------------------------
    def stop(self, worker: str, timeout: float = 5) -> int:
        proc = self.procs[worker]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.ctx.destroy(linger=0)
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------------- zmq utilities
def wait_monitor_event(monitor: zmq.Socket, event: int, timeout: float = 10) -> dict:
    """The next monitor event of kind ``event`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if monitor.poll(100):
            msg = recv_monitor_message(monitor)
            seen.append(msg["event"])
            if msg["event"] == event:
                return msg
    pytest.fail(f"no monitor event {event} within {timeout} s (saw {seen})")
    raise AssertionError


def wait_subscribed(xpub: zmq.Socket, timeout: float = 10) -> None:
    """An XPUB receives b"\\x01<topic>" when a subscriber joins: after that nothing sent is lost
    to the slow-joiner race."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if xpub.poll(100) and xpub.recv()[:1] == b"\x01":
            return
    pytest.fail(f"no subscriber joined within {timeout} s")
