"""The product as a user runs it: `pmctl up` with the real Procfile in a temporary home.

Assertions are on what a user sees (`pmctl ... --json`, bundle files), never on internals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.supervisor_helpers import Pipeline, pipeline, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

HOG_NAME = "pm-e2e-hog"
# A busy loop that renames itself, so the user (and we) can recognise it in every view.
HOG = (
    "import sys\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "while True:\n"
    "    pass\n"
)


def _json(pipeline: Pipeline, *args: str):
    proc = pipeline.cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _start_pipeline(pipeline: Pipeline, extra_config: str) -> None:
    # Written for the seed model's per-process scores (a busy core scores 25): it selects it.
    pipeline.config.write_text('[scoring]\nmodel = "seed"\n[supervisor]\ngrace_period_s = 3.0\n' + extra_config)
    pipeline.start(default_procfile=True)
    pipeline.wait_running(["collector", "scorer", "tiering", "recorder", "forensics"], timeout=30)


def test_a_cpu_hog_opens_an_event_that_names_it_and_closes_when_it_stops(pipeline: Pipeline):
    # One busy core scores 25 (cpu weight); lower the elevated threshold so it alone escalates,
    # and keep critical out of reach so the event stays a tier-2 episode.
    _start_pipeline(pipeline, "[tiers]\nelevated_threshold = 20\ncritical_threshold = 95\ndeescalation_delay_s = 2.0\n")
    hog = subprocess.Popen([sys.executable, "-c", HOG, HOG_NAME], env=pipeline.env)
    try:
        def event_naming_hog():
            for event in _json(pipeline, "events"):
                if event["top_culprit"] == HOG_NAME and event["top_culprit_pid"] == hog.pid:
                    return event
            return None

        event = wait_for(event_naming_hog, 30, lambda: f"an event naming the hog; output:\n{pipeline.output()}")
        assert event["end"] is None  # still open while the hog runs
        assert event["peak_tier"] == 2 and event["peak_score"] >= 20
        detail = _json(pipeline, "events", "show", str(event["id"]))
        rogues = [r for s in detail["samples"] for r in s["samples"]["rogues"] if r["pid"] == hog.pid]
        assert rogues and all("cpu" in r["categories"] for r in rogues)
        assert max(r["cpu"] for r in rogues) > 50
    finally:
        hog.kill()
        hog.wait()

    def closed():
        events = {e["id"]: e for e in _json(pipeline, "events")}
        return events[event["id"]]["end"] is not None and events[event["id"]]

    done = wait_for(closed, 30, "the event to close after the hog stopped")
    assert done["interrupted"] is False
    assert done["end"] > done["start"]
    assert len([e for e in _json(pipeline, "events") if e["top_culprit"] == HOG_NAME]) == 1


def test_a_pause_yields_one_pause_row_and_a_linked_forensics_bundle(pipeline: Pipeline):
    _start_pipeline(pipeline, "[alerts]\nenabled = false\n")
    collector = pipeline.workers()["collector"].pid
    # Give forensics a ring buffer to rank culprits from (the live feed runs at 1 Hz).
    wait_for(lambda: pipeline.cli("watch", "--once").returncode == 0, 20, "the live feed")
    os.kill(collector, signal.SIGSTOP)
    stopped = time.monotonic()
    time.sleep(1.5)  # the stall under test: the sampler is frozen for this long
    os.kill(collector, signal.SIGCONT)
    stall_ms = (time.monotonic() - stopped) * 1000

    def one_pause_with_bundle():
        pauses = _json(pipeline, "pauses")
        return pauses if pauses and pauses[0]["bundle_path"] else None

    pauses = wait_for(one_pause_with_bundle, 30, lambda: f"a pause with its bundle; output:\n{pipeline.output()}")
    assert len(pauses) == 1, pauses
    pause = pauses[0]
    assert abs(pause["duration_ms"] - stall_ms) <= 100, (pause["duration_ms"], stall_ms)
    assert pause["suspended_ms"] == 0
    assert pause["cause"] in ("cpu", "memory", "io", "suspend-adjacent", "unknown")
    assert pause["evidence"], "the cause must come with its evidence"

    bundle = Path(pause["bundle_path"])
    for name in ("metadata.json", "ring_buffer.json", "culprits.json", "processes.json"):
        assert (bundle / name).is_file(), name
        json.loads((bundle / name).read_text())
    # Ranked from the process list that came with the pause; only processes that used something.
    culprits = json.loads((bundle / "culprits.json").read_text())
    assert culprits["source"] in ("stall", "none") and all(c["score"] > 0 for c in culprits["culprits"]), culprits
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["cause"] == pause["cause"]
    shown = _json(pipeline, "pauses", "show", str(pause["id"]))
    assert shown["bundle_path"] == pause["bundle_path"]
    assert shown["artifacts"], "the capture results are linked to the pause"
