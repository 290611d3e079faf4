"""Another local user cannot reach the pipeline's ipc endpoints, and a runtime directory that is
too open, or not ours, is tightened or refused before anything listens in it.

The probe runs as a child that first connects as us (root: so a "denied" can only come from the
permissions, not from a wrong path) and then drops to ``nobody`` and tries again, with a raw
AF_UNIX socket and with a zmq socket of the type a peer would use.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pmshared import paths
from pmshared.endpoints import ENDPOINTS
from tests.hostile_helpers import REPO, unsafe_chars, wait_for
from tests.supervisor_helpers import Pipeline, pipeline  # noqa: F401

pytestmark = pytest.mark.slow

NOBODY = 65534
WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]
root_only = pytest.mark.skipif(os.getuid() != 0, reason="needs root to drop privileges to nobody")

# argv: a JSON list of [path, zmq socket type]. Prints one JSON object: what worked as us and as
# nobody. zmq connects in the background: "connected" means a handshake within the window.
PROBE = r"""
import json, os, socket, sys, time
import zmq
from zmq.utils.monitor import recv_monitor_message

targets = json.loads(sys.argv[1])

def raw(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return "connected"
    except PermissionError:
        return "denied"
    except OSError as exc:
        return f"error {exc.errno}"
    finally:
        s.close()

def via_zmq(targets, window):
    # One socket per endpoint, all at once: which complete a handshake within the window.
    ctx = zmq.Context()
    probes = []
    for path, kind in targets:
        sock = ctx.socket(getattr(zmq, kind))
        sock.setsockopt(zmq.LINGER, 0)
        mon = sock.get_monitor_socket()
        sock.connect("ipc://" + path)
        probes.append((path, sock, mon, set()))
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        pending = [p for p in probes if zmq.EVENT_HANDSHAKE_SUCCEEDED not in p[3]]
        if not pending:
            break
        for path, sock, mon, events in pending:
            while mon.poll(0):
                events.add(recv_monitor_message(mon)["event"])
        time.sleep(0.02)
    out = {}
    for path, sock, mon, events in probes:
        if zmq.EVENT_HANDSHAKE_SUCCEEDED in events:
            out[path] = "connected"
        else:
            out[path] = "retrying" if events & {zmq.EVENT_CONNECT_RETRIED, zmq.EVENT_CONNECT_DELAYED} else "nothing"
        sock.disable_monitor()
        mon.close(0)
        sock.close(0)
    ctx.term()
    return out

result = {"as_us": {}, "as_nobody": {}}
handshakes = via_zmq(targets, 10.0)
for path, kind in targets:
    result["as_us"][path] = [raw(path), handshakes[path]]
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
handshakes = via_zmq(targets, 1.5)
for path, kind in targets:
    result["as_nobody"][path] = [raw(path), handshakes[path]]
print(json.dumps(result))
"""


def probe(targets: list[tuple[str, str]]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(targets)],
        cwd="/", capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def peer_type(sock_path: Path) -> str:
    """The zmq socket type a peer of this endpoint connects with."""
    import zmq

    names = {zmq.PUSH: "PUSH", zmq.PUB: "PUB", zmq.SUB: "SUB", zmq.DEALER: "DEALER"}
    return names[ENDPOINTS[sock_path.stem].connect_type]


@root_only
def test_nobody_cannot_connect_to_any_endpoint_of_the_running_pipeline(pipeline: Pipeline):
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n")
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    runtime = paths.runtime_dir()
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    sockets = sorted(p for p in runtime.iterdir() if p.is_socket())
    assert {p.stem for p in sockets} == set(ENDPOINTS), sockets  # every endpoint is bound
    for sock in sockets:
        st = sock.lstat()
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0, (sock, oct(st.st_mode))
    targets = [(str(p), peer_type(p)) for p in sockets]

    result = probe(targets)
    for path, _ in targets:
        assert result["as_us"][path] == ["connected", "connected"], (path, result["as_us"][path])
        raw, via_zmq = result["as_nobody"][path]
        assert raw == "denied", (path, raw)
        assert via_zmq == "retrying", (path, via_zmq)  # refused, and zmq keeps retrying

    # Even with the directory opened up, each socket file's own mode (0600) keeps nobody out.
    os.chmod(runtime, 0o755)
    try:
        opened = probe(targets)
    finally:
        os.chmod(runtime, 0o700)
    for path, _ in targets:
        assert opened["as_nobody"][path][0] == "denied", (path, opened["as_nobody"][path])
        assert opened["as_nobody"][path][1] != "connected", (path, opened["as_nobody"][path])

    # The probes did not hurt anyone: every worker still runs, none was restarted.
    workers = pipeline.workers()
    assert all(workers[w].state == "running" and workers[w].restarts == 0 for w in WORKERS), workers


def _standalone(worker: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", worker], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_loosened_runtime_dir_is_tightened_before_a_worker_listens():
    runtime = paths.runtime_dir()
    runtime.mkdir(mode=0o755)
    os.chmod(runtime, 0o755)
    proc = _standalone("scorer", dict(os.environ))
    try:
        sock = runtime / "raw.sock"
        wait_for(sock.is_socket, 20, "the scorer to bind")
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
        assert stat.S_IMODE(sock.lstat().st_mode) == 0o600
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert not any(runtime.iterdir()), list(runtime.iterdir())  # sockets removed on exit


def _refused(runtime: Path, what: str) -> None:
    """Each binder refuses the directory with one line, starts nothing and binds nothing."""
    for argv in (["-m", "scorer"], ["-m", "recorder"], ["-m", "cli", "up"]):
        proc = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=30)
        err = proc.stderr.strip()
        assert proc.returncode != 0, (argv, proc.stdout, err)
        assert err.count("\n") == 0 and err.startswith("error: ") and what in err, (argv, err)
        assert "Traceback" not in err and not unsafe_chars(err)
        leftovers = [p.name for p in runtime.iterdir()] if runtime.is_dir() and not runtime.is_symlink() else []
        assert not leftovers, (argv, leftovers)


@root_only
def test_a_runtime_dir_owned_by_someone_else_is_refused():
    runtime = paths.runtime_dir()
    runtime.mkdir(mode=0o700)
    os.chown(runtime, NOBODY, NOBODY)
    _refused(runtime, f"owned by uid {NOBODY}")


def test_a_runtime_dir_that_is_a_symlink_is_refused():
    # Someone who can write the parent plants a link to a directory of theirs.
    elsewhere = Path(tempfile.mkdtemp(prefix="pmx", dir="/tmp"))
    try:
        runtime = paths.runtime_dir()
        runtime.symlink_to(elsewhere, target_is_directory=True)
        _refused(runtime, "is not a directory")
        assert not any(elsewhere.iterdir()), list(elsewhere.iterdir())
    finally:
        for child in elsewhere.iterdir():
            child.unlink()
        elsewhere.rmdir()
