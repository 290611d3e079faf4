"""Fixtures every test gets: an isolated home, so no test reads or writes the user's real files.

Each test runs with HOME, XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_RUNTIME_DIR pointing at fresh
temporary directories (the runtime dir short, since Unix socket paths are limited to ~104 bytes),
and PAUSE_MONITOR_CONFIG unset. Child processes started with the default environment inherit it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    runtime = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
    os.chmod(runtime, 0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("PAUSE_MONITOR_CONFIG", raising=False)
    # No test sends to the machine's journald (the event log's entries): a path nobody binds.
    monkeypatch.setenv("PAUSE_MONITOR_JOURNAL_SOCKET", str(runtime / "no-journald"))
    yield home
    shutil.rmtree(runtime, ignore_errors=True)
