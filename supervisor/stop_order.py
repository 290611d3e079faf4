"""The ordered stop as a pure sequence: which worker to signal, and when. No clock, no processes.

Workers stop one at a time, in Procfile order, each only after the ones before it have exited (or
been SIGKILLed), so what a producer sends on its way out still finds its consumer running. The
stop is bounded by the grace period: each worker, when its turn comes, gets an equal share of
what is left of it and is SIGKILLed when its share runs out; the next one is then signalled at
once. A worker that is not alive when its turn comes is skipped. When the grace period is over (or
``hurry`` was called: a second Ctrl-C / SIGTERM), everything still alive is SIGKILLed at once.

The supervisor calls ``step`` on every loop turn with the time and who is alive, and carries out
the actions it returns; see supervisor/daemon.py.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Union


@dataclass(frozen=True)
class Term:
    """Its turn: SIGTERM it now, SIGKILL it at ``kill_at`` (its ``share_s`` of the grace period)."""

    name: str
    kill_at: float
    share_s: float


@dataclass(frozen=True)
class Kill:
    """It did not stop within its ``share_s``: SIGKILL it now (the next one follows)."""

    name: str
    share_s: float


@dataclass(frozen=True)
class KillAll:
    """The grace period is over: SIGKILL ``names`` (all still alive) now; ``unsignalled``: those
    of them whose turn had not come."""

    names: tuple[str, ...]
    unsignalled: tuple[str, ...]


Action = Union[Term, Kill, KillAll]


class StopOrder:
    def __init__(self, names: list[str], now: float, grace_s: float) -> None:
        """``names``: the workers alive when the stop began, in Procfile order."""
        self._names = list(names)
        self._queue: deque[str] = deque(names)  # still to be signalled
        self._stage: str | None = None  # the worker being waited for
        self._stage_kill_at = 0.0
        self._stage_share_s = 0.0
        self._kill_all_at: float | None = now + grace_s  # None once everything was killed

    @property
    def kill_all_at(self) -> float | None:
        """When the grace period ends (everything still alive is SIGKILLed); None once it did."""
        return self._kill_all_at

    def hurry(self, now: float) -> None:
        """A second signal: do not wait out the grace period."""
        if self._kill_all_at is not None:
            self._kill_all_at = now

    def step(self, now: float, alive: Callable[[str], bool]) -> list[Action]:
        """What to do now; ``alive(name)``: the worker has not been reaped yet."""
        if self._kill_all_at is not None and now >= self._kill_all_at:
            return [self._kill_all(alive)]
        actions: list[Action] = []
        stage = self._stage
        if stage is not None and alive(stage):
            if now < self._stage_kill_at:
                return []
            # Reaped when it is gone; one stuck in the kernel is killed again with the rest.
            actions.append(Kill(stage, self._stage_share_s))
        self._stage = None
        while self._queue:
            name = self._queue.popleft()
            if alive(name):  # else it exited while it waited for its turn
                actions.append(self._term(name, now, alive))
                break
        return actions

    def _term(self, name: str, now: float, alive: Callable[[str], bool]) -> Term:
        assert self._kill_all_at is not None
        stages = 1 + sum(alive(queued) for queued in self._queue)
        left = self._kill_all_at - now
        self._stage = name
        self._stage_share_s = left / stages
        # Written so that the last worker's share ends exactly with the grace period.
        self._stage_kill_at = self._kill_all_at - left * (stages - 1) / stages
        return Term(name, self._stage_kill_at, self._stage_share_s)

    def _kill_all(self, alive: Callable[[str], bool]) -> KillAll:
        queued = set(self._queue)
        self._queue.clear()
        self._stage = None
        self._kill_all_at = None
        left = tuple(n for n in self._names if alive(n))
        return KillAll(left, tuple(n for n in left if n in queued))
