"""The capture runner: real child processes that hang, flood, fail or are missing."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from forensics.runner import CaptureContext, CommandCapture, run_command
from tests.forensics_helpers import FAKE_BIN, kill_listed, pid_gone, wait_for

MB = 1024 * 1024


def ctx(tmp_path: Path, max_bytes: int = MB, stop: threading.Event | None = None) -> CaptureContext:
    return CaptureContext(bundle_dir=tmp_path, max_bytes=max_bytes, stop=stop or threading.Event())


def test_hanging_capture_is_killed_at_its_timeout_with_its_children(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    spec = CommandCapture("hang", [str(FAKE_BIN / "hang"), str(pids_file)], timeout_s=1.5, stdout_file="hang.txt")
    started = time.monotonic()
    result = run_command(spec, ctx(tmp_path))
    elapsed = time.monotonic() - started

    child, leader = (int(p) for p in pids_file.read_text().split())
    try:
        assert 1.4 <= elapsed < 5.0, elapsed
        art = result.artifact
        assert art.ran and not art.ok and not art.truncated
        assert art.error is not None and "timed out after 1.5s" in art.error
        assert art.exit_code == -9  # SIGKILL
        assert (tmp_path / "hang.txt").read_text() == "hanging\n"  # what it wrote before is kept
        # The whole group died: the leader is reaped, the grandchild is gone (or an unreaped zombie).
        assert pid_gone(leader)
        wait_for(lambda: pid_gone(child), timeout=5, what="the hang's child to die")
    finally:
        kill_listed(pids_file)


def test_flooding_capture_is_truncated_at_the_cap_and_killed(tmp_path: Path) -> None:
    spec = CommandCapture("flood", [str(FAKE_BIN / "flood"), "100"], timeout_s=20, stdout_file="flood.txt")
    started = time.monotonic()
    result = run_command(spec, ctx(tmp_path, max_bytes=MB))
    elapsed = time.monotonic() - started
    art = result.artifact
    assert art.truncated and not art.ok and art.ran
    assert art.error is not None and "exceeded the cap of 1048576 bytes" in art.error
    assert art.bytes == MB
    assert (tmp_path / "flood.txt").stat().st_size == MB  # exactly the first MB, not 100
    assert art.exit_code is not None and art.exit_code < 0  # killed, did not finish its 100 MB
    assert elapsed < 10.0


def test_missing_executable_is_skipped_with_the_reason(tmp_path: Path) -> None:
    result = run_command(CommandCapture("x", ["/nonexistent/spindump", "-stdout"], 5, "x.txt"), ctx(tmp_path))
    assert not result.artifact.ran and not result.artifact.ok
    assert result.artifact.skipped_reason == "/nonexistent/spindump not found"
    result = run_command(CommandCapture("y", ["no-such-tool-pm"], 5, "y.txt"), ctx(tmp_path))
    assert result.artifact.skipped_reason == "no-such-tool-pm not found on PATH"


def test_failing_capture_records_exit_status_and_stderr(tmp_path: Path) -> None:
    result = run_command(CommandCapture("f", [str(FAKE_BIN / "fail"), "7"], 5, "f.txt"), ctx(tmp_path))
    art = result.artifact
    assert art.ran and not art.ok and art.exit_code == 7
    assert art.error == "exit status 7: fake failure: permission denied"
    assert result.stderr == "fake failure: permission denied"


def test_without_os_waitid_a_capture_still_ends_with_its_exit_status(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS before Python 3.13 has no os.waitid: the runner waits for the command portably."""
    monkeypatch.delattr(os, "waitid", raising=False)
    result = run_command(CommandCapture("f", [str(FAKE_BIN / "fail"), "7"], 5, "f.txt"), ctx(tmp_path))
    art = result.artifact
    assert art.ran and not art.ok and art.exit_code == 7
    assert art.error == "exit status 7: fake failure: permission denied"


def test_successful_capture(tmp_path: Path) -> None:
    spec = CommandCapture("slow", [str(FAKE_BIN / "slow"), "0", str(tmp_path / "log")], 5, "slow.txt")
    art = run_command(spec, ctx(tmp_path)).artifact
    assert art.ok and art.exit_code == 0 and art.error is None
    assert art.bytes == 5 and (tmp_path / "slow.txt").read_text() == "done\n"
    assert art.duration_ms is not None and art.duration_ms > 0


