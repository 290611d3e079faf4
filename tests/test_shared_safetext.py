"""Untrusted names become inert: no control bytes, no bidi overrides, still recognisable."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.text import Text

from pmshared.safetext import inert

HOSTILE = [
    "\x1b]0;pwn\x07evil",
    "\x1b[31m[b]evil",
    "\x1b]52;c;ZXZpbA==\x07evil",
    "evil\u202etxt.exe",
    "[red]evil[/red]",
    "[link=file:///etc/passwd]evil[/link]",
    "evil\x9b31m",
    "ev\ril\n",
]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_render_inert_and_recognisable(name):
    safe = inert(name)
    assert not CONTROL.search(safe)
    assert "evil" in safe or "ev" in safe
    out = io.StringIO()
    Console(file=out, width=120, color_system=None, force_terminal=False).print(Text(safe))
    printed = out.getvalue()
    assert not CONTROL.search(printed.replace("\n", ""))
    if "[red]" in name:
        assert "[red]evil[/red]" in printed  # markup stays literal text


def test_plain_names_are_untouched_and_limit_truncates():
    assert inert("python3") == "python3"
    assert inert("Lark Helper (Ren") == "Lark Helper (Ren"
    assert inert("résumé-daemon") == "résumé-daemon"
    assert inert("abcdefghij", limit=5) == "abcd…"
    assert inert("\x1b[31m") == "^[[31m"
