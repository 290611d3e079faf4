"""macOS captures and caffeinate, built as on a Mac and run against fake executables."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from forensics import macos_captures
from forensics.caffeinate import Caffeinate, caffeinate_argv
from forensics.engine import Engine, platform_plan
from forensics.notify import Notifier
from forensics.runner import CaptureContext
from pmshared import messages as m
from pmshared.config import Config, ForensicsConfig
from tests.forensics_helpers import FAKE_BIN, live, pause, processes, read_json_lines, rogue, system

FAKE_TOOLS = {name: str(FAKE_BIN / "macos" / name) for name in ("spindump", "tailspin", "log")}


@pytest.fixture
def fake_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_BIN_LOG", str(log))
    return log


def local(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch)).strftime("%Y-%m-%d %H:%M:%S")


def test_macos_plan_runs_the_seed_commands_with_their_arguments(tmp_path: Path, fake_log: Path) -> None:
    config = ForensicsConfig(log_window_s=60)
    p = pause("c:1", start=1_795_000_000.25, duration_ms=2000)
    now = p.end + 0.5
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    plan = macos_captures.plan(p, config, str(bundle), now, tools=FAKE_TOOLS)
    ctx = CaptureContext(bundle_dir=bundle, max_bytes=1 << 20, stop=threading.Event())
    results = {c.name: c.run(ctx) for c in plan}

    calls = {c["prog"]: c["argv"] for c in read_json_lines(fake_log)}
    assert calls["spindump"] == ["-notarget", "-stdout"]
    assert calls["tailspin"] == ["save", "-o", f"{bundle}/tailspin.tailspin"]
    assert calls["log"] == [
        "show", "--style", "ndjson",
        "--start", local(p.start - 60), "--end", local(now + 1),
        "--predicate", macos_captures.LOG_PREDICATE,
    ]
    assert 'subsystem == "com.apple.powerd"' in macos_captures.LOG_PREDICATE
    assert 'eventMessage CONTAINS[c] "hang"' in macos_captures.LOG_PREDICATE

    assert all(r.artifact.ok for r in results.values()), {n: r.artifact for n, r in results.items()}
    assert results["spindump"].artifact.path == "spindump.txt"
    assert "WindowServer [123]" in (bundle / "spindump.txt").read_text()
    assert results["tailspin"].artifact.path == "tailspin.tailspin"
    assert results["tailspin"].artifact.bytes == (bundle / "tailspin.tailspin").stat().st_size == 900
    lines = (bundle / "system_log.ndjson").read_text().splitlines()
    assert [json.loads(x)["eventMessage"] for x in lines][1] == "WindowServer hang detected"


def test_default_tool_paths_are_the_seeds() -> None:
    assert macos_captures.TOOLS == {
        "spindump": "/usr/sbin/spindump", "tailspin": "/usr/bin/tailspin", "log": "/usr/bin/log",
    }
    # Here (no Mac) they are missing, so each capture is skipped with the reason, not an error.
    plan = macos_captures.plan(pause("c:1", time.time()), ForensicsConfig(), "/tmp/x", time.time())
    if not os.path.exists("/usr/sbin/spindump"):
        ctx = CaptureContext(bundle_dir=Path("/nonexistent"), max_bytes=1024, stop=threading.Event())
        art = plan[0].run(ctx).artifact
        assert not art.ran and art.skipped_reason == "/usr/sbin/spindump not found"


def test_tailspin_that_writes_nothing_is_a_failure(tmp_path: Path, fake_log: Path) -> None:
    # The fake refuses a call without "save": the capture must fail with the exit status.
    from forensics.runner import CommandCapture

    spec = CommandCapture("tailspin", [FAKE_TOOLS["tailspin"], "bogus"], 5, None, produces="tailspin.tailspin")
    art = spec.run(CaptureContext(bundle_dir=tmp_path, max_bytes=1 << 20, stop=threading.Event())).artifact
    assert not art.ok and art.exit_code == 64 and "usage: tailspin" in (art.error or "")


def test_a_darwin_engine_writes_a_bundle_with_the_macos_captures(tmp_path: Path, fake_log: Path) -> None:
    config = Config(forensics=ForensicsConfig(logs_timeout=5))
    base = platform_plan(config, "darwin")
    assert callable(base)

    def plan(p, before, bundle_dir):
        return macos_captures.plan(p, config.forensics, str(bundle_dir), time.time(), tools=FAKE_TOOLS)

    engine = Engine(config, events_dir=tmp_path / "ev", platform="darwin", plan=plan,
                    notifier=Notifier(config.alerts, platform="darwin", search_path=str(tmp_path)))
    assert engine.keeper is None  # no /proc readings on macOS
    now = time.time()
    engine.on_live(live(now - 2, [rogue(88, "WindowServer", 80, ["cpu", "threads"])], system()))
    # The snapshot spanning the stall ranks the culprits: WindowServer took most of 8 cores.
    window_server = m.ProcessInfo(pid=88, command="WindowServer", state="running", cpu=390.0)
    engine.on_pause(pause("c:9", now - 1, processes=[*processes(), window_server], sys_stats=system(cpu_count=8)))
    assert engine.wait_idle(20)
    (result,) = engine.take_done()
    engine.shutdown()
    assert [a.name for a in result.artifacts] == ["spindump", "tailspin", "system_log"]
    assert all(a.ok for a in result.artifacts)
    assert result.culprits[0].command == "WindowServer" and result.culprits[0].suspect
    assert {c["prog"] for c in read_json_lines(fake_log)} == {"spindump", "tailspin", "log"}


def test_caffeinate_arguments() -> None:
    assert caffeinate_argv(4321) == ["/usr/bin/caffeinate", "-i", "-w", "4321"]


def test_caffeinate_starts_only_on_darwin() -> None:
    assert Caffeinate(platform="linux").start() is False
    # On "darwin" with a missing program it logs and carries on (no exception).
    assert Caffeinate(platform="darwin", program="/nonexistent/caffeinate").start() is False
