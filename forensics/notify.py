"""Desktop notifications: which events notify, how often, and through which tool.

Rules (each switchable in ``[alerts]``, all off when ``alerts.enabled`` is false), as the seed:
- ``pause_detected``: a pause of at least ``pause_min_duration`` seconds;
- ``critical_stress``: the live max score at or above ``critical_threshold`` for
  ``critical_duration`` seconds without a break (once per stretch);
- ``elevated_entered``: the tier rising from 1 to 2 or 3 (off by default);
- ``forensics_completed``: a bundle written.

Rate limit (new): per kind, the first event of a window notifies at once and starts a window of
``rate_limit_s``; later events in the window are folded and, when the window ends, one summary
("4 more pauses …") is sent. A burst of pauses is therefore one notification while it lasts.

Delivery: Linux ``notify-send`` (libnotify) found on PATH; macOS ``osascript``. Text from the
outside (process names, bundle names) goes through ``inert()``; for notify-send the body is also
HTML-escaped, since libnotify renders a markup subset (links!) in bodies. For osascript the texts
are passed as arguments to the script's ``run`` handler instead of being spliced into AppleScript
source, so no quoting can be broken. Commands run on one sender thread with a timeout, never on
the worker's loop. A missing notifier is logged once and otherwise ignored.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from pmshared import messages as m
from pmshared import procgroup
from pmshared.config import AlertsConfig
from pmshared.safetext import inert

from forensics.runner import resolve

log = logging.getLogger("forensics")

SEND_TIMEOUT_S = 5.0
EXIT_POLL_S = 0.01  # how often the sender looks whether the command has exited
NOTIFY_SEND = "notify-send"
OSASCRIPT = "/usr/bin/osascript"
APP_NAME = "pause-monitor"
MAC_SOUND = "Funk"  # the seed's


# --------------------------------------------------------------------------- commands


def notify_send_argv(program: str, title: str, body: str, urgency: str = "normal") -> list[str]:
    # Imported here, not at the top: html.entities costs the long-running worker ~0.5 MB and is
    # needed only when a notification is sent on Linux.
    import html

    # "--" ends the options: a body starting with "-" is text, not a flag.
    return [program, f"--app-name={APP_NAME}", f"--urgency={urgency}", "--", title, html.escape(body, quote=False)]


def osascript_argv(program: str, title: str, body: str, sound: bool) -> list[str]:
    statement = "display notification (item 2 of argv) with title (item 1 of argv)"
    if sound:
        statement += f' sound name "{MAC_SOUND}"'
    return [program, "-e", "on run argv", "-e", statement, "-e", "end run", title, body]


def build_argv(
    platform: str, title: str, body: str, *, sound: bool, urgency: str = "normal", search_path: str | None = None
) -> tuple[list[str] | None, str]:
    """(argv, tool name); argv None when the platform's notifier is not installed."""
    if platform == "darwin":
        program = resolve(OSASCRIPT) or resolve("osascript", search_path)
        return (osascript_argv(program, title, body, sound) if program else None), "osascript"
    program = resolve(NOTIFY_SEND, search_path)
    return (notify_send_argv(program, title, body, urgency) if program else None), NOTIFY_SEND


# --------------------------------------------------------------------------- rate limit


@dataclass
class _Window:
    until: float = 0.0
    folded: int = 0
    summary_extra: dict[str, float] = field(default_factory=dict)


class RateLimiter:
    """Per kind: the first event notifies; the rest of the window is folded into one summary."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}

    def admit(self, kind: str, now: float) -> bool:
        w = self._windows.setdefault(kind, _Window())
        if now >= w.until and w.folded == 0:
            w.until = now + self.window_s
            return True
        w.folded += 1
        return False

    def due_summaries(self, now: float) -> list[tuple[str, int]]:
        """Kinds whose window ended with folded events: (kind, count). Starts a new window."""
        out = []
        for kind, w in self._windows.items():
            if w.folded and now >= w.until:
                out.append((kind, w.folded))
                w.folded = 0
                w.until = now + self.window_s  # a steady stream gives one message per window
        return out


# --------------------------------------------------------------------------- sender


class Sender:
    """Runs notifier commands one at a time on a daemon thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[list[str] | None] = queue.Queue(maxsize=64)
        self._lock = threading.Lock()  # orders "start a command" against "close"
        self._closing = False
        self._current: subprocess.Popen[bytes] | None = None
        self.failed = 0
        self._failure_logged = False
        self._thread = threading.Thread(target=self._loop, name="notify-sender", daemon=True)
        self._thread.start()

    def submit(self, argv: list[str]) -> bool:
        try:
            self._queue.put_nowait(argv)
            return True
        except queue.Full:
            return False

    def _loop(self) -> None:
        while True:
            argv = self._queue.get()
            try:
                if argv is None or self._closing:
                    return
                self._run(argv)
            finally:
                self._queue.task_done()

    def _run(self, argv: list[str]) -> None:
        with self._lock:
            if self._closing:
                return
            try:
                # Own process group: close() and the timeout kill it with its children.
                proc = procgroup.start(argv)
            except OSError as exc:
                self._failed(argv, str(exc))
                return
            self._current = proc
        error = None
        if not self._wait_exited(proc):
            error = f"no answer within {SEND_TIMEOUT_S:g}s"
        with self._lock:
            self._current = None  # close() leaves it alone from here: it is about to be reaped
            if proc.returncode is None:
                # Still unreaped: kill what it left running in its group now, never after the
                # reaping, when its pid (the group's id) may be someone else's.
                procgroup.signal_group(proc.pid)
        code = proc.wait()
        if error is None and code != 0:
            error = f"exit status {code}"
        if error:
            self._failed(argv, error)

    def _wait_exited(self, proc: subprocess.Popen[bytes]) -> bool:
        """Until the command exits (left unreaped) or SEND_TIMEOUT_S passes; whether it exited.
        Looked at under the lock, so close() never signals a group whose leader was reaped."""
        deadline = time.monotonic() + SEND_TIMEOUT_S
        while True:
            with self._lock:
                if procgroup.exited(proc):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(EXIT_POLL_S)

    def _failed(self, argv: list[str], error: str) -> None:
        self.failed += 1
        # e.g. notify-send without a desktop session: say so once, not every pause.
        level = logging.DEBUG if self._failure_logged else logging.WARNING
        log.log(level, "notification via %s failed: %s", argv[0], error)
        self._failure_logged = True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted has run (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 0.5) -> None:
        """Stop the thread; pending notifications are dropped, a running one is killed."""
        with self._lock:
            self._closing = True
            current = self._current
            if current is not None and current.returncode is None:  # unreaped: its group is its own
                procgroup.signal_group(current.pid)
        try:
            self._queue.put_nowait(None)  # wake the thread if it waits; if full it wakes anyway
        except queue.Full:
            pass
        self._thread.join(timeout)


