"""Issue 7's scenarios: real trouble on the machine, the real pipeline (`pmctl up` with the
installed Procfile, in the isolated temp home), and what the user then sees.

Every assertion is on user-visible output: `pmctl status/events/pauses --json`, the rogue table of
`pmctl watch --once`, bundle files, and what reached the (fake) desktop notifier. The stimuli are
children of the test that rename themselves, so they are recognisable in every view; each test
kills its own in a finally block (the ``pipeline`` fixture kills the pipeline).

The measured figures (pause duration errors, ...) are printed; run with ``-s`` to see them. Real
loads on the default config (stress-ng on every core, a fork storm, ...) are issue 16's
scenarios, in tests/e2e/test_detection.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.sentinel import Sentinel
from pmshared.config import SentinelConfig
from tests.e2e.scenario_helpers import (
    IDLER,
    MEM_HOG,
    ZOMBIE_MAKER,
    Children,
    proc_state,
    rogue_rows,
    rss_mib,
)
from tests.procutil import freeze, thaw
from tests.supervisor_helpers import REPO, Pipeline, pipeline, wait_bundled_pauses, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]
# The pipeline's own supervisor defaults (1 s heartbeats, 3 missed) except a shorter grace period:
# the fast watchdog of supervisor_helpers would restart a collector we stop for 1.5 s on purpose.
# The scenarios run the default (pressure) model, except the memory-hog one: a few hundred MB on
# a machine with 24 GiB free is no stress, so the user finds it through the seed model's rogue
# table (the top three resident sizes), which that test selects.
SUPERVISOR = '[supervisor]\ngrace_period_s = 3.0\n'
SEED_MODEL = '[scoring]\nmodel = "seed"\n'
FAKE_NOTIFY_SEND = REPO / "tests" / "fake_bin" / "notify-send"


# --------------------------------------------------------------------------- helpers


def _json(pipeline: Pipeline, *args: str):
    proc = pipeline.cli(*args, "--json")
    assert proc.returncode == 0, f"pmctl {' '.join(args)} --json failed: {proc.stderr}"
    return json.loads(proc.stdout)


def _watch(pipeline: Pipeline) -> str | None:
    """One frame of `pmctl watch --once`, or None while the pipeline does not answer yet."""
    proc = pipeline.cli("watch", "--once")
    return proc.stdout if proc.returncode == 0 else None


def _start(pipeline: Pipeline, config: str, *, notifier: bool = False) -> Path | None:
    """`pmctl up` with ``config``; with ``notifier``, a fake notify-send first on the pipeline's
    PATH that appends its argv to the returned log. Returns once the live feed answers."""
    log = None
    if notifier:
        fake_bin = pipeline.tmp / "bin"
        fake_bin.mkdir()
        (fake_bin / "notify-send").symlink_to(FAKE_NOTIFY_SEND)  # only the notifier is faked
        log = pipeline.tmp / "notify-send.log"
        pipeline.env["PATH"] = f"{fake_bin}{os.pathsep}{pipeline.env.get('PATH', '')}"
        pipeline.env["FAKE_BIN_LOG"] = str(log)
    pipeline.env["COLUMNS"] = "200"  # `watch --once` into a pipe: wide enough for whole names
    pipeline.config.write_text(SUPERVISOR + config)
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    wait_for(lambda: _watch(pipeline), 20, lambda: f"the live feed; output:\n{pipeline.output()}", interval=0.2)
    return log


def _notifications(log: Path, title: str) -> list[list[str]]:
    """The argv of each notify-send call with this title (argv: options, "--", title, body)."""
    if not log.exists():
        return []
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines() if line.strip()]
    return [argv for argv in calls if argv[argv.index("--") + 1] == title]


def _rows_when(pipeline: Pipeline, condition, what: str, timeout: float = 20):
    """Poll `pmctl watch --once` until ``condition(rows)`` holds; the rows then."""
    last = {"out": ""}

    def check():
        out = _watch(pipeline)
        if out is None:
            return None
        last["out"] = out
        rows = rogue_rows(out)
        return rows if condition(rows) else None

    return wait_for(check, timeout, lambda: f"{what}; last `pmctl watch --once`:\n{last['out']}", interval=0.2)


# --------------------------------------------------------------------------- 1. CPU load
# A load on every core, with every default (no lowered threshold), is the first row of issue 16's
# detection matrix: tests/e2e/test_detection.py, with real stress-ng loads.


# --------------------------------------------------------------------------- 2. memory hog

MEM_HOG_NAME = "pm-scn-memhog"
MEM_HOG_MIB = 400  # far above anything else here (the largest process has ~60 MB), far below 24 GB
MEM_STEP_MIB = 50


def test_a_growing_memory_hog_is_the_top_rogue_in_category_mem(pipeline: Pipeline):
    # A few hundred MB score 0 points (mem / 8 GiB * 15) and open no event: the user finds a memory
    # hog in the live view, `pmctl watch`, whose rogue table lists the top processes per category
    # under the seed model.
    _start(pipeline, SEED_MODEL)
    children = Children(pipeline.env)
    try:
        hog = children.start(MEM_HOG, MEM_HOG_NAME, str(MEM_HOG_MIB), str(MEM_STEP_MIB))
        started = time.monotonic()
        wait_for(lambda: hog.poll() is None and rss_mib(hog.pid) >= MEM_HOG_MIB - MEM_STEP_MIB, 20,
                 "the memory hog to grow")

        def hog_on_top_of_mem(rows):
            hog_row = next((r for r in rows if r.pid == hog.pid), None)
            # At its full size in the sample (its first samples show it still growing).
            return hog_row is not None and (hog_row.mem_bytes or 0) >= (MEM_HOG_MIB - MEM_STEP_MIB) << 20

        rows = _rows_when(pipeline, hog_on_top_of_mem, "the memory hog at full size in the rogue table")
        print(f"\n[mem hog] top of category mem in `pmctl watch` {time.monotonic() - started:.2f} s after the start")
        mem_rows = [r for r in rows if "mem" in r.categories]
        top = max(mem_rows, key=lambda r: r.mem_bytes or 0)
        assert top.pid == hog.pid and top.command == MEM_HOG_NAME, rows
        assert all(r.pid == hog.pid or (r.mem_bytes or 0) < top.mem_bytes for r in rows), rows
    finally:
        children.close()


# --------------------------------------------------------------------------- 3. zombies, stopped

ZOMBIE_PARENT = "pm-scn-zparent"
ZOMBIE_NAME = "pm-scn-zombie"
STOPPED_NAME = "pm-scn-stopped"
ZOMBIES = 3


def test_zombies_and_a_stopped_process_are_reported_with_their_states(pipeline: Pipeline):
    # By default rogue_selection.state picks zombies only (the seed's default). A stopped process
    # is often one somebody suspended on purpose (Ctrl-Z), so listing it is the user's choice; the
    # test config makes that choice: states = ["zombie", "stopped"]. The user looks at the rogue
    # table of `pmctl watch`, whose state column names each state.
    _start(pipeline, '[rogue_selection.state]\nstates = ["zombie", "stopped"]\n')
    children = Children(pipeline.env)
    try:
        maker = children.start(ZOMBIE_MAKER, ZOMBIE_PARENT, ZOMBIE_NAME, str(ZOMBIES), stdout=subprocess.PIPE)
        zombies = {int(p) for p in maker.stdout.readline().split()}
        assert len(zombies) == ZOMBIES
        wait_for(lambda: all(proc_state(p) == "Z" for p in zombies), 10, "the children to become zombies")
        idler = children.start(IDLER, STOPPED_NAME)
        children.wait_named(idler, STOPPED_NAME)
        idler.send_signal(signal.SIGSTOP)
        wait_for(lambda: proc_state(idler.pid) == "T", 10, "the idler to stop")

        def both_reported(rows):
            seen = {r.pid for r in rows}
            return zombies <= seen and idler.pid in seen

        rows = _rows_when(pipeline, both_reported, "the zombies and the stopped process in the rogue table")
        by_pid = {r.pid: r for r in rows}
        for pid in zombies:
            assert by_pid[pid].command == ZOMBIE_NAME and by_pid[pid].state == "zombie", by_pid[pid]
            assert "state" in by_pid[pid].categories, by_pid[pid]
        stopped = by_pid[idler.pid]
        assert stopped.command == STOPPED_NAME and stopped.state == "stopped", stopped
        assert "state" in stopped.categories, stopped
        # The zombies' parent is merely sleeping: not selected for its state.
        assert maker.pid not in by_pid or "state" not in by_pid[maker.pid].categories
    finally:
        children.close()


# --------------------------------------------------------------------------- 4. one pause


@dataclass(frozen=True)
class Stall:
    """One SIGSTOP..SIGCONT of the collector, as the test measured it. The clocks are read after
    the SIGSTOP was sent and right before the SIGCONT, so both readings lie inside the stall even
    when this (loaded) machine delays the test process itself after a kill()."""

    stopped: float  # wall clock
    resumed: float  # wall clock
    ms: float  # measured on the monotonic clock

    def within(self, pause: dict) -> bool:
        """Whether ``pause`` (a `pmctl pauses --json` row) spans this stall's middle."""
        return pause["start"] <= (self.stopped + self.resumed) / 2 <= pause["end"]


