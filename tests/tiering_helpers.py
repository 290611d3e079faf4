"""Test helpers for the scorer and tiering tests: message factories and worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import zmq

from pmshared import messages as m
from pmshared.codec import Stamper

REPO = Path(__file__).resolve().parent.parent
GIB = 1024**3
# burner_snapshot's scores (55, 65) are the seed model's: tests that rely on them select it.
SEED_MODEL = '[scoring]\nmodel = "seed"\n'

T = TypeVar("T")


def proc(pid: int = 100, command: str = "p", state: str = "sleeping", **fields) -> m.ProcessInfo:
    return m.ProcessInfo(pid=pid, command=command, state=state, **fields)


def snapshot(
    processes: list[m.ProcessInfo],
    stamp: Stamper | None = None,
    timestamp: float = 1_700_000_000.0,
    **fields,
) -> m.Snapshot:
    stamp = stamp or Stamper("collector", "test-collector")
    defaults = dict(
        timestamp=timestamp,
        elapsed_ms=1000.0,
        interval_ms=1000.0,
        platform="linux",
        process_count=len(processes),
        processes=processes,
        system=m.SystemStats(cpu_count=2),
    )
    defaults.update(fields)
    return stamp(m.Snapshot, **defaults)


def samples(max_score: int, timestamp: float, stamp: Stamper | None = None, rogues=None) -> m.ProcessSamples:
    stamp = stamp or Stamper("scorer", "test-scorer")
    if rogues is None:
        rogues = [
            m.ProcessScore(
                pid=7, command="burner", cpu=float(max_score), state="running", mem=0, cmprs=None,
                pageins=None, csw=None, sysbsd=None, threads=1, score=max_score, categories=["cpu"],
            )
        ]
    return stamp(
        m.ProcessSamples,
        timestamp=timestamp,
        elapsed_ms=1000.0,
        process_count=100,
        max_score=max_score,
        rogues=rogues,
    )


def burner_snapshot(stamp: Stamper, timestamp: float, *, critical: bool = False) -> m.Snapshot:
    """One process that scores 55 (tier 2) or 65 (tier 3) under the seed model's default weights."""
    hot = proc(
        pid=4242, command="burner", state="running", cpu=400.0, mem=8 * GIB, pageins=1000.0,
        csw=100_000.0 if critical else 10.0,
    )
    return snapshot([proc(pid=1, command="init", cpu=0.1, mem=10 << 20), hot], stamp, timestamp)


def quiet_snapshot(stamp: Stamper, timestamp: float) -> m.Snapshot:
    return snapshot([proc(pid=1, command="init", cpu=0.1, mem=10 << 20)], stamp, timestamp)


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def start_worker(name: str, *args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", name, *args],
        cwd=REPO,
        env=env if env is not None else dict(os.environ),
        **popen,
    )


@contextmanager
def workers(*names: str, env: dict[str, str] | None = None) -> Iterator[dict[str, subprocess.Popen]]:
    """Start workers (stderr to a pipe, for the test to read); always kill and reap them."""
    started: dict[str, subprocess.Popen] = {}
    try:
        for name in names:
            started[name] = start_worker(name, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        yield started
    finally:
        for child in started.values():
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
            if child.stderr:
                child.stderr.close()


def stop(child: subprocess.Popen, timeout: float = 5.0) -> float:
    """SIGTERM a worker; seconds until it was gone (the caller asserts the bound)."""
    began = time.monotonic()
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=timeout)
    return time.monotonic() - began


def receive_until(
    sock: zmq.Socket,
    decode: Callable[[bytes], T],
    condition: Callable[[T], bool],
    deadline_s: float = 10.0,
    on_idle: Callable[[], None] | None = None,
) -> tuple[T, list[T]]:
    """Receive and decode until ``condition`` holds; (the match, everything received).

    ``on_idle`` runs whenever nothing arrived within a short poll (e.g. to send another input
    while the pipeline is still connecting); it is not a sleep: any message ends the wait.
    """
    seen: list[T] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if sock.poll(100, zmq.POLLIN):
            msg = decode(sock.recv())
            seen.append(msg)
            if condition(msg):
                return msg, seen
        elif on_idle is not None:
            on_idle()
    raise AssertionError(f"condition not met within {deadline_s} s; received {len(seen)} message(s)")
