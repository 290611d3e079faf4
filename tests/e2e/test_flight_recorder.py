"""The flight recorder as a user meets it: `pmctl up` in a temporary home records every second.

- 30 s of recording are >= 28 samples in `pmctl history --since 1m --format json`, and they name
  the process that was busy meanwhile;
- kill -9 of the recorder, and of the whole pipeline at once (the nearest thing to pulling the
  plug a test can do), loses at most the last ~2 s of the record.

What is asserted is what `pmctl history` shows, never internals.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from pmshared import procgroup
from tests.supervisor_helpers import Pipeline, pipeline, tagged_pids, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

BUSY_NAME = "pm-flight-busy"
BUSY = "import sys\nopen('/proc/self/comm', 'w').write(sys.argv[1])\nwhile True:\n    pass\n"
WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]
MAX_LOSS_S = 2.5  # "the last ~2 s": one sample interval, plus the time a sample takes to be stored


def _start(pipeline: Pipeline) -> None:
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n[alerts]\nenabled = false\n")
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)


def _history(pipeline: Pipeline, *args: str) -> list[dict]:
    proc = pipeline.cli("history", *args, "--format", "json", "--limit", "0")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _names(row: dict) -> set[str]:
    return {p["command"] for p in row["rogues"]} | {p["command"] for p in row["top"]}


def _first_sample_at(pipeline: Pipeline) -> float:
    rows = wait_for(lambda: _history(pipeline, "--since", "1m"), 30,
                    lambda: f"the first recorded sample; output:\n{pipeline.output()[-3000:]}", interval=0.3)
    return rows[0]["timestamp"]


def test_30_s_of_recording_are_in_history_with_the_busy_process(pipeline: Pipeline):
    _start(pipeline)
    busy = procgroup.start([sys.executable, "-c", BUSY, BUSY_NAME], env=pipeline.env)
    try:
        began = _first_sample_at(pipeline)
        wait_for(lambda: time.time() >= began + 31, 60, "30 s of recording", interval=0.5)
        rows = _history(pipeline, "--since", "1m")
    finally:
        procgroup.stop(busy)
    window = [r for r in rows if began <= r["timestamp"] < began + 30]
    assert len(window) >= 28, [r["timestamp"] - began for r in window]
    # Every second holds the machine's figures and processes; the busy one is named throughout.
    assert all(r["system"] and r["system"]["cpu_busy_pct"] is not None and r["sentinel"] for r in window)
    named = [r for r in window if BUSY_NAME in _names(r)]
    assert len(named) >= len(window) - 3, [sorted(_names(r)) for r in window if r not in named][:3]


def test_kill_9_of_the_recorder_loses_at_most_the_last_2_s(pipeline: Pipeline):
    _start(pipeline)
    began = _first_sample_at(pipeline)
    wait_for(lambda: time.time() >= began + 5, 30, "a few seconds of recording", interval=0.2)
    recorder = pipeline.workers()["recorder"].pid
    os.kill(recorder, signal.SIGKILL)
    killed = time.time()
    wait_for(lambda: (w := pipeline.workers()).get("recorder") and w["recorder"].pid != recorder
             and w["recorder"].state == "running", 30, "the recorder to be restarted", interval=0.1)
    # The record goes on: samples after the restart are stored, and the seconds around the kill
    # are there too (those queued in tiering while the recorder was down arrive after it).
    wait_for(lambda: any(r["timestamp"] > killed + 5 for r in _history(pipeline, "--since", "1m")), 30,
             "samples after the restart", interval=0.5)
    stamps = [r["timestamp"] for r in _history(pipeline, "--since", "1m") if began <= r["timestamp"] <= killed + 5]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert stamps[0] == began and stamps[-1] >= killed + 4, (began, killed, stamps)
    assert max(gaps) <= MAX_LOSS_S, (max(gaps), [round(t - killed, 2) for t in stamps])
    print(f"\n[flight] kill -9 of the recorder: widest gap in the record {max(gaps):.2f} s")


def test_kill_9_of_the_whole_pipeline_keeps_all_but_the_last_2_s(pipeline: Pipeline):
    _start(pipeline)
    began = _first_sample_at(pipeline)
    wait_for(lambda: time.time() >= began + 5, 30, "a few seconds of recording", interval=0.2)
    pids = tagged_pids(pipeline.tag)
    assert pipeline.workers()["recorder"].pid in pids
    killed = time.time()
    for pid in pids:  # every process of the monitor, at once: nothing gets to flush or say goodbye
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pipeline.proc.wait(timeout=10)
    wait_for(lambda: not tagged_pids(pipeline.tag), 10, "every pipeline process to be gone", interval=0.05)
    stamps = [r["timestamp"] for r in _history(pipeline, "--since", "2m")]
    assert stamps and killed - stamps[-1] <= MAX_LOSS_S, (killed - stamps[-1], stamps[-5:])
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) <= MAX_LOSS_S, gaps
    print(f"\n[flight] kill -9 of the whole pipeline: last sample on disk {killed - stamps[-1]:.2f} s "
          f"before the kill, widest gap {max(gaps):.2f} s")
