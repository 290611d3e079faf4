"""Linux captures: stuck threads, /proc readings and their deltas, the kernel log fallback."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from forensics import linux_captures, proc_files
from forensics.runner import CaptureContext
from tests.forensics_helpers import FAKE_BIN

# Recorded from a machine under memory pressure (trimmed).
VMSTAT_1 = "pgfault 1000\npgmajfault 100\npswpin 10\npswpout 20\npgscan_direct 0\noom_kill 0\n"
VMSTAT_2 = "pgfault 5000\npgmajfault 2100\npswpin 810\npswpout 1020\npgscan_direct 4000\noom_kill 1\n"
PSI_1 = "some avg10=1.00 avg60=0.50 avg300=0.10 total=1000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
PSI_2 = "some avg10=40.00 avg60=9.00 avg300=2.00 total=1800000\nfull avg10=20.00 avg60=4.00 avg300=1.00 total=400000\n"
STAT_1 = "cpu  100 0 100 700 100 0 0 0 0 0\nprocs_running 1\nprocs_blocked 0\n"
STAT_2 = "cpu  150 0 150 750 300 0 0 50 0 0\nprocs_running 5\nprocs_blocked 3\n"


def write_proc(root: Path, vmstat: str, psi: str, stat: str, meminfo_avail: int) -> None:
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    for r in ("cpu", "memory", "io"):
        (root / "pressure" / r).write_text(psi)
    (root / "vmstat").write_text(vmstat)
    (root / "stat").write_text(stat)
    (root / "loadavg").write_text("3.10 1.20 0.50 4/512 9999\n")
    (root / "meminfo").write_text(f"MemTotal:       16000000 kB\nMemAvailable:   {meminfo_avail} kB\n")


def test_readings_and_delta(tmp_path: Path) -> None:
    write_proc(tmp_path, VMSTAT_1, PSI_1, STAT_1, 900_000)
    before = proc_files.read_all(tmp_path)
    write_proc(tmp_path, VMSTAT_2, PSI_2, STAT_2, 100_000)
    after = proc_files.read_all(tmp_path)
    after.monotonic = before.monotonic + 2.0  # the pause lasted 2 s

    d = proc_files.delta(before, after)
    assert d["interval_s"] == 2.0
    assert d["vmstat"]["pgmajfault"] == {"delta": 2000, "per_s": 1000.0}
    assert d["vmstat"]["pswpin"]["delta"] == 800 and d["vmstat"]["oom_kill"]["delta"] == 1
    # 800 ms of "some" stall in 2 s = 40 %; 400 ms "full" = 20 %.
    assert d["psi"]["memory"] == {"some_pct": 40.0, "full_pct": 20.0}
    # jiffies: user 50 + system 50 + idle 50 + iowait 200 + steal 50 = 400
    # -> busy (user+system) 25 %, iowait 50 %, steal 12.5 %.
    assert d["cpu_pct"] == {"busy": 25.0, "iowait": 50.0, "steal": 12.5}
    assert d["meminfo_kb"]["MemAvailable"] == -800_000
    parsed = after.to_json()["parsed"]
    assert parsed["stat"]["procs_blocked"] == 3 and parsed["loadavg"].startswith("3.10")
    assert parsed["psi"]["io"]["full"]["avg10"] == 20.0


def test_missing_psi_is_a_recorded_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "vmstat").write_text(VMSTAT_1)
    reading = proc_files.read_all(tmp_path)
    assert set(reading.errors) >= {"pressure_cpu", "pressure_memory", "pressure_io", "meminfo"}
    assert "No such file" in reading.errors["pressure_io"]
    assert proc_files.delta(reading, reading)["psi"] == {}


def test_keeper_picks_the_newest_reading_before_the_pause(tmp_path: Path) -> None:
    write_proc(tmp_path, VMSTAT_1, PSI_1, STAT_1, 1)
    keeper = proc_files.ReadingKeeper(every_s=2.0, root=tmp_path)
    assert keeper.before(time.time()) is None
    keeper.maybe_refresh(100.0)
    keeper.maybe_refresh(101.0)  # not due: still one reading
    first = keeper.before(time.time() + 10)
    keeper.maybe_refresh(102.0)
    assert len(keeper._readings) == 2
    assert keeper.before(first.taken_at) is first  # the later one was taken after that moment
    assert keeper.before(0.0) is first  # nothing before: the oldest is the best we have


def fake_task(root: Path, pid: int, tid: int, comm: str, state: str, wchan: str, stack: str | None) -> None:
    tdir = root / str(pid) / "task" / str(tid)
    tdir.mkdir(parents=True)
    (root / str(pid) / "comm").write_text(comm + "\n")
    (tdir / "stat").write_text(f"{tid} ({comm}) {state} 1 {tid} {tid} 0 -1 4194560 100 0 0 0\n")
    (tdir / "wchan").write_text(wchan)
    if stack is not None:
        (tdir / "stack").write_text(stack)


def test_stuck_scan_finds_d_threads_with_wchan_and_stack(tmp_path: Path) -> None:
    fake_task(tmp_path, 100, 100, "jbd2/sda1-8", "D", "jbd2_journal_commit_transaction",
              "[<0>] jbd2_journal_commit_transaction+0x1/0x2\n[<0>] kjournald2+0x3/0x4\n")
    fake_task(tmp_path, 200, 201, "my (odd) name", "D", "folio_wait_bit_common", None)
    fake_task(tmp_path, 300, 300, "idle", "S", "do_epoll_wait", "")
    stuck, reason = linux_captures.scan_stuck(tmp_path)
    by_tid = {t["tid"]: t for t in stuck}
    assert set(by_tid) == {100, 201}
    assert by_tid[100]["wchan"] == "jbd2_journal_commit_transaction"
    assert by_tid[100]["stack"][1] == "[<0>] kjournald2+0x3/0x4"
    assert by_tid[201]["comm"] == "my (odd) name" and by_tid[201]["stack"] is None
    assert reason is not None and "CONFIG_STACKTRACE" in reason


def test_stuck_capture_writes_json_and_counts(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    fake_task(root, 100, 100, "dd", "D", "io_schedule", "")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    cap = linux_captures.stuck_threads_capture(5.0, root=root)
    result = cap.run(CaptureContext(bundle_dir=bundle, max_bytes=1 << 20, stop=threading.Event()))
    assert result.artifact.ok and result.stuck_threads == 1
    body = json.loads((bundle / "stuck_threads.json").read_text())
    assert body["rounds"] == linux_captures.STUCK_ROUNDS
    assert body["stuck"][0]["rounds_seen"] == linux_captures.STUCK_ROUNDS


def test_real_proc_state_capture(tmp_path: Path) -> None:
    before = proc_files.read_all()
    cap = linux_captures.proc_state_capture(before, time.time(), 5.0)
    result = cap.run(CaptureContext(bundle_dir=tmp_path, max_bytes=1 << 20, stop=threading.Event()))
    body = json.loads((tmp_path / "proc_state.json").read_text())
    assert result.artifact.ran and body["after"]["parsed"]["meminfo_kb"]["MemTotal"] > 0
    assert "pgmajfault" in body["delta"]["vmstat"]
    no_before = linux_captures.proc_state_capture(None, time.time(), 5.0)
    no_before.run(CaptureContext(bundle_dir=tmp_path, max_bytes=1 << 20, stop=threading.Event()))
    body = json.loads((tmp_path / "proc_state.json").read_text())
    assert body["before"] is None and "worker just started" in body["delta_skipped_reason"]


def test_kernel_log_falls_back_to_dmesg_without_a_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("PATH", f"{FAKE_BIN / 'nojournal'}:{os.environ['PATH']}")
    cap = linux_captures.kernel_log_capture(time.time() - 60, 5.0)
    result = cap.run(CaptureContext(bundle_dir=tmp_path, max_bytes=1 << 20, stop=threading.Event()))
    d = result.details
    assert d["journalctl_not_used"] == "journalctl: No journal files were found (no persistent or volatile journal)"
    assert d["attempts"][0]["argv"][0] == str(FAKE_BIN / "nojournal" / "journalctl")
    assert d["attempts"][0]["argv"][1:4] == ["-k", "--since", d["attempts"][0]["argv"][3]]
    assert d["attempts"][0]["argv"][3].startswith("@")
    dmesg = d["attempts"][1]["argv"]
    assert dmesg is not None and dmesg[1:4] == ["--time-format", "iso", "--since"]
    # dmesg either ran (source recorded) or its absence / refusal is the recorded reason.
    assert d["source"] == "dmesg" or result.artifact.skipped_reason or result.artifact.error


def test_kernel_log_without_any_tool_is_skipped_with_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    cap = linux_captures.kernel_log_capture(time.time() - 60, 5.0)
    result = cap.run(CaptureContext(bundle_dir=tmp_path, max_bytes=1 << 20, stop=threading.Event()))
    assert not result.artifact.ran and result.artifact.skipped_reason == "dmesg not found on PATH"
    assert result.details["journalctl_not_used"] == "journalctl not found on PATH"


def test_delta_across_the_pause_feeds_the_cause(tmp_path: Path) -> None:
    from forensics import cause
    from forensics.stall_window import Interval

    write_proc(tmp_path, VMSTAT_1, PSI_1, STAT_1, 900_000)
    before = proc_files.read_all(tmp_path)
    write_proc(tmp_path, VMSTAT_2, PSI_2, STAT_2, 100_000)
    after = proc_files.read_all(tmp_path)
    after.monotonic = before.monotonic + 2.0
    sys_stats = proc_files.delta_as_system(proc_files.delta(before, after), after, cpu_count=2)
    assert sys_stats.pageins == 1000.0 and sys_stats.swapins == 400.0 and sys_stats.procs_blocked == 3
    assert sys_stats.psi_memory is not None and sys_stats.psi_memory.full == 20.0
    # Forensics' own readings count when no collector sample covers the stall.
    across = Interval(before.taken_at, before.taken_at + 2.0, sys_stats, "proc")
    stall = (before.taken_at + 0.5, before.taken_at + 1.5)
    label, evidence = cause.classify(cause.gather([stall], [], fallback=[across]))
    assert label == "memory" and evidence.psi_memory_full == 20.0
    assert evidence.psi_memory_full_over == "-0.50..+1.50 s proc (whole sample)"
