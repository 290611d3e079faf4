"""A command on a real terminal for screen tests: a private tmux server (``-L``, so nobody else's
sessions are touched), keys sent with send-keys, the screen read with capture-pane.

The same steps as test_cli_watch's tmux test, as a helper: start in a sized window with our
environment, poll the screen with a deadline (no sleeps), record the exit code in a file.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

from tests.procutil import wait_for

REPO = Path(__file__).resolve().parent.parent
ENV_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "PATH", "PAUSE_MONITOR_CONFIG")


class TmuxScreen:
    def __init__(self, tmp_path: Path, pmctl_args: list[str], width: int = 170, height: int = 60,
                 env: dict[str, str] | None = None) -> None:
        source = env if env is not None else os.environ
        # One server per screen: a name reused right after kill-server can meet the old server
        # still shutting down ("server exited unexpectedly").
        self.server = f"pmscreen{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.server]
        self.done = tmp_path / "screen-exit"
        env_words = " ".join(f"{k}={shlex.quote(source[k])}" for k in ENV_VARS if k in source)
        args = " ".join(shlex.quote(a) for a in pmctl_args)
        command = (f"cd {shlex.quote(str(REPO))} && env -u NO_COLOR -u COLUMNS -u LINES {env_words} TERM=xterm-256color "
                   f"{shlex.quote(sys.executable)} -m cli {args}; echo $? > {shlex.quote(str(self.done))}")
        subprocess.run([*self.tmux, "new-session", "-d", "-s", "w", "-x", str(width), "-y", str(height), command],
                       check=True)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", "w"], capture_output=True, text=True).stdout

    def send(self, *keys: str) -> None:
        """tmux key names (Right, PageDown, Enter) or literal text."""
        subprocess.run([*self.tmux, "send-keys", "-t", "w", *keys], check=True)

    def wait_text(self, *texts: str, timeout: float = 15) -> str:
        """The screen once it shows every one of ``texts`` (name one near the bottom too: a
        capture can catch a frame half drawn)."""
        def showing() -> str | None:
            page = self.screen()
            return page if all(text in page for text in texts) else None

        return wait_for(showing, timeout, lambda: f"{texts!r} on the screen; it shows:\n{self.screen()}")

    def exit_code(self, timeout: float = 10) -> int:
        wait_for(lambda: self.done.exists() and self.done.read_text().strip(), timeout, "the command to exit")
        return int(self.done.read_text().strip())

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)
