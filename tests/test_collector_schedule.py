"""The Linux backend's read schedule and OS-error translator, on scripted cases without /proc."""

from __future__ import annotations

import errno

import pytest

from collector.procfs_errors import Gone, field_unknown
from collector.procfs_schedule import Reads, plan_reads

QUIET = dict(
    ran=False, stat_changed=False, refresh_due=False, exec_=False, clock_still=False,
    swap_moving=False, young=False, kthread=False, via_schedstat=True,
)  # fmt: skip


def plan(**changes: bool) -> Reads:
    return plan_reads(**{**QUIET, **changes})


def test_nothing_new_settles_without_a_read() -> None:
    assert plan() == Reads(settle=True, status=False, reschedule=False, counters=False, young=False)


def test_a_run_reads_the_counters_but_not_status() -> None:
    r = plan(ran=True, stat_changed=True)
    assert (r.settle, r.status, r.counters, r.reschedule) == (False, False, True, False)


def test_a_changed_stat_alone_is_recorded_without_counters() -> None:
    # rss moved while it slept (reclaim): a new record, but its counters cannot have moved
    r = plan(stat_changed=True)
    assert (r.settle, r.status, r.counters) == (False, False, False)


def test_a_due_refresh_reads_status() -> None:
    r = plan(refresh_due=True)
    assert (r.settle, r.status, r.reschedule) == (False, True, True)
    assert not r.counters  # watched through schedstat: "did not run" is exact
    assert plan(refresh_due=True, via_schedstat=False).counters  # through stat: collect trickles


def test_a_due_refresh_is_put_off_while_the_clock_stood_still() -> None:
    r = plan(refresh_due=True, clock_still=True)
    assert r == Reads(settle=True, status=False, reschedule=True, counters=False, young=False)
    # ...but not while pages move to or from swap: VmSwap can change while it sleeps
    moving = plan(refresh_due=True, clock_still=True, swap_moving=True)
    assert (moving.settle, moving.status) == (False, True)


def test_exec_reads_status() -> None:
    r = plan(stat_changed=True, exec_=True)
    assert (r.status, r.reschedule) == (True, True)


def test_a_young_process_reads_status_on_its_first_run_only() -> None:
    r = plan(ran=True, young=True, clock_still=True)
    assert (r.status, r.counters, r.young, r.reschedule) == (True, True, False, True)
    waiting = plan(young=True)
    assert (waiting.settle, waiting.young) == (True, True)


def test_a_kernel_thread_never_reads_status() -> None:
    r = plan(refresh_due=True, kthread=True)
    assert (r.settle, r.status, r.reschedule) == (False, False, True)
    assert not plan(ran=True, young=True, kthread=True).status


@pytest.mark.parametrize(
    "exc", [ProcessLookupError(errno.ESRCH, "x"), FileNotFoundError(errno.ENOENT, "x")]
)
def test_a_vanished_process_is_gone(exc: OSError) -> None:
    with pytest.raises(Gone):
        field_unknown(exc)
    with pytest.raises(Gone):
        field_unknown(exc, unsupported=True)


def test_denied_leaves_the_field_unknown() -> None:
    field_unknown(PermissionError(errno.EACCES, "x"))
    field_unknown(PermissionError(errno.EACCES, "x"), unsupported=True)


def test_other_errors_are_gone_unless_the_file_may_be_unsupported() -> None:
    exc = OSError(errno.EINVAL, "x")
    with pytest.raises(Gone):
        field_unknown(exc)
    field_unknown(exc, unsupported=True)  # e.g. io without task IO accounting
