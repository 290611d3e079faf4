"""Single key presses from the terminal, without blocking and without echo (cbreak mode).

The terminal's settings are saved on enter and restored on exit whatever happens, so a crash or
Ctrl-C never leaves the user's shell without echo. Off a terminal (pipes, tests) there are no keys.
"""

from __future__ import annotations

import os
import select
import sys


class KeyReader:
    def __init__(self) -> None:
        self.fd: int | None = None
        self._saved: list | None = None

    def __enter__(self) -> KeyReader:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            return self  # no real stdin (CliRunner, closed): no keys
        if not os.isatty(fd):
            return self
        import termios
        import tty

        self._saved = termios.tcgetattr(fd)
        # cbreak: keys arrive one by one, no echo; Ctrl-C still raises KeyboardInterrupt.
        tty.setcbreak(fd, termios.TCSANOW)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None and self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        self.fd = None

    def read(self) -> str:
        """Whatever keys are waiting, '' if none (never waits)."""
        if self.fd is None:
            return ""
        ready, _, _ = select.select([self.fd], [], [], 0)
        if not ready:
            return ""
        try:
            data = os.read(self.fd, 64)
        except OSError:
            return ""
        return data.decode("utf-8", errors="ignore")
