"""A pause bundle carries the five minutes before the pause from the flight record (history.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from forensics.engine import Engine
from forensics.notify import Notifier
from pmshared.config import Config
from tests.flight_helpers import Recorder
from tests.forensics_helpers import pause


def run_one(tmp_path: Path, db: Path, start: float) -> dict:
    config = Config()
    engine = Engine(config, events_dir=tmp_path / "events", plan=lambda p, b, d: [], db_path=db, sweep=False,
                    notifier=Notifier(config.alerts, search_path=str(tmp_path)))
    try:
        assert engine.on_pause(pause("c:1", start, 1500)) == "started"
        assert engine.wait_idle(20)
        (result,) = engine.take_done()
    finally:
        engine.shutdown()
    assert result.bundle_path
    return json.loads((Path(result.bundle_path) / "history.json").read_text())


def test_bundle_has_five_minutes_of_history_before_the_pause(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    rec = Recorder(db)
    now = time.time()
    rec.seconds(now - 600, 590, busy="hog-before")  # ten minutes, up to 10 s ago
    rec.close()
    start = now - 20
    history = run_one(tmp_path, db, start)
    assert "error" not in history
    # 300 s before the pause start, from the database; not just the ring's 30 s.
    assert 299 <= history["entries"] <= 302
    assert history["first"] >= start - 300 and history["last"] <= start + 1.5
    first = history["samples"][0]
    assert first["tier"] == 2 and first["samples"]["rogues"][0]["command"] == "hog-before"


def test_without_a_database_the_bundle_says_why(tmp_path: Path) -> None:
    history = run_one(tmp_path, tmp_path / "none.db", time.time() - 2)
    assert history["entries"] == 0 and "no database" in history["error"]
