"""Culprit ranking, suspects, the ring buffer, and the standalone --jsonl mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from forensics import culprits
from forensics.ring import LiveRing, window
from pmshared import messages as m
from tests.forensics_helpers import REPO, child_env, live, pause, processes, rogue, system


def info(pid: int, command: str, cpu: float | None = 0.0, *, ppid: int = 1, state: str = "sleeping",
         **figures: object) -> m.ProcessInfo:
    return m.ProcessInfo(pid=pid, ppid=ppid, command=command, state=state, cpu=cpu, **figures)  # type: ignore[arg-type]


# Issue 16's recorded chrt stall on a 2-core machine, as the snapshot spanning it reads: two
# SCHED_FIFO busy loops (children of the shell 900) took both cores; the ring had only score-0
# rogues (pid 1, rcu_preempt, pmctl, collector, tiering) and those became the culprits.
SUPERVISOR = 500
CHRT_STALL = [
    info(1, "process_api", 0.4),
    info(12, "rcu_preempt", 0.3, ppid=2),
    info(SUPERVISOR, "pmctl", 1.2, ppid=900),
    info(501, "collector", 9.5, ppid=SUPERVISOR, cgroup="/pm.slice"),
    info(502, "scorer", 3.1, ppid=SUPERVISOR),
    info(503, "tiering", 0.8, ppid=SUPERVISOR),
    info(900, "bash", 0.0, ppid=1),
    info(901, "busy-loop", 97.6, ppid=900, state="running", cgroup="/user.slice/loops"),
    info(902, "busy-loop", 96.9, ppid=900, state="running", cgroup="/user.slice/loops"),
    info(903, "idle-daemon", 0.0),
]


def test_the_busy_loops_of_a_cpu_stall_come_first_and_the_pipeline_by_what_it_used() -> None:
    report = culprits.identify([live(1.0, [rogue(1, "process_api", 0, ["cpu"])])], CHRT_STALL, [], 5,
                               cause="cpu", cpu_count=2, pipeline={SUPERVISOR, 501, 502, 503})
    assert report.source == "stall"
    assert [(c.pid, c.score) for c in report.culprits] == [(901, 49), (902, 48), (501, 5), (502, 2), (500, 1)]
    top = report.culprits[0]
    assert (top.categories, top.ppid, top.cgroup) == (["cpu"], 900, "/user.slice/loops")
    # Processes that consumed nothing are no culprits, whatever the ring said.
    assert {1, 903} & {c.pid for c in report.culprits} == set()
    d = {e.pid: e for e in report.entries()}
    assert d[901].cpu_pct == 97.6 and d[901].pipeline is False and d[501].pipeline is True
    assert "not measured" in str(d[901].cpu_children_note)  # cpu_children None: said, not guessed


def entry(c: culprits.Consumption) -> culprits.CulpritEntry:
    """The culprits.json entry of one ranked process."""
    culprit = m.Culprit(pid=c.process.pid, command=c.process.command, score=c.score, categories=[])
    return culprits.culprit_entry(culprit, 0, c, set())


def test_exited_children_are_charged_to_their_parent() -> None:
    forker = info(70, "make", 4.0, cpu_children=150.0, ppid=1)
    worker = info(71, "cc1", 40.0, ppid=70)
    ranked = culprits.consumption([forker, worker], cpu_count=2, cause="cpu")
    assert [(c.process.pid, c.score) for c in ranked] == [(70, 77), (71, 20)]
    assert ranked[0].categories == ["cpu", "fork"] and ranked[1].categories == ["cpu"]
    assert entry(ranked[0]).cpu_children_note == culprits.CHILDREN_NOTE


def test_cpu_above_the_hardware_is_clipped_to_the_machine() -> None:
    # The collector stopped for 0.5 s read 744 % on 2 cores (its rates over the wrong interval).
    (c,) = culprits.consumption([info(501, "collector", 744.0)], cpu_count=2, cause="unknown")
    assert (c.cpu_pct, c.score, c.clipped) == (200.0, 100, True)
    assert entry(c).clipped == "CPU above what the cores allow, clipped to the machine"


def test_readers_refaulting_through_read_hold_the_memory_not_a_small_grower() -> None:
    # A memory pause in a memory-limited cgroup (issue 16's memory row): the readers' page cache
    # is reclaimed and read back, ~35 major faults/s, resident memory shrinking. By growth alone
    # whoever grew held all of "mem": here a process growing 70 MB/s (above the 64 MB/s floor).
    readers = [info(10, "pm-memthrash", 66.0, pageins=34.0, mem_growth=-10e6, read_bps=500e6),
               info(11, "pm-memthrash", 66.0, pageins=39.0, mem_growth=-1e6, read_bps=455e6)]
    collector = info(20, "collector", 2.4, mem_growth=70e6, read_bps=0.0)
    ranked = [(c.process.pid, c.score) for c in culprits.consumption([*readers, collector], 2, "memory")]
    assert [pid for pid, _ in ranked[:2]] == [10, 11] and ranked[0][1] >= 45
    assert dict(ranked)[20] <= 10  # 70 of ~1,025 MB/s demanded


def test_the_cause_decides_which_resource_ranks_first() -> None:
    hog = info(10, "spin", 100.0, state="running")
    writer = info(11, "dd", 2.0, write_bps=40e6, read_bps=0.0, state="stuck")
    faulter = info(12, "thrash", 5.0, pageins=900.0, mem_growth=200e6)
    procs = [hog, writer, faulter, info(13, "logger", 0.1, write_bps=4096.0)]
    by_cause = {cause: [(c.process.pid, c.score) for c in culprits.consumption(procs, 2, cause)]
                for cause in ("cpu", "io", "memory", "unknown")}
    assert by_cause["io"][:2] == [(11, 100), (12, 50)]  # the writer; then faults and growth, halved
    assert by_cause["cpu"][0] == (10, 50)
    assert by_cause["memory"][0] == (12, 100)
    assert by_cause["unknown"][0][1] == 100 and by_cause["unknown"][0][0] in (11, 12)
    # A few KiB/s on a quiet disk is not "all of the io" (the floor): the logger scores 0.
    assert 13 not in {pid for pid, _ in by_cause["io"]}
    (w,) = [c for c in culprits.consumption(procs, 2, "io") if c.process.pid == 11]
    assert w.categories == ["io", "stuck"]


def test_pipeline_processes_are_known_by_pid_not_by_name() -> None:
    procs = [*CHRT_STALL, info(777, "collector", 50.0, ppid=1),  # anyone can call itself collector
             info(505, "pm-sentinel", 0.4, ppid=501),  # the collector's pause sentinel process
             info(506, "journalctl", 3.0, ppid=504),  # a capture of this forensics worker
             info(507, "pm-sentinel", 0.0, ppid=900)]  # a name again, not ours
    pids = culprits.pipeline_pids(procs, own_pid=504, supervisor_pid=SUPERVISOR)
    assert pids == {SUPERVISOR, 501, 502, 503, 504, 505, 506}
    assert culprits.pipeline_pids(procs, own_pid=504, supervisor_pid=None) == {504, 506}


def test_suspects_keep_their_flag_and_are_listed_when_present_but_idle() -> None:
    procs = [*CHRT_STALL, info(950, "CodeMeter", 30.0), info(951, "codemeterd", 0.0)]
    report = culprits.identify([], procs, ["codemeter"], 5, cause="cpu", cpu_count=2)
    flagged = {c.pid: c.suspect for c in report.culprits}
    assert flagged[950] is True and flagged[901] is False
    assert [s.pid for s in report.suspects_present] == [951]


def test_suspect_match_is_case_insensitive_substring() -> None:
    assert culprits.is_suspect("/Applications/CodeMeter.app/CodeMeter", ["codemeter"])
    assert culprits.is_suspect("windowserver", ["WindowServer"])
    assert not culprits.is_suspect("code", ["codemeter", ""])


def test_without_a_process_list_the_ring_buffer_peaks_are_used() -> None:
    entries = [
        live(1.0, [rogue(10, "chrome", 40, ["cpu"]), rogue(11, "chrome", 70, ["mem"])]),
        live(2.0, [rogue(10, "chrome", 65, ["pageins"]), rogue(12, "backupd", 65, ["state"], "stuck")]),
        live(3.0, [rogue(12, "backupd", 30, ["cpu"])]),
        live(4.0, [rogue(12, "backupd", 20, ["cpu"])]),
    ]
    report = culprits.identify(entries, None, ["backup"], count=5)
    assert [(c.pid, c.score) for c in report.culprits] == [(11, 70), (12, 65), (10, 65)]  # tie: seen more
    by_pid = {c.pid: c for c in report.culprits}
    assert by_pid[10].categories == ["cpu", "pageins"]
    assert by_pid[12].categories == ["cpu", "state"] and by_pid[12].suspect
    assert report.source == "ring" and report.seen == {10: 2, 11: 1, 12: 3}
    assert culprits.identify([], None, [], 5).source == "none"
    named = m.ProcessScore(**{**{f: getattr(rogue(13, "dd", 80, ["io"]), f) for f in m.ProcessScore.__struct_fields__},
                              "cgroup": "backup.service", "ppid": 7})
    (c,) = culprits.identify([live(5.0, [named])], None, [], 5).culprits
    assert (c.cgroup, c.ppid) == ("backup.service", 7)
    # An idle machine in the stall: nobody held anything, nobody is named.
    assert culprits.identify(entries, [info(1, "init", 0.0)], [], 5).source == "none"


def test_ring_keeps_only_the_configured_seconds() -> None:
    ring = LiveRing(seconds=30)
    for t in range(100):
        ring.push(live(1000.0 + t, []))
    kept = ring.freeze()
    assert len(ring) == 31 and kept[0].samples.timestamp == 1069.0 and kept[-1].samples.timestamp == 1099.0
    assert [e.samples.timestamp for e in window(kept, 1090.0, 1092.0)] == [1090.0, 1091.0, 1092.0]
    ring.push(live(5000.0, []))  # a clock step forward drops the old window
    assert len(ring) == 1


def decode(line: bytes) -> object:
    return msgspec.json.decode(line, type=m.AnyMessage)


def test_jsonl_mode_standalone(tmp_path: Path) -> None:
    """`python -m forensics --jsonl`: Pause/LiveSample lines in, passed on, and ForensicsDone out."""
    now = time.time()
    enc = msgspec.json.Encoder()
    lines = [enc.encode(live(now - 2 + i * 0.5, [rogue(77, "spinner", 90, ["cpu"])], system(cpu_busy_pct=100.0)))
             for i in range(3)]
    lines.append(b"not json at all")
    lines.append(enc.encode(pause("c:5", now - 0.5, 1200, processes=processes())))
    config = tmp_path / "config.toml"
    config.write_text("[forensics]\nproc_timeout = 2\nlogs_timeout = 3\n[alerts]\nenabled = false\n")
    proc = subprocess.run(
        [sys.executable, "-m", "forensics", "--jsonl"],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        cwd=REPO,
        env=child_env(PAUSE_MONITOR_CONFIG=str(config)),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    *passed_on, out = proc.stdout.splitlines()
    # Its input goes on to the stages after it (the recorder records the pause).
    assert [decode(line) for line in passed_on] == [decode(line) for line in lines if line != b"not json at all"]
    done = msgspec.json.decode(out, type=m.ForensicsDone)
    # The pause's own process list ranks the culprits (the ring only when it has none).
    assert done.pause_ids == ["c:5"] and done.culprits[0].command == "hog"
    assert json.loads((Path(done.bundle_path) / "metadata.json").read_text())["status"] == "complete"
    assert b"dropped malformed line 4" in proc.stderr


def test_a_session_charges_exited_children_to_their_parent_and_names_its_cgroup(tmp_path: Path) -> None:
    """Through the engine: the Pause's process list ranks the culprits, the forker first with its
    children's CPU, named with its parent and the cgroup the collector read, and the evidence says
    what the ranking came from."""
    from forensics.engine import Engine
    from forensics.notify import Notifier
    from pmshared.config import Config

    config = Config()
    engine = Engine(config, events_dir=tmp_path / "events", plan=lambda p, b, d: [],
                    notifier=Notifier(config.alerts, search_path=str(tmp_path)))
    now = time.time()
    parent = os.getppid()
    me = os.getpid()  # the engine runs in this process: a pipeline process here
    forker = info(parent, "make", 3.0, ppid=1, cpu_children=160.0, cgroup="build.service")
    compiler = info(me, "cc1", 30.0, ppid=parent, state="running")
    stall = system(cpu_busy_pct=97.0, psi_cpu=m.PressureStall(some=80.0))
    engine.on_live(live(now - 1.2, [], system(cpu_busy_pct=4.0)))
    engine.on_pause(pause("c:1", now - 1.0, 700, processes=[forker, compiler], sys_stats=stall))
    engine.on_live(live(now - 0.2, [], stall))  # the same snapshot, through the scorer
    assert engine.wait_idle(20)
    (result,) = engine.take_done()
    engine.shutdown()

    assert result.cause == "cpu"
    assert [(c.pid, c.categories) for c in result.culprits] == [(parent, ["cpu", "fork"]), (me, ["cpu"])]
    assert (result.culprits[0].cgroup, result.culprits[0].ppid) == ("build.service", 1)
    assert result.evidence.culprits_from.endswith("exited children's CPU charged to their parent")
    ranked = json.loads((Path(result.bundle_path) / "culprits.json").read_text())
    assert ranked["source"] == "stall" and ranked["culprits"][0]["cpu_children_note"] == culprits.CHILDREN_NOTE
    assert [c["pipeline"] for c in ranked["culprits"]] == [False, True]


def test_reaped_children_count_only_for_the_busy_time_nobody_alive_explains() -> None:
    # A shell reaps an hour-long build (a lifetime lump of CPU) while a fork storm's parent reaps
    # short-lived children: 2 cores 80 % busy = 160 % of a core, the live processes' own CPU
    # explains 40 %, so at most 120 % can have been reaped children's in this interval.
    shell = info(10, "bash", 0.0, cpu_children=360_000.0)
    storm = info(11, "forker", 10.0, cpu_children=110.0)
    worker = info(12, "worker", 30.0)
    bounded = culprits.bounded_children([shell, storm, worker], cpu_count=2, busy_pct=80.0)
    assert round(sum(bounded.values()), 6) == 120.0 and bounded[12] == 0.0
    ranked = culprits.consumption([shell, storm, worker], cpu_count=2, cause="cpu", busy_pct=80.0)
    by_pid = {c.process.pid: c for c in ranked}
    # Shared out in proportion (62.6 % and 57.4 % of a core): the lump is no longer "all of the
    # machine", and the storm's parent, with its own CPU too, ranks first.
    assert (by_pid[10].score, by_pid[11].score, by_pid[12].score) == (31, 34, 15)
    assert [c.process.pid for c in ranked] == [11, 10, 12] and not by_pid[10].clipped
    assert by_pid[11].categories == ["cpu", "fork"]
    # Without the machine's busy figure the lump is only clipped to the cores.
    (lump, *_) = culprits.consumption([shell], cpu_count=2, cause="cpu")
    assert (lump.score, lump.clipped) == (100, True)
