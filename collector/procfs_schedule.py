"""Which of a process's files to read this sample: the Linux backend's read schedule, pure.

The backend has already read the one small file that tells whether the process ran (schedstat,
or stat for a multi-threaded process) and stat. What else it reads depends only on what it
knows, which ``plan_reads`` takes as plain flags, so the schedule is tested on scripted cases
without /proc:

- status (uid, VmSwap) when its refresh is due or the process exec'd, unless its CPU clock has
  not moved since status was last read and no page moves to or from swap (a process that did not
  run cannot have changed its uid or exec'd, and its VmSwap stands): the refresh is then put off
  a period, without a read; and on a young process's first run (daemons drop privileges early);
  never for a kernel thread (no status worth reading: root's, no address space);
- the counters (switches, system calls, io) when it ran, or on a status refresh of a process
  watched through stat (less than a clock tick of CPU may hide counts a refresh collects);
- nothing at all when it did not run, no refresh is due and stat did not change: it settles
  (the same process with zero rates).
"""

from __future__ import annotations

from typing import NamedTuple


class Reads(NamedTuple):
    """What to do for one process this sample."""

    settle: bool  # nothing new: keep it with zero rates, read nothing more
    status: bool  # read status (uid, VmSwap) now
    reschedule: bool  # the status refresh is done (or put off): the next one is a period away
    counters: bool  # read the counters (context switches, system calls, io bytes, run delay)
    young: bool  # still waiting for its first run (status is read then)


def plan_reads(
    *,
    ran: bool,
    stat_changed: bool,
    refresh_due: bool,
    exec_: bool,
    clock_still: bool,
    swap_moving: bool,
    young: bool,
    kthread: bool,
    via_schedstat: bool,
) -> Reads:
    """The reads for one process, from what is known about it this sample.

    ``ran``: it ran since the last sample (schedstat changed, or stat's CPU ticks moved);
    ``stat_changed``: its stat line differs from the last one; ``refresh_due``: its periodic
    status refresh is due; ``exec_``: its name changed (exec); ``clock_still``: on a live /proc,
    its CPU clock has not moved since status was last read; ``swap_moving``: /proc/vmstat shows
    pages moving to or from swap; ``young``: born since the first snapshot and not yet run;
    ``kthread``: a kernel thread; ``via_schedstat``: watched through schedstat (single-threaded).
    """
    refresh = refresh_due or exec_
    # A cold status read costs ~28 us and about 1 in refresh_every processes is due each sample:
    # a refresh that cannot find anything new is put off instead.
    put_off = refresh and clock_still and not swap_moving
    if put_off:
        refresh = False
    if ran and young:
        refresh, young = True, False
    if not ran and not refresh and not stat_changed:
        return Reads(settle=True, status=False, reschedule=put_off, counters=False, young=young)
    return Reads(
        settle=False,
        status=refresh and not kthread,
        reschedule=refresh or put_off,
        counters=ran or (refresh and not via_schedstat),
        young=young,
    )
