"""The exporter's CPU series of the monitor's own processes counts their children, live and reaped
(exporter/machine.py WithChildren): a real parent with a real busy child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from exporter.machine import WithChildren, cpu_seconds
from pmshared.proc_children import live_children, parent_of
from tests.recorder_helpers import wait_for

# A parent that forks a child which burns ~0.4 s of CPU and then sleeps; on a line on stdin the
# parent kills and reaps it, says so, and waits for another line. The parent itself only sleeps.
PARENT = """
import os, signal, sys, time
pid = os.fork()
if pid == 0:
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
    while True:
        time.sleep(60)
print(pid, flush=True)
sys.stdin.readline()
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
print("reaped", flush=True)
sys.stdin.readline()
"""


def test_a_process_is_counted_with_its_live_child_and_the_sum_never_drops_when_it_is_reaped():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        cpu_of = WithChildren()
        wait_for(lambda: (cpu_seconds(child) or 0) >= 0.3, 10, lambda: "the child's CPU")
        own, live = cpu_of(parent.pid, False), cpu_of(parent.pid)
        assert own is not None and own < 0.2  # the parent only slept
        assert live is not None and live >= own + 0.3, (own, live)
        parent.stdin.write("\n")  # the parent kills and reaps the child
        parent.stdin.flush()
        assert parent.stdout.readline() == "reaped\n" and cpu_seconds(child) is None
        after = cpu_of(parent.pid)
        assert after is not None and after >= live - 0.011, (live, after)  # one clock tick of rounding
    finally:
        parent.kill()
        parent.wait()
    assert cpu_of(parent.pid) is None  # gone: no figure, and its children forgotten


def test_children_are_found_by_their_ppid_whatever_they_call_themselves():
    # A name with spaces and parentheses, as anyone may choose: the fields count from the last ")".
    child = subprocess.Popen([sys.executable, "-c", "open('/proc/self/comm', 'w').write('x) 1 2 (y')\n"
                              "print(flush=True)\nimport sys; sys.stdin.readline()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()  # named by now
        assert (child.pid, "x) 1 2 (y") in live_children([os.getpid()])[os.getpid()]
        assert parent_of(child.pid) == os.getpid()
    finally:
        child.kill()
        child.wait()
    assert parent_of(child.pid) is None


# A parent with no child yet; on a line on stdin it forks one that burns ~0.4 s and sleeps.
LATE_PARENT = """
import os, sys, time
print(flush=True)
sys.stdin.readline()
pid = os.fork()
if pid == 0:
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
sys.stdin.readline()
"""


def test_a_child_born_after_the_first_look_is_counted_once_the_children_are_looked_for_again():
    # The exporter may scrape before the collector forks its sentinel process.
    now = [0.0]
    cpu_of = WithChildren(refresh_s=60.0, clock=lambda: now[0])
    parent = subprocess.Popen([sys.executable, "-c", LATE_PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    child = None
    try:
        parent.stdout.readline()
        before = cpu_of(parent.pid)  # no child yet
        parent.stdin.write("\n")
        parent.stdin.flush()
        child = int(parent.stdout.readline())
        wait_for(lambda: (cpu_seconds(child) or 0) >= 0.3, 10, lambda: "the child's CPU")
        assert cpu_of(parent.pid) < before + 0.2  # within refresh_s: the children not looked for yet
        now[0] = 60.0
        assert cpu_of(parent.pid) >= before + 0.3  # looked for again: the live child counts
    finally:
        if child is not None:
            os.kill(child, signal.SIGKILL)  # the parent's zombie until the parent goes, then init's
        parent.kill()
        parent.wait()
