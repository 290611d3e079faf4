"""Helpers for the forensics and notification tests: message builders, fake executables, polling,
and a real forensics worker process in the test's temporary home."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from pmshared import messages as m
from tests.procutil import pid_gone, wait_for  # noqa: F401 - re-exported to the tests

REPO = Path(__file__).resolve().parent.parent
FAKE_BIN = Path(__file__).resolve().parent / "fake_bin"


def ensure_fakes_executable() -> None:
    """Checkouts may lose the executable bit; the fakes need it to be run like real tools."""
    for path in FAKE_BIN.rglob("*"):
        if path.is_file() and not path.name.endswith(".py"):
            mode = path.stat().st_mode
            if not mode & stat.S_IXUSR:
                path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


ensure_fakes_executable()


def read_json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- messages

_seq = iter(range(1, 1_000_000))


def env(sender: str = "test") -> dict[str, object]:
    return {"sender": sender, "incarnation": f"{sender}-inc", "seq": next(_seq), "sent_at": time.time()}


def rogue(pid: int, command: str, score: int, categories: list[str], state: str = "running") -> m.ProcessScore:
    return m.ProcessScore(
        pid=pid, command=command, cpu=50.0, state=state, mem=100 << 20, cmprs=None, pageins=0.0,
        csw=10.0, sysbsd=None, threads=4, score=score, categories=sorted(categories),
    )


def system(**figures: object) -> m.SystemStats:
    base: dict[str, object] = {"cpu_count": 2}
    base.update(figures)
    return m.SystemStats(**base)  # type: ignore[arg-type]


def live(timestamp: float, rogues: list[m.ProcessScore], sys_stats: m.SystemStats | None = None, tier: int = 1) -> m.LiveSample:
    samples = m.ProcessSamples(
        **env("scorer"),
        timestamp=timestamp,
        elapsed_ms=1000.0,
        process_count=200,
        max_score=max((r.score for r in rogues), default=0),
        rogues=rogues,
        system=sys_stats,
    )
    return m.LiveSample(**env("tiering"), samples=samples, state=m.TierState(tier=tier))


def pause(
    pause_id: str,
    start: float,
    duration_ms: float = 1500.0,
    *,
    suspended_ms: float = 0.0,
    processes: list[m.ProcessInfo] | None = None,
    sys_stats: m.SystemStats | None = None,
) -> m.Pause:
    return m.Pause(
        **env("collector"),
        pause_id=pause_id,
        start=start,
        end=start + duration_ms / 1000.0,
        duration_ms=duration_ms,
        expected_ms=50.0,
        suspended_ms=suspended_ms,
        processes=processes,
        system=sys_stats,
    )


def processes() -> list[m.ProcessInfo]:
    return [
        m.ProcessInfo(pid=1, command="init", state="sleeping", cpu=0.0),
        m.ProcessInfo(pid=4242, command="hog", state="running", cpu=190.0, mem=1 << 30),
        m.ProcessInfo(pid=4243, command="CodeMeter", state="stuck", cpu=1.0),
        m.ProcessInfo(pid=4244, command="\x1b]52;c;evil\x07name", state="sleeping", cpu=0.5),
    ]


# --------------------------------------------------------------------------- the worker process


def child_env(**extra: str) -> dict[str, str]:
    """The test's isolated environment (conftest sets HOME/XDG_*), plus ``extra``."""
    out = dict(os.environ)
    out.update(extra)
    return out


def start_worker(module: str, environ: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> float | None:
    """SIGTERM and wait; returns seconds to exit (None if it had to be killed). Always reaps."""
    if proc.poll() is not None:
        return 0.0
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def kill_listed(pids_file: Path) -> None:
    """Cleanup for the hanging fakes: SIGKILL the pids they wrote down, if still running."""
    if not pids_file.exists():
        return
    for pid in (int(p) for p in pids_file.read_text().split()):
        if not pid_gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