def test_stop_flag_kills_a_running_capture_at_once(tmp_path: Path) -> None:
    stop = threading.Event()
    pids_file = tmp_path / "pids"
    spec = CommandCapture("hang", [str(FAKE_BIN / "hang"), str(pids_file)], timeout_s=60, stdout_file=None)
    out: list = []
    t = threading.Thread(target=lambda: out.append(run_command(spec, ctx(tmp_path, stop=stop))))
    t.start()
    try:
        wait_for(pids_file.exists, timeout=10, what="the hang to start")
        stopped = time.monotonic()
        stop.set()
        t.join(10)
        assert not t.is_alive() and time.monotonic() - stopped < 1.0
        assert out[0].artifact.error == "worker stopping; killed"
        child, leader = (int(p) for p in pids_file.read_text().split())
        wait_for(lambda: pid_gone(child) and pid_gone(leader), timeout=5, what="group death")
    finally:
        stop.set()
        kill_listed(pids_file)


@pytest.mark.parametrize("cap", [MB])
def test_session_with_hanging_and_flooding_captures_still_writes_a_complete_bundle(tmp_path: Path, cap: int) -> None:
    """Both bad captures fail with their reason; every other file of the bundle is there and parses."""
    import msgspec

    from forensics import linux_captures
    from forensics.engine import Engine
    from forensics.notify import Notifier
    from pmshared.config import Config, ForensicsConfig
    from tests.forensics_helpers import live, pause, processes, rogue, system

    config = Config(forensics=ForensicsConfig(max_output_bytes=cap, proc_timeout=2, logs_timeout=3))
    pids_file = tmp_path / "pids"

    def plan(p, before, bundle_dir):  # the Linux plan plus two misbehaving commands
        return linux_captures.plan(p, config.forensics, before) + [
            CommandCapture("hang", [str(FAKE_BIN / "hang"), str(pids_file)], 1.5, "hang.txt"),
            CommandCapture("flood", [str(FAKE_BIN / "flood"), "100"], 20, "flood.txt"),
        ]

    engine = Engine(config, events_dir=tmp_path / "events", plan=plan,
                    notifier=Notifier(config.alerts, search_path=str(tmp_path)))
    now = time.time()
    for i in range(3):
        engine.on_live(live(now - 3 + i, [rogue(4242, "hog", 70 + i, ["cpu"])], system(cpu_busy_pct=99.0)))
    try:
        assert engine.on_pause(pause("c:1", now - 1.5, processes=processes(), sys_stats=system(load1=6.0))) == "started"
        assert engine.wait_idle(30)
        (result,) = engine.take_done()
    finally:
        engine.shutdown()
        kill_listed(pids_file)

    arts = {a.name: a for a in result.artifacts}
    assert set(arts) == {"stuck_threads", "proc_state", "kernel_log", "hang", "flood"}
    assert not arts["hang"].ok and "timed out" in (arts["hang"].error or "")
    assert not arts["flood"].ok and arts["flood"].truncated and arts["flood"].bytes == cap
    assert arts["stuck_threads"].ok and arts["proc_state"].ok

    bundle = Path(result.bundle_path)
    for name in ("metadata.json", "ring_buffer.json", "culprits.json", "processes.json",
                 "stuck_threads.json", "proc_state.json"):
        json.loads((bundle / name).read_text())
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["status"] == "complete"
    assert meta["captures"]["hang"]["ok"] is False and "timed out" in meta["captures"]["hang"]["error"]
    assert meta["captures"]["flood"]["truncated"] is True
    assert meta["cause"] == result.cause == "cpu"
    child, leader = (int(p) for p in pids_file.read_text().split())
    wait_for(lambda: pid_gone(child) and pid_gone(leader), timeout=5, what="group death")
    msgspec.json.decode((bundle / "culprits.json").read_bytes())


def test_typed_results_reach_metadata_details(tmp_path: Path) -> None:
    """argv and stderr are typed fields of the result; metadata.json still shows them (with the
    notes) under the capture's details, as before they were typed."""
    result = run_command(CommandCapture("f", [str(FAKE_BIN / "fail"), "7"], 5, "f.txt"), ctx(tmp_path))
    assert result.argv == [str(FAKE_BIN / "fail"), "7"]
    assert result.metadata_details() == {
        "argv": result.argv, "stderr": "fake failure: permission denied", "timeout_s": 5,
    }
    missing = run_command(CommandCapture("y", ["no-such-tool-pm"], 5, "y.txt"), ctx(tmp_path))
    assert missing.metadata_details() == {"argv": ["no-such-tool-pm"], "timeout_s": 5}
