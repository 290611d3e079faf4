"""When to restart a worker that exited, and when to give up on it. Pure logic, no clock of its own.

Rules (issue 4), with times passed in by the caller (monotonic seconds, or a fake clock in tests):
- every restart waits a back-off that starts at ``backoff_initial_s`` and doubles up to
  ``backoff_max_s``;
- only a run of at least ``stable_after_s`` resets the back-off. There is deliberately no
  "start window" after which a process counts as started (supervisord's startsecs): a worker that
  dies after 2 s every time keeps backing off instead of being restarted at full speed forever;
- an exit that would make more than ``max_restarts`` restarts within ``restart_window_s`` marks the
  worker FAILED instead (a visible state; the supervisor keeps the other workers running).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pmshared.config import SupervisorConfig


@dataclass(frozen=True)
class Policy:
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    stable_after_s: float = 10.0
    max_restarts: int = 5
    restart_window_s: float = 60.0

    @classmethod
    def from_config(cls, cfg: SupervisorConfig) -> Policy:
        return cls(
            backoff_initial_s=cfg.backoff_initial_s,
            backoff_max_s=max(cfg.backoff_max_s, cfg.backoff_initial_s),
            stable_after_s=cfg.stable_after_s,
            max_restarts=cfg.max_restarts,
            restart_window_s=cfg.restart_window_s,
        )


@dataclass(frozen=True)
class Restart:
    """Start the worker again ``delay_s`` seconds after its exit."""

    delay_s: float


@dataclass(frozen=True)
class Fail:
    """Give up: the worker stays down until the supervisor is restarted."""

    reason: str


Decision = Restart | Fail


class RestartTracker:
    """The restart history of one worker (one per Procfile entry, kept across its restarts)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._next_delay = policy.backoff_initial_s
        # Times of the exits that led to a restart, pruned to the window: bounded by max_restarts.
        self._recent: deque[float] = deque()

    @property
    def next_delay_s(self) -> float:
        return self._next_delay

    def on_exit(self, started_at: float, exited_at: float) -> Decision:
        """Decide what follows an exit of a run that began at ``started_at``."""
        p = self.policy
        if exited_at - started_at >= p.stable_after_s:
            self._next_delay = p.backoff_initial_s
        while self._recent and self._recent[0] <= exited_at - p.restart_window_s:
            self._recent.popleft()
        if len(self._recent) >= p.max_restarts:
            return Fail(
                f"exited {len(self._recent) + 1} times within {p.restart_window_s:g} s "
                f"(max_restarts = {p.max_restarts})"
            )
        self._recent.append(exited_at)
        delay = self._next_delay
        self._next_delay = min(delay * 2, p.backoff_max_s)
        return Restart(delay)
