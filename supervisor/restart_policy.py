"""When to restart a worker that exited, and when to give up on it. Pure logic, no clock of its own.

Rules (issue 4), with times passed in by the caller (monotonic seconds, or a fake clock in tests):
- every restart waits a back-off that starts at ``backoff_initial_s`` and doubles up to
  ``backoff_max_s``;
- only a run of at least ``stable_after_s`` resets the back-off. There is deliberately no
  "start window" after which a process counts as started (supervisord's startsecs): a worker that
  dies after 2 s every time keeps backing off instead of being restarted at full speed forever;
- an exit that would make more than ``max_restarts`` restarts within ``restart_window_s`` marks the
  worker FAILED instead (a visible state; the supervisor keeps the other workers running);
- FAILED is not forever: the supervisor starts the worker again ``failed_retry_s`` later (a cause
  outside the worker, such as a database someone moved aside or a disk that was full, may be gone
  by then) and calls ``on_retry``. That retry is one run on probation: an exit before
  ``stable_after_s`` makes the worker FAILED again at once (no new burst of quick restarts every
  few minutes); a stable run returns it to the ordinary rules.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pmshared.config import SupervisorConfig


@dataclass(frozen=True)
class Restart:
    """Start the worker again ``delay_s`` seconds after its exit."""

    delay_s: float


@dataclass(frozen=True)
class Fail:
    """Give up for now: the worker stays down for ``retry_after_s``, then gets one more run."""

    reason: str
    retry_after_s: float


Decision = Restart | Fail


class RestartTracker:
    """The restart history of one worker (one per Procfile entry, kept across its restarts)."""

    def __init__(self, policy: SupervisorConfig) -> None:
        self.policy = policy  # the [supervisor] section: its back-off and restart-limit keys
        self._backoff_max_s = max(policy.backoff_max_s, policy.backoff_initial_s)
        self._next_delay = policy.backoff_initial_s
        # Times of the exits that led to a restart, pruned to the window: bounded by max_restarts.
        self._recent: deque[float] = deque()
        self._on_probation = False  # the current run is a retry after FAILED

    @property
    def on_probation(self) -> bool:
        return self._on_probation

    @property
    def next_delay_s(self) -> float:
        return self._next_delay

    def on_exit(self, started_at: float, exited_at: float) -> Decision:
        """Decide what follows an exit of a run that began at ``started_at``."""
        p = self.policy
        ran = exited_at - started_at
        if ran >= p.stable_after_s:
            self._next_delay = p.backoff_initial_s
            self._on_probation = False
        if self._on_probation:
            return Fail(f"exited again {ran:.1f} s after its retry", p.failed_retry_s)
        while self._recent and self._recent[0] <= exited_at - p.restart_window_s:
            self._recent.popleft()
        if len(self._recent) >= p.max_restarts:
            return Fail(
                f"exited {len(self._recent) + 1} times within {p.restart_window_s:g} s "
                f"(max_restarts = {p.max_restarts})",
                p.failed_retry_s,
            )
        self._recent.append(exited_at)
        delay = self._next_delay
        self._next_delay = min(delay * 2, self._backoff_max_s)
        return Restart(delay)

    def on_retry(self) -> None:
        """The supervisor starts a FAILED worker again: a clean history, one run on probation."""
        self._recent.clear()
        self._next_delay = self.policy.backoff_initial_s
        self._on_probation = True
