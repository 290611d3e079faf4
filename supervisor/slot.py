"""One Procfile entry across all its incarnations: its state and the only code that changes it.

A slot is ``starting`` from its spawn to its first heartbeat, then ``running``; after an exit it is
``backoff`` (a restart is due at ``restart_at``) or ``failed`` (one more try at ``restart_at``);
``stopping`` once the supervisor's stop has signalled it, and ``stopped`` after. The supervisor
decides *when* (its clock, its restart policy, its stop order); the methods here are the
transitions, so each field is written in one place. The fields stay public for reading
(`pmctl status`, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pmshared import messages as m
from supervisor.child import Child, describe_exit
from supervisor.procfile import ProcessEntry
from supervisor.restart_policy import RestartTracker
from supervisor.worker_reason import reason_in


@dataclass
class Slot:
    entry: ProcessEntry
    tracker: RestartTracker
    state: m.WorkerRunState = "stopped"
    child: Child | None = None
    restarts: int = 0
    restart_at: float | None = None  # monotonic, while in back-off or FAILED
    heartbeat_at: float | None = None  # monotonic time the current child's last heartbeat was read
    heartbeat_deadline: float = 0.0  # monotonic; past it the watchdog kills
    kill_at: float | None = None  # monotonic: SIGKILL the group if still alive then
    last_exit: str | None = None
    detail: str = ""  # why it is FAILED
    reason: str | None = None  # the last error line of the current (or last) run
    counters: dict[str, int] = field(default_factory=dict)  # the current run's last heartbeat's

    @property
    def name(self) -> str:
        return self.entry.name

    # -- a run begins and ends -------------------------------------------------------------------
    def spawned(self, child: Child, first_heartbeat_by: float) -> None:
        self._new_run()
        self.child = child
        self.state = "starting"
        self.heartbeat_deadline = first_heartbeat_by

    def could_not_start(self, why: str) -> str:
        """The command did not start: that counts as an exit (so a typo ends FAILED, not in a loop)."""
        self._new_run()
        self.last_exit = f"could not start: {why}"
        return self.last_exit

    def _new_run(self) -> None:
        self.restart_at = None
        self.heartbeat_at = None
        self.kill_at = None
        self.reason = None
        self.counters = {}

    def exited(self, returncode: int, *, stopping: bool) -> str:
        """The child was reaped; how it ended (``code 1``, ``signal 9 (SIGKILL)``)."""
        self.child = None
        self.kill_at = None
        self.last_exit = describe_exit(returncode)
        if stopping:
            self.state = "stopped"
        return self.last_exit

    def backing_off(self, restart_at: float) -> None:
        self.state = "backoff"
        self.restart_at = restart_at

    def failed(self, why: str, retry_at: float) -> None:
        self.state = "failed"
        self.detail = why
        self.restart_at = retry_at

    def due(self, now: float) -> bool:
        """Is its restart (or FAILED retry) due?"""
        return self.child is None and self.restart_at is not None and now >= self.restart_at

    def restarting(self) -> None:
        """Its restart is due (see ``due``); a retry after FAILED is one run on probation."""
        if self.state == "failed":
            self.tracker.on_retry()
        self.restarts += 1

    def said(self, line: str) -> None:
        """A line of its output: the last one that says why it is unhealthy is kept."""
        reason = reason_in(line)
        if reason is not None:
            self.reason = reason

    # -- heartbeats and the watchdog -------------------------------------------------------------
    def heartbeat(self, now: float, allowance_s: float, counters: dict[str, int] | None = None) -> None:
        self.heartbeat_at = now
        if counters is not None:
            self.counters = counters
        if self.kill_at is None:  # one being killed is not saved by a last heartbeat
            self.heartbeat_deadline = now + allowance_s
            if self.state == "starting":
                self.state = "running"

    def forgive(self, until: float) -> None:
        """The machine was frozen, this worker with it: its silence until then does not count."""
        if self.child is not None and self.kill_at is None:
            self.heartbeat_deadline = max(self.heartbeat_deadline, until)

    def hung(self, now: float) -> bool:
        return self.child is not None and self.kill_at is None and now >= self.heartbeat_deadline

    def kill_due(self, now: float) -> bool:
        return self.child is not None and self.kill_at is not None and now >= self.kill_at

    def kill_by(self, at: float | None) -> None:
        """SIGKILL its group at ``at`` if it is still alive then (None: no kill pending)."""
        self.kill_at = at

    # -- the supervisor's stop -------------------------------------------------------------------
    def stop_requested(self) -> bool:
        """No more restarts or pending kills; True if there is a child left to stop."""
        self.restart_at = None
        self.kill_at = None  # one the watchdog is already terminating waits for its turn too
        if self.child is None and self.state != "failed":
            self.state = "stopped"
        return self.child is not None

    def stopping(self, kill_at: float) -> None:
        """Signalled by the stop; SIGKILLed at ``kill_at`` if still alive then."""
        self.state = "stopping"
        self.kill_at = kill_at

    # -- reading ---------------------------------------------------------------------------------
    def next_due(self, watchdog: bool) -> float | None:
        """The earliest time something is due for it: a restart, a kill, or (with ``watchdog``)
        its heartbeat deadline."""
        due = [t for t in (self.restart_at, self.kill_at) if t is not None]
        if self.kill_at is None and self.child is not None and watchdog:
            due.append(self.heartbeat_deadline)
        return min(due, default=None)

    def status(self, now: float) -> m.WorkerStatus:
        child = self.child
        unhealthy = self.state in ("failed", "backoff")
        return m.WorkerStatus(
            name=self.entry.name,
            state=self.state,
            pid=child.pid if child else None,
            started_at=child.started_wall if child else None,
            restarts=self.restarts,
            last_heartbeat_age_s=(
                round(now - self.heartbeat_at, 3) if child and self.heartbeat_at is not None else None
            ),
            last_exit=self.last_exit,
            uptime_s=round(max(now - child.started_mono, 0.0), 3) if child else None,
            reason=(self.reason or (self.detail if self.state == "failed" else None)) if unhealthy else None,
            counters=dict(self.counters),
            retry_in_s=(
                round(max(0.0, self.restart_at - now), 1)
                if self.state == "failed" and self.restart_at is not None else None
            ),
        )
