"""Pauses that arrive while a capture runs are recorded but start no second heavy capture."""

from __future__ import annotations

import json
import time
from pathlib import Path

from forensics.engine import Engine
from forensics.notify import Notifier
from forensics.runner import CommandCapture
from pmshared.config import Config, ForensicsConfig
from tests.forensics_helpers import FAKE_BIN, live, pause, processes, rogue, system, wait_for


def test_two_quick_pauses_share_one_capture(tmp_path: Path) -> None:
    starts = tmp_path / "slow-starts"
    config = Config(forensics=ForensicsConfig(proc_timeout=2, logs_timeout=3))

    def plan(p, before, bundle_dir):
        return [CommandCapture("slow", [str(FAKE_BIN / "slow"), "1.5", str(starts)], 10, "slow.txt")]

    engine = Engine(config, events_dir=tmp_path / "events", plan=plan,
                    notifier=Notifier(config.alerts, search_path=str(tmp_path)))
    now = time.time()
    engine.on_live(live(now - 5, [rogue(7, "busy", 55, ["cpu"])], system(cpu_busy_pct=50.0)))
    first = pause("c:1", now - 3, 800, processes=processes())
    second = pause("c:2", now - 1, 600, processes=processes()[:2], sys_stats=system(cpu_busy_pct=98.0))

    assert engine.on_pause(first) == "started"
    wait_for(starts.exists, timeout=10, what="the slow capture to start")
    assert engine.on_pause(second) == "coalesced"
    assert engine.wait_idle(20)
    done = engine.take_done()
    engine.shutdown()

    assert len(done) == 1
    assert starts.read_text().count("started") == 1  # one heavy capture, not two
    (result,) = done
    assert result.pause_ids == ["c:1", "c:2"]
    assert engine.counters["captures_started"] == 1 and engine.counters["pauses_coalesced"] == 1

    bundle = Path(result.bundle_path)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["pause_ids"] == ["c:1", "c:2"]
    assert [c["pause_id"] for c in meta["coalesced"]] == ["c:2"]
    assert meta["coalesced"][0]["duration_ms"] == 600
    assert "instead of starting another capture" in meta["coalescing"]
    assert len(json.loads((bundle / "processes-2.json").read_text())) == 2
    # The coalesced pause's figures count for the cause: its snapshot showed 98 % busy.
    assert result.cause == "cpu" and result.evidence.pauses == 2
    assert len(list((tmp_path / "events").iterdir())) == 1


def test_a_pause_after_the_capture_finished_starts_a_new_bundle(tmp_path: Path) -> None:
    config = Config()
    engine = Engine(config, events_dir=tmp_path / "events", plan=lambda p, b, d: [],
                    notifier=Notifier(config.alerts, search_path=str(tmp_path)))
    start = time.time() - 2
    # Same start time to the millisecond: the second bundle gets a suffixed name, never a clash.
    assert engine.on_pause(pause("c:1", start)) == "started"
    assert engine.wait_idle(10)
    assert engine.on_pause(pause("c:2", start)) == "started"
    assert engine.wait_idle(10)
    done = engine.take_done()
    engine.shutdown()
    assert [r.pause_ids for r in done] == [["c:1"], ["c:2"]]
    names = sorted(Path(r.bundle_path).name for r in done)
    assert names[0].endswith("-pause") and names[1] == names[0] + "-2"
    assert all(json.loads((Path(r.bundle_path) / "metadata.json").read_text())["coalesced"] == [] for r in done)
