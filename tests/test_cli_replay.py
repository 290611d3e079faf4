"""pmctl replay TIME --once on a real SQLite file written through the recorder's write path
(storage.apply): the frame at the requested time, marker starts, inert names, one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from pmshared import messages as m
from pmshared.flight_codec import flight_fields
from pmshared import paths, storage
from pmshared.codec import Stamper
from tests.cli_people_helpers import HOSTILE, RECOGNISABLE, DbBuilder, control_bytes, rogue
from tests.tmux_screen import TmuxScreen

REPO = Path(__file__).resolve().parent.parent
T0 = float(int(datetime.now().timestamp()) - 900)  # 15 minutes ago, on a whole second
BUSY_FROM, BUSY_TO = 100, 160  # "hog-now" is busy for this minute of the 5 recorded


def flight_sample(t: float, i: int) -> m.ProcessSamples:
    busy = BUSY_FROM <= i < BUSY_TO
    rogues = [rogue(4242, "hog-now", 80, cpu=99.0)] if busy else []
    if i == 130:
        rogues += [rogue(666 + n, name, 50) for n, name in enumerate(HOSTILE.values())]
    top = [m.ProcessInfo(pid=7, command="quiet-editor", state="sleeping", cpu=1.5, mem=50 << 20),
           m.ProcessInfo(pid=8, command=HOSTILE["title"], state="sleeping", cpu=0.5, mem=1 << 20)]
    return m.ProcessSamples(
        sender="scorer", incarnation="s", seq=i + 1, sent_at=t, timestamp=t, elapsed_ms=1000.0,
        process_count=123 + i, max_score=80 if busy else 3, rogues=rogues, top=top,
        system=m.SystemStats(cpu_count=2, psi_cpu=m.PressureStall(some=40.0 if busy else 0.1)),
        sentinel=m.SentinelStats(tick_ms=20, window_s=60, p99_ms=7.5 if busy else 0.3, interval_max_ms=2.0),
    )


@pytest.fixture
def recorded(isolated_home):
    """Five minutes of flight record from T0, an event over the busy minute and a pause in it."""
    db = DbBuilder(paths.db_path())
    tiering = Stamper("tiering", "tiering-1")
    with db.conn:
        for i in range(300):
            t = T0 + i
            tier = 3 if BUSY_FROM <= i < BUSY_TO else 1
            state = m.TierState(tier=tier, tier_since=T0 + BUSY_FROM if tier == 3 else T0)
            storage.apply(db.conn, tiering(m.FlightSample, **flight_fields(flight_sample(t, i), state)))
    db.event(T0 + BUSY_FROM, [80] * 3, culprit="hog-now", end=T0 + BUSY_TO)
    db.pause(T0 + 130.4, duration_ms=900)
    db.close()
    return isolated_home


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds).isoformat(timespec="seconds")


def clock(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds).strftime("%H:%M:%S")


def replay(*args: str):
    return CliRunner().invoke(app, ["replay", *args, "--once"], env={"COLUMNS": "170"})


def test_the_frame_at_a_time_shows_that_second_as_watch_did(recorded):
    result = replay(at(120))
    out = result.output
    assert result.exit_code == 0, out
    assert "REPLAY" in out and f"recorded {datetime.fromtimestamp(T0 + 120):%Y-%m-%d %H:%M:%S}" in out
    assert "hog-now" in out and "99.0" in out  # the rogue of that second, with its cpu
    assert "quiet-editor" in out  # the busiest processes that were not scored
    assert "3 (critical)" in out and "for 20.0 s" in out  # tier as it stood, for as long as then
    assert "processes 243" in out and "p99 7.5 ms" in out
    assert "(open)" in out  # the event ended at +160: at +120 it was still open


def test_a_quiet_second_does_not_show_the_later_busy_process(recorded):
    out = replay(at(50)).output
    assert "hog-now" not in out and "no rogue processes" in out and "no events recorded yet" in out


def test_clock_time_and_age_forms_start_at_the_sample_before(recorded):
    out = replay(clock(120.5)).output
    assert f"recorded {datetime.fromtimestamp(T0 + 120):%Y-%m-%d %H:%M:%S}" in out
    # T0 was taken when this module was imported, maybe minutes ago in a long run: an age that
    # lands one to two minutes after T0 now, whenever now is (the record spans T0 .. T0 + 5 min).
    minutes_ago = int((datetime.now().timestamp() - T0) // 60) - 1
    assert "REPLAY" in replay(f"{minutes_ago}m ago").output


def test_without_a_time_the_newest_sample_however_old(recorded):
    result = CliRunner().invoke(app, ["replay", "--once"], env={"COLUMNS": "170"})
    assert result.exit_code == 0 and stamp(299) in result.output  # 10 minutes old: still shown
    assert replay("now").exit_code == 1  # "now" itself is past the record's end: its range is named


def test_a_moment_after_the_record_stopped_shows_its_last_sample_and_says_so(recorded):
    out = replay(at(330)).output
    assert stamp(299) in out and f"nothing recorded at {datetime.fromtimestamp(T0 + 330):%Y-%m-%d %H:%M:%S}" in out


def test_marker_starts_land_on_the_sample_that_reports_them(recorded):
    out = replay("event:1").output
    assert f"recorded {datetime.fromtimestamp(T0 + BUSY_FROM):%Y-%m-%d %H:%M:%S}" in out and "at event 1" in out
    out = replay("pause:1").output
    assert f"recorded {datetime.fromtimestamp(T0 + 131):%Y-%m-%d %H:%M:%S}" in out and "at pause 1" in out
    assert "900 ms" in out  # the sentinel panel's last pause is this one


def test_process_names_stay_inert(recorded):
    out = replay(at(130)).output
    assert control_bytes(out) == []
    for name in HOSTILE:
        assert RECOGNISABLE[name] in out, name


@pytest.mark.parametrize(("args", "code", "message"), [
    (["10:61"], 2, "cannot read time '10:61'"),
    (["event:99"], 1, "no event 99 in the database (`pmctl events` lists them)"),
    (["pause:nope"], 1, "no pause nope in the database"),
])
def test_bad_times_and_unknown_ids_are_one_line_errors(recorded, args, code, message):
    result = replay(*args)
    assert result.exit_code == code and result.output.startswith("error: ") and message in result.output
    assert result.output.count("\n") == 1


def test_a_time_outside_the_record_names_the_recorded_range(recorded):
    result = replay(at(-3600))
    first, last = (datetime.fromtimestamp(T0 + s).strftime("%Y-%m-%d %H:%M:%S") for s in (0, 299))
    assert result.exit_code == 1
    asked = datetime.fromtimestamp(T0 - 3600).strftime("%Y-%m-%d %H:%M:%S")
    assert result.output == f"error: no record at {asked}; recorded: {first} to {last}\n"


def test_no_database_and_an_empty_record_say_so(isolated_home):
    result = replay("5m ago")
    assert result.exit_code == 1 and "no database yet" in result.output and "pmctl up" in result.output
    DbBuilder(paths.db_path()).close()
    result = replay("5m ago")
    assert result.exit_code == 1 and "nothing recorded yet" in result.output


def test_history_plot_charts_the_flight_record(recorded):
    result = CliRunner().invoke(app, ["history", "--plot", "--since", at(0), "--until", at(299)],
                                env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    titles = [line for line in result.output.splitlines()
              if line and not line[0].isspace() and not line.startswith("one column")]
    assert titles[:2] == ["stress  max 80, mean 18", "PSI cpu some  max 40 %, mean 8.1 %"]
    assert titles[-1] == "sentinel lateness, worst per sample  max 2 ms, mean 2 ms"


def test_replay_once_as_a_real_process(recorded):
    proc = subprocess.run([sys.executable, "-m", "cli", "replay", at(120), "--once"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "170"})
    assert proc.returncode == 0, proc.stderr
    assert "REPLAY" in proc.stdout and "hog-now" in proc.stdout and proc.stderr == ""


# --------------------------------------------------------------------------- tmux screen test

KEYS = "q quit"  # the last line of a frame: seen, the frame is whole


def stamp(seconds: float) -> str:
    return f"recorded {datetime.fromtimestamp(T0 + seconds):%Y-%m-%d %H:%M:%S}"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_replay_in_tmux_steps_jumps_to_marks_goes_to_a_time_and_quits(recorded, tmp_path):
    term = TmuxScreen(tmp_path, ["replay", at(99)])
    try:
        page = term.wait_text(stamp(99), KEYS)
        assert "REPLAY" in page and "hog-now" not in page and "←/→ sample" in page
        term.send("Right")  # one sample on: the busy minute starts
        page = term.wait_text(stamp(100), KEYS)
        assert "hog-now" in page and control_bytes(page) == []
        term.send("n")  # the event starts at +100 (shown): the next mark is the pause at +130.4
        page = term.wait_text("at pause 1", KEYS)
        assert stamp(131) in page and "900 ms" in page
        term.send("p")
        assert stamp(100) in term.wait_text("at event 1", KEYS)
        term.send("PageDown")
        page = term.wait_text(stamp(160), KEYS)
        assert "no rogue processes" in page  # the busy minute is over (the event still names it)
        term.send("g")
        term.wait_text("go to (")
        term.send("-l", at(130))
        term.send("Enter")
        assert RECOGNISABLE["csi"] in term.wait_text(stamp(130), KEYS)
        term.send("q")
        assert term.exit_code() == 0
    finally:
        term.close()
