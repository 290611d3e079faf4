"""pmshared.journald: the native-protocol formatter (pure) and the sender on a real unix socket.

The test parses what the formatter and the sender produce with a reader written from the protocol
description (systemd's "Native Journal Protocol"), independent of the code under test.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmshared import journald


def parse(data: bytes) -> list[tuple[str, bytes]]:
    """A native-protocol datagram -> [(name, value)], as journald reads it."""
    fields, i = [], 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = end + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[end + 1:end + 9])
            value = data[end + 9:end + 9 + size]
            assert data[end + 9 + size:end + 10 + size] == b"\n", "a binary field ends with a newline"
            i = end + 10 + size
        fields.append((name.decode(), value))
    return fields


def test_plain_values_are_name_equals_value_lines():
    data = journald.format_entry([("MESSAGE", "a pause"), ("PRIORITY", "4"), ("PM_DURATION_MS", "1500.0")])
    assert data == b"MESSAGE=a pause\nPRIORITY=4\nPM_DURATION_MS=1500.0\n"


def test_a_value_with_a_newline_is_length_prefixed_and_cannot_inject_a_field():
    hostile = "x\nPRIORITY=0\n_PID=1"
    data = journald.format_entry([("PM_COMMAND", hostile), ("MESSAGE", "m")])
    assert data.startswith(b"PM_COMMAND\n" + struct.pack("<Q", len(hostile)) + hostile.encode() + b"\n")
    assert parse(data) == [("PM_COMMAND", hostile.encode()), ("MESSAGE", b"m")]


@pytest.mark.parametrize("name", ["message", "_PID", "1ABC", "A" * 65, "PM-X", "PM X", "MESSAGE=", "", "É"])
def test_names_journald_refuses_are_refused(name):
    with pytest.raises(ValueError, match="not a journal field name"):
        journald.format_entry([(name, "v")])


@given(st.lists(st.tuples(st.from_regex(r"[A-Z][A-Z0-9_]{0,63}", fullmatch=True), st.text()), max_size=8))
def test_any_text_round_trips(fields):
    parsed = parse(journald.format_entry(fields))
    assert parsed == [(name, value.encode("utf-8", "replace")) for name, value in fields]


@pytest.fixture
def short_dir():
    # A unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="pmj-", dir="/tmp"))
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def bound(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    return sock


def test_the_sender_delivers_one_datagram_per_entry_to_a_real_socket(short_dir):
    receiver = bound(short_dir / "journal")
    receiver.settimeout(5)
    counters = Counter()
    sender = journald.JournalSender(str(short_dir / "journal"), counters)
    try:
        assert sender.send([("MESSAGE", "first"), ("PM_KIND", "pause")]) == "sent"
        assert sender.send([("MESSAGE", "two\nlines")]) == "sent"
        assert parse(receiver.recv(65536)) == [("MESSAGE", b"first"), ("PM_KIND", b"pause")]
        assert parse(receiver.recv(65536)) == [("MESSAGE", b"two\nlines")]
    finally:
        sender.close()
        receiver.close()
    assert counters == Counter(journal_sent=2)


def test_no_journald_is_absent_and_counted_never_an_error(short_dir):
    counters = Counter()
    sender = journald.JournalSender(str(short_dir / "missing"), counters)
    assert sender.send([("MESSAGE", "m")]) == "absent"
    # A socket file nobody reads any more (journald stopped): also absent.
    bound(short_dir / "stale").close()
    stale = journald.JournalSender(str(short_dir / "stale"), counters)
    assert stale.send([("MESSAGE", "m")]) == "absent"
    sender.close()
    stale.close()
    assert counters == Counter(journal_absent=2)


def test_a_journald_that_does_not_read_costs_a_counted_drop_never_a_block(short_dir):
    receiver = bound(short_dir / "journal")  # never read: its queue fills up
    counters = Counter()
    sender = journald.JournalSender(str(short_dir / "journal"), counters)
    started = time.monotonic()
    try:
        outcomes = [sender.send([("MESSAGE", "x" * 1000)]) for _ in range(5000)]
    finally:
        sender.close()
        receiver.close()
    assert "failed" in outcomes and outcomes[0] == "sent"
    assert counters["journal_failed"] == outcomes.count("failed") and counters["journal_sent"] == outcomes.count("sent")
    assert time.monotonic() - started < 5  # never waited for the reader


def test_the_socket_path_follows_the_environment(monkeypatch):
    monkeypatch.delenv(journald.SOCKET_ENV, raising=False)
    assert journald.socket_path() == "/run/systemd/journal/socket"
    monkeypatch.setenv(journald.SOCKET_ENV, "/tmp/j.sock")
    assert journald.JournalSender().path == "/tmp/j.sock"
    assert os.environ[journald.SOCKET_ENV] == "/tmp/j.sock"
