"""What `pmctl` says about a database or directory it cannot use (issue 17, items 2, 6 and 8):
one line naming the cause and what to do, never a traceback, and `pmctl doctor` for the whole
picture. Real files in the isolated home (tests/conftest.py), `pmctl` as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pmshared import paths, storage
from tests.as_nobody import run_python_as_nobody
from tests.supervisor_helpers import REPO


def pmctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def sound_db() -> Path:
    db = paths.db_path()
    storage.connect(db, mode="create").close()
    return db


def test_a_corrupt_database_is_named_with_what_to_do(tmp_path: Path):
    db = sound_db()
    with open(db, "r+b") as f:
        f.write(os.urandom(100))  # the header
    out = pmctl("events")
    line = one_line_error(out)
    assert out.returncode == 1
    assert "corrupted" in line and "(file is not a database)" in line
    assert "`pmctl up` moves it aside (kept as data.db.corrupt-<time>)" in line
    doctor = pmctl("doctor")
    assert doctor.returncode == 1
    [found] = [x for x in doctor.stdout.splitlines() if x.startswith("ERROR database")]
    assert "is corrupt" in found and "`pmctl up` moves it aside" in found


def test_no_database_while_the_monitor_runs_does_not_say_start_the_monitor():
    from supervisor.lock import InstanceLock

    assert "start the monitor with `pmctl up`" in one_line_error(pmctl("events"))
    lock = InstanceLock()
    lock.acquire()  # what a running `pmctl up` holds
    try:
        line = one_line_error(pmctl("events"))
    finally:
        lock.release()
    assert "although pause-monitor is running: the recorder has not created it; `pmctl status` shows why" in line


def test_a_directory_in_place_of_the_database_is_named_as_such():
    paths.db_path().mkdir(parents=True)
    for args in (["events"], ["pauses"]):
        line = one_line_error(pmctl(*args))
        assert f"{paths.db_path()} is a directory, not a database file" in line, line
    doctor = pmctl("doctor")
    assert doctor.returncode == 1
    assert f"{paths.db_path()} is a directory, not a database file; move it aside -> mv {paths.db_path()} " in doctor.stdout


def test_doctor_warns_about_a_database_others_can_read_and_is_quiet_when_all_is_well():
    db = sound_db()
    assert pmctl("doctor").returncode == 0
    os.chmod(db, 0o644)
    os.chmod(db.parent, 0o755)
    out = pmctl("doctor")
    assert out.returncode == 0, out.stdout  # a warning, not an error
    assert f"WARN  data      {db.parent} is readable by other users (mode 0755)" in out.stdout
    assert f"WARN  database  {db} is readable by other users (mode 0644)" in out.stdout


def test_a_database_set_aside_is_listed_by_doctor():
    db = sound_db()
    kept = storage.quarantine(db)
    out = pmctl("doctor")
    assert f"note  database  corrupt copy kept: {kept}" in out.stdout


OTHER_USERS_RUNTIME = """
import contextlib, io, json, sys
import cli.main, cli.clients, cli.up_cmd, cli.doctor, cli.doctor_cmd, supervisor.lock, supervisor.main
import pmshared.prctl, supervisor.procfile, supervisor.output, supervisor.daemon, cli.format
import zmq, msgspec, rich.console, rich.table, rich.text, apsw
from pmshared import config, messages, storage, endpoints
drop_privileges()
out = {}
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:  # `pmctl up` after its exec (the interpreter itself is not nobody's to exec)
        supervisor.main.run(None, None)
    except SystemExit as exc:
        out["up"] = {"code": exc.code, "stderr": err.getvalue()}
for command in (["status"], ["down"], ["doctor"], ["watch", "--once", "--timeout", "0.5"]):
    err, std = io.StringIO(), io.StringIO()
    sys.argv = ["pmctl", *command]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            cli.main.run()
        except SystemExit as exc:
            code = exc.code
    out[command[0]] = {"code": code, "stderr": err.getvalue(), "stdout": std.getvalue()}
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
@pytest.mark.parametrize("parent_mode", [0o700, 0o755])
def test_another_users_runtime_dir_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, parent_mode: int):
    # As after `su nobody` with root's XDG_RUNTIME_DIR still set: root's $XDG_RUNTIME_DIR is
    # usually 0700 itself (/run/user/0); where it is not, our own directory in it still is.
    run = paths.runtime_dir()
    paths.ensure_private_dir(run)
    os.chmod(run.parent, parent_mode)
    blocker = run.parent if parent_mode == 0o700 else run
    home = Path(tempfile.mkdtemp(prefix="pmnobody", dir="/tmp"))  # nobody's own config and data
    os.chown(home, 65534, 65534)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    try:
        out = run_python_as_nobody(OTHER_USERS_RUNTIME)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    for command in ("status", "down", "watch"):
        result = out[command]
        assert result["code"] == 1, (command, result)
        [line] = result["stderr"].splitlines()
        assert line.startswith(f"error: runtime directory {run}: permission denied"), line
        assert f"({blocker}: owned by uid 0, mode 0700; we are uid 65534)" in line
    [line] = out["up"]["stderr"].splitlines()  # up was one line before: it stays one, naming the owner
    assert out["up"]["code"] == 2 and "uid 0" in line and "uid 65534" in line, line
    assert out["doctor"]["code"] == 1
    assert f"ERROR runtime   runtime directory {run}: permission denied" in out["doctor"]["stdout"]
