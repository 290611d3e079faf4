"""Pure parts of the supervisor: Procfile parsing, the restart policy on scripted histories (a fake
clock: times are plain numbers, nothing sleeps), the output printer, the instance lock."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from cli import procfile
from cli.output import Printer
from cli.restart_policy import Fail, Policy, Restart, RestartTracker
from cli.supervisor_lock import AlreadyRunning, InstanceLock, holder_pid

# ================================================================================= Procfile


def test_procfile_parses_names_commands_and_line_numbers():
    text = "# pipeline\n\ncollector: python -m collector\n  # indented comment\nscorer:python -m scorer --x 'a b'\n"
    entries = procfile.parse(text)
    assert [(e.name, e.command, e.line) for e in entries] == [
        ("collector", "python -m collector", 3),
        ("scorer", "python -m scorer --x 'a b'", 5),
    ]
    assert entries[1].argv() == [sys.executable, "-m", "scorer", "--x", "a b"]


def test_procfile_keeps_other_commands_and_only_replaces_a_leading_python():
    (entry,) = procfile.parse("w: /usr/bin/env python -c pass\n")
    assert entry.argv() == ["/usr/bin/env", "python", "-c", "pass"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: x\nthis is not an entry\n", "line 2: expected `name: command`"),
        ("a: x\nb:\n", "line 2: b: empty command"),
        ("a: x\n\nb: y\na: z\n", "line 4: duplicate name 'a' (first defined on line 1)"),
        ("a: echo 'unbalanced\n", "line 1: a: cannot split command"),
        ("-a: x\n", "line 1: expected `name: command`"),
        ("# only comments\n\n", "no processes defined"),
    ],
)
def test_procfile_errors_name_the_line(text, expected):
    with pytest.raises(procfile.ProcfileError) as err:
        procfile.parse(text, "P")
    assert f"P: {expected}" in str(err.value)


def test_procfile_reports_every_bad_line_at_once():
    with pytest.raises(procfile.ProcfileError) as err:
        procfile.parse("a: x\nbad one\nb: y\nb: z\nworse\n", "P")
    assert [p.split(":")[0] for p in err.value.problems] == ["line 2", "line 4", "line 5"]


def test_procfile_select_rejects_unknown_names():
    entries = procfile.parse("a: x\nb: y\nc: z\n")
    assert [e.name for e in procfile.select(entries, ["c", "a"])] == ["a", "c"]
    assert procfile.select(entries, None) == entries
    with pytest.raises(ValueError, match="unknown process name.*nope"):
        procfile.select(entries, ["a", "nope"])


def test_procfile_is_found_in_a_checkout_and_when_installed(tmp_path: Path):
    # The real checkout: next to the cli package.
    assert procfile.find_default() == Path(__file__).resolve().parent.parent / "Procfile"
    # Installed: site-packages has no Procfile; the data file is under <prefix>/share/pause-monitor.
    site_packages = tmp_path / "lib" / "site-packages"
    (site_packages / "cli").mkdir(parents=True)
    prefix = tmp_path / "prefix"
    with pytest.raises(procfile.ProcfileError, match="no Procfile found"):
        procfile.find_default(site_packages / "cli", str(prefix))
    installed = prefix / "share" / "pause-monitor" / "Procfile"
    installed.parent.mkdir(parents=True)
    installed.write_text("a: x\n")
    assert procfile.find_default(site_packages / "cli", str(prefix)) == installed


def test_the_real_procfile_lists_the_five_workers():
    entries = procfile.load(procfile.find_default())
    assert [e.name for e in entries] == ["collector", "scorer", "tiering", "recorder", "forensics"]
    assert all(e.argv()[:2] == [sys.executable, "-m"] for e in entries)


# ================================================================================= restart policy

POLICY = Policy(backoff_initial_s=0.5, backoff_max_s=4.0, stable_after_s=10.0, max_restarts=5, restart_window_s=60.0)


def run_history(tracker: RestartTracker, runs: list[float], start: float = 1000.0):
    """Each run lasts ``runs[i]`` seconds; the next starts after the decided delay.
    Returns the decisions (the fake clock is the running ``now``)."""
    now = start
    decisions = []
    for ran in runs:
        started, now = now, now + ran
        decision = tracker.on_exit(started, now)
        decisions.append(decision)
        if isinstance(decision, Restart):
            now += decision.delay_s
    return decisions


def test_backoff_doubles_up_to_the_cap():
    tracker = RestartTracker(Policy(backoff_initial_s=0.5, backoff_max_s=4.0, max_restarts=100, restart_window_s=60))
    decisions = run_history(tracker, [0.1] * 7)
    assert [d.delay_s for d in decisions] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_backoff_keeps_growing_for_a_worker_that_passed_any_start_window():
    # Dies after 2 s each time: supervisord would call it "started" and restart it at full speed.
    tracker = RestartTracker(Policy(backoff_initial_s=0.5, backoff_max_s=30, stable_after_s=10, max_restarts=100))
    decisions = run_history(tracker, [2.0] * 5)
    assert [d.delay_s for d in decisions] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_a_stable_run_resets_the_backoff():
    tracker = RestartTracker(Policy(backoff_initial_s=0.5, backoff_max_s=30, stable_after_s=10, max_restarts=100,
                                    restart_window_s=30))
    decisions = run_history(tracker, [1, 1, 1, 10.0, 1, 9.99, 1])
    assert [d.delay_s for d in decisions] == [0.5, 1.0, 2.0, 0.5, 1.0, 2.0, 4.0]


def test_too_many_restarts_in_the_window_fail():
    tracker = RestartTracker(POLICY)
    decisions = run_history(tracker, [0.0] * 6)
    assert all(isinstance(d, Restart) for d in decisions[:5])
    assert isinstance(decisions[5], Fail)
    assert "6 times within 60 s" in decisions[5].reason


def test_restarts_spread_beyond_the_window_never_fail():
    tracker = RestartTracker(Policy(backoff_initial_s=0.5, backoff_max_s=1, stable_after_s=100, max_restarts=2,
                                    restart_window_s=60))
    # An exit every ~31 s: never more than 2 inside any 60 s window.
    decisions = run_history(tracker, [30.0] * 20)
    assert all(isinstance(d, Restart) for d in decisions)
    # ... while the same exits every ~11 s do exceed it.
    tracker = RestartTracker(tracker.policy)
    decisions = run_history(tracker, [10.0] * 4)
    assert isinstance(decisions[-1], Fail)


def test_policy_from_config_uses_the_supervisor_section():
    from pmshared.config import SupervisorConfig

    p = Policy.from_config(SupervisorConfig(backoff_initial_s=2, backoff_max_s=1, max_restarts=7))
    assert (p.backoff_initial_s, p.backoff_max_s, p.max_restarts) == (2, 2, 7)


# ================================================================================= output


def test_printer_prefixes_and_makes_worker_output_inert():
    out = io.StringIO()
    printer = Printer(["collector", "scorer"], out, colour=False)
    printer.line("scorer", "evil \x1b]52;c;AAAA\x07 [bold]x[/bold]")
    assert out.getvalue() == "scorer     | evil ^[]52;c;AAAA^G [bold]x[/bold]\n"


def test_printer_colours_only_on_a_terminal_and_respects_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = Tty()
    Printer(["a"], tty).line("a", "x")
    assert tty.getvalue().startswith("\x1b[")
    plain = io.StringIO()
    Printer(["a"], plain).line("a", "x")
    assert "\x1b" not in plain.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    Printer(["a"], tty).line("a", "x")
    assert tty.getvalue() == f"{'a':<10} | x\n"  # padded to the width of "supervisor"


def test_printer_survives_a_closed_output():
    out = io.StringIO()
    printer = Printer(["a"], out, colour=False)
    out.close()
    printer.line("a", "x")
    printer.system("still fine")
    assert printer.broken


# ================================================================================= lock


def test_lock_is_exclusive_names_the_holder_and_leaves_nothing():
    first = InstanceLock()
    first.acquire()
    try:
        assert holder_pid() == os.getpid()
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
            InstanceLock().acquire()
    finally:
        first.release()
    assert not first.path.exists()
    assert holder_pid() is None
    again = InstanceLock()
    again.acquire()
    again.release()
