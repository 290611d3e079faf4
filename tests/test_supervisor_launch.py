"""Forking Python workers from the supervisor's warm interpreter (supervisor/launch.py): real forks, run
from a driver process that has one thread like the supervisor at start-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from supervisor.launch import PythonTarget, python_target
from tests.procutil import pid_gone, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start is Linux-only")

DRIVER = Path(__file__).with_name("launch_driver.py")

PROBE = textwrap.dedent(
    """
    import json, os, sys
    print(json.dumps({
        "argv": sys.argv[1:], "name": __name__, "cwd": os.getcwd(), "var": os.environ.get("PROBE_VAR"),
        "leaked": os.environ.get("LEAK_CHECK"), "pgid": os.getpgid(0), "pid": os.getpid(), "sid": os.getsid(0),
        "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
        "stdin": os.readlink("/proc/self/fd/0"), "comm": open("/proc/self/comm").read().strip(),
        "path0": sys.path[0],
    }), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    if mode == "code":
        raise SystemExit(3)
    if mode == "message":
        raise SystemExit("a message instead of a code")
    if mode == "crash":
        raise RuntimeError("boom")
    if mode == "sleep":
        import time; time.sleep(600)
    """
)


def drive(spec: dict, timeout: float = 30) -> dict:
    env = dict(os.environ, LEAK_CHECK="from the driver")
    out = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(spec)], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    (tmp_path / "probe_mod.py").write_text(PROBE)
    return tmp_path


def spec(probe_dir: Path, argv: list[str], **extra) -> dict:
    return {"argv": argv, "name": "probe-worker", "env": {"PROBE_VAR": "set", "PATH": os.environ["PATH"]},
            "cwd": str(probe_dir), **extra}


def report(result: dict) -> dict:
    return json.loads(result["output"].splitlines()[0])


def test_python_target_accepts_only_plain_runs_of_this_interpreter():
    py = sys.executable
    assert python_target([py, "-m", "collector"]) == PythonTarget("collector", None, [])
    assert python_target([py, "-m", "scorer", "--jsonl"]) == PythonTarget("scorer", None, ["--jsonl"])
    assert python_target([py, "w.py", "a"]) == PythonTarget(None, "w.py", ["a"])
    assert python_target([py, "-u", "-m", "x"]) is None  # interpreter options need a real start
    assert python_target([py, "-m"]) is None
    assert python_target(["/usr/bin/other-python", "-m", "x"]) is None  # another interpreter
    assert python_target(["sleep", "5"]) is None
    assert python_target([py]) is None


def test_module_runs_as_python_dash_m_would(probe_dir: Path):
    result = drive(spec(probe_dir, ["python", "-m", "probe_mod", "ok", "two"]))
    seen = report(result)
    assert result["returncode"] == 0
    assert seen["argv"] == ["ok", "two"] and seen["name"] == "__main__"
    assert seen["cwd"] == str(probe_dir) and seen["path0"] == str(probe_dir)
    assert seen["var"] == "set" and seen["leaked"] is None  # the Procfile's env, not the parent's
    assert seen["pgid"] == seen["pid"] == seen["sid"] == result["pid"]  # own session and group
    assert seen["stdin"] == "/dev/null"
    assert seen["fds"] == [0, 1, 2, 3]  # 3: listdir's own; the driver's fds are gone
    assert seen["comm"] == "probe-worker"
    assert "to stderr" in result["output"]  # stderr shares the output pipe


def test_script_runs_as_python_script_would(probe_dir: Path):
    result = drive(spec(probe_dir, ["python", str(probe_dir / "probe_mod.py"), "code"]))
    assert result["returncode"] == 3
    assert report(result)["path0"] == str(probe_dir)


@pytest.mark.parametrize(
    ("mode", "code", "says"),
    [("message", 1, "a message instead of a code"), ("crash", 1, "RuntimeError: boom")],
)
def test_exit_message_and_crash_are_reported(probe_dir: Path, mode: str, code: int, says: str):
    result = drive(spec(probe_dir, ["python", "-m", "probe_mod", mode]))
    assert result["returncode"] == code
    assert says in result["output"]


def test_preload_imports_the_module_and_reports_failures(probe_dir: Path):
    ok = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(spec(probe_dir, ["python", "-m", "collector", "--jsonl", "--count", "1",
                                                                   "--interval", "0.2"], preload=True, timeout=60))],
        capture_output=True, text=True, timeout=90,
    )
    lines = [json.loads(line) for line in ok.stdout.splitlines()]
    assert lines[0] == {"preload_problems": []}
    assert lines[-1]["returncode"] == 0
    # the real collector, forked: its log line on stderr, then the snapshot on stdout
    snapshots = [json.loads(line) for line in lines[-1]["output"].splitlines() if line.startswith("{")]
    assert len(snapshots) == 1
    assert snapshots[0]["type"] == "snapshot" and snapshots[0]["process_count"] > 0
    bad = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(spec(probe_dir, ["python", "-m", "no_such_module_here"], preload=True))],
        capture_output=True, text=True, timeout=60,
    )
    lines = [json.loads(line) for line in bad.stdout.splitlines()]
    assert "no_such_module_here" in lines[0]["preload_problems"][0]
    assert lines[-1]["returncode"] == 1 and "No module named" in lines[-1]["output"]


def test_worker_dies_with_the_supervisor(probe_dir: Path):
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER), json.dumps(spec(probe_dir, ["python", "-m", "probe_mod", "sleep"], hang=True))],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        pid = json.loads(driver.stdout.readline())["pid"]
        assert not pid_gone(pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        wait_for(lambda: pid_gone(pid), 10, "the forked worker to die with its supervisor")
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        if "pid" in locals() and not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)
