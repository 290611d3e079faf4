"""Notifications through a fake notify-send on PATH (and osascript argument building)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from forensics.notify import Notifier, RateLimiter, build_argv, osascript_argv
from pmshared import procgroup
from pmshared.config import AlertsConfig
from tests.forensics_helpers import FAKE_BIN, live, pause, read_json_lines, rogue, wait_for
from tests.procutil import pid_gone, proc_state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "notify.jsonl"
    monkeypatch.setenv("FAKE_BIN_LOG", str(log))
    return log


def notifier(clock: FakeClock, **alerts: object) -> Notifier:
    return Notifier(AlertsConfig(**alerts), platform="linux", search_path=str(FAKE_BIN), clock=clock)  # type: ignore[arg-type]


def test_burst_of_five_pauses_is_one_notification_then_one_summary(calls: Path) -> None:
    clock = FakeClock()
    n = notifier(clock, rate_limit_s=60, pause_min_duration=1.0)
    for i in range(5):
        n.pause_detected(pause(f"c:{i}", time.time(), duration_ms=2500 + i))
        clock.now += 2
    n.tick()  # still inside the window: nothing more
    assert n.sender.flush()
    got = read_json_lines(calls)
    assert len(got) == 1
    argv = got[0]["argv"]
    assert argv[:3] == ["--app-name=pause-monitor", "--urgency=normal", "--"]
    assert argv[3:] == ["Pause detected", "The machine stalled for 2.5 s"]
    assert n.folded == 4

    clock.now += 60  # the window ended: the four folded pauses become one summary
    n.tick()
    n.tick()
    assert n.sender.flush()
    got = read_json_lines(calls)
    assert len(got) == 2 and got[1]["argv"][-1] == "4 more pauses in the last 60 s"
    n.close()


@pytest.mark.parametrize(
    "alerts", [{"pause_detected": False}, {"pause_min_duration": 5.0}], ids=["switched-off", "too-short"]
)
def test_pause_notification_rules(calls: Path, alerts: dict) -> None:
    n = notifier(FakeClock(), **alerts)
    n.pause_detected(pause("c:1", time.time(), duration_ms=3000))
    n.forensics_completed("b", "cpu", [], 1)  # other kinds still notify
    assert n.sender.flush()
    assert [c["argv"][-2] for c in read_json_lines(calls)] == ["Forensics captured"]
    n.close()


def test_everything_off_when_master_switch_is_off(calls: Path) -> None:
    n = notifier(FakeClock(), enabled=False, elevated_entered=True)
    n.pause_detected(pause("c:1", time.time(), duration_ms=9000))
    for i in range(60):
        n.live_sample(live(2000.0 + i, [rogue(1, "hog", 99, ["cpu"])], tier=3))
    n.forensics_completed("20261125-120301.123-pause", "cpu", [], 1)
    n.tick()
    assert n.sender.flush()
    assert read_json_lines(calls) == [] and n.sent == 0
    n.close()


def test_sustained_critical_fires_once_after_the_duration(calls: Path) -> None:
    n = notifier(FakeClock(), critical_threshold=60, critical_duration=10)
    t = 5000.0
    for i in range(9):  # 8 s: not yet
        n.live_sample(live(t + i, [rogue(3, "hog", 70, ["cpu"])], tier=3))
    n.live_sample(live(t + 9, [rogue(3, "hog", 40, ["cpu"])], tier=2))  # a break resets the clock
    for i in range(10, 30):
        n.live_sample(live(t + i, [rogue(3, "\x1b[31mhog", 80, ["cpu"])], tier=3))
    assert n.sender.flush()
    got = read_json_lines(calls)
    assert len(got) == 1
    assert got[0]["argv"][1] == "--urgency=critical"
    assert got[0]["argv"][-1] == "Score 80 for 10 s; top: ^[[31mhog"  # inert: no raw ESC
    n.close()


def test_elevated_entered_is_optional(calls: Path) -> None:
    for enabled in (False, True):
        n = notifier(FakeClock(), elevated_entered=enabled)
        n.live_sample(live(1.0, [], tier=1))
        n.live_sample(live(2.0, [rogue(1, "x", 40, ["cpu"])], tier=2))
        n.live_sample(live(3.0, [rogue(1, "x", 40, ["cpu"])], tier=2))
        assert n.sender.flush()
        n.close()
    got = read_json_lines(calls)
    assert [c["argv"][-2:] for c in got] == [["Elevated monitoring", "Stress score 40: tier 2"]]


def test_forensics_completed_names_cause_and_culprit_safely(calls: Path) -> None:
    from pmshared import messages as m

    n = notifier(FakeClock())
    culprit = m.Culprit(pid=9, command="<a href='x'>evil</a>\x07", score=80, categories=["cpu"])
    n.forensics_completed("20261125-120301.123-pause", "memory", [culprit], 3)
    assert n.sender.flush()
    (got,) = read_json_lines(calls)
    body = got["argv"][-1]
    assert body == (
        "Cause: memory; top culprit: &lt;a href='x'&gt;evil&lt;/a&gt;^G (3 pauses). "
        "Bundle 20261125-120301.123-pause"
    )
    n.close()


def test_missing_notifier_logs_once_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    n = Notifier(AlertsConfig(rate_limit_s=0), platform="linux", search_path=str(empty), clock=FakeClock())
    with caplog.at_level(logging.INFO, logger="forensics"):
        for i in range(3):
            n.pause_detected(pause(f"c:{i}", time.time(), duration_ms=5000))
    missing = [r for r in caplog.records if "no notify-send found" in r.getMessage()]
    assert len(missing) == 1 and missing[0].levelno == logging.INFO
    assert n.sent == 0
    n.close()


def test_rate_limiter_windows_are_per_kind() -> None:
    limiter = RateLimiter(10)
    assert limiter.admit("pause", 0) and limiter.admit("forensics", 0)
    assert not limiter.admit("pause", 5)
    assert limiter.due_summaries(9) == []
    assert limiter.due_summaries(10) == [("pause", 1)]
    assert not limiter.admit("pause", 15)  # inside the window the summary opened
    assert limiter.admit("forensics", 11)


def test_osascript_gets_the_text_as_arguments_not_as_script() -> None:
    title, body = 'Pause "detected"', 'he said "hi" \\ & end tell'
    argv = osascript_argv("/usr/bin/osascript", title, body, sound=True)
    assert argv == [
        "/usr/bin/osascript",
        "-e", "on run argv",
        "-e", 'display notification (item 2 of argv) with title (item 1 of argv) sound name "Funk"',
        "-e", "end run",
        title, body,
    ]
    assert "sound name" not in " ".join(osascript_argv("/usr/bin/osascript", "t", "b", sound=False))
    argv, tool = build_argv("darwin", "t", "b", sound=False, search_path=str(FAKE_BIN))
    assert tool == "osascript" and (argv is None or argv[-2:] == ["t", "b"])


def test_notify_send_body_starting_with_a_dash_is_text(calls: Path) -> None:
    argv, tool = build_argv("linux", "-t", "--help", sound=False, search_path=str(FAKE_BIN))
    assert tool == "notify-send" and argv is not None
    assert argv[0] == str(FAKE_BIN / "notify-send")
    assert argv[-3:] == ["--", "-t", "--help"]


def test_a_slow_notifier_does_not_block_the_caller(tmp_path: Path, calls: Path) -> None:
    slow_bin = tmp_path / "slow-bin"
    slow_bin.mkdir()
    script = slow_bin / "notify-send"
    script.write_text("#!/bin/sh\nsleep 3\n")
    script.chmod(0o755)
    n = Notifier(AlertsConfig(rate_limit_s=0), platform="linux", search_path=str(slow_bin), clock=FakeClock())
    started = time.monotonic()
    for i in range(3):
        n.pause_detected(pause(f"c:{i}", time.time(), duration_ms=5000))
    assert time.monotonic() - started < 0.5
    wait_for(lambda: n.sent == 3, timeout=2, what="3 submitted")
    n.close()  # kills the running "sleep 3" with its group, drops the two queued
    assert not n.sender._thread.is_alive()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_notifier_group_is_killed_before_its_leader_is_reaped(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """What notify-send leaves running in its group is killed while the exited leader is still an
    unreaped zombie: once reaped, its pid (the group's id) may already be another process's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    straggler_file = tmp_path / "straggler"
    script = bin_dir / "notify-send"
    script.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {straggler_file}\n")
    script.chmod(0o755)
    states: list[str | None] = []
    real_signal_group = procgroup.signal_group

    def spy(pgid: int, sig: int = signal.SIGKILL) -> None:
        states.append(proc_state(pgid))  # "Z": exited, unreaped; None: reaped already
        real_signal_group(pgid, sig)

    monkeypatch.setattr(procgroup, "signal_group", spy)
    n = Notifier(AlertsConfig(rate_limit_s=0), platform="linux", search_path=str(bin_dir), clock=FakeClock())
    try:
        n.pause_detected(pause("c:1", time.time(), duration_ms=5000))
        assert n.sender.flush(10)
        assert states == ["Z"] and n.sender.failed == 0
        straggler = int(straggler_file.read_text())
        wait_for(lambda: pid_gone(straggler), timeout=5, what="the notifier's straggler to die")
    finally:
        n.close()
        if straggler_file.exists():
            try:
                os.kill(int(straggler_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
