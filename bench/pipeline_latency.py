"""Latency from a CPU hog's start to its event in the database.

The pipeline runs with the default tier thresholds: a busy loop on every core (what the pressure
model escalates on; one core of several busy is not stress). Each trial waits for tier 1 (other
load on the machine may hold an event open), starts one busy-loop child per core, and polls the
database (read-only, every 20 ms) for an event sample that names one of them; then kills them and
waits for the event to close.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from cli import clients

from bench.pipeline_pauses import HOG
from bench.pipeline_run import PipelineRun

EVENT_WAIT_S = 15.0
CALM_WAIT_S = 20.0


@dataclass
class HogTrial:
    latency_s: float | None  # None: no event named the hog within EVENT_WAIT_S
    skipped: str = ""


def current_tier() -> int | None:
    reply = clients.snapshot(timeout_s=1.0)
    return None if reply is None else reply.state.tier


def wait_calm(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current_tier() == 1:
            return True
        time.sleep(0.25)
    return False


def hog_trial(run: PipelineRun, n: int) -> HogTrial:
    if not wait_calm(CALM_WAIT_S):
        return HogTrial(None, f"tier stayed above 1 for {CALM_WAIT_S:.0f} s (other load on the machine)")
    before = run.query("SELECT coalesce(max(id), 0) FROM event_samples")[0][0]
    t0 = time.monotonic()
    hogs = [subprocess.Popen([sys.executable, "-c", HOG, f"pm-bench-lat{n}"], env=run.env)
            for _ in range(os.cpu_count() or 1)]
    latency = None
    try:
        deadline = t0 + EVENT_WAIT_S
        while time.monotonic() < deadline:
            rows = run.query(
                "SELECT event_id FROM event_samples WHERE id > ? AND data LIKE ? LIMIT 1", before,
                f"%pm-bench-lat{n}%",
            )
            if rows:
                latency = time.monotonic() - t0
                event_id = rows[0][0]
                break
            time.sleep(0.02)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    if latency is not None:
        # Let the event close before the next trial (de-escalation delay plus a sample or two).
        end = time.monotonic() + CALM_WAIT_S
        while time.monotonic() < end:
            if run.query("SELECT end_at FROM events WHERE id = ?", event_id)[0][0] is not None:
                break
            time.sleep(0.1)
    return HogTrial(latency)
