"""Issue 16's proof, short: real loads on the real pipeline with every default, and what the user
then sees. Each test is one row of bench/detection.py's matrix, a few seconds long.

No threshold is lowered: the pipeline runs with an empty config file. The loads are real
(stress-ng; memory pressure from a file-backed working set in a memory-limited cgroup); they need
stress-ng (and root with cgroup v1 for the memory row) and skip, saying how to get it, without.
Every load runs in its own process group, every cgroup is removed, whatever the test's outcome.

Timing is from the load's start to when tiering published the first live sample at tier ≥ 2
whose top rogue is one of the load's processes (its ``sent_at``: this process, a normal task, can
receive it seconds later during a context-switch storm; see detection_helpers.published_after);
the figures are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from pmshared.config import Config
from tests.e2e.detection_helpers import (
    TARGET_TIER2_S,
    cli_json,
    culprit_categories,
    event_naming,
    run_until_detected,
    settled_categories,
    skip_unless_runnable,
    wait_closed,
    start_defaults,
    wait_calm,
    wait_kernel_calm,
)
from tests.livefeed import SampleWatch
from tests.loadrows import CORES, ROW
from tests.procutil import freeze, thaw
from tests.supervisor_helpers import Pipeline, pipeline, tagged_pids  # noqa: F401

pytestmark = pytest.mark.slow

DETECT_TIMEOUT_S = 10.0  # how long to follow a load that is not seen (the target is 3 s)


def _escalates(pipeline: Pipeline, tmp_path: Path, key: str, stack: ExitStack, watch: SampleWatch):
    """Start row ``key``; assert tier ≥ 2 within 3 s with one of its processes on top (a worker,
    or the process that started the workers: tests/loadrows.py), and an event whose top culprit
    is one of them, in the row's category over the event's seconds so far (tiering's tally: a
    start-up second of another kind, stress-ng --hdd's parent at cpu, does not name the event).
    (event, load)."""
    row = ROW[key]
    detected = run_until_detected(watch, row, tmp_path, stack, DETECT_TIMEOUT_S)
    if detected.after_s is None:
        pytest.fail(f"{row.name}: no tier ≥ 2 with one of the load's processes on top in "
                    f"{DETECT_TIMEOUT_S:.0f} s; {detected.describe()}")
    print(f"\n[{key}] {row.name}: tier ≥ 2 with the load on top after {detected.after_s:.2f} s")
    assert detected.after_s <= TARGET_TIER2_S, f"{row.name}: after {detected.after_s:.2f} s (target 3 s)"
    event = event_naming(pipeline, row, detected.load.seen)
    cats, tally = settled_categories(pipeline, event, row.category)
    print(f"[{key}] event #{event['id']}: top culprit {event['top_culprit']} ({event['top_culprit_pid']}) {cats}, "
          f"tally {tally}, peak {event['peak_score']}")
    assert row.category in cats, (row.category, tally)
    return event, detected.load


def test_stress_ng_on_every_core_escalates_within_3_s_names_its_worker_and_the_event_closes_after(
    pipeline: Pipeline, tmp_path: Path
):
    skip_unless_runnable(ROW["cpu"])
    start_defaults(pipeline)
    with SampleWatch() as watch:
        with ExitStack() as stack:
            event, _ = _escalates(pipeline, tmp_path, "cpu", stack, watch)
            assert event["end"] is None, "the event is open while the load runs"
            assert cli_json(pipeline, "status")["tier"] >= 2  # and the user's command says so
        stopped = time.monotonic()

        # Tier 3 steps down to 2, then 1, one de-escalation delay (5 s) each: ~12 s, plus slack.
        done = wait_closed(pipeline, event, "the event to close after the load stopped")
    print(f"[cpu] event closed {time.monotonic() - stopped:.1f} s after the load stopped (delay 5 s per tier)")
    assert done["interrupted"] is False and done["peak_tier"] >= 2


@pytest.mark.parametrize("key", ["fork", "hdd", "memory"])
def test_a_real_load_escalates_within_3_s_with_its_process_on_top_in_its_category(
    pipeline: Pipeline, tmp_path: Path, key: str
):
    # fork: the children's CPU is charged to whoever reaps them (category fork); hdd: the writers,
    # category io; memory: readers of a file 4× their cgroup's limit, whose pages the kernel
    # reclaims and reads back on every pass (category mem: charged by bytes demanded, growth plus
    # bytes read, so a small grower such as the collector is not named). The culprit may be a worker or the
    # process that started them (the model names the parent of a group of workers).
    skip_unless_runnable(ROW[key])
    start_defaults(pipeline)
    with SampleWatch() as watch, ExitStack() as stack:
        _escalates(pipeline, tmp_path, key, stack, watch)


def test_a_context_switch_storm_escalates_named_under_csw_before_and_after_it_ends(
    pipeline: Pipeline, tmp_path: Path
):
    # stress-ng --switch 4: ~800,000 switches/s, run queue ~15 on 2 cores, the pipeline's own
    # processes starved. Its workers are named under csw while it runs; when it ends, the kernel
    # hands their whole lifetime of CPU to stress-ng as it reaps them (a zombie by then), which
    # made stress-ng's highest-scoring sample, and so the event's categories, "cpu, state".
    skip_unless_runnable(ROW["switch"])
    start_defaults(pipeline)
    with SampleWatch() as watch:
        with ExitStack() as stack:
            event, load = _escalates(pipeline, tmp_path, "switch", stack, watch)
        stopped = time.monotonic()

        done = wait_closed(pipeline, event, "the storm's event to close after it stopped")
    print(f"[switch] event closed {time.monotonic() - stopped:.1f} s after the storm stopped")
    assert done["top_culprit_pid"] in load.seen, (done["top_culprit"], done["top_culprit_pid"])
    cats, tally = culprit_categories(pipeline, done)
    assert "csw" in cats, tally


IDLE_S = 20.0


def test_an_idle_machine_opens_no_event(pipeline: Pipeline):
    # From `pmctl up` on: its own start-up (five Python processes importing) is part of what a
    # user's machine goes through every time. Idle means idle: what earlier tests left dirty (the
    # hdd row's files) is written back first, as wait_calm does before a row, and the kernel must
    # report a few seconds without io or memory waits before the pipeline starts.
    os.sync()
    wait_kernel_calm()
    start_defaults(pipeline)
    with SampleWatch() as watch:
        seen = watch.collect(IDLE_S)
    assert len(seen) >= IDLE_S / 2, f"only {len(seen)} live samples in {IDLE_S:.0f} s"
    worst = max(seen, key=lambda s: s.sample.samples.max_score)
    print(f"\n[idle] {len(seen)} samples, highest max_score {worst.sample.samples.max_score} "
          f"({dict(worst.sample.samples.stress)}), highest tier {max(s.tier for s in seen)}")
    events = cli_json(pipeline, "events")
    if events and all(e["no_local_culprit"] for e in events):
        _skip_if_stalled_from_outside(pipeline, seen)
    assert events == [], [(e["top_culprit"], e["top_culprit_pid"], e["peak_score"], e["start"]) for e in events]
    assert all(s.tier == 1 for s in seen), [(s.tier, s.sample.samples.max_score) for s in seen if s.tier > 1]


def _skip_if_stalled_from_outside(pipeline: Pipeline, seen: list) -> None:
    """Events that charged no process, seen in a CI run (io stress 86 for 7 s, its tally empty;
    an earlier fresh-clone run saw io stress 61 alike): the kernel reported io waits that no
    process on the machine accounts for, the host's storage busy with another machine's work, say. The product
    is right to raise its hand and right to name nobody; the test's premise (an idle machine)
    did not hold, which is a skip, not a pass. It is a failure if anything else stood out: a
    resource other than io or memory, or one of the pipeline's own processes seen waiting in D
    state (its own syncs stalling it) in most of those seconds."""
    elevated = Config().tiers.elevated_threshold
    stressed = [s for s in seen if s.max_score >= elevated]
    ours = set(tagged_pids(pipeline.tag))
    resources = {r for s in stressed for r, v in s.sample.samples.stress.items() if v >= elevated}
    stuck_ours = sum(any(r.pid in ours and r.state == "stuck" for r in s.sample.samples.rogues) for s in stressed)
    kernel = [(s.sample.samples.system.psi_io, s.sample.samples.system.procs_blocked,
               s.sample.samples.system.cpu_iowait_pct) for s in stressed if s.sample.samples.system]
    assert stressed and resources <= {"io", "memory"}, (resources, kernel)
    assert stuck_ours <= len(stressed) // 2, f"the pipeline's own processes in D state in {stuck_ours} of " \
        f"{len(stressed)} stressed seconds: its own io stalls it; kernel (psi io, blocked, iowait %): {kernel}"
    pytest.skip(f"not idle: the kernel reported {sorted(resources)} waits for {len(stressed)} s that no process "
                f"here accounts for (psi io, blocked, iowait %: {kernel}); the events name nobody")


def test_a_half_second_stop_of_the_collector_opens_no_event_naming_the_pipeline_nor_an_impossible_rate(
    pipeline: Pipeline,
):
    # After a stop, the collector's first sample must divide its counters by the time that really
    # passed: a pipeline process at 519-744 % CPU on 2 cores, scored into an event, was the bug.
    start_defaults(pipeline)
    ours = {pipeline.pid: "supervisor", **{w.pid: name for name, w in pipeline.workers().items()}}
    with SampleWatch() as watch:
        wait_calm(watch)
        collector = next(pid for pid, name in ours.items() if name == "collector")
        freeze(collector)
        try:
            time.sleep(0.5)  # the stimulus itself
        finally:
            thaw(collector)
        seen = watch.collect(6.0)
    assert len(seen) >= 3, f"only {len(seen)} live samples in the 6 s after the stop"
    limit = 100.0 * CORES
    impossible = [(r.command, r.pid, r.cpu, r.cpu_children) for s in seen for r in s.sample.samples.rogues
                  if (r.cpu or 0) > limit or (r.cpu_children or 0) > limit]
    assert not impossible, f"more CPU than {CORES} cores allow: {impossible}"
    events = cli_json(pipeline, "events")
    print(f"\n[stop 0.5 s] {len(events)} events; highest tier after the stop {max(s.tier for s in seen)}")
    naming_us = [(e["id"], e["top_culprit"], e["top_culprit_pid"], ours[e["top_culprit_pid"]], e["top_culprit_score"])
                 for e in events if e["top_culprit_pid"] in ours]
    assert not naming_us, f"events (id, top culprit, pid, which pipeline process, score): {naming_us}"
