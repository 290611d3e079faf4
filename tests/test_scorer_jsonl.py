"""The standalone ``--jsonl`` pipes: real processes joined by real pipes, no sockets.

``python -m scorer --jsonl | python -m tiering --jsonl`` on scripted snapshots, ``python -m
collector --jsonl --count 3 | python -m scorer --jsonl`` on this machine's processes, the exit
paths of the jsonl mode (SIGTERM while the input is quiet, a reader that goes away), and the line
reader underneath it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmshared import messages as m
from pmshared.codec import JsonLines, Stamper
from pmshared.flight_codec import decode_frame
from pmshared.jsonlpipe import IDLE, iter_lines
from tests.tiering_helpers import REPO, SEED_MODEL, burner_snapshot, quiet_snapshot, samples

pytestmark = pytest.mark.slow

SNAPSHOTS = JsonLines(m.Snapshot | m.Pause)
SCORED = JsonLines(m.ProcessSamples)
TIERING_OUT = JsonLines(m.LiveSample | m.Record)
ANY = JsonLines(m.AnyMessage)
EXIT_LIMIT_S = 1.0
T0 = 1_700_000_000.0


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """Start ``python -m <worker> <args>``; every child is killed and reaped after the test."""
    children: list[subprocess.Popen] = []

    def start(name: str, *args: str, **popen) -> subprocess.Popen:
        popen.setdefault("stderr", open(tmp_path / f"{name}.err", "wb"))
        child = subprocess.Popen([sys.executable, "-m", name, *args], cwd=REPO, **popen)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:  # stdin's buffer still held lines for a worker that had exited
                    pass


def stderr_of(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.err").read_text(encoding="utf-8", errors="replace")


def encode_lines(messages: list) -> bytes:
    return b"".join(SNAPSHOTS.encode(msg) for msg in messages)


def collector_into_scorer(spawn) -> list[m.ProcessSamples]:
    """``python -m collector --jsonl --count 3 | python -m scorer --jsonl``: the scorer's own
    output (a pause the collector saw meanwhile is passed on beside it)."""
    collector = spawn("collector", "--jsonl", "--count", "3", stdout=subprocess.PIPE)
    scorer = spawn("scorer", "--jsonl", stdin=collector.stdout, stdout=subprocess.PIPE)
    collector.stdout.close()
    out, _ = scorer.communicate(timeout=30)
    assert collector.wait(timeout=10) == 0 and scorer.returncode == 0
    return [msg for line in out.splitlines() if isinstance(msg := ANY.decode(line), m.ProcessSamples)]


def seed_model(tmp_path: Path, monkeypatch) -> None:
    """Children started from now on score with the seed model (the scripted burner's 55/65)."""
    config = tmp_path / "seed.toml"
    config.write_text(SEED_MODEL)
    monkeypatch.setenv("PAUSE_MONITOR_CONFIG", str(config))


def test_scorer_into_tiering_makes_one_event_on_sample_time(tmp_path, spawn, monkeypatch):
    seed_model(tmp_path, monkeypatch)
    stamp = Stamper("collector", "test-collector")
    # t0, t0+1: calm; t0+2: tier 2 (score 55); t0+3: tier 3 (65); then calm until tier 1 again.
    script = [quiet_snapshot(stamp, T0), quiet_snapshot(stamp, T0 + 1), burner_snapshot(stamp, T0 + 2),
              burner_snapshot(stamp, T0 + 3, critical=True)]
    script += [quiet_snapshot(stamp, T0 + k) for k in range(4, 16)]
    pause = stamp(m.Pause, pause_id="c:1", start=T0, end=T0 + 1, duration_ms=900.0, expected_ms=50.0)
    # The collector's stream also carries pauses (not the scorer's business); one line is garbage.
    stream = encode_lines(script[:2]) + b"\n" + encode_lines([pause]) + b"{not json\n" + encode_lines(script[2:])

    scorer = spawn("scorer", "--jsonl", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    tiering = spawn("tiering", "--jsonl", stdin=scorer.stdout, stdout=subprocess.PIPE)
    scorer.stdout.close()  # tiering holds the pipe now; scorer sees EPIPE if tiering dies
    scorer.stdin.write(stream)
    scorer.stdin.close()
    out, _ = tiering.communicate(timeout=20)
    assert scorer.wait(timeout=10) == 0 and tiering.returncode == 0

    messages = [TIERING_OUT.decode(line) for line in out.splitlines()]
    assert isinstance(messages[0], m.TieringStarted)
    # The pause is not for the scorer nor tiering: both pass it on, unchanged and in stream order.
    passed = [msg for msg in messages if isinstance(msg, m.Pause)]
    # after the two calm snapshots' live samples and flight samples
    assert passed == [pause] and messages.index(pause) == 5
    live = [msg for msg in messages if isinstance(msg, m.LiveSample)]
    flight = [msg for msg in messages if isinstance(msg, m.FlightSample)]
    frames = [decode_frame(f.frame) for f in flight]
    # The same samples (as the record keeps them: figures rounded), except that the minute's whole
    # process table rides only in the flight sample (tiering keeps it off the live feed), and
    # there is one in the first minute.
    assert frames[0].samples.table, "the first minute's process table goes to the flight record"
    assert all(s.samples.table is None for s in live)
    assert [f.timestamp for f in flight] == [fr.samples.timestamp for fr in frames] == [
        s.samples.timestamp for s in live]
    assert [(fr.samples.snapshot_seq, fr.samples.max_score, [r.pid for r in fr.samples.rogues], fr.state)
            for fr in frames] == [
        (s.samples.snapshot_seq, s.samples.max_score, [r.pid for r in s.samples.rogues], s.state) for s in live]
    records = [msg for msg in messages[1:]
               if not isinstance(msg, m.LiveSample | m.Pause | m.FlightSample | m.EventCulprits)]
    tallies = [msg for msg in messages if isinstance(msg, m.EventCulprits)]

    # Every snapshot scored once, in order; the de-escalation delay ran on the samples' clock
    # (the whole pipe takes far less than the 11 s of sample time it took to calm down).
    assert [s.samples.snapshot_seq for s in live] == [s.seq for s in script]
    assert [s.samples.max_score for s in live] == [0, 0, 55, 65] + [0] * 12
    assert [s.state.tier for s in live] == [1, 1, 2, 3] + [3] * 5 + [2] * 6 + [1]

    key = live[2].state.event_key
    assert key and key.startswith(messages[0].incarnation + ":")
    summary = [
        (type(r).__name__, getattr(r, "tier", None), getattr(r, "action", None)) for r in records
    ]
    assert summary == [
        ("EventOpened", 2, None),
        ("EventSample", 2, "tier2_entry"),
        ("EventSample", 3, "tier3_entry"),
        *[("EventSample", 3, None)] * 5,  # t0+4 .. t0+8, still tier 3
        ("EventClosed", None, None),
    ]
    assert {r.event_key for r in records} == {key}
    closed = records[-1]
    assert (closed.start, closed.end, closed.peak_score, closed.peak_tier) == (T0 + 2, T0 + 15, 65, 3)
    burner = [r for r in records[1].samples.rogues if r.pid == 4242]
    assert burner and burner[0].command == "burner" and burner[0].score == 55
    # Who the event is about: the burner's two stressed seconds (55 + 65), sent last before the close.
    assert tallies and {t.event_key for t in tallies} == {key}
    assert messages.index(tallies[-1]) < messages.index(closed)
    top = tallies[-1].culprits[0]
    assert (top.pid, top.command, top.score_sum, top.peak, top.samples) == (4242, "burner", 120, 65, 2)

    scorer_log = stderr_of(tmp_path, "scorer")
    assert scorer_log.count("dropped malformed") == 1 and "Traceback" not in scorer_log
    assert "scorer: passed on 1 messages for other workers (pause 1); 1 bad lines dropped" in scorer_log
    tiering_log = stderr_of(tmp_path, "tiering")
    assert "tiering: passed on 1 messages for other workers (pause 1)" in tiering_log
    assert "Traceback" not in tiering_log and "bad lines" not in tiering_log


def test_tiering_clock_monotonic_ignores_sample_time(tmp_path, spawn):
    stamp = Stamper("scorer", "test-scorer")
    # 20 s of calm sample time after a critical sample: de-escalates on sample time, not here,
    # because the whole stream arrives within well under the 5 s delay of real time.
    lines = [samples(80, T0, stamp)] + [samples(0, T0 + k, stamp) for k in range(1, 21)]
    tiering = spawn("tiering", "--jsonl", "--clock", "monotonic", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = tiering.communicate(b"".join(SCORED.encode(s) for s in lines), timeout=20)
    assert tiering.returncode == 0
    tiers = [msg.state.tier for line in out.splitlines() if isinstance(msg := TIERING_OUT.decode(line), m.LiveSample)]
    assert tiers == [3] * 21


@pytest.mark.skipif(sys.platform != "linux", reason="the collector's backend here is Linux /proc")
def test_collector_into_scorer_seed_model(tmp_path, spawn, monkeypatch):
    seed_model(tmp_path, monkeypatch)
    scored = collector_into_scorer(spawn)
    assert [s.seq for s in scored] == [1, 2, 3] and {s.sender for s in scored} == {"scorer"}
    assert scored[0].snapshot_seq < scored[1].snapshot_seq < scored[2].snapshot_seq
    for s in scored:
        # At least the top memory users are picked (mem > 0 is above the default threshold 0).
        assert s.process_count > 0 and s.rogues
        assert any("mem" in r.categories for r in s.rogues)
        assert s.max_score == max(r.score for r in s.rogues)
        assert s.system is not None and s.system.cpu_count >= 1
    assert "Traceback" not in stderr_of(tmp_path, "scorer") + stderr_of(tmp_path, "collector")


@pytest.mark.skipif(sys.platform != "linux", reason="the collector's backend here is Linux /proc")
def test_collector_into_scorer_pressure_model(tmp_path, spawn):
    """The default model on this machine's real figures: the tiers follow the machine's stress,
    and only processes that account for some of it (or are stuck/zombie) are listed."""
    scored = collector_into_scorer(spawn)
    assert len(scored) == 3
    for s in scored:
        assert s.model == "pressure"
        assert {"cpu", "memory"} <= set(s.stress)  # Linux always gives busy % and memory figures
        # Every resource's stress counts; the stall only as far as a contended resource explains it.
        resources = [v for r, v in s.stress.items() if r != "stall"]
        assert max(resources) <= s.max_score <= max(s.stress.values())
        assert len(s.rogues) <= 10 + sum(1 for r in s.rogues if {"stuck", "state"} & set(r.categories))
        for r in s.rogues:
            assert r.score > 0 or {"stuck", "state"} & set(r.categories)
            assert r.score <= s.max_score
    assert "Traceback" not in stderr_of(tmp_path, "scorer") + stderr_of(tmp_path, "collector")


def first_line(child: subprocess.Popen) -> bytes:
    line = child.stdout.readline()
    assert line, "the worker wrote nothing"
    return line


@pytest.mark.parametrize("name", ["scorer", "tiering"])
def test_sigterm_ends_jsonl_mode_while_the_input_is_quiet(tmp_path, spawn, name):
    child = spawn(name, "--jsonl", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if name == "scorer":  # scorer writes once it has read something: a handshake line
        child.stdin.write(SNAPSHOTS.encode(quiet_snapshot(Stamper("c", "c"), T0)))
        child.stdin.flush()
    first_line(child)  # tiering announces itself unprompted; either way it is in its loop now
    began = time.monotonic()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=5) == 0  # stdin is still open: only the stop flag ends the loop
    assert time.monotonic() - began < EXIT_LIMIT_S
    assert "Traceback" not in stderr_of(tmp_path, name)


@pytest.mark.parametrize("name", ["scorer", "tiering"])
def test_a_reader_that_goes_away_ends_jsonl_mode_quietly(tmp_path, spawn, name):
    # Like `... | head -1`: the downstream reads a line and closes the pipe.
    child = spawn(name, "--jsonl", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    stamp = Stamper("x", "x")

    def line(k: int) -> bytes:
        msg = quiet_snapshot(stamp, T0 + k) if name == "scorer" else samples(0, T0 + k, stamp)
        return SNAPSHOTS.encode(msg) if name == "scorer" else SCORED.encode(msg)

    child.stdin.write(line(0))
    child.stdin.flush()
    first_line(child)
    child.stdout.close()
    try:
        for k in range(1, 50):
            child.stdin.write(line(k))
            child.stdin.flush()
    except BrokenPipeError:
        pass  # the worker stopped reading: that is the point
    assert child.wait(timeout=10) == 0
    assert "Traceback" not in stderr_of(tmp_path, name)


# ----------------------------------------------------------------------------- the line reader


def test_lines_split_on_newline_and_a_last_line_without_one_counts():
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"one\n\ntwo\nthree")
    os.close(write_fd)
    try:
        assert list(iter_lines(read_fd, lambda: False)) == [b"one", b"", b"two", b"three"]
    finally:
        os.close(read_fd)


def test_an_over_long_line_is_cut_and_the_next_line_is_whole():
    read_fd, write_fd = os.pipe()
    try:
        reader = iter_lines(read_fd, lambda: False, timeout_ms=10, max_line_bytes=50)
        os.write(write_fd, b"x" * 100 + b"\nok\n")  # whole within one read
        assert (next(reader), next(reader)) == (b"x" * 50, b"ok")
        os.write(write_fd, b"y" * 60)  # spread over several reads: cut once, the rest skipped
        assert next(reader) == b"y" * 50
        os.write(write_fd, b"y" * 60)
        assert next(reader) is IDLE
        os.write(write_fd, b"yy\nfine\n")
        assert next(reader) == b"fine"
        os.close(write_fd)
        write_fd = -1
        assert list(reader) == []
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_a_quiet_pipe_yields_idle_and_the_stop_flag_ends_it():
    read_fd, write_fd = os.pipe()
    stop = []
    try:
        reader = iter_lines(read_fd, lambda: bool(stop), timeout_ms=10)
        assert next(reader) is IDLE
        os.write(write_fd, b"late\n")
        assert next(reader) == b"late"
        stop.append(True)
        assert list(reader) == []
    finally:
        os.close(read_fd)
        os.close(write_fd)


def line_within(child: subprocess.Popen, seconds: float) -> bytes:
    """The child's next output line, failing (not hanging) if none comes within ``seconds``.

    The child must be spawned with ``bufsize=0``: a buffered reader may already hold the next
    line (two written together), which select() on the descriptor would never report."""
    assert not hasattr(child.stdout, "peek"), "spawn with bufsize=0"
    assert select.select([child.stdout], [], [], seconds)[0], f"no output within {seconds} s"
    return first_line(child)


@pytest.mark.parametrize("name", ["scorer", "tiering", "forensics"])
def test_sigterm_ends_jsonl_mode_in_the_middle_of_a_line(tmp_path, spawn, name):
    """Half a line on stdin and no more: a reader blocked until the newline would never see the
    stop flag (forensics' own readline did)."""
    child = spawn(name, "--jsonl", stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    # Handshake: another worker's message comes back out, passed on, once the worker reads.
    heartbeat = ANY.encode(Stamper("x", "x")(m.Heartbeat, pid=1))
    child.stdin.write(heartbeat)
    child.stdin.flush()
    while (line := line_within(child, 10)) != heartbeat:
        assert isinstance(TIERING_OUT.decode(line), m.TieringStarted)  # tiering's own first line
    line = SNAPSHOTS.encode(quiet_snapshot(Stamper("c", "c"), T0))
    child.stdin.write(line[: len(line) // 2])
    child.stdin.flush()
    began = time.monotonic()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=5) == 0
    assert time.monotonic() - began < EXIT_LIMIT_S
    assert "Traceback" not in stderr_of(tmp_path, name)
