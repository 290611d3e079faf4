"""Real-time scheduling for the workers on the detection path (collector, scorer, tiering).

Why (issue 16, measured on this 2-core VM, Linux 6.18 with autogroups): during a context-switch
storm (`stress-ng --switch 4`, ~800,000 switches/s) the kernel starves every *other* task group
for seconds at a time. A bare Python loop sleeping 20 ms, in a session of its own (each session is
an autogroup), woke up to 3.3-5.9 s late; the same loop in the storm's own session was never more
than 0.2 ms late. The pipeline's workers each run in their own session, so the collector, the
scorer and tiering all stalled together: 2.5-6.9 s between snapshots, and the storm reached tier 2
only after the stall. Niceness cannot help: it only weighs tasks inside one group (nice -10 and
autogroup nice -10 stalled as long). The real-time class is scheduled before every normal task, so
there the same loop never woke more than 0.2 ms late.

A worker asks for SCHED_RR at ``sampling.realtime_priority`` (1, the lowest, by default; 0 keeps
the normal class). Only processes allowed to (root, CAP_SYS_NICE, or an RLIMIT_RTPRIO at least the
priority) get it; otherwise the worker runs as before and logs one line saying so. The workers
block between samples and use a few % of a core, and a budget of CPU time without blocking
(RLIMIT_RTTIME, ``RT_BUDGET_S``) makes the kernel kill a worker that ever spins, as the supervisor
restarts it; the kernel's own limit (sched_rt_runtime_us, 95 % by default) leaves the rest to
normal tasks in any case.

The collector's pause sentinel goes back to the normal class (``leave_realtime``): it measures
how late an ordinary task wakes up, which is what a pause is.
"""

from __future__ import annotations

import os
import resource

# CPU seconds a real-time worker may use without blocking once: a sample of 1,500 processes takes
# ~0.1 s, so only a loop that never waits reaches it (the kernel then kills the worker).
RT_BUDGET_S = 2.0


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # the calling thread alone


def enter_realtime(priority: int) -> str | None:
    """Put every thread of this process (and so the threads it starts later, which inherit the
    class) in SCHED_RR at ``priority``. None when done or not asked (0); else why not, one line."""
    if priority <= 0:
        return None
    if not hasattr(os, "SCHED_RR") or not hasattr(resource, "RLIMIT_RTTIME"):
        return "real-time scheduling is not available on this platform"
    budget_us = int(RT_BUDGET_S * 1_000_000)
    try:
        resource.setrlimit(resource.RLIMIT_RTTIME, (budget_us, budget_us))
        for tid in _threads():
            os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(priority))
    except PermissionError:
        leave_realtime_all()
        return (f"real-time scheduling (priority {priority}) not permitted: a context-switch storm "
                "can delay this worker by seconds (run as root or with CAP_SYS_NICE, or set "
                "sampling.realtime_priority = 0 to silence this)")
    except (OSError, ValueError) as exc:
        leave_realtime_all()
        return f"real-time scheduling (priority {priority}) failed: {exc}"
    return None


def leave_realtime(tid: int = 0) -> None:
    """Put thread ``tid`` (0: the calling thread) back in the normal class; quietly a no-op where
    that is not possible."""
    if hasattr(os, "SCHED_OTHER") and hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


def leave_realtime_all() -> None:
    for tid in _threads():
        leave_realtime(tid)


def apply_to_worker(worker) -> None:  # a pmshared.runtime.Worker
    """The worker's class per its config; a refusal is one log line (the worker runs on)."""
    why = enter_realtime(worker.config.sampling.realtime_priority)
    if why:
        worker.log.warning("%s", why)
