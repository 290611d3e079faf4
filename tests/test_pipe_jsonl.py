"""The README's standalone pipe, end to end: ``python -m collector --jsonl --count 5 | python -m
scorer --jsonl | python -m tiering --jsonl | python -m recorder --jsonl --db X``.

Real processes joined by real pipes on this machine's /proc, into a real SQLite file. No load is
made: what must reach the database whatever the machine does is tiering's announcement (its
incarnation, which carries its pid), and the recorder must skip exactly one live sample per
snapshot: each of the 5 snapshots went through scorer and tiering, and the live feed (not a
record) is counted as another worker's message, not as bad input. Any event or pause the machine
happened to produce must belong to these very processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from pmshared import storage
from tests.forensics_helpers import child_env, live, pause, processes, rogue, system
from tests.tiering_helpers import REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform != "linux", reason="the collector's backend here is Linux /proc")]

COUNT = 5


def start_pipe(tmp_path: Path, db: Path) -> list[subprocess.Popen]:
    stages = [("collector", "--count", str(COUNT)), ("scorer",), ("tiering",), ("recorder", "--db", str(db))]
    children: list[subprocess.Popen] = []
    upstream = None
    for name, *args in stages:
        last = name == "recorder"
        child = subprocess.Popen(
            [sys.executable, "-m", name, "--jsonl", *args], cwd=REPO, stdin=upstream,
            stdout=subprocess.DEVNULL if last else subprocess.PIPE,
            stderr=open(tmp_path / f"{name}.err", "wb"),
        )
        if upstream is not None:
            upstream.close()  # the next stage holds it now: EOF and EPIPE travel along the pipe
        upstream = child.stdout
        children.append(child)
    return children


def test_the_documented_pipe_fills_the_database(tmp_path: Path) -> None:
    db = tmp_path / "pipe.db"
    children = start_pipe(tmp_path, db)
    try:
        codes = [child.wait(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
    logs = {name: (tmp_path / f"{name}.err").read_text(errors="replace")
            for name in ("collector", "scorer", "tiering", "recorder")}
    assert codes == [0, 0, 0, 0], logs
    assert not any("Traceback" in log or "malformed" in log for log in logs.values()), logs
    assert f"skipped {COUNT} messages for other workers (live_sample {COUNT})" in logs["recorder"]

    collector, _, tiering, _ = children
    conn = storage.open_readonly(db)
    try:
        (incarnation,) = conn.execute("SELECT value FROM meta WHERE key = 'tiering_incarnation'").fetchone()
        assert incarnation.startswith(f"{tiering.pid}-")
        keys = [row[0] for row in conn.execute("SELECT event_key FROM events")]
        assert all(key.startswith(incarnation + ":") for key in keys)
        pauses = [row[0] for row in conn.execute("SELECT pause_id FROM pauses")]
        assert all(pause_id.startswith(f"{collector.pid}-") for pause_id in pauses)
        assert storage.integrity_check(conn) == ["ok"]
    finally:
        conn.close()


def test_a_forensics_stage_passes_its_input_on_to_the_recorder(tmp_path: Path) -> None:
    """``... | python -m forensics --jsonl | python -m recorder --jsonl --db X``: forensics only
    listens in on the live feed and the pauses (in the pipeline the recorder gets its own copy),
    so in a pipe it passes them on: the recorder stores the pause, and the bundle forensics wrote
    for it, and skips the live samples as another worker's."""
    db = tmp_path / "pipe.db"
    config = tmp_path / "config.toml"
    config.write_text("[forensics]\nproc_timeout = 2\nlogs_timeout = 3\n[alerts]\nenabled = false\n")
    now = time.time()
    enc = msgspec.json.Encoder()
    lines = [enc.encode(live(now - 2 + i * 0.5, [rogue(77, "spinner", 90, ["cpu"])], system(cpu_busy_pct=100.0)))
             for i in range(3)]
    lines.append(enc.encode(pause("c:5", now - 0.5, 1200, processes=processes())))
    env = child_env(PAUSE_MONITOR_CONFIG=str(config))
    forensics = subprocess.Popen([sys.executable, "-m", "forensics", "--jsonl"], cwd=REPO, env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=open(tmp_path / "forensics.err", "wb"))
    recorder = subprocess.Popen([sys.executable, "-m", "recorder", "--jsonl", "--db", str(db)], cwd=REPO, env=env,
                                stdin=forensics.stdout, stdout=subprocess.DEVNULL,
                                stderr=open(tmp_path / "recorder.err", "wb"))
    assert forensics.stdout is not None and forensics.stdin is not None
    forensics.stdout.close()  # the recorder holds it now
    try:
        forensics.stdin.write(b"\n".join(lines) + b"\n")
        forensics.stdin.close()
        codes = [forensics.wait(timeout=60), recorder.wait(timeout=60)]
    finally:
        for child in (forensics, recorder):
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
    logs = {name: (tmp_path / f"{name}.err").read_text(errors="replace") for name in ("forensics", "recorder")}
    assert codes == [0, 0], logs
    assert "skipped 3 messages for other workers (live_sample 3)" in logs["recorder"], logs
    conn = storage.open_readonly(db)
    try:
        recorded = storage.get_pause(conn, "c:5")
    finally:
        conn.close()
    assert recorded is not None and recorded.duration_ms == 1200
    assert recorded.bundle_path and (Path(recorded.bundle_path) / "metadata.json").is_file()
