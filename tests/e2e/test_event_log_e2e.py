"""The event log as a log shipper sees it: `pmctl up` with the real Procfile in a temporary home,
an induced pause (the collector SIGSTOPped ~1 s) and an event (a marked hog), read back from
<data>/logs/events.jsonl* and from a unix datagram socket standing in for journald.

Assertions are on the files and datagrams a shipper would read, compared with what `pmctl` shows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from pathlib import Path

import pytest

from pmshared import journald, paths
from recorder.event_entries import MESSAGE_IDS
from tests.e2e.fault_helpers import HOG_TIERS, Hog, cli_json
from tests.procutil import freeze, thaw
from tests.supervisor_helpers import Pipeline, pipeline, wait_for  # noqa: F401
from tests.test_shared_journald import parse

pytestmark = pytest.mark.slow

WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]
MAX_BYTES = 4096  # the smallest the config allows: the lines below rotate it at least once


def log_files() -> list[Path]:
    """events.jsonl and its rotated files, oldest first."""
    logs = paths.data_dir() / "logs"
    rotated = sorted(logs.glob("events.jsonl.*"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, *([logs / "events.jsonl"] if (logs / "events.jsonl").exists() else [])]


def log_lines() -> list[dict]:
    lines = []
    for f in log_files():
        for raw in f.read_bytes().splitlines(keepends=True):
            assert raw.endswith(b"\n") and all(0x20 <= b <= 0x7E for b in raw[:-1]), (f, raw)
            lines.append(json.loads(raw))
    return lines


def of_kind(kind: str) -> list[dict]:
    return [e for e in log_lines() if e.get("kind") == kind]


class FakeJournal:
    """A bound unix datagram socket where journald's would be; ``entries`` are the parsed datagrams."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pmj-", dir="/tmp"))
        self.path = self.dir / "journal"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self.entries: list[dict[str, str]] = []

    def take(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return self.entries
            self.entries.append({k: v.decode() for k, v in parse(data)})

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake_journal():
    journal = FakeJournal()
    yield journal
    journal.close()


def prefill(max_bytes: int) -> list[dict]:
    """A log already near its limit (an earlier run's lines), so the next lines rotate it."""
    logs = paths.ensure_private_dir(paths.data_dir() / "logs")
    filler, text = [], ""
    while True:
        line = {"kind": "filler", "n": len(filler), "pad": "x" * 80}
        if len(text) + len(json.dumps(line)) + 1 > max_bytes - 200:  # room for no real line
            break
        filler.append(line)
        text += json.dumps(line) + "\n"
    (logs / "events.jsonl").write_text(text)
    return filler


def stall_collector(pipeline: Pipeline, seconds: float = 1.0) -> None:
    collector = pipeline.workers()["collector"].pid
    freeze(collector)
    time.sleep(seconds)  # the stall under test: the sampler is frozen this long
    thaw(collector)


def test_a_pause_and_an_event_give_one_line_each_rotated_and_the_same_entries_in_journald(
        pipeline: Pipeline, fake_journal: FakeJournal):
    filler = prefill(MAX_BYTES)
    pipeline.env[journald.SOCKET_ENV] = str(fake_journal.path)
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n" + HOG_TIERS
                               + f"[event_log]\nmax_bytes = {MAX_BYTES}\nkeep = 3\n")
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    wait_for(lambda: pipeline.cli("watch", "--once").returncode == 0, 20, "the live feed")

    with Hog(pipeline) as hog:
        opened = wait_for(lambda: of_kind("event_opened"), 40,
                          lambda: f"an event_opened line; output:\n{pipeline.output()}", interval=0.3)
        stall_collector(pipeline)
        wait_for(lambda: of_kind("forensics"), 40, lambda: f"a forensics line; output:\n{pipeline.output()}",
                 interval=0.3)
        hog.stop()
        key = opened[0]["event_key"]
        closed = wait_for(lambda: [e for e in of_kind("event_closed") if e["event_key"] == key], 40,
                          lambda: f"the event's close line; lines: {log_lines()}", interval=0.3)

    # What pmctl shows is what the log says: one line per pause, per event open and close.
    shown_pauses = cli_json(pipeline, "pauses")
    pauses = of_kind("pause")
    assert sorted(p["pause_id"] for p in pauses) == sorted(p["pause_id"] for p in shown_pauses)
    assert len({p["pause_id"] for p in pauses}) == len(pauses) >= 1
    stalled = max(pauses, key=lambda p: p["duration_ms"])
    assert 800 <= stalled["duration_ms"] <= 3000, stalled
    assert stalled["message_id"] == MESSAGE_IDS["pause"] and stalled["time"].endswith("Z")
    [bundle] = [f for f in of_kind("forensics") if stalled["pause_id"] in f["pause_ids"]]
    [row] = [p for p in shown_pauses if p["pause_id"] == stalled["pause_id"]]
    assert bundle["bundle_path"] == row["bundle_path"] and Path(bundle["bundle_path"]).is_dir()
    assert bundle["cause"] == row["cause"]
    events = {e["event_key"]: e for e in cli_json(pipeline, "events", "--limit", "0")}
    assert len(closed) == 1 and len([e for e in of_kind("event_opened") if e["event_key"] == key]) == 1
    assert closed[0]["event_id"] == events[key]["id"] and closed[0]["top_culprit"] == events[key]["top_culprit"]
    assert closed[0]["top_culprit_pid"] == hog.pid

    # Rotated at the size limit: the earlier lines moved on whole, no file past the limit, 0600.
    files = log_files()
    assert len(files) >= 2 and files[-1].name == "events.jsonl"
    assert all(f.stat().st_size <= MAX_BYTES for f in files), [(f.name, f.stat().st_size) for f in files]
    assert [e for e in log_lines() if e["kind"] == "filler"] == filler
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE((paths.data_dir() / "logs").stat().st_mode) == 0o700

    # journald got the same entries, field for field.
    logged = [e for e in log_lines() if e["kind"] != "filler"]
    entries = wait_for(lambda: len(fake_journal.take()) >= len(logged) and fake_journal.entries, 10,
                       lambda: f"{len(logged)} journal entries; got {fake_journal.entries}")
    for line, entry in zip(logged, entries[:len(logged)], strict=True):
        assert entry["MESSAGE_ID"] == line["message_id"] and entry["MESSAGE"] == line["message"]
        assert entry["PM_KIND"] == line["kind"] and entry["SYSLOG_IDENTIFIER"] == "pause-monitor"
    [j_bundle] = [e for e in entries if e["PM_KIND"] == "forensics" and stalled["pause_id"] in e["PM_PAUSE_IDS"]]
    assert j_bundle["PM_BUNDLE_PATH"] == bundle["bundle_path"]


