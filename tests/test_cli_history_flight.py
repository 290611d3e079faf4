"""`pmctl history` over the flight record: windows (--since/--until/--around), table, JSON, CSV.

The database is written through the recorder's own write path (tests/flight_helpers.py) in the
test's isolated home; the command runs through typer's CliRunner.
"""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from typer.testing import CliRunner

from cli.main import app
from pmshared import paths, storage
from tests.cli_people_helpers import HOSTILE, RECOGNISABLE, control_bytes
from tests.flight_helpers import Recorder
from tests.recorder_helpers import Tiering, pause
from tests.test_cli_triage import ok, one_line_error


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def flight(isolated_home):
    """Ten minutes of seconds ending now, the hog named with terminal controls; a pause 5 minutes
    ago and an event 2 minutes ago."""
    now = time.time()
    rec = Recorder(paths.db_path())
    start = now - 600
    times = rec.seconds(start, 600, busy=HOSTILE["title"] + HOSTILE["bidi"] + "\U0001F600")
    tiering = Tiering(start=now - 120)
    key = tiering.new_key()
    for record in (pause("c:1", now - 300, duration_ms=1500.0), tiering.opened(key, now - 120),
                   tiering.closed(key, now - 120, now - 100, 70)):
        rec.writer.add(record)
    rec.flush()
    pause_id = rec.conn.execute("SELECT id FROM pauses").get
    event_id = rec.conn.execute("SELECT id FROM events").get
    rec.close()
    return {"now": now, "times": times, "pause": pause_id, "event": event_id}


def test_json_has_every_second_of_the_window_with_system_figures_and_processes(runner, flight):
    raw = ok(runner.invoke(app, ["history", "--since", "1m", "--format", "json"])).stdout
    assert raw.isascii() and control_bytes(raw) == []  # escaped: inert on a terminal
    rows = json.loads(raw)
    assert 59 <= len(rows) <= 61
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    row = rows[-1]
    assert row["tier"] == 2 and row["max_score"] == 40 and row["system"]["load1"] == 1.5
    assert row["sentinel"]["p99_ms"] == 2.5 and row["top"][0]["command"] == "idle-top"
    assert row["rogues"][0]["command"] == HOSTILE["title"] + HOSTILE["bidi"] + "\U0001F600"  # exact once parsed


def test_around_a_pause_or_an_event_with_a_margin(runner, flight):
    pause_at = flight["now"] - 300
    rows = json.loads(ok(runner.invoke(app, ["history", "--around", f"pause:{flight['pause']}", "--margin", "30",
                                             "-f", "json"])).stdout)
    assert rows[0]["timestamp"] >= pause_at - 30 and rows[-1]["timestamp"] <= pause_at + 1.5 + 30
    assert 60 <= len(rows) <= 62
    rows = json.loads(ok(runner.invoke(app, ["history", "--around", f"event:{flight['event']}", "--margin", "0",
                                             "-f", "json"])).stdout)
    assert 20 <= len(rows) <= 21
    one_line_error(runner.invoke(app, ["history", "--around", "pause:999"]), "no pause 999")
    one_line_error(runner.invoke(app, ["history", "--around", "14:03"]), "pause:ID or event:ID", code=2)
    one_line_error(runner.invoke(app, ["history", "--around", "pause:1", "--since", "1h"]), "--around", code=2)


def test_since_and_until(runner, flight):
    rows = json.loads(ok(runner.invoke(app, ["history", "--since", "5m", "--until", "4m", "-f", "json"])).stdout)
    assert 59 <= len(rows) <= 61
    one_line_error(runner.invoke(app, ["history", "--since", "1m", "--until", "5m"]), "before --since", code=2)
    one_line_error(runner.invoke(app, ["history", "--until", "soon"]), "--until", code=2)


def test_table_and_csv_are_inert(runner, flight):
    out = ok(runner.invoke(app, ["history", "--since", "2m"])).stdout
    assert control_bytes(out) == [] and RECOGNISABLE["title"] in out
    assert "samples from" in out and "max score 40" in out
    out = ok(runner.invoke(app, ["history", "--since", "2m", "-f", "csv"])).stdout
    assert control_bytes(out) == []
    table = list(csv.DictReader(io.StringIO(out)))
    assert 119 <= len(table) <= 121
    assert table[0]["tier"] == "2" and table[0]["load1"] == "1.50" and table[0]["top_pid"] == "42"
    assert RECOGNISABLE["title"] in table[0]["top_command"]


def test_a_window_with_nothing_recorded_says_so(runner, flight):
    out = ok(runner.invoke(app, ["history", "--since", "2h", "--until", "1h"])).stdout
    assert "no samples recorded between" in out
    assert json.loads(ok(runner.invoke(app, ["history", "--since", "2h", "--until", "1h", "-f", "json"])).stdout) == []


def test_events_export_includes_the_history_covering_the_event(runner, flight, tmp_path):
    import tarfile

    target = tmp_path / "event.tar.gz"
    out = ok(runner.invoke(app, ["events", "export", str(flight["event"]), "-o", str(target)])).stdout
    with tarfile.open(target) as tar:
        name = next(n for n in tar.getnames() if n.endswith("/history.json"))
        rows = json.loads(tar.extractfile(name).read())
        readme = tar.extractfile(next(n for n in tar.getnames() if n.endswith("README.txt"))).read().decode()
    # From 300 s before the event (120 s ago, lasting 20 s) to 60 s after it.
    event_start = flight["now"] - 120
    assert rows[0]["timestamp"] >= event_start - 300 and rows[-1]["timestamp"] <= event_start + 20 + 60
    assert 379 <= len(rows) <= 381 and f"{len(rows)} s of history" in out
    assert rows[0]["rogues"][0]["command"].startswith(HOSTILE["title"])
    assert "history.json" in readme and "300 s" in readme


def test_limit_keeps_the_oldest(runner, flight):
    rows = json.loads(ok(runner.invoke(app, ["history", "--since", "5m", "--limit", "10", "-f", "json"])).stdout)
    assert len(rows) == 10 and rows[0]["timestamp"] >= flight["now"] - 301
    assert rows == sorted(rows, key=lambda r: r["timestamp"])
    out = ok(runner.invoke(app, ["history", "--since", "5m", "--limit", "10"])).stdout
    assert "(first 10; --limit N or --limit 0 for more)" in out
