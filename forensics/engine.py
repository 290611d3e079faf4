"""What the forensics worker does with each message, without sockets (tests drive it directly).

The worker loop calls ``on_live`` for every LiveSample, ``on_pause`` for every Pause and ``tick``
on every turn; ``take_done`` hands back finished sessions for the loop to send as ForensicsDone
(ZeroMQ sockets never leave the loop's thread). At most one capture session runs at a time; a
pause arriving meanwhile is coalesced into it (see session.py).
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from pmshared import messages as m
from pmshared import paths
from pmshared.config import Config

from forensics import linux_captures, macos_captures
from forensics.notify import Notifier
from forensics.proc_files import ProcReading, ReadingKeeper
from forensics.ring import LiveRing
from forensics.runner import Capture
from forensics.session import CaptureSession, SessionResult
from forensics.suspend_watch import SuspendWatch

log = logging.getLogger("forensics")

# (pause, the /proc reading from before it, bundle dir) -> the captures to run.
PlanBuilder = Callable[[m.Pause, ProcReading | None, Path], list[Capture]]
PROC_REFRESH_S = 2.0


def platform_plan(config: Config, platform: str = sys.platform) -> PlanBuilder:
    if platform.startswith("linux"):
        return lambda pause, before, _dir: linux_captures.plan(pause, config.forensics, before)
    if platform == "darwin":
        return lambda pause, _before, bundle_dir: macos_captures.plan(
            pause, config.forensics, str(bundle_dir), time.time()
        )
    return lambda _pause, _before, _dir: []


class Engine:
    def __init__(
        self,
        config: Config,
        *,
        incarnation: str = "",
        events_dir: Path | None = None,
        platform: str = sys.platform,
        plan: PlanBuilder | None = None,
        notifier: Notifier | None = None,
        counters: Counter[str] | None = None,
    ) -> None:
        self.config = config
        self.incarnation = incarnation
        self.events_dir = events_dir or paths.events_dir()
        self.plan = plan or platform_plan(config, platform)
        self.notifier = notifier if notifier is not None else Notifier(config.alerts, platform=platform)
        self.counters = counters if counters is not None else Counter()
        self.ring = LiveRing(config.sentinel.ring_buffer_seconds)
        self.keeper = ReadingKeeper(PROC_REFRESH_S) if platform.startswith("linux") else None
        self.suspend = SuspendWatch()
        self.session: CaptureSession | None = None
        self._done: queue.Queue[SessionResult] = queue.Queue()

    # -- inputs ----------------------------------------------------------------------------------
    def on_live(self, sample: m.LiveSample) -> None:
        self.counters["live_received"] += 1
        self.ring.push(sample)
        self.notifier.live_sample(sample)

    def on_pause(self, pause: m.Pause) -> str:
        """'started', 'coalesced' or 'disabled'."""
        self.counters["pauses_received"] += 1
        self.suspend.check()
        self.notifier.pause_detected(pause)
        if not self.config.forensics.enabled:
            return "disabled"
        if self.session is not None and self.session.attach(pause):
            self.counters["pauses_coalesced"] += 1
            log.info("pause %s coalesced into the running capture", pause.pause_id)
            return "coalesced"
        before = self.keeper.before(pause.start) if self.keeper else None
        builder = self.plan
        self.session = CaptureSession(
            pause=pause,
            ring_entries=self.ring.freeze(),
            config=self.config,
            plan_factory=lambda bundle_dir: builder(pause, before, bundle_dir),
            events_dir=self.events_dir,
            on_done=self._done.put,
            resume_ago_s=self.suspend.resume_ago(pause.start),
            incarnation=self.incarnation,
            ring_now=self.ring.freeze,
        )
        self.session.start()
        self.counters["captures_started"] += 1
        log.info("pause %s (%.0f ms): capture started", pause.pause_id, pause.duration_ms)
        return "started"

    def tick(self, now_mono: float | None = None) -> None:
        now_mono = time.monotonic() if now_mono is None else now_mono
        if self.keeper is not None:
            self.keeper.maybe_refresh(now_mono)
        if self.suspend.check():
            log.info("resumed after %.1f s asleep", self.suspend.last_sleep_s)
        self.notifier.tick()

    # -- outputs ---------------------------------------------------------------------------------
    def take_done(self) -> list[SessionResult]:
        out = []
        while True:
            try:
                result = self._done.get_nowait()
            except queue.Empty:
                break
            out.append(result)
            self.counters["bundles_written"] += 1
            self.notifier.forensics_completed(
                Path(result.bundle_path).name, result.cause, result.culprits, len(result.pause_ids)
            )
        return out

    def wait_idle(self, timeout: float) -> bool:
        """Block until the running session (if any) finished; for tests and --jsonl mode."""
        if self.session is not None:
            self.session.join(timeout)
            return not self.session.running
        return True

    def shutdown(self, timeout: float = 0.5) -> None:
        """Stop captures (their process groups are killed) and wait briefly for the session."""
        if self.session is not None and self.session.running:
            self.session.stop.set()
            self.session.join(timeout)
        self.notifier.close()
