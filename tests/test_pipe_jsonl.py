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
from pathlib import Path

import pytest

from pmshared import storage
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
