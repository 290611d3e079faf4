"""pmctl replay on the real pipeline (`pmctl up`, the real Procfile, a temporary home): a busy
process runs for a few seconds and stops, the collector is stalled into a pause, and then, on a
real terminal (tmux), `pmctl replay <a time the process was busy>` shows that process; → moves one
sample on, n reaches the pause, q quits.
"""

from __future__ import annotations

import re
import shutil
import sys
from datetime import datetime

import pytest

from pmshared import procgroup
from tests.e2e.fault_helpers import run_cli
from tests.e2e.test_db_faults import _stall_collector, _up, _wait_pause_stored
from tests.supervisor_helpers import Pipeline, pipeline, wait_for  # noqa: F401
from tests.tmux_screen import TmuxScreen

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")]

HOG_NAME = "pm-replay-hog"
BUSY = "import sys\nopen('/proc/self/comm', 'w').write(sys.argv[1])\nwhile True:\n    pass\n"
RECORDED = re.compile(r"recorded (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
KEYS = "q quit"
MARK = re.compile(r"\) +at ((?:pause|event) \S+)")  # the header's "(12s ago)  at pause 3"


def newest_frame(pipeline: Pipeline) -> tuple[str, str] | None:
    """(recorded time as shown, the frame) of the newest sample, or None before the first."""
    out = run_cli(pipeline, "replay", "now", "--once")
    found = RECORDED.search(out.stdout) if out.returncode == 0 else None
    return (found[1], out.stdout) if found else None


def busy_rows(frame: str) -> bool:
    """The hog in the frame's rogue or busiest-process table (not merely named by an event)."""
    tables = frame.split("recent events")[0]
    return HOG_NAME in tables


def test_replay_shows_the_process_busy_at_that_time_and_steps_to_the_pause(pipeline: Pipeline, tmp_path):
    _up(pipeline)
    wait_for(lambda: newest_frame(pipeline), 30, "the first flight frame", interval=0.3)
    hog = procgroup.start([sys.executable, "-c", BUSY, HOG_NAME], env=pipeline.env)
    try:
        seen = wait_for(lambda: (f := newest_frame(pipeline)) and busy_rows(f[1]) and f, 30,
                        "a recorded frame with the hog in it", interval=0.3)
    finally:
        procgroup.stop(hog)
    busy_at = seen[0]  # a second the hog was busy, as the header writes it
    # A few quiet seconds on record first, so the pause is not in the sample right after busy_at.
    later = datetime.fromisoformat(busy_at).timestamp() + 5
    wait_for(lambda: (f := newest_frame(pipeline)) and datetime.fromisoformat(f[0]).timestamp() >= later, 30,
             "five more seconds of record", interval=0.3)
    middle = _stall_collector(pipeline)
    pause = _wait_pause_stored(pipeline, middle)
    assert pause["start"] > datetime.fromisoformat(busy_at).timestamp()

    # The header shows whole seconds; the sample was taken within that second: ask for its end.
    term = TmuxScreen(tmp_path, ["replay", busy_at.replace(" ", "T") + ".999"], env=pipeline.env)
    try:
        page = term.wait_text(f"recorded {busy_at}", KEYS)
        assert "REPLAY" in page and busy_rows(page)
        term.send("Right")
        page = wait_for(lambda: (p := term.screen()) and KEYS in p and f"recorded {busy_at}" not in p and p,
                        15, "the next sample")
        assert datetime.fromisoformat(RECORDED.search(page)[1]) > datetime.fromisoformat(busy_at)
        # n visits the marks after it in order (an event the hog opened may come first): the
        # pause is among the next few.
        visited: list[str] = []
        while f"pause {pause['id']}" not in visited and len(visited) < 5:
            term.send("n")
            page = wait_for(lambda: (p := term.screen()) and KEYS in p and (m := MARK.search(p))
                            and m[1] not in visited[-1:] and p, 15,
                            lambda: f"a mark after {visited}; the screen:\n{term.screen()}")
            visited.append(MARK.search(page)[1])
        assert visited[-1] == f"pause {pause['id']}", visited
        # The sample that reports it: taken within a second before the pause's start up to two after
        # its end. The header shows whole seconds, so the sample was taken in [shown, shown + 1):
        # a fresh-clone run caught a sample shown as 494 for a pause starting at 495.017.
        shown = datetime.fromisoformat(RECORDED.search(page)[1]).timestamp()
        assert pause["start"] - 1 < shown + 1 and shown <= pause["end"] + 2, (shown, pause["start"], pause["end"])
        term.send("q")
        assert term.exit_code() == 0
    finally:
        term.close()
