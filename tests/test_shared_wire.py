"""The wire: typed codecs reject everything that is not a valid message, endpoints are private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmshared import messages as m
from pmshared import paths
from pmshared.codec import BadMessage, Codec, JsonLines, Stamper
from pmshared.endpoints import ENDPOINTS, Sockets, remove_stale_sockets, send_nowait

REPO = Path(__file__).resolve().parent.parent


def _process(pid: int = 1, command: str = "p") -> m.ProcessInfo:
    return m.ProcessInfo(pid=pid, command=command, state="running", cpu=12.5, mem=1 << 20, threads=2)


def _snapshot(stamp: Stamper) -> m.Snapshot:
    return stamp(
        m.Snapshot,
        timestamp=time.time(),
        elapsed_ms=1000.0,
        interval_ms=1000.0,
        platform="linux",
        process_count=1,
        processes=[_process()],
        system=m.SystemStats(cpu_count=2),
    )


def test_stamper_numbers_each_stream_from_one():
    stamp = Stamper("collector", "inc-1")
    first, second = _snapshot(stamp), _snapshot(stamp)
    assert (first.seq, second.seq) == (1, 2)
    assert first.sender == "collector" and first.incarnation == "inc-1"


def test_every_endpoint_codec_round_trips_its_messages():
    stamp = Stamper("t", "i")
    snap = _snapshot(stamp)
    codec = ENDPOINTS["raw"].codec()
    assert codec.decode(codec.encode(snap)) == snap
    record = ENDPOINTS["record"].codec()
    closed = stamp(m.EventClosed, event_key="i:1", start=1.0, end=2.0, peak_score=70, peak_tier=3)
    assert record.decode(record.encode(closed)) == closed


def test_a_message_of_another_socket_is_rejected():
    stamp = Stamper("t", "i")
    frame = ENDPOINTS["raw"].codec().encode(_snapshot(stamp))
    with pytest.raises(BadMessage):
        ENDPOINTS["record"].codec().decode(frame)


def test_out_of_range_values_are_rejected():
    stamp = Stamper("t", "i")
    bad = msgspec.msgpack.encode(
        {"type": "event_closed", "sender": "t", "incarnation": "i", "seq": 1, "sent_at": 0.0,
         "event_key": "k", "start": 0.0, "end": 1.0, "peak_score": 250, "peak_tier": 2}
    )
    with pytest.raises(BadMessage):
        ENDPOINTS["record"].codec().decode(bad)
    assert stamp.seq == 0


def test_deep_nesting_is_a_bad_message_not_a_crash():
    deep = b"\x91" * 200_000 + b"\x00"
    for name in ENDPOINTS:
        with pytest.raises(BadMessage):
            ENDPOINTS[name].codec().decode(deep)
    with pytest.raises(BadMessage):
        JsonLines(m.Snapshot).decode(b"[" * 200_000)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.binary(max_size=4096))
def test_random_bytes_never_escape_as_anything_but_bad_message(data):
    for name in ("raw", "record", "pause", "health", "control", "snapshot"):
        try:
            ENDPOINTS[name].codec().decode(data)
        except BadMessage:
            pass


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_frames_are_bad_messages(cut):
    frame = ENDPOINTS["raw"].codec().encode(_snapshot(Stamper("t", "i")))
    cut = cut % len(frame)
    with pytest.raises(BadMessage):
        ENDPOINTS["raw"].codec().decode(frame[:cut])


def test_ipc_endpoint_lives_in_a_private_dir_and_is_removed_on_close():
    sockets = Sockets()
    try:
        pull = sockets.bind("record")
        push = sockets.connect("record")
        path = paths.socket_path("record")
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert path.is_socket()
        assert pull.getsockopt(zmq.MAXMSGSIZE) > 0 and pull.getsockopt(zmq.LINGER) == 0
        assert push.getsockopt(zmq.LINGER) > 0  # records get a chance to flush on exit
        stamp = Stamper("t", "i")
        codec = ENDPOINTS["record"].codec()
        msg = stamp(m.TieringStarted)
        assert send_nowait(push, codec.encode(msg))
        assert pull.poll(5000)
        assert codec.decode(pull.recv()) == msg
    finally:
        sockets.close()
    assert not path.exists()


def test_an_open_runtime_dir_is_tightened_and_a_foreign_one_refused(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    paths.ensure_private_dir(loose)
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700
    if os.getuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        with pytest.raises(paths.PathError, match="owned by uid 65534"):
            paths.ensure_private_dir(foreign)


def test_overlong_socket_path_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp/" + "x" * 120)
    with pytest.raises(paths.PathError, match="longer than"):
        paths.socket_path("snapshot")


def test_stale_socket_files_are_removed():
    sockets = Sockets()
    sockets.bind("live")
    path = paths.socket_path("live")
    sockets._bound_files.clear()  # simulate a crash: the file stays behind
    sockets.close()
    assert path.is_socket()
    assert path in remove_stale_sockets()
    assert not path.exists()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to drop privileges to nobody")
def test_another_user_cannot_connect_to_an_ipc_endpoint():
    sockets = Sockets()
    try:
        pull = sockets.bind("record")
        path = paths.socket_path("record")
        # A child that drops to nobody and tries to connect to the socket file directly.
        probe = (
            "import os, socket, sys\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            f"    s.connect({str(path)!r})\n"
            "except PermissionError:\n"
            "    print('denied'); sys.exit(0)\n"
            "print('connected'); sys.exit(1)\n"
        )
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
        assert proc.stdout.strip() == "denied", proc.stdout + proc.stderr
        assert not pull.poll(100)
    finally:
        sockets.close()
