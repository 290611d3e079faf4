"""What the forensics worker does with each message, without sockets (tests drive it directly).

The worker loop calls ``on_live`` for every LiveSample, ``on_pause`` for every Pause and ``tick``
on every turn; ``take_done`` hands back finished sessions for the loop to send as ForensicsDone
(ZeroMQ sockets never leave the loop's thread). At most one capture session runs at a time; a
pause arriving meanwhile is coalesced into it (see session.py).

Once per start, SWEEP_DELAY_S in (so pauses queued for this incarnation arrive first), the engine
looks in the database for recent pauses no bundle names (recovery.py): it adopts the bundle of
each that has one on disk, and writes a recovered bundle, one at a time beside the live sessions,
for each that has none.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Callable

from pmshared import messages as m
from pmshared import paths
from pmshared.config import Config

from forensics import linux_captures, macos_captures, recovery
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
SWEEP_DELAY_S = 5.0  # after start, before looking for pauses left without a bundle


def platform_plan(config: Config, platform: str = sys.platform) -> PlanBuilder:
    if platform.startswith("linux"):
        return lambda pause, before, _dir: linux_captures.plan(pause, config.forensics, before)
    if platform == "darwin":
        return lambda pause, _before, bundle_dir: macos_captures.plan(
            pause, config.forensics, str(bundle_dir), time.time()
        )
    return lambda _pause, _before, _dir: []


def recovery_plan(config: Config, platform: str = sys.platform) -> Callable[[m.Pause], list[Capture]]:
    """What is still worth capturing for a pause found without a bundle after a restart."""
    if platform.startswith("linux"):
        return lambda pause: linux_captures.recovery_plan(pause, config.forensics)
    return lambda _pause: []  # macOS: spindump and tailspin describe the moment they run


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
        db_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        sweep: bool = True,
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
        self.clock = clock
        self.db_path = db_path or paths.db_path()
        self.recovery_plan = recovery_plan(config, platform)
        self.recovery: CaptureSession | None = None
        self._to_recover: deque[m.Pause] = deque()
        self.started_mono = clock()
        # None once swept (or never: --jsonl debugging has no database to answer to).
        self._sweep_at: float | None = self.started_mono + SWEEP_DELAY_S if sweep else None
        self._received: set[str] = set()  # pause ids this incarnation got, until the sweep

    # -- inputs ----------------------------------------------------------------------------------
    def on_live(self, sample: m.LiveSample) -> None:
        self.counters["live_received"] += 1
        self.ring.push(sample)
        self.notifier.live_sample(sample)

    def on_pause(self, pause: m.Pause) -> str:
        """'started', 'coalesced' or 'disabled'."""
        self.counters["pauses_received"] += 1
        if self._sweep_at is not None:
            self._received.add(pause.pause_id)
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
            db_path=self.db_path,
            clock=self.clock,
            counters=self.counters,
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
        if self._sweep_at is not None and now_mono >= self._sweep_at:
            self._sweep()
        self._next_recovery()
        self.notifier.tick()

    def _next_recovery(self) -> None:
        if self._to_recover and not (self.recovery is not None and self.recovery.running):
            self._recover(self._to_recover.popleft())

    def _sweep(self) -> None:
        self._sweep_at = None
        if self.config.forensics.enabled:
            pending = recovery.find_pending(self.db_path, self.events_dir, time.time(), self._received)
            self._to_recover.extend(pending.pauses)
            for path in pending.bundles:
                adopted = recovery.adopt(path)
                if adopted is not None:
                    self._done.put(adopted)
        self._received.clear()

    def _recover(self, pause: m.Pause) -> None:
        builder = self.recovery_plan
        self.recovery = CaptureSession(
            pause=pause,
            ring_entries=[],
            config=self.config,
            plan_factory=lambda _bundle_dir: builder(pause),
            events_dir=self.events_dir,
            on_done=self._done.put,
            incarnation=self.incarnation,
            recovered=True,
            db_path=self.db_path,
            clock=self.clock,
            counters=self.counters,
        )
        self.recovery.start()
        self.counters["recoveries_started"] += 1
        log.info("pause %s had no bundle: writing a recovered one", pause.pause_id)

    @property
    def busy(self) -> bool:
        """A session (live or recovered) is running: the loop polls for its result."""
        return any(s is not None and s.running for s in (self.session, self.recovery)) or bool(self._to_recover)

    # -- outputs ---------------------------------------------------------------------------------
    def take_done(self) -> list[SessionResult]:
        out = []
        while True:
            try:
                result = self._done.get_nowait()
            except queue.Empty:
                break
            out.append(result)
            if result.status == "failed":
                self.counters["bundles_failed"] += 1
                continue
            self.counters["bundles_written"] += 1
            if result.recovered:
                continue  # the pause was notified when it happened; no burst of stale alerts now
            self.notifier.forensics_completed(
                Path(result.bundle_path).name, result.cause, result.culprits, len(result.pause_ids)
            )
        return out

    def wait_idle(self, timeout: float) -> bool:
        """Block until the running sessions (if any) finished; for tests and --jsonl mode."""
        deadline = time.monotonic() + timeout
        while True:
            self._next_recovery()
            sessions = [s for s in (self.session, self.recovery) if s is not None and s.running]
            if not sessions and not self._to_recover:
                return True
            for s in sessions:
                s.join(max(deadline - time.monotonic(), 0.0))
            if time.monotonic() >= deadline:
                return not self.busy

    def shutdown(self, timeout: float = 0.5) -> None:
        """Stop captures (their process groups are killed) and wait briefly for the sessions."""
        self._to_recover.clear()
        for session in (self.session, self.recovery):
            if session is not None and session.running:
                session.stop.set()
                session.join(timeout)
        self.notifier.close()
