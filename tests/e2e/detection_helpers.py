"""What the detection scenarios (tests/e2e/test_detection.py) share: a pipeline with every default,
a matrix row's load started and timed, and what the user's commands then say about it.

Loads come from tests/loadrows.py (the rows bench/detection.py measures at full length); they run
in process groups of their own and memory-cgroup loads in a cgroup of their own, both removed by
the ``ExitStack`` the test holds, whatever happens.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.livefeed import SampleWatch, Seen
from tests.loadrows import LoadRow, missing, prepare, start
from tests.stressload import Load
from tests.supervisor_helpers import Pipeline, wait_for

WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]
TARGET_TIER2_S = 3.0
LOAD_LIFETIME_S = 30.0  # stress-ng's own timeout: a load outlives no test for long, whatever happens


def start_defaults(pipeline: Pipeline) -> None:
    """`pmctl up` with an empty config file (every default, as a new user gets it), until every
    worker runs."""
    pipeline.config.write_text("")
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)


def cli_json(pipeline: Pipeline, *args: str):
    proc = pipeline.cli(*args, "--json")
    assert proc.returncode == 0, f"pmctl {' '.join(args)} --json failed: {proc.stderr}"
    return json.loads(proc.stdout)


def skip_unless_runnable(row: LoadRow) -> None:
    if why := missing(row):
        pytest.skip(why)


@dataclass
class Detected:
    load: Load
    after_s: float | None  # load start -> tiering published the first sample at tier >= 2 with the load on top
    seen: list[Seen]

    def describe(self) -> str:
        """What the monitor showed instead, for a failure message."""
        if not self.seen:
            return "no live sample at all"
        worst = max(self.seen, key=lambda s: (s.tier, s.sample.samples.max_score))
        top = worst.top
        return (f"highest: tier {worst.tier}, max_score {worst.sample.samples.max_score}, stress "
                f"{dict(worst.sample.samples.stress)}, top rogue "
                f"{(top.command, top.pid, top.score, top.categories) if top else None}")


def _kernel_waits_us() -> dict[str, int]:
    """The kernel's cumulative ``some`` stall microseconds for io and memory (its PSI totals)."""
    from collector.procfs_parse import parse_pressure

    out = {}
    for name in ("io", "memory"):
        with open(f"/proc/pressure/{name}", "rb") as f:
            out[name] = parse_pressure(f.read())[0] or 0
    return out


def wait_kernel_calm(calm_s: int = 3, below_pct: float = 5.0, timeout: float = 60.0) -> None:
    """Until the kernel itself reports ``calm_s`` seconds in a row in which tasks waited for io and
    for memory less than ``below_pct`` % of the time (PSI totals, read here, independently of the
    pipeline), or skip: an idle-machine test means nothing while the disk is busy with what
    another process or the host (another VM on its storage) does. Without PSI: no wait."""
    if not os.path.exists("/proc/pressure/io"):
        return
    deadline = time.monotonic() + timeout
    calm, before, worst = 0, _kernel_waits_us(), {}
    while calm < calm_s:
        if time.monotonic() >= deadline:
            pytest.skip(f"the kernel reported io/memory waits for {timeout:.0f} s before the test "
                        f"(last second, % of it: {worst}): the machine is not idle")
        time.sleep(1.0)
        now = _kernel_waits_us()
        worst = {k: round((now[k] - before[k]) / 1e4, 1) for k in now}
        calm = calm + 1 if max(worst.values()) < below_pct else 0
        before = now


def wait_calm(watch: SampleWatch, timeout: float = 30) -> None:
    """Until a live sample at tier 1 (no event open): a timing means something only from there.
    Dirty pages left by earlier work (the set-up's pip install, a previous row) are written back
    first: their writeback is io stress no process of the row caused, and it comes in bursts up to
    30 s later (dirty_expire), so it would land inside the row and be charged to whoever of the
    row moved a byte or waited in D state meanwhile."""
    os.sync()
    started = time.monotonic()
    if watch.first(lambda s: s.tier == 1, started, timeout):
        return
    last = watch.since(started)[-1:]
    busy = [(r.command, r.pid, r.score, r.categories) for r in sorted(
        last[0].sample.samples.rogues, key=lambda r: -r.score)[:3]] if last else "no live sample"
    pytest.fail(f"no tier 1 in {timeout:.0f} s before the stimulus: the machine is busy with "
                f"something else; top rogues now: {busy}")


