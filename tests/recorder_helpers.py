"""Helpers for the storage and recorder tests: record factories, a temp home, the recorder process.

Nothing here sleeps to synchronise: ``wait_for`` polls a condition against a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pmshared import messages as m
from pmshared import paths, storage
from pmshared.codec import Stamper
from tests.procutil import wait_for  # noqa: F401 - re-exported to the tests

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- records


def rogue(pid: int, command: str, score: int, **fields: Any) -> m.ProcessScore:
    base = dict(cpu=float(score), state="running", mem=100 << 20, cmprs=None, pageins=1.0, csw=10.0,
                sysbsd=None, threads=4, categories=["cpu"])
    base.update(fields)
    return m.ProcessScore(pid=pid, command=command, score=score, **base)


def process_samples(timestamp: float, rogues: list[m.ProcessScore], seq: int = 1) -> m.ProcessSamples:
    return m.ProcessSamples(
        sender="scorer", incarnation="scorer-inc", seq=seq, sent_at=timestamp, timestamp=timestamp,
        elapsed_ms=1000.0, process_count=600, max_score=max((r.score for r in rogues), default=0),
        rogues=rogues,
    )


class Tiering:
    """Builds the records one tiering incarnation would send (consecutive seq numbers)."""

    def __init__(self, incarnation: str = "tiering-A", start: float = 1_700_000_000.0) -> None:
        self.incarnation = incarnation
        self.stamp = Stamper("tiering", incarnation)
        self.t = start
        self.events = 0

    def started(self) -> m.TieringStarted:
        return self.stamp(m.TieringStarted)

    def new_key(self) -> str:
        self.events += 1
        return f"{self.incarnation}:{self.events}"

    def opened(self, key: str, start: float, tier: int = 2, score: int = 40) -> m.EventOpened:
        return self.stamp(m.EventOpened, event_key=key, start=start, tier=tier, score=score)

    def sample(self, key: str, event_start: float, timestamp: float, rogues: list[m.ProcessScore],
               tier: int = 3) -> m.EventSample:
        return self.stamp(m.EventSample, event_key=key, event_start=event_start, tier=tier,
                          action="tier2_peak" if tier == 2 else None,
                          samples=process_samples(timestamp, rogues))

    def culprits(self, key: str, event_start: float, *tally: tuple[int, str, int, int, list[str]]) -> m.EventCulprits:
        """``tally``: (pid, command, score_sum, peak, categories), largest sum first."""
        return self.stamp(m.EventCulprits, event_key=key, event_start=event_start, culprits=[
            m.EventCulprit(pid=pid, command=command, score_sum=total, peak=peak, samples=1, categories=cats)
            for pid, command, total, peak, cats in tally])

    def closed(self, key: str, start: float, end: float, peak_score: int, peak_tier: int = 3) -> m.EventClosed:
        return self.stamp(m.EventClosed, event_key=key, start=start, end=end, peak_score=peak_score,
                          peak_tier=peak_tier)


def apply_all(conn, records) -> None:
    """Store ``records`` in one transaction, the way the recorder's batch does."""
    with conn:
        for record in records:
            storage.apply(conn, record)


def pause(pause_id: str, start: float, duration_ms: float = 1500.0, seq: int = 1) -> m.Pause:
    return m.Pause(sender="collector", incarnation=pause_id.split(":")[0], seq=seq, sent_at=start,
                   pause_id=pause_id, start=start, end=start + duration_ms / 1000, duration_ms=duration_ms,
                   expected_ms=50.0, suspended_ms=0.0)


def forensics_done(pause_ids: list[str], bundle_path: str, seq: int = 1, sent_at: float = 1_700_000_000.0,
                   culprit: str = "hog") -> m.ForensicsDone:
    return m.ForensicsDone(
        sender="forensics", incarnation="forensics-inc", seq=seq, sent_at=sent_at, pause_ids=pause_ids,
        bundle_path=bundle_path, cause="cpu",
        artifacts=[m.Artifact(name="ps", ok=True, path="ps.txt", exit_code=0, duration_ms=12.5, bytes=2048),
                   m.Artifact(name="spindump", ok=False, ran=False, skipped_reason="not on Linux")],
        culprits=[m.Culprit(pid=42, command=culprit, score=90, categories=["cpu"])],
        evidence=m.Evidence(cpu_busy_pct=99.0),
    )


# --------------------------------------------------------------------------- processes


class TempHome:
    """The test's isolated home (conftest's env) plus a fast-heartbeat config for the children.

    Built inside the test, so the recorder child and the test's own sockets see the same
    XDG_RUNTIME_DIR and XDG_DATA_HOME.
    """

    def __init__(self, root: Path, config: str = "") -> None:
        self.root = root
        self.config_path = root / "config.toml"
        self.config_path.write_text("[supervisor]\nheartbeat_interval_s = 0.2\n" + config)
        self.env = {**os.environ, "PAUSE_MONITOR_CONFIG": str(self.config_path), "PYTHONUNBUFFERED": "1"}
        self.db_path = paths.db_path()
        self.socket = paths.socket_path("record")


class RecorderProcess:
    """``python -m recorder`` as a child; ``stop()`` always reaps it."""

    def __init__(self, home: TempHome, *args: str) -> None:
        self.home = home
        self.log_path = home.root / f"recorder-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder", *args], cwd=REPO, env=home.env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"recorder exited with {self.proc.returncode}: {self.log()}")
            return self.home.socket.exists()

        wait_for(ready, timeout, what="the recorder's socket")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