def _stop_collector(collector: int, seconds: float) -> Stall:
    """Freeze the collector (and its sentinel) for ``seconds``: the stimulus, so sleeping for it is
    the point."""
    freeze(collector)
    stopped_wall, stopped = time.time(), time.monotonic()
    time.sleep(seconds)
    resumed_wall, resumed = time.time(), time.monotonic()
    thaw(collector)
    return Stall(stopped_wall, resumed_wall, (resumed - stopped) * 1000)


def test_a_pause_is_recorded_once_and_notified_through_the_desktop_notifier(pipeline: Pipeline):
    # A 1.5 s pause notifies by default only from 2 s on (alerts.pause_min_duration, the seed's);
    # 0.5 s lets this one through. The bundle's contents are test_pipeline_e2e's business.
    log = _start(pipeline, "[alerts]\npause_min_duration = 0.5\n", notifier=True)
    collector = pipeline.workers()["collector"].pid
    stall_ms = _stop_collector(collector, 1.5).ms
    resumed = time.monotonic()

    pauses = wait_bundled_pauses(lambda: _json(pipeline, "pauses"), 30, pipeline.output)
    assert len(pauses) == 1, pauses
    pause = pauses[0]
    error_ms = pause["duration_ms"] - stall_ms
    print(f"\n[pause] stall {stall_ms:.1f} ms, recorded {pause['duration_ms']:.1f} ms (error {error_ms:+.1f} ms)")
    assert abs(error_ms) <= 100, (pause["duration_ms"], stall_ms)
    assert (Path(pause["bundle_path"]) / "metadata.json").is_file()

    told = wait_for(lambda: _notifications(log, "Pause detected"), 10, "the pause notification")
    # An upper bound: the log is first looked at once the bundle is linked.
    print(f"[pause] notification seen {time.monotonic() - resumed:.2f} s after the stall ended")
    # The user reads the same duration as `pmctl pauses` shows (the body says "... 1.5 s").
    assert told[0][-1] == f"The machine stalled for {pause['duration_ms'] / 1000:.1f} s", told
    bundle_note = wait_for(lambda: _notifications(log, "Forensics captured"), 10, "the bundle notification")
    assert Path(pause["bundle_path"]).name in bundle_note[0][-1], bundle_note
    assert len(_notifications(log, "Pause detected")) == 1


