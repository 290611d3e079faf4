"""pmctl watch: the pure renderer, --once against a fake and a real tiering, and a tmux screen test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.main import app
from cli.watch_feed import FeedState
from cli.watch_view import WatchView, level, render
from pmshared import messages as m
from pmshared import paths
from tests.cli_people_helpers import (
    HOSTILE, RECOGNISABLE, DbBuilder, FakeTiering, RealTiering, control_bytes, rogue, samples, wait_for,
)
from tests.tmux_screen import TmuxScreen

REPO = Path(__file__).resolve().parent.parent
NOW = time.time()


def hostile_rogues() -> list[m.ProcessScore]:
    return [rogue(100 + i, name, 90 - i, state="stuck" if i == 0 else "running", categories=["cpu", "state"])
            for i, name in enumerate(HOSTILE.values())]


def hostile_ring(n: int = 12) -> list[m.RingEntry]:
    sentinel = m.SentinelStats(tick_ms=50.0, window_s=60.0, ticks=1200, p50_ms=0.4, p99_ms=3.2, max_ms=12.0, pauses=2)
    ring = []
    for i in range(n):
        rs = hostile_rogues() if i == n - 1 else [rogue(7, "warmup", 10 + 5 * i)]
        ring.append(m.RingEntry(samples=samples(NOW - n + i, rs, seq=i + 1, sentinel=sentinel), tier=3))
    return ring


def view(**kw) -> WatchView:
    feed = FeedState()
    feed.apply_snapshot(m.SnapshotReply(
        sender="tiering", incarnation="t", seq=1, sent_at=NOW, ring=hostile_ring(),
        state=m.TierState(tier=3, tier_since=NOW - 72, peak_score=90, event_key="t:1"),
        last_live_seq=12, live_incarnation="t"))
    defaults = dict(feed=feed, now=NOW, link="live", workers=[
        m.WorkerStatus(name="tiering", state="running", pid=4321, restarts=1, last_heartbeat_age_s=0.4),
        m.WorkerStatus(name="collector", state="backoff", restarts=3)], events=[], last_pause=None)
    defaults.update(kw)
    return WatchView(**defaults)


def draw(v: WatchView, width: int = 160, **console_kw) -> str:
    buf = StringIO()
    Console(file=buf, width=width, color_system=console_kw.pop("color_system", None), **console_kw).print(render(v))
    return buf.getvalue()


# --------------------------------------------------------------------------- the renderer


def test_frame_shows_gauge_tier_rogues_sparkline_sentinel_and_workers():
    out = draw(view())
    assert " 90 " in out and "critical" in out
    assert "tier      3 (critical) for 1m 12s, peak 90" in out
    assert "processes 321" in out and "12 samples" in out
    assert "▁▂▂▃▃▃▄▄▅▅▅█" in out  # max score over the ring: 10..65 warming up, then 90
    assert "p50 0.4 ms  p99 3.2 ms  max 12.0 ms" in out and "2 since the collector started" in out
    for header in ("command", "pid", "score", "cpu %", "mem", "page-ins/s", "state", "categories"):
        assert header in out
    assert "stuck" in out and "cpu,state" in out and "64.0 MiB" in out
    assert "tiering" in out and "4321" in out and "backoff" in out
    assert "q quit · e events" in out


@pytest.mark.parametrize("width", [80, 120, 200])
def test_hostile_names_are_inert_and_recognisable_at_any_width(width):
    out = draw(view(), width=width)
    assert control_bytes(out) == []
    if width >= 120:  # narrower frames may elide long names, never reveal raw bytes
        for name in HOSTILE:
            assert RECOGNISABLE[name] in out, name


def test_colour_output_has_only_our_own_colour_codes():
    out = draw(view(), color_system="truecolor", force_terminal=True)
    assert "\x1b[" in out  # it is coloured...
    # ...and every escape is an SGR colour sequence: no OSC (title, clipboard), no BEL, no cursor moves.
    leftovers = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert control_bytes(leftovers) == []
    assert "\x1b]" not in out and "\x07" not in out


@pytest.mark.parametrize("width", [80, 120])
def test_no_events_is_one_plain_line_not_a_squeezed_table(width):
    out = draw(view(events=[]), width=width)
    assert "no events recorded yet" in out
    assert "durat" not in out and "top culp" not in out  # no empty event columns beside the workers


def test_pressure_model_stress_parts_are_shown_highest_first_and_inert():
    v = view()
    latest = v.feed.ring[-1].samples
    hostile = "io\x1b[31m[red]x[/red]"
    parts = {"cpu": 45, "memory": 3, hostile: 70, "stall": 12}
    v.feed.ring[-1] = m.RingEntry(samples=m.ProcessSamples(**{
        **{f: getattr(latest, f) for f in latest.__struct_fields__}, "stress": parts, "model": "pressure"}), tier=3)
    out = draw(v)
    line = next(line for line in out.splitlines() if "parts" in line)
    assert line.index("cpu 45") < line.index("stall 12") < line.index("memory 3")
    # ESC made visible, markup shown as text (cut to 12 characters), never interpreted.
    assert "\x1b" not in line and "io^[[31m[re… 70" in line
    assert "parts" not in draw(view())  # the seed model sends no parts: no row


def test_gauge_levels_follow_the_configured_thresholds():
    v = view()
    assert [level(s, v)[0] for s in (0, 29, 30, 59, 60, 100)] == ["ok", "ok", "elevated", "elevated", "critical", "critical"]
    v = view(elevation_threshold=50, critical_threshold=80)
    assert [level(s, v)[0] for s in (49, 50, 79, 80)] == ["ok", "elevated", "elevated", "critical"]
    red = draw(view(), color_system="standard", force_terminal=True)
    assert "\x1b[1;31m 90" in red  # the gauge number is bold red at 90


def test_not_running_frame_says_what_to_do_and_keeps_the_last_picture():
    out = draw(view(link="down", retry_in_s=4.2, attempts=3, endpoint="ipc:///run/x/snapshot.sock"))
    assert "The pipeline is not running" in out and "pmctl up" in out
    assert "Retrying in 4 s (attempt 3)" in out and "showing it below" in out
    empty = view(link="down", feed=FeedState(), workers=None, supervisor_note="supervisor not running")
    out = draw(empty)
    assert "no samples yet" in out and "supervisor not running" in out and "rogue processes" not in out


def test_events_mode_shows_more_events_with_inert_culprits(isolated_home):
    b = DbBuilder(paths.db_path())
    for i in range(8):
        b.event(NOW - 3600 * (i + 1), [40 + i, 50 + i], culprit=HOSTILE["osc52"], end=NOW - 3600 * (i + 1) + 9)
    b.close()
    from cli.watch_cmd import read_recent

    events, last_pause, note = read_recent(limit=20)
    assert note is None and len(events) == 8
    out = draw(view(events=events, mode="events"))
    assert control_bytes(out) == [] and out.count(RECOGNISABLE["osc52"]) == 8
    assert "q quit · e back" in out and "rogue processes" not in out
    main = draw(view(events=events))
    assert main.count(RECOGNISABLE["osc52"]) == 5 + 1 and "rogue processes" in main  # 5 events + the rogue


def test_database_problems_become_a_note_in_the_frame(isolated_home):
    from cli.watch_cmd import read_recent

    events, _, note = read_recent(limit=5)
    assert events is None and "pmctl up" in note
    out = draw(view(events=events, events_note=note))
    assert "no database yet" in out


# --------------------------------------------------------------------------- watch --once


def test_watch_once_against_a_fake_tiering_over_real_sockets(isolated_home):
    ring = hostile_ring()
    state = m.TierState(tier=3, tier_since=time.time() - 30, peak_score=90)
    with FakeTiering(ring, state, live_seq=12) as fake:
        result = CliRunner().invoke(app, ["watch", "--once", "--timeout", "5"])
        assert fake.served == 1
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert control_bytes(out) == []
    for name in HOSTILE:
        assert RECOGNISABLE[name] in out, name
    assert "3 (critical)" in out and "12 samples" in out and "supervisor not running" in out
    assert "q quit" not in out  # no key hints in a one-shot frame


def test_watch_once_without_a_pipeline_says_so_and_fails_fast(isolated_home):
    started = time.monotonic()
    result = CliRunner().invoke(app, ["watch", "--once", "--timeout", "5"])
    assert result.exit_code == 1
    assert "The pipeline is not running" in result.stdout and "pmctl up" in result.stdout
    assert time.monotonic() - started < 4  # no socket file: nothing to wait for
    # Without --once but on a pipe (not a terminal), watch prints one frame the same way.
    piped = CliRunner().invoke(app, ["watch"])
    assert piped.exit_code == 1 and "The pipeline is not running" in piped.stdout


@pytest.fixture
def real_tiering(isolated_home):
    tiering = RealTiering(hostile_rogues())
    try:
        yield tiering
    finally:
        tiering.close()


def test_watch_once_against_the_real_tiering_worker(real_tiering):
    real_tiering.wait_ready(samples=3)
    proc = subprocess.run([sys.executable, "-m", "cli", "watch", "--once", "--timeout", "5"], cwd=REPO,
                          capture_output=True, timeout=60, env={**os.environ, "COLUMNS": "180"})
    out = proc.stdout.decode()
    assert proc.returncode == 0, (out, proc.stderr.decode())
    assert control_bytes(out) == []
    for name in HOSTILE:
        assert RECOGNISABLE[name] in out, name
    assert "live" in out and "p99 4.5 ms" in out and "processes 321" in out


# --------------------------------------------------------------------------- tmux screen test


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_watch_in_tmux_waits_for_the_pipeline_then_shows_rogues_and_quits_on_q(isolated_home, tmp_path):
    term = TmuxScreen(tmp_path, ["watch"], width=160, height=50)
    tiering: RealTiering | None = None

    def feed_and_find(*texts: str) -> str | None:
        """The screen once it shows every one of ``texts`` (the key line too: drawn last)."""
        if tiering is not None:
            tiering.publish()  # keep the live feed going while we look
        page = term.screen()
        return page if all(text in page for text in texts) else None

    try:
        # Nothing running yet: the view says so and keeps retrying by itself.
        page = wait_for(lambda: feed_and_find("The pipeline is not running", "q quit"), timeout=15,
                        what="the not-running frame")
        assert "pmctl up" in page
        tiering = RealTiering(hostile_rogues())
        tiering.wait_ready(samples=2)
        # A rogue's name, not the table's title: the title shows (empty) while still connecting.
        page = wait_for(lambda: feed_and_find(RECOGNISABLE["csi"], "q quit"), timeout=20,
                        what="the rogue table's rows")
        assert RECOGNISABLE["title"] in page and RECOGNISABLE["csi"] in page and "live" in page
        assert "not running" not in page
        assert control_bytes(page) == []
        title = subprocess.run([*term.tmux, "display-message", "-p", "-t", "w", "#{pane_title}"],
                               capture_output=True, text=True).stdout
        assert "pwn" not in title  # the OSC 0 in a process name did not retitle the terminal
        term.send("e")
        wait_for(lambda: feed_and_find("q quit · e back"), timeout=10, what="the events view")
        term.send("q")
        assert term.exit_code() == 0
    finally:
        term.close()
        if tiering is not None:
            tiering.close()