def test_an_unwritable_log_directory_does_not_stop_recording_and_is_caught_up_later(pipeline: Pipeline):
    logs = paths.data_dir() / "logs"
    paths.ensure_data_dir()
    logs.write_text("in the way")  # the log directory cannot be created
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n[alerts]\nenabled = false\n")
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    wait_for(lambda: pipeline.cli("watch", "--once").returncode == 0, 20, "the live feed")
    stall_collector(pipeline)

    pauses = wait_for(lambda: cli_json(pipeline, "pauses"), 30,
                      lambda: f"the pause in the database; output:\n{pipeline.output()}")
    wait_for(lambda: "cannot be written" in pipeline.output(), 10, lambda: pipeline.output())
    logs.unlink()  # fixed: the queued lines follow within the back-off
    lines = wait_for(lambda: logs.is_dir() and of_kind("pause"), 30,
                     lambda: f"the queued pause line; output:\n{pipeline.output()}", interval=0.3)
    assert {p["pause_id"] for p in lines} >= {p["pause_id"] for p in pauses}
    assert "writable again" in pipeline.output()
    assert pipeline.output().count("cannot be written") == 1  # once per outage, however often retried


def test_an_event_left_open_by_a_killed_tiering_gets_its_close_line_marked_interrupted(pipeline: Pipeline):
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n" + HOG_TIERS)
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    with Hog(pipeline):
        [opened] = wait_for(lambda: of_kind("event_opened"), 40,
                            lambda: f"an event_opened line; output:\n{pipeline.output()}", interval=0.3)
        tiering = pipeline.workers()["tiering"].pid
        os.kill(tiering, signal.SIGKILL)  # no EventClosed can be sent
        wait_for(lambda: (w := pipeline.workers().get("tiering")) and w.pid != tiering and w.state == "running",
                 30, lambda: f"tiering restarted; output:\n{pipeline.output()}")
        closed = wait_for(lambda: [e for e in of_kind("event_closed") if e["event_key"] == opened["event_key"]],
                          30, lambda: f"the interrupted close line; lines: {log_lines()}", interval=0.3)
    assert len(closed) == 1 and closed[0]["interrupted"] is True
    [shown] = [e for e in cli_json(pipeline, "events", "--limit", "0") if e["event_key"] == opened["event_key"]]
    assert shown["interrupted"] is True and closed[0]["event_id"] == shown["id"]
    assert closed[0]["end_ts"] == shown["end"]