# --------------------------------------------------------------------------- 5. forty pauses

BURST = 40
BURST_STOP_S = 0.3
BURST_GAP_S = 0.1
# Lateness above 100 ms is a pause (default 200 ms): every 300 ms stall (~250 ms late) clearly is
# one, and a normal wake-up (a few ms late) clearly is not.
BURST_CONFIG = (
    "[sentinel]\npause_threshold_ms = 100.0\n"
    # A 3 s latency window, so the sentinel's p99 shows the recovery soon after the burst.
    "percentile_window_s = 3.0\n"
    # Every pause is notifiable, so the test sees the rate limit fold the burst into one.
    "[alerts]\npause_min_duration = 0.1\n"
)


def _p99_ms(watch_output: str) -> float | None:
    match = re.search(r"p99 ([\d.]+) ms", watch_output)
    return float(match.group(1)) if match else None


def test_forty_short_pauses_are_all_recorded_coalesced_into_few_bundles_and_sampling_stays_on_time(
    pipeline: Pipeline,
):
    log = _start(pipeline, BURST_CONFIG, notifier=True)
    collector = pipeline.workers()["collector"].pid
    stalls = []
    for _ in range(BURST):
        stalls.append(_stop_collector(collector, BURST_STOP_S))
        time.sleep(BURST_GAP_S)  # part of the stimulus: the collector runs between stalls
    burst_end_wall = time.time()

    last: dict = {"rows": []}

    def every_stall_recorded_and_bundled():
        last["rows"] = rows = _json(pipeline, "pauses", "--limit", "100")
        covered = all(any(stall.within(r) for r in rows) for stall in stalls)
        return rows if covered and all(r["bundle_path"] for r in rows) else None

    def burst_state() -> str:
        rows = sorted(last["rows"], key=lambda r: r["start"])
        missed = [i for i, st in enumerate(stalls) if not any(st.within(r) for r in rows)]
        near = [
            (f"stall {i}: {stalls[i].stopped:.3f}..{stalls[i].resumed:.3f}",
             [(r["pause_id"], f"{r['start']:.3f}..{r['end']:.3f}", r["duration_ms"])
              for r in rows if abs(r["start"] - stalls[i].stopped) < 1.0])
            for i in missed
        ]
        return (f"every stall within a pause, each pause linked to a bundle; have {len(rows)} pauses, "
                f"unlinked {[r['id'] for r in rows if not r['bundle_path']]}, stalls not covered {near}; "
                f"output:\n{pipeline.output()}")

    rows = wait_for(every_stall_recorded_and_bundled, 40, burst_state, interval=0.3)
    rows.sort(key=lambda r: r["start"])
    # Which stalls each pause spans. One pause per stall is the expectation. Two stalls in one
    # pause would be right only if the collector got no CPU at all in the 100 ms between them on
    # a loaded machine (the sentinel then never woke up in between: the pause spans the gap too),
    # so that is tolerated and shown; a stall split into two pauses or one lost never is.
    spans = [[i for i, st in enumerate(stalls) if st.within(r)] for r in rows]
    assert all(sum(i in span for span in spans) == 1 for i in range(BURST)), spans
    merged = [span for span in spans if len(span) > 1]
    foreign = [r for r, span in zip(rows, spans) if not span]  # stalls of the loaded machine itself
    one_to_one = [(r, stalls[span[0]]) for r, span in zip(rows, spans) if len(span) == 1]
    errors = [r["duration_ms"] - stall.ms for r, stall in one_to_one]
    print(f"\n[burst] {len(rows)} pauses for {BURST} stalls ({len(merged)} merged, "
          f"{len(foreign)} outside the stalls); duration error vs measured stall: "
          f"min {min(errors):+.1f} ms, max {max(errors):+.1f} ms")
    assert len(one_to_one) >= BURST - 4, f"too many merged pauses to call it one per stall: {merged}"
    assert all(abs(e) <= 100 for e in errors), errors

    # Coalesced: fewer bundles than pauses, and every pause accounted for in one bundle's metadata.
    bundles = {r["bundle_path"] for r in rows}
    assert 1 <= len(bundles) < len(rows), len(bundles)
    accounted = []
    for path in bundles:
        meta = json.loads((Path(path) / "metadata.json").read_text())
        accounted += meta["pause_ids"]
        assert len(meta["pause_ids"]) == 1 + len(meta["coalesced"]), meta
    assert sorted(accounted) == sorted(r["pause_id"] for r in rows)
    print(f"[burst] {len(bundles)} bundles for {len(rows)} pauses")

    # One desktop notification for the burst (the rest is folded into a later summary).
    assert len(_notifications(log, "Pause detected")) == 1, _notifications(log, "Pause detected")

    # Sampling on time afterwards: the live feed (what `pmctl watch` draws) goes on at 1 Hz. No
    # sample is missed (no gap beyond 1.5 intervals), and within a few seconds the samples are
    # back on the 1 s rhythm. Right after the burst a gap may be short or long by a few hundred ms:
    # each pause gets a sample of its own, taken right away for forensics, which can delay the
    # next regular one; a sample is stamped when /proc has been read. The sentinel's p99 lateness
    # is back to normal once the burst has left its 3 s window.
    from cli import clients

    def samples_after_burst():
        reply = clients.snapshot(timeout_s=2.0)
        stamps = [e.samples.timestamp for e in reply.ring if e.samples.timestamp > burst_end_wall] if reply else []
        return stamps if len(stamps) >= 5 and stamps[-1] - burst_end_wall >= 5.0 else None

    stamps = [burst_end_wall, *wait_for(samples_after_burst, 15, "5 s of samples after the burst")]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    print(f"[burst] sample gaps after the burst: {', '.join(f'{g:.3f}' for g in gaps)} s")
    assert max(gaps) <= 1.5, gaps
    assert all(0.75 <= g <= 1.25 for g in gaps[-3:]), gaps
    frame = {"out": ""}

    def p99_normal():
        frame["out"] = _watch(pipeline) or ""
        p99 = _p99_ms(frame["out"])
        return p99 is not None and p99 < 50 and p99

    p99 = wait_for(p99_normal, 15, lambda: f"the sentinel p99 back below 50 ms:\n{frame['out']}", interval=0.5)
    print(f"[burst] sentinel p99 after the burst: {p99:.1f} ms")
    status = {w["name"]: w for w in _json(pipeline, "status")["workers"]}
    assert status["collector"]["restarts"] == 0 and status["collector"]["state"] == "running", status