def run_until_detected(watch: SampleWatch, row: LoadRow, scratch: Path, stack: ExitStack,
                       timeout: float) -> Detected:
    """Wait for tier 1, start ``row``'s load (stopped by ``stack``), and follow the live feed until
    a sample at tier ≥ 2 whose top rogue is one of the load's processes, or ``timeout``."""
    prepare(row, scratch)
    wait_calm(watch)
    started, started_wall = time.monotonic(), time.time()
    load = start(row, LOAD_LIFETIME_S, scratch, stack)

    def ours(s: Seen) -> bool:
        top = s.top
        if s.tier < 2 or top is None:
            return False
        load.poll_members()
        return top.pid in load.seen

    hit = watch.first(ours, started, timeout)
    return Detected(load, None if hit is None else published_after(hit, started_wall), watch.since(started))


def published_after(seen: Seen, started_wall: float) -> float:
    """Seconds from ``started_wall`` to when tiering published ``seen`` (its envelope's sent_at,
    wall clock of this machine), not to when this process received it: the workers on the
    detection path run in the real-time class (pmshared/schedclass.py), a test process does not,
    and a context-switch storm starves it for seconds (it received a sample published 1.0 s
    after the storm's start 6.4 s after it)."""
    return seen.sample.sent_at - started_wall


def event_naming(pipeline: Pipeline, row: LoadRow, pids: set[int], timeout: float = 15) -> dict:
    """The `pmctl events --json` entry whose top culprit is one of the load's processes (polled in
    this process: ``Pipeline.events``; what the user's command says is checked once found)."""
    last: dict = {"events": []}

    def find():
        last["events"] = events = pipeline.events()
        return next((e for e in events if e["top_culprit_pid"] in pids), None)

    def state() -> str:
        named = [(e["id"], e["top_culprit"], e["top_culprit_pid"], e["top_culprit_score"]) for e in last["events"]]
        return f"an event naming one of the load's processes {sorted(pids)}; events (id, top culprit): {named}"

    found = wait_for(find, timeout, state, interval=0.25)
    assert any(e["id"] == found["id"] and e["top_culprit_pid"] in pids for e in cli_json(pipeline, "events")), found
    return found


def culprit_categories(pipeline: Pipeline, event: dict) -> tuple[list[str], list[tuple]]:
    """What `pmctl events` says the event's top culprit did (its categories summed over the
    event's seconds: tiering's tally), and the tally as (command, pid, summed score, peak,
    samples, categories)."""
    now = next(e for e in cli_json(pipeline, "events") if e["id"] == event["id"])
    return now["top_culprit_categories"], _tally(now)


def _tally(event: dict) -> list[tuple]:
    return [(c["command"], c["pid"], c["score_sum"], c["peak"], c["samples"], c["categories"])
            for c in event["culprits"]]


def settled_categories(pipeline: Pipeline, event: dict, category: str, samples: int = 3,
                       timeout: float = 15.0) -> tuple[list[str], list[tuple]]:
    """``culprit_categories`` once the event's top culprit was tallied in ``samples`` samples and
    named under ``category``, or ``timeout`` passed. An event is named over its length: a load's
    first seconds need not say what it does (stress-ng --hdd's workers fill the page cache at
    full speed, all cpu, until the kernel makes them wait for the disk), and the event goes on.
    Tiering sends the tally when its leader or the leader's categories change."""
    def settled():
        now = next((e for e in pipeline.events() if e["id"] == event["id"]), None)
        tally = _tally(now) if now else []
        return tally and tally[0][4] >= samples and category in now["top_culprit_categories"]

    deadline = time.monotonic() + timeout
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.25)
    return culprit_categories(pipeline, event)


def wait_closed(pipeline: Pipeline, event: dict, what: str, timeout: float = 20) -> dict:
    """The `pmctl events --json` entry of ``event`` once it has closed (polled in this process:
    ``Pipeline.events``)."""

    def closed():
        return next((e for e in pipeline.events() if e["id"] == event["id"] and e["end"]), None)

    wait_for(closed, timeout, what, interval=0.25)
    return next(e for e in cli_json(pipeline, "events") if e["id"] == event["id"])
