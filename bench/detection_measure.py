"""One row of the detection matrix, measured on a running pipeline: what the live feed showed
while the load ran, and what the database holds afterwards (as `pmctl events` reads it).

Live figures come from tiering's live feed (tests/livefeed.py, watched on a thread): the moment
the first sample at tier ≥ 2 arrived, the peak of the score the tiers follow (``max_score``: the
machine's stress under the pressure model) and its parts per resource. Events come from the database through
pmshared.storage, read-only, the way `pmctl events --json` reads them.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tests.loadrows import CORES, LoadRow, prepare, start, start_light
from bench.pipeline_proc import machine_busy_pct
from bench.pipeline_run import PipelineRun
from pmshared import paths, storage
from tests.livefeed import SampleWatch, Seen
from tests.procutil import freeze, thaw

TARGET_TIER2_S = 3.0
CALM_WAIT_S = 30.0
# An event closes at tier 1: from tier 3 the tiers step down one de-escalation delay at a time
# (3 -> 2 -> 1), so a load that reached tier 3 closes two delays after its stress ended, plus slack.
CLOSE_SLACK_S = 8.0
MAX_CPU = 100.0 * CORES  # % of one core: no process can use more than every core


@dataclass
class Result:
    name: str
    kind: str  # "load", "quiet", "stop"
    skipped: str = ""
    to_tier2_s: float | None = None
    culprit: str = "—"
    category: str = "—"
    event: str = "—"
    peak: str = "—"
    before: str = "—"  # how busy the machine was right before the row (others' work shows here)
    misses: list[str] = field(default_factory=list)


def events_since(wall: float) -> list[storage.EventSummary]:
    """Events that started at or after ``wall``, oldest first."""
    conn = storage.open_readonly(paths.db_path())
    try:
        return sorted(storage.list_events(conn, since=wall, limit=None), key=lambda e: e.start)
    finally:
        conn.close()


def culprit_row(event: storage.EventSummary):
    """The event's top culprit as the stored sample where it scored highest has it (its figures
    say why it was named), None if no sample has it."""
    conn = storage.open_readonly(paths.db_path())
    try:
        detail = storage.get_event(conn, event.id)
    finally:
        conn.close()
    mine = [r for s in detail.samples for r in s.samples.rogues if r.pid == event.top_culprit_pid]
    return max(mine, key=lambda r: r.score) if mine else None


def culprit_categories(event: storage.EventSummary) -> list[str]:
    """What `pmctl events` says the top culprit did: its categories summed over the event's
    seconds (tiering's tally); for an event without one, those of its highest-scoring sample."""
    if event.top_culprit_categories:
        return list(event.top_culprit_categories)
    row = culprit_row(event)
    return list(row.categories) if row else []


def figures(r) -> str:
    """What a rogue was charged from (a wrong culprit's figures say why it was named)."""
    return (f"ppid {r.ppid}, cpu {r.cpu}, reaped children's cpu {r.cpu_children}, io {r.io_bps} B/s, "
            f"mem growth {r.mem_growth}, csw {r.csw}, categories {'/'.join(r.categories)}")


def pauses_since(wall: float) -> list[storage.PauseRecord]:
    conn = storage.open_readonly(paths.db_path())
    try:
        return sorted(storage.list_pauses(conn, since=wall, limit=None), key=lambda p: p.start)
    finally:
        conn.close()


def peak_text(seen: list[Seen]) -> str:
    """The highest ``max_score`` seen, with its two largest parts (pressure model)."""
    if not seen:
        return "no sample"
    best = max(seen, key=lambda s: s.max_score).sample.samples
    parts = sorted(best.stress.items(), key=lambda kv: -kv[1])[:2]
    return f"{best.max_score}" + (f" ({', '.join(f'{k} {v}' for k, v in parts)})" if parts else "")


def wait_calm(watch: SampleWatch, res: Result) -> None:
    """Until a sample at tier 1 (no event open), then how busy the machine is for a second: on a
    shared machine someone else's work shows up in every figure. Earlier work's dirty pages are
    written back first, so their writeback does not land inside the row (tests/e2e/detection_helpers)."""
    os.sync()
    hit = watch.first(lambda s: s.tier == 1, time.monotonic(), CALM_WAIT_S)
    if not hit:
        res.misses.append(f"tier stayed above 1 for {CALM_WAIT_S:.0f} s before the row")
    res.before = f"{machine_busy_pct(1.0):.0f} % busy, load {os.getloadavg()[0]:.1f}"


def wait_closed(wall: float, timeout: float) -> list[storage.EventSummary]:
    """Events since ``wall`` once all are closed, or as they are at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        events = events_since(wall)
        if all(e.end is not None for e in events) or time.monotonic() >= deadline:
            return events
        time.sleep(0.3)


def describe(e: storage.EventSummary) -> str:
    return f"{e.top_culprit} (pid {e.top_culprit_pid}, score {e.top_culprit_score})"


def measure_load(run: PipelineRun, watch: SampleWatch, row: LoadRow, seconds: float, scratch: Path,
                 deescalation_s: float) -> Result:
    res = Result(row.name, "load")
    prepare(row, scratch)
    wait_calm(watch, res)
    wall0, t0 = time.time(), time.monotonic()
    with ExitStack() as stack:
        load = start(row, seconds, scratch, stack)
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            load.poll_members()  # a fork storm's members come and go
    ended, ended_wall = time.monotonic(), time.time()
    seen = watch.since(t0)
    first = next((s for s in seen if s.tier >= 2), None)
    # When tiering published it, not when this process received it: a storm starves this process
    # (a normal task) for seconds, the pipeline's real-time workers not (pmshared/schedclass.py).
    res.to_tier2_s = None if first is None else first.sample.sent_at - wall0
    res.peak = peak_text(seen)
    if len(seen) < seconds / 2:  # 1 Hz sampling: the monitor itself was starved
        res.misses.append(f"only {len(seen)} live samples during the {seconds:.0f} s load")
    events = wait_closed(wall0 - 0.5, 2 * deescalation_s + CLOSE_SLACK_S)
    judge_load(res, row, events, load.seen, seconds, time.monotonic() - ended, ended_wall)
    if events and events[0].end is None:  # what held it open: the samples since the load ended
        res.misses.append(f"after the load: {held_by(watch.since(ended))}")
    return res


def held_by(seen: list[Seen]) -> str:
    """Each sample's tier, stress and top rogue since the load ended (why an event stayed open)."""
    out = []
    for s in seen[-20:]:
        top = s.top
        parts = ", ".join(f"{k} {v}" for k, v in sorted(s.sample.samples.stress.items(), key=lambda kv: -kv[1])[:2])
        who = f"{top.command} {top.pid} {top.score} {'/'.join(top.categories)}" if top else "-"
        out.append(f"t{s.tier} {s.sample.samples.max_score} ({parts}) {who}")
    return "; ".join(out)


def judge_load(res: Result, row: LoadRow, events: list[storage.EventSummary], load_pids: set[int],
               seconds: float, waited_s: float, ended_wall: float) -> None:
    if res.to_tier2_s is None:
        res.misses.append(f"no tier ≥ 2 in {seconds:.0f} s (peak {res.peak})")
    elif res.to_tier2_s > TARGET_TIER2_S:
        res.misses.append(f"tier 2 after {res.to_tier2_s:.1f} s (target ≤ {TARGET_TIER2_S:.0f} s)")
    if not events:
        res.event = "none"
        res.misses.append("no event recorded")
        return
    e = events[0]
    closed = (f"closed {e.end - ended_wall:.1f} s after the load" if e.end is not None
              else f"still open {waited_s:.0f} s after the load")
    res.event = f"#{e.id} opened, {closed}" + (f" (+{len(events) - 1} more)" if len(events) > 1 else "")
    if e.end is None:
        res.misses.append(f"event #{e.id} still open {waited_s:.0f} s after the load ended")
    res.culprit = describe(e)
    cats = culprit_categories(e)
    res.category = ", ".join(cats) or "none"
    if e.top_culprit_pid not in load_pids:
        wrong = culprit_row(e)
        res.misses.append(f"top culprit {describe(e)}, not one of the load's processes "
                          f"({row.culprit} or the process that started them)"
                          + (f"; its figures: {figures(wrong)}" if wrong else ""))
    elif not (e.top_culprit or "").startswith(row.culprit):
        res.culprit += ", the load's parent of its workers"
    if row.category not in cats:
        res.misses.append(f"top culprit's categories [{res.category}], expected {row.category}")


def measure_quiet(run: PipelineRun, watch: SampleWatch, name: str, seconds: float, light: bool,
                  repo: Path) -> Result:
    """Idle (``light`` False) or everyday work for ``seconds``: no event may open."""
    res = Result(name, "quiet")
    wait_calm(watch, res)
    wall0 = time.time()
    with ExitStack() as stack:
        if light:
            start_light(seconds, repo, stack)
        seen = watch.collect(seconds)
    res.peak = peak_text(seen)
    events = events_since(wall0 - 0.5)
    res.event = f"{len(events)} opened"
    if events:
        res.culprit = describe(events[0])
        res.misses.append(f"{len(events)} event(s) opened, first: top culprit {describe(events[0])}, "
                          f"peak {events[0].peak_score}")
    return res


def over_rate(seen: list[Seen]) -> list[str]:
    """Processes whose CPU (own or reaped children's) exceeds what every core together allows."""
    bad = []
    for s in seen:
        for r in s.sample.samples.rogues:
            for what, value in (("cpu", r.cpu), ("children cpu", r.cpu_children)):
                if value is not None and value > MAX_CPU:
                    bad.append(f"{r.command} (pid {r.pid}) {what} {value:.0f} %")
    return bad


def measure_stop(run: PipelineRun, watch: SampleWatch, stop_s: float, watch_s: float) -> Result:
    """SIGSTOP the collector for ``stop_s``: no event naming a pipeline process, no impossible rate."""
    res = Result(f"collector stopped {stop_s:g} s (SIGSTOP)", "stop")
    wait_calm(watch, res)
    pids = run.pids()
    ours = {pid: name for name, pid in pids.items()}
    wall0 = time.time()
    freeze(pids["collector"])  # with its sentinel process, as before it had one
    time.sleep(stop_s)  # the stimulus itself
    thaw(pids["collector"])
    seen = watch.collect(watch_s)
    res.peak = peak_text(seen)
    events = events_since(wall0 - 0.5)
    res.event = f"{len(events)} opened"
    for e in events:
        if e.top_culprit_pid in ours:
            res.misses.append(f"event #{e.id} names the pipeline's {ours[e.top_culprit_pid]}: {describe(e)}")
    if events:
        res.culprit = describe(events[0])
    bad = over_rate(seen)
    if bad:
        res.misses.append(f"rates above {MAX_CPU:.0f} %: {'; '.join(sorted(set(bad))[:4])}")
    res.category = pause_label(wall0 - 0.5)
    return res


def pause_label(wall: float, timeout: float = 15.0) -> str:
    """The recorded pause's cause and first culprits, once forensics has named them."""
    deadline = time.monotonic() + timeout
    while True:
        pauses = pauses_since(wall)
        if pauses and all(p.cause for p in pauses) or time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    if not pauses:
        return "no pause recorded"
    p = pauses[0]
    names = ", ".join(c.command for c in p.culprits[:3]) or "no culprits"
    return f"pause {p.duration_ms:.0f} ms, cause {p.cause or '?'}: {names}"