# --------------------------------------------------------------------------- found by scenario 5
# Now and then one of the forty stalls had no pause spanning it: the sentinel reads its three
# clocks one after the other, and a stall landing between two of the reads (here the SIGSTOP; in
# life a preemption, or the sentinel thread waiting for the GIL while the collector samples
# hundreds of processes) made them disagree. Between the awake and the suspend-inclusive read the
# stall looked like time asleep and the pause was lost; between that and the wall-clock read the
# pause was dated from its own end. The sentinel now measures the gap on the awake clock alone and
# reads the wall clock only for a late wake-up, so a stall after the awake read lands in the next
# gap. This replays a stall between the awake and the suspend-inclusive read, deterministically, on
# scripted clocks.


class _StallBetweenReads:
    """Clocks that tick on time, except that once, on the given tick, a stall of ``stall_s``
    happens just before the named clock is read (all clocks move on: the machine is awake)."""

    def __init__(self, before: str, on_tick: int, stall_s: float, ticks: int) -> None:
        self.awake, self.total, self.wall_s = 1000.0, 5000.0, 1_700_000_000.0
        self.before, self.on_tick, self.stall_s, self.ticks_left = before, on_tick, stall_s, ticks
        self.tick = 0
        self.stalled_at: float | None = None  # wall clock

    def _maybe_stall(self, clock: str) -> None:
        if clock == self.before and self.tick == self.on_tick and self.stalled_at is None:
            self.stalled_at = self.wall_s + self.stall_s / 2  # the stall's middle
            self._advance(self.stall_s)

    def _advance(self, seconds: float) -> None:
        self.awake += seconds
        self.total += seconds
        self.wall_s += seconds

    def monotonic(self) -> float:
        return self.awake

    def boottime(self) -> float:
        self._maybe_stall("boottime")
        return self.total

    def now(self) -> float:
        self._maybe_stall("wall")
        return self.wall_s

    def wait(self, timeout: float) -> bool:
        self.tick += 1
        self.ticks_left -= 1
        self._advance(timeout)
        return self.ticks_left <= 0


def test_a_stall_between_the_sentinels_clock_reads_is_one_pause_spanning_it():
    clocks = _StallBetweenReads("boottime", on_tick=5, stall_s=0.3, ticks=10)
    found = []
    sentinel = Sentinel(
        SentinelConfig(tick_ms=50.0, pause_threshold_ms=100.0), found.append,
        monotonic=clocks.monotonic, boottime=clocks.boottime, wall=clocks.now, wait=clocks.wait,
    )
    sentinel.run()  # the thread's body, on the test's thread
    assert len(found) == 1, found
    pause = found[0]
    # not mistaken for time asleep, and within half a tick of the 300 ms stall
    assert pause.suspended_ms == 0 and abs(pause.duration_ms - 300) <= 25 + 1e-6
    assert pause.start <= clocks.stalled_at <= pause.end, (pause, clocks.stalled_at)
