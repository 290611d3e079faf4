"""The loads of the detection tests and bench leave nothing behind: no process of their group (not
even a zombie), no cgroup. Real processes, a real cgroup, real signals."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.procutil import wait_for
from tests.stressload import (
    Load,
    MemoryCgroup,
    group_members,
    memory_cgroup_missing,
    parallel,
    stress_ng,
    stress_ng_missing,
)

SLEEP = shutil.which("sleep") or "/bin/sleep"


def test_a_parallel_load_stops_with_every_child_killed_and_reaped_by_its_own_shell():
    load = Load(parallel(3, [SLEEP, "60"]))
    try:
        wait_for(lambda: len(load.poll_members()) == 4, 10, "the shell and its three sleeps")
    finally:
        load.stop()
    # Reaped by the shell before it exited, not orphans left as zombies for pid 1.
    assert group_members(load.pgid) == []
    assert load.proc.returncode is not None


def test_a_fork_storm_stops_with_nothing_of_its_group_left(tmp_path):
    if why := stress_ng_missing():
        pytest.skip(why)
    load = Load(stress_ng("--fork", "2", seconds=20, temp_dir=tmp_path))
    try:
        wait_for(lambda: len(load.poll_members()) >= 3, 10, "stress-ng and its fork workers")
    finally:
        load.stop()
    left = group_members(load.pgid)
    if left:  # an orphan SIGKILLed last is pid 1's to reap: give it a moment, then judge
        time.sleep(1.0)
        left = group_members(load.pgid)
    assert left == []


def test_a_memory_cgroup_holds_its_load_and_closing_it_kills_what_is_inside_and_removes_it():
    if why := memory_cgroup_missing():
        pytest.skip(why)
    group = MemoryCgroup(64 << 20)
    load = Load(group.wrap([SLEEP, "60"]))
    try:
        group.holds(load)
        assert group.pids() == [load.proc.pid]
        assert int((group.path / "memory.limit_in_bytes").read_text()) == 64 << 20
        group.close()  # with the load still running, as when a test fails half-way
        assert not group.path.exists()
        assert load.proc.wait(timeout=5) == -9
    finally:
        load.stop()
        if group.path.exists():
            group.close()
