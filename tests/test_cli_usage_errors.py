"""A usage mistake on the `pmctl` command line is one inert line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.supervisor_helpers import REPO


def pmctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["events", "--limit", "abc"], "error: pmctl events: Invalid value for '--limit' / '-n': 'abc'"),
        (["events", "--bogus"], "error: pmctl events: No such option: --bogus"),
        (["nosuch"], "error: pmctl: No such command 'nosuch'."),
        (["pauses", "--limit", "-5"], "error: pmctl pauses: Invalid value for '--limit'"),
    ],
)
def test_usage_mistakes_are_one_line(args: list[str], says: str):
    out = pmctl(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(says), lines[0]
    assert "Traceback" not in out.stderr and "╭" not in out.stderr


def test_what_was_typed_stays_inert():
    out = pmctl("events", "--limit", "\x1b[31mred\x07[bold]x[/bold]")
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr


def test_no_arguments_still_shows_the_help():
    out = pmctl()
    assert out.returncode == 2
    assert "Usage: pmctl" in out.stdout + out.stderr and "events" in out.stdout + out.stderr
