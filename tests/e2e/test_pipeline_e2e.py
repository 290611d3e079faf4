"""The product as a user runs it: `pmctl up` with the real Procfile in a temporary home.

Assertions are on what a user sees (`pmctl ... --json`, bundle files), never on internals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmshared import procgroup
from tests.procutil import freeze, thaw
from tests.supervisor_helpers import Pipeline, pipeline, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

HOG_NAME = "pm-e2e-hog"


def _json(pipeline: Pipeline, *args: str):
    proc = pipeline.cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _start_pipeline(pipeline: Pipeline, extra_config: str) -> None:
    pipeline.config.write_text('[supervisor]\ngrace_period_s = 3.0\n' + extra_config)
    pipeline.start(default_procfile=True)
    pipeline.wait_running(["collector", "scorer", "tiering", "recorder", "forensics"], timeout=30)


LOAD_NAME = "pm-e2e-load"
# A load as a user starts one: a parent that forks a busy loop per core and waits for them (the
# pressure model may name the parent of a group of same-named workers, or a worker).
LOAD = (
    "import os, sys\n"
    "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "for _ in range(os.cpu_count() or 1):\n"
    "    if os.fork() == 0:\n"
    "        open('/proc/self/comm', 'w').write(sys.argv[2])\n"
    "        while True:\n"
    "            pass\n"
    "os.wait()\n"
)


def test_a_busy_loop_on_every_core_opens_an_event_that_names_it_and_closes_when_it_stops(pipeline: Pipeline):
    # Default thresholds (only the de-escalation delay shortened, to close the event sooner).
    _start_pipeline(pipeline, "[tiers]\ndeescalation_delay_s = 2.0\n")
    load = procgroup.start([sys.executable, "-c", LOAD, LOAD_NAME, HOG_NAME], env=pipeline.env)
    try:
        # Polled in this process (Pipeline.events): a `pmctl` in a loop made its reaper, this test
        # process, the busiest on the machine and the event's top culprit.
        def event_naming_load():
            for event in pipeline.events():
                if event["top_culprit"] in (LOAD_NAME, HOG_NAME):
                    return event
            return None

        event = wait_for(event_naming_load, 30, lambda: f"an event naming the load; events: {pipeline.events()}",
                         interval=0.25)
        assert event["end"] is None  # still open while the load runs
        assert event["peak_tier"] >= 2 and event["peak_score"] >= 35

        # The event opens on the first second the loops show, often a partial one: a loop that
        # started mid-interval ran half of it. A whole second of a loop, held soon after, is
        # over half a core.
        def hogs_held():
            detail = pipeline.event_detail(event["id"])
            hogs = [r for s in detail["samples"] for r in s["samples"]["rogues"] if r["command"] == HOG_NAME]
            return hogs if hogs and max(r["cpu"] for r in hogs) > 50 else None

        hogs = wait_for(hogs_held, 20, "a held sample of a busy loop at over half a core", interval=0.25)
        assert all("cpu" in r["categories"] for r in hogs)
    finally:
        procgroup.stop(load)

    def closed():
        events = {e["id"]: e for e in pipeline.events()}
        return events[event["id"]]["end"] is not None and events[event["id"]]

    wait_for(closed, 30, "the event to close after the load stopped", interval=0.25)
    done = next(e for e in _json(pipeline, "events") if e["id"] == event["id"])  # as the user's command says
    assert done["interrupted"] is False
    assert done["end"] > done["start"]
    events = _json(pipeline, "events")
    assert len([e for e in events if e["top_culprit"] in (LOAD_NAME, HOG_NAME)]) == 1, [
        (e["id"], e["top_culprit"], e["top_culprit_pid"], e["culprits"]) for e in events]


def test_a_pause_yields_one_pause_row_and_a_linked_forensics_bundle(pipeline: Pipeline):
    _start_pipeline(pipeline, "[alerts]\nenabled = false\n")
    collector = pipeline.workers()["collector"].pid
    # Give forensics a ring buffer to rank culprits from (the live feed runs at 1 Hz).
    wait_for(lambda: pipeline.cli("watch", "--once").returncode == 0, 20, "the live feed")
    freeze(collector)
    stopped = time.monotonic()
    time.sleep(1.5)  # the stall under test: the sampler is frozen for this long
    thaw(collector)
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
