"""The supervisor's output: every worker's lines with a ``name | `` prefix, plus its own log lines.

Worker output is untrusted (a worker may print process names, paths, anything), so each line goes
through ``safetext.inert`` before it reaches a terminal: an ESC in a process name must not be able
to recolour, retitle or write the clipboard of the user's terminal. Colour only on a terminal, and
never when NO_COLOR is set (https://no-color.org).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from pmshared.safetext import inert

SUPERVISOR = "supervisor"
_RESET = "\033[0m"
# honcho's palette: distinguishable on dark and light backgrounds.
_COLOURS = ["\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[31m", "\033[34m"]
_SUPERVISOR_COLOUR = "\033[1m"
MAX_LINE = 8192  # longer lines are cut (a runaway worker must not make us buffer megabytes)


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Printer:
    """Writes prefixed lines; a closed or broken output never stops the supervisor."""

    def __init__(self, names: list[str], stream: TextIO | None = None, colour: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream) if colour is None else colour
        self.width = max([len(SUPERVISOR), *(len(n) for n in names)])
        self._colour_of = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(names)}
        self._colour_of[SUPERVISOR] = _SUPERVISOR_COLOUR
        self.broken = False

    def prefix(self, name: str) -> str:
        label = f"{name:<{self.width}} |"
        if self.colour:
            return f"{self._colour_of.get(name, '')}{label}{_RESET}"
        return label

    def line(self, name: str, text: str) -> None:
        """One line of a worker's output (untrusted: made inert here)."""
        self._write(f"{self.prefix(name)} {inert(text, limit=MAX_LINE)}\n")

    def system(self, text: str) -> None:
        """One line of the supervisor's own log (timestamped like the workers' logging)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._write(f"{self.prefix(SUPERVISOR)} {stamp} supervisor[{os.getpid()}] {inert(text)}\n")

    def _write(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # EPIPE (the reader went away) or a closed stream: keep supervising without output.
            self.broken = True
