"""The exporter's CPU series of the monitor's own processes counts their children, live and reaped
(exporter/machine.py WithChildren): a real parent with a real busy child."""

from __future__ import annotations

import os
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
