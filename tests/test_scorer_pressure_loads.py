"""The pressure model on real loads recorded on this 2-core machine (tests/data/loads).

``bench/record_loads.py`` wrote the recordings: the collector's snapshots (system figures plus the
~15 processes worth looking at) taken before and while stress-ng or a light everyday load ran,
and ``index.json`` with the pids of each load's process tree. The machine was shared with other
engineers' test runs: other processes (often a busy ``python``) appear in the recordings, and
the model rightly names them when they held more of the resource than the load did.

Sample 0 of each file is from before the load; sample 1 straddles its start; samples 2.. are
the load running. The pressure model's new per-process fields were measured by the recorder
from /proc (the collector of this branch does not read them yet); the tests without them strip
them, as the collector sends today.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from pmshared import config as config_mod
from pmshared import messages as m
from scorer.pressure import PressureRules, score_pressure

DATA = Path(__file__).resolve().parent / "data" / "loads"
INDEX = json.loads((DATA / "index.json").read_text())
RULES = PressureRules.from_config(config_mod.Config())
NEW_PROCESS_FIELDS = ("cpu_children", "run_delay", "read_bps", "write_bps", "mem_growth", "cgroup")
FIRST_FULL = 2  # index of the first sample wholly under the load

# load -> (the resource it stresses, the category its process must be charged under)
LOADS = {
    "cpu2": ("cpu", "cpu"),  # a hog on every core
    "cpu8": ("cpu", "cpu"),  # 4x oversubscribed: charged to stress-ng, the parent of 8 workers
    "vm2": ("cpu", "cpu"),  # 2 x 2 GiB of 24 GiB with no swap: nothing to reclaim, a CPU load here
    "vm-cgroup": ("cpu", "cpu"),  # 600 MiB limit: workers OOM-killed and restarted, CPU churn
    "mmap-cgroup": ("memory", "mem"),  # file-backed mmap in 300 MiB: reclaim, refaults, stalls
    "hdd2": ("io", "io"),
    "fork4": ("fork", "fork"),
    "switch4": ("csw", "csw"),
}
QUIET = ("idle", "light-python", "light-tar", "light-git")


def recording(name: str, strip: bool = False) -> list[m.Snapshot]:
    snaps = [msgspec.json.decode(line, type=m.Snapshot) for line in (DATA / f"{name}.jsonl").read_bytes().splitlines()]
    if strip:
        snaps = [without_new_fields(s) for s in snaps]
    return snaps


def without_new_fields(snap: m.Snapshot) -> m.Snapshot:
    """The snapshot as this branch's collector sends it: no per-process pressure fields, no
    forks/s or context switches/s."""
    processes = [msgspec.structs.replace(p, **dict.fromkeys(NEW_PROCESS_FIELDS)) for p in snap.processes]
    system = msgspec.structs.replace(snap.system, forks=None, csw=None, run_delay_known=None)
    return msgspec.structs.replace(snap, processes=processes, system=system)


def scored(name: str, strip: bool = False) -> list[tuple[int, dict[str, int], list[m.ProcessScore]]]:
    return [score_pressure(s, RULES) for s in recording(name, strip)]


def load_pids(name: str) -> set[int]:
    return set(INDEX[name]["load_pids"])


def test_the_recordings_are_there_and_small():
    assert set(LOADS) | set(QUIET) <= set(INDEX)
    for name in INDEX:
        snaps = recording(name)
        assert len(snaps) >= 5 and all(len(s.processes) <= 40 for s in snaps)
        assert (DATA / f"{name}.jsonl").stat().st_size < 60_000


@pytest.mark.parametrize("name", list(LOADS))
def test_each_load_escalates_and_its_resource_with_it(name):
    resource, _ = LOADS[name]
    results = scored(name)
    under_load = results[FIRST_FULL:]
    assert all(max_score >= 35 for max_score, _, _ in under_load), [r[0] for r in results]
    assert max(stress.get(resource, 0) for _, stress, _ in under_load) >= 35, [r[1] for r in results]


# The loads issue 16 requires to be named (a hog on every core, an oversubscribed CPU, memory
# pressure that makes the kernel reclaim, heavy io, a fork and a context-switch storm). vm2 is not
# memory pressure here, and its two instances (stress-ng-vm under stress-ng-vm) make no group:
# on this shared machine another engineer's 100 % hog outscored each of its half-core workers.
NAMED = [name for name in LOADS if name != "vm2"]


@pytest.mark.parametrize("name", NAMED)
def test_each_load_is_named_with_the_right_category(name):
    """In most samples where the load's resource is elevated, the top culprit is the load's
    process (or its parent: stress-ng, charged for its workers) under the load's category.
    Where another process tops the list, it accounts for more of the machine's trouble than any
    process of the load: others' work shared this machine, and under the heaviest loads the
    collector's own rates go wrong (a starved collector divides by the wrong interval, see
    issue 16), which the model can bound but not repair."""
    resource, category = LOADS[name]
    pids = load_pids(name)
    elevated = [rogues for _, stress, rogues in scored(name)[FIRST_FULL:] if stress.get(resource, 0) >= 35]
    assert elevated
    top_is_load = 0
    for rogues in elevated:
        top = rogues[0]
        if top.pid in pids and category in top.categories:
            top_is_load += 1
        else:
            assert top.score >= max((r.score for r in rogues if r.pid in pids), default=0)
    assert top_is_load * 2 > len(elevated), f"top culprit is the load in {top_is_load} of {len(elevated)}"


@pytest.mark.parametrize("name", QUIET)
def test_idle_and_light_work_stay_below_elevated(name):
    results = scored(name)
    assert all(max_score < 35 for max_score, _, _ in results), [(r[0], r[1]) for r in results]


def test_vm2_workers_are_listed_for_cpu():
    pids = load_pids("vm2")
    for _, _, rogues in scored("vm2")[FIRST_FULL:]:
        assert any(r.pid in pids and "cpu" in r.categories for r in rogues[:3])


# git status every 0.2 s uses ~2 % of a core in processes too short-lived to sample: under a point.
@pytest.mark.parametrize("name", ["light-python", "light-tar"])
def test_light_work_is_visible_as_a_small_contributor(name):
    """Linear-from-zero ramps: the light load's process shows up with a small score."""
    pids = load_pids(name)
    rogues = [r for _, _, rs in scored(name)[1:] for r in rs if r.pid in pids]
    assert rogues and all(0 < r.score < 35 for r in rogues if r.score)


@pytest.mark.parametrize("name", list(LOADS))
def test_without_the_new_fields_every_load_still_escalates(name):
    results = scored(name, strip=True)[FIRST_FULL:]
    assert all(max_score >= 35 for max_score, _, _ in results), [r[0] for r in results]


# load -> the category it is charged under from what this branch's collector gives: the fork
# storm is a CPU load until forks/s and cpu_children arrive; io falls back to read/write syscalls.
STRIPPED = {"cpu2": "cpu", "cpu8": "cpu", "fork4": "cpu", "hdd2": "io", "mmap-cgroup": "mem"}


@pytest.mark.parametrize("name", list(STRIPPED))
def test_without_the_new_fields_the_load_is_still_named(name):
    pids = load_pids(name)
    results = scored(name, strip=True)[FIRST_FULL:]
    top_is_load = sum(1 for _, _, rogues in results
                      if rogues[0].pid in pids and STRIPPED[name] in rogues[0].categories)
    assert top_is_load * 2 >= len(results), [(rs[0].command, rs[0].categories) for _, _, rs in results]
