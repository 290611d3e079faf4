"""The worker kit's JSON-lines input and output, directly on a pipe: which line is this worker's
message, which is another worker's (passed on or skipped, counted) and which is bad input."""

from __future__ import annotations

import io
import os

import pytest

from pmshared import messages as m
from pmshared.codec import JsonLines, Stamper
from pmshared.config import Config
from pmshared.jsonlpipe import IDLE
from pmshared.runtime import Worker
from pmshared.workerio import LineInput, LineOutput

ANY = JsonLines(m.AnyMessage)
STAMP = Stamper("collector", "c-1")
PAUSE = STAMP(m.Pause, pause_id="c-1:1", start=1.0, end=2.0, duration_ms=900.0, expected_ms=50.0)
HEARTBEAT = STAMP(m.Heartbeat, pid=1)


@pytest.fixture
def worker() -> Worker:
    return Worker("probe", Config(), sockets=False)


def read_all(worker: Worker, lines: list[bytes], output: LineOutput | None) -> tuple[list, LineInput]:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"".join(lines))
    os.close(write_fd)
    try:
        source = LineInput(worker, m.Pause, output, fd=read_fd)
        return [msg for msg in source if msg is not IDLE], source
    finally:
        os.close(read_fd)


def stream() -> list[bytes]:
    return [ANY.encode(PAUSE), ANY.encode(HEARTBEAT), b"\n", b"{not json\n",
            b'{"type": "pause", "sender": "x"}\n', b'{"type": "no_such_message"}\n', ANY.encode(HEARTBEAT)]


def test_a_middle_stage_passes_other_workers_messages_on_unchanged_and_drops_garbage(worker):
    out = io.BytesIO()
    taken, source = read_all(worker, stream(), LineOutput(m.Pause, out))
    assert taken == [PAUSE]
    assert out.getvalue() == ANY.encode(HEARTBEAT) * 2  # byte for byte, in stream order
    # Garbage, a pause missing its fields and an unknown type are bad; the blank line is nothing.
    assert (worker.counters["passed_on"], worker.counters["bad_input"], worker.counters["skipped"]) == (2, 3, 0)
    assert source.report() == "passed on 2 messages for other workers (heartbeat 2); 3 bad lines dropped"


def test_the_end_of_a_pipe_skips_other_workers_messages(worker):
    taken, source = read_all(worker, stream()[:2], None)
    assert taken == [PAUSE]
    assert (worker.counters["skipped"], worker.counters["bad_input"]) == (1, 0)
    assert source.foreign_report() == "skipped 1 messages for other workers (heartbeat 1)"


def test_an_output_whose_reader_went_away_ends_the_input(worker):
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    with os.fdopen(write_fd, "wb") as pipe:
        output = LineOutput(m.Pause, pipe)
        assert not output.write([PAUSE]) and output.gone
        taken, _ = read_all(worker, [ANY.encode(PAUSE)], output)
    assert taken == []
