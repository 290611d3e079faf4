"""``python -m recorder --jsonl --db PATH``: records from stdin as JSON lines, bad lines on stderr."""

from __future__ import annotations

import subprocess
import sys

import msgspec

from pmshared import storage
from tests.recorder_helpers import REPO, Tiering, forensics_done, pause, rogue

T0 = 1_700_000_000.0


def run(db, stdin: bytes, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recorder", "--jsonl", "--db", str(db)], input=stdin,
                          cwd=REPO, capture_output=True, timeout=timeout)


def story() -> bytes:
    tiering = Tiering()
    key = tiering.new_key()
    records = [tiering.started(), tiering.opened(key, T0)]
    records += [tiering.sample(key, T0, T0 + i, [rogue(3, "busy", 60 + i)]) for i in range(1, 4)]
    records += [tiering.closed(key, T0, T0 + 5, peak_score=63), pause("col:1", T0 + 1),
                forensics_done(["col:1"], "/b/1")]
    return b"".join(msgspec.json.encode(r) + b"\n" for r in records)


def test_jsonl_stores_records_and_reports_bad_lines(tmp_path) -> None:
    db = tmp_path / "sub" / "data.db"
    lines = story().splitlines(keepends=True)
    lines.insert(2, b"{not json\n")
    lines.insert(4, b'{"type": "event_opened", "sender": "x"}\n')
    lines.insert(5, b"\n")  # blank lines are not records, nor errors
    result = run(db, b"".join(lines))
    assert result.returncode == 1, result.stderr
    err = result.stderr.decode()
    assert "line 3: JSON is malformed" in err
    assert "line 5: Object missing required field" in err
    assert "stored 8 records" in err and "2 bad lines" in err
    assert "Traceback" not in err
    conn = storage.open_readonly(db)
    (event,) = storage.list_events(conn)
    assert (event.end, event.peak_score, event.sample_count, event.pause_count, event.top_culprit) == (
        T0 + 5, 63, 3, 1, "busy")
    assert storage.get_pause(conn, "col:1").bundle_path == "/b/1"
    conn.close()


def test_jsonl_twice_stores_once(tmp_path) -> None:
    db = tmp_path / "data.db"
    data = story()
    assert run(db, data).returncode == 0
    assert run(db, data).returncode == 0
    conn = storage.open_readonly(db)
    stats = storage.db_stats(conn)
    assert (stats.events, stats.samples, stats.pauses, stats.bundles) == (1, 3, 1, 1)
    assert storage.integrity_check(conn) == ["ok"]
    conn.close()


def test_jsonl_into_a_corrupt_database_is_one_clear_line(tmp_path) -> None:
    db = tmp_path / "data.db"
    db.write_bytes(b"this is not an sqlite database" * 100)
    result = run(db, story())
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert err.startswith("error: database") and "corrupt" in err and len(err.splitlines()) == 1