# --------------------------------------------------------------------------- notifier

_KIND_TEXT = {
    "pause": ("Pause detected", "{n} more pauses in the last {w:.0f} s"),
    "critical": ("Critical system stress", "critical stress continued ({n} more alerts folded)"),
    "elevated": ("Elevated monitoring", "entered elevated {n} more times in the last {w:.0f} s"),
    "forensics": ("Forensics captured", "{n} more bundles written in the last {w:.0f} s"),
}


class Notifier:
    def __init__(
        self,
        config: AlertsConfig,
        *,
        platform: str = sys.platform,
        search_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sender: Sender | None = None,
    ) -> None:
        self.config = config
        self.platform = platform
        self.search_path = search_path
        self.clock = clock
        self.limiter = RateLimiter(config.rate_limit_s)
        self.sender = sender or Sender()
        self.sent = 0
        self.folded = 0
        self._missing_logged = False
        self._critical_since: float | None = None
        self._critical_fired = False
        self._last_tier = 1

    # -- rules -----------------------------------------------------------------------------------
    def pause_detected(self, pause: m.Pause) -> None:
        if not (self.config.enabled and self.config.pause_detected):
            return
        seconds = pause.duration_ms / 1000.0
        if seconds < self.config.pause_min_duration:
            return
        self._notify("pause", f"The machine stalled for {seconds:.1f} s")

    def live_sample(self, sample: m.LiveSample) -> None:
        """Feed every live sample: sustained critical score and tier rises."""
        now = sample.samples.timestamp
        score = sample.samples.max_score
        if score >= self.config.critical_threshold:
            if self._critical_since is None:
                self._critical_since = now
            lasted = now - self._critical_since
            if not self._critical_fired and lasted >= self.config.critical_duration:
                self._critical_fired = True
                if self.config.enabled and self.config.critical_stress:
                    top = max(sample.samples.rogues, key=lambda r: r.score, default=None)
                    who = f"; top: {inert(top.command, limit=40)}" if top else ""
                    self._notify("critical", f"Score {score} for {lasted:.0f} s{who}", urgency="critical")
        else:
            self._critical_since = None
            self._critical_fired = False
        tier = sample.state.tier
        if tier >= 2 and self._last_tier == 1 and self.config.enabled and self.config.elevated_entered:
            self._notify("elevated", f"Stress score {score}: tier {tier}")
        self._last_tier = tier

    def forensics_completed(self, bundle_name: str, cause: str, culprits: list[m.Culprit], pauses: int) -> None:
        if not (self.config.enabled and self.config.forensics_completed):
            return
        top = f"; top culprit: {inert(culprits[0].command, limit=40)}" if culprits else ""
        many = f" ({pauses} pauses)" if pauses > 1 else ""
        self._notify("forensics", f"Cause: {cause}{top}{many}. Bundle {inert(bundle_name, limit=60)}")

    def tick(self) -> None:
        """Send the summaries of windows that ended (call from the worker loop)."""
        for kind, count in self.limiter.due_summaries(self.clock()):
            title, text = _KIND_TEXT[kind]
            self._deliver(title, text.format(n=count, w=self.limiter.window_s))

    # -- delivery --------------------------------------------------------------------------------
    def _notify(self, kind: str, body: str, urgency: str = "normal") -> None:
        if not self.limiter.admit(kind, self.clock()):
            self.folded += 1
            return
        self._deliver(_KIND_TEXT[kind][0], body, urgency)

    def _deliver(self, title: str, body: str, urgency: str = "normal") -> None:
        argv, tool = build_argv(
            self.platform, title, body, sound=self.config.sound, urgency=urgency, search_path=self.search_path
        )
        if argv is None:
            if not self._missing_logged:
                self._missing_logged = True
                log.info("no %s found: desktop notifications are off", tool)
            return
        if self.sender.submit(argv):
            self.sent += 1

    def close(self) -> None:
        self.sender.close()
