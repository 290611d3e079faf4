"""supervisor.slot: a worker slot's transitions on scripted histories (pure: no process, no clock)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pmshared.config import SupervisorConfig
from supervisor.procfile import ProcessEntry
from supervisor.restart_policy import RestartTracker
from supervisor.slot import Slot


def new_slot() -> Slot:
    return Slot(entry=ProcessEntry("w", "python -m w", 1), tracker=RestartTracker(SupervisorConfig()))


def child(pid: int = 4242, started: float = 100.0) -> SimpleNamespace:
    return SimpleNamespace(pid=pid, started_mono=started, started_wall=0.0)


def running(now: float = 100.0) -> Slot:
    slot = new_slot()
    slot.spawned(child(started=now), first_heartbeat_by=now + 13.0)  # type: ignore[arg-type]
    slot.heartbeat(now + 1, allowance_s=3.0)
    return slot


def test_a_spawned_worker_is_starting_until_its_first_heartbeat_then_running():
    slot = new_slot()
    slot.said("error: no database")
    slot.backing_off(restart_at=50.0)
    slot.spawned(child(), first_heartbeat_by=113.0)  # type: ignore[arg-type]
    assert (slot.state, slot.heartbeat_deadline, slot.restart_at, slot.reason) == ("starting", 113.0, None, None)
    assert not slot.hung(112.9) and slot.hung(113.0)
    slot.heartbeat(101.0, allowance_s=3.0)
    assert (slot.state, slot.heartbeat_at, slot.heartbeat_deadline) == ("running", 101.0, 104.0)


def test_a_heartbeat_does_not_save_a_worker_already_being_killed():
    slot = running()
    slot.kill_by(110.0)
    slot.heartbeat(105.0, allowance_s=3.0)
    assert slot.heartbeat_at == 105.0 and slot.heartbeat_deadline == 104.0
    assert not slot.hung(200.0), "a worker being killed is not killed again by the watchdog"
    assert not slot.kill_due(109.9) and slot.kill_due(110.0)


def test_forgiving_a_freeze_only_ever_extends_the_deadline_and_not_for_a_worker_being_killed():
    slot = running()  # deadline 104
    slot.forgive(until=103.0)
    assert slot.heartbeat_deadline == 104.0
    slot.forgive(until=110.0)
    assert slot.heartbeat_deadline == 110.0
    slot.kill_by(111.0)
    slot.forgive(until=120.0)
    assert slot.heartbeat_deadline == 110.0


def test_an_exit_names_how_it_ended_and_the_policy_decides_what_follows():
    slot = running()
    assert slot.exited(-9, stopping=False) == "signal 9 (SIGKILL)"
    assert (slot.child, slot.kill_at, slot.last_exit, slot.state) == (None, None, "signal 9 (SIGKILL)", "running")
    slot.backing_off(restart_at=101.5)
    assert slot.state == "backoff" and not slot.due(101.4) and slot.due(101.5)
    slot.restarting()
    assert slot.restarts == 1 and not slot.tracker.on_probation


def test_a_retry_after_failed_is_one_run_on_probation():
    slot = running()
    slot.exited(1, stopping=False)
    slot.failed("exited 6 times within 60 s", retry_at=400.0)
    assert slot.status(100.0).reason == "exited 6 times within 60 s"
    assert slot.status(100.0).retry_in_s == 300.0
    slot.restarting()
    assert slot.tracker.on_probation and slot.restarts == 1


def test_a_command_that_cannot_start_counts_as_an_exit():
    slot = new_slot()
    assert slot.could_not_start("No such file or directory") == "could not start: No such file or directory"
    assert slot.child is None and slot.last_exit == "could not start: No such file or directory"


def test_a_stop_cancels_restarts_and_pending_kills_and_keeps_failed_visible():
    waiting = new_slot()
    waiting.backing_off(restart_at=5.0)
    assert waiting.stop_requested() is False
    assert (waiting.state, waiting.restart_at) == ("stopped", None)
    failed = new_slot()
    failed.failed("too many exits", retry_at=300.0)
    assert failed.stop_requested() is False and failed.state == "failed"
    alive = running()
    alive.kill_by(108.0)  # the watchdog was terminating it: it now waits for its turn
    assert alive.stop_requested() is True and alive.kill_at is None and alive.state == "running"
    alive.stopping(kill_at=102.0)
    assert (alive.state, alive.kill_at) == ("stopping", 102.0)
    alive.exited(0, stopping=True)
    assert alive.state == "stopped"


@pytest.mark.parametrize(
    ("watchdog", "kill_at", "expected"),
    [(True, None, 104.0), (False, None, None), (True, 102.0, 102.0), (False, 102.0, 102.0)],
)
def test_what_is_due_next(watchdog, kill_at, expected):
    slot = running()  # heartbeat deadline 104
    slot.kill_by(kill_at)
    assert slot.next_due(watchdog=watchdog) == expected


def test_a_worker_in_backoff_is_due_at_its_restart():
    slot = new_slot()
    slot.backing_off(restart_at=7.0)
    assert slot.next_due(watchdog=True) == 7.0


def test_status_carries_the_current_runs_heartbeat_counters_and_a_new_run_starts_empty():
    # The exporter publishes a worker's drop counters from these (issue 20).
    slot = running()
    slot.heartbeat(102.0, allowance_s=3.0, counters={"dropped_raw": 2, "samples": 9})
    assert slot.status(103.0).counters == {"dropped_raw": 2, "samples": 9}
    slot.heartbeat(103.0, allowance_s=3.0)  # a heartbeat read without counters keeps the last ones
    assert slot.status(103.5).counters == {"dropped_raw": 2, "samples": 9}
    slot.spawned(child(pid=4243, started=110.0), first_heartbeat_by=123.0)  # type: ignore[arg-type]
    assert slot.status(111.0).counters == {}
